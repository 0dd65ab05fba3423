/* Host-file backend for kflash (stdio; host tools only). */
#include <errno.h>
#include <string.h>

#include "keel/flash_file.h"

static bool file_in_range(const kflash_file_t *ff, uint32_t off, uint32_t len)
{
    return ff->fp != NULL && off <= ff->size && len <= ff->size - off;
}

static kerr_t file_read(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    kflash_file_t *ff = ctx;

    if (!file_in_range(ff, off, len) || fseek(ff->fp, (long)ff->base + (long)off, SEEK_SET) != 0 ||
        fread(buf, 1, len, ff->fp) != len) {
        return KERR_IO;
    }
    return KERR_OK;
}

/*
 * Flushed on every write so that a full disk or a failing device surfaces as KERR_IO on the
 * operation that caused it, not at close time when the caller believes the flash is written.
 */
static kerr_t file_write(void *ctx, uint32_t off, const void *buf, uint32_t len)
{
    kflash_file_t *ff = ctx;

    if (!file_in_range(ff, off, len) || fseek(ff->fp, (long)ff->base + (long)off, SEEK_SET) != 0 ||
        fwrite(buf, 1, len, ff->fp) != len || fflush(ff->fp) != 0) {
        return KERR_IO;
    }
    return KERR_OK;
}

const kflash_backend_t kflash_file_backend = {file_read, file_write};

static kerr_t file_create(kflash_file_t *ff, const char *path, uint32_t file_size)
{
    uint8_t ff_block[4096];

    ff->fp = fopen(path, "w+b");
    if (ff->fp == NULL) {
        return KERR_IO;
    }
    memset(ff_block, 0xFF, sizeof(ff_block));
    for (uint32_t done = 0; done < file_size;) {
        uint32_t n = file_size - done < sizeof(ff_block) ? file_size - done : sizeof(ff_block);
        if (fwrite(ff_block, 1, n, ff->fp) != n) {
            kflash_file_close(ff);
            return KERR_IO;
        }
        done += n;
    }
    if (fflush(ff->fp) != 0) {
        kflash_file_close(ff);
        return KERR_IO;
    }
    return KERR_OK;
}

kerr_t kflash_file_open(kflash_file_t *ff, const char *path, uint32_t size, bool create)
{
    return kflash_file_open_region(ff, path, size, 0u, size, create);
}

kerr_t kflash_file_open_region(kflash_file_t *ff, const char *path, uint32_t file_size,
                               uint32_t base, uint32_t size, bool create)
{
    ff->fp = NULL;
    ff->base = base;
    ff->size = size;
    if (path == NULL || size == 0u || base > file_size || size > file_size - base) {
        return KERR_INVAL;
    }
    ff->fp = fopen(path, "r+b");
    if (ff->fp == NULL) {
        return errno == ENOENT && create ? file_create(ff, path, file_size) : KERR_IO;
    }
    long end = -1;
    if (fseek(ff->fp, 0, SEEK_END) == 0) {
        end = ftell(ff->fp);
    }
    if (end < 0) {
        kflash_file_close(ff);
        return KERR_IO;
    }
    if ((unsigned long)end != file_size) {
        kflash_file_close(ff);
        return KERR_FORMAT;
    }
    return KERR_OK;
}

kerr_t kflash_file_close(kflash_file_t *ff)
{
    if (ff->fp == NULL) {
        return KERR_OK;
    }
    int rc = fclose(ff->fp);
    ff->fp = NULL;
    return rc == 0 ? KERR_OK : KERR_IO;
}

/* RAM backend for kflash (the strict NOR model's storage). */
#include <string.h>

#include "keel/flash_ram.h"

static bool ram_in_range(const kflash_ram_t *r, uint32_t off, uint32_t len)
{
    return off <= r->size && len <= r->size - off;
}

static kerr_t ram_read(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    const kflash_ram_t *r = ctx;

    if (!ram_in_range(r, off, len)) {
        return KERR_IO;
    }
    memcpy(buf, r->mem + off, len);
    return KERR_OK;
}

static kerr_t ram_write(void *ctx, uint32_t off, const void *buf, uint32_t len)
{
    kflash_ram_t *r = ctx;

    if (!ram_in_range(r, off, len)) {
        return KERR_IO;
    }
    memcpy(r->mem + off, buf, len);
    return KERR_OK;
}

const kflash_backend_t kflash_ram_backend = {ram_read, ram_write};

void kflash_ram_init(kflash_ram_t *r, uint8_t *mem, uint32_t size, bool erased)
{
    r->mem = mem;
    r->size = size;
    if (erased) {
        memset(mem, 0xFF, size);
    }
}

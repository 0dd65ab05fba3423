/* appelf: see appelf.h. */
#include "appelf.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keel/board.h"
#include "keel/kcrypto.h"

/* An app ELF larger than this cannot be a 1 MiB app plus symbols; refuse before reading it. */
#define APPELF_FILE_MAX (64u * 1024u * 1024u)
/* More loadable segments than this is not something a linker script for Keel produces. */
#define APPELF_SEG_MAX 64u

typedef struct seg {
    uint32_t paddr, offset, filesz;
} seg_t;

static kerr_t why_set(char *why, size_t cap, kerr_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static kerr_t why_set(char *why, size_t cap, kerr_t err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return err;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Decode program header i field by field (the file is little-endian whatever the host is). */
static void read_phdr(const uint8_t *p, Elf32_Phdr *ph)
{
    ph->p_type = rd32(p + offsetof(Elf32_Phdr, p_type));
    ph->p_offset = rd32(p + offsetof(Elf32_Phdr, p_offset));
    ph->p_vaddr = rd32(p + offsetof(Elf32_Phdr, p_vaddr));
    ph->p_paddr = rd32(p + offsetof(Elf32_Phdr, p_paddr));
    ph->p_filesz = rd32(p + offsetof(Elf32_Phdr, p_filesz));
    ph->p_memsz = rd32(p + offsetof(Elf32_Phdr, p_memsz));
}

static int seg_cmp(const void *a, const void *b)
{
    const seg_t *x = a, *y = b;
    return x->paddr < y->paddr ? -1 : x->paddr > y->paddr;
}

/* Check the ELF header; on success the program header table is known to lie inside the file. */
static kerr_t check_ehdr(const uint8_t *elf, size_t len, uint32_t *out_phoff, uint16_t *out_phnum,
                         char *why, size_t cap)
{
    if (len < SELFMAG || memcmp(elf, ELFMAG, SELFMAG) != 0)
        return why_set(why, cap, KERR_IMG_ELF, "not an ELF file");
    if (len < sizeof(Elf32_Ehdr))
        return why_set(why, cap, KERR_IMG_ELF, "truncated ELF header (%zu bytes)", len);
    if (elf[EI_CLASS] != ELFCLASS32)
        return why_set(why, cap, KERR_IMG_ELF, "not a 32-bit ELF (an app for Cortex-M33 is ELF32)");
    if (elf[EI_DATA] != ELFDATA2LSB)
        return why_set(why, cap, KERR_IMG_ELF, "not a little-endian ELF");
    uint16_t type = rd16(elf + offsetof(Elf32_Ehdr, e_type));
    uint16_t machine = rd16(elf + offsetof(Elf32_Ehdr, e_machine));
    if (machine != EM_ARM)
        return why_set(why, cap, KERR_IMG_ELF,
                       "ELF machine is %u, not ARM (%u): build it with arm-none-eabi-gcc",
                       machine, EM_ARM);
    if (type != ET_EXEC)
        return why_set(why, cap, KERR_IMG_ELF,
                       "not an executable ELF (type %u): link it, don't install an object file",
                       type);
    uint32_t phoff = rd32(elf + offsetof(Elf32_Ehdr, e_phoff));
    uint16_t phentsize = rd16(elf + offsetof(Elf32_Ehdr, e_phentsize));
    uint16_t phnum = rd16(elf + offsetof(Elf32_Ehdr, e_phnum));
    if (phnum == 0)
        return why_set(why, cap, KERR_IMG_ELF, "no program headers: nothing to load");
    if (phentsize != sizeof(Elf32_Phdr))
        return why_set(why, cap, KERR_IMG_ELF, "program header size %u, expected %zu", phentsize,
                       sizeof(Elf32_Phdr));
    if (phoff > len || (uint64_t)phnum * phentsize > len - phoff)
        return why_set(why, cap, KERR_IMG_ELF,
                       "truncated: the program header table (%u entries at offset %lu) lies "
                       "outside the file (%zu bytes)",
                       phnum, (unsigned long)phoff, len);
    *out_phoff = phoff;
    *out_phnum = phnum;
    return KERR_OK;
}

/*
 * The loadable bytes of an app are its PT_LOAD segments with file content, placed at their load
 * (physical) address: .data's LMA sits after .text in the code region even though it runs from
 * RAM, which is why p_paddr and not p_vaddr is the address that counts.
 */
static kerr_t collect_segments(const uint8_t *elf, size_t len, uint32_t phoff, uint16_t phnum,
                               const appelf_target_t *t, seg_t *segs, unsigned *out_n, char *why,
                               size_t cap)
{
    uint64_t region_end = (uint64_t)t->code_base + t->code_size;
    unsigned n = 0;
    for (unsigned i = 0; i < phnum; i++) {
        Elf32_Phdr ph;
        read_phdr(elf + phoff + (size_t)i * sizeof(Elf32_Phdr), &ph);
        if (ph.p_type != PT_LOAD || ph.p_filesz == 0)
            continue;
        if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
            return why_set(why, cap, KERR_IMG_ELF,
                           "truncated: segment %u (%lu bytes at file offset %lu) lies outside "
                           "the file (%zu bytes)",
                           i, (unsigned long)ph.p_filesz, (unsigned long)ph.p_offset, len);
        uint64_t end = (uint64_t)ph.p_paddr + ph.p_filesz;
        if (ph.p_paddr < t->code_base || end > region_end)
            return why_set(why, cap, KERR_IMG_ELF,
                           "segment %u loads at 0x%08lx..0x%08llx, outside the app code region "
                           "0x%08lx..0x%08llx: link with the Keel SDK linker script",
                           i, (unsigned long)ph.p_paddr, (unsigned long long)end,
                           (unsigned long)t->code_base, (unsigned long long)region_end);
        if (n == APPELF_SEG_MAX)
            return why_set(why, cap, KERR_IMG_ELF, "more than %u loadable segments",
                           APPELF_SEG_MAX);
        segs[n++] = (seg_t){ph.p_paddr, ph.p_offset, ph.p_filesz};
    }
    if (n == 0)
        return why_set(why, cap, KERR_IMG_ELF, "no loadable segment with content");
    qsort(segs, n, sizeof segs[0], seg_cmp);
    for (unsigned i = 1; i < n; i++)
        if ((uint64_t)segs[i - 1].paddr + segs[i - 1].filesz > segs[i].paddr)
            return why_set(why, cap, KERR_IMG_ELF, "segments overlap at 0x%08lx",
                           (unsigned long)segs[i].paddr);
    if (segs[0].paddr != t->code_base)
        return why_set(why, cap, KERR_IMG_ELF,
                       "the image starts at 0x%08lx, not at the app code region base 0x%08lx "
                       "where the vector table must be: link with the Keel SDK linker script",
                       (unsigned long)segs[0].paddr, (unsigned long)t->code_base);
    *out_n = n;
    return KERR_OK;
}

/* Word 0 is the initial SP (a full-descending stack may start at the end of RAM), word 1 the reset
 * handler (Thumb bit set). */
static kerr_t check_vectors(const uint8_t *img, uint32_t size, const appelf_target_t *t,
                            char *why, size_t cap)
{
    if (size < 8)
        return why_set(why, cap, KERR_IMG_ELF,
                       "the image (%lu bytes) is too small to hold a vector table",
                       (unsigned long)size);
    uint32_t sp = rd32(img), reset = rd32(img + 4);
    if (sp <= t->ram_base || (uint64_t)sp > (uint64_t)t->ram_base + t->ram_size || (sp & 7u))
        return why_set(why, cap, KERR_IMG_ELF,
                       "vector table: initial SP 0x%08lx is not an 8-byte aligned address in "
                       "app RAM 0x%08lx..0x%08llx: link with the Keel SDK linker script",
                       (unsigned long)sp, (unsigned long)t->ram_base,
                       (unsigned long long)t->ram_base + t->ram_size);
    if (!(reset & 1u) || (reset & ~1u) < t->code_base || (reset & ~1u) >= t->code_base + size)
        return why_set(why, cap, KERR_IMG_ELF,
                       "vector table: reset vector 0x%08lx is not a Thumb address inside the "
                       "image 0x%08lx..0x%08llx: link with the Keel SDK linker script",
                       (unsigned long)reset, (unsigned long)t->code_base,
                       (unsigned long long)t->code_base + size);
    return KERR_OK;
}

kerr_t appelf_from_memory(const uint8_t *elf, size_t len, const appelf_target_t *t,
                          appelf_image_t *out, char *why, size_t cap)
{
    uint32_t phoff;
    uint16_t phnum;
    seg_t segs[APPELF_SEG_MAX];
    unsigned n = 0;
    kerr_t err = check_ehdr(elf, len, &phoff, &phnum, why, cap);
    if (err == KERR_OK)
        err = collect_segments(elf, len, phoff, phnum, t, segs, &n, why, cap);
    if (err != KERR_OK)
        return err;

    uint32_t size = segs[n - 1].paddr + segs[n - 1].filesz - t->code_base;
    uint8_t *img = malloc(size);
    if (img == NULL)
        return why_set(why, cap, KERR_NOMEM, "out of memory for a %lu-byte image",
                       (unsigned long)size);
    memset(img, 0xFF, size);
    for (unsigned i = 0; i < n; i++)
        memcpy(img + (segs[i].paddr - t->code_base), elf + segs[i].offset, segs[i].filesz);
    err = check_vectors(img, size, t, why, cap);
    if (err != KERR_OK) {
        free(img);
        return err;
    }
    *out = (appelf_image_t){img, size, t->code_base};
    return KERR_OK;
}

kerr_t appelf_load(const char *path, const appelf_target_t *t, appelf_image_t *out, char *why,
                   size_t cap)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return why_set(why, cap, KERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return why_set(why, cap, KERR_IO, "not a regular file");
    }
    if ((uint64_t)st.st_size > APPELF_FILE_MAX) {
        fclose(fp);
        return why_set(why, cap, KERR_IMG_ELF, "%lld bytes is too large for an app ELF",
                       (long long)st.st_size);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL) {
        fclose(fp);
        return why_set(why, cap, KERR_NOMEM, "out of memory reading %zu bytes", len);
    }
    size_t got = fread(buf, 1, len, fp);
    int rerr = ferror(fp);
    fclose(fp);
    kerr_t err = (got != len || rerr) ? why_set(why, cap, KERR_IO, "read failed")
                                      : appelf_from_memory(buf, len, t, out, why, cap);
    free(buf);
    return err;
}

void appelf_free(appelf_image_t *img)
{
    free(img->bytes);
    img->bytes = NULL;
    img->size = 0;
}

appelf_target_t appelf_target(const kboard_t *b)
{
    return (appelf_target_t){b->app_code.base, b->app_code.size, b->app_ram.base, b->app_ram.size};
}

void appelf_sha256(const appelf_image_t *img, uint8_t out[32])
{
    kc_sha256(img->bytes, img->size, out);
}

kerr_t appelf_identify(const uint8_t *elf, size_t len, uint8_t out_sha[32], uint32_t *out_size,
                       char *why, size_t cap)
{
    /* No board here (keeld knows none): every board's app image starts with the vector table at
     * the base of its code region, so the ELF's first loadable byte is that base. */
    uint32_t phoff, base = UINT32_MAX;
    uint16_t phnum;
    kerr_t err = check_ehdr(elf, len, &phoff, &phnum, why, cap);
    if (err != KERR_OK)
        return err;
    for (unsigned i = 0; i < phnum; i++) {
        Elf32_Phdr ph;
        read_phdr(elf + phoff + (size_t)i * sizeof(Elf32_Phdr), &ph);
        if (ph.p_type == PT_LOAD && ph.p_filesz != 0 && ph.p_paddr < base)
            base = ph.p_paddr;
    }
    const appelf_target_t t = {base, APPELF_CODE_MAX, 0u, UINT32_MAX};
    appelf_image_t img = {0};
    err = appelf_from_memory(elf, len, &t, &img, why, cap);
    if (err != KERR_OK)
        return err;
    appelf_sha256(&img, out_sha);
    *out_size = img.size;
    appelf_free(&img);
    return KERR_OK;
}

/* Installed-app header: encoding, validation, and the version triple. */
#include <string.h>

#include "keel/app_image.h"
#include "keel/crash.h"
#include "keel/crc32.h"

#include "le.h"

#define VER_MAJOR_MAX 255u
#define VER_MINOR_MAX 255u
#define VER_PATCH_MAX 65535u
#define LOAD_ALIGN 128u /* vector table alignment the app's image must start on */

uint32_t kapp_version_pack(uint32_t major, uint32_t minor, uint32_t patch)
{
    major = major > VER_MAJOR_MAX ? VER_MAJOR_MAX : major;
    minor = minor > VER_MINOR_MAX ? VER_MINOR_MAX : minor;
    patch = patch > VER_PATCH_MAX ? VER_PATCH_MAX : patch;
    return major << 24 | minor << 16 | patch;
}

/* Parse a decimal number of at most max from *sp, advancing it. Digits only, no sign. */
static kerr_t parse_part(const char **sp, uint32_t max, uint32_t *out)
{
    const char *s = *sp;
    uint32_t v = 0;
    uint32_t digits = 0;

    while (*s >= '0' && *s <= '9') {
        v = v * 10u + (uint32_t)(*s - '0');
        if (v > max) {
            return KERR_INVAL;
        }
        s++;
        digits++;
    }
    if (digits == 0u) {
        return KERR_INVAL;
    }
    *sp = s;
    *out = v;
    return KERR_OK;
}

kerr_t kapp_version_parse(const char *s, uint32_t *out_version)
{
    uint32_t part[3];
    static const uint32_t max[3] = {VER_MAJOR_MAX, VER_MINOR_MAX, VER_PATCH_MAX};

    if (s == NULL || out_version == NULL) {
        return KERR_INVAL;
    }
    for (int i = 0; i < 3; i++) {
        if (parse_part(&s, max[i], &part[i]) != KERR_OK) {
            return KERR_INVAL;
        }
        if (*s != (i < 2 ? '.' : '\0')) {
            return KERR_INVAL;
        }
        s++;
    }
    *out_version = kapp_version_pack(part[0], part[1], part[2]);
    return KERR_OK;
}

/* Append the decimal form of v at buf[*len], keeping room for the NUL. */
static void put_dec(char *buf, size_t cap, size_t *len, uint32_t v)
{
    char tmp[10];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0 && *len + 1u < cap) {
        buf[(*len)++] = tmp[--n];
    }
}

void kapp_version_format(uint32_t version, char *buf, size_t cap)
{
    size_t len = 0;

    if (buf == NULL || cap == 0u) {
        return;
    }
    put_dec(buf, cap, &len, version >> 24);
    if (len + 1u < cap) {
        buf[len++] = '.';
    }
    put_dec(buf, cap, &len, (version >> 16) & 0xFFu);
    if (len + 1u < cap) {
        buf[len++] = '.';
    }
    put_dec(buf, cap, &len, version & 0xFFFFu);
    buf[len] = '\0';
}

void kapp_hdr_encode(const kapp_hdr_t *h, uint8_t out[KAPP_HDR_SIZE])
{
    memset(out, 0, KAPP_HDR_SIZE);
    le_put32(out + KAPP_OFF_MAGIC, KAPP_MAGIC);
    le_put16(out + KAPP_OFF_HDR_VERSION, KAPP_HDR_VERSION);
    le_put16(out + KAPP_OFF_HDR_SIZE, KAPP_HDR_SIZE);
    le_put32(out + KAPP_OFF_IMAGE_SIZE, h->image_size);
    le_put32(out + KAPP_OFF_LOAD_ADDR, h->load_addr);
    le_put32(out + KAPP_OFF_VERSION, h->version);
    le_put32(out + KAPP_OFF_BACKOFF_MIN, h->backoff_min_ms);
    le_put32(out + KAPP_OFF_BACKOFF_MAX, h->backoff_max_ms);
    le_put32(out + KAPP_OFF_STACK_DUMP, h->stack_dump);
    memcpy(out + KAPP_OFF_SHA256, h->sha256, sizeof(h->sha256));
    /* The name stops at its first NUL; the rest of the field stays zero. */
    for (size_t i = 0; i < KAPP_NAME_MAX && h->name[i] != '\0'; i++) {
        out[KAPP_OFF_NAME + i] = (uint8_t)h->name[i];
    }
    le_put32(out + KAPP_OFF_CRC, kcrc32(0, out, KAPP_OFF_CRC));
}

/*
 * Policy fields are checked too: the microvisor sizes its crash-report stack copy from
 * stack_dump and doubles backoff up to backoff_max, so a header the CRC vouches for but an
 * installer filled wrongly is refused rather than trusted.
 */
kerr_t kapp_hdr_decode(const uint8_t in[KAPP_HDR_SIZE], uint32_t region_base,
                       uint32_t region_size, kapp_hdr_t *out)
{
    if (le_all_ff(in, KAPP_HDR_SIZE)) {
        return KERR_IMG_EMPTY;
    }
    if (le_get32(in + KAPP_OFF_MAGIC) != KAPP_MAGIC ||
        le_get16(in + KAPP_OFF_HDR_VERSION) != KAPP_HDR_VERSION ||
        le_get16(in + KAPP_OFF_HDR_SIZE) != KAPP_HDR_SIZE ||
        le_get32(in + KAPP_OFF_CRC) != kcrc32(0, in, KAPP_OFF_CRC)) {
        return KERR_IMG_HEADER;
    }

    kapp_hdr_t h;
    memset(&h, 0, sizeof(h));
    h.image_size = le_get32(in + KAPP_OFF_IMAGE_SIZE);
    h.load_addr = le_get32(in + KAPP_OFF_LOAD_ADDR);
    h.version = le_get32(in + KAPP_OFF_VERSION);
    h.backoff_min_ms = le_get32(in + KAPP_OFF_BACKOFF_MIN);
    h.backoff_max_ms = le_get32(in + KAPP_OFF_BACKOFF_MAX);
    h.stack_dump = le_get32(in + KAPP_OFF_STACK_DUMP);
    memcpy(h.sha256, in + KAPP_OFF_SHA256, sizeof(h.sha256));
    memcpy(h.name, in + KAPP_OFF_NAME, KAPP_NAME_MAX);

    if (h.stack_dump > KCRASH_STACK_MAX || h.backoff_min_ms > h.backoff_max_ms) {
        return KERR_IMG_HEADER;
    }
    if (h.image_size == 0u || h.load_addr < region_base ||
        h.load_addr - region_base >= region_size ||
        h.image_size > region_size - (h.load_addr - region_base) ||
        (h.load_addr - region_base) % LOAD_ALIGN != 0u) {
        return KERR_IMG_SIZE;
    }
    *out = h;
    return KERR_OK;
}

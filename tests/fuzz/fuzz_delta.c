/*
 * Delta patches (core/src/delta_dec.c): the body arrives from keeld and is decoded at staging
 * time against the app in internal flash. Input: one selector byte, then the patch.
 *   bit 0: rewrite the header's old_len/old_crc/body_len to match the fixed old image and the
 *          input, so mutations get past the base check into the range-coded body;
 *   bits 1-3: piece size of the feed (1, 2, 3, 7, 16, 61, 255 bytes, or all at once);
 *   bit 4: validate only (no page callback).
 *   bit 5: feed with kdlt_dec_feed_page (a page per call, as staging does).
 * The old image is read only inside [0, old_len) and the page buffer (exact size) only written
 * within its page; a decode that succeeds must have produced new_len bytes with the header's CRC.
 *
 * Seeds: any patch from kdlt_encode() against fuzz_delta_old() (fuzz_seeds.c: encode the old
 * image with a constant changed, with bytes inserted, and against an unrelated image).
 */
#include <stdlib.h>
#include <string.h>

#include "keel/crc32.h"
#include "keel/delta.h"

#define OLD_LEN 6000u
#define PAGE 512u
#define NEW_CAP (64u * 1024u)

/* A fixed Thumb-like old image with branches and pointers (base 0x00202000). */
const uint8_t *fuzz_delta_old(uint32_t *len);
const uint8_t *fuzz_delta_old(uint32_t *len)
{
    static uint8_t old[OLD_LEN];
    static int made;
    if (!made) {
        uint32_t s = 0x12345678u;
        for (uint32_t i = 0; i < OLD_LEN; i += 4) {
            s ^= s << 13, s ^= s >> 17, s ^= s << 5;
            uint32_t w = (i % 64u == 60u) ? 0x00202001u + (s % OLD_LEN)
                         : (i % 32u == 8u) ? 0xF800F000u | (s & 0x07FF03FFu) : s & 0x37FF37FFu;
            for (int k = 0; k < 4; k++)
                old[i + k] = (uint8_t)(w >> (8 * k));
        }
        made = 1;
    }
    *len = OLD_LEN;
    return old;
}

typedef struct {
    uint32_t pages, bytes;
} sink_t;

static kerr_t rd(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    uint32_t n;
    const uint8_t *old = fuzz_delta_old(&n);
    if (len == 0 || off >= n || len > n - off)
        abort();
    memcpy(buf, old + off, len);
    return KERR_OK;
}

static kerr_t pg(void *ctx, uint32_t index, const uint8_t *page, uint32_t len)
{
    sink_t *s = ctx;
    if (index != s->pages || len == 0 || len > PAGE)
        abort();
    s->pages++;
    s->bytes += len;
    return KERR_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t pieces[8] = { 1, 2, 3, 7, 16, 61, 255, (size_t)-1 };
    static uint8_t in[NEW_CAP];
    static kdlt_dec_t d;
    if (size < 1 || size - 1 > sizeof(in))
        return 0;
    uint8_t sel = data[0];
    size_t len = size - 1;
    memcpy(in, data + 1, len);
    uint32_t on;
    const uint8_t *old = fuzz_delta_old(&on);
    if ((sel & 1u) && len >= KDLT_HDR_SIZE) {
        uint32_t crc = kcrc32(0, old, on), body = (uint32_t)(len - KDLT_HDR_SIZE);
        for (int k = 0; k < 4; k++) {
            in[KDLT_OFF_OLD_LEN + k] = (uint8_t)(on >> (8 * k));
            in[KDLT_OFF_OLD_CRC + k] = (uint8_t)(crc >> (8 * k));
            in[KDLT_OFF_BODY_LEN + k] = (uint8_t)(body >> (8 * k));
        }
    }
    uint8_t *page = malloc(PAGE); /* exact size: ASan sees any write past it */
    sink_t s = { 0, 0 };
    kdlt_dec_cfg_t cfg = { rd, (sel & 16u) ? NULL : pg, &s, page, PAGE, on, NEW_CAP };
    if (!page || kdlt_dec_init(&d, &cfg) != KERR_OK)
        abort();
    size_t piece = pieces[(sel >> 1) & 7u];
    kerr_t err = KERR_OK;
    for (size_t at = 0; at < len && !err; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        if (!(sel & 32u)) {
            err = kdlt_dec_feed(&d, in + at, n);
            continue;
        }
        /* a page per call, as staging decodes: every byte taken once, a page per pause */
        for (size_t off = 0; !err;) {
            size_t used = 0;
            bool pg_done = false;
            uint32_t before = s.pages;
            err = kdlt_dec_feed_page(&d, in + at + off, n - off, &used, &pg_done);
            if (used > n - off || (!err && cfg.page && s.pages != before + (pg_done ? 1u : 0u)))
                abort();
            off += used;
            if (off == n && !pg_done)
                break;
        }
    }
    if (!err && kdlt_dec_finish(&d) == KERR_OK && !(sel & 16u)) {
        kdlt_hdr_t h;
        if (kdlt_parse_header(in, len, &h) != KERR_OK || s.bytes != h.new_len)
            abort();
    }
    free(page);
    return 0;
}

/*
 * Binary delta codec (docs/delta.md): one format, a host encoder and a streaming device decoder.
 *
 * A patch turns an old image (what the device runs, readable in place) into a new one:
 *
 *   +----------------------+  offset 0
 *   | header (32 B)        |  "KDLT", version, lengths, CRC-32 of old and new, base, body_len
 *   +----------------------+
 *   | body (body_len B)    |  one adaptive binary range-coded stream:
 *   +----------------------+    address map  (old -> new offset shifts, <= KDLT_MAP_MAX entries)
 *                               ops, repeated until the new image is complete:
 *                                 add   n  : n bytes = predict(old[o..o+n)) + diff (zero runs)
 *                                 extra m  : m literal new bytes
 *                                 seek  s  : o += s
 *
 * bsdiff-style copy-with-add-diff, where the "old" bytes are first *predicted*: a Thumb-2 BL or
 * B.W whose target lies in the old image, or an aligned 32-bit word that points into it, is
 * re-encoded for its new position through the address map. When code moves, the diff bytes are
 * then zero almost everywhere and cost next to nothing in the range coder.
 *
 * The decoder takes the patch in pieces of any size, never allocates, reads the old image only
 * inside [0, old_len) (checked against the caller's old_cap), writes only the caller's page
 * buffer, and hands each full page to a callback. It checks the old image's CRC before it
 * emits anything (KERR_DLT_BASE) and the result's CRC at the end (KERR_DLT_RESULT); run it once
 * with no page callback to validate a patch completely before writing anything.
 *
 * persisted: the header layout and the body grammar never change within KDLT_VERSION.
 */
#ifndef KEEL_DELTA_H
#define KEEL_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

#define KDLT_MAGIC 0x544C444Bu /* "KDLT" */
#define KDLT_VERSION 1u
#define KDLT_HDR_SIZE 32u
#define KDLT_MAP_MAX 160u      /* address map entries the decoder holds */
#define KDLT_IN_BUF 64u        /* decoder input staging (bytes) */
#define KDLT_OLD_BUF 64u       /* decoder read-ahead of the old image (bytes) */

/* Model sizes (probabilities of the range coder); shared by encoder and decoder. */
#define KDLT_INT_CTX 5u        /* map, add, extra, seek, zero-run */
#define KDLT_INT_PROBS 97u     /* 64 (bit-length tree) + 33 (first mantissa bit per length) */

/* Header fields (offsets in the 32-byte header, little-endian). */
#define KDLT_OFF_MAGIC 0u
#define KDLT_OFF_VERSION 4u    /* u8 */
#define KDLT_OFF_FLAGS 5u      /* u8, 0 */
#define KDLT_OFF_HDR_SIZE 6u   /* u16, 32 */
#define KDLT_OFF_OLD_LEN 8u
#define KDLT_OFF_NEW_LEN 12u
#define KDLT_OFF_OLD_CRC 16u   /* CRC-32 (crc32.h) of old[0, old_len) */
#define KDLT_OFF_NEW_CRC 20u   /* CRC-32 of the result */
#define KDLT_OFF_BASE 24u      /* address of offset 0 of both images (pointer prediction) */
#define KDLT_OFF_BODY_LEN 28u

/* Address map: old offsets [start, next start) move by delta; a hole predicts nothing. */
#define KDLT_MAP_HOLE INT32_MIN
typedef struct {
    uint32_t start;
    int32_t delta;
} kdlt_seg_t;

typedef struct {
    const kdlt_seg_t *seg;
    uint32_t n;
    uint32_t old_len;
    uint32_t base;
} kdlt_map_t;

/*
 * The prediction both sides share: the old bytes o[0..n) (n = min(4, bytes left in the add)),
 * copied from old offset opos to new offset npos, are written to out. Returns how many bytes it
 * predicted (4 for a re-encoded branch or pointer, else 1: the old byte unchanged).
 */
unsigned kdlt_predict(const kdlt_map_t *map, uint32_t opos, uint32_t npos, const uint8_t *o,
                      unsigned n, uint8_t out[4]);

/* ---- decoder (device and host) ---- */

/* Reads len bytes of the old image at off (always inside [0, old_len)). */
typedef kerr_t (*kdlt_read_fn)(void *ctx, uint32_t off, void *buf, uint32_t len);
/* A page of the result: index, bytes (page_size, fewer for the last page). */
typedef kerr_t (*kdlt_page_fn)(void *ctx, uint32_t index, const uint8_t *page, uint32_t len);

typedef struct {
    kdlt_read_fn read_old;
    kdlt_page_fn page;       /* NULL: validate only */
    void *ctx;
    uint8_t *page_buf;
    uint32_t page_size;      /* >= 4 */
    uint32_t old_cap;        /* readable old bytes: a larger header old_len is refused */
    uint32_t new_cap;        /* largest result accepted */
} kdlt_dec_cfg_t;

typedef struct {
    kdlt_dec_cfg_t cfg;
    kerr_t err;              /* sticky */
    uint8_t state, overrun, pend_n, pend_i;
    uint8_t pend[4];
    uint8_t pause, paused;   /* kdlt_dec_feed_page: stop after each page, and it did */
    /* header */
    uint32_t old_len, new_len, old_crc, new_crc, body_len;
    /* input */
    uint8_t in[KDLT_IN_BUF];
    uint32_t in_pos, in_n, body_seen; /* body bytes taken into in[] so far */
    /* range decoder */
    uint32_t range, code;
    /* stream position */
    uint32_t opos, npos, left, zrun, last_add, crc, page_fill, page_index, map_n, base;
    /* old read-ahead */
    uint8_t ob[KDLT_OLD_BUF];
    uint32_t ob_off, ob_n;
    kdlt_seg_t map[KDLT_MAP_MAX];
    uint16_t p_int[KDLT_INT_CTX][KDLT_INT_PROBS];
    uint16_t p_diff[256];
    uint16_t p_lit[2][256];
} kdlt_dec_t;

/*
 * Prepares d for a patch. Errors: KERR_INVAL (missing reader or page buffer, page_size < 4).
 */
kerr_t kdlt_dec_init(kdlt_dec_t *d, const kdlt_dec_cfg_t *cfg);

/*
 * Consumes len bytes of the patch (any split). Decodes as far as the input allows, calling the
 * page callback for every completed page. Errors (sticky; nothing more is emitted):
 * KERR_DLT_FORMAT (header), KERR_DLT_TOOBIG (old_len > old_cap or new_len > new_cap),
 * KERR_DLT_BASE (old image CRC differs: not the patch's base), KERR_DLT_CORRUPT (stream out of
 * bounds or bytes past its end), KERR_DLT_RESULT (result CRC differs), and whatever read_old or
 * the page callback returned.
 */
kerr_t kdlt_dec_feed(kdlt_dec_t *d, const void *data, size_t len);

/*
 * As kdlt_dec_feed, but returns right after the next completed page (its callback called), so a
 * caller can decode one page per turn and do other work between pages: *used is how many of the
 * len bytes it took (call again with the rest; len 0 goes on with what it holds), *page whether
 * a page was completed. A call that takes all of len and completes no page needs more input (or,
 * with the whole patch fed, the decoding is over: kdlt_dec_finish says how). Same errors.
 */
kerr_t kdlt_dec_feed_page(kdlt_dec_t *d, const void *data, size_t len, size_t *used, bool *page);

/* After the last piece: KERR_OK if the result is complete and verified, else the reason
 * (KERR_DLT_TRUNCATED when the patch ended early). */
kerr_t kdlt_dec_finish(const kdlt_dec_t *d);

/* Result length, once the header was read (0 before). */
uint32_t kdlt_dec_new_len(const kdlt_dec_t *d);

/* ---- encoder (host only; allocates) ---- */

typedef struct {
    uint32_t base;           /* address of offset 0 (both images): pointers are recognized */
    const kdlt_seg_t *map;   /* optional old->new map (e.g. from the ELFs); NULL: derived */
    uint32_t map_n;
} kdlt_enc_opts_t;

/*
 * Makes a patch from old to new. *out is malloc'ed (free it). The encoder tries the derived
 * address map (or opts->map), and none, and keeps the smaller patch.
 * Errors: KERR_INVAL, KERR_NOMEM (allocation failed).
 */
kerr_t kdlt_encode(const uint8_t *old, uint32_t old_len, const uint8_t *new_, uint32_t new_len,
                   const kdlt_enc_opts_t *opts, uint8_t **out, size_t *out_len);

/* Parses a patch header (keel bundle inspect). Errors: KERR_DLT_FORMAT. */
typedef struct {
    uint32_t old_len, new_len, old_crc, new_crc, base, body_len;
} kdlt_hdr_t;
kerr_t kdlt_parse_header(const uint8_t *p, size_t len, kdlt_hdr_t *out);

#endif /* KEEL_DELTA_H */

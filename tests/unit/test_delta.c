/*
 * The delta codec (core/src/delta*.c, docs/delta.md): round trips fed in pieces of every size,
 * pointer-aware prediction on synthetic Thumb-2 code whose functions move, and refusal of
 * wrong bases, truncations, bit flips and random mutations (ASan/UBSan watch every read of
 * the old image and every write of the page buffer, both allocated to their exact size).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/crc32.h"
#include "keel/delta.h"
#include "unit_util.h"

#define BASE 0x00202000u
#define PAGE 1024u

/* ---- a decoding harness: exact-size old copy and page buffer, counts pages ---- */

typedef struct {
    const uint8_t *old;
    uint32_t old_len;
    uint8_t *out;     /* result, new_cap bytes */
    uint32_t out_cap, pages, got;
    uint32_t fail_page; /* 1-based page index at which the callback fails; 0 = never */
} sink_t;

static kerr_t rd(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    sink_t *s = ctx;
    assert_true(len > 0 && off < s->old_len && len <= s->old_len - off);
    memcpy(buf, s->old + off, len);
    return KERR_OK;
}

static kerr_t pg(void *ctx, uint32_t index, const uint8_t *page, uint32_t len)
{
    sink_t *s = ctx;
    assert_int_equal(index, s->pages);
    assert_true(len > 0 && len <= PAGE && (size_t)index * PAGE + len <= s->out_cap);
    if (s->fail_page && s->pages + 1 == s->fail_page)
        return KERR_IO;
    memcpy(s->out + (size_t)index * PAGE, page, len);
    s->pages++;
    s->got = index * PAGE + len;
    return KERR_OK;
}

/* Feed one piece with kdlt_dec_feed_page, a page per call (as staging does, one per turn): each
 * call that says it completed a page completed exactly one. */
static kerr_t feed_by_page(kdlt_dec_t *d, const sink_t *s, const uint8_t *piece, size_t n)
{
    static const uint8_t none[1];
    for (;;) {
        size_t used = 0;
        bool page = false;
        uint32_t before = s->pages;
        kerr_t err = kdlt_dec_feed_page(d, n ? piece : none, n, &used, &page);
        if (err)
            return err;
        assert_true(used <= n);
        if (d->cfg.page)
            assert_int_equal(s->pages, before + (page ? 1u : 0u));
        piece += used, n -= used;
        if (n == 0 && !page)
            return KERR_OK; /* took it all and needs more */
    }
}

static int by_page; /* decode() feeds with kdlt_dec_feed_page */

/* Decodes patch against old in pieces from *seed (0 = one piece; 1 = byte by byte). */
static kerr_t decode(const uint8_t *old, uint32_t old_len, const uint8_t *patch, size_t n,
                     uint8_t *out, uint32_t out_cap, int validate_only, uint32_t seed,
                     sink_t *s_out)
{
    uint8_t *oldc = malloc(old_len ? old_len : 1), *pbuf = malloc(PAGE);
    kdlt_dec_t *d = malloc(sizeof(*d));
    assert_non_null(oldc), assert_non_null(pbuf), assert_non_null(d);
    memcpy(oldc, old, old_len);
    sink_t s = { oldc, old_len, out, out_cap, 0, 0, 0 };
    if (s_out)
        s.fail_page = s_out->fail_page;
    kdlt_dec_cfg_t cfg = { rd, validate_only ? NULL : pg, &s, pbuf, PAGE, old_len, out_cap };
    assert_int_equal(kdlt_dec_init(d, &cfg), KERR_OK);
    kerr_t err = KERR_OK;
    for (size_t at = 0; at < n && !err;) {
        size_t piece = n - at;
        if (seed == 1)
            piece = 1;
        else if (seed > 1)
            piece = 1 + xs32(&seed) % (piece < 300 ? piece : 300);
        err = by_page ? feed_by_page(d, &s, patch + at, piece) : kdlt_dec_feed(d, patch + at, piece);
        at += piece;
    }
    if (!err)
        err = kdlt_dec_finish(d);
    if (s_out)
        *s_out = s;
    free(oldc), free(pbuf), free(d);
    return err;
}

static uint8_t *encode(const uint8_t *old, uint32_t on, const uint8_t *nw, uint32_t nn,
                       const kdlt_seg_t *map, uint32_t map_n, size_t *n)
{
    kdlt_enc_opts_t o = { BASE, map, map_n };
    uint8_t *p = NULL;
    assert_int_equal(kdlt_encode(old, on, nw, nn, &o, &p, n), KERR_OK);
    assert_non_null(p);
    return p;
}

static void round_trip(const uint8_t *old, uint32_t on, const uint8_t *nw, uint32_t nn,
                       size_t *out_size)
{
    size_t n;
    uint8_t *p = encode(old, on, nw, nn, NULL, 0, &n);
    uint8_t *out = malloc(nn);
    static const uint32_t seeds[] = { 0, 1, 7, 12345 };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        sink_t s;
        memset(out, 0xA5, nn);
        s.fail_page = 0;
        assert_int_equal(decode(old, on, p, n, out, nn, 0, seeds[i], &s), KERR_OK);
        assert_int_equal(s.got, nn);
        assert_memory_equal(out, nw, nn);
        /* The same a page at a time (staging's turns): the same result. */
        by_page = 1;
        memset(out, 0xA5, nn);
        assert_int_equal(decode(old, on, p, n, out, nn, 0, seeds[i], &s), KERR_OK);
        by_page = 0;
        assert_int_equal(s.got, nn);
        assert_memory_equal(out, nw, nn);
    }
    if (out_size)
        *out_size = n;
    free(out), free(p);
}

/* ---- synthetic Thumb-2 programs whose functions move ---- */

#define NFUNC 300

typedef struct {
    uint32_t size[NFUNC + 1]; /* code halfwords per function */
    uint32_t seed[NFUNC + 1];
} prog_t;

static uint16_t enc_hw(uint32_t *s)
{
    /* a 16-bit Thumb instruction: top five bits not 0b11101/0b11110/0b11111 */
    uint16_t v;
    do
        v = (uint16_t)xs32(s);
    while ((v >> 11) >= 0x1D);
    return v;
}

static void put_bl(uint8_t *p, uint32_t at, uint32_t target)
{
    uint32_t v = target - (at + 4), s = (v >> 24) & 1u;
    uint32_t j1 = ((v >> 23) & 1u) ^ 1u ^ s, j2 = ((v >> 22) & 1u) ^ 1u ^ s;
    poke16(p, (uint16_t)(0xF000u | (s << 10) | ((v >> 12) & 0x3FFu)));
    poke16(p + 2, (uint16_t)(0xD000u | (j1 << 13) | (j2 << 11) | ((v >> 1) & 0x7FFu)));
}

/* Lays the functions out (inserting function NFUNC after function `after` when >= 0), then
 * renders code, BLs to other functions and a literal pool of function pointers. */
static uint32_t render(const prog_t *pg_, int after, uint8_t *img, uint32_t cap)
{
    uint32_t start[NFUNC + 1], order[NFUNC + 1], n = 0, at = 0;
    for (int f = 0; f < NFUNC; f++) {
        order[n++] = (uint32_t)f;
        if (f == after)
            order[n++] = NFUNC;
    }
    for (uint32_t i = 0; i < n; i++) {
        start[order[i]] = at;
        at += pg_->size[order[i]] * 2 + 16; /* code + pool of 3 words, aligned */
        at = (at + 3u) & ~3u;
    }
    assert_true(at <= cap);
    memset(img, 0xFF, cap);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t f = order[i], s = pg_->seed[f], p = start[f];
        for (uint32_t k = 0; k < pg_->size[f]; k++, p += 2) {
            uint32_t r = xs32(&s) % 10u;
            if (r == 0 && k + 1 < pg_->size[f]) {
                uint32_t callee = xs32(&s) % NFUNC;
                put_bl(img + p, p, start[callee]);
                k++, p += 2;
            } else {
                poke16(img + p, enc_hw(&s));
            }
        }
        p = (p + 3u) & ~3u;
        for (int w = 0; w < 3; w++, p += 4)
            poke32(img + p, BASE + start[xs32(&s) % NFUNC] + 1u);
    }
    return at;
}

static void make_prog(prog_t *p, uint32_t seed)
{
    for (int f = 0; f <= NFUNC; f++) {
        p->size[f] = 20 + xs32(&seed) % 200;
        p->seed[f] = xs32(&seed) | 1u;
    }
}

static void test_round_trip_edits(void **state)
{
    (void)state;
    uint32_t seed = 99;
    enum { N = 40000 };
    uint8_t *old = malloc(N), *nw = malloc(N + 600);
    for (int i = 0; i < N; i++)
        old[i] = (uint8_t)(xs32(&seed) % 7u); /* compressible, with repeats */
    for (int round = 0; round < 12; round++) {
        uint32_t nn = N;
        memcpy(nw, old, N);
        switch (round % 4) {
        case 0: /* a few bytes changed */
            for (int k = 0; k < 1 + round; k++)
                nw[xs32(&seed) % N] ^= (uint8_t)(1 + xs32(&seed) % 255);
            break;
        case 1: { /* insertion */
            uint32_t at = xs32(&seed) % N, len = 1 + xs32(&seed) % 500;
            memmove(nw + at + len, old + at, N - at);
            for (uint32_t k = 0; k < len; k++)
                nw[at + k] = (uint8_t)xs32(&seed);
            nn = N + len;
            break;
        }
        case 2: { /* deletion */
            uint32_t at = xs32(&seed) % (N / 2), len = 1 + xs32(&seed) % 3000;
            memmove(nw + at, old + at + len, N - at - len);
            nn = N - len;
            break;
        }
        default: /* all new */
            for (uint32_t k = 0; k < N; k++)
                nw[k] = (uint8_t)xs32(&seed);
            break;
        }
        round_trip(old, N, nw, nn, NULL);
    }
    /* Degenerate sizes: one byte each way, identical images. */
    round_trip(old, 1, nw, 1, NULL);
    round_trip(old, N, old, N, NULL);
    round_trip(old, 7, nw, 3000, NULL);
    free(old), free(nw);
}

/* Moving every function after an early insertion: the pointer-aware patch is a small fraction
 * of the patch without the address map, and not much more than the inserted bytes. */
static void test_moved_code(void **state)
{
    (void)state;
    prog_t *p = malloc(sizeof(*p));
    make_prog(p, 4242);
    enum { CAP = 200000 };
    uint8_t *old = malloc(CAP), *nw = malloc(CAP);
    uint32_t on = render(p, -1, old, CAP), nn = render(p, 3, nw, CAP);
    uint32_t inserted = nn - on;
    size_t aware, plain;
    round_trip(old, on, nw, nn, &aware);
    uint8_t *q = encode(old, on, nw, nn, (const kdlt_seg_t *)"", 0, &plain); /* no map */
    free(q);
    print_message("moved code: old %u new %u (+%u), patch %zu B pointer-aware, %zu B without map\n",
                  on, nn, inserted, aware, plain);
    assert_true(aware * 4 < plain);
    assert_true(aware < inserted + 400);
    /* The map can also come from the caller (e.g. the ELFs' symbols). */
    kdlt_seg_t m[2] = { { 0, 0 }, { 0, (int32_t)inserted } };
    uint32_t start4 = 0;
    for (int f = 0; f < 4; f++)
        start4 = ((start4 + p->size[f] * 2 + 16) + 3u) & ~3u;
    m[1].start = start4;
    size_t given;
    uint8_t *g = encode(old, on, nw, nn, m, 2, &given);
    uint8_t *out = malloc(nn);
    assert_int_equal(decode(old, on, g, given, out, nn, 0, 3, NULL), KERR_OK);
    assert_memory_equal(out, nw, nn);
    assert_true(given * 4 < plain);
    free(g), free(out), free(old), free(nw), free(p);
}

/* ---- refusals ---- */

typedef struct {
    uint8_t *old, *nw, *patch;
    uint32_t on, nn;
    size_t n;
} fix_t;

static void fixture(fix_t *f)
{
    prog_t *p = malloc(sizeof(*p));
    make_prog(p, 7);
    f->old = malloc(200000), f->nw = malloc(200000);
    f->on = render(p, -1, f->old, 200000);
    p->seed[17] ^= 0x1234; /* one function changed */
    f->nn = render(p, 9, f->nw, 200000);
    f->patch = encode(f->old, f->on, f->nw, f->nn, NULL, 0, &f->n);
    free(p);
}

static void unfix(fix_t *f)
{
    free(f->old), free(f->nw), free(f->patch);
}

static void test_wrong_base_and_limits(void **state)
{
    (void)state;
    fix_t f;
    fixture(&f);
    uint8_t *out = malloc(f.nn);
    sink_t s = { 0 };
    /* positive control first */
    assert_int_equal(decode(f.old, f.on, f.patch, f.n, out, f.nn, 0, 0, &s), KERR_OK);
    assert_true(s.pages > 0);
    f.old[f.on / 2] ^= 1; /* one bit of the base differs */
    s.fail_page = 0;
    assert_int_equal(decode(f.old, f.on, f.patch, f.n, out, f.nn, 0, 0, &s), KERR_DLT_BASE);
    assert_int_equal(s.pages, 0); /* refused before the first page */
    f.old[f.on / 2] ^= 1;
    /* base shorter than the patch says, result larger than the region */
    assert_int_equal(decode(f.old, f.on - 1, f.patch, f.n, out, f.nn, 0, 0, &s), KERR_DLT_TOOBIG);
    assert_int_equal(decode(f.old, f.on, f.patch, f.n, out, f.nn - 1, 0, 0, &s), KERR_DLT_TOOBIG);
    /* a page callback error stops decoding and is returned */
    s.fail_page = 2;
    assert_int_equal(decode(f.old, f.on, f.patch, f.n, out, f.nn, 0, 5, &s), KERR_IO);
    assert_int_equal(s.pages, 1);
    /* bytes after the patch */
    uint8_t *longer = malloc(f.n + 1);
    memcpy(longer, f.patch, f.n);
    longer[f.n] = 0;
    assert_int_equal(decode(f.old, f.on, longer, f.n + 1, out, f.nn, 1, 0, NULL), KERR_DLT_CORRUPT);
    /* header fields */
    memcpy(longer, f.patch, f.n);
    longer[0] ^= 1;
    assert_int_equal(decode(f.old, f.on, longer, f.n, out, f.nn, 1, 0, NULL), KERR_DLT_FORMAT);
    memcpy(longer, f.patch, f.n);
    longer[KDLT_OFF_VERSION] = 2;
    assert_int_equal(decode(f.old, f.on, longer, f.n, out, f.nn, 1, 0, NULL), KERR_DLT_FORMAT);
    kdlt_hdr_t h;
    assert_int_equal(kdlt_parse_header(f.patch, f.n, &h), KERR_OK);
    assert_int_equal(h.old_len, f.on);
    assert_int_equal(h.new_len, f.nn);
    assert_int_equal(h.base, BASE);
    assert_int_equal(h.new_crc, ref_crc32(f.nw, f.nn));
    assert_int_equal(h.body_len + KDLT_HDR_SIZE, f.n);
    free(longer), free(out);
    unfix(&f);
}

static void test_truncations(void **state)
{
    (void)state;
    fix_t f;
    fixture(&f);
    uint8_t *out = malloc(f.nn);
    for (size_t len = 0; len < f.n; len++) {
        kerr_t err = decode(f.old, f.on, f.patch, len, out, f.nn, 1, 0, NULL);
        assert_true(err == KERR_DLT_TRUNCATED || err == KERR_DLT_CORRUPT ||
                    (len < KDLT_HDR_SIZE && err == KERR_DLT_TRUNCATED));
        if (len >= KDLT_HDR_SIZE)
            assert_true(err == KERR_DLT_TRUNCATED);
    }
    free(out);
    unfix(&f);
}

/* Every bit of a small patch flipped, then random multi-byte mutations of the big one: a
 * refusal with a reason, or (a flip the coder does not depend on) exactly the right result. */
static void test_mutations(void **state)
{
    (void)state;
    fix_t f;
    fixture(&f);
    uint8_t *out = malloc(f.nn), *m = malloc(f.n);
    uint32_t refused = 0, same = 0, seed = 2026;
    for (size_t i = 0; i < f.n * 8; i += (f.n > 400 ? 3 : 1)) {
        memcpy(m, f.patch, f.n);
        m[i / 8] ^= (uint8_t)(1u << (i % 8));
        sink_t s = { 0 };
        kerr_t err = decode(f.old, f.on, m, f.n, out, f.nn, 0, 0, &s);
        if (err == KERR_OK) {
            assert_memory_equal(out, f.nw, f.nn);
            same++;
        } else {
            assert_true(err <= KERR_DLT_FORMAT && err >= KERR_DLT_TOOBIG);
            /* validate-only gives the same verdict, without writing anything */
            assert_int_equal(decode(f.old, f.on, m, f.n, out, f.nn, 1, 0, NULL), err);
            refused++;
        }
    }
    for (int r = 0; r < 800; r++) {
        memcpy(m, f.patch, f.n);
        uint32_t edits = 1 + xs32(&seed) % 6;
        for (uint32_t e = 0; e < edits; e++) {
            size_t at = KDLT_HDR_SIZE + xs32(&seed) % (f.n - KDLT_HDR_SIZE);
            m[at] = (uint8_t)xs32(&seed);
        }
        kerr_t err = decode(f.old, f.on, m, f.n, out, f.nn, 1, xs32(&seed) | 2u, NULL);
        if (err == KERR_OK)
            same++;
        else
            refused++;
    }
    print_message("mutations: %u refused, %u decoded to the right result\n", refused, same);
    assert_true(refused > 800);
    free(out), free(m);
    unfix(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_edits),
        cmocka_unit_test(test_moved_code),
        cmocka_unit_test(test_wrong_base_and_limits),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Seeded random mutation of every decoder of untrusted bytes (crash report, app header,
 * identity record). Each mutated input must give a documented error or a valid decode whose
 * fields are within their bounds; ASan/UBSan catch any out-of-bounds access on the way. Half
 * of the inputs are re-sealed with a correct CRC so the checks behind the CRC are reached.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/app_image.h"
#include "keel/crash.h"
#include "keel/identity.h"
#include "unit_util.h"

#define ROUNDS 20000
#define BASE 0x00200000u
#define REGION 0x00100000u

/* Apply 1..8 random edits: flip a bit, set a byte, or overwrite a 16-bit field with a bound. */
static void mutate(uint8_t *b, size_t n, uint32_t *s)
{
    uint32_t edits = 1u + xs32(s) % 8u;
    for (uint32_t e = 0; e < edits; e++) {
        size_t at = xs32(s) % n;
        switch (xs32(s) % 4u) {
        case 0: b[at] ^= (uint8_t)(1u << (xs32(s) % 8u)); break;
        case 1: b[at] = (uint8_t)xs32(s); break;
        case 2: b[at] = (xs32(s) & 1u) ? 0xFF : 0x00; break;
        default:
            if (at + 1 < n) {
                static const uint16_t edge[] = {0, 1, 151, 152, 255, 256, 257, 408, 409, 0xFFFF};
                poke16(b + at, edge[xs32(s) % (sizeof(edge) / sizeof(edge[0]))]);
            }
            break;
        }
    }
}

static void test_crash_decoder(void **state)
{
    (void)state;
    uint32_t s = 0xC0FFEEu;
    uint8_t good[KCRASH_ENCODED_MAX], b[KCRASH_ENCODED_MAX];
    char text[8192];
    int ok = 0, errs[5] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        kcrash_report_t r;
        memset(&r, 0, sizeof(r));
        r.reason = xs32(&s) % 12u;
        r.cfsr = xs32(&s);
        r.sfsr = xs32(&s);
        r.stack_len = (uint16_t)(xs32(&s) % (KCRASH_STACK_MAX + 1u));
        for (uint32_t i = 0; i < r.stack_len; i++) {
            r.stack[i] = (uint8_t)xs32(&s);
        }
        size_t len = 0;
        assert_int_equal(kcrash_encode(&r, good, sizeof(good), &len), KERR_OK);
        memcpy(b, good, len);
        mutate(b, len, &s);
        size_t in_len = xs32(&s) % 4u == 0u ? xs32(&s) % (len + 1u) : len;
        if (xs32(&s) & 1u) {
            size_t total = (size_t)b[6] | (size_t)b[7] << 8;
            if (total >= 4u && total <= in_len) {
                poke32(b + total - 4u, ref_crc32(b, total - 4u));
            }
        }
        kcrash_report_t out;
        kerr_t err = kcrash_decode(b, in_len, &out);
        switch (err) {
        case KERR_OK:
            ok++;
            assert_true(out.stack_len <= KCRASH_STACK_MAX);
            assert_true(kcrash_format(&out, "| ", text, sizeof(text)) < sizeof(text));
            break;
        case KERR_TRUNCATED: errs[0]++; break;
        case KERR_FORMAT: errs[1]++; break;
        case KERR_CRASH_VERSION: errs[2]++; break;
        case KERR_CRC: errs[3]++; break;
        default: fail_msg("round %d: unexpected error %d", round, (int)err);
        }
    }
    /* The mutations reach every outcome. */
    assert_true(ok > 100);
    for (int i = 0; i < 4; i++) {
        assert_true(errs[i] > 100);
    }
}

static void test_app_header_decoder(void **state)
{
    (void)state;
    uint32_t s = 0xBADC0DEu;
    int seen[4] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        kapp_hdr_t h;
        memset(&h, 0, sizeof(h));
        h.image_size = 1u + xs32(&s) % REGION;
        h.load_addr = BASE + (xs32(&s) % 64u) * 128u;
        h.backoff_min_ms = xs32(&s) % 1000u;
        h.backoff_max_ms = h.backoff_min_ms + xs32(&s) % 1000u;
        h.stack_dump = xs32(&s) % 300u;
        uint8_t b[KAPP_HDR_SIZE];
        kapp_hdr_encode(&h, b);
        mutate(b, sizeof(b), &s);
        if (xs32(&s) & 1u) {
            poke32(b + KAPP_OFF_CRC, ref_crc32(b, KAPP_OFF_CRC));
        }
        kapp_hdr_t out;
        kerr_t err = kapp_hdr_decode(b, BASE, REGION, &out);
        switch (err) {
        case KERR_OK:
            seen[0]++;
            assert_true(out.image_size > 0u && out.load_addr >= BASE);
            assert_true((uint64_t)out.load_addr + out.image_size <= (uint64_t)BASE + REGION);
            assert_true(out.stack_dump <= KCRASH_STACK_MAX);
            assert_true(out.backoff_min_ms <= out.backoff_max_ms);
            break;
        case KERR_IMG_HEADER: seen[1]++; break;
        case KERR_IMG_SIZE: seen[2]++; break;
        case KERR_IMG_EMPTY: seen[3]++; break;
        default: fail_msg("round %d: unexpected error %d", round, (int)err);
        }
    }
    assert_true(seen[0] > 100 && seen[1] > 100 && seen[2] > 100);
}

static void test_identity_decoder(void **state)
{
    (void)state;
    uint32_t s = 0x1D1Du;
    int seen[4] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        kident_t id;
        memset(&id, 0, sizeof(id));
        size_t n = 1u + xs32(&s) % KIDENT_ID_MAX;
        for (size_t i = 0; i < n; i++) {
            id.id[i] = "abcXYZ019._-"[xs32(&s) % 12u];
        }
        uint8_t b[KIDENT_SIZE];
        assert_int_equal(kident_encode(&id, b), KERR_OK);
        mutate(b, sizeof(b), &s);
        if (xs32(&s) & 1u) {
            poke32(b + 124, ref_crc32(b, 124));
        }
        kident_t out;
        kerr_t err = kident_decode(b, &out);
        switch (err) {
        case KERR_OK:
            seen[0]++;
            assert_int_equal(kident_check_id(out.id), KERR_OK);
            break;
        case KERR_FORMAT: seen[1]++; break;
        case KERR_CRC: seen[2]++; break;
        case KERR_INVAL: seen[3]++; break;
        default: fail_msg("round %d: unexpected error %d", round, (int)err);
        }
    }
    for (int i = 0; i < 4; i++) {
        assert_true(seen[i] > 100);
    }
}

/* Fully random bytes of random lengths, including lengths around the format's bounds. */
static void test_random_bytes(void **state)
{
    (void)state;
    uint32_t s = 12345u;
    uint8_t b[KCRASH_ENCODED_MAX + 16];
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < sizeof(b); i++) {
            b[i] = (uint8_t)xs32(&s);
        }
        if (round & 1) {
            poke32(b, KCRASH_MAGIC);
            poke16(b + 4, 1);
        }
        kcrash_report_t cr;
        kerr_t err = kcrash_decode(b, xs32(&s) % sizeof(b), &cr);
        assert_true(err == KERR_TRUNCATED || err == KERR_FORMAT || err == KERR_CRC ||
                    err == KERR_CRASH_VERSION || err == KERR_OK);
        kapp_hdr_t h;
        err = kapp_hdr_decode(b, BASE, REGION, &h);
        assert_true(err == KERR_IMG_HEADER || err == KERR_IMG_SIZE || err == KERR_OK);
        kident_t id;
        err = kident_decode(b, &id);
        assert_true(err == KERR_FORMAT || err == KERR_CRC || err == KERR_INVAL || err == KERR_OK);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_decoder),
        cmocka_unit_test(test_app_header_decoder),
        cmocka_unit_test(test_identity_decoder),
        cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

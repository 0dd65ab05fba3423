/* Device identity record: id rules, round trip, golden bytes, every rejection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/identity.h"
#include "unit_util.h"

static void test_check_id(void **state)
{
    (void)state;
    char id63[64], id64[65];
    memset(id63, 'a', 63);
    id63[63] = '\0';
    memset(id64, 'a', 64);
    id64[64] = '\0';
    assert_int_equal(kident_check_id("dev-001"), KERR_OK);
    assert_int_equal(kident_check_id("A.b_c-9"), KERR_OK);
    assert_int_equal(kident_check_id("x"), KERR_OK);
    assert_int_equal(kident_check_id(id63), KERR_OK);
    assert_int_equal(kident_check_id(id64), KERR_INVAL);
    assert_int_equal(kident_check_id(""), KERR_INVAL);
    assert_int_equal(kident_check_id(NULL), KERR_INVAL);
    static const char *const bad[] = {"a b", "a/b", "dev\n", "caf\xc3\xa9", "a:b", "a+b", "*"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kident_check_id(bad[i]), KERR_INVAL);
    }
}

static void encode_id(const char *s, uint8_t b[KIDENT_SIZE])
{
    kident_t id;
    memset(&id, 0, sizeof(id));
    strcpy(id.id, s);
    assert_int_equal(kident_encode(&id, b), KERR_OK);
}

static void test_round_trip_and_golden(void **state)
{
    (void)state;
    uint8_t b[KIDENT_SIZE];
    memset(b, 0xEE, sizeof(b));
    encode_id("dev-42", b);
    static const uint8_t head[14] = {0x4B, 0x49, 0x44, 0x31, 0x01, 0x00, 0x06, 0x00,
                                     'd',  'e',  'v',  '-',  '4',  '2'};
    assert_memory_equal(b, head, sizeof(head));
    for (size_t i = sizeof(head); i < 124; i++) {
        assert_int_equal(b[i], 0);
    }
    assert_int_equal(peek32(b + 124), ref_crc32(b, 124));
    kident_t out;
    memset(&out, 0x55, sizeof(out));
    assert_int_equal(kident_decode(b, &out), KERR_OK);
    assert_string_equal(out.id, "dev-42");

    char id63[64];
    memset(id63, 'Z', 63);
    id63[63] = '\0';
    encode_id(id63, b);
    assert_int_equal(kident_decode(b, &out), KERR_OK);
    assert_string_equal(out.id, id63);
}

static void test_encode_rejects_bad_ids(void **state)
{
    (void)state;
    kident_t id;
    uint8_t b[KIDENT_SIZE];
    memset(b, 0x77, sizeof(b));
    memset(&id, 0, sizeof(id));
    assert_int_equal(kident_encode(&id, b), KERR_INVAL);
    strcpy(id.id, "bad id");
    assert_int_equal(kident_encode(&id, b), KERR_INVAL);
    memset(id.id, 'a', sizeof(id.id)); /* no terminator at all */
    assert_int_equal(kident_encode(&id, b), KERR_INVAL);
    assert_int_equal(b[0], 0x77); /* nothing written */
}

/* Patch the record and re-seal it so only the intended field is wrong. */
static kerr_t decode_patched(size_t off, const void *bytes, size_t n)
{
    uint8_t b[KIDENT_SIZE];
    kident_t out;
    encode_id("abcd", b);
    memcpy(b + off, bytes, n);
    poke32(b + 124, ref_crc32(b, 124));
    return kident_decode(b, &out);
}

static void test_decode_rejections(void **state)
{
    (void)state;
    uint8_t b[KIDENT_SIZE];
    kident_t out;
    memset(b, 0xFF, sizeof(b));
    assert_int_equal(kident_decode(b, &out), KERR_FORMAT);
    memset(b, 0x00, sizeof(b));
    assert_int_equal(kident_decode(b, &out), KERR_FORMAT);
    encode_id("abcd", b);
    b[10] ^= 1;
    assert_int_equal(kident_decode(b, &out), KERR_CRC);
    encode_id("abcd", b);
    b[127] ^= 1;
    assert_int_equal(kident_decode(b, &out), KERR_CRC);

    assert_int_equal(decode_patched(0, "KID2", 4), KERR_FORMAT);
    assert_int_equal(decode_patched(4, "\x02\x00", 2), KERR_FORMAT);
    assert_int_equal(decode_patched(6, "\x00\x00", 2), KERR_INVAL);  /* empty */
    assert_int_equal(decode_patched(6, "\x40\x00", 2), KERR_INVAL);  /* 64 > max */
    assert_int_equal(decode_patched(6, "\x03\x00", 2), KERR_INVAL);  /* "abc" + 'd' pad */
    assert_int_equal(decode_patched(6, "\x05\x00", 2), KERR_INVAL);  /* NUL inside */
    assert_int_equal(decode_patched(9, " ", 1), KERR_INVAL);         /* bad character */
    assert_int_equal(decode_patched(70, "\x01", 1), KERR_INVAL);     /* junk in the padding */
    assert_int_equal(decode_patched(100, "\x01", 1), KERR_OK);       /* reserved: ignored */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_id),
        cmocka_unit_test(test_round_trip_and_golden),
        cmocka_unit_test(test_encode_rejects_bad_ids),
        cmocka_unit_test(test_decode_rejections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Installed-app header: round trip, golden bytes, every rejection; version parse/format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/app_image.h"
#include "unit_util.h"

#define BASE 0x00200000u
#define REGION 0x00100000u

static kapp_hdr_t sample(void)
{
    kapp_hdr_t h;
    memset(&h, 0, sizeof(h));
    h.image_size = 0x1234;
    h.load_addr = BASE;
    h.version = kapp_version_pack(1, 2, 3);
    h.backoff_min_ms = 100;
    h.backoff_max_ms = 30000;
    h.stack_dump = 128;
    for (int i = 0; i < 32; i++) {
        h.sha256[i] = (uint8_t)i;
    }
    memcpy(h.name, "hello", 5);
    return h;
}

/* Re-seal a hand-modified header so only the intended field is wrong. */
static void reseal(uint8_t *b)
{
    poke32(b + KAPP_OFF_CRC, ref_crc32(b, KAPP_OFF_CRC));
}

static kerr_t decode_with(uint32_t off, uint32_t value)
{
    kapp_hdr_t h = sample(), out;
    uint8_t b[KAPP_HDR_SIZE];
    kapp_hdr_encode(&h, b);
    poke32(b + off, value);
    reseal(b);
    return kapp_hdr_decode(b, BASE, REGION, &out);
}

static void test_round_trip(void **state)
{
    (void)state;
    kapp_hdr_t h = sample(), out;
    uint8_t b[KAPP_HDR_SIZE];
    kapp_hdr_encode(&h, b);
    memset(&out, 0xA5, sizeof(out));
    assert_int_equal(kapp_hdr_decode(b, BASE, REGION, &out), KERR_OK);
    assert_memory_equal(&out, &h, sizeof(h));

    /* A full 32-byte name without NUL survives too. */
    memset(h.name, 'n', sizeof(h.name));
    kapp_hdr_encode(&h, b);
    assert_int_equal(kapp_hdr_decode(b, BASE, REGION, &out), KERR_OK);
    assert_memory_equal(out.name, h.name, KAPP_NAME_MAX);
}

static void test_golden_bytes(void **state)
{
    (void)state;
    kapp_hdr_t h = sample();
    uint8_t b[KAPP_HDR_SIZE];
    memset(b, 0xEE, sizeof(b));
    kapp_hdr_encode(&h, b);
    static const uint8_t head[32] = {
        0x4B, 0x41, 0x50, 0x50, /* "KAPP" */
        0x01, 0x00, 0x00, 0x01, /* hdr_version 1, hdr_size 256 */
        0x34, 0x12, 0x00, 0x00, /* image_size */
        0x00, 0x00, 0x20, 0x00, /* load_addr 0x00200000 */
        0x03, 0x00, 0x02, 0x01, /* version 1.2.3 */
        0x64, 0x00, 0x00, 0x00, /* backoff_min 100 */
        0x30, 0x75, 0x00, 0x00, /* backoff_max 30000 */
        0x80, 0x00, 0x00, 0x00, /* stack_dump 128 */
    };
    assert_memory_equal(b, head, sizeof(head));
    for (int i = 0; i < 32; i++) {
        assert_int_equal(b[32 + i], i);
    }
    assert_memory_equal(b + 64, "hello", 5);
    for (int i = 69; i < 252; i++) {
        assert_int_equal(b[i], 0);
    }
    assert_int_equal(peek32(b + 252), ref_crc32(b, 252));
}

static void test_rejections(void **state)
{
    (void)state;
    kapp_hdr_t h = sample(), out;
    uint8_t b[KAPP_HDR_SIZE];

    memset(b, 0xFF, sizeof(b));
    assert_int_equal(kapp_hdr_decode(b, BASE, REGION, &out), KERR_IMG_EMPTY);
    memset(b, 0x00, sizeof(b));
    assert_int_equal(kapp_hdr_decode(b, BASE, REGION, &out), KERR_IMG_HEADER);

    kapp_hdr_encode(&h, b);
    b[KAPP_OFF_VERSION] ^= 1; /* not resealed */
    assert_int_equal(kapp_hdr_decode(b, BASE, REGION, &out), KERR_IMG_HEADER);
    kapp_hdr_encode(&h, b);
    b[KAPP_OFF_CRC + 3] ^= 0x80;
    assert_int_equal(kapp_hdr_decode(b, BASE, REGION, &out), KERR_IMG_HEADER);
    kapp_hdr_encode(&h, b);
    b[200] = 1; /* reserved bytes are covered by the CRC */
    assert_int_equal(kapp_hdr_decode(b, BASE, REGION, &out), KERR_IMG_HEADER);

    assert_int_equal(decode_with(KAPP_OFF_MAGIC, 0x5050414Cu), KERR_IMG_HEADER);
    assert_int_equal(decode_with(KAPP_OFF_HDR_VERSION, 0x01000002u), KERR_IMG_HEADER);
    assert_int_equal(decode_with(KAPP_OFF_HDR_VERSION, 0x00800001u), KERR_IMG_HEADER);
    assert_int_equal(decode_with(KAPP_OFF_STACK_DUMP, 257), KERR_IMG_HEADER);
    assert_int_equal(decode_with(KAPP_OFF_STACK_DUMP, 256), KERR_OK);
    assert_int_equal(decode_with(KAPP_OFF_BACKOFF_MIN, 30001), KERR_IMG_HEADER);
    assert_int_equal(decode_with(KAPP_OFF_BACKOFF_MIN, 30000), KERR_OK);

    assert_int_equal(decode_with(KAPP_OFF_IMAGE_SIZE, 0), KERR_IMG_SIZE);
    assert_int_equal(decode_with(KAPP_OFF_IMAGE_SIZE, REGION), KERR_OK);
    assert_int_equal(decode_with(KAPP_OFF_IMAGE_SIZE, REGION + 1u), KERR_IMG_SIZE);
    assert_int_equal(decode_with(KAPP_OFF_IMAGE_SIZE, 0xFFFFFFFFu), KERR_IMG_SIZE);
    assert_int_equal(decode_with(KAPP_OFF_LOAD_ADDR, BASE - 128u), KERR_IMG_SIZE);
    assert_int_equal(decode_with(KAPP_OFF_LOAD_ADDR, BASE + 64u), KERR_IMG_SIZE);
    assert_int_equal(decode_with(KAPP_OFF_LOAD_ADDR, BASE + 128u), KERR_OK);
    assert_int_equal(decode_with(KAPP_OFF_LOAD_ADDR, BASE + REGION), KERR_IMG_SIZE);
    assert_int_equal(decode_with(KAPP_OFF_LOAD_ADDR, 0xFFFFFF80u), KERR_IMG_SIZE);
    /* Image that starts inside but ends past the region. */
    h.load_addr = BASE + REGION - 0x1000u;
    h.image_size = 0x1000u;
    kapp_hdr_encode(&h, b);
    assert_int_equal(kapp_hdr_decode(b, BASE, REGION, &out), KERR_OK);
    h.image_size = 0x1001u;
    kapp_hdr_encode(&h, b);
    assert_int_equal(kapp_hdr_decode(b, BASE, REGION, &out), KERR_IMG_SIZE);
}

static void test_version_pack_parse(void **state)
{
    (void)state;
    uint32_t v = 0xDEADBEEFu;
    assert_int_equal(kapp_version_pack(1, 2, 3), 0x01020003u);
    assert_int_equal(kapp_version_pack(300, 256, 70000), 0xFFFFFFFFu);
    assert_int_equal(kapp_version_parse("1.2.3", &v), KERR_OK);
    assert_int_equal(v, 0x01020003u);
    assert_int_equal(kapp_version_parse("255.255.65535", &v), KERR_OK);
    assert_int_equal(v, 0xFFFFFFFFu);
    assert_int_equal(kapp_version_parse("0.0.0", &v), KERR_OK);
    assert_int_equal(v, 0u);
    assert_int_equal(kapp_version_parse("01.02.0003", &v), KERR_OK);
    assert_int_equal(v, 0x01020003u);
    static const char *const bad[] = {
        "", "1", "1.2", "1.2.", "1.2.3.", "1.2.3.4", ".1.2", "1..3", "a.b.c", "-1.2.3", "+1.2.3",
        " 1.2.3", "1.2.3 ", "1 .2.3", "256.0.0", "0.256.0", "0.0.65536",
        "99999999999999999999.0.0", "0.0.4294967297", "1.2.3x", "1,2,3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 0x12345678u;
        assert_int_equal(kapp_version_parse(bad[i], &v), KERR_INVAL);
        assert_int_equal(v, 0x12345678u); /* untouched on error */
    }
    assert_int_equal(kapp_version_parse(NULL, &v), KERR_INVAL);
}

static void test_version_format(void **state)
{
    (void)state;
    char buf[16];
    kapp_version_format(0x01020003u, buf, sizeof(buf));
    assert_string_equal(buf, "1.2.3");
    kapp_version_format(0xFFFFFFFFu, buf, sizeof(buf));
    assert_string_equal(buf, "255.255.65535");
    kapp_version_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "0.0.0");
    kapp_version_format(0x0A000064u, buf, sizeof(buf));
    assert_string_equal(buf, "10.0.100");

    /* Truncation stays inside cap and NUL-terminated. */
    memset(buf, 'x', sizeof(buf));
    kapp_version_format(0xFFFFFFFFu, buf, 6);
    assert_string_equal(buf, "255.2");
    assert_int_equal(buf[6], 'x');
    kapp_version_format(0xFFFFFFFFu, buf, 1);
    assert_string_equal(buf, "");
    buf[0] = 'x';
    kapp_version_format(0xFFFFFFFFu, buf, 0);
    assert_int_equal(buf[0], 'x');

    /* parse(format(v)) == v for packed values. */
    uint32_t s = 99;
    for (int i = 0; i < 1000; i++) {
        uint32_t v = xs32(&s), back = 0;
        kapp_version_format(v, buf, sizeof(buf));
        assert_int_equal(kapp_version_parse(buf, &back), KERR_OK);
        assert_int_equal(back, v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_golden_bytes),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_version_pack_parse),
        cmocka_unit_test(test_version_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

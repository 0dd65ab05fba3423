/* kcrc32 against known values and a bitwise reference; kerr_str covers every code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/crc32.h"
#include "keel/err.h"
#include "unit_util.h"

static void test_crc_known_values(void **state)
{
    (void)state;
    assert_int_equal(kcrc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(kcrc32(0, "", 0), 0u);
    assert_int_equal(kcrc32(0, "a", 1), 0xE8B7BE43u);
    uint8_t zeros[32] = {0};
    assert_int_equal(kcrc32(0, zeros, sizeof(zeros)), 0x190A55ADu);
}

static void test_crc_chaining_and_reference(void **state)
{
    (void)state;
    uint8_t buf[300];
    uint32_t s = 7;
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)xs32(&s);
    }
    for (size_t n = 0; n <= sizeof(buf); n += 37) {
        uint32_t whole = kcrc32(0, buf, n);
        assert_int_equal(whole, ref_crc32(buf, n));
        for (size_t cut = 0; cut <= n; cut += 11) {
            assert_int_equal(kcrc32(kcrc32(0, buf, cut), buf + cut, n - cut), whole);
        }
    }
}

static void test_kerr_str_every_code(void **state)
{
    (void)state;
    static const kerr_t codes[] = {
        KERR_OK, KERR_INVAL, KERR_RANGE, KERR_NOMEM, KERR_IO, KERR_TRUNCATED, KERR_FORMAT,
        KERR_CRC, KERR_FLASH_ALIGN, KERR_FLASH_RANGE, KERR_FLASH_BITS, KERR_FLASH_TWICE,
        KERR_FLASH_POWER, KERR_IMG_EMPTY, KERR_IMG_HEADER, KERR_IMG_SIZE, KERR_IMG_HASH,
        KERR_IMG_ELF, KERR_CRASH_VERSION,
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        const char *s = kerr_str(codes[i]);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(s, kerr_str(codes[j]));
        }
    }
    assert_string_equal(kerr_str(-99999), "unknown error");
    assert_string_equal(kerr_str(5), "unknown error");
    assert_non_null(strstr(kerr_str(KERR_FLASH_BITS), "0->1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_known_values),
        cmocka_unit_test(test_crc_chaining_and_reference),
        cmocka_unit_test(test_kerr_str_every_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Copy-on-write flash backend: two devices over one frozen base see the base until they write,
 * never see each other's writes, keep only the units they changed, and obey the NOR rules
 * through kflash like any backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/flash.h"
#include "keel/flash_cow.h"

#define SIZE 65536u
#define PAGE 4096u
#define UNIT 16u

static uint8_t g_image[SIZE];

static void make_base(kflash_cow_base_t *b)
{
    memset(g_image, 0xFF, sizeof(g_image));
    memset(g_image + PAGE, 0x11, PAGE);       /* unit 1: content */
    g_image[5 * PAGE + 7] = 0x00;             /* unit 5: one byte */
    assert_int_equal(kflash_cow_freeze(b, g_image, SIZE, PAGE), KERR_OK);
    assert_null(b->units[0]);                 /* erased units are not stored */
    assert_non_null(b->units[1]);
    assert_non_null(b->units[5]);
    memset(g_image, 0xAA, sizeof(g_image));   /* the base is a copy */
}

static void test_isolated_copies(void **state)
{
    (void)state;
    kflash_cow_base_t b;
    kflash_cow_t c1, c2;
    kflash_t f1, f2;
    uint8_t used1[KFLASH_BITMAP_BYTES(SIZE, UNIT)], used2[sizeof(used1)], buf[PAGE];
    kflash_geometry_t g = {SIZE, PAGE, UNIT, true};

    make_base(&b);
    kflash_cow_init(&c1, &b);
    kflash_cow_init(&c2, &b);
    assert_int_equal(kflash_init(&f1, &kflash_cow_backend, &c1, &g, used1, sizeof(used1)), KERR_OK);
    assert_int_equal(kflash_init(&f2, &kflash_cow_backend, &c2, &g, used2, sizeof(used2)), KERR_OK);
    assert_int_equal(kflash_cow_bytes(&c1), 0); /* reading copies nothing */

    assert_int_equal(kflash_read(&f1, PAGE, buf, PAGE), KERR_OK);
    for (uint32_t i = 0; i < PAGE; i++) {
        assert_int_equal(buf[i], 0x11);
    }
    /* NOR rules hold: unit 1 is programmed, so programming it again is refused. */
    memset(buf, 0x01, UNIT);
    assert_int_equal(kflash_program(&f1, PAGE, buf, UNIT), KERR_FLASH_TWICE);
    /* device 1 erases unit 1 and programs unit 0; device 2 still sees the base */
    assert_int_equal(kflash_erase(&f1, PAGE), KERR_OK);
    memset(buf, 0x42, 32);
    assert_int_equal(kflash_program(&f1, 32, buf, 32), KERR_OK);
    assert_int_equal(c1.n, 2u);
    assert_int_equal(c2.n, 0u);
    assert_int_equal(kflash_read(&f1, PAGE + 100, buf, 1), KERR_OK);
    assert_int_equal(buf[0], 0xFF);
    assert_int_equal(kflash_read(&f2, PAGE + 100, buf, 1), KERR_OK);
    assert_int_equal(buf[0], 0x11);
    /* a read across units: erased unit 0 with device 1's bytes, then unit 1 */
    uint8_t span[64];
    assert_int_equal(kflash_read(&f1, PAGE - 32, span, 64), KERR_OK);
    assert_int_equal(span[0], 0xFF);
    assert_int_equal(span[32], 0xFF);
    assert_int_equal(kflash_read(&f1, 32, span, 32), KERR_OK);
    assert_int_equal(span[0], 0x42);
    assert_int_equal(kflash_read(&f2, 32, span, 32), KERR_OK);
    assert_int_equal(span[0], 0xFF);
    assert_int_equal(kflash_read(&f2, 5 * PAGE + 7, span, 1), KERR_OK);
    assert_int_equal(span[0], 0x00);
    assert_true(kflash_cow_bytes(&c1) >= 2u * PAGE);

    /* out of range at the backend */
    assert_int_equal(kflash_cow_backend.read(&c1, SIZE - 4, buf, 8), KERR_IO);
    assert_int_equal(kflash_cow_backend.write(&c1, SIZE, buf, 1), KERR_IO);
    kflash_cow_free(&c1);
    assert_int_equal(kflash_cow_bytes(&c1), 0);
    assert_int_equal(kflash_read(&f1, PAGE, buf, 1), KERR_OK); /* back to the factory image */
    assert_int_equal(buf[0], 0x11);
    kflash_cow_free(&c2);
    kflash_cow_base_free(&b);
}

static void test_freeze_errors(void **state)
{
    (void)state;
    kflash_cow_base_t b;
    assert_int_equal(kflash_cow_freeze(&b, g_image, SIZE, 3000), KERR_INVAL);
    assert_int_equal(kflash_cow_freeze(&b, g_image, SIZE + 1, PAGE), KERR_INVAL);
    assert_int_equal(kflash_cow_freeze(&b, g_image, 0, PAGE), KERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isolated_copies),
        cmocka_unit_test(test_freeze_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The fetch back-off of protocol.md P3: first timeout, doubling, cap, jitter bounds, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "keel/backoff.h"
#include "unit_util.h"

static void test_sequence(void **state)
{
    kbackoff_t b = {0};
    uint32_t want[] = {2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};

    (void)state;
    kbackoff_reset(&b);
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(b.base_ms, want[i]);
        kbackoff_grow(&b);
    }
    kbackoff_reset(&b); /* a chunk arrived */
    assert_int_equal(b.base_ms, KBACKOFF_FIRST_MS);
    kbackoff_t zero = {0}; /* never reset: behaves as reset */
    assert_int_equal(kbackoff_wait(&zero, 0), 1500);
    kbackoff_grow(&zero);
    assert_int_equal(zero.base_ms, 4000);
}

/* Every wait lies in [0.75, 1.25] x base, both ends are reached, and the spread is used. */
static void test_jitter(void **state)
{
    kbackoff_t b;
    uint32_t rng = 0x12345678u;

    (void)state;
    kbackoff_reset(&b);
    for (int step = 0; step < 7; step++) {
        uint32_t lo = UINT32_MAX, hi = 0, base = b.base_ms;
        unsigned below = 0;
        for (int i = 0; i < 20000; i++) {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            uint32_t w = kbackoff_wait(&b, rng);
            assert_true(w >= base - base / 4u && w <= base + base / 4u);
            lo = w < lo ? w : lo;
            hi = w > hi ? w : hi;
            below += w < base;
        }
        assert_true(lo < base - base / 5u); /* the spread is used, not a constant */
        assert_true(hi > base + base / 5u);
        assert_true(below > 8000 && below < 12000); /* about half below the base */
        assert_int_equal(kbackoff_wait(&b, 0), base - base / 4u);
        assert_int_equal(kbackoff_wait(&b, base / 2u), base + base / 4u);
        kbackoff_grow(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

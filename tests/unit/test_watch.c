/*
 * The watchpoint set and its hit rule (keel/watch.h): slots, refusals, the MPU granules, and
 * which trapped access counts as a hit for which kind of watchpoint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/watch.h"

static void test_add_remove(void **state)
{
    (void)state;
    watch_set_t s;
    watch_init(&s);
    assert_int_equal(watch_add(&s, WATCH_WRITE, 0x28200010u, 4), KERR_OK);
    assert_int_equal(watch_add(&s, WATCH_READ, 0x28200100u, 2), KERR_OK);
    assert_int_equal(watch_add(&s, WATCH_ACCESS, 0x28200200u, 1), KERR_OK);
    assert_int_equal(watch_add(&s, WATCH_WRITE, 0x28200010u, 4), KERR_OK); /* twice: two entries */
    assert_int_equal(watch_add(&s, WATCH_READ, 0x28200300u, 4), KERR_NOMEM);
    assert_int_equal(s.count, WATCH_MAX);
    assert_int_equal(watch_add(&s, (watch_type_t)1, 0x28200300u, 4), KERR_INVAL);
    assert_int_equal(watch_remove(&s, WATCH_READ, 0x28200100u, 4), KERR_INVAL); /* other length */
    assert_int_equal(watch_remove(&s, WATCH_ACCESS, 0x28200100u, 2), KERR_INVAL); /* other type */
    assert_int_equal(watch_remove(&s, WATCH_WRITE, 0x28200010u, 4), KERR_OK);
    assert_int_equal(s.count, 3);
    /* order kept: read, access, write */
    assert_int_equal(s.w[0].type, WATCH_READ);
    assert_int_equal(s.w[1].type, WATCH_ACCESS);
    assert_int_equal(s.w[2].type, WATCH_WRITE);
    assert_int_equal(watch_remove(&s, WATCH_WRITE, 0x28200010u, 4), KERR_OK);
    assert_int_equal(watch_remove(&s, WATCH_WRITE, 0x28200010u, 4), KERR_INVAL);
    watch_init(&s);
    assert_int_equal(watch_add(&s, WATCH_WRITE, 0x28200010u, 0), KERR_INVAL);
    assert_int_equal(watch_add(&s, WATCH_WRITE, 0xFFFFFFFEu, 4), KERR_INVAL);
    assert_int_equal(watch_add(&s, WATCH_WRITE, 0xFFFFFFFCu, 4), KERR_OK); /* ends at 4 GiB */
}

static void test_granules(void **state)
{
    (void)state;
    watch_t w = {0x28200010u, 4, WATCH_WRITE, 0};
    assert_int_equal(watch_granule_base(&w), 0x28200000u);
    assert_int_equal(watch_granule_limit(&w), 0x2820001Fu);
    w.addr = 0x2820001Eu; /* straddles two granules */
    assert_int_equal(watch_granule_base(&w), 0x28200000u);
    assert_int_equal(watch_granule_limit(&w), 0x2820003Fu);
    w.addr = 0x28200020u;
    w.len = 32;
    assert_int_equal(watch_granule_base(&w), 0x28200020u);
    assert_int_equal(watch_granule_limit(&w), 0x2820003Fu);
    w.addr = 0xFFFFFFFCu;
    w.len = 4;
    assert_int_equal(watch_granule_limit(&w), 0xFFFFFFFFu);

    watch_set_t s;
    watch_init(&s);
    assert_false(watch_in_granules(&s, 0x28200000u, 0x1000u));
    assert_int_equal(watch_add(&s, WATCH_READ, 0x28200044u, 4), KERR_OK);
    assert_true(watch_in_granules(&s, 0x28200040u, 1));
    assert_true(watch_in_granules(&s, 0x2820005Fu, 1));
    assert_true(watch_in_granules(&s, 0x28200000u, 0x41u));
    assert_false(watch_in_granules(&s, 0x28200000u, 0x40u));
    assert_false(watch_in_granules(&s, 0x28200060u, 4));
}

static void test_hit_rule(void **state)
{
    (void)state;
    watch_set_t s;
    watch_init(&s);
    assert_int_equal(watch_add(&s, WATCH_WRITE, 0x28200010u, 4), KERR_OK);  /* 0 */
    assert_int_equal(watch_add(&s, WATCH_READ, 0x28200104u, 2), KERR_OK);   /* 1 */
    assert_int_equal(watch_add(&s, WATCH_ACCESS, 0x28200209u, 1), KERR_OK); /* 2 */

    /* write watchpoint: writes into the range hit, reads never, neighbours in the granule not */
    assert_ptr_equal(watch_hit(&s, true, 0x28200010u, 0), &s.w[0]);
    assert_ptr_equal(watch_hit(&s, true, 0x28200013u, 0), &s.w[0]);
    assert_null(watch_hit(&s, false, 0x28200010u, 0));
    assert_null(watch_hit(&s, true, 0x2820000Cu, 0));  /* the word below */
    assert_null(watch_hit(&s, true, 0x28200014u, 0));  /* the word above */
    assert_null(watch_hit(&s, true, 0x2820000Fu, 0));  /* a byte below */
    /* a store reaching in from below (strd, stm): seen by what it changed */
    assert_ptr_equal(watch_hit(&s, true, 0x2820000Cu, 1u << 0), &s.w[0]);
    /* ... but a change never makes a read watchpoint hit */
    assert_null(watch_hit(&s, true, 0x28200100u, 1u << 1));

    /* read watchpoint: the halfword at 0x104; a word read at 0x104 or 0x106 is no hit at 0x106 */
    assert_ptr_equal(watch_hit(&s, false, 0x28200104u, 0), &s.w[1]);
    assert_ptr_equal(watch_hit(&s, false, 0x28200105u, 0), &s.w[1]);
    assert_null(watch_hit(&s, false, 0x28200106u, 0));
    assert_null(watch_hit(&s, true, 0x28200104u, 0));
    assert_null(watch_hit(&s, false, 0x28200103u, 0)); /* a byte below: extent to its word */

    /* access watchpoint: both kinds; a word access at 0x208 covers byte 0x209 */
    assert_ptr_equal(watch_hit(&s, false, 0x28200208u, 0), &s.w[2]);
    assert_ptr_equal(watch_hit(&s, true, 0x28200209u, 0), &s.w[2]);
    assert_null(watch_hit(&s, true, 0x2820020Au, 0));
    assert_ptr_equal(watch_hit(&s, true, 0x28200200u, 1u << 2), &s.w[2]);
}

static void test_hash(void **state)
{
    (void)state;
    uint8_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8];
    memcpy(b, a, sizeof(a));
    assert_int_equal(watch_hash(a, 8), watch_hash(b, 8));
    for (unsigned i = 0; i < 8; i++) {
        b[i] ^= 0x80u;
        assert_int_not_equal(watch_hash(a, 8), watch_hash(b, 8));
        b[i] ^= 0x80u;
    }
    assert_int_equal(watch_hash(a, 0), 2166136261u); /* FNV-1a offset basis */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_remove),
        cmocka_unit_test(test_granules),
        cmocka_unit_test(test_hit_rule),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The software breakpoint manager over a memory model with app code (RAM), a read-only
 * stretch (writes ignored, as flash would) and injectable write failures. Besides the cases,
 * a seeded random sequence of inserts, removes, reads, writes and remove-alls is checked
 * against a reference after every step: reads through the manager always show the app's
 * own code, raw memory shows BKPT exactly where breakpoints are planted, and after
 * remove_all the code is byte for byte what the app (and the debugger's writes) made it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/bkpt.h"
#include "unit_util.h"

#define CODE 0x00200000u
#define CODE_SIZE 0x400u
#define ROM 0x00300000u
#define ROM_SIZE 0x100u

typedef struct {
    uint8_t code[CODE_SIZE];
    uint8_t rom[ROM_SIZE];
    int fail_writes_at; /* -1: never; else writes touching this code offset fail */
    int writes;
} mem_t;

static uint8_t *at(mem_t *m, uint32_t a, uint32_t len, bool *ro)
{
    *ro = false;
    if (a >= CODE && len <= CODE_SIZE && a - CODE <= CODE_SIZE - len)
        return m->code + (a - CODE);
    *ro = true;
    if (a >= ROM && len <= ROM_SIZE && a - ROM <= ROM_SIZE - len)
        return m->rom + (a - ROM);
    return NULL;
}

static kerr_t m_read(void *c, uint32_t a, uint8_t *out, uint32_t len)
{
    bool ro;
    uint8_t *p = at(c, a, len, &ro);
    if (!p)
        return KERR_RANGE;
    memcpy(out, p, len);
    return KERR_OK;
}

static kerr_t m_write(void *c, uint32_t a, const uint8_t *d, uint32_t len)
{
    mem_t *m = c;
    bool ro;
    uint8_t *p = at(m, a, len, &ro);
    if (!p)
        return KERR_RANGE;
    if (m->fail_writes_at >= 0 && (uint32_t)m->fail_writes_at + CODE >= a &&
        (uint32_t)m->fail_writes_at + CODE - a < len)
        return KERR_IO;
    m->writes++;
    if (!ro)
        memcpy(p, d, len);
    return KERR_OK;
}

static const bkpt_mem_ops_t mem_ops = {m_read, m_write};

typedef struct {
    mem_t m;
    bkpt_sw_t sw;
    bkpt_t b;
} fx_t;

static void fx_init(fx_t *x)
{
    memset(x, 0, sizeof(*x));
    for (uint32_t i = 0; i < CODE_SIZE; i++)
        x->m.code[i] = (uint8_t)(i * 13u + 1u);
    memset(x->m.rom, 0x5A, ROM_SIZE);
    x->m.fail_writes_at = -1;
    assert_int_equal(bkpt_sw_init(&x->sw, &mem_ops, &x->m, &x->b), KERR_OK);
}

static uint16_t raw16(fx_t *x, uint32_t a)
{
    return (uint16_t)(x->m.code[a - CODE] | x->m.code[a - CODE + 1] << 8);
}

static void test_insert_remove(void **state)
{
    (void)state;
    static fx_t x;
    fx_init(&x);
    uint16_t orig = raw16(&x, CODE + 0x10);
    assert_int_equal(bkpt_insert(&x.b, CODE + 0x10), KERR_OK);
    assert_int_equal(raw16(&x, CODE + 0x10), BKPT_INSN);
    assert_true(bkpt_is_set(&x.b, CODE + 0x10));
    assert_false(bkpt_is_set(&x.b, CODE + 0x12));
    uint8_t b[4];
    assert_int_equal(bkpt_read(&x.b, CODE + 0x10, b, 2), KERR_OK);
    assert_int_equal(b[0] | b[1] << 8, orig);
    /* counted: a second insert needs a second remove */
    assert_int_equal(bkpt_insert(&x.b, CODE + 0x10), KERR_OK);
    assert_int_equal(bkpt_sw_count(&x.sw), 1);
    assert_int_equal(bkpt_remove(&x.b, CODE + 0x10), KERR_OK);
    assert_int_equal(raw16(&x, CODE + 0x10), BKPT_INSN);
    assert_int_equal(bkpt_remove(&x.b, CODE + 0x10), KERR_OK);
    assert_int_equal(raw16(&x, CODE + 0x10), orig);
    assert_false(bkpt_is_set(&x.b, CODE + 0x10));
    assert_int_equal(bkpt_remove(&x.b, CODE + 0x10), KERR_INVAL);
    assert_int_equal(bkpt_sw_count(&x.sw), 0);
}

static void test_refused(void **state)
{
    (void)state;
    static fx_t x;
    fx_init(&x);
    uint8_t before[CODE_SIZE];
    memcpy(before, x.m.code, CODE_SIZE);
    assert_int_equal(bkpt_insert(&x.b, CODE + 0x11), KERR_INVAL);         /* odd */
    assert_int_equal(bkpt_insert(&x.b, 0x10000000u), KERR_RANGE);         /* not the app's */
    assert_int_equal(bkpt_insert(&x.b, CODE + CODE_SIZE - 1), KERR_INVAL);
    assert_int_equal(bkpt_insert(&x.b, CODE + CODE_SIZE), KERR_RANGE);
    assert_int_equal(bkpt_insert(&x.b, ROM + 0x20), KERR_IO);             /* write had no effect */
    x.m.fail_writes_at = 0x40;
    assert_int_equal(bkpt_insert(&x.b, CODE + 0x40), KERR_IO);            /* write failed */
    assert_int_equal(bkpt_sw_count(&x.sw), 0);
    assert_memory_equal(x.m.code, before, CODE_SIZE);
    x.m.fail_writes_at = -1;
    /* every slot, then one more */
    for (uint32_t i = 0; i < BKPT_SW_MAX; i++)
        assert_int_equal(bkpt_insert(&x.b, CODE + 4 * i), KERR_OK);
    assert_int_equal(bkpt_insert(&x.b, CODE + 0x200), KERR_NOMEM);
    assert_int_equal(bkpt_insert(&x.b, CODE + 0), KERR_OK); /* an existing one still counts up */
    assert_int_equal(bkpt_remove_all(&x.b), KERR_OK);
    assert_memory_equal(x.m.code, before, CODE_SIZE);
    bkpt_t b;
    bkpt_mem_ops_t half = {m_read, NULL};
    assert_int_equal(bkpt_sw_init(&x.sw, &half, &x.m, &b), KERR_INVAL);
    assert_int_equal(bkpt_sw_init(&x.sw, NULL, &x.m, &b), KERR_INVAL);
}

static void test_remove_all_with_failure(void **state)
{
    (void)state;
    static fx_t x;
    fx_init(&x);
    uint8_t before[CODE_SIZE];
    memcpy(before, x.m.code, CODE_SIZE);
    for (uint32_t a = 0; a < 0x40; a += 8)
        assert_int_equal(bkpt_insert(&x.b, CODE + a), KERR_OK);
    x.m.fail_writes_at = 0x18;
    assert_int_equal(bkpt_remove_all(&x.b), KERR_IO);
    assert_int_equal(bkpt_sw_count(&x.sw), 1);           /* the one that failed is kept */
    assert_true(bkpt_is_set(&x.b, CODE + 0x18));
    assert_int_equal(raw16(&x, CODE + 0x18), BKPT_INSN);
    assert_int_equal(raw16(&x, CODE + 0x20), before[0x20] | before[0x21] << 8); /* the rest went on */
    x.m.fail_writes_at = -1;
    assert_int_equal(bkpt_remove_all(&x.b), KERR_OK);
    assert_memory_equal(x.m.code, before, CODE_SIZE);
    assert_int_equal(bkpt_remove_all(&x.b), KERR_OK);   /* nothing left: still fine */
}

static void test_reads_and_writes_hide_patches(void **state)
{
    (void)state;
    static fx_t x;
    fx_init(&x);
    uint8_t before[CODE_SIZE], b[16];
    memcpy(before, x.m.code, CODE_SIZE);
    assert_int_equal(bkpt_insert(&x.b, CODE + 0x20), KERR_OK);
    assert_int_equal(bkpt_insert(&x.b, CODE + 0x26), KERR_OK);
    /* whole, partial at either end, single bytes */
    assert_int_equal(bkpt_read(&x.b, CODE + 0x1C, b, 16), KERR_OK);
    assert_memory_equal(b, before + 0x1C, 16);
    assert_int_equal(bkpt_read(&x.b, CODE + 0x21, b, 1), KERR_OK);
    assert_int_equal(b[0], before[0x21]);
    assert_int_equal(bkpt_read(&x.b, CODE + 0x27, b, 3), KERR_OK);
    assert_memory_equal(b, before + 0x27, 3);
    assert_int_equal(bkpt_read(&x.b, CODE + 0x1F, b, 2), KERR_OK);
    assert_memory_equal(b, before + 0x1F, 2);
    assert_int_equal(bkpt_read(&x.b, 0x10000000u, b, 2), KERR_RANGE);
    /* gdb writes over a breakpoint (e.g. 'set var' on code, or a load): the BKPT stays,
     * the new bytes become what a read shows and what remove restores. */
    static const uint8_t n[5] = {0xA1, 0xA2, 0xA3, 0xA4, 0xA5};
    assert_int_equal(bkpt_write(&x.b, CODE + 0x1F, n, 5), KERR_OK); /* covers 0x20..0x21 */
    assert_int_equal(raw16(&x, CODE + 0x20), BKPT_INSN);
    assert_int_equal(bkpt_read(&x.b, CODE + 0x1F, b, 5), KERR_OK);
    assert_memory_equal(b, n, 5);
    assert_int_equal(bkpt_write(&x.b, CODE + 0x27, n, 1), KERR_OK); /* second byte only */
    assert_int_equal(raw16(&x, CODE + 0x26), BKPT_INSN);
    assert_int_equal(bkpt_write(&x.b, 0x10000000u, n, 1), KERR_RANGE);
    assert_int_equal(bkpt_remove_all(&x.b), KERR_OK);
    assert_memory_equal(x.m.code + 0x1F, n, 5);
    assert_int_equal(x.m.code[0x26], before[0x26]);
    assert_int_equal(x.m.code[0x27], 0xA1);
}

/* Random operations against a reference: logical code (what the app's code is) and a count
 * per halfword address. */
static void test_random_against_reference(void **state)
{
    (void)state;
    static fx_t x;
    static uint8_t logical[CODE_SIZE];
    static unsigned refs[CODE_SIZE / 2];
    fx_init(&x);
    memcpy(logical, x.m.code, CODE_SIZE);
    memset(refs, 0, sizeof(refs));
    uint32_t s = 0xB4EAu;
    for (int step = 0; step < 20000; step++) {
        uint32_t a = xs32(&s) % 0x80u; /* a small window so operations collide */
        switch (xs32(&s) % 6u) {
        case 0:
        case 1: {
            kerr_t err = bkpt_insert(&x.b, CODE + a);
            if (a & 1u) {
                assert_int_equal(err, KERR_INVAL);
            } else if (err == KERR_OK) {
                refs[a / 2]++;
            } else {
                assert_int_equal(err, KERR_NOMEM);
                assert_int_equal(refs[a / 2], 0);
                assert_int_equal(bkpt_sw_count(&x.sw), BKPT_SW_MAX);
            }
            break;
        }
        case 2: {
            kerr_t err = bkpt_remove(&x.b, CODE + a);
            if ((a & 1u) || refs[a / 2] == 0) {
                assert_int_equal(err, KERR_INVAL);
            } else {
                assert_int_equal(err, KERR_OK);
                refs[a / 2]--;
            }
            break;
        }
        case 3: {
            uint8_t d[16];
            uint32_t len = 1u + xs32(&s) % 16u;
            for (uint32_t i = 0; i < len; i++)
                d[i] = (uint8_t)xs32(&s);
            assert_int_equal(bkpt_write(&x.b, CODE + a, d, len), KERR_OK);
            memcpy(logical + a, d, len);
            break;
        }
        case 4: {
            uint8_t d[16];
            uint32_t len = 1u + xs32(&s) % 16u;
            assert_int_equal(bkpt_read(&x.b, CODE + a, d, len), KERR_OK);
            assert_memory_equal(d, logical + a, len);
            break;
        }
        default:
            if (xs32(&s) % 8u == 0) {
                assert_int_equal(bkpt_remove_all(&x.b), KERR_OK);
                memset(refs, 0, sizeof(refs));
                assert_memory_equal(x.m.code, logical, CODE_SIZE);
            }
            break;
        }
        /* raw memory: BKPT where planted, the logical code elsewhere */
        for (uint32_t h = 0; h < 0x90u; h += 2) {
            uint16_t want = refs[h / 2] ? BKPT_INSN : (uint16_t)(logical[h] | logical[h + 1] << 8);
            assert_int_equal(raw16(&x, CODE + h), want);
            assert_int_equal(bkpt_is_set(&x.b, CODE + h), refs[h / 2] != 0);
        }
    }
    assert_int_equal(bkpt_remove_all(&x.b), KERR_OK);
    assert_memory_equal(x.m.code, logical, CODE_SIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_remove),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_remove_all_with_failure),
        cmocka_unit_test(test_reads_and_writes_hide_patches),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The NOR rules of kflash over the RAM backend (the strict model): every rule and error code,
 * torn program/erase, bitmap rebuild, stats, and backend failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/flash.h"
#include "keel/flash_ram.h"

/* Internal-flash-like part: 8 pages of 256 B, 16-byte program-once units. */
#define SIZE 2048u
#define PAGE 256u
#define UNIT 16u

typedef struct dev {
    uint8_t mem[SIZE];
    uint8_t used[KFLASH_BITMAP_BYTES(SIZE, UNIT)];
    kflash_ram_t ram;
    kflash_t f;
    kflash_geometry_t geo;
} dev_t;

static dev_t g_dev;

/* Bind g_dev with a geometry; mem is kept (erased first when fresh). */
static kflash_t *dev_open(uint32_t page, uint32_t unit, bool prog_once, bool fresh)
{
    dev_t *d = &g_dev;
    d->geo = (kflash_geometry_t){SIZE, page, unit, prog_once};
    kflash_ram_init(&d->ram, d->mem, SIZE, fresh);
    assert_int_equal(kflash_init(&d->f, &kflash_ram_backend, &d->ram, &d->geo, d->used,
                                 sizeof(d->used)),
                     KERR_OK);
    return &d->f;
}

static kflash_t *ecc_dev(void)
{
    return dev_open(PAGE, UNIT, true, true);
}

static bool all_equal(const uint8_t *p, uint32_t n, uint8_t v)
{
    for (uint32_t i = 0; i < n; i++) {
        if (p[i] != v) {
            return false;
        }
    }
    return true;
}

static void fill_pattern(uint8_t *p, uint32_t n, uint8_t seed)
{
    for (uint32_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed + i * 7u);
    }
}

static void test_init_rejects_bad_geometry(void **state)
{
    (void)state;
    dev_t *d = &g_dev;
    kflash_ram_init(&d->ram, d->mem, SIZE, true);
    static const kflash_geometry_t bad[] = {
        {SIZE, 0, 1, false},         {SIZE, 384, 16, false},  /* erase not a power of two */
        {SIZE, 256, 0, false},       {SIZE, 256, 24, false},  /* unit not a power of two */
        {SIZE, 256, 512, false},                              /* unit > erase */
        {0, 256, 16, false},         {SIZE + 128, 256, 16, false}, /* size */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kflash_init(&d->f, &kflash_ram_backend, &d->ram, &bad[i], NULL, 0),
                         KERR_INVAL);
    }
    kflash_geometry_t geo = {SIZE, PAGE, UNIT, true};
    assert_int_equal(kflash_init(&d->f, &kflash_ram_backend, &d->ram, &geo, NULL, 0), KERR_INVAL);
    assert_int_equal(kflash_init(&d->f, &kflash_ram_backend, &d->ram, &geo, d->used,
                                 sizeof(d->used) - 1u),
                     KERR_INVAL);
    assert_int_equal(kflash_init(&d->f, NULL, &d->ram, &geo, d->used, sizeof(d->used)),
                     KERR_INVAL);
    assert_int_equal(sizeof(d->used), 16u); /* 128 units -> 16 bytes */
    geo.prog_once = false;
    assert_int_equal(kflash_init(&d->f, &kflash_ram_backend, &d->ram, &geo, NULL, 0), KERR_OK);
}

static void test_erase_sets_ff_only_in_its_page(void **state)
{
    (void)state;
    kflash_t *f = ecc_dev();
    memset(g_dev.mem, 0x00, SIZE);
    f = dev_open(PAGE, UNIT, true, false);
    assert_int_equal(kflash_erase(f, PAGE), KERR_OK);
    assert_true(all_equal(g_dev.mem, PAGE, 0x00));
    assert_true(all_equal(g_dev.mem + PAGE, PAGE, 0xFF));
    assert_true(all_equal(g_dev.mem + 2 * PAGE, SIZE - 2 * PAGE, 0x00));
    assert_int_equal(f->stats.erases, 1u);
    assert_int_equal(f->stats.programs, 0u);
}

static void test_program_clears_bits_and_refuses_0_to_1(void **state)
{
    (void)state;
    kflash_t *f = dev_open(PAGE, 1u, false, true); /* QSPI-like: byte units, reprogrammable */
    uint8_t a[4] = {0xF0, 0x0F, 0xA5, 0xFF};
    uint8_t b[4] = {0x30, 0x0E, 0x84, 0x7F};
    uint8_t got[4];
    assert_int_equal(kflash_program(f, 100, a, 4), KERR_OK);
    assert_int_equal(kflash_program(f, 100, b, 4), KERR_OK); /* only 1->0 */
    assert_int_equal(kflash_read(f, 100, got, 4), KERR_OK);
    assert_memory_equal(got, b, 4);

    uint8_t before[SIZE];
    memcpy(before, g_dev.mem, SIZE);
    uint8_t c[4] = {0x30, 0x0E, 0x84, 0xFF}; /* last byte wants 0x7F -> 0xFF */
    assert_int_equal(kflash_program(f, 100, c, 4), KERR_FLASH_BITS);
    assert_memory_equal(g_dev.mem, before, SIZE);
    assert_int_equal(f->stats.programs, 2u);
    assert_int_equal(f->stats.prog_bytes, 8u);
    assert_int_equal(f->ops, 2u); /* a refused request is not an operation */
}

static void test_bits_checked_across_whole_request(void **state)
{
    (void)state;
    kflash_t *f = dev_open(PAGE, 1u, false, true);
    uint8_t zero = 0x00;
    assert_int_equal(kflash_program(f, 3 * PAGE + 10, &zero, 1), KERR_OK);
    /* A 3-page request whose only conflict is its last byte writes nothing at all. */
    uint8_t data[3 * PAGE];
    memset(data, 0x5A, sizeof(data));
    data[sizeof(data) - 1u] = 0x01;
    uint8_t before[SIZE];
    memcpy(before, g_dev.mem, SIZE);
    assert_int_equal(kflash_program(f, PAGE + 11, data, sizeof(data)), KERR_FLASH_BITS);
    assert_memory_equal(g_dev.mem, before, SIZE);
}

static void test_program_once(void **state)
{
    (void)state;
    kflash_t *f = ecc_dev();
    uint8_t ff[UNIT], zero[UNIT], data[2 * UNIT];
    memset(ff, 0xFF, sizeof(ff));
    memset(zero, 0x00, sizeof(zero));
    fill_pattern(data, sizeof(data), 1);

    /* All-0xFF data still uses the unit. */
    assert_int_equal(kflash_program(f, 0, ff, UNIT), KERR_OK);
    assert_int_equal(kflash_program(f, 0, zero, UNIT), KERR_FLASH_TWICE);
    assert_true(all_equal(g_dev.mem, UNIT, 0xFF));

    assert_int_equal(kflash_program(f, 64, data, UNIT), KERR_OK);
    assert_int_equal(kflash_program(f, 64, data, UNIT), KERR_FLASH_TWICE); /* same data too */

    /* Whole request checked first: second unit used -> first unit untouched. */
    assert_int_equal(kflash_program(f, 48, data, 2 * UNIT), KERR_FLASH_TWICE);
    assert_true(all_equal(g_dev.mem + 48, UNIT, 0xFF));

    /* Erase clears the bitmap of its page only. */
    assert_int_equal(kflash_program(f, PAGE, data, UNIT), KERR_OK);
    assert_int_equal(kflash_erase(f, 0), KERR_OK);
    assert_int_equal(kflash_program(f, 0, zero, UNIT), KERR_OK);
    assert_int_equal(kflash_program(f, 64, data, UNIT), KERR_OK);
    assert_int_equal(kflash_program(f, PAGE, data, UNIT), KERR_FLASH_TWICE);
}

static void test_alignment(void **state)
{
    (void)state;
    kflash_t *f = ecc_dev();
    uint8_t data[2 * UNIT];
    memset(data, 0, sizeof(data));
    assert_int_equal(kflash_program(f, 8, data, UNIT), KERR_FLASH_ALIGN);
    assert_int_equal(kflash_program(f, 16, data, 8), KERR_FLASH_ALIGN);
    assert_int_equal(kflash_program(f, 16, data, UNIT + 1u), KERR_FLASH_ALIGN);
    assert_int_equal(kflash_erase(f, UNIT), KERR_FLASH_ALIGN);
    assert_int_equal(kflash_erase(f, PAGE + 1u), KERR_FLASH_ALIGN);
    assert_true(all_equal(g_dev.mem, SIZE, 0xFF));
    assert_int_equal(f->ops, 0u);
}

static void test_range(void **state)
{
    (void)state;
    kflash_t *f = ecc_dev();
    uint8_t data[2 * UNIT];
    memset(data, 0, sizeof(data));
    assert_int_equal(kflash_program(f, SIZE - UNIT, data, 2 * UNIT), KERR_FLASH_RANGE);
    assert_int_equal(kflash_program(f, SIZE, data, UNIT), KERR_FLASH_RANGE);
    assert_int_equal(kflash_program(f, 0xFFFFFFF0u, data, 2 * UNIT), KERR_FLASH_RANGE);
    assert_int_equal(kflash_read(f, SIZE - 1u, data, 2), KERR_FLASH_RANGE);
    assert_int_equal(kflash_read(f, 0xFFFFFFFFu, data, 2), KERR_FLASH_RANGE);
    assert_int_equal(kflash_erase(f, SIZE), KERR_FLASH_RANGE);
    assert_int_equal(kflash_erase_range(f, SIZE - PAGE, PAGE + 1u), KERR_FLASH_RANGE);
    assert_true(all_equal(g_dev.mem, SIZE, 0xFF));
    assert_int_equal(kflash_program(f, SIZE - UNIT, data, UNIT), KERR_OK); /* last unit */
    assert_int_equal(kflash_read(f, SIZE, data, 0), KERR_OK);
    assert_int_equal(kflash_program(f, 0, data, 0), KERR_OK);
    assert_int_equal(f->ops, 1u);
}

static void test_multi_page_program_and_read(void **state)
{
    (void)state;
    kflash_t *f = ecc_dev();
    uint8_t data[3 * PAGE], got[3 * PAGE];
    fill_pattern(data, sizeof(data), 3);
    uint32_t off = PAGE - 2 * UNIT;
    assert_int_equal(kflash_program(f, off, data, sizeof(data)), KERR_OK);
    assert_int_equal(kflash_read(f, off, got, sizeof(got)), KERR_OK);
    assert_memory_equal(got, data, sizeof(data));
    assert_true(all_equal(g_dev.mem, off, 0xFF));
    assert_true(all_equal(g_dev.mem + off + sizeof(data), SIZE - off - sizeof(data), 0xFF));
    assert_int_equal(f->stats.programs, 1u);
    assert_int_equal(f->stats.prog_bytes, sizeof(data));
    assert_int_equal(f->ops, 1u);
}

static void test_erase_range(void **state)
{
    (void)state;
    kflash_t *f = ecc_dev();
    memset(g_dev.mem, 0x00, SIZE);
    f = dev_open(PAGE, UNIT, true, false);
    assert_int_equal(kflash_erase_range(f, 300, 300), KERR_OK); /* [300, 600): pages 1, 2 */
    assert_true(all_equal(g_dev.mem, PAGE, 0x00));
    assert_true(all_equal(g_dev.mem + PAGE, 2 * PAGE, 0xFF));
    assert_true(all_equal(g_dev.mem + 3 * PAGE, SIZE - 3 * PAGE, 0x00));
    assert_int_equal(f->stats.erases, 2u);
    assert_int_equal(kflash_erase_range(f, 5, 0), KERR_OK);
    assert_int_equal(f->stats.erases, 2u);
    assert_int_equal(kflash_erase_range(f, 0, SIZE), KERR_OK);
    assert_true(all_equal(g_dev.mem, SIZE, 0xFF));
    assert_int_equal(f->stats.erases, 10u);
}

static void test_bitmap_rebuilt_at_init(void **state)
{
    (void)state;
    ecc_dev();
    g_dev.mem[5 * UNIT + UNIT - 1u] = 0xFE; /* last byte of unit 5 */
    g_dev.mem[9 * UNIT] = 0x00;             /* first byte of unit 9 */
    memset(g_dev.used, 0xFF, sizeof(g_dev.used)); /* stale garbage must be discarded */
    kflash_t *f = dev_open(PAGE, UNIT, true, false);
    uint8_t zero[UNIT];
    memset(zero, 0, sizeof(zero));
    for (uint32_t u = 0; u < 12; u++) {
        kerr_t want = (u == 5 || u == 9) ? KERR_FLASH_TWICE : KERR_OK;
        assert_int_equal(kflash_program(f, u * UNIT, zero, UNIT), want);
    }
}

static int g_cuts;
static void *g_cut_arg;

static void on_cut(kflash_t *f, void *arg)
{
    (void)f;
    g_cuts++;
    g_cut_arg = arg;
}

/* Check that every later operation fails while power is off, then restore it. */
static void expect_dead_then_power_on(kflash_t *f)
{
    uint8_t buf[UNIT];
    memset(buf, 0, sizeof(buf));
    assert_true(f->dead);
    assert_int_equal(kflash_read(f, 0, buf, 1), KERR_FLASH_POWER);
    assert_int_equal(kflash_program(f, SIZE - UNIT, buf, UNIT), KERR_FLASH_POWER);
    assert_int_equal(kflash_erase(f, SIZE - PAGE), KERR_FLASH_POWER);
    assert_int_equal(kflash_erase_range(f, 0, PAGE), KERR_FLASH_POWER);
    kflash_power_on(f);
    assert_false(f->dead);
    assert_int_equal(f->cut_at, 0u);
}

/*
 * A torn program: units before the torn one hold the data, the torn unit holds old bits with a
 * subset of the requested clears, units after it are untouched; torn ones are marked used.
 * Returns how the torn unit looks: 0 erased, 1 complete, 2 partial.
 */
static int check_torn_program(uint32_t seed, uint8_t out_mem[SIZE])
{
    kflash_t *f = ecc_dev();
    uint8_t first[UNIT], data[8 * UNIT];
    memset(first, 0x11, sizeof(first));
    fill_pattern(data, sizeof(data), (uint8_t)seed);
    data[0] = 0x00; /* every unit clears some bits */
    for (uint32_t u = 0; u < 8; u++) {
        data[u * UNIT] = 0x00;
    }
    f->on_cut = on_cut;
    f->on_cut_arg = &g_dev;
    g_cuts = 0;
    kflash_set_powercut(f, 2, seed);
    assert_int_equal(kflash_program(f, 0, first, UNIT), KERR_OK);
    assert_int_equal(kflash_program(f, 2 * UNIT, data, sizeof(data)), KERR_FLASH_POWER);
    assert_int_equal(g_cuts, 1);
    assert_ptr_equal(g_cut_arg, &g_dev);
    assert_int_equal(f->stats.programs, 1u); /* the torn op did not complete */
    assert_memory_equal(g_dev.mem, first, UNIT);

    /* The bitmap names the torn unit: units 2 .. 2+k are used, the rest of the request not. */
    uint32_t k = 0;
    while (k < 8 && (g_dev.used[(2 + k) / 8] >> ((2 + k) % 8) & 1u)) {
        k++;
    }
    assert_true(k >= 1);
    k--;
    for (uint32_t u = k + 1; u < 8; u++) {
        assert_int_equal(g_dev.used[(2 + u) / 8] >> ((2 + u) % 8) & 1u, 0u);
    }
    const uint8_t *m = g_dev.mem + 2 * UNIT;
    assert_memory_equal(m, data, k * UNIT);
    const uint8_t *t = m + k * UNIT;
    for (uint32_t i = 0; i < UNIT; i++) {
        assert_int_equal(t[i] & data[k * UNIT + i], data[k * UNIT + i]); /* only clears */
    }
    int look = all_equal(t, UNIT, 0xFF) ? 0 : memcmp(t, data + k * UNIT, UNIT) == 0 ? 1 : 2;
    assert_true(all_equal(m + (k + 1u) * UNIT, (7u - k) * UNIT, 0xFF));
    assert_true(all_equal(g_dev.mem + 10 * UNIT, SIZE - 10 * UNIT, 0xFF));
    memcpy(out_mem, g_dev.mem, SIZE);

    expect_dead_then_power_on(f);
    assert_int_equal(g_cuts, 1); /* called once */
    /* The torn unit is used even if it reads erased; the unit after it is not. */
    uint8_t zero[UNIT];
    memset(zero, 0, sizeof(zero));
    assert_int_equal(kflash_program(f, (2 + k) * UNIT, zero, UNIT), KERR_FLASH_TWICE);
    if (k < 7) {
        assert_int_equal(kflash_program(f, (3 + k) * UNIT, zero, UNIT), KERR_OK);
    }
    return look;
}

static void test_torn_program(void **state)
{
    (void)state;
    int seen[3] = {0, 0, 0};
    uint8_t a[SIZE], b[SIZE];
    for (uint32_t seed = 1; seed <= 300; seed++) {
        seen[check_torn_program(seed, a)]++;
        check_torn_program(seed, b);
        assert_memory_equal(a, b, SIZE); /* deterministic per seed */
    }
    /* All three looks occur: reads erased, reads complete, partial. */
    assert_true(seen[0] > 10);
    assert_true(seen[1] > 10);
    assert_true(seen[2] > 10);
}

static void test_torn_program_reprogrammable_after_erase(void **state)
{
    (void)state;
    kflash_t *f = ecc_dev();
    uint8_t data[PAGE];
    memset(data, 0x00, sizeof(data));
    kflash_set_powercut(f, 1, 42);
    assert_int_equal(kflash_program(f, 0, data, PAGE), KERR_FLASH_POWER);
    kflash_power_on(f);
    assert_int_equal(kflash_erase(f, 0), KERR_OK);
    assert_int_equal(kflash_program(f, 0, data, PAGE), KERR_OK);
    assert_true(all_equal(g_dev.mem, PAGE, 0x00));
    /* Disarmed: many more operations run without a cut. */
    for (uint32_t p = 1; p < SIZE / PAGE; p++) {
        assert_int_equal(kflash_program(f, p * PAGE, data, PAGE), KERR_OK);
    }
}

static void test_torn_erase(void **state)
{
    (void)state;
    int fates[3] = {0, 0, 0};
    uint8_t first[SIZE];
    for (uint32_t seed = 1; seed <= 40; seed++) {
        for (int rep = 0; rep < 2; rep++) {
            ecc_dev();
            memset(g_dev.mem, 0x00, SIZE);
            kflash_t *f = dev_open(PAGE, UNIT, true, false);
            f->on_cut = on_cut;
            g_cuts = 0;
            kflash_set_powercut(f, 2, seed);
            assert_int_equal(kflash_erase(f, 0), KERR_OK);
            assert_int_equal(kflash_erase(f, 2 * PAGE), KERR_FLASH_POWER);
            assert_int_equal(g_cuts, 1);
            assert_int_equal(f->stats.erases, 1u);
            assert_true(all_equal(g_dev.mem, PAGE, 0xFF));
            assert_true(all_equal(g_dev.mem + PAGE, PAGE, 0x00));
            assert_true(all_equal(g_dev.mem + 3 * PAGE, SIZE - 3 * PAGE, 0x00));
            if (rep == 0) {
                memcpy(first, g_dev.mem, SIZE);
            } else {
                assert_memory_equal(first, g_dev.mem, SIZE);
            }
            for (uint32_t c = 0; c < PAGE; c += 16) {
                const uint8_t *p = g_dev.mem + 2 * PAGE + c;
                fates[all_equal(p, 16, 0xFF) ? 0 : all_equal(p, 16, 0x00) ? 1 : 2]++;
            }
            expect_dead_then_power_on(f);
            /* Every unit of the torn page is used, even those that read erased. */
            uint8_t ff[UNIT];
            memset(ff, 0xFF, sizeof(ff));
            for (uint32_t u = 0; u < PAGE / UNIT; u++) {
                assert_int_equal(kflash_program(f, 2 * PAGE + u * UNIT, ff, UNIT),
                                 KERR_FLASH_TWICE);
            }
            assert_int_equal(kflash_erase(f, 2 * PAGE), KERR_OK);
            assert_int_equal(kflash_program(f, 2 * PAGE, ff, UNIT), KERR_OK);
        }
    }
    assert_true(fates[0] > 50);
    assert_true(fates[1] > 50);
    assert_true(fates[2] > 50);
}

static void test_powercut_counting_and_disarm(void **state)
{
    (void)state;
    kflash_t *f = ecc_dev();
    uint8_t zero[UNIT];
    memset(zero, 0, sizeof(zero));
    kflash_set_powercut(f, 3, 9);
    assert_int_equal(kflash_program(f, 0, zero, UNIT), KERR_OK);
    assert_int_equal(kflash_program(f, 0, zero, UNIT), KERR_FLASH_TWICE); /* not counted */
    assert_int_equal(kflash_program(f, 3, zero, UNIT), KERR_FLASH_ALIGN);  /* not counted */
    assert_int_equal(kflash_erase(f, PAGE), KERR_OK);
    assert_int_equal(f->ops, 2u);
    assert_int_equal(kflash_erase(f, 2 * PAGE), KERR_FLASH_POWER);
    assert_int_equal(f->ops, 3u);
    kflash_power_on(f);

    kflash_set_powercut(f, 2, 9);
    kflash_set_powercut(f, 0, 0); /* disarm; ops reset */
    assert_int_equal(f->ops, 0u);
    for (uint32_t p = 3; p < SIZE / PAGE; p++) {
        assert_int_equal(kflash_erase(f, p * PAGE), KERR_OK);
    }
    assert_int_equal(f->ops, SIZE / PAGE - 3u);
}

/* A scenario for the sweep: erase a page, then program four records one unit each. */
static kerr_t sweep_scenario(kflash_t *f, const uint8_t rec[4][UNIT], uint32_t *out_done)
{
    *out_done = 0;
    kerr_t err = kflash_erase(f, PAGE);
    for (uint32_t i = 0; err == KERR_OK && i < 4; i++) {
        *out_done = i + 1u;
        err = kflash_program(f, PAGE + i * UNIT, rec[i], UNIT);
    }
    return err;
}

/*
 * How power-cut sweeps use the layer: count the operations of a scenario without a cut, then
 * replay it with a cut at each of them; what completed before the cut is intact afterwards.
 */
static void test_sweep_every_cut_point(void **state)
{
    (void)state;
    uint8_t rec[4][UNIT];
    for (int i = 0; i < 4; i++) {
        memset(rec[i], 0x10 * (i + 1), UNIT);
    }
    kflash_t *f = ecc_dev();
    uint32_t done;
    assert_int_equal(sweep_scenario(f, rec, &done), KERR_OK);
    uint32_t total = f->ops;
    assert_int_equal(total, 5u);
    for (uint32_t cut = 1; cut <= total; cut++) {
        f = ecc_dev();
        memset(g_dev.mem + PAGE, 0x00, PAGE); /* old content the erase must remove */
        f = dev_open(PAGE, UNIT, true, false);
        kflash_set_powercut(f, cut, cut * 77u);
        assert_int_equal(sweep_scenario(f, rec, &done), KERR_FLASH_POWER);
        assert_int_equal(f->ops, cut);
        kflash_power_on(f);
        uint8_t got[UNIT];
        for (uint32_t i = 0; i + 2u < cut; i++) { /* records whose program completed */
            assert_int_equal(kflash_read(f, PAGE + i * UNIT, got, UNIT), KERR_OK);
            assert_memory_equal(got, rec[i], UNIT);
        }
        /* Re-running the scenario after the reboot always succeeds (erase first). */
        assert_int_equal(sweep_scenario(f, rec, &done), KERR_OK);
        assert_memory_equal(g_dev.mem + PAGE, rec, sizeof(rec));
    }
}

/* Units larger than the layer's 64-byte work buffer, torn and whole. */
static void test_large_program_units(void **state)
{
    (void)state;
    kflash_t *f = dev_open(PAGE, 128u, true, true);
    uint8_t data[PAGE];
    fill_pattern(data, sizeof(data), 9);
    data[0] = data[128] = 0;
    assert_int_equal(kflash_program(f, 0, data, PAGE), KERR_OK);
    assert_memory_equal(g_dev.mem, data, PAGE);
    assert_int_equal(kflash_program(f, 128, data, 128), KERR_FLASH_TWICE);
    kflash_set_powercut(f, 1, 5);
    assert_int_equal(kflash_program(f, PAGE, data, PAGE), KERR_FLASH_POWER);
    kflash_power_on(f);
    for (uint32_t i = 0; i < PAGE; i++) {
        assert_int_equal(g_dev.mem[PAGE + i] & data[i], data[i]);
    }
}

/* A backend that fails on demand, wrapping the RAM one. */
static bool g_fail_read, g_fail_write;

static kerr_t flaky_read(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    return g_fail_read ? KERR_IO : kflash_ram_backend.read(ctx, off, buf, len);
}

static kerr_t flaky_write(void *ctx, uint32_t off, const void *buf, uint32_t len)
{
    return g_fail_write ? KERR_IO : kflash_ram_backend.write(ctx, off, buf, len);
}

static const kflash_backend_t flaky = {flaky_read, flaky_write};

static void test_backend_failures(void **state)
{
    (void)state;
    dev_t *d = &g_dev;
    kflash_geometry_t geo = {SIZE, PAGE, UNIT, true};
    uint8_t zero[UNIT] = {0};
    kflash_ram_init(&d->ram, d->mem, SIZE, true);
    g_fail_read = true;
    g_fail_write = false;
    assert_int_equal(kflash_init(&d->f, &flaky, &d->ram, &geo, d->used, sizeof(d->used)),
                     KERR_IO);
    g_fail_read = false;
    assert_int_equal(kflash_init(&d->f, &flaky, &d->ram, &geo, d->used, sizeof(d->used)),
                     KERR_OK);
    g_fail_read = true;
    assert_int_equal(kflash_read(&d->f, 0, zero, 1), KERR_IO);
    assert_int_equal(kflash_program(&d->f, 0, zero, UNIT), KERR_IO);
    g_fail_read = false;
    g_fail_write = true;
    assert_int_equal(kflash_program(&d->f, 0, zero, UNIT), KERR_IO);
    assert_int_equal(kflash_erase(&d->f, 0), KERR_IO);
    g_fail_write = false;
    assert_int_equal(d->f.stats.programs, 0u);
    assert_int_equal(d->f.stats.erases, 0u);
    /* A failed write may have reached the cells: the unit must be erased again. */
    assert_int_equal(kflash_program(&d->f, 0, zero, UNIT), KERR_FLASH_TWICE);
    assert_int_equal(kflash_erase(&d->f, 0), KERR_OK);
    assert_int_equal(kflash_program(&d->f, 0, zero, UNIT), KERR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_rejects_bad_geometry),
        cmocka_unit_test(test_erase_sets_ff_only_in_its_page),
        cmocka_unit_test(test_program_clears_bits_and_refuses_0_to_1),
        cmocka_unit_test(test_bits_checked_across_whole_request),
        cmocka_unit_test(test_program_once),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_multi_page_program_and_read),
        cmocka_unit_test(test_erase_range),
        cmocka_unit_test(test_bitmap_rebuilt_at_init),
        cmocka_unit_test(test_torn_program),
        cmocka_unit_test(test_torn_program_reprogrammable_after_erase),
        cmocka_unit_test(test_torn_erase),
        cmocka_unit_test(test_powercut_counting_and_disarm),
        cmocka_unit_test(test_sweep_every_cut_point),
        cmocka_unit_test(test_large_program_units),
        cmocka_unit_test(test_backend_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

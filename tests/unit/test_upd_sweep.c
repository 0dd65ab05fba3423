/*
 * Power-cut sweeps of the update engine on the strict NOR model (DESIGN.md "Flash truths").
 *
 * Two scenarios, each driven the way a device would (stage what is missing, finish, apply, then
 * confirm in the update scenario or fail the trial in the rollback scenario):
 *   - update:   old image installed -> staging -> apply -> trial -> confirm
 *   - rollback: new image on trial  -> rollback (the app "crashed") -> old image
 * For every flash operation of a scenario, on either part (internal flash or QSPI: a cut is
 * global, the other part dies with it), power is cut during that operation with a seeded torn
 * pattern. The device then boots: after upd_boot() the region must be exactly the old or the
 * new image, the one its journal state says, and the journal must re-mount to the same state;
 * then it is driven to completion and must end where the scenario ends. Second cuts: from a first
 * cut, power is cut again at every operation of the recovery, then recovery runs clean. CI cuts
 * every operation once and the recoveries of a sample of first cuts; `make soak`
 * (scripts/soak.sh) cuts the recovery of every first cut with every seed, plus random double cuts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "keel/kcrypto.h"
#include "keel/delta.h"
#include "test_upd_fixture.h"

#define OLD_LEN 40000u
#define NEW_LEN 48000u
#define NEW_VERSION 0x00020000u
#define NEW_COUNTER 7u
#define DRIVE_STEPS 16

/* SC_APPLY_FAIL: a staged block decays after staging: the apply stops and rolls back by itself.
 * SC_DELTA: the update as a delta bundle (docs/delta.md): the patch is staged, decoded at
 * stage_finish into sealed pages and a derived block hash table, then applied as pages are. */
typedef enum { SC_UPDATE, SC_ROLLBACK, SC_APPLY_FAIL, SC_DELTA } scenario_t;

#define DECAYED_BLOCK 4u /* changed pages: 1, 3, 4, 5, 9; two are written before the failure */

static fx_dev_t g_dev, g_base, g_cut1;
static uint8_t g_old[FX_REGION], g_new[FX_REGION];
static uint8_t g_bundle[FX_BUNDLE_MAX];
static uint32_t g_len;
static uint8_t *g_patch; /* SC_DELTA: the payload */
static size_t g_patch_len;
static bool g_delta;

typedef struct tally {
    uint32_t first_cuts;
    uint32_t second_cuts;
    uint32_t random_pairs; /* random double cuts (KEEL_SWEEP_RANDOM) */
    uint32_t recoveries;
    uint32_t ops[2];       /* operations of the scenario run clean: internal flash, QSPI */
} tally_t;

/* --- device behaviour ------------------------------------------------------------------------- */

static kerr_t stage_missing(upd_t *u)
{
    for (uint32_t i = 0; i < FX_PAGES; i++) {
        kerr_t need = upd_block_needed(u, i);
        if (need < 0) {
            return need;
        }
        if (need == 1 && g_delta) { /* block i of a delta is the patch's i-th page, 0xFF after */
            static uint8_t b[FX_PAGE];
            size_t at = (size_t)i * FX_PAGE, n = g_patch_len - at < FX_PAGE ? g_patch_len - at : FX_PAGE;
            memset(b, 0xFF, sizeof(b));
            memcpy(b, g_patch + at, n);
            kerr_t err = upd_stage_block(u, i, b, FX_PAGE);
            if (err != KERR_OK) {
                return err;
            }
        } else if (need == 1) {
            kerr_t err = upd_stage_block(u, i, g_new + i * FX_PAGE, FX_PAGE);
            if (err != KERR_OK) {
                return err;
            }
        }
    }
    return upd_stage_finish(u);
}

/*
 * With g_fill_to set, the journal's page is filled up to that slot first (other records of the
 * same boot), so the update crosses a journal page while it runs.
 */
static uint32_t g_fill_to;

static kerr_t fill_journal(upd_t *u)
{
    kerr_t err = KERR_OK;
    for (uint32_t n = 0; err == KERR_OK && n < FX_PAGE / UPD_JREC_SIZE && u->j.fresh == false &&
                         u->j.next_slot < g_fill_to;
         n++) {
        err = upd_journal_append(&u->j, &u->ps);
    }
    if (err == KERR_OK && g_fill_to != 0u && u->j.fresh) {
        err = upd_journal_append(&u->j, &u->ps); /* opens this boot's page, then fill */
        for (uint32_t n = 0; err == KERR_OK && n < FX_PAGE / UPD_JREC_SIZE &&
                             u->j.next_slot < g_fill_to;
             n++) {
            err = upd_journal_append(&u->j, &u->ps);
        }
    }
    return err;
}

/* What the microvisor and the network do next, until the scenario's end state. */
static kerr_t drive(fx_dev_t *d, scenario_t sc)
{
    upd_t *u = &d->upd;
    for (int step = 0; step < DRIVE_STEPS; step++) {
        kerr_t err;
        switch (u->ps.phase) {
        case UPD_PHASE_IDLE:
            if ((sc != SC_UPDATE && sc != SC_DELTA) || u->ps.version == NEW_VERSION) {
                return KERR_OK;
            }
            err = fill_journal(u);
            if (err == KERR_OK) {
                err = upd_stage_begin(u, g_bundle, g_len);
            }
            break;
        case UPD_PHASE_STAGING:
            err = stage_missing(u);
            break;
        case UPD_PHASE_STAGED:
            err = upd_apply(u);
            if (sc == SC_APPLY_FAIL && err == KERR_UPD_VERIFY && u->ps.phase == UPD_PHASE_IDLE) {
                err = KERR_OK; /* refused to finish and rolled back: what this scenario expects */
            }
            break;
        case UPD_PHASE_TRIAL:
            err = sc == SC_UPDATE || sc == SC_DELTA ? upd_confirm(u)
                                                     : upd_rollback(u, UPD_REASON_CRASH);
            break;
        default:
            err = upd_boot(u);
            break;
        }
        if (err != KERR_OK) {
            return err;
        }
    }
    return KERR_INVAL; /* did not converge */
}

/* --- checks ------------------------------------------------------------------------------------ */

/* Right after a boot: an exact image, the one the journal state stands for; journal re-mounts. */
static void check_booted(fx_dev_t *d)
{
    bool is_old = memcmp(d->imem, g_old, FX_REGION) == 0;
    bool is_new = memcmp(d->imem, g_new, FX_REGION) == 0;
    const upd_pstate_t *ps = &d->upd.ps;
    switch (ps->phase) {
    case UPD_PHASE_IDLE:
        assert_true(ps->version == NEW_VERSION ? is_new : is_old);
        break;
    case UPD_PHASE_STAGING:
    case UPD_PHASE_STAGED:
        assert_true(is_old);
        break;
    case UPD_PHASE_TRIAL:
        assert_true(is_new);
        break;
    default:
        fail_msg("boot left phase %u in flight", ps->phase);
    }
    upd_journal_t j;
    upd_pstate_t again;
    assert_int_equal(upd_journal_mount(&j, &d->ifl, FX_REGION, &again), KERR_OK);
    assert_memory_equal(&again, ps, sizeof(again));
    assert_int_equal(j.seq, d->upd.j.seq);
}

static void check_end(fx_dev_t *d, scenario_t sc)
{
    const upd_pstate_t *ps = &d->upd.ps;
    assert_int_equal(ps->phase, UPD_PHASE_IDLE);
    if (sc == SC_UPDATE || sc == SC_DELTA) {
        assert_int_equal(ps->result, UPD_RESULT_SUCCESS);
        assert_int_equal(ps->version, NEW_VERSION);
        assert_int_equal(ps->counter, NEW_COUNTER);
        assert_memory_equal(d->imem, g_new, FX_REGION);
    } else {
        assert_int_equal(ps->result, UPD_RESULT_FAILED);
        assert_int_equal(ps->reason, sc == SC_ROLLBACK ? UPD_REASON_CRASH : UPD_REASON_VERIFY);
        assert_memory_equal(d->imem, g_old, FX_REGION);
    }
    uint8_t h[32];
    assert_int_equal(upd_region_sha(&d->upd, h), KERR_OK); /* the engine's own measurement */
    uint8_t want[32];
    kc_sha256(sc == SC_UPDATE || sc == SC_DELTA ? g_new : g_old, FX_REGION, want);
    assert_memory_equal(h, want, 32);
}

/* --- snapshots ---------------------------------------------------------------------------------- */

static void snap_take(fx_dev_t *to)
{
    memcpy(to, &g_dev, sizeof(*to));
}

/* Restore g_dev (flash contents, program-once state) with power on, and restart its engine. */
static void snap_restore(const fx_dev_t *from)
{
    if (g_dev.open) {
        upd_close(&g_dev.upd);
    }
    memcpy(&g_dev, from, sizeof(g_dev));
    g_dev.open = false; /* the copied engine's GCM context belongs to a closed engine */
    kflash_power_on(&g_dev.ifl);
    kflash_power_on(&g_dev.qfl);
    assert_int_equal(fx_open_engine(&g_dev), KERR_OK);
}

static void arm(kflash_t *cut, uint32_t n, uint32_t seed)
{
    kflash_set_powercut(&g_dev.ifl, 0, 0);
    kflash_set_powercut(&g_dev.qfl, 0, 0);
    if (cut != NULL) {
        kflash_set_powercut(cut, n, seed);
    }
}

static kflash_t *part(int which)
{
    return which == 0 ? &g_dev.ifl : &g_dev.qfl;
}

/*
 * Boot (power must be on: kflash_power_on() would disarm a cut) and drive to the end; returns
 * the first error (a cut when one is armed).
 */
static kerr_t recover(scenario_t sc)
{
    kerr_t err = fx_open_engine(&g_dev);
    if (err == KERR_OK) {
        err = upd_boot(&g_dev.upd);
    }
    if (err == KERR_OK) {
        check_booted(&g_dev);
        err = drive(&g_dev, sc);
    }
    return err;
}

/* --- the sweep ---------------------------------------------------------------------------------- */

/*
 * Old: 40000 bytes of content plus a page of old data at page 9. New: pages 1 and 3 edited, grown
 * into pages 4 and 5, page 9 erased (a page that changes without staged data).
 */
static void setup_images(void)
{
    fx_image(g_old, OLD_LEN, 11);
    for (uint32_t i = 0; i < FX_PAGE; i++) {
        g_old[9u * FX_PAGE + i] = (uint8_t)(i * 13u + 1u);
    }
    fx_image(g_new, NEW_LEN, 11);
    g_new[1u * FX_PAGE + 100u] ^= 0x5Au;
    g_new[3u * FX_PAGE + 7u] ^= 0xA5u;
    fx_bundle_opts_t o = fx_opts(NEW_VERSION, NEW_COUNTER, NEW_LEN);
    g_len = fx_bundle(g_new, &o, g_bundle);
    assert_true(g_len > 0u);
    free(g_patch);
    g_patch = NULL;
    if (g_delta) { /* the same update as a patch against the whole old region */
        kdlt_enc_opts_t eo = {0x00200000u, NULL, 0};
        assert_int_equal(kdlt_encode(g_old, FX_REGION, g_new, NEW_LEN, &eo, &g_patch, &g_patch_len),
                         KERR_OK);
        kbdl_manifest_t m;
        assert_int_equal(kbdl_decode(g_bundle, g_len, &m), KERR_OK);
        uint8_t base[32];
        kc_sha256(g_old, FX_REGION, base);
        assert_int_equal(kbdl_build_delta(&m, g_new, FX_REGION, 0, NEW_LEN, base, g_patch,
                                          (uint32_t)g_patch_len, fx_priv_fleet, g_bundle,
                                          sizeof(g_bundle), &g_len),
                         KERR_OK);
    }
}

/* g_base: the device where the scenario starts. */
static void setup_base(scenario_t sc)
{
    setup_images();
    assert_int_equal(fx_dev_init(&g_dev, g_old), KERR_OK);
    if (sc == SC_APPLY_FAIL) {
        assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, g_len), KERR_OK);
        assert_int_equal(stage_missing(&g_dev.upd), KERR_OK);
        g_dev.qmem[UPD_QSPI_META + DECAYED_BLOCK * FX_PAGE + 99u] ^= 0x08u; /* bit rot */
        assert_int_equal(fx_reboot(&g_dev), KERR_OK);
        assert_int_equal(g_dev.upd.ps.phase, UPD_PHASE_STAGED);
    }
    if (sc == SC_ROLLBACK) {
        for (int i = 0; i < DRIVE_STEPS && g_dev.upd.ps.phase != UPD_PHASE_TRIAL; i++) {
            kerr_t err = g_dev.upd.ps.phase == UPD_PHASE_IDLE     ? upd_stage_begin(&g_dev.upd, g_bundle, g_len)
                         : g_dev.upd.ps.phase == UPD_PHASE_STAGING ? stage_missing(&g_dev.upd)
                                                                   : upd_apply(&g_dev.upd);
            assert_int_equal(err, KERR_OK);
        }
        assert_int_equal(fx_reboot(&g_dev), KERR_OK); /* the trial app runs after a boot */
        assert_int_equal(g_dev.upd.ps.phase, UPD_PHASE_TRIAL);
    }
    snap_take(&g_base);
}

/*
 * second: 0 none, 1 every operation of every recovery, n > 1 every operation of the recovery
 * from every n-th first cut (plus the first and last).
 */
static void sweep(scenario_t sc, const uint32_t *seeds, size_t nseeds, uint32_t second,
                  tally_t *t)
{
    setup_base(sc);
    arm(NULL, 0, 0);
    assert_int_equal(drive(&g_dev, sc), KERR_OK);
    check_end(&g_dev, sc);
    if (g_fill_to != 0u) {
        assert_true(g_dev.upd.j.erases >= 2u); /* the update did cross a journal page */
    }
    uint32_t ops[2] = {g_dev.ifl.ops, g_dev.qfl.ops};
    assert_true(ops[0] > 0u); /* a rollback writes no QSPI: ops[1] may be 0 */
    t->ops[0] = ops[0];
    t->ops[1] = ops[1];
    for (size_t s = 0; s < nseeds; s++) {
        for (int p = 0; p < 2; p++) {
            for (uint32_t k = 1; k <= ops[p]; k++) {
                snap_restore(&g_base);
                arm(part(p), k, seeds[s] * 7919u + k * 31u + (uint32_t)p);
                assert_int_equal(drive(&g_dev, sc), KERR_FLASH_POWER);
                t->first_cuts++;
                snap_take(&g_cut1);
                kflash_power_on(&g_dev.ifl);
                kflash_power_on(&g_dev.qfl);
                arm(NULL, 0, 0);
                assert_int_equal(recover(sc), KERR_OK);
                check_end(&g_dev, sc);
                t->recoveries++;
                uint32_t rops[2] = {g_dev.ifl.ops, g_dev.qfl.ops};
                bool do_second = second == 1u || (second > 1u && (k % second == 1u || k == ops[p]));
                for (int p2 = 0; do_second && p2 < 2; p2++) {
                    for (uint32_t j = 1; j <= rops[p2]; j++) {
                        snap_restore(&g_cut1);
                        arm(part(p2), j, seeds[s] * 104729u + k * 131u + j);
                        assert_int_equal(recover(sc), KERR_FLASH_POWER);
                        t->second_cuts++;
                        kflash_power_on(&g_dev.ifl);
                        kflash_power_on(&g_dev.qfl);
                        arm(NULL, 0, 0);
                        assert_int_equal(recover(sc), KERR_OK);
                        check_end(&g_dev, sc);
                        t->recoveries++;
                    }
                }
            }
        }
    }
    static const char *const names[] = {"update", "rollback", "apply fails, rolls back",
                                        "delta update"};
    printf("  %s: %u+%u operations (internal+QSPI), %u first cuts, %u second cuts, "
           "%u recoveries checked\n",
           names[sc], ops[0], ops[1], t->first_cuts,
           t->second_cuts, t->recoveries);
}

static const uint32_t g_seeds[] = {1, 2, 3, 4};

/*
 * n random double cuts: a first cut at a random operation of a random part, then a second cut at
 * a random operation of the recovery from it (on either part), then a clean recovery that must end
 * where the scenario ends. Every draw is reproducible from KEEL_SWEEP_SEED.
 */
static void random_pairs(scenario_t sc, uint32_t n, uint32_t seed, tally_t *t)
{
    uint32_t r = seed | 1u;
    for (uint32_t tries = 0; t->random_pairs < n && tries < 4u * n; tries++) {
        int p = (int)(xs32(&r) % 2u);
        if (t->ops[p] == 0u) {
            p = 0; /* a rollback writes no QSPI */
        }
        uint32_t k = 1u + xs32(&r) % t->ops[p];
        snap_restore(&g_base);
        arm(part(p), k, xs32(&r));
        assert_int_equal(drive(&g_dev, sc), KERR_FLASH_POWER);
        snap_take(&g_cut1);
        /* How many operations the recovery from this cut makes, to draw the second cut in it. */
        kflash_power_on(&g_dev.ifl);
        kflash_power_on(&g_dev.qfl);
        arm(NULL, 0, 0);
        assert_int_equal(recover(sc), KERR_OK);
        uint32_t rops[2] = {g_dev.ifl.ops, g_dev.qfl.ops};
        if (rops[0] == 0u && rops[1] == 0u) {
            /* Nothing left to write after this cut (the end of a rollback): no second cut to make. */
            check_end(&g_dev, sc);
            t->recoveries++;
            continue;
        }
        int p2 = (int)(xs32(&r) % 2u);
        if (rops[p2] == 0u) {
            p2 = 1 - p2;
        }
        uint32_t j = 1u + xs32(&r) % rops[p2];
        snap_restore(&g_cut1);
        arm(part(p2), j, xs32(&r));
        assert_int_equal(recover(sc), KERR_FLASH_POWER);
        kflash_power_on(&g_dev.ifl);
        kflash_power_on(&g_dev.qfl);
        arm(NULL, 0, 0);
        assert_int_equal(recover(sc), KERR_OK);
        check_end(&g_dev, sc);
        t->random_pairs++;
        t->recoveries += 2u;
    }
    assert_int_equal(t->random_pairs, n);
}

/*
 * CI: every first cut on both parts with the first seed, each n-th of them (`second`; 1 = all)
 * followed by a second cut at every operation of its recovery, then every first cut with more
 * seeds. `make soak` (KEEL_SWEEP_DEEP=1): second cuts after every first cut with every seed, and
 * KEEL_SWEEP_RANDOM random double cuts (KEEL_SWEEP_SEED). A brick is a failed check: the run stops
 * there, so a finished run has 0. The SOAK line is what scripts/soak.sh reports.
 */
static void run_sweeps(scenario_t sc, const char *name, uint32_t second, size_t more_seeds)
{
    tally_t t = {0};
    clock_t c0 = clock();
    const char *deep = getenv("KEEL_SWEEP_DEEP");
    bool all = deep != NULL && deep[0] == '1';
    sweep(sc, g_seeds, all ? 1u + more_seeds : 1u, all ? 1u : second, &t);
    if (!all) {
        sweep(sc, g_seeds + 1, more_seeds, 0, &t);
    }
    const char *nr = getenv("KEEL_SWEEP_RANDOM"), *sd = getenv("KEEL_SWEEP_SEED");
    uint32_t n = nr != NULL ? (uint32_t)strtoul(nr, NULL, 10) : 0u;
    if (n > 0u) {
        random_pairs(sc, n, sd != NULL ? (uint32_t)strtoul(sd, NULL, 10) : 1u, &t);
    }
    printf("  %.1f s CPU\n", (double)(clock() - c0) / CLOCKS_PER_SEC);
    printf("SOAK %s ops_internal=%u ops_qspi=%u first_cuts=%u second_cuts=%u random_double_cuts=%u "
           "recoveries=%u bricks=0\n",
           name, t.ops[0], t.ops[1], t.first_cuts, t.second_cuts, t.random_pairs, t.recoveries);
}

static void test_sweep_update(void **state)
{
    (void)state;
    run_sweeps(SC_UPDATE, "update", 4, 3);
}

/* The update crosses a journal page boundary (page erase mid-update). */
static void test_sweep_update_journal_wrap(void **state)
{
    (void)state;
    g_fill_to = FX_PAGE / UPD_JREC_SIZE - 4u; /* the 5th record of the update wraps */
    run_sweeps(SC_UPDATE, "update-journal-wrap", 16, 1);
    g_fill_to = 0;
}

static void test_sweep_rollback(void **state)
{
    (void)state;
    run_sweeps(SC_ROLLBACK, "rollback", 2, 3);
}

/* The rollback an apply starts by itself (from APPLYING) is as power-cut safe as the other. */
static void test_sweep_apply_fails(void **state)
{
    (void)state;
    run_sweeps(SC_APPLY_FAIL, "apply-fails-rollback", 4, 3);
}

/* The update as a delta: staging decodes the patch (two passes, sealed pages and table). */
static void test_sweep_delta(void **state)
{
    (void)state;
    g_delta = true;
    run_sweeps(SC_DELTA, "delta", 2, 1);
    g_delta = false;
}

static int teardown(void **state)
{
    (void)state;
    free(g_patch);
    g_patch = NULL;
    if (g_dev.open) {
        upd_close(&g_dev.upd);
        g_dev.open = false;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sweep_update, teardown),
        cmocka_unit_test_teardown(test_sweep_update_journal_wrap, teardown),
        cmocka_unit_test_teardown(test_sweep_rollback, teardown),
        cmocka_unit_test_teardown(test_sweep_apply_fails, teardown),
        cmocka_unit_test_teardown(test_sweep_delta, teardown),
    };
    /* KEEL_SWEEP_ONLY=test_sweep_delta (a cmocka test name pattern) runs one sweep. */
    if (getenv("KEEL_SWEEP_ONLY") != NULL) {
        cmocka_set_test_filter(getenv("KEEL_SWEEP_ONLY"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}

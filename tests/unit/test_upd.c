/*
 * The update engine without power cuts: the whole life of an update, inspect-then-execute (a
 * refused bundle writes nothing), state rules, tampering with staged and saved copies,
 * resumable staging, anti-rollback after confirm, the journal's record rules, and no plaintext of
 * either image in QSPI.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/crc32.h"
#include "test_upd_fixture.h"

#define OLD_LEN 40000u
#define NEW_LEN 48000u

static fx_dev_t g_dev;
static uint8_t g_old[FX_REGION], g_new[FX_REGION];
static uint8_t g_bundle[FX_BUNDLE_MAX];

/* Old image: 40000 bytes; new: a byte changed in pages 1 and 3, grown to 48000 bytes (page 5). */
static uint32_t setup_images(uint32_t counter)
{
    fx_image(g_old, OLD_LEN, 11);
    fx_image(g_new, NEW_LEN, 11);
    g_new[1u * FX_PAGE + 100u] ^= 0x5Au;
    g_new[3u * FX_PAGE + 7u] ^= 0xA5u;
    fx_bundle_opts_t o = fx_opts(0x00020000u, counter, NEW_LEN);
    uint32_t n = fx_bundle(g_new, &o, g_bundle);
    assert_true(n > 0u);
    assert_int_equal(fx_dev_init(&g_dev, g_old), KERR_OK);
    return n;
}

static void stage_all(fx_dev_t *d, const uint8_t *img)
{
    for (uint32_t i = 0; i < FX_PAGES; i++) {
        kerr_t need = upd_block_needed(&d->upd, i);
        assert_true(need == 0 || need == 1);
        if (need == 1) {
            assert_int_equal(upd_stage_block(&d->upd, i, img + i * FX_PAGE, FX_PAGE), KERR_OK);
        }
    }
}

/* Stage img completely and apply it: the device ends on trial. */
static void update_to_trial(uint32_t n, const uint8_t *img)
{
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_OK);
    stage_all(&g_dev, img);
    assert_int_equal(upd_stage_finish(&g_dev.upd), KERR_OK);
    assert_int_equal(upd_apply(&g_dev.upd), KERR_OK);
}

static upd_phase_t phase(void)
{
    upd_status_t st;
    upd_status(&g_dev.upd, &st);
    return st.phase;
}

static void test_full_update_life(void **state)
{
    (void)state;
    uint32_t n = setup_images(3);
    upd_plan_t plan;
    assert_int_equal(upd_inspect(&g_dev.upd, g_bundle, n, &plan), KERR_OK);
    assert_int_equal(plan.changed, 4u); /* pages 1 and 3 edited, 4 and 5 grown into */
    assert_int_equal(plan.to_stage, 4u);
    assert_false(plan.nothing_to_do);
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_OK);
    assert_int_equal(phase(), UPD_PHASE_STAGING);
    upd_status_t st;
    upd_status(&g_dev.upd, &st);
    assert_int_equal(st.blocks_needed, 4u);
    assert_int_equal(st.staging_version, 0x00020000u);
    stage_all(&g_dev, g_new);
    assert_int_equal(upd_stage_finish(&g_dev.upd), KERR_OK);
    assert_int_equal(phase(), UPD_PHASE_STAGED);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION); /* staging never touches the app */
    uint32_t erases_before = g_dev.ifl.stats.erases, jerases_before = g_dev.upd.j.erases;
    assert_int_equal(upd_apply(&g_dev.upd), KERR_OK);
    assert_int_equal(phase(), UPD_PHASE_TRIAL);
    assert_memory_equal(g_dev.imem, g_new, FX_REGION);
    assert_int_equal(g_dev.upd.ctr.page_erases, 4u);
    assert_int_equal(g_dev.upd.ctr.page_programs, 4u);
    /* app pages + journal page erases, nothing else on internal flash */
    assert_int_equal(g_dev.ifl.stats.erases - erases_before,
                     4u + g_dev.upd.j.erases - jerases_before);
    /* A reboot in trial keeps the trial (re-verified) */
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    assert_int_equal(phase(), UPD_PHASE_TRIAL);
    assert_int_equal(upd_confirm(&g_dev.upd), KERR_OK);
    upd_status(&g_dev.upd, &st);
    assert_int_equal(st.phase, UPD_PHASE_IDLE);
    assert_int_equal(st.result, UPD_RESULT_SUCCESS);
    assert_int_equal(st.counter, 3u);
    assert_int_equal(st.version, 0x00020000u);
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    upd_status(&g_dev.upd, &st);
    assert_int_equal(st.phase, UPD_PHASE_IDLE);
    assert_int_equal(st.counter, 3u);
    /* Anti-rollback: the confirmed counter is the floor now, whatever the config says. */
    fx_bundle_opts_t o = fx_opts(0x00010000u, 2, OLD_LEN);
    n = fx_bundle(g_old, &o, g_bundle);
    assert_int_equal(upd_inspect(&g_dev.upd, g_bundle, n, &(upd_plan_t){0}), KERR_BDL_COUNTER);
}

/* In: any 32-byte piece of the content of page `page` of img at one of 8 places is in QSPI. */
static bool qspi_holds_piece(const uint8_t *img, uint32_t page, uint32_t content_len)
{
    for (uint32_t k = 0; k < 8u; k++) {
        uint32_t off = page * FX_PAGE + k * (FX_PAGE / 8u);
        if (off + 32u > content_len) {
            break;
        }
        if (memmem(g_dev.qmem, sizeof(g_dev.qmem), img + off, 32u) != NULL) {
            return true;
        }
    }
    return false;
}

/*
 * External flash is outside the secure perimeter (anyone can read the QSPI chip): what the update
 * keeps there, the staged new pages and the saved old ones, must not be readable. The pieces
 * searched for are pseudo-random content: found means stored in clear.
 */
static void test_qspi_holds_no_plaintext(void **state)
{
    (void)state;
    uint32_t n = setup_images(3);
    static const uint32_t changed[] = {1, 3, 4, 5};
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_OK);
    stage_all(&g_dev, g_new);
    assert_int_equal(upd_stage_finish(&g_dev.upd), KERR_OK);
    /* The positive control: the search finds a page that is there in clear. */
    memcpy(g_dev.qmem + sizeof(g_dev.qmem) - FX_PAGE, g_new + 2u * FX_PAGE, FX_PAGE);
    assert_true(qspi_holds_piece(g_new, 2, NEW_LEN));
    memset(g_dev.qmem + sizeof(g_dev.qmem) - FX_PAGE, 0xFF, FX_PAGE);
    for (uint32_t i = 0; i < 4u; i++) {
        assert_false(qspi_holds_piece(g_new, changed[i], NEW_LEN)); /* staged */
    }
    assert_int_equal(upd_apply(&g_dev.upd), KERR_OK);
    assert_int_equal(phase(), UPD_PHASE_TRIAL);
    for (uint32_t i = 0; i < 4u; i++) {
        assert_false(qspi_holds_piece(g_new, changed[i], NEW_LEN));
        assert_false(qspi_holds_piece(g_old, changed[i], OLD_LEN)); /* saved for a rollback */
    }
    /* A rollback restores from those saved copies: they were real. */
    assert_int_equal(upd_rollback(&g_dev.upd, UPD_REASON_OPERATOR), KERR_OK);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION);
}

static void test_rollback_restores_old(void **state)
{
    (void)state;
    uint32_t n = setup_images(1);
    update_to_trial(n, g_new);
    assert_int_equal(upd_rollback(&g_dev.upd, UPD_REASON_CRASH), KERR_OK);
    upd_status_t st;
    upd_status(&g_dev.upd, &st);
    assert_int_equal(st.phase, UPD_PHASE_IDLE);
    assert_int_equal(st.result, UPD_RESULT_FAILED);
    assert_int_equal(st.reason, UPD_REASON_CRASH);
    assert_int_equal(st.counter, 0u);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION);
    assert_int_equal(upd_confirm(&g_dev.upd), KERR_UPD_STATE);
}

/* Inspect-then-execute: a refused bundle leaves both flash parts untouched (no operation). */
static void test_refused_bundles_write_nothing(void **state)
{
    (void)state;
    setup_images(5);
    struct {
        fx_bundle_opts_t o;
        kerr_t want;
    } cases[] = {
        {fx_opts(2, 4, NEW_LEN), KERR_BDL_COUNTER},
        {{2, 5, FX_UV_VERSION + 1u, FX_DEVICE_TYPE, fx_priv_fleet, NEW_LEN}, KERR_BDL_UV_VERSION},
        {{2, 5, FX_UV_VERSION, 77u, fx_priv_fleet, NEW_LEN}, KERR_BDL_DEVICE},
        {{2, 5, FX_UV_VERSION, FX_DEVICE_TYPE, fx_priv_other, NEW_LEN}, KERR_BDL_KEY},
    };
    g_dev.cfg.trust.installed_counter = 5;
    assert_int_equal(fx_open_engine(&g_dev), KERR_OK);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint32_t n = fx_bundle(g_new, &cases[c].o, g_bundle);
        kflash_set_powercut(&g_dev.ifl, 0, 0);
        kflash_set_powercut(&g_dev.qfl, 0, 0);
        assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), cases[c].want);
        assert_int_equal(g_dev.ifl.ops + g_dev.qfl.ops, 0u);
    }
    uint32_t n = fx_bundle(g_new, &(fx_bundle_opts_t){2, 5, FX_UV_VERSION, FX_DEVICE_TYPE,
                                                      fx_priv_fleet, NEW_LEN}, g_bundle);
    g_bundle[200] ^= 1u; /* a signed byte */
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_BDL_SIGNATURE);
    g_bundle[200] ^= 1u;
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n - 5u), KERR_BDL_TRUNCATED);
    assert_int_equal(g_dev.ifl.ops + g_dev.qfl.ops, 0u);
    assert_int_equal(phase(), UPD_PHASE_IDLE);
    /* A layer for another region size is unsupported by this device. */
    g_dev.cfg.region_len = FX_REGION - FX_PAGE;
    assert_int_equal(fx_open_engine(&g_dev), KERR_OK);
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_BDL_UNSUPPORTED);
}

static void test_state_rules_and_bad_blocks(void **state)
{
    (void)state;
    uint32_t n = setup_images(1);
    upd_t *u = &g_dev.upd;
    assert_int_equal(upd_apply(u), KERR_UPD_STATE);
    assert_int_equal(upd_confirm(u), KERR_UPD_STATE);
    assert_int_equal(upd_rollback(u, 1), KERR_UPD_STATE);
    assert_int_equal(upd_stage_finish(u), KERR_UPD_STATE);
    assert_int_equal(upd_stage_block(u, 1, g_new + FX_PAGE, FX_PAGE), KERR_UPD_STATE);
    assert_int_equal(upd_stage_begin(u, g_bundle, n), KERR_OK);
    assert_int_equal(upd_stage_block(u, 1, g_new, FX_PAGE), KERR_UPD_BLOCK); /* wrong data */
    assert_int_equal(upd_stage_block(u, FX_PAGES, g_new, FX_PAGE), KERR_RANGE);
    assert_int_equal(upd_stage_block(u, 1, g_new + FX_PAGE, 100), KERR_RANGE);
    assert_int_equal(upd_stage_finish(u), KERR_UPD_INCOMPLETE);
    assert_int_equal(upd_apply(u), KERR_UPD_STATE);
    assert_int_equal(upd_stage_block(u, 1, g_new + FX_PAGE, FX_PAGE), KERR_OK);
    assert_int_equal(upd_stage_block(u, 1, g_new + FX_PAGE, FX_PAGE), KERR_OK); /* idempotent */
    assert_int_equal(upd_block_needed(u, 1), 0);
    assert_int_equal(upd_block_needed(u, 0), 0); /* unchanged page */
    assert_int_equal(upd_block_needed(u, 3), 1);
    assert_int_equal(upd_cancel(u), KERR_OK);
    assert_int_equal(phase(), UPD_PHASE_IDLE);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION);
}

/* Staging survives reboots; the same bundle resumes, another one restarts. */
static void test_staging_resumes_across_reboot(void **state)
{
    (void)state;
    uint32_t n = setup_images(1);
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_OK);
    assert_int_equal(upd_stage_block(&g_dev.upd, 1, g_new + FX_PAGE, FX_PAGE), KERR_OK);
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    assert_int_equal(phase(), UPD_PHASE_STAGING);
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_OK); /* resume */
    assert_int_equal(upd_block_needed(&g_dev.upd, 1), 0);
    upd_status_t st;
    upd_status(&g_dev.upd, &st);
    assert_int_equal(st.blocks_needed, 3u);
    /* A different bundle abandons the old staging and starts over. */
    fx_bundle_opts_t o = fx_opts(0x00020001u, 2, NEW_LEN);
    uint8_t other[FX_BUNDLE_MAX];
    uint32_t n2 = fx_bundle(g_new, &o, other);
    assert_int_equal(upd_stage_begin(&g_dev.upd, other, n2), KERR_OK);
    assert_int_equal(upd_block_needed(&g_dev.upd, 1), 1);
    stage_all(&g_dev, g_new);
    assert_int_equal(upd_stage_finish(&g_dev.upd), KERR_OK);
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    assert_int_equal(phase(), UPD_PHASE_STAGED);
    assert_int_equal(upd_apply(&g_dev.upd), KERR_OK);
    assert_memory_equal(g_dev.imem, g_new, FX_REGION);
}

/* Tampered staged data is refused by AES-GCM before it gets near the app region. */
static void test_tampered_staging_is_refused(void **state)
{
    (void)state;
    uint32_t n = setup_images(1);
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_OK);
    stage_all(&g_dev, g_new);
    g_dev.qmem[UPD_QSPI_META + 3u * FX_PAGE + 10u] ^= 0x04u; /* staged block 3 ciphertext */
    assert_int_equal(upd_stage_finish(&g_dev.upd), KERR_UPD_AUTH);
    assert_int_equal(phase(), UPD_PHASE_STAGING);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION);
    /* The staged manifest copy is vouched for by the journal: altered, the staging is dropped. */
    g_dev.qmem[20] ^= 0x01u;
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    upd_status_t st;
    upd_status(&g_dev.upd, &st);
    assert_int_equal(st.phase, UPD_PHASE_IDLE);
    assert_int_equal(st.result, UPD_RESULT_INTEGRITY);
}

/* A saved copy that does not authenticate stops the rollback instead of writing garbage. */
static void test_damaged_saved_copy_is_not_restored(void **state)
{
    (void)state;
    uint32_t n = setup_images(1);
    update_to_trial(n, g_new);
    g_dev.qmem[UPD_QSPI_META + (FX_PAGES + 1u) * FX_PAGE + 5u] ^= 0x10u; /* saved page 1 */
    assert_int_equal(upd_rollback(&g_dev.upd, UPD_REASON_NO_CONFIRM), KERR_UPD_AUTH);
    assert_memory_equal(g_dev.imem + FX_PAGE, g_new + FX_PAGE, FX_PAGE); /* untouched */
    assert_int_equal(phase(), UPD_PHASE_ROLLBACK);
}

/* A staged block that decays after verification: the apply stops and puts the old image back. */
static void test_apply_of_decayed_block_rolls_back(void **state)
{
    (void)state;
    uint32_t n = setup_images(1);
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, n), KERR_OK);
    stage_all(&g_dev, g_new);
    assert_int_equal(upd_stage_finish(&g_dev.upd), KERR_OK);
    g_dev.qmem[UPD_QSPI_META + 4u * FX_PAGE] ^= 0x01u;
    assert_int_equal(upd_apply(&g_dev.upd), KERR_UPD_VERIFY);
    upd_status_t st;
    upd_status(&g_dev.upd, &st);
    assert_int_equal(st.phase, UPD_PHASE_IDLE);
    assert_int_equal(st.result, UPD_RESULT_FAILED);
    assert_int_equal(st.reason, UPD_REASON_VERIFY);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION);
}

/* The same image again: nothing staged, no app page written. */
static void test_same_image_writes_no_page(void **state)
{
    (void)state;
    setup_images(1);
    fx_bundle_opts_t o = fx_opts(0x00010001u, 1, OLD_LEN);
    uint32_t n = fx_bundle(g_old, &o, g_bundle);
    upd_plan_t plan;
    assert_int_equal(upd_inspect(&g_dev.upd, g_bundle, n, &plan), KERR_OK);
    assert_true(plan.nothing_to_do);
    update_to_trial(n, g_old);
    assert_int_equal(upd_confirm(&g_dev.upd), KERR_OK);
    assert_int_equal(g_dev.upd.ctr.page_erases + g_dev.upd.ctr.page_programs, 0u);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION);
}

/* Journal records: round trip, every torn prefix reads as absent, page wrap keeps the newest. */
static void test_journal_records(void **state)
{
    (void)state;
    upd_pstate_t s, got;
    memset(&s, 0, sizeof(s));
    s.phase = UPD_PHASE_APPLYING;
    s.step = 7;
    s.apply_gen = 99;
    s.saved[2] = 0x81;
    uint8_t rec[UPD_JREC_SIZE], torn[UPD_JREC_SIZE];
    upd_jrec_encode(&s, 42, rec);
    assert_int_equal(peek32(rec), UPD_JREC_MAGIC);
    assert_int_equal(peek32(rec + 124), ref_crc32(rec, 124));
    uint32_t seq;
    assert_int_equal(upd_jrec_decode(rec, &got, &seq), KERR_OK);
    assert_int_equal(seq, 42u);
    assert_memory_equal(&got, &s, sizeof(s));
    for (uint32_t cut = 0; cut < UPD_JREC_SIZE; cut += 4u) {
        memset(torn, 0xFF, sizeof(torn));
        memcpy(torn, rec, cut);
        assert_int_not_equal(upd_jrec_decode(torn, &got, &seq), KERR_OK);
    }
    /* Many transitions across page wraps and reboots: the newest state always wins. */
    setup_images(1);
    for (uint32_t i = 0; i < 150u; i++) {
        upd_pstate_t t = g_dev.upd.ps;
        t.counter = i + 1u;
        assert_int_equal(upd_journal_append(&g_dev.upd.j, &t), KERR_OK);
        if (i % 37u == 0u) {
            assert_int_equal(fx_reboot(&g_dev), KERR_OK);
            assert_int_equal(g_dev.upd.ps.counter, i + 1u);
        }
    }
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    assert_int_equal(g_dev.upd.ps.counter, 150u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_update_life),
        cmocka_unit_test(test_rollback_restores_old),
        cmocka_unit_test(test_qspi_holds_no_plaintext),
        cmocka_unit_test(test_refused_bundles_write_nothing),
        cmocka_unit_test(test_state_rules_and_bad_blocks),
        cmocka_unit_test(test_staging_resumes_across_reboot),
        cmocka_unit_test(test_tampered_staging_is_refused),
        cmocka_unit_test(test_damaged_saved_copy_is_not_restored),
        cmocka_unit_test(test_apply_of_decayed_block_rolls_back),
        cmocka_unit_test(test_same_image_writes_no_page),
        cmocka_unit_test(test_journal_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

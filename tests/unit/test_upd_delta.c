/*
 * The update engine with delta bundles (core/src/upd_delta.c, docs/update-engine.md "Delta
 * bundles"), without power cuts (those are in test_upd_sweep.c): the patch is staged, decoded at
 * stage_finish into sealed pages (only the changed ones) and a derived block hash table that
 * survives a reboot, then applied and confirmed like pages; a device that runs another base
 * refuses before writing anything; a stored patch that decays, or that is not the signed one,
 * never reaches STAGED; a tampered derived table drops the staging at boot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/kcrypto.h"
#include "keel/delta.h"
#include "test_upd_fixture.h"

#define OLD_LEN 40000u
#define NEW_LEN 48000u

static fx_dev_t g_dev;
static uint8_t g_old[FX_REGION], g_new[FX_REGION], g_bundle[FX_BUNDLE_MAX];
static uint32_t g_len;
static uint8_t *g_patch;
static size_t g_patch_len;

/* Old and new regions (pages 1 and 3 edited, grown into 4 and 5), the patch, the delta bundle
 * (signed with patch_sha of `signed_patch`, normally the patch itself). */
static void setup(const uint8_t *signed_patch, size_t signed_len)
{
    fx_image(g_old, OLD_LEN, 11);
    fx_image(g_new, NEW_LEN, 11);
    g_new[1u * FX_PAGE + 100u] ^= 0x5Au;
    g_new[3u * FX_PAGE + 7u] ^= 0xA5u;
    free(g_patch);
    kdlt_enc_opts_t eo = {0x00200000u, NULL, 0};
    assert_int_equal(kdlt_encode(g_old, FX_REGION, g_new, NEW_LEN, &eo, &g_patch, &g_patch_len),
                     KERR_OK);
    kbdl_manifest_t m;
    memset(&m, 0, sizeof(m));
    m.version = 0x00020000u, m.security_counter = 7, m.min_uv_version = FX_UV_VERSION;
    m.device_type = FX_DEVICE_TYPE, m.block_size = FX_PAGE;
    m.policy = (kbdl_policy_t){100, 30000, 3600, 60, false, {0}};
    m.layers[0].region = KBDL_REGION_APP;
    uint8_t base[32];
    kc_sha256(g_old, FX_REGION, base);
    if (!signed_patch)
        signed_patch = g_patch, signed_len = g_patch_len;
    assert_int_equal(kbdl_build_delta(&m, g_new, FX_REGION, 0, NEW_LEN, base, signed_patch,
                                      (uint32_t)signed_len, fx_priv_fleet, g_bundle,
                                      sizeof(g_bundle), &g_len),
                     KERR_OK);
    assert_int_equal(fx_dev_init(&g_dev, g_old), KERR_OK);
}

static uint32_t stage_patch(upd_t *u)
{
    uint32_t sent = 0;
    for (uint32_t i = 0; i < FX_PAGES; i++) {
        kerr_t need = upd_block_needed(u, i);
        assert_true(need == 0 || need == 1);
        if (need) {
            static uint8_t b[FX_PAGE];
            size_t at = (size_t)i * FX_PAGE;
            size_t n = g_patch_len - at < FX_PAGE ? g_patch_len - at : FX_PAGE;
            memset(b, 0xFF, sizeof(b));
            memcpy(b, g_patch + at, n);
            assert_int_equal(upd_stage_block(u, i, b, FX_PAGE), KERR_OK);
            assert_int_equal(upd_block_needed(u, i), 0);
            sent++;
        }
    }
    return sent;
}

static uint32_t staged_pages(const fx_dev_t *d)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < FX_PAGES; i++) {
        static const uint8_t zero[16];
        n += memcmp(d->qmem + 0x3000u + i * 16u, zero, 16) == 0;
    }
    return n;
}

static void test_delta_update(void **state)
{
    (void)state;
    setup(NULL, 0);
    upd_t *u = &g_dev.upd;
    upd_plan_t plan;
    assert_int_equal(upd_inspect(u, g_bundle, g_len, &plan), KERR_OK);
    assert_int_equal(plan.to_stage, (g_patch_len + FX_PAGE - 1) / FX_PAGE);
    assert_false(plan.nothing_to_do);
    assert_int_equal(upd_stage_begin(u, g_bundle, g_len), KERR_OK);
    upd_status_t st;
    upd_status(u, &st);
    assert_int_equal(st.blocks_needed, plan.to_stage);
    assert_int_equal(upd_stage_finish(u), KERR_UPD_INCOMPLETE); /* no patch yet */
    assert_int_equal(stage_patch(u), plan.to_stage);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION); /* staging never touches the region */
    assert_int_equal(upd_stage_finish(u), KERR_OK);
    assert_int_equal(u->ps.phase, UPD_PHASE_STAGED);
    /* Only what differs was staged: pages 1, 3, 4, 5 (page 9..: erased in both). */
    assert_int_equal(staged_pages(&g_dev), 4u);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION);
    /* The derived table survives a reboot, then apply and confirm as with pages. */
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    assert_int_equal(u->ps.phase, UPD_PHASE_STAGED);
    assert_true(u->have_manifest);
    assert_int_equal(upd_apply(u), KERR_OK);
    assert_int_equal(u->ps.phase, UPD_PHASE_TRIAL);
    assert_memory_equal(g_dev.imem, g_new, FX_REGION);
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    assert_int_equal(upd_confirm(u), KERR_OK);
    assert_int_equal(u->ps.version, 0x00020000u);
    assert_memory_equal(g_dev.imem, g_new, FX_REGION);
    /* The same delta again: its base is gone and the region is already the result. */
    assert_int_equal(upd_inspect(u, g_bundle, g_len, &plan), KERR_OK);
    assert_true(plan.nothing_to_do);
}

/* Stage finish in turns (upd_stage_finish_step, what the microvisor does between network
 * work): a bounded part per turn, the same staged pages and table as in one go; another engine
 * call between turns (an inspect reuses the page buffer) starts it over, with the same end. */
static void test_finish_in_turns(void **state)
{
    (void)state;
    setup(NULL, 0);
    upd_t *u = &g_dev.upd;
    upd_plan_t plan;
    assert_int_equal(upd_stage_begin(u, g_bundle, g_len), KERR_OK);
    stage_patch(u);
    bool done = false;
    uint32_t turns = 0;
    while (!done) {
        assert_int_equal(upd_stage_finish_step(u, &done), KERR_OK);
        assert_true(++turns < 1000u);
        if (turns == 9) {
            /* in pass 1 (start, a patch block, then a page per turn): u->buf is taken over */
            assert_int_equal(u->ps.phase, UPD_PHASE_STAGING);
            assert_int_equal(upd_inspect(u, g_bundle, g_len, &plan), KERR_OK);
        }
    }
    /* Pages 0..5 of the result twice (6 each) and the erased rest hashed a few at a time, twice
     * over for the restart: far more turns than one. */
    assert_true(turns >= 9u + 2u + 6u + 6u);
    assert_int_equal(u->ps.phase, UPD_PHASE_STAGED);
    assert_int_equal(upd_stage_finish_step(u, &done), KERR_OK); /* STAGED: done at once */
    assert_true(done);
    assert_int_equal(staged_pages(&g_dev), 4u);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION);
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    assert_int_equal(upd_apply(u), KERR_OK);
    assert_memory_equal(g_dev.imem, g_new, FX_REGION);
}

static void test_wrong_base_refused_before_any_write(void **state)
{
    (void)state;
    setup(NULL, 0);
    g_old[5] ^= 1; /* the device runs something else */
    assert_int_equal(fx_dev_init(&g_dev, g_old), KERR_OK);
    uint32_t ops_i = g_dev.ifl.ops, ops_q = g_dev.qfl.ops;
    upd_plan_t plan;
    assert_int_equal(upd_inspect(&g_dev.upd, g_bundle, g_len, &plan), KERR_DLT_BASE);
    assert_int_equal(upd_stage_begin(&g_dev.upd, g_bundle, g_len), KERR_DLT_BASE);
    assert_int_equal(g_dev.ifl.ops, ops_i);
    assert_int_equal(g_dev.qfl.ops, ops_q);
    assert_int_equal(g_dev.upd.ps.phase, UPD_PHASE_IDLE);
    assert_non_null(strstr(kerr_str(KERR_DLT_BASE), "another base"));
}

static void test_decayed_or_foreign_patch_never_staged(void **state)
{
    (void)state;
    /* A bit of the stored (sealed) patch flips: authentication fails, nothing is staged. */
    setup(NULL, 0);
    upd_t *u = &g_dev.upd;
    assert_int_equal(upd_stage_begin(u, g_bundle, g_len), KERR_OK);
    stage_patch(u);
    g_dev.qmem[UPD_QSPI_META + FX_PAGES * FX_PAGE + 10u] ^= 0x10u; /* patch block 0 */
    assert_int_equal(upd_stage_finish(u), KERR_UPD_AUTH);
    assert_int_equal(u->ps.phase, UPD_PHASE_STAGING);
    assert_int_equal(staged_pages(&g_dev), 0u);
    /* A patch that is not the one the manifest signs (same length, one byte off). */
    uint8_t *other = malloc(g_patch_len);
    memcpy(other, g_patch, g_patch_len);
    other[g_patch_len / 2] ^= 1;
    setup(other, g_patch_len); /* signs the other one; the device receives the real patch */
    assert_int_equal(upd_stage_begin(u, g_bundle, g_len), KERR_OK);
    stage_patch(u);
    assert_int_equal(upd_stage_finish(u), KERR_UPD_VERIFY);
    assert_int_equal(staged_pages(&g_dev), 0u);
    free(other);
}

static void test_tampered_table_drops_staging(void **state)
{
    (void)state;
    setup(NULL, 0);
    upd_t *u = &g_dev.upd;
    assert_int_equal(upd_stage_begin(u, g_bundle, g_len), KERR_OK);
    stage_patch(u);
    assert_int_equal(upd_stage_finish(u), KERR_OK);
    g_dev.qmem[0x200u + 40u] ^= 0x01u; /* the derived hash of page 1 */
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    assert_int_equal(u->ps.phase, UPD_PHASE_IDLE);
    assert_int_equal(u->ps.result, UPD_RESULT_INTEGRITY);
    assert_memory_equal(g_dev.imem, g_old, FX_REGION);
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
        cmocka_unit_test_teardown(test_delta_update, teardown),
        cmocka_unit_test_teardown(test_finish_in_turns, teardown),
        cmocka_unit_test_teardown(test_wrong_base_refused_before_any_write, teardown),
        cmocka_unit_test_teardown(test_decayed_or_foreign_patch_never_staged, teardown),
        cmocka_unit_test_teardown(test_tampered_table_drops_staging, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

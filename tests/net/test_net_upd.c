/*
 * Host unit tests of the device's update agent (firmware/microvisor/net/net_upd.c) against the
 * real update engine (core, on the RAM flash of tests/unit/test_upd_fixture.h): what an offer of
 * the bundle being applied or on trial settles to.
 *
 * net_upd.c is included so each test starts from zeroed state. What it calls in the rest of the
 * microvisor is provided here: the engine handle (NULL while "the supervisor thread applies"), the
 * status the app sees (built from the engine like uv_upd.c's), the link (statuses and fetches
 * recorded), the log and the DRBG. The fetches are answered from the bundle bytes by the test.
 * The QEMU path is tests/ota (ota.powercut-apply and the rest).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net_upd.c"
#include "test_upd_fixture.h"

/* The microvisor's own board: net_upd.c names its device type in a refusal's message only. */
const kboard_t kboard_fw = {.name = "test", .device_type = 0x505u};

/* ---- what net_upd.c calls ---- */

static fx_dev_t g_dev;
static bool g_busy;      /* the supervisor thread owns the engine (apply pending or running) */
static uint32_t g_gen;
static keel_v1_Envelope g_tx;
static keel_v1_UpdateStatus g_status[64];
static uint32_t g_status_id[64]; /* the Envelope.msg_id each went out with */
static unsigned g_nstatus;
static keel_v1_UpdateFetch g_fetch[64];
static unsigned g_nfetch;

upd_t *uv_upd_engine(void) { return g_busy ? NULL : &g_dev.upd; }
void uv_upd_changed(void) { g_gen++; }
uint32_t uv_upd_generation(void) { return g_gen; }
void uv_upd_progress(uint32_t staged, uint32_t needed, bool notify) { (void)staged; (void)needed; (void)notify; }
void uv_upd_staged(bool force, uint32_t force_after_s) { (void)force; (void)force_after_s; }
void uv_upd_force(void) {}
uint64_t uv_uptime_us(void) { return 0u; }
uint32_t uv_net_stack_used(void) { return 0u; }
void uv_net_event(uint32_t level, const char *fmt, ...) { (void)level; (void)fmt; }
void uv_log(const char *fmt, ...) { (void)fmt; }
static unsigned g_pends; /* finish asked for another service run right away */
void uv_service_pend(void) { g_pends++; }

int net_seed_random(void *p_rng, unsigned char *out, size_t len)
{
    (void)p_rng;
    memset(out, 0x5A, len);
    return 0;
}

int32_t uv_upd_status_get(keel_update_status_t *out)
{
    const upd_t *u = &g_dev.upd;
    memset(out, 0, sizeof(*out));
    switch (u->ps.phase) {
    case UPD_PHASE_STAGING: out->state = KEEL_UPDATE_DOWNLOADING; break;
    case UPD_PHASE_STAGED: out->state = KEEL_UPDATE_DOWNLOADED; break;
    case UPD_PHASE_APPLYING:
    case UPD_PHASE_TRIAL:
    case UPD_PHASE_ROLLBACK: out->state = KEEL_UPDATE_UPDATING; break;
    default: out->state = KEEL_UPDATE_IDLE; break;
    }
    out->result = u->ps.result;
    out->flags = u->ps.phase == UPD_PHASE_TRIAL ? KEEL_UPDATE_F_TRIAL : 0u;
    out->version = u->have_manifest && u->ps.phase != UPD_PHASE_IDLE ? u->m.version : 0u;
    out->installed_version = u->ps.version;
    return KEEL_OK;
}

keel_v1_Envelope *net_link_env(pb_size_t body_tag)
{
    memset(&g_tx, 0, sizeof(g_tx));
    g_tx.which_body = body_tag;
    g_tx.msg_id = g_nstatus + g_nfetch + 1u;
    return &g_tx;
}

bool net_link_send(kproto_topic_t t)
{
    if (t == KPROTO_T_UPDATE_STATUS && g_nstatus < 64u) {
        g_status_id[g_nstatus] = g_tx.msg_id;
        g_status[g_nstatus++] = g_tx.body.update_status;
    }
    else if (t == KPROTO_T_UPDATE_FETCH && g_nfetch < 64u)
        g_fetch[g_nfetch++] = g_tx.body.update_fetch;
    return true;
}

/* ---- the device and the bundle ---- */

static uint8_t g_old[FX_REGION], g_new[FX_REGION], g_other[FX_REGION];
static uint8_t g_bundle[FX_BUNDLE_MAX], g_bundle2[FX_BUNDLE_MAX];
static uint32_t g_n, g_n2;
static uint32_t g_now;

static int setup(void **state)
{
    (void)state;
    memset(&dl, 0, sizeof(dl));
    g_busy = false;
    g_nstatus = g_nfetch = 0;
    g_now = 1000u;
    fx_image(g_old, 40000u, 1u);
    fx_image(g_new, 40000u, 2u);
    fx_image(g_other, 40000u, 5u);
    fx_bundle_opts_t o = fx_opts(0x02000000u, 2u, 40000u);
    g_n = fx_bundle(g_new, &o, g_bundle);
    o = fx_opts(0x03000000u, 3u, 40000u);
    g_n2 = fx_bundle(g_other, &o, g_bundle2);
    return g_n && g_n2 && fx_dev_init(&g_dev, g_old) == KERR_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    upd_close(&g_dev.upd);
    g_dev.open = false;
    return 0;
}

/* Stage the bundle and apply it with the engine directly (as before the power cut and by
 * upd_boot after it): the device ends on trial. */
static void apply_to_trial(const uint8_t *bundle, uint32_t n, const uint8_t *img)
{
    assert_int_equal(upd_stage_begin(&g_dev.upd, bundle, n), KERR_OK);
    for (uint32_t i = 0; i < FX_PAGES; i++)
        if (upd_block_needed(&g_dev.upd, i) == 1)
            assert_int_equal(upd_stage_block(&g_dev.upd, i, img + i * FX_PAGE, FX_PAGE), KERR_OK);
    assert_int_equal(upd_stage_finish(&g_dev.upd), KERR_OK);
    assert_int_equal(upd_apply(&g_dev.upd), KERR_OK);
    assert_int_equal(g_dev.upd.ps.phase, UPD_PHASE_TRIAL);
    g_gen++;
}

static keel_v1_UpdateOffer offer_of(uint64_t deployment, const uint8_t *bundle, uint32_t n)
{
    keel_v1_UpdateOffer o = keel_v1_UpdateOffer_init_zero;
    o.deployment_id = deployment;
    o.bundle_size = n;
    o.signed_size = n;
    kc_sha256(bundle, n, o.bundle_sha256);
    return o;
}

/* Service runs, answering every fetch from bundle (keeld's side). */
static void run(const uint8_t *bundle, unsigned runs)
{
    for (unsigned r = 0; r < runs; r++) {
        unsigned first = g_nfetch;
        net_upd_poll(g_now);
        g_now += STATUS_MIN_MS;
        for (unsigned i = first; i < g_nfetch; i++) {
            keel_v1_UpdateChunk c = keel_v1_UpdateChunk_init_zero;
            c.deployment_id = g_fetch[i].deployment_id;
            c.offset = g_fetch[i].offset;
            c.data.size = (pb_size_t)g_fetch[i].length;
            memcpy(c.data.bytes, bundle + c.offset, c.data.size);
            net_upd_chunk(&c);
        }
    }
}

/* No status so far for deployment settled it (a final result is recorded once by keeld). */
static void assert_not_settled(uint64_t deployment)
{
    for (unsigned i = 0; i < g_nstatus; i++)
        if (g_status[i].deployment_id == deployment &&
            g_status[i].result != keel_v1_UpdateResult_UPDATE_RESULT_INITIAL)
            fail_msg("deployment %lu settled early: result %d, \"%s\"", (unsigned long)deployment,
                     (int)g_status[i].result, g_status[i].detail);
}

static const keel_v1_UpdateStatus *last_status(void)
{
    assert_true(g_nstatus > 0u);
    return &g_status[g_nstatus - 1u];
}

/* The bug of ota.powercut-apply: the offer came while the (recovery) apply ran; it must report
 * on the update and settle with SUCCESS once confirmed, never "refused" (KERR_UPD_STATE). */
static void test_offer_during_apply_is_the_same_update(void **state)
{
    (void)state;
    g_busy = true; /* the apply is pending or running: no engine for the agent */
    keel_v1_UpdateOffer o = offer_of(7u, g_bundle, g_n);
    net_upd_offer(&o);
    run(g_bundle, 3);
    apply_to_trial(g_bundle, g_n, g_new);
    g_busy = false;
    run(g_bundle, 6);
    assert_true(g_nfetch > 0u); /* the manifest was fetched and read */
    assert_not_settled(7u);
    assert_int_equal(dl.phase, DL_DONE);
    assert_int_equal(last_status()->deployment_id, 7u);
    assert_int_equal(last_status()->state, keel_v1_UpdateState_UPDATE_STATE_UPDATING);
    assert_int_equal(last_status()->version, 0x02000000u);

    assert_int_equal(upd_confirm(&g_dev.upd), KERR_OK); /* the new app confirms */
    g_gen++;
    run(g_bundle, 2);
    assert_int_equal(last_status()->deployment_id, 7u);
    assert_int_equal(last_status()->result, keel_v1_UpdateResult_UPDATE_RESULT_SUCCESS);
    assert_int_equal(last_status()->state, keel_v1_UpdateState_UPDATE_STATE_IDLE);

    /* keeld offers it again: the same answer, nothing fetched. */
    unsigned fetches = g_nfetch;
    net_upd_offer(&o);
    run(g_bundle, 2);
    assert_int_equal(g_nfetch, fetches);
    assert_int_equal(last_status()->result, keel_v1_UpdateResult_UPDATE_RESULT_SUCCESS);
}

/* After a reboot into the trial, the offer again: the same update, reported until it settles. */
static void test_offer_on_trial_is_the_same_update(void **state)
{
    (void)state;
    apply_to_trial(g_bundle, g_n, g_new);
    assert_int_equal(fx_reboot(&g_dev), KERR_OK);
    assert_int_equal(g_dev.upd.ps.phase, UPD_PHASE_TRIAL);
    keel_v1_UpdateOffer o = offer_of(8u, g_bundle, g_n);
    net_upd_offer(&o);
    run(g_bundle, 6);
    assert_not_settled(8u);
    assert_int_equal(upd_rollback(&g_dev.upd, UPD_REASON_CRASH), KERR_OK); /* it crashed */
    g_gen++;
    run(g_bundle, 2);
    assert_int_equal(last_status()->deployment_id, 8u);
    assert_int_equal(last_status()->result, keel_v1_UpdateResult_UPDATE_RESULT_UPDATE_FAILED);
    assert_int_equal(last_status()->code, UPD_REASON_CRASH);
}

/* Another bundle offered while one is on trial: not refused, not reported as that one's result;
 * it waits and is staged once the trial ended. */
static void test_other_offer_on_trial_waits(void **state)
{
    (void)state;
    apply_to_trial(g_bundle, g_n, g_new);
    keel_v1_UpdateOffer o = offer_of(9u, g_bundle2, g_n2);
    net_upd_offer(&o);
    run(g_bundle2, 6);
    assert_true(g_nfetch > 0u); /* its manifest was read */
    assert_not_settled(9u);
    assert_int_equal(g_dev.upd.ps.phase, UPD_PHASE_TRIAL);
    assert_int_equal(upd_confirm(&g_dev.upd), KERR_OK);
    g_gen++;
    run(g_bundle2, 2);
    assert_not_settled(9u);
    assert_int_equal(g_dev.upd.ps.phase, UPD_PHASE_STAGING);
    assert_int_equal(g_dev.upd.m.version, 0x03000000u);
}

/* P1: keeld slower than the resend period acks an earlier copy of the kept status: that ack is
 * the status's (matching only the latest copy re-sent it forever); an ack of a status that said
 * something else is not. */
static void test_ack_of_an_earlier_copy(void **state)
{
    (void)state;
    g_busy = true;
    keel_v1_UpdateOffer o = offer_of(10u, g_bundle, g_n);
    net_upd_offer(&o);
    run(g_bundle, 3);
    apply_to_trial(g_bundle, g_n, g_new);
    g_busy = false;
    run(g_bundle, 6);
    uint32_t progress_id = g_status_id[g_nstatus - 1u]; /* "updating, on trial" */
    assert_int_equal(upd_confirm(&g_dev.upd), KERR_OK);
    g_gen++;
    run(g_bundle, 2);
    assert_int_equal(last_status()->result, keel_v1_UpdateResult_UPDATE_RESULT_SUCCESS);
    uint32_t first_id = g_status_id[g_nstatus - 1u];
    net_upd_ack(progress_id); /* the older status's ack: not this one's */
    /* Unacked: sent again after the resend period (with a new msg_id). */
    unsigned n = g_nstatus;
    g_now += STATUS_RESEND_MS + 1u;
    run(g_bundle, 1);
    assert_int_equal(g_nstatus, n + 1u);
    assert_int_equal(last_status()->result, keel_v1_UpdateResult_UPDATE_RESULT_SUCCESS);
    assert_int_not_equal(g_status_id[g_nstatus - 1u], first_id);
    /* keeld's ack of the first copy arrives now: the status is acknowledged, never sent again. */
    net_upd_ack(first_id);
    n = g_nstatus;
    g_now += 3u * STATUS_RESEND_MS;
    run(g_bundle, 2);
    assert_int_equal(g_nstatus, n);
}

/* A delta bundle through the agent: its manifest and patch fetched, then the stage finish in
 * turns, one per service run, each asking for the next run at once (uv_service_pend), so the
 * network is served between them; the result staged and applied is the new image. */
static void test_delta_finish_in_turns(void **state)
{
    (void)state;
    static uint8_t nw[FX_REGION], b[FX_BUNDLE_MAX];
    memcpy(nw, g_old, FX_REGION);
    nw[1u * FX_PAGE + 100u] ^= 0x5Au;
    nw[3u * FX_PAGE + 7u] ^= 0xA5u;
    uint8_t *patch = NULL;
    size_t plen = 0;
    kdlt_enc_opts_t eo = {0x00200000u, NULL, 0};
    assert_int_equal(kdlt_encode(g_old, FX_REGION, nw, 40000u, &eo, &patch, &plen), KERR_OK);
    kbdl_manifest_t m;
    memset(&m, 0, sizeof(m));
    m.version = 0x02000000u, m.security_counter = 2u, m.min_uv_version = FX_UV_VERSION;
    m.device_type = FX_DEVICE_TYPE, m.block_size = FX_PAGE;
    m.policy = (kbdl_policy_t){100, 30000, 3600, 60, false, {0}};
    m.layers[0].region = KBDL_REGION_APP;
    uint8_t base[32];
    mbedtls_sha256(g_old, FX_REGION, base, 0);
    uint32_t n = 0;
    assert_int_equal(kbdl_build_delta(&m, nw, FX_REGION, 0, 40000u, base, patch, (uint32_t)plen,
                                      fx_priv_fleet, b, sizeof(b), &n), KERR_OK);
    assert_true(n + plen <= sizeof(b));
    memcpy(b + n, patch, plen); /* the payload: the patch after the signed manifest */
    n += (uint32_t)plen;
    free(patch);
    kbdl_manifest_t dm;
    assert_int_equal(kbdl_decode(b, n, &dm), KERR_OK);
    keel_v1_UpdateOffer o = offer_of(9u, b, n);
    o.signed_size = kbdl_signed_size(&dm);
    net_upd_offer(&o);
    unsigned turns = 0;
    for (unsigned r = 0; r < 500u && dl.phase != DL_DONE; r++) {
        bool finishing = dl.phase == DL_FINISH;
        unsigned pends = g_pends;
        run(b, 1);
        if (finishing) {
            turns++;
            if (dl.phase == DL_FINISH)
                assert_int_equal(g_pends, pends + 1u); /* not done: the next run at once */
        }
    }
    if (dl.phase != DL_DONE)
        fail_msg("the delta did not stage: phase %d, last status %d/%d code %d \"%s\"", dl.phase,
                 last_status()->state, last_status()->result, (int)last_status()->code,
                 last_status()->detail);
    assert_int_equal(g_dev.upd.ps.phase, UPD_PHASE_STAGED);
    /* start, the patch block, 5 result pages twice, the erased rest 8 pages a turn */
    assert_true(turns > 12u);
    assert_int_equal(last_status()->deployment_id, 9u);
    assert_int_equal(last_status()->state, keel_v1_UpdateState_UPDATE_STATE_DOWNLOADED);
    assert_int_equal(upd_apply(&g_dev.upd), KERR_OK);
    assert_memory_equal(g_dev.imem, nw, FX_REGION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offer_during_apply_is_the_same_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offer_on_trial_is_the_same_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_offer_on_trial_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_of_an_earlier_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delta_finish_in_turns, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Updates on the device: the core engine bound to the board's flash (keel/board.h), the trial and politeness
 * timers, apply and rollback around the supervisor (uv_upd.h says who may touch the engine when).
 *
 *   service (PendSV)                                   supervisor thread (app stopped)
 *   ----------------                                   -------------------------------
 *   net_upd: offer -> stage_begin/block/finish
 *   STAGED: politeness deadline / force / app's   --> pending APPLY, stop app (KEEL_STOP_UPDATE)
 *           keel_update_apply()                        upd_apply -> TRIAL, new app started
 *   TRIAL: keel_update_confirm() -> upd_confirm        (KEEL_NOTIFY_UPDATE_TRIAL)
 *   TRIAL: deadline passed                        --> pending ROLLBACK (NO_CONFIRM), stop app
 *   TRIAL: the app crashed (supervisor)           --> pending ROLLBACK (CRASH), report kept
 *                                                      upd_rollback -> IDLE, FAILED, old app
 *                                                      restarted (KEEL_STOP_ROLLBACK)
 *
 * Timers are RAM only: a reboot while staged or on trial starts the politeness deadline or the
 * trial period again from that boot (the engine's journal keeps the phase itself).
 */
#include "uv_upd.h"

#include <string.h>

#include "board.h"
#include "keel/board.h"
#include "keel/bundle.h"
#include "keel/crash.h"
#include "keel/kcrypto.h"
#include "port.h"
#include "uv.h"
#include "net/net_rec.h"
#include "net/net_updkey.h"
#include "net/uv_net.h"

#define TRIAL_DEFAULT_S 60u /* a bundle without a trial period still gets one */

typedef struct uu {
    bool open;                   /* the engine is usable */
    volatile bool busy;          /* the thread applies or rolls back */
    volatile uint32_t pending;   /* uv_upd_action_t */
    uint32_t pending_reason;     /* upd_reason_t of a pending rollback */
    volatile bool confirm_req;
    volatile bool force;         /* apply as soon as staged */
    bool apply_armed;
    uint32_t apply_at;           /* port_ticks() of the politeness deadline */
    bool trial_armed;
    uint32_t trial_deadline;
    uint32_t trial_s;
    volatile uint32_t gen;
    /* what keel_update_status and the cloud see, refreshed after every engine call */
    uint8_t phase, result;
    uint32_t reason, staging_version, needed, staged;
    /* trust */
    kbdl_key_t keys[NET_UPDKEYS_MAX];
    uint32_t key_count;
    bool have_debug_key;
    uint8_t debug_key[KBDL_PUBKEY_SIZE];
    kflash_t *iflash, *qspi;
} uu_t;

static uu_t uu;
static upd_t eng;                          /* ~15 KiB: page and manifest buffers */
static uint8_t inst_buf[UPD_MANIFEST_BUF]; /* installed manifest copy (init and confirm only) */
static kbdl_manifest_t inst_m;

static const char *const phase_names[] = {"idle", "staging", "staged", "applying", "trial", "rollback"};
static const char *const reason_names[] = {"none", "crash on trial", "no confirmation in the trial period",
                                           "written region did not verify", "staged manifest unreadable",
                                           "operator"};

static const char *phase_name(uint32_t p)
{
    return p < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[p] : "unknown";
}

static const char *reason_name(uint32_t r)
{
    return r < sizeof(reason_names) / sizeof(reason_names[0]) ? reason_names[r] : "unknown";
}

static void ver(uint32_t v, char buf[16])
{
    kapp_version_format(v, buf, 16);
}

/* Internal flash program+erase operations since boot (the numbering of boot word powercut=N). */
static uint32_t flash_ops(void)
{
    return uu.iflash->ops;
}

static void snap(void)
{
    uint32_t c = uv_crit_enter();
    uu.phase = eng.ps.phase;
    uu.result = eng.ps.result;
    uu.reason = eng.ps.reason;
    uu.staging_version = eng.have_manifest && eng.ps.phase != UPD_PHASE_IDLE ? eng.m.version : 0u;
    uu.gen++;
    uv_crit_exit(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Trust, key and the installed manifest                                                       */

static uint32_t load_keys(kflash_t *fl)
{
    static uint8_t rec[NET_UPDKEYS_REC_MAX];
    static uint8_t keys[NET_UPDKEYS_MAX * NET_UPDKEY_SIZE];
    uint32_t n = 0;
    kerr_t err = kflash_read(fl, kboard_fw.ipart.ident + NET_REC_UPDKEYS_OFF, rec, sizeof(rec));
    if (err == KERR_OK)
        err = net_updkeys_rec_decode(rec, sizeof(rec), keys, &n);
    if (err == KERR_FORMAT) {
        uv_log("update: no fleet signing key provisioned (keel device provision --update-key "
               "PUB.pem): every bundle will be refused");
        return 0u;
    }
    if (err != KERR_OK) {
        uv_log("update: the update keys record is damaged (%s): every bundle will be refused",
               kerr_str(err));
        return 0u;
    }
    for (uint32_t i = 0; i < n; i++)
        memcpy(uu.keys[i].pub, keys + i * NET_UPDKEY_SIZE, KBDL_PUBKEY_SIZE);
    return n;
}

static bool staging_key(kflash_t *fl, uint8_t out[UPD_KEY_SIZE])
{
    uint8_t rec[NET_SEED_REC_SIZE], seed[NET_SEED_BYTES];
    kerr_t err = kflash_read(fl, kboard_fw.ipart.ident + NET_REC_SEED_OFF, rec, sizeof(rec));
    if (err == KERR_OK)
        err = net_seed_rec_decode(rec, seed);
    if (err == KERR_OK)
        err = net_updkey_derive(seed, uv_ident.id, out);
    memset(seed, 0, sizeof(seed));
    memset(rec, 0, sizeof(rec));
    if (err != KERR_OK)
        uv_log("update: no staging key (the device's seed record: %s): updates off; provision "
               "the device", kerr_str(err));
    return err == KERR_OK;
}

/* Read a manifest + signature envelope at QSPI off into inst_buf; its length or 0. */
static uint32_t read_manifest(uint32_t off)
{
    if (kflash_read(uu.qspi, off, inst_buf, KBDL_HDR_SIZE) != KERR_OK)
        return 0u;
    uint32_t total = (uint32_t)inst_buf[KBDL_OFF_MANIFEST_LEN] |
                     (uint32_t)inst_buf[KBDL_OFF_MANIFEST_LEN + 1] << 8 |
                     (uint32_t)inst_buf[KBDL_OFF_MANIFEST_LEN + 2] << 16 |
                     (uint32_t)inst_buf[KBDL_OFF_MANIFEST_LEN + 3] << 24;
    if (total < KBDL_HDR_SIZE || total > sizeof(inst_buf) - KBDL_SIG_ENV_SIZE)
        return 0u;
    total += KBDL_SIG_ENV_SIZE;
    return kflash_read(uu.qspi, off, inst_buf, total) == KERR_OK ? total : 0u;
}

/*
 * The installed bundle's manifest (its policy: the debug key) must outlive the staging area,
 * which the next update overwrites. After a confirm (or a factory install) the staging area
 * still holds it, vouched for by the journal's manifest hash: copy it to its own QSPI area once.
 * At boot the copy is trusted only after its signature verifies and its version is the one the
 * journal says is installed.
 */
static void installed_sync(void)
{
    if (eng.ps.phase == UPD_PHASE_IDLE && eng.ps.result == UPD_RESULT_SUCCESS && eng.ps.version) {
        uint32_t n = read_manifest(kboard_fw.qpart.stage.off);
        uint8_t h[32];
        if (n && kc_sha256(inst_buf, n, h) == KC_OK && memcmp(h, eng.ps.manifest_sha, 32) == 0) {
            static uint8_t have[UPD_MANIFEST_BUF];
            bool same = kflash_read(uu.qspi, kboard_fw.qpart.installed.off, have, n) == KERR_OK &&
                        memcmp(have, inst_buf, n) == 0;
            kerr_t err = KERR_OK;
            if (!same) {
                err = kflash_erase_range(uu.qspi, kboard_fw.qpart.installed.off, kboard_fw.qpart.installed.size);
                if (err == KERR_OK)
                    err = kflash_program(uu.qspi, kboard_fw.qpart.installed.off, inst_buf, n);
                if (err != KERR_OK)
                    uv_log("update: keeping the installed manifest failed (%s)", kerr_str(err));
            }
        }
    }
    uu.have_debug_key = false;
    uint32_t n = read_manifest(kboard_fw.qpart.installed.off);
    kbdl_trust_t t = eng.cfg.trust;
    t.installed_counter = 0u;
    if (n && kbdl_verify(inst_buf, n, &t, &inst_m) == KERR_OK && inst_m.version == eng.ps.version &&
        inst_m.policy.has_debug_key) {
        memcpy(uu.debug_key, inst_m.policy.debug_key, KBDL_PUBKEY_SIZE);
        uu.have_debug_key = true;
        uint8_t id[KBDL_KEY_ID_SIZE];
        kbdl_key_id(uu.debug_key, id);
        uv_log("update: the installed bundle allows debug sessions signed by key %02x%02x%02x%02x%02x%02x%02x%02x",
               id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7]);
    }
}

bool uv_upd_debug_key(uint8_t out[65])
{
    if (!uu.have_debug_key)
        return false;
    memcpy(out, uu.debug_key, KBDL_PUBKEY_SIZE);
    return true;
}

/*
 * Boot word upd-bench-raw=N (scripts/bench-ota-device.sh): at boot, before the app, copy N pages
 * raw, with nothing of the update's safety: read 8 KiB from QSPI, erase a scratch page of
 * the free microvisor-state area, program it. The apply's time against this one is the price of
 * the journal, the saved old pages, the sealing and the verification.
 */
static void bench_raw_copy(uint32_t pages)
{
    static uint8_t page[UPD_BLOCK_MAX];
    const uint32_t psz = kboard_fw.iflash.erase_size, scratch = kboard_fw.ipart.spare.off;
    uint64_t t0 = uv_uptime_us();
    kerr_t err = psz <= sizeof(page) && pages * psz <= kboard_fw.ipart.spare.size ? KERR_OK : KERR_RANGE;
    for (uint32_t i = 0; i < pages && err == KERR_OK; i++) {
        err = kflash_read(uu.qspi, kboard_fw.qpart.stage.off + UPD_QSPI_META + i * psz, page, psz);
        if (err == KERR_OK)
            err = kflash_erase(uu.iflash, scratch + i * psz);
        if (err == KERR_OK)
            err = kflash_program(uu.iflash, scratch + i * psz, page, psz);
    }
    for (uint32_t i = 0; i < pages && err == KERR_OK; i++)
        err = kflash_erase(uu.iflash, scratch + i * psz);
    uint32_t us = (uint32_t)(uv_uptime_us() - t0);
    uv_log("update: bench: raw copy of %lu page(s) (QSPI read, erase, program; then erased again) "
           "took %lu.%03lu ms, %s", (unsigned long)pages, (unsigned long)(us / 1000u),
           (unsigned long)(us % 1000u), kerr_str(err));
}

/* ------------------------------------------------------------------------------------------ */
/* Boot                                                                                        */

void uv_upd_init(kflash_t *iflash)
{
    kerr_t err;
    uu.iflash = iflash;
    uu.qspi = port_flash_open(PORT_FLASH_QSPI, &err);
    if (!iflash || !uu.qspi) {
        uv_log("update: flash unavailable (%s): updates off", kerr_str(iflash ? err : KERR_IO));
        return;
    }
    static upd_config_t cfg;
    kboard_upd_config(&kboard_fw, iflash, uu.qspi, &cfg);
    if (!staging_key(iflash, cfg.key))
        return;
    uu.key_count = load_keys(iflash);
    cfg.trust.keys = uu.keys;
    cfg.trust.key_count = uu.key_count;
    cfg.trust.uv_version = UV_VERSION;
    err = upd_open(&eng, &cfg);
    memset(cfg.key, 0, sizeof(cfg.key));
    if (err != KERR_OK) {
        uv_log("update: the update engine did not open (%s): updates off", kerr_str(err));
        upd_close(&eng);
        return;
    }
    char v[16];
    ver(eng.ps.version, v);
    uint32_t before = eng.ps.phase;
    uv_log("update: %lu fleet key(s), journal: %s, installed bundle %s, security counter %lu",
           (unsigned long)uu.key_count, phase_name(before), eng.ps.version ? v : "none (factory)",
           (unsigned long)eng.ps.counter);
    if (before == UPD_PHASE_APPLYING || before == UPD_PHASE_ROLLBACK)
        uv_log("update: a power cut interrupted the %s: finishing it", phase_name(before));
    uint64_t t0 = uv_uptime_us();
    err = upd_boot(&eng);
    uint32_t ms = (uint32_t)((uv_uptime_us() - t0) / 1000u);
    if (err != KERR_OK) {
        uv_log("update: recovery failed (%s) after %lu ms: updates off until the next boot",
               kerr_str(err), (unsigned long)ms);
        return;
    }
    if (before != eng.ps.phase || before >= UPD_PHASE_APPLYING)
        uv_log("update: boot check done in %lu ms: %s (%s image verified)%s%s", (unsigned long)ms,
               phase_name(eng.ps.phase),
               eng.ps.phase == UPD_PHASE_TRIAL ? "new" : "installed",
               eng.ps.result == UPD_RESULT_FAILED ? ", rolled back: " : "",
               eng.ps.result == UPD_RESULT_FAILED ? reason_name(eng.ps.reason) : "");
    if (before == UPD_PHASE_ROLLBACK || (before == UPD_PHASE_APPLYING && eng.ps.phase == UPD_PHASE_IDLE))
        uv_ni.last_stop = KEEL_STOP_ROLLBACK;
    else if (before == UPD_PHASE_APPLYING)
        uv_ni.last_stop = KEEL_STOP_UPDATE;
    installed_sync();
    snap();
    uu.open = true;
    if (eng.ps.phase == UPD_PHASE_STAGED)
        uv_upd_staged(false, 0u); /* the politeness deadline runs again from this boot */
    uint32_t raw = port_arg_u32("upd-bench-raw", 0u);
    if (raw)
        bench_raw_copy(raw < 64u ? raw : 64u);
}

/* ------------------------------------------------------------------------------------------ */
/* Supervisor side                                                                              */

uv_upd_action_t uv_upd_pending(void)
{
    return (uv_upd_action_t)uu.pending;
}

bool uv_upd_busy(void)
{
    return uu.busy;
}

static void request(uv_upd_action_t a, uint32_t reason)
{
    uint32_t c = uv_crit_enter();
    if (uu.pending == UV_UPD_NONE) {
        uu.pending = a;
        uu.pending_reason = reason;
    }
    uv_crit_exit(c);
    uv_sup_request_stop(KCRASH_RESTART); /* no-op while the app is not running */
}

bool uv_upd_app_stopped(uint32_t kcrash_reason)
{
    if (!uu.open || eng.ps.phase != UPD_PHASE_TRIAL || kcrash_reason == KCRASH_RESTART ||
        uu.pending != UV_UPD_NONE)
        return false;
    char v[16];
    ver(eng.m.version, v);
    uv_log("update: %s crashed on trial (%s): rolling back", v, kcrash_reason_name(kcrash_reason));
    uu.trial_armed = false;
    uu.pending_reason = UPD_REASON_CRASH;
    uu.pending = UV_UPD_ROLLBACK;
    return true;
}

void uv_upd_run(void)
{
    uint32_t act = uu.pending;
    uu.busy = true;
    __asm__ volatile("dmb" ::: "memory");
    char from[16], to[16];
    ver(uv_app.valid ? uv_app.hdr.version : 0u, from);
    ver(eng.have_manifest ? eng.m.version : 0u, to);
    uint64_t t0 = uv_uptime_us();
    eng.ctr = (upd_counters_t){0};
    kerr_t err;
    if (act == UV_UPD_APPLY) {
        uv_log("update: app stopped for the update at %lu.%06lu s: applying %s over %s (internal "
               "flash op %lu)", (unsigned long)(t0 / 1000000u), (unsigned long)(t0 % 1000000u), to,
               from, (unsigned long)flash_ops());
        uv_net_event(KEEL_LOG_INFO, "update: applying %s over %s", to, from);
        err = upd_apply(&eng);
    } else {
        uv_log("update: rolling back %s (%s)", from, reason_name(uu.pending_reason));
        err = upd_rollback(&eng, uu.pending_reason);
    }
    uint64_t t1 = uv_uptime_us();
    uint32_t us = (uint32_t)(t1 - t0);
    if (err == KERR_OK && act == UV_UPD_APPLY) {
        uv_log("update: applied in %lu.%03lu ms: %lu page(s) erased, %lu programmed (up to internal "
               "flash op %lu); %s runs on trial", (unsigned long)(us / 1000u), (unsigned long)(us % 1000u),
               (unsigned long)eng.ctr.page_erases, (unsigned long)eng.ctr.page_programs,
               (unsigned long)flash_ops(), to);
        uv_ni.last_stop = KEEL_STOP_UPDATE;
    } else if (err == KERR_OK || (act == UV_UPD_APPLY && eng.ps.phase == UPD_PHASE_IDLE)) {
        uv_log("update: rolled back in %lu.%03lu ms (%s): the previous app runs again",
               (unsigned long)(us / 1000u), (unsigned long)(us % 1000u), reason_name(eng.ps.reason));
        uv_net_event(KEEL_LOG_ERROR, "update: rolled back (%s)", reason_name(eng.ps.reason));
        uv_ni.last_stop = KEEL_STOP_ROLLBACK;
    } else {
        /* A flash error mid-way: the journal knows where it stopped; upd_boot finishes it. */
        uv_log("update: %s stopped (%s): restarting the device to finish it",
               act == UV_UPD_APPLY ? "apply" : "rollback", kerr_str(err));
        uv_reset(UV_RESET_FAULT);
    }
    uu.pending = UV_UPD_NONE;
    uu.force = false;
    uu.apply_armed = false;
    uu.trial_armed = false;
    uv_ni.consecutive = 0u;
    uv_noinit_commit();
    uv_app_find(uu.iflash);
    snap();
    __asm__ volatile("dmb" ::: "memory");
    uu.busy = false;
}

void uv_upd_app_starting(void)
{
    /* Armed once per trial (and per boot): an app restarting itself does not extend it. */
    if (!uu.open || eng.ps.phase != UPD_PHASE_TRIAL || !eng.have_manifest || uu.trial_armed)
        return;
    uu.trial_s = eng.m.policy.trial_s ? eng.m.policy.trial_s : TRIAL_DEFAULT_S;
    uu.trial_deadline = port_ticks() + uu.trial_s * 1000u;
    uu.trial_armed = true;
    char v[16];
    ver(eng.m.version, v);
    uv_log("update: %s runs on trial: it must call keel_update_confirm() within %lu s", v,
           (unsigned long)uu.trial_s);
}

uint32_t uv_upd_seconds_left(void)
{
    uint32_t now = port_ticks();
    if (uu.trial_armed) {
        int32_t left = (int32_t)(uu.trial_deadline - now);
        return left > 0 ? ((uint32_t)left + 999u) / 1000u : 0u;
    }
    if (uu.apply_armed) {
        int32_t left = (int32_t)(uu.apply_at - now);
        return left > 0 ? ((uint32_t)left + 999u) / 1000u : 0u;
    }
    return 0u;
}

void uv_upd_app_ring_ready(void)
{
    if (!uu.open)
        return;
    if (uu.trial_armed)
        uv_notify_post(KEEL_NOTIFY_UPDATE_TRIAL, uv_upd_seconds_left(), eng.m.version);
    else if (uu.phase == UPD_PHASE_STAGED)
        uv_notify_post(KEEL_NOTIFY_UPDATE_STAGED, uu.staging_version, uv_upd_seconds_left());
}

/* ------------------------------------------------------------------------------------------ */
/* Service side                                                                                 */

void uv_upd_service(void)
{
    if (!uu.open || uu.busy || uu.pending != UV_UPD_NONE)
        return;
    char v[16];
    if (uu.confirm_req) {
        uu.confirm_req = false;
        ver(eng.m.version, v);
        kerr_t err = upd_confirm(&eng);
        if (err == KERR_OK) {
            uu.trial_armed = false;
            uv_log("update: %s confirmed by the app: installed (security counter %lu)", v,
                   (unsigned long)eng.ps.counter);
            uv_net_event(KEEL_LOG_INFO, "update: %s confirmed by the app", v);
            installed_sync();
        } else {
            uv_log("update: confirm failed (%s)", kerr_str(err));
        }
        snap();
    }
    uint32_t now = port_ticks();
    if (uu.trial_armed && eng.ps.phase == UPD_PHASE_TRIAL && (int32_t)(now - uu.trial_deadline) >= 0) {
        uu.trial_armed = false;
        ver(eng.m.version, v);
        uv_log("update: %s did not confirm within %lu s: rolling back", v, (unsigned long)uu.trial_s);
        request(UV_UPD_ROLLBACK, UPD_REASON_NO_CONFIRM);
        return;
    }
    if (eng.ps.phase == UPD_PHASE_STAGED &&
        (uu.force || (uu.apply_armed && (int32_t)(now - uu.apply_at) >= 0))) {
        ver(eng.m.version, v);
        uv_log("update: applying %s without the app: %s", v,
               uu.force ? "forced by the cloud" : "its politeness deadline passed");
        request(UV_UPD_APPLY, 0u);
    }
}

upd_t *uv_upd_engine(void)
{
    return uu.open && !uu.busy && uu.pending == UV_UPD_NONE ? &eng : NULL;
}

void uv_upd_changed(void)
{
    if (eng.ps.phase != UPD_PHASE_STAGED)
        uu.apply_armed = false;
    snap();
}

uint32_t uv_upd_generation(void)
{
    return uu.gen;
}

void uv_upd_progress(uint32_t staged, uint32_t needed, bool notify)
{
    uint32_t c = uv_crit_enter();
    uu.staged = staged;
    uu.needed = needed;
    uv_crit_exit(c);
    if (notify)
        uv_notify_post(KEEL_NOTIFY_UPDATE_PROGRESS, staged, needed);
}

void uv_upd_staged(bool force, uint32_t force_after_s)
{
    uint32_t s = eng.have_manifest ? eng.m.policy.politeness_s : 0u;
    if (force_after_s != 0u && (s == 0u || force_after_s < s))
        s = force_after_s;
    uu.apply_armed = s != 0u;
    uu.apply_at = port_ticks() + s * 1000u;
    if (force)
        uu.force = true;
    snap();
    char v[16];
    ver(uu.staging_version, v);
    if (uu.force)
        uv_log("update: %s staged and verified: applying now (forced)", v);
    else if (s)
        uv_log("update: %s staged and verified: the app may apply it; applied anyway in %lu s", v,
               (unsigned long)s);
    else
        uv_log("update: %s staged and verified: waiting for the app to apply it", v);
    uv_notify_post(KEEL_NOTIFY_UPDATE_STAGED, uu.staging_version, s);
}

void uv_upd_force(void)
{
    uu.force = true;
}

/* ------------------------------------------------------------------------------------------ */
/* keel_update_* (uv_nsc.c: pointers already checked)                                           */

int32_t uv_upd_status_get(keel_update_status_t *out)
{
    keel_update_status_t s = {0};
    uint32_t c = uv_crit_enter();
    switch (uu.phase) {
    case UPD_PHASE_STAGING: s.state = KEEL_UPDATE_DOWNLOADING; break;
    case UPD_PHASE_STAGED: s.state = KEEL_UPDATE_DOWNLOADED; break;
    case UPD_PHASE_APPLYING:
    case UPD_PHASE_TRIAL:
    case UPD_PHASE_ROLLBACK: s.state = KEEL_UPDATE_UPDATING; break;
    default: s.state = KEEL_UPDATE_IDLE; break;
    }
    s.result = uu.result;
    s.flags = uu.trial_armed && !uu.confirm_req ? KEEL_UPDATE_F_TRIAL : 0u;
    s.version = uu.staging_version;
    s.installed_version = uv_app.valid ? uv_app.hdr.version : 0u;
    s.blocks_needed = uu.phase == UPD_PHASE_STAGING ? uu.needed : 0u;
    s.blocks_staged = uu.phase == UPD_PHASE_STAGING ? uu.staged : 0u;
    s.seconds_left = uv_upd_seconds_left();
    uv_crit_exit(c);
    *out = s;
    return KEEL_OK;
}

int32_t uv_upd_apply_request(void)
{
    uint32_t c = uv_crit_enter();
    bool ok = uu.open && !uu.busy && uu.phase == UPD_PHASE_STAGED && uu.pending == UV_UPD_NONE;
    if (ok) {
        uu.pending = UV_UPD_APPLY;
        uu.pending_reason = 0u;
    }
    uv_crit_exit(c);
    if (!ok)
        return KEEL_ESTATE;
    uv_log("update: the app asked to apply the staged update now");
    uv_sup_request_stop(KCRASH_RESTART);
    return KEEL_OK;
}

int32_t uv_upd_confirm_request(void)
{
    uint32_t c = uv_crit_enter();
    bool ok = uu.open && uu.trial_armed && !uu.confirm_req && uu.pending == UV_UPD_NONE;
    if (ok)
        uu.confirm_req = true;
    uv_crit_exit(c);
    if (!ok)
        return KEEL_ESTATE;
    uv_service_pend();
    return KEEL_OK;
}

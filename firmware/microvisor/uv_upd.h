/*
 * The microvisor's side of updates: the core update engine (core/include/keel/upd.h) bound to
 * the board's flash, the trial and politeness timers, apply and rollback around the supervisor,
 * and the state the keel_update_* calls and the cloud see (docs/update-engine.md "Device
 * integration").
 *
 * Who touches the engine, and when (it is not re-entrant):
 *   - main, before the app first starts: upd_open + upd_boot;
 *   - the service (secure PendSV): staging (net_upd.c), confirm, cancel;
 *   - the supervisor thread, with the app stopped: apply and rollback. It sets `busy` first;
 *     the service then leaves the engine alone (uv_upd_engine() returns NULL). The service cannot
 *     be mid-call when the thread runs: it preempts the thread, never the other way round.
 */
#ifndef KEEL_MICROVISOR_UV_UPD_H
#define KEEL_MICROVISOR_UV_UPD_H

#include <stdbool.h>
#include <stdint.h>

#include "keel.h"
#include "keel/flash.h"
#include "keel/upd.h"

typedef enum uv_upd_action {
    UV_UPD_NONE = 0,
    UV_UPD_APPLY = 1,     /* write the staged update, start the new app on trial */
    UV_UPD_ROLLBACK = 2,  /* restore the old app (trial failed) */
} uv_upd_action_t;

/** main: open the engine and finish what a power cut interrupted, before the app header is read. */
void uv_upd_init(kflash_t *iflash);

/** The debug public key of the installed bundle's policy (docs/debug.md); false: none. */
bool uv_upd_debug_key(uint8_t out[65]);

/* ---- supervisor (thread mode) ---- */
uv_upd_action_t uv_upd_pending(void);
/** The app stopped for reason (kcrash_reason_t). true: on trial and a crash: roll back. */
bool uv_upd_app_stopped(uint32_t kcrash_reason);
/** Run the pending action (app stopped). Logs, reloads the app header, sets uv_ni.last_stop. */
void uv_upd_run(void);
/** The app is about to start: arm the trial timer when it runs on trial. */
void uv_upd_app_starting(void);
/** The app set up its notification ring: tell it it runs on trial / an update is staged. */
void uv_upd_app_ring_ready(void);
/** Applying or rolling back right now (Hello.app_state UPDATING). */
bool uv_upd_busy(void);

/* ---- service ---- */
void uv_upd_service(void);

/* ---- keel_update_* (uv_nsc.c), keel.h statuses ---- */
int32_t uv_upd_status_get(keel_update_status_t *out);
int32_t uv_upd_apply_request(void);
int32_t uv_upd_confirm_request(void);

/* ---- for the download (net/net_upd.c, service context only) ---- */
/** The engine, or NULL while the thread applies/rolls back or when it is unavailable. */
upd_t *uv_upd_engine(void);
/** The engine's state changed (staging began, finished, was cancelled): refresh what apps see. */
void uv_upd_changed(void);
/** Staging progress for keel_update_status and KEEL_NOTIFY_UPDATE_PROGRESS. */
void uv_upd_progress(uint32_t staged, uint32_t needed, bool notify);
/** Staged and verified: arm the politeness deadline (min of the bundle's politeness and a
 *  nonzero force_after_s) or, with force, apply at once. Posts KEEL_NOTIFY_UPDATE_STAGED. */
void uv_upd_staged(bool force, uint32_t force_after_s);
/** The operator forces the apply (Command UPDATE_APPLY): now if staged, else once staged. */
void uv_upd_force(void);
/** Counts every state change (apply, rollback, confirm...): the download sends a status then. */
uint32_t uv_upd_generation(void);
/** Seconds until the deadline apply (0: none) and the trial's (0: not on trial). */
uint32_t uv_upd_seconds_left(void);

#endif /* KEEL_MICROVISOR_UV_UPD_H */

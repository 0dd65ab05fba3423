/*
 * keel.h: the Keel microvisor API for non-secure applications (API v1).
 *
 * The app runs in the non-secure world; the microvisor runs in the secure world and owns the
 * device's connectivity, updates and supervision. These functions are secure entry points
 * reached through NSC veneers: call them like ordinary C functions, from thread or handler mode,
 * with or without interrupts masked, from any language that can call C.
 *
 * Rules that hold for every call:
 *   - Every call returns a keel_status_t: KEEL_OK (0) or a negative KEEL_E* code. The set of
 *     codes is closed: apps can switch on them.
 *   - Every pointer is checked: it must point into the app's own memory, readable (inputs) or
 *     writable (outputs) by the caller at its privilege level, for the whole length. A bad pointer
 *     returns KEEL_EFAULT and is logged by the microvisor; it never faults the app or the device.
 *   - Inputs are copied in before use and outputs are written only on success.
 *   - Calls are re-entrant: an app interrupt may preempt a call and call the API again.
 *   - A call runs on the microvisor's one secure stack: an app scheduler must not switch threads
 *     while one is inside a call (in PendSV, EXC_RETURN bit 6 set means it is; switch later).
 *     docs/device-api.md, "Apps with their own scheduler".
 *   - No call blocks for long; long operations complete later as notifications.
 *
 * Notifications: the app gives the microvisor a ring of keel_notification_t in its own RAM and
 * picks one of its interrupt lines (an external IRQ it does not otherwise use). The microvisor
 * fills the next free slot (kind != 0 means full), then pends that IRQ. The app's handler walks
 * the ring from where it stopped, copies each full slot and sets its kind to 0 to free it.
 * When the ring is full the notification is dropped and counted; the next one delivered is
 * preceded by a KEEL_NOTIFY_DROPPED slot carrying the count.
 */
#ifndef KEEL_H
#define KEEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ---------------------------------------------------------------------- */

typedef int32_t keel_status_t;

#define KEEL_OK 0
#define KEEL_EINVAL (-1)     /* an argument is out of its documented range */
#define KEEL_EFAULT (-2)     /* a pointer is not in the app's memory (or not writable) */
#define KEEL_ENOSPC (-3)     /* an output buffer is too small; nothing was written */
#define KEEL_EBUSY (-4)      /* the resource is in use; try again later */
#define KEEL_ESTATE (-5)     /* not allowed in the current state (see the call) */
#define KEEL_ENOTSUP (-6)    /* not supported by this microvisor */
#define KEEL_EAGAIN (-7)     /* nothing available now (e.g. no channel message waiting) */

/* ---- version, identity, time ------------------------------------------------------------ */

/* Semantic versions are packed as major << 24 | minor << 16 | patch. */
#define KEEL_VERSION_MAJOR(v) ((uint32_t)(v) >> 24)
#define KEEL_VERSION_MINOR(v) (((uint32_t)(v) >> 16) & 0xFFu)
#define KEEL_VERSION_PATCH(v) ((uint32_t)(v) & 0xFFFFu)

#define KEEL_API_VERSION 1u

typedef struct keel_version {
    uint32_t microvisor; /* packed semantic version of the microvisor */
    uint32_t api;        /* KEEL_API_VERSION the microvisor implements */
    uint32_t app;        /* packed version the running app was installed with */
} keel_version_t;

/* Fill *out. Errors: KEEL_EFAULT. */
keel_status_t keel_version_get(keel_version_t *out);

/*
 * Copy the device id (NUL-terminated, at most 63 characters of [A-Za-z0-9._-]) into out.
 * Errors: KEEL_EFAULT, KEEL_ENOSPC (cap too small for id + NUL; nothing written).
 */
keel_status_t keel_device_id_get(char *out, size_t cap);

/* Microseconds since the device booted (monotonic, not reset by app restarts). Errors: KEEL_EFAULT. */
keel_status_t keel_time_get_us(uint64_t *out_us);

/* ---- logging ----------------------------------------------------------------------------- */

typedef enum keel_log_level {
    KEEL_LOG_ERROR = 0,
    KEEL_LOG_WARN = 1,
    KEEL_LOG_INFO = 2,
    KEEL_LOG_DEBUG = 3,
} keel_log_level_t;

#define KEEL_LOG_MAX 240u /* bytes of one message; longer messages are truncated */

/*
 * Log a message (not necessarily NUL-terminated; len bytes) to the device log, which the
 * microvisor prints on its console and forwards to the cloud. Non-blocking: when the log buffer
 * is full the oldest entries are dropped and counted. Errors: KEEL_EINVAL (level), KEEL_EFAULT.
 */
keel_status_t keel_log_write(keel_log_level_t level, const char *msg, size_t len);

/* ---- notifications ------------------------------------------------------------------------ */

typedef enum keel_notify_kind {
    KEEL_NOTIFY_FREE = 0,         /* slot is free (the app writes 0 after reading a slot) */
    KEEL_NOTIFY_STARTED = 1,      /* sent once after setup; arg0 = why the previous run ended
                                     (KEEL_STOP_*), arg1 = app restarts since power-on */
    KEEL_NOTIFY_WATCHDOG = 2,     /* half the watchdog timeout passed without a kick;
                                     arg0 = ms left before the app is stopped */
    KEEL_NOTIFY_LOG_DROPPED = 3,  /* arg0 = log messages dropped since the last such notice */
    KEEL_NOTIFY_DROPPED = 4,      /* arg0 = notifications dropped because the ring was full */
    KEEL_NOTIFY_UPDATE_PROGRESS = 5, /* staging an update; arg0 = blocks staged, arg1 = needed */
    KEEL_NOTIFY_UPDATE_STAGED = 6,   /* an update is staged and verified: call keel_update_apply()
                                        when convenient; arg0 = its packed version, arg1 = seconds
                                        until the microvisor applies it anyway (0: no deadline) */
    KEEL_NOTIFY_UPDATE_TRIAL = 7,    /* this app was just installed and runs on trial: call
                                        keel_update_confirm() within arg0 seconds or it is
                                        rolled back; arg1 = its packed version */
    KEEL_NOTIFY_CHANNEL_DATA = 8,    /* a message arrived; arg0 = channel handle, arg1 = messages
                                        waiting on it (read them with keel_channel_recv()) */
    KEEL_NOTIFY_CHANNEL_SENT = 9,    /* arg0 = channel handle, arg1 = the send's sequence number
                                        (keel_channel_send): the cloud's broker has it */
} keel_notify_kind_t;

/* Why the previous app run ended (arg0 of KEEL_NOTIFY_STARTED). */
typedef enum keel_stop_reason {
    KEEL_STOP_NONE = 0,           /* first run since power-on */
    KEEL_STOP_FAULT = 1,          /* the app faulted (crash report kept) */
    KEEL_STOP_WATCHDOG = 2,       /* the app's watchdog expired */
    KEEL_STOP_EXIT = 3,           /* the app's reset handler returned */
    KEEL_STOP_RESTART = 4,        /* the app called keel_app_restart() */
    KEEL_STOP_UPDATE = 5,         /* the previous app was replaced by an update (this one) */
    KEEL_STOP_ROLLBACK = 6,       /* an update failed its trial and was rolled back (this app is
                                     the previous version again); see keel_update_status() */
} keel_stop_reason_t;

typedef struct keel_notification {
    volatile uint32_t kind;       /* keel_notify_kind_t; written last by the microvisor */
    uint32_t arg0;
    uint32_t arg1;
    uint32_t time_ms;             /* device uptime when posted, ms (wraps after 49 days) */
} keel_notification_t;

#define KEEL_NOTIFY_MIN_SLOTS 2u
#define KEEL_NOTIFY_MAX_SLOTS 1024u

/*
 * Register the notification ring and the IRQ to pend (an external IRQ number, 0-based as in
 * NVIC_EnableIRQ, that belongs to the app). Slots must be zeroed by the app first.
 * May be called again to move the ring; the previous one is no longer written.
 * Errors: KEEL_EFAULT (ring not writable app RAM), KEEL_EINVAL (slots out of
 * [KEEL_NOTIFY_MIN_SLOTS, KEEL_NOTIFY_MAX_SLOTS], irq not an app interrupt line).
 */
keel_status_t keel_notify_setup(keel_notification_t *ring, uint32_t slots, uint32_t irq);

/* ---- watchdog ------------------------------------------------------------------------------ */

#define KEEL_WATCHDOG_MIN_MS 10u
#define KEEL_WATCHDOG_MAX_MS 600000u

/*
 * Start (or change the timeout of) the app watchdog. Once started it cannot be stopped until
 * the app restarts. If the app does not call keel_watchdog_kick() for timeout_ms, the microvisor
 * stops the app, keeps a crash report (reason "watchdog") and restarts it. This works whatever
 * the app does: masked interrupts, a hung interrupt handler, an interrupt storm.
 * Errors: KEEL_EINVAL (timeout out of [KEEL_WATCHDOG_MIN_MS, KEEL_WATCHDOG_MAX_MS]).
 */
keel_status_t keel_watchdog_start(uint32_t timeout_ms);

/* Restart the watchdog countdown. Errors: KEEL_ESTATE (watchdog not started). */
keel_status_t keel_watchdog_kick(void);

/* ---- app lifecycle ------------------------------------------------------------------------- */

/*
 * Restart the app cleanly (as after a crash, but with reason "restart" and no back-off).
 * Does not return on success.
 */
keel_status_t keel_app_restart(void);

/* ---- updates ------------------------------------------------------------------------------ */

/*
 * The microvisor stages updates in the background while the app runs (docs/update-engine.md).
 * The app chooses when the staged update is applied; it is told by notifications
 * (KEEL_NOTIFY_UPDATE_*) and may look at any time. States and results use the numbers of the
 * LwM2M Firmware Update object (/5/0/3, /5/0/5), as the cloud does.
 */
typedef enum keel_update_state {
    KEEL_UPDATE_IDLE = 0,
    KEEL_UPDATE_DOWNLOADING = 1,  /* staging blocks into encrypted external flash */
    KEEL_UPDATE_DOWNLOADED = 2,   /* staged and verified: waiting for keel_update_apply() */
    KEEL_UPDATE_UPDATING = 3,     /* being applied, or this app runs on trial */
} keel_update_state_t;

typedef enum keel_update_result {
    KEEL_UPDATE_RESULT_INITIAL = 0,
    KEEL_UPDATE_RESULT_SUCCESS = 1,
    KEEL_UPDATE_RESULT_NOT_ENOUGH_FLASH = 2,
    KEEL_UPDATE_RESULT_INTEGRITY_FAILURE = 5,
    KEEL_UPDATE_RESULT_UNSUPPORTED_PACKAGE = 6,
    KEEL_UPDATE_RESULT_UPDATE_FAILED = 8, /* applied, then rolled back (crash, no confirm) */
} keel_update_result_t;

#define KEEL_UPDATE_F_TRIAL 1u    /* flags: this app runs on trial and has not confirmed yet */

typedef struct keel_update_status {
    uint32_t state;               /* keel_update_state_t */
    uint32_t result;              /* keel_update_result_t of the last update handled */
    uint32_t flags;               /* KEEL_UPDATE_F_* */
    uint32_t version;             /* packed version of the update in flight (0: none) */
    uint32_t installed_version;   /* packed version of the running app */
    uint32_t blocks_needed;       /* DOWNLOADING: blocks to fetch in all */
    uint32_t blocks_staged;       /* DOWNLOADING: of those, staged so far */
    uint32_t seconds_left;        /* DOWNLOADED: until it is applied anyway (0: no deadline);
                                     on trial: until the rollback unless confirmed */
} keel_update_status_t;

/* Current update state. Errors: KEEL_EFAULT. */
keel_status_t keel_update_status(keel_update_status_t *out);

/*
 * Apply the staged update now. On success the call does not return: the app is stopped
 * (KEEL_STOP_UPDATE), the changed pages are written and the new app starts on trial.
 * Errors: KEEL_ESTATE (nothing staged).
 */
keel_status_t keel_update_apply(void);

/*
 * Confirm that this (newly installed) app works; until then a crash or the end of the trial
 * period rolls the device back to the previous app. Errors: KEEL_ESTATE (not on trial).
 */
keel_status_t keel_update_confirm(void);

/* ---- app channels -------------------------------------------------------------------------- */

/*
 * Channels carry the app's own data to and from the cloud over the microvisor's connection
 * (MQTT topics keel/v1/<device>/app/up/<name> and .../app/down/<name>). Sends are queued and
 * survive reconnects; KEEL_NOTIFY_CHANNEL_SENT says when the broker has one. Received messages
 * wait in the microvisor until keel_channel_recv(); KEEL_NOTIFY_CHANNEL_DATA says one arrived.
 */
#define KEEL_CHANNEL_NAME_MAX 32u   /* characters of A-Z a-z 0-9 . _ - */
#define KEEL_CHANNEL_DATA_MAX 512u  /* bytes of one message */
#define KEEL_CHANNEL_MAX 4u         /* channels open at once */

/*
 * Open channel name (NUL-terminated) for sending and receiving; *out_handle identifies it.
 * Opening an open channel returns the same handle. Errors: KEEL_EFAULT, KEEL_EINVAL (bad name),
 * KEEL_ENOSPC (KEEL_CHANNEL_MAX already open).
 */
keel_status_t keel_channel_open(const char *name, uint32_t *out_handle);

/*
 * Queue len bytes for the cloud. *out_seq (may be NULL) is the number KEEL_NOTIFY_CHANNEL_SENT
 * will carry. Errors: KEEL_EFAULT, KEEL_EINVAL (bad handle, len 0 or > KEEL_CHANNEL_DATA_MAX),
 * KEEL_EBUSY (the send queue is full: retry after a KEEL_NOTIFY_CHANNEL_SENT).
 */
keel_status_t keel_channel_send(uint32_t handle, const void *data, size_t len, uint32_t *out_seq);

/*
 * Take the oldest received message into buf. Errors: KEEL_EFAULT, KEEL_EINVAL (bad handle),
 * KEEL_EAGAIN (none waiting), KEEL_ENOSPC (cap too small: *out_len says what is needed, the
 * message stays).
 */
keel_status_t keel_channel_recv(uint32_t handle, void *buf, size_t cap, size_t *out_len);

/* Close a channel; messages waiting on it are dropped. Errors: KEEL_EINVAL (bad handle). */
keel_status_t keel_channel_close(uint32_t handle);

#ifdef __cplusplus
}
#endif

#endif /* KEEL_H */

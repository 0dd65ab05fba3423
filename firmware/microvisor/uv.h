/*
 * Microvisor internals shared between its modules (not part of any public API).
 */
#ifndef KEEL_MICROVISOR_UV_H
#define KEEL_MICROVISOR_UV_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/app_image.h"
#include "keel/crash.h"
#include "keel/identity.h"

#define UV_VERSION_STR "0.1.0"
#define UV_VERSION ((0u << 24) | (1u << 16) | 0u)

/* ---- console log (uv_log.c) ---- */
/* One console line "[keel] <formatted>\n", atomic with respect to every other line. */
void uv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Raw line writer: prefix + text (control characters shown as '.') + "\n". */
void uv_log_raw(const char *prefix, const char *text, uint32_t len);

/* ---- priorities and critical sections ---- */
/* Mask the app's interrupts and the microvisor service (not the tick) for a short section. */
uint32_t uv_crit_enter(void);
void uv_crit_exit(uint32_t saved);

/* ---- state kept across system resets (uv_noinit.c) ---- */
typedef enum uv_reset_cause { /* persisted in .noinit: never renumber */
    UV_RESET_POWER_ON = 0,
    UV_RESET_APP_RESTART = 1,  /* reset used to restart the app cleanly */
    UV_RESET_WATCHDOG = 2,     /* the secure watchdog caught a stalled microvisor */
    UV_RESET_FAULT = 3,        /* the microvisor itself faulted */
    UV_RESET_UNKNOWN = 4,      /* a reset nobody announced */
    UV_RESET_REBOOT = 5,       /* the cloud asked for a reboot (command "reboot") */
    UV_RESET_CAUSE_COUNT
} uv_reset_cause_t;

#define UV_REPORTS 4u

typedef struct uv_noinit {
    uint32_t magic;
    uint32_t reset_cause;    /* cause announced for the next boot */
    uint32_t boots;          /* boots since power-on */
    uint32_t restarts;       /* app restarts since power-on */
    uint32_t consecutive;    /* failed runs in a row (back-off exponent) */
    uint32_t last_stop;      /* keel_stop_reason_t of the previous app run */
    uint32_t launch_now;     /* the reset restarts the app: its back-off has elapsed */
    uint32_t uptime_base_lo; /* device uptime (ms) accumulated before this boot */
    uint32_t uptime_base_hi;
    uint32_t stall_pc;       /* where the watchdog found the microvisor */
    uint32_t report_count;   /* reports ever stored; the newest is at (count - 1) % UV_REPORTS */
    kcrash_report_t reports[UV_REPORTS];
    uint32_t crc;
} uv_noinit_t;

extern uv_noinit_t uv_ni;
/* Why this boot happened (main.c), and a short name for a cause. */
extern uv_reset_cause_t uv_boot_cause;
const char *uv_reset_name(uv_reset_cause_t cause);
/* Validate at boot; returns the reset cause and starts a fresh state on power-on. */
uv_reset_cause_t uv_noinit_boot(void);
void uv_noinit_commit(void);
uint64_t uv_uptime_ms(void);
uint64_t uv_uptime_us(void);
/* Record the uptime and cause, then reset the chip. */
__attribute__((noreturn)) void uv_reset(uv_reset_cause_t cause);

/* ---- flash self-test (uv_selftest.c), boot word "flash-selftest" ---- */
void uv_flash_selftest(void);

/* ---- supervisor (uv_sup.c) ---- */
typedef struct uv_app {
    bool valid;
    kapp_hdr_t hdr;
} uv_app_t;

extern uv_app_t uv_app;
extern kident_t uv_ident;

/* Read and check the installed app's header into uv_app (main.c; again after an update). */
struct kflash;
void uv_app_find(struct kflash *fl);

__attribute__((noreturn)) void uv_sup_start(void);
bool uv_app_running(void);
/* Ask for the app to be stopped (from any secure context); effective at once. */
void uv_sup_request_stop(kcrash_reason_t reason);
/* Pend the background service. */
void uv_service_pend(void);
/* The debugger parked the app (handler mode) / lets it run again (the service): the app
 * watchdog pauses, the interrupt-storm sampling forgets the halted time. */
void uv_sup_halt_enter(void);
void uv_sup_halt_leave(void);
/* Record the stop captured when a fault parked the app (report, log, counters): from the halt
 * loop, in Thread mode. The restart that may follow does not record it again. */
void uv_sup_record_stop(void);
/* The debugger's view of the parked context (uv_dbg.c). */
const uint32_t *uv_dbg_parked_context(uint32_t *out_exc_return);

/* ---- app watchdog and notifications (uv_sup.c); return keel.h statuses ---- */
int32_t uv_wdog_start(uint32_t timeout_ms);
int32_t uv_wdog_kick(void);
/* ring: NS address already checked writable for slots entries. */
int32_t uv_notify_setup(uint32_t ring, uint32_t slots, uint32_t irq);
void uv_notify_post(uint32_t kind, uint32_t arg0, uint32_t arg1);

#endif /* KEEL_MICROVISOR_UV_H */

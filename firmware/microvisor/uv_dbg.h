/*
 * The app debugger (docs/debug.md): a GDB remote-serial-protocol stub in the secure world for
 * the non-secure app. This header is its interface to a byte transport and to the supervisor.
 *
 * Transport contract (one transport at a time):
 *   - uv_dbg_attach(t): the transport is connected. Nothing happens to the app yet.
 *   - uv_dbg_input(data, len): decrypted RSP bytes from the debugger, in any chunking. The first
 *     byte of a session halts the app (SIGINT), as attaching does on any target. Call it from the
 *     microvisor service (secure PendSV) or from an interrupt at a higher priority; bytes are
 *     queued and handed to the RSP engine by the service.
 *   - t->send(ctx, data, len): the stub's output, one whole RSP packet (or one ack) per call,
 *     always called from the service.
 *   - uv_dbg_detach_transport(t): the connection is gone (closed, timed out, lost). The stub
 *     removes every breakpoint and lets the app run on, exactly as a 'D' does.
 * A session also ends by itself on 'D' and 'k' (t->ended is told); the transport stays attached
 * and the next packet starts a new session (a new `target remote` on the serial line).
 */
#ifndef KEEL_MICROVISOR_UV_DBG_H
#define KEEL_MICROVISOR_UV_DBG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct uv_dbg_transport {
    const char *name; /* for the console: "serial", "mqtt" */
    void (*send)(void *ctx, const uint8_t *data, size_t len);
    /* Optional: the debugger ended the session ('D' or 'k'; its last reply was sent already).
     * A transport that carries one session per connection closes it here. */
    void (*ended)(void *ctx, bool kill);
    void *ctx;
} uv_dbg_transport_t;

/** Connect a transport. false when another one is attached (t is then not used). */
bool uv_dbg_attach(const uv_dbg_transport_t *t);

/** Bytes from the debugger. Returns false (bytes dropped) if the input queue is full. */
bool uv_dbg_input(const uint8_t *data, size_t len);

/** The transport t went away: end the session (breakpoints removed, app resumed). */
void uv_dbg_detach_transport(const uv_dbg_transport_t *t);

/** True while a debugger session is open (bytes received, not yet detached). */
bool uv_dbg_session_open(void);

/* ---- for the microvisor (uv_sup.c, main.c) ---- */

/** Boot: claim the debug UART if the boot word dbg-uart is given (before board_partition). */
void uv_dbg_boot(void);

/** Service step (PendSV): feed queued input to the engine, send pending stop replies. */
void uv_dbg_poll(void);

/* What uv_exception() should do after the debugger had its say. */
typedef enum uv_dbg_action {
    UV_DBG_NONE = 0,    /* nothing for the debugger: the normal path */
    UV_DBG_PARK,        /* the app stops here: park its context, enter the halt loop */
    UV_DBG_RESUME,      /* return to the parked app (uv_dbg_resume_app) */
    UV_DBG_RESTART,     /* the parked app is to be restarted through the normal stop path */
    UV_DBG_RETURN,      /* the stub's own trap (a watched access), handled: return to the app */
} uv_dbg_action_t;

/**
 * A fault or BKPT HardFault from NS code while the app runs (reason: kcrash_reason_t of the
 * fault, already classified). UV_DBG_PARK when a debugger session is open (the context is then
 * saved), UV_DBG_NONE otherwise.
 */
uv_dbg_action_t uv_dbg_on_fault(const uint32_t *r4_r11, uint32_t exc_return, uint32_t reason);

/**
 * Any fault from NS code while the app runs, before it is taken for a crash: the stub's own
 * traps (a range step's temporary inside its range; a watched granule touched, the step over it
 * done).
 * UV_DBG_RETURN: handled, back to the app; UV_DBG_PARK: a watchpoint hit, the app is parked
 * (a stop like a breakpoint: no crash report); UV_DBG_NONE: not the stub's, the normal path.
 */
uv_dbg_action_t uv_dbg_on_trap(const uint32_t *r4_r11, uint32_t exc_return);

/** After the service ran, from PendSV: park (Ctrl-C taken from NS code), resume or restart. */
uv_dbg_action_t uv_dbg_on_service(const uint32_t *r4_r11, uint32_t exc_return, bool app_running);

/** The app is being (re)started or stopped for good: breakpoints of the old run go, and a
 * waiting debugger hears SIGKILL. */
void uv_dbg_app_gone(void);

/** Naked exits of uv_exception_entry: enter the halt loop / exception-return to the app. */
void uv_dbg_park_enter(void);
void uv_dbg_resume_app(void);

#endif /* KEEL_MICROVISOR_UV_DBG_H */

/*
 * Internals shared by the app debugger's files: uv_dbg.c (park, resume, the target ops, the
 * transports) and uv_dbg_watch.c (watchpoints). Nothing outside firmware/microvisor/uv_dbg*.c
 * includes this.
 */
#ifndef KEEL_MICROVISOR_UV_DBG_INT_H
#define KEEL_MICROVISOR_UV_DBG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/bkpt.h"
#include "keel/rsp.h"
#include "keel/watch.h"
#include "uv_dbg.h"

#define EXC_RETURN_S (1u << 6)
#define EXC_RETURN_FTYPE (1u << 4)  /* 0: the frame has an FP context */
#define EXC_RETURN_MODE (1u << 3)   /* returning to Thread mode */
#define EXC_RETURN_SPSEL (1u << 2)
#define XPSR_ALIGN (1u << 9)        /* the frame was realigned: one padding word */
#define XPSR_WRITABLE 0xF80F0000u   /* N Z C V Q and GE[3:0]: what gdb may change */
#define FRAME_BASIC 0x20u
#define FRAME_FP 0x68u
#define IN_CAP 4096u                /* input ring: a few packets of RSP_PACKET_MAX */
#define HALT_STACK_BYTES 4096u  /* the fault report: uv_log, kcrash_format, vsnprintf */
#define HALT_BASEPRI 0x80u          /* as when the app is stopped: every app exception held */
#define STACK_MARGIN 1024u          /* below the app's lowest sp: still its stack (watchpoints) */

/* A trapped access to a watched granule, stepped with the MPU off (uv_dbg_on_trap). */
typedef enum {
    WSTEP_IDLE = 0,
    WSTEP_PROBE, /* re-run under one read-only region: a second fault means a store */
    WSTEP_STEP,  /* MPU off, temporaries at the successors */
} wstep_t;

typedef struct dbg {
    /* The parked context. uv_dbg_resume_app reads these four fields at fixed offsets. */
    uint32_t r4_r11[8];
    uint32_t exc_return;
    uint32_t psp_s;
    uint32_t psplim_s;

    uint32_t frame;              /* NS address of the app's exception frame */
    volatile bool parked;        /* the app's context is saved and the halt loop owns the CPU */
    volatile bool loop_ready;    /* the halt loop finished its work: safe to leave at any time */
    bool fault;                  /* parked by a fault: leaving it restarts the app */
    int sig;                     /* the stop signal for '?' and stop replies */
    volatile bool halt_req;      /* Ctrl-C (or attach): park at the next chance from NS code */
    volatile bool resume_req;    /* 'c'/'s': leave the halt loop at the next service */
    volatile bool restart_req;   /* 'k' (or a detach from a fault): restart the app */
    volatile bool stop_pending;  /* a stop to report at the next service run */
    volatile bool exit_pending;  /* the app is gone for good: tell a waiting debugger */
    bool session;                /* bytes arrived: a debugger is attached */
    bool end_session;            /* 'D'/'k' seen: fresh engine once rsp_input returns */
    bool end_kill;               /* ... and it was a 'k' */
    bool lost;                   /* the transport went away (for the log) */
    uint32_t step_bp[2];
    unsigned n_step_bp;
    bool ranging;                /* vCont;r: keep stepping while pc is in [range_start, range_end) */
    uint32_t range_start, range_end;

    watch_set_t ws;              /* gdb's watchpoints (Z2-Z4), armed while the app runs */
    bool ws_armed;               /* the NS MPU is the stub's (uv_watch.h) */
    wstep_t wphase;
    uint32_t wstep_bp[2];        /* temporaries of the access being stepped */
    unsigned n_wstep_bp;
    uint32_t wpc;                /* the trapped instruction */
    uint32_t wfar;               /* its first faulting byte (MMFAR), if wfar_valid */
    bool wfar_valid;
    bool wwrite;                 /* the probe refused it: a store */
    bool stop_watch;             /* the current stop is a watchpoint hit: */
    rsp_bp_type_t stop_wtype;    /* ... its kind */
    uint32_t stop_waddr;         /* ... and address, for the stop reply */
    const uv_dbg_transport_t *tr;

    volatile uint32_t in_wr, in_rd;
    uint8_t in[IN_CAP];
    rsp_t rsp;
    bkpt_sw_t sw;
    bkpt_t bp;
} dbg_t;

_Static_assert(offsetof(dbg_t, exc_return) == 32, "uv_dbg_resume_app reads exc_return at 32");
_Static_assert(offsetof(dbg_t, psp_s) == 36, "uv_dbg_resume_app reads psp_s at 36");
_Static_assert(offsetof(dbg_t, psplim_s) == 40, "uv_dbg_resume_app reads psplim_s at 40");

extern dbg_t dbg;

static inline uint32_t read_msp_ns(void) { uint32_t v; __asm__ volatile("mrs %0, msp_ns" : "=r"(v)); return v; }
static inline uint32_t read_psp_ns(void) { uint32_t v; __asm__ volatile("mrs %0, psp_ns" : "=r"(v)); return v; }
static inline uint32_t read_control_ns(void) { uint32_t v; __asm__ volatile("mrs %0, control_ns" : "=r"(v)); return v; }

/* uv_dbg.c */
void dbg_park(const uint32_t *r4_r11, uint32_t exc_return, int sig, bool fault);
uint32_t dbg_ns_frame(uint32_t exc_return);
uint32_t dbg_app_sp(void);
kerr_t dbg_plant_successors(uint32_t *bps, unsigned *n);
void dbg_temps_clear(const uint32_t *bps, unsigned *n);
bool dbg_pc_in(uint32_t pc, const uint32_t *bps, unsigned n);
bool dbg_raw_bkpt_at(uint32_t pc); /* a BKPT is planted at pc (anyone's) */

/* uv_dbg_watch.c */
void dbg_watch_quiesce(void);
void dbg_watch_arm(void);
kerr_t dbg_insert_wp(void *ctx, rsp_bp_type_t type, uint32_t a, uint32_t len);
kerr_t dbg_remove_wp(void *ctx, rsp_bp_type_t type, uint32_t a, uint32_t len);
bool dbg_stop_watch(void *ctx, rsp_bp_type_t *type, uint32_t *addr);
uv_dbg_action_t dbg_watch_trap(const uint32_t *r4_r11, uint32_t exc_return);

#endif /* KEEL_MICROVISOR_UV_DBG_INT_H */

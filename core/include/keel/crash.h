/*
 * App crash reports.
 *
 * The microvisor fills one report each time it stops the app (fault, watchdog, exit, restart
 * request). Reports are kept across app restarts, printed on the device console, and (later)
 * sent to the cloud in the encoding below; host tools decode and format them with the same code.
 *
 * Encoding v1 (little-endian):
 *   0   u32 magic "KCR1" (0x3152434B)
 *   4   u16 format version (1)       6  u16 total length in bytes, CRC included
 *   8   u32 fields, KCRASH_NWORDS of them, in the order of kcrash_report_t below
 *   ..  u32 stack_addr, u16 stack_len, u16 reserved (0), stack_len bytes of stack
 *   end u32 crc32 (IEEE) of every byte before it
 * A decoder accepts a newer minor layout only through a new version number: KERR_CRASH_VERSION.
 * persisted: never renumber reasons or reorder fields.
 */
#ifndef KEEL_CRASH_H
#define KEEL_CRASH_H

#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

#define KCRASH_MAGIC 0x3152434Bu
#define KCRASH_VERSION 1u
#define KCRASH_STACK_MAX 256u

/* Why the app was stopped. persisted: never renumber. */
typedef enum kcrash_reason {
    KCRASH_NONE = 0,
    KCRASH_HARDFAULT = 1,     /* HardFault (incl. escalated faults from NS) */
    KCRASH_SECUREFAULT = 2,   /* SecureFault: NS touched secure memory or a non-NSC entry */
    KCRASH_BUSFAULT = 3,
    KCRASH_USAGEFAULT = 4,    /* undefined instruction, divide by zero, invalid state ... */
    KCRASH_MEMFAULT = 5,      /* NS MPU violation */
    KCRASH_WATCHDOG = 6,      /* app watchdog not kicked in time (hang, masked IRQs, storm) */
    KCRASH_EXIT = 7,          /* the app's reset handler returned (r0 = exit code) */
    KCRASH_RESTART = 8,       /* the app asked for a restart (keel_app_restart) */
    KCRASH_BREAKPOINT = 9,    /* BKPT with no debugger attached */
    KCRASH_IRQ_STORM = 10,    /* the app spent (nearly) all its time in interrupt handlers */
    KCRASH_REASON_COUNT
} kcrash_reason_t;

typedef struct kcrash_report {
    uint32_t reason;          /* kcrash_reason_t */
    uint32_t restart_count;   /* app restarts since power-on, before this one */
    uint32_t uptime_ms_lo;    /* device uptime at the stop, ms (64-bit split) */
    uint32_t uptime_ms_hi;
    uint32_t run_ms;          /* how long this app run lasted, ms */
    uint32_t app_version;     /* kapp version of the app that stopped */
    uint32_t exc_return;      /* EXC_RETURN of the secure exception that caught it */
    uint32_t r[13];           /* r0..r12 at the fault */
    uint32_t sp;              /* NS stack pointer after the hardware frame */
    uint32_t lr;
    uint32_t pc;
    uint32_t xpsr;            /* IPSR field = NS exception number if the app was in a handler */
    uint32_t msp_ns, psp_ns, control_ns;
    uint32_t cfsr, hfsr, sfsr, sfar, bfar, mmfar;
    uint32_t stack_addr;      /* NS address of stack[0] */
    uint16_t stack_len;       /* 0 .. KCRASH_STACK_MAX */
    uint8_t stack[KCRASH_STACK_MAX];
} kcrash_report_t;

/* 32-bit fields encoded before the stack block (reason .. mmfar). */
#define KCRASH_NWORDS 33u
#define KCRASH_ENCODED_MAX (8u + 4u * KCRASH_NWORDS + 8u + KCRASH_STACK_MAX + 4u)

/* Short name of a reason ("SecureFault", "watchdog", ...); "unknown" for anything else. */
const char *kcrash_reason_name(uint32_t reason);

/* Encode. Errors: KERR_NOMEM (cap too small), KERR_INVAL (stack_len > KCRASH_STACK_MAX). */
kerr_t kcrash_encode(const kcrash_report_t *r, uint8_t *out, size_t cap, size_t *out_len);

/* Decode untrusted bytes. Errors: KERR_TRUNCATED, KERR_FORMAT, KERR_CRASH_VERSION, KERR_CRC. */
kerr_t kcrash_decode(const uint8_t *in, size_t len, kcrash_report_t *out);

/*
 * Human-readable multi-line summary: reason, PC/LR, decoded fault status bits
 * ("SFSR: AUVIOL", "CFSR: UNDEFINSTR"), registers, stack hex dump. Each line starts with
 * prefix. Returns the length written (always NUL-terminated, truncated to cap).
 */
size_t kcrash_format(const kcrash_report_t *r, const char *prefix, char *out, size_t cap);

#endif /* KEEL_CRASH_H */

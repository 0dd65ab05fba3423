/*
 * The supervisor: runs the app, catches every way it can fail, reports, and restarts it.
 *
 * Execution model (secure side):
 *
 *   secure Thread mode, PSP_S            secure Handler mode, MSP_S
 *   +-----------------------------+      +------------------------------------------------+
 *   | supervisor loop (sup_loop)  |      | TIMER0 tick (0x20): time, app watchdog          |
 *   |   prepare app, BLXNS ------>|--+   | PendSV service (0x60): heartbeat, notifications,|
 *   |   <- only if app returns    |  |   |   secure watchdog kick, app stop requests       |
 *   +-----------------------------+  |   | faults (HardFault, SecureFault, BusFault, ...)  |
 *                                    |   +------------------------------------------------+
 *                 non-secure app <---+   (app: 0x80-0xFF after PRIS, can mask none of these)
 *                 keel_* calls run in secure Thread mode on PSP_S, below the BLXNS frame
 *
 * Stopping the app ("abandon"): a fault handler, or the PendSV service acting on a stop request
 * (watchdog, keel_app_restart), captures a crash report, then leaves the app's context behind:
 * it resets PSP_S, builds a fresh exception frame there whose PC is sup_loop, and exception-
 * returns into secure Thread mode. Nothing of the dead context is ever resumed. Whatever secure
 * code the app was in (a keel_* call) holds no lock outside a critical section, and critical
 * sections mask the service, so abandoning it is safe.
 *
 * Restarting cleanly: the next run must look like a chip reset to the app. The supervisor
 * disables and unpends every app interrupt, clears the app's SCB state (fault enables, active
 * system handlers, MPU, VTOR), resets app peripherals (board table), stops the app's SysTick
 * from inside the NS world (a 7-instruction stub: the secure alias of SysTick_NS faults on
 * QEMU 7.2), zeroes app RAM and copies+verifies the image again. One thing cannot be undone in
 * place: an app *interrupt* that was active when the app died stays active (no way to
 * deactivate it but returning from it). Then the supervisor restarts through a system reset,
 * keeping its counters, reports and uptime in .noinit RAM.
 */
#include <arm_cmse.h>
#include <stddef.h>
#include <string.h>

#include "board.h"
#include "keel/board.h"
#include "keel.h"
#include "keel/crc32.h"
#include "keel/flash.h"
#include "keel/kcrypto.h"
#include "port.h"
#include "cpu_regs.h"
#include "uv.h"
#include "net/net_chan.h"
#include "uv_dbg.h"
#include "uv_upd.h"
#include "net/uv_net.h"

#define EXC_RETURN_S (1u << 6)     /* frame on the secure stack */
#define EXC_RETURN_SPSEL (1u << 2) /* frame on PSP */
#define EXC_RETURN_MODE (1u << 3)  /* returning to Thread mode */
#define IPSR_HARDFAULT 3u
#define IPSR_MEMFAULT 4u
#define IPSR_BUSFAULT 5u
#define IPSR_USAGEFAULT 6u
#define IPSR_SECUREFAULT 7u
#define IPSR_PENDSV 14u
#define SHCSR_NS_ACTIVE_MASK 0x00000D8Fu
#define SERVICE_PERIOD_MS 10u
/* While the app is not running, the supervisor masks every app exception (PRIS puts them all
 * at 0x80 and below): a dead app's pending interrupt, storm or SysTick must not run app code or
 * preempt the supervisor. The tick and the service stay above. */
#define SUP_BASEPRI 0x80u

uv_app_t uv_app;
kident_t uv_ident;

typedef struct sup {
    volatile bool running;          /* the app is executing (between BLXNS and its stop) */
    volatile bool halted;           /* parked by the debugger (running is false meanwhile) */
    uint32_t wdog_left;             /* app watchdog time left when the debugger parked it */
    bool recorded;                  /* the report of this stop is recorded already */
    volatile uint32_t stop_req;     /* kcrash_reason_t requested, 0 = none */
    uint32_t run_start_ms;
    kcrash_report_t report;         /* the stop being handled */
    bool have_report;
    /* app watchdog: deadlines in port_ticks() ms, compared wrap-safe */
    volatile uint32_t wdog_timeout;
    volatile uint32_t wdog_deadline;
    volatile bool wdog_warned;
    volatile bool wdog_warn_pending;
    volatile bool in_service;       /* the secure service holds the CPU (the app cannot run) */
    /* notifications */
    uint32_t ring;                  /* NS address of the ring, 0 = none */
    uint32_t slots, irq, wr, dropped;
    /* heartbeat */
    uint32_t hb_period, hb_next, hb_count; /* hb_count: heartbeat lines this boot (n=) */
    /* interrupt storm detection (tick samples) */
    uint32_t storm_samples, storm_hits;
    bool test_hang;                 /* boot word uv-hang (read once: the service runs often) */
} sup_t;

static sup_t sup;

/* ------------------------------------------------------------------------------------------ */
/* App memory and NS register helpers                                                          */

static uint32_t read_msp_ns(void) { uint32_t v; __asm__ volatile("mrs %0, msp_ns" : "=r"(v)); return v; }
static uint32_t read_psp_ns(void) { uint32_t v; __asm__ volatile("mrs %0, psp_ns" : "=r"(v)); return v; }
static uint32_t read_control_ns(void) { uint32_t v; __asm__ volatile("mrs %0, control_ns" : "=r"(v)); return v; }
static uint32_t read_ipsr(void) { uint32_t v; __asm__ volatile("mrs %0, ipsr" : "=r"(v)); return v & 0x1FFu; }

bool uv_app_running(void)
{
    return sup.running || sup.halted;
}

void uv_service_pend(void)
{
    REG32(SCB_ICSR) = ICSR_PENDSVSET;
    __asm__ volatile("dsb\n isb" ::: "memory");
}

void uv_sup_request_stop(kcrash_reason_t reason)
{
    /* While the debugger holds the app, the request waits: it takes effect at the resume. */
    if (!sup.running && !sup.halted)
        return;
    if (sup.stop_req == 0u)
        sup.stop_req = reason;
    uv_service_pend();
}

/* ------------------------------------------------------------------------------------------ */
/* Crash capture (handler mode)                                                                */

/* Reason for a fault, refined from the status registers: an NS UsageFault that escalated to
 * HardFault is reported as the UsageFault it was (HFSR still shows FORCED). */
static uint32_t fault_reason(uint32_t ipsr, const kcrash_report_t *r)
{
    switch (ipsr) {
    case IPSR_SECUREFAULT: return KCRASH_SECUREFAULT;
    case IPSR_BUSFAULT: return KCRASH_BUSFAULT;
    case IPSR_USAGEFAULT: return KCRASH_USAGEFAULT;
    case IPSR_MEMFAULT: return KCRASH_MEMFAULT;
    default: break;
    }
    if (board_app_mem(r->pc & ~1u, 2u) && ((*(volatile uint16_t *)(uintptr_t)(r->pc & ~1u)) & 0xFF00u) == 0xBE00u)
        return KCRASH_BREAKPOINT;
    if (r->sfsr & 0xFFu)
        return KCRASH_SECUREFAULT;
    if (r->cfsr & 0xFFFF0000u)
        return KCRASH_USAGEFAULT;
    if (r->cfsr & 0x0000FF00u)
        return KCRASH_BUSFAULT;
    if (r->cfsr & 0x000000FFu)
        return KCRASH_MEMFAULT;
    return KCRASH_HARDFAULT;
}

static void capture(const uint32_t *r4_r11, uint32_t exc_return, uint32_t reason, uint32_t ipsr)
{
    kcrash_report_t *r = &sup.report;
    memset(r, 0, sizeof(*r));
    uint64_t up = uv_uptime_ms();
    r->restart_count = uv_ni.restarts;
    r->uptime_ms_lo = (uint32_t)up;
    r->uptime_ms_hi = (uint32_t)(up >> 32);
    r->run_ms = port_ticks() - sup.run_start_ms;
    r->app_version = uv_app.hdr.version;
    r->exc_return = exc_return;
    r->msp_ns = read_msp_ns();
    r->psp_ns = read_psp_ns();
    r->control_ns = read_control_ns();

    /* Fault status: UFSR/MMFSR are banked (the app's are in the NS view), BFSR is not. */
    r->cfsr = (REG32(SCB_CFSR) & 0x0000FF00u) | (REG32(NS(SCB_CFSR)) & 0xFFFF00FFu);
    r->hfsr = REG32(SCB_HFSR);
    r->sfsr = REG32(SAU_SFSR);
    r->sfar = REG32(SAU_SFAR);
    r->bfar = REG32(SCB_BFAR);
    r->mmfar = REG32(NS(SCB_MMFAR));
    REG32(SCB_CFSR) = REG32(SCB_CFSR);
    REG32(NS(SCB_CFSR)) = REG32(NS(SCB_CFSR));
    REG32(SCB_HFSR) = REG32(SCB_HFSR);
    REG32(SAU_SFSR) = REG32(SAU_SFSR);

    if (!(exc_return & EXC_RETURN_S)) {
        /* The app itself was interrupted: its registers are live (r4-r11) or on its stack. */
        for (unsigned i = 0; i < 8u; i++)
            r->r[4 + i] = r4_r11[i];
        /* EXC_RETURN.SPSEL is the *secure* CONTROL.SPSEL (v8-M); the app's frame is on PSP_NS
         * only if it was in Thread mode with its own CONTROL.SPSEL set. */
        bool thread = (exc_return & EXC_RETURN_MODE) != 0u;
        uint32_t frame = (thread && (r->control_ns & 2u)) ? r->psp_ns : r->msp_ns;
        if (board_app_mem(frame, 32u)) {
            const volatile uint32_t *f = (const volatile uint32_t *)(uintptr_t)frame;
            for (unsigned i = 0; i < 4u; i++)
                r->r[i] = f[i];
            r->r[12] = f[4];
            r->lr = f[5];
            r->pc = f[6];
            r->xpsr = f[7];
            r->sp = frame + 32u + ((r->xpsr & (1u << 9)) ? 4u : 0u);
        } else {
            r->sp = frame; /* stack pointer outside app RAM (overflow): no frame to read */
        }
        uint32_t want = uv_app.hdr.stack_dump < KCRASH_STACK_MAX ? uv_app.hdr.stack_dump : KCRASH_STACK_MAX;
        while (want && !board_app_mem(r->sp, want))
            want /= 2u;
        if (want) {
            r->stack_addr = r->sp;
            r->stack_len = (uint16_t)want;
            memcpy(r->stack, (const void *)(uintptr_t)r->sp, want);
        }
    }
    /* else: stopped inside a keel_* call; the app's registers are not exposed there. */
    r->reason = reason ? reason : fault_reason(ipsr, r);
    sup.have_report = true;
}

/*
 * Common C entry of every exception that may stop the app: the faults and the PendSV service.
 * r4_r11: the interrupted context's callee-saved registers. Returns what uv_exception_entry
 * does next: return to the interrupted context, abandon it (enter sup_loop), park the app for
 * the debugger (enter its halt loop) or resume the parked app.
 */
enum { UV_EXC_RETURN = 0, UV_EXC_ABANDON = 1, UV_EXC_PARK = 2, UV_EXC_RESUME = 3 };
static void service_run(void);

uint32_t uv_exception(const uint32_t *r4_r11, uint32_t exc_return)
{
    uint32_t ipsr = read_ipsr();
    if (ipsr == IPSR_PENDSV) {
        service_run();
        switch (uv_dbg_on_service(r4_r11, exc_return, sup.running)) {
        case UV_DBG_PARK: return UV_EXC_PARK;
        case UV_DBG_RESUME: return UV_EXC_RESUME;
        case UV_DBG_RESTART: {
            /* The debugger killed the app, or left it faulted: the normal stop path. */
            sup.halted = false;
            if (!sup.have_report) {
                uint32_t excret;
                const uint32_t *regs = uv_dbg_parked_context(&excret);
                capture(regs, excret, KCRASH_RESTART, ipsr);
            }
            return UV_EXC_ABANDON;
        }
        default: break;
        }
        if (!sup.running || sup.stop_req == 0u)
            return UV_EXC_RETURN;
        capture(r4_r11, exc_return, sup.stop_req, ipsr);
        sup.running = false;
        return UV_EXC_ABANDON;
    }
    if (sup.running && !(exc_return & EXC_RETURN_S)) {
        switch (uv_dbg_on_trap(r4_r11, exc_return)) {
        case UV_DBG_RETURN: return UV_EXC_RETURN;
        case UV_DBG_PARK: /* a watchpoint hit: a stop, no crash */
            sup.have_report = false;
            sup.recorded = false;
            return UV_EXC_PARK;
        default: break;
        }
        capture(r4_r11, exc_return, 0u, ipsr);
        if (uv_dbg_on_fault(r4_r11, exc_return, sup.report.reason) == UV_DBG_PARK) {
            /* A breakpoint is no crash; a fault's report is recorded by the halt loop. */
            sup.have_report = sup.report.reason != KCRASH_BREAKPOINT;
            sup.recorded = false;
            return UV_EXC_PARK;
        }
        sup.running = false;
        return UV_EXC_ABANDON;
    }
    /* A fault in secure code: a microvisor bug (app pointers are checked before use). Keep the
     * evidence, then reset the chip: the microvisor must come back, the app with it. */
    capture(r4_r11, exc_return, 0u, ipsr);
    uv_log("MICROVISOR FAULT (exception %lu, exc_return=0x%08lx, CFSR=0x%08lx HFSR=0x%08lx SFSR=0x%08lx)",
           (unsigned long)ipsr, (unsigned long)exc_return, (unsigned long)sup.report.cfsr,
           (unsigned long)sup.report.hfsr, (unsigned long)sup.report.sfsr);
    uv_reset(UV_RESET_FAULT);
}

/* Build a fresh frame on the supervisor stack and exception-return into sup_loop in secure
 * Thread mode (PSP_S). MSP_S is reset too: nothing below this handler is ever resumed. */
__attribute__((naked, noreturn, used)) void uv_abandon(void)
{
    __asm__ volatile(
        "ldr r0, =__sup_stack_top\n"
        "sub r0, r0, #32\n"
        "movs r1, #0\n"
        "str r1, [r0, #0]\n str r1, [r0, #4]\n str r1, [r0, #8]\n str r1, [r0, #12]\n"
        "str r1, [r0, #16]\n"
        "ldr r1, =0xFFFFFFFF\n str r1, [r0, #20]\n"  /* LR: sup_loop never returns */
        "ldr r1, =sup_loop\n bic r1, r1, #1\n str r1, [r0, #24]\n"
        "ldr r1, =0x01000000\n str r1, [r0, #28]\n"  /* xPSR: Thumb */
        "msr psp, r0\n"
        "ldr r0, =__msp_stack_top\n msr msp, r0\n"
        "movs r0, %0\n msr basepri, r0\n"            /* the dead app's interrupts stay out */
        "ldr lr, =0xFFFFFFFD\n"                      /* secure, Thread, PSP, no FP, DCRS */
        "bx lr\n"
        ".ltorg\n" ::"i"(SUP_BASEPRI));
}

/* Entry of HardFault, MemManage, BusFault, UsageFault, SecureFault and PendSV (secure). */
__attribute__((naked)) void uv_exception_entry(void)
{
    __asm__ volatile(
        "push {r4-r11}\n"      /* the interrupted context's callee-saved registers */
        "mov r0, sp\n"
        "mov r1, lr\n"
        "push {r1, r2}\n"      /* keep EXC_RETURN; 8-byte aligned */
        "bl uv_exception\n"
        "pop {r1, r2}\n"
        "add sp, sp, #32\n"
        "cmp r0, #1\n"
        "beq 1f\n"
        "cmp r0, #2\n"
        "beq 2f\n"
        "cmp r0, #3\n"
        "beq 3f\n"
        "bx r1\n"
        "1: b uv_abandon\n"
        "2: b uv_dbg_park_enter\n"
        "3: b uv_dbg_resume_app\n");
}

/* The secure watchdog's first expiry: the microvisor has not run its service for a second.
 * Record where it was and why the coming reset happens; the second expiry resets the chip. */
__attribute__((used)) static void nmi_stall(uint32_t lr, uint32_t msp, uint32_t psp)
{
    if (lr & EXC_RETURN_S) /* stalled in secure code: the frame is on the secure stack it used */
        uv_ni.stall_pc = ((volatile uint32_t *)(uintptr_t)((lr & EXC_RETURN_SPSEL) ? psp : msp))[6];
    uint64_t up = uv_uptime_ms() + PORT_WDOG_MS;
    uv_ni.uptime_base_lo = (uint32_t)up;
    uv_ni.uptime_base_hi = (uint32_t)(up >> 32);
    uv_ni.reset_cause = UV_RESET_WATCHDOG;
    uv_noinit_commit();
    uv_log("microvisor stalled (pc=0x%08lx): watchdog reset follows", (unsigned long)uv_ni.stall_pc);
}

/* The stack pointers are read before any prologue pushes onto MSP (a C function's would move
 * the frame it looks for). */
__attribute__((naked)) void NMI_Handler(void)
{
    __asm__ volatile("mov r0, lr\n mrs r1, msp\n mrs r2, psp\n b nmi_stall\n");
}

/* ------------------------------------------------------------------------------------------ */
/* Tick and service                                                                             */

/*
 * Interrupt storm: an app interrupt that keeps firing starves the app's main loop. The app
 * watchdog catches a complete starvation, but a storm often lets a few instructions through per
 * interrupt (enough to kick the watchdog now and then while no real work gets done). So the tick
 * samples the app's interrupt state: busy when the tick lands inside an app handler, or when an
 * enabled app interrupt is pending or active (a tail-chaining storm is caught between two runs
 * of its handler). Busy in every one of STORM_WINDOW_MS consecutive samples stops the app as
 * "interrupt storm": a real storm (a handler that re-pends itself, a level source never cleared)
 * is busy at every sample, while a heavily loaded but healthy app is idle at least once a second
 * (99% over 500 ms still caught a 2 kHz handler doing API calls when QEMU's timers ran late).
 */
#define STORM_WINDOW_MS 1000u
#define STORM_PERMILLE 1000u

/* First app interrupt line that is active or, with pending_too, pending and enabled. */
static bool app_irq_find(bool pending_too, uint32_t *out_irq)
{
    uint32_t n = board_irq_count() / 32u;
    for (uint32_t w = 0; w < n; w++) {
        uint32_t hit = REG32(NVIC_IABR(w));
        if (pending_too)
            hit |= REG32(NVIC_ISPR(w)) & REG32(NVIC_ISER(w));
        hit &= REG32(NVIC_ITNS(w));
        if (hit) {
            *out_irq = w * 32u + (uint32_t)__builtin_ctz(hit);
            return true;
        }
    }
    return false;
}

static bool app_irq_busy(void)
{
    uint32_t irq;
    return app_irq_find(true, &irq);
}

static void storm_sample(uint32_t exc_return)
{
    bool in_app_handler = !(exc_return & EXC_RETURN_S) && !(exc_return & EXC_RETURN_MODE);
    sup.storm_samples++;
    sup.storm_hits += (in_app_handler || app_irq_busy()) ? 1u : 0u;
    if (sup.storm_samples < STORM_WINDOW_MS)
        return;
    if (sup.storm_hits * 1000u >= STORM_PERMILLE * STORM_WINDOW_MS)
        uv_sup_request_stop(KCRASH_IRQ_STORM);
    sup.storm_samples = 0u;
    sup.storm_hits = 0u;
}

void port_tick_hook(uint32_t exc_return)
{
    uint32_t now = port_ticks();
    if (sup.running)
        storm_sample(exc_return);
    if (sup.running && sup.wdog_timeout) {
        /* A tick that finds the secure service running took this millisecond from the app, not
         * the app from itself: it does not count against the app's watchdog. A TLS handshake's
         * P-256 work runs for hundreds of ms in the service (more without ECP_NIST_OPTIM). */
        if (sup.in_service)
            sup.wdog_deadline = sup.wdog_deadline + 1u;
        int32_t left = (int32_t)(sup.wdog_deadline - now);
        if (left <= 0) {
            uv_sup_request_stop(KCRASH_WATCHDOG);
        } else if (!sup.wdog_warned && (uint32_t)left <= sup.wdog_timeout / 2u) {
            sup.wdog_warned = true;
            sup.wdog_warn_pending = true;
            uv_service_pend();
        }
    }
    if (now % SERVICE_PERIOD_MS == 0u)
        uv_service_pend();
}

/* Console lines the host did not read in time: reported like dropped log entries, on the console
 * and to the cloud. */
static void console_service(void)
{
    port_console_drain();
    uint32_t lost = port_console_dropped_take();
    if (lost != 0u) {
        uv_log("console: %lu line(s) lost: the host did not read the console in time",
               (unsigned long)lost);
        uv_net_event(KEEL_LOG_WARN, "console: %lu line(s) lost", (unsigned long)lost);
    }
}

static void service_run(void)
{
    port_wdog_kick();
    sup.in_service = true;
    console_service();
    uv_net_poll();
    uv_upd_service();
    uv_dbg_poll();
    sup.in_service = false;
    if (sup.test_hang && uv_ni.boots == 1u && port_ticks() > 300u) {
        uv_log("test: microvisor hangs now (uv-hang)");
        for (;;) /* deliberately unbounded: the secure watchdog must end this */
            __asm__ volatile("nop");
    }
    if (sup.wdog_warn_pending) {
        sup.wdog_warn_pending = false;
        int32_t left = (int32_t)(sup.wdog_deadline - port_ticks());
        if (sup.running)
            uv_notify_post(KEEL_NOTIFY_WATCHDOG, left > 0 ? (uint32_t)left : 0u, 0u);
    }
    uint32_t now = port_ticks();
    if (sup.hb_period && (int32_t)(now - sup.hb_next) >= 0) {
        sup.hb_next = now + sup.hb_period;
        sup.hb_count++;
        uv_log("heartbeat up=%lums ticks=%lu restarts=%lu n=%lu", (unsigned long)uv_uptime_ms(),
               (unsigned long)now, (unsigned long)uv_ni.restarts, (unsigned long)sup.hb_count);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* App watchdog and notifications (called from keel_* entry points)                            */

int32_t uv_wdog_start(uint32_t timeout_ms)
{
    if (timeout_ms < KEEL_WATCHDOG_MIN_MS || timeout_ms > KEEL_WATCHDOG_MAX_MS)
        return KEEL_EINVAL;
    uint32_t c = uv_crit_enter();
    sup.wdog_deadline = port_ticks() + timeout_ms;
    sup.wdog_warned = false;
    sup.wdog_timeout = timeout_ms;
    uv_crit_exit(c);
    return KEEL_OK;
}

int32_t uv_wdog_kick(void)
{
    if (!sup.wdog_timeout)
        return KEEL_ESTATE;
    uint32_t c = uv_crit_enter();
    sup.wdog_deadline = port_ticks() + sup.wdog_timeout;
    sup.wdog_warned = false;
    uv_crit_exit(c);
    return KEEL_OK;
}

void uv_sup_halt_enter(void)
{
    int32_t left = (int32_t)(sup.wdog_deadline - port_ticks());
    sup.wdog_left = left > 0 ? (uint32_t)left : 1u;
    sup.running = false;
    sup.halted = true;
}

void uv_sup_halt_leave(void)
{
    /* A developer reading variables is not a hang: the watchdog gets back the time it had,
     * and the storm sampling starts over. */
    sup.wdog_deadline = port_ticks() + sup.wdog_left;
    sup.storm_samples = 0u;
    sup.storm_hits = 0u;
    sup.have_report = false;
    sup.halted = false;
    sup.running = true;
}

/* Write one slot; false when it is still full. Caller holds the critical section. */
static bool ring_put(uint32_t kind, uint32_t arg0, uint32_t arg1)
{
    keel_notification_t *slot = (keel_notification_t *)(uintptr_t)(sup.ring + sup.wr * sizeof(keel_notification_t));
    if (slot->kind != KEEL_NOTIFY_FREE)
        return false;
    slot->arg0 = arg0;
    slot->arg1 = arg1;
    slot->time_ms = (uint32_t)uv_uptime_ms();
    __asm__ volatile("dmb" ::: "memory");
    slot->kind = kind;
    sup.wr = (sup.wr + 1u) % sup.slots;
    return true;
}

void uv_notify_post(uint32_t kind, uint32_t arg0, uint32_t arg1)
{
    uint32_t c = uv_crit_enter();
    if (sup.ring) {
        if (sup.dropped && ring_put(KEEL_NOTIFY_DROPPED, sup.dropped, 0u))
            sup.dropped = 0u;
        if (sup.dropped || !ring_put(kind, arg0, arg1))
            sup.dropped++;
        REG32(NVIC_ISPR(sup.irq / 32u)) = 1u << (sup.irq % 32u);
    }
    uv_crit_exit(c);
}

int32_t uv_notify_setup(uint32_t ring, uint32_t slots, uint32_t irq)
{
    if (slots < KEEL_NOTIFY_MIN_SLOTS || slots > KEEL_NOTIFY_MAX_SLOTS || !board_irq_is_app(irq))
        return KEEL_EINVAL;
    bool first;
    uint32_t c = uv_crit_enter();
    first = sup.ring == 0u;
    sup.ring = ring;
    sup.slots = slots;
    sup.irq = irq;
    sup.wr = 0u;
    sup.dropped = 0u;
    uv_crit_exit(c);
    if (first) {
        uv_notify_post(KEEL_NOTIFY_STARTED, uv_ni.last_stop, uv_ni.restarts);
        uv_upd_app_ring_ready();
    }
    return KEEL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Preparing and launching the app (Thread mode)                                               */

typedef int32_t __attribute__((cmse_nonsecure_call)) ns_entry_t(void);

/* Runs in the NS world before each start: stop the app's SysTick and clear its pending
 * SysTick/PendSV, which the secure side cannot do through the NS aliases on QEMU 7.2. */
__attribute__((naked, aligned(4))) static void ns_reset_stub(void)
{
    __asm__ volatile(
        "ldr r0, 1f\n movs r1, #0\n str r1, [r0]\n"
        "ldr r0, 2f\n ldr r1, 3f\n str r1, [r0]\n"
        "bx lr\n"
        ".align 2\n"
        "1: .word 0xE000E010\n"   /* SYST_CSR */
        "2: .word 0xE000ED04\n"   /* ICSR */
        "3: .word 0x0A000000\n"); /* PENDSVCLR | PENDSTCLR */
}
#define NS_STUB_BYTES 28u

static void ns_regs_reset(uint32_t msp)
{
    __asm__ volatile(
        "msr msp_ns, %0\n msr psp_ns, %1\n msr msplim_ns, %1\n msr psplim_ns, %1\n"
        "msr control_ns, %1\n msr primask_ns, %1\n msr faultmask_ns, %1\n msr basepri_ns, %1\n"
        ::"r"(msp), "r"(0u)
        : "memory");
}

static void app_hw_reset(void)
{
    uint32_t n = board_irq_count();
    for (uint32_t w = 0; w < n / 32u; w++) {
        uint32_t ns = REG32(NVIC_ITNS(w));
        REG32(NVIC_ICER(w)) = ns;
        REG32(NVIC_ICPR(w)) = ns;
    }
    for (uint32_t irq = 0; irq < n; irq++)
        if (board_irq_is_app(irq))
            REG8(NVIC_IPR(irq)) = 0u;
    REG32(NS(SCB_SHCSR)) = 0u;  /* fault enables off, active/pending system handlers cleared */
    REG32(NS(SCB_ICSR)) = ICSR_PENDSVCLR | ICSR_PENDSTCLR;
    REG32(NS(MPU_CTRL)) = 0u;
    REG32(NS(SCB_CCR)) = CCR_RESET;
    REG32(NS(SCB_SCR)) = 0u;
    REG32(NS(SCB_SHPR1)) = 0u;
    REG32(NS(SCB_SHPR2)) = 0u;
    REG32(NS(SCB_SHPR3)) = 0u;
    board_reset_app_peripherals();

    /* The SysTick stub runs from the bottom of app RAM, which is zeroed right after. */
    memcpy((void *)(uintptr_t)board_app_ram.base, (const void *)((uintptr_t)ns_reset_stub & ~1u), NS_STUB_BYTES);
    __asm__ volatile("dsb\n isb" ::: "memory");
    ns_regs_reset(board_app_ram.base + board_app_ram.size);
    ns_entry_t *stub = (ns_entry_t *)cmse_nsfptr_create(board_app_ram.base | 1u);
    stub();
    memset((void *)(uintptr_t)board_app_ram.base, 0, board_app_ram.size);
}

/* Copy the image from flash into the app code region, hashing what lands there. */
static kerr_t app_load(void)
{
    kerr_t err;
    kflash_t *fl = port_flash_open(PORT_FLASH_INTERNAL, &err);
    if (!fl)
        return err;
    static uint8_t buf[4096];
    kc_sha256_t sha;
    if (kc_sha256_start(&sha) != KC_OK)
        return KERR_IMG_HASH;
    uint8_t *dst = (uint8_t *)(uintptr_t)uv_app.hdr.load_addr;
    for (uint32_t off = 0; off < uv_app.hdr.image_size; off += sizeof(buf)) {
        uint32_t n = uv_app.hdr.image_size - off < sizeof(buf) ? uv_app.hdr.image_size - off : sizeof(buf);
        err = kflash_read(fl, kboard_app_image_off(&kboard_fw) + off, buf, n);
        if (err != KERR_OK)
            break;
        memcpy(dst + off, buf, n);
        if (kc_sha256_update(&sha, dst + off, n) != KC_OK) {
            err = KERR_IMG_HASH;
            break;
        }
    }
    uint8_t digest[32];
    if (err != KERR_OK)
        kc_sha256_abort(&sha);
    else if (kc_sha256_finish(&sha, digest) != KC_OK || memcmp(digest, uv_app.hdr.sha256, 32) != 0)
        err = KERR_IMG_HASH;
    /* Scrub the rest of the region: nothing of a previous image stays executable. */
    memset(dst + uv_app.hdr.image_size, 0xFF,
           board_app_code.base + board_app_code.size - (uv_app.hdr.load_addr + uv_app.hdr.image_size));
    return err;
}

static uint32_t stop_reason_for_app(uint32_t reason)
{
    switch (reason) {
    case KCRASH_WATCHDOG: return KEEL_STOP_WATCHDOG;
    case KCRASH_EXIT: return KEEL_STOP_EXIT;
    case KCRASH_RESTART: return KEEL_STOP_RESTART;
    default: return KEEL_STOP_FAULT;
    }
}

/* Nothing to run: wait for an update to install one (the service keeps the device reachable). */
static void idle_until_update(void)
{
    while (uv_upd_pending() == UV_UPD_NONE)
        __asm__ volatile("wfi");
}

/* Keep a stopped run's report (sent to the cloud) and count the restart. */
static void record_report(const kcrash_report_t *r)
{
    uv_ni.reports[uv_ni.report_count % UV_REPORTS] = *r;
    uv_ni.report_count++;
    uv_ni.last_stop = stop_reason_for_app(r->reason);
    uv_ni.restarts++;

    uint32_t irq;
    if (r->reason == KCRASH_IRQ_STORM && app_irq_find(true, &irq))
        uv_log("app stopped: %s (app IRQ %lu)", kcrash_reason_name(r->reason), (unsigned long)irq);
    else
        uv_log("app stopped: %s%s", kcrash_reason_name(r->reason),
               sup.halted ? " (halted for the debugger)" : "");
    uv_net_event(r->reason == KCRASH_RESTART ? KEEL_LOG_INFO : KEEL_LOG_ERROR, "app stopped: %s",
                 kcrash_reason_name(r->reason));
    static char text[2048];
    kcrash_format(r, "[keel]   ", text, sizeof(text));
    uint32_t c = uv_crit_enter(); /* keep the report's lines together */
    port_console_write(text, strlen(text));
    uv_crit_exit(c);
    uv_noinit_commit();
}

/* The stop in sup.report is handled: record it unless the debugger's halt loop did already. */
static void record_stop(void)
{
    sup.have_report = false;
    if (!sup.recorded)
        record_report(&sup.report);
    sup.recorded = false;
    uv_dbg_app_gone();
}

void uv_sup_record_stop(void)
{
    record_report(&sup.report);
    sup.recorded = true;
}

/* An app interrupt that was active when the app died cannot be undone in place. */
static void irq_reset_check(void)
{
    uint32_t irq;
    if (app_irq_find(false, &irq)) {
        uv_log("app interrupt %lu still active: restarting through a system reset", (unsigned long)irq);
        uv_ni.launch_now = 1u;
        uv_reset(UV_RESET_APP_RESTART);
    }
}

/* Report the stop, wait out the back-off (the microvisor keeps serving meanwhile), and decide
 * how to restart. */
static void handle_stop(void)
{
    kcrash_report_t *r = &sup.report;
    record_stop();

    uint32_t delay = 0;
    if (r->reason != KCRASH_RESTART) {
        if (r->run_ms >= uv_app.hdr.backoff_max_ms || uv_ni.consecutive == 0u)
            uv_ni.consecutive = 1u;
        else if (uv_ni.consecutive < 31u)
            uv_ni.consecutive++;
        uint32_t shift = uv_ni.consecutive - 1u;
        uint64_t d = (uint64_t)uv_app.hdr.backoff_min_ms << (shift > 20u ? 20u : shift);
        delay = d > uv_app.hdr.backoff_max_ms ? uv_app.hdr.backoff_max_ms : (uint32_t)d;
    }
    uv_noinit_commit();
    uv_log("app restart %lu in %lu ms", (unsigned long)uv_ni.restarts, (unsigned long)delay);
    uv_net_event(KEEL_LOG_INFO, "app restart %lu in %lu ms", (unsigned long)uv_ni.restarts,
                 (unsigned long)delay);

    uint32_t until = port_ticks() + delay;
    while ((int32_t)(until - port_ticks()) > 0 && uv_upd_pending() == UV_UPD_NONE)
        __asm__ volatile("wfi");
    irq_reset_check();
}

static void run_app(void)
{
    app_hw_reset();
    kerr_t err = app_load();
    if (err != KERR_OK) {
        uv_log("app image in flash does not verify (%s): app not started", kerr_str(err));
        uv_app.valid = false;
        return;
    }
    uv_upd_app_starting();
    const uint32_t *vt = (const uint32_t *)(uintptr_t)uv_app.hdr.load_addr;
    REG32(NS(SCB_VTOR)) = uv_app.hdr.load_addr;
    ns_regs_reset(vt[0]);
    sup.wdog_timeout = 0u;
    sup.ring = 0u;
    net_chan_app_reset(); /* channels belong to one run of the app */
    sup.stop_req = 0u;
    sup.storm_samples = 0u;
    sup.storm_hits = 0u;
    sup.run_start_ms = port_ticks();
    uint64_t us = uv_uptime_us();
    uv_log("app started (device uptime %lu.%06lu s)", (unsigned long)(us / 1000000u),
           (unsigned long)(us % 1000000u));
    sup.running = true;
    __asm__ volatile("msr basepri, %0" ::"r"(0u) : "memory");
    int32_t rc = ((ns_entry_t *)cmse_nsfptr_create(vt[1]))();
    __asm__ volatile("msr basepri, %0" ::"r"(SUP_BASEPRI) : "memory");
    sup.running = false;
    /* The app's reset handler returned. */
    capture(NULL, EXC_RETURN_S, KCRASH_EXIT, 0u);
    sup.report.r[0] = (uint32_t)rc;
    uv_log("app exited with code %ld", (long)rc);
}

/* The supervisor loop, entered fresh (new stack) at boot and after every abandon. */
__attribute__((noreturn, used)) void sup_loop(void)
{
    sup.running = false;
    for (;;) {
        if (sup.have_report) {
            /* A stop the update asked for (apply, rollback) is no crash; a crash on trial is
             * one, kept and reported, and then rolls the update back instead of a restart. */
            bool ours = uv_upd_pending() != UV_UPD_NONE;
            if (!ours && uv_upd_app_stopped(sup.report.reason))
                record_stop();
            else if (ours && sup.report.reason != KCRASH_RESTART)
                record_stop();
            else if (!ours)
                handle_stop();
            sup.have_report = false;
        }
        if (uv_upd_pending() != UV_UPD_NONE) {
            uv_upd_run();
            irq_reset_check();
            continue;
        }
        if (!uv_app.valid) {
            idle_until_update();
            continue;
        }
        run_app();
    }
}

void uv_sup_start(void)
{
    sup.hb_period = port_arg_u32("heartbeat", 10000u);
    sup.test_hang = port_arg_has("uv-hang");
    sup.hb_next = port_ticks() + sup.hb_period;
    uv_ni.launch_now = 0u;
    uv_noinit_commit();
    /* Move Thread mode onto the supervisor stack (PSP_S); handlers keep MSP_S. */
    __asm__ volatile(
        "ldr r0, =__sup_stack_limit\n msr psplim, r0\n"
        "ldr r0, =__sup_stack_top\n msr psp, r0\n"
        "mrs r0, control\n orr r0, r0, #2\n msr control, r0\n isb\n"
        "movs r0, %0\n msr basepri, r0\n"
        "b sup_loop\n"
        ".ltorg\n" ::"i"(SUP_BASEPRI) : "r0", "memory");
    __builtin_unreachable();
}

/*
 * The app debugger: a GDB stub in the secure world for the non-secure app (docs/debug.md).
 *
 * QEMU's Cortex-M33 boards have no halting debug, no DebugMonitor and no FPB: a BKPT executed by the app is a
 * HardFault_S. So breakpoints are BKPT patches (bkpt_sw), a step is "decode with thumb_next_pc,
 * plant temporaries at the successors, run", and "halted" means the microvisor does not return to
 * the app:
 *
 *   park    A fault or BKPT from NS code (HardFault/MemManage/BusFault/UsageFault/SecureFault),
 *           or the service finding a Ctrl-C request when it interrupted NS code, saves the app's
 *           context: its exception frame stays where the hardware stacked it (NS stack), r4-r11
 *           and the EXC_RETURN are copied here, with the supervisor's PSP_S/PSPLIM_S (run_app's
 *           BLXNS frame lies there: it must survive for the app's return). Then the handler
 *           exception-returns into the halt loop, secure Thread mode on its own small stack,
 *           BASEPRI_S 0x80: every app exception is held, the tick and the service run on.
 *   serve   The service (PendSV_S) feeds the RSP engine; target ops read and write the parked
 *           frame and the app's memory (NS alias, app regions only).
 *   resume  From the service: restore PSP_S/PSPLIM_S, reset MSP_S, BASEPRI_S 0, r4-r11, and
 *           exception-return with the saved EXC_RETURN. The halt loop's frame is abandoned.
 *
 * Only a stop *from NS code* parks (EXC_RETURN.S = 0): a Ctrl-C while the app is inside a keel_*
 * call waits for the next service run that interrupts NS code (every 10 ms from the tick), so
 * secure state never reaches the debugger and no keel_* call is left half done.
 *
 * Watchpoints (Z2-Z4) are uv_dbg_watch.c: the NS MPU traps the watched granules and each trap
 * is stepped there; the state both files share is dbg_t (uv_dbg_int.h).
 *
 * Concurrency: the engine, the breakpoints and the parked context are touched only by the
 * service, by the fault handlers while the app runs (never while parked: nothing of the app runs
 * then), and by uv_dbg_app_gone() in the supervisor loop inside a critical section (which masks
 * the service). Input bytes pass through a single-producer ring.
 */
#include "uv_dbg_int.h"

#include <stddef.h>
#include <string.h>

#include "board.h"
#include "keel/bkpt.h"
#include "keel/crash.h"
#include "keel/rsp.h"
#include "keel/thumb.h"
#include "port.h"
#include "cpu_regs.h"
#include "uv.h"
#include "uv_watch.h"

__attribute__((used)) dbg_t dbg;
__attribute__((used, aligned(8))) static uint8_t halt_stack[HALT_STACK_BYTES];

/* ------------------------------------------------------------------------------------------ */
/* App memory (NS alias, app regions only) and breakpoints                                     */

static kerr_t app_read(void *ctx, uint32_t addr, uint8_t *out, uint32_t len)
{
    (void)ctx;
    if (!board_app_mem(addr, len))
        return KERR_RANGE;
    memcpy(out, (const void *)(uintptr_t)addr, len);
    return KERR_OK;
}

static kerr_t app_write(void *ctx, uint32_t addr, const uint8_t *data, uint32_t len)
{
    (void)ctx;
    if (!board_app_mem(addr, len))
        return KERR_RANGE;
    memcpy((void *)(uintptr_t)addr, data, len);
    __asm__ volatile("dsb\n isb" ::: "memory"); /* a patched instruction is fetched anew */
    return KERR_OK;
}

static const bkpt_mem_ops_t app_mem_ops = {app_read, app_write};

void dbg_temps_clear(const uint32_t *bps, unsigned *n)
{
    for (unsigned i = 0; i < *n; i++)
        (void)bkpt_remove(&dbg.bp, bps[i]);
    *n = 0;
}

static void step_bp_clear(void)
{
    dbg_temps_clear(dbg.step_bp, &dbg.n_step_bp);
}

/* ------------------------------------------------------------------------------------------ */
/* Parking                                                                                     */

static int fault_signal(uint32_t reason)
{
    switch (reason) {
    case KCRASH_BREAKPOINT: return RSP_SIGTRAP;
    case KCRASH_BUSFAULT:
    case KCRASH_SECUREFAULT: return RSP_SIGBUS;
    case KCRASH_USAGEFAULT: return RSP_SIGILL;
    default: return RSP_SIGSEGV; /* MemManage, and a HardFault nothing else explains */
    }
}

/* The app's exception frame. As in the crash capture: EXC_RETURN.SPSEL is the secure SPSEL; the
 * app's frame is on PSP_NS only in Thread mode with the app's own CONTROL.SPSEL set. */
uint32_t dbg_ns_frame(uint32_t exc_return)
{
    bool thread = (exc_return & EXC_RETURN_MODE) != 0u;
    return (thread && (read_control_ns() & 2u)) ? read_psp_ns() : read_msp_ns();
}

/* Save the interrupted app context (handler mode, app interrupted in NS code). */
void dbg_park(const uint32_t *r4_r11, uint32_t exc_return, int sig, bool fault)
{
    memcpy(dbg.r4_r11, r4_r11, sizeof(dbg.r4_r11));
    dbg.exc_return = exc_return;
    __asm__ volatile("mrs %0, psp\n mrs %1, psplim" : "=r"(dbg.psp_s), "=r"(dbg.psplim_s));
    dbg.frame = dbg_ns_frame(exc_return);
    dbg.sig = sig;
    dbg.stop_watch = false;
    dbg.fault = fault;
    dbg.halt_req = false;
    dbg.resume_req = false;
    dbg.loop_ready = false;
    dbg.parked = true;
    dbg.ranging = false;
    step_bp_clear();
    dbg_watch_quiesce();
    uv_sup_halt_enter();
    dbg.stop_pending = true;
    uv_service_pend();
}

uv_dbg_action_t uv_dbg_on_fault(const uint32_t *r4_r11, uint32_t exc_return, uint32_t reason)
{
    if (!dbg.session || dbg.parked)
        return UV_DBG_NONE;
    dbg_park(r4_r11, exc_return, fault_signal(reason), reason != KCRASH_BREAKPOINT);
    return UV_DBG_PARK;
}

uv_dbg_action_t uv_dbg_on_service(const uint32_t *r4_r11, uint32_t exc_return, bool app_running)
{
    if (dbg.parked) {
        if (!dbg.loop_ready)
            return UV_DBG_NONE; /* the halt loop is still recording: leave on a later run */
        if (dbg.restart_req) {
            dbg.restart_req = false;
            dbg.resume_req = false;
            dbg.parked = false;
            return UV_DBG_RESTART;
        }
        if (dbg.resume_req) {
            dbg.resume_req = false;
            dbg.parked = false;
            dbg_watch_arm();
            uv_sup_halt_leave();
            return UV_DBG_RESUME;
        }
        return UV_DBG_NONE;
    }
    if (dbg.halt_req && app_running && !(exc_return & EXC_RETURN_S)) {
        dbg_park(r4_r11, exc_return, RSP_SIGINT, false);
        return UV_DBG_PARK;
    }
    return UV_DBG_NONE;
}

const uint32_t *uv_dbg_parked_context(uint32_t *out_exc_return)
{
    *out_exc_return = dbg.exc_return;
    return dbg.r4_r11;
}

/* Secure Thread mode while the app is parked. A fault park records the crash report here (it
 * writes the console and .noinit: too long for the handler), then the loop idles until the
 * service leaves it for the app (resume) or for the supervisor loop (restart). */
__attribute__((noreturn, used)) static void halt_loop(void)
{
    if (dbg.fault)
        uv_sup_record_stop();
    dbg.loop_ready = true;
    uv_service_pend();
    for (;;)
        __asm__ volatile("wfi");
}

/* Build a frame whose PC is halt_loop at the top of halt_stack and exception-return into it. */
__attribute__((naked, noreturn)) void uv_dbg_park_enter(void)
{
    __asm__ volatile(
        "ldr r0, =halt_stack\n"
        "add r0, r0, %0\n"
        "sub r0, r0, #32\n"
        "movs r1, #0\n"
        "str r1, [r0, #0]\n str r1, [r0, #4]\n str r1, [r0, #8]\n str r1, [r0, #12]\n"
        "str r1, [r0, #16]\n"
        "ldr r1, =0xFFFFFFFF\n str r1, [r0, #20]\n"
        "ldr r1, =halt_loop\n bic r1, r1, #1\n str r1, [r0, #24]\n"
        "ldr r1, =0x01000000\n str r1, [r0, #28]\n"
        "movs r1, #0\n msr psplim, r1\n"
        "msr psp, r0\n"
        "ldr r1, =halt_stack\n msr psplim, r1\n"
        "ldr r0, =__msp_stack_top\n msr msp, r0\n"
        "movs r0, %1\n msr basepri, r0\n"
        "ldr lr, =0xFFFFFFFD\n"   /* secure, Thread, PSP, no FP, DCRS */
        "bx lr\n"
        ".ltorg\n" ::"i"(HALT_STACK_BYTES), "i"(HALT_BASEPRI));
}

/* Back to the parked app: the supervisor's PSP_S as it was, a fresh MSP_S (the service is the
 * only active secure exception), app interrupts open, r4-r11, and the app's own EXC_RETURN. */
__attribute__((naked, noreturn)) void uv_dbg_resume_app(void)
{
    __asm__ volatile(
        "ldr r0, =dbg\n"
        "movs r1, #0\n msr psplim, r1\n"
        "ldr r1, [r0, #36]\n msr psp, r1\n"
        "ldr r1, [r0, #40]\n msr psplim, r1\n"
        "ldr r1, =__msp_stack_top\n msr msp, r1\n"
        "movs r1, #0\n msr basepri, r1\n"
        "ldr lr, [r0, #32]\n"
        "ldm r0, {r4-r11}\n"
        "bx lr\n"
        ".ltorg\n");
}

/* ------------------------------------------------------------------------------------------ */
/* Target ops                                                                                  */

static uint32_t frame_word(unsigned i)
{
    return ((const volatile uint32_t *)(uintptr_t)dbg.frame)[i];
}

static bool frame_ok(void)
{
    return board_app_mem(dbg.frame, (dbg.exc_return & EXC_RETURN_FTYPE) ? FRAME_BASIC : FRAME_FP);
}

/* The app's sp before the exception: past the frame, its FP part and the alignment pad. */
uint32_t dbg_app_sp(void)
{
    uint32_t sp = dbg.frame + ((dbg.exc_return & EXC_RETURN_FTYPE) ? FRAME_BASIC : FRAME_FP);
    return sp + ((frame_word(7) & XPSR_ALIGN) ? 4u : 0u);
}

/* Register n of the context in dbg (frame, r4-r11, EXC_RETURN): parked, or being stepped over
 * a watched access. */
static kerr_t ctx_reg(unsigned n, uint32_t *v)
{
    if (!frame_ok())
        return KERR_IO;
    if (n <= 3u)
        *v = frame_word(n);
    else if (n <= 11u)
        *v = dbg.r4_r11[n - 4u];
    else if (n == 12u)
        *v = frame_word(4);
    else if (n == RSP_REG_SP)
        *v = dbg_app_sp();
    else if (n == RSP_REG_LR)
        *v = frame_word(5);
    else if (n == RSP_REG_PC)
        *v = frame_word(6);
    else if (n == RSP_REG_XPSR)
        *v = frame_word(7);
    else if (n == RSP_REG_MSP || n == RSP_REG_PSP) {
        uint32_t msp = read_msp_ns(), psp = read_psp_ns();
        uint32_t raw = n == RSP_REG_MSP ? msp : psp;
        *v = raw == dbg.frame ? dbg_app_sp() : raw;
    } else
        return KERR_INVAL;
    return KERR_OK;
}

static kerr_t t_read_reg(void *ctx, unsigned n, uint32_t *v)
{
    (void)ctx;
    return dbg.parked ? ctx_reg(n, v) : KERR_IO;
}

static kerr_t t_write_reg(void *ctx, unsigned n, uint32_t v)
{
    (void)ctx;
    if (!dbg.parked || !frame_ok())
        return KERR_IO;
    volatile uint32_t *f = (volatile uint32_t *)(uintptr_t)dbg.frame;
    if (n <= 3u)
        f[n] = v;
    else if (n <= 11u)
        dbg.r4_r11[n - 4u] = v;
    else if (n == 12u)
        f[4] = v;
    else if (n == RSP_REG_LR)
        f[5] = v;
    else if (n == RSP_REG_PC)
        f[6] = v & ~1u;
    else if (n == RSP_REG_XPSR)
        f[7] = (f[7] & ~XPSR_WRITABLE) | (v & XPSR_WRITABLE);
    else if (n == RSP_REG_SP || n == RSP_REG_MSP || n == RSP_REG_PSP) {
        uint32_t cur;
        kerr_t err = t_read_reg(ctx, n, &cur);
        /* gdb's 'G' writes every register back: the same value is fine, a move is not (it
         * would move the frame the app returns through). */
        return err == KERR_OK && cur == v ? KERR_OK : KERR_INVAL;
    } else
        return KERR_INVAL;
    return KERR_OK;
}

static kerr_t t_read_mem(void *ctx, uint32_t a, uint8_t *o, uint32_t n)
{
    (void)ctx;
    return bkpt_read(&dbg.bp, a, o, n);
}

static kerr_t t_write_mem(void *ctx, uint32_t a, const uint8_t *d, uint32_t n)
{
    (void)ctx;
    return bkpt_write(&dbg.bp, a, d, n);
}

static kerr_t t_insert_bp(void *ctx, rsp_bp_type_t type, uint32_t a, uint32_t kind)
{
    (void)ctx;
    (void)type; /* no FPB on QEMU: Z1 is patched too, so gdb's hbreak works */
    (void)kind;
    return bkpt_insert(&dbg.bp, a);
}

static kerr_t t_remove_bp(void *ctx, rsp_bp_type_t type, uint32_t a, uint32_t kind)
{
    (void)ctx;
    (void)type;
    (void)kind;
    return bkpt_remove(&dbg.bp, a);
}

static kerr_t thumb_read(void *ctx, uint32_t a, uint8_t *o, uint32_t n)
{
    (void)ctx;
    return bkpt_read(&dbg.bp, a, o, n);
}

/*
 * Where an exception return (bx lr, pop {pc}, ldr pc of an EXC_RETURN) at the current pc lands:
 * the return address of the frame it unstacks. Its stack: the EXC_RETURN's SPSEL (the app's own
 * Thread PSP) or MSP_NS, which for a handler is its sp after a POP took its registers off.
 */
static kerr_t exc_return_target(const thumb_state_t *st, uint32_t excret, uint32_t *out)
{
    if (excret & EXC_RETURN_S)
        return KERR_INVAL; /* FNC_RETURN or a return to secure state: not the app's to step */
    uint32_t sp = st->r[13];
    uint16_t hw1;
    kerr_t err = thumb_read(NULL, st->r[15], (uint8_t *)&hw1, 2u);
    if (err != KERR_OK)
        return err;
    if ((hw1 & 0xFE00u) == 0xBC00u) { /* POP {..., pc} */
        sp += 4u * (uint32_t)__builtin_popcount(hw1 & 0x1FFu);
    } else if (hw1 == 0xE8BDu) {      /* POP.W {..., pc} */
        uint16_t hw2;
        if ((err = thumb_read(NULL, st->r[15] + 2u, (uint8_t *)&hw2, 2u)) != KERR_OK)
            return err;
        sp += 4u * (uint32_t)__builtin_popcount(hw2);
    } else if ((hw1 & 0xFF87u) != 0x4700u) { /* anything but BX */
        return KERR_INVAL;
    }
    uint32_t frame = (excret & EXC_RETURN_MODE) && (excret & EXC_RETURN_SPSEL) ? read_psp_ns() : sp;
    return app_read(NULL, frame + 24u, (uint8_t *)out, 4u);
}

/* Is the instruction at pc a call (BL, or BLX register), which sets lr to the next one? */
static bool is_call(uint32_t pc)
{
    uint16_t hw[2];
    if (thumb_read(NULL, pc, (uint8_t *)hw, 4u) != KERR_OK &&
        thumb_read(NULL, pc, (uint8_t *)hw, 2u) != KERR_OK)
        return false;
    if ((hw[0] & 0xFF87u) == 0x4780u)
        return true; /* BLX Rm */
    return (hw[0] & 0xF800u) == 0xF000u && (hw[1] & 0xD000u) == 0xD000u; /* BL */
}

/* Temporary breakpoints at the successors of the instruction at the context's pc (into bps[2],
 * *n of them): what a step runs to. */
kerr_t dbg_plant_successors(uint32_t *bps, unsigned *n)
{
    thumb_state_t st;
    for (unsigned i = 0; i < 16u; i++) {
        kerr_t err = ctx_reg(i, &st.r[i]);
        if (err != KERR_OK)
            return err;
    }
    st.xpsr = frame_word(7);
    st.xpsr_valid = true; /* the stacked xpsr is exact, ITSTATE included */
    thumb_next_t nx;
    kerr_t err = thumb_next_pc(&st, thumb_read, NULL, &nx);
    if (err == KERR_OK && nx.exc_return) {
        err = exc_return_target(&st, nx.pc[0], &nx.pc[0]);
        nx.count = 1;
    }
    for (unsigned i = 0; err == KERR_OK && i < nx.count; i++) {
        /* Into the microvisor (a keel_* call): no breakpoint can go there, and the app
         * resumes where the call returns: after a BL/BLX, or, for the jump of a linker
         * veneer (LDR pc / BX to the NSC entry), at the caller's lr. */
        if (!board_app_mem(nx.pc[i] & ~1u, 2u))
            nx.pc[i] = is_call(st.r[15]) ? st.r[15] + nx.size : st.r[14];
        err = bkpt_insert(&dbg.bp, nx.pc[i] & ~1u);
        if (err == KERR_OK)
            bps[(*n)++] = nx.pc[i] & ~1u;
    }
    if (err != KERR_OK)
        dbg_temps_clear(bps, n);
    return err;
}

static kerr_t t_resume(void *ctx, bool step, int sig)
{
    (void)ctx;
    (void)sig; /* signals are not delivered to a bare-metal app */
    if (!dbg.parked)
        return uv_app_running() ? KERR_OK : KERR_IO;
    if (step) {
        kerr_t err = dbg_plant_successors(dbg.step_bp, &dbg.n_step_bp);
        if (err != KERR_OK)
            return err;
    }
    dbg.resume_req = true;
    return KERR_OK;
}

bool dbg_pc_in(uint32_t pc, const uint32_t *bps, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (bps[i] == pc)
            return true;
    return false;
}

bool dbg_raw_bkpt_at(uint32_t pc)
{
    return board_app_mem(pc, 2u) && (*(volatile uint16_t *)(uintptr_t)pc & 0xFF00u) == 0xBE00u;
}

/* A step's temporary hit inside the range of a vCont;r: step on, no stop, no round trip. */
static uv_dbg_action_t range_step(const uint32_t *r4_r11, uint32_t exc_return)
{
    uint32_t frame = dbg_ns_frame(exc_return);
    if (!board_app_mem(frame, FRAME_BASIC))
        return UV_DBG_NONE;
    uint32_t pc = ((const volatile uint32_t *)(uintptr_t)frame)[6];
    if ((REG32(NS(SCB_CFSR)) & 0xFFu) != 0u || pc < dbg.range_start || pc >= dbg.range_end ||
        !dbg_pc_in(pc, dbg.step_bp, dbg.n_step_bp) || !dbg_raw_bkpt_at(pc))
        return UV_DBG_NONE;
    step_bp_clear();
    if (dbg_raw_bkpt_at(pc))
        return UV_DBG_NONE; /* gdb's own breakpoint is there too: that stop is reported */
    REG32(SCB_HFSR) = HFSR_FORCED;
    dbg.frame = frame;
    dbg.exc_return = exc_return;
    memcpy(dbg.r4_r11, r4_r11, sizeof(dbg.r4_r11));
    if (dbg_plant_successors(dbg.step_bp, &dbg.n_step_bp) != KERR_OK) {
        dbg_park(r4_r11, exc_return, RSP_SIGTRAP, false); /* cannot step on: stop here */
        return UV_DBG_PARK;
    }
    return UV_DBG_RETURN;
}

uv_dbg_action_t uv_dbg_on_trap(const uint32_t *r4_r11, uint32_t exc_return)
{
    if (!dbg.session || dbg.parked)
        return UV_DBG_NONE;
    if (dbg.ranging) {
        uv_dbg_action_t a = range_step(r4_r11, exc_return);
        if (a != UV_DBG_NONE)
            return a;
    }
    return dbg_watch_trap(r4_r11, exc_return);
}

/* vCont;r: a step now; uv_dbg_on_trap() steps on while the app stops inside the range. */
static kerr_t t_resume_range(void *ctx, uint32_t start, uint32_t end)
{
    kerr_t err = t_resume(ctx, true, 0);
    if (err == KERR_OK && dbg.parked) {
        dbg.ranging = true;
        dbg.range_start = start;
        dbg.range_end = end;
    }
    return err;
}

static void t_halt(void *ctx)
{
    (void)ctx;
    dbg.halt_req = true;
}

static int t_stop_signal(void *ctx)
{
    (void)ctx;
    return dbg.sig;
}

/* The session ends ('D', 'k', transport gone): no breakpoint may outlive it. */
static void session_end(bool kill)
{
    step_bp_clear();
    dbg.ranging = false;
    dbg_watch_quiesce();
    watch_init(&dbg.ws);
    kerr_t err = bkpt_remove_all(&dbg.bp);
    if (err != KERR_OK)
        uv_log("debugger: a breakpoint could not be removed (%s)", kerr_str(err));
    dbg.halt_req = false;
    if (dbg.parked) {
        if (kill || dbg.fault)
            dbg.restart_req = true; /* a faulted app cannot go on: the normal stop path */
        else
            dbg.resume_req = true;
    } else if (kill) {
        uv_sup_request_stop(KCRASH_RESTART);
    }
    dbg.session = false;
    dbg.end_session = true;
    dbg.end_kill = kill;
    uv_log("debugger: session ended (%s), app %s", kill ? "kill" : dbg.lost ? "connection lost" : "detach",
           kill || (dbg.parked && dbg.fault) ? "restarted" : "resumed");
}

static void t_detach(void *ctx)
{
    (void)ctx;
    session_end(false);
}

static void t_kill(void *ctx)
{
    (void)ctx;
    session_end(true);
}

static const rsp_target_ops_t target_ops = {
    t_read_reg, t_write_reg, t_read_mem, t_write_mem, t_insert_bp, t_remove_bp,
    t_resume, t_halt, t_stop_signal, t_detach, t_kill, dbg_insert_wp, dbg_remove_wp, dbg_stop_watch,
    t_resume_range,
};

/* ------------------------------------------------------------------------------------------ */
/* Transport side                                                                              */

static void tr_send(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    if (dbg.tr)
        dbg.tr->send(dbg.tr->ctx, data, len);
}

static void engine_reset(void)
{
    static const rsp_config_t cfg = {&target_ops, NULL, tr_send, NULL};
    (void)rsp_init(&dbg.rsp, &cfg);
    dbg.end_session = false;
}

bool uv_dbg_attach(const uv_dbg_transport_t *t)
{
    uint32_t c = uv_crit_enter();
    bool ok = dbg.tr == NULL;
    if (ok) {
        dbg.in_rd = dbg.in_wr;
        dbg.tr = t;
        engine_reset();
    }
    uv_crit_exit(c);
    if (ok)
        uv_log("debugger: %s transport attached", t->name);
    return ok;
}

void uv_dbg_detach_transport(const uv_dbg_transport_t *t)
{
    uint32_t c = uv_crit_enter();
    if (dbg.tr == t) {
        dbg.lost = true;
        if (dbg.session)
            rsp_connection_lost(&dbg.rsp); /* detach: breakpoints removed, app resumed */
        dbg.lost = false;
        dbg.tr = NULL;
        dbg.end_session = false;
    }
    uv_crit_exit(c);
}

bool uv_dbg_session_open(void)
{
    return dbg.session;
}

bool uv_dbg_input(const uint8_t *data, size_t len)
{
    uint32_t wr = dbg.in_wr;
    if (len > IN_CAP - 1u - ((wr - dbg.in_rd) % IN_CAP))
        return false;
    for (size_t i = 0; i < len; i++)
        dbg.in[(wr + i) % IN_CAP] = data[i];
    __asm__ volatile("dmb" ::: "memory");
    dbg.in_wr = (wr + (uint32_t)len) % IN_CAP;
    uv_service_pend();
    return true;
}

/*
 * Service: report a stop, then hand queued bytes to the engine. Bytes wait while the engine
 * believes the app halted but it is not parked yet (just attached, halt on its way): every
 * register or memory request must see a parked app. If no app runs at all, they go through
 * (the ops then answer errors, and gdb can still detach).
 */
void uv_dbg_poll(void)
{
    if (!dbg.tr)
        return;
    if (dbg.stop_pending) {
        dbg.stop_pending = false;
        rsp_notify_stop(&dbg.rsp);
    }
    if (dbg.exit_pending) {
        dbg.exit_pending = false;
        rsp_notify_exit(&dbg.rsp, RSP_SIGKILL);
    }
    for (unsigned guard = 0; guard < 4u && dbg.in_rd != dbg.in_wr; guard++) {
        /* A session starts with a packet or a Ctrl-C: a stray ack after a detach is no
         * reason to halt the app. */
        while (!dbg.session && dbg.in_rd != dbg.in_wr && dbg.in[dbg.in_rd] != '$' &&
               dbg.in[dbg.in_rd] != 0x03u)
            dbg.in_rd = (dbg.in_rd + 1u) % IN_CAP;
        if (dbg.in_rd == dbg.in_wr)
            break;
        if (!dbg.session) {
            dbg.session = true;
            dbg.sig = RSP_SIGINT;
            dbg.halt_req = uv_app_running() && !dbg.parked;
            uv_log("debugger: session opened (%s)", dbg.tr->name);
        }
        if (!dbg.parked && !rsp_running(&dbg.rsp) && uv_app_running())
            break;
        uint32_t rd = dbg.in_rd, wr = dbg.in_wr;
        uint32_t n = (wr >= rd ? wr : IN_CAP) - rd;
        rsp_input(&dbg.rsp, &dbg.in[rd], n);
        dbg.in_rd = (rd + n) % IN_CAP;
        if (dbg.end_session) {
            bool kill = dbg.end_kill;
            engine_reset();
            if (dbg.tr->ended)
                dbg.tr->ended(dbg.tr->ctx, kill);
            break;
        }
    }
}

/* The app stopped for good (watchdog, storm, exit, a restart): its breakpoints go (the old
 * image is still in place), a debugger waiting in 'continue' hears that the process ended
 * (X09), and the session is over: the next packet starts a new one on the restarted app. */
void uv_dbg_app_gone(void)
{
    uint32_t c = uv_crit_enter();
    if (dbg.session) {
        step_bp_clear();
        dbg_watch_quiesce();
        watch_init(&dbg.ws);
        (void)bkpt_remove_all(&dbg.bp);
        dbg.exit_pending = rsp_running(&dbg.rsp); /* sent by the service, never from here */
        dbg.session = false;
        dbg.halt_req = false;
        uv_service_pend();
        uv_log("debugger: the app stopped for good: session ended, breakpoints removed");
    }
    dbg.parked = false;
    dbg.fault = false;
    dbg.resume_req = false;
    uv_crit_exit(c);
}

/* ------------------------------------------------------------------------------------------ */
/* The plain serial transport (local development: boot word dbg-uart)                          */

static void serial_send(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    port_dbg_uart_write(data, len);
}

static void serial_rx(uint8_t byte)
{
    (void)uv_dbg_input(&byte, 1u); /* 2 KiB behind a 1-byte UART: gdb waits for replies */
}

static const uv_dbg_transport_t serial_transport = {"serial", serial_send, NULL, NULL};

void uv_dbg_boot(void)
{
    (void)bkpt_sw_init(&dbg.sw, &app_mem_ops, NULL, &dbg.bp);
    watch_init(&dbg.ws);
    engine_reset();
    if (!port_arg_has("dbg-uart"))
        return;
    board_debug_uart_claim();
    port_dbg_uart_start(serial_rx);
    (void)uv_dbg_attach(&serial_transport);
}

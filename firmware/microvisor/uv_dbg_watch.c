/*
 * The app debugger's watchpoints (Z2 watch, Z3 rwatch, Z4 awatch; docs/debug.md "Watchpoints").
 *
 * QEMU's Cortex-M33 has no DWT, so the NS MPU traps every access to the 32-byte granules a
 * watchpoint covers (uv_watch.h). A trap escalates to HardFault_S; dbg_watch_trap() (from uv_dbg_on_trap()) then:
 *
 *   1. plants temporaries at the successors of the trapped instruction (as a step does) and
 *      re-runs it under one read-only region over the faulting granule (the probe): a second
 *      fault there means a store, no fault a load;
 *   2. runs it with the MPU off up to a temporary;
 *   3. asks watch_hit() (keel/watch.h) whether the access touched a watched range of its kind
 *      (or changed a watched range's bytes): a hit parks the app as a SIGTRAP stop whose reply
 *      names the watchpoint; anything else re-arms the MPU and returns to the app, unseen.
 *
 * The MPU is the stub's only while the app runs with watchpoints set: a park, the end of a
 * session or the app's end gives the app its own MPU state back; a resume re-arms it.
 */
#include <string.h>

#include "board.h"
#include "port.h"
#include "cpu_regs.h"
#include "uv.h"
#include "uv_dbg_int.h"
#include "uv_watch.h"

/* A stepped access left unfinished (a park, the app gone): its temporaries go, the app's MPU
 * state comes back (re-armed at the next resume). */
void dbg_watch_quiesce(void)
{
    dbg_temps_clear(dbg.wstep_bp, &dbg.n_wstep_bp);
    dbg.wphase = WSTEP_IDLE;
    if (dbg.ws_armed) {
        uv_watch_mpu_release();
        dbg.ws_armed = false;
    }
}

void dbg_watch_arm(void)
{
    dbg.ws_armed = dbg.ws.count > 0u;
    uv_watch_mpu_arm(&dbg.ws); /* an empty set releases */
}

/* steps each trapped access and stops only on a hit                                            */

static const char *const wp_name[] = {"", "", "watch", "rwatch", "awatch"};

/* The lowest app stack pointer now, less a margin: the app's stack is taken to lie above. */
static uint32_t app_stack_floor(void)
{
    uint32_t lo = board_app_ram.base + board_app_ram.size;
    uint32_t sps[3] = {read_msp_ns(), read_psp_ns(), dbg.parked ? dbg_app_sp() : lo};
    for (unsigned i = 0; i < 3u; i++)
        if (board_app_mem(sps[i], 1u) && sps[i] < lo)
            lo = sps[i];
    return lo - board_app_ram.base > STACK_MARGIN ? lo - STACK_MARGIN : board_app_ram.base;
}

static kerr_t wp_refuse(rsp_bp_type_t type, uint32_t a, uint32_t len, kerr_t err, const char *why)
{
    uv_log("debugger: %s 0x%08lx (%lu bytes) refused: %s", wp_name[type], (unsigned long)a,
           (unsigned long)len, why);
    return err;
}

kerr_t dbg_insert_wp(void *ctx, rsp_bp_type_t type, uint32_t a, uint32_t len)
{
    (void)ctx;
    if (!board_app_mem(a, len))
        return wp_refuse(type, a, len, KERR_RANGE, "outside the app's memory");
    if (dbg.ws.count >= uv_watch_mpu_capacity())
        return wp_refuse(type, a, len, KERR_NOMEM, "all watchpoint comparators are in use");
    if (uv_watch_mpu_app_owned())
        return wp_refuse(type, a, len, KERR_IO,
                         "the app enabled its own MPU, which watchpoints need on this core");
    uint32_t floor = app_stack_floor(), ram_end = board_app_ram.base + board_app_ram.size;
    watch_set_t one;
    watch_init(&one);
    if (watch_add(&one, (watch_type_t)type, a, len) != KERR_OK)
        return KERR_INVAL;
    if (watch_in_granules(&one, floor, ram_end - floor))
        return wp_refuse(type, a, len, KERR_RANGE,
                         "on the app's stack (exception entry would store into a trapped granule)");
    return watch_add(&dbg.ws, (watch_type_t)type, a, len);
}

kerr_t dbg_remove_wp(void *ctx, rsp_bp_type_t type, uint32_t a, uint32_t len)
{
    (void)ctx;
    return watch_remove(&dbg.ws, (watch_type_t)type, a, len);
}

bool dbg_stop_watch(void *ctx, rsp_bp_type_t *type, uint32_t *addr)
{
    (void)ctx;
    if (!dbg.stop_watch)
        return false;
    *type = dbg.stop_wtype;
    *addr = dbg.stop_waddr;
    return true;
}

static uint32_t watch_hashes_changed(void)
{
    uint32_t changed = 0;
    for (unsigned i = 0; i < dbg.ws.count; i++) {
        watch_t *w = &dbg.ws.w[i];
        uint32_t h = watch_hash((const uint8_t *)(uintptr_t)w->addr, w->len);
        if (h != w->hash)
            changed |= 1u << i;
        w->hash = h;
    }
    return changed;
}

/* A trapped access ran (pc at one of its temporaries): was it a hit? */
static uv_dbg_action_t wstep_done(const uint32_t *r4_r11, uint32_t exc_return, uint32_t pc)
{
    bool probed = dbg.wfar_valid, write = dbg.wwrite;
    REG32(SCB_HFSR) = HFSR_FORCED;
    dbg_temps_clear(dbg.wstep_bp, &dbg.n_wstep_bp);
    dbg.wphase = WSTEP_IDLE;
    uint32_t changed = watch_hashes_changed();
    const watch_t *hit = NULL;
    if (probed)
        hit = watch_hit(&dbg.ws, write, dbg.wfar, changed);
    else if (changed) /* no fault address: only what a store changed tells */
        hit = watch_hit(&dbg.ws, true, 0u, changed);
    if (hit) {
        rsp_bp_type_t type = (rsp_bp_type_t)hit->type;
        uint32_t addr = hit->addr;
        dbg_park(r4_r11, exc_return, RSP_SIGTRAP, false); /* the MPU goes back to the app */
        dbg.stop_watch = true;
        dbg.stop_wtype = type;
        dbg.stop_waddr = addr;
        return UV_DBG_PARK;
    }
    dbg_watch_arm();
    /* A breakpoint (gdb's, a step's, the app's own) where the access led: the normal stop. */
    return dbg_raw_bkpt_at(pc) ? UV_DBG_NONE : UV_DBG_RETURN;
}

uv_dbg_action_t dbg_watch_trap(const uint32_t *r4_r11, uint32_t exc_return)
{
    if (!dbg.ws_armed)
        return UV_DBG_NONE;
    uint32_t frame = dbg_ns_frame(exc_return);
    if (!board_app_mem(frame, FRAME_BASIC))
        return UV_DBG_NONE;
    uint32_t pc = ((const volatile uint32_t *)(uintptr_t)frame)[6];
    uint32_t mmfsr = REG32(NS(SCB_CFSR)) & 0xFFu;
    if (dbg.wphase != WSTEP_IDLE && mmfsr == 0u && dbg_pc_in(pc, dbg.wstep_bp, dbg.n_wstep_bp) &&
        dbg_raw_bkpt_at(pc))
        return wstep_done(r4_r11, exc_return, pc);
    if (!(mmfsr & (MMFSR_DACCVIOL | MMFSR_IACCVIOL)) ||
        (mmfsr & (MMFSR_MSTKERR | MMFSR_MUNSTKERR | MMFSR_MLSPERR)))
        return UV_DBG_NONE; /* not the MPU refusing an access: the app's own fault */
    uint32_t far = REG32(NS(SCB_MMFAR));
    REG32(NS(SCB_CFSR)) = mmfsr; /* write one to clear */
    REG32(SCB_HFSR) = HFSR_FORCED;
    if (dbg.wphase == WSTEP_PROBE) {
        /* The probe's read-only region refused it again: a store (or, at another pc, an
         * interrupt handler's access, which then runs unwatched with the rest of the step). */
        dbg.wwrite = pc == dbg.wpc;
        uv_watch_mpu_off();
        dbg.wphase = WSTEP_STEP;
        return UV_DBG_RETURN;
    }
    if (dbg.wphase == WSTEP_STEP) { /* cannot fault on the MPU while it is off: give up */
        dbg_watch_quiesce();
        return UV_DBG_NONE;
    }
    /* A new trap: run the instruction once with the MPU out of the way, stop right after it. */
    dbg.frame = frame;
    dbg.exc_return = exc_return;
    memcpy(dbg.r4_r11, r4_r11, sizeof(dbg.r4_r11));
    if (dbg_plant_successors(dbg.wstep_bp, &dbg.n_wstep_bp) != KERR_OK) {
        dbg_watch_quiesce();
        return UV_DBG_NONE;
    }
    (void)watch_hashes_changed(); /* the bytes before the access */
    dbg.wpc = pc;
    dbg.wfar = far;
    dbg.wfar_valid = (mmfsr & (MMFSR_DACCVIOL | MMFSR_MMARVALID)) == (MMFSR_DACCVIOL | MMFSR_MMARVALID);
    dbg.wwrite = false;
    if (dbg.wfar_valid) {
        uv_watch_mpu_probe(far & ~(WATCH_GRANULE - 1u));
        dbg.wphase = WSTEP_PROBE;
    } else {
        uv_watch_mpu_off();
        dbg.wphase = WSTEP_STEP;
    }
    return UV_DBG_RETURN;
}


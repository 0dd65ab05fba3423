/*
 * The non-secure MPU as data watchpoint comparators (uv_watch.h). The secure side reaches the
 * app's MPU through the NS alias of the system control space (NS(): 0xE002xxxx).
 *
 * Regions used: the top 2 * WATCH_MAX of MPU_TYPE.DREGION (an app that programs regions from 0
 * up keeps its low ones). Memory attribute index 7 (MAIR1 byte 3) is set to normal write-back
 * memory for them; a region over app RAM must not be Device memory (unaligned accesses fault).
 */
#include "uv_watch.h"

#include "cpu_regs.h"

#define AP_RW_ANY 1u  /* RBAR.AP: read-write, any privilege */
#define AP_RO_ANY 3u  /* read-only, any privilege */
#define ATTR_IDX 7u
#define ATTR_NORMAL_WB 0xFFu

static struct {
    bool saved;
    uint32_t ctrl, mair1, shcsr_memfault;
    uint32_t rbar[2 * WATCH_MAX], rlar[2 * WATCH_MAX];
} app;

static unsigned regions(void)
{
    return (REG32(NS(MPU_TYPE)) >> 8) & 0xFFu;
}

/* The n-th region the stub may use (n < 2 * capacity), from the top down. */
static uint32_t our_region(unsigned n)
{
    return regions() - 1u - n;
}

unsigned uv_watch_mpu_capacity(void)
{
    unsigned cap = regions() / 2u;
    return cap < WATCH_MAX ? cap : WATCH_MAX;
}

bool uv_watch_mpu_app_owned(void)
{
    return !app.saved && (REG32(NS(MPU_CTRL)) & MPU_CTRL_ENABLE) != 0u;
}

static void set_region(unsigned n, uint32_t rbar, uint32_t rlar)
{
    REG32(NS(MPU_RNR)) = our_region(n);
    REG32(NS(MPU_RBAR)) = rbar;
    REG32(NS(MPU_RLAR)) = rlar;
}

static uint32_t rbar_of(uint32_t base, uint32_t ap)
{
    return (base & ~0x1Fu) | ap << 1; /* SH 0, XN 0 */
}

static uint32_t rlar_of(uint32_t limit)
{
    return (limit & ~0x1Fu) | ATTR_IDX << 1 | 1u;
}

static void save_app_state(void)
{
    if (app.saved)
        return;
    app.ctrl = REG32(NS(MPU_CTRL));
    app.mair1 = REG32(NS(MPU_MAIR1));
    app.shcsr_memfault = REG32(NS(SCB_SHCSR)) & SHCSR_MEMFAULTENA;
    for (unsigned n = 0; n < 2u * uv_watch_mpu_capacity(); n++) {
        REG32(NS(MPU_RNR)) = our_region(n);
        app.rbar[n] = REG32(NS(MPU_RBAR));
        app.rlar[n] = REG32(NS(MPU_RLAR));
    }
    app.saved = true;
}

static void mpu_on(void)
{
    REG32(NS(MPU_MAIR1)) = (REG32(NS(MPU_MAIR1)) & 0x00FFFFFFu) | ATTR_NORMAL_WB << 24;
    /* The app's MemManage handler would see the stub's faults: escalate them to HardFault_S. */
    REG32(NS(SCB_SHCSR)) &= ~SHCSR_MEMFAULTENA;
    REG32(NS(MPU_CTRL)) = MPU_CTRL_PRIVDEFENA | MPU_CTRL_ENABLE;
    __asm__ volatile("dsb\n isb" ::: "memory");
}

void uv_watch_mpu_off(void)
{
    REG32(NS(MPU_CTRL)) = 0u;
    __asm__ volatile("dsb\n isb" ::: "memory");
}

void uv_watch_mpu_arm(const watch_set_t *s)
{
    unsigned cap = uv_watch_mpu_capacity();
    if (s->count == 0u || cap == 0u) {
        uv_watch_mpu_release();
        return;
    }
    save_app_state();
    uv_watch_mpu_off();
    unsigned n = 0;
    for (unsigned i = 0; i < s->count && i < cap; i++) {
        const watch_t *w = &s->w[i];
        uint32_t base = watch_granule_base(w), limit = watch_granule_limit(w);
        if (w->type == WATCH_WRITE) {
            set_region(n++, rbar_of(base, AP_RO_ANY), rlar_of(limit));
        } else { /* two regions over the same granules: every access faults */
            set_region(n++, rbar_of(base, AP_RW_ANY), rlar_of(limit));
            set_region(n++, rbar_of(base, AP_RW_ANY), rlar_of(limit));
        }
    }
    for (; n < 2u * cap; n++)
        set_region(n, 0u, 0u);
    mpu_on();
}

void uv_watch_mpu_probe(uint32_t base)
{
    uv_watch_mpu_off();
    set_region(0, rbar_of(base, AP_RO_ANY), rlar_of(base | 0x1Fu));
    for (unsigned n = 1; n < 2u * uv_watch_mpu_capacity(); n++)
        set_region(n, 0u, 0u);
    mpu_on();
}

void uv_watch_mpu_release(void)
{
    if (!app.saved)
        return;
    uv_watch_mpu_off();
    for (unsigned n = 0; n < 2u * uv_watch_mpu_capacity(); n++)
        set_region(n, app.rbar[n], app.rlar[n]);
    REG32(NS(MPU_MAIR1)) = app.mair1;
    REG32(NS(SCB_SHCSR)) = (REG32(NS(SCB_SHCSR)) & ~SHCSR_MEMFAULTENA) | app.shcsr_memfault;
    REG32(NS(MPU_CTRL)) = app.ctrl;
    __asm__ volatile("dsb\n isb" ::: "memory");
    app.saved = false;
}

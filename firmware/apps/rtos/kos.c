/*
 * kos.c: the scheduler of the rtos example app (see kos.h for the model and the keel_* rule).
 *
 * A switched-out thread's stack, from its saved sp upwards:
 *   r4-r11, EXC_RETURN            pushed by PendSV (9 words)
 *   r0-r3, r12, lr, pc, xPSR      pushed by the hardware on exception entry (8 words)
 * A new thread gets the same frame, built by hand, returning into its function.
 * The NS world has no FPU on Keel (soft-float ABI, the microvisor does not grant it), so frames
 * never carry FP state; PendSV refuses one it cannot switch (EXC_RETURN.FType clear).
 */
#include "kos.h"

#define KOS_REG(a) (*(volatile uint32_t *)(a))
#define SYST_CSR KOS_REG(0xE000E010u)
#define SYST_RVR KOS_REG(0xE000E014u)
#define SYST_CVR KOS_REG(0xE000E018u)
#define SYST_CSR_ENABLE 0x1u
#define SYST_CSR_TICKINT 0x2u
#define SYST_CSR_CLKSOURCE 0x4u /* the core clock */
#define SCB_ICSR KOS_REG(0xE000ED04u)
#define ICSR_PENDSVSET (1u << 28)
#define SCB_SHPR3 KOS_REG(0xE000ED20u)
#define KOS_CPU_HZ 20000000u
#define KOS_PRIO_SYSTICK 0xC0u
#define KOS_PRIO_PENDSV 0xFFu /* the least urgent: switches happen when no handler runs */
#define KOS_EXC_RETURN_THREAD_PSP 0xFFFFFFBCu /* NS, thread mode, PSP, standard frame */
#define KOS_XPSR_T 0x01000000u
#define KOS_FRAME_WORDS 17u
/* PSPLIM sits this far above the stack's bottom: PendSV's 9 saved words (stored without a limit
 * check) always land inside the stack even when the hardware frame just fit. */
#define KOS_GUARD_BYTES 40u

kos_thread_t *volatile kos_cur; /* the running thread (PendSV and the gdb thread list read it) */
static kos_thread_t *kos_threads[KOS_MAX_THREADS];
static volatile uint32_t kos_nthreads;
static kos_thread_t kos_idle;
static void (*kos_idle_fn)(void);
static volatile uint32_t kos_tick;
static uint32_t kos_ms_per_tick = 1u;
static volatile bool kos_retry; /* a switch was deferred: the next tick pends PendSV again */
static volatile kos_stats_t kos_st;

static inline uint32_t crit_enter(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    return primask;
}

/* Leaving the outermost critical section takes a pended switch right here (the isb). */
static inline void crit_exit(uint32_t primask)
{
    __asm__ volatile("msr primask, %0\n isb" ::"r"(primask) : "memory");
}

static inline void pend_switch(void)
{
    SCB_ICSR = ICSR_PENDSVSET;
}

static void thread_exit(void)
{
    (void)crit_enter();
    kos_cur->state = KOS_DONE;
    pend_switch();
    crit_exit(0u);
    for (;;) {
    }
}

static void thread_add(kos_thread_t *t)
{
    uint32_t p = crit_enter();
    if (kos_nthreads < KOS_MAX_THREADS)
        kos_threads[kos_nthreads++] = t;
    else
        __asm__ volatile("udf #0x51"); /* more threads than KOS_MAX_THREADS: a bug of the app */
    crit_exit(p);
}

void kos_thread_create(kos_thread_t *t, const char *name, uint8_t prio, void (*fn)(void *), void *arg,
                       uint32_t *stack, size_t words)
{
    uint32_t top = ((uint32_t)(uintptr_t)(stack + words)) & ~7u;
    uint32_t *frame = (uint32_t *)(uintptr_t)top - KOS_FRAME_WORDS;
    for (uint32_t i = 0; i < 8u; i++)
        frame[i] = 0u;                          /* r4-r11 */
    frame[8] = KOS_EXC_RETURN_THREAD_PSP;
    frame[9] = (uint32_t)(uintptr_t)arg;       /* r0 */
    frame[10] = frame[11] = frame[12] = frame[13] = 0u; /* r1-r3, r12 */
    frame[14] = (uint32_t)(uintptr_t)thread_exit | 1u;   /* lr: a thread function that returns */
    frame[15] = (uint32_t)(uintptr_t)fn & ~1u;           /* pc */
    frame[16] = KOS_XPSR_T;
    t->sp = (uint32_t)(uintptr_t)frame;
    t->stack_base = (uint32_t)(uintptr_t)stack + KOS_GUARD_BYTES;
    t->stack_top = top;
    t->name = name;
    t->prio = t->base_prio = prio;
    t->state = KOS_READY;
    t->timed_out = false;
    t->wait_on = NULL;
    t->switched_in = 0u;
    thread_add(t);
}

/* ---- switching (PendSV) ----------------------------------------------------------------------- */

/* From PendSV with the old thread saved: choose the next one. Round robin among the most urgent
 * ready threads, starting after the current one. */
__attribute__((used)) kos_thread_t *kos_switch_pick(void)
{
    uint32_t p = crit_enter();
    kos_thread_t *cur = kos_cur, *best = NULL;
    uint32_t n = kos_nthreads, at = 0;
    for (uint32_t i = 0; i < n; i++)
        if (kos_threads[i] == cur)
            at = i;
    for (uint32_t k = 1; k <= n; k++) {
        kos_thread_t *t = kos_threads[(at + k) % n];
        if (t->state == KOS_READY && (best == NULL || t->prio > best->prio))
            best = t;
    }
    if (best == NULL)
        best = &kos_idle; /* idle never blocks; only reached if it is not listed */
    if (best != cur) {
        kos_st.switches++;
        best->switched_in++;
    }
    kos_cur = best;
    crit_exit(p);
    return best;
}

/* From PendSV when the interrupted thread is inside a keel_* call (its frame is on the secure
 * stack): leave it running; the next tick tries again. */
__attribute__((used)) void kos_switch_defer(void)
{
    kos_st.deferred++;
    kos_retry = true;
}

__attribute__((used)) void kos_bad_frame(void)
{
    __asm__ volatile("udf #0x52"); /* an FP frame: the NS world has no FPU on Keel */
}

__attribute__((naked)) void PendSV_Handler(void)
{
    __asm__ volatile(
        "tst lr, #0x40\n"            /* EXC_RETURN.S: the thread was inside the microvisor */
        "bne 1f\n"
        "tst lr, #0x10\n"            /* EXC_RETURN.FType clear: an FP frame we cannot switch */
        "beq 2f\n"
        "mrs r0, psp\n"
        "stmdb r0!, {r4-r11, lr}\n"
        "ldr r1, =kos_cur\n"
        "ldr r1, [r1]\n"
        "str r0, [r1]\n"             /* kos_cur->sp */
        "bl kos_switch_pick\n"       /* r0 = the thread to run */
        "movs r1, #0\n"
        "msr psplim, r1\n"
        "ldr r1, [r0, #4]\n"         /* its stack_base: the new PSPLIM */
        "ldr r0, [r0]\n"
        "ldmia r0!, {r4-r11, lr}\n"
        "msr psp, r0\n"
        "msr psplim, r1\n"
        "bx lr\n"
        "1: b kos_switch_defer\n"
        "2: b kos_bad_frame\n"
        ".ltorg\n");
}

/* ---- time ----------------------------------------------------------------------------------------- */

static void wake(kos_thread_t *t, bool timed_out)
{
    t->state = KOS_READY;
    t->wait_on = NULL;
    t->timed_out = timed_out;
}

__attribute__((weak)) void kos_on_tick(void)
{
}

void SysTick_Handler(void)
{
    kos_on_tick();
    uint32_t p = crit_enter();
    uint32_t now = ++kos_tick;
    kos_st.ticks = now;
    kos_thread_t *cur = kos_cur;
    bool sw = kos_retry || cur->state != KOS_READY;
    kos_retry = false;
    for (uint32_t i = 0; i < kos_nthreads; i++) {
        kos_thread_t *t = kos_threads[i];
        bool timed = t->state == KOS_SLEEPING || (t->state == KOS_BLOCKED && t->wake_tick != KOS_FOREVER);
        if (timed && (int32_t)(now - t->wake_tick) >= 0)
            wake(t, t->state == KOS_BLOCKED);
        /* Preemption by a more urgent thread, or the end of the time slice among equals. */
        if (t != cur && t->state == KOS_READY && t->prio >= cur->prio)
            sw = true;
    }
    if (sw)
        pend_switch();
    crit_exit(p);
}

uint32_t kos_ticks(void)
{
    return kos_tick;
}

kos_thread_t *kos_self(void)
{
    return kos_cur;
}

void kos_stats(kos_stats_t *out)
{
    uint32_t p = crit_enter();
    out->switches = kos_st.switches;
    out->deferred = kos_st.deferred;
    out->ticks = kos_st.ticks;
    out->mutex_waits = kos_st.mutex_waits;
    crit_exit(p);
}

kos_thread_t *kos_thread_at(uint32_t i)
{
    return i < kos_nthreads ? kos_threads[i] : NULL;
}

/* Block the running thread (inside a critical section); the switch happens at crit_exit. */
static void block(const void *on, uint32_t timeout_ms, kos_state_t state)
{
    kos_thread_t *cur = kos_cur;
    cur->state = state;
    cur->wait_on = on;
    cur->timed_out = false;
    if (timeout_ms == KOS_FOREVER) {
        cur->wake_tick = KOS_FOREVER;
    } else {
        uint32_t n = (timeout_ms + kos_ms_per_tick - 1u) / kos_ms_per_tick;
        cur->wake_tick = kos_tick + (n == 0u ? 1u : n);
        if (cur->wake_tick == KOS_FOREVER)
            cur->wake_tick = KOS_FOREVER - 1u; /* KOS_FOREVER means no timeout: a tick early */
    }
    pend_switch();
}

void kos_sleep_ms(uint32_t ms)
{
    uint32_t p = crit_enter();
    block(NULL, ms == KOS_FOREVER ? ms - 1u : ms, KOS_SLEEPING);
    crit_exit(p);
}

void kos_yield(void)
{
    pend_switch();
    __asm__ volatile("isb" ::: "memory");
}

/* The most urgent thread blocked on obj (first created among equals), or NULL. */
static kos_thread_t *best_waiter(const void *obj)
{
    kos_thread_t *best = NULL;
    for (uint32_t i = 0; i < kos_nthreads; i++) {
        kos_thread_t *t = kos_threads[i];
        if (t->state == KOS_BLOCKED && t->wait_on == obj && (best == NULL || t->prio > best->prio))
            best = t;
    }
    return best;
}

/* ---- semaphores -------------------------------------------------------------------------------- */

void kos_sem_give(kos_sem_t *s)
{
    uint32_t p = crit_enter();
    kos_thread_t *w = best_waiter(s);
    if (w != NULL) {
        wake(w, false);
        if (w->prio > kos_cur->prio)
            pend_switch();
    } else {
        s->count++;
    }
    crit_exit(p);
}

bool kos_sem_take(kos_sem_t *s, uint32_t timeout_ms)
{
    uint32_t p = crit_enter();
    if (s->count > 0u) {
        s->count--;
        crit_exit(p);
        return true;
    }
    if (timeout_ms == 0u) {
        crit_exit(p);
        return false;
    }
    block(s, timeout_ms, KOS_BLOCKED);
    crit_exit(p);
    /* Woken: by a give (handed the count directly) or by the timeout. */
    return !kos_cur->timed_out;
}

/* ---- mutexes ------------------------------------------------------------------------------------ */

void kos_mutex_lock(kos_mutex_t *m)
{
    uint32_t p = crit_enter();
    kos_thread_t *cur = kos_cur;
    if (m->owner == NULL) {
        m->owner = cur;
        m->depth = 1u;
    } else if (m->owner == cur) {
        m->depth++;
    } else {
        kos_st.mutex_waits++;
        if (m->owner->prio < cur->prio)
            m->owner->prio = cur->prio; /* inheritance: the owner runs at the waiter's urgency */
        block(m, KOS_FOREVER, KOS_BLOCKED);
        crit_exit(p);
        return; /* unlock handed it to us */
    }
    crit_exit(p);
}

void kos_mutex_unlock(kos_mutex_t *m)
{
    uint32_t p = crit_enter();
    kos_thread_t *cur = kos_cur;
    if (m->owner != cur) {
        crit_exit(p);
        __asm__ volatile("udf #0x53"); /* unlocking a mutex it does not hold: a bug of the app */
        return;
    }
    if (--m->depth == 0u) {
        cur->prio = cur->base_prio;
        kos_thread_t *w = best_waiter(m);
        m->owner = w;
        if (w != NULL) {
            m->depth = 1u;
            wake(w, false);
        }
        /* The next waiter, or a thread this one kept out while boosted, may be more urgent. */
        for (uint32_t i = 0; i < kos_nthreads; i++)
            if (kos_threads[i]->state == KOS_READY && kos_threads[i]->prio > cur->prio)
                pend_switch();
    }
    crit_exit(p);
}

/* ---- start -------------------------------------------------------------------------------------- */

static void idle_loop(void)
{
    for (;;)
        kos_idle_fn();
}

/* Move the caller onto PSP at top (limit base) and run fn there; never returns. */
__attribute__((naked, noreturn)) static void enter_thread_mode(__attribute__((unused)) uint32_t top,
                                                                __attribute__((unused)) uint32_t base,
                                                                __attribute__((unused)) void (*fn)(void))
{
    __asm__ volatile(
        "movs r3, #0\n msr psplim, r3\n"
        "msr psp, r0\n"
        "msr psplim, r1\n"
        "movs r3, #2\n msr control, r3\n isb\n" /* SPSEL: thread mode now runs on PSP */
        "cpsie i\n"
        "bx r2\n");
}

void kos_start(uint32_t tick_hz, uint32_t *idle_stack, size_t idle_words, void (*idle)(void))
{
    (void)crit_enter();
    kos_idle_fn = idle;
    kos_thread_create(&kos_idle, "idle", 0u, (void (*)(void *))(uintptr_t)idle_loop, NULL, idle_stack,
                      idle_words);
    kos_cur = &kos_idle;
    kos_idle.switched_in = 1u;
    kos_ms_per_tick = tick_hz >= 1000u ? 1u : 1000u / tick_hz;
    SCB_SHPR3 = (SCB_SHPR3 & 0x0000FFFFu) | (KOS_PRIO_SYSTICK << 24) | (KOS_PRIO_PENDSV << 16);
    SYST_CSR = 0u;
    SYST_RVR = KOS_CPU_HZ / tick_hz - 1u;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;
    /* Idle runs on its own stack from its top (its hand-built first frame is never used). */
    enter_thread_mode(kos_idle.stack_top, kos_idle.stack_base, idle_loop);
}

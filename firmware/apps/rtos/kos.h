/*
 * kos.h: a small preemptive scheduler for a Keel app (the "own RTOS" example, firmware/apps/rtos).
 *
 * Threads run in non-secure Thread mode on their own stacks (PSP, with PSPLIM guarding each
 * stack: an overflow is a UsageFault STKOF that the microvisor reports and restarts). The app's
 * own SysTick (the NS bank: the microvisor never uses it) drives time and round robin among
 * threads of equal priority; PendSV (lowest priority) switches contexts. Higher number = more
 * urgent; a woken thread more urgent than the running one preempts it at once.
 *
 * The rule for keel_* calls (docs/device-api.md "Apps with their own scheduler"): a keel_* call
 * runs in the secure world on the microvisor's single stack, so a thread must never be switched
 * out while it is inside one. Threads just call the API; PendSV checks EXC_RETURN.S (the
 * interrupted context's frame is on the secure stack) and, if set, leaves that thread running and
 * retries at the next tick: the switch is delayed by at most one tick (the calls are short). A
 * scheduler that switched there would interleave two threads' frames on the secure stack.
 *
 * Blocking calls (kos_sleep_ms, kos_sem_take, kos_mutex_lock) are for threads only. From an
 * interrupt handler use kos_sem_give (it never blocks). Threads never return; a thread function
 * that does return parks its thread for good (kos_thread_t.state KOS_DONE).
 */
#ifndef KEEL_APPS_RTOS_KOS_H
#define KEEL_APPS_RTOS_KOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KOS_MAX_THREADS 16u
#define KOS_FOREVER 0xFFFFFFFFu

typedef enum { KOS_READY = 0, KOS_SLEEPING = 1, KOS_BLOCKED = 2, KOS_DONE = 3 } kos_state_t;

typedef struct kos_thread {
    uint32_t sp;          /* saved PSP (PendSV reads it at offset 0) */
    uint32_t stack_base;  /* lowest stack address: PSPLIM while it runs (offset 4) */
    uint32_t stack_top;
    const char *name;
    uint8_t prio;         /* effective priority (raised by a mutex it holds) */
    uint8_t base_prio;
    uint8_t state;        /* kos_state_t */
    bool timed_out;       /* the last blocking wait ended by its timeout */
    uint32_t wake_tick;   /* SLEEPING, or BLOCKED with a timeout: when to wake */
    const void *wait_on;  /* BLOCKED: the semaphore or mutex */
    uint32_t switched_in; /* times this thread was switched to */
} kos_thread_t;

typedef struct kos_sem {
    volatile uint32_t count;
} kos_sem_t;

typedef struct kos_mutex {
    kos_thread_t *owner;
    uint32_t depth;       /* recursive locks by the owner */
} kos_mutex_t;

typedef struct kos_stats {
    uint32_t switches;    /* context switches done */
    uint32_t deferred;    /* switches put off because the thread was inside a keel_* call */
    uint32_t ticks;
    uint32_t mutex_waits; /* kos_mutex_lock calls that had to wait for the owner */
} kos_stats_t;

/* Create a thread (before or after kos_start). stack: 8-byte aligned, words >= 64. */
void kos_thread_create(kos_thread_t *t, const char *name, uint8_t prio, void (*fn)(void *), void *arg,
                       uint32_t *stack, size_t words);

/*
 * Start scheduling at tick_hz (SysTick on the 20 MHz core clock). The caller (main, on MSP)
 * becomes the idle thread (priority 0, runs idle() in a loop, which should WFI). Never returns.
 */
__attribute__((noreturn)) void kos_start(uint32_t tick_hz, uint32_t *idle_stack, size_t idle_words,
                                         void (*idle)(void));

/* Called from the SysTick handler at every tick, before the scheduler looks at the threads (the
 * app may define it: e.g. to poll a device; it runs in handler mode and must not block). */
void kos_on_tick(void);

kos_thread_t *kos_self(void);
uint32_t kos_ticks(void);
void kos_stats(kos_stats_t *out);
/* Every thread created, in creation order (for the stats line and the gdb thread list). */
kos_thread_t *kos_thread_at(uint32_t i);

void kos_sleep_ms(uint32_t ms);
void kos_yield(void);

/* Semaphores: give from threads or interrupt handlers; take (threads) waits at most timeout_ms
 * (KOS_FOREVER: no limit). Returns false on timeout. */
void kos_sem_give(kos_sem_t *s);
bool kos_sem_take(kos_sem_t *s, uint32_t timeout_ms);

/* Mutexes (threads only): recursive, with priority inheritance (one level), handed to the most
 * urgent waiter on unlock. */
void kos_mutex_lock(kos_mutex_t *m);
void kos_mutex_unlock(kos_mutex_t *m);

#endif /* KEEL_APPS_RTOS_KOS_H */

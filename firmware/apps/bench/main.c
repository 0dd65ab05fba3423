/*
 * bench: the app `make bench` runs to measure the microvisor core (scripts/bench.sh).
 *
 * First run since power-on: prints when main started (device time), the cost of NSC calls
 * against plain calls doing the same work, then faults on purpose. Second run: prints when its
 * main started, so the script gets crash -> main of the restarted app. Install with
 * --backoff-min 1 so the back-off delay is negligible in that figure.
 * Times come from keel_time_get_us; under QEMU -icount shift=0 one us is 1000 instructions.
 */
#include <stdint.h>

#include "app_hw.h"
#include "console.h"
#include "keel.h"

#define CALLS 20000u

static volatile uint32_t sink;

/* The baseline: an ordinary call that returns a status, as keel_watchdog_kick() does. */
__attribute__((noinline)) static keel_status_t plain_call(void)
{
    sink = sink + 1u;
    return KEEL_ESTATE;
}

static void put(const char *name, uint64_t v)
{
    console_puts("bench: ");
    console_puts(name);
    console_puts("=");
    console_put_dec(v);
    console_puts("\n");
}

static uint64_t now_us(void)
{
    uint64_t t = 0;
    (void)keel_time_get_us(&t);
    return t;
}

int main(void)
{
    uint64_t main_us = now_us();
    static keel_notification_t ring[4];
    console_init();
    /* The STARTED notification says whether this is the first run; polled, no IRQ needed. */
    if (keel_notify_setup(ring, 4u, APP_NOTIFY_IRQN) != KEEL_OK || ring[0].kind != KEEL_NOTIFY_STARTED) {
        console_puts("bench: FAIL no STARTED notification\n");
        return 1;
    }
    if (ring[0].arg1 != 0u) {
        put("restart_main_us", main_us);
        console_puts("bench: done\n");
        for (;;)
            __asm__ volatile("wfi");
    }
    put("main_us", main_us);

    uint64_t t0 = now_us();
    for (uint32_t i = 0; i < CALLS; i++)
        (void)plain_call();
    uint64_t t1 = now_us();
    for (uint32_t i = 0; i < CALLS; i++)
        (void)keel_watchdog_kick(); /* watchdog not started: the shortest complete NSC call */
    uint64_t t2 = now_us();
    put("calls", CALLS);
    put("plain_loop_ns", (t1 - t0) * 1000u);
    put("nsc_loop_ns", (t2 - t1) * 1000u);

    put("crash_at_us", now_us());
    return *(volatile int *)0; /* fault: the microvisor restarts the app */
}

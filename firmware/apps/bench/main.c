/*
 * bench: the app `make bench` runs to measure the microvisor core (scripts/bench.sh).
 *
 * First run since power-on: prints when main started (device time), the cost of NSC calls
 * against plain calls doing the same work, then faults on purpose. Second run: prints when its
 * main started, so the script gets crash -> main of the restarted app. Install with
 * --backoff-min 1 so the back-off delay is negligible in that figure.
 * Times come from keel_time_get_us; under QEMU -icount shift=0 one us is 1000 instructions.
 *
 * Modes for scripts/bench-net.sh and tests/net (a line on UART0 within MODE_WAIT_US of the first
 * start; without one, the run above, its output unchanged):
 *   spin MS   idle SPIN_SETTLE_MS (the network connects meanwhile), then count busy-loop rounds
 *             for MS ms of device time, print spin_rounds= and stay idle: the app's compute
 *             throughput, with the microvisor idle-connected and with networking off.
 *   logs N    write N log lines as fast as it can, then report (log_dropped_notified=) how many
 *             drops the microvisor announced with KEEL_NOTIFY_LOG_DROPPED within 2 s.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

#define MODE_WAIT_US 300000u
#define SPIN_INNER 1000u
#define SPIN_SETTLE_MS 3000u

static keel_notification_t ring[4];
static uint32_t ring_next;
static uint64_t log_dropped_notified;

/* Take every notification the microvisor posted (polled: no IRQ handler in this app). */
static void ring_poll(void)
{
    for (uint32_t n = 0; n < 4u && ring[ring_next].kind != KEEL_NOTIFY_FREE; n++) {
        if (ring[ring_next].kind == KEEL_NOTIFY_LOG_DROPPED)
            log_dropped_notified += ring[ring_next].arg0;
        ring[ring_next].kind = KEEL_NOTIFY_FREE;
        ring_next = (ring_next + 1u) % 4u;
    }
}

static void idle_forever(void)
{
    console_puts("bench: done\n");
    for (;;)
        __asm__ volatile("wfi");
}

static void mode_spin(uint32_t ms)
{
    for (uint64_t s = now_us(); now_us() - s < SPIN_SETTLE_MS * 1000u;)
        __asm__ volatile("wfi");
    uint64_t rounds = 0, t0 = now_us(), t = t0;
    while (t - t0 < (uint64_t)ms * 1000u) {
        for (uint32_t i = 0; i < SPIN_INNER; i++)
            sink = sink + i;
        rounds++;
        t = now_us();
    }
    put("spin_rounds", rounds);
    put("spin_us", t - t0);
    idle_forever();
}

static void mode_logs(uint32_t n)
{
    char line[32] = "bench: log ";
    for (uint32_t i = 0; i < n; i++) {
        char *p = line + 11;
        uint32_t v = i, len = 0;
        char digits[10];
        do {
            digits[len++] = (char)('0' + v % 10u);
            v /= 10u;
        } while (v != 0u);
        while (len > 0u)
            *p++ = digits[--len];
        (void)keel_log_write(KEEL_LOG_INFO, line, (size_t)(p - line));
        ring_poll();
    }
    for (uint64_t t0 = now_us(); now_us() - t0 < 2000000u;)
        ring_poll();
    put("log_dropped_notified", log_dropped_notified);
    idle_forever();
}

/* A mode line, if the host sends one right after the first start. */
static void run_mode(void)
{
    char line[32];
    if (console_read_line(line, sizeof line, MODE_WAIT_US, NULL) < 0)
        return;
    uint32_t arg = (uint32_t)strtoul(strchr(line, ' ') ? strchr(line, ' ') + 1 : "0", NULL, 10);
    if (strncmp(line, "spin ", 5) == 0 && arg > 0u)
        mode_spin(arg);
    if (strncmp(line, "logs ", 5) == 0 && arg > 0u)
        mode_logs(arg);
    console_puts("bench: FAIL unknown mode (spin MS, logs N)\n");
    idle_forever();
}

int main(void)
{
    uint64_t main_us = now_us();
    console_init();
    /* The STARTED notification says whether this is the first run; polled, no IRQ needed. */
    if (keel_notify_setup(ring, 4u, APP_NOTIFY_IRQN) != KEEL_OK || ring[0].kind != KEEL_NOTIFY_STARTED) {
        console_puts("bench: FAIL no STARTED notification\n");
        return 1;
    }
    if (ring[0].arg1 != 0u) {
        put("restart_main_us", main_us);
        idle_forever();
    }
    ring[0].kind = KEEL_NOTIFY_FREE;
    ring_next = 1u;
    put("main_us", main_us);
    run_mode();

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

/*
 * ota: the app of the update story (README, `make demo`) and of the OTA tests.
 *
 * It does what a careful product app does with updates:
 *   - when an update is staged (KEEL_NOTIFY_UPDATE_STAGED) it finishes its "work" first: it
 *     defers for OTA_DEFER_MS (default 3 s), then calls keel_update_apply();
 *   - when it runs on trial (KEEL_NOTIFY_UPDATE_TRIAL) it confirms with keel_update_confirm()
 *     only after it has run healthily (watchdog kicked, ticks on time) for OTA_HEALTHY_MS;
 *   - it prints when its main() starts (device uptime in us), so the downtime of an update
 *     (the old app's last instruction -> the new app's main) can be measured from the console.
 * Variants (CMakeLists.txt): OTA_CRASH_ON_START, OTA_NO_CONFIRM, OTA_BIG (+ OTA_BIG_K).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "app_hw.h"
#include "console.h"
#include "keel.h"

#ifndef OTA_BUILD
#define OTA_BUILD "ota"
#endif
#ifndef OTA_DEFER_MS
#define OTA_DEFER_MS 3000u
#endif
#define OTA_HEALTHY_MS 2000u
#define OTA_RING_SLOTS 8u
#define OTA_WATCHDOG_MS 2000u
#define OTA_WAKE_US 10000u

static keel_notification_t ring[OTA_RING_SLOTS];
static uint32_t ring_next;
#define OTA_QUEUE 16u
static keel_notification_t queue[OTA_QUEUE];
static volatile uint32_t queue_head;
static uint32_t queue_tail;

#if defined(OTA_BIG)
/* 192 KiB of constant data (a xorshift stream, so no page is erased-looking or repeated): the
 * "rest of the product" a one-function change leaves alone. */
#define OTA_BIG_WORDS (192u * 1024u / 4u)
#define X1(i) ((uint32_t)((i) * 2654435761u) ^ 0x5bd1e995u)
#define X4(i) X1(i), X1((i) + 1), X1((i) + 2), X1((i) + 3)
#define X16(i) X4(i), X4((i) + 4), X4((i) + 8), X4((i) + 12)
#define X64(i) X16(i), X16((i) + 16), X16((i) + 32), X16((i) + 48)
#define X256(i) X64(i), X64((i) + 64), X64((i) + 128), X64((i) + 192)
#define X1K(i) X256(i), X256((i) + 256), X256((i) + 512), X256((i) + 768)
#define X4K(i) X1K(i), X1K((i) + 1024), X1K((i) + 2048), X1K((i) + 3072)
#define X16K(i) X4K(i), X4K((i) + 4096), X4K((i) + 8192), X4K((i) + 12288)
__attribute__((used)) static const uint32_t big_table[OTA_BIG_WORDS] = {X16K(0), X16K(16384), X16K(32768)};

/* The one function the "one-function change" edits: same size in both builds. */
__attribute__((noinline)) static uint32_t big_checksum(void)
{
    const volatile uint32_t *t = big_table; /* read for real: the table stays in the image */
    uint32_t sum = OTA_BIG_K;
    for (uint32_t i = 0; i < OTA_BIG_WORDS; i += 4096u)
        sum = sum * 31u + t[i];
    return sum;
}
#endif

void APP_IRQ_HANDLER(APP_NOTIFY_IRQN)(void)
{
    for (uint32_t n = 0; n < OTA_RING_SLOTS && ring[ring_next].kind != KEEL_NOTIFY_FREE; n++) {
        keel_notification_t *slot = &ring[ring_next];
        if (queue_head - queue_tail < OTA_QUEUE)
            queue[queue_head++ % OTA_QUEUE] = *slot;
        slot->kind = KEEL_NOTIFY_FREE;
        ring_next = (ring_next + 1u) % OTA_RING_SLOTS;
    }
}

void IRQ4_Handler(void) /* TIMER1: wakes the main loop */
{
    TIMER1_INTCLEAR = 1;
}

static const char *stop_name(uint32_t r)
{
    static const char *const names[] = {"power-on", "fault", "watchdog", "exit", "restart",
                                        "update", "rollback"};
    return r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

static void say(const char *what, uint32_t a, const char *mid, uint32_t b)
{
    console_puts("ota: ");
    console_puts(what);
    console_put_dec(a);
    console_puts(mid);
    console_put_dec(b);
    console_puts("\n");
}

int main(void)
{
    uint64_t main_us = 0;
    (void)keel_time_get_us(&main_us); /* first thing: the downtime figure ends here */
    console_init();
    console_puts("ota: main at ");
    console_put_dec(main_us);
    console_puts(" us (" OTA_BUILD ")\n");
#if defined(OTA_CRASH_ON_START)
    console_puts("ota: this build crashes at start\n");
    static volatile uintptr_t bad = 0x10000000u; /* secure memory: a SecureFault */
    *(volatile uint32_t *)bad = 0xDEADu;
    __asm__ volatile("udf #0");
#endif
    nvic_enable(APP_NOTIFY_IRQN);
    keel_status_t st = keel_notify_setup(ring, OTA_RING_SLOTS, APP_NOTIFY_IRQN);
    if (st != KEEL_OK)
        say("keel_notify_setup failed ", (uint32_t)-st, "", 0u);
    keel_version_t ver;
    if (keel_version_get(&ver) == KEEL_OK) {
        console_puts("ota: running app version ");
        console_put_version(ver.app);
        console_puts("\n");
    }
#if defined(OTA_BIG)
    say("big table checksum ", big_checksum(), " k ", OTA_BIG_K);
#endif
    (void)keel_watchdog_start(OTA_WATCHDOG_MS);
    timer1_start_periodic(OTA_WAKE_US);
    nvic_enable(TIMER1_IRQN);

    bool on_trial = false, staged = false;
    uint64_t trial_since = 0, staged_at = 0, now = 0, last_tick = main_us;
    for (;;) {
        __asm__ volatile("wfi");
        (void)keel_watchdog_kick();
        (void)keel_time_get_us(&now);
        while (queue_tail != queue_head) {
            const keel_notification_t *n = &queue[queue_tail++ % OTA_QUEUE];
            switch (n->kind) {
            case KEEL_NOTIFY_STARTED:
                console_puts("ota: started, previous run ended by ");
                console_puts(stop_name(n->arg0));
                console_puts("\n");
                break;
            case KEEL_NOTIFY_UPDATE_PROGRESS:
                say("update progress ", n->arg0, " of ", n->arg1);
                break;
            case KEEL_NOTIFY_UPDATE_STAGED:
                console_puts("ota: update ");
                console_put_version(n->arg0);
                console_puts(" staged; applying it after my work is done\n");
                staged = true;
                staged_at = now;
                break;
            case KEEL_NOTIFY_UPDATE_TRIAL:
                say("on trial: confirming within ", n->arg0, " s once healthy for ms ", OTA_HEALTHY_MS);
                on_trial = true;
                trial_since = now;
                break;
            default:
                say("notification ", n->kind, " arg0 ", n->arg0);
                break;
            }
        }
        if (staged && now - staged_at >= OTA_DEFER_MS * 1000ull) {
            staged = false;
            console_puts("ota: work done: keel_update_apply()\n");
            st = keel_update_apply(); /* does not return when it works */
            say("keel_update_apply returned ", (uint32_t)-st, "", 0u);
        }
#if !defined(OTA_NO_CONFIRM)
        if (on_trial && now - trial_since >= OTA_HEALTHY_MS * 1000ull) {
            on_trial = false;
            st = keel_update_confirm();
            if (st == KEEL_OK)
                console_puts("ota: healthy: keel_update_confirm() ok\n");
            else
                say("keel_update_confirm failed ", (uint32_t)-st, "", 0u);
        }
#else
        (void)on_trial;
        (void)trial_since;
#endif
        if (now - last_tick >= 5000000u) {
            last_tick = now;
            keel_update_status_t us;
            if (keel_update_status(&us) == KEEL_OK)
                say("tick: update state ", us.state, " result ", us.result);
        }
    }
}

/*
 * hello: the minimal well-behaved Keel app, in C on bare metal.
 *
 * Registers a notification ring and interrupt, reports why its previous run ended (the STARTED
 * notification), logs through the microvisor, prints the microvisor version, device id and
 * uptime on its own UART0, and runs a main loop that kicks the app watchdog and prints a tick
 * once a second, sleeping in WFI between TIMER1 interrupts.
 */
#include <stdint.h>
#include <string.h>

#include "app_hw.h"
#include "console.h"
#include "keel.h"

#define HELLO_RING_SLOTS 8u
#define HELLO_WATCHDOG_MS 2000u
#define HELLO_WAKE_US 10000u

static keel_notification_t ring[HELLO_RING_SLOTS];
static uint32_t ring_next;

/* Notifications copied out by the interrupt handler, printed by the main loop. */
#define HELLO_QUEUE 16u
static keel_notification_t queue[HELLO_QUEUE];
static volatile uint32_t queue_head; /* written by the handler */
static uint32_t queue_tail;          /* written by main */

void APP_IRQ_HANDLER(APP_NOTIFY_IRQN)(void)
{
    /* Walk from where we stopped; a full slot has kind != 0 and is freed by writing 0. */
    for (uint32_t n = 0; n < HELLO_RING_SLOTS && ring[ring_next].kind != KEEL_NOTIFY_FREE; n++) {
        keel_notification_t *slot = &ring[ring_next];
        if (queue_head - queue_tail < HELLO_QUEUE) {
            keel_notification_t *q = &queue[queue_head % HELLO_QUEUE];
            q->kind = slot->kind;
            q->arg0 = slot->arg0;
            q->arg1 = slot->arg1;
            q->time_ms = slot->time_ms;
            queue_head++;
        }
        slot->kind = KEEL_NOTIFY_FREE;
        ring_next = (ring_next + 1u) % HELLO_RING_SLOTS;
    }
}

void IRQ4_Handler(void) /* TIMER1: only wakes the main loop */
{
    TIMER1_INTCLEAR = 1;
}

static const char *stop_reason_name(uint32_t reason)
{
    switch (reason) {
    case KEEL_STOP_NONE: return "power-on";
    case KEEL_STOP_FAULT: return "fault";
    case KEEL_STOP_WATCHDOG: return "watchdog";
    case KEEL_STOP_EXIT: return "exit";
    case KEEL_STOP_RESTART: return "restart";
    default: return "unknown";
    }
}

static void print_status(const char *what, keel_status_t st)
{
    console_puts("hello: ");
    console_puts(what);
    console_puts(" failed: status ");
    console_put_int(st);
    console_puts("\n");
}

static void print_identity(void)
{
    keel_version_t ver;
    char id[64];
    uint64_t now_us = 0;
    keel_status_t st;

    if ((st = keel_version_get(&ver)) != KEEL_OK) {
        print_status("keel_version_get", st);
    } else {
        console_puts("hello: microvisor ");
        console_put_version(ver.microvisor);
        console_puts(" api ");
        console_put_dec(ver.api);
        console_puts(" app ");
        console_put_version(ver.app);
        console_puts("\n");
    }
    if ((st = keel_device_id_get(id, sizeof id)) != KEEL_OK) {
        print_status("keel_device_id_get", st);
    } else {
        console_puts("hello: device id ");
        console_puts(id);
        console_puts("\n");
    }
    if ((st = keel_time_get_us(&now_us)) != KEEL_OK) {
        print_status("keel_time_get_us", st);
    } else {
        console_puts("hello: uptime ");
        console_put_dec(now_us);
        console_puts(" us\n");
    }
}

static void log_started(uint32_t reason)
{
    char msg[64] = "hello: STARTED, previous run ended by ";
    strncat(msg, stop_reason_name(reason), sizeof msg - strlen(msg) - 1u);
    keel_status_t st = console_log(KEEL_LOG_INFO, msg);
    if (st != KEEL_OK) {
        print_status("keel_log_write", st);
    }
}

static void handle_notification(const keel_notification_t *n)
{
    switch (n->kind) {
    case KEEL_NOTIFY_STARTED:
        console_puts("hello: notification STARTED previous run ended by ");
        console_puts(stop_reason_name(n->arg0));
        console_puts(", restarts ");
        console_put_dec(n->arg1);
        console_puts("\n");
        log_started(n->arg0);
        break;
    case KEEL_NOTIFY_WATCHDOG:
        console_puts("hello: notification WATCHDOG ");
        console_put_dec(n->arg0);
        console_puts(" ms left\n");
        break;
    default:
        console_puts("hello: notification kind ");
        console_put_dec(n->kind);
        console_puts(" arg0 ");
        console_put_dec(n->arg0);
        console_puts("\n");
        break;
    }
}

int main(void)
{
    keel_status_t st;

    console_init();
    console_puts("hello: starting\n");

    nvic_enable(APP_NOTIFY_IRQN);
    if ((st = keel_notify_setup(ring, HELLO_RING_SLOTS, APP_NOTIFY_IRQN)) != KEEL_OK) {
        print_status("keel_notify_setup", st);
    }
    if ((st = console_log(KEEL_LOG_INFO, "hello: up and logging")) != KEEL_OK) {
        print_status("keel_log_write", st);
    }
    print_identity();
    if ((st = keel_watchdog_start(HELLO_WATCHDOG_MS)) != KEEL_OK) {
        print_status("keel_watchdog_start", st);
    }

    timer1_start_periodic(HELLO_WAKE_US);
    nvic_enable(TIMER1_IRQN);

    uint64_t start_us = 0;
    uint64_t now_us = 0;
    uint64_t ticks = 0;
    (void)keel_time_get_us(&start_us);
    for (;;) {
        __asm__ volatile("wfi");
        (void)keel_watchdog_kick();
        while (queue_tail != queue_head) {
            handle_notification(&queue[queue_tail % HELLO_QUEUE]);
            queue_tail++;
        }
        if (keel_time_get_us(&now_us) == KEEL_OK && now_us - start_us >= (ticks + 1u) * 1000000u) {
            ticks++;
            console_puts("hello: tick ");
            console_put_dec(ticks);
            console_puts("\n");
        }
    }
}

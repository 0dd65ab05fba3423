/*
 * echo: an app that answers on its channel. Every message the cloud sends down channel "echo"
 * (keel channel send DEVICE echo DATA) comes back up the same channel, byte for byte
 * (keel channel read DEVICE echo).
 *
 * Before that it checks the channel API's refusals (bad pointers, bad and stale handles, bad
 * names, oversize, too many channels, nothing to read, a full send queue) and prints one line per
 * check and a summary ("echo: checks passed N/N"), which tests/net/chan.sh asserts. The
 * full-queue check floods channel "flood" with numbered messages until KEEL_EBUSY; they reach
 * the cloud in order once the broker has them.
 *
 * The message "burst" (echoed too) makes it send "burst-00".."burst-07" on channel "flood" one
 * second later: tests/net/net.sh stops the broker in that second, so they are sent while the
 * device is offline and must all arrive, once each, after it reconnects.
 */
#include <stdint.h>
#include <string.h>

#include "app_hw.h"
#include "console.h"
#include "keel.h"

#define ECHO_RING_SLOTS 16u
#define ECHO_WAKE_US 10000u
#define ECHO_FLOOD_MAX 64u
#define ADDR_S_RAM 0x38000000u /* secure RAM: never the app's */

static keel_notification_t ring[ECHO_RING_SLOTS];
static uint32_t ring_next;
static volatile uint32_t data_waiting; /* CHANNEL_DATA seen since main last looked */
static volatile uint32_t sent_count;

void APP_IRQ_HANDLER(APP_NOTIFY_IRQN)(void)
{
    for (uint32_t n = 0; n < ECHO_RING_SLOTS && ring[ring_next].kind != KEEL_NOTIFY_FREE; n++) {
        keel_notification_t *slot = &ring[ring_next];
        if (slot->kind == KEEL_NOTIFY_CHANNEL_DATA)
            data_waiting++;
        else if (slot->kind == KEEL_NOTIFY_CHANNEL_SENT)
            sent_count++;
        slot->kind = KEEL_NOTIFY_FREE;
        ring_next = (ring_next + 1u) % ECHO_RING_SLOTS;
    }
}

void IRQ4_Handler(void) /* TIMER1: only wakes the main loop */
{
    TIMER1_INTCLEAR = 1;
}

static uint32_t checks, passed;
static uint32_t flood_handle;
static uint64_t burst_at_us; /* 0: no burst pending */

static void check(const char *what, keel_status_t got, keel_status_t want)
{
    checks++;
    console_puts("echo: check ");
    console_puts(what);
    if (got == want) {
        passed++;
        console_puts(" ok\n");
        return;
    }
    console_puts(" FAILED: status ");
    console_put_int(got);
    console_puts(", expected ");
    console_put_int(want);
    console_puts("\n");
}

static void run_checks(uint32_t echo)
{
    static const char long_name[] = "abcdefghijklmnopqrstuvwxyz0123456"; /* 33 characters */
    static uint8_t big[KEEL_CHANNEL_DATA_MAX + 1u];
    uint32_t h = 0, h2 = 0, seq = 0;
    size_t n = 0;
    uint8_t b[4];

    check("open-name-secure", keel_channel_open((const char *)ADDR_S_RAM, &h), KEEL_EFAULT);
    check("open-out-null", keel_channel_open("x", NULL), KEEL_EFAULT);
    check("open-out-secure", keel_channel_open("x", (uint32_t *)ADDR_S_RAM), KEEL_EFAULT);
    check("open-name-empty", keel_channel_open("", &h), KEEL_EINVAL);
    check("open-name-slash", keel_channel_open("a/b", &h), KEEL_EINVAL);
    check("open-name-wildcard", keel_channel_open("+", &h), KEEL_EINVAL);
    check("open-name-long", keel_channel_open(long_name, &h), KEEL_EINVAL);
    check("open-again-same-handle", keel_channel_open("echo", &h) == KEEL_OK && h == echo ? 0 : -99, 0);

    check("send-handle-zero", keel_channel_send(0u, "x", 1u, &seq), KEEL_EINVAL);
    check("send-handle-junk", keel_channel_send(0x12345u, "x", 1u, &seq), KEEL_EINVAL);
    check("send-len-zero", keel_channel_send(echo, "x", 0u, &seq), KEEL_EINVAL);
    check("send-oversize", keel_channel_send(echo, big, sizeof(big), &seq), KEEL_EINVAL);
    check("send-data-secure", keel_channel_send(echo, (const void *)ADDR_S_RAM, 8u, &seq), KEEL_EFAULT);
    check("send-seq-secure", keel_channel_send(echo, "x", 1u, (uint32_t *)ADDR_S_RAM), KEEL_EFAULT);

    check("recv-empty", keel_channel_recv(echo, b, sizeof(b), &n), KEEL_EAGAIN);
    check("recv-buf-secure", keel_channel_recv(echo, (void *)ADDR_S_RAM, 4u, &n), KEEL_EFAULT);
    check("recv-len-secure", keel_channel_recv(echo, b, sizeof(b), (size_t *)ADDR_S_RAM), KEEL_EFAULT);
    check("recv-handle-junk", keel_channel_recv(7u, b, sizeof(b), &n), KEEL_EINVAL);

    /* A closed channel's handle stays dead even once its slot is reused. */
    check("open-tmp", keel_channel_open("tmp", &h), KEEL_OK);
    check("close-tmp", keel_channel_close(h), KEEL_OK);
    check("close-again", keel_channel_close(h), KEEL_EINVAL);
    check("open-tmp2", keel_channel_open("tmp2", &h2), KEEL_OK);
    check("send-stale-handle", keel_channel_send(h, "x", 1u, NULL), KEEL_EINVAL);
    check("close-junk", keel_channel_close(0xFFFFFFFFu), KEEL_EINVAL);

    /* KEEL_CHANNEL_MAX open: echo, tmp2, and two more; a fifth is refused. */
    uint32_t c3 = 0, c4 = 0;
    check("open-3", keel_channel_open("c3", &c3), KEEL_OK);
    check("open-4", keel_channel_open("flood", &c4), KEEL_OK);
    flood_handle = c4;
    check("open-5-nospace", keel_channel_open("c5", &h), KEEL_ENOSPC);
    check("close-tmp2", keel_channel_close(h2), KEEL_OK);
    check("close-3", keel_channel_close(c3), KEEL_OK);

    /* Fill the send queue: numbered messages on "flood" until KEEL_EBUSY. The broker needs a
     * round trip per message and this loop needs microseconds, so the queue fills. */
    keel_status_t st = KEEL_OK;
    uint32_t sent = 0;
    char msg[16] = "flood-";
    for (; sent < ECHO_FLOOD_MAX; sent++) {
        msg[6] = (char)('0' + sent / 10u);
        msg[7] = (char)('0' + sent % 10u);
        if ((st = keel_channel_send(c4, msg, 8u, NULL)) != KEEL_OK)
            break;
    }
    check("send-queue-full", st, KEEL_EBUSY);
    console_puts("echo: flood queued ");
    console_put_dec(sent);
    console_puts("\n");

    console_puts("echo: checks passed ");
    console_put_dec(passed);
    console_puts("/");
    console_put_dec(checks);
    console_puts("\n");
}

static uint8_t reply[KEEL_CHANNEL_DATA_MAX];
static size_t reply_len; /* 0: nothing waiting to go back up */

static void echo_pending(uint32_t echo)
{
    uint8_t one;
    size_t n = 0;

    for (;;) {
        if (reply_len != 0u) {
            uint32_t seq = 0;
            keel_status_t st = keel_channel_send(echo, reply, reply_len, &seq);
            if (st == KEEL_EBUSY)
                return; /* the queue drains as the broker acks; retried on the next wake */
            if (st != KEEL_OK) {
                console_puts("echo: send failed: status ");
                console_put_int(st);
                console_puts("\n");
            } else {
                console_puts("echo: answered ");
                console_put_dec(reply_len);
                console_puts(" bytes, seq ");
                console_put_dec(seq);
                console_puts("\n");
            }
            reply_len = 0u;
        }
        /* A one-byte buffer first: a longer message must say its size and stay queued. */
        keel_status_t st = keel_channel_recv(echo, &one, 1u, &n);
        if (st == KEEL_EAGAIN)
            return;
        if (st == KEEL_ENOSPC)
            st = keel_channel_recv(echo, reply, sizeof(reply), &n);
        else if (st == KEEL_OK)
            reply[0] = one;
        if (st != KEEL_OK) {
            console_puts("echo: recv failed: status ");
            console_put_int(st);
            console_puts("\n");
            return;
        }
        console_puts("echo: received ");
        console_put_dec(n);
        console_puts(" bytes\n");
        reply_len = n;
        if (n == 5u && memcmp(reply, "burst", 5u) == 0 && keel_time_get_us(&burst_at_us) == KEEL_OK) {
            burst_at_us += 1000000u;
            console_puts("echo: burst in 1 s\n");
        }
    }
}

int main(void)
{
    keel_status_t st;
    uint32_t echo = 0;

    console_init();
    console_puts("echo: starting\n");
    nvic_enable(APP_NOTIFY_IRQN);
    if ((st = keel_notify_setup(ring, ECHO_RING_SLOTS, APP_NOTIFY_IRQN)) != KEEL_OK ||
        (st = keel_channel_open("echo", &echo)) != KEEL_OK) {
        console_puts("echo: setup failed: status ");
        console_put_int(st);
        console_puts("\n");
        return 1;
    }
    /* Handles of an earlier run are dead (channels close when the app restarts): the test sees a
     * new handle after a restart. */
    console_puts("echo: channel echo handle ");
    console_put_hex(echo);
    console_puts("\n");
    run_checks(echo);
    (void)console_log(KEEL_LOG_INFO, "echo: listening on channel echo");
    console_puts("echo: listening on channel echo\n");

    timer1_start_periodic(ECHO_WAKE_US);
    nvic_enable(TIMER1_IRQN);
    uint32_t sent_seen = 0;
    for (;;) {
        __asm__ volatile("wfi");
        data_waiting = 0u;
        echo_pending(echo);
        uint64_t now_us = 0;
        if (burst_at_us != 0u && keel_time_get_us(&now_us) == KEEL_OK && now_us >= burst_at_us) {
            burst_at_us = 0u;
            keel_status_t bst = KEEL_OK;
            uint32_t i = 0;
            char msg[9] = "burst-00";
            for (; i < 8u && bst == KEEL_OK; i++) {
                msg[6] = (char)('0' + i / 10u);
                msg[7] = (char)('0' + i % 10u);
                bst = keel_channel_send(flood_handle, msg, 8u, NULL);
            }
            console_puts("echo: burst queued ");
            console_put_dec(bst == KEEL_OK ? i : i - 1u);
            console_puts("\n");
        }
        if (sent_count != sent_seen) {
            sent_seen = sent_count;
            console_puts("echo: broker has ");
            console_put_dec(sent_seen);
            console_puts(" sends\n");
        }
    }
}

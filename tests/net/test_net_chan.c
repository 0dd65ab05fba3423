/*
 * Host unit tests of the app channel queues (firmware/microvisor/net/net_chan.c): handles and
 * their generations, the bounded send and receive queues, one send in flight at a time, what a
 * PUBACK, a PUBACK timeout and a lost connection do, and the resend keeping its msg_id.
 *
 * net_chan.c is included so each test starts from zeroed state. What it calls in the rest of
 * the microvisor is provided here: critical sections (one thread: nothing to mask), the console
 * log and notifications (recorded), and the link's publish (recorded, with a settable result).
 * The real link, lwIP and the broker are exercised by tests/fleet (fleet.channels) and
 * tests/net (net.fleet-channels) in QEMU.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net_chan.c"

/* ---- what net_chan.c calls ---- */

uint32_t uv_crit_enter(void) { return 0u; }
void uv_crit_exit(uint32_t saved) { (void)saved; }
void uv_service_pend(void) {}

static char last_log[256];
void uv_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_log, sizeof(last_log), fmt, ap);
    va_end(ap);
}

typedef struct note { uint32_t kind, arg0, arg1; } note_t;
static note_t notes[32];
static unsigned nnotes;
void uv_notify_post(uint32_t kind, uint32_t arg0, uint32_t arg1)
{
    if (nnotes < 32u)
        notes[nnotes++] = (note_t){kind, arg0, arg1};
}

typedef struct pub {
    char channel[KEEL_CHANNEL_NAME_MAX + 1];
    char data[KEEL_CHANNEL_DATA_MAX + 1];
    uint32_t msg_id;
    void (*done)(void *, int8_t);
    void *arg;
} pub_t;
static pub_t pubs[32];
static unsigned npubs;
static int pub_result; /* what the next publish returns */
static uint32_t link_msg_id;
int net_link_publish_app(const char *channel, const uint8_t *data, uint32_t len, uint32_t *io_msg_id,
                         void (*done)(void *arg, int8_t err), void *arg)
{
    if (pub_result != 0)
        return pub_result;
    if (*io_msg_id == 0u)
        *io_msg_id = ++link_msg_id;
    pub_t *p = &pubs[npubs++ % 32u];
    snprintf(p->channel, sizeof(p->channel), "%s", channel);
    memcpy(p->data, data, len);
    p->data[len] = '\0';
    p->msg_id = *io_msg_id;
    p->done = done;
    p->arg = arg;
    return 0;
}

static int reset(void **state)
{
    (void)state;
    memset(&nc, 0, sizeof(nc));
    nnotes = npubs = 0u;
    pub_result = 0;
    link_msg_id = 0u;
    last_log[0] = '\0';
    assert_true(net_chan_init("dev-1"));
    return 0;
}

static void ack_last(int8_t err)
{
    pub_t *p = &pubs[(npubs - 1u) % 32u];
    p->done(p->arg, err);
}

static void deliver(const char *topic, const char *text)
{
    keel_v1_ChannelData cd;
    memset(&cd, 0, sizeof(cd));
    cd.data.size = (pb_size_t)strlen(text);
    memcpy(cd.data.bytes, text, cd.data.size);
    assert_true(net_chan_match(topic));
    net_chan_deliver(&cd);
}

/* ---- tests ---- */

static void test_names_and_handles(void **state)
{
    (void)state;
    uint32_t a = 0, b = 0, again = 0, x = 0;
    assert_string_equal(net_chan_down_filter(), "keel/v1/dev-1/app/down/+");
    assert_int_equal(net_chan_open("", &x), KEEL_EINVAL);
    assert_int_equal(net_chan_open("a/b", &x), KEEL_EINVAL);
    assert_int_equal(net_chan_open("+", &x), KEEL_EINVAL);
    assert_int_equal(net_chan_open("abcdefghijklmnopqrstuvwxyz0123456", &x), KEEL_EINVAL); /* 33 */
    assert_int_equal(net_chan_open("abcdefghijklmnopqrstuvwxyz012345", &a), KEEL_OK);     /* 32 */
    assert_int_equal(net_chan_open("b.b_b-b", &b), KEEL_OK);
    assert_int_equal(net_chan_open("b.b_b-b", &again), KEEL_OK);
    assert_int_equal(again, b);
    assert_int_equal(net_chan_open("c", &x), KEEL_OK);
    assert_int_equal(net_chan_open("d", &x), KEEL_OK);
    assert_int_equal(net_chan_open("e", &x), KEEL_ENOSPC);
    /* A closed handle stays dead when its slot is reused; so does one from before a restart. */
    assert_int_equal(net_chan_close(a), KEEL_OK);
    assert_int_equal(net_chan_close(a), KEEL_EINVAL);
    assert_int_equal(net_chan_open("e", &x), KEEL_OK);
    assert_int_not_equal(x, a);
    assert_int_equal(net_chan_send(a, "x", 1u, &x), KEEL_EINVAL);
    net_chan_app_reset();
    assert_int_equal(net_chan_send(b, "x", 1u, &x), KEEL_EINVAL);
    assert_int_equal(net_chan_close(0u), KEEL_EINVAL);
    assert_int_equal(net_chan_close(0xFFFFFFFFu), KEEL_EINVAL);
}

static void test_send_queue(void **state)
{
    (void)state;
    uint32_t h = 0, seq = 0;
    char msg[8];
    assert_int_equal(net_chan_open("up", &h), KEEL_OK);
    assert_int_equal(net_chan_send(h, "x", 0u, &seq), KEEL_EINVAL);
    assert_int_equal(net_chan_send(h, "x", KEEL_CHANNEL_DATA_MAX + 1u, &seq), KEEL_EINVAL);
    for (unsigned i = 0; i < NET_CHAN_SENDQ; i++) {
        snprintf(msg, sizeof(msg), "m%u", i);
        assert_int_equal(net_chan_send(h, msg, (uint32_t)strlen(msg), &seq), KEEL_OK);
        assert_int_equal(seq, i + 1u);
    }
    assert_int_equal(net_chan_send(h, "full", 4u, &seq), KEEL_EBUSY);
    /* Not connected: nothing goes out. Connected: one at a time, oldest first. */
    net_chan_link_up();
    net_chan_poll();
    net_chan_poll();
    assert_int_equal(npubs, 1u);
    assert_string_equal(pubs[0].channel, "up");
    assert_string_equal(pubs[0].data, "m0");
    /* PUBACK: the app hears of it, the next goes at once, and there is room again. */
    ack_last(0);
    assert_int_equal(nnotes, 1u);
    assert_int_equal(notes[0].kind, KEEL_NOTIFY_CHANNEL_SENT);
    assert_int_equal(notes[0].arg0, h);
    assert_int_equal(notes[0].arg1, 1u);
    assert_int_equal(npubs, 2u);
    assert_string_equal(pubs[1].data, "m1");
    assert_int_equal(net_chan_send(h, "m8", 2u, &seq), KEEL_OK);
    /* No PUBACK in time: the same message goes again, under the same msg_id. */
    uint32_t id1 = pubs[1].msg_id;
    ack_last(-3 /* ERR_TIMEOUT */);
    assert_int_equal(npubs, 3u);
    assert_string_equal(pubs[2].data, "m1");
    assert_int_equal(pubs[2].msg_id, id1);
    assert_int_equal(nnotes, 1u);
    /* The connection is lost (lwIP forgets the request): after the reconnect it goes again. */
    net_chan_link_up();
    net_chan_poll();
    assert_int_equal(npubs, 4u);
    assert_string_equal(pubs[3].data, "m1");
    assert_int_equal(pubs[3].msg_id, id1);
    /* A late PUBACK of the forgotten publish counts once (it is for the message in flight). */
    ack_last(0);
    assert_string_equal(pubs[4].data, "m2");
    pubs[3].done(pubs[3].arg, 0);
    assert_int_equal(npubs, 5u);
    /* lwIP has no room: tried again by the next poll, not dropped. */
    net_chan_link_up();
    pub_result = -1; /* ERR_MEM */
    net_chan_poll();
    pub_result = -11; /* ERR_CONN */
    net_chan_poll();
    pub_result = 0;
    net_chan_poll();
    assert_int_equal(npubs, 6u);
    assert_string_equal(pubs[5].data, "m2");
    /* A message that can never be encoded is dropped with a log line, not retried forever. */
    net_chan_link_up();
    pub_result = -6; /* ERR_VAL */
    net_chan_poll();
    assert_non_null(strstr(last_log, "cannot be published: dropped"));
    pub_result = 0;
    net_chan_poll();
    assert_string_equal(pubs[6].data, "m3");
}

static void test_closed_channel_still_sends(void **state)
{
    (void)state;
    uint32_t h = 0, seq = 0;
    assert_int_equal(net_chan_open("t", &h), KEEL_OK);
    assert_int_equal(net_chan_send(h, "kept", 4u, &seq), KEEL_OK);
    net_chan_app_reset();
    net_chan_link_up();
    net_chan_poll();
    assert_int_equal(npubs, 1u);
    assert_string_equal(pubs[0].channel, "t");
    ack_last(0);
    assert_int_equal(nnotes, 0u); /* nobody to tell */
}

static void test_receive(void **state)
{
    (void)state;
    uint32_t h = 0, other = 0, n = 0;
    char buf[KEEL_CHANNEL_DATA_MAX];
    assert_int_equal(net_chan_open("down", &h), KEEL_OK);
    assert_int_equal(net_chan_open("other", &other), KEEL_OK);
    assert_int_equal(net_chan_recv(h, buf, sizeof(buf), &n), KEEL_EAGAIN);
    assert_false(net_chan_match("keel/v1/dev-2/app/down/down")); /* another device's */
    assert_false(net_chan_match("keel/v1/dev-1/app/up/down"));
    assert_false(net_chan_match("keel/v1/dev-1/cmd"));
    deliver("keel/v1/dev-1/app/down/nobody", "lost");
    assert_non_null(strstr(last_log, "not opened: dropped"));
    assert_int_equal(nnotes, 0u);
    for (unsigned i = 0; i < NET_CHAN_RECVQ + 1u; i++) {
        char t[8];
        snprintf(t, sizeof(t), "r%u", i);
        deliver("keel/v1/dev-1/app/down/down", t);
    }
    assert_non_null(strstr(last_log, "new message dropped (1 so far)"));
    assert_int_equal(nnotes, NET_CHAN_RECVQ);
    assert_int_equal(notes[0].kind, KEEL_NOTIFY_CHANNEL_DATA);
    assert_int_equal(notes[0].arg0, h);
    assert_int_equal(notes[NET_CHAN_RECVQ - 1u].arg1, NET_CHAN_RECVQ);
    /* Too small a buffer: the size is said and the message stays. */
    assert_int_equal(net_chan_recv(h, buf, 1u, &n), KEEL_ENOSPC);
    assert_int_equal(n, 2u);
    for (unsigned i = 0; i < NET_CHAN_RECVQ; i++) {
        char t[8];
        snprintf(t, sizeof(t), "r%u", i);
        assert_int_equal(net_chan_recv(h, buf, sizeof(buf), &n), KEEL_OK);
        assert_int_equal(n, strlen(t));
        assert_memory_equal(buf, t, n);
    }
    assert_int_equal(net_chan_recv(h, buf, sizeof(buf), &n), KEEL_EAGAIN);
    assert_int_equal(net_chan_recv(other, buf, sizeof(buf), &n), KEEL_EAGAIN);
    /* Closing drops what waits; a reopened channel starts empty. */
    deliver("keel/v1/dev-1/app/down/down", "stale");
    assert_int_equal(net_chan_close(h), KEEL_OK);
    assert_int_equal(net_chan_open("down", &h), KEEL_OK);
    assert_int_equal(net_chan_recv(h, buf, sizeof(buf), &n), KEEL_EAGAIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_names_and_handles, reset),
        cmocka_unit_test_setup(test_send_queue, reset),
        cmocka_unit_test_setup(test_closed_channel_still_sends, reset),
        cmocka_unit_test_setup(test_receive, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The device's app channels (firmware/microvisor/net/net_chan.c), fed from both untrusted sides:
 * the wire (app/down/<channel> topics and their ChannelData envelopes, as net_link.c hands them
 * over) and the non-secure app (keel_channel_* arguments: names, handles, lengths). The link side
 * is stubbed as in tests/net/test_net_chan.c: publishes are accepted, failed or acknowledged as the
 * input says.
 * Input: a sequence of operations, each one byte then its arguments (see the switch). Checks: a
 * receive never reports more bytes than its buffer holds, a handle is only accepted if it was
 * given out, names are checked before use.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_chan.c"

uint32_t uv_crit_enter(void) { return 0u; }
void uv_crit_exit(uint32_t saved) { (void)saved; }
void uv_service_pend(void) {}
void uv_log(const char *fmt, ...) { (void)fmt; }
void uv_notify_post(uint32_t kind, uint32_t arg0, uint32_t arg1) {}

static int pub_result;
static uint32_t link_msg_id;
static void (*pending_done)(void *, int8_t);
static void *pending_arg;

int net_link_publish_app(const char *channel, const uint8_t *data, uint32_t len, uint32_t *io_msg_id,
                         void (*done)(void *arg, int8_t err), void *arg)
{
    if (!net_chan_name_ok(channel) || len > KEEL_CHANNEL_DATA_MAX) {
        abort(); /* net_chan must only publish what it checked */
    }
    if (pub_result != 0) {
        return pub_result;
    }
    if (*io_msg_id == 0u) {
        *io_msg_id = ++link_msg_id;
    }
    pending_done = done;
    pending_arg = arg;
    return 0;
}

/* Take n bytes of the input (fewer at its end). */
static const uint8_t *take(const uint8_t **p, const uint8_t *end, size_t n, size_t *got)
{
    const uint8_t *q = *p;
    *got = (size_t)(end - q) < n ? (size_t)(end - q) : n;
    *p += *got;
    return q;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[KEEL_CHANNEL_DATA_MAX + 64];
    static keel_v1_Envelope env;
    memset(&nc, 0, sizeof(nc));
    pub_result = 0;
    link_msg_id = 0;
    pending_done = NULL;
    if (!net_chan_init("dev-1")) {
        abort();
    }
    uint32_t handles[4] = {0};
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        uint8_t op = *p++;
        size_t n = 0;
        const uint8_t *a;
        char name[48];
        switch (op % 9u) {
        case 0: { /* app: open a channel named by the next (len, bytes) */
            size_t l = p < end ? *p++ % 40u : 0u;
            a = take(&p, end, l, &n);
            memcpy(name, a, n);
            name[n] = '\0';
            uint32_t h = 0;
            if (net_chan_open(name, &h) == KEEL_OK) {
                if (!net_chan_name_ok(name)) {
                    abort(); /* opened under a name it should have refused */
                }
                handles[op / 9u % 4u] = h;
            }
            break;
        }
        case 1: { /* app: send (handle slot or a raw handle, length) */
            uint32_t h = p < end ? (*p & 0x80u ? *p : handles[*p % 4u]) : 0u;
            p += p < end;
            size_t l = p < end ? (size_t)*p++ * 3u : 0u;
            a = take(&p, end, l, &n);
            uint32_t seq = 0;
            (void)net_chan_send(h, a, (uint32_t)n, &seq);
            break;
        }
        case 2: { /* app: receive into a buffer of the given capacity */
            uint32_t h = p < end ? handles[*p++ % 4u] : 0u;
            uint32_t cap = p < end ? (uint32_t)*p++ * 3u : 0u;
            uint32_t len = 0;
            if (net_chan_recv(h, buf, cap, &len) == KEEL_OK && len > cap) {
                abort();
            }
            break;
        }
        case 3: /* app: close */
            (void)net_chan_close(p < end ? handles[*p++ % 4u] : 0u);
            break;
        case 4: /* wire: a message on a topic (string up to NUL), then its envelope bytes */
        {
            char topic[128];
            size_t l = p < end ? *p++ % 100u : 0u;
            a = take(&p, end, l, &n);
            memcpy(topic, a, n);
            topic[n] = '\0';
            size_t el = p < end ? (size_t)*p++ * 4u : 0u;
            a = take(&p, end, el, &n);
            if (net_chan_match(topic) && kproto_decode(KPROTO_T_APP_DOWN, a, n, &env) == KERR_OK) {
                net_chan_deliver(&env.body.channel);
            }
            break;
        }
        case 5: /* wire: a well-formed message to a channel the app may have open */
        {
            static const char *const topics[] = {"keel/v1/dev-1/app/down/a", "keel/v1/dev-1/app/down/b"};
            keel_v1_ChannelData cd;
            memset(&cd, 0, sizeof(cd));
            size_t l = p < end ? (size_t)*p++ * 3u : 0u;
            a = take(&p, end, l > KEEL_CHANNEL_DATA_MAX ? KEEL_CHANNEL_DATA_MAX : l, &n);
            memcpy(cd.data.bytes, a, n);
            cd.data.size = (pb_size_t)n;
            if (net_chan_match(topics[op / 9u % 2u])) {
                net_chan_deliver(&cd);
            }
            break;
        }
        case 6: /* link: the publish in flight is acknowledged or times out */
            if (pending_done != NULL) {
                void (*d)(void *, int8_t) = pending_done;
                pending_done = NULL;
                d(pending_arg, (int8_t)(op & 0x80u ? -3 : 0));
            }
            break;
        case 7: /* link: reconnect, next publish result, poll */
            pub_result = op & 0x40u ? -1 : 0;
            if (op & 0x80u) {
                net_chan_link_up();
                pending_done = NULL;
            }
            net_chan_poll();
            break;
        default: /* the app restarts */
            net_chan_app_reset();
            memset(handles, 0, sizeof(handles));
            break;
        }
    }
    return 0;
}

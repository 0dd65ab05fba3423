/* App channels: queues and handles (net_chan.h explains the model). */
#include <string.h>

#include "keel.h"
#include "net_chan.h"
#include "uv.h"

#define ERR_OK_ 0 /* lwIP ERR_OK / ERR_VAL without pulling lwIP into this file */
#define ERR_VAL_ (-6)

typedef struct chan_msg {
    uint16_t len;
    uint8_t data[KEEL_CHANNEL_DATA_MAX];
} chan_msg_t;

typedef struct chan {
    bool open;
    uint8_t gen;                         /* bumped on every close: stale handles are refused */
    char name[KEEL_CHANNEL_NAME_MAX + 1];
    uint32_t rx_head, rx_count;
    uint32_t rx_dropped;                 /* since the channel was opened */
    chan_msg_t rx[NET_CHAN_RECVQ];
} chan_t;

typedef struct send_msg {
    uint32_t seq;
    uint32_t msg_id;                     /* Envelope.msg_id once first published (0: not yet) */
    uint32_t handle;                     /* for the SENT notification, if still open then */
    char name[KEEL_CHANNEL_NAME_MAX + 1]; /* topic: survives a close of the channel */
    chan_msg_t m;
} send_msg_t;

static struct {
    chan_t ch[KEEL_CHANNEL_MAX];
    send_msg_t tx[NET_CHAN_SENDQ];
    uint32_t tx_head, tx_count;
    uint32_t next_seq;
    bool inflight;                       /* tx[tx_head] is published and awaits its PUBACK */
    uint32_t inflight_seq;
    /* link side only (service) */
    char filter[KPROTO_TOPIC_MAX];
    char device[KIDENT_ID_MAX + 1];
    char in_channel[KPROTO_CHANNEL_MAX + 1];
} nc;

/* handle = gen << 8 | (index + 1): never 0. */
static uint32_t make_handle(uint32_t i)
{
    return ((uint32_t)nc.ch[i].gen << 8) | (i + 1u);
}

/* The open channel a handle names, or NULL. Caller holds the critical section. */
static chan_t *lookup(uint32_t handle)
{
    uint32_t i = (handle & 0xFFu) - 1u;
    if (handle > 0xFFFFu || i >= KEEL_CHANNEL_MAX || !nc.ch[i].open || make_handle(i) != handle)
        return NULL;
    return &nc.ch[i];
}

bool net_chan_name_ok(const char *name)
{
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        char c = name[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= KEEL_CHANNEL_NAME_MAX)
            return false;
    }
    return n > 0u;
}

int32_t net_chan_open(const char *name, uint32_t *out_handle)
{
    if (!net_chan_name_ok(name))
        return KEEL_EINVAL;
    int32_t st = KEEL_ENOSPC;
    uint32_t c = uv_crit_enter();
    uint32_t free_i = KEEL_CHANNEL_MAX;
    for (uint32_t i = 0; i < KEEL_CHANNEL_MAX; i++) {
        if (nc.ch[i].open && strcmp(nc.ch[i].name, name) == 0) {
            *out_handle = make_handle(i);
            st = KEEL_OK;
            break;
        }
        if (!nc.ch[i].open && free_i == KEEL_CHANNEL_MAX)
            free_i = i;
    }
    if (st != KEEL_OK && free_i < KEEL_CHANNEL_MAX) {
        chan_t *ch = &nc.ch[free_i];
        strcpy(ch->name, name);
        ch->open = true;
        ch->rx_head = ch->rx_count = ch->rx_dropped = 0u;
        *out_handle = make_handle(free_i);
        st = KEEL_OK;
    }
    uv_crit_exit(c);
    return st;
}

int32_t net_chan_send(uint32_t handle, const void *data, uint32_t len, uint32_t *out_seq)
{
    if (len == 0u || len > KEEL_CHANNEL_DATA_MAX)
        return KEEL_EINVAL;
    int32_t st = KEEL_OK;
    uint32_t c = uv_crit_enter();
    chan_t *ch = lookup(handle);
    if (ch == NULL) {
        st = KEEL_EINVAL;
    } else if (nc.tx_count == NET_CHAN_SENDQ) {
        st = KEEL_EBUSY;
    } else {
        send_msg_t *m = &nc.tx[(nc.tx_head + nc.tx_count) % NET_CHAN_SENDQ];
        m->seq = ++nc.next_seq;
        m->msg_id = 0u;
        m->handle = handle;
        strcpy(m->name, ch->name);
        m->m.len = (uint16_t)len;
        memcpy(m->m.data, data, len);
        nc.tx_count++;
        *out_seq = m->seq;
    }
    uv_crit_exit(c);
    if (st == KEEL_OK)
        uv_service_pend(); /* publish now rather than at the next tick */
    return st;
}

int32_t net_chan_recv(uint32_t handle, void *buf, uint32_t cap, uint32_t *out_len)
{
    int32_t st = KEEL_OK;
    uint32_t c = uv_crit_enter();
    chan_t *ch = lookup(handle);
    if (ch == NULL) {
        st = KEEL_EINVAL;
    } else if (ch->rx_count == 0u) {
        st = KEEL_EAGAIN;
    } else {
        chan_msg_t *m = &ch->rx[ch->rx_head];
        *out_len = m->len;
        if (m->len > cap) {
            st = KEEL_ENOSPC;
        } else {
            memcpy(buf, m->data, m->len);
            ch->rx_head = (ch->rx_head + 1u) % NET_CHAN_RECVQ;
            ch->rx_count--;
        }
    }
    uv_crit_exit(c);
    return st;
}

static void close_slot(chan_t *ch)
{
    ch->open = false;
    ch->gen++;
    ch->rx_count = 0u;
}

int32_t net_chan_close(uint32_t handle)
{
    int32_t st = KEEL_EINVAL;
    uint32_t c = uv_crit_enter();
    chan_t *ch = lookup(handle);
    if (ch != NULL) {
        close_slot(ch);
        st = KEEL_OK;
    }
    uv_crit_exit(c);
    return st;
}

void net_chan_app_reset(void)
{
    uint32_t c = uv_crit_enter();
    for (uint32_t i = 0; i < KEEL_CHANNEL_MAX; i++)
        if (nc.ch[i].open)
            close_slot(&nc.ch[i]);
    uv_crit_exit(c);
}

/* ---- link side -------------------------------------------------------------------------------- */

bool net_chan_init(const char *device_id)
{
    size_t n = strlen(device_id);
    if (n > KIDENT_ID_MAX)
        return false;
    memcpy(nc.device, device_id, n + 1u);
    /* "+" is no channel name kproto accepts: build the topic of a one-letter channel, then
     * turn that letter into the wildcard. */
    if (kproto_topic_build(KPROTO_T_APP_DOWN, device_id, "x", nc.filter, sizeof(nc.filter)) != KERR_OK)
        return false;
    nc.filter[strlen(nc.filter) - 1u] = '+';
    return true;
}

const char *net_chan_down_filter(void)
{
    return nc.filter;
}

void net_chan_link_up(void)
{
    uint32_t c = uv_crit_enter();
    nc.inflight = false;
    uv_crit_exit(c);
}

static void on_puback(void *arg, int8_t err)
{
    uint32_t seq = (uint32_t)(uintptr_t)arg;
    uint32_t handle = 0u;
    uint32_t c = uv_crit_enter();
    if (nc.inflight && nc.inflight_seq == seq && nc.tx_count > 0u && nc.tx[nc.tx_head].seq == seq) {
        nc.inflight = false;
        if (err == ERR_OK_) {
            handle = nc.tx[nc.tx_head].handle;
            nc.tx_head = (nc.tx_head + 1u) % NET_CHAN_SENDQ;
            nc.tx_count--;
            if (lookup(handle) == NULL)
                handle = 0u; /* closed since: nobody to tell */
        }
        /* else: no PUBACK in time; sent again by the next poll */
    }
    uv_crit_exit(c);
    if (handle != 0u)
        uv_notify_post(KEEL_NOTIFY_CHANNEL_SENT, handle, seq);
    net_chan_poll(); /* the next one at once: only one is in flight */
}

void net_chan_poll(void)
{
    /*
     * Only the service sends and only it clears inflight (on_puback, net_chan_link_up), so the
     * head cannot change under us once inflight is set; the app only appends. Published from the
     * queue slot directly: the app never writes a slot below tx_head + tx_count.
     */
    if (nc.inflight || nc.tx_count == 0u)
        return;
    send_msg_t *m = &nc.tx[nc.tx_head];
    int err = net_link_publish_app(m->name, m->m.data, m->m.len, &m->msg_id, on_puback,
                                   (void *)(uintptr_t)m->seq);
    if (err == ERR_OK_) {
        nc.inflight = true;
        nc.inflight_seq = m->seq;
    } else if (err == ERR_VAL_) {
        /* Cannot ever be sent (does not encode): drop it rather than block the queue. Anything
         * else (no room in lwIP's output now, the connection going) is retried by the next poll. */
        uv_log("net: channel %s message %lu (%u bytes) cannot be published: dropped", m->name,
               (unsigned long)m->seq, (unsigned)m->m.len);
        uint32_t c = uv_crit_enter();
        nc.tx_head = (nc.tx_head + 1u) % NET_CHAN_SENDQ;
        nc.tx_count--;
        uv_crit_exit(c);
    }
}

bool net_chan_match(const char *topic)
{
    char dev[KIDENT_ID_MAX + 1];
    kproto_topic_t t;
    if (kproto_topic_parse(topic, dev, &t, nc.in_channel) != KERR_OK || t != KPROTO_T_APP_DOWN ||
        strcmp(dev, nc.device) != 0)
        return false;
    return true;
}

void net_chan_deliver(const keel_v1_ChannelData *cd)
{
    uint32_t len = cd->data.size;
    uint32_t handle = 0u, waiting = 0u;
    bool known = false;
    if (len == 0u || len > KEEL_CHANNEL_DATA_MAX) {
        uv_log("net: channel %s message of %lu bytes ignored (1..%u allowed)", nc.in_channel,
               (unsigned long)len, KEEL_CHANNEL_DATA_MAX);
        return;
    }
    uint32_t c = uv_crit_enter();
    for (uint32_t i = 0; i < KEEL_CHANNEL_MAX; i++) {
        chan_t *ch = &nc.ch[i];
        if (!ch->open || strcmp(ch->name, nc.in_channel) != 0)
            continue;
        known = true;
        if (ch->rx_count == NET_CHAN_RECVQ) {
            ch->rx_dropped++;
            waiting = ch->rx_dropped;
            break;
        }
        chan_msg_t *m = &ch->rx[(ch->rx_head + ch->rx_count) % NET_CHAN_RECVQ];
        m->len = (uint16_t)len;
        memcpy(m->data, cd->data.bytes, len);
        ch->rx_count++;
        handle = make_handle(i);
        waiting = ch->rx_count;
        break;
    }
    uv_crit_exit(c);
    if (!known)
        uv_log("net: data for channel %s, which the app has not opened: dropped", nc.in_channel);
    else if (handle == 0u)
        uv_log("net: channel %s has %u messages unread: new message dropped (%lu so far)", nc.in_channel,
               NET_CHAN_RECVQ, (unsigned long)waiting);
    else
        uv_notify_post(KEEL_NOTIFY_CHANNEL_DATA, handle, waiting);
}

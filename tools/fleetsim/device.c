/*
 * One simulated device of fleetsim: its connection life (connect, TLS, CONNECT with the retained
 * "offline" will, SUBSCRIBE, presence and hello, keepalive, reconnect with back-off after any
 * error or outage), its protocol messages (keel_proto, as simdev) and its update agent
 * (simdev_upd over copy-on-write flash), with every packet passing through its link model.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "fleetsim.h"
#include "keel/kproto.h"

#define CONNECT_TIMEOUT_MS 30000u  /* TCP + TLS + CONNACK + SUBACK */
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 32000u
#define PKT_MAX (KPROTO_ENVELOPE_MAX + KPROTO_TOPIC_MAX + 16u)

static const char *const SUBS[] = {"cmd", "ack", "update", "update/data"};
#define NSUBS (sizeof(SUBS) / sizeof(SUBS[0]))

static uint32_t rnd(sdev_t *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 17;
    d->rng ^= d->rng << 5;
    return d->rng;
}

/* +-25 % */
static uint64_t jitter(sdev_t *d, uint32_t ms)
{
    return (uint64_t)ms * (75u + rnd(d) % 51u) / 100u;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return h;
}

static uint32_t index_of(const fs_t *fs, const sdev_t *d)
{
    return (uint32_t)(d - fs->devs);
}

static const link_profile_t *link_of(const fs_t *fs, const sdev_t *d)
{
    return &fs->cfg.links[d->link];
}

void dev_init(fs_t *fs, sdev_t *d, uint32_t index)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s%u", fs->cfg.prefix, fs->cfg.first + index);
    d->c.fd = -1;
    /* Devices are spread over the brokers by a hash of their id, the same assignment keeld uses
     * with --mqtt-brokers (kproto_broker_index): give both the brokers in the same order. */
    d->port = fs->cfg.ports[kproto_broker_index(d->id, fs->cfg.nports)];
    d->link = (uint8_t)(fs->cfg.nlinks ? index % fs->cfg.nlinks : 0u);
    d->boot = 1;
    d->rng = fnv1a(d->id) | 1u;
    d->backoff_ms = BACKOFF_MIN_MS;
    d->phase = DEV_WAIT;
    d->at_ms = fs_now();
}

unsigned dev_installs(const sdev_t *d)
{
    return d->u ? sdu_installs(d->u->sdu) : 0u;
}

unsigned dev_reinstalls(const sdev_t *d)
{
    return d->u ? sdu_reinstalls(d->u->sdu) : 0u;
}

unsigned dev_finals(const sdev_t *d)
{
    return d->u ? sdu_finals(d->u->sdu) : 0u;
}

void dev_statuses(const sdev_t *d, unsigned *sent, unsigned *acked)
{
    *sent = *acked = 0;
    if (d->u) {
        sdu_counts(d->u->sdu, sent, acked);
    }
}

uint32_t dev_min_bytes(const sdev_t *d)
{
    return d->u ? sdu_min_bytes(d->u->sdu) : 0u;
}

/* ---- sending (through the link model) --------------------------------------------------------- */

static void link_push(fs_t *fs, sdev_t *d, int dir, const uint8_t *pkt, uint32_t len, uint64_t at)
{
    lpkt_t *p = malloc(sizeof(*p) + len);
    if (p == NULL) {
        return; /* lost, as on a congested link */
    }
    if (d->q_tail[dir] != NULL && d->q_tail[dir]->at > at) {
        at = d->q_tail[dir]->at; /* TCP delivers in order */
    }
    p->next = NULL;
    p->at = at;
    p->len = len;
    memcpy(p->data, pkt, len);
    if (d->q_tail[dir] != NULL) {
        d->q_tail[dir]->next = p;
    } else {
        d->q[dir] = p;
    }
    d->q_tail[dir] = p;
    (void)fs;
}

static void link_clear(sdev_t *d)
{
    for (int dir = 0; dir < 2; dir++) {
        while (d->q[dir] != NULL) {
            lpkt_t *p = d->q[dir];
            d->q[dir] = p->next;
            free(p);
        }
        d->q_tail[dir] = NULL;
    }
}

static void fail(fs_t *fs, sdev_t *d);

/* One packet out: at once, or after the link model's delay. */
static void send_pkt(fs_t *fs, sdev_t *d, const uint8_t *pkt, uint32_t len)
{
    if (d->c.state != MQTTC_OPEN) {
        return; /* not connected: lost, like a real device's send while its link is down */
    }
    const link_profile_t *lp = link_of(fs, d);
    if (link_active(lp)) {
        bool lost = false;
        uint64_t at = link_deliver(lp, fs_now(), &d->out_free, len, &d->rng, &lost);
        d->st.retrans += lost ? len + LINK_TLS_OVERHEAD : 0u;
        link_push(fs, d, 0, pkt, len, at);
        return;
    }
    if (!mqttc_send(&d->c, pkt, len)) {
        d->broken = true; /* failed once back in the loop: we may be inside mqttc_io's parse */
    }
}

static uint32_t publish(fs_t *fs, sdev_t *d, kproto_topic_t t, keel_v1_Envelope *env)
{
    char topic[KPROTO_TOPIC_MAX];
    uint8_t buf[KPROTO_ENVELOPE_MAX], pkt[PKT_MAX];
    size_t len = 0;
    const kproto_topic_info_t *ti = kproto_topic_info(t);

    env->version = KPROTO_REVISION;
    env->msg_id = ++d->msg_id;
    env->boot = d->boot;
    env->time_ms = fs_now() - fs->start_ms;
    if (kproto_topic_build(t, d->id, NULL, topic, sizeof(topic)) != KERR_OK ||
        kproto_encode(env, buf, sizeof(buf), &len) != KERR_OK) {
        fprintf(stderr, "fleetsim: %s: cannot encode a message\n", d->id);
        return env->msg_id;
    }
    d->pid = (uint16_t)(d->pid % 65535u + 1u);
    uint32_t n = mq_publish(pkt, sizeof(pkt), topic, buf, (uint32_t)len, ti->qos, ti->retained, d->pid);
    d->st.payload_tx += len;
    send_pkt(fs, d, pkt, n);
    return env->msg_id;
}

static fs_t *g_fs; /* the agent's send callback finds the loop through it (one per process) */

static uint32_t agent_send(void *ctx, kproto_topic_t t, keel_v1_Envelope *env)
{
    sdev_t *d = ctx;
    if (d->phase != DEV_ONLINE) {
        return 0; /* not connected: the agent sends it again after the reconnect */
    }
    return publish(g_fs, d, t, env);
}

/* ---- the update agent, made when the first update message arrives ---------------------------- */

static devupd_t *agent(fs_t *fs, sdev_t *d)
{
    if (d->u != NULL) {
        return d->u;
    }
    devupd_t *u = calloc(1, sizeof(*u));
    if (u == NULL || (u->used = malloc(fs->used_bytes)) == NULL) {
        free(u);
        return NULL;
    }
    g_fs = fs;
    kflash_cow_init(&u->icow, &fs->ibase);
    kflash_cow_init(&u->qcow, &fs->qbase);
    memcpy(u->used, fs->used_tmpl, fs->used_bytes);
    u->ifl = fs->ifl_tmpl;      /* the factory's flash state, this device's copy-on-write */
    u->ifl.be_ctx = &u->icow;
    u->ifl.used = u->used;
    u->qfl = fs->qfl_tmpl;
    u->qfl.be_ctx = &u->qcow;
    sdu_config_t cfg = {.iflash = &u->ifl, .qspi = &u->qfl, .keys = fs->cfg.keys,
                        .uv_version = (1u << 24) | (2u << 16) | 3u,
                        .quiet = !fs->cfg.verbose, .status_every_ms = 2000u,
                        .status_resend_ms = 10000u, /* the microvisor's (protocol.md P1) */
                        .queue_len = 8u, /* a fetch window, an offer, a command, an ack */ .seed = d->rng,
                        .send = agent_send, .ctx = d};
    u->sdu = sdu_open(&cfg);
    d->u = u;
    return u;
}

/* ---- messages --------------------------------------------------------------------------------- */

static void send_hello(fs_t *fs, sdev_t *d)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    keel_v1_Hello *h = &env.body.hello;
    static const keel_v1_CommandKind cmds[] = {
        keel_v1_CommandKind_COMMAND_KIND_PING, keel_v1_CommandKind_COMMAND_KIND_RESTART_APP,
        keel_v1_CommandKind_COMMAND_KIND_REBOOT, keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY,
        keel_v1_CommandKind_COMMAND_KIND_UPDATE_CANCEL};

    env.which_body = keel_v1_Envelope_hello_tag;
    h->microvisor_version = (1u << 24) | (2u << 16) | 3u;
    h->api_version = 1;
    snprintf(h->board, sizeof(h->board), "sim");
    h->device_type = kboard_host()->device_type; /* the devices' board (--board) */
    h->regions_count = 1;
    snprintf(h->regions[0].name, sizeof(h->regions[0].name), "microvisor");
    h->regions[0].size = 65536;
    memset(h->regions[0].sha256, 0xAB, 32);
    h->regions[0].version = h->microvisor_version;
    if (d->u != NULL) {
        sdu_hello(d->u->sdu, h);
    } else {
        h->regions[h->regions_count++] = fs->app_region; /* the factory's, computed once */
        h->app_version = fs->app_version;
    }
    h->uptime_ms = fs_now() - fs->start_ms;
    h->app_state = keel_v1_AppState_APP_STATE_RUNNING;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        h->commands[h->commands_count++] = cmds[i];
    }
    publish(fs, d, KPROTO_T_HELLO, &env);
}

static void answer(fs_t *fs, sdev_t *d, const keel_v1_Command *c)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    printf("%s command %llu %s\n", d->id, (unsigned long long)c->id, kproto_command_name(c->kind));
    fflush(stdout); /* commands are rare: each is a line of the log (keel up's tests read it) */
    env.which_body = keel_v1_Envelope_result_tag;
    env.body.result.command_id = c->id;
    env.body.result.uptime_ms = fs_now() - fs->start_ms;
    env.body.result.status = keel_v1_CommandStatus_COMMAND_STATUS_OK;
    if (c->kind != keel_v1_CommandKind_COMMAND_KIND_PING &&
        c->kind != keel_v1_CommandKind_COMMAND_KIND_RESTART_APP &&
        c->kind != keel_v1_CommandKind_COMMAND_KIND_REBOOT) {
        env.body.result.status = keel_v1_CommandStatus_COMMAND_STATUS_UNSUPPORTED;
        snprintf(env.body.result.detail, sizeof(env.body.result.detail), "fleetsim does not implement it");
    }
    publish(fs, d, KPROTO_T_RESULT, &env);
}

/* Let the agent work; a replaced app is a new hello (the device "rebooted" into it). */
static void poll_agent(fs_t *fs, sdev_t *d)
{
    if (d->u != NULL && sdu_poll(d->u->sdu)) {
        send_hello(fs, d);
    }
}

static void on_publish(fs_t *fs, sdev_t *d, const char *topic, const uint8_t *p, uint32_t n)
{
    char device[KIDENT_ID_MAX + 1], channel[KPROTO_CHANNEL_MAX + 1];
    kproto_topic_t t;
    static keel_v1_Envelope env; /* large; one device at a time */

    d->st.payload_rx += n;
    if (kproto_topic_parse(topic, device, &t, channel) != KERR_OK || strcmp(device, d->id) != 0 ||
        kproto_decode(t, p, n, &env) != KERR_OK) {
        if (fs->cfg.verbose) {
            printf("%s bad-message %s\n", d->id, topic);
        }
        return;
    }
    bool update_cmd = t == KPROTO_T_CMD &&
                      (env.body.command.kind == keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY ||
                       env.body.command.kind == keel_v1_CommandKind_COMMAND_KIND_UPDATE_CANCEL);
    if (t == KPROTO_T_UPDATE || t == KPROTO_T_UPDATE_DATA) {
        d->st.upd_msgs_rx++;
        d->st.upd_payload_rx += n;
        if (t == KPROTO_T_UPDATE_DATA) {
            d->st.chunk_data_rx += env.body.update_chunk.data.size;
        }
    }
    if (t == KPROTO_T_UPDATE || t == KPROTO_T_UPDATE_DATA || update_cmd ||
        (t == KPROTO_T_ACK && d->u != NULL)) {
        devupd_t *u = agent(fs, d);
        if (u == NULL) {
            return; /* out of memory: dropped, keeld offers again */
        }
        sdu_push(u->sdu, t, &env); /* worked on from the timer heap (dev_schedule) */
    } else if (t == KPROTO_T_CMD) {
        answer(fs, d, &env.body.command);
    }
}

static void online(fs_t *fs, sdev_t *d)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    d->phase = DEV_ONLINE;
    d->backoff_ms = BACKOFF_MIN_MS;
    d->st.subscribed++;
    d->ping_ms = fs_now() + fs->cfg.keepalive_s * 1000u;
    d->pong_ms = 0;
    fs->online++;
    fs->connecting--;
    env.which_body = keel_v1_Envelope_presence_tag;
    env.body.presence.online = true;
    publish(fs, d, KPROTO_T_PRESENCE, &env);
    send_hello(fs, d);
    if (d->u != NULL) {
        sdu_reconnected(d->u->sdu); /* P1: the status keeld has not acknowledged, again */
        poll_agent(fs, d);
    }
    dev_connect_slot_free(fs);
}

/* An MQTT packet from the broker (after the link model). False: a protocol error. */
static bool handle(fs_t *fs, sdev_t *d, uint8_t first, const uint8_t *b, uint32_t len)
{
    uint8_t pkt[16];
    switch (first >> 4) {
    case MQ_CONNACK: {
        if (d->phase != DEV_CONNECTING || len != 2 || b[1] != 0) {
            return false;
        }
        const char *topics[NSUBS];
        char names[NSUBS][KPROTO_TOPIC_MAX];
        for (size_t i = 0; i < NSUBS; i++) {
            snprintf(names[i], sizeof(names[i]), "keel/v1/%s/%s", d->id, SUBS[i]);
            topics[i] = names[i];
        }
        uint8_t sub[NSUBS * (KPROTO_TOPIC_MAX + 3u) + 8u];
        d->pid = (uint16_t)(d->pid % 65535u + 1u);
        uint32_t n = mq_subscribe(sub, sizeof(sub), d->pid, topics, NSUBS, 1);
        send_pkt(fs, d, sub, n);
        return true;
    }
    case MQ_SUBACK:
        if (d->phase != DEV_CONNECTING || len != 2u + NSUBS) {
            return false;
        }
        for (uint32_t i = 2; i < len; i++) {
            if (b[i] & 0x80u) {
                return false; /* the broker refused a subscription */
            }
        }
        online(fs, d);
        return true;
    case MQ_PUBLISH: {
        uint8_t qos = (first >> 1) & 3u;
        if (len < 2) {
            return false;
        }
        uint32_t tl = (uint32_t)b[0] << 8 | b[1], at = 2u + tl;
        if (tl == 0 || tl >= KPROTO_TOPIC_MAX || at + (qos ? 2u : 0u) > len || qos > 1) {
            return false;
        }
        char topic[KPROTO_TOPIC_MAX];
        memcpy(topic, b + 2, tl);
        topic[tl] = '\0';
        if (qos == 1) {
            uint16_t pid = (uint16_t)(b[at] << 8 | b[at + 1]);
            at += 2;
            send_pkt(fs, d, pkt, mq_puback(pkt, sizeof(pkt), pid));
        }
        on_publish(fs, d, topic, b + at, len - at);
        return true;
    }
    case MQ_PUBACK:
        return len == 2;
    case MQ_PINGRESP:
        d->pong_ms = 0;
        return true;
    default:
        return false;
    }
}

static bool on_packet(void *ctx, uint8_t first, const uint8_t *body, uint32_t len)
{
    sdev_t *d = ctx;
    fs_t *fs = g_fs;
    const link_profile_t *lp = link_of(fs, d);
    if (link_active(lp)) {
        bool lost = false;
        uint8_t hdr[5 + MQTTC_PACKET_MAX];
        uint64_t at = link_deliver(lp, fs_now(), &d->in_free, len + 2u, &d->rng, &lost);
        d->st.retrans += lost ? len + 2u + LINK_TLS_OVERHEAD : 0u;
        hdr[0] = first;
        memcpy(hdr + 1, body, len);
        link_push(fs, d, 1, hdr, len + 1u, at);
        return true;
    }
    return handle(fs, d, first, body, len);
}

/* ---- connection life -------------------------------------------------------------------------- */

static void schedule_retry(fs_t *fs, sdev_t *d)
{
    d->phase = DEV_WAIT;
    d->at_ms = fs_now() + jitter(d, d->backoff_ms);
    d->backoff_ms = d->backoff_ms * 2u > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d->backoff_ms * 2u;
}

/* Any error: close, reconnect later with back-off (the agent keeps its state: no reboot). */
static void fail(fs_t *fs, sdev_t *d)
{
    bool was_connecting = d->phase == DEV_CONNECTING;
    if (d->phase == DEV_ONLINE) {
        fs->online--;
    }
    mqttc_close(&d->c, fs->epfd);
    link_clear(d);
    d->st.failures++;
    schedule_retry(fs, d);
    if (was_connecting) {
        fs->connecting--;
        dev_connect_slot_free(fs);
    }
}

static void start_connect(fs_t *fs, sdev_t *d)
{
    uint8_t pkt[256], will[16];
    char wtopic[KPROTO_TOPIC_MAX];
    size_t wlen = 0;
    keel_v1_Envelope w = keel_v1_Envelope_init_zero;

    d->st.connects++;
    if (fs_now() < d->down_until) {
        d->st.failures++;
        schedule_retry(fs, d); /* the link is down: the attempt fails */
        return;
    }
    if (!mqttc_connect(&d->c, fs->epfd, index_of(fs, d), d->port, fs->ctx, d->cert.cert,
                       d->cert.cert_len, d->cert.key, d->cert.key_len)) {
        if (fs->cfg.verbose || errno == EMFILE) {
            fprintf(stderr, "fleetsim: %s: cannot connect: %s\n", d->id, strerror(errno));
        }
        d->st.failures++;
        schedule_retry(fs, d);
        return;
    }
    fs->connecting++;
    d->phase = DEV_CONNECTING;
    d->at_ms = fs_now() + CONNECT_TIMEOUT_MS;
    d->out_free = d->in_free = 0;
    /* Last will: retained presence offline, pre-encoded like the microvisor does at CONNECT. */
    w.version = KPROTO_REVISION;
    w.boot = d->boot;
    w.which_body = keel_v1_Envelope_presence_tag;
    kproto_topic_build(KPROTO_T_PRESENCE, d->id, NULL, wtopic, sizeof(wtopic));
    kproto_encode(&w, will, sizeof(will), &wlen);
    uint32_t n = mq_connect(pkt, sizeof(pkt), d->id, fs->cfg.keepalive_s, wtopic, will, (uint32_t)wlen);
    mqttc_send(&d->c, pkt, n); /* sent once TLS is up */
}

void dev_connect_slot_free(fs_t *fs)
{
    while (fs->wq_len > 0 && fs->connecting < fs->cfg.max_connecting) {
        sdev_t *d = &fs->devs[fs->waitq[fs->wq_head]];
        fs->wq_head = (fs->wq_head + 1u) % fs->n;
        fs->wq_len--;
        start_connect(fs, d);
        dev_schedule(fs, d);
    }
}

void dev_outage(fs_t *fs, sdev_t *d, uint64_t until)
{
    d->down_until = until;
    if (d->phase == DEV_ONLINE || d->phase == DEV_CONNECTING) {
        fail(fs, d);
        dev_schedule(fs, d);
    }
}

void dev_schedule(fs_t *fs, sdev_t *d)
{
    uint64_t due = UINT64_MAX, keep = UINT64_MAX;
    if (d->phase == DEV_WAIT || d->phase == DEV_CONNECTING) {
        due = d->at_ms;
    } else if (d->phase == DEV_ONLINE) {
        keep = d->pong_ms != 0 && d->pong_ms < d->ping_ms ? d->pong_ms : d->ping_ms;
    }
    theap_set(&fs->kheap, index_of(fs, d), keep);
    for (int dir = 0; dir < 2; dir++) {
        if (d->q[dir] != NULL && d->q[dir]->at < due) {
            due = d->q[dir]->at;
        }
    }
    if (d->u != NULL) {
        /* Agent work due "now" is queued behind what is already overdue (keepalives first:
         * when the process is short of CPU, the engine's work waits, the connections do not). */
        uint64_t a = sdu_next_ms(d->u->sdu), now = fs_now();
        a = a < now ? now : a;
        if (a < due) {
            due = a;
        }
    }
    theap_set(&fs->heap, index_of(fs, d), due);
}

static void flush(fs_t *fs, sdev_t *d)
{
    bool opened = false;
    if (d->broken) {
        d->broken = false;
        if (d->c.state != MQTTC_CLOSED) {
            fail(fs, d);
        }
        return;
    }
    if (d->c.state == MQTTC_OPEN && d->c.wlen > 0 &&
        !mqttc_io(&d->c, fs->epfd, index_of(fs, d), on_packet, d, &opened)) {
        fail(fs, d);
    }
}

void dev_tick(fs_t *fs, sdev_t *d, uint64_t now)
{
    g_fs = fs;
    if (d->phase == DEV_WAIT && now >= d->at_ms) {
        if (fs->connecting >= fs->cfg.max_connecting) {
            d->phase = DEV_QUEUED;
            fs->waitq[(fs->wq_head + fs->wq_len++) % fs->n] = index_of(fs, d);
        } else {
            start_connect(fs, d);
        }
    } else if (d->phase == DEV_CONNECTING && now >= d->at_ms) {
        fail(fs, d); /* no CONNACK/SUBACK in time */
    }
    /* The link model's packets whose time has come. */
    while (d->q[0] != NULL && d->q[0]->at <= now && d->c.state == MQTTC_OPEN && !d->broken) {
        lpkt_t *p = d->q[0];
        d->q[0] = p->next;
        if (d->q[0] == NULL) {
            d->q_tail[0] = NULL;
        }
        d->broken |= !mqttc_send(&d->c, p->data, p->len);
        free(p);
    }
    while (d->q[1] != NULL && d->q[1]->at <= now && !d->broken) {
        lpkt_t *p = d->q[1];
        d->q[1] = p->next;
        if (d->q[1] == NULL) {
            d->q_tail[1] = NULL;
        }
        d->broken |= !handle(fs, d, p->data[0], p->data + 1, p->len - 1u);
        free(p);
    }
    if (d->u != NULL && sdu_next_ms(d->u->sdu) <= now) {
        poll_agent(fs, d);
    }
    flush(fs, d);
    dev_schedule(fs, d);
}

void dev_keepalive(fs_t *fs, sdev_t *d, uint64_t now)
{
    g_fs = fs;
    if (d->phase == DEV_ONLINE) {
        if (d->pong_ms != 0 && now >= d->pong_ms) {
            fail(fs, d); /* keepalive lost */
        } else if (now >= d->ping_ms) {
            uint8_t pkt[8]; /* the encoders build behind a 5-byte header slot */
            send_pkt(fs, d, pkt, mq_pingreq(pkt, sizeof(pkt)));
            d->ping_ms = now + fs->cfg.keepalive_s * 1000u;
            d->pong_ms = now + fs->cfg.keepalive_s * 1000u;
        }
    }
    flush(fs, d);
    dev_schedule(fs, d);
}

void dev_io(fs_t *fs, sdev_t *d, uint32_t events)
{
    bool opened = false;
    g_fs = fs;
    (void)events;
    if (d->c.state == MQTTC_CLOSED) {
        return;
    }
    if (!mqttc_io(&d->c, fs->epfd, index_of(fs, d), on_packet, d, &opened)) {
        fail(fs, d);
    } else {
        flush(fs, d); /* answers queued while reading (PUBACKs, statuses, fetches) */
    }
    dev_schedule(fs, d);
}

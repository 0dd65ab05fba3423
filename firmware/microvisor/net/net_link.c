/*
 * The link to the fleet broker: MQTT 3.1.1 over TLS 1.3, or 1.2 when the fleet allows it (lwIP's
 * MQTT client over altcp_tls with Mbed TLS), and the device side of protocol v1's presence, hello, heartbeat and commands.
 *
 * Connection manager (runs in the service, one step per uv_net_poll()):
 *
 *        ip up                  CONNACK accepted
 *   IDLE -----> CONNECTING ---------------------> UP ---- heartbeat every hb_period
 *                 |   ^                            |
 *     refused,    |   | back-off elapsed           | broker gone, keepalive lost,
 *     TLS failed, v   |                            | TLS error
 *     timeout    WAIT <----------------------------+
 *
 * Back-off: 0.5 s doubling up to 30 s, jittered to [d/2, d] from the DRBG so a fleet that lost its
 * broker does not come back in lock-step; reset after every successful connect.
 *
 * Server authentication: the TLS config requires a chain to the provisioned fleet CA and the
 * provisioned broker name (lwIP patched for both, patches/lwip/). Without MBEDTLS_HAVE_TIME_DATE
 * (the board has no real-time clock) certificate validity dates are not checked.
 *
 * Protocol v1 (docs/protocol.md) through keel_proto, the nanopb codec keeld and the CLI share:
 * presence (retained, with the last will saying offline), hello, heartbeat, command results;
 * log batches and crash reports are kept until keeld acks them and resent after a reconnect.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "keel.h"
#include "keel/board.h"
#include "keel/crash.h"
#include "keel/kproto.h"
#include "lwip/altcp_tls.h"
#include "lwip/apps/mqtt.h"
#include "lwip/apps/mqtt_priv.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"
#include "net_chan.h"
#include "net_dbg.h"
#include "net_logq.h"
#include "net_seed.h"
#include "net_upd.h"
#include "pb_encode.h"
#include "port.h"
#include "uv.h"
#include "uv_net.h"
#include "uv_upd.h"

#define BACKOFF_MIN_MS 500u
#define BACKOFF_MAX_MS 30000u
#define CONNECT_TIMEOUT_MS 20000u
#define KEEPALIVE_S 20u
#define HB_DEFAULT_MS 30000u
#define RESEND_MS 10000u /* an unacked log batch or crash is sent again after this long */
#define DONE_IDS 8u
/* What an MQTT PUBLISH adds to payload + topic in lwIP's output ring: fixed header (1 + up to
 * 4 length bytes), topic length (2), packet id (2). */
#define MQTT_PUBLISH_OVERHEAD 9u

typedef enum link_state { LINK_IDLE, LINK_CONNECTING, LINK_UP, LINK_WAIT } link_state_t;

/* A device message the server must ack (LogBatch, Crash): sent, then kept until acked. */
typedef struct acked_msg {
    uint32_t msg_id;  /* 0: nothing in flight */
    bool sent;        /* published on the current connection */
    uint32_t sent_ms;
} acked_msg_t;

typedef struct link {
    net_link_cfg_t cfg;
    ip_addr_t broker;
    struct altcp_tls_config *tls;
    mqtt_client_t client;
    link_state_t state;
    bool enabled;         /* the link is configured: logs are queued for it */
    uint32_t attempt_ms;  /* when the current attempt started */
    uint32_t next_ms;     /* next attempt (WAIT) */
    uint32_t failures;    /* consecutive failed attempts */
    uint32_t connects;    /* successful connects this boot */
    uint32_t hb_period, hb_next;
    keel_v1_AppState hello_state; /* what the last hello said: a new one goes out on a change */
    uint32_t hello_restarts;
    uint32_t hello_app;           /* uv_app.hdr.version it reported (an update changes it) */
    bool hello_trial;             /* the trial flag it reported (the confirm changes it) */
    uint32_t hello_next;          /* earliest port_ticks() for the next changed hello */
    uint32_t boot;        /* Envelope.boot: never repeats (net_seed_boot) */
    uint32_t msg_id;
    uint64_t done_ids[DONE_IDS];
    uint32_t done_n;
    char topics[KPROTO_T_COUNT][KPROTO_TOPIC_MAX]; /* the device's topics without a channel */
    uint8_t will[16];
    uint16_t will_len;
    net_logq_t logq;
    acked_msg_t logs, crash;
    uint32_t crash_index; /* report number (uv_ni.report_count numbering) of the crash in flight */
    /* the incoming publish being assembled */
    kproto_topic_t in_topic;
    bool in_wanted, in_overflow;
    uint32_t in_len;
    /* Received publishes (bench-net.sh's cloud->device throughput): boot word net-rx-mark=N
     * logs the count, bytes and time once N have arrived. */
    uint32_t rx_mark, rx_count, rx_first_ms;
    uint64_t rx_bytes;
    uint8_t in[KPROTO_ENVELOPE_MAX];
    bool reboot_pending; /* a reboot command was answered: reset at reboot_at */
    uint32_t reboot_at;
} link_t;

#define REBOOT_DELAY_MS 300u
#define HELLO_MIN_MS 1000u

static link_t lk;

/*
 * One Envelope for sending and one for receiving, with the encode buffer: each is over 2 KiB and
 * the service runs on the 8 KiB handler stack, so they are static, never locals. Sending happens
 * only in the service (a command's result is sent while the received Envelope is still in use:
 * hence two).
 */
static keel_v1_Envelope tx_env;
static keel_v1_Envelope rx_env;
static uint8_t tx_buf[KPROTO_ENVELOPE_MAX];

/*
 * Which crash reports are acked, in .noinit next to uv_ni (whose reports ring is the crash
 * queue), so a report survives the system-reset restart of the app until the server has it.
 * Kept outside uv_ni's CRC because the service updates it while the supervisor may be
 * committing uv_ni; a complement guards it instead. Reset when it is ahead of uv_ni (power-on).
 */
typedef struct crash_acks {
    uint32_t acked;     /* reports (uv_ni.report_count numbering) the server has stored */
    uint32_t acked_inv; /* ~acked */
} crash_acks_t;
__attribute__((section(".noinit"))) static crash_acks_t crash_acks;

/* ------------------------------------------------------------------------------------------ */
/* Publishing                                                                                  */

static keel_v1_AppState app_state(void)
{
    if (uv_upd_busy())
        return keel_v1_AppState_APP_STATE_UPDATING;
    if (!uv_app.valid)
        return keel_v1_AppState_APP_STATE_NONE;
    return uv_app_running() ? keel_v1_AppState_APP_STATE_RUNNING : keel_v1_AppState_APP_STATE_BACKOFF;
}

static keel_v1_Envelope *env_begin(pb_size_t body_tag)
{
    memset(&tx_env, 0, sizeof(tx_env));
    tx_env.version = KPROTO_REVISION;
    tx_env.boot = lk.boot;
    tx_env.time_ms = uv_uptime_ms();
    tx_env.which_body = body_tag;
    return &tx_env;
}

/* Largest payload lwIP's MQTT output ring can take for topic t (it rejects bigger ones). */
static uint32_t payload_budget(kproto_topic_t t)
{
    return MQTT_OUTPUT_RINGBUF_SIZE - MQTT_PUBLISH_OVERHEAD - (uint32_t)strlen(lk.topics[t]);
}

/* The installed app runs on trial (an update not yet confirmed; protocol.md P2). */
static bool app_trial(void)
{
    keel_update_status_t st;
    return uv_upd_status_get(&st) == 0 && (st.flags & KEEL_UPDATE_F_TRIAL) != 0u;
}

/* The cloud sees no app version while none is valid. */
static uint32_t app_version(void)
{
    return uv_app.valid ? uv_app.hdr.version : 0u;
}

/*
 * Encode tx_env (msg_id 0: the next of this boot) and publish it on topic t. ERR_MEM when lwIP's
 * output ring or request slots are full for now (the caller may retry later).
 */
static err_t env_send(kproto_topic_t t, uint32_t msg_id)
{
    const kproto_topic_info_t *ti = kproto_topic_info(t);
    size_t n = 0;
    tx_env.msg_id = msg_id ? msg_id : ++lk.msg_id;
    kerr_t kerr = kproto_encode(&tx_env, tx_buf, sizeof(tx_buf), &n);
    if (kerr != KERR_OK || n > payload_budget(t)) {
        uv_log("net: message for %s does not encode within %lu bytes (%s): dropped", ti->suffix,
               (unsigned long)payload_budget(t), kerr_str(kerr));
        return ERR_VAL;
    }
    err_t err = mqtt_publish(&lk.client, lk.topics[t], tx_buf, (u16_t)n, ti->qos, ti->retained ? 1u : 0u,
                             NULL, NULL);
    if (err != ERR_OK && err != ERR_MEM)
        uv_log("net: publish on %s failed (lwIP error %d)", ti->suffix, (int)err);
    return err;
}

/* App channel data (net_chan.c) on app/up/<channel>, QoS 1; done() runs on its PUBACK. */
int net_link_publish_app(const char *channel, const uint8_t *data, uint32_t len, uint32_t *io_msg_id,
                         void (*done)(void *arg, int8_t err), void *arg)
{
    char topic[KPROTO_TOPIC_MAX];
    size_t n = 0;
    keel_v1_ChannelData *cd = &env_begin(keel_v1_Envelope_channel_tag)->body.channel;
    if (len > sizeof(cd->data.bytes) ||
        kproto_topic_build(KPROTO_T_APP_UP, lk.cfg.device_id, channel, topic, sizeof(topic)) != KERR_OK)
        return ERR_VAL;
    memcpy(cd->data.bytes, data, len);
    cd->data.size = (pb_size_t)len;
    if (*io_msg_id == 0u)
        *io_msg_id = ++lk.msg_id;
    tx_env.msg_id = *io_msg_id;
    if (kproto_encode(&tx_env, tx_buf, sizeof(tx_buf), &n) != KERR_OK)
        return ERR_VAL;
    return mqtt_publish(&lk.client, topic, tx_buf, (u16_t)n, 1u, 0u, done, arg);
}

keel_v1_Envelope *net_link_env(pb_size_t body_tag)
{
    return env_begin(body_tag);
}

bool net_link_send(kproto_topic_t t)
{
    return lk.state == LINK_UP && env_send(t, 0u) == ERR_OK;
}

static void publish_presence(bool online)
{
    env_begin(keel_v1_Envelope_presence_tag)->body.presence.online = online;
    env_send(KPROTO_T_PRESENCE, 0u);
}

static void publish_hello(void)
{
    keel_v1_Hello *h = &env_begin(keel_v1_Envelope_hello_tag)->body.hello;
    h->microvisor_version = UV_VERSION;
    h->api_version = 1u; /* KEEL_API_VERSION */
    snprintf(h->board, sizeof(h->board), "%s", kboard_fw.name);
    h->device_type = kboard_fw.device_type;
    if (uv_app.valid) {
        h->app_version = uv_app.hdr.version;
        keel_v1_Region *r = &h->regions[h->regions_count++];
        strcpy(r->name, "app");
        r->size = uv_app.hdr.image_size;
        memcpy(r->sha256, uv_app.hdr.sha256, sizeof(r->sha256));
        r->version = uv_app.hdr.version;
    }
    h->uptime_ms = uv_uptime_ms();
    h->app_state = app_state();
    h->restart_count = uv_ni.restarts;
    h->commands[h->commands_count++] = keel_v1_CommandKind_COMMAND_KIND_PING;
    h->commands[h->commands_count++] = keel_v1_CommandKind_COMMAND_KIND_RESTART_APP;
    h->commands[h->commands_count++] = keel_v1_CommandKind_COMMAND_KIND_REBOOT;
    h->commands[h->commands_count++] = keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY;
    h->commands[h->commands_count++] = keel_v1_CommandKind_COMMAND_KIND_UPDATE_CANCEL;
    h->reset_reason = (uint32_t)uv_boot_cause;
    h->update_trial = app_trial();
    if (env_send(KPROTO_T_HELLO, 0u) == ERR_OK) {
        lk.hello_state = h->app_state;
        lk.hello_restarts = h->restart_count;
        lk.hello_app = h->app_version;
        lk.hello_trial = h->update_trial;
    }
}

static void publish_heartbeat(void)
{
    keel_v1_Heartbeat *hb = &env_begin(keel_v1_Envelope_heartbeat_tag)->body.heartbeat;
    hb->uptime_ms = uv_uptime_ms();
    hb->app_state = app_state();
    hb->restart_count = uv_ni.restarts;
    uint32_t c = uv_crit_enter();
    hb->log_dropped = lk.logq.drop_total;
    uv_crit_exit(c);
    env_send(KPROTO_T_HEARTBEAT, 0u);
}

static void publish_result(uint64_t id, keel_v1_CommandStatus status, const char *detail)
{
    keel_v1_CommandResult *r = &env_begin(keel_v1_Envelope_result_tag)->body.result;
    r->command_id = id;
    r->status = status;
    strncpy(r->detail, detail, sizeof(r->detail) - 1u);
    r->uptime_ms = uv_uptime_ms();
    env_send(KPROTO_T_RESULT, 0u);
}

/* ------------------------------------------------------------------------------------------ */
/* Logs and crash reports: queued, sent, kept until acked                                     */

void uv_net_log(uint32_t level, uint32_t source, const char *text, uint32_t len)
{
    if (!lk.enabled || len == 0u)
        return;
    uint32_t c = uv_crit_enter();
    net_logq_put(&lk.logq, uv_uptime_ms(), (uint8_t)level, (uint8_t)source, text, len);
    uv_crit_exit(c);
}

void uv_net_event(uint32_t level, const char *fmt, ...)
{
    char text[NET_LOGQ_TEXT_MAX + 1u];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n > 0)
        uv_net_log(level, keel_v1_LogSource_LOG_SOURCE_MICROVISOR, text,
                   (uint32_t)n < NET_LOGQ_TEXT_MAX ? (uint32_t)n : NET_LOGQ_TEXT_MAX);
}

/* Due: never sent on this connection, or sent long enough ago without an ack. */
static bool due(const acked_msg_t *m, uint32_t now)
{
    return !m->sent || now - m->sent_ms >= RESEND_MS;
}

static void mark_sent(acked_msg_t *m, err_t err, uint32_t now)
{
    if (err == ERR_OK) {
        m->sent = true;
        m->sent_ms = now;
    }
}

/*
 * The batch in flight (or a new one of the oldest entries, as many as fit one publish). The
 * entries are copied out under a critical section: keel_log_write may append meanwhile.
 */
static void send_logs(uint32_t now)
{
    /* Unlocked reads are safe here: nothing that appends can preempt the service. */
    if (lk.logq.count == 0u || (lk.logs.msg_id != 0u && !due(&lk.logs, now)))
        return;
    keel_v1_LogBatch *b = &env_begin(keel_v1_Envelope_logs_tag)->body.logs;
    uint32_t budget = payload_budget(KPROTO_T_LOGS);
    uint32_t c = uv_crit_enter();
    net_logq_t *q = &lk.logq;
    uint32_t want = q->inflight ? q->inflight : (q->count < NET_LOGQ_BATCH_MAX ? q->count : NET_LOGQ_BATCH_MAX);
    for (uint32_t i = 0; i < want; i++) {
        const net_log_entry_t *e = net_logq_at(q, i);
        keel_v1_LogEntry *le = &b->entries[b->entries_count++];
        le->uptime_ms = e->uptime_ms;
        le->level = (keel_v1_LogLevel)e->level;
        le->source = (keel_v1_LogSource)e->source;
        memcpy(le->text, e->text, e->len);
        le->text[e->len] = '\0';
        size_t sz = 0;
        /* A new batch takes what fits one publish (at least one entry, which always fits). */
        if (!q->inflight && b->entries_count > 1u &&
            (!pb_get_encoded_size(&sz, keel_v1_Envelope_fields, &tx_env) || sz + 16u > budget)) {
            b->entries_count--;
            break;
        }
    }
    if (b->entries_count == 0u) {
        uv_crit_exit(c);
        return;
    }
    if (!q->inflight) {
        net_logq_begin(q, b->entries_count, ++lk.msg_id);
        lk.logs = (acked_msg_t){.msg_id = q->inflight_id};
    }
    b->dropped = q->inflight_drop;
    uv_crit_exit(c);
    mark_sent(&lk.logs, env_send(KPROTO_T_LOGS, lk.logs.msg_id), now);
}

static void crash_acks_check(void)
{
    if (crash_acks.acked_inv != ~crash_acks.acked || crash_acks.acked > uv_ni.report_count)
        crash_acks = (crash_acks_t){0u, ~0u};
}

/*
 * The oldest unacked report of uv_ni's ring. The slot the supervisor writes next is never sent
 * (it may be half-written when the service runs), so the last UV_REPORTS - 1 reports are kept.
 */
static void send_crash(uint32_t now)
{
    uint32_t count = uv_ni.report_count;
    uint32_t lo = count > UV_REPORTS - 1u ? count - (UV_REPORTS - 1u) : 0u;
    if (crash_acks.acked < lo)
        crash_acks = (crash_acks_t){lo, ~lo}; /* older ones were overwritten: lost */
    if (crash_acks.acked >= count)
        return;
    if (lk.crash.msg_id != 0u && lk.crash_index != crash_acks.acked)
        lk.crash.msg_id = 0u; /* the one in flight was overwritten */
    if (lk.crash.msg_id != 0u && !due(&lk.crash, now))
        return;
    keel_v1_Crash *cr = &env_begin(keel_v1_Envelope_crash_tag)->body.crash;
    size_t n = 0;
    if (kcrash_encode(&uv_ni.reports[crash_acks.acked % UV_REPORTS], cr->report.bytes,
                      sizeof(cr->report.bytes), &n) != KERR_OK) {
        uv_log("net: crash report %lu does not encode: skipped", (unsigned long)crash_acks.acked);
        crash_acks.acked++;
        crash_acks.acked_inv = ~crash_acks.acked;
        return;
    }
    cr->report.size = (pb_size_t)n;
    if (lk.crash.msg_id == 0u) {
        lk.crash = (acked_msg_t){.msg_id = ++lk.msg_id};
        lk.crash_index = crash_acks.acked;
    }
    mark_sent(&lk.crash, env_send(KPROTO_T_CRASH, lk.crash.msg_id), now);
}

static void handle_ack(const keel_v1_Ack *a)
{
    if (a->boot != lk.boot)
        return; /* an ack of an earlier boot's message: nothing of it is queued any more */
    if (lk.logs.msg_id != 0u && a->msg_id == lk.logs.msg_id) {
        uint32_t c = uv_crit_enter();
        net_logq_ack(&lk.logq, a->msg_id);
        uv_crit_exit(c);
        lk.logs.msg_id = 0u;
    } else if (lk.crash.msg_id != 0u && a->msg_id == lk.crash.msg_id) {
        crash_acks.acked = lk.crash_index + 1u;
        crash_acks.acked_inv = ~crash_acks.acked;
        lk.crash.msg_id = 0u;
    } else {
        net_upd_ack(a->msg_id);
    }
}

/* The app hears of dropped log entries from the service, once per run of it. */
static void notify_drops(void)
{
    uint32_t c = uv_crit_enter();
    uint32_t n = lk.logq.drop_notify;
    lk.logq.drop_notify = 0u;
    uv_crit_exit(c);
    if (n != 0u)
        uv_notify_post(KEEL_NOTIFY_LOG_DROPPED, n, 0u);
}

/* ------------------------------------------------------------------------------------------ */
/* Commands and acks (cloud -> device)                                                        */

static void handle_command(const keel_v1_Command *cmd)
{
    uint64_t id = cmd->id;
    if (id == 0u) {
        uv_log("net: malformed command (no id) ignored");
        return;
    }
    for (uint32_t i = 0; i < DONE_IDS && i < lk.done_n; i++)
        if (lk.done_ids[i] == id) {
            /* Sent again because our answer was lost: answer again, never act twice. */
            uv_log("net: command %lu already executed this boot: answered again", (unsigned long)id);
            publish_result(id, keel_v1_CommandStatus_COMMAND_STATUS_OK, "already done");
            return;
        }
    lk.done_ids[lk.done_n++ % DONE_IDS] = id;
    switch (cmd->kind) {
    case keel_v1_CommandKind_COMMAND_KIND_PING:
        uv_log("net: ping (command %lu)", (unsigned long)id);
        publish_result(id, keel_v1_CommandStatus_COMMAND_STATUS_OK, "");
        break;
    case keel_v1_CommandKind_COMMAND_KIND_RESTART_APP:
        uv_log("net: restart app (command %lu)", (unsigned long)id);
        publish_result(id, keel_v1_CommandStatus_COMMAND_STATUS_OK, "");
        uv_sup_request_stop(KCRASH_RESTART);
        break;
    case keel_v1_CommandKind_COMMAND_KIND_REBOOT:
        /* Answer first, then reset once the result has had time to leave (the reset drops
         * the connection); the next boot reports "reboot requested". */
        uv_log("net: reboot (command %lu) in %u ms", (unsigned long)id, REBOOT_DELAY_MS);
        publish_result(id, keel_v1_CommandStatus_COMMAND_STATUS_OK, "");
        lk.reboot_at = port_ticks() + REBOOT_DELAY_MS;
        lk.reboot_pending = true;
        break;
    case keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY:
    case keel_v1_CommandKind_COMMAND_KIND_UPDATE_CANCEL: {
        char detail[64];
        keel_v1_CommandStatus st = net_upd_command(cmd->kind, detail, sizeof(detail));
        uv_log("net: %s (command %lu): %s", kproto_command_name(cmd->kind), (unsigned long)id, detail);
        publish_result(id, st, st == keel_v1_CommandStatus_COMMAND_STATUS_OK ? "" : detail);
        break;
    }
    default:
        uv_log("net: command %lu of unknown kind %lu: unsupported", (unsigned long)id,
               (unsigned long)cmd->kind);
        publish_result(id, keel_v1_CommandStatus_COMMAND_STATUS_UNSUPPORTED, "unknown command kind");
        break;
    }
}

static void handle_incoming(void)
{
    kerr_t err = kproto_decode(lk.in_topic, lk.in, lk.in_len, &rx_env);
    if (err != KERR_OK) {
        uv_log("net: malformed %s (%lu bytes, %s) ignored",
               lk.in_topic == KPROTO_T_CMD ? "command" : kproto_topic_info(lk.in_topic)->suffix,
               (unsigned long)lk.in_len,
               err == KERR_INVAL ? "not the body this topic carries" : "not a protocol v1 envelope");
        return;
    }
    switch (lk.in_topic) {
    case KPROTO_T_CMD: handle_command(&rx_env.body.command); break;
    case KPROTO_T_APP_DOWN: net_chan_deliver(&rx_env.body.channel); break;
    case KPROTO_T_UPDATE: net_upd_offer(&rx_env.body.update_offer); break;
    case KPROTO_T_UPDATE_DATA: net_upd_chunk(&rx_env.body.update_chunk); break;
    case KPROTO_T_DEBUG_DOWN: net_dbg_message(&rx_env.body.debug); break;
    default: handle_ack(&rx_env.body.ack); break;
    }
}

/* The topics the device subscribes to (without a channel). */
static const kproto_topic_t in_topics[] = {KPROTO_T_CMD, KPROTO_T_ACK, KPROTO_T_UPDATE, KPROTO_T_UPDATE_DATA,
                                          KPROTO_T_DEBUG_DOWN};

static void on_publish(void *arg, const char *topic, u32_t tot_len)
{
    (void)arg;
    lk.in_wanted = false;
    lk.in_len = 0;
    lk.in_overflow = tot_len > sizeof(lk.in);
    for (uint32_t i = 0; i < sizeof(in_topics) / sizeof(in_topics[0]); i++)
        if (strcmp(topic, lk.topics[in_topics[i]]) == 0) {
            lk.in_topic = in_topics[i];
            lk.in_wanted = true;
        }
    if (!lk.in_wanted && net_chan_match(topic)) {
        lk.in_topic = KPROTO_T_APP_DOWN;
        lk.in_wanted = true;
    }
    if (!lk.in_wanted)
        uv_log("net: message on unexpected topic %.64s ignored", topic);
}

static void on_data(void *arg, const u8_t *data, u16_t len, u8_t flags)
{
    (void)arg;
    if (lk.in_wanted && !lk.in_overflow) {
        if (len > sizeof(lk.in) - lk.in_len)
            lk.in_overflow = true;
        else {
            memcpy(lk.in + lk.in_len, data, len);
            lk.in_len += len;
        }
    }
    lk.rx_bytes += len;
    if (!(flags & MQTT_DATA_FLAG_LAST))
        return;
    if (lk.rx_count++ == 0u)
        lk.rx_first_ms = port_ticks();
    if (lk.rx_count == lk.rx_mark)
        uv_log("net: received %lu messages (%lu bytes) in %lu ms since the first", (unsigned long)lk.rx_count,
               (unsigned long)lk.rx_bytes, (unsigned long)(port_ticks() - lk.rx_first_ms));
    if (!lk.in_wanted)
        return;
    if (lk.in_overflow)
        uv_log("net: %s message larger than %u bytes ignored", kproto_topic_info(lk.in_topic)->suffix,
               (unsigned)sizeof(lk.in));
    else
        handle_incoming();
    lk.in_wanted = false;
}

/* ------------------------------------------------------------------------------------------ */
/* Connection manager                                                                          */

static const char *status_name(mqtt_connection_status_t s)
{
    switch (s) {
    case MQTT_CONNECT_REFUSED_PROTOCOL_VERSION: return "refused: protocol version";
    case MQTT_CONNECT_REFUSED_IDENTIFIER: return "refused: client id";
    case MQTT_CONNECT_REFUSED_SERVER: return "refused: server unavailable";
    case MQTT_CONNECT_REFUSED_USERNAME_PASS: return "refused: credentials";
    case MQTT_CONNECT_REFUSED_NOT_AUTHORIZED_: return "refused: not authorized";
    case MQTT_CONNECT_TIMEOUT: return "timed out";
    default: return "closed";
    }
}

static void schedule_retry(void)
{
    uint32_t shift = lk.failures < 6u ? lk.failures : 6u;
    uint32_t d = BACKOFF_MIN_MS << shift;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    uint32_t r = 0;
    net_seed_random(NULL, (unsigned char *)&r, sizeof(r));
    d = d / 2u + r % (d / 2u + 1u);
    lk.failures++;
    lk.state = LINK_WAIT;
    lk.next_ms = port_ticks() + d;
    uv_log("net: next connection attempt in %lu ms", (unsigned long)d);
}

static void on_connection(mqtt_client_t *client, void *arg, mqtt_connection_status_t status)
{
    (void)arg;
    if (status == MQTT_CONNECT_ACCEPTED) {
        lk.state = LINK_UP;
        lk.failures = 0;
        lk.connects++;
        /* No Nagle: a debug packet, a command result or an update fetch must not wait for the
         * broker's delayed ACK of the previous segment (40 ms per exchange on Linux). */
        altcp_nagle_disable(client->conn);
        int tls_version = altcp_tls_negotiated_version(client->conn);
        uv_log("net: connected to broker %s (TLS 1.%d%s, server verified%s) in %lu ms, %lu ms after boot; "
               "handler stack used %lu bytes", lk.cfg.broker_name, tls_version == 0x0304 ? 3 : 2,
               altcp_tls_session_resumed(client->conn) ? " resumed" : "",
               lk.cfg.key_pem ? ", device certificate" : "",
               (unsigned long)(port_ticks() - lk.attempt_ms), (unsigned long)port_ticks(),
               (unsigned long)uv_net_stack_used());
        /* Subscribed before the hello: keeld sends pending commands as soon as it sees it. */
        for (uint32_t i = 0; i < sizeof(in_topics) / sizeof(in_topics[0]); i++) {
            kproto_topic_t t = in_topics[i];
            err_t err = mqtt_subscribe(&lk.client, lk.topics[t], 1u, NULL, NULL);
            if (err != ERR_OK)
                uv_log("net: subscribe to %s failed (lwIP error %d)", kproto_topic_info(t)->suffix, (int)err);
        }
        if (mqtt_subscribe(&lk.client, net_chan_down_filter(), 1u, NULL, NULL) != ERR_OK)
            uv_log("net: subscribe to app/down/+ failed: app channels receive nothing");
        net_chan_link_up();
        lk.logs.sent = false; /* resent on this connection, same msg_id */
        lk.crash.sent = false;
        publish_presence(true);
        publish_hello();
        net_upd_connected();
        lk.hb_next = port_ticks() + lk.hb_period;
        return;
    }
    uint32_t flags = 0;
    u8_t alert = 0;
    int tls_err = altcp_tls_config_last_error(lk.tls, &flags, &alert);
    /* A TLS-1.3-only client meets a TLS 1.2 broker as a protocol_version alert (OpenSSL) or a
     * ServerHello for 1.2 that Mbed TLS refuses. */
    bool no_tls13 = (tls_err == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE &&
                     alert == MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION) ||
                    tls_err == MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION;
    if (lk.state == LINK_UP) {
        uv_log("net: broker connection lost (%s)", status_name(status));
    } else if (flags != 0u) {
        /* The broker's certificate was refused: say which check failed (one line per reason). */
        char why[160];
        if (mbedtls_x509_crt_verify_info(why, sizeof(why), "", flags) < 0)
            why[0] = '\0';
        char *nl = strchr(why, '\n');
        if (nl)
            *nl = '\0';
        uv_log("net: broker %s refused: its certificate failed verification (flags 0x%02lx: %s)",
               lk.cfg.broker_name, (unsigned long)flags, why);
    } else if (no_tls13 && !lk.cfg.allow_tls12) {
        uv_log("net: broker %s refused: it does not speak TLS 1.3, which this fleet requires "
               "(TLS 1.2 only with the fleet setting --allow-tls12)", lk.cfg.broker_name);
    } else if (tls_err != 0) {
        uv_log("net: connection to broker %s failed: TLS handshake error -0x%04x (alert %u)",
               lk.cfg.broker_name, (unsigned)-tls_err, (unsigned)alert);
    } else {
        uv_log("net: connection to broker %s failed (%s)", lk.cfg.broker_name, status_name(status));
    }
    schedule_retry();
}

static void link_connect(void)
{
    struct mqtt_connect_client_info_t ci = {
        .client_id = lk.cfg.device_id,
        .keep_alive = KEEPALIVE_S,
        .will_topic = lk.topics[KPROTO_T_PRESENCE],
        .will_msg = (const char *)lk.will,
        .will_msg_len = lk.will_len,
        .will_qos = 1u,
        .will_retain = 1u,
        .tls_config = lk.tls,
    };
    lk.attempt_ms = port_ticks();
    lk.state = LINK_CONNECTING;
    err_t err = mqtt_client_connect(&lk.client, &lk.broker, lk.cfg.broker_port, on_connection, NULL, &ci);
    if (err != ERR_OK) {
        uv_log("net: cannot start a connection (lwIP error %d)", (int)err);
        schedule_retry();
        return;
    }
    mqtt_set_inpub_callback(&lk.client, on_publish, on_data, NULL);
}

bool net_link_init(const net_link_cfg_t *cfg)
{
    lk.cfg = *cfg;
    ip_addr_set_ip4_u32(&lk.broker, cfg->broker_ip);
    for (kproto_topic_t t = 0; t < KPROTO_T_COUNT; t++)
        if (!kproto_topic_info(t)->has_channel &&
            kproto_topic_build(t, cfg->device_id, NULL, lk.topics[t], sizeof(lk.topics[t])) != KERR_OK) {
            uv_log("net: device id \"%s\" makes no protocol v1 topic: network off", cfg->device_id);
            return false;
        }
    if (!net_chan_init(cfg->device_id))
        return false;
    lk.hb_period = port_arg_u32("net-heartbeat", HB_DEFAULT_MS);
    lk.rx_mark = port_arg_u32("net-rx-mark", 0u);
    if (lk.hb_period < 100u)
        lk.hb_period = 100u;
    /* The last will, set at CONNECT: Envelope{version, presence{online=false}}. No msg_id nor
     * boot: the broker sends it whenever the device vanishes. */
    static keel_v1_Envelope will_env; /* static: see tx_env */
    will_env.version = KPROTO_REVISION;
    will_env.which_body = keel_v1_Envelope_presence_tag;
    size_t wl = 0;
    if (kproto_encode(&will_env, lk.will, sizeof(lk.will), &wl) != KERR_OK)
        return false;
    lk.will_len = (uint16_t)wl;
    lk.boot = net_seed_boot();
    crash_acks_check();
    net_dbg_init(cfg->device_id, cfg->key_pem, cfg->key_len);

    if (cfg->key_pem)
        lk.tls = altcp_tls_create_config_client_2wayauth(cfg->ca_pem, cfg->ca_len, cfg->key_pem,
                                                         cfg->key_len, NULL, 0, cfg->cert_pem,
                                                         cfg->cert_len);
    else
        lk.tls = altcp_tls_create_config_client(cfg->ca_pem, cfg->ca_len);
    if (!lk.tls) {
        uv_log("net: the provisioned fleet CA or device credentials do not parse, or TLS could not "
               "be seeded: network off");
        return false;
    }
    altcp_tls_config_set_hostname(lk.tls, lk.cfg.broker_name);
    /* TLS 1.3 only unless the fleet allows 1.2: a broker (or a man in the middle) offering only
     * 1.2 is refused, not silently accepted. */
    if (altcp_tls_config_set_min_version(lk.tls, cfg->allow_tls12) != ERR_OK) {
        uv_log("net: TLS 1.3 is required but not compiled in: network off");
        return false;
    }
    if (cfg->allow_tls12)
        uv_log("net: TLS 1.2 allowed by the fleet setting");
    /* A reconnect offers the broker's last TLS 1.3 session ticket: no certificate chain, no
     * signature to verify, one round trip (ephemeral ECDHE kept). Kept in RAM only. */
    if (port_arg_u32("tls-resume", 1u) != 0u && altcp_tls_config_set_resumption(lk.tls, 1) != ERR_OK)
        uv_log("net: TLS session resumption is not compiled in");
    lk.state = LINK_IDLE;
    lk.enabled = true;
    return true;
}

void net_link_poll(bool ip_up)
{
    uint32_t now = port_ticks();
    if (lk.reboot_pending && (int32_t)(now - lk.reboot_at) >= 0)
        uv_reset(UV_RESET_REBOOT);
    notify_drops();
    net_dbg_poll(now, lk.state == LINK_UP);
    switch (lk.state) {
    case LINK_IDLE:
        if (ip_up)
            link_connect();
        break;
    case LINK_WAIT:
        if (ip_up && (int32_t)(now - lk.next_ms) >= 0)
            link_connect();
        break;
    case LINK_CONNECTING:
        if (now - lk.attempt_ms > CONNECT_TIMEOUT_MS) {
            uv_log("net: no CONNACK within %u ms", CONNECT_TIMEOUT_MS);
            mqtt_disconnect(&lk.client);
            schedule_retry();
        }
        break;
    case LINK_UP:
        if ((int32_t)(now - lk.hb_next) >= 0) {
            lk.hb_next = now + lk.hb_period;
            publish_heartbeat();
        }
        /* A changed hello, at most every HELLO_MIN_MS: an app restarting in a tight loop must
         * not fill the MQTT output with hellos and crowd out command results. */
        if ((app_state() != lk.hello_state || uv_ni.restarts != lk.hello_restarts ||
             app_version() != lk.hello_app || app_trial() != lk.hello_trial) &&
            (int32_t)(now - lk.hello_next) >= 0) {
            lk.hello_next = now + HELLO_MIN_MS;
            publish_hello(); /* retried each run while lwIP has no room for it */
        }
        send_logs(now);
        send_crash(now);
        net_chan_poll();
        net_upd_poll(now);
        break;
    }
}

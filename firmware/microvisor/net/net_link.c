/*
 * The link to the fleet broker: MQTT 3.1.1 over TLS 1.2 (lwIP's MQTT client over altcp_tls with
 * Mbed TLS), and the device side of protocol v1's presence, hello, heartbeat and commands.
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
 * Protocol: presence (retained, with the last will saying offline), hello and heartbeat are
 * encoded here as protobuf Envelopes of docs/protocol.md (server branch) with a minimal writer;
 * commands are decoded with a minimal reader that skips unknown fields. Once proto/ (nanopb
 * keel_proto) is on main, this file should use it instead.
 */
#include <string.h>

#include "keel/crash.h"
#include "lwip/altcp_tls.h"
#include "lwip/apps/mqtt.h"
#include "lwip/apps/mqtt_priv.h"
#include "mbedtls/x509_crt.h"
#include "net_seed.h"
#include "port.h"
#include "uv.h"
#include "uv_net.h"

#define BACKOFF_MIN_MS 500u
#define BACKOFF_MAX_MS 30000u
#define CONNECT_TIMEOUT_MS 20000u
#define KEEPALIVE_S 20u
#define HB_DEFAULT_MS 30000u
#define TOPIC_MAX 96u
#define MSG_MAX 256u
#define DONE_IDS 8u

/* protocol v1 (proto/keel.proto on the server branch): field numbers, never renumbered */
#define PROTO_REVISION 1u
#define ENV_VERSION 1u
#define ENV_MSG_ID 2u
#define ENV_BOOT 3u
#define ENV_TIME_MS 4u
#define ENV_HELLO 10u
#define ENV_PRESENCE 11u
#define ENV_HEARTBEAT 12u
#define ENV_RESULT 15u
#define ENV_COMMAND 16u
#define APP_STATE_NONE 1u
#define APP_STATE_RUNNING 2u
#define APP_STATE_BACKOFF 3u
#define CMD_PING 1u
#define CMD_RESTART_APP 2u
#define STATUS_OK 1u
#define STATUS_UNSUPPORTED 2u

typedef enum link_state { LINK_IDLE, LINK_CONNECTING, LINK_UP, LINK_WAIT } link_state_t;

typedef struct link {
    net_link_cfg_t cfg;
    ip_addr_t broker;
    struct altcp_tls_config *tls;
    mqtt_client_t client;
    link_state_t state;
    uint32_t attempt_ms;  /* when the current attempt started */
    uint32_t next_ms;     /* next attempt (WAIT) */
    uint32_t failures;    /* consecutive failed attempts */
    uint32_t connects;    /* successful connects this boot */
    uint32_t hb_period, hb_next;
    uint32_t msg_id;
    uint64_t done_ids[DONE_IDS];
    uint32_t done_n;
    char t_presence[TOPIC_MAX], t_hello[TOPIC_MAX], t_heartbeat[TOPIC_MAX], t_cmd[TOPIC_MAX],
        t_result[TOPIC_MAX];
    uint8_t will[32];
    uint16_t will_len;
    /* the incoming publish being assembled */
    uint8_t in[MSG_MAX];
    uint32_t in_len;
    bool in_cmd, in_overflow;
} link_t;

static link_t lk;

/* ------------------------------------------------------------------------------------------ */
/* Minimal protobuf writer/reader (proto3 wire format)                                          */

typedef struct pbw {
    uint8_t *p;
    uint32_t n, cap;
    bool ok;
} pbw_t;

static void pb_raw(pbw_t *w, const void *d, uint32_t len)
{
    if (!w->ok || len > w->cap - w->n) {
        w->ok = false;
        return;
    }
    memcpy(w->p + w->n, d, len);
    w->n += len;
}

static void pb_varint(pbw_t *w, uint64_t v)
{
    uint8_t b[10];
    uint32_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7Fu);
        v >>= 7;
        if (v)
            b[n] |= 0x80u;
        n++;
    } while (v);
    pb_raw(w, b, n);
}

/* proto3 leaves zero scalars out */
static void pb_uint(pbw_t *w, uint32_t field, uint64_t v)
{
    if (!v)
        return;
    pb_varint(w, (uint64_t)field << 3);
    pb_varint(w, v);
}

static void pb_bytes(pbw_t *w, uint32_t field, const void *d, uint32_t len)
{
    pb_varint(w, (uint64_t)field << 3 | 2u);
    pb_varint(w, len);
    pb_raw(w, d, len);
}

static bool pb_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64u; shift += 7u) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7Fu) << shift;
        if (!(b & 0x80u)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* Next field of a message: its number and wire type; for length-delimited fields also the
 * payload (data, len); varints in *v. Fixed-width fields are skipped over. */
static bool pb_next(const uint8_t **p, const uint8_t *end, uint32_t *field, uint64_t *v,
                    const uint8_t **data, uint32_t *len)
{
    uint64_t key;
    if (!pb_get_varint(p, end, &key) || (key >> 3) == 0u || (key >> 3) > 0x1FFFFFFFu)
        return false;
    *field = (uint32_t)(key >> 3);
    *data = NULL;
    *len = 0;
    *v = 0;
    switch (key & 7u) {
    case 0: return pb_get_varint(p, end, v);
    case 1: if (end - *p < 8) return false; *p += 8; return true;
    case 5: if (end - *p < 4) return false; *p += 4; return true;
    case 2: {
        uint64_t l;
        if (!pb_get_varint(p, end, &l) || l > (uint64_t)(end - *p))
            return false;
        *data = *p;
        *len = (uint32_t)l;
        *p += l;
        return true;
    }
    default: return false;
    }
}

/* Envelope header + body (already encoded) into out; returns the length, 0 if it does not fit. */
static uint32_t envelope(uint32_t body_field, const uint8_t *body, uint32_t body_len, uint8_t *out,
                         uint32_t cap)
{
    pbw_t w = {out, 0, cap, true};
    pb_uint(&w, ENV_VERSION, PROTO_REVISION);
    pb_uint(&w, ENV_MSG_ID, ++lk.msg_id);
    pb_uint(&w, ENV_BOOT, uv_ni.boots);
    pb_uint(&w, ENV_TIME_MS, uv_uptime_ms());
    pb_bytes(&w, body_field, body, body_len);
    return w.ok ? w.n : 0u;
}

static uint32_t app_state(void)
{
    if (!uv_app.valid)
        return APP_STATE_NONE;
    return uv_app_running() ? APP_STATE_RUNNING : APP_STATE_BACKOFF;
}

/* ------------------------------------------------------------------------------------------ */
/* Publishing                                                                                  */

static void publish(const char *topic, uint32_t body_field, const uint8_t *body, uint32_t body_len,
                    uint8_t qos, uint8_t retain)
{
    uint8_t msg[MSG_MAX];
    uint32_t n = envelope(body_field, body, body_len, msg, sizeof(msg));
    if (n == 0u) {
        uv_log("net: message for %s does not fit %u bytes: dropped", topic, MSG_MAX);
        return;
    }
    err_t err = mqtt_publish(&lk.client, topic, msg, (u16_t)n, qos, retain, NULL, NULL);
    if (err != ERR_OK)
        uv_log("net: publish on %s failed (lwIP error %d)", topic, (int)err);
}

static void publish_presence(bool online)
{
    uint8_t body[4];
    pbw_t w = {body, 0, sizeof(body), true};
    pb_uint(&w, 1u, online ? 1u : 0u);
    publish(lk.t_presence, ENV_PRESENCE, body, w.n, 1u, 1u);
}

static void publish_hello(void)
{
    uint8_t body[96];
    pbw_t w = {body, 0, sizeof(body), true};
    pb_uint(&w, 1u, UV_VERSION);
    pb_uint(&w, 2u, 1u); /* KEEL_API_VERSION */
    pb_uint(&w, 3u, uv_app.valid ? uv_app.hdr.version : 0u);
    pb_bytes(&w, 4u, "an505", 5u);
    pb_uint(&w, 6u, uv_uptime_ms());
    pb_uint(&w, 7u, app_state());
    pb_uint(&w, 8u, uv_ni.restarts);
    /* reboot is not implemented yet: it needs a reset cause of its own (uv.h) */
    static const uint8_t cmds[] = {CMD_PING, CMD_RESTART_APP};
    pb_bytes(&w, 9u, cmds, sizeof(cmds)); /* packed repeated enum */
    /* reset_reason (10) is left out: uv_ni.reset_cause is the *next* boot's announced cause, and
     * this boot's cause stays in main.c. */
    if (w.ok)
        publish(lk.t_hello, ENV_HELLO, body, w.n, 1u, 0u);
}

static void publish_heartbeat(void)
{
    uint8_t body[32];
    pbw_t w = {body, 0, sizeof(body), true};
    pb_uint(&w, 1u, uv_uptime_ms());
    pb_uint(&w, 2u, app_state());
    pb_uint(&w, 3u, uv_ni.restarts);
    publish(lk.t_heartbeat, ENV_HEARTBEAT, body, w.n, 0u, 0u);
}

static void publish_result(uint64_t id, uint32_t status, const char *detail)
{
    uint8_t body[96];
    pbw_t w = {body, 0, sizeof(body), true};
    pb_uint(&w, 1u, id);
    pb_uint(&w, 2u, status);
    if (detail[0])
        pb_bytes(&w, 3u, detail, (uint32_t)strlen(detail));
    pb_uint(&w, 4u, uv_uptime_ms());
    publish(lk.t_result, ENV_RESULT, body, w.n, 1u, 0u);
}

/* ------------------------------------------------------------------------------------------ */
/* Commands (cloud -> device)                                                                  */

static bool decode_command(const uint8_t *in, uint32_t len, uint64_t *out_id, uint64_t *out_kind)
{
    const uint8_t *p = in, *end = in + len, *cmd = NULL;
    uint32_t field, cmd_len = 0, n;
    uint64_t v;
    const uint8_t *d;
    while (p < end) {
        if (!pb_next(&p, end, &field, &v, &d, &n))
            return false;
        if (field == ENV_COMMAND) {
            if (!d)
                return false;
            cmd = d;
            cmd_len = n;
        }
    }
    if (!cmd)
        return false;
    *out_id = 0;
    *out_kind = 0;
    for (p = cmd, end = cmd + cmd_len; p < end;) {
        if (!pb_next(&p, end, &field, &v, &d, &n))
            return false;
        if (field == 1u)
            *out_id = v;
        else if (field == 2u)
            *out_kind = v;
    }
    return *out_id != 0u;
}

static void handle_command(const uint8_t *in, uint32_t len)
{
    uint64_t id, kind;
    if (!decode_command(in, len, &id, &kind)) {
        uv_log("net: malformed command (%lu bytes) ignored", (unsigned long)len);
        return;
    }
    for (uint32_t i = 0; i < DONE_IDS && i < lk.done_n; i++)
        if (lk.done_ids[i] == id) {
            uv_log("net: command %lu already executed this boot: ignored", (unsigned long)id);
            return;
        }
    lk.done_ids[lk.done_n++ % DONE_IDS] = id;
    switch (kind) {
    case CMD_PING:
        uv_log("net: ping (command %lu)", (unsigned long)id);
        publish_result(id, STATUS_OK, "");
        break;
    case CMD_RESTART_APP:
        uv_log("net: restart app (command %lu)", (unsigned long)id);
        publish_result(id, STATUS_OK, "");
        uv_sup_request_stop(KCRASH_RESTART);
        break;
    default:
        uv_log("net: command %lu of unknown kind %lu: unsupported", (unsigned long)id, (unsigned long)kind);
        publish_result(id, STATUS_UNSUPPORTED, "unknown command kind");
        break;
    }
}

static void on_publish(void *arg, const char *topic, u32_t tot_len)
{
    (void)arg;
    lk.in_cmd = strcmp(topic, lk.t_cmd) == 0;
    lk.in_len = 0;
    lk.in_overflow = tot_len > sizeof(lk.in);
    if (!lk.in_cmd)
        uv_log("net: message on unexpected topic %.64s ignored", topic);
}

static void on_data(void *arg, const u8_t *data, u16_t len, u8_t flags)
{
    (void)arg;
    if (lk.in_cmd && !lk.in_overflow) {
        if (len > sizeof(lk.in) - lk.in_len)
            lk.in_overflow = true;
        else {
            memcpy(lk.in + lk.in_len, data, len);
            lk.in_len += len;
        }
    }
    if (!(flags & MQTT_DATA_FLAG_LAST) || !lk.in_cmd)
        return;
    if (lk.in_overflow)
        uv_log("net: command larger than %u bytes ignored", MSG_MAX);
    else
        handle_command(lk.in, lk.in_len);
    lk.in_cmd = false;
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
    (void)client;
    (void)arg;
    if (status == MQTT_CONNECT_ACCEPTED) {
        lk.state = LINK_UP;
        lk.failures = 0;
        lk.connects++;
        uv_log("net: connected to broker %s (TLS, server verified%s) in %lu ms, %lu ms after boot; "
               "handler stack used %lu bytes", lk.cfg.broker_name,
               lk.cfg.key_pem ? ", device certificate" : "",
               (unsigned long)(port_ticks() - lk.attempt_ms), (unsigned long)port_ticks(),
               (unsigned long)uv_net_stack_used());
        err_t err = mqtt_subscribe(&lk.client, lk.t_cmd, 1u, NULL, NULL);
        if (err != ERR_OK)
            uv_log("net: subscribe failed (lwIP error %d)", (int)err);
        publish_presence(true);
        publish_hello();
        lk.hb_next = port_ticks() + lk.hb_period;
        return;
    }
    uint32_t flags = 0;
    int tls_err = altcp_tls_config_last_error(lk.tls, &flags);
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
    } else if (tls_err != 0) {
        uv_log("net: connection to broker %s failed: TLS handshake error -0x%04x", lk.cfg.broker_name,
               (unsigned)-tls_err);
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
        .will_topic = lk.t_presence,
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

static bool topic(char *out, const char *suffix)
{
    size_t n = (size_t)snprintf(out, TOPIC_MAX, "keel/v1/%s/%s", lk.cfg.device_id, suffix);
    return n < TOPIC_MAX;
}

bool net_link_init(const net_link_cfg_t *cfg)
{
    lk.cfg = *cfg;
    ip_addr_set_ip4_u32(&lk.broker, cfg->broker_ip);
    if (!topic(lk.t_presence, "presence") || !topic(lk.t_hello, "hello") ||
        !topic(lk.t_heartbeat, "heartbeat") || !topic(lk.t_cmd, "cmd") || !topic(lk.t_result, "result"))
        return false;
    lk.hb_period = port_arg_u32("net-heartbeat", HB_DEFAULT_MS);
    if (lk.hb_period < 100u)
        lk.hb_period = 100u;
    /* The last will, set at CONNECT: Envelope{version, presence{online=false}}. No msg_id: the
     * broker sends it whenever the device vanishes. */
    static const uint8_t will[] = {ENV_VERSION << 3, PROTO_REVISION, ENV_PRESENCE << 3 | 2u, 0u};
    memcpy(lk.will, will, sizeof(will));
    lk.will_len = sizeof(will);

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
    lk.state = LINK_IDLE;
    return true;
}

void net_link_poll(bool ip_up)
{
    uint32_t now = port_ticks();
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
        break;
    }
}

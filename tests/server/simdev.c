/*
 * simdev: a host-side simulated Keel device for keeld's black-box tests. It speaks protocol v1 with
 * the same code as the microvisor (keel_proto, keel_core's crash encoder) over a real libmosquitto
 * TLS connection with its own device certificate, like a device would.
 *
 *   simdev --port P --ca CA --cert CERT --key KEY --id ID [--boot N] [--commands LIST]
 *          [--app-sha HEX64] [--app-version PACKED] ACTION...
 *
 * Connects (last will: retained presence offline), publishes presence online and hello, then runs
 * the actions in order (--commands: the kinds its hello lists, default ping,restart,reboot) and exits 0, or non-zero with a message on the first failure:
 *   logs:N:TEXT      one batch of N entries "TEXT <i>" (N <= 8); waits for keeld's ack
 *   flood:N          N batches of 8 entries "flood <batch> <i>" back to back (N <= 100000), then
 *                    waits for keeld's ack of the last one (benchmarks: no wait per batch)
 *   crash            a usage-fault crash report (pc 0x10000abc); waits for keeld's ack
 *   crash:PC:LR:VER  the same with pc, lr (hex) and app version (packed, decimal) given
 *   serve:SECONDS    answer commands (ping/restart/reboot) until SECONDS pass
 *   serve-one:SECONDS  answer commands until one was answered (fails after SECONDS)
 *   dropped:K        the next log batch says K entries were dropped before it
 *   heartbeat        a heartbeat: app in back-off, 3 restarts, 7 log entries dropped
 *   hello-as:OTHER   publish a valid hello on OTHER's topic (an ACL test: must not arrive)
 *   raw:SUFFIX:HEX   publish raw bytes on keel/v1/<id>/SUFFIX (garbage tests)
 *   fetch:DEP:OFF:LEN  an UpdateFetch of deployment DEP naming an all-zero bundle hash (garbage tests)
 *   update:SECONDS   run the update agent until it reports the next final result (fails after
 *                    SECONDS); serve/serve-one run it too
 *   update-acked:SECONDS  run the update agent until keeld acked its latest status
 * The connection heals: after a broker restart simdev reconnects (1-4 s back-off), subscribes,
 * sends presence and hello again, and the update agent re-sends its unacked status and asks again
 * for missing chunks (protocol.md P1).
 *
 * With --flash DIR the device has an app slot and runs the real update engine (simdev_upd.h):
 *   --flash DIR          the board's store file (keel/board.h), kept across runs
 *   --board NAME         the board whose store and geometry it has (default: the default board)
 *   --install APP.kb     first write that bundle's region into the app slot (a factory install)
 *   --update-key PUB     trusted fleet signing keys (comma-separated PEM files)
 *   --device-type N      (default: the board's)   --uv-version X.Y.Z (default 1.2.3)
 *   --apply now|defer    the app applies as soon as staged (default), or leaves it to a force or
 *                        the deadline
 *   --trial confirm|crash  the new app confirms (default) or crashes on start (rolled back)
 *   debug-sessions:N:SECONDS  answer commands and debug sessions until N sessions have closed
 * Debug sessions (simdev_debug.h) are answered from the start with --debug-target PORT (an RSP
 * server on 127.0.0.1) and --debug-pub PUB.pem (the installed bundle's debug key; without it every
 * session is refused as for a bundle that has none).
 *   --pace MS            pause MS after each staged block (a slow link)
 *   --hello slot|image   the app region in the hello: the whole slot (default) or, like the
 *                        microvisor's first hello, the image's size and hash
 *   --lose-final N       the first N final statuses are lost on the way (never published)
 *   --repeat-status N    every status is published N times (as redeliveries would)
 * Every event is printed on stdout ("ack 3", "command 7 ping", ...).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "keel/app_image.h"
#include "keel/crash.h"
#include "keel/kproto.h"
#include "simdev_debug.h"

#include "simdev_upd.h"

#define WAIT_SLICE_MS 50
#define ACK_WAIT_MS 10000
#define CONNECT_WAIT_MS 10000

typedef struct sim {
    struct mosquitto *m;
    const char *id;
    uint32_t boot;
    atomic_uint msg_id;
    atomic_bool connected;
    atomic_int connect_rc;       /* -1 until CONNACK */
    atomic_uint connects;        /* CONNACKs accepted: > 1 after a reconnect */
    atomic_bool reconnected;     /* a reconnect whose presence and hello are still to be sent */
    atomic_uint acked_msg_id;    /* last acked msg_id */
    uint32_t dropped;            /* LogBatch.dropped of the next batch */
    const char *commands;        /* comma-separated kinds listed in hello */
    atomic_int answered;         /* commands answered */
    int served;                  /* answered when the last serve action ended (0 at start: a
                                    command keeld sends on the hello, before "connected", counts
                                    for the first serve-one) */
    atomic_uint sent, delivered; /* publishes queued / completed (PUBACK for QoS 1) */
    atomic_uint subscribed, subacked; /* SUBSCRIBEs sent / confirmed (SUBACK) */
    uint64_t start_ms;
    uint8_t app_sha[32];         /* region "app" of the hello (--app-sha; default 5a...) */
    uint32_t app_version;        /* hello's app version (--app-version; default 0.4.0) */
    sdu_t *upd;                  /* NULL without --flash */
} sim_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "simdev: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

/* Encode env (header filled here) and publish it on topic t; returns the msg_id used. */
static uint32_t publish_to(sim_t *s, const char *device, kproto_topic_t t, keel_v1_Envelope *env)
{
    char topic[KPROTO_TOPIC_MAX];
    uint8_t buf[KPROTO_ENVELOPE_MAX];
    size_t len = 0;
    const kproto_topic_info_t *ti = kproto_topic_info(t);

    env->version = KPROTO_REVISION;
    env->msg_id = atomic_fetch_add(&s->msg_id, 1u) + 1u;
    env->boot = s->boot;
    env->time_ms = mono_ms() - s->start_ms;
    if (kproto_topic_build(t, device, NULL, topic, sizeof(topic)) != KERR_OK ||
        kproto_encode(env, buf, sizeof(buf), &len) != KERR_OK) {
        die("cannot encode a message for '%s'", device);
    }
    int rc = mosquitto_publish(s->m, NULL, topic, (int)len, buf, ti->qos, ti->retained);
    if (rc == MOSQ_ERR_NO_CONN) {
        /* the broker is away: what must arrive (acked messages) is sent again after reconnecting */
        printf("publish-failed %s (not connected)\n", ti->suffix);
        return 0;
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        die("publish to %s failed", topic);
    }
    atomic_fetch_add(&s->sent, 1u);
    return env->msg_id;
}

static void answer(sim_t *s, const keel_v1_Command *c)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    printf("command %llu %s\n", (unsigned long long)c->id, kproto_command_name(c->kind));
    fflush(stdout);
    env.which_body = keel_v1_Envelope_result_tag;
    env.body.result.command_id = c->id;
    env.body.result.uptime_ms = mono_ms() - s->start_ms;
    if (c->kind == keel_v1_CommandKind_COMMAND_KIND_PING ||
        c->kind == keel_v1_CommandKind_COMMAND_KIND_RESTART_APP ||
        c->kind == keel_v1_CommandKind_COMMAND_KIND_REBOOT) {
        env.body.result.status = keel_v1_CommandStatus_COMMAND_STATUS_OK;
    } else {
        env.body.result.status = keel_v1_CommandStatus_COMMAND_STATUS_UNSUPPORTED;
        snprintf(env.body.result.detail, sizeof(env.body.result.detail), "simdev does not implement it");
    }
    publish_to(s, s->id, KPROTO_T_RESULT, &env);
    atomic_fetch_add(&s->answered, 1);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    sim_t *s = obj;
    char device[KIDENT_ID_MAX + 1], channel[KPROTO_CHANNEL_MAX + 1];
    kproto_topic_t t;
    keel_v1_Envelope env;

    if (kproto_topic_parse(msg->topic, device, &t, channel) != KERR_OK || strcmp(device, s->id) != 0) {
        printf("unexpected-topic %s\n", msg->topic);
        return;
    }
    if (kproto_decode(t, msg->payload, (size_t)msg->payloadlen, &env) != KERR_OK) {
        printf("bad-message %s\n", msg->topic);
        return;
    }
    bool update_cmd = t == KPROTO_T_CMD &&
                      (env.body.command.kind == keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY ||
                       env.body.command.kind == keel_v1_CommandKind_COMMAND_KIND_UPDATE_CANCEL);
    if (t == KPROTO_T_ACK) {
        printf("ack %u\n", env.body.ack.msg_id);
        atomic_store(&s->acked_msg_id, env.body.ack.msg_id);
        if (s->upd != NULL) {
            sdu_push(s->upd, t, &env); /* an ack of an UpdateStatus (protocol.md P1) */
        }
    } else if (s->upd != NULL && (t == KPROTO_T_UPDATE || t == KPROTO_T_UPDATE_DATA || update_cmd)) {
        sdu_push(s->upd, t, &env); /* the agent works in the main thread */
        if (update_cmd) {
            atomic_fetch_add(&s->answered, 1);
        }
    } else if (t == KPROTO_T_CMD) {
        answer(s, &env.body.command);
    } else if (t == KPROTO_T_DEBUG_DOWN) {
        simdbg_down(&env.body.debug);
    }
    fflush(stdout);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    sim_t *s = obj;

    atomic_fetch_add(&s->delivered, 1u);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int qos_count, const int *granted)
{
    sim_t *s = obj;

    atomic_fetch_add(&s->subacked, 1u);
}

static void subscribe_all(sim_t *s);

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    sim_t *s = obj;

    /* connected before connect_rc: the main thread reads connected once connect_rc is set */
    atomic_store(&s->connected, rc == 0);
    atomic_store(&s->connect_rc, rc);
    /* A reconnect (clean session): subscribe again at once; the main thread then sends presence
     * and hello (after the SUBSCRIBEs on the same connection, so nothing is missed). */
    if (rc == 0 && atomic_fetch_add(&s->connects, 1u) > 0) {
        printf("reconnected\n");
        fflush(stdout);
        subscribe_all(s);
        atomic_store(&s->reconnected, true);
    }
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    sim_t *s = obj;

    atomic_store(&s->connected, false);
    if (rc != 0) {
        printf("disconnected (%s)\n", mosquitto_strerror(rc));
        fflush(stdout);
    }
}

static bool wait_until(atomic_uint *v, uint32_t want, unsigned timeout_ms)
{
    for (uint64_t end = mono_ms() + timeout_ms; mono_ms() < end; sleep_ms(WAIT_SLICE_MS)) {
        if (atomic_load(v) == want) {
            return true;
        }
    }
    return false;
}

static void send_hello(sim_t *s, const char *device)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    keel_v1_Hello *h = &env.body.hello;

    env.which_body = keel_v1_Envelope_hello_tag;
    h->microvisor_version = (1u << 24) | (2u << 16) | 3u;
    h->api_version = 1;
    h->app_version = s->app_version;
    snprintf(h->board, sizeof(h->board), "sim");
    h->device_type = kboard_host()->device_type; /* the update agent's, when it runs (sdu_hello) */
    h->regions_count = 1;
    snprintf(h->regions[0].name, sizeof(h->regions[0].name), "microvisor");
    h->regions[0].size = 65536;
    memset(h->regions[0].sha256, 0xAB, 32);
    h->regions[0].version = h->microvisor_version;
    if (s->upd != NULL) {
        sdu_hello(s->upd, h);
    } else {
        h->regions_count = 2;
        snprintf(h->regions[1].name, sizeof(h->regions[1].name), "app");
        h->regions[1].size = 4096;
        memcpy(h->regions[1].sha256, s->app_sha, 32);
        h->regions[1].version = h->app_version;
    }
    h->uptime_ms = mono_ms() - s->start_ms;
    h->app_state = keel_v1_AppState_APP_STATE_RUNNING;
    h->restart_count = 2;
    char list[96];
    snprintf(list, sizeof(list), "%s", s->commands);
    for (char *save = NULL, *k = strtok_r(list, ",", &save); k != NULL && h->commands_count < 8;
         k = strtok_r(NULL, ",", &save)) {
        h->commands[h->commands_count++] = kproto_command_from_name(k);
    }
    publish_to(s, device, KPROTO_T_HELLO, &env);
}

static void act_logs(sim_t *s, const char *spec)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    char *end = NULL;
    unsigned long n = strtoul(spec, &end, 10);

    if (end == spec || *end != ':' || n == 0 || n > 8) {
        die("logs:N:TEXT needs 1 <= N <= 8, got '%s'", spec);
    }
    env.which_body = keel_v1_Envelope_logs_tag;
    env.body.logs.entries_count = (pb_size_t)n;
    env.body.logs.dropped = s->dropped;
    s->dropped = 0;
    for (unsigned i = 0; i < n; i++) {
        keel_v1_LogEntry *e = &env.body.logs.entries[i];
        e->uptime_ms = mono_ms() - s->start_ms;
        e->level = keel_v1_LogLevel_LOG_LEVEL_INFO;
        e->source = i == 0 ? keel_v1_LogSource_LOG_SOURCE_MICROVISOR : keel_v1_LogSource_LOG_SOURCE_APP;
        snprintf(e->text, sizeof(e->text), "%.200s %u", end + 1, i);
    }
    uint32_t id = publish_to(s, s->id, KPROTO_T_LOGS, &env);
    if (!wait_until(&s->acked_msg_id, id, ACK_WAIT_MS)) {
        die("no ack from keeld for log batch '%s'", spec);
    }
}

static void act_flood(sim_t *s, const char *spec)
{
    char *end = NULL;
    unsigned long n = strtoul(spec, &end, 10);
    uint32_t last = 0;

    if (end == spec || *end != '\0' || n == 0 || n > 100000) {
        die("flood:N needs 1 <= N <= 100000, got '%s'", spec);
    }
    for (unsigned long b = 0; b < n; b++) {
        keel_v1_Envelope env = keel_v1_Envelope_init_zero;
        env.which_body = keel_v1_Envelope_logs_tag;
        env.body.logs.entries_count = 8;
        for (unsigned i = 0; i < 8; i++) {
            keel_v1_LogEntry *e = &env.body.logs.entries[i];
            e->uptime_ms = mono_ms() - s->start_ms;
            e->level = keel_v1_LogLevel_LOG_LEVEL_INFO;
            e->source = keel_v1_LogSource_LOG_SOURCE_APP;
            snprintf(e->text, sizeof(e->text), "flood %lu %u", b, i);
        }
        last = publish_to(s, s->id, KPROTO_T_LOGS, &env);
    }
    /* keeld acks in the order it commits; the last ack means every batch is stored. */
    if (!wait_until(&s->acked_msg_id, last, 6u * ACK_WAIT_MS)) {
        die("no ack from keeld for the last batch of '%s'", spec);
    }
}

static void act_crash(sim_t *s, const char *spec)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    kcrash_report_t r;
    size_t len = 0;

    memset(&r, 0, sizeof(r));
    r.reason = KCRASH_USAGEFAULT;
    r.restart_count = 2;
    r.run_ms = 1234;
    r.app_version = (0u << 24) | (4u << 16);
    r.pc = 0x10000abcu;
    r.lr = 0x10000a01u;
    if (spec != NULL && sscanf(spec, "%x:%x:%u", &r.pc, &r.lr, &r.app_version) != 3) {
        die("crash:%s: want crash:PC:LR:VERSION (hex, hex, packed decimal)", spec);
    }
    r.sp = 0x20001f00u;
    r.xpsr = 0x01000000u;
    r.cfsr = 0x00010000u; /* UNDEFINSTR */
    r.stack_addr = r.sp;
    r.stack_len = 16;
    for (unsigned i = 0; i < r.stack_len; i++) {
        r.stack[i] = (uint8_t)i;
    }
    env.which_body = keel_v1_Envelope_crash_tag;
    if (kcrash_encode(&r, env.body.crash.report.bytes, sizeof(env.body.crash.report.bytes), &len) != KERR_OK) {
        die("%s", "kcrash_encode failed");
    }
    env.body.crash.report.size = (pb_size_t)len;
    uint32_t id = publish_to(s, s->id, KPROTO_T_CRASH, &env);
    if (!wait_until(&s->acked_msg_id, id, ACK_WAIT_MS)) {
        die("%s", "no ack from keeld for the crash report");
    }
}

static void act_heartbeat(sim_t *s)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    env.which_body = keel_v1_Envelope_heartbeat_tag;
    env.body.heartbeat.uptime_ms = mono_ms() - s->start_ms;
    env.body.heartbeat.app_state = keel_v1_AppState_APP_STATE_BACKOFF;
    env.body.heartbeat.restart_count = 3;
    env.body.heartbeat.log_dropped = 7;
    publish_to(s, s->id, KPROTO_T_HEARTBEAT, &env);
}

static void act_raw(sim_t *s, const char *spec)
{
    const char *colon = strchr(spec, ':');
    char topic[KPROTO_TOPIC_MAX + 64];
    uint8_t bytes[256];
    size_t n = 0;

    if (colon == NULL) {
        die("raw:SUFFIX:HEX, got '%s'", spec);
    }
    snprintf(topic, sizeof(topic), "keel/v1/%s/%.*s", s->id, (int)(colon - spec), spec);
    for (const char *h = colon + 1; h[0] && h[1] && n < sizeof(bytes); h += 2) {
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1) {
            die("bad hex in '%s'", spec);
        }
        bytes[n++] = (uint8_t)v;
    }
    atomic_fetch_add(&s->sent, 1u);
    if (mosquitto_publish(s->m, NULL, topic, (int)n, bytes, 1, false) != MOSQ_ERR_SUCCESS) {
        die("raw publish to %s failed", topic);
    }
}

static void publish_debug(void *ctx, const keel_v1_Debug *d)
{
    sim_t *s = ctx;
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    env.which_body = keel_v1_Envelope_debug_tag;
    env.body.debug = *d;
    publish_to(s, s->id, KPROTO_T_DEBUG_UP, &env);
}

static void act_debug_sessions(const char *spec)
{
    unsigned want = (unsigned)strtoul(spec, NULL, 10);
    const char *colon = strchr(spec, ':');
    unsigned secs = colon != NULL ? (unsigned)strtoul(colon + 1, NULL, 10) : 60u;

    for (uint64_t end = mono_ms() + secs * 1000u; mono_ms() < end; sleep_ms(WAIT_SLICE_MS)) {
        if (simdbg_closed() >= want) {
            return;
        }
    }
    die("fewer debug sessions than asked for closed within the time (%s)", spec);
}

static void send_presence(sim_t *s)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    env.which_body = keel_v1_Envelope_presence_tag;
    env.body.presence.online = true;
    publish_to(s, s->id, KPROTO_T_PRESENCE, &env);
}

/* Let the update agent work; a replaced app means a new hello (the device "rebooted"). After a
 * reconnect: presence and hello again, and the agent re-sends what was not acknowledged. */
static void poll_update(sim_t *s)
{
    if (atomic_exchange(&s->reconnected, false)) {
        send_presence(s);
        send_hello(s, s->id);
        if (s->upd != NULL) {
            sdu_reconnected(s->upd);
        }
    }
    if (s->upd != NULL && sdu_poll(s->upd)) {
        send_hello(s, s->id);
    }
}

/* The agent's pace: short slices so a block round trip is not stretched by our sleeping. */
static unsigned slice_ms(const sim_t *s)
{
    return s->upd != NULL ? 2u : WAIT_SLICE_MS;
}

static void act_serve(sim_t *s, const char *spec, bool until_one)
{
    unsigned secs = (unsigned)strtoul(spec, NULL, 10);
    int before = s->served;

    for (uint64_t end = mono_ms() + secs * 1000u; mono_ms() < end; sleep_ms(slice_ms(s))) {
        poll_update(s);
        if (until_one && atomic_load(&s->answered) > before) {
            poll_update(s); /* an update command is answered by the agent */
            s->served = atomic_load(&s->answered);
            return;
        }
    }
    s->served = atomic_load(&s->answered);
    if (until_one) {
        die("no command arrived within %s seconds", spec);
    }
}

static void act_update(sim_t *s, const char *spec)
{
    unsigned secs = (unsigned)strtoul(spec, NULL, 10);

    if (s->upd == NULL) {
        die("%s", "update: needs --flash DIR");
    }
    unsigned before = sdu_finals(s->upd);
    for (uint64_t end = mono_ms() + secs * 1000u; mono_ms() < end; sleep_ms(slice_ms(s))) {
        poll_update(s);
        if (sdu_finals(s->upd) > before) {
            return;
        }
    }
    die("no final update result within %s seconds", spec);
}

static void act_fetch(sim_t *s, const char *spec)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    unsigned long long dep = 0;
    unsigned off = 0, len = 0;

    if (sscanf(spec, "%llu:%u:%u", &dep, &off, &len) != 3) {
        die("fetch:DEP:OFF:LEN, got '%s'", spec);
    }
    env.which_body = keel_v1_Envelope_update_fetch_tag;
    env.body.update_fetch.deployment_id = dep;
    env.body.update_fetch.offset = off;
    env.body.update_fetch.length = len;
    publish_to(s, s->id, KPROTO_T_UPDATE_FETCH, &env);
}

static uint32_t sdu_send(void *ctx, kproto_topic_t t, keel_v1_Envelope *env)
{
    sim_t *s = ctx;
    return publish_to(s, s->id, t, env);
}

/* update-acked:SECONDS: run the agent until keeld acked its latest status (P1). */
static void act_update_acked(sim_t *s, const char *spec)
{
    unsigned secs = (unsigned)strtoul(spec, NULL, 10);

    if (s->upd == NULL) {
        die("%s", "update-acked: needs --flash DIR");
    }
    for (uint64_t end = mono_ms() + secs * 1000u; mono_ms() < end; sleep_ms(slice_ms(s))) {
        poll_update(s);
        if (sdu_status_acked(s->upd)) {
            return;
        }
    }
    die("keeld did not ack the latest update status within %s seconds", spec);
}

static void subscribe_all(sim_t *s)
{
    static const char *const subs[] = {"cmd", "ack", "debug/down", "update", "update/data"};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (s->upd == NULL && strncmp(subs[i], "update", 6) == 0) {
            continue;
        }
        char sub[KPROTO_TOPIC_MAX + 8];
        snprintf(sub, sizeof(sub), "keel/v1/%s/%s", s->id, subs[i]);
        atomic_fetch_add(&s->subscribed, 1u);
        mosquitto_subscribe(s->m, NULL, sub, 1);
    }
}

/* "1.2.3" for an option, or exit. */
static uint32_t version_arg(const char *opt, const char *v)
{
    uint32_t out = 0;
    if (kapp_version_parse(v, &out) != KERR_OK) {
        die("bad version for %s", opt);
    }
    return out;
}

int main(int argc, char **argv)
{
    sim_t s;
    const char *ca = NULL, *cert = NULL, *key = NULL, *debug_pub = NULL;
    int port = 0, a = 1, debug_target = 0;

    setvbuf(stdout, NULL, _IOLBF, 0); /* every event line reaches the tests' waits at once */
    memset(&s, 0, sizeof(s));
    s.boot = 1;
    s.commands = "ping,restart,reboot";
    memset(s.app_sha, 0x5A, sizeof(s.app_sha));
    s.app_version = (0u << 24) | (4u << 16) | 0u;
    atomic_init(&s.connect_rc, -1);
    sdu_config_t uc = {.uv_version = (1u << 24) | (2u << 16) | 3u,
                       .send = sdu_send, .ctx = &s};
    for (; a + 1 < argc && strncmp(argv[a], "--", 2) == 0; a += 2) {
        const char *v = argv[a + 1];
        if (strcmp(argv[a], "--port") == 0) port = atoi(v);
        else if (strcmp(argv[a], "--ca") == 0) ca = v;
        else if (strcmp(argv[a], "--cert") == 0) cert = v;
        else if (strcmp(argv[a], "--key") == 0) key = v;
        else if (strcmp(argv[a], "--id") == 0) s.id = v;
        else if (strcmp(argv[a], "--boot") == 0) s.boot = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[a], "--commands") == 0) s.commands = v;
        else if (strcmp(argv[a], "--app-version") == 0) s.app_version = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[a], "--app-sha") == 0) {
            for (int i = 0; i < 32; i++) {
                unsigned b = 0;
                if (strlen(v) != 64 || sscanf(v + 2 * i, "%2x", &b) != 1) {
                    die("--app-sha wants 64 hex digits, not '%s'", v);
                }
                s.app_sha[i] = (uint8_t)b;
            }
        }
        else if (strcmp(argv[a], "--debug-pub") == 0) debug_pub = v;
        else if (strcmp(argv[a], "--debug-target") == 0) debug_target = atoi(v);
        else if (strcmp(argv[a], "--flash") == 0) uc.dir = v;
        else if (strcmp(argv[a], "--install") == 0) uc.install = v;
        else if (strcmp(argv[a], "--board") == 0) {
            if ((uc.board = kboard_find(v)) == NULL) {
                die("--board: unknown board '%s'", v);
            }
        }
        else if (strcmp(argv[a], "--update-key") == 0) uc.keys = v;
        else if (strcmp(argv[a], "--device-type") == 0) uc.device_type = (uint32_t)strtoul(v, NULL, 0);
        else if (strcmp(argv[a], "--uv-version") == 0) uc.uv_version = version_arg(argv[a], v);
        else if (strcmp(argv[a], "--apply") == 0) uc.defer = strcmp(v, "defer") == 0;
        else if (strcmp(argv[a], "--trial") == 0) uc.crash_on_trial = strcmp(v, "crash") == 0;
        else if (strcmp(argv[a], "--pace") == 0) uc.pace_ms = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(argv[a], "--hello") == 0) uc.hello_image = strcmp(v, "image") == 0;
        else if (strcmp(argv[a], "--lose-final") == 0) uc.lose_finals = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(argv[a], "--repeat-status") == 0) uc.repeat_status = (unsigned)strtoul(v, NULL, 10);
        else die("unknown option %s", argv[a]);
    }
    if (port <= 0 || !ca || !cert || !key || !s.id || kident_check_id(s.id) != KERR_OK) {
        die("%s", "usage: simdev --port P --ca CA --cert CERT --key KEY --id ID [--boot N] ACTION...");
    }
    s.start_ms = mono_ms();
    simdbg_init(s.id, key, debug_pub, debug_target, publish_debug, &s);
    if (uc.dir != NULL) {
        s.upd = sdu_open(&uc);
        if (strcmp(s.commands, "ping,restart,reboot") == 0) {
            s.commands = "ping,restart,reboot,update_apply,update_cancel";
        }
    }
    mosquitto_lib_init();
    s.m = mosquitto_new(s.id, true, &s);
    mosquitto_tls_set(s.m, ca, NULL, cert, key, NULL);
    mosquitto_int_option(s.m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_callback_set(s.m, on_connect);
    mosquitto_disconnect_callback_set(s.m, on_disconnect);
    mosquitto_reconnect_delay_set(s.m, 1, 4, true);
    mosquitto_message_callback_set(s.m, on_message);
    mosquitto_publish_callback_set(s.m, on_publish);
    mosquitto_subscribe_callback_set(s.m, on_subscribe);

    /* Last will: retained presence offline, pre-encoded like the microvisor does at CONNECT. */
    char topic[KPROTO_TOPIC_MAX];
    uint8_t will[16];
    size_t wlen = 0;
    keel_v1_Envelope wenv = keel_v1_Envelope_init_zero;
    wenv.version = KPROTO_REVISION;
    wenv.boot = s.boot;
    wenv.which_body = keel_v1_Envelope_presence_tag;
    wenv.body.presence.online = false;
    kproto_topic_build(KPROTO_T_PRESENCE, s.id, NULL, topic, sizeof(topic));
    kproto_encode(&wenv, will, sizeof(will), &wlen);
    mosquitto_will_set(s.m, topic, (int)wlen, will, 1, true);

    if (mosquitto_connect(s.m, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(s.m) != MOSQ_ERR_SUCCESS) {
        die("cannot connect to 127.0.0.1 (id %s)", s.id);
    }
    for (uint64_t end = mono_ms() + CONNECT_WAIT_MS; atomic_load(&s.connect_rc) < 0 && mono_ms() < end;) {
        sleep_ms(WAIT_SLICE_MS);
    }
    if (!atomic_load(&s.connected)) {
        die("the broker did not accept device '%s'", s.id);
    }
    subscribe_all(&s);
    /* "connected" (what the tests wait for before they make keeld send something) means the
     * broker has confirmed every subscription: a command or debug frame sent right after it is
     * delivered, not dropped for a SUBSCRIBE still on its way. */
    if (!wait_until(&s.subacked, atomic_load(&s.subscribed), CONNECT_WAIT_MS)) {
        die("the broker did not confirm the subscriptions of device '%s'", s.id);
    }

    send_presence(&s);
    send_hello(&s, s.id);
    printf("connected %s\n", s.id);
    fflush(stdout);

    for (; a < argc; a++) {
        const char *act = argv[a];
        if (strncmp(act, "logs:", 5) == 0) act_logs(&s, act + 5);
        else if (strncmp(act, "flood:", 6) == 0) act_flood(&s, act + 6);
        else if (strcmp(act, "crash") == 0) act_crash(&s, NULL);
        else if (strncmp(act, "crash:", 6) == 0) act_crash(&s, act + 6);
        else if (strcmp(act, "heartbeat") == 0) act_heartbeat(&s);
        else if (strncmp(act, "dropped:", 8) == 0) s.dropped = (uint32_t)strtoul(act + 8, NULL, 10);
        else if (strncmp(act, "serve:", 6) == 0) act_serve(&s, act + 6, false);
        else if (strncmp(act, "serve-one:", 10) == 0) act_serve(&s, act + 10, true);
        else if (strncmp(act, "hello-as:", 9) == 0) send_hello(&s, act + 9);
        else if (strncmp(act, "raw:", 4) == 0) act_raw(&s, act + 4);
        else if (strncmp(act, "debug-sessions:", 15) == 0) act_debug_sessions(act + 15);
        else if (strncmp(act, "update:", 7) == 0) act_update(&s, act + 7);
        else if (strncmp(act, "update-acked:", 13) == 0) act_update_acked(&s, act + 13);
        else if (strncmp(act, "fetch:", 6) == 0) act_fetch(&s, act + 6);
        else die("unknown action '%s'", act);
        printf("done %s\n", act);
        fflush(stdout);
    }
    /* Everything published reaches the broker before we leave. After a reconnect, QoS 1 messages
     * in flight on the old connection may never be confirmed (clean session); what had to arrive
     * was acked end to end by keeld (update statuses, logs, crashes). */
    bool all = false;
    for (uint64_t end = mono_ms() + ACK_WAIT_MS; !all && mono_ms() < end; sleep_ms(WAIT_SLICE_MS)) {
        all = atomic_load(&s.delivered) >= atomic_load(&s.sent);
    }
    if (!all && atomic_load(&s.connects) <= 1) {
        die("%s", "the broker did not acknowledge every publish");
    }
    /* A clean disconnect does not fire the will; the retained "online" stays, as for a device
     * that is merely quiet. Tests that need "offline" kill the process instead. */
    mosquitto_disconnect(s.m);
    mosquitto_loop_stop(s.m, false);
    mosquitto_destroy(s.m);
    mosquitto_lib_cleanup();
    sdu_close(s.upd);
    return 0;
}

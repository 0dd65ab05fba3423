/* keeld's MQTT client: subscriptions, device message ingest, acks and command publishing. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "ingest.h"
#include "kd_log.h"
#include "mqconn.h"
#include "keel/crash.h"
#include "keel/kproto.h"
#include "mqtt.h"

struct mq {
    const kd_config_t *cfg;
    store_t *store;
    kd_notify_t *logs_notify;
    ota_t *ota;
    /* One connection per broker; a device's messages to it go over kproto_broker_index's. */
    mqconn_t *conn[MQ_MAX_BROKERS];
    uint32_t nconn;
    atomic_uint msg_id;              /* Envelope.msg_id of what keeld sends */
    pthread_mutex_t flush_lock;      /* one flush at a time within this process */
    dbgrelay_t *debug;               /* debug/up -> the client streams of this instance */
    /* Device messages are handled off the network threads, in batches (ingest.h). Worker-only: */
    ingest_t *ingest;
    bool in_batch;                   /* acks wait for the batch's commit */
    bool flush_after;                /* publish pending commands after the batch (lock order) */
    size_t nacks, acks_cap;
    struct pending_ack {
        char device[KIDENT_ID_MAX + 1];
        uint32_t boot, msg_id;
    } *acks;
    mq_counters_t ctr;               /* GET /metrics (atomics where other threads write) */
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Encode env and publish it on topic t of device (channel: only for the app topics). */
static int send_env_to(mq_t *mq, kproto_topic_t t, const char *device, const char *channel,
                       keel_v1_Envelope *env)
{
    char topic[KPROTO_TOPIC_MAX];
    uint8_t buf[KPROTO_ENVELOPE_MAX];
    size_t len = 0;
    const kproto_topic_info_t *ti = kproto_topic_info(t);

    env->version = KPROTO_REVISION;
    env->msg_id = atomic_fetch_add(&mq->msg_id, 1u) + 1u;
    env->time_ms = (uint64_t)now_ms();
    if (kproto_topic_build(t, device, channel, topic, sizeof(topic)) != KERR_OK ||
        kproto_encode(env, buf, sizeof(buf), &len) != KERR_OK) {
        KD_ERROR("cannot encode a message for device '%s'", device);
        return -1;
    }
    mqconn_t *c = mq->conn[kproto_broker_index(device, mq->nconn)];
    int rc = mqconn_publish(c, topic, buf, len, ti->qos, ti->retained);
    if (rc != MOSQ_ERR_SUCCESS) {
        KD_WARN("publish to %s failed: %s", topic, mosquitto_strerror(rc));
        return -1;
    }
    atomic_fetch_add(&mq->ctr.msgs_out, 1u);
    atomic_fetch_add(&mq->ctr.bytes_out, (uint64_t)len);
    return 0;
}

int mq_send(mq_t *mq, kproto_topic_t t, const char *device, keel_v1_Envelope *env)
{
    return send_env_to(mq, t, device, NULL, env);
}

static void publish_ack(mq_t *mq, const char *device, uint32_t boot, uint32_t msg_id)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    env.which_body = keel_v1_Envelope_ack_tag;
    env.body.ack.boot = boot;
    env.body.ack.msg_id = msg_id;
    mq_send(mq, KPROTO_T_ACK, device, &env);
}

/* Ack what the store accepted: at once outside a batch, after the batch's commit inside one. */
static void send_ack(mq_t *mq, const char *device, const keel_v1_Envelope *of)
{
    if (!mq->in_batch) {
        publish_ack(mq, device, of->boot, of->msg_id);
        return;
    }
    if (mq->nacks == mq->acks_cap) {
        size_t cap = mq->acks_cap ? mq->acks_cap * 2 : 64;
        struct pending_ack *a = realloc(mq->acks, cap * sizeof(*a));
        if (a == NULL) {
            KD_ERROR("out of memory for an ack to '%s': the device will send its message again", device);
            return;
        }
        mq->acks = a;
        mq->acks_cap = cap;
    }
    struct pending_ack *a = &mq->acks[mq->nacks++];
    snprintf(a->device, sizeof(a->device), "%s", device);
    a->boot = of->boot;
    a->msg_id = of->msg_id;
}

static void on_crash(mq_t *mq, const char *device, const keel_v1_Envelope *env)
{
    kcrash_report_t r;
    const keel_v1_Crash *c = &env->body.crash;
    kerr_t err = kcrash_decode(c->report.bytes, c->report.size, &r);
    int64_t id = 0;
    char reason[64];

    /* Keep even an undecodable report: the bytes are evidence, and the device will not resend. */
    if (err != KERR_OK) {
        KD_WARN("device '%s' sent a crash report that does not decode (%s); stored as invalid",
                device, kerr_str(err));
        snprintf(reason, sizeof(reason), "invalid: %s", kerr_str(err));
        memset(&r, 0, sizeof(r));
    } else {
        snprintf(reason, sizeof(reason), "%s", kcrash_reason_name(r.reason));
    }
    if (mq->store->ops->crash_add(mq->store, device, now_ms(), env, reason, r.pc, r.lr,
                                  r.app_version, &id) == STORE_OK) {
        KD_INFO("device '%s': crash report %lld (%s, pc 0x%08x)", device, (long long)id, reason, r.pc);
        send_ack(mq, device, env);
    }
}

static void on_logs(mq_t *mq, const char *device, const keel_v1_Envelope *env)
{
    int added = 0;

    if (mq->store->ops->logs_add(mq->store, device, now_ms(), env, &added) == STORE_OK) {
        if (added > 0) {
            kd_notify_bump(mq->logs_notify);
        }
        send_ack(mq, device, env);
    }
}

/* App channel data (app/up/<channel>): stored, then followers are woken. No Ack: the broker's
 * PUBACK is what the device waits for (at least once; a redelivery is stored once). */
static void on_channel(mq_t *mq, const char *device, const char *channel, const keel_v1_Envelope *env)
{
    const keel_v1_ChannelData *cd = &env->body.channel;
    int64_t id = 0;

    if (mq->store->ops->channel_add(mq->store, device, channel, "up", now_ms(), env->boot, env->msg_id,
                                    cd->data.bytes, cd->data.size, &id) == STORE_OK && id != 0) {
        KD_DEBUG("device '%s': %u bytes on channel '%s' (%lld)", device, (unsigned)cd->data.size, channel,
                 (long long)id);
        kd_notify_bump(mq->logs_notify);
    }
}

static void on_result(mq_t *mq, const char *device, const keel_v1_Envelope *env)
{
    const keel_v1_CommandResult *r = &env->body.result;
    store_rc_t rc = mq->store->ops->command_result(mq->store, device, now_ms(), r);

    if (rc == STORE_ENOTFOUND) {
        KD_WARN("device '%s' answered command %llu, which is not an open command of that device; ignored",
                device, (unsigned long long)r->command_id);
    } else if (rc == STORE_OK) {
        KD_INFO("device '%s': command %llu -> %s", device, (unsigned long long)r->command_id,
                kproto_status_name(r->status));
    }
}

/* One device message, in the worker (inside the batch's transaction when there is one). */
static void handle(mq_t *mq, const ingest_msg_t *msg)
{
    const char *device = msg->device, *channel = msg->channel;
    kproto_topic_t t = msg->t;
    keel_v1_Envelope env;

    KD_DEBUG("device '%s': %s, %zu bytes", device, kproto_topic_info(t)->suffix, msg->len);
    kerr_t err = kproto_decode(t, msg->payload, msg->len, &env);
    if (err != KERR_OK) {
        KD_WARN("device '%s': %zu-byte message on %s ignored: %s", device, msg->len,
                kproto_topic_info(t)->suffix,
                err == KERR_INVAL ? "its body is not the one this topic carries (newer device?)"
                                  : "not a valid protocol v1 envelope");
        return;
    }
    switch (t) {
    case KPROTO_T_HELLO:
        if (mq->store->ops->device_hello(mq->store, device, now_ms(), &env) == STORE_OK) {
            KD_INFO("device '%s': hello (app %s, %u restarts)", device,
                    kproto_app_state_name(env.body.hello.app_state), env.body.hello.restart_count);
            /* The device subscribes to its command topic before its hello: send what it missed. */
            if (mq->store->ops->commands_requeue(mq->store, device) == STORE_OK) {
                /* After the batch: mq_flush_commands takes flush_lock and then the store's, the
                 * opposite order of a batch (which holds the store's). */
                mq->flush_after = true;
            }
            ota_on_hello(mq->ota, device, &env.body.hello, msg->queued_us);
        }
        break;
    case KPROTO_T_UPDATE_FETCH:
        ota_on_fetch(mq->ota, device, &env.body.update_fetch, msg->queued_us);
        break;
    case KPROTO_T_UPDATE_STATUS:
        if (ota_on_status(mq->ota, device, &env.body.update_status)) {
            send_ack(mq, device, &env); /* only after the commit (protocol.md P1) */
        }
        break;
    case KPROTO_T_PRESENCE:
        mq->store->ops->device_presence(mq->store, device, now_ms(), env.body.presence.online);
        KD_INFO("device '%s': %s", device, env.body.presence.online ? "online" : "offline");
        if (!env.body.presence.online) {
            dbgrelay_device_offline(mq->debug, device);
        }
        break;
    case KPROTO_T_HEARTBEAT:
        mq->store->ops->device_heartbeat(mq->store, device, now_ms(), &env);
        break;
    case KPROTO_T_LOGS:
        on_logs(mq, device, &env);
        break;
    case KPROTO_T_CRASH:
        on_crash(mq, device, &env);
        break;
    case KPROTO_T_RESULT:
        on_result(mq, device, &env);
        break;
    case KPROTO_T_APP_UP:
        on_channel(mq, device, channel, &env);
        break;
    default:
        KD_DEBUG("device '%s': %zu bytes on %s: not handled by this keeld", device, msg->len,
                 kproto_topic_info(t)->suffix);
        break;
    }
}

/*
 * The worker's batch: one store transaction for all of it (group commit), then the acks. When
 * the commit fails, nothing of it is acked; the messages are handled again one by one, each in
 * its own transaction, so one that cannot be stored does not take the others with it (and a
 * device whose message is still not stored sends it again: P1).
 */
static void handle_batch(void *ctx, ingest_msg_t *msgs, size_t n)
{
    mq_t *mq = ctx;
    int64_t t0 = ingest_now_us();
    bool batched = mq->store->ops->batch_begin(mq->store) == STORE_OK;

    mq->in_batch = batched;
    mq->nacks = 0;
    for (size_t i = 0; i < n; i++) {
        handle(mq, &msgs[i]);
    }
    ota_flush(mq->ota); /* bytes served, counted in memory, written with the batch */
    if (batched) {
        mq->in_batch = false;
        if (mq->store->ops->batch_end(mq->store, true) == STORE_OK) {
            for (size_t i = 0; i < mq->nacks; i++) {
                publish_ack(mq, mq->acks[i].device, mq->acks[i].boot, mq->acks[i].msg_id);
            }
            atomic_fetch_add(&mq->ctr.commits, 1u);
        } else {
            KD_WARN("a batch of %zu device messages did not commit; handling them one by one", n);
            atomic_fetch_add(&mq->ctr.commit_failures, 1u);
            for (size_t i = 0; i < n; i++) {
                handle(mq, &msgs[i]);
            }
            ota_flush(mq->ota);
        }
        mq->nacks = 0;
    }
    if (mq->flush_after) {
        mq->flush_after = false;
        mq_flush_commands(mq);
    }
    atomic_fetch_add(&mq->ctr.batch_us, (uint64_t)(ingest_now_us() - t0));
}

/* The network thread: parse the topic and queue (handled by the worker). debug/up is relayed at
 * once: it touches no database and a debugger waits for it. */
static void on_message(void *obj, const struct mosquitto_message *msg)
{
    mq_t *mq = obj;
    char device[KIDENT_ID_MAX + 1];
    char channel[KPROTO_CHANNEL_MAX + 1];
    kproto_topic_t t;

    atomic_fetch_add(&mq->ctr.msgs_in, 1u);
    atomic_fetch_add(&mq->ctr.bytes_in, (uint64_t)msg->payloadlen);
    if (kproto_topic_parse(msg->topic, device, &t, channel) != KERR_OK ||
        kproto_topic_info(t)->to_device) {
        KD_WARN("ignored a message on unexpected topic '%s'", msg->topic);
        return;
    }
    /* An empty retained message clears a topic (e.g. a decommissioned device's presence). */
    if (msg->payloadlen == 0) {
        return;
    }
    if (t == KPROTO_T_DEBUG_UP) {
        keel_v1_Envelope env;
        if (kproto_decode(t, msg->payload, (size_t)msg->payloadlen, &env) == KERR_OK) {
            dbgrelay_deliver(mq->debug, device, &env.body.debug);
        } else {
            KD_WARN("device '%s': %d-byte debug message ignored: not a valid Debug envelope", device,
                    msg->payloadlen);
        }
        return;
    }
    if (mq->ingest == NULL) {
        /* No worker (the fuzz fixture, tests/fuzz/keeld_fixture.c): handled at once, in a batch of
         * its own, the way the worker would. */
        ingest_msg_t one = {.t = t, .len = (size_t)msg->payloadlen, .payload = msg->payload,
                            .queued_us = ingest_now_us()};
        snprintf(one.device, sizeof(one.device), "%s", device);
        snprintf(one.channel, sizeof(one.channel), "%s", channel);
        handle_batch(mq, &one, 1);
        return;
    }
    ingest_push(mq->ingest, t, device, channel, msg->payload, (size_t)msg->payloadlen);
}

/* "host:port,host:port" into hosts/ports; the count, or -1 with a message in err. */
static int parse_brokers(const kd_config_t *cfg, char hosts[][256], long *ports, char *err, size_t errcap)
{
    char list[sizeof(cfg->mqtt_brokers)];
    int n = 0;

    if (cfg->mqtt_brokers[0] == '\0') {
        snprintf(hosts[0], 256, "%s", cfg->mqtt_host);
        ports[0] = cfg->mqtt_port;
        return 1;
    }
    snprintf(list, sizeof(list), "%s", cfg->mqtt_brokers);
    for (char *save = NULL, *b = strtok_r(list, ",", &save); b != NULL; b = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(b, ':'), *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (n == MQ_MAX_BROKERS || colon == NULL || colon == b || (size_t)(colon - b) >= 256 ||
            end == colon + 1 || *end != '\0' || port < 1 || port > 65535) {
            snprintf(err, errcap, "--mqtt-brokers: '%s' is not HOST:PORT (at most %d brokers, "
                     "comma-separated)", b, MQ_MAX_BROKERS);
            return -1;
        }
        snprintf(hosts[n], 256, "%.*s", (int)(colon - b), b);
        ports[n++] = port;
    }
    if (n == 0) {
        snprintf(err, errcap, "--mqtt-brokers names no broker");
        return -1;
    }
    return n;
}

mq_t *mq_start(const kd_config_t *cfg, store_t *store, kd_notify_t *logs_notify, ota_t *ota,
               char *err, size_t errcap)
{
    static char hosts[MQ_MAX_BROKERS][256];
    long ports[MQ_MAX_BROKERS];
    int n = parse_brokers(cfg, hosts, ports, err, errcap);
    mq_t *mq = n > 0 ? calloc(1, sizeof(*mq)) : NULL;

    if (mq == NULL) {
        if (n > 0) {
            snprintf(err, errcap, "out of memory");
        }
        return NULL;
    }
    mq->cfg = cfg;
    mq->store = store;
    mq->logs_notify = logs_notify;
    mq->ota = ota;
    /* Seed msg ids from the clock so a restarted keeld does not reuse recent ones. */
    atomic_init(&mq->msg_id, (unsigned)(now_ms() & 0x7FFFFFFF));
    pthread_mutex_init(&mq->flush_lock, NULL);
    mq->debug = dbgrelay_new();
    mq->ingest = ingest_start((size_t)cfg->ingest_queue, (size_t)cfg->ingest_batch, handle_batch, mq);
    if (mq->debug == NULL || mq->ingest == NULL) {
        snprintf(err, errcap, "out of memory");
        ingest_stop(mq->ingest);
        dbgrelay_free(mq->debug);
        pthread_mutex_destroy(&mq->flush_lock);
        free(mq);
        return NULL;
    }
    mosquitto_lib_init();
    for (int i = 0; i < n; i++) {
        /* One persistent session per broker: the client id alone when there is one broker. */
        char id[160];
        if (n == 1) {
            snprintf(id, sizeof(id), "%s", cfg->mqtt_client_id);
        } else {
            snprintf(id, sizeof(id), "%s-%d", cfg->mqtt_client_id, i);
        }
        mq->conn[i] = mqconn_start(cfg, hosts[i], ports[i], id, on_message, mq, err, errcap);
        if (mq->conn[i] == NULL) {
            mq_stop(mq);
            return NULL;
        }
        mq->nconn = (uint32_t)i + 1u;
    }
    return mq;
}

void mq_stop(mq_t *mq)
{
    if (mq == NULL) {
        return;
    }
    for (uint32_t i = 0; i < mq->nconn; i++) {
        mqconn_stop(mq->conn[i]); /* no message arrives after this */
    }
    /* What was queued is still handled (and committed); its acks and answers can no longer go
     * out (the clients exist, disconnected), so devices send those messages again to the next
     * keeld (P1). */
    ingest_stop(mq->ingest);
    for (uint32_t i = 0; i < mq->nconn; i++) {
        mqconn_free(mq->conn[i]);
    }
    free(mq->acks);
    pthread_mutex_destroy(&mq->flush_lock);
    dbgrelay_free(mq->debug);
    free(mq);
    mosquitto_lib_cleanup();
}

bool mq_connected(mq_t *mq)
{
    for (uint32_t i = 0; i < mq->nconn; i++) {
        if (!mqconn_connected(mq->conn[i])) {
            return false;
        }
    }
    return mq->nconn > 0;
}

void mq_health(mq_t *mq, mq_health_t *out)
{
    memset(out, 0, sizeof(*out));
    out->connected = mq->nconn > 0;
    out->nbrokers = (int)mq->nconn;
    for (uint32_t i = 0; i < mq->nconn; i++) {
        mqconn_health_t h;
        mqconn_health(mq->conn[i], &h);
        snprintf(out->brokers[i].name, sizeof(out->brokers[i].name), "%s", mqconn_name(mq->conn[i]));
        out->brokers[i].connected = h.connected;
        out->reconnects += h.reconnects;
        if (!h.connected) {
            /* the longest outage and its reason stand for the whole */
            if (out->connected || h.down_ms > out->down_ms) {
                out->down_ms = h.down_ms;
                snprintf(out->last_error, sizeof(out->last_error), "%s: %s", mqconn_name(mq->conn[i]),
                         h.last_error);
            }
            out->connected = false;
        }
    }
}

void mq_flush_commands(mq_t *mq)
{
    if (!mq_connected(mq)) {
        return;
    }
    pthread_mutex_lock(&mq->flush_lock);
    json_t *pending = mq->store->ops->commands_pending(mq->store, 100);
    size_t i;
    json_t *c;
    json_array_foreach(pending, i, c) {
        int64_t id = json_integer_value(json_object_get(c, "id"));
        const char *device = json_string_value(json_object_get(c, "device"));
        keel_v1_Envelope env = keel_v1_Envelope_init_zero;

        if (mq->store->ops->command_mark_sent(mq->store, id, now_ms()) != STORE_OK) {
            continue; /* another instance claimed it, or the store failed: not ours to send */
        }
        env.which_body = keel_v1_Envelope_command_tag;
        env.body.command.id = (uint64_t)id;
        env.body.command.kind = kproto_command_from_name(json_string_value(json_object_get(c, "kind")));
        if (mq_send(mq, KPROTO_T_CMD, device, &env) == 0) {
            KD_INFO("command %lld (%s) sent to '%s'", (long long)id,
                    kproto_command_name(env.body.command.kind), device);
        }
    }
    json_decref(pending);
    pthread_mutex_unlock(&mq->flush_lock);
}

int mq_send_channel(mq_t *mq, const char *device, const char *channel, const uint8_t *data, size_t len,
                    uint64_t *out_msg_id)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    if (len > sizeof(env.body.channel.data.bytes)) {
        return -1;
    }
    env.which_body = keel_v1_Envelope_channel_tag;
    memcpy(env.body.channel.data.bytes, data, len);
    env.body.channel.data.size = (pb_size_t)len;
    int rc = send_env_to(mq, KPROTO_T_APP_DOWN, device, channel, &env);
    *out_msg_id = env.msg_id;
    return rc;
}

dbgrelay_t *mq_debug_relay(mq_t *mq)
{
    return mq->debug;
}

void mq_get_counters(mq_t *mq, mq_counters_t *out, ingest_stats_t *queue)
{
    out->msgs_in = atomic_load(&mq->ctr.msgs_in);
    out->msgs_out = atomic_load(&mq->ctr.msgs_out);
    out->bytes_in = atomic_load(&mq->ctr.bytes_in);
    out->bytes_out = atomic_load(&mq->ctr.bytes_out);
    out->commits = atomic_load(&mq->ctr.commits);
    out->commit_failures = atomic_load(&mq->ctr.commit_failures);
    out->batch_us = atomic_load(&mq->ctr.batch_us);
    ingest_get_stats(mq->ingest, queue);
}

int mq_publish_debug(mq_t *mq, const char *device, const keel_v1_Debug *d)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    if (!mq_connected(mq)) {
        return -1;
    }
    env.which_body = keel_v1_Envelope_debug_tag;
    env.body.debug = *d;
    return mq_send(mq, KPROTO_T_DEBUG_DOWN, device, &env);
}

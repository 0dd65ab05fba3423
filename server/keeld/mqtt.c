/* keeld's MQTT client: subscriptions, device message ingest, acks and command publishing. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "kd_log.h"
#include "keel/crash.h"
#include "keel/kproto.h"
#include "mqtt.h"

struct mq {
    struct mosquitto *m;
    const kd_config_t *cfg;
    store_t *store;
    kd_notify_t *logs_notify;
    ota_t *ota;
    atomic_bool connected;           /* connected AND every subscription acknowledged */
    atomic_int subs_pending;         /* SUBACKs still expected after this connect */
    atomic_uint msg_id;              /* Envelope.msg_id of what keeld sends */
    pthread_mutex_t flush_lock;      /* one flush at a time within this process */
    dbgrelay_t *debug;               /* debug/up -> the client streams of this instance */
    /* The network thread (ours, not mosquitto_loop_start's: libmosquitto's loop returns for good
     * on a protocol or TLS error, e.g. a broker restarted under it; ours reconnects after any). */
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    atomic_bool thread_done;
    atomic_bool connack_ok;          /* a CONNACK accepted since the last back-off reset */
    atomic_llong down_since_ms;      /* when the connection was last lost (0: up) */
    atomic_uint reconnects;          /* loop restarts after an error */
    pthread_mutex_t err_lock;
    char last_error[128];            /* why the connection was last lost */
    pthread_mutex_t wake_lock;       /* the back-off sleep, cut short by mq_stop */
    pthread_cond_t wake;
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
    int rc = mosquitto_publish(mq->m, NULL, topic, (int)len, buf, ti->qos, ti->retained);
    if (rc != MOSQ_ERR_SUCCESS) {
        KD_WARN("publish to %s failed: %s", topic, mosquitto_strerror(rc));
        return -1;
    }
    return 0;
}

int mq_send(mq_t *mq, kproto_topic_t t, const char *device, keel_v1_Envelope *env)
{
    return send_env_to(mq, t, device, NULL, env);
}

static void send_ack(mq_t *mq, const char *device, const keel_v1_Envelope *of)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    env.which_body = keel_v1_Envelope_ack_tag;
    env.body.ack.boot = of->boot;
    env.body.ack.msg_id = of->msg_id;
    mq_send(mq, KPROTO_T_ACK, device, &env);
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

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    mq_t *mq = obj;
    char device[KIDENT_ID_MAX + 1];
    char channel[KPROTO_CHANNEL_MAX + 1];
    kproto_topic_t t;
    keel_v1_Envelope env;

    if (kproto_topic_parse(msg->topic, device, &t, channel) != KERR_OK ||
        kproto_topic_info(t)->to_device) {
        KD_WARN("ignored a message on unexpected topic '%s'", msg->topic);
        return;
    }
    /* An empty retained message clears a topic (e.g. a decommissioned device's presence). */
    if (msg->payloadlen == 0) {
        return;
    }
    KD_DEBUG("device '%s': %s, %d bytes", device, kproto_topic_info(t)->suffix, msg->payloadlen);
    kerr_t err = kproto_decode(t, msg->payload, (size_t)msg->payloadlen, &env);
    if (err != KERR_OK) {
        KD_WARN("device '%s': %d-byte message on %s ignored: %s", device, msg->payloadlen,
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
                mq_flush_commands(mq);
            }
            ota_on_hello(mq->ota, device, &env.body.hello);
        }
        break;
    case KPROTO_T_UPDATE_FETCH:
        ota_on_fetch(mq->ota, device, &env.body.update_fetch);
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
    case KPROTO_T_DEBUG_UP:
        dbgrelay_deliver(mq->debug, device, &env.body.debug);
        break;
    default:
        KD_DEBUG("device '%s': %d bytes on %s: not handled by this keeld", device, msg->payloadlen,
                 kproto_topic_info(t)->suffix);
        break;
    }
}

static void subscribe_all(mq_t *mq)
{
    char filter[160];
    int n = 0;

    for (unsigned t = 0; t < KPROTO_T_COUNT; t++) {
        n += kproto_topic_info((kproto_topic_t)t)->to_device ? 0 : 1;
    }
    atomic_store(&mq->subs_pending, n);

    for (unsigned t = 0; t < KPROTO_T_COUNT; t++) {
        const kproto_topic_info_t *ti = kproto_topic_info((kproto_topic_t)t);
        if (ti->to_device) {
            continue;
        }
        /*
         * Retained presence is not delivered on shared subscriptions, so presence is a plain
         * subscription in every instance (its store update is idempotent); the rest is shared.
         * debug/up is plain too: only the instance holding the client's stream can relay it, and
         * the others drop it.
         */
        if (ti->retained || t == KPROTO_T_DEBUG_UP) {
            snprintf(filter, sizeof(filter), "%s+/%s", KPROTO_PREFIX, ti->suffix);
        } else {
            snprintf(filter, sizeof(filter), "$share/%s/%s+/%s%s", mq->cfg->mqtt_group, KPROTO_PREFIX,
                     ti->suffix, ti->has_channel ? "/+" : "");
        }
        int rc = mosquitto_subscribe(mq->m, NULL, filter, ti->qos ? 1 : 0);
        if (rc != MOSQ_ERR_SUCCESS) {
            KD_ERROR("subscribe %s: %s", filter, mosquitto_strerror(rc));
        }
    }
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    mq_t *mq = obj;

    if (rc != 0) {
        KD_ERROR("broker refused keeld's connection: %s (check keeld's certificate and the broker ACL)",
                 mosquitto_connack_string(rc));
        return;
    }
    KD_INFO("connected to the broker at %s:%ld as '%s'", mq->cfg->mqtt_host, mq->cfg->mqtt_port,
            mq->cfg->mqtt_client_id);
    atomic_store(&mq->connack_ok, true);
    subscribe_all(mq);
}

/* "connected" is reported only once the broker has every subscription: before that, a device
 * message could be published and never reach keeld. */
static void on_subscribe(struct mosquitto *m, void *obj, int mid, int qos_count, const int *granted)
{
    mq_t *mq = obj;

    for (int i = 0; i < qos_count; i++) {
        if (granted[i] > 2) {
            KD_ERROR("the broker refused one of keeld's subscriptions (ACL?): keeld's identity needs "
                     "readwrite on keel/v1/#");
            return;
        }
    }
    if (atomic_fetch_sub(&mq->subs_pending, 1) == 1) {
        KD_INFO("subscribed to every device topic");
        atomic_store(&mq->down_since_ms, 0);
        atomic_store(&mq->connected, true);
    }
}

static void set_error(mq_t *mq, const char *why)
{
    pthread_mutex_lock(&mq->err_lock);
    snprintf(mq->last_error, sizeof(mq->last_error), "%s", why);
    pthread_mutex_unlock(&mq->err_lock);
}

static void mark_down(mq_t *mq)
{
    long long zero = 0;
    atomic_compare_exchange_strong(&mq->down_since_ms, &zero, (long long)now_ms());
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    mq_t *mq = obj;

    mark_down(mq);
    if (atomic_exchange(&mq->connected, false)) {
        set_error(mq, mosquitto_strerror(rc));
        KD_WARN("disconnected from the broker (%s); reconnecting", mosquitto_strerror(rc));
    }
}

/* Sleep ms, or less when mq_stop wakes us. */
static void backoff_sleep(mq_t *mq, long ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mq->wake_lock);
    while (!atomic_load(&mq->stopping) &&
           pthread_cond_timedwait(&mq->wake, &mq->wake_lock, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&mq->wake_lock);
}

/*
 * The network thread. mosquitto_loop_forever reconnects by itself after a lost connection, but
 * returns for good on a protocol, TLS or other "fatal" error (a broker restart can produce one):
 * then we reconnect ourselves, after a back-off (1 s doubling to 30 s, jittered to [d/2, d] so
 * several keeld do not come back in step), reset by the next accepted CONNACK. The loop ends only
 * when mq_stop asks.
 */
static void *net_thread(void *arg)
{
    mq_t *mq = arg;
    long delay = 1000;
    unsigned seed = (unsigned)now_ms();

    while (!atomic_load(&mq->stopping)) {
        int rc = mosquitto_loop_forever(mq->m, 1000, 1);
        if (atomic_load(&mq->stopping)) {
            break;
        }
        mark_down(mq);
        atomic_store(&mq->connected, false);
        if (atomic_exchange(&mq->connack_ok, false)) {
            delay = 1000;
        }
        char why[128];
        snprintf(why, sizeof(why), "%s%s%s", mosquitto_strerror(rc), rc == MOSQ_ERR_ERRNO ? ": " : "",
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : "");
        set_error(mq, why);
        long wait = delay / 2 + (long)(rand_r(&seed) % (unsigned)(delay / 2 + 1));
        atomic_fetch_add(&mq->reconnects, 1u);
        KD_WARN("MQTT connection ended (%s); reconnecting in %ld ms", why, wait);
        backoff_sleep(mq, wait);
        delay = delay * 2 > 30000 ? 30000 : delay * 2;
        if (atomic_load(&mq->stopping)) {
            break;
        }
        rc = mosquitto_reconnect(mq->m);
        if (rc != MOSQ_ERR_SUCCESS) {
            /* loop_forever retries a failed connect by itself (with its own delay) */
            KD_DEBUG("reconnect: %s", mosquitto_strerror(rc));
        }
    }
    atomic_store(&mq->thread_done, true);
    return NULL;
}

mq_t *mq_start(const kd_config_t *cfg, store_t *store, kd_notify_t *logs_notify, ota_t *ota,
               char *err, size_t errcap)
{
    mq_t *mq = calloc(1, sizeof(*mq));
    int rc;

    if (mq == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    mq->cfg = cfg;
    mq->store = store;
    mq->logs_notify = logs_notify;
    mq->ota = ota;
    /* Seed msg ids from the clock so a restarted keeld does not reuse recent ones. */
    atomic_init(&mq->msg_id, (unsigned)(now_ms() & 0x7FFFFFFF));
    atomic_init(&mq->connected, false);
    atomic_init(&mq->subs_pending, 0);
    atomic_init(&mq->stopping, false);
    atomic_init(&mq->thread_done, false);
    atomic_init(&mq->connack_ok, false);
    atomic_init(&mq->down_since_ms, now_ms());
    atomic_init(&mq->reconnects, 0u);
    snprintf(mq->last_error, sizeof(mq->last_error), "not connected yet");
    pthread_mutex_init(&mq->flush_lock, NULL);
    pthread_mutex_init(&mq->err_lock, NULL);
    pthread_mutex_init(&mq->wake_lock, NULL);
    pthread_cond_init(&mq->wake, NULL);
    mq->debug = dbgrelay_new();
    if (mq->debug == NULL) {
        snprintf(err, errcap, "out of memory");
        pthread_mutex_destroy(&mq->flush_lock);
        free(mq);
        return NULL;
    }
    mosquitto_lib_init();
    mq->m = mosquitto_new(cfg->mqtt_client_id, false, mq);
    if (mq->m == NULL) {
        snprintf(err, errcap, "cannot create the MQTT client (client id '%s')", cfg->mqtt_client_id);
        goto fail;
    }
    mosquitto_int_option(mq->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    /* Our own network thread (net_thread): publishes from other threads are queued for it. */
    mosquitto_threaded_set(mq->m, true);
    /* No Nagle: a debug packet or command waits for nothing (see scripts/stack.sh). */
    mosquitto_int_option(mq->m, MOSQ_OPT_TCP_NODELAY, 1);
    rc = mosquitto_tls_set(mq->m, cfg->mqtt_ca, NULL, cfg->mqtt_cert, cfg->mqtt_key, NULL);
    if (rc == MOSQ_ERR_SUCCESS) {
        /* Verify the broker's certificate and its name (1 = SSL_VERIFY_PEER). */
        rc = mosquitto_tls_opts_set(mq->m, 1, "tlsv1.2", NULL);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errcap, "TLS set-up failed (%s): check --mqtt-ca/--mqtt-cert/--mqtt-key are PEM "
                 "files and the key matches the certificate", mosquitto_strerror(rc));
        goto fail;
    }
    mosquitto_connect_callback_set(mq->m, on_connect);
    mosquitto_disconnect_callback_set(mq->m, on_disconnect);
    mosquitto_message_callback_set(mq->m, on_message);
    mosquitto_subscribe_callback_set(mq->m, on_subscribe);
    mosquitto_reconnect_delay_set(mq->m, 1, 10, true);
    rc = mosquitto_connect_async(mq->m, cfg->mqtt_host, (int)cfg->mqtt_port, (int)cfg->mqtt_keepalive);
    if (rc != MOSQ_ERR_SUCCESS) {
        /* Not fatal: the loop thread keeps retrying, and the API works meanwhile. */
        KD_WARN("broker %s:%ld not reachable yet (%s); will keep trying", cfg->mqtt_host,
                cfg->mqtt_port, mosquitto_strerror(rc));
    }
    if (pthread_create(&mq->thread, NULL, net_thread, mq) != 0) {
        snprintf(err, errcap, "cannot start the MQTT thread");
        goto fail;
    }
    mq->thread_started = true;
    return mq;
fail:
    if (mq->m != NULL) {
        mosquitto_destroy(mq->m);
    }
    pthread_mutex_destroy(&mq->flush_lock);
    pthread_mutex_destroy(&mq->err_lock);
    pthread_mutex_destroy(&mq->wake_lock);
    pthread_cond_destroy(&mq->wake);
    dbgrelay_free(mq->debug);
    free(mq);
    mosquitto_lib_cleanup();
    return NULL;
}

void mq_stop(mq_t *mq)
{
    if (mq == NULL) {
        return;
    }
    atomic_store(&mq->connected, false); /* a requested disconnect is not worth a warning */
    pthread_mutex_lock(&mq->wake_lock);
    atomic_store(&mq->stopping, true);
    pthread_cond_broadcast(&mq->wake);
    pthread_mutex_unlock(&mq->wake_lock);
    /* loop_forever returns on it; again if a reconnect was under way when it came (bounded). */
    for (int i = 0; i < 100 && mq->thread_started && !atomic_load(&mq->thread_done); i++) {
        mosquitto_disconnect(mq->m);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (mq->thread_started) {
        pthread_join(mq->thread, NULL);
    }
    mosquitto_destroy(mq->m);
    pthread_mutex_destroy(&mq->flush_lock);
    pthread_mutex_destroy(&mq->err_lock);
    pthread_mutex_destroy(&mq->wake_lock);
    pthread_cond_destroy(&mq->wake);
    dbgrelay_free(mq->debug);
    free(mq);
    mosquitto_lib_cleanup();
}

bool mq_connected(mq_t *mq)
{
    return atomic_load(&mq->connected);
}

void mq_health(mq_t *mq, mq_health_t *out)
{
    long long since = atomic_load(&mq->down_since_ms);

    out->connected = atomic_load(&mq->connected);
    out->down_ms = (out->connected || since == 0) ? 0 : now_ms() - since;
    out->reconnects = atomic_load(&mq->reconnects);
    pthread_mutex_lock(&mq->err_lock);
    snprintf(out->last_error, sizeof(out->last_error), "%s", mq->last_error);
    pthread_mutex_unlock(&mq->err_lock);
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

/* One broker connection of keeld: TLS client, network thread, reconnects, subscriptions (mqconn.h). */
#include "mqconn.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kd_log.h"
#include "kd_time.h"
#include "keel/kproto.h"

struct mqconn {
    struct mosquitto *m;
    const kd_config_t *cfg;
    char host[256];
    long port;
    char client_id[160];
    char name[280];
    mqconn_msg_fn on_msg;
    void *ctx;
    atomic_bool connected;           /* connected AND every subscription acknowledged */
    atomic_int subs_pending;         /* SUBACKs still expected after this connect */
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
    pthread_mutex_t wake_lock;       /* the back-off sleep, cut short by mqconn_stop */
    pthread_cond_t wake;
};

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    mqconn_t *c = obj;

    c->on_msg(c->ctx, msg);
}

static void subscribe_all(mqconn_t *c)
{
    char filter[160];
    int n = 0;

    for (unsigned t = 0; t < KPROTO_T_COUNT; t++) {
        n += kproto_topic_info((kproto_topic_t)t)->to_device ? 0 : 1;
    }
    atomic_store(&c->subs_pending, n);

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
            snprintf(filter, sizeof(filter), "$share/%s/%s+/%s%s", c->cfg->mqtt_group, KPROTO_PREFIX,
                     ti->suffix, ti->has_channel ? "/+" : "");
        }
        int rc = mosquitto_subscribe(c->m, NULL, filter, ti->qos ? 1 : 0);
        if (rc != MOSQ_ERR_SUCCESS) {
            KD_ERROR("%s: subscribe %s: %s", c->name, filter, mosquitto_strerror(rc));
        }
    }
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    mqconn_t *c = obj;

    if (rc != 0) {
        KD_ERROR("broker %s refused keeld's connection: %s (check keeld's certificate and the broker "
                 "ACL)", c->name, mosquitto_connack_string(rc));
        return;
    }
    KD_INFO("connected to the broker at %s as '%s'", c->name, c->client_id);
    atomic_store(&c->connack_ok, true);
    subscribe_all(c);
}

/* "connected" is reported only once the broker has every subscription: before that, a device
 * message could be published and never reach keeld. */
static void on_subscribe(struct mosquitto *m, void *obj, int mid, int qos_count, const int *granted)
{
    mqconn_t *c = obj;

    for (int i = 0; i < qos_count; i++) {
        if (granted[i] > 2) {
            KD_ERROR("the broker %s refused one of keeld's subscriptions (ACL?): keeld's identity "
                     "needs readwrite on keel/v1/#", c->name);
            return;
        }
    }
    if (atomic_fetch_sub(&c->subs_pending, 1) == 1) {
        KD_INFO("subscribed to every device topic at %s", c->name);
        atomic_store(&c->down_since_ms, 0);
        atomic_store(&c->connected, true);
    }
}

static void set_error(mqconn_t *c, const char *why)
{
    pthread_mutex_lock(&c->err_lock);
    snprintf(c->last_error, sizeof(c->last_error), "%s", why);
    pthread_mutex_unlock(&c->err_lock);
}

static void mark_down(mqconn_t *c)
{
    long long zero = 0;
    atomic_compare_exchange_strong(&c->down_since_ms, &zero, (long long)kd_wall_ms());
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    mqconn_t *c = obj;

    mark_down(c);
    if (atomic_exchange(&c->connected, false)) {
        set_error(c, mosquitto_strerror(rc));
        KD_WARN("disconnected from the broker %s (%s); reconnecting", c->name, mosquitto_strerror(rc));
    }
}

/* Sleep ms, or less when mqconn_stop wakes us. */
static void backoff_sleep(mqconn_t *c, long ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->wake_lock);
    while (!atomic_load(&c->stopping) &&
           pthread_cond_timedwait(&c->wake, &c->wake_lock, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&c->wake_lock);
}

/*
 * The network thread. mosquitto_loop_forever reconnects by itself after a lost connection, but
 * returns for good on a protocol, TLS or other "fatal" error (a broker restart can produce one):
 * then we reconnect ourselves, after a back-off (1 s doubling to 30 s, jittered to [d/2, d] so
 * several keeld do not come back in step), reset by the next accepted CONNACK. The loop ends only
 * when mqconn_stop asks.
 */
static void *net_thread(void *arg)
{
    mqconn_t *c = arg;
    long delay = 1000;
    unsigned seed = (unsigned)kd_wall_ms() ^ (unsigned)(uintptr_t)c;

    while (!atomic_load(&c->stopping)) {
        int rc = mosquitto_loop_forever(c->m, 1000, 1);
        if (atomic_load(&c->stopping)) {
            break;
        }
        mark_down(c);
        atomic_store(&c->connected, false);
        if (atomic_exchange(&c->connack_ok, false)) {
            delay = 1000;
        }
        char why[128];
        snprintf(why, sizeof(why), "%s%s%s", mosquitto_strerror(rc), rc == MOSQ_ERR_ERRNO ? ": " : "",
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : "");
        set_error(c, why);
        long wait = delay / 2 + (long)(rand_r(&seed) % (unsigned)(delay / 2 + 1));
        atomic_fetch_add(&c->reconnects, 1u);
        KD_WARN("MQTT connection to %s ended (%s); reconnecting in %ld ms", c->name, why, wait);
        backoff_sleep(c, wait);
        delay = delay * 2 > 30000 ? 30000 : delay * 2;
        if (atomic_load(&c->stopping)) {
            break;
        }
        rc = mosquitto_reconnect(c->m);
        if (rc != MOSQ_ERR_SUCCESS) {
            /* loop_forever retries a failed connect by itself (with its own delay) */
            KD_DEBUG("reconnect to %s: %s", c->name, mosquitto_strerror(rc));
        }
    }
    atomic_store(&c->thread_done, true);
    return NULL;
}

static void destroy(mqconn_t *c)
{
    if (c->m != NULL) {
        mosquitto_destroy(c->m);
    }
    pthread_mutex_destroy(&c->err_lock);
    pthread_mutex_destroy(&c->wake_lock);
    pthread_cond_destroy(&c->wake);
    free(c);
}

mqconn_t *mqconn_start(const kd_config_t *cfg, const char *host, long port, const char *client_id,
                       mqconn_msg_fn on_msg, void *ctx, char *err, size_t errcap)
{
    mqconn_t *c = calloc(1, sizeof(*c));
    int rc;

    if (c == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    c->cfg = cfg;
    snprintf(c->host, sizeof(c->host), "%s", host);
    c->port = port;
    snprintf(c->client_id, sizeof(c->client_id), "%s", client_id);
    snprintf(c->name, sizeof(c->name), "%s:%ld", host, port);
    c->on_msg = on_msg;
    c->ctx = ctx;
    atomic_init(&c->connected, false);
    atomic_init(&c->subs_pending, 0);
    atomic_init(&c->stopping, false);
    atomic_init(&c->thread_done, false);
    atomic_init(&c->connack_ok, false);
    atomic_init(&c->down_since_ms, kd_wall_ms());
    atomic_init(&c->reconnects, 0u);
    snprintf(c->last_error, sizeof(c->last_error), "not connected yet");
    pthread_mutex_init(&c->err_lock, NULL);
    pthread_mutex_init(&c->wake_lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    c->m = mosquitto_new(c->client_id, false, c);
    if (c->m == NULL) {
        snprintf(err, errcap, "cannot create the MQTT client (client id '%s')", c->client_id);
        destroy(c);
        return NULL;
    }
    mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    /* Our own network thread (net_thread): publishes from other threads are queued for it. */
    mosquitto_threaded_set(c->m, true);
    /* No Nagle: a debug packet or command waits for nothing (see scripts/stack.sh). */
    mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
    rc = mosquitto_tls_set(c->m, cfg->mqtt_ca, NULL, cfg->mqtt_cert, cfg->mqtt_key, NULL);
    if (rc == MOSQ_ERR_SUCCESS) {
        /* Verify the broker's certificate and its name (1 = SSL_VERIFY_PEER). */
        rc = mosquitto_tls_opts_set(c->m, 1, "tlsv1.2", NULL);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errcap, "TLS set-up failed (%s): check --mqtt-ca/--mqtt-cert/--mqtt-key are PEM "
                 "files and the key matches the certificate", mosquitto_strerror(rc));
        destroy(c);
        return NULL;
    }
    mosquitto_connect_callback_set(c->m, on_connect);
    mosquitto_disconnect_callback_set(c->m, on_disconnect);
    mosquitto_message_callback_set(c->m, on_message);
    mosquitto_subscribe_callback_set(c->m, on_subscribe);
    mosquitto_reconnect_delay_set(c->m, 1, 10, true);
    rc = mosquitto_connect_async(c->m, c->host, (int)port, (int)cfg->mqtt_keepalive);
    if (rc != MOSQ_ERR_SUCCESS) {
        /* Not fatal: the thread keeps retrying, and the API works meanwhile. */
        KD_WARN("broker %s not reachable yet (%s); will keep trying", c->name, mosquitto_strerror(rc));
    }
    if (pthread_create(&c->thread, NULL, net_thread, c) != 0) {
        snprintf(err, errcap, "cannot start the MQTT thread");
        destroy(c);
        return NULL;
    }
    c->thread_started = true;
    return c;
}

void mqconn_stop(mqconn_t *c)
{
    if (c == NULL) {
        return;
    }
    atomic_store(&c->connected, false); /* a requested disconnect is not worth a warning */
    pthread_mutex_lock(&c->wake_lock);
    atomic_store(&c->stopping, true);
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->wake_lock);
    /* loop_forever returns on it; again if a reconnect was under way when it came (bounded). */
    for (int i = 0; i < 100 && c->thread_started && !atomic_load(&c->thread_done); i++) {
        mosquitto_disconnect(c->m);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (c->thread_started) {
        pthread_join(c->thread, NULL);
        c->thread_started = false;
    }
}

void mqconn_free(mqconn_t *c)
{
    if (c != NULL) {
        destroy(c);
    }
}

bool mqconn_connected(mqconn_t *c)
{
    return atomic_load(&c->connected);
}

const char *mqconn_name(mqconn_t *c)
{
    return c->name;
}

void mqconn_health(mqconn_t *c, mqconn_health_t *out)
{
    long long since = atomic_load(&c->down_since_ms);

    out->connected = atomic_load(&c->connected);
    out->down_ms = (out->connected || since == 0) ? 0 : kd_wall_ms() - since;
    out->reconnects = atomic_load(&c->reconnects);
    pthread_mutex_lock(&c->err_lock);
    snprintf(out->last_error, sizeof(out->last_error), "%s", c->last_error);
    pthread_mutex_unlock(&c->err_lock);
}

int mqconn_publish(mqconn_t *c, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
    if (c == NULL) {
        return MOSQ_ERR_NO_CONN; /* no broker configured (keeld's fuzz fixture) */
    }
    return mosquitto_publish(c->m, NULL, topic, (int)len, payload, qos, retain);
}

/*
 * ota_srv: a test-only update server (what keeld's deployment serving does, reduced to one
 * device and one bundle) over a real broker, for the device-side OTA tests and benchmarks.
 *
 *   ota_srv --port P --ca CA --cert CERT --key KEY --device ID --bundle B.kb --deployment N
 *           [--force] [--force-after S] [--drop-every N] [--apply-when-staged] [--seconds S]
 *
 * Speaks protocol v1 with keel_proto over libmosquitto (TLS, client certificate): offers the
 * bundle after every hello of the device (UpdateOffer: size, SHA-256, signed size), answers each
 * UpdateFetch with the exact bytes (UpdateChunk; --drop-every N leaves every Nth unanswered, so
 * the device's re-request is exercised), and with --apply-when-staged sends Command UPDATE_APPLY
 * once the device reports DOWNLOADED. Prints every event on stdout, one line each:
 *   hello app=X.Y.Z          status dep=N state=S result=R code=C trial=T version=V installed=I
 *   offer dep=N              needed=N staged=N fetched=N detail=TEXT
 *   served bytes=N chunks=N  result id=N status=S detail=TEXT
 * Runs until --seconds pass (default 60) or SIGTERM.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel/kcrypto.h"
#include <mosquitto.h>

#include "keel/bundle.h"
#include "keel/kproto.h"

typedef struct srv {
    struct mosquitto *m;
    const char *id;
    uint8_t *bundle;
    uint32_t size, signed_size;
    uint8_t sha[32];
    uint64_t dep;
    bool force, apply_when_staged, applied;
    uint32_t force_after, drop_every, fetches;
    uint64_t served, chunks;
    uint32_t msg_id;
    int subacks; /* subscriptions the broker confirmed: offer only once all are in place */
} srv_t;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void publish(srv_t *s, kproto_topic_t t, keel_v1_Envelope *env)
{
    char topic[KPROTO_TOPIC_MAX];
    static uint8_t buf[KPROTO_ENVELOPE_MAX];
    size_t n = 0;
    env->version = KPROTO_REVISION;
    env->msg_id = ++s->msg_id;
    env->time_ms = (uint64_t)time(NULL) * 1000u;
    if (kproto_topic_build(t, s->id, NULL, topic, sizeof topic) != KERR_OK ||
        kproto_encode(env, buf, sizeof buf, &n) != KERR_OK) {
        fprintf(stderr, "ota_srv: cannot encode a message for %s\n", s->id);
        exit(1);
    }
    mosquitto_publish(s->m, NULL, topic, (int)n, buf, 1, false);
}

static void offer(srv_t *s)
{
    static keel_v1_Envelope env;
    memset(&env, 0, sizeof env);
    env.which_body = keel_v1_Envelope_update_offer_tag;
    keel_v1_UpdateOffer *o = &env.body.update_offer;
    o->deployment_id = s->dep;
    o->bundle_size = s->size;
    memcpy(o->bundle_sha256, s->sha, 32);
    o->signed_size = s->signed_size;
    o->force = s->force;
    o->force_after_s = s->force_after;
    publish(s, KPROTO_T_UPDATE, &env);
    printf("offer dep=%llu\n", (unsigned long long)s->dep);
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    (void)m;
    srv_t *s = arg;
    char dev[KIDENT_ID_MAX + 1], ch[KPROTO_CHANNEL_MAX + 1];
    kproto_topic_t t;
    static keel_v1_Envelope env, out;
    if (kproto_topic_parse(msg->topic, dev, &t, ch) != KERR_OK || strcmp(dev, s->id) != 0 ||
        kproto_decode(t, msg->payload, (size_t)msg->payloadlen, &env) != KERR_OK)
        return;
    switch (t) {
    case KPROTO_T_HELLO: {
        uint32_t v = env.body.hello.app_version;
        printf("hello app=%u.%u.%u\n", v >> 24, (v >> 16) & 0xFFu, v & 0xFFFFu);
        offer(s);
        break;
    }
    case KPROTO_T_UPDATE_FETCH: {
        const keel_v1_UpdateFetch *f = &env.body.update_fetch;
        if (f->deployment_id != s->dep || memcmp(f->bundle_sha256, s->sha, 32) != 0 ||
            f->offset > s->size || f->length > KPROTO_CHUNK_MAX) {
            printf("bad fetch dep=%llu off=%u len=%u\n", (unsigned long long)f->deployment_id,
                   f->offset, f->length);
            break;
        }
        s->fetches++;
        if (s->drop_every && s->fetches % s->drop_every == 0) {
            printf("dropped fetch off=%u len=%u\n", f->offset, f->length);
            break;
        }
        memset(&out, 0, sizeof out);
        out.which_body = keel_v1_Envelope_update_chunk_tag;
        keel_v1_UpdateChunk *c = &out.body.update_chunk;
        uint32_t n = s->size - f->offset < f->length ? s->size - f->offset : f->length;
        c->deployment_id = s->dep;
        c->offset = f->offset;
        c->data.size = (pb_size_t)n;
        memcpy(c->data.bytes, s->bundle + f->offset, n);
        publish(s, KPROTO_T_UPDATE_DATA, &out);
        s->served += n;
        s->chunks++;
        break;
    }
    case KPROTO_T_UPDATE_STATUS: {
        const keel_v1_UpdateStatus *u = &env.body.update_status;
        printf("status dep=%llu state=%d result=%d code=%d trial=%d version=%u.%u.%u "
               "installed=%u.%u.%u needed=%u staged=%u fetched=%u served=%llu detail=%s\n",
               (unsigned long long)u->deployment_id, (int)u->state, (int)u->result, (int32_t)u->code,
               (int)u->trial, u->version >> 24, (u->version >> 16) & 0xFFu, u->version & 0xFFFFu,
               u->installed_version >> 24, (u->installed_version >> 16) & 0xFFu,
               u->installed_version & 0xFFFFu, u->blocks_needed, u->blocks_staged, u->bytes_fetched,
               (unsigned long long)s->served, u->detail[0] ? u->detail : "-");
        if (s->apply_when_staged && !s->applied &&
            u->state == keel_v1_UpdateState_UPDATE_STATE_DOWNLOADED) {
            s->applied = true;
            memset(&out, 0, sizeof out);
            out.which_body = keel_v1_Envelope_command_tag;
            out.body.command.id = 4242;
            out.body.command.kind = keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY;
            publish(s, KPROTO_T_CMD, &out);
            printf("command apply id=4242\n");
        }
        break;
    }
    case KPROTO_T_RESULT:
        printf("result id=%llu status=%d detail=%s\n", (unsigned long long)env.body.result.command_id,
               (int)env.body.result.status, env.body.result.detail[0] ? env.body.result.detail : "-");
        break;
    default:
        break;
    }
    fflush(stdout);
}

static void on_subscribe(struct mosquitto *m, void *arg, int mid, int qos_count, const int *granted)
{
    (void)m;
    (void)mid;
    (void)qos_count;
    (void)granted;
    ((srv_t *)arg)->subacks++;
}

static void on_connect(struct mosquitto *m, void *arg, int rc)
{
    srv_t *s = arg;
    if (rc != 0)
        return;
    static const kproto_topic_t subs[] = {KPROTO_T_HELLO, KPROTO_T_UPDATE_FETCH,
                                          KPROTO_T_UPDATE_STATUS, KPROTO_T_RESULT};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char topic[KPROTO_TOPIC_MAX];
        kproto_topic_build(subs[i], s->id, NULL, topic, sizeof topic);
        mosquitto_subscribe(m, NULL, topic, 1);
    }
    printf("connected\n");
    fflush(stdout);
}

static const char *arg_of(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i < argc - 1; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    static srv_t s;
    const char *port = arg_of(argc, argv, "--port", NULL), *ca = arg_of(argc, argv, "--ca", NULL);
    const char *cert = arg_of(argc, argv, "--cert", NULL), *key = arg_of(argc, argv, "--key", NULL);
    const char *path = arg_of(argc, argv, "--bundle", NULL);
    s.id = arg_of(argc, argv, "--device", NULL);
    if (!port || !ca || !cert || !key || !path || !s.id) {
        fprintf(stderr, "usage: ota_srv --port P --ca CA --cert CERT --key KEY --device ID --bundle "
                        "B.kb --deployment N [--force] [--force-after S] [--drop-every N] "
                        "[--apply-when-staged] [--seconds S]\n");
        return 2;
    }
    s.dep = strtoull(arg_of(argc, argv, "--deployment", "1"), NULL, 10);
    s.force = flag(argc, argv, "--force");
    s.apply_when_staged = flag(argc, argv, "--apply-when-staged");
    s.force_after = (uint32_t)strtoul(arg_of(argc, argv, "--force-after", "0"), NULL, 10);
    s.drop_every = (uint32_t)strtoul(arg_of(argc, argv, "--drop-every", "0"), NULL, 10);
    unsigned seconds = (unsigned)strtoul(arg_of(argc, argv, "--seconds", "60"), NULL, 10);

    FILE *f = fopen(path, "rb");
    s.bundle = malloc(8u << 20);
    if (!f || !s.bundle) {
        fprintf(stderr, "ota_srv: cannot read %s\n", path);
        return 1;
    }
    s.size = (uint32_t)fread(s.bundle, 1, 8u << 20, f);
    fclose(f);
    kbdl_manifest_t m;
    if (kbdl_decode(s.bundle, s.size, &m) == KERR_OK)
        s.signed_size = kbdl_signed_size(&m);
    else /* a bundle the device must refuse: offer its first 4 KiB as "signed" */
        s.signed_size = s.size < 4096u ? s.size : 4096u;
    kc_sha256(s.bundle, s.size, s.sha);

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    mosquitto_lib_init();
    s.m = mosquitto_new("ota-srv", true, &s);
    if (!s.m || mosquitto_tls_set(s.m, ca, NULL, cert, key, NULL) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "ota_srv: TLS setup failed\n");
        return 1;
    }
    mosquitto_connect_callback_set(s.m, on_connect);
    mosquitto_message_callback_set(s.m, on_message);
    mosquitto_subscribe_callback_set(s.m, on_subscribe);
    if (mosquitto_connect(s.m, "127.0.0.1", atoi(port), 20) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "ota_srv: cannot connect to 127.0.0.1:%s\n", port);
        return 1;
    }
    /* An offer as soon as the subscriptions are confirmed (the device answers within
     * milliseconds): a device already connected sends no new hello. */
    time_t end = time(NULL) + seconds;
    bool offered = false;
    while (!stop && time(NULL) < end) {
        if (mosquitto_loop(s.m, 100, 1) != MOSQ_ERR_SUCCESS) {
            mosquitto_reconnect(s.m);
            continue;
        }
        if (!offered && s.subacks >= 4) {
            offered = true;
            offer(&s);
        }
    }
    printf("served bytes=%llu chunks=%llu\n", (unsigned long long)s.served,
           (unsigned long long)s.chunks);
    mosquitto_disconnect(s.m);
    mosquitto_destroy(s.m);
    mosquitto_lib_cleanup();
    free(s.bundle);
    return 0;
}

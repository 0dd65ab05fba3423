/* keeld in one process for its fuzz targets (keeld_fixture.h). */
#include "keeld_fixture.h"

/* The ingest callback and struct mq are private to mqtt.c: the fixture is compiled with it. */
#include "../../server/keeld/mqtt.c"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admit.h"
#include "api.h"
#include "token.h"

static mq_t *fz_mq;
static unsigned fz_port;
static kd_config_t fz_cfg;
static char fz_dir[256];

/* At exit the database goes (a crash leaves its directory, keel-fuzz-keeld-*, in /dev/shm or
 * TMPDIR for a look). */
static void cleanup(void)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char path[600];
    for (unsigned i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/keeld.db%s", fz_dir, suffix[i]);
        unlink(path);
    }
    rmdir(fz_dir);
}

static void fail(const char *what, const char *err)
{
    fprintf(stderr, "keeld fixture: %s: %s\n", what, err);
    abort();
}

unsigned fz_keeld_start(void)
{
    if (fz_mq != NULL) {
        return fz_port;
    }
    char err[512] = "";
    char *argv[] = {"keeld", NULL};
    if (kd_config_load(&fz_cfg, 1, argv, 1, stdout, stderr) != 0) {
        fail("config", "defaults refused");
    }
    /* Quiet: a fuzzer sends millions of malformed messages, each logged at warn level. */
    kd_log_set_level(KD_LOG_ERROR);
    /* On tmpfs when there is one: on a loaded disk one fsync can take seconds, and a slow answer
     * is reported as a hang. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(fz_dir, sizeof(fz_dir), "%s/keel-fuzz-keeld-XXXXXX", base);
    if (mkdtemp(fz_dir) == NULL) {
        fail("mkdtemp", fz_dir);
    }
    atexit(cleanup);
    snprintf(fz_cfg.db, sizeof(fz_cfg.db), "%s/keeld.db", fz_dir);
    snprintf(fz_cfg.http_addr, sizeof(fz_cfg.http_addr), "127.0.0.1");
    fz_cfg.http_port = 0;
    store_t *store = store_sqlite_open(fz_cfg.db, err, sizeof(err));
    if (store == NULL) {
        fail("store", err);
    }
    static kd_notify_t logs;
    kd_notify_init(&logs);
    ota_t *ota = ota_open(&fz_cfg, store, err, sizeof(err));
    if (ota == NULL) {
        fail("ota", err);
    }
    mq_t *mq = calloc(1, sizeof(*mq));
    if (mq == NULL) {
        fail("mq", "out of memory");
    }
    mq->cfg = &fz_cfg;
    mq->store = store;
    mq->logs_notify = &logs;
    mq->ota = ota;
    atomic_init(&mq->msg_id, 1u);
    pthread_mutex_init(&mq->flush_lock, NULL);
    mq->debug = dbgrelay_new();
    /* No broker connection (nconn 0: every publish fails and is logged) and no ingest worker:
     * on_message hands each message to the batch handler at once. */
    ota_bind(ota, mq);
    admit_t *admit = admit_start(&fz_cfg, store, ota);
    if (admit == NULL) {
        fail("admit", "cannot start");
    }
    char hash[TOK_HASH_HEX];
    tok_hash(FZ_KEELD_TOKEN, strlen(FZ_KEELD_TOKEN), hash);
    int64_t id = 0;
    if (store->ops->token_add(store, "fuzz", hash, now_ms(), &id) != STORE_OK) {
        fail("token", "not stored");
    }
    if (api_start(&fz_cfg, store, mq, ota, admit, &logs, &fz_port, err, sizeof(err)) == NULL) {
        fail("api", err);
    }
    fz_mq = mq;
    /* A known device for the per-device endpoints. */
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    uint8_t buf[KPROTO_ENVELOPE_MAX];
    size_t len = 0;
    env.version = 1;
    env.msg_id = 1;
    env.which_body = keel_v1_Envelope_hello_tag;
    env.body.hello.app_state = keel_v1_AppState_APP_STATE_RUNNING;
    char topic[KPROTO_TOPIC_MAX];
    if (kproto_encode(&env, buf, sizeof(buf), &len) != KERR_OK ||
        kproto_topic_build(KPROTO_T_HELLO, FZ_KEELD_DEVICE, NULL, topic, sizeof(topic)) != KERR_OK) {
        fail("hello", "cannot encode");
    }
    fz_keeld_mqtt(topic, buf, len);
    return fz_port;
}

void fz_keeld_mqtt(const char *topic, const uint8_t *payload, size_t len)
{
    struct mosquitto_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.topic = (char *)topic;
    msg.payload = (void *)payload;
    msg.payloadlen = (int)len;
    msg.qos = 1;
    on_message(fz_mq, &msg);
}

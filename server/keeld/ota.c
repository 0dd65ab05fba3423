/* keeld OTA: bundle checks, per-device decisions, serving fetches, recording status (ota.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/kcrypto.h"

#include "chunkmemo.h"
#include "delta_pick.h"
#include "kd_log.h"
#include "kd_why.h"
#include "kd_time.h"
#include "keel/app_image.h"
#include "keel/bundle.h"
#include "keel/kproto.h"
#include "keyfile.h"
#include "mqtt.h"
#include "notify.h"
#include "ota.h"

#define OTA_MAX_KEYS 8
#define OTA_CACHE 4 /* bundles kept in memory for serving fetches */
/* Chunks remembered (chunkmemo.h): ~4 in flight per downloading device; 2 x 2 MiB. */
#define OTA_MEMO_SLOTS (1u << 17)
/* A re-ask reaching keeld up to this long after the chunk went out crossed it on the way. */
#define OTA_MEMO_GRACE_US 1000000

typedef struct cached {
    int64_t id;
    uint8_t *data;
    size_t len;
    uint64_t used; /* LRU stamp */
} cached_t;

struct ota {
    store_t *store;
    long max_bundle;
    kbdl_key_t keys[OTA_MAX_KEYS];
    char key_ids[OTA_MAX_KEYS][17];
    uint32_t key_count;
    _Atomic(struct mq *) mq;
    kd_notify_t changes;
    kd_notify_t admission;    /* wakes download admission (admit.c): a deployment, a hello */
    pthread_mutex_t cache_lock;
    cached_t cache[OTA_CACHE];
    uint64_t stamp;
    /* Bytes served since the last ota_flush, per (deployment, device): counted in memory and
     * written once per batch, not one database write per chunk. */
    pthread_mutex_t sent_lock;
    struct sent { int64_t deployment; char device[KIDENT_ID_MAX + 1]; int64_t bytes; } *sent;
    size_t nsent, sent_cap;
    _Atomic uint64_t chunks, chunk_bytes, duplicates;
    chunkmemo_t *memo;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    }
}

/* ---- keys ------------------------------------------------------------------------------------- */

static int load_keys(ota_t *o, const char *list, char *err, size_t errcap)
{
    char buf[sizeof(((kd_config_t *)0)->update_keys)];
    char *save = NULL;

    snprintf(buf, sizeof(buf), "%s", list);
    for (char *path = strtok_r(buf, ",", &save); path != NULL; path = strtok_r(NULL, ",", &save)) {
        keyfile_key_t k;
        char why[256];
        if (o->key_count == OTA_MAX_KEYS) {
            snprintf(err, errcap, "--update-key: more than %d keys", OTA_MAX_KEYS);
            return -1;
        }
        if (!keyfile_load(path, false, &k, why, sizeof(why))) {
            snprintf(err, errcap, "--update-key %s: %s", path, why);
            return -1;
        }
        uint8_t id[KBDL_KEY_ID_SIZE];
        memcpy(o->keys[o->key_count].pub, k.pub, KBDL_PUBKEY_SIZE);
        kbdl_key_id(k.pub, id);
        hex(id, KBDL_KEY_ID_SIZE, o->key_ids[o->key_count]);
        KD_INFO("fleet signing key %s (%s)", o->key_ids[o->key_count], path);
        o->key_count++;
    }
    return 0;
}

ota_t *ota_open(const kd_config_t *cfg, store_t *store, char *err, size_t errcap)
{
    ota_t *o = calloc(1, sizeof(*o));

    if (o == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    o->store = store;
    o->max_bundle = cfg->max_bundle;
    if (load_keys(o, cfg->update_keys, err, errcap) != 0) {
        free(o);
        return NULL;
    }
    if (o->key_count == 0) {
        KD_WARN("no fleet signing key (--update-key): bundle uploads will be refused");
    }
    o->memo = chunkmemo_new(OTA_MEMO_SLOTS, OTA_MEMO_GRACE_US);
    if (o->memo == NULL) {
        snprintf(err, errcap, "out of memory");
        free(o);
        return NULL;
    }
    atomic_init(&o->mq, NULL);
    kd_notify_init(&o->changes);
    kd_notify_init(&o->admission);
    pthread_mutex_init(&o->cache_lock, NULL);
    pthread_mutex_init(&o->sent_lock, NULL);
    return o;
}

void ota_close(ota_t *o)
{
    if (o == NULL) {
        return;
    }
    for (int i = 0; i < OTA_CACHE; i++) {
        free(o->cache[i].data);
    }
    pthread_mutex_destroy(&o->cache_lock);
    pthread_mutex_destroy(&o->sent_lock);
    kd_notify_destroy(&o->changes);
    kd_notify_destroy(&o->admission);
    chunkmemo_free(o->memo);
    free(o->sent);
    free(o);
}

void ota_bind(ota_t *o, struct mq *mq)
{
    atomic_store(&o->mq, mq);
}

uint64_t ota_changes(ota_t *o)
{
    return kd_notify_gen(&o->changes);
}

uint64_t ota_wait(ota_t *o, uint64_t seen, int timeout_ms)
{
    return kd_notify_wait(&o->changes, seen, timeout_ms);
}

uint64_t ota_admission_gen(ota_t *o)
{
    return kd_notify_gen(&o->admission);
}

uint64_t ota_admission_wait(ota_t *o, uint64_t seen, int timeout_ms)
{
    return kd_notify_wait(&o->admission, seen, timeout_ms);
}

void ota_admission_kick(ota_t *o)
{
    kd_notify_bump(&o->admission);
}

/* ---- upload ----------------------------------------------------------------------------------- */

/* The app name and image hash from the app header at the start of the payload, if it is one. */
static void app_name(const kbdl_manifest_t *m, const uint8_t *payload, char out[33],
                     char image_sha[65])
{
    out[0] = '\0';
    image_sha[0] = '\0';
    const kbdl_layer_t *l = &m->layers[0];
    if (l->offset != 0 || l->size < KAPP_HDR_SIZE ||
        payload[0] != 'K' || payload[1] != 'A' || payload[2] != 'P' || payload[3] != 'P') {
        return;
    }
    size_t n = 0;
    for (; n < KAPP_NAME_MAX && payload[KAPP_OFF_NAME + n] != '\0'; n++) {
        char c = (char)payload[KAPP_OFF_NAME + n];
        out[n] = (c >= 0x20 && c < 0x7F) ? c : '?';
    }
    out[n] = '\0';
    hex(payload + KAPP_OFF_SHA256, 32, image_sha);
}

/* Everything a device would check that does not depend on the device (inspect, then store). */
static unsigned check_bundle(ota_t *o, const uint8_t *data, size_t len, kbdl_manifest_t *m,
                             char *why, size_t cap)
{
    if (len > (size_t)o->max_bundle) {
        return kd_refuse(why, cap, 413, "the bundle is %zu bytes, more than --max-bundle (%ld)", len,
                         o->max_bundle);
    }
    kerr_t err = kbdl_decode(data, (uint32_t)len, m);
    if (err == KERR_BDL_TRUNCATED) {
        return kd_refuse(why, cap, 400, "not a bundle: the %zu bytes end before its manifest and "
                         "signature do (truncated? upload the .kb file 'keel bundle build' wrote)", len);
    }
    if (err == KERR_BDL_VERSION) {
        return kd_refuse(why, cap, 400, "a newer bundle format than this keeld understands");
    }
    if (err != KERR_OK) {
        return kd_refuse(why, cap, 400, "not a bundle: the manifest is malformed (magic, sizes, "
                         "offsets or reserved bytes); check the file with 'keel bundle inspect'");
    }
    kbdl_trust_t trust = {o->keys, o->key_count, m->device_type, UINT32_MAX, 0};
    kbdl_manifest_t vm;
    err = kbdl_verify(data, (uint32_t)len, &trust, &vm);
    char kid[17];
    hex(m->key_id, KBDL_KEY_ID_SIZE, kid);
    if (err == KERR_BDL_KEY) {
        char list[OTA_MAX_KEYS * 18 + 1] = "";
        for (uint32_t i = 0; i < o->key_count; i++) {
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                     o->key_ids[i]);
        }
        return kd_refuse(why, cap, 422, "signed by key id %s, which is not a fleet signing key of "
                         "this keeld (its keys: %s); sign with the fleet key or start keeld with "
                         "--update-key for this one", kid, list);
    }
    if (err == KERR_BDL_SIGNATURE) {
        return kd_refuse(why, cap, 422, "the signature does not verify with fleet key %s: the "
                         "manifest was changed after signing (tampered) or the signature is damaged",
                         kid);
    }
    if (err != KERR_OK) {
        return kd_refuse(why, cap, 422, "refused: %s", kerr_str(err));
    }
    if (m->layer_count != 1 || m->layers[0].region != KBDL_REGION_APP) {
        return kd_refuse(why, cap, 422, "unsupported bundle: devices apply exactly one app-region "
                         "layer (this one has %u layers)", (unsigned)m->layer_count);
    }
    /* A delta's payload is its patch (docs/delta.md): checked against the signed patch hash. */
    const kbdl_layer_t *l = &m->layers[0];
    uint32_t payload = l->delta ? l->patch_size : l->size;
    uint64_t want = (uint64_t)kbdl_signed_size(m) + payload;
    if (want != len) {
        return kd_refuse(why, cap, 400, "the bundle is %zu bytes but its manifest describes %llu "
                         "(manifest, signature and payload): truncated or padded", len,
                         (unsigned long long)want);
    }
    uint8_t sha[32];
    kc_sha256(data + kbdl_signed_size(m), payload, sha);
    if (memcmp(sha, l->delta ? l->patch_sha : l->content_sha, 32) != 0) {
        return kd_refuse(why, cap, 422, "the payload does not match the signed %s hash: the "
                         "bundle was damaged or tampered with after signing", l->delta ? "patch" : "content");
    }
    return 0;
}

unsigned ota_upload(ota_t *o, const uint8_t *data, size_t len, json_t **out, char *why,
                    size_t cap)
{
    kbdl_manifest_t m;

    *out = NULL;
    if (o->key_count == 0) {
        return kd_refuse(why, cap, 409, "keeld has no fleet signing key, so it cannot check bundles: "
                         "start it with --update-key PUB.pem (the NAME.pub of 'keel keys new')");
    }
    unsigned status = check_bundle(o, data, len, &m, why, cap);
    if (status != 0) {
        KD_WARN("bundle upload refused: %s", why);
        return status;
    }
    store_bundle_t b;
    uint8_t sha[32];
    memset(&b, 0, sizeof(b));
    kc_sha256(data, len, sha);
    hex(sha, 32, b.sha256);
    b.size = (int64_t)len;
    b.signed_size = kbdl_signed_size(&m);
    b.version = m.version;
    b.security_counter = m.security_counter;
    b.min_uv_version = m.min_uv_version;
    b.device_type = m.device_type;
    b.blocks = m.layers[0].block_count;
    b.block_size = m.block_size;
    hex(m.key_id, KBDL_KEY_ID_SIZE, b.key_id);
    hex(m.layers[0].region_sha, 32, b.region_sha256);
    app_name(&m, data + b.signed_size, b.name, b.image_sha256);
    int64_t id = 0;
    bool created = false;
    if (o->store->ops->bundle_add(o->store, &b, data, len, now_ms(), &id, &created) != STORE_OK ||
        (*out = o->store->ops->bundle_get(o->store, id, NULL)) == NULL) {
        return kd_refuse(why, cap, 503, "the database failed (see keeld's log); retry");
    }
    if (m.layers[0].delta && delta_uploaded(o->store, id, &m) != STORE_OK) {
        json_decref(*out);
        *out = NULL;
        return kd_refuse(why, cap, 503, "the database failed (see keeld's log); retry");
    }
    delta_describe(o->store, *out);
    json_object_set_new(*out, "created", json_boolean(created));
    KD_INFO("bundle %lld %s (%s, %zu bytes) %s", (long long)id, b.sha256, b.name, len,
            created ? "stored" : "already stored");
    return created ? 201 : 200;
}

/* ---- deciding and offering -------------------------------------------------------------------- */

static int unhex32(const char *s, uint8_t out[32])
{
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

/*
 * Whether the device's last hello says it runs u's bundle. The region "app" is the whole app
 * slot (size = the layer's region_len): its hash must be the bundle's region hash. A device that
 * reports only its app image (size = image size, as the microvisor's hello did before updates)
 * is matched by the image hash in the bundle's app header and the version.
 */
static bool runs_bundle(ota_t *o, const char *device, const store_update_t *u)
{
    bool match = false;
    json_t *d = o->store->ops->device_get(o->store, device);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(d, "regions"), i, r) {
        const char *name = json_string_value(json_object_get(r, "name"));
        const char *sha = json_string_value(json_object_get(r, "sha256"));
        if (name == NULL || sha == NULL || strcmp(name, "app") != 0) {
            continue;
        }
        if (json_integer_value(json_object_get(r, "size")) == u->region_len) {
            match = strcmp(sha, u->region_sha256) == 0;
        } else {
            match = u->image_sha256[0] != '\0' && strcmp(sha, u->image_sha256) == 0 &&
                    json_integer_value(json_object_get(r, "version")) == u->version;
        }
    }
    json_decref(d);
    return match;
}

static void offer(ota_t *o, const char *device, const store_update_t *u)
{
    struct mq *mq = atomic_load(&o->mq);
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    keel_v1_UpdateOffer *of = &env.body.update_offer;

    if (mq == NULL) {
        return;
    }
    env.which_body = keel_v1_Envelope_update_offer_tag;
    of->deployment_id = (uint64_t)u->deployment_id;
    of->bundle_size = (uint32_t)u->size;
    of->signed_size = (uint32_t)u->signed_size;
    of->force = u->forced;
    of->force_after_s = (uint32_t)u->force_after_s;
    if (unhex32(u->sha256, of->bundle_sha256) != 0 || mq_send(mq, KPROTO_T_UPDATE, device, &env) != 0) {
        return;
    }
    if (o->store->ops->update_offered(o->store, u->deployment_id, device, now_ms()) == STORE_OK) {
        KD_INFO("device '%s': offered deployment %lld (bundle %.16s, %lld bytes%s)", device,
                (long long)u->deployment_id, u->sha256, (long long)u->size,
                u->forced ? ", forced" : "");
        kd_notify_bump(&o->changes);
    }
}

/*
 * What this device needs of its active deployment: nothing, an offer, or (never offered yet) its
 * turn in download admission. hello: the hello just stored, or NULL when deciding for another
 * reason; admitted: admission gave this device its turn (admit.c).
 */
static void decide(ota_t *o, const char *device, const keel_v1_Hello *hello, bool admitted)
{
    store_update_t u;

    if (o->store->ops->update_active(o->store, device, &u) != STORE_OK) {
        return;
    }
    /*
     * A device whose region already is the bundle's is done (protocol.md P2). Never offered: it
     * had it before ("already installed"). Offered: it installed it and its final status was
     * lost, so its hello settles it ("reconciled from hello") and it is never offered again;
     * but only a hello that says the app is not on trial (a trial may still roll back), and
     * never outside a hello (the region then may be from before a rollback).
     */
    bool pending = strcmp(u.phase, "pending") == 0;
    bool trial = hello != NULL && hello->update_trial;
    if ((pending || hello != NULL) && !trial && runs_bundle(o, device, &u)) {
        const char *why = pending ? "already installed: nothing sent" : "reconciled from hello";
        if (o->store->ops->update_settled(o->store, u.deployment_id, device, now_ms(), why) == STORE_OK) {
            KD_INFO("device '%s': already runs the bundle of deployment %lld; %s", device,
                    (long long)u.deployment_id, why);
            kd_notify_bump(&o->changes);
        }
        return;
    }
    if (pending && !admitted) {
        ota_admission_kick(o); /* an offer only when admission says so (P3) */
        return;
    }
    delta_choose(o->store, device, &u); /* the delta for its base, or the full bundle */
    offer(o, device, &u);
}

void ota_on_hello(ota_t *o, const char *device, const keel_v1_Hello *hello, int64_t received_us)
{
    chunkmemo_hello(o->memo, device, received_us);
    decide(o, device, hello, false);
}

void ota_admit(ota_t *o, const char *device)
{
    decide(o, device, NULL, true);
}

void ota_deployment_started(ota_t *o, int64_t id)
{
    /* Nothing is offered here (a deployment of 10,000 devices is created at once): admission
     * offers to its online devices at the configured rate. */
    int settled = 0;
    o->store->ops->updates_settle_installed(o->store, id, now_ms(), &settled);
    KD_INFO("deployment %lld created; %d devices already run its bundle; offers follow at the "
            "admission rate", (long long)id, settled);
    kd_notify_bump(&o->changes);
    ota_admission_kick(o);
}

unsigned ota_force(ota_t *o, int64_t id, json_t **out, char *why, size_t cap)
{
    json_t *devices = NULL;
    struct mq *mq = atomic_load(&o->mq);

    *out = NULL;
    store_rc_t rc = o->store->ops->deployment_force(o->store, id, now_ms(), &devices);
    if (rc == STORE_ENOTFOUND) {
        return kd_refuse(why, cap, 404, "no deployment %lld; list them with GET /v1/deployments",
                         (long long)id);
    }
    if (rc != STORE_OK) {
        return kd_refuse(why, cap, 503, "the database failed (see keeld's log); nothing was changed");
    }
    json_t *sent = json_array(), *unsupported = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(devices, i, r) {
        const char *device = json_string_value(json_object_get(r, "device"));
        bool supported = false;
        int64_t cmd = 0;
        if (o->store->ops->device_supports(o->store, device,
                                           keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY,
                                           &supported) != STORE_OK || !supported) {
            json_array_append_new(unsupported, json_string(device));
        } else if (o->store->ops->command_create(o->store, device,
                                                 keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY,
                                                 now_ms(), &cmd) == STORE_OK) {
            json_array_append_new(sent, json_pack("{s:s, s:I}", "device", device, "command",
                                                  (json_int_t)cmd));
        }
        decide(o, device, NULL, false); /* offered: again, now with force set; pending: its turn */
    }
    if (mq != NULL) {
        mq_flush_commands(mq);
    }
    json_decref(devices);
    kd_notify_bump(&o->changes);
    *out = json_pack("{s:I, s:b, s:o, s:o}", "id", (json_int_t)id, "forced", 1, "commands", sent,
                     "not_supported", unsupported);
    return 200;
}

/* ---- serving fetches -------------------------------------------------------------------------- */

/* Copy bytes [off, off + n) of bundle id into out, loading it into the cache if needed. */
static int bundle_bytes(ota_t *o, int64_t id, uint32_t off, uint32_t n, uint8_t *out)
{
    int rc = -1;

    pthread_mutex_lock(&o->cache_lock);
    cached_t *c = NULL, *victim = &o->cache[0];
    for (int i = 0; i < OTA_CACHE; i++) {
        if (o->cache[i].data != NULL && o->cache[i].id == id) {
            c = &o->cache[i];
        }
        if (o->cache[i].used < victim->used) {
            victim = &o->cache[i];
        }
    }
    if (c == NULL) {
        uint8_t *data = NULL;
        size_t len = 0;
        if (o->store->ops->bundle_data(o->store, id, &data, &len) == STORE_OK) {
            free(victim->data);
            *victim = (cached_t){id, data, len, 0};
            c = victim;
        }
    }
    if (c != NULL && (uint64_t)off + n <= c->len) {
        c->used = ++o->stamp;
        memcpy(out, c->data + off, n);
        rc = 0;
    }
    pthread_mutex_unlock(&o->cache_lock);
    return rc;
}

static void count_sent(ota_t *o, int64_t deployment, const char *device, int64_t bytes)
{
    pthread_mutex_lock(&o->sent_lock);
    size_t i = 0;
    while (i < o->nsent && (o->sent[i].deployment != deployment || strcmp(o->sent[i].device, device) != 0)) {
        i++;
    }
    if (i == o->nsent) {
        if (o->nsent == o->sent_cap) {
            size_t cap = o->sent_cap ? o->sent_cap * 2 : 64;
            struct sent *n = realloc(o->sent, cap * sizeof(*n));
            if (n == NULL) {
                pthread_mutex_unlock(&o->sent_lock);
                return; /* a statistic, not worth failing a chunk for */
            }
            o->sent = n;
            o->sent_cap = cap;
        }
        o->sent[i].deployment = deployment;
        snprintf(o->sent[i].device, sizeof(o->sent[i].device), "%s", device);
        o->sent[i].bytes = 0;
        o->nsent++;
    }
    o->sent[i].bytes += bytes;
    pthread_mutex_unlock(&o->sent_lock);
}

void ota_flush(ota_t *o)
{
    pthread_mutex_lock(&o->sent_lock);
    for (size_t i = 0; i < o->nsent; i++) {
        o->store->ops->update_sent(o->store, o->sent[i].deployment, o->sent[i].device,
                                   o->sent[i].bytes, now_ms());
    }
    bool any = o->nsent > 0;
    o->nsent = 0;
    pthread_mutex_unlock(&o->sent_lock);
    if (any) {
        kd_notify_bump(&o->changes);
    }
}

void ota_counters(ota_t *o, uint64_t *chunks, uint64_t *bytes, uint64_t *duplicates)
{
    *chunks = atomic_load(&o->chunks);
    *bytes = atomic_load(&o->chunk_bytes);
    *duplicates = atomic_load(&o->duplicates);
}

void ota_on_fetch(ota_t *o, const char *device, const keel_v1_UpdateFetch *f, int64_t received_us)
{
    store_update_t u;
    struct mq *mq = atomic_load(&o->mq);
    uint8_t want[32];

    if (mq == NULL) {
        return;
    }
    /* Asked again before the first answer could arrive (P3 re-ask while keeld was behind): that
     * answer is on its way; checked before anything else, it costs no store read either. */
    if (chunkmemo_is_duplicate(o->memo, device, f->deployment_id, f->offset, f->length, received_us)) {
        KD_DEBUG("device '%s': fetch of %u bytes at %u already answered; not sent again", device,
                 f->length, f->offset);
        atomic_fetch_add(&o->duplicates, 1u);
        return;
    }
    if (o->store->ops->update_active(o->store, device, &u) != STORE_OK ||
        (uint64_t)u.deployment_id != f->deployment_id) {
        KD_WARN("device '%s': fetch for deployment %llu, which is not its current one; ignored",
                device, (unsigned long long)f->deployment_id);
        return;
    }
    if (unhex32(u.sha256, want) != 0 ||
        (memcmp(want, f->bundle_sha256, 32) != 0 && !delta_serving(o->store, device, &u, f->bundle_sha256))) {
        KD_WARN("device '%s': fetch for deployment %llu names another bundle; ignored", device,
                (unsigned long long)f->deployment_id);
        return;
    }
    if (f->length == 0 || f->length > KPROTO_CHUNK_MAX || (int64_t)f->offset >= u.size) {
        KD_WARN("device '%s': fetch of %u bytes at %u is outside the %lld-byte bundle or larger "
                "than %u; ignored", device, f->length, f->offset, (long long)u.size, KPROTO_CHUNK_MAX);
        return;
    }
    uint32_t n = f->length;
    if ((int64_t)f->offset + n > u.size) {
        n = (uint32_t)(u.size - f->offset);
    }
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    env.which_body = keel_v1_Envelope_update_chunk_tag;
    env.body.update_chunk.deployment_id = f->deployment_id;
    env.body.update_chunk.offset = f->offset;
    env.body.update_chunk.data.size = (pb_size_t)n;
    if (bundle_bytes(o, u.bundle_id, f->offset, n, env.body.update_chunk.data.bytes) != 0) {
        KD_ERROR("device '%s': cannot read bundle %lld to answer a fetch", device,
                 (long long)u.bundle_id);
        return;
    }
    if (mq_send(mq, KPROTO_T_UPDATE_DATA, device, &env) == 0) {
        KD_DEBUG("device '%s': %u bytes at %u of deployment %lld", device, n, f->offset,
                 (long long)u.deployment_id);
        chunkmemo_sent(o->memo, device, f->deployment_id, f->offset, f->length, kd_mono_us());
        count_sent(o, u.deployment_id, device, n);
        atomic_fetch_add(&o->chunks, 1u);
        atomic_fetch_add(&o->chunk_bytes, n);
    }
}

/* ---- status ----------------------------------------------------------------------------------- */

bool ota_on_status(ota_t *o, const char *device, const keel_v1_UpdateStatus *st)
{
    if (st->deployment_id == 0) {
        KD_DEBUG("device '%s': update status without a deployment (%s)", device,
                 kproto_update_state_name(st->state));
        return true; /* nothing to keep: acked so the device stops re-sending it */
    }
    int delta = delta_on_status(o->store, device, st, now_ms());
    if (delta != 0) {
        if (delta == 1) { /* its delta refused: the full bundle now (pages) */
            /* The same deployment is now fetched from another bundle at the same offsets: what
             * was sent of the delta answers none of those fetches. */
            chunkmemo_hello(o->memo, device, kd_mono_us());
            kd_notify_bump(&o->changes);
            decide(o, device, NULL, true);
        }
        return delta > 0;
    }
    bool final = st->result != keel_v1_UpdateResult_UPDATE_RESULT_INITIAL &&
                 st->state == keel_v1_UpdateState_UPDATE_STATE_IDLE;
    bool recorded = false;
    store_rc_t rc = o->store->ops->update_status(o->store, (int64_t)st->deployment_id, device,
                                                 now_ms(), st, final, &recorded);
    if (rc == STORE_ENOTFOUND) {
        KD_WARN("device '%s': update status for deployment %llu, which it is not part of; ignored",
                device, (unsigned long long)st->deployment_id);
        return true;
    }
    if (rc != STORE_OK) {
        return false; /* not committed: no ack, the device sends it again */
    }
    if (!recorded) {
        KD_DEBUG("device '%s': deployment %llu already has its final result; status acked again",
                 device, (unsigned long long)st->deployment_id);
        return true;
    }
    if (final) {
        KD_INFO("device '%s': deployment %llu %s (%s%s%s)", device,
                (unsigned long long)st->deployment_id, kproto_update_result_name(st->result),
                kproto_update_state_name(st->state), st->detail[0] ? ": " : "", st->detail);
    }
    kd_notify_bump(&o->changes);
    return true;
}

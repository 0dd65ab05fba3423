/* simdev_upd: see simdev_upd.h. */
#include "simdev_upd.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "keel/app_image.h"
#include "keel/backoff.h"
#include "keel/bundle.h"
#include "keel/flash.h"
#include "keel/flash_file.h"
#include "keel/upd.h"

#include "keyfile.h"

#define QUEUE_LEN 32
#define STATUS_EVERY_MS 500     /* progress while downloading (protocol: at most every 2 s) */
#define STATUS_IDS 8u            /* msg_ids of the kept status remembered for its ack */
#define STATUS_RESEND_MS 3000   /* an unacked status is sent again after this long (P1) */
#define MAX_KEYS 4
#define SIGNED_MAX (KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE)

typedef struct item {
    kproto_topic_t t;
    keel_v1_Envelope env;
} item_t;

/* A byte range of the offered bundle being fetched into dst, in chunks of KPROTO_CHUNK_MAX. */
typedef struct range {
    uint32_t start, len;
    uint8_t *dst;
    uint32_t have;            /* bitmap of received chunks (<= 32) */
    uint32_t asked;           /* bitmap of chunks asked for (in flight: asked & ~have) */
    uint32_t nchunks;
    uint64_t due_ms;          /* in-flight requests are asked again at this time */
    bool active;
} range_t;

typedef enum { ST_NONE, ST_SIGNED, ST_STAGING, ST_STAGED, ST_DONE } st_t;

struct sdu {
    sdu_config_t cfg;
    kflash_file_t iff, qff;
    kflash_t ifl, qfl;
    uint8_t *iused;
    kbdl_key_t keys[MAX_KEYS];
    upd_t *upd;
    pthread_mutex_t lock;
    item_t *q;                /* qcap items (cfg.queue_len, else QUEUE_LEN) */
    unsigned qcap;
    unsigned qhead, qlen;
    /* the offer in hand */
    st_t st;
    keel_v1_UpdateOffer offer;
    bool forced;
    uint8_t signed_buf[SIGNED_MAX];
    kbdl_manifest_t m;
    uint32_t block;           /* STAGING: block being fetched */
    uint32_t blocks_needed, blocks_staged, bytes_fetched;
    uint32_t min_bytes;       /* the signed manifest + the content of the blocks needed */
    uint32_t reported_staged; /* blocks_staged in the last status (progress only when it moved) */
    uint8_t page[UPD_BLOCK_MAX];
    range_t r;
    uint64_t staged_ms, status_ms;
    unsigned finals, installs;
    unsigned reinstalls;      /* installs of a bundle installed before (must stay 0: P2) */
    uint8_t installed[4][32]; /* the last bundles installed (SHA-256), newest first */
    keel_v1_Envelope last_final; /* said again when keeld offers the same deployment again */
    /* protocol.md P1: the latest status is kept until keeld acks it, and sent again after a
     * reconnect or STATUS_RESEND_MS without an ack */
    keel_v1_Envelope status_env;
    bool status_unacked;
    uint32_t status_msg_id;
    /* the msg_ids the kept status went out with: an ack of any of them acknowledges it (keeld
     * slower than the resend period acks an earlier copy, never the latest) */
    uint32_t status_ids[STATUS_IDS];
    unsigned status_nids;
    uint64_t status_sent_ms;
    unsigned lose_finals;     /* cfg->lose_finals still to lose */
    atomic_bool reconnected;  /* set by the MQTT thread; the main thread re-asks and re-sends */
    unsigned statuses, acked; /* statuses published, acks of them received */
    uint32_t rng;                /* xorshift32: back-off jitter */
    kbackoff_t backoff;          /* P3: the fetch timeout (core/backoff.c, as the microvisor's) */
    bool sha_valid;              /* sha caches the region's SHA-256 (the region is 1 MiB) */
    uint8_t sha[32];
};

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void die(const char *what, kerr_t err)
{
    fprintf(stderr, "simdev: update agent: %s: %s\n", what, kerr_str(err));
    exit(1);
}

/* upd_status() without its blocks_needed count (a hash of every page while staging): the phase,
 * counter and version a status report and the hello need, at a cost independent of the region
 * size (thousands of devices share one core in fleetsim). */
static void light_status(const sdu_t *u, upd_status_t *out)
{
    memset(out, 0, sizeof(*out));
    out->phase = (upd_phase_t)u->upd->ps.phase;
    out->result = (upd_result_t)u->upd->ps.result;
    out->reason = u->upd->ps.reason;
    out->counter = u->upd->ps.counter;
    out->version = u->upd->ps.version;
}

/* ---- set-up ----------------------------------------------------------------------------------- */

static void open_flash(sdu_t *u)
{
    char path[4200];
    kerr_t err;

    mkdir(u->cfg.dir, 0755); /* the device's state directory, like keel device's */
    /* The emulated device's store file, by the board's store entry (store.h). */
    const kboard_t *b = u->cfg.board;
    snprintf(path, sizeof(path), "%s/%s", u->cfg.dir, b->store.file);
    if ((err = kflash_file_open_region(&u->iff, path, b->store.size, b->store.iflash.off,
                                       b->store.iflash.size, true)) != KERR_OK ||
        (err = kflash_file_open_region(&u->qff, path, b->store.size, b->store.qspi.off,
                                       b->store.qspi.size, true)) != KERR_OK) {
        die(path, err);
    }
    size_t ub = KFLASH_BITMAP_BYTES(b->iflash.size, b->iflash.prog_unit);
    u->iused = calloc(1, ub);
    if (u->iused == NULL ||
        (err = kflash_init(&u->ifl, &kflash_file_backend, &u->iff, &b->iflash, u->iused, ub)) != KERR_OK ||
        (err = kflash_init(&u->qfl, &kflash_file_backend, &u->qff, &b->qspi, NULL, 0)) != KERR_OK) {
        die("flash", u->iused ? err : KERR_NOMEM);
    }
}

/* Factory install: the bundle's region written directly (no engine, no journal). */
static void install(sdu_t *u, const char *path)
{
    const kboard_range_t slot = u->cfg.board->ipart.app_slot;
    FILE *f = fopen(path, "rb");
    size_t cap = SIGNED_MAX + slot.size;
    uint8_t *b = malloc(cap), *region = malloc(slot.size);
    size_t n = (f && b) ? fread(b, 1, cap, f) : 0;
    kbdl_manifest_t m;

    if (f != NULL) {
        fclose(f);
    }
    if (n == 0 || region == NULL || kbdl_decode(b, (uint32_t)n, &m) != KERR_OK ||
        m.layers[0].region_len != slot.size ||
        kbdl_signed_size(&m) + m.layers[0].size != n) {
        fprintf(stderr, "simdev: --install %s: not a bundle for the app slot\n", path);
        exit(1);
    }
    memset(region, 0xFF, slot.size);
    memcpy(region + m.layers[0].offset, b + kbdl_signed_size(&m), m.layers[0].size);
    kerr_t err = kflash_erase_range(&u->ifl, slot.off, slot.size);
    if (err == KERR_OK) {
        err = kflash_program(&u->ifl, slot.off, region, slot.size);
    }
    if (err != KERR_OK) {
        die("install", err);
    }
    free(b);
    free(region);
}

sdu_t *sdu_open(const sdu_config_t *cfg)
{
    sdu_t *u = calloc(1, sizeof(*u));
    if (u == NULL || (u->upd = calloc(1, sizeof(*u->upd))) == NULL ||
        (u->q = calloc(cfg->queue_len ? cfg->queue_len : QUEUE_LEN, sizeof(item_t))) == NULL) {
        die("memory", KERR_NOMEM);
    }
    u->cfg = *cfg;
    if (u->cfg.board == NULL) {
        u->cfg.board = kboard_host();
    }
    if (u->cfg.device_type == 0) {
        u->cfg.device_type = u->cfg.board->device_type;
    }
    u->qcap = cfg->queue_len ? cfg->queue_len : QUEUE_LEN;
    u->lose_finals = cfg->lose_finals;
    atomic_init(&u->reconnected, false);
    pthread_mutex_init(&u->lock, NULL);
    if (cfg->dir != NULL) {
        open_flash(u);
    } else {
        u->ifl = *cfg->iflash; /* the caller's flash: kflash_t is a handle on its backend */
        u->qfl = *cfg->qspi;
    }
    u->rng = cfg->seed != 0 ? cfg->seed : (uint32_t)mono_ms() | 1u;
    if (cfg->install != NULL) {
        install(u, cfg->install);
    }
    uint32_t nkeys = 0;
    char list[1024];
    snprintf(list, sizeof(list), "%s", cfg->keys ? cfg->keys : "");
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p && nkeys < MAX_KEYS;
         p = strtok_r(NULL, ",", &save)) {
        keyfile_key_t k;
        char why[256];
        if (!keyfile_load(p, false, &k, why, sizeof(why))) {
            fprintf(stderr, "simdev: --update-key %s: %s\n", p, why);
            exit(1);
        }
        memcpy(u->keys[nkeys++].pub, k.pub, KBDL_PUBKEY_SIZE);
    }
    upd_config_t uc;
    kboard_upd_config(u->cfg.board, &u->ifl, &u->qfl, &uc);
    uc.trust = (kbdl_trust_t){u->keys, nkeys, u->cfg.device_type, cfg->uv_version, 0};
    /* The staging key would never leave a real device's secure world; here it is per device dir. */
    for (uint32_t i = 0; i < UPD_KEY_SIZE; i++) {
        uc.key[i] = (uint8_t)(0x5Au ^ i);
    }
    kerr_t err = upd_open(u->upd, &uc);
    if (err == KERR_OK) {
        err = upd_boot(u->upd);
    }
    if (err != KERR_OK) {
        die("engine", err);
    }
    upd_status_t st;
    upd_status(u->upd, &st);
    if (!cfg->quiet) {
        printf("update-engine phase %u version %u counter %u\n", st.phase, st.version, st.counter);
    }
    return u;
}

void sdu_close(sdu_t *u)
{
    if (u == NULL) {
        return;
    }
    upd_close(u->upd);
    if (u->cfg.dir != NULL) {
        kflash_file_close(&u->iff);
        kflash_file_close(&u->qff);
    }
    pthread_mutex_destroy(&u->lock);
    free(u->iused);
    free(u->upd);
    free(u->q);
    free(u);
}

void sdu_hello(sdu_t *u, keel_v1_Hello *h)
{
    uint8_t hdr[KAPP_HDR_SIZE];
    kapp_hdr_t ah;
    keel_v1_Region *r = &h->regions[h->regions_count++];

    snprintf(r->name, sizeof(r->name), "app");
    const kboard_t *b = u->cfg.board;
    h->device_type = u->cfg.device_type;
    r->size = b->ipart.app_slot.size;
    if (!u->sha_valid) {
        u->sha_valid = upd_region_sha(u->upd, u->sha) == KERR_OK;
    }
    if (u->sha_valid) {
        memcpy(r->sha256, u->sha, sizeof(r->sha256));
    } else {
        memset(r->sha256, 0, sizeof(r->sha256));
    }
    h->app_version = 0;
    if (kflash_read(&u->ifl, kboard_app_hdr_off(b), hdr, sizeof(hdr)) == KERR_OK &&
        kapp_hdr_decode(hdr, b->app_code.base, b->app_code.size, &ah) == KERR_OK) {
        h->app_version = ah.version;
        if (u->cfg.hello_image) {
            /* the older hello: the image's size and hash from the app header */
            r->size = ah.image_size;
            memcpy(r->sha256, ah.sha256, sizeof(r->sha256));
        }
    }
    r->version = h->app_version;
    upd_status_t st;
    light_status(u, &st);
    h->update_trial = st.phase == UPD_PHASE_TRIAL;
}

void sdu_reconnected(sdu_t *u)
{
    atomic_store(&u->reconnected, true);
}

void sdu_push(sdu_t *u, kproto_topic_t t, const keel_v1_Envelope *env)
{
    pthread_mutex_lock(&u->lock);
    if (u->qlen < u->qcap) {
        item_t *it = &u->q[(u->qhead + u->qlen++) % u->qcap];
        it->t = t;
        it->env = *env;
    } else if (!u->cfg.quiet) {
        printf("update-queue-full\n"); /* dropped: the agent asks again after its timeout */
    }
    pthread_mutex_unlock(&u->lock);
}

unsigned sdu_finals(sdu_t *u)
{
    return u->finals;
}

uint32_t sdu_min_bytes(sdu_t *u)
{
    return u->min_bytes;
}

unsigned sdu_installs(sdu_t *u)
{
    return u->installs;
}

unsigned sdu_reinstalls(sdu_t *u)
{
    return u->reinstalls;
}

void sdu_counts(sdu_t *u, unsigned *statuses, unsigned *acked)
{
    *statuses = u->statuses;
    *acked = u->acked;
}

bool sdu_status_acked(sdu_t *u)
{
    return !u->status_unacked;
}

/* ---- reporting -------------------------------------------------------------------------------- */

static bool is_final(const keel_v1_UpdateStatus *s)
{
    return s->state == keel_v1_UpdateState_UPDATE_STATE_IDLE &&
           s->result != keel_v1_UpdateResult_UPDATE_RESULT_INITIAL;
}

/* Publish the kept status (--lose-final: the first finals vanish as on a broken link; --repeat:
 * each is sent that many times, as redeliveries would). */
static void send_status(sdu_t *u)
{
    keel_v1_UpdateStatus *s = &u->status_env.body.update_status;
    unsigned times = u->cfg.repeat_status ? u->cfg.repeat_status : 1u;

    u->status_sent_ms = mono_ms();
    if (is_final(s) && u->lose_finals > 0) {
        u->lose_finals--;
        u->status_msg_id = 0; /* an ack of an earlier status does not acknowledge this one */
        printf("update-status-lost %llu\n", (unsigned long long)s->deployment_id);
        return;
    }
    for (unsigned i = 0; i < times; i++) {
        keel_v1_Envelope env = u->status_env;
        uint32_t id = u->cfg.send(u->cfg.ctx, KPROTO_T_UPDATE_STATUS, &env);
        if (id != 0) {
            u->status_msg_id = id;
            u->status_ids[u->status_nids++ % STATUS_IDS] = id;
            u->statuses++;
            if (!u->cfg.quiet) {
                printf("update-status-sent %u\n", id);
            }
        }
    }
}

static void status(sdu_t *u, keel_v1_UpdateState state, keel_v1_UpdateResult result, kerr_t code,
                   const char *detail)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    keel_v1_UpdateStatus *s = &env.body.update_status;
    upd_status_t us;

    light_status(u, &us);
    env.which_body = keel_v1_Envelope_update_status_tag;
    s->deployment_id = u->offer.deployment_id;
    s->state = state;
    s->result = result;
    s->code = (uint32_t)code;
    snprintf(s->detail, sizeof(s->detail), "%s", detail ? detail : "");
    s->version = u->m.version;
    s->installed_version = us.version;
    s->blocks_total = u->m.layer_count ? u->m.layers[0].block_count : 0;
    s->blocks_needed = u->blocks_needed;
    s->blocks_staged = u->blocks_staged;
    s->bytes_fetched = u->bytes_fetched;
    s->trial = us.phase == UPD_PHASE_TRIAL;
    u->status_env = env;
    u->status_unacked = true;
    u->status_nids = 0; /* new content: acks of the old one do not count */
    u->status_ms = mono_ms();
    u->reported_staged = u->blocks_staged;
    if (!u->cfg.quiet) {
        printf("update-status %llu %s %s %d %s\n", (unsigned long long)s->deployment_id,
               kproto_update_state_name(state), kproto_update_result_name(result), (int)code,
               s->detail);
    }
    send_status(u);
    if (is_final(s)) {
        u->finals++;
        u->st = ST_DONE;
        u->last_final = env;
    }
}

static void on_ack(sdu_t *u, const keel_v1_Ack *a)
{
    bool ours = false;
    for (unsigned i = 0; i < u->status_nids && i < STATUS_IDS; i++) {
        ours = ours || (a->msg_id != 0 && u->status_ids[i] == a->msg_id);
    }
    if (u->status_unacked && ours) {
        u->status_unacked = false;
        u->acked++;
        if (!u->cfg.quiet) {
            printf("update-status-acked %u\n", a->msg_id);
        }
    }
}

/* A refusal of the manifest: the LwM2M result and a sentence with the numbers. */
static void refused(sdu_t *u, kerr_t err)
{
    char d[96];
    upd_status_t us;
    keel_v1_UpdateResult r = keel_v1_UpdateResult_UPDATE_RESULT_UNSUPPORTED_PACKAGE;

    upd_status(u->upd, &us);
    switch (err) {
    case KERR_BDL_SIGNATURE:
    case KERR_UPD_BLOCK:
    case KERR_UPD_VERIFY:
    case KERR_UPD_AUTH:
        r = keel_v1_UpdateResult_UPDATE_RESULT_INTEGRITY_FAILURE;
        snprintf(d, sizeof(d), "%s", kerr_str(err));
        break;
    case KERR_BDL_COUNTER:
        snprintf(d, sizeof(d), "security counter %u < installed %u (anti-rollback)",
                 u->m.security_counter, us.counter);
        break;
    case KERR_BDL_DEVICE:
        snprintf(d, sizeof(d), "built for device type 0x%x, this is 0x%x", u->m.device_type,
                 u->cfg.device_type);
        break;
    case KERR_BDL_KEY:
        snprintf(d, sizeof(d), "signed by key id %02x%02x%02x%02x..., not a key this device trusts",
                 u->m.key_id[0], u->m.key_id[1], u->m.key_id[2], u->m.key_id[3]);
        break;
    case KERR_UPD_NOSPACE:
        r = keel_v1_UpdateResult_UPDATE_RESULT_NOT_ENOUGH_FLASH;
        snprintf(d, sizeof(d), "%s", kerr_str(err));
        break;
    default:
        snprintf(d, sizeof(d), "%s", kerr_str(err));
        break;
    }
    status(u, keel_v1_UpdateState_UPDATE_STATE_IDLE, r, err, d);
}

/* ---- fetching --------------------------------------------------------------------------------- */

static void ask(sdu_t *u, uint32_t chunk)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    keel_v1_UpdateFetch *f = &env.body.update_fetch;
    uint32_t off = chunk * KPROTO_CHUNK_MAX;

    env.which_body = keel_v1_Envelope_update_fetch_tag;
    f->deployment_id = u->offer.deployment_id;
    memcpy(f->bundle_sha256, u->offer.bundle_sha256, 32);
    f->offset = u->r.start + off;
    f->length = u->r.len - off < KPROTO_CHUNK_MAX ? u->r.len - off : KPROTO_CHUNK_MAX;
    u->cfg.send(u->cfg.ctx, KPROTO_T_UPDATE_FETCH, &env);
}

/* When the requests sent now are asked again (P3: the back-off, jittered). */
static uint64_t next_due(sdu_t *u)
{
    u->rng ^= u->rng << 13;
    u->rng ^= u->rng >> 17;
    u->rng ^= u->rng << 5;
    return mono_ms() + kbackoff_wait(&u->backoff, u->rng);
}

static uint32_t in_flight(const range_t *r)
{
    return (uint32_t)__builtin_popcount(r->asked & ~r->have);
}

/* P3: ask for the next chunks not asked yet, up to KBACKOFF_WINDOW in flight. */
static void fill_window(sdu_t *u)
{
    uint32_t n = in_flight(&u->r);
    for (uint32_t c = 0; c < u->r.nchunks && n < KBACKOFF_WINDOW; c++) {
        if (!(u->r.asked & (1u << c))) {
            u->r.asked |= 1u << c;
            ask(u, c);
            n++;
        }
    }
}

/* Fetch bundle bytes [start, start + len) into dst (len <= 32 chunks). */
static void fetch(sdu_t *u, uint32_t start, uint32_t len, uint8_t *dst)
{
    u->r = (range_t){start, len, dst, 0, 0, (len + KPROTO_CHUNK_MAX - 1) / KPROTO_CHUNK_MAX, 0, true};
    kbackoff_reset(&u->backoff);
    u->r.due_ms = next_due(u);
    fill_window(u);
}

static bool fetched(const sdu_t *u)
{
    return u->r.active && u->r.have == (u->r.nchunks == 32 ? 0xFFFFFFFFu : (1u << u->r.nchunks) - 1u);
}

static void on_chunk(sdu_t *u, const keel_v1_UpdateChunk *c)
{
    if (!u->r.active || c->deployment_id != u->offer.deployment_id || c->offset < u->r.start) {
        return;
    }
    uint32_t off = c->offset - u->r.start;
    uint32_t idx = off / KPROTO_CHUNK_MAX;
    uint32_t want = u->r.len - off < KPROTO_CHUNK_MAX ? u->r.len - off : KPROTO_CHUNK_MAX;
    if (off % KPROTO_CHUNK_MAX != 0 || idx >= u->r.nchunks || c->data.size != want ||
        (u->r.have & (1u << idx))) {
        return; /* not what we asked for, or a duplicate (QoS 1 is at least once) */
    }
    memcpy(u->r.dst + off, c->data.bytes, want);
    u->r.have |= 1u << idx;
    u->r.asked |= 1u << idx; /* a chunk from an earlier ask (keeld restarted) counts too */
    u->bytes_fetched += want;
    /* Any chunk resets the back-off: the link and keeld are alive. */
    kbackoff_reset(&u->backoff);
    u->r.due_ms = next_due(u);
    fill_window(u);
}

/* P3: requests unanswered by their time are asked again, and the next wait is twice as long. */
static void retry(sdu_t *u)
{
    if (!u->r.active || fetched(u) || mono_ms() < u->r.due_ms) {
        return;
    }
    if (!u->cfg.quiet) {
        printf("update-fetch-again %u\n", in_flight(&u->r)); /* tests wait for this evidence */
    }
    for (uint32_t c = 0; c < u->r.nchunks; c++) {
        if ((u->r.asked & (1u << c)) && !(u->r.have & (1u << c))) {
            ask(u, c);
        }
    }
    fill_window(u);
    kbackoff_grow(&u->backoff);
    u->r.due_ms = next_due(u);
}

/* ---- the update ------------------------------------------------------------------------------- */

/*
 * Where block i's bytes are in the bundle: [*out_start, +*out_len) go to *out_page_off of the
 * block, the rest is 0xFF (a page bundle: the layer's content in region block i; a delta
 * bundle: the patch's i-th block-size piece). False when the block has no payload bytes.
 */
static bool block_range(const sdu_t *u, uint32_t i, uint32_t *out_start, uint32_t *out_len,
                        uint32_t *out_page_off)
{
    /* The bundle's own rule (the microvisor's too): content bytes of a page bundle, the patch's
     * i-th piece of a delta bundle. */
    return kbdl_block_payload(&u->m, i, out_start, out_len, out_page_off) == KERR_OK && *out_len > 0u;
}

/* Start fetching the next block the engine needs, or finish staging. */
static void next_block(sdu_t *u)
{
    for (; u->block < u->m.layers[0].block_count; u->block++) {
        kerr_t need = upd_block_needed(u->upd, u->block);
        uint32_t start, len, poff;
        if (need == 1 && block_range(u, u->block, &start, &len, &poff)) {
            memset(u->page, 0xFF, sizeof(u->page));
            fetch(u, start, len, u->page + poff);
            return;
        }
    }
    u->r.active = false;
    kerr_t err = upd_stage_finish(u->upd);
    if (err != KERR_OK) {
        upd_cancel(u->upd);
        refused(u, err);
        return;
    }
    u->st = ST_STAGED;
    u->staged_ms = mono_ms();
    status(u, keel_v1_UpdateState_UPDATE_STATE_DOWNLOADED, keel_v1_UpdateResult_UPDATE_RESULT_INITIAL,
           KERR_OK, u->cfg.defer && !u->forced ? "staged; the app defers the apply" : "staged");
}

static void begin_staging(sdu_t *u)
{
    upd_plan_t plan;
    kerr_t err = kbdl_decode(u->signed_buf, u->offer.signed_size, &u->m);
    upd_status_t us;
    upd_status(u->upd, &us);
    /* A device never installs the same bundle twice (P2): the region already is the bundle's. */
    if (err == KERR_OK && us.phase == UPD_PHASE_IDLE &&
        upd_inspect(u->upd, u->signed_buf, u->offer.signed_size, &plan) == KERR_OK && plan.nothing_to_do) {
        status(u, keel_v1_UpdateState_UPDATE_STATE_IDLE, keel_v1_UpdateResult_UPDATE_RESULT_SUCCESS,
               KERR_OK, "already installed: nothing to do");
        return;
    }
    if (err == KERR_OK) {
        err = upd_stage_begin(u->upd, u->signed_buf, u->offer.signed_size);
    }
    if (err != KERR_OK) {
        refused(u, err);
        return;
    }
    u->st = ST_STAGING;
    u->block = 0;
    u->blocks_staged = 0;
    u->blocks_needed = 0;
    u->min_bytes = u->offer.signed_size;
    for (uint32_t i = 0; i < u->m.layers[0].block_count; i++) {
        uint32_t start, len, poff;
        if (upd_block_needed(u->upd, i) == 1) {
            u->blocks_needed++;
            u->min_bytes += block_range(u, i, &start, &len, &poff) ? len : 0u;
        }
    }
    status(u, keel_v1_UpdateState_UPDATE_STATE_DOWNLOADING, keel_v1_UpdateResult_UPDATE_RESULT_INITIAL,
           KERR_OK, NULL);
    next_block(u);
}

static void on_offer(sdu_t *u, const keel_v1_UpdateOffer *o)
{
    bool same = u->st != ST_NONE && o->deployment_id == u->offer.deployment_id &&
                memcmp(o->bundle_sha256, u->offer.bundle_sha256, 32) == 0;
    if (same) {
        u->forced = u->forced || o->force;
        if (u->st == ST_DONE) {
            /* keeld did not get our final status (or restarted): say it again. */
            if (!u->cfg.quiet) {
                printf("update-offer-again %llu\n", (unsigned long long)o->deployment_id);
            }
            u->status_env = u->last_final;
            u->status_nids = 0;
            u->status_unacked = true;
            send_status(u);
        }
        return;
    }
    if (!u->cfg.quiet) {
        printf("update-offer %llu %u bytes\n", (unsigned long long)o->deployment_id, o->bundle_size);
    }
    upd_status_t us;
    upd_status(u->upd, &us);
    if (us.phase == UPD_PHASE_TRIAL || us.phase == UPD_PHASE_APPLYING ||
        us.phase == UPD_PHASE_ROLLBACK) {
        return; /* busy with the last one; keeld offers again after the next hello */
    }
    u->offer = *o;
    u->forced = o->force;
    u->bytes_fetched = 0;
    memset(&u->m, 0, sizeof(u->m));
    if (o->signed_size < KBDL_HDR_SIZE || o->signed_size > SIGNED_MAX || o->signed_size > o->bundle_size) {
        u->st = ST_SIGNED;
        refused(u, KERR_BDL_MALFORMED);
        return;
    }
    u->st = ST_SIGNED;
    fetch(u, 0, o->signed_size, u->signed_buf);
}

/* Apply, "reboot" into the new app, and let it confirm or crash. */
static bool apply(sdu_t *u)
{
    status(u, keel_v1_UpdateState_UPDATE_STATE_UPDATING, keel_v1_UpdateResult_UPDATE_RESULT_INITIAL,
           KERR_OK, "applying");
    kerr_t err = upd_apply(u->upd);
    u->sha_valid = false; /* the region changed (or was rolled back) */
    if (err != KERR_OK) {
        refused(u, err);
        return true;
    }
    status(u, keel_v1_UpdateState_UPDATE_STATE_UPDATING, keel_v1_UpdateResult_UPDATE_RESULT_INITIAL,
           KERR_OK, "new app on trial");
    if (u->cfg.crash_on_trial) {
        char d[96], v[16];
        upd_status_t us;
        err = upd_rollback(u->upd, UPD_REASON_CRASH);
        u->sha_valid = false;
        upd_status(u->upd, &us);
        kapp_version_format(us.version, v, sizeof(v));
        snprintf(d, sizeof(d), "the new app crashed during its trial: rolled back to %s", v);
        status(u, keel_v1_UpdateState_UPDATE_STATE_IDLE, keel_v1_UpdateResult_UPDATE_RESULT_UPDATE_FAILED,
               err == KERR_OK ? (kerr_t)UPD_REASON_CRASH : err, d);
        return true;
    }
    err = upd_confirm(u->upd);
    if (err != KERR_OK) {
        refused(u, err);
        return true;
    }
    for (unsigned i = 0; i < u->installs && i < 4u; i++) {
        u->reinstalls += memcmp(u->installed[i], u->offer.bundle_sha256, 32) == 0;
    }
    memmove(u->installed[1], u->installed[0], 3u * 32u);
    memcpy(u->installed[0], u->offer.bundle_sha256, 32);
    u->installs++;
    status(u, keel_v1_UpdateState_UPDATE_STATE_IDLE, keel_v1_UpdateResult_UPDATE_RESULT_SUCCESS,
           KERR_OK, "confirmed by the new app");
    return true;
}

static void on_command(sdu_t *u, const keel_v1_Command *c)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;

    env.which_body = keel_v1_Envelope_result_tag;
    env.body.result.command_id = c->id;
    env.body.result.status = keel_v1_CommandStatus_COMMAND_STATUS_OK;
    if (!u->cfg.quiet) {
        printf("command %llu %s\n", (unsigned long long)c->id, kproto_command_name(c->kind));
    }
    if (c->kind == keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY) {
        if (u->st == ST_SIGNED || u->st == ST_STAGING || u->st == ST_STAGED) {
            u->forced = true; /* applied in sdu_poll, now or as soon as staged */
        } else {
            env.body.result.status = keel_v1_CommandStatus_COMMAND_STATUS_REJECTED;
            snprintf(env.body.result.detail, sizeof(env.body.result.detail), "no update in flight");
        }
    } else if (c->kind == keel_v1_CommandKind_COMMAND_KIND_UPDATE_CANCEL) {
        if (upd_cancel(u->upd) != KERR_OK) {
            env.body.result.status = keel_v1_CommandStatus_COMMAND_STATUS_REJECTED;
            snprintf(env.body.result.detail, sizeof(env.body.result.detail), "nothing to cancel");
        } else {
            u->st = ST_NONE;
            u->r.active = false;
        }
    }
    u->cfg.send(u->cfg.ctx, KPROTO_T_RESULT, &env);
}

/* Seconds after "staged" until the device applies without the app: the bundle's politeness
 * deadline, or the offer's force_after_s when that is shorter. */
static uint64_t deadline_ms(const sdu_t *u)
{
    uint64_t s = u->m.policy.politeness_s;
    if (u->offer.force_after_s != 0 && u->offer.force_after_s < s) {
        s = u->offer.force_after_s;
    }
    return u->staged_ms + s * 1000u;
}

static uint64_t status_every(const sdu_t *u)
{
    return u->cfg.status_every_ms != 0 ? u->cfg.status_every_ms : STATUS_EVERY_MS;
}

static uint64_t resend_ms(const sdu_t *u)
{
    return u->cfg.status_resend_ms != 0 ? u->cfg.status_resend_ms : STATUS_RESEND_MS;
}

uint64_t sdu_next_ms(sdu_t *u)
{
    uint64_t next = UINT64_MAX;
    pthread_mutex_lock(&u->lock);
    bool queued = u->qlen > 0;
    pthread_mutex_unlock(&u->lock);
    if (queued || fetched(u) || atomic_load(&u->reconnected) ||
        (u->st == ST_STAGED && (!u->cfg.defer || u->forced))) {
        return 0;
    }
    if (u->status_unacked) {
        next = u->status_sent_ms + resend_ms(u);
    }
    if (u->r.active && !fetched(u) && u->r.due_ms < next) {
        next = u->r.due_ms;
    }
    if (u->st == ST_STAGING && u->blocks_staged != u->reported_staged &&
        u->status_ms + status_every(u) < next) {
        next = u->status_ms + status_every(u);
    }
    if (u->st == ST_STAGED && deadline_ms(u) < next) {
        next = deadline_ms(u);
    }
    return next;
}

bool sdu_poll(sdu_t *u)
{
    /* Everything queued by the MQTT thread, then the state machine. */
    for (unsigned n = 0; n < u->qcap; n++) {
        item_t it;
        pthread_mutex_lock(&u->lock);
        bool have = u->qlen > 0;
        if (have) {
            it = u->q[u->qhead];
            u->qhead = (u->qhead + 1) % u->qcap;
            u->qlen--;
        }
        pthread_mutex_unlock(&u->lock);
        if (!have) {
            break;
        }
        if (it.t == KPROTO_T_UPDATE) {
            on_offer(u, &it.env.body.update_offer);
        } else if (it.t == KPROTO_T_UPDATE_DATA) {
            on_chunk(u, &it.env.body.update_chunk);
        } else if (it.t == KPROTO_T_CMD) {
            on_command(u, &it.env.body.command);
        } else if (it.t == KPROTO_T_ACK) {
            on_ack(u, &it.env.body.ack);
        }
    }
    if (atomic_exchange(&u->reconnected, false)) {
        /* a new connection: the kept status and every chunk not yet received, at once */
        if (u->status_unacked) {
            send_status(u);
        }
        u->r.due_ms = 0; /* what was in flight went with the old connection: ask again now */
    } else if (u->status_unacked && mono_ms() - u->status_sent_ms >= resend_ms(u)) {
        if (!u->cfg.quiet) {
            printf("update-status-resend\n");
        }
        send_status(u);
    }
    if (u->st == ST_SIGNED && fetched(u)) {
        u->r.active = false;
        begin_staging(u);
    } else if (u->st == ST_STAGING && fetched(u)) {
        kerr_t err = upd_stage_block(u->upd, u->block, u->page, u->m.block_size);
        if (err != KERR_OK) {
            upd_cancel(u->upd);
            refused(u, err);
            return false;
        }
        u->blocks_staged++;
        u->block++;
        if (u->cfg.pace_ms != 0) {
            /* a slow link: gives tests time to kill keeld in the middle of a download */
            struct timespec ts = {u->cfg.pace_ms / 1000u, (long)(u->cfg.pace_ms % 1000u) * 1000000L};
            nanosleep(&ts, NULL);
        }
        next_block(u);
    }
    /* Progress like the microvisor's: when blocks were staged since the last report, at most
     * every status_every ms (a stalled download says nothing: thousands of stalled devices would
     * otherwise flood keeld with reports of no progress). */
    if (u->st == ST_STAGING && u->blocks_staged != u->reported_staged &&
        mono_ms() - u->status_ms >= status_every(u)) {
        status(u, keel_v1_UpdateState_UPDATE_STATE_DOWNLOADING, keel_v1_UpdateResult_UPDATE_RESULT_INITIAL,
               KERR_OK, NULL);
    }
    retry(u);
    if (u->st == ST_STAGED && (!u->cfg.defer || u->forced || mono_ms() >= deadline_ms(u))) {
        return apply(u);
    }
    return false;
}

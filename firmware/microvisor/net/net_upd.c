/*
 * The update download: the device pulls an offered bundle, only the blocks it lacks.
 *
 *   UpdateOffer (deployment, size, sha, signed_size, force)
 *      |
 *      v
 *   MANIFEST  fetch [0, signed_size) in <= 2048-byte UpdateFetch requests, all in flight
 *      |      -> upd_stage_begin: verify (key, signature, type, counter, microvisor) or refuse:
 *      |         UpdateStatus{IDLE, LwM2M result, kerr code, detail}, nothing written
 *      v
 *   SCAN      upd_block_needed() for every block (a few per service run): the staging map
 *      |      survives reboots, so a resumed download asks only for what is missing
 *      v
 *   BLOCKS    per needed block: fetch the payload bytes that fall into it, rebuild the block
 *      |      (0xFF outside the layer content), upd_stage_block (hash-checked, sealed to QSPI)
 *      v
 *   FINISH    upd_stage_finish_step, one turn per service run (every block, region and content
 *             checked; a delta bundle's patch decoded a page per turn, so the connection is
 *             served meanwhile) -> DOWNLOADED, KEEL_NOTIFY_UPDATE_STAGED; the app (or the
 *             deadline, or the cloud) applies
 *
 * At most KBACKOFF_WINDOW (4) requests are in flight (protocol.md P3). A request unanswered within
 * the back-off's timeout (2 s at first, x2 per expiry up to 60 s, +-25 % jitter from the DRBG) is
 * asked again; any chunk received resets the timeout. Never a final failure: a server that is
 * down for an hour finds the download where it left it, at one request a minute.
 * A disconnect keeps everything: the fetches in flight are sent again on the next connection.
 * The same offer again is a no-op (the status is sent again); after a reboot it resumes.
 * An offer of the bundle being applied, on trial or rolled back is that update, never refused:
 * once its manifest is read, the status reports on it (final when the trial ends); an offer of
 * another bundle meanwhile waits (DL_WAIT) until the engine is idle again.
 */
#include "net_upd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "keel.h"
#include "keel/backoff.h"
#include "keel/bundle.h"
#include "keel/upd.h"
#include "keel/board.h"
#include "keel/kcrypto.h"
#include "net_seed.h"
#include "uv.h"
#include "uv_net.h"
#include "uv_upd.h"

#define FETCH_MAX KPROTO_CHUNK_MAX
#define INFLIGHT KBACKOFF_WINDOW    /* one 8 KiB block: every request of it at once */
#define STATUS_MIN_MS 2000u         /* progress at most this often (protocol.md) */
#define STATUS_RESEND_MS 10000u     /* the latest status, unacked, is sent again after this (P1) */
#define STATUS_IDS 4u               /* msg_ids of the kept status remembered for its ack */
#define SCAN_PER_RUN 8u             /* blocks hashed per service run while scanning */

typedef enum dl_phase { DL_NONE, DL_MANIFEST, DL_WAIT, DL_SCAN, DL_BLOCKS, DL_FINISH, DL_DONE } dl_phase_t;

typedef struct req {
    uint32_t off, len;
    uint32_t due_ms;          /* sent: asked again at this time without an answer */
    bool active, sent;
} req_t;

typedef struct dl {
    bool have_offer;
    keel_v1_UpdateOffer offer;
    dl_phase_t phase;
    /* the byte range being fetched: bundle [range_off, range_off + range_len) -> dst */
    uint32_t range_off, range_len;
    uint8_t *dst;
    req_t req[INFLIGHT];
    /* blocks */
    uint32_t blocks, scan_i, block;
    uint8_t need[UPD_MAX_PAGES / 8u];
    uint32_t needed, staged;
    uint32_t bytes_fetched;
    /* status */
    bool final;               /* this offer is settled (refused, failed, no-op): no fetching */
    bool engaged;             /* the engine works on this offer (staged it, or applies it) */
    bool stalled;             /* a request timed out and no chunk came since (status detail) */
    kbackoff_t backoff;       /* P3: the timeout of the requests in flight */
    uint32_t version;         /* the offered bundle's version, once its manifest was read */
    keel_v1_UpdateResult result;
    int32_t code;
    char detail[97];
    bool status_due;
    bool status_unacked;      /* the latest status went out and keeld has not acked it (P1) */
    /* The msg_ids the kept status went out with (its resends carry new ones): an ack of any of
     * them acknowledges it. keeld slower than STATUS_RESEND_MS acks an earlier copy, never the
     * latest; matching only the latest re-sent forever (seen with 1,000 simulated devices). */
    uint32_t status_ids[STATUS_IDS];
    uint32_t status_nids;
    uint32_t status_key[7];   /* what the kept status says (deployment, state, result, ...) */
    uint32_t status_ms, seen_gen, progress_ms;
    /* FINISH in turns: their time added up, how many, the longest (the network's longest wait) */
    uint64_t fin_us, fin_max_us;
    uint32_t fin_turns;
    uint8_t mbuf[UPD_MANIFEST_BUF];
    uint8_t bbuf[UPD_BLOCK_MAX];
} dl_t;

static dl_t dl;

/* ------------------------------------------------------------------------------------------ */
/* Status                                                                                      */

static keel_v1_UpdateResult result_of(kerr_t err)
{
    switch (err) {
    case KERR_BDL_SIGNATURE:
    case KERR_UPD_BLOCK:
    case KERR_UPD_VERIFY:
    case KERR_UPD_AUTH:
        return keel_v1_UpdateResult_UPDATE_RESULT_INTEGRITY_FAILURE;
    case KERR_UPD_NOSPACE:
        return keel_v1_UpdateResult_UPDATE_RESULT_NOT_ENOUGH_FLASH;
    case KERR_BDL_TRUNCATED:
    case KERR_BDL_MALFORMED:
    case KERR_BDL_VERSION:
    case KERR_BDL_KEY:
    case KERR_BDL_DEVICE:
    case KERR_BDL_COUNTER:
    case KERR_BDL_UV_VERSION:
    case KERR_BDL_UNSUPPORTED:
        return keel_v1_UpdateResult_UPDATE_RESULT_UNSUPPORTED_PACKAGE;
    default:
        return keel_v1_UpdateResult_UPDATE_RESULT_UPDATE_FAILED;
    }
}

static void send_status(uint32_t now)
{
    upd_t *u = uv_upd_engine();
    keel_update_status_t st;
    uv_upd_status_get(&st);
    keel_v1_Envelope *env = net_link_env(keel_v1_Envelope_update_status_tag);
    keel_v1_UpdateStatus *s = &env->body.update_status;
    s->deployment_id = dl.have_offer ? dl.offer.deployment_id : 0u;
    s->state = (keel_v1_UpdateState)st.state;
    /* LwM2M: the result of *this* offer. It stays INITIAL until the offer is settled, so a
     * server never reads the previous update's SUCCESS as this one's final answer. */
    bool settled = dl.engaged && !dl.final && st.state == KEEL_UPDATE_IDLE;
    s->result = settled ? (keel_v1_UpdateResult)st.result : keel_v1_UpdateResult_UPDATE_RESULT_INITIAL;
    s->version = st.version ? st.version : dl.version;
    s->installed_version = st.installed_version;
    s->blocks_total = dl.blocks;
    s->blocks_needed = dl.needed;
    s->blocks_staged = dl.staged;
    s->bytes_fetched = dl.bytes_fetched;
    s->trial = (st.flags & KEEL_UPDATE_F_TRIAL) != 0u;
    if (dl.final && dl.result != keel_v1_UpdateResult_UPDATE_RESULT_INITIAL) {
        /* This offer was settled here (refused, no-op, given up): the engine's state is whatever
         * it was before. */
        s->state = keel_v1_UpdateState_UPDATE_STATE_IDLE;
        s->result = dl.result;
        s->code = (uint32_t)dl.code;
        snprintf(s->detail, sizeof(s->detail), "%s", dl.detail);
    } else if (settled && u && st.result == KEEL_UPDATE_RESULT_UPDATE_FAILED) {
        s->code = u->ps.reason;
        snprintf(s->detail, sizeof(s->detail), "rolled back: %s",
                 u->ps.reason == UPD_REASON_CRASH ? "the new app crashed on trial" :
                 u->ps.reason == UPD_REASON_NO_CONFIRM ? "the new app did not confirm in its trial period" :
                 u->ps.reason == UPD_REASON_VERIFY ? "the written app did not verify" : "see the device log");
    } else if (dl.stalled) {
        snprintf(s->detail, sizeof(s->detail), "no answer to fetches: asking again later");
    } else if (settled && st.result == KEEL_UPDATE_RESULT_SUCCESS) {
        snprintf(s->detail, sizeof(s->detail), "confirmed by the new app");
    }
    if (net_link_send(KPROTO_T_UPDATE_STATUS)) {
        dl.status_due = false;
        dl.status_ms = now;
        /* Kept (it is rebuilt from the state each time: always the latest) until keeld acks one
         * of the msg_ids it went out with; sent again after a reconnect or STATUS_RESEND_MS. A
         * status that says something else starts a new list: an ack of an older one is not its. */
        uint32_t key[7] = {(uint32_t)s->deployment_id, (uint32_t)(s->deployment_id >> 32),
                           (uint32_t)s->state, (uint32_t)s->result, s->code, s->blocks_staged,
                           s->trial};
        if (!dl.status_unacked || memcmp(key, dl.status_key, sizeof key) != 0) {
            memcpy(dl.status_key, key, sizeof key);
            dl.status_nids = 0;
        }
        dl.status_ids[dl.status_nids++ % STATUS_IDS] = env->msg_id;
        dl.status_unacked = true;
    }
}

/* Settle this offer with a refusal or failure: reported, nothing more fetched. */
static void settle(keel_v1_UpdateResult result, kerr_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void settle(keel_v1_UpdateResult result, kerr_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dl.detail, sizeof(dl.detail), fmt, ap);
    va_end(ap);
    dl.final = true;
    dl.result = result;
    dl.code = code;
    dl.phase = DL_NONE;
    memset(dl.req, 0, sizeof(dl.req));
    dl.status_due = true;
    uv_log("update: deployment %lu: %s", (unsigned long)dl.offer.deployment_id, dl.detail);
    uv_net_event(KEEL_LOG_ERROR, "update: deployment %lu: %s", (unsigned long)dl.offer.deployment_id,
                 dl.detail);
}

/* A refusal of the bundle, with the reason in words an operator can act on. */
static void refuse(kerr_t err)
{
    kbdl_manifest_t m;
    upd_t *u = uv_upd_engine();
    bool decoded = kbdl_decode(dl.mbuf, dl.offer.signed_size, &m) == KERR_OK;
    if (err == KERR_BDL_COUNTER && decoded && u)
        settle(result_of(err), err, "refused: security counter %lu < installed %lu (anti-rollback)",
               (unsigned long)m.security_counter, (unsigned long)u->ps.counter);
    else if (err == KERR_BDL_DEVICE && decoded)
        settle(result_of(err), err, "refused: built for device type 0x%lx, this is 0x%lx",
               (unsigned long)m.device_type, (unsigned long)kboard_fw.device_type);
    else if (err == KERR_BDL_KEY)
        settle(result_of(err), err, "refused: signed by a key this device does not trust");
    else if (err == KERR_BDL_SIGNATURE)
        settle(result_of(err), err, "refused: the signature does not verify (tampered manifest)");
    else
        settle(result_of(err), err, "refused: %s", kerr_str(err));
}

/* ------------------------------------------------------------------------------------------ */
/* Fetching a byte range                                                                       */

static void range_start(uint32_t off, uint32_t len, uint8_t *dst)
{
    dl.range_off = off;
    dl.range_len = len;
    dl.dst = dst;
    memset(dl.req, 0, sizeof(dl.req));
    for (uint32_t i = 0; i < INFLIGHT && i * FETCH_MAX < len; i++) {
        uint32_t n = len - i * FETCH_MAX;
        dl.req[i] = (req_t){.off = off + i * FETCH_MAX, .len = n < FETCH_MAX ? n : FETCH_MAX, .active = true};
    }
}

static bool range_done(void)
{
    for (uint32_t i = 0; i < INFLIGHT; i++)
        if (dl.req[i].active)
            return false;
    return true;
}

/*
 * Send what is due: requests never sent on this connection, and those unanswered past their
 * timeout (after which the timeout doubles, once per expiry however many requests it caught).
 */
static void range_send(uint32_t now)
{
    bool expired = false;
    for (uint32_t i = 0; i < INFLIGHT; i++) {
        req_t *r = &dl.req[i];
        if (!r->active || (r->sent && (int32_t)(now - r->due_ms) < 0))
            continue;
        if (r->sent)
            expired = true;
        keel_v1_UpdateFetch *f = &net_link_env(keel_v1_Envelope_update_fetch_tag)->body.update_fetch;
        f->deployment_id = dl.offer.deployment_id;
        memcpy(f->bundle_sha256, dl.offer.bundle_sha256, sizeof(f->bundle_sha256));
        f->offset = r->off;
        f->length = r->len;
        if (!net_link_send(KPROTO_T_UPDATE_FETCH))
            break; /* no room in lwIP now: next run */
        uint32_t rnd = 0;
        net_seed_random(NULL, (unsigned char *)&rnd, sizeof(rnd));
        r->sent = true;
        r->due_ms = now + kbackoff_wait(&dl.backoff, rnd);
    }
    if (expired) {
        kbackoff_grow(&dl.backoff);
        if (!dl.stalled) {
            uv_log("update: deployment %lu: no answer to fetches; asking again with back-off",
                   (unsigned long)dl.offer.deployment_id);
            dl.status_due = true;
        }
        dl.stalled = true;
    }
}

void net_upd_chunk(const keel_v1_UpdateChunk *c)
{
    if (!dl.have_offer || c->deployment_id != dl.offer.deployment_id ||
        (dl.phase != DL_MANIFEST && dl.phase != DL_BLOCKS))
        return; /* late answer to a request we no longer need */
    for (uint32_t i = 0; i < INFLIGHT; i++) {
        req_t *r = &dl.req[i];
        if (r->active && r->off == c->offset) {
            if (c->data.size != r->len) {
                uv_log("update: chunk at %lu has %lu bytes, asked for %lu: asked again",
                       (unsigned long)c->offset, (unsigned long)c->data.size, (unsigned long)r->len);
                r->sent = false;
                return;
            }
            memcpy(dl.dst + (r->off - dl.range_off), c->data.bytes, r->len);
            r->active = false;
            dl.bytes_fetched += r->len;
            kbackoff_reset(&dl.backoff); /* progress: the server answers again */
            dl.stalled = false;
            return;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Steps                                                                                       */

static bool need_get(uint32_t i)
{
    return (dl.need[i / 8u] >> (i % 8u)) & 1u;
}

/* The payload bytes of block i, within the offered bundle. */
static bool block_range(upd_t *u, uint32_t i, uint32_t *off, uint32_t *len, uint32_t *in_block)
{
    return kbdl_block_payload(&u->m, i, off, len, in_block) == KERR_OK &&
           (*len == 0u || (*off <= dl.offer.bundle_size && dl.offer.bundle_size - *off >= *len));
}

/* The next needed block from dl.block on, or finish. */
static void next_block(upd_t *u)
{
    while (dl.block < dl.blocks && !need_get(dl.block))
        dl.block++;
    if (dl.block >= dl.blocks) {
        dl.phase = DL_FINISH;
        return;
    }
    uint32_t off, len, in_block;
    if (!block_range(u, dl.block, &off, &len, &in_block)) {
        settle(keel_v1_UpdateResult_UPDATE_RESULT_UNSUPPORTED_PACKAGE, KERR_BDL_TRUNCATED,
               "refused: the offer's bundle size %lu is too small for its manifest",
               (unsigned long)dl.offer.bundle_size);
        return;
    }
    memset(dl.bbuf, 0xFF, u->page);
    range_start(off, len, dl.bbuf + in_block);
    dl.phase = DL_BLOCKS;
}

static bool installing(const upd_t *u)
{
    return u->ps.phase == UPD_PHASE_APPLYING || u->ps.phase == UPD_PHASE_TRIAL ||
           u->ps.phase == UPD_PHASE_ROLLBACK;
}

static void manifest_arrived(upd_t *u)
{
    uint8_t h[32];
    bool same = kc_sha256(dl.mbuf, dl.offer.signed_size, h) == KC_OK &&
                memcmp(h, u->ps.manifest_sha, 32) == 0;
    if (installing(u)) {
        if (same) {
            /* The bundle being applied or on trial (an offer again after a reboot, or one that came
             * during the apply): the same update, never a refusal. Report on it: the final result
             * once the trial ends. */
            uv_log("update: deployment %lu: this bundle is being installed: reporting on it",
                   (unsigned long)dl.offer.deployment_id);
            dl.engaged = true;
            dl.version = u->have_manifest ? u->m.version : 0u;
            dl.phase = DL_DONE;
        } else {
            /* Another bundle is being installed: this one waits for its end (no final answer). */
            uv_log("update: deployment %lu waits for the update being installed",
                   (unsigned long)dl.offer.deployment_id);
            dl.phase = DL_WAIT;
        }
        dl.status_due = true;
        return;
    }
    if (u->ps.phase == UPD_PHASE_IDLE && u->ps.result == UPD_RESULT_FAILED && same) {
        settle(keel_v1_UpdateResult_UPDATE_RESULT_UPDATE_FAILED, (kerr_t)u->ps.reason,
               "not applied again: this bundle was rolled back (reason %lu)", (unsigned long)u->ps.reason);
        return;
    }
    if (u->ps.phase == UPD_PHASE_IDLE) {
        upd_plan_t plan;
        kerr_t err = upd_inspect(u, dl.mbuf, dl.offer.signed_size, &plan);
        if (err != KERR_OK) {
            refuse(err);
            return;
        }
        if (plan.nothing_to_do) {
            dl.final = true;
            dl.result = keel_v1_UpdateResult_UPDATE_RESULT_SUCCESS;
            dl.code = 0;
            snprintf(dl.detail, sizeof(dl.detail), "already installed: nothing to do");
            dl.phase = DL_DONE;
            dl.status_due = true;
            uv_log("update: deployment %lu is already installed", (unsigned long)dl.offer.deployment_id);
            return;
        }
    }
    kerr_t err = upd_stage_begin(u, dl.mbuf, dl.offer.signed_size);
    uv_upd_changed();
    if (err != KERR_OK) {
        refuse(err);
        return;
    }
    dl.engaged = true;
    dl.version = u->m.version;
    dl.blocks = u->blocks;
    if (u->ps.phase == UPD_PHASE_STAGED) {
        /* Staged before a reboot: nothing to fetch; the deadline (or force) applies. */
        uv_log("update: deployment %lu is staged already", (unsigned long)dl.offer.deployment_id);
        dl.phase = DL_DONE;
        dl.status_due = true;
        uv_upd_staged(dl.offer.force, dl.offer.force_after_s);
        return;
    }
    dl.scan_i = 0;
    dl.needed = dl.staged = 0;
    memset(dl.need, 0, sizeof(dl.need));
    dl.phase = DL_SCAN;
    char v[16];
    kapp_version_format(u->m.version, v, sizeof(v));
    uv_log("update: deployment %lu: bundle %s accepted (signature, type, counter %lu); finding the "
           "blocks to fetch", (unsigned long)dl.offer.deployment_id, v, (unsigned long)u->m.security_counter);
}

static void scan(upd_t *u, uint32_t now)
{
    for (uint32_t n = 0; n < SCAN_PER_RUN && dl.scan_i < dl.blocks; n++, dl.scan_i++) {
        kerr_t r = upd_block_needed(u, dl.scan_i);
        if (r < 0) {
            settle(result_of(r), r, "staging stopped: %s", kerr_str(r));
            return;
        }
        if (r == 1) {
            dl.need[dl.scan_i / 8u] |= (uint8_t)(1u << (dl.scan_i % 8u));
            dl.needed++;
        }
    }
    if (dl.scan_i < dl.blocks)
        return;
    uv_log("update: deployment %lu: %lu of %lu blocks to fetch", (unsigned long)dl.offer.deployment_id,
           (unsigned long)dl.needed, (unsigned long)dl.blocks);
    uv_upd_progress(0u, dl.needed, true);
    dl.progress_ms = now;
    dl.status_due = true;
    dl.block = 0;
    next_block(u);
}

static void block_arrived(upd_t *u, uint32_t now)
{
    kerr_t err = upd_stage_block(u, dl.block, dl.bbuf, u->page);
    if (err != KERR_OK) {
        settle(result_of(err), err, "block %lu: %s", (unsigned long)dl.block, kerr_str(err));
        return;
    }
    dl.staged++;
    dl.block++;
    bool last = dl.staged == dl.needed;
    if (last || now - dl.progress_ms >= STATUS_MIN_MS) {
        dl.progress_ms = now;
        uv_upd_progress(dl.staged, dl.needed, true);
        dl.status_due = true;
    } else {
        uv_upd_progress(dl.staged, dl.needed, false);
    }
    next_block(u);
}

/* One turn of the stage finish per service run: the connection is served between turns. */
static void finish(upd_t *u)
{
    uint64_t t0 = uv_uptime_us();
    bool done = false;
    kerr_t err = upd_stage_finish_step(u, &done);
    uint64_t t = uv_uptime_us() - t0;
    dl.fin_us += t;
    dl.fin_turns++;
    dl.fin_max_us = t > dl.fin_max_us ? t : dl.fin_max_us;
    if (err == KERR_OK && !done) {
        uv_service_pend(); /* the next turn right after the network had its turn */
        return;
    }
    uv_upd_changed();
    if (err != KERR_OK) {
        settle(result_of(err), err, "staged bundle does not verify: %s", kerr_str(err));
        return;
    }
    uv_log("update: deployment %lu: %lu blocks staged, %lu bundle bytes fetched, verified in %lu ms; "
           "handler stack used %lu bytes; %lu turns, the longest %lu us", (unsigned long)dl.offer.deployment_id,
           (unsigned long)dl.staged, (unsigned long)dl.bytes_fetched,
           (unsigned long)(dl.fin_us / 1000u), (unsigned long)uv_net_stack_used(),
           (unsigned long)dl.fin_turns, (unsigned long)dl.fin_max_us);
    dl.phase = DL_DONE;
    dl.status_due = true;
    uv_upd_staged(dl.offer.force, dl.offer.force_after_s);
}

/* ------------------------------------------------------------------------------------------ */
/* Entry points                                                                                 */

void net_upd_offer(const keel_v1_UpdateOffer *o)
{
    bool same = dl.have_offer && o->deployment_id == dl.offer.deployment_id &&
                memcmp(o->bundle_sha256, dl.offer.bundle_sha256, 32) == 0;
    if (same) {
        dl.offer.force = dl.offer.force || o->force;
        if (dl.stalled) {
            /* the server is there again: ask at once, from the first timeout */
            kbackoff_reset(&dl.backoff);
            for (uint32_t i = 0; i < INFLIGHT; i++)
                dl.req[i].sent = false;
            dl.stalled = false;
        }
        if (dl.phase == DL_DONE && o->force)
            uv_upd_force();
        dl.status_due = true; /* the same offer again: say where it stands */
        return;
    }
    /* Even while an update is being applied or on trial (the engine busy, or after a reboot the
     * offer comes again): its manifest tells whether it is that update (manifest_arrived). */
    uv_log("update: offer of deployment %lu: %lu bytes (%lu signed)%s",
           (unsigned long)o->deployment_id, (unsigned long)o->bundle_size,
           (unsigned long)o->signed_size, o->force ? ", forced" : "");
    memset(&dl, 0, sizeof(dl) - sizeof(dl.mbuf) - sizeof(dl.bbuf));
    dl.have_offer = true;
    dl.offer = *o;
    dl.status_due = true;
    kbackoff_reset(&dl.backoff);
    if (o->signed_size < KBDL_HDR_SIZE + KBDL_SIG_ENV_SIZE || o->signed_size > sizeof(dl.mbuf) ||
        o->bundle_size < o->signed_size) {
        settle(keel_v1_UpdateResult_UPDATE_RESULT_UNSUPPORTED_PACKAGE, KERR_BDL_MALFORMED,
               "refused: signed size %lu of a %lu-byte bundle is out of bounds (max %u)",
               (unsigned long)o->signed_size, (unsigned long)o->bundle_size, (unsigned)sizeof(dl.mbuf));
        return;
    }
    range_start(0u, o->signed_size, dl.mbuf);
    dl.phase = DL_MANIFEST;
}

void net_upd_ack(uint32_t msg_id)
{
    uint32_t n = dl.status_nids < STATUS_IDS ? dl.status_nids : STATUS_IDS;
    for (uint32_t i = 0; dl.status_unacked && i < n; i++) {
        if (dl.status_ids[i] == msg_id)
            dl.status_unacked = false;
    }
}

void net_upd_connected(void)
{
    for (uint32_t i = 0; i < INFLIGHT; i++)
        dl.req[i].sent = false;
    kbackoff_reset(&dl.backoff); /* a new connection: asked again at once, first timeout */
    dl.status_due = true;
}

void net_upd_poll(uint32_t now)
{
    upd_t *u = uv_upd_engine();
    if (u == NULL)
        return; /* applying or rolling back: the thread owns the engine */
    if (dl.seen_gen != uv_upd_generation()) {
        dl.seen_gen = uv_upd_generation();
        dl.status_due = true;
    }
    if (dl.status_unacked && now - dl.status_ms >= STATUS_RESEND_MS)
        dl.status_due = true; /* keeld did not ack it (lost, or keeld restarted): again */
    switch (dl.phase) {
    case DL_MANIFEST:
    case DL_BLOCKS:
        range_send(now);
        if (range_done()) {
            if (dl.phase == DL_MANIFEST)
                manifest_arrived(u);
            else
                block_arrived(u, now);
        }
        break;
    case DL_WAIT:
        if (!installing(u))
            manifest_arrived(u);
        break;
    case DL_SCAN:
        scan(u, now);
        break;
    case DL_FINISH:
        finish(u);
        break;
    default:
        break;
    }
    if (dl.status_due && (dl.phase != DL_BLOCKS || now - dl.status_ms >= STATUS_MIN_MS))
        send_status(now);
}

keel_v1_CommandStatus net_upd_command(keel_v1_CommandKind kind, char *detail, size_t cap)
{
    upd_t *u = uv_upd_engine();
    if (u == NULL) {
        snprintf(detail, cap, "an apply or rollback is running");
        return keel_v1_CommandStatus_COMMAND_STATUS_REJECTED;
    }
    if (kind == keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY) {
        if (u->ps.phase == UPD_PHASE_STAGED || u->ps.phase == UPD_PHASE_STAGING ||
            dl.phase == DL_MANIFEST || dl.phase == DL_SCAN) {
            uv_upd_force();
            dl.offer.force = true;
            snprintf(detail, cap, u->ps.phase == UPD_PHASE_STAGED ? "applying now" : "applies once staged");
            uv_log("update: the cloud forces the apply (%s)", detail);
            return keel_v1_CommandStatus_COMMAND_STATUS_OK;
        }
        snprintf(detail, cap, "nothing staged");
        return keel_v1_CommandStatus_COMMAND_STATUS_REJECTED;
    }
    /* UPDATE_CANCEL */
    if (u->ps.phase != UPD_PHASE_STAGING && u->ps.phase != UPD_PHASE_STAGED) {
        snprintf(detail, cap, "nothing is staging (state %s)",
                 u->ps.phase == UPD_PHASE_IDLE ? "idle" : "updating");
        return keel_v1_CommandStatus_COMMAND_STATUS_REJECTED;
    }
    kerr_t err = upd_cancel(u);
    uv_upd_changed();
    if (err != KERR_OK) {
        snprintf(detail, cap, "cancel failed: %s", kerr_str(err));
        return keel_v1_CommandStatus_COMMAND_STATUS_FAILED;
    }
    settle(keel_v1_UpdateResult_UPDATE_RESULT_INITIAL, KERR_OK, "cancelled by the cloud");
    dl.result = keel_v1_UpdateResult_UPDATE_RESULT_INITIAL;
    return keel_v1_CommandStatus_COMMAND_STATUS_OK;
}

/*
 * The update engine (API and state diagram: upd.h; journal: upd_journal.h).
 *
 * QSPI staging area (stage_off, sector aligned; n = pages in the region, P = page size):
 *
 *   +0x0000  manifest + signature copy   8 KiB  written at stage_begin, vouched for by the
 *                                               journal's manifest_sha
 *   +0x2000  stage tags    16 B x n      4 KiB  AES-GCM tag of staged block i
 *   +0x3000  stage map     16 B x n      4 KiB  all 0x00: block i staged (0xFF: not yet)
 *   +0x4000  save tags     16 B x n      4 KiB  AES-GCM tag of the saved old page i
 *   +0x5000  staged blocks   P x n              slot i: block i, encrypted
 *   +0x5000 + nP  saved pages  P x n            slot i: old content of page i, encrypted
 *
 * Slot i belongs to page i so no allocation table is needed; only slots that are used are ever
 * erased (an update erases what it writes, nothing more). Each block is sealed with AES-256-GCM
 * under the device key, nonce = generation || kind || index, where the generation is the
 * sequence number of the journal record that opened the staging (or the apply). A sealed copy is
 * therefore trusted only if its tag verifies under the generation the journal holds, and the
 * plaintext is checked against the manifest's block hash on top.
 *
 * Why re-programming a tag or map entry after a cut is legal: within one generation the same
 * block index always seals the same plaintext (fixed by the manifest hash, or by an app page
 * that is not modified before its save is recorded), hence the same ciphertext and tag. A torn
 * program left a subset of those bits cleared; programming the full value only clears more.
 *
 * Apply (one changed page i; every step is redone from the last durable record on resume):
 *
 *   erase save slot i -> program sealed old page -> program save tag i
 *     -> RECORD {APPLYING, step=i, saved+=i}          (the old page is now recoverable)
 *     -> erase page i -> program page i from the staged block (or leave erased)
 *
 * A page is modified only after the record saying its old content is saved is durable, and a
 * saved copy is never rewritten while a record refers to it (the save tags sector is erased
 * only when the next apply starts, after confirm or rollback released the previous copies).
 */
#include <string.h>


#include "keel/kcrypto.h"
#include "keel/upd.h"

#include "le.h"
#include "upd_priv.h"

const uint8_t upd_zero16[TAG];

uint32_t upd_stage_bytes(uint32_t region_len)
{
    return Q_SLOTS + 2u * region_len;
}

/* --- small helpers ---------------------------------------------------------------------- */

static bool bit_get(const uint8_t *bm, uint32_t i)
{
    return (bm[i / 8u] >> (i % 8u)) & 1u;
}

static void bit_set(uint8_t *bm, uint32_t i)
{
    bm[i / 8u] |= (uint8_t)(1u << (i % 8u));
}

static const uint8_t *target_sha(const upd_t *u, uint32_t i)
{
    return u->m.layers[0].block_sha + i * 32u;
}

static bool target_is_erased(const upd_t *u, uint32_t i)
{
    return memcmp(target_sha(u, i), u->ff_sha, 32) == 0;
}

kerr_t upd_sha256(const uint8_t *p, uint32_t n, uint8_t out[32])
{
    return kc_sha256(p, n, out) == KC_OK ? KERR_OK : KERR_UPD_CRYPTO;
}

/* Durably move to state s; the in-RAM copy follows only once the record is on flash. */
kerr_t upd_record(upd_t *u, const upd_pstate_t *s)
{
    kerr_t err = upd_journal_append(&u->j, s);
    if (err == KERR_OK) {
        u->ps = *s;
    }
    return err;
}

void upd_nonce(uint32_t gen, uint32_t kind, uint32_t idx, uint8_t nonce[12])
{
    le_put32(nonce, gen);
    le_put32(nonce + 4, kind);
    le_put32(nonce + 8, idx);
}

/* Encrypt u->buf (one page) in place. */
kerr_t upd_seal(upd_t *u, uint32_t gen, uint32_t kind, uint32_t idx, uint8_t tag[TAG])
{
    uint8_t nonce[12];
    upd_nonce(gen, kind, idx, nonce);
    return kc_gcm_seal(u->cfg.key, UPD_KEY_SIZE, nonce, NULL, 0, u->buf, u->page, u->buf, tag) ==
                   KC_OK
               ? KERR_OK
               : KERR_UPD_CRYPTO;
}

/* Read the sealed copy at slot with its tag at tag_off into u->buf and decrypt it in place. */
static kerr_t unseal_from(upd_t *u, uint32_t slot, uint32_t tag_off, uint32_t gen, uint32_t kind,
                          uint32_t idx)
{
    uint8_t tag[TAG];
    uint8_t nonce[12];
    kerr_t err = kflash_read(u->cfg.qspi, slot, u->buf, u->page);
    if (err == KERR_OK) {
        err = kflash_read(u->cfg.qspi, tag_off, tag, TAG);
    }
    if (err != KERR_OK) {
        return err;
    }
    upd_nonce(gen, kind, idx, nonce);
    switch (kc_gcm_open(u->cfg.key, UPD_KEY_SIZE, nonce, NULL, 0, u->buf, u->page, tag, u->buf)) {
    case KC_OK: return KERR_OK;
    case KC_BAD_TAG: return KERR_UPD_AUTH;
    default: return KERR_UPD_CRYPTO;
    }
}

static kerr_t page_sha(upd_t *u, uint32_t i, uint8_t out[32])
{
    kerr_t err = kflash_read(u->cfg.iflash, page_off(u, i), u->buf, u->page);
    return err != KERR_OK ? err : upd_sha256(u->buf, u->page, out);
}

kerr_t upd_region_sha(upd_t *u, uint8_t out[32])
{
    kc_sha256_t c = KC_SHA256_INIT;
    kerr_t err = kc_sha256_start(&c) == KC_OK ? KERR_OK : KERR_UPD_CRYPTO;
    for (uint32_t i = 0; err == KERR_OK && i < u->blocks; i++) {
        err = kflash_read(u->cfg.iflash, page_off(u, i), u->buf, u->page);
        if (err == KERR_OK && kc_sha256_update(&c, u->buf, u->page) != KC_OK) {
            err = KERR_UPD_CRYPTO;
        }
    }
    if (err != KERR_OK) {
        kc_sha256_abort(&c);
        return err;
    }
    return kc_sha256_finish(&c, out) == KC_OK ? KERR_OK : KERR_UPD_CRYPTO;
}

/* Page i already holds the bundle's block i. */
static kerr_t page_matches(upd_t *u, uint32_t i, bool *out)
{
    uint8_t h[32];
    kerr_t err = page_sha(u, i, h);
    *out = err == KERR_OK && memcmp(h, target_sha(u, i), 32) == 0;
    return err;
}

kerr_t upd_is_staged(upd_t *u, uint32_t i, bool *out)
{
    uint8_t e[TAG];
    kerr_t err = kflash_read(u->cfg.qspi, q(u, Q_STAGE_MAP) + i * TAG, e, TAG);
    *out = err == KERR_OK && memcmp(e, upd_zero16, TAG) == 0;
    return err;
}

/* --- manifest ------------------------------------------------------------------------------ */

/* Read back the staged manifest; trusted only if it hashes to what the journal recorded. */
static kerr_t load_manifest(upd_t *u)
{
    u->have_manifest = false;
    kerr_t err = kflash_read(u->cfg.qspi, q(u, Q_MANIFEST), u->mbuf, KBDL_HDR_SIZE);
    if (err != KERR_OK) {
        return err;
    }
    uint32_t total = le_get32(u->mbuf + KBDL_OFF_MANIFEST_LEN) + KBDL_SIG_ENV_SIZE;
    if (total > sizeof(u->mbuf) || total < KBDL_HDR_SIZE) {
        return KERR_UPD_VERIFY;
    }
    err = kflash_read(u->cfg.qspi, q(u, Q_MANIFEST), u->mbuf, total);
    uint8_t h[32];
    if (err == KERR_OK) {
        err = upd_sha256(u->mbuf, total, h);
    }
    if (err != KERR_OK) {
        return err;
    }
    if (memcmp(h, u->ps.manifest_sha, 32) != 0 || kbdl_decode(u->mbuf, total, &u->m) != KERR_OK) {
        return KERR_UPD_VERIFY;
    }
    /* A delta's block hashes exist from STAGED on, derived and sealed by its staging. */
    if (u->m.layers[0].delta && u->ps.phase != UPD_PHASE_STAGING) {
        err = upd_delta_load_table(u);
        if (err != KERR_OK) {
            return err;
        }
    }
    u->have_manifest = true;
    return KERR_OK;
}

/* This engine takes one layer: the whole app region, in pages, with the device staging key. */
static kerr_t check_layers(const upd_t *u, const kbdl_manifest_t *m)
{
    const kbdl_layer_t *l = &m->layers[0];
    if (m->layer_count != 1u || l->region != KBDL_REGION_APP || m->block_size != u->page ||
        l->region_len != u->cfg.region_len || l->enc_key_id != 0u ||
        (l->delta && l->offset != 0u)) {
        return KERR_BDL_UNSUPPORTED;
    }
    return KERR_OK;
}

/* --- open / status ------------------------------------------------------------------------- */

kerr_t upd_open(upd_t *u, const upd_config_t *cfg)
{
    memset(u, 0, sizeof(*u));
    u->cfg = *cfg;
    kflash_t *fi = cfg->iflash, *fq = cfg->qspi;
    if (fi == NULL || fq == NULL) {
        return KERR_INVAL;
    }
    u->page = fi->geo.erase_size;
    u->blocks = cfg->region_len / (u->page ? u->page : 1u);
    bool region_ok = u->page <= UPD_BLOCK_MAX && u->page >= 512u && u->blocks >= 1u &&
                     u->blocks <= UPD_MAX_PAGES && cfg->region_len == u->blocks * u->page &&
                     (cfg->region_off & (u->page - 1u)) == 0u && cfg->region_off <= fi->geo.size &&
                     fi->geo.size - cfg->region_off >= cfg->region_len &&
                     (cfg->journal_off >= cfg->region_off + cfg->region_len ||
                      cfg->journal_off + UPD_JOURNAL_PAGES * u->page <= cfg->region_off);
    bool qspi_ok = META_SECTOR % fq->geo.erase_size == 0u && u->page % fq->geo.erase_size == 0u &&
                   fq->geo.prog_unit <= TAG && (cfg->stage_off & (META_SECTOR - 1u)) == 0u &&
                   cfg->stage_off <= fq->geo.size &&
                   cfg->stage_len >= upd_stage_bytes(cfg->region_len) &&
                   fq->geo.size - cfg->stage_off >= cfg->stage_len;
    if (!region_ok || !qspi_ok) {
        return KERR_INVAL;
    }
    memset(u->buf, 0xFF, u->page);
    kerr_t err = upd_sha256(u->buf, u->page, u->ff_sha);
    if (err == KERR_OK) {
        err = upd_journal_mount(&u->j, fi, cfg->journal_off, &u->ps);
    }
    if (err != KERR_OK) {
        return err;
    }
    if (u->ps.phase >= UPD_PHASE_STAGING && u->ps.phase <= UPD_PHASE_TRIAL) {
        err = load_manifest(u);
        /* A manifest that does not read back is handled by upd_boot; only I/O fails open. */
        if (err != KERR_OK && err != KERR_UPD_VERIFY) {
            return err;
        }
    }
    return KERR_OK;
}

void upd_close(upd_t *u)
{
    upd_delta_release(u);
    kc_wipe(u->cfg.key, sizeof(u->cfg.key));
}

kerr_t upd_block_needed(upd_t *u, uint32_t idx)
{
    if (u->ps.phase != UPD_PHASE_STAGING || !u->have_manifest) {
        return KERR_UPD_STATE;
    }
    if (idx >= u->blocks) {
        return KERR_RANGE;
    }
    if (u->m.layers[0].delta) {
        return upd_delta_block_needed(u, idx);
    }
    if (target_is_erased(u, idx)) {
        return 0;
    }
    bool done;
    kerr_t err = upd_is_staged(u, idx, &done);
    if (err == KERR_OK && !done) {
        err = page_matches(u, idx, &done);
    }
    return err != KERR_OK ? err : (done ? 0 : 1);
}

void upd_status(upd_t *u, upd_status_t *out)
{
    memset(out, 0, sizeof(*out));
    out->phase = (upd_phase_t)u->ps.phase;
    out->result = (upd_result_t)u->ps.result;
    out->reason = u->ps.reason;
    out->counter = u->ps.counter;
    out->version = u->ps.version;
    if (u->have_manifest && u->ps.phase != UPD_PHASE_IDLE) {
        out->staging_version = u->m.version;
    }
    for (uint32_t i = 0; u->ps.phase == UPD_PHASE_STAGING && i < u->blocks; i++) {
        out->blocks_needed += upd_block_needed(u, i) == 1 ? 1u : 0u;
    }
}

/* --- inspect / staging ---------------------------------------------------------------------- */

static kerr_t inspect(upd_t *u, const uint8_t *bundle, uint32_t len, kbdl_manifest_t *m,
                      upd_plan_t *out)
{
    memset(out, 0, sizeof(*out));
    u->fin.phase = 0; /* u->buf is used here: a stage finish in turns starts over */
    kbdl_trust_t trust = u->cfg.trust;
    if (trust.installed_counter < u->ps.counter) {
        trust.installed_counter = u->ps.counter;
    }
    kerr_t err = kbdl_verify(bundle, len, &trust, m);
    if (err == KERR_OK) {
        err = check_layers(u, m);
    }
    if (err != KERR_OK) {
        return err;
    }
    if (m->layers[0].delta) {
        return upd_delta_inspect(u, m, out);
    }
    out->blocks = u->blocks;
    const uint8_t *sha = m->layers[0].block_sha;
    for (uint32_t i = 0; i < u->blocks; i++) {
        uint8_t h[32];
        err = page_sha(u, i, h);
        if (err != KERR_OK) {
            return err;
        }
        if (memcmp(h, sha + i * 32u, 32) != 0) {
            out->changed++;
            out->to_stage += memcmp(sha + i * 32u, u->ff_sha, 32) != 0 ? 1u : 0u;
        }
    }
    uint32_t per_page = u->page / u->cfg.qspi->geo.erase_size;
    uint32_t meta = Q_SLOTS / u->cfg.qspi->geo.erase_size;
    out->qspi_erases = meta + (out->to_stage + out->changed) * per_page;
    out->nothing_to_do = out->changed == 0u;
    return KERR_OK;
}

kerr_t upd_inspect(upd_t *u, const uint8_t *bundle, uint32_t len, upd_plan_t *out)
{
    kbdl_manifest_t m;
    return inspect(u, bundle, len, &m, out);
}

kerr_t upd_stage_begin(upd_t *u, const uint8_t *bundle, uint32_t len)
{
    kbdl_manifest_t m;
    upd_plan_t plan;
    kerr_t err = inspect(u, bundle, len, &m, &plan);
    if (err != KERR_OK) {
        return err;
    }
    uint32_t total = kbdl_signed_size(&m);
    uint8_t h[32];
    err = upd_sha256(bundle, total, h);
    if (err != KERR_OK) {
        return err;
    }
    if (u->ps.phase == UPD_PHASE_STAGING || u->ps.phase == UPD_PHASE_STAGED) {
        if (u->have_manifest && memcmp(h, u->ps.manifest_sha, 32) == 0) {
            return KERR_OK; /* the same bundle again: resume the staging in place */
        }
        /* Abandon the old staging durably before its area is erased. */
        upd_pstate_t s = u->ps;
        s.phase = UPD_PHASE_IDLE;
        err = upd_record(u, &s);
        if (err != KERR_OK) {
            return err;
        }
        u->have_manifest = false;
    }
    if (u->ps.phase != UPD_PHASE_IDLE) {
        return KERR_UPD_STATE;
    }
    u->have_manifest = false;
    uint32_t unit = u->cfg.qspi->geo.prog_unit;
    uint32_t padded = (total + unit - 1u) / unit * unit;
    memset(u->mbuf, 0xFF, sizeof(u->mbuf));
    memcpy(u->mbuf, bundle, total);
    err = kflash_erase_range(u->cfg.qspi, q(u, Q_MANIFEST), Q_STAGE_TAGS - Q_MANIFEST);
    if (err == KERR_OK) {
        err = kflash_erase_range(u->cfg.qspi, q(u, Q_STAGE_TAGS), Q_SAVE_TAGS - Q_STAGE_TAGS);
    }
    if (err == KERR_OK && m.layers[0].delta) { /* patch block tags; no saved page is live */
        err = kflash_erase_range(u->cfg.qspi, q(u, Q_SAVE_TAGS), META_SECTOR);
    }
    if (err == KERR_OK) {
        err = kflash_program(u->cfg.qspi, q(u, Q_MANIFEST), u->mbuf, padded);
    }
    if (err != KERR_OK) {
        return err;
    }
    upd_pstate_t s = u->ps;
    s.phase = UPD_PHASE_STAGING;
    s.step = UPD_STEP_NONE;
    s.stage_gen = u->j.seq + 1u;
    memcpy(s.manifest_sha, h, 32);
    memset(s.saved, 0, sizeof(s.saved));
    err = upd_record(u, &s);
    if (err == KERR_OK) {
        err = kbdl_decode(u->mbuf, total, &u->m);
        u->have_manifest = err == KERR_OK;
    }
    return err;
}

kerr_t upd_stage_block(upd_t *u, uint32_t idx, const uint8_t *data, uint32_t len)
{
    if (u->ps.phase != UPD_PHASE_STAGING || !u->have_manifest) {
        return KERR_UPD_STATE;
    }
    if (idx >= u->blocks || len != u->page) {
        return KERR_RANGE;
    }
    if (u->m.layers[0].delta) {
        return upd_delta_stage_block(u, idx, data, len);
    }
    uint8_t h[32];
    kerr_t err = upd_sha256(data, len, h);
    if (err != KERR_OK) {
        return err;
    }
    if (memcmp(h, target_sha(u, idx), 32) != 0) {
        return KERR_UPD_BLOCK;
    }
    err = upd_block_needed(u, idx);
    if (err <= 0) {
        return err; /* already staged, already in place, or erased: nothing to store */
    }
    memcpy(u->buf, data, len);
    return upd_store_staged(u, idx);
}

kerr_t upd_store_staged(upd_t *u, uint32_t idx)
{
    uint8_t tag[TAG];
    kerr_t err = upd_seal(u, u->ps.stage_gen, SEAL_STAGE, idx, tag);
    if (err == KERR_OK) {
        err = kflash_erase_range(u->cfg.qspi, stage_slot(u, idx), u->page);
    }
    if (err == KERR_OK) {
        err = kflash_program(u->cfg.qspi, stage_slot(u, idx), u->buf, u->page);
    }
    if (err == KERR_OK) {
        err = kflash_program(u->cfg.qspi, q(u, Q_STAGE_TAGS) + idx * TAG, tag, TAG);
    }
    if (err == KERR_OK) {
        err = kflash_program(u->cfg.qspi, q(u, Q_STAGE_MAP) + idx * TAG, upd_zero16, TAG);
    }
    return err;
}

/* Put the bundle's block i into u->buf: erased, staged (authenticated) or already in place. */
static kerr_t reconstruct(upd_t *u, uint32_t i)
{
    if (target_is_erased(u, i)) {
        memset(u->buf, 0xFF, u->page);
        return KERR_OK;
    }
    bool staged;
    kerr_t err = upd_is_staged(u, i, &staged);
    if (err == KERR_OK) {
        err = staged ? unseal_from(u, stage_slot(u, i), q(u, Q_STAGE_TAGS) + i * TAG,
                                   u->ps.stage_gen, SEAL_STAGE, i)
                     : kflash_read(u->cfg.iflash, page_off(u, i), u->buf, u->page);
    }
    uint8_t h[32];
    if (err == KERR_OK) {
        err = upd_sha256(u->buf, u->page, h);
    }
    if (err == KERR_OK && memcmp(h, target_sha(u, i), 32) != 0) {
        err = staged ? KERR_UPD_VERIFY : KERR_UPD_INCOMPLETE;
    }
    return err;
}

kerr_t upd_stage_finish_step(upd_t *u, bool *done)
{
    *done = u->ps.phase == UPD_PHASE_STAGED;
    if (*done) {
        return KERR_OK;
    }
    if (u->ps.phase != UPD_PHASE_STAGING || !u->have_manifest) {
        return KERR_UPD_STATE;
    }
    if (!u->m.layers[0].delta) {
        kerr_t err = upd_stage_finish(u); /* pages: in one go */
        *done = err == KERR_OK;
        return err;
    }
    bool over = false;
    kerr_t err = upd_delta_finish_step(u, &over);
    if (err == KERR_OK && over) {
        upd_pstate_t s = u->ps;
        s.phase = UPD_PHASE_STAGED;
        err = upd_record(u, &s);
        *done = err == KERR_OK;
    }
    return err;
}

kerr_t upd_stage_finish(upd_t *u)
{
    if (u->ps.phase == UPD_PHASE_STAGED) {
        return KERR_OK;
    }
    if (u->ps.phase != UPD_PHASE_STAGING || !u->have_manifest) {
        return KERR_UPD_STATE;
    }
    const kbdl_layer_t *l = &u->m.layers[0];
    if (l->delta) { /* every turn at once */
        bool done = false;
        kerr_t err;
        u->fin.phase = 0;
        do {
            err = upd_stage_finish_step(u, &done);
        } while (err == KERR_OK && !done);
        return err;
    }
    kc_sha256_t rc = KC_SHA256_INIT, cc = KC_SHA256_INIT;
    kerr_t err = KERR_OK;
    if (kc_sha256_start(&rc) != KC_OK || kc_sha256_start(&cc) != KC_OK) {
        err = KERR_UPD_CRYPTO;
    }
    for (uint32_t i = 0; err == KERR_OK && i < u->blocks; i++) {
        err = reconstruct(u, i);
        if (err != KERR_OK) {
            break;
        }
        /* The content is the part of the region in [offset, offset + size). */
        uint32_t b0 = i * u->page, b1 = b0 + u->page;
        uint32_t c0 = l->offset > b0 ? l->offset : b0;
        uint32_t c1 = l->offset + l->size < b1 ? l->offset + l->size : b1;
        if (kc_sha256_update(&rc, u->buf, u->page) != KC_OK ||
            (c0 < c1 && kc_sha256_update(&cc, u->buf + (c0 - b0), c1 - c0) != KC_OK)) {
            err = KERR_UPD_CRYPTO;
        }
    }
    uint8_t rh[32], ch[32];
    if (err == KERR_OK &&
        (kc_sha256_finish(&rc, rh) != KC_OK || kc_sha256_finish(&cc, ch) != KC_OK)) {
        err = KERR_UPD_CRYPTO;
    }
    kc_sha256_abort(&rc);
    kc_sha256_abort(&cc);
    if (err == KERR_OK &&
        (memcmp(rh, l->region_sha, 32) != 0 || memcmp(ch, l->content_sha, 32) != 0)) {
        err = KERR_UPD_VERIFY;
    }
    if (err != KERR_OK) {
        return err;
    }
    upd_pstate_t s = u->ps;
    s.phase = UPD_PHASE_STAGED;
    return upd_record(u, &s);
}

kerr_t upd_cancel(upd_t *u)
{
    u->fin.phase = 0;
    if (u->ps.phase != UPD_PHASE_STAGING && u->ps.phase != UPD_PHASE_STAGED) {
        return KERR_UPD_STATE;
    }
    upd_pstate_t s = u->ps;
    s.phase = UPD_PHASE_IDLE;
    kerr_t err = upd_record(u, &s);
    if (err == KERR_OK) {
        u->have_manifest = false;
    }
    return err;
}

/* --- apply / rollback ----------------------------------------------------------------------- */

static bool is_flash_error(kerr_t err)
{
    return err <= KERR_FLASH_ALIGN && err >= KERR_FLASH_POWER;
}

static kerr_t write_page(upd_t *u, uint32_t i)
{
    kflash_t *f = u->cfg.iflash;
    bool erased = target_is_erased(u, i);
    kerr_t err = KERR_OK;
    if (!erased) {
        err = unseal_from(u, stage_slot(u, i), q(u, Q_STAGE_TAGS) + i * TAG, u->ps.stage_gen,
                          SEAL_STAGE, i);
        uint8_t h[32];
        if (err == KERR_OK) {
            err = upd_sha256(u->buf, u->page, h);
        }
        if (err == KERR_OK && memcmp(h, target_sha(u, i), 32) != 0) {
            err = KERR_UPD_VERIFY;
        }
    }
    if (err == KERR_OK) {
        err = kflash_erase(f, page_off(u, i));
        u->ctr.page_erases += err == KERR_OK ? 1u : 0u;
    }
    if (err == KERR_OK && !erased) {
        err = kflash_program(f, page_off(u, i), u->buf, u->page);
        u->ctr.page_programs += err == KERR_OK ? 1u : 0u;
    }
    return err;
}

static kerr_t save_page(upd_t *u, uint32_t i)
{
    kerr_t err = kflash_read(u->cfg.iflash, page_off(u, i), u->buf, u->page);
    return err != KERR_OK ? err : upd_store_save_slot(u, u->ps.apply_gen, SEAL_SAVE, i);
}

kerr_t upd_store_save_slot(upd_t *u, uint32_t gen, uint32_t kind, uint32_t i)
{
    uint8_t tag[TAG];
    kerr_t err = upd_seal(u, gen, kind, i, tag);
    if (err == KERR_OK) {
        err = kflash_erase_range(u->cfg.qspi, save_slot(u, i), u->page);
    }
    if (err == KERR_OK) {
        err = kflash_program(u->cfg.qspi, save_slot(u, i), u->buf, u->page);
    }
    if (err == KERR_OK) {
        err = kflash_program(u->cfg.qspi, q(u, Q_SAVE_TAGS) + i * TAG, tag, TAG);
    }
    return err;
}

static kerr_t run_rollback(upd_t *u)
{
    for (uint32_t i = u->ps.step; i < u->blocks; i++) {
        if (!bit_get(u->ps.saved, i)) {
            continue;
        }
        kerr_t err = unseal_from(u, save_slot(u, i), q(u, Q_SAVE_TAGS) + i * TAG, u->ps.apply_gen,
                                 SEAL_SAVE, i);
        if (err == KERR_OK) {
            err = kflash_erase(u->cfg.iflash, page_off(u, i));
            u->ctr.page_erases += err == KERR_OK ? 1u : 0u;
        }
        if (err == KERR_OK) {
            err = kflash_program(u->cfg.iflash, page_off(u, i), u->buf, u->page);
            u->ctr.page_programs += err == KERR_OK ? 1u : 0u;
        }
        upd_pstate_t s = u->ps;
        s.step = (uint16_t)(i + 1u);
        if (err == KERR_OK) {
            err = upd_record(u, &s);
        }
        if (err != KERR_OK) {
            return err;
        }
    }
    uint8_t h[32];
    kerr_t err = upd_region_sha(u, h);
    if (err != KERR_OK) {
        return err;
    }
    if (memcmp(h, u->ps.old_sha, 32) != 0) {
        return KERR_UPD_VERIFY;
    }
    upd_pstate_t s = u->ps;
    s.phase = UPD_PHASE_IDLE;
    s.result = UPD_RESULT_FAILED;
    s.step = UPD_STEP_NONE;
    memset(s.saved, 0, sizeof(s.saved));
    err = upd_record(u, &s);
    if (err == KERR_OK) {
        u->have_manifest = false;
    }
    return err;
}

static kerr_t start_rollback(upd_t *u, uint32_t reason)
{
    upd_pstate_t s = u->ps;
    s.phase = UPD_PHASE_ROLLBACK;
    s.step = 0;
    s.reason = reason;
    kerr_t err = upd_record(u, &s);
    return err != KERR_OK ? err : run_rollback(u);
}

static kerr_t run_apply(upd_t *u)
{
    uint32_t start = 0;
    kerr_t err = KERR_OK;
    if (u->ps.step != UPD_STEP_NONE) {
        err = write_page(u, u->ps.step); /* saved and recorded: redo the write */
        start = u->ps.step + 1u;
    }
    for (uint32_t i = start; err == KERR_OK && i < u->blocks; i++) {
        bool same;
        err = page_matches(u, i, &same);
        if (err != KERR_OK || same) {
            continue;
        }
        err = save_page(u, i);
        if (err == KERR_OK) {
            upd_pstate_t s = u->ps;
            s.step = (uint16_t)i;
            bit_set(s.saved, i);
            err = upd_record(u, &s);
        }
        if (err == KERR_OK) {
            err = write_page(u, i);
        }
    }
    uint8_t h[32];
    if (err == KERR_OK) {
        err = upd_region_sha(u, h);
        if (err == KERR_OK && memcmp(h, u->m.layers[0].region_sha, 32) != 0) {
            err = KERR_UPD_VERIFY;
        }
    }
    if (err == KERR_OK) {
        upd_pstate_t s = u->ps;
        s.phase = UPD_PHASE_TRIAL;
        s.step = UPD_STEP_NONE;
        return upd_record(u, &s);
    }
    if (is_flash_error(err) || err == KERR_IO) {
        return err; /* a cut or an I/O failure: the next boot resumes from the journal */
    }
    /* Staged data or the result is wrong (cannot happen after stage_finish unless the flash
     * decays): never leave a half image, put the old one back. */
    kerr_t rerr = start_rollback(u, UPD_REASON_VERIFY);
    return rerr != KERR_OK ? rerr : KERR_UPD_VERIFY;
}

kerr_t upd_apply(upd_t *u)
{
    if (u->ps.phase == UPD_PHASE_APPLYING && u->have_manifest) {
        return run_apply(u);
    }
    if (u->ps.phase != UPD_PHASE_STAGED || !u->have_manifest) {
        return KERR_UPD_STATE;
    }
    upd_pstate_t s = u->ps;
    kerr_t err = upd_region_sha(u, s.old_sha);
    if (err == KERR_OK) {
        err = kflash_erase_range(u->cfg.qspi, q(u, Q_SAVE_TAGS), Q_SLOTS - Q_SAVE_TAGS);
    }
    if (err != KERR_OK) {
        return err;
    }
    s.phase = UPD_PHASE_APPLYING;
    s.step = UPD_STEP_NONE;
    s.apply_gen = u->j.seq + 1u;
    memset(s.saved, 0, sizeof(s.saved));
    err = upd_record(u, &s);
    return err != KERR_OK ? err : run_apply(u);
}

kerr_t upd_confirm(upd_t *u)
{
    if (u->ps.phase != UPD_PHASE_TRIAL || !u->have_manifest) {
        return KERR_UPD_STATE;
    }
    upd_pstate_t s = u->ps;
    s.phase = UPD_PHASE_IDLE;
    s.result = UPD_RESULT_SUCCESS;
    s.reason = UPD_REASON_NONE;
    s.step = UPD_STEP_NONE;
    if (u->m.security_counter > s.counter) {
        s.counter = u->m.security_counter;
    }
    s.version = u->m.version;
    memset(s.saved, 0, sizeof(s.saved)); /* released: the copies are dead from this record on */
    kerr_t err = upd_record(u, &s);
    if (err == KERR_OK) {
        u->have_manifest = false;
    }
    return err;
}

kerr_t upd_rollback(upd_t *u, uint32_t reason)
{
    if (u->ps.phase == UPD_PHASE_ROLLBACK) {
        return run_rollback(u);
    }
    if (u->ps.phase != UPD_PHASE_TRIAL && u->ps.phase != UPD_PHASE_APPLYING) {
        return KERR_UPD_STATE;
    }
    return start_rollback(u, reason);
}

kerr_t upd_boot(upd_t *u)
{
    switch (u->ps.phase) {
    case UPD_PHASE_STAGING:
    case UPD_PHASE_STAGED:
        if (!u->have_manifest) {
            upd_pstate_t s = u->ps;
            s.phase = UPD_PHASE_IDLE;
            s.result = UPD_RESULT_INTEGRITY;
            s.reason = UPD_REASON_MANIFEST;
            return upd_record(u, &s);
        }
        return KERR_OK;
    case UPD_PHASE_APPLYING: {
        kerr_t err = u->have_manifest ? run_apply(u) : start_rollback(u, UPD_REASON_MANIFEST);
        /* An apply that could not complete and was rolled back is a clean boot (old image). */
        return err == KERR_UPD_VERIFY && u->ps.phase == UPD_PHASE_IDLE ? KERR_OK : err;
    }
    case UPD_PHASE_ROLLBACK:
        return run_rollback(u);
    case UPD_PHASE_TRIAL: {
        if (!u->have_manifest) {
            return start_rollback(u, UPD_REASON_MANIFEST);
        }
        uint8_t h[32];
        kerr_t err = upd_region_sha(u, h);
        if (err != KERR_OK) {
            return err;
        }
        return memcmp(h, u->m.layers[0].region_sha, 32) == 0 ? KERR_OK
                                                             : start_rollback(u, UPD_REASON_VERIFY);
    }
    default:
        return KERR_OK;
    }
}

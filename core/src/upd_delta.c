/*
 * Staging a delta bundle (docs/update-engine.md "Delta bundles"): the payload is a patch
 * (docs/delta.md) against the region the device runs, decoded here, at staging time, while the
 * old image is intact in internal flash. Apply, journal, trial and rollback do not change: once
 * staging is done the new pages are staged and sealed exactly as the page path stages them.
 *
 *   stage_block i   patch block i (block_size bytes of the patch) sealed into save slot i (free
 *                   while staging: no saved page is live), its tag in the save-tags sector; no
 *                   per-block hash exists: the patch hash is checked as a whole
 *   stage_finish    check: decrypt the patch block by block (GCM in CHUNK pieces, its own
 *                   operation: pages are sealed while a patch block streams), every
 *                   tag and the patch's SHA-256 against the manifest
 *                   pass 1: decode it against the region without writing anything; every result page's SHA-256 goes into a table in RAM; the result
 *                   must match the signed region and content hashes
 *                   pass 2: decode again; each page must hash to its table entry; a page that
 *                   differs from the current one (and is not all 0xFF) is sealed into its stage
 *                   slot as upd_stage_block would
 *                   then the table is sealed (GCM, kind SEAL_TABLE) after the manifest copy and
 *                   the engine records STAGED; from then on it is the manifest's block hash table
 *
 * All of stage_finish runs in turns (upd_stage_finish_step: start, a patch block checked, a result
 * page decoded, a few erased pages hashed), its place kept in u->fin between them.
 *
 * A power cut anywhere restarts stage_finish from the stored patch: re-programming a stage slot,
 * tag, map entry or the table writes the same bytes (same plaintext, same generation), which NOR
 * allows. Nothing in the region is touched before STAGED.
 */
#include <string.h>

#include "keel/delta.h"
#include "keel/kcrypto.h"
#include "keel/upd.h"

#include "upd_priv.h"

#define CHUNK 256u /* patch bytes decrypted and fed at a time (upd_dfin_t.plain) */

static uint32_t patch_blocks(const upd_t *u)
{
    return (u->m.layers[0].patch_size + u->page - 1u) / u->page;
}

/* Patch block i was received: its tag is programmed (not all 0xFF). */
static kerr_t tag_present(upd_t *u, uint32_t i, bool *out)
{
    uint8_t t[TAG], ff = 0xFF;
    kerr_t err = kflash_read(u->cfg.qspi, q(u, Q_SAVE_TAGS) + i * TAG, t, TAG);
    for (uint32_t k = 0; k < TAG; k++)
        ff &= t[k];
    *out = err == KERR_OK && ff != 0xFF;
    return err;
}

kerr_t upd_delta_inspect(upd_t *u, const kbdl_manifest_t *m, upd_plan_t *out)
{
    uint8_t h[32];
    kerr_t err = upd_region_sha(u, h);
    if (err != KERR_OK) {
        return err;
    }
    const kbdl_layer_t *l = &m->layers[0];
    out->blocks = u->blocks;
    if (memcmp(h, l->region_sha, 32) == 0) {
        out->nothing_to_do = true; /* already the result */
        return KERR_OK;
    }
    if (memcmp(h, l->base_sha, 32) != 0) {
        return KERR_DLT_BASE;
    }
    uint32_t per_page = u->page / u->cfg.qspi->geo.erase_size;
    out->to_stage = (l->patch_size + u->page - 1u) / u->page;
    out->changed = u->blocks; /* at most: known once the patch is decoded */
    out->qspi_erases = Q_SLOTS / u->cfg.qspi->geo.erase_size +
                       (out->to_stage + 2u * u->blocks) * per_page;
    return KERR_OK;
}

kerr_t upd_delta_block_needed(upd_t *u, uint32_t idx)
{
    bool have;
    if (idx >= patch_blocks(u)) {
        return 0;
    }
    kerr_t err = tag_present(u, idx, &have);
    return err != KERR_OK ? err : have ? 0 : 1;
}

kerr_t upd_delta_stage_block(upd_t *u, uint32_t idx, const uint8_t *data, uint32_t len)
{
    kerr_t err = upd_delta_block_needed(u, idx);
    if (err <= 0) {
        return err;
    }
    memcpy(u->buf, data, len);
    return upd_store_save_slot(u, u->ps.stage_gen, SEAL_PATCH, idx);
}

/* --- GCM and SHA-256 in pieces ------------------------------------------------------------------ */

static int sha_start(kc_sha256_t *c)
{
    return kc_sha256_start(c) == KC_OK ? 0 : -1;
}

static int sha_update(kc_sha256_t *c, const uint8_t *p, uint32_t n)
{
    return kc_sha256_update(c, p, n) == KC_OK ? 0 : -1;
}

static int sha_finish(kc_sha256_t *c, uint8_t out[32])
{
    return kc_sha256_finish(c, out) == KC_OK ? 0 : -1;
}

/* The GCM tag of stored patch block b as it is now (PSA only checks a tag when it decrypts, so
 * the block is decrypted and sealed again: the same key stream gives back the stored text, and
 * the seal's tag is the block's). Only for a tag that did not match: the torn-tag check. */
static kerr_t stored_block_tag(upd_t *u, uint32_t b, const uint8_t nonce[12], uint8_t tag[TAG])
{
    kc_gcm_t d, e;
    uint8_t buf[CHUNK];
    if (kc_gcm_open_start(&d, u->cfg.key, UPD_KEY_SIZE, nonce) != KC_OK) {
        return KERR_UPD_CRYPTO;
    }
    if (kc_gcm_seal_start(&e, u->cfg.key, UPD_KEY_SIZE, nonce) != KC_OK) {
        kc_gcm_abort(&d);
        return KERR_UPD_CRYPTO;
    }
    kerr_t err = KERR_OK;
    for (uint32_t off = 0; err == KERR_OK && off < u->page; off += CHUNK) {
        err = kflash_read(u->cfg.qspi, save_slot(u, b) + off, buf, CHUNK);
        if (err == KERR_OK && (kc_gcm_update(&d, buf, CHUNK, buf) != KC_OK ||
                               kc_gcm_update(&e, buf, CHUNK, buf) != KC_OK)) {
            err = KERR_UPD_CRYPTO;
        }
    }
    kc_gcm_abort(&d);
    if (err != KERR_OK) {
        kc_gcm_abort(&e);
        return err;
    }
    return kc_gcm_seal_finish(&e, tag) == KC_OK ? KERR_OK : KERR_UPD_CRYPTO;
}

/* The patch block's GCM operation, open across turns: ended here whenever a finish starts over. */
static void patch_gcm_end(upd_dfin_t *f)
{
    if (f->gcm_live) {
        kc_gcm_abort(&f->g);
        f->gcm_live = 0;
    }
}

void upd_delta_release(upd_t *u)
{
    patch_gcm_end(&u->fin);
}

/* --- the two decoding passes ------------------------------------------------------------------- */

static uint8_t *table_of(upd_t *u)
{
    return u->mbuf + Q_DELTA_TABLE;
}

_Static_assert(Q_DELTA_TABLE + KBDL_MAX_BLOCKS * 32u + TAG <= UPD_MANIFEST_BUF,
               "the derived block hashes fit in the manifest buffer after a delta manifest");
_Static_assert(Q_DELTA_TABLE + KBDL_MAX_BLOCKS * 32u + TAG <= Q_STAGE_TAGS,
               "the derived block hashes fit in the manifest area of QSPI");
_Static_assert(sizeof(((upd_dfin_t *)0)->plain) == CHUNK, "a patch piece fills plain");

static kerr_t read_old(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    upd_t *u = ctx;
    return kflash_read(u->cfg.iflash, u->cfg.region_off + off, buf, len);
}

/* The current page i equals the result page in u->buf (compared in pieces: u->buf is busy). */
static kerr_t page_unchanged(upd_t *u, uint32_t i, bool *out)
{
    uint8_t b[CHUNK];
    *out = true;
    for (uint32_t off = 0; off < u->page && *out; off += CHUNK) {
        kerr_t err = kflash_read(u->cfg.iflash, page_off(u, i) + off, b, CHUNK);
        if (err != KERR_OK) {
            return err;
        }
        *out = memcmp(b, u->buf + off, CHUNK) == 0;
    }
    return KERR_OK;
}

/* A result page (the last one short): hash it; on the second pass, stage it if it changes. */
static kerr_t on_page(void *ctx, uint32_t index, const uint8_t *page, uint32_t len)
{
    upd_t *u = ctx;
    upd_dfin_t *f = &u->fin;
    uint8_t h[32], *table = table_of(u);
    if (index >= u->blocks || page != u->buf) {
        return KERR_UPD_VERIFY;
    }
    /* The first pass measures the result; the second only compares with what it measured. */
    if (!f->second && sha_update(&f->cc, u->buf, len) != 0) {
        return KERR_UPD_CRYPTO;
    }
    memset(u->buf + len, 0xFF, u->page - len);
    kerr_t err = upd_sha256(u->buf, u->page, h);
    if (err == KERR_OK && !f->second && sha_update(&f->rc, u->buf, u->page) != 0) {
        err = KERR_UPD_CRYPTO;
    }
    f->pages = index + 1u;
    if (err != KERR_OK || !f->second) {
        if (err == KERR_OK) {
            memcpy(table + index * 32u, h, 32);
        }
        return err;
    }
    if (memcmp(h, table + index * 32u, 32) != 0) {
        return KERR_UPD_VERIFY; /* the patch read back differently than in the first pass */
    }
    bool same = memcmp(h, u->ff_sha, 32) == 0, staged = false;
    if (!same) {
        err = page_unchanged(u, index, &same);
    }
    if (err == KERR_OK && !same) {
        err = upd_is_staged(u, index, &staged);
    }
    return err != KERR_OK || same || staged ? err : upd_store_staged(u, index);
}

/*
 * A cut while a patch block's tag was programmed leaves it torn: some of its zero bits still
 * one (it reads as "received": the block itself was complete before its tag was written). The
 * tag computed from the stored block then only has bits the torn one still has, and programming
 * it completes the tag (NOR only clears bits). A decayed block whose tag happens to pass this
 * test is still caught by the patch's SHA-256, which is checked right after.
 */
static bool torn_tag(const uint8_t stored[TAG], const uint8_t computed[TAG])
{
    for (uint32_t i = 0; i < TAG; i++) {
        if ((stored[i] & computed[i]) != computed[i]) {
            return false;
        }
    }
    return true;
}

/* Start reading the stored patch from its beginning (hashed again on every read). */
static kerr_t patch_rewind(upd_t *u)
{
    upd_dfin_t *f = &u->fin;
    f->b = f->off = f->pos = f->n = 0;
    f->left = u->m.layers[0].patch_size;
    patch_gcm_end(f);
    return sha_start(&f->pc) != 0 ? KERR_UPD_CRYPTO : KERR_OK;
}

static bool patch_end(const upd_t *u)
{
    return u->fin.b == patch_blocks(u);
}

/*
 * The next CHUNK of the stored patch into f->plain (f->n bytes, 0 in the padding after the
 * patch), decrypted and hashed; at the end of a block its tag is checked (the first read, check,
 * completes a torn one); at the end of the patch its SHA-256 must be the signed one.
 */
static kerr_t patch_next(upd_t *u, bool check)
{
    upd_dfin_t *f = &u->fin;
    uint8_t in[CHUNK], nonce[12], tag[TAG], want[TAG];
    uint32_t n = f->left < CHUNK ? f->left : CHUNK;
    kerr_t err = KERR_OK;
    f->pos = f->n = 0;
    upd_nonce(u->ps.stage_gen, SEAL_PATCH, f->b, nonce);
    if (f->off == 0) {
        patch_gcm_end(f);
        if (kc_gcm_open_start(&f->g, u->cfg.key, UPD_KEY_SIZE, nonce) != KC_OK) {
            return KERR_UPD_CRYPTO;
        }
        f->gcm_live = 1;
    }
    err = kflash_read(u->cfg.qspi, save_slot(u, f->b) + f->off, in, CHUNK);
    if (err == KERR_OK && kc_gcm_update(&f->g, in, CHUNK, f->plain) != KC_OK) {
        err = KERR_UPD_CRYPTO;
    }
    if (err == KERR_OK && n && sha_update(&f->pc, f->plain, n) != 0) {
        err = KERR_UPD_CRYPTO;
    }
    if (err != KERR_OK) {
        patch_gcm_end(f);
        return err;
    }
    f->n = n;
    f->left -= n;
    f->off += CHUNK;
    if (f->off < u->page) {
        return KERR_OK;
    }
    err = kflash_read(u->cfg.qspi, q(u, Q_SAVE_TAGS) + f->b * TAG, want, TAG);
    if (err != KERR_OK) {
        patch_gcm_end(f);
    } else {
        kc_rc_t rc = kc_gcm_open_finish(&f->g, want); /* ends the operation whatever the outcome */
        f->gcm_live = 0;
        if (rc == KC_BAD_TAG && check) { /* a torn tag is completed (PSA gives no computed tag) */
            err = stored_block_tag(u, f->b, nonce, tag);
            if (err == KERR_OK) {
                err = torn_tag(want, tag)
                          ? kflash_program(u->cfg.qspi, q(u, Q_SAVE_TAGS) + f->b * TAG, tag, TAG)
                          : KERR_UPD_AUTH;
            }
        } else if (rc != KC_OK) {
            err = rc == KC_BAD_TAG ? KERR_UPD_AUTH : KERR_UPD_CRYPTO;
        }
    }
    f->b++;
    f->off = 0;
    if (err == KERR_OK && patch_end(u)) {
        uint8_t h[32];
        if (sha_finish(&f->pc, h) != 0) {
            err = KERR_UPD_CRYPTO;
        } else if (memcmp(h, u->m.layers[0].patch_sha, 32) != 0) {
            err = KERR_UPD_VERIFY; /* not the signed patch, or changed since it was checked */
        }
    }
    return err;
}

static kerr_t pass_begin(upd_t *u, int second)
{
    upd_dfin_t *f = &u->fin;
    const kbdl_layer_t *l = &u->m.layers[0];
    kdlt_dec_cfg_t cfg = { read_old, on_page, u, u->buf, u->page, u->cfg.region_len, l->size };
    f->second = (uint8_t)second;
    f->pages = 0;
    if (!second) {
        if (sha_start(&f->rc) != 0 || sha_start(&f->cc) != 0) {
            return KERR_UPD_CRYPTO;
        }
    }
    kerr_t err = patch_rewind(u);
    return err != KERR_OK ? err : kdlt_dec_init(&u->dlt, &cfg);
}

/* Decode until the next result page (*page) or the end of the pass (*page false). */
static kerr_t pass_page(upd_t *u, bool *page)
{
    upd_dfin_t *f = &u->fin;
    *page = false;
    for (;;) {
        size_t used = 0;
        kerr_t err = KERR_OK;
        if (f->pos < f->n || patch_end(u)) {
            /* the patch's bytes, or at its end what the decoder still holds */
            err = kdlt_dec_feed_page(&u->dlt, f->plain + f->pos, f->n - f->pos, &used, page);
            f->pos += (uint32_t)used;
            if (err != KERR_OK || *page || f->pos < f->n) {
                return err;
            }
            if (patch_end(u)) {
                break;
            }
            continue;
        }
        if ((err = patch_next(u, false)) != KERR_OK) {
            return err;
        }
    }
    kerr_t err = kdlt_dec_finish(&u->dlt);
    if (err == KERR_OK && kdlt_dec_new_len(&u->dlt) != u->m.layers[0].size) {
        err = KERR_UPD_VERIFY;
    }
    return err;
}

/* Pass 1's end: the region after the result is erased; then region and content hashes. A few
 * pages per turn. */
#define TAIL_PAGES 8u
static kerr_t pass1_tail(upd_t *u, bool *over)
{
    upd_dfin_t *f = &u->fin;
    const kbdl_layer_t *l = &u->m.layers[0];
    memset(u->buf, 0xFF, u->page);
    for (uint32_t k = 0; k < TAIL_PAGES && f->tail < u->blocks; k++, f->tail++) {
        memcpy(table_of(u) + f->tail * 32u, u->ff_sha, 32);
        if (sha_update(&f->rc, u->buf, u->page) != 0) {
            return KERR_UPD_CRYPTO;
        }
    }
    *over = f->tail == u->blocks;
    if (!*over) {
        return KERR_OK;
    }
    uint8_t rh[32], ch[32];
    if (sha_finish(&f->rc, rh) != 0 || sha_finish(&f->cc, ch) != 0) {
        return KERR_UPD_CRYPTO;
    }
    return memcmp(rh, l->region_sha, 32) != 0 || memcmp(ch, l->content_sha, 32) != 0
               ? KERR_UPD_VERIFY : KERR_OK;
}

/* Seal the table (into u->buf) and store it with its tag after the manifest copy. */
static kerr_t seal_table(upd_t *u)
{
    uint32_t n = u->blocks * 32u;
    uint8_t nonce[12], tag[TAG];
    upd_nonce(u->ps.stage_gen, SEAL_TABLE, 0, nonce);
    kerr_t err = KERR_OK;
    if (kc_gcm_seal(u->cfg.key, UPD_KEY_SIZE, nonce, NULL, 0, table_of(u), n, u->buf, tag) !=
        KC_OK) {
        err = KERR_UPD_CRYPTO;
    }
    if (err == KERR_OK) {
        err = kflash_program(u->cfg.qspi, q(u, Q_DELTA_TABLE), u->buf, n);
    }
    if (err == KERR_OK) {
        err = kflash_program(u->cfg.qspi, q(u, Q_DELTA_TABLE) + n, tag, TAG);
    }
    if (err == KERR_OK) {
        u->m.layers[0].block_sha = table_of(u);
    }
    return err;
}

enum { F_START, F_CHECK, F_PASS1, F_TAIL, F_PASS2 };

/*
 * One turn of stage_finish (see the top of the file): F_CHECK authenticates one patch block,
 * F_PASS1/F_PASS2 decode one result page, F_TAIL hashes TAIL_PAGES erased pages; the table is
 * sealed in the turn that ends pass 2.
 */
static kerr_t finish_turn(upd_t *u, bool *done)
{
    upd_dfin_t *f = &u->fin;
    bool page = false, over = false;
    kerr_t err = KERR_OK;
    *done = false;
    switch (f->phase) {
    case F_START:
        for (uint32_t i = 0; i < patch_blocks(u); i++) {
            bool have;
            err = tag_present(u, i, &have);
            if (err != KERR_OK || !have) {
                return err != KERR_OK ? err : KERR_UPD_INCOMPLETE;
            }
        }
        if (kbdl_signed_size(&u->m) > Q_DELTA_TABLE) {
            return KERR_BDL_UNSUPPORTED;
        }
        /* The stored patch must authenticate and be the signed one before the decoder sees it. */
        err = patch_rewind(u);
        f->phase = F_CHECK;
        return err;
    case F_CHECK:
        for (uint32_t b = f->b; err == KERR_OK && f->b == b && !patch_end(u);) {
            err = patch_next(u, true);
        }
        if (err == KERR_OK && patch_end(u)) {
            err = pass_begin(u, 0);
            f->phase = F_PASS1;
        }
        return err;
    case F_PASS1:
    case F_PASS2:
        err = pass_page(u, &page);
        if (err != KERR_OK || page) {
            return err;
        }
        if (f->phase == F_PASS2) { /* every page matched pass 1, which checked the whole result */
            err = seal_table(u);
            *done = err == KERR_OK;
            f->phase = F_START;
            return err;
        }
        f->tail = f->pages;
        f->phase = F_TAIL;
        return KERR_OK;
    case F_TAIL:
        err = pass1_tail(u, &over);
        if (err == KERR_OK && over) {
            err = pass_begin(u, 1);
            f->phase = F_PASS2;
        }
        return err;
    default:
        return KERR_UPD_STATE;
    }
}

kerr_t upd_delta_finish_step(upd_t *u, bool *done)
{
    kerr_t err = finish_turn(u, done);
    if (err != KERR_OK) {
        upd_delta_release(u);
        u->fin.phase = F_START; /* the next call starts over from the stored patch */
    }
    return err;
}

kerr_t upd_delta_load_table(upd_t *u)
{
    uint32_t n = u->blocks * 32u;
    uint8_t nonce[12], tag[TAG];
    kerr_t err = kflash_read(u->cfg.qspi, q(u, Q_DELTA_TABLE), u->buf, n);
    if (err == KERR_OK) {
        err = kflash_read(u->cfg.qspi, q(u, Q_DELTA_TABLE) + n, tag, TAG);
    }
    if (err != KERR_OK) {
        return err;
    }
    upd_nonce(u->ps.stage_gen, SEAL_TABLE, 0, nonce);
    if (kbdl_signed_size(&u->m) > Q_DELTA_TABLE ||
        kc_gcm_open(u->cfg.key, UPD_KEY_SIZE, nonce, NULL, 0, u->buf, n, tag, table_of(u)) !=
            KC_OK) {
        return KERR_UPD_VERIFY;
    }
    u->m.layers[0].block_sha = table_of(u);
    return KERR_OK;
}

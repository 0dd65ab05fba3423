/*
 * What the update engine's files share (private to core/src/upd_*.c): the QSPI staging layout
 * (upd_engine.c's header comment) and the helpers both the page path (upd_engine.c) and the
 * delta path (upd_delta.c) use.
 */
#ifndef KEEL_CORE_SRC_UPD_PRIV_H
#define KEEL_CORE_SRC_UPD_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/upd.h"

#define Q_MANIFEST 0x0000u
#define Q_DELTA_TABLE 0x0200u /* delta bundles: derived block hashes + tag, after the manifest */
#define Q_STAGE_TAGS 0x2000u
#define Q_STAGE_MAP 0x3000u
#define Q_SAVE_TAGS 0x4000u   /* delta bundles, while staging: tag of patch block i */
#define Q_SLOTS UPD_QSPI_META
#define META_SECTOR 0x1000u
#define TAG 16u

/* persisted: nonce kinds, never renumber. */
enum { SEAL_STAGE = 1, SEAL_SAVE = 2, SEAL_PATCH = 3, SEAL_TABLE = 4 };

extern const uint8_t upd_zero16[TAG];

static inline uint32_t q(const upd_t *u, uint32_t off)
{
    return u->cfg.stage_off + off;
}

static inline uint32_t stage_slot(const upd_t *u, uint32_t i)
{
    return q(u, Q_SLOTS) + i * u->page;
}

/* Saved old page i while applying; patch block i while staging a delta. */
static inline uint32_t save_slot(const upd_t *u, uint32_t i)
{
    return q(u, Q_SLOTS) + (u->blocks + i) * u->page;
}

static inline uint32_t page_off(const upd_t *u, uint32_t i)
{
    return u->cfg.region_off + i * u->page;
}

kerr_t upd_sha256(const uint8_t *p, uint32_t n, uint8_t out[32]);
/* Durably move to state s (one journal record). */
kerr_t upd_record(upd_t *u, const upd_pstate_t *s);
void upd_nonce(uint32_t gen, uint32_t kind, uint32_t idx, uint8_t nonce[12]);
/* Encrypt u->buf (one page) in place under (gen, kind, idx). */
kerr_t upd_seal(upd_t *u, uint32_t gen, uint32_t kind, uint32_t idx, uint8_t tag[TAG]);
/* Stage map entry i says block i is staged. */
kerr_t upd_is_staged(upd_t *u, uint32_t i, bool *out);
/* Seal u->buf under (gen, kind, i) into save slot i, its tag into the save-tags sector. */
kerr_t upd_store_save_slot(upd_t *u, uint32_t gen, uint32_t kind, uint32_t i);
/* Seal u->buf as block i of the staging and store it (slot, tag, then map entry). */
kerr_t upd_store_staged(upd_t *u, uint32_t i);

/* The delta path (upd_delta.c), called by upd_engine.c when the layer is a delta. */
kerr_t upd_delta_inspect(upd_t *u, const kbdl_manifest_t *m, upd_plan_t *out);
kerr_t upd_delta_block_needed(upd_t *u, uint32_t idx);
kerr_t upd_delta_stage_block(upd_t *u, uint32_t idx, const uint8_t *data, uint32_t len);
kerr_t upd_delta_finish_step(upd_t *u, bool *done);
/* End what a delta finish holds open between turns (a GCM operation and its key). */
void upd_delta_release(upd_t *u);
/* STAGED and later: read and authenticate the derived block hashes (block_sha points to them). */
kerr_t upd_delta_load_table(upd_t *u);

#endif /* KEEL_CORE_SRC_UPD_PRIV_H */

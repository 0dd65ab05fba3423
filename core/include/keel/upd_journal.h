/*
 * The update journal: a log of whole-state snapshots on internal flash (docs/update-engine.md).
 *
 * Every record is a complete snapshot of the engine's persistent state (upd_pstate_t), so the
 * state after a boot is simply the valid record with the highest sequence number: there is no
 * replay, and a record that was torn by a power cut reads as absent (magic + CRC-32), leaving
 * the previous snapshot in force.
 *
 *   journal: 2 pages of internal flash (ping-pong), 128-byte slots (8 program units each)
 *
 *   page A  [rec s=17][rec s=18][rec s=19][  FF  ][  FF  ] ...   <- active (highest seq)
 *   page B  [rec s=9 ][rec s=10][ torn  ][  FF  ] ...            <- stale: erased before reuse
 *
 * Program-once units (ECC) and "torn yet still reads 0xFF": the slot in flight at a cut may be
 * used although it reads erased, so writing it again could double-program a unit. DESIGN.md's
 * scheme (skip the first unused slot after every boot) is not enough when boots keep being cut
 * during their first write: boot 1 skips slot k and tears k+1 invisibly, boot 2 again sees k-1 as
 * the last written slot and would program k+1 a second time (the double-cut sweep hits exactly
 * this). So the first append after every mount goes to a freshly erased page instead: the other
 * page is erased (it only holds older snapshots) and the snapshot is written to its slot 0. Within
 * one boot the writer knows every slot it touched and appends in place. Cost: one page erase per
 * boot that writes a record, i.e. only while an update is in flight.
 *
 * Record (little-endian):
 *   0 magic "KUJR" | 4 seq | 8 phase u8 | 9 result u8 | 10 step u16 | 12 stage_gen | 16 apply_gen
 *   20 counter | 24 version | 28 reason | 32 manifest_sha[32] | 64 old_sha[32] | 96 saved[24]
 *   120 reserved (0) | 124 crc32 of [0, 124)
 * persisted: never renumber or move a field.
 */
#ifndef KEEL_UPD_JOURNAL_H
#define KEEL_UPD_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/err.h"
#include "keel/flash.h"

#define UPD_JREC_MAGIC 0x524A554Bu /* "KUJR" */
#define UPD_JREC_SIZE 128u
#define UPD_JOURNAL_PAGES 2u
#define UPD_MAX_PAGES 192u         /* == KBDL_MAX_BLOCKS: one saved-page bit each */
#define UPD_STEP_NONE 0xFFFFu

/* persisted: never renumber. */
typedef enum upd_phase {
    UPD_PHASE_IDLE = 0,     /* nothing in flight (also: no record yet) */
    UPD_PHASE_STAGING = 1,  /* manifest accepted, blocks arriving */
    UPD_PHASE_STAGED = 2,   /* every block staged and the reconstruction verified */
    UPD_PHASE_APPLYING = 3, /* writing changed pages in place; step = page being written */
    UPD_PHASE_TRIAL = 4,    /* new image verified and running on trial; saved pages kept */
    UPD_PHASE_ROLLBACK = 5, /* restoring saved pages; step = next page index to restore */
} upd_phase_t;

/* Last update result, LwM2M Firmware Update object (5/0/5) values. persisted: never renumber. */
typedef enum upd_result {
    UPD_RESULT_INITIAL = 0,
    UPD_RESULT_SUCCESS = 1,
    UPD_RESULT_NO_SPACE = 2,
    UPD_RESULT_INTEGRITY = 5,
    UPD_RESULT_UNSUPPORTED = 6,
    UPD_RESULT_FAILED = 8,
} upd_result_t;

/* Persistent engine state: one journal record. */
typedef struct upd_pstate {
    uint8_t phase;   /* upd_phase_t */
    uint8_t result;  /* upd_result_t of the last finished update */
    uint16_t step;
    uint32_t stage_gen;  /* seq of the STAGING record: AES-GCM nonce generation of staged blocks */
    uint32_t apply_gen;  /* seq of the first APPLYING record: nonce generation of saved pages */
    uint32_t counter;    /* installed security counter (anti-rollback floor) */
    uint32_t version;    /* installed bundle version (0: never updated) */
    uint32_t reason;     /* upd_reason_t of the last rollback, or a kerr_t */
    uint8_t manifest_sha[32]; /* SHA-256 of the staged manifest + signature bytes in QSPI */
    uint8_t old_sha[32];      /* SHA-256 of the region before the apply (rollback target) */
    uint8_t saved[UPD_MAX_PAGES / 8u]; /* pages whose old content is saved to QSPI */
} upd_pstate_t;

typedef struct upd_journal {
    kflash_t *f;
    uint32_t off;       /* first of UPD_JOURNAL_PAGES pages */
    uint32_t page;      /* erase unit */
    uint32_t active;    /* page index holding the newest record */
    uint32_t next_slot; /* next slot to program in the active page */
    uint32_t seq;       /* newest valid seq (0: none) */
    bool fresh;         /* the next append must go to a freshly erased page */
    uint32_t writes;    /* records programmed (stats) */
    uint32_t erases;    /* journal page erases (stats) */
} upd_journal_t;

/* Encode/decode one record (decode: KERR_CRC when torn/absent/garbage, KERR_FORMAT on magic). */
void upd_jrec_encode(const upd_pstate_t *s, uint32_t seq, uint8_t out[UPD_JREC_SIZE]);
kerr_t upd_jrec_decode(const uint8_t in[UPD_JREC_SIZE], upd_pstate_t *out, uint32_t *out_seq);

/*
 * Scan the journal pages at off (two erase units of f) and load the newest snapshot into out
 * (all zero, i.e. IDLE, when there is none). Reads only. Errors: KERR_INVAL (layout), flash
 * read errors.
 */
kerr_t upd_journal_mount(upd_journal_t *j, kflash_t *f, uint32_t off, upd_pstate_t *out);

/*
 * Durably append a snapshot with seq = j->seq + 1. Flash errors are returned; the slot and the
 * seq are consumed even then (the record may have landed), so a retry uses fresh ones.
 */
kerr_t upd_journal_append(upd_journal_t *j, const upd_pstate_t *s);

#endif /* KEEL_UPD_JOURNAL_H */

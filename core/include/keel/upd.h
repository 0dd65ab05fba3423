/*
 * The update engine: staging, verification, in-place apply, trial, confirm and rollback of an
 * app region on internal flash, power-cut safe at every flash operation (docs/update-engine.md).
 *
 * Portable: flash only through kflash (internal flash for the app region and the journal, QSPI
 * for staging and saved pages), crypto through Mbed TLS, no malloc, all state in upd_t. The same
 * code runs in the microvisor, in the host power-cut sweeps and in simulated devices.
 *
 * Life of an update (each arrow is one durable journal record, upd_journal.h):
 *
 *        stage_begin            stage_finish          apply               (boot: verify)
 *   IDLE -----------> STAGING --------------> STAGED -------> APPLYING ------------------> TRIAL
 *    ^  <-- cancel ---'  |  ^ stage_block (QSPI only,          |  per changed page:          |
 *    |                   '--' map + tag, no record)            |  save old -> record -> write |
 *    |                                                         |                             |
 *    |       confirm (result SUCCESS, counter raised, saved pages released)                  |
 *    +<--------------------------------------------------------+-----------------------------+
 *    |                                                         | verify fails    rollback()  |
 *    |     restore saved pages one by one (record per page)    v                             |
 *    +<------------------------------------------------ ROLLBACK <---------------------------+
 *         (old region verified; result FAILED, reason kept)
 *
 * upd_boot() finishes whatever a power cut interrupted: APPLYING resumes to TRIAL (or rolls back
 * if the result does not verify), ROLLBACK resumes to IDLE, TRIAL is re-verified. When it returns
 * KERR_OK, the region holds exactly the old image (IDLE/STAGING/STAGED after a rollback or before
 * an apply) or exactly the new one (TRIAL, or IDLE after confirm), each verified by SHA-256.
 */
#ifndef KEEL_UPD_H
#define KEEL_UPD_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/bundle.h"
#include "keel/delta.h"
#include "keel/err.h"
#include "keel/flash.h"
#include "keel/kcrypto.h"
#include "keel/upd_journal.h"

#define UPD_BLOCK_MAX 8192u     /* largest internal flash page (= bundle block) supported */
#define UPD_KEY_SIZE 32u        /* AES-256-GCM device staging key */
#define UPD_MANIFEST_BUF 6784u  /* >= KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE, 16-byte multiple */
#define UPD_QSPI_META 0x5000u   /* manifest (8 KiB) + stage tags + stage map + save tags (4 KiB each) */

/* Why an update was rolled back (upd_status_t.reason). persisted: never renumber. */
typedef enum upd_reason {
    UPD_REASON_NONE = 0,
    UPD_REASON_CRASH = 1,       /* the new app crashed during its trial */
    UPD_REASON_NO_CONFIRM = 2,  /* the trial period ended without keel_update_confirm() */
    UPD_REASON_VERIFY = 3,      /* the written region did not match the manifest */
    UPD_REASON_MANIFEST = 4,    /* the staged manifest could not be read back */
    UPD_REASON_OPERATOR = 5,    /* asked for by the cloud or a test */
} upd_reason_t;

typedef struct upd_config {
    kflash_t *iflash;       /* internal flash: app region and journal */
    uint32_t region_off;    /* app region (page aligned) */
    uint32_t region_len;    /* bytes, a multiple of the page size, <= UPD_MAX_PAGES pages */
    uint32_t journal_off;   /* UPD_JOURNAL_PAGES pages, outside the region */
    kflash_t *qspi;         /* staging: sectors dividing 4 KiB, program unit <= 16 */
    uint32_t stage_off;     /* sector aligned */
    uint32_t stage_len;     /* >= upd_stage_bytes() */
    uint8_t key[UPD_KEY_SIZE]; /* device staging key (never leaves the secure world) */
    kbdl_trust_t trust;     /* installed_counter is raised to the journal's if lower */
} upd_config_t;

/* What an update will do, decided before anything is written (upd_inspect). */
typedef struct upd_plan {
    uint32_t blocks;         /* blocks in the region */
    uint32_t changed;        /* pages whose content differs from the bundle's */
    uint32_t to_stage;       /* changed pages that need data (not all-0xFF) */
    uint32_t qspi_erases;    /* sectors the full update will erase (staging + saves + meta) */
    bool nothing_to_do;      /* the region already matches */
} upd_plan_t;

typedef struct upd_counters {
    uint32_t page_erases;    /* app region page erases */
    uint32_t page_programs;  /* app region page programs */
} upd_counters_t;

/* A delta bundle's stage finish, done in turns (upd_stage_finish_step): where it stands. */
typedef struct upd_dfin {
    uint8_t phase;              /* 0: not started (any other engine call starts it over) */
    uint8_t second;             /* decoding pass 1 or 2 */
    uint32_t b, off, left;      /* stored patch: next block, offset in it, bytes still to read */
    uint32_t pos, n;            /* plain[pos, n): decrypted patch bytes not fed yet */
    uint32_t pages, tail;       /* result pages emitted; next erased page hashed after them */
    kc_sha256_t pc;             /* the patch (every read) */
    kc_sha256_t rc, cc;         /* pass 1: the result region and content */
    kc_gcm_t g;                 /* the patch block being read (open across turns) */
    uint8_t gcm_live;           /* g is open: ended by upd_delta_release() or a new start */
    uint8_t plain[256];
} upd_dfin_t;

typedef struct upd {
    upd_config_t cfg;
    upd_journal_t j;
    upd_pstate_t ps;          /* == newest journal record */
    uint32_t page;            /* internal flash page = bundle block */
    uint32_t blocks;          /* pages in the region */
    bool have_manifest;       /* m/mbuf hold the staged manifest */
    kbdl_manifest_t m;
    uint8_t ff_sha[32];       /* SHA-256 of an erased page */
    upd_counters_t ctr;
    uint8_t mbuf[UPD_MANIFEST_BUF]; /* delta bundles: the derived block hashes follow at 0x200 */
    uint8_t buf[UPD_BLOCK_MAX];
    kdlt_dec_t dlt;           /* decoding a delta bundle's patch at staging time */
    upd_dfin_t fin;           /* a delta's stage finish between turns */
} upd_t;

typedef struct upd_status {
    upd_phase_t phase;
    upd_result_t result;
    uint32_t reason;
    uint32_t counter;
    uint32_t version;          /* installed bundle version */
    uint32_t staging_version;  /* version of the bundle in flight (0: none) */
    uint32_t blocks_needed;    /* STAGING: blocks still to receive */
} upd_status_t;

/* QSPI bytes the staging area needs for a region of region_len bytes. */
uint32_t upd_stage_bytes(uint32_t region_len);

/*
 * Bind the engine and mount the journal (reads only). Errors: KERR_INVAL (layout, geometry),
 * KERR_UPD_CRYPTO, flash read errors. Pair with upd_close(), also when it failed (Mbed TLS's
 * GCM allocates its cipher context here: the only allocation, never in the apply path).
 */
kerr_t upd_open(upd_t *u, const upd_config_t *cfg);
void upd_close(upd_t *u);

/*
 * Finish what a power cut interrupted (see the diagram) and verify the end state. Run on every
 * boot before the app starts. Errors: flash errors (a new cut: run it again on the next boot),
 * KERR_UPD_AUTH/KERR_UPD_VERIFY when a saved copy is damaged (nothing better can be done).
 */
kerr_t upd_boot(upd_t *u);

/*
 * Read-only: verify bundle (kbdl_verify against cfg.trust and the installed counter) and plan
 * the update against the current region. Errors: every kbdl_verify error, KERR_BDL_UNSUPPORTED
 * (layers other than one app-region layer of this region's size and page), KERR_UPD_NOSPACE.
 */
kerr_t upd_inspect(upd_t *u, const uint8_t *bundle, uint32_t len, upd_plan_t *out);

/*
 * Start staging bundle (inspect first; nothing is written when it fails). From IDLE, or from
 * STAGING/STAGED (the old staging is abandoned; the same bundle again resumes it instead).
 * Errors: upd_inspect's, KERR_UPD_STATE (an apply or trial is in flight), flash errors.
 */
kerr_t upd_stage_begin(upd_t *u, const uint8_t *bundle, uint32_t len);

/* STAGING: whether block idx still has to be sent (0/1), or KERR_UPD_STATE/KERR_RANGE. */
kerr_t upd_block_needed(upd_t *u, uint32_t idx);

/*
 * STAGING: store block idx (len == page bytes) encrypted in QSPI. Idempotent.
 * Errors: KERR_UPD_STATE, KERR_RANGE, KERR_UPD_BLOCK (hash differs: nothing written), flash.
 */
kerr_t upd_stage_block(upd_t *u, uint32_t idx, const uint8_t *data, uint32_t len);

/*
 * STAGING -> STAGED after checking every block and the reconstructed region and content against
 * the manifest. Errors: KERR_UPD_INCOMPLETE, KERR_UPD_AUTH, KERR_UPD_VERIFY, flash.
 */
kerr_t upd_stage_finish(upd_t *u);

/*
 * The same in turns, for a caller that must keep serving other work (the microvisor's network):
 * each call does a bounded part (a delta bundle: one patch block checked, one result page
 * decoded, or a few erased pages hashed; a page bundle: all of it) and sets *done when STAGED.
 * Between turns the engine's page buffer holds the page being decoded: another engine call
 * (inspect, stage_begin, cancel) starts the finish over. Same errors, after which it also starts
 * over.
 */
kerr_t upd_stage_finish_step(upd_t *u, bool *done);

/* STAGING/STAGED -> IDLE (result unchanged). KERR_UPD_STATE otherwise. */
kerr_t upd_cancel(upd_t *u);

/*
 * STAGED -> TRIAL: write the changed pages in place. A power cut: upd_boot() finishes it.
 * If the result does not verify, rolls back and returns KERR_UPD_VERIFY.
 */
kerr_t upd_apply(upd_t *u);

/* TRIAL -> IDLE, result SUCCESS, security counter raised, saved pages released. */
kerr_t upd_confirm(upd_t *u);

/* TRIAL/APPLYING -> restore the saved pages -> IDLE, result FAILED with reason. */
kerr_t upd_rollback(upd_t *u, uint32_t reason);

/* Current state. In STAGING this hashes every page to count blocks_needed: not for hot loops. */
void upd_status(upd_t *u, upd_status_t *out);

/*
 * SHA-256 of the region as it is in internal flash (what upd_boot checks). Flash errors.
 */
kerr_t upd_region_sha(upd_t *u, uint8_t out[32]);

#endif /* KEEL_UPD_H */

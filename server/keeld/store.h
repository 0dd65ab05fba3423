/*
 * keeld storage interface. Every backend (SQLite now, PostgreSQL later) implements the same ops;
 * the rest of keeld never sees SQL. Rules every backend keeps:
 *   - every write is one transaction: it is wholly visible or not at all;
 *   - a call that returns STORE_OK has committed durably (acknowledge to clients only after it),
 *     except inside a batch (batch_begin), where only batch_end's STORE_OK is;
 *   - the store is safe to call from several threads (HTTP connections, the MQTT thread);
 *   - device messages carry (boot, msg_id): storing the same one twice is a no-op, because MQTT
 *     QoS 1 delivers at least once.
 * Read calls return new jansson values the caller owns (json_decref); times are Unix ms.
 */
#ifndef KEEL_SERVER_KEELD_STORE_H
#define KEEL_SERVER_KEELD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keel.pb.h"

typedef enum store_rc {
    STORE_OK = 0,
    STORE_ENOTFOUND = -1,   /* the device / command / crash / token does not exist */
    STORE_EIO = -2,         /* the database failed; logged with the backend's message */
} store_rc_t;

typedef struct store store_t;

/* A page of the registry (GET /v1/devices): ordered by id, after the cursor. */
typedef struct store_device_query {
    const char *after;      /* only ids > after (the previous page's last id); NULL: from the start */
    int online;             /* -1 any, 0 offline, 1 online */
    const char *tag;        /* NULL, "NAME" (any value) or "NAME=VALUE" */
    int limit;              /* 1..1000 */
} store_device_query_t;

/* Which rows of a deployment (GET /v1/deployments/{id}): ordered by device id. */
typedef struct store_rows_query {
    int64_t changed_after;  /* only rows changed at a rev > this (-1: all) */
    const char *after;      /* only devices > after (page cursor); NULL: from the start */
    const char *phase;      /* NULL or one phase */
    int limit;              /* 0: no limit */
    bool events;            /* include the last 200 events */
} store_rows_query_t;

typedef struct store_log_query {
    const char *device;     /* NULL: every device */
    int64_t since_ms;       /* received at or after (0: no bound) */
    int64_t until_ms;       /* received before (0: no bound) */
    int64_t after_id;       /* only entries with id > after_id (follow cursor) */
    int limit;              /* 1..1000 */
} store_log_query_t;

/* A crash as stored: metadata plus the exact KCR1 bytes the device sent. */
typedef struct store_crash {
    int64_t id;
    char device[64];
    int64_t received_ms;
    uint8_t report[512];
    size_t report_len;
    char app_sha256[65];    /* the image it came from (see crash_add), "" when unknown */
} store_crash_t;

typedef struct store_chan_query {
    const char *device;     /* required */
    const char *channel;    /* required */
    const char *direction;  /* "up" (app -> cloud), "down", or NULL for both */
    int64_t since_ms;       /* received at or after (0: no bound) */
    int64_t until_ms;       /* received before (0: no bound) */
    int64_t after_id;       /* only messages with id > after_id (follow cursor) */
    int limit;              /* 1..1000 */
} store_chan_query_t;
/* A bundle's facts, decoded and checked by keeld (ota.c) before it is stored. */
typedef struct store_bundle {
    char sha256[65];           /* of the whole bundle, hex: its identity */
    int64_t size, signed_size; /* bytes: whole bundle; manifest + signature envelope */
    int64_t version, security_counter, min_uv_version, device_type; /* packed / plain numbers */
    int64_t blocks, block_size;
    char key_id[17];           /* signer, hex */
    char region_sha256[65];    /* the app region as the bundle leaves it, hex */
    char image_sha256[65];     /* the app image's, from the app header in the payload ("" if none) */
    char name[33];             /* app name from the app header in the payload ("" if none) */
} store_bundle_t;

/* What a device's active deployment asks of keeld (store_ops.update_active). */
typedef struct store_update {
    int64_t deployment_id, bundle_id;
    char phase[16];            /* "pending" (never offered) or "offered" */
    bool forced;
    int64_t force_after_s;
    char sha256[65], region_sha256[65], image_sha256[65];
    int64_t size, signed_size, version, region_len;
} store_update_t;

/* Deployment rows waiting and downloading (download admission, GET /metrics). */
typedef struct store_update_counts {
    int64_t pending;           /* rows of every deployment never offered yet */
    int64_t downloading;       /* offered, not yet staged, with activity since active_since_ms */
} store_update_counts_t;

/* Fleet-wide figures for GET /metrics (store_ops.fleet_counts). */
#define STORE_FLEET_DEPLOYMENTS 20
typedef struct store_fleet_counts {
    int64_t devices, online;
    int ndeployments;          /* the newest STORE_FLEET_DEPLOYMENTS, oldest first */
    struct store_deployment_bytes {
        int64_t id, bytes_sent;
        int64_t phase[4];      /* rows pending, offered, done, superseded */
    } deployments[STORE_FLEET_DEPLOYMENTS];
} store_fleet_counts_t;

/* delta-2: how a device's row of a deployment is served (store_ops.delivery_get). */
typedef struct store_delivery {
    char delivery[8];          /* "" (not chosen yet), "delta" or "pages" */
    char delta_refused[128];   /* why the device refused the delta ("" when it did not) */
    int64_t bundle_id;         /* delta: the delta bundle offered (0 otherwise) */
    char sha256[65];           /* delta: that bundle's identity, size and signed size */
    int64_t size, signed_size;
} store_delivery_t;

/* ---- ops (issue 16): rollouts (server/keeld/rollout.h; store_sqlite_rollout.c) --------------- */
#define STORE_ROLLOUT_PHASES 16
typedef struct store_rollout_phase {
    char kind[8];              /* "count", "percent" or "tag" */
    char value[128];           /* the count, the percentage, or NAME / NAME=VALUE */
    int64_t success_pct;       /* gate: this share of its devices succeeded (0..100) */
    int64_t error_pct;         /* guard: more than this share of its results are errors ... */
    int64_t min_results;       /* ... once it has at least this many results */
    bool approve;              /* the phase starts only when an operator approves it */
    int64_t devices;           /* how many devices of the target fell in it */
} store_rollout_phase_t;

/* A new rollout: its plan and every device of its target with the phase it falls in. */
typedef struct store_rollout_new {
    int64_t bundle_id, rollback_bundle_id;  /* rollback_bundle_id 0: each device's previous one */
    const char *seed;                       /* what the devices' order was drawn from */
    const char *actor;                      /* who created it ("operator NAME") */
    const char *target_kind, *target;       /* as for deployments: "tag" NAME[=VALUE] or "all" */
    const char *on_error;                   /* "pause" or "rollback" */
    int64_t device_timeout_s, force_after_s;
    int64_t window_from, window_to;         /* daily download window, device-local minutes; -1 none */
    int nphases;
    store_rollout_phase_t phases[STORE_ROLLOUT_PHASES];
    size_t ndevices;
    const char *const *devices;
    const uint8_t *device_phase;
} store_rollout_new_t;

/* One transition of a rollout (store_ops.rollout_move), all of it in one transaction. */
typedef struct store_rollout_move {
    int64_t id, rev;           /* the rollout as the caller read it: nothing moves if it changed */
    const char *to_state;      /* running, awaiting_approval, paused, completed, aborted */
    int64_t start_phase;       /* >= 0: start that phase (a deployment of its devices); else -1 */
    const char *actor, *reason;
    bool hold;                 /* its rows never offered are held (not offered while paused) */
    bool release;              /* its held rows are pending again */
    bool ack;                  /* the guards count results from now on (resumed after errors) */
    bool end;                  /* its unfinished rows are superseded (aborted) */
    bool rollback;             /* the devices it updated or is updating get their previous bundle */
} store_rollout_move_t;

typedef struct store_ops {
    const char *backend;
    void (*close)(store_t *s);

    /* Registry. hello/presence/heartbeat create the device on first sight. */
    store_rc_t (*device_hello)(store_t *s, const char *device, int64_t now_ms,
                               const keel_v1_Envelope *env);
    store_rc_t (*device_presence)(store_t *s, const char *device, int64_t now_ms, bool online);
    store_rc_t (*device_heartbeat)(store_t *s, const char *device, int64_t now_ms,
                                   const keel_v1_Envelope *env);
    /* STORE_ENOTFOUND when the device was never seen. *out_supported: the device listed kind. */
    store_rc_t (*device_supports)(store_t *s, const char *device, keel_v1_CommandKind kind,
                                  bool *out_supported);
    /* Set (string value) or remove (JSON null) tags, all in one transaction. The API validated
     * names and values. STORE_ENOTFOUND when the device was never seen. */
    store_rc_t (*device_tags_set)(store_t *s, const char *device, json_t *tags);
    json_t *(*devices_list)(store_t *s, const store_device_query_t *q);
    json_t *(*device_get)(store_t *s, const char *device);  /* NULL: not found */

    /* Logs. *out_added: entries newly stored (0 for a redelivered batch). */
    store_rc_t (*logs_add)(store_t *s, const char *device, int64_t now_ms,
                           const keel_v1_Envelope *env, int *out_added);
    json_t *(*logs_query)(store_t *s, const store_log_query_t *q);  /* array; NULL on EIO */
    /* Highest log id (of device, or of all when NULL); 0 when there is none. */
    store_rc_t (*logs_last_id)(store_t *s, const char *device, int64_t *out_id);

    /* Crashes. reason/pc/lr/app_version are copied out of the decoded report for listing. The
     * store names the app image (SHA-256) the crash came from: the one of app_version that the
     * device's hellos reported most recently (a report can arrive after an update). */
    store_rc_t (*crash_add)(store_t *s, const char *device, int64_t now_ms,
                            const keel_v1_Envelope *env, const char *reason, uint32_t pc,
                            uint32_t lr, uint32_t app_version, int64_t *out_id);
    /* Newest first; before > 0: only ids < before (the previous page's last id). */
    json_t *(*crashes_list)(store_t *s, const char *device, int64_t before, int limit);
    store_rc_t (*crash_get)(store_t *s, int64_t id, store_crash_t *out);

    /* Commands: created "pending", "sent" once published, then a result or "timeout". */
    store_rc_t (*command_create)(store_t *s, const char *device, keel_v1_CommandKind kind,
                                 int64_t now_ms, int64_t *out_id);
    /* Claim a pending command for publishing: STORE_ENOTFOUND when it is no longer pending. */
    store_rc_t (*command_mark_sent)(store_t *s, int64_t id, int64_t now_ms);
    /* Device answered. STORE_ENOTFOUND when no such command for that device. */
    store_rc_t (*command_result)(store_t *s, const char *device, int64_t now_ms,
                                 const keel_v1_CommandResult *r);
    /* The device (re)connected: commands sent but unanswered go back to pending, to be sent again
     * (a device that was offline never got them; one that did ignores a repeated id). */
    store_rc_t (*commands_requeue)(store_t *s, const char *device);
    /* Mark commands created before older_than_ms and still unanswered as "timeout". */
    store_rc_t (*commands_expire)(store_t *s, int64_t older_than_ms, int64_t now_ms);
    /* Pending (not yet published) commands, oldest first: [{"id","device","kind"}...]. */
    json_t *(*commands_pending)(store_t *s, int limit);
    json_t *(*command_get)(store_t *s, int64_t id);         /* NULL: not found */

    /* API tokens, stored as SHA-256 hex of the token; the token itself is never stored. */
    store_rc_t (*token_add)(store_t *s, const char *name, const char *hash_hex, int64_t now_ms,
                            int64_t *out_id);
    /* STORE_OK and fills out_name (cap bytes) if a token with that hash exists. */
    store_rc_t (*token_check)(store_t *s, const char *hash_hex, char *out_name, size_t cap);
    json_t *(*tokens_list)(store_t *s);

    /* App channel messages, direction "up" or "down". An up message already stored (same
     * device, boot, msg_id: a QoS 1 redelivery) is not stored again: *out_id is then 0. */
    store_rc_t (*channel_add)(store_t *s, const char *device, const char *channel,
                              const char *direction, int64_t now_ms, uint64_t boot, uint64_t msg_id,
                              const uint8_t *data, size_t len, int64_t *out_id);
    /* [{"id","device","channel","direction","received_ms","data" (hex)}...], oldest first. */
    json_t *(*channel_query)(store_t *s, const store_chan_query_t *q);
    store_rc_t (*channel_last_id)(store_t *s, const char *device, const char *channel, int64_t *out_id);

    /* App ELFs keyed by the SHA-256 (hex) of the app image they build (the API checked it).
     * *out_created is false when that image already had an ELF (the first one is kept). */
    store_rc_t (*elf_put)(store_t *s, const char *sha256, const char *name, uint32_t image_size,
                          const uint8_t *elf, size_t len, int64_t now_ms, bool *out_created);
    /* [{"sha256","name","image_size","elf_size","uploaded_ms"}...]; sha256 NULL: all. */
    json_t *(*elfs_list)(store_t *s, const char *sha256);
    /* The ELF's bytes (malloc'd, caller frees). STORE_ENOTFOUND when there is none. */
    store_rc_t (*elf_get)(store_t *s, const char *sha256, uint8_t **out, size_t *out_len);
    /*
     * Bundles, stored by SHA-256: the same bytes again are a no-op (*out_created false, *out_id
     * the existing bundle). bundle_get: by id, or by sha256 hex when id is 0; NULL if unknown.
     * bundle_data: the bytes (malloc'd, the caller frees), STORE_ENOTFOUND if unknown.
     */
    store_rc_t (*bundle_add)(store_t *s, const store_bundle_t *b, const uint8_t *data, size_t len,
                             int64_t now_ms, int64_t *out_id, bool *out_created);
    json_t *(*bundles_list)(store_t *s);
    json_t *(*bundle_get)(store_t *s, int64_t id, const char *sha256);
    store_rc_t (*bundle_data)(store_t *s, int64_t id, uint8_t **out, size_t *out_len);

    /*
     * Deployments. create resolves the target now (kind "device": that device; "tag": devices
     * with tag name, or name=value; "all": every device known) and, in the same transaction,
     * supersedes any unfinished older deployment of those devices. STORE_ENOTFOUND when no device
     * matches. *out_devices: how many.
     */
    store_rc_t (*deployment_create)(store_t *s, int64_t bundle_id, const char *kind,
                                    const char *target, int64_t force_after_s, int64_t now_ms,
                                    int64_t *out_id, int *out_devices);
    json_t *(*deployments_list)(store_t *s, int limit);
    /* One deployment with its bundle, its summary (over every row) and the rows q selects
     * (NULL: every row, and the events); NULL if unknown. */
    json_t *(*deployment_get)(store_t *s, int64_t id, const store_rows_query_t *q);
    /* Mark forced; *out_devices (new array) lists the devices not done yet. */
    store_rc_t (*deployment_force)(store_t *s, int64_t id, int64_t now_ms, json_t **out_devices);

    /* The device's unfinished deployment (newest), STORE_ENOTFOUND when there is none. */
    store_rc_t (*update_active)(store_t *s, const char *device, store_update_t *out);
    /* An offer was sent (phase "offered", offers + 1). */
    store_rc_t (*update_offered)(store_t *s, int64_t deployment, const char *device,
                                 int64_t now_ms);
    /*
     * The device runs the bundle (its hello says so): done, success, with detail ("already
     * installed: nothing sent" when it was never offered, "reconciled from hello" when its final
     * status never came). Only a pending or offered row without a final result changes.
     */
    store_rc_t (*update_settled)(store_t *s, int64_t deployment, const char *device,
                                 int64_t now_ms, const char *detail);
    /* bytes more were sent to the device for this deployment. */
    store_rc_t (*update_sent)(store_t *s, int64_t deployment, const char *device, int64_t bytes,
                              int64_t now_ms);
    /*
     * The device's UpdateStatus; final (a result other than initial, with the state back to
     * idle) ends the device's part of the deployment. Every status is also kept in the event
     * history. A row that already holds a final result is left as it is (*out_recorded false:
     * a repeat, still STORE_OK so it is acknowledged again). STORE_ENOTFOUND when the device is
     * not in that deployment.
     */
    store_rc_t (*update_status)(store_t *s, int64_t deployment, const char *device,
                                int64_t now_ms, const keel_v1_UpdateStatus *st, bool final,
                                bool *out_recorded);

    /*
     * Group commit (docs/fleet-service.md "Ingest"): between batch_begin and batch_end, every op
     * this thread calls is part of one transaction (each op still atomic on its own: a failing
     * op undoes only itself), and its STORE_OK means "will be committed with the batch": only
     * batch_end's STORE_OK is durable, so acknowledge nothing before it. Other threads' ops wait
     * until batch_end. batch_end(s, false) rolls everything back. Not nestable.
     */
    store_rc_t (*batch_begin)(store_t *s);
    store_rc_t (*batch_end)(store_t *s, bool commit);

    /*
     * Download admission (protocol.md P3). updates_admissible: up to limit rows never offered
     * whose device is online, oldest deployment first: *out = [{"device","deployment"}...].
     * updates_counts: rows pending, and rows downloading (offered, no final result, state idle
     * or downloading, updated at or after active_since_ms: a device gone quiet frees its slot).
     */
    store_rc_t (*updates_admissible)(store_t *s, int limit, json_t **out);
    store_rc_t (*updates_counts)(store_t *s, int64_t active_since_ms, store_update_counts_t *out);
    /* Every row of deployment never offered whose device's last hello showed the bundle's region
     * (as ota.c's decision does: the whole region's hash, or the image's hash and version) is
     * done ("already installed: nothing sent"), in one statement: a new deployment settles these
     * at once, before admission. */
    store_rc_t (*updates_settle_installed)(store_t *s, int64_t deployment, int64_t now_ms,
                                           int *out_settled);
    /* Devices (all, online) and the newest deployments' bytes served and rows per phase. */
    store_rc_t (*fleet_counts)(store_t *s, store_fleet_counts_t *out);

    /* ---- delta-2: delta bundles per base and the per-device choice (store_sqlite_delta.c) ---- */
    /* Bundle bundle_id (stored with bundle_add) is a delta from the region base_region_sha256 to
     * region_sha256 (hex); the same again is a no-op. */
    store_rc_t (*delta_add)(store_t *s, int64_t bundle_id, const char *base_region_sha256,
                            const char *region_sha256, int64_t patch_size);
    /* The smallest delta that makes full bundle full_id's result (same region, version, counter,
     * device type, microvisor minimum) out of what the device's last hello showed: its whole app
     * region's hash, or (an image-only hello) the region of a stored bundle with that image hash
     * and version. STORE_ENOTFOUND when there is none. Fills bundle_id, sha256, size, signed_size. */
    store_rc_t (*delta_find)(store_t *s, int64_t full_id, const char *device, store_delivery_t *out);
    /* The row's delivery, with the delta bundle's facts when it is "delta". */
    store_rc_t (*delivery_get)(store_t *s, int64_t deployment, const char *device,
                               store_delivery_t *out);
    /* Choose how the row is served (only a row not chosen yet and not finished changes):
     * delivery "delta" (bundle_id: the delta) or "pages" (bundle_id 0). */
    store_rc_t (*delivery_set)(store_t *s, int64_t deployment, const char *device,
                               const char *delivery, int64_t bundle_id);
    /* The device refused its delta (st: its final status): the row turns to "pages", stays open
     * (no final result) and keeps the reason; the refusal goes into the history. *out_changed:
     * false when the row was not being served a delta (nothing changed). */
    store_rc_t (*delivery_fallback)(store_t *s, int64_t deployment, const char *device,
                                    int64_t now_ms, const keel_v1_UpdateStatus *st,
                                    bool *out_changed);
    /* The delta facts of bundle id ({"base_region_sha256","patch_size"}), NULL when it is a
     * full bundle. */
    json_t *(*delta_get)(store_t *s, int64_t bundle_id);

    /* ---- ops (issue 16): rollouts, and the targets' boards ---------------------------------- */
    /* The devices a target names (kind "device", "tag" or "all", as deployment_create resolves
     * it): *out = [{"id","board"}...] by id. */
    store_rc_t (*target_devices)(store_t *s, const char *kind, const char *target, json_t **out);
    /* How many devices of a target run each board: *out = [{"board","devices"}...]. */
    store_rc_t (*target_boards)(store_t *s, const char *kind, const char *target, json_t **out);
    /* Ids of the devices with tag NAME (any value) or NAME=VALUE, sorted: *out = ["id"...]. */
    store_rc_t (*devices_tagged)(store_t *s, const char *tag, json_t **out);
    /* Store a new rollout (state "running", no phase started yet) with its first transition. */
    store_rc_t (*rollout_create)(store_t *s, const store_rollout_new_t *r, int64_t now_ms,
                                 int64_t *out_id);
    /* Newest first; active: only those running or awaiting approval (what the engine decides). */
    json_t *(*rollouts_list)(store_t *s, bool active, int limit);
    /* One rollout: its plan, each phase with its counts at now_ms (timeouts need the time), its
     * transitions (newest first, at most 200) and "watch_rev"; NULL if unknown. */
    json_t *(*rollout_get)(store_t *s, int64_t id, int64_t now_ms);
    /* Apply a transition if the rollout's rev is still m->rev (*out_moved false otherwise:
     * another instance or request moved it first). *out_deployments: the deployments it created
     * (a phase, rollbacks): [id...], for the caller to hand to admission. */
    store_rc_t (*rollout_move)(store_t *s, const store_rollout_move_t *m, int64_t now_ms,
                               bool *out_moved, json_t **out_deployments);
    /* Download window of a running rollout: its rows never offered are held while the device's
     * local time (UTC + its tag utc_offset, minutes) is outside the window, pending inside it.
     * *out_released: rows made pending (for admission). */
    store_rc_t (*rollout_window)(store_t *s, int64_t id, int64_t now_ms, int *out_released);
} store_ops_t;

/* Every backend's handle starts with its ops. */
struct store {
    const store_ops_t *ops;
};

/*
 * Open (create, migrate) the SQLite store at path. NULL with a message in err (errcap bytes) when
 * the file cannot be opened, is not a Keel database, or has a newer schema than this keeld knows.
 */
store_t *store_sqlite_open(const char *path, char *err, size_t errcap);

#endif /* KEEL_SERVER_KEELD_STORE_H */

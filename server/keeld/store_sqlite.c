/*
 * SQLite backend of the keeld store: one database file in WAL mode, synchronous=FULL (a commit is
 * on disk before the call returns, so keeld can acknowledge it), schema migrations recorded in
 * schema_version. The DML below is plain SQL that PostgreSQL accepts as written (ON CONFLICT DO
 * NOTHING, no SQLite functions); only the DDL (INTEGER PRIMARY KEY vs identity columns, BLOB vs
 * BYTEA) and the connection set-up are backend-specific.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "kd_log.h"
#include "keel/kproto.h"
#include "store.h"
#include "store_sqlite_priv.h"

typedef struct store_sqlite {
    store_t base;
    sqlite3 *db;
    /* One connection shared by every thread: the mutex makes each op (and its transaction) atomic. */
    pthread_mutex_t lock;
} store_sqlite_t;

/*
 * Schema migrations, applied in order; migration i brings the schema to version i + 1.
 * persisted: never edit a released migration, append a new one.
 */
static const char *const migrations[] = {
    /* 1: registry, logs, crashes, commands, tokens */
    "CREATE TABLE devices ("
    " id TEXT PRIMARY KEY,"
    " online INTEGER NOT NULL DEFAULT 0,"
    " first_seen_ms BIGINT NOT NULL,"
    " last_seen_ms BIGINT NOT NULL,"
    " hello_ms BIGINT NOT NULL DEFAULT 0,"
    " microvisor_version BIGINT NOT NULL DEFAULT 0,"
    " api_version BIGINT NOT NULL DEFAULT 0,"
    " app_version BIGINT NOT NULL DEFAULT 0,"
    " board TEXT NOT NULL DEFAULT '',"
    " app_state TEXT NOT NULL DEFAULT 'unknown',"
    " restart_count BIGINT NOT NULL DEFAULT 0,"
    " uptime_ms BIGINT NOT NULL DEFAULT 0,"
    " boot BIGINT NOT NULL DEFAULT 0,"
    " proto_revision BIGINT NOT NULL DEFAULT 0,"
    " reset_reason BIGINT NOT NULL DEFAULT 0,"
    " log_dropped BIGINT NOT NULL DEFAULT 0,"
    " commands TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE device_regions ("
    " device_id TEXT NOT NULL REFERENCES devices (id),"
    " name TEXT NOT NULL,"
    " size BIGINT NOT NULL,"
    " sha256 TEXT NOT NULL,"
    " version BIGINT NOT NULL,"
    " PRIMARY KEY (device_id, name));"
    "CREATE TABLE device_tags ("
    " device_id TEXT NOT NULL REFERENCES devices (id),"
    " name TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (device_id, name));"
    "CREATE TABLE logs ("
    " id INTEGER PRIMARY KEY,"
    " device_id TEXT NOT NULL,"
    " received_ms BIGINT NOT NULL,"
    " boot BIGINT NOT NULL,"
    " msg_id BIGINT NOT NULL,"
    " idx INTEGER NOT NULL,"
    " uptime_ms BIGINT NOT NULL,"
    " level TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " text TEXT NOT NULL,"
    " UNIQUE (device_id, boot, msg_id, idx));"
    "CREATE INDEX logs_device_time ON logs (device_id, received_ms);"
    "CREATE TABLE crashes ("
    " id INTEGER PRIMARY KEY,"
    " device_id TEXT NOT NULL,"
    " received_ms BIGINT NOT NULL,"
    " boot BIGINT NOT NULL,"
    " msg_id BIGINT NOT NULL,"
    " reason TEXT NOT NULL,"
    " pc BIGINT NOT NULL,"
    " lr BIGINT NOT NULL,"
    " app_version BIGINT NOT NULL,"
    " report BLOB NOT NULL,"
    " UNIQUE (device_id, boot, msg_id));"
    "CREATE TABLE commands ("
    " id INTEGER PRIMARY KEY,"
    " device_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL,"
    " sent_ms BIGINT,"
    " completed_ms BIGINT,"
    " detail TEXT NOT NULL DEFAULT '',"
    " device_uptime_ms BIGINT);"
    "CREATE INDEX commands_status ON commands (status, created_ms);"
    "CREATE TABLE tokens ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " sha256 TEXT NOT NULL UNIQUE,"
    " created_ms BIGINT NOT NULL);",
    /* 2: app channel data; app ELFs by image SHA-256; the images each device has reported (to
     * name the image a crash came from) and, per crash, that image */
    "CREATE TABLE channel_data ("
    " id INTEGER PRIMARY KEY,"
    " device_id TEXT NOT NULL,"
    " channel TEXT NOT NULL,"
    " direction TEXT NOT NULL,"
    " received_ms BIGINT NOT NULL,"
    " boot BIGINT NOT NULL,"
    " msg_id BIGINT NOT NULL,"
    " data BLOB NOT NULL);"
    "CREATE INDEX channel_data_device ON channel_data (device_id, channel, id);"
    "CREATE TABLE elfs ("
    " sha256 TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " image_size BIGINT NOT NULL,"
    " elf_size BIGINT NOT NULL,"
    " uploaded_ms BIGINT NOT NULL,"
    " elf BLOB NOT NULL);"
    "CREATE TABLE device_images ("
    " device_id TEXT NOT NULL,"
    " sha256 TEXT NOT NULL,"
    " version BIGINT NOT NULL,"
    " first_seen_ms BIGINT NOT NULL,"
    " last_seen_ms BIGINT NOT NULL,"
    " PRIMARY KEY (device_id, sha256));"
    "ALTER TABLE crashes ADD COLUMN app_sha256 TEXT NOT NULL DEFAULT '';",
    /* 3: update bundles, deployments, per-device progress and its history (issue 6) */
    "CREATE TABLE bundles ("
    " id INTEGER PRIMARY KEY,"
    " sha256 TEXT NOT NULL UNIQUE,"
    " size BIGINT NOT NULL,"
    " signed_size BIGINT NOT NULL,"
    " version BIGINT NOT NULL,"
    " security_counter BIGINT NOT NULL,"
    " min_uv_version BIGINT NOT NULL,"
    " device_type BIGINT NOT NULL,"
    " blocks BIGINT NOT NULL,"
    " block_size BIGINT NOT NULL,"
    " key_id TEXT NOT NULL,"
    " region_sha256 TEXT NOT NULL,"
    " image_sha256 TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL,"
    " data BLOB NOT NULL);"
    "CREATE TABLE deployments ("
    " id INTEGER PRIMARY KEY,"
    " bundle_id INTEGER NOT NULL REFERENCES bundles (id),"
    " target_kind TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " force_after_s BIGINT NOT NULL,"
    " forced INTEGER NOT NULL DEFAULT 0,"
    " created_ms BIGINT NOT NULL,"
    " rev BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE deployment_devices ("
    " deployment_id INTEGER NOT NULL REFERENCES deployments (id),"
    " device_id TEXT NOT NULL REFERENCES devices (id),"
    " phase TEXT NOT NULL DEFAULT 'pending',"
    " state TEXT NOT NULL DEFAULT 'idle',"
    " result TEXT NOT NULL DEFAULT 'initial',"
    " code BIGINT NOT NULL DEFAULT 0,"
    " detail TEXT NOT NULL DEFAULT '',"
    " blocks_total BIGINT NOT NULL DEFAULT 0,"
    " blocks_needed BIGINT NOT NULL DEFAULT 0,"
    " blocks_staged BIGINT NOT NULL DEFAULT 0,"
    " bytes_sent BIGINT NOT NULL DEFAULT 0,"
    " bytes_fetched BIGINT NOT NULL DEFAULT 0,"
    " version BIGINT NOT NULL DEFAULT 0,"
    " installed_version BIGINT NOT NULL DEFAULT 0,"
    " trial INTEGER NOT NULL DEFAULT 0,"
    " offers BIGINT NOT NULL DEFAULT 0,"
    " updated_ms BIGINT NOT NULL,"
    " status_ms BIGINT,"
    " PRIMARY KEY (deployment_id, device_id));"
    "CREATE INDEX deployment_devices_device ON deployment_devices (device_id, phase);"
    "CREATE TABLE update_events ("
    " id INTEGER PRIMARY KEY,"
    " deployment_id INTEGER NOT NULL,"
    " device_id TEXT NOT NULL,"
    " received_ms BIGINT NOT NULL,"
    " state TEXT NOT NULL,"
    " result TEXT NOT NULL,"
    " code BIGINT NOT NULL,"
    " detail TEXT NOT NULL);"
    "CREATE INDEX update_events_deployment ON update_events (deployment_id, id);",
    /* 4: download admission looks rows up by phase (store_sqlite_fleet.c) */
    "CREATE INDEX deployment_devices_phase ON deployment_devices (phase, deployment_id);",
    /* 5: each deployment row remembers the deployment rev of its last change, so a watch can ask
     * for the rows changed since the rev it saw (not the whole table again). A trigger keeps it:
     * every change of a row bumps the deployment's rev and stamps the row with it. */
    "ALTER TABLE deployment_devices ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX deployment_devices_rev ON deployment_devices (deployment_id, rev);"
    "CREATE TRIGGER deployment_devices_rev AFTER UPDATE ON deployment_devices"
    " WHEN NEW.rev = OLD.rev BEGIN"
    " UPDATE deployments SET rev = rev + 1 WHERE id = NEW.deployment_id;"
    " UPDATE deployment_devices SET rev = (SELECT rev FROM deployments WHERE id = NEW.deployment_id)"
    " WHERE deployment_id = NEW.deployment_id AND device_id = NEW.device_id;"
    " END;",
    /* delta-2: delta bundles per base (store_sqlite_delta.c): a delta is a bundle of its own,
     * linked to full bundles by the result region it signs; each device row remembers how it is
     * served ("delta" with the delta bundle, or "pages") and why a delta was refused */
    "CREATE TABLE bundle_deltas ("
    " bundle_id INTEGER PRIMARY KEY REFERENCES bundles (id),"
    " base_region_sha256 TEXT NOT NULL,"
    " region_sha256 TEXT NOT NULL,"
    " patch_size BIGINT NOT NULL);"
    "CREATE INDEX bundle_deltas_result ON bundle_deltas (region_sha256, base_region_sha256);"
    "CREATE INDEX bundles_image ON bundles (image_sha256, version);"
    "ALTER TABLE deployment_devices ADD COLUMN delivery TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE deployment_devices ADD COLUMN delivery_bundle_id INTEGER;"
    "ALTER TABLE deployment_devices ADD COLUMN delta_refused TEXT NOT NULL DEFAULT '';",
    /* ops: rollouts (issue 16, docs/rollouts.md). A rollout splits its target into phases
     * (rollout_devices.phase, fixed at creation) and starts each phase as a deployment of its own
     * (rollout_phases.deployment_id); every change of its state is a rollout_transitions row. */
    "CREATE TABLE rollouts ("
    " id INTEGER PRIMARY KEY,"
    " bundle_id INTEGER NOT NULL REFERENCES bundles (id),"
    " rollback_bundle_id INTEGER,"
    " seed TEXT NOT NULL,"
    " target_kind TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " on_error TEXT NOT NULL,"
    " device_timeout_s BIGINT NOT NULL,"
    " force_after_s BIGINT NOT NULL,"
    " base_deployment BIGINT NOT NULL,"
    " state TEXT NOT NULL,"
    " phase BIGINT NOT NULL,"
    " reason TEXT NOT NULL,"
    " devices BIGINT NOT NULL,"
    " rollback_deployments TEXT NOT NULL DEFAULT '',"
    " window_from BIGINT NOT NULL DEFAULT -1,"
    " window_to BIGINT NOT NULL DEFAULT -1,"
    " created_ms BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL,"
    " rev BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE rollout_phases ("
    " rollout_id INTEGER NOT NULL REFERENCES rollouts (id),"
    " idx BIGINT NOT NULL,"
    " kind TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " success_pct BIGINT NOT NULL,"
    " error_pct BIGINT NOT NULL,"
    " min_results BIGINT NOT NULL,"
    " approve INTEGER NOT NULL,"
    " devices BIGINT NOT NULL,"
    " deployment_id INTEGER,"
    " started_ms BIGINT,"
    " ack_results BIGINT NOT NULL DEFAULT 0,"
    " ack_errors BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (rollout_id, idx));"
    "CREATE INDEX rollout_phases_deployment ON rollout_phases (deployment_id);"
    "CREATE TABLE rollout_devices ("
    " rollout_id INTEGER NOT NULL REFERENCES rollouts (id),"
    " device_id TEXT NOT NULL,"
    " phase BIGINT NOT NULL,"
    " PRIMARY KEY (rollout_id, device_id));"
    "CREATE INDEX rollout_devices_phase ON rollout_devices (rollout_id, phase);"
    "CREATE TABLE rollout_transitions ("
    " id INTEGER PRIMARY KEY,"
    " rollout_id INTEGER NOT NULL REFERENCES rollouts (id),"
    " at_ms BIGINT NOT NULL,"
    " from_state TEXT NOT NULL,"
    " to_state TEXT NOT NULL,"
    " phase BIGINT NOT NULL,"
    " actor TEXT NOT NULL,"
    " reason TEXT NOT NULL);"
    "CREATE INDEX rollout_transitions_rollout ON rollout_transitions (rollout_id, id);",
    /* the device type each device installs, from its hello (Hello.device_type; 0: not said) */
    "ALTER TABLE devices ADD COLUMN device_type BIGINT NOT NULL DEFAULT 0;",
    /* fleet-2: download admission takes pending rows in (deployment, device) order straight from
     * an index, instead of sorting every pending row on each look (360 ms at 100,000 rows, with
     * the store locked); it serves the phase lookups of the index it replaces. */
    "CREATE INDEX deployment_devices_pending ON deployment_devices (phase, deployment_id, device_id);"
    "DROP INDEX deployment_devices_phase;",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- small helpers ----------------------------------------------------------------------------- */

static store_sqlite_t *cast(store_t *s)
{
    return (store_sqlite_t *)s;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        KD_ERROR("sqlite: %s (in: %.60s)", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* One statement without parameters or rows, prepared once (transaction control: every op). */
static int exec1(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = store_sqlite_stmt_get(db, sql);
    int rc = st != NULL ? sqlite3_step(st) : SQLITE_ERROR;

    store_sqlite_stmt_put(st);
    if (rc != SQLITE_DONE) {
        KD_ERROR("sqlite: %s (in: %.60s)", sqlite3_errmsg(db), sql);
        return -1;
    }
    return 0;
}

/* Prepare sql and bind the arguments described by fmt: 't' text, 'i' int64, 'b' blob (ptr, len). */
static sqlite3_stmt *vprep(sqlite3 *db, const char *sql, const char *fmt, va_list ap)
{
    sqlite3_stmt *st = store_sqlite_stmt_get(db, sql);

    if (st == NULL) {
        KD_ERROR("sqlite: prepare: %s (in: %.60s)", sqlite3_errmsg(db), sql);
        return NULL;
    }
    for (int i = 0; fmt[i] != '\0'; i++) {
        int rc = SQLITE_OK;
        if (fmt[i] == 't') {
            const char *v = va_arg(ap, const char *);
            rc = v ? sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
        } else if (fmt[i] == 'i') {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        } else {
            const void *p = va_arg(ap, const void *);
            int n = (int)va_arg(ap, size_t);
            rc = sqlite3_bind_blob(st, i + 1, p, n, SQLITE_TRANSIENT);
        }
        if (rc != SQLITE_OK) {
            KD_ERROR("sqlite: bind %d: %s", i + 1, sqlite3_errmsg(db));
            store_sqlite_stmt_put(st);
            return NULL;
        }
    }
    return st;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = vprep(db, sql, fmt, ap);
    va_end(ap);
    return st;
}

/* Run a statement that returns no rows. Returns the number of rows changed, or -1. */
static int vrun(sqlite3 *db, const char *sql, const char *fmt, va_list ap)
{
    sqlite3_stmt *st = vprep(db, sql, fmt, ap);
    if (st == NULL) {
        return -1;
    }
    int rc = sqlite3_step(st);
    store_sqlite_stmt_put(st);
    if (rc != SQLITE_DONE) {
        KD_ERROR("sqlite: %s (in: %.60s)", sqlite3_errmsg(db), sql);
        return -1;
    }
    return sqlite3_changes(db);
}

static int run(sqlite3 *db, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vrun(db, sql, fmt, ap);
    va_end(ap);
    return n;
}

/* Rows of a prepared statement as a JSON array of objects keyed by column name. Finalizes st. */
static json_t *rows(sqlite3 *db, sqlite3_stmt *st)
{
    json_t *arr = json_array();
    int rc;

    if (st == NULL) {
        json_decref(arr);
        return NULL;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = json_object();
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *name = sqlite3_column_name(st, c);
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER:
                json_object_set_new(o, name, json_integer(sqlite3_column_int64(st, c)));
                break;
            case SQLITE_TEXT:
                json_object_set_new(o, name, json_string((const char *)sqlite3_column_text(st, c)));
                break;
            case SQLITE_NULL:
                json_object_set_new(o, name, json_null());
                break;
            default: { /* a blob (only listed where the caller selects one): lowercase hex */
                const uint8_t *b = sqlite3_column_blob(st, c);
                int n = sqlite3_column_bytes(st, c);
                char *hex = malloc(2 * (size_t)n + 1);
                if (hex != NULL) {
                    for (int i = 0; i < n; i++) {
                        snprintf(hex + 2 * i, 3, "%02x", b[i]);
                    }
                    hex[2 * n] = '\0';
                    json_object_set_new(o, name, json_string(hex));
                    free(hex);
                }
                break;
            }
            }
        }
        json_array_append_new(arr, o);
    }
    store_sqlite_stmt_put(st);
    if (rc != SQLITE_DONE) {
        KD_ERROR("sqlite: %s", sqlite3_errmsg(db));
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/*
 * The thread inside batch_begin/batch_end (it holds the store lock throughout, so no other thread
 * reaches begin() meanwhile): each op's transaction becomes a savepoint of the batch's.
 */
static _Thread_local bool tl_batch;

/* A write transaction. IMMEDIATE takes the write lock up front, so two keeld processes sharing
 * the file wait (busy_timeout) instead of failing half-way with SQLITE_BUSY. Inside a batch: a
 * savepoint, so a failing op undoes only itself. */
static int begin(sqlite3 *db)
{
    return exec1(db, tl_batch ? "SAVEPOINT op" : "BEGIN IMMEDIATE");
}

static store_rc_t finish(sqlite3 *db, int ok)
{
    if (tl_batch) {
        if (ok && exec1(db, "RELEASE op") == 0) {
            return STORE_OK; /* durable only with the batch's commit */
        }
        exec1(db, "ROLLBACK TO op");
        exec1(db, "RELEASE op");
        return STORE_EIO;
    }
    if (ok && exec1(db, "COMMIT") == 0) {
        return STORE_OK;
    }
    if (!sqlite3_get_autocommit(db)) {
        exec1(db, "ROLLBACK"); /* a failed COMMIT (disk full, I/O error) may have rolled back already */
    }
    return STORE_EIO;
}

static void lock(store_t *s)
{
    pthread_mutex_lock(&cast(s)->lock);
}

static void unlock(store_t *s)
{
    pthread_mutex_unlock(&cast(s)->lock);
}

/* Group commit: one transaction for many ops of this thread; other threads wait for its end. */
static store_rc_t batch_begin(store_t *s)
{
    lock(s);
    if (exec1(cast(s)->db, "BEGIN IMMEDIATE") != 0) {
        unlock(s);
        return STORE_EIO;
    }
    tl_batch = true;
    return STORE_OK;
}

static store_rc_t batch_end(store_t *s, bool commit)
{
    sqlite3 *db = cast(s)->db;

    tl_batch = false;
    store_rc_t rc = finish(db, commit);
    unlock(s);
    return commit ? rc : STORE_EIO;
}

/* One statement in its own write transaction. out_changes/out_rowid may be NULL. */
store_rc_t store_sqlite_write1(store_t *s, int *out_changes, int64_t *out_rowid, const char *sql,
                              const char *fmt, ...)
{
    sqlite3 *db = cast(s)->db;
    int n = -1;
    va_list ap;

    lock(s);
    if (begin(db) == 0) {
        va_start(ap, fmt);
        n = vrun(db, sql, fmt, ap);
        va_end(ap);
    }
    if (out_rowid != NULL) {
        *out_rowid = n > 0 ? sqlite3_last_insert_rowid(db) : 0;
    }
    store_rc_t rc = finish(db, n >= 0);
    unlock(s);
    if (out_changes != NULL) {
        *out_changes = rc == STORE_OK ? n : 0;
    }
    return rc;
}

/* A query's rows as a JSON array (see rows()), or NULL on error (store_sqlite_priv.h). */
json_t *store_sqlite_rows(store_t *s, const char *sql, const char *fmt, ...)
{
    va_list ap;

    lock(s);
    va_start(ap, fmt);
    json_t *arr = rows(cast(s)->db, vprep(cast(s)->db, sql, fmt, ap));
    va_end(ap);
    unlock(s);
    return arr;
}

/* The single row of a query as an object, or NULL when there is none (or on error). */
static json_t *read_one(json_t *arr)
{
    json_t *o = (arr != NULL && json_array_size(arr) == 1) ? json_incref(json_array_get(arr, 0)) : NULL;
    json_decref(arr);
    return o;
}

/* The "id" of the one row of a "SELECT MAX(id) AS id ..." (store_sqlite_rows's result, taken): where a
 * live listing starts. No rows gives a null MAX, which reads as 0. */
static store_rc_t max_id(json_t *rows, int64_t *out_id)
{
    json_t *row = read_one(rows);
    if (row == NULL) {
        return STORE_EIO;
    }
    *out_id = json_integer_value(json_object_get(row, "id"));
    json_decref(row);
    return STORE_OK;
}

/* The device row exists (created on first sight) and was seen now. */
static int touch_device(sqlite3 *db, const char *device, int64_t now_ms)
{
    if (run(db, "INSERT INTO devices (id, first_seen_ms, last_seen_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING", "tii", device, now_ms, now_ms) < 0) {
        return -1;
    }
    return run(db, "UPDATE devices SET last_seen_ms = ? WHERE id = ?", "it", now_ms, device) < 0 ? -1 : 0;
}

/* ---- registry -------------------------------------------------------------------------------- */

static store_rc_t device_hello(store_t *s, const char *device, int64_t now_ms,
                               const keel_v1_Envelope *env)
{
    sqlite3 *db = cast(s)->db;
    const keel_v1_Hello *h = &env->body.hello;
    char cmds[128] = "";
    int ok;

    for (pb_size_t i = 0; i < h->commands_count; i++) {
        const char *n = kproto_command_name(h->commands[i]);
        if (strcmp(n, "unknown") != 0 && strlen(cmds) + strlen(n) + 2 < sizeof(cmds)) {
            strcat(cmds, cmds[0] ? "," : "");
            strcat(cmds, n);
        }
    }
    lock(s);
    ok = begin(db) == 0 && touch_device(db, device, now_ms) == 0 &&
         run(db, "UPDATE devices SET online = 1, hello_ms = ?, microvisor_version = ?, api_version = ?,"
                 " app_version = ?, board = ?, app_state = ?, restart_count = ?, uptime_ms = ?,"
                 " boot = ?, proto_revision = ?, reset_reason = ?, commands = ?, device_type = ?"
                 " WHERE id = ?",
             "iiiittiiiiitit", now_ms, (int64_t)h->microvisor_version, (int64_t)h->api_version,
             (int64_t)h->app_version, h->board, kproto_app_state_name(h->app_state),
             (int64_t)h->restart_count, (int64_t)h->uptime_ms, (int64_t)env->boot,
             (int64_t)env->version, (int64_t)h->reset_reason, cmds, (int64_t)h->device_type,
             device) >= 0 &&
         run(db, "DELETE FROM device_regions WHERE device_id = ?", "t", device) >= 0;
    /* The manifest is replaced whole: what the device says now is what it has. */
    for (pb_size_t i = 0; ok && i < h->regions_count; i++) {
        char hex[65];
        for (int b = 0; b < 32; b++) {
            snprintf(hex + 2 * b, 3, "%02x", h->regions[i].sha256[b]);
        }
        ok = run(db, "INSERT INTO device_regions (device_id, name, size, sha256, version) "
                     "VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id, name) DO NOTHING", "ttiti",
                 device, h->regions[i].name, (int64_t)h->regions[i].size, hex,
                 (int64_t)h->regions[i].version) >= 0;
        /* Every app image the device has run, for naming a crash's image (crash_add). */
        if (ok && strcmp(h->regions[i].name, "app") == 0) {
            ok = run(db, "INSERT INTO device_images (device_id, sha256, version, first_seen_ms, last_seen_ms)"
                         " VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id, sha256) DO UPDATE SET"
                         " version = excluded.version, last_seen_ms = excluded.last_seen_ms", "ttiii",
                     device, hex, (int64_t)h->regions[i].version, now_ms, now_ms) >= 0;
        }
    }
    store_rc_t rc = finish(db, ok);
    unlock(s);
    return rc;
}

static store_rc_t device_presence(store_t *s, const char *device, int64_t now_ms, bool online)
{
    sqlite3 *db = cast(s)->db;

    lock(s);
    int ok = begin(db) == 0 && touch_device(db, device, now_ms) == 0 &&
             run(db, "UPDATE devices SET online = ? WHERE id = ?", "it", (int64_t)online, device) >= 0;
    store_rc_t rc = finish(db, ok);
    unlock(s);
    return rc;
}

static store_rc_t device_heartbeat(store_t *s, const char *device, int64_t now_ms,
                                   const keel_v1_Envelope *env)
{
    sqlite3 *db = cast(s)->db;
    const keel_v1_Heartbeat *hb = &env->body.heartbeat;

    lock(s);
    int ok = begin(db) == 0 && touch_device(db, device, now_ms) == 0 &&
             run(db, "UPDATE devices SET online = 1, uptime_ms = ?, app_state = ?, restart_count = ?,"
                     " log_dropped = ? WHERE id = ?", "itiit", (int64_t)hb->uptime_ms,
                 kproto_app_state_name(hb->app_state), (int64_t)hb->restart_count,
                 (int64_t)hb->log_dropped, device) >= 0;
    store_rc_t rc = finish(db, ok);
    unlock(s);
    return rc;
}

static store_rc_t device_supports(store_t *s, const char *device, keel_v1_CommandKind kind,
                                  bool *out_supported)
{
    sqlite3 *db = cast(s)->db;
    store_rc_t rc = STORE_EIO;

    lock(s);
    sqlite3_stmt *st = prep(db, "SELECT commands FROM devices WHERE id = ?", "t", device);
    if (st != NULL) {
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            /* ",ping,restart," contains ",ping," exactly when the device listed ping. */
            char list[160], want[40];
            snprintf(list, sizeof(list), ",%s,", (const char *)sqlite3_column_text(st, 0));
            snprintf(want, sizeof(want), ",%s,", kproto_command_name(kind));
            *out_supported = strstr(list, want) != NULL;
            rc = STORE_OK;
        } else if (r == SQLITE_DONE) {
            rc = STORE_ENOTFOUND;
        }
        store_sqlite_stmt_put(st);
    }
    unlock(s);
    return rc;
}

static store_rc_t device_tags_set(store_t *s, const char *device, json_t *tags)
{
    sqlite3 *db = cast(s)->db;
    const char *name;
    json_t *value;

    lock(s);
    int ok = begin(db) == 0;
    bool exists = false;
    if (ok) {
        sqlite3_stmt *st = prep(db, "SELECT id FROM devices WHERE id = ?", "t", device);
        int r = st ? sqlite3_step(st) : SQLITE_ERROR;
        exists = r == SQLITE_ROW;
        ok = r == SQLITE_ROW || r == SQLITE_DONE;
        store_sqlite_stmt_put(st);
    }
    json_object_foreach(tags, name, value) {
        if (!ok || !exists) {
            break;
        }
        ok = (json_is_null(value)
                  ? run(db, "DELETE FROM device_tags WHERE device_id = ? AND name = ?", "tt", device, name)
                  : run(db, "INSERT INTO device_tags (device_id, name, value) VALUES (?, ?, ?)"
                            " ON CONFLICT (device_id, name) DO UPDATE SET value = excluded.value",
                        "ttt", device, name, json_string_value(value))) >= 0;
    }
    store_rc_t rc = finish(db, ok);
    unlock(s);
    return (rc == STORE_OK && !exists) ? STORE_ENOTFOUND : rc;
}

#define DEVICE_COLUMNS                                                                           \
    "id, online, first_seen_ms, last_seen_ms, hello_ms, microvisor_version, api_version,"       \
    " app_version, board, app_state, restart_count, uptime_ms, boot, proto_revision, reset_reason," \
    " log_dropped, commands, device_type"

/* Packed versions (major << 24 | minor << 16 | patch) in o's fields named by keys -> "1.2.3". */
static void versions_fixup(json_t *o, const char *const *keys, size_t n)
{
    char buf[40];

    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (v == NULL) {
            continue;
        }
        uint32_t x = (uint32_t)json_integer_value(v);
        snprintf(buf, sizeof(buf), "%u.%u.%u", x >> 24, (x >> 16) & 0xFFu, x & 0xFFFFu);
        json_object_set_new(o, keys[i], json_string(buf));
    }
}

/* Rows store plain numbers; the API shows booleans, version strings and a command list. */
static void device_fixup(json_t *d)
{
    static const char *const versions[] = {"microvisor_version", "app_version"};

    json_object_set_new(d, "online", json_boolean(json_integer_value(json_object_get(d, "online"))));
    versions_fixup(d, versions, 2);
    json_t *cmds = json_array();
    const char *list = json_string_value(json_object_get(d, "commands"));
    while (list != NULL && *list != '\0') {
        size_t n = strcspn(list, ",");
        json_array_append_new(cmds, json_stringn(list, n));
        list += n + (list[n] == ',');
    }
    json_object_set_new(d, "commands", cmds);
}

static json_t *devices_list(store_t *s, const store_device_query_t *q)
{
    char name[64] = "";
    const char *value = NULL;
    if (q->tag != NULL) {
        snprintf(name, sizeof(name), "%s", q->tag);
        char *eq = strchr(name, '=');
        if (eq != NULL) {
            *eq = '\0';
            value = q->tag + (eq - name) + 1;
        }
    }
    json_t *arr = store_sqlite_rows(s, "SELECT " DEVICE_COLUMNS " FROM devices WHERE (? IS NULL OR id > ?)"
                                       " AND (? < 0 OR online = ?) AND (? IS NULL OR EXISTS (SELECT 1"
                                       " FROM device_tags t WHERE t.device_id = devices.id AND t.name = ?"
                                       " AND (? IS NULL OR t.value = ?))) ORDER BY id LIMIT ?", "ttiitttti",
                                    q->after, q->after, (int64_t)q->online, (int64_t)q->online,
                                    q->tag ? name : NULL, name, value, value, (int64_t)q->limit);
    size_t i;
    json_t *d;
    json_array_foreach(arr, i, d) {
        device_fixup(d);
    }
    return arr;
}

static json_t *device_get(store_t *s, const char *device)
{
    sqlite3 *db = cast(s)->db;

    lock(s);
    json_t *arr = rows(db, prep(db, "SELECT " DEVICE_COLUMNS " FROM devices WHERE id = ?", "t", device));
    json_t *regions = rows(db, prep(db, "SELECT name, size, sha256, version FROM device_regions "
                                        "WHERE device_id = ? ORDER BY name", "t", device));
    json_t *tags = rows(db, prep(db, "SELECT name, value FROM device_tags WHERE device_id = ? "
                                     "ORDER BY name", "t", device));
    unlock(s);
    json_t *d = NULL;
    if (arr != NULL && json_array_size(arr) == 1 && regions != NULL && tags != NULL) {
        d = json_incref(json_array_get(arr, 0));
        device_fixup(d);
        json_object_set(d, "regions", regions);
        json_t *t = json_object();
        size_t i;
        json_t *row;
        json_array_foreach(tags, i, row) {
            json_object_set(t, json_string_value(json_object_get(row, "name")),
                            json_object_get(row, "value"));
        }
        json_object_set_new(d, "tags", t);
    }
    json_decref(arr);
    json_decref(regions);
    json_decref(tags);
    return d;
}

/* Index of the synthetic "entries dropped" line of a batch (real entries are 0..7). */
#define LOG_IDX_DROPPED 1000

/* ---- logs ------------------------------------------------------------------------------------- */

/* One entry of a batch; a redelivered one (same device, boot, msg_id, idx) changes nothing (0). */
static int insert_log(sqlite3 *db, const char *device, int64_t now_ms, const keel_v1_Envelope *env,
                      unsigned idx, uint64_t uptime_ms, keel_v1_LogLevel level,
                      keel_v1_LogSource source, const char *text)
{
    return run(db, "INSERT INTO logs (device_id, received_ms, boot, msg_id, idx, uptime_ms, level,"
                   " source, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                   " ON CONFLICT (device_id, boot, msg_id, idx) DO NOTHING", "tiiiiittt",
               device, now_ms, (int64_t)env->boot, (int64_t)env->msg_id, (int64_t)idx,
               (int64_t)uptime_ms, kproto_level_name(level), kproto_source_name(source), text);
}

static store_rc_t logs_add(store_t *s, const char *device, int64_t now_ms,
                           const keel_v1_Envelope *env, int *out_added)
{
    sqlite3 *db = cast(s)->db;
    const keel_v1_LogBatch *b = &env->body.logs;
    int added = 0;

    lock(s);
    int ok = begin(db) == 0 && touch_device(db, device, now_ms) == 0;
    for (pb_size_t i = 0; ok && i < b->entries_count; i++) {
        const keel_v1_LogEntry *e = &b->entries[i];
        int n = insert_log(db, device, now_ms, env, i, e->uptime_ms, e->level, e->source, e->text);
        ok = n >= 0;
        added += n > 0 ? n : 0;
    }
    /* Entries lost on the device show up where they were lost, as a line of their own (idx past
     * any real entry, so a redelivered batch still dedupes). */
    if (ok && b->dropped != 0) {
        char text[96];
        snprintf(text, sizeof(text), "%u log entries dropped on the device here (its buffer was full)",
                 b->dropped);
        int n = insert_log(db, device, now_ms, env, LOG_IDX_DROPPED, env->time_ms,
                           keel_v1_LogLevel_LOG_LEVEL_WARN, keel_v1_LogSource_LOG_SOURCE_MICROVISOR, text);
        ok = n >= 0;
        added += n > 0 ? n : 0;
    }
    store_rc_t rc = finish(db, ok);
    unlock(s);
    *out_added = rc == STORE_OK ? added : 0;
    return rc;
}

static json_t *logs_query(store_t *s, const store_log_query_t *q)
{
    /* One statement for every filter combination: an absent bound is a condition that holds. */
    return store_sqlite_rows(s,
        "SELECT id, device_id AS device, received_ms, boot, uptime_ms, level, source, text FROM logs"
        " WHERE (? IS NULL OR device_id = ?) AND received_ms >= ? AND (? = 0 OR received_ms < ?)"
        " AND id > ? ORDER BY id LIMIT ?", "ttiiiii", q->device, q->device, q->since_ms,
        q->until_ms, q->until_ms, q->after_id, (int64_t)q->limit);
}

static store_rc_t logs_last_id(store_t *s, const char *device, int64_t *out_id)
{
    return max_id(store_sqlite_rows(s, "SELECT MAX(id) AS id FROM logs WHERE (? IS NULL OR device_id = ?)",
                            "tt", device, device), out_id);
}

/* ---- crashes ---------------------------------------------------------------------------------- */

/*
 * The image a crash came from. The report names only the app *version*, and it may arrive after
 * the device has moved on (a crash queued while offline, then an update, then the report): so
 * the image is the one of that version the device reported most recently (device_images, kept
 * from every hello), which is the running image in the common case. Two builds installed under
 * the same version are told apart only by recency; '' when the device never reported one.
 */
#define CRASH_IMAGE_SQL                                                                           \
    "COALESCE((SELECT sha256 FROM device_images WHERE device_id = ? AND version = ?"             \
    " ORDER BY last_seen_ms DESC LIMIT 1), '')"

static store_rc_t crash_add(store_t *s, const char *device, int64_t now_ms,
                            const keel_v1_Envelope *env, const char *reason, uint32_t pc,
                            uint32_t lr, uint32_t app_version, int64_t *out_id)
{
    sqlite3 *db = cast(s)->db;
    const keel_v1_Crash *c = &env->body.crash;

    lock(s);
    int ok = begin(db) == 0 && touch_device(db, device, now_ms) == 0 &&
             run(db, "INSERT INTO crashes (device_id, received_ms, boot, msg_id, reason, pc, lr,"
                     " app_version, report, app_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, " CRASH_IMAGE_SQL ")"
                     " ON CONFLICT (device_id, boot, msg_id) DO NOTHING", "tiiitiiibti", device,
                 now_ms, (int64_t)env->boot, (int64_t)env->msg_id, reason, (int64_t)pc,
                 (int64_t)lr, (int64_t)app_version, c->report.bytes, (size_t)c->report.size,
                 device, (int64_t)app_version) >= 0;
    int64_t id = 0;
    if (ok) {
        sqlite3_stmt *st = prep(db, "SELECT id FROM crashes WHERE device_id = ? AND boot = ? AND msg_id = ?",
                                "tii", device, (int64_t)env->boot, (int64_t)env->msg_id);
        ok = st != NULL && sqlite3_step(st) == SQLITE_ROW;
        if (ok) {
            id = sqlite3_column_int64(st, 0);
        }
        store_sqlite_stmt_put(st);
    }
    store_rc_t rc = finish(db, ok);
    unlock(s);
    *out_id = id;
    return rc;
}

static json_t *crashes_list(store_t *s, const char *device, int64_t before, int limit)
{
    return store_sqlite_rows(s, "SELECT c.id, c.device_id AS device, c.received_ms, c.boot, c.reason, c.pc, c.lr,"
                     " c.app_version, c.app_sha256, (e.sha256 IS NOT NULL) AS elf_known FROM crashes c"
                     " LEFT JOIN elfs e ON e.sha256 = c.app_sha256"
                     " WHERE (? IS NULL OR c.device_id = ?) AND (? <= 0 OR c.id < ?)"
                     " ORDER BY c.id DESC LIMIT ?", "ttiii", device, device, before, before, (int64_t)limit);
}

static store_rc_t crash_get(store_t *s, int64_t id, store_crash_t *out)
{
    sqlite3 *db = cast(s)->db;
    store_rc_t rc = STORE_EIO;

    lock(s);
    sqlite3_stmt *st = prep(db, "SELECT device_id, received_ms, report, app_sha256 FROM crashes WHERE id = ?",
                            "i", id);
    if (st != NULL) {
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            size_t n = (size_t)sqlite3_column_bytes(st, 2);
            memset(out, 0, sizeof(*out));
            out->id = id;
            snprintf(out->device, sizeof(out->device), "%s", (const char *)sqlite3_column_text(st, 0));
            out->received_ms = sqlite3_column_int64(st, 1);
            out->report_len = n < sizeof(out->report) ? n : sizeof(out->report);
            if (out->report_len != 0) {
                memcpy(out->report, sqlite3_column_blob(st, 2), out->report_len);
            }
            snprintf(out->app_sha256, sizeof(out->app_sha256), "%s",
                     (const char *)sqlite3_column_text(st, 3));
            rc = STORE_OK;
        } else if (r == SQLITE_DONE) {
            rc = STORE_ENOTFOUND;
        }
        store_sqlite_stmt_put(st);
    }
    unlock(s);
    return rc;
}

/* ---- commands --------------------------------------------------------------------------------- */

static store_rc_t command_create(store_t *s, const char *device, keel_v1_CommandKind kind,
                                 int64_t now_ms, int64_t *out_id)
{
    return store_sqlite_write1(s, NULL, out_id, "INSERT INTO commands (device_id, kind, status, created_ms) "
                  "VALUES (?, ?, 'pending', ?)", "tti", device, kproto_command_name(kind), now_ms);
}

static store_rc_t command_mark_sent(store_t *s, int64_t id, int64_t now_ms)
{
    int n = 0;
    store_rc_t rc = store_sqlite_write1(s, &n, NULL, "UPDATE commands SET status = 'sent', sent_ms = ?"
                           " WHERE id = ? AND status = 'pending'", "ii", now_ms, id);
    return (rc == STORE_OK && n == 0) ? STORE_ENOTFOUND : rc;
}

static store_rc_t command_result(store_t *s, const char *device, int64_t now_ms,
                                 const keel_v1_CommandResult *r)
{
    sqlite3 *db = cast(s)->db;

    lock(s);
    int n = -1;
    int ok = begin(db) == 0 && touch_device(db, device, now_ms) == 0;
    if (ok) {
        /* A late answer still wins over "timeout": the device did act on the command. */
        n = run(db, "UPDATE commands SET status = ?, completed_ms = ?, detail = ?, device_uptime_ms = ?"
                    " WHERE id = ? AND device_id = ? AND status IN ('pending', 'sent', 'timeout')",
                "titiit", kproto_status_name(r->status), now_ms, r->detail, (int64_t)r->uptime_ms,
                (int64_t)r->command_id, device);
        ok = n >= 0;
    }
    store_rc_t rc = finish(db, ok);
    unlock(s);
    return (rc == STORE_OK && n == 0) ? STORE_ENOTFOUND : rc;
}

static store_rc_t commands_expire(store_t *s, int64_t older_than_ms, int64_t now_ms)
{
    return store_sqlite_write1(s, NULL, NULL, "UPDATE commands SET status = 'timeout', completed_ms = ?, detail = ?"
                  " WHERE status IN ('pending', 'sent') AND created_ms < ?", "iti", now_ms,
                  "no answer from the device in time; it may be offline", older_than_ms);
}

static store_rc_t commands_requeue(store_t *s, const char *device)
{
    return store_sqlite_write1(s, NULL, NULL, "UPDATE commands SET status = 'pending' WHERE device_id = ? AND status = 'sent'",
                  "t", device);
}

static json_t *commands_pending(store_t *s, int limit)
{
    return store_sqlite_rows(s, "SELECT id, device_id AS device, kind FROM commands"
                     " WHERE status = 'pending' ORDER BY id LIMIT ?", "i", (int64_t)limit);
}

static json_t *command_get(store_t *s, int64_t id)
{
    return read_one(store_sqlite_rows(s, "SELECT id, device_id AS device, kind, status, created_ms, sent_ms,"
                              " completed_ms, detail, device_uptime_ms FROM commands WHERE id = ?", "i", id));
}

/* ---- tokens ----------------------------------------------------------------------------------- */

static store_rc_t token_add(store_t *s, const char *name, const char *hash_hex, int64_t now_ms,
                            int64_t *out_id)
{
    return store_sqlite_write1(s, NULL, out_id, "INSERT INTO tokens (name, sha256, created_ms) VALUES (?, ?, ?)",
                  "tti", name, hash_hex, now_ms);
}

static store_rc_t token_check(store_t *s, const char *hash_hex, char *out_name, size_t cap)
{
    sqlite3 *db = cast(s)->db;
    store_rc_t rc = STORE_EIO;

    lock(s);
    sqlite3_stmt *st = prep(db, "SELECT name FROM tokens WHERE sha256 = ?", "t", hash_hex);
    if (st != NULL) {
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            snprintf(out_name, cap, "%s", (const char *)sqlite3_column_text(st, 0));
            rc = STORE_OK;
        } else if (r == SQLITE_DONE) {
            rc = STORE_ENOTFOUND;
        }
        store_sqlite_stmt_put(st);
    }
    unlock(s);
    return rc;
}

static json_t *tokens_list(store_t *s)
{
    return store_sqlite_rows(s, "SELECT id, name, created_ms FROM tokens ORDER BY id", "");
}

/* ---- app channels ----------------------------------------------------------------------------- */

static store_rc_t channel_add(store_t *s, const char *device, const char *channel,
                              const char *direction, int64_t now_ms, uint64_t boot, uint64_t msg_id,
                              const uint8_t *data, size_t len, int64_t *out_id)
{
    sqlite3 *db = cast(s)->db;

    lock(s);
    /* A redelivered up message (same boot and msg_id) is stored once; down messages carry
     * keeld's own unique numbers. */
    int n = -1;
    int ok = begin(db) == 0 && touch_device(db, device, now_ms) == 0;
    if (ok) {
        n = run(db, "INSERT INTO channel_data (device_id, channel, direction, received_ms, boot, msg_id, data)"
                    " SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM channel_data"
                    " WHERE device_id = ? AND direction = ? AND boot = ? AND msg_id = ?)",
                "tttiiibttii", device, channel, direction, now_ms, (int64_t)boot, (int64_t)msg_id,
                data, len, device, direction, (int64_t)boot, (int64_t)msg_id);
        ok = n >= 0;
    }
    *out_id = n > 0 ? sqlite3_last_insert_rowid(db) : 0;
    store_rc_t rc = finish(db, ok);
    unlock(s);
    return rc;
}

static json_t *channel_query(store_t *s, const store_chan_query_t *q)
{
    return store_sqlite_rows(s,
        "SELECT id, device_id AS device, channel, direction, received_ms, data FROM channel_data"
        " WHERE device_id = ? AND channel = ? AND (? IS NULL OR direction = ?) AND received_ms >= ?"
        " AND (? = 0 OR received_ms < ?) AND id > ? ORDER BY id LIMIT ?", "ttttiiiii", q->device,
        q->channel, q->direction, q->direction, q->since_ms, q->until_ms, q->until_ms, q->after_id,
        (int64_t)q->limit);
}

static store_rc_t channel_last_id(store_t *s, const char *device, const char *channel, int64_t *out_id)
{
    return max_id(store_sqlite_rows(s, "SELECT MAX(id) AS id FROM channel_data WHERE device_id = ? AND channel = ?",
                            "tt", device, channel), out_id);
}

/* ---- app ELFs --------------------------------------------------------------------------------- */

static store_rc_t elf_put(store_t *s, const char *sha256, const char *name, uint32_t image_size,
                          const uint8_t *elf, size_t len, int64_t now_ms, bool *out_created)
{
    int n = 0;
    /* The same image from another ELF (stripped, or rebuilt identically) keeps the first one:
     * either symbolicates the same code. */
    store_rc_t rc = store_sqlite_write1(s, &n, NULL, "INSERT INTO elfs (sha256, name, image_size, elf_size, uploaded_ms, elf)"
                           " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING", "ttiiib", sha256,
                           name, (int64_t)image_size, (int64_t)len, now_ms, elf, len);
    *out_created = n > 0;
    return rc;
}

static json_t *elfs_list(store_t *s, const char *sha256)
{
    return store_sqlite_rows(s, "SELECT sha256, name, image_size, elf_size, uploaded_ms FROM elfs"
                     " WHERE (? IS NULL OR sha256 = ?) ORDER BY uploaded_ms DESC, sha256", "tt", sha256,
                     sha256);
}

/*
 * The one blob column of the row st selects (prepared by the caller under the lock, finalized
 * here) into *out (malloc'd, the caller frees), then unlock. STORE_ENOTFOUND when there is no
 * row.
 */
static store_rc_t blob_read(store_t *s, sqlite3_stmt *st, uint8_t **out, size_t *out_len)
{
    store_rc_t rc = STORE_EIO;

    *out = NULL;
    *out_len = 0;
    int r = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (r == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        *out = malloc(n ? n : 1);
        if (*out != NULL) {
            memcpy(*out, sqlite3_column_blob(st, 0), n);
            *out_len = n;
            rc = STORE_OK;
        }
    } else if (r == SQLITE_DONE) {
        rc = STORE_ENOTFOUND;
    }
    store_sqlite_stmt_put(st);
    unlock(s);
    return rc;
}

static store_rc_t elf_get(store_t *s, const char *sha256, uint8_t **out, size_t *out_len)
{
    lock(s);
    return blob_read(s, prep(cast(s)->db, "SELECT elf FROM elfs WHERE sha256 = ?", "t", sha256), out,
                     out_len);
}

/* ---- bundles ---------------------------------------------------------------------------------- */

#define BUNDLE_COLUMNS                                                                           \
    "id, sha256, name, size, signed_size, version, security_counter, min_uv_version,"           \
    " device_type, blocks, block_size, key_id, region_sha256, image_sha256, created_ms"

static const char *const bundle_versions[] = {"version", "min_uv_version"};

static store_rc_t bundle_add(store_t *s, const store_bundle_t *b, const uint8_t *data, size_t len,
                             int64_t now_ms, int64_t *out_id, bool *out_created)
{
    sqlite3 *db = cast(s)->db;
    int n = -1;

    lock(s);
    int ok = begin(db) == 0;
    if (ok) {
        n = run(db, "INSERT INTO bundles (sha256, size, signed_size, version, security_counter,"
                    " min_uv_version, device_type, blocks, block_size, key_id, region_sha256, image_sha256,"
                    " name, created_ms, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (sha256) DO NOTHING", "tiiiiiiiittttib", b->sha256, b->size,
                b->signed_size, b->version, b->security_counter, b->min_uv_version,
                b->device_type, b->blocks, b->block_size, b->key_id, b->region_sha256,
                b->image_sha256, b->name,
                now_ms, data, len);
        ok = n >= 0;
    }
    *out_id = 0;
    if (ok) {
        sqlite3_stmt *st = prep(db, "SELECT id FROM bundles WHERE sha256 = ?", "t", b->sha256);
        ok = st != NULL && sqlite3_step(st) == SQLITE_ROW;
        if (ok) {
            *out_id = sqlite3_column_int64(st, 0);
        }
        store_sqlite_stmt_put(st);
    }
    store_rc_t rc = finish(db, ok);
    unlock(s);
    *out_created = rc == STORE_OK && n > 0;
    return rc;
}

static json_t *bundles_list(store_t *s)
{
    json_t *arr = store_sqlite_rows(s, "SELECT " BUNDLE_COLUMNS " FROM bundles ORDER BY id", "");
    size_t i;
    json_t *b;
    json_array_foreach(arr, i, b) {
        versions_fixup(b, bundle_versions, 2);
    }
    return arr;
}

static json_t *bundle_get(store_t *s, int64_t id, const char *sha256)
{
    json_t *b = read_one(store_sqlite_rows(s, "SELECT " BUNDLE_COLUMNS " FROM bundles WHERE id = ? OR sha256 = ?",
                                   "it", id, sha256 ? sha256 : ""));
    if (b != NULL) {
        versions_fixup(b, bundle_versions, 2);
    }
    return b;
}

static store_rc_t bundle_data(store_t *s, int64_t id, uint8_t **out, size_t *out_len)
{
    lock(s);
    return blob_read(s, prep(cast(s)->db, "SELECT data FROM bundles WHERE id = ?", "i", id), out,
                     out_len);
}

/* ---- deployments ------------------------------------------------------------------------------ */

/* Every write that changes a device row of a deployment bumps the deployment's rev: watchers
 * (GET /v1/deployments/{id}?after=REV) wake on it. */
static int bump(sqlite3 *db, int64_t deployment)
{
    return run(db, "UPDATE deployments SET rev = rev + 1 WHERE id = ?", "i", deployment);
}

/* Newer supersedes older: the unfinished rows (a rollout's held ones too) of earlier deployments
 * of deployment id's devices end here. Inside a transaction; 0 or -1. */
static int supersede_older(sqlite3 *db, int64_t id, int64_t now_ms)
{
    return run(db, "UPDATE deployments SET rev = rev + 1 WHERE id IN (SELECT deployment_id FROM"
                   " deployment_devices WHERE deployment_id < ? AND phase IN ('pending', 'offered', 'held')"
                   " AND device_id IN (SELECT device_id FROM deployment_devices WHERE"
                   " deployment_id = ?))", "ii", id, id) >= 0 &&
                   run(db, "UPDATE deployment_devices SET phase = 'superseded', updated_ms = ?,"
                           " detail = 'superseded by deployment ' || ? WHERE deployment_id < ? AND phase IN"
                           " ('pending', 'offered', 'held') AND device_id IN (SELECT device_id FROM"
                           " deployment_devices WHERE deployment_id = ?)", "iiii", now_ms, id, id, id) >= 0
               ? 0
               : -1;
}

static store_rc_t deployment_create(store_t *s, int64_t bundle_id, const char *kind,
                                    const char *target, int64_t force_after_s, int64_t now_ms,
                                    int64_t *out_id, int *out_devices)
{
    sqlite3 *db = cast(s)->db;
    int64_t id = 0;
    int n = -1;
    char name[128];
    const char *value = NULL;

    /* A tag target is "name" (any value) or "name=value". */
    snprintf(name, sizeof(name), "%s", target);
    char *eq = strchr(name, '=');
    if (eq != NULL) {
        *eq = '\0';
        value = eq + 1;
    }
    lock(s);
    int ok = begin(db) == 0 &&
             run(db, "INSERT INTO deployments (bundle_id, target_kind, target, force_after_s,"
                     " created_ms) VALUES (?, ?, ?, ?, ?)", "ittii", bundle_id, kind, target,
                 force_after_s, now_ms) > 0;
    if (ok) {
        id = sqlite3_last_insert_rowid(db);
        if (strcmp(kind, "device") == 0) {
            n = run(db, "INSERT INTO deployment_devices (deployment_id, device_id, updated_ms)"
                        " SELECT ?, id, ? FROM devices WHERE id = ?", "iit", id, now_ms, target);
        } else if (strcmp(kind, "tag") == 0) {
            n = run(db, "INSERT INTO deployment_devices (deployment_id, device_id, updated_ms)"
                        " SELECT ?, device_id, ? FROM device_tags WHERE name = ?"
                        " AND (? IS NULL OR value = ?)", "iittt", id, now_ms, name, value, value);
        } else {
            n = run(db, "INSERT INTO deployment_devices (deployment_id, device_id, updated_ms)"
                        " SELECT ?, id, ? FROM devices", "ii", id, now_ms);
        }
        ok = n > 0;
    }
    ok = ok && supersede_older(db, id, now_ms) == 0;
    store_rc_t rc = finish(db, ok);
    unlock(s);
    *out_id = rc == STORE_OK ? id : 0;
    *out_devices = rc == STORE_OK ? n : 0;
    if (rc != STORE_OK && n == 0) {
        return STORE_ENOTFOUND; /* nothing matched: rolled back, as if never asked */
    }
    return rc;
}

#define DEPLOYMENT_COLUMNS                                                                        \
    "d.id, d.bundle_id, b.sha256 AS bundle_sha256, b.name AS app, b.version, b.size AS bundle_size," \
    " d.target_kind, d.target, d.force_after_s, d.forced, d.created_ms, d.rev"

static void deployment_fixup(json_t *d)
{
    static const char *const v[] = {"version"};

    versions_fixup(d, v, 1);
    json_object_set_new(d, "forced", json_boolean(json_integer_value(json_object_get(d, "forced"))));
}

static json_t *deployments_list(store_t *s, int limit)
{
    json_t *arr = store_sqlite_rows(s, "SELECT " DEPLOYMENT_COLUMNS ","
                               " (SELECT COUNT(*) FROM deployment_devices x WHERE x.deployment_id = d.id)"
                               " AS devices,"
                               " (SELECT COUNT(*) FROM deployment_devices x WHERE x.deployment_id = d.id"
                               " AND x.phase = 'done' AND x.result = 'success') AS succeeded,"
                               " (SELECT COUNT(*) FROM deployment_devices x WHERE x.deployment_id = d.id"
                               " AND x.phase = 'done' AND x.result <> 'success') AS failed"
                               " FROM deployments d JOIN bundles b ON b.id = d.bundle_id"
                               " ORDER BY d.id DESC LIMIT ?", "i", (int64_t)limit);
    size_t i;
    json_t *d;
    json_array_foreach(arr, i, d) {
        deployment_fixup(d);
    }
    return arr;
}

/* Per-phase counts and bytes over every row of a deployment (one aggregate, not the rows). */
static json_t *deployment_summary(sqlite3 *db, int64_t id, int64_t bundle_size)
{
    json_t *r = read_one(rows(db, prep(db, "SELECT COUNT(*) AS devices,"
                                           " COALESCE(SUM(phase = 'pending'), 0) AS pending,"
                                           " COALESCE(SUM(phase = 'offered'), 0) AS in_progress,"
                                           " COALESCE(SUM(phase = 'done' AND result = 'success'), 0) AS succeeded,"
                                           " COALESCE(SUM(phase = 'done' AND result <> 'success'), 0) AS failed,"
                                           " COALESCE(SUM(phase = 'superseded'), 0) AS superseded,"
                                           " COALESCE(SUM(phase = 'held'), 0) AS held,"
                                           " COALESCE(SUM(bytes_sent), 0) AS bytes_sent,"
                                           /* delta-2: devices and bytes per delivery */
                                           " COALESCE(SUM(delivery = 'delta'), 0) AS delta,"
                                           " COALESCE(SUM(CASE WHEN delivery = 'delta' THEN bytes_sent END), 0) AS delta_bytes,"
                                           " COALESCE(SUM(delivery = 'pages'), 0) AS pages,"
                                           " COALESCE(SUM(CASE WHEN delivery = 'pages' THEN bytes_sent END), 0) AS pages_bytes,"
                                           " COALESCE(SUM(delivery = '' AND phase = 'done' AND offers = 0), 0) AS \"nothing\","
                                           " COALESCE(SUM(delta_refused <> ''), 0) AS delta_refused"
                                           " FROM deployment_devices WHERE deployment_id = ?", "i", id)));
    if (r != NULL) {
        json_object_set_new(r, "full_size", json_integer(bundle_size));
        json_object_set_new(r, "finished", json_boolean(json_integer_value(json_object_get(r, "pending")) +
                                                        json_integer_value(json_object_get(r, "held")) +
                                                        json_integer_value(json_object_get(r, "in_progress")) == 0));
    }
    return r;
}

/* delta-2: how the row is served (docs/api.md): "delta", "pages", "nothing" (settled without an
 * offer: it ran the bundle already) or "" (not offered yet), and why a delta was refused. */
#define DELIVERY_COLUMNS                                                                          \
    "CASE WHEN x.delivery <> '' THEN x.delivery WHEN x.phase = 'done' AND x.offers = 0"           \
    " THEN 'nothing' ELSE '' END AS delivery, x.delta_refused"

static json_t *deployment_get(store_t *s, int64_t id, const store_rows_query_t *q)
{
    static const char *const dv[] = {"version", "installed_version", "app_version"};
    static const store_rows_query_t all = {-1, NULL, NULL, 0, true};
    sqlite3 *db = cast(s)->db;

    q = q ? q : &all;
    lock(s);
    json_t *arr = rows(db, prep(db, "SELECT " DEPLOYMENT_COLUMNS " FROM deployments d JOIN bundles b"
                                    " ON b.id = d.bundle_id WHERE d.id = ?", "i", id));
    /* Two spellings: a watch (changed rows only) reads them through the rev index; a page of all
     * rows walks the primary key in device order (through the rev index it sorted every row of
     * the deployment first: 200 ms for one row at 100,000). */
#define DEPLOYMENT_ROWS_SQL(REV)                                                                    \
    "SELECT x.device_id AS device, x.phase, x.state, x.result, x.code,"                            \
    " x.detail, x.blocks_total, x.blocks_needed, x.blocks_staged,"                                 \
    " x.bytes_sent, x.bytes_fetched, x.version, x.installed_version,"                              \
    " x.trial, x.offers, x.updated_ms, x.status_ms, x.rev, v.online,"                              \
    " " DELIVERY_COLUMNS ","                                                                        \
    " v.app_version FROM deployment_devices x JOIN devices v"                                      \
    " ON v.id = x.device_id WHERE x.deployment_id = ? AND " REV                                    \
    " AND (? IS NULL OR x.device_id > ?) AND (? IS NULL OR x.phase = ?)"                           \
    " ORDER BY x.device_id LIMIT ?"
    const char *rows_sql = q->changed_after >= 0 ? DEPLOYMENT_ROWS_SQL("x.rev > ?")
                                                 : DEPLOYMENT_ROWS_SQL("? < 0");
#undef DEPLOYMENT_ROWS_SQL
    json_t *devs = rows(db, prep(db, rows_sql, "iitttti", id, q->changed_after,
                                 q->after, q->after, q->phase, q->phase,
                                 (int64_t)(q->limit > 0 ? q->limit : -1)));
    json_t *events = q->events ? rows(db, prep(db, "SELECT id, device_id AS device, received_ms, state,"
                                                   " result, code, detail FROM update_events WHERE"
                                                   " deployment_id = ? ORDER BY id DESC LIMIT 200", "i", id))
                               : json_array();
    json_t *summary = NULL;
    if (arr != NULL && json_array_size(arr) == 1) {
        summary = deployment_summary(db, id, json_integer_value(json_object_get(json_array_get(arr, 0),
                                                                                "bundle_size")));
    }
    unlock(s);
    json_t *d = NULL;
    if (summary != NULL && devs != NULL && events != NULL) {
        d = json_incref(json_array_get(arr, 0));
        deployment_fixup(d);
        size_t i;
        json_t *r;
        json_array_foreach(devs, i, r) {
            versions_fixup(r, dv, 3);
            json_object_set_new(r, "trial", json_boolean(json_integer_value(json_object_get(r, "trial"))));
            json_object_set_new(r, "online", json_boolean(json_integer_value(json_object_get(r, "online"))));
        }
        json_object_set(d, "summary", summary);
        json_object_set(d, "devices", devs);
        if (q->events) {
            json_object_set(d, "events", events);
        }
    }
    json_decref(summary);
    json_decref(arr);
    json_decref(devs);
    json_decref(events);
    return d;
}

static store_rc_t deployment_force(store_t *s, int64_t id, int64_t now_ms, json_t **out_devices)
{
    sqlite3 *db = cast(s)->db;

    *out_devices = NULL;
    lock(s);
    int ok = begin(db) == 0;
    int n = ok ? run(db, "UPDATE deployments SET forced = 1, rev = rev + 1 WHERE id = ?", "i", id) : -1;
    ok = n >= 0;
    json_t *devs = ok && n > 0
                       ? rows(db, prep(db, "SELECT device_id AS device FROM deployment_devices WHERE"
                                           " deployment_id = ? AND phase IN ('pending', 'offered')"
                                           " ORDER BY device_id", "i", id))
                       : NULL;
    ok = ok && (n == 0 || devs != NULL);
    store_rc_t rc = finish(db, ok);
    unlock(s);
    if (rc != STORE_OK || n == 0) {
        json_decref(devs);
        return rc != STORE_OK ? rc : STORE_ENOTFOUND;
    }
    *out_devices = devs;
    return STORE_OK;
}

/* ---- per-device update progress --------------------------------------------------------------- */

static store_rc_t update_active(store_t *s, const char *device, store_update_t *out)
{
    sqlite3 *db = cast(s)->db;
    store_rc_t rc = STORE_EIO;

    memset(out, 0, sizeof(*out));
    lock(s);
    sqlite3_stmt *st = prep(db, "SELECT x.deployment_id, d.bundle_id, x.phase, d.forced, d.force_after_s,"
                                " b.sha256, b.region_sha256, b.size, b.signed_size, b.image_sha256,"
                                " b.version, b.blocks * b.block_size"
                                " FROM deployment_devices x JOIN deployments d ON d.id = x.deployment_id"
                                " JOIN bundles b ON b.id = d.bundle_id WHERE x.device_id = ?"
                                " AND x.phase IN ('pending', 'offered')"
                                " ORDER BY x.deployment_id DESC LIMIT 1", "t", device);
    int r = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (r == SQLITE_ROW) {
        out->deployment_id = sqlite3_column_int64(st, 0);
        out->bundle_id = sqlite3_column_int64(st, 1);
        snprintf(out->phase, sizeof(out->phase), "%s", (const char *)sqlite3_column_text(st, 2));
        out->forced = sqlite3_column_int64(st, 3) != 0;
        out->force_after_s = sqlite3_column_int64(st, 4);
        snprintf(out->sha256, sizeof(out->sha256), "%s", (const char *)sqlite3_column_text(st, 5));
        snprintf(out->region_sha256, sizeof(out->region_sha256), "%s",
                 (const char *)sqlite3_column_text(st, 6));
        out->size = sqlite3_column_int64(st, 7);
        out->signed_size = sqlite3_column_int64(st, 8);
        snprintf(out->image_sha256, sizeof(out->image_sha256), "%s",
                 (const char *)sqlite3_column_text(st, 9));
        out->version = sqlite3_column_int64(st, 10);
        out->region_len = sqlite3_column_int64(st, 11);
        rc = STORE_OK;
    } else if (r == SQLITE_DONE) {
        rc = STORE_ENOTFOUND;
    }
    store_sqlite_stmt_put(st);
    unlock(s);
    return rc;
}

/* One UPDATE of a device's row plus the deployment's rev, in one transaction. */
static store_rc_t update_row(store_t *s, int64_t deployment, const char *sql, const char *fmt, ...)
{
    sqlite3 *db = cast(s)->db;
    va_list ap;
    int n = -1;

    lock(s);
    if (begin(db) == 0) {
        va_start(ap, fmt);
        n = vrun(db, sql, fmt, ap);
        va_end(ap);
    }
    int ok = n >= 0 && (n == 0 || bump(db, deployment) >= 0);
    store_rc_t rc = finish(db, ok);
    unlock(s);
    return (rc == STORE_OK && n == 0) ? STORE_ENOTFOUND : rc;
}

static store_rc_t update_offered(store_t *s, int64_t deployment, const char *device, int64_t now_ms)
{
    return update_row(s, deployment, "UPDATE deployment_devices SET phase = 'offered', offers = offers + 1,"
                                     " updated_ms = ? WHERE deployment_id = ? AND device_id = ?"
                                     " AND phase IN ('pending', 'offered')", "iit", now_ms, deployment,
                      device);
}

static store_rc_t update_settled(store_t *s, int64_t deployment, const char *device, int64_t now_ms,
                                 const char *detail)
{
    /* Never over a final result the device reported (a row's final result is recorded once). */
    return update_row(s, deployment, "UPDATE deployment_devices SET phase = 'done', state = 'idle',"
                                     " result = 'success', detail = ?, updated_ms = ?"
                                     " WHERE deployment_id = ? AND device_id = ?"
                                     " AND phase IN ('pending', 'offered')"
                                     " AND NOT (state = 'idle' AND result <> 'initial')", "tiit", detail,
                      now_ms, deployment, device);
}

static store_rc_t update_sent(store_t *s, int64_t deployment, const char *device, int64_t bytes,
                              int64_t now_ms)
{
    return update_row(s, deployment, "UPDATE deployment_devices SET bytes_sent = bytes_sent + ?,"
                                     " updated_ms = ? WHERE deployment_id = ? AND device_id = ?", "iiit",
                      bytes, now_ms, deployment, device);
}

/* The row's (state, result): 1 when it holds a final result, 0 when not, -1 no row / error (*rc). */
static int row_final(sqlite3 *db, int64_t deployment, const char *device, store_rc_t *rc)
{
    sqlite3_stmt *st = prep(db, "SELECT state, result FROM deployment_devices WHERE deployment_id = ?"
                                " AND device_id = ?", "it", deployment, device);
    int r = st ? sqlite3_step(st) : SQLITE_ERROR;
    int out = -1;

    *rc = r == SQLITE_DONE ? STORE_ENOTFOUND : STORE_EIO;
    if (r == SQLITE_ROW) {
        out = strcmp((const char *)sqlite3_column_text(st, 0), "idle") == 0 &&
              strcmp((const char *)sqlite3_column_text(st, 1), "initial") != 0;
        *rc = STORE_OK;
    }
    store_sqlite_stmt_put(st);
    return out;
}

static store_rc_t update_status(store_t *s, int64_t deployment, const char *device, int64_t now_ms,
                                const keel_v1_UpdateStatus *st, bool final, bool *out_recorded)
{
    sqlite3 *db = cast(s)->db;
    const char *state = kproto_update_state_name(st->state);
    const char *result = kproto_update_result_name(st->result);
    /* The wire field is uint32, but it carries a kerr_t (negative) as two's complement: store and
     * show it as the int32 it is, so -401 reads as -401 and not as 4294966895. */
    int64_t code = (int32_t)st->code;
    store_rc_t rc = STORE_EIO;

    *out_recorded = false;
    lock(s);
    if (begin(db) != 0) {
        unlock(s);
        return STORE_EIO;
    }
    /*
     * A row holding a final result is never changed by a status again (protocol.md P1): the
     * device re-sends its final status until acked, and a late progress status (a QoS 1
     * redelivery, a resend after a reconnect) must not reopen a settled row.
     */
    int fin = row_final(db, deployment, device, &rc);
    int ok = fin >= 0;
    if (fin == 0) {
        /* History: only transitions (state, result, code or detail changed), not every progress tick. */
        ok = run(db, "INSERT INTO update_events (deployment_id, device_id, received_ms, state, result,"
                     " code, detail) SELECT ?, ?, ?, ?, ?, ?, ? FROM deployment_devices WHERE"
                     " deployment_id = ? AND device_id = ? AND (status_ms IS NULL OR state <> ? OR"
                     " result <> ? OR code <> ? OR detail <> ?)", "itittititttit", deployment,
                 device, now_ms, state, result, code, st->detail, deployment, device,
                 state, result, code, st->detail) >= 0;
        /* A superseded or finished row keeps its phase; its numbers still show what happened. */
        ok = ok && run(db, "UPDATE deployment_devices SET state = ?, result = ?, code = ?, detail = ?,"
                           " blocks_total = ?, blocks_needed = ?, blocks_staged = ?, bytes_fetched = ?,"
                           " version = ?, installed_version = ?, trial = ?, status_ms = ?, updated_ms = ?,"
                           " phase = CASE WHEN ? AND phase IN ('pending', 'offered') THEN 'done' ELSE phase END"
                           " WHERE deployment_id = ? AND device_id = ?", "ttitiiiiiiiiiiit", state, result,
                       code, st->detail, (int64_t)st->blocks_total,
                       (int64_t)st->blocks_needed, (int64_t)st->blocks_staged, (int64_t)st->bytes_fetched,
                       (int64_t)st->version, (int64_t)st->installed_version, (int64_t)st->trial, now_ms,
                       now_ms, (int64_t)final, deployment, device) >= 0 &&
             bump(db, deployment) >= 0;
    }
    if (fin < 0) {
        /* Undo this op only: inside a group commit that is its savepoint, not the whole batch's
         * transaction (a plain ROLLBACK there ended the batch, and its COMMIT then failed). */
        (void)finish(db, 0);
    } else {
        rc = finish(db, ok);
        *out_recorded = rc == STORE_OK && fin == 0;
    }
    unlock(s);
    return rc;
}

/* ---- open / migrate / close ------------------------------------------------------------------- */

static void sqlite_close(store_t *s)
{
    store_sqlite_t *ss = cast(s);

    if (ss != NULL) {
        store_sqlite_stmt_drop(ss->db);
        sqlite3_close(ss->db);
        pthread_mutex_destroy(&ss->lock);
        free(ss);
    }
}

static const store_ops_t sqlite_ops = {
    .backend = "sqlite",
    .close = sqlite_close,
    .device_hello = device_hello,
    .device_presence = device_presence,
    .device_heartbeat = device_heartbeat,
    .device_supports = device_supports,
    .device_tags_set = device_tags_set,
    .devices_list = devices_list,
    .device_get = device_get,
    .logs_add = logs_add,
    .logs_query = logs_query,
    .logs_last_id = logs_last_id,
    .crash_add = crash_add,
    .crashes_list = crashes_list,
    .crash_get = crash_get,
    .command_create = command_create,
    .command_mark_sent = command_mark_sent,
    .command_result = command_result,
    .commands_expire = commands_expire,
    .commands_requeue = commands_requeue,
    .commands_pending = commands_pending,
    .command_get = command_get,
    .token_add = token_add,
    .token_check = token_check,
    .tokens_list = tokens_list,
    .channel_add = channel_add,
    .channel_query = channel_query,
    .channel_last_id = channel_last_id,
    .elf_put = elf_put,
    .elfs_list = elfs_list,
    .elf_get = elf_get,
    .bundle_add = bundle_add,
    .bundles_list = bundles_list,
    .bundle_get = bundle_get,
    .bundle_data = bundle_data,
    .deployment_create = deployment_create,
    .deployments_list = deployments_list,
    .deployment_get = deployment_get,
    .deployment_force = deployment_force,
    .update_active = update_active,
    .update_offered = update_offered,
    .update_settled = update_settled,
    .update_sent = update_sent,
    .update_status = update_status,
    .batch_begin = batch_begin,
    .batch_end = batch_end,
    .updates_admissible = store_sqlite_updates_admissible,
    .updates_counts = store_sqlite_updates_counts,
    .fleet_counts = store_sqlite_fleet_counts,
    .updates_settle_installed = store_sqlite_updates_settle_installed,
    /* delta-2 */
    .delta_add = store_sqlite_delta_add,
    .delta_find = store_sqlite_delta_find,
    .delivery_get = store_sqlite_delivery_get,
    .delivery_set = store_sqlite_delivery_set,
    .delivery_fallback = store_sqlite_delivery_fallback,
    .delta_get = store_sqlite_delta_get,
    /* ops: rollouts (store_sqlite_rollout.c) */
    .target_devices = store_sqlite_target_devices,
    .target_boards = store_sqlite_target_boards,
    .devices_tagged = store_sqlite_devices_tagged,
    .rollout_create = store_sqlite_rollout_create,
    .rollouts_list = store_sqlite_rollouts_list,
    .rollout_get = store_sqlite_rollout_get,
    .rollout_move = store_sqlite_rollout_move,
    .rollout_window = store_sqlite_rollout_window,
};

/* ---- ops: transactions of several statements for store_sqlite_rollout.c ----------------------- */

sqlite3 *store_sqlite_tx_begin(store_t *s)
{
    lock(s);
    if (begin(cast(s)->db) != 0) {
        unlock(s);
        return NULL;
    }
    return cast(s)->db;
}

store_rc_t store_sqlite_tx_end(store_t *s, int ok)
{
    store_rc_t rc = finish(cast(s)->db, ok);
    unlock(s);
    return rc;
}

int store_sqlite_tx_run(sqlite3 *db, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vrun(db, sql, fmt, ap);
    va_end(ap);
    return n;
}

json_t *store_sqlite_tx_rows(sqlite3 *db, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *arr = rows(db, vprep(db, sql, fmt, ap));
    va_end(ap);
    return arr;
}

int store_sqlite_tx_supersede(sqlite3 *db, int64_t deployment, int64_t now_ms)
{
    return supersede_older(db, deployment, now_ms);
}

void store_sqlite_lock(store_t *s)
{
    lock(s);
}

void store_sqlite_unlock(store_t *s)
{
    unlock(s);
}

/* Current schema version: 0 for an empty database, -1 on error (message in err). */
static int schema_version(sqlite3 *db, char *err, size_t errcap)
{
    sqlite3_stmt *st = NULL;
    int v = -1;

    if (exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)") != 0 ||
        sqlite3_prepare_v2(db, "SELECT MAX(version) FROM schema_version", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errcap, "cannot read the schema version: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static int migrate(sqlite3 *db, char *err, size_t errcap)
{
    /* BEGIN IMMEDIATE first: two keeld processes starting together must not both migrate. */
    if (begin(db) != 0) {
        snprintf(err, errcap, "cannot lock the database to migrate it: %s", sqlite3_errmsg(db));
        return -1;
    }
    int v = schema_version(db, err, errcap);
    if (v < 0) {
        exec(db, "ROLLBACK");
        return -1;
    }
    if (v > NMIGRATIONS) {
        snprintf(err, errcap, "the database has schema version %d but this keeld knows only up to %d: "
                 "run a newer keeld (never an older one) on it", v, NMIGRATIONS);
        exec(db, "ROLLBACK");
        return -1;
    }
    for (int i = v; i < NMIGRATIONS; i++) {
        char sql[64];
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version (version) VALUES (%d)", i + 1);
        if (exec(db, migrations[i]) != 0 || exec(db, sql) != 0) {
            snprintf(err, errcap, "migration to schema version %d failed: %s", i + 1, sqlite3_errmsg(db));
            exec(db, "ROLLBACK");
            return -1;
        }
        KD_INFO("database migrated to schema version %d", i + 1);
    }
    if (exec(db, "COMMIT") != 0) {
        snprintf(err, errcap, "cannot commit the migration: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

store_t *store_sqlite_open(const char *path, char *err, size_t errcap)
{
    store_sqlite_t *ss = calloc(1, sizeof(*ss));
    sqlite3 *db = NULL;

    if (ss == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errcap, "cannot open database '%s': %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        free(ss);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    int wal = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (!wal) {
        snprintf(err, errcap, "'%s' is not a usable SQLite database (cannot switch it to WAL: %s)",
                 path, sqlite3_errmsg(db));
        sqlite3_close(db);
        free(ss);
        return NULL;
    }
    if (exec(db, "PRAGMA synchronous=FULL") != 0 || exec(db, "PRAGMA foreign_keys=ON") != 0 ||
        migrate(db, err, errcap) != 0) {
        if (err[0] == '\0') {
            snprintf(err, errcap, "cannot configure database '%s': %s", path, sqlite3_errmsg(db));
        }
        store_sqlite_stmt_drop(db); /* migrate's transaction statements were cached */
        sqlite3_close(db);
        free(ss);
        return NULL;
    }
    /* Recursive: a batch (batch_begin .. batch_end) holds it while its ops take it again. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&ss->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    ss->base.ops = &sqlite_ops;
    ss->db = db;
    return &ss->base;
}

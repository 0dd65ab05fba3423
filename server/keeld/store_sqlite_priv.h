/*
 * What the SQLite backend's files share (store_sqlite.c: connection, transactions, most ops;
 * store_sqlite_fleet.c: the fleet-scale queries). Not for the rest of keeld: it sees store.h.
 */
#ifndef KEEL_SERVER_KEELD_STORE_SQLITE_PRIV_H
#define KEEL_SERVER_KEELD_STORE_SQLITE_PRIV_H

#include <jansson.h>
#include <sqlite3.h>

#include "store.h"

/*
 * A read query's rows as a JSON array of objects (column name -> value), or NULL on error
 * (logged). fmt: one letter per '?' parameter: i int64, t text, b (pointer, length) blob.
 */
/* Prepared statements kept for reuse (store_sqlite_stmt.c). get: the statement of sql (a literal
 * or other text that stays put), ready to bind, or NULL (the error is in db); put: give it back
 * after use (reset; an uncached one is finalized; NULL is ignored); drop: finalize all of db's
 * before it is closed. */
sqlite3_stmt *store_sqlite_stmt_get(sqlite3 *db, const char *sql);
void store_sqlite_stmt_put(sqlite3_stmt *st);
void store_sqlite_stmt_drop(sqlite3 *db);

json_t *store_sqlite_rows(store_t *s, const char *sql, const char *fmt, ...);

/* One statement in its own write transaction (a savepoint inside a batch). out_changes and
 * out_rowid may be NULL. */
store_rc_t store_sqlite_write1(store_t *s, int *out_changes, int64_t *out_rowid, const char *sql,
                               const char *fmt, ...);

store_rc_t store_sqlite_updates_settle_installed(store_t *s, int64_t deployment, int64_t now_ms,
                                                 int *out_settled);
store_rc_t store_sqlite_updates_admissible(store_t *s, int limit, json_t **out);
store_rc_t store_sqlite_updates_counts(store_t *s, int64_t active_since_ms, store_update_counts_t *out);
store_rc_t store_sqlite_fleet_counts(store_t *s, store_fleet_counts_t *out);

/* delta-2 (store_sqlite_delta.c) */
store_rc_t store_sqlite_delta_add(store_t *s, int64_t bundle_id, const char *base_region_sha256,
                                  const char *region_sha256, int64_t patch_size);
store_rc_t store_sqlite_delta_find(store_t *s, int64_t full_id, const char *device,
                                   store_delivery_t *out);
store_rc_t store_sqlite_delivery_get(store_t *s, int64_t deployment, const char *device,
                                     store_delivery_t *out);
store_rc_t store_sqlite_delivery_set(store_t *s, int64_t deployment, const char *device,
                                     const char *delivery, int64_t bundle_id);
store_rc_t store_sqlite_delivery_fallback(store_t *s, int64_t deployment, const char *device,
                                          int64_t now_ms, const keel_v1_UpdateStatus *st,
                                          bool *out_changed);
json_t *store_sqlite_delta_get(store_t *s, int64_t bundle_id);

/* ---- ops (issue 16): what store_sqlite_rollout.c needs of the connection ----------------------- */
typedef struct sqlite3 sqlite3;
/* A write transaction of several statements: tx_begin locks the store and begins (NULL on
 * error); tx_end commits when ok (rolls back otherwise) and unlocks. */
sqlite3 *store_sqlite_tx_begin(store_t *s);
store_rc_t store_sqlite_tx_end(store_t *s, int ok);
/* Inside a transaction: a statement without rows (rows changed or -1), a query's rows (NULL on
 * error); and the supersede step of a new deployment (0 or -1). */
int store_sqlite_tx_run(sqlite3 *db, const char *sql, const char *fmt, ...);
json_t *store_sqlite_tx_rows(sqlite3 *db, const char *sql, const char *fmt, ...);
int store_sqlite_tx_supersede(sqlite3 *db, int64_t deployment, int64_t now_ms);
/* Read with the store locked (no transaction). */
void store_sqlite_lock(store_t *s);
void store_sqlite_unlock(store_t *s);
store_rc_t store_sqlite_target_devices(store_t *s, const char *kind, const char *target, json_t **out);
store_rc_t store_sqlite_target_boards(store_t *s, const char *kind, const char *target, json_t **out);
store_rc_t store_sqlite_devices_tagged(store_t *s, const char *tag, json_t **out);
store_rc_t store_sqlite_rollout_create(store_t *s, const store_rollout_new_t *r, int64_t now_ms,
                                       int64_t *out_id);
json_t *store_sqlite_rollouts_list(store_t *s, bool active, int limit);
json_t *store_sqlite_rollout_get(store_t *s, int64_t id, int64_t now_ms);
store_rc_t store_sqlite_rollout_window(store_t *s, int64_t id, int64_t now_ms, int *out_released);
store_rc_t store_sqlite_rollout_move(store_t *s, const store_rollout_move_t *m, int64_t now_ms,
                                     bool *out_moved, json_t **out_deployments);

#endif /* KEEL_SERVER_KEELD_STORE_SQLITE_PRIV_H */

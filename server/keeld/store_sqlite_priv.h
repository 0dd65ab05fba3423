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

#endif /* KEEL_SERVER_KEELD_STORE_SQLITE_PRIV_H */

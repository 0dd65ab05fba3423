/*
 * What the SQLite backend's files share (store_sqlite.c: connection, transactions, most ops;
 * store_sqlite_fleet.c: the fleet-scale queries). Not for the rest of keeld: it sees store.h.
 */
#ifndef KEEL_SERVER_KEELD_STORE_SQLITE_PRIV_H
#define KEEL_SERVER_KEELD_STORE_SQLITE_PRIV_H

#include <jansson.h>

#include "store.h"

/*
 * A read query's rows as a JSON array of objects (column name -> value), or NULL on error
 * (logged). fmt: one letter per '?' parameter: i int64, t text, b (pointer, length) blob.
 */
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

#endif /* KEEL_SERVER_KEELD_STORE_SQLITE_PRIV_H */

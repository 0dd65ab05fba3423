/* SQLite backend: fleet-scale queries (store.h updates_settle_installed, updates_admissible,
 * updates_counts, fleet_counts). */
#include "store_sqlite_priv.h"

store_rc_t store_sqlite_updates_settle_installed(store_t *s, int64_t deployment, int64_t now_ms,
                                                 int *out_settled)
{
    return store_sqlite_write1(s, out_settled, NULL,
        "UPDATE deployment_devices SET phase = 'done', state = 'idle', result = 'success',"
        " detail = 'already installed: nothing sent', updated_ms = ?"
        " WHERE deployment_id = ? AND phase = 'pending' AND device_id IN"
        " (SELECT r.device_id FROM device_regions r, deployments d JOIN bundles b ON b.id = d.bundle_id"
        "  WHERE d.id = ? AND r.name = 'app' AND"
        "  ((r.size = b.blocks * b.block_size AND r.sha256 = b.region_sha256) OR"
        "   (r.size <> b.blocks * b.block_size AND b.image_sha256 <> '' AND r.sha256 = b.image_sha256"
        "    AND r.version = b.version)))", "iii", now_ms, deployment, deployment);
}

store_rc_t store_sqlite_updates_admissible(store_t *s, int limit, json_t **out)
{
    /* Oldest deployment first, then by device id: a stable order, so every device gets its turn. */
    *out = store_sqlite_rows(s, "SELECT x.device_id AS device, x.deployment_id AS deployment"
                                " FROM deployment_devices x JOIN devices d ON d.id = x.device_id"
                                " WHERE x.phase = 'pending' AND d.online = 1"
                                " ORDER BY x.deployment_id, x.device_id LIMIT ?", "i", (int64_t)limit);
    return *out != NULL ? STORE_OK : STORE_EIO;
}

store_rc_t store_sqlite_updates_counts(store_t *s, int64_t active_since_ms, store_update_counts_t *out)
{
    /* Two counts, each from an index: admission asks five times a second, so no scan of the
     * pending rows' records (100,000 of them in a large deployment). */
    json_t *p = store_sqlite_rows(s, "SELECT COUNT(*) AS n FROM deployment_devices WHERE phase = 'pending'", "");
    json_t *d = store_sqlite_rows(s, "SELECT COUNT(*) AS n FROM deployment_devices WHERE phase = 'offered'"
                                     " AND result = 'initial' AND state IN ('idle', 'downloading')"
                                     " AND updated_ms >= ?", "i", active_since_ms);
    store_rc_t rc = STORE_EIO;

    if (json_array_size(p) == 1 && json_array_size(d) == 1) {
        out->pending = json_integer_value(json_object_get(json_array_get(p, 0), "n"));
        out->downloading = json_integer_value(json_object_get(json_array_get(d, 0), "n"));
        rc = STORE_OK;
    }
    json_decref(p);
    json_decref(d);
    return rc;
}

store_rc_t store_sqlite_fleet_counts(store_t *s, store_fleet_counts_t *out)
{
    json_t *d = store_sqlite_rows(s, "SELECT COUNT(*) AS devices,"
                                     " COALESCE(SUM(CASE WHEN online = 1 THEN 1 ELSE 0 END), 0) AS online"
                                     " FROM devices", "");
    json_t *x = store_sqlite_rows(s, "SELECT x.deployment_id AS id, SUM(x.bytes_sent) AS bytes,"
                                     " SUM(CASE WHEN x.phase = 'pending' THEN 1 ELSE 0 END) AS pending,"
                                     " SUM(CASE WHEN x.phase = 'offered' THEN 1 ELSE 0 END) AS offered,"
                                     " SUM(CASE WHEN x.phase = 'done' THEN 1 ELSE 0 END) AS done,"
                                     " SUM(CASE WHEN x.phase = 'superseded' THEN 1 ELSE 0 END) AS superseded"
                                     " FROM deployment_devices x WHERE x.deployment_id IN"
                                     " (SELECT id FROM deployments ORDER BY id DESC LIMIT ?)"
                                     " GROUP BY x.deployment_id ORDER BY x.deployment_id",
                                  "i", (int64_t)STORE_FLEET_DEPLOYMENTS);
    store_rc_t rc = STORE_EIO;
    json_t *row = json_array_get(d, 0);

    if (row != NULL && x != NULL) {
        out->devices = json_integer_value(json_object_get(row, "devices"));
        out->online = json_integer_value(json_object_get(row, "online"));
        out->ndeployments = 0;
        size_t i;
        json_t *r;
        json_array_foreach(x, i, r) {
            if (out->ndeployments == STORE_FLEET_DEPLOYMENTS) {
                break;
            }
            struct store_deployment_bytes *b = &out->deployments[out->ndeployments++];
            b->id = json_integer_value(json_object_get(r, "id"));
            b->bytes_sent = json_integer_value(json_object_get(r, "bytes"));
            static const char *const phase[] = {"pending", "offered", "done", "superseded"};
            for (int p = 0; p < 4; p++) {
                b->phase[p] = json_integer_value(json_object_get(r, phase[p]));
            }
        }
        rc = STORE_OK;
    }
    json_decref(d);
    json_decref(x);
    return rc;
}

/* SQLite backend: delta bundles per base and how each device row is served (store.h, delta-2
 * block; docs/delta.md "keeld"). */
#include <stdio.h>
#include <string.h>

#include "keel/kproto.h"
#include "store_sqlite_priv.h"

store_rc_t store_sqlite_delta_add(store_t *s, int64_t bundle_id, const char *base_region_sha256,
                                  const char *region_sha256, int64_t patch_size)
{
    return store_sqlite_write1(s, NULL, NULL,
                               "INSERT OR IGNORE INTO bundle_deltas (bundle_id, base_region_sha256,"
                               " region_sha256, patch_size) VALUES (?, ?, ?, ?)", "itti", bundle_id,
                               base_region_sha256, region_sha256, patch_size);
}

/* Copy a delivery row ({"delivery","delta_refused","bundle_id","sha256","size","signed_size"}). */
static void delivery_from(json_t *r, store_delivery_t *out)
{
    const char *v;

    memset(out, 0, sizeof(*out));
    v = json_string_value(json_object_get(r, "delivery"));
    snprintf(out->delivery, sizeof(out->delivery), "%s", v ? v : "");
    v = json_string_value(json_object_get(r, "delta_refused"));
    snprintf(out->delta_refused, sizeof(out->delta_refused), "%s", v ? v : "");
    v = json_string_value(json_object_get(r, "sha256"));
    snprintf(out->sha256, sizeof(out->sha256), "%s", v ? v : "");
    out->bundle_id = json_integer_value(json_object_get(r, "bundle_id"));
    out->size = json_integer_value(json_object_get(r, "size"));
    out->signed_size = json_integer_value(json_object_get(r, "signed_size"));
}

/* The first row of a query into out: STORE_OK, STORE_ENOTFOUND (no row), STORE_EIO. */
static store_rc_t one_delivery(json_t *rows, store_delivery_t *out)
{
    store_rc_t rc = rows == NULL ? STORE_EIO : json_array_size(rows) == 0 ? STORE_ENOTFOUND : STORE_OK;

    if (rc == STORE_OK) {
        delivery_from(json_array_get(rows, 0), out);
    }
    json_decref(rows);
    return rc;
}

store_rc_t store_sqlite_delta_find(store_t *s, int64_t full_id, const char *device, store_delivery_t *out)
{
    /* The device's base: its app region's hash when the hello reported the whole region (size =
     * the region's length), else the regions of the stored bundles whose app image and version
     * the hello names (the microvisor reports its image). A wrong guess costs one refusal: the
     * device checks the base before it writes anything, and keeld falls back to pages. */
    return one_delivery(store_sqlite_rows(s,
        "SELECT 'delta' AS delivery, '' AS delta_refused, b.id AS bundle_id, b.sha256, b.size,"
        " b.signed_size FROM bundles f JOIN device_regions r ON r.device_id = ? AND r.name = 'app'"
        " JOIN bundle_deltas x ON x.region_sha256 = f.region_sha256"
        " JOIN bundles b ON b.id = x.bundle_id"
        " WHERE f.id = ? AND b.version = f.version AND b.security_counter = f.security_counter"
        " AND b.device_type = f.device_type AND b.min_uv_version = f.min_uv_version"
        " AND b.blocks * b.block_size = f.blocks * f.block_size"
        " AND ((r.size = f.blocks * f.block_size AND x.base_region_sha256 = r.sha256) OR"
        "  (r.size <> f.blocks * f.block_size AND x.base_region_sha256 IN"
        "   (SELECT o.region_sha256 FROM bundles o WHERE o.image_sha256 = r.sha256"
        "    AND o.image_sha256 <> '' AND o.version = r.version)))"
        " ORDER BY b.size, b.id LIMIT 1", "ti", device, full_id), out);
}

store_rc_t store_sqlite_delivery_get(store_t *s, int64_t deployment, const char *device,
                                     store_delivery_t *out)
{
    return one_delivery(store_sqlite_rows(s,
        "SELECT x.delivery, x.delta_refused, COALESCE(b.id, 0) AS bundle_id,"
        " COALESCE(b.sha256, '') AS sha256, COALESCE(b.size, 0) AS size,"
        " COALESCE(b.signed_size, 0) AS signed_size FROM deployment_devices x"
        " LEFT JOIN bundles b ON b.id = x.delivery_bundle_id AND x.delivery = 'delta'"
        " WHERE x.deployment_id = ? AND x.device_id = ?", "it", deployment, device), out);
}

store_rc_t store_sqlite_delivery_set(store_t *s, int64_t deployment, const char *device,
                                     const char *delivery, int64_t bundle_id)
{
    return store_sqlite_write1(s, NULL, NULL,
                               "UPDATE deployment_devices SET delivery = ?,"
                               " delivery_bundle_id = CASE WHEN ? > 0 THEN ? END"
                               " WHERE deployment_id = ? AND device_id = ? AND delivery = ''"
                               " AND phase IN ('pending', 'offered')", "tiiit", delivery, bundle_id,
                               bundle_id, deployment, device);
}

store_rc_t store_sqlite_delivery_fallback(store_t *s, int64_t deployment, const char *device,
                                          int64_t now_ms, const keel_v1_UpdateStatus *st,
                                          bool *out_changed)
{
    int64_t code = (int32_t)st->code; /* a kerr_t carried as uint32 (see update_status) */
    char why[128];
    int n = 0;

    *out_changed = false;
    snprintf(why, sizeof(why), "%s", st->detail[0] ? st->detail : "refused");
    /* One statement: only a row still served a delta and without a final result turns. */
    store_rc_t rc = store_sqlite_write1(s, &n, NULL,
        "UPDATE deployment_devices SET delivery = 'pages', delta_refused = ?, state = 'idle',"
        " result = 'initial', code = 0, detail = '', updated_ms = ?"
        " WHERE deployment_id = ? AND device_id = ? AND delivery = 'delta'"
        " AND phase IN ('pending', 'offered')", "tiit", why, now_ms, deployment, device);
    if (rc != STORE_OK || n == 0) {
        return rc;
    }
    *out_changed = true;
    /* The history keeps the refusal (its own statement: losing it loses a line of history only). */
    char detail[sizeof(st->detail) + 64];
    snprintf(detail, sizeof(detail), "delta refused (%s): sending pages", why);
    return store_sqlite_write1(s, NULL, NULL,
                               "INSERT INTO update_events (deployment_id, device_id, received_ms,"
                               " state, result, code, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               "itittit", deployment, device, now_ms,
                               kproto_update_state_name(st->state),
                               kproto_update_result_name(st->result), code, detail);
}

json_t *store_sqlite_delta_get(store_t *s, int64_t bundle_id)
{
    json_t *r = store_sqlite_rows(s, "SELECT base_region_sha256, patch_size FROM bundle_deltas"
                                     " WHERE bundle_id = ?", "i", bundle_id);
    json_t *d = json_incref(json_array_get(r, 0));

    json_decref(r);
    return d;
}

/*
 * SQLite backend: rollouts (store.h "ops (issue 16)"; docs/rollouts.md). A rollout's plan and
 * its devices' phases are fixed when it is created; each phase, when it starts, becomes a
 * deployment of its own (rollout_phases.deployment_id), so offers, admission, statuses and
 * supersede work for it as for any deployment. Every change of state is one transaction that
 * also writes its rollout_transitions row, and applies only if the rollout's rev is still the one
 * the deciding caller read (several keeld instances may decide at once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "kd_log.h"
#include "store_sqlite_priv.h"

/* A tag target "NAME" or "NAME=VALUE": name into buf, *value NULL or after the '='. */
static void split_tag(const char *tag, char *buf, size_t cap, const char **value)
{
    snprintf(buf, cap, "%s", tag);
    char *eq = strchr(buf, '=');
    *value = NULL;
    if (eq != NULL) {
        *eq = '\0';
        *value = eq + 1;
    }
}

/* The devices of a target (deployment_create's resolution), with sel the columns and tail the
 * rest of the query (GROUP BY / ORDER BY). */
static json_t *target_query(store_t *s, const char *sel, const char *tail, const char *kind,
                            const char *target)
{
    char sql[512], name[128];
    const char *value = NULL;

    if (strcmp(kind, "device") == 0) {
        snprintf(sql, sizeof(sql), "SELECT %s FROM devices d WHERE d.id = ? %s", sel, tail);
        return store_sqlite_rows(s, sql, "t", target);
    }
    if (strcmp(kind, "tag") == 0) {
        split_tag(target, name, sizeof(name), &value);
        snprintf(sql, sizeof(sql), "SELECT %s FROM devices d JOIN device_tags t ON t.device_id = d.id"
                                   " WHERE t.name = ? AND (? IS NULL OR t.value = ?) %s", sel, tail);
        return store_sqlite_rows(s, sql, "ttt", name, value, value);
    }
    snprintf(sql, sizeof(sql), "SELECT %s FROM devices d %s", sel, tail);
    return store_sqlite_rows(s, sql, "");
}

store_rc_t store_sqlite_target_devices(store_t *s, const char *kind, const char *target, json_t **out)
{
    *out = target_query(s, "d.id, d.board", "ORDER BY d.id", kind, target);
    return *out ? STORE_OK : STORE_EIO;
}

store_rc_t store_sqlite_target_boards(store_t *s, const char *kind, const char *target, json_t **out)
{
    *out = target_query(s, "d.board, d.device_type, COUNT(*) AS devices",
                        "GROUP BY d.board, d.device_type ORDER BY d.board, d.device_type", kind,
                        target);
    return *out ? STORE_OK : STORE_EIO;
}

store_rc_t store_sqlite_devices_tagged(store_t *s, const char *tag, json_t **out)
{
    char name[128];
    const char *value = NULL;

    split_tag(tag, name, sizeof(name), &value);
    json_t *r = store_sqlite_rows(s, "SELECT device_id FROM device_tags WHERE name = ? AND"
                                     " (? IS NULL OR value = ?) ORDER BY device_id", "ttt", name, value,
                                  value);
    *out = NULL;
    if (r == NULL) {
        return STORE_EIO;
    }
    *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(r, i, row) {
        json_array_append(*out, json_object_get(row, "device_id"));
    }
    json_decref(r);
    return STORE_OK;
}

static int transition(sqlite3 *db, int64_t id, int64_t now_ms, const char *from, const char *to,
                      int64_t phase, const char *actor, const char *reason)
{
    return store_sqlite_tx_run(db, "INSERT INTO rollout_transitions (rollout_id, at_ms, from_state,"
                                   " to_state, phase, actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               "iittitt", id, now_ms, from, to, phase, actor, reason) == 1 ? 0 : -1;
}

store_rc_t store_sqlite_rollout_create(store_t *s, const store_rollout_new_t *r, int64_t now_ms,
                                       int64_t *out_id)
{
    sqlite3 *db = store_sqlite_tx_begin(s);
    char reason[160];
    int64_t id = 0;

    *out_id = 0;
    if (db == NULL) {
        return STORE_EIO;
    }
    int ok = store_sqlite_tx_run(db, "INSERT INTO rollouts (bundle_id, rollback_bundle_id, seed, target_kind,"
                                     " target, on_error, device_timeout_s, force_after_s, base_deployment,"
                                     " state, phase, reason, devices, created_ms, updated_ms, window_from, window_to) SELECT ?,"
                                     " NULLIF(?, 0), ?, ?, ?, ?, ?, ?, COALESCE(MAX(id), 0), 'running', -1,"
                                     " 'created', ?, ?, ?, ?, ? FROM deployments", "iittttiiiiiii", r->bundle_id,
                                 r->rollback_bundle_id ? r->rollback_bundle_id : (int64_t)0, r->seed,
                                 r->target_kind, r->target, r->on_error,
                                 r->device_timeout_s, r->force_after_s, (int64_t)r->ndevices, now_ms,
                                 now_ms, r->window_from, r->window_to) == 1;
    if (ok) {
        id = sqlite3_last_insert_rowid(db);
    }
    for (int p = 0; ok && p < r->nphases; p++) {
        const store_rollout_phase_t *ph = &r->phases[p];
        ok = store_sqlite_tx_run(db, "INSERT INTO rollout_phases (rollout_id, idx, kind, value, success_pct,"
                                     " error_pct, min_results, approve, devices) VALUES (?, ?, ?, ?, ?, ?,"
                                     " ?, ?, ?)", "iittiiiii", id, (int64_t)p, ph->kind, ph->value,
                                 ph->success_pct, ph->error_pct, ph->min_results, (int64_t)ph->approve,
                                 ph->devices) == 1;
    }
    /* One prepared statement for every device (100,000 of them in about a second). */
    sqlite3_stmt *st = NULL;
    ok = ok && sqlite3_prepare_v2(db, "INSERT INTO rollout_devices (rollout_id, device_id, phase)"
                                      " VALUES (?, ?, ?)", -1, &st, NULL) == SQLITE_OK;
    for (size_t i = 0; ok && i < r->ndevices; i++) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, r->devices[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, r->device_phase[i]);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_reset(st);
    }
    if (!ok && st != NULL) {
        KD_ERROR("sqlite: rollout devices: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    snprintf(reason, sizeof(reason), "created: %zu devices in %d phases", r->ndevices, r->nphases);
    ok = ok && transition(db, id, now_ms, "", "running", -1, r->actor ? r->actor : "operator", reason) == 0;
    store_rc_t rc = store_sqlite_tx_end(s, ok);
    *out_id = rc == STORE_OK ? id : 0;
    return rc;
}

#define ROLLOUT_COLUMNS                                                                            \
    "r.id, r.bundle_id, b.sha256 AS bundle_sha256, b.name AS app, b.version, r.rollback_bundle_id," \
    " r.seed,"                                                                                      \
    " r.target_kind, r.target, r.on_error, r.device_timeout_s, r.force_after_s, r.state,"          \
    " r.phase, r.reason, r.devices, r.rollback_deployments, r.window_from, r.window_to,"       \
    " r.created_ms, r.updated_ms, r.rev"

/* A packed version (major << 24 | minor << 16 | patch) as "1.2.3". */
static void version_fixup(json_t *o)
{
    json_int_t v = json_integer_value(json_object_get(o, "version"));
    char buf[32];

    snprintf(buf, sizeof(buf), "%u.%u.%u", (unsigned)((v >> 24) & 0xff), (unsigned)((v >> 16) & 0xff),
             (unsigned)(v & 0xffff));
    json_object_set_new(o, "version", json_string(buf));
}

json_t *store_sqlite_rollouts_list(store_t *s, bool active, int limit)
{
    json_t *arr = store_sqlite_rows(s, "SELECT " ROLLOUT_COLUMNS " FROM rollouts r JOIN bundles b"
                                       " ON b.id = r.bundle_id WHERE (? = 0 OR r.state IN ('running',"
                                       " 'awaiting_approval')) ORDER BY r.id DESC LIMIT ?", "ii",
                                    (int64_t)active, (int64_t)limit);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        version_fixup(o);
    }
    return arr;
}

/*
 * Each phase of rollout id with its counts at now_ms (store.h rollout_get). "waiting": rows with
 * no final result yet, of which "timed_out" had none within the rollout's device timeout of the
 * phase's start; "inconclusive" results (a platform trial that could not judge) are neither
 * successes nor errors.
 */
static json_t *phase_rows(sqlite3 *db, int64_t id, int64_t now_ms)
{
    json_t *phases = store_sqlite_tx_rows(db,
        "SELECT p.idx, p.kind, p.value, p.success_pct, p.error_pct, p.min_results, p.approve, p.devices,"
        " p.deployment_id, p.started_ms, p.ack_results, p.ack_errors,"
        " COUNT(x.device_id) AS started,"
        " COALESCE(SUM(CASE WHEN x.phase = 'done' AND x.result = 'success' THEN 1 ELSE 0 END), 0) AS succeeded,"
        " COALESCE(SUM(CASE WHEN x.phase = 'done' AND x.result = 'inconclusive' THEN 1 ELSE 0 END), 0)"
        "  AS inconclusive,"
        " COALESCE(SUM(CASE WHEN x.phase = 'done' AND x.result NOT IN ('success', 'inconclusive')"
        "  THEN 1 ELSE 0 END), 0) AS failed,"
        " COALESCE(SUM(CASE WHEN x.phase IN ('pending', 'offered', 'held') THEN 1 ELSE 0 END), 0) AS waiting,"
        " COALESCE(SUM(CASE WHEN x.phase IN ('pending', 'offered', 'held') AND"
        "  p.started_ms + r.device_timeout_s * 1000 <= ? THEN 1 ELSE 0 END), 0) AS timed_out,"
        " COALESCE(SUM(CASE WHEN x.phase = 'held' THEN 1 ELSE 0 END), 0) AS held,"
        " COALESCE(SUM(CASE WHEN x.phase = 'superseded' THEN 1 ELSE 0 END), 0) AS superseded"
        " FROM rollout_phases p JOIN rollouts r ON r.id = p.rollout_id"
        " LEFT JOIN deployment_devices x ON x.deployment_id = p.deployment_id"
        " WHERE p.rollout_id = ? GROUP BY p.idx ORDER BY p.idx", "ii", now_ms, id);
    json_t *errs = store_sqlite_tx_rows(db,
        "SELECT p.idx, x.result, COUNT(*) AS n FROM rollout_phases p JOIN deployment_devices x"
        " ON x.deployment_id = p.deployment_id WHERE p.rollout_id = ? AND x.phase = 'done'"
        " AND x.result NOT IN ('success', 'inconclusive') GROUP BY p.idx, x.result ORDER BY p.idx, x.result",
        "i", id);
    if (phases == NULL || errs == NULL) {
        json_decref(phases);
        json_decref(errs);
        return NULL;
    }
    size_t i, k;
    json_t *p, *e;
    json_array_foreach(phases, i, p) {
        json_t *by = json_object();
        json_array_foreach(errs, k, e) {
            if (json_integer_value(json_object_get(e, "idx")) == (json_int_t)i) {
                json_object_set(by, json_string_value(json_object_get(e, "result")), json_object_get(e, "n"));
            }
        }
        json_object_set_new(p, "errors_by_result", by);
        json_object_set_new(p, "approve", json_boolean(json_integer_value(json_object_get(p, "approve"))));
    }
    json_decref(errs);
    return phases;
}

json_t *store_sqlite_rollout_get(store_t *s, int64_t id, int64_t now_ms)
{
    sqlite3 *db = store_sqlite_tx_begin(s);

    if (db == NULL) {
        return NULL;
    }
    json_t *r = store_sqlite_tx_rows(db, "SELECT " ROLLOUT_COLUMNS ", r.rev + COALESCE((SELECT"
                                         " SUM(d.rev) FROM deployments d WHERE d.id IN (SELECT"
                                         " deployment_id FROM rollout_phases WHERE rollout_id = r.id)),"
                                         " 0) AS watch_rev FROM rollouts r JOIN bundles b ON"
                                         " b.id = r.bundle_id WHERE r.id = ?", "i", id);
    json_t *phases = json_array_size(r) == 1 ? phase_rows(db, id, now_ms) : NULL;
    json_t *tr = phases ? store_sqlite_tx_rows(db, "SELECT id, at_ms, from_state, to_state, phase, actor,"
                                                   " reason FROM rollout_transitions WHERE rollout_id = ?"
                                                   " ORDER BY id DESC LIMIT 200", "i", id)
                        : NULL;
    (void)store_sqlite_tx_end(s, 0); /* read only: nothing to commit */
    json_t *o = NULL;
    if (tr != NULL) {
        o = json_incref(json_array_get(r, 0));
        version_fixup(o);
        json_object_set(o, "phases", phases);
        json_object_set(o, "transitions", tr);
    }
    json_decref(r);
    json_decref(phases);
    json_decref(tr);
    return o;
}

/* The rows of the rollout's phase deployments: "x.deployment_id IN (" ROLLOUT_DEPLOYMENTS ")". */
#define ROLLOUT_DEPLOYMENTS                                                                        \
    "SELECT deployment_id FROM rollout_phases WHERE rollout_id = ? AND deployment_id IS NOT NULL"

/* Start phase idx: a deployment of its devices that no newer deployment (not the rollout's own,
 * not superseded) has taken meanwhile. A phase left with no device starts empty. */
static int start_phase(sqlite3 *db, int64_t id, int64_t idx, int64_t now_ms, json_t *created)
{
#define PHASE_DEVICES                                                                              \
    " FROM rollout_devices v JOIN rollouts r ON r.id = v.rollout_id WHERE v.rollout_id = ?"       \
    " AND v.phase = ? AND v.device_id IN (SELECT id FROM devices) AND v.device_id NOT IN"          \
    " (SELECT device_id FROM deployment_devices WHERE deployment_id > r.base_deployment"          \
    " AND phase <> 'superseded' AND deployment_id NOT IN (" ROLLOUT_DEPLOYMENTS "))"
    json_t *n = store_sqlite_tx_rows(db, "SELECT COUNT(*) AS n" PHASE_DEVICES, "iii", id, idx, id);
    int64_t count = n ? json_integer_value(json_object_get(json_array_get(n, 0), "n")) : -1;
    json_decref(n);
    if (count < 0) {
        return -1;
    }
    int64_t dep = 0;
    if (count > 0) {
        char target[64];
        snprintf(target, sizeof(target), "rollout %lld phase %lld", (long long)id, (long long)idx + 1);
        if (store_sqlite_tx_run(db, "INSERT INTO deployments (bundle_id, target_kind, target, force_after_s,"
                                    " created_ms) SELECT bundle_id, 'rollout', ?, force_after_s, ? FROM"
                                    " rollouts WHERE id = ?", "tii", target, now_ms, id) != 1) {
            return -1;
        }
        dep = sqlite3_last_insert_rowid(db);
        if (store_sqlite_tx_run(db, "INSERT INTO deployment_devices (deployment_id, device_id, updated_ms)"
                                    " SELECT ?, v.device_id, ?" PHASE_DEVICES, "iiiii", dep, now_ms, id,
                                idx, id) != count ||
            store_sqlite_tx_supersede(db, dep, now_ms) != 0) {
            return -1;
        }
        json_array_append_new(created, json_integer(dep));
    }
#undef PHASE_DEVICES
    return store_sqlite_tx_run(db, "UPDATE rollout_phases SET deployment_id = CASE WHEN ? = 0 THEN NULL"
                                   " ELSE ? END, started_ms = ? WHERE rollout_id = ? AND idx = ?", "iiiii",
                               dep, dep, now_ms, id, idx) == 1
               ? 0
               : -1;
}

/*
 * Roll back: every device the rollout updated (success) or is updating (offered) gets the
 * rollout's rollback bundle, or else the bundle of its newest successful deployment from before
 * the rollout, as one deployment per bundle (which supersedes what is still in progress). Appends
 * what it did to reason.
 */
static int roll_back(sqlite3 *db, int64_t id, int64_t now_ms, json_t *created, char *reason, size_t cap)
{
    json_t *rows = store_sqlite_tx_rows(db,
        "SELECT x.device_id AS device, COALESCE(r.rollback_bundle_id, (SELECT d2.bundle_id FROM"
        " deployment_devices x2 JOIN deployments d2 ON d2.id = x2.deployment_id WHERE"
        " x2.device_id = x.device_id AND x2.deployment_id <= r.base_deployment AND x2.phase = 'done'"
        " AND x2.result = 'success' AND d2.bundle_id <> r.bundle_id ORDER BY x2.deployment_id DESC"
        " LIMIT 1)) AS bundle FROM rollout_phases p JOIN rollouts r ON r.id = p.rollout_id"
        " JOIN deployment_devices x ON x.deployment_id = p.deployment_id WHERE p.rollout_id = ?"
        " AND ((x.phase = 'done' AND x.result = 'success') OR x.phase = 'offered')"
        " ORDER BY bundle, device", "i", id);
    if (rows == NULL) {
        return -1;
    }
    int64_t bundle = -1, dep = 0, unknown = 0, moved = 0;
    char deps[96] = "";
    size_t i;
    json_t *row;
    int ok = 1;
    json_array_foreach(rows, i, row) {
        json_t *b = json_object_get(row, "bundle");
        if (!json_is_integer(b)) {
            unknown++;
            continue;
        }
        if (json_integer_value(b) != bundle) {
            if (dep != 0 && store_sqlite_tx_supersede(db, dep, now_ms) != 0) {
                ok = 0;
                break;
            }
            bundle = json_integer_value(b);
            char target[64];
            snprintf(target, sizeof(target), "rollback of rollout %lld", (long long)id);
            if (store_sqlite_tx_run(db, "INSERT INTO deployments (bundle_id, target_kind, target,"
                                        " force_after_s, created_ms) SELECT ?, 'rollback', ?, force_after_s,"
                                        " ? FROM rollouts WHERE id = ?", "itii", bundle, target, now_ms,
                                    id) != 1) {
                ok = 0;
                break;
            }
            dep = sqlite3_last_insert_rowid(db);
            json_array_append_new(created, json_integer(dep));
            size_t n = strlen(deps);
            snprintf(deps + n, sizeof(deps) - n, "%s%lld", n ? "," : "", (long long)dep);
        }
        if (store_sqlite_tx_run(db, "INSERT INTO deployment_devices (deployment_id, device_id, updated_ms)"
                                    " VALUES (?, ?, ?)", "iti", dep,
                                json_string_value(json_object_get(row, "device")), now_ms) != 1) {
            ok = 0;
            break;
        }
        moved++;
    }
    json_decref(rows);
    if (!ok || (dep != 0 && store_sqlite_tx_supersede(db, dep, now_ms) != 0)) {
        return -1;
    }
    size_t n = strlen(reason);
    snprintf(reason + n, cap - n, "; rolled back %lld devices%s%s%s", (long long)moved,
             deps[0] ? " (deployment " : "", deps, deps[0] ? ")" : "");
    if (unknown > 0) {
        n = strlen(reason);
        snprintf(reason + n, cap - n, "; %lld with no previous bundle known left as they are",
                 (long long)unknown);
    }
    return store_sqlite_tx_run(db, "UPDATE rollouts SET rollback_deployments = CASE WHEN"
                                   " rollback_deployments = '' THEN ? ELSE rollback_deployments || ',' || ?"
                                   " END WHERE id = ?", "tti", deps, deps, id) == 1 || !deps[0]
               ? 0
               : -1;
}

/*
 * The download window (store.h rollout_window): "x" is a row of the rollout's deployments; the
 * device's local minute of the day is UTC's plus its utc_offset tag (minutes, default 0). A
 * window from > to spans midnight.
 */
#define OUTSIDE_WINDOW                                                                             \
    " (SELECT CASE WHEN r.window_from < 0 THEN 0 ELSE (CASE WHEN r.window_from <= r.window_to"    \
    " THEN NOT (m.local >= r.window_from AND m.local < r.window_to) ELSE NOT (m.local >="         \
    " r.window_from OR m.local < r.window_to) END) END FROM rollouts r, (SELECT (((? / 60000) +"  \
    " COALESCE((SELECT CAST(t.value AS INTEGER) FROM device_tags t WHERE t.device_id ="           \
    " deployment_devices.device_id AND t.name = 'utc_offset'), 0)) % 1440 + 1440) % 1440 AS local)" \
    " m WHERE r.id = ?)"

static int window_sync(sqlite3 *db, int64_t id, int64_t now_ms, int *released)
{
    int held = store_sqlite_tx_run(db, "UPDATE deployment_devices SET phase = 'held', updated_ms = ?"
                                       " WHERE phase = 'pending' AND deployment_id IN (" ROLLOUT_DEPLOYMENTS
                                       ") AND" OUTSIDE_WINDOW " = 1", "iiii", now_ms, id, now_ms, id);
    int back = held < 0 ? -1
                        : store_sqlite_tx_run(db, "UPDATE deployment_devices SET phase = 'pending', updated_ms = ?"
                                                  " WHERE phase = 'held' AND deployment_id IN ("
                                                  ROLLOUT_DEPLOYMENTS ") AND" OUTSIDE_WINDOW " = 0",
                                              "iiii", now_ms, id, now_ms, id);
    *released = back > 0 ? back : 0;
    return back < 0 ? -1 : 0;
}

store_rc_t store_sqlite_rollout_window(store_t *s, int64_t id, int64_t now_ms, int *out_released)
{
    sqlite3 *db = store_sqlite_tx_begin(s);

    *out_released = 0;
    if (db == NULL) {
        return STORE_EIO;
    }
    /* Only while it runs: a paused rollout's held rows stay held. */
    json_t *st = store_sqlite_tx_rows(db, "SELECT state, window_from FROM rollouts WHERE id = ?", "i", id);
    json_t *row = json_array_get(st, 0);
    int ok = st != NULL;
    if (row != NULL && json_integer_value(json_object_get(row, "window_from")) >= 0 &&
        strcmp(json_string_value(json_object_get(row, "state")), "paused") != 0 &&
        strcmp(json_string_value(json_object_get(row, "state")), "aborted") != 0) {
        ok = window_sync(db, id, now_ms, out_released) == 0;
    }
    json_decref(st);
    return store_sqlite_tx_end(s, ok);
}

/* Errors and results of a phase row as the guard counts them (before acknowledgement). */
static void guard_counts(json_t *p, int64_t *results, int64_t *errors)
{
    int64_t ok = json_integer_value(json_object_get(p, "succeeded"));
    int64_t failed = json_integer_value(json_object_get(p, "failed"));
    int64_t late = json_integer_value(json_object_get(p, "timed_out"));

    *errors = failed + late;
    *results = ok + *errors;
}

store_rc_t store_sqlite_rollout_move(store_t *s, const store_rollout_move_t *m, int64_t now_ms,
                                     bool *out_moved, json_t **out_deployments)
{
    char reason[512];
    json_t *created = json_array();

    *out_moved = false;
    *out_deployments = NULL;
    snprintf(reason, sizeof(reason), "%s", m->reason);
    sqlite3 *db = store_sqlite_tx_begin(s);
    if (db == NULL) {
        json_decref(created);
        return STORE_EIO;
    }
    json_t *cur = store_sqlite_tx_rows(db, "SELECT state, phase, rev, window_from FROM rollouts WHERE id = ?",
                                       "i", m->id);
    json_t *row = json_array_get(cur, 0);
    int ok = cur != NULL;
    if (row == NULL || json_integer_value(json_object_get(row, "rev")) != m->rev) {
        /* Unknown, or moved by someone else since the caller read it: nothing to do here. */
        store_rc_t rc = !ok ? STORE_EIO : row == NULL ? STORE_ENOTFOUND : STORE_OK;
        json_decref(cur);
        json_decref(created);
        (void)store_sqlite_tx_end(s, 0);
        return rc;
    }
    char from[24];
    snprintf(from, sizeof(from), "%s", json_string_value(json_object_get(row, "state")));
    int64_t phase = json_integer_value(json_object_get(row, "phase"));
    bool window = json_integer_value(json_object_get(row, "window_from")) >= 0;
    json_decref(cur);
    if (m->hold) {
        ok = ok && store_sqlite_tx_run(db, "UPDATE deployment_devices SET phase = 'held', updated_ms = ?"
                                           " WHERE phase = 'pending' AND deployment_id IN ("
                                           ROLLOUT_DEPLOYMENTS ")", "ii", now_ms, m->id) >= 0;
    }
    if (m->release) {
        /* A held device that a newer deployment took meanwhile is not given this one again. */
        ok = ok &&
             store_sqlite_tx_run(db, "UPDATE deployment_devices SET phase = 'superseded', updated_ms = ?,"
                                     " detail = 'superseded while the rollout was paused' WHERE phase = 'held'"
                                     " AND deployment_id IN (" ROLLOUT_DEPLOYMENTS ") AND EXISTS (SELECT 1"
                                     " FROM deployment_devices y WHERE y.device_id = deployment_devices.device_id"
                                     " AND y.deployment_id > deployment_devices.deployment_id AND"
                                     " y.phase <> 'superseded')", "ii", now_ms, m->id) >= 0 &&
             store_sqlite_tx_run(db, "UPDATE deployment_devices SET phase = 'pending', updated_ms = ?"
                                     " WHERE phase = 'held' AND deployment_id IN (" ROLLOUT_DEPLOYMENTS ")",
                                 "ii", now_ms, m->id) >= 0;
        json_t *deps = store_sqlite_tx_rows(db, ROLLOUT_DEPLOYMENTS, "i", m->id);
        size_t i;
        json_t *d;
        json_array_foreach(deps, i, d) {
            json_array_append(created, json_object_get(d, "deployment_id"));
        }
        ok = ok && deps != NULL;
        json_decref(deps);
    }
    if (m->ack) {
        json_t *phases = phase_rows(db, m->id, now_ms);
        size_t i;
        json_t *p;
        ok = ok && phases != NULL;
        json_array_foreach(phases, i, p) {
            int64_t results, errors;
            guard_counts(p, &results, &errors);
            ok = ok && store_sqlite_tx_run(db, "UPDATE rollout_phases SET ack_results = ?, ack_errors = ?"
                                               " WHERE rollout_id = ? AND idx = ?", "iiii", results, errors,
                                           m->id, (int64_t)i) == 1;
        }
        json_decref(phases);
    }
    if (m->end) {
        char detail[64];
        snprintf(detail, sizeof(detail), "rollout %lld aborted", (long long)m->id);
        ok = ok && store_sqlite_tx_run(db, "UPDATE deployment_devices SET phase = 'superseded', detail = ?,"
                                           " updated_ms = ? WHERE phase IN ('pending', 'offered', 'held') AND"
                                           " deployment_id IN (" ROLLOUT_DEPLOYMENTS ")", "tii", detail,
                                       now_ms, m->id) >= 0;
    }
    if (m->rollback) {
        ok = ok && roll_back(db, m->id, now_ms, created, reason, sizeof(reason)) == 0;
    }
    if (m->start_phase >= 0) {
        ok = ok && start_phase(db, m->id, m->start_phase, now_ms, created) == 0;
        phase = m->start_phase > phase ? m->start_phase : phase;
    }
    if (window && (m->start_phase >= 0 || m->release)) {
        int released = 0; /* rows outside their download window are held before any offer */
        ok = ok && window_sync(db, m->id, now_ms, &released) == 0;
    }
    ok = ok &&
         store_sqlite_tx_run(db, "UPDATE rollouts SET state = ?, phase = ?, reason = ?, updated_ms = ?,"
                                 " rev = rev + 1 WHERE id = ?", "titii", m->to_state, phase, reason, now_ms,
                             m->id) == 1 &&
         transition(db, m->id, now_ms, from, m->to_state, phase, m->actor, reason) == 0;
    store_rc_t rc = store_sqlite_tx_end(s, ok);
    if (rc == STORE_OK) {
        *out_moved = true;
        *out_deployments = created;
    } else {
        json_decref(created);
    }
    return rc;
}

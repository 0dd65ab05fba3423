/* The /v1/rollouts endpoints (rollout_api.h; docs/api.md "Rollouts"). */
#include "rollout_api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_time.h"

#define LIST_MAX 1000
#define WATCH_WAIT_MAX_S 30
#define REASON_MAX 256

static unsigned err(json_t **out, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static unsigned err(json_t **out, unsigned status, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    *out = json_pack("{s:s}", "error", buf);
    return status;
}

/* An optional query integer lo..hi; false (and the 400 in *out) when it is not one. */
static bool query_int(struct MHD_Connection *c, const char *name, int64_t lo, int64_t hi, int64_t def,
                      int64_t *v, unsigned *status, json_t **out)
{
    const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    char *end = NULL;

    *v = def;
    if (s == NULL) {
        return true;
    }
    long long n = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || n < lo || n > hi) {
        *status = err(out, 400, "query parameter '%s' must be a whole number from %lld to %lld", name,
                      (long long)lo, (long long)hi);
        return false;
    }
    *v = n;
    return true;
}

/* A body that is a JSON object ("" reads as {}); NULL with the 400 in *out. */
static json_t *body_object(const char *body, size_t len, bool empty_ok, unsigned *status, json_t **out)
{
    json_error_t jerr;

    if (empty_ok && len == 0) {
        return json_object();
    }
    json_t *j = json_loadb(body ? body : "", len, 0, &jerr);
    if (j == NULL) {
        *status = err(out, 400, "malformed JSON body at line %d, column %d: %s", jerr.line, jerr.column,
                      jerr.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *status = err(out, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* "/v1/rollouts/12" -> 12 (op NULL), "/v1/rollouts/12/pause" -> 12 ("pause"); -1 otherwise. */
static int64_t path(const char *url, const char **op)
{
    const char *p = url + strlen("/v1/rollouts/");
    char *end = NULL;

    *op = NULL;
    if (*p < '1' || *p > '9') {
        return -1;
    }
    long long id = strtoll(p, &end, 10);
    if (*end == '/') {
        *op = end + 1;
    } else if (*end != '\0') {
        return -1;
    }
    return id > 0 && id < INT64_MAX ? id : -1;
}

static bool known_op(const char *op)
{
    static const char *const ops[] = {"pause", "resume", "approve", "abort", "rollback"};

    for (size_t i = 0; op != NULL && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(op, ops[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* GET /v1/rollouts/{id}[?after=REV&wait=S]: with after, a long poll on the rollout's watch_rev
 * (its own rev plus its deployments'), which every transition and device change moves. */
static unsigned get_one(store_t *store, ota_t *ota, struct MHD_Connection *c, int64_t id,
                        const atomic_bool *stopping, json_t **out)
{
    int64_t after, wait_s;
    unsigned status = 200;

    if (!query_int(c, "after", -1, INT64_MAX, -1, &after, &status, out) ||
        !query_int(c, "wait", 0, WATCH_WAIT_MAX_S, 20, &wait_s, &status, out)) {
        return status;
    }
    int64_t deadline = kd_mono_us() / 1000 + wait_s * 1000;
    for (;;) {
        uint64_t gen = ota_changes(ota);
        json_t *ro = store->ops->rollout_get(store, id, kd_wall_ms());
        if (ro == NULL) {
            return err(out, 404, "no rollout %lld; list them with GET /v1/rollouts", (long long)id);
        }
        if (after < 0 || json_integer_value(json_object_get(ro, "watch_rev")) > after ||
            kd_mono_us() / 1000 >= deadline || atomic_load(stopping)) {
            *out = ro;
            return 200;
        }
        json_decref(ro);
        ota_wait(ota, gen, 1000);
    }
}

unsigned rollout_api(rollouts_t *r, store_t *store, ota_t *ota, struct MHD_Connection *c, const char *url,
                     const char *method, const char *body, size_t len, const char *who,
                     const atomic_bool *stopping, json_t **out)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    unsigned status = 200;
    char why[1024];

    *out = NULL;
    if (r == NULL) {
        return err(out, 503, "keeld is starting; retry");
    }
    if (strcmp(url, "/v1/rollouts") == 0) {
        if (get) {
            int64_t limit;
            if (!query_int(c, "limit", 1, LIST_MAX, 100, &limit, &status, out)) {
                return status;
            }
            json_t *arr = store->ops->rollouts_list(store, false, (int)limit);
            return arr ? (*out = json_pack("{s:o}", "rollouts", arr), 200)
                       : err(out, 503, "the database failed (see keeld's log); retry");
        }
        if (post) {
            json_t *j = body_object(body, len, false, &status, out);
            if (j == NULL) {
                return status;
            }
            status = rollouts_create(r, j, who, out, why, sizeof(why));
            json_decref(j);
            return *out ? status : err(out, status, "%s", why);
        }
        return err(out, 405, "%s %s is not supported; use GET, POST", method, url);
    }
    const char *op = NULL;
    int64_t id = path(url, &op);
    if (id < 0 || (op != NULL && !known_op(op))) {
        return err(out, 404, "no endpoint %s %s; rollouts are /v1/rollouts/ID and /v1/rollouts/ID/"
                   "{pause,resume,approve,abort,rollback}", method, url);
    }
    if (op == NULL) {
        return get ? get_one(store, ota, c, id, stopping, out)
                   : err(out, 405, "%s %s is not supported; use GET", method, url);
    }
    if (!post) {
        return err(out, 405, "%s %s is not supported; use POST", method, url);
    }
    json_t *j = body_object(body, len, true, &status, out);
    if (j == NULL) {
        return status;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (strcmp(key, "reason") != 0 || !json_is_string(v) || json_string_length(v) > REASON_MAX) {
            json_decref(j);
            return err(out, 400, "the body is empty or {\"reason\": \"...\"} (at most %d characters)",
                       REASON_MAX);
        }
    }
    status = rollouts_operate(r, id, op, json_string_value(json_object_get(j, "reason")), who, out, why,
                              sizeof(why));
    json_decref(j);
    return *out ? status : err(out, status, "%s", why);
}

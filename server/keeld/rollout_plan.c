/* Rollouts without I/O: request, phase assignment, decision (rollout_plan.h). */
#include "rollout_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT_MAX 10000000

/* ---- the request ------------------------------------------------------------------------------ */

static int bad(char *why, size_t cap, const char *fmt, const char *arg)
{
    snprintf(why, cap, fmt, arg);
    return -1;
}

/* An optional integer field lo..hi (default def). */
static int int_field(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t def, int64_t *out,
                     const char *where, char *why, size_t cap)
{
    json_t *v = json_object_get(o, key);

    *out = def;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(why, cap, "%s\"%s\" must be a whole number from %lld to %lld", where, key, (long long)lo,
                 (long long)hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static bool only_keys(json_t *o, const char *const *allowed, const char **unknown)
{
    const char *key;
    json_t *v;

    json_object_foreach(o, key, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++) {
            ok = strcmp(key, allowed[i]) == 0;
        }
        if (!ok) {
            *unknown = key;
            return false;
        }
    }
    return true;
}

static int parse_phase(json_t *ph, int idx, const store_rollout_phase_t *def, store_rollout_phase_t *out,
                       char *why, size_t cap)
{
    static const char *const keys[] = {"count", "percent", "tag", "success_pct", "error_pct",
                                       "min_results", "approve", NULL};
    char where[32];
    const char *unknown = NULL;

    snprintf(where, sizeof(where), "phase %d: ", idx + 1);
    if (!json_is_object(ph)) {
        return bad(why, cap, "phase %s is not an object like {\"percent\": 10}", where + 6);
    }
    if (!only_keys(ph, keys, &unknown)) {
        snprintf(why, cap, "%sunknown field \"%s\" (a phase has one of count, percent, tag and "
                           "optionally success_pct, error_pct, min_results, approve)", where, unknown);
        return -1;
    }
    *out = *def;
    json_t *c = json_object_get(ph, "count"), *p = json_object_get(ph, "percent"), *t = json_object_get(ph, "tag");
    int kinds = (c != NULL) + (p != NULL) + (t != NULL);
    int64_t n = 0;
    if (kinds != 1) {
        snprintf(why, cap, "%ssay how many devices with exactly one of \"count\": N, \"percent\": P "
                           "or \"tag\": \"NAME[=VALUE]\"", where);
        return -1;
    }
    if (c != NULL || p != NULL) {
        bool pct = p != NULL;
        if (int_field(ph, pct ? "percent" : "count", 1, pct ? 100 : COUNT_MAX, 0, &n, where, why, cap) != 0) {
            return -1;
        }
        snprintf(out->kind, sizeof(out->kind), "%s", pct ? "percent" : "count");
        snprintf(out->value, sizeof(out->value), "%lld", (long long)n);
    } else {
        const char *tag = json_string_value(t);
        if (tag == NULL || tag[0] == '\0' || tag[0] == '=' || strlen(tag) >= sizeof(out->value)) {
            snprintf(why, cap, "%s\"tag\" must be \"NAME\" or \"NAME=VALUE\" (at most %zu characters)",
                     where, sizeof(out->value) - 1);
            return -1;
        }
        snprintf(out->kind, sizeof(out->kind), "tag");
        snprintf(out->value, sizeof(out->value), "%s", tag);
    }
    json_t *ap = json_object_get(ph, "approve");
    if (ap != NULL && !json_is_boolean(ap)) {
        snprintf(why, cap, "%s\"approve\" must be true or false", where);
        return -1;
    }
    out->approve = json_is_true(ap);
    return int_field(ph, "success_pct", 0, 100, def->success_pct, &out->success_pct, where, why, cap) ||
                   int_field(ph, "error_pct", 0, 100, def->error_pct, &out->error_pct, where, why, cap) ||
                   int_field(ph, "min_results", 1, COUNT_MAX, def->min_results, &out->min_results, where,
                             why, cap)
               ? -1
               : 0;
}

static const char *ref_of(json_t *v, char *buf, size_t cap)
{
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < cap) {
        return json_string_value(v);
    }
    return NULL;
}

int rollout_plan_parse(json_t *body, rollout_request_t *out, char *why, size_t cap)
{
    static const char *const keys[] = {"bundle", "tag", "all", "phases", "success_pct", "error_pct",
                                       "min_results", "device_timeout_s", "on_error", "rollback_bundle",
                                       "force_after_s", "seed", "window", NULL};
    store_rollout_new_t *r = &out->plan;
    store_rollout_phase_t def;
    const char *unknown = NULL;

    memset(out, 0, sizeof(*out));
    memset(&def, 0, sizeof(def));
    if (!only_keys(body, keys, &unknown)) {
        return bad(why, cap, "unknown field \"%s\" (see docs/api.md, POST /v1/rollouts)", unknown);
    }
    /* Bundle references become strings kept in the body itself (ids too), which out points into. */
    json_t *jb = json_object_get(body, "bundle"), *jr = json_object_get(body, "rollback_bundle");
    char tmp[80];
    const char *b = ref_of(jb, tmp, sizeof(tmp));
    if (b == NULL) {
        return bad(why, cap, "%s", "the body needs \"bundle\": a bundle id or its SHA-256 (upload it "
                                   "first with POST /v1/bundles)");
    }
    json_object_set_new(body, "bundle", json_string(b));
    out->bundle = json_string_value(json_object_get(body, "bundle"));
    if (jr != NULL) {
        const char *rb = ref_of(jr, tmp, sizeof(tmp));
        if (rb == NULL) {
            return bad(why, cap, "%s", "\"rollback_bundle\" must be a bundle id or its SHA-256");
        }
        json_object_set_new(body, "rollback_bundle", json_string(rb));
        out->rollback_bundle = json_string_value(json_object_get(body, "rollback_bundle"));
    }
    json_t *jt = json_object_get(body, "tag"), *ja = json_object_get(body, "all");
    if ((jt != NULL) + (ja != NULL) != 1 || (ja != NULL && !json_is_true(ja)) ||
        (jt != NULL && (!json_is_string(jt) || json_string_length(jt) == 0 || json_string_length(jt) > 127))) {
        return bad(why, cap, "%s", "say which devices with exactly one of \"tag\": \"NAME\" or "
                                   "\"NAME=VALUE\", \"all\": true (a single device is a deployment)");
    }
    r->target_kind = jt ? "tag" : "all";
    r->target = jt ? json_string_value(jt) : "";
    const char *on_error = json_string_value(json_object_get(body, "on_error"));
    if (json_object_get(body, "on_error") != NULL &&
        (on_error == NULL || (strcmp(on_error, "pause") != 0 && strcmp(on_error, "rollback") != 0))) {
        return bad(why, cap, "%s", "\"on_error\" is \"pause\" (the default) or \"rollback\"");
    }
    r->on_error = on_error ? on_error : "pause";
    json_t *js = json_object_get(body, "seed");
    if (js != NULL && (!json_is_string(js) || json_string_length(js) == 0 || json_string_length(js) > 64)) {
        return bad(why, cap, "%s", "\"seed\" must be a string of 1 to 64 characters");
    }
    r->seed = js ? json_string_value(js) : NULL; /* NULL: the caller uses the bundle's SHA-256 */
    if (int_field(body, "success_pct", 0, 100, ROLLOUT_DEF_SUCCESS_PCT, &def.success_pct, "", why, cap) ||
        int_field(body, "error_pct", 0, 100, ROLLOUT_DEF_ERROR_PCT, &def.error_pct, "", why, cap) ||
        int_field(body, "min_results", 1, COUNT_MAX, ROLLOUT_DEF_MIN_RESULTS, &def.min_results, "", why, cap) ||
        int_field(body, "device_timeout_s", 1, ROLLOUT_TIMEOUT_MAX_S, ROLLOUT_DEF_TIMEOUT_S,
                  &r->device_timeout_s, "", why, cap) ||
        int_field(body, "force_after_s", 0, ROLLOUT_TIMEOUT_MAX_S, 0, &r->force_after_s, "", why, cap)) {
        return -1;
    }
    r->window_from = r->window_to = -1;
    json_t *jw = json_object_get(body, "window");
    if (jw != NULL) {
        const char *from = json_string_value(json_object_get(jw, "from"));
        const char *to = json_string_value(json_object_get(jw, "to"));
        unsigned fh, fm, th, tm;
        char end;
        if (!json_is_object(jw) || json_object_size(jw) != 2 || from == NULL || to == NULL ||
            sscanf(from, "%2u:%2u%c", &fh, &fm, &end) != 2 || sscanf(to, "%2u:%2u%c", &th, &tm, &end) != 2 ||
            fh > 23 || th > 23 || fm > 59 || tm > 59 || fh * 60 + fm == th * 60 + tm) {
            return bad(why, cap, "%s", "\"window\" is {\"from\": \"HH:MM\", \"to\": \"HH:MM\"}: a daily "
                                       "download window in each device's local time (from != to)");
        }
        r->window_from = fh * 60 + fm;
        r->window_to = th * 60 + tm;
    }
    json_t *phases = json_object_get(body, "phases");
    if (!json_is_array(phases) || json_array_size(phases) == 0 ||
        json_array_size(phases) > STORE_ROLLOUT_PHASES) {
        snprintf(why, cap, "\"phases\" must be a list of 1 to %d phases, e.g. [{\"count\": 1}, "
                           "{\"percent\": 10}, {\"percent\": 100}]", STORE_ROLLOUT_PHASES);
        return -1;
    }
    r->nphases = (int)json_array_size(phases);
    for (int i = 0; i < r->nphases; i++) {
        if (parse_phase(json_array_get(phases, (size_t)i), i, &def, &r->phases[i], why, cap) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- phases ----------------------------------------------------------------------------------- */

typedef struct ranked {
    uint64_t rank;
    size_t i;
} ranked_t;

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int by_rank(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;

    if (x->rank != y->rank) {
        return x->rank < y->rank ? -1 : 1;
    }
    return x->i < y->i ? -1 : x->i > y->i;
}

static bool tagged_has(json_t *tagged, const char *id)
{
    size_t lo = 0, hi = json_array_size(tagged);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(json_string_value(json_array_get(tagged, mid)), id);
        if (c == 0) {
            return true;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

int rollout_plan_assign(store_rollout_new_t *plan, size_t n, const char *const *ids,
                        json_t *const *tagged, uint8_t *out_phase)
{
    ranked_t *rk = malloc((n ? n : 1) * sizeof(*rk));

    if (rk == NULL) {
        return -1;
    }
    uint64_t h0 = fnv1a(fnv1a(14695981039346656037ull, plan->seed ? plan->seed : ""), ":");
    for (size_t i = 0; i < n; i++) {
        rk[i] = (ranked_t){fnv1a(h0, ids[i]), i};
        out_phase[i] = UINT8_MAX;
    }
    qsort(rk, n, sizeof(*rk), by_rank);
    for (int p = 0; p < plan->nphases; p++) {
        store_rollout_phase_t *ph = &plan->phases[p];
        bool tag = strcmp(ph->kind, "tag") == 0;
        int64_t want = atoll(ph->value);
        if (strcmp(ph->kind, "percent") == 0) {
            want = (int64_t)((n * (uint64_t)want + 99) / 100);
        }
        ph->devices = 0;
        for (size_t k = 0; k < n && (tag || ph->devices < want); k++) {
            size_t i = rk[k].i;
            if (out_phase[i] != UINT8_MAX || (tag && !tagged_has(tagged[p], ids[i]))) {
                continue;
            }
            out_phase[i] = (uint8_t)p;
            ph->devices++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (out_phase[i] == UINT8_MAX) {
            out_phase[i] = (uint8_t)(plan->nphases - 1);
            plan->phases[plan->nphases - 1].devices++;
        }
    }
    free(rk);
    return 0;
}

/* ---- decisions -------------------------------------------------------------------------------- */

void rollout_view_from_json(json_t *row, rollout_phase_view_t *v)
{
#define I(k) json_integer_value(json_object_get(row, k))
    memset(v, 0, sizeof(*v));
    v->started = json_is_integer(json_object_get(row, "started_ms"));
    v->rows = I("started");
    v->succeeded = I("succeeded");
    v->failed = I("failed");
    v->timed_out = I("timed_out");
    v->inconclusive = I("inconclusive");
    v->superseded = I("superseded");
    v->waiting = I("waiting");
    v->ack_results = I("ack_results");
    v->ack_errors = I("ack_errors");
    v->success_pct = I("success_pct");
    v->error_pct = I("error_pct");
    v->min_results = I("min_results");
    v->approve = json_is_true(json_object_get(row, "approve"));
#undef I
    const char *key;
    json_t *n;
    size_t len = 0;
    json_object_foreach(json_object_get(row, "errors_by_result"), key, n) {
        len += (size_t)snprintf(v->errors + len, len < sizeof(v->errors) ? sizeof(v->errors) - len : 0,
                                "%s%lld %s", len ? ", " : "", (long long)json_integer_value(n), key);
        len = len < sizeof(v->errors) ? len : sizeof(v->errors);
    }
    if (v->timed_out > 0 && len < sizeof(v->errors)) {
        snprintf(v->errors + len, sizeof(v->errors) - len, "%s%lld timed out", len ? ", " : "",
                 (long long)v->timed_out);
    }
}

static int64_t at_least0(int64_t v)
{
    return v < 0 ? 0 : v;
}

rollout_action_t rollout_decide(const char *state, int64_t phase, int nphases,
                                const rollout_phase_view_t *ph, char *why, size_t cap)
{
    bool running = strcmp(state, "running") == 0;

    if (!running && strcmp(state, "awaiting_approval") != 0) {
        return ROLLOUT_NONE;
    }
    /* The guards: every started phase, on the results since the last resume. */
    for (int64_t i = 0; i <= phase && i < nphases; i++) {
        const rollout_phase_view_t *v = &ph[i];
        int64_t errors = at_least0(v->failed + v->timed_out - v->ack_errors);
        int64_t results = at_least0(v->succeeded + v->failed + v->timed_out - v->ack_results);
        if (v->started && results > 0 && results >= v->min_results && errors * 100 > v->error_pct * results) {
            snprintf(why, cap, "phase %lld: %lld of %lld results are errors (%lld%% > %lld%%): %s",
                     (long long)i + 1, (long long)errors, (long long)results,
                     (long long)(errors * 100 / results), (long long)v->error_pct, v->errors);
            return ROLLOUT_PAUSE;
        }
    }
    if (!running) {
        return ROLLOUT_NONE; /* waiting for an operator */
    }
    if (phase < 0) {
        if (ph[0].approve) {
            snprintf(why, cap, "phase 1 waits for approval");
            return ROLLOUT_AWAIT;
        }
        snprintf(why, cap, "phase 1 started");
        return ROLLOUT_START_NEXT;
    }
    const rollout_phase_view_t *v = &ph[phase];
    int64_t eligible = v->rows - v->superseded - v->inconclusive;
    bool met = eligible <= 0 ? v->waiting == 0 : v->succeeded * 100 >= v->success_pct * eligible;
    if (!met) {
        return ROLLOUT_NONE;
    }
    int n = snprintf(why, cap, "phase %lld: %lld of %lld succeeded (%lld%% needed)", (long long)phase + 1,
                     (long long)v->succeeded, (long long)at_least0(eligible), (long long)v->success_pct);
    size_t len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    if (phase + 1 >= nphases) {
        snprintf(why + len, cap - len, "; the last phase: rollout complete");
        return ROLLOUT_COMPLETE;
    }
    if (ph[phase + 1].approve) {
        snprintf(why + len, cap - len, "; phase %lld waits for approval", (long long)phase + 2);
        return ROLLOUT_AWAIT;
    }
    snprintf(why + len, cap - len, "; phase %lld started", (long long)phase + 2);
    return ROLLOUT_START_NEXT;
}

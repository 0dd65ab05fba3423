/* Rollouts: creation, operators' moves and the engine thread (rollout.h). */
#include "rollout.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devtype.h"
#include "kd_log.h"
#include "kd_why.h"
#include "kd_time.h"
#include "rollout_plan.h"

#define ROLLOUTS_MAX 1000      /* running rollouts looked at per pass */

struct rollouts {
    store_t *store;
    ota_t *ota;
    pthread_t thread;
    atomic_bool stopping;
};

static json_t *bundle_by_ref(store_t *s, const char *ref)
{
    bool digits = ref[0] != '\0' && strspn(ref, "0123456789") == strlen(ref) && strlen(ref) < 19;

    return digits ? s->ops->bundle_get(s, atoll(ref), NULL) : s->ops->bundle_get(s, 0, ref);
}

/* Hand what a move created (a phase's deployment, rollbacks, released rows) to admission. */
static void started(rollouts_t *r, json_t *deployments)
{
    size_t i;
    json_t *d;

    json_array_foreach(deployments, i, d) {
        ota_deployment_started(r->ota, json_integer_value(d));
    }
    json_decref(deployments);
}

/* Apply m: 1 moved, 0 someone moved the rollout first, -1 the store failed (logged). */
static int move(rollouts_t *r, const store_rollout_move_t *m, const char *from)
{
    bool moved = false;
    json_t *created = NULL;

    if (r->store->ops->rollout_move(r->store, m, kd_wall_ms(), &moved, &created) != STORE_OK) {
        KD_ERROR("rollout %lld: the move to %s could not be stored; it is decided again", (long long)m->id,
                 m->to_state);
        return -1;
    }
    if (moved) {
        KD_INFO("rollout %lld: %s -> %s (%s): %s", (long long)m->id, from, m->to_state, m->actor, m->reason);
        started(r, created);
    }
    return moved ? 1 : 0;
}

/* ---- the engine ------------------------------------------------------------------------------- */

/* Decide for one rollout as it is now; moves it when its counts say so. */
static void decide_one(rollouts_t *r, int64_t id)
{
    json_t *ro = r->store->ops->rollout_get(r->store, id, kd_wall_ms());
    if (ro == NULL) {
        return;
    }
    json_t *phases = json_object_get(ro, "phases");
    int n = (int)json_array_size(phases);
    rollout_phase_view_t views[STORE_ROLLOUT_PHASES];
    for (int i = 0; i < n && i < STORE_ROLLOUT_PHASES; i++) {
        rollout_view_from_json(json_array_get(phases, (size_t)i), &views[i]);
    }
    const char *state = json_string_value(json_object_get(ro, "state"));
    int64_t phase = json_integer_value(json_object_get(ro, "phase"));
    char why[400];
    rollout_action_t a = n > 0 ? rollout_decide(state, phase, n, views, why, sizeof(why)) : ROLLOUT_NONE;
    if (a != ROLLOUT_NONE) {
        bool rollback = strcmp(json_string_value(json_object_get(ro, "on_error")), "rollback") == 0;
        store_rollout_move_t m = {
            .id = id,
            .rev = json_integer_value(json_object_get(ro, "rev")),
            .to_state = a == ROLLOUT_PAUSE ? "paused" : a == ROLLOUT_AWAIT ? "awaiting_approval"
                        : a == ROLLOUT_COMPLETE ? "completed" : "running",
            .start_phase = a == ROLLOUT_START_NEXT ? phase + 1 : -1,
            .actor = "keeld",
            .reason = why,
            .hold = a == ROLLOUT_PAUSE,
            .rollback = a == ROLLOUT_PAUSE && rollback,
        };
        move(r, &m, state);
    }
    json_decref(ro);
}

void rollouts_decide_all(rollouts_t *r)
{
    json_t *list = r->store->ops->rollouts_list(r->store, true, ROLLOUTS_MAX);
    size_t i;
    json_t *ro;

    json_array_foreach(list, i, ro) {
        if (atomic_load(&r->stopping)) {
            break;
        }
        int64_t id = json_integer_value(json_object_get(ro, "id"));
        int released = 0;
        if (json_integer_value(json_object_get(ro, "window_from")) >= 0 &&
            r->store->ops->rollout_window(r->store, id, kd_wall_ms(), &released) == STORE_OK && released > 0) {
            KD_INFO("rollout %lld: %d devices entered their download window", (long long)id, released);
            ota_admission_kick(r->ota);
        }
        decide_one(r, id);
    }
    json_decref(list);
}

static void *run(void *arg)
{
    rollouts_t *r = arg;

    while (!atomic_load(&r->stopping)) {
        uint64_t seen = ota_changes(r->ota);
        int64_t t0 = kd_mono_us();
        rollouts_decide_all(r);
        /*
         * A pass holds the store for its aggregates (~0.15 s at 100,000 rows): under a storm of
         * statuses it would run back to back and starve ingest. So the next pass waits as long as
         * this one took, at most a tick (the engine takes at most half of the store; a longer gap
         * pushed the decision at 100,000 devices past a second), then for a deployment change (a
         * status, an offer) or the tick (timeouts).
         */
        int64_t gap_ms = (kd_mono_us() - t0) / 1000;
        gap_ms = gap_ms < ROLLOUT_TICK_MS ? gap_ms : ROLLOUT_TICK_MS;
        while (gap_ms > 0 && !atomic_load(&r->stopping)) {
            int64_t slice = gap_ms < ROLLOUT_TICK_MS ? gap_ms : ROLLOUT_TICK_MS;
            struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            gap_ms -= slice;
        }
        ota_wait(r->ota, seen, ROLLOUT_TICK_MS);
    }
    return NULL;
}

rollouts_t *rollouts_start(store_t *store, ota_t *ota)
{
    rollouts_t *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->store = store;
    r->ota = ota;
    atomic_init(&r->stopping, false);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void rollouts_stop(rollouts_t *r)
{
    if (r == NULL) {
        return;
    }
    atomic_store(&r->stopping, true);
    pthread_join(r->thread, NULL);
    free(r);
}

/* ---- creating --------------------------------------------------------------------------------- */

/* The target's devices (n, ids pointing into *devs) and their phases; a status on failure. */
static unsigned assign(rollouts_t *r, store_rollout_new_t *plan, json_t **devs, const char ***ids,
                       uint8_t **phase, char *why, size_t cap)
{
    json_t *tagged[STORE_ROLLOUT_PHASES] = {0};
    unsigned status = 0;

    if (r->store->ops->target_devices(r->store, plan->target_kind, plan->target, devs) != STORE_OK) {
        return kd_refuse(why, cap, 503, "the database failed (see keeld's log); nothing was changed");
    }
    size_t n = json_array_size(*devs);
    if (n == 0) {
        return kd_refuse(why, cap, 409, "no device to roll out to: %s", strcmp(plan->target_kind, "tag") == 0
                          ? "no device has that tag (set tags with PATCH /v1/devices/{id})"
                          : "none has connected yet");
    }
    *ids = malloc(n * sizeof(**ids));
    *phase = malloc(n);
    for (int p = 0; p < plan->nphases && status == 0; p++) {
        if (strcmp(plan->phases[p].kind, "tag") == 0 &&
            r->store->ops->devices_tagged(r->store, plan->phases[p].value, &tagged[p]) != STORE_OK) {
            status = kd_refuse(why, cap, 503, "the database failed (see keeld's log); nothing was changed");
        }
    }
    if (status == 0 && (*ids == NULL || *phase == NULL)) {
        status = kd_refuse(why, cap, 503, "keeld is out of memory");
    }
    if (status == 0) {
        for (size_t i = 0; i < n; i++) {
            (*ids)[i] = json_string_value(json_object_get(json_array_get(*devs, i), "id"));
        }
        plan->ndevices = n;
        plan->devices = *ids;
        plan->device_phase = *phase;
        if (rollout_plan_assign(plan, n, *ids, tagged, *phase) != 0) {
            status = kd_refuse(why, cap, 503, "keeld is out of memory");
        }
    }
    for (int p = 0; p < STORE_ROLLOUT_PHASES; p++) {
        json_decref(tagged[p]);
    }
    return status;
}

/* "operator NAME" (the token's name) as the actor of an operator's transition. */
static void actor_of(const char *who, char *out, size_t cap)
{
    snprintf(out, cap, "operator%s%s", who && who[0] ? " " : "", who ? who : "");
}

unsigned rollouts_create(rollouts_t *r, json_t *body, const char *who, json_t **out, char *why, size_t cap)
{
    rollout_request_t rq;
    json_t *bundle = NULL, *back = NULL, *devs = NULL;
    const char **ids = NULL;
    uint8_t *phase = NULL;
    unsigned status = 0;

    *out = NULL;
    if (rollout_plan_parse(body, &rq, why, cap) != 0) {
        return 400;
    }
    store_rollout_new_t *plan = &rq.plan;
    if ((bundle = bundle_by_ref(r->store, rq.bundle)) == NULL) {
        status = kd_refuse(why, cap, 404, "no bundle '%s'; upload it first (POST /v1/bundles, keel bundle "
                           "upload) or list them with GET /v1/bundles", rq.bundle);
    } else if (rq.rollback_bundle != NULL && (back = bundle_by_ref(r->store, rq.rollback_bundle)) == NULL) {
        status = kd_refuse(why, cap, 404, "no rollback bundle '%s'; list them with GET /v1/bundles",
                           rq.rollback_bundle);
    } else {
        status = devtype_refuse(r->store, json_integer_value(json_object_get(bundle, "device_type")),
                                plan->target_kind, plan->target, why, cap);
    }
    if (status == 0) {
        plan->bundle_id = json_integer_value(json_object_get(bundle, "id"));
        plan->rollback_bundle_id = back ? json_integer_value(json_object_get(back, "id")) : 0;
        if (plan->seed == NULL) {
            plan->seed = json_string_value(json_object_get(bundle, "sha256"));
        }
        status = assign(r, plan, &devs, &ids, &phase, why, cap);
    }
    int64_t id = 0;
    char actor[80];
    actor_of(who, actor, sizeof(actor));
    plan->actor = actor;
    if (status == 0 && r->store->ops->rollout_create(r->store, plan, kd_wall_ms(), &id) != STORE_OK) {
        status = kd_refuse(why, cap, 503, "the database failed (see keeld's log); nothing was changed");
    }
    if (status == 0) {
        KD_INFO("rollout %lld created: bundle %lld to %zu devices in %d phases", (long long)id,
                (long long)plan->bundle_id, plan->ndevices, plan->nphases);
        decide_one(r, id); /* phase 1 starts now (or waits for its approval) */
        *out = r->store->ops->rollout_get(r->store, id, kd_wall_ms());
        status = *out ? 201 : kd_refuse(why, cap, 503, "the database failed (see keeld's log)");
    }
    free(ids);
    free(phase);
    json_decref(devs);
    json_decref(bundle);
    json_decref(back);
    return status;
}

/* ---- operators -------------------------------------------------------------------------------- */

unsigned rollouts_operate(rollouts_t *r, int64_t id, const char *op, const char *reason, const char *who,
                          json_t **out, char *why, size_t cap)
{
    char actor[80];
    actor_of(who, actor, sizeof(actor));
    *out = NULL;
    json_t *ro = r->store->ops->rollout_get(r->store, id, kd_wall_ms());
    if (ro == NULL) {
        return kd_refuse(why, cap, 404, "no rollout %lld; list them with GET /v1/rollouts", (long long)id);
    }
    const char *state = json_string_value(json_object_get(ro, "state"));
    int64_t phase = json_integer_value(json_object_get(ro, "phase"));
    int nphases = (int)json_array_size(json_object_get(ro, "phases"));
    bool running = strcmp(state, "running") == 0, waiting = strcmp(state, "awaiting_approval") == 0;
    bool paused = strcmp(state, "paused") == 0;
    char text[400];
    store_rollout_move_t m = {.id = id, .rev = json_integer_value(json_object_get(ro, "rev")),
                              .start_phase = -1, .actor = actor, .reason = text};
    const char *allowed = NULL;
    if (strcmp(op, "pause") == 0) {
        m.to_state = "paused";
        m.hold = true;
        allowed = running || waiting ? NULL : "running or awaiting approval";
    } else if (strcmp(op, "resume") == 0) {
        m.to_state = "running";
        m.release = m.ack = true;
        allowed = paused ? NULL : "paused";
    } else if (strcmp(op, "approve") == 0) {
        m.to_state = "running";
        m.start_phase = phase + 1;
        allowed = waiting ? NULL : "awaiting approval";
    } else if (strcmp(op, "abort") == 0) {
        m.to_state = "aborted";
        m.end = true;
        allowed = running || waiting || paused ? NULL : "running, awaiting approval or paused";
    } else {
        m.to_state = "paused";
        m.hold = m.rollback = true;
        allowed = running || waiting || paused ? NULL : "running, awaiting approval or paused";
    }
    unsigned status = 200;
    if (allowed != NULL) {
        status = kd_refuse(why, cap, 409, "rollout %lld is %s; %s needs it %s", (long long)id, state, op, allowed);
    } else {
        if (m.start_phase >= nphases) {
            m.start_phase = -1;
        }
        const char *verb = strcmp(op, "approve") == 0 ? "approved" : strcmp(op, "abort") == 0 ? "aborted"
                           : strcmp(op, "rollback") == 0 ? "rolled back" : strcmp(op, "pause") == 0 ? "paused"
                           : "resumed";
        size_t len = (size_t)snprintf(text, sizeof(text), "%s by an operator", verb);
        if (m.start_phase >= 0) {
            len += (size_t)snprintf(text + len, sizeof(text) - len, ": phase %lld started",
                                    (long long)m.start_phase + 1);
        }
        if (reason != NULL && reason[0] != '\0' && len < sizeof(text)) {
            snprintf(text + len, sizeof(text) - len, " (%s)", reason);
        }
        int rc = move(r, &m, state);
        if (rc < 0) {
            status = kd_refuse(why, cap, 503, "the database failed (see keeld's log); nothing was changed");
        } else if (rc == 0) {
            status = kd_refuse(why, cap, 409, "rollout %lld changed while this request was handled; read it "
                               "again and retry", (long long)id);
        }
    }
    json_decref(ro);
    if (status == 200 && (*out = r->store->ops->rollout_get(r->store, id, kd_wall_ms())) == NULL) {
        status = kd_refuse(why, cap, 503, "the database failed (see keeld's log)");
    }
    return status;
}

/*
 * Rollouts without I/O (docs/rollouts.md): reading a rollout request, splitting its devices into
 * phases, and the decision the engine takes from a phase's counts. rollout.c stores and acts;
 * tests/server/rollout_plan_test.c checks these on their own.
 */
#ifndef KEEL_SERVER_KEELD_ROLLOUT_PLAN_H
#define KEEL_SERVER_KEELD_ROLLOUT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"

#define ROLLOUT_DEF_SUCCESS_PCT 90
#define ROLLOUT_DEF_ERROR_PCT 10
#define ROLLOUT_DEF_MIN_RESULTS 1
#define ROLLOUT_DEF_TIMEOUT_S 3600
#define ROLLOUT_TIMEOUT_MAX_S (30 * 24 * 3600)

/* What a POST /v1/rollouts body asks for, checked. Strings point into the body (keep it alive). */
typedef struct rollout_request {
    store_rollout_new_t plan;        /* phases and options; devices not yet assigned */
    const char *bundle;              /* id or SHA-256, as given */
    const char *rollback_bundle;     /* NULL: each device's previous bundle */
} rollout_request_t;

/* 0, or -1 with the reason (a 400) in why. */
int rollout_plan_parse(json_t *body, rollout_request_t *out, char *why, size_t cap);

/*
 * Assign each of the n target devices (ids sorted or not) a phase: devices are ranked by
 * FNV-1a-64 of "seed:id"; each phase in order takes, of the devices not taken yet, those with
 * its tag (tagged[p]: sorted ids with that tag, NULL for count and percent phases) or the first
 * count / ceil(percent of n) of them by rank; the last phase also takes every device left.
 * Fills out_phase[n] and plan->phases[].devices. 0, or -1 when out of memory.
 */
int rollout_plan_assign(store_rollout_new_t *plan, size_t n, const char *const *ids,
                        json_t *const *tagged, uint8_t *out_phase);

/* One phase as the engine sees it (store rollout_get's "phases" rows). */
typedef struct rollout_phase_view {
    bool started;
    int64_t rows, succeeded, failed, timed_out, inconclusive, superseded, waiting;
    int64_t ack_results, ack_errors;
    int64_t success_pct, error_pct, min_results;
    bool approve;
    char errors[160];            /* "2 update_failed, 1 timed out" (for the reason) */
} rollout_phase_view_t;

typedef enum rollout_action {
    ROLLOUT_NONE,                /* nothing to do now */
    ROLLOUT_PAUSE,               /* an error threshold is crossed */
    ROLLOUT_START_NEXT,          /* the current phase met its gate: start the next */
    ROLLOUT_AWAIT,               /* ... but the next one needs an operator's approval */
    ROLLOUT_COMPLETE,            /* the last phase met its gate */
} rollout_action_t;

/* Fill a view from one "phases" row of rollout_get. */
void rollout_view_from_json(json_t *row, rollout_phase_view_t *v);

/*
 * The decision for a rollout in state (running / awaiting_approval; anything else: NONE) whose
 * phase is the last one started (-1: none yet), with its phases' views. The reason for the
 * transition goes to why.
 */
rollout_action_t rollout_decide(const char *state, int64_t phase, int nphases,
                                const rollout_phase_view_t *ph, char *why, size_t cap);

#endif /* KEEL_SERVER_KEELD_ROLLOUT_PLAN_H */

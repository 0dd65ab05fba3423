/*
 * Rollouts (docs/rollouts.md): a deployment in phases that stops itself. rollout.c creates them,
 * applies the operators' pause / resume / approve / abort / rollback, and runs the engine thread
 * that watches every running rollout's counts (woken by every deployment change, and at least
 * every ROLLOUT_TICK_MS for timeouts) and moves it on: next phase, waiting for approval, paused
 * (an error threshold crossed, and the previous bundle deployed if asked), complete. All state is
 * in the store; a move applies only if nobody moved the rollout since it was read, so several
 * keeld instances may run the engine on one database.
 */
#ifndef KEEL_SERVER_KEELD_ROLLOUT_H
#define KEEL_SERVER_KEELD_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ota.h"
#include "store.h"

#define ROLLOUT_TICK_MS 250

typedef struct rollouts rollouts_t;

/* NULL when the thread cannot start. */
rollouts_t *rollouts_start(store_t *store, ota_t *ota);
void rollouts_stop(rollouts_t *r);

/* POST /v1/rollouts: an HTTP status, and *out (the rollout, 201) or the reason in why. who: the
 * token's name, recorded as the actor ("operator NAME") of the transitions the request makes. */
unsigned rollouts_create(rollouts_t *r, json_t *body, const char *who, json_t **out, char *why,
                         size_t cap);
/* POST /v1/rollouts/{id}/{op}, op: pause, resume, approve, abort, rollback; reason may be NULL. */
unsigned rollouts_operate(rollouts_t *r, int64_t id, const char *op, const char *reason, const char *who,
                          json_t **out, char *why, size_t cap);
/* One pass of the engine over every running rollout (the thread's work; the bench calls it). */
void rollouts_decide_all(rollouts_t *r);

#endif /* KEEL_SERVER_KEELD_ROLLOUT_H */

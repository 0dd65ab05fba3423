/*
 * The REST endpoints of rollouts (docs/api.md "Rollouts"), called by api.c's router for every
 * path under /v1/rollouts (the request is authenticated and its body collected already):
 *   GET  /v1/rollouts[?limit=N]                 newest first
 *   POST /v1/rollouts                           create (201)
 *   GET  /v1/rollouts/{id}[?after=REV&wait=S]   one, with phases and transitions (a long poll)
 *   POST /v1/rollouts/{id}/{pause,resume,approve,abort,rollback}   [{"reason": "..."}]
 */
#ifndef KEEL_SERVER_KEELD_ROLLOUT_API_H
#define KEEL_SERVER_KEELD_ROLLOUT_API_H

#include <stdatomic.h>
#include <stddef.h>

#include <jansson.h>
#include <microhttpd.h>

#include "ota.h"
#include "rollout.h"
#include "store.h"

/* The HTTP status and, in *out, the body (an {"error": ...} object for an error). r NULL: 503.
 * who: the name of the request's token (recorded with the transitions it makes). */
unsigned rollout_api(rollouts_t *r, store_t *store, ota_t *ota, struct MHD_Connection *c, const char *url,
                     const char *method, const char *body, size_t len, const char *who,
                     const atomic_bool *stopping, json_t **out);

#endif /* KEEL_SERVER_KEELD_ROLLOUT_API_H */

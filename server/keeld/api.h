/*
 * keeld's REST/JSON API over libmicrohttpd (docs/api.md is the reference). One thread per
 * connection, so a server-sent-events stream can wait for new log entries without holding up
 * other requests. Every endpoint but GET /v1/health needs "Authorization: Bearer <token>".
 * A write is answered only after the store committed it.
 */
#ifndef KEEL_SERVER_KEELD_API_H
#define KEEL_SERVER_KEELD_API_H

#include <stddef.h>

#include "admit.h"
#include "config.h"
#include "mqtt.h"
#include "notify.h"
#include "ota.h"
#include "rollout.h"
#include "store.h"

typedef struct api api_t;

/* Listen on cfg->http_addr:http_port. NULL with a message in err; *out_port is the bound port. */
api_t *api_start(const kd_config_t *cfg, store_t *store, mq_t *mq, ota_t *ota, admit_t *admit,
                 kd_notify_t *logs_notify, unsigned *out_port, char *err, size_t errcap);
/* Stop listening, end live streams (within about a second) and join every connection thread. */
void api_stop(api_t *api);

/* ops: the rollout engine behind /v1/rollouts (NULL: those answer 503). */
void api_set_rollouts(api_t *api, rollouts_t *r);
/* ops: the OpenAPI description (docs/openapi.yaml) served at GET /v1/openapi.yaml, no token. */
void api_set_openapi(api_t *api, const unsigned char *doc, size_t len);

#endif /* KEEL_SERVER_KEELD_API_H */

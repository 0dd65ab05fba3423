/*
 * GET /metrics: keeld's counters and gauges in the Prometheus text format (version 0.0.4),
 * docs/api.md "Metrics" lists them. Counters are since keeld started; gauges are read at the
 * request (fleet-wide ones from the store, so every keeld instance reports the same).
 */
#ifndef KEEL_SERVER_KEELD_METRICS_H
#define KEEL_SERVER_KEELD_METRICS_H

#include <stddef.h>

#include "admit.h"
#include "mqtt.h"
#include "ota.h"
#include "store.h"

/* The exposition text (malloc'd, *out_len bytes), or NULL when out of memory. */
char *metrics_render(store_t *store, mq_t *mq, ota_t *ota, admit_t *admit, size_t *out_len);

#endif /* KEEL_SERVER_KEELD_METRICS_H */

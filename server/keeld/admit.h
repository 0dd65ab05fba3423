/*
 * Download admission (docs/protocol.md P3, docs/fleet-service.md "Download admission"): creating
 * a deployment offers nothing by itself; this thread offers the bundle to the targeted devices
 * that are online, oldest deployment first, at most --offer-rate offers a second and only while
 * fewer than --max-downloads devices are downloading. So a 10,000-device deployment is created at
 * once and fed at the rate the server can serve, and a device not yet offered does nothing.
 * A device that is offline when its turn comes is offered after its next hello.
 */
#ifndef KEEL_SERVER_KEELD_ADMIT_H
#define KEEL_SERVER_KEELD_ADMIT_H

#include <stdint.h>

#include "config.h"
#include "ota.h"
#include "store.h"

typedef struct admit admit_t;

typedef struct admit_stats {
    uint64_t offered;          /* offers (and settles) made by admission since start */
    int64_t pending;           /* rows waiting for their turn (last look) */
    int64_t downloading;       /* devices downloading (last look) */
} admit_stats_t;

/* NULL when the thread cannot start. */
admit_t *admit_start(const kd_config_t *cfg, store_t *store, ota_t *ota);
void admit_stop(admit_t *a);
void admit_get_stats(admit_t *a, admit_stats_t *out);

#endif /* KEEL_SERVER_KEELD_ADMIT_H */

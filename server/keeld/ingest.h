/*
 * keeld's ingest queue: device messages leave the MQTT network thread here and are handled by one
 * worker thread, in batches (docs/fleet-service.md "Ingest").
 *
 *   MQTT thread   parse the topic, copy the payload, push. When the queue is full the push waits
 *                 for room: the network thread stops reading, TCP pushes back, and the broker
 *                 queues for keeld's persistent session (sized for it) instead of keeld dropping
 *                 anything: back-pressure, never a silent drop.
 *   worker        takes up to batch_max queued messages at once and hands them to the batch
 *                 function (mqtt.c: one store transaction for all of them, acks after its commit).
 *
 * One worker keeps each device's messages in arrival order (a final status before the hello that
 * follows it). Safe to push from any thread.
 */
#ifndef KEEL_SERVER_KEELD_INGEST_H
#define KEEL_SERVER_KEELD_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/identity.h"
#include "keel/kproto.h"

typedef struct ingest_msg {
    kproto_topic_t t;
    char device[KIDENT_ID_MAX + 1];
    char channel[KPROTO_CHANNEL_MAX + 1];
    int64_t queued_us;         /* monotonic, when it was pushed (queue lag) */
    size_t len;
    uint8_t *payload;          /* owned by the queue; valid during the batch call */
} ingest_msg_t;

typedef void (*ingest_batch_fn)(void *ctx, ingest_msg_t *msgs, size_t n);

typedef struct ingest ingest_t;

/* Counters for GET /metrics. */
typedef struct ingest_stats {
    uint64_t pushed, handled, batches;
    uint64_t full_waits;       /* pushes that had to wait for room (back-pressure) */
    uint64_t full_wait_us;     /* time the network thread spent waiting for room */
    size_t depth, capacity;
    int64_t oldest_age_us;     /* age of the oldest queued message (0 when empty) */
    int64_t last_lag_us;       /* queue time of the last message handled */
} ingest_stats_t;

/* NULL when out of memory or the thread cannot start. */
ingest_t *ingest_start(size_t capacity, size_t batch_max, ingest_batch_fn fn, void *ctx);

/* Queue one message (payload copied). Waits while the queue is full; false when stopping or out
 * of memory (logged). */
bool ingest_push(ingest_t *q, kproto_topic_t t, const char *device, const char *channel,
                 const void *payload, size_t len);

/* Handle everything still queued, then stop the worker and free the queue. */
void ingest_stop(ingest_t *q);

void ingest_get_stats(ingest_t *q, ingest_stats_t *out);

int64_t ingest_now_us(void);

#endif /* KEEL_SERVER_KEELD_INGEST_H */

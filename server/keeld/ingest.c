/* keeld ingest queue: bounded ring, one worker, batches (ingest.h). */
#include "ingest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_log.h"
#include "kd_time.h"

struct ingest {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    ingest_msg_t *ring;
    size_t cap, head, len, batch_max;
    bool stopping;
    ingest_batch_fn fn;
    void *ctx;
    pthread_t worker;
    ingest_stats_t st;
};

int64_t ingest_now_us(void)
{
    return kd_mono_us();
}

static void *worker(void *arg)
{
    ingest_t *q = arg;
    ingest_msg_t *batch = calloc(q->batch_max, sizeof(*batch));

    if (batch == NULL) {
        KD_ERROR("ingest: out of memory for the worker's batch");
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (q->len == 0 && !q->stopping) {
            pthread_cond_wait(&q->not_empty, &q->lock);
        }
        if (q->len == 0 && q->stopping) {
            pthread_mutex_unlock(&q->lock);
            break;
        }
        size_t n = 0;
        while (n < q->batch_max && q->len > 0) {
            batch[n++] = q->ring[q->head];
            q->head = (q->head + 1) % q->cap;
            q->len--;
        }
        pthread_cond_broadcast(&q->not_full);
        pthread_mutex_unlock(&q->lock);

        int64_t lag = ingest_now_us() - batch[n - 1].queued_us;
        q->fn(q->ctx, batch, n);
        for (size_t i = 0; i < n; i++) {
            free(batch[i].payload);
        }
        pthread_mutex_lock(&q->lock);
        q->st.handled += n;
        q->st.batches++;
        q->st.last_lag_us = lag;
        pthread_mutex_unlock(&q->lock);
    }
    free(batch);
    return NULL;
}

ingest_t *ingest_start(size_t capacity, size_t batch_max, ingest_batch_fn fn, void *ctx)
{
    ingest_t *q = calloc(1, sizeof(*q));

    if (q == NULL || (q->ring = calloc(capacity, sizeof(*q->ring))) == NULL) {
        free(q);
        return NULL;
    }
    q->cap = capacity;
    q->batch_max = batch_max;
    q->fn = fn;
    q->ctx = ctx;
    q->st.capacity = capacity;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    if (pthread_create(&q->worker, NULL, worker, q) != 0) {
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->not_empty);
        pthread_cond_destroy(&q->not_full);
        free(q->ring);
        free(q);
        return NULL;
    }
    return q;
}

bool ingest_push(ingest_t *q, kproto_topic_t t, const char *device, const char *channel,
                 const void *payload, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);

    if (copy == NULL) {
        KD_ERROR("ingest: out of memory; a %zu-byte message from '%s' is dropped", len, device);
        return false;
    }
    memcpy(copy, payload, len);
    pthread_mutex_lock(&q->lock);
    if (q->len == q->cap && !q->stopping) {
        /* Full: wait for the worker (the caller, the network thread, stops reading meanwhile). */
        int64_t t0 = ingest_now_us();
        q->st.full_waits++;
        if (q->st.full_waits == 1 || q->st.full_waits % 1000 == 0) {
            KD_WARN("ingest queue full (%zu messages): reading from the broker paused until the "
                    "database catches up (%llu times so far)", q->cap,
                    (unsigned long long)q->st.full_waits);
        }
        while (q->len == q->cap && !q->stopping) {
            pthread_cond_wait(&q->not_full, &q->lock);
        }
        q->st.full_wait_us += (uint64_t)(ingest_now_us() - t0);
    }
    if (q->stopping) {
        pthread_mutex_unlock(&q->lock);
        free(copy);
        return false;
    }
    ingest_msg_t *m = &q->ring[(q->head + q->len) % q->cap];
    m->t = t;
    snprintf(m->device, sizeof(m->device), "%s", device);
    snprintf(m->channel, sizeof(m->channel), "%s", channel ? channel : "");
    m->queued_us = ingest_now_us();
    m->len = len;
    m->payload = copy;
    q->len++;
    q->st.pushed++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
    return true;
}

void ingest_stop(ingest_t *q)
{
    if (q == NULL) {
        return;
    }
    pthread_mutex_lock(&q->lock);
    q->stopping = true; /* the worker still drains what is queued */
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->worker, NULL);
    for (size_t i = 0; i < q->len; i++) {
        free(q->ring[(q->head + i) % q->cap].payload);
    }
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q->ring);
    free(q);
}

void ingest_get_stats(ingest_t *q, ingest_stats_t *out)
{
    pthread_mutex_lock(&q->lock);
    *out = q->st;
    out->depth = q->len;
    out->oldest_age_us = q->len ? ingest_now_us() - q->ring[q->head].queued_us : 0;
    pthread_mutex_unlock(&q->lock);
}

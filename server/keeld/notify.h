/*
 * A generation counter with a condition variable: writers bump it after committing something new
 * (log entries), followers (SSE streams) wait for it to move, with a bound, then read the store.
 * Waking is only a hint: followers always read the store, so a missed wake-up costs one timeout,
 * and entries written by another keeld instance are picked up at the next timeout.
 */
#ifndef KEEL_SERVER_KEELD_NOTIFY_H
#define KEEL_SERVER_KEELD_NOTIFY_H

#include <pthread.h>
#include <stdint.h>

typedef struct kd_notify {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t gen;
} kd_notify_t;

void kd_notify_init(kd_notify_t *n);
void kd_notify_destroy(kd_notify_t *n);
void kd_notify_bump(kd_notify_t *n);
uint64_t kd_notify_gen(kd_notify_t *n);
/* Wait until the generation differs from seen or timeout_ms passes; returns the generation. */
uint64_t kd_notify_wait(kd_notify_t *n, uint64_t seen, int timeout_ms);

#endif /* KEEL_SERVER_KEELD_NOTIFY_H */

/* Generation counter + condition variable for live followers. */
#include <time.h>

#include "notify.h"

void kd_notify_init(kd_notify_t *n)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&n->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cond, &ca);
    pthread_condattr_destroy(&ca);
    n->gen = 0;
}

void kd_notify_destroy(kd_notify_t *n)
{
    pthread_cond_destroy(&n->cond);
    pthread_mutex_destroy(&n->lock);
}

void kd_notify_bump(kd_notify_t *n)
{
    pthread_mutex_lock(&n->lock);
    n->gen++;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

uint64_t kd_notify_gen(kd_notify_t *n)
{
    pthread_mutex_lock(&n->lock);
    uint64_t g = n->gen;
    pthread_mutex_unlock(&n->lock);
    return g;
}

uint64_t kd_notify_wait(kd_notify_t *n, uint64_t seen, int timeout_ms)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&n->lock);
    while (n->gen == seen) {
        if (pthread_cond_timedwait(&n->cond, &n->lock, &until) != 0) {
            break; /* timed out (or interrupted): the caller re-reads the store anyway */
        }
    }
    uint64_t g = n->gen;
    pthread_mutex_unlock(&n->lock);
    return g;
}

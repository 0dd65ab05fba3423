/*
 * The fetch back-off of a downloading device (docs/protocol.md "The fleet rules", P3): a request
 * not answered within the current timeout is asked again, and the timeout doubles (x2, capped at
 * KBACKOFF_MAX_MS); each wait is jittered by +-25 % so a fleet that lost its server does not ask
 * again in step; any chunk received resets it to KBACKOFF_FIRST_MS. Pure arithmetic (the caller
 * supplies the random numbers and the clock), shared by the microvisor and the simulators.
 */
#ifndef KEEL_BACKOFF_H
#define KEEL_BACKOFF_H

#include <stdint.h>

#define KBACKOFF_FIRST_MS 2000u   /* the first timeout */
#define KBACKOFF_MAX_MS 60000u    /* the longest (before jitter) */
#define KBACKOFF_WINDOW 4u        /* fetch requests in flight at most */

typedef struct kbackoff {
    uint32_t base_ms;             /* the current timeout before jitter; 0 = not initialised */
} kbackoff_t;

/* Back to the first timeout (a chunk arrived, or a new download). */
void kbackoff_reset(kbackoff_t *b);

/* A timeout expired: the next one is twice as long (at most KBACKOFF_MAX_MS). */
void kbackoff_grow(kbackoff_t *b);

/* The wait for a request sent now: base +-25 %, picked by rnd (any 32-bit random number). */
uint32_t kbackoff_wait(const kbackoff_t *b, uint32_t rnd);

#endif /* KEEL_BACKOFF_H */

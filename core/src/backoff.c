/* Fetch back-off (keel/backoff.h). */
#include "keel/backoff.h"

void kbackoff_reset(kbackoff_t *b)
{
    b->base_ms = KBACKOFF_FIRST_MS;
}

void kbackoff_grow(kbackoff_t *b)
{
    if (b->base_ms < KBACKOFF_FIRST_MS) {
        b->base_ms = KBACKOFF_FIRST_MS;
    }
    b->base_ms = b->base_ms >= KBACKOFF_MAX_MS / 2u ? KBACKOFF_MAX_MS : b->base_ms * 2u;
}

uint32_t kbackoff_wait(const kbackoff_t *b, uint32_t rnd)
{
    uint32_t base = b->base_ms < KBACKOFF_FIRST_MS ? KBACKOFF_FIRST_MS : b->base_ms;
    uint32_t quarter = base / 4u;
    return base - quarter + rnd % (2u * quarter + 1u); /* [0.75 base, 1.25 base] */
}

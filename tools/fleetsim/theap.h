/*
 * theap: the simulator's timers. One min-heap over device indices keyed by each device's next
 * due time (monotonic ms): the loop sleeps until the earliest, and a device that has nothing to
 * do is not in the heap at all. Indexed (each device knows its position), so moving a device's
 * time is O(log n) without stale entries.
 */
#ifndef KEEL_FLEETSIM_THEAP_H
#define KEEL_FLEETSIM_THEAP_H

#include <stdbool.h>
#include <stdint.h>

#define THEAP_NONE UINT32_MAX

typedef struct theap {
    uint32_t *idx;   /* heap of device indices */
    uint32_t *pos;   /* pos[device]: its place in idx, or THEAP_NONE */
    uint64_t *due;   /* due[device] */
    uint32_t n, cap;
} theap_t;

bool theap_init(theap_t *h, uint32_t devices);
void theap_free(theap_t *h);

/* Set (or move) device d's time; UINT64_MAX removes it. */
void theap_set(theap_t *h, uint32_t d, uint64_t due);

/* The earliest time (UINT64_MAX when empty) and its device. */
uint64_t theap_peek(const theap_t *h, uint32_t *d);

#endif /* KEEL_FLEETSIM_THEAP_H */

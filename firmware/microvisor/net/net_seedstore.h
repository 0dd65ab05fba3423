/*
 * The seed state store: the device's current entropy seed in two flash pages used alternately
 * (A/B, each holding one net_rec.h seed state record with a counter). Pure C over kflash, so the
 * host unit tests cut power at every flash operation of a rewrite (tests/net/test_seedstore.c).
 *
 * Guarantees, under a power cut at any point of net_seedstore_write():
 *   - the next net_seedstore_load() finds a seed (the old one or the new one, never none, never
 *     the provisioned one again once a page has been written);
 *   - the counter never goes back.
 */
#ifndef KEEL_MICROVISOR_NET_NET_SEEDSTORE_H
#define KEEL_MICROVISOR_NET_NET_SEEDSTORE_H

#include <stdint.h>

#include "keel/flash.h"
#include "net_rec.h"

typedef struct net_seedstore {
    kflash_t *fl;
    uint32_t page_a, page_b;      /* erase-unit offsets of the two pages */
    uint32_t counter;             /* counter of the current seed (0: the provisioned one) */
    uint32_t page;                /* page holding it, 0 when it is the provisioned one */
    uint8_t seed[NET_STATE_SEED]; /* the current seed */
} net_seedstore_t;

/*
 * Load the newest valid page into s; when neither page is valid, start from provisioned (32
 * bytes, counter 0) if given. KERR_FORMAT when there is no seed at all; a flash read error as is.
 */
kerr_t net_seedstore_load(net_seedstore_t *s, kflash_t *fl, uint32_t page_a, uint32_t page_b,
                          const uint8_t *provisioned);

/*
 * Make seed the current one: erase the page not holding the current seed, program the record
 * there with counter + 1. On error (flash, power cut) s is unchanged and the old page intact.
 */
kerr_t net_seedstore_write(net_seedstore_t *s, const uint8_t seed[NET_STATE_SEED]);

#endif /* KEEL_MICROVISOR_NET_NET_SEEDSTORE_H */

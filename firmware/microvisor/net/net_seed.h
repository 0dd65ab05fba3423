/*
 * Randomness for the microvisor's network stack: one CTR_DRBG seeded only from the per-device
 * seed, through Mbed TLS's NV-seed mechanism behind the crypto wrapper (kc_rng_init(),
 * core/src/kcrypto_rng.c); this module keeps the seed's storage (see net_seed.c for why and how).
 */
#ifndef KEEL_MICROVISOR_NET_NET_SEED_H
#define KEEL_MICROVISOR_NET_NET_SEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/flash.h"

/**
 * Load the current seed (seed pages, else the provisioned seed record) and hand its storage to
 * kc_rng_init(), which seeds the DRBG (refreshing and persisting the seed before any output).
 * personal: bytes mixed into the DRBG (the device id). Logs and returns false when the device has
 * no seed or the seed cannot be persisted: the caller must then not start anything that needs
 * randomness.
 */
bool net_seed_init(kflash_t *fl, const char *personal);

/** Mbed TLS RNG callback (f_rng) over the seeded DRBG; p_rng is ignored. */
int net_seed_random(void *p_rng, unsigned char *out, size_t len);

/**
 * This boot's number for Envelope.boot, which must never repeat, across power cycles too: the
 * seed pages' counter right after net_seed_init() seeded the DRBG. Every boot that starts the
 * network writes the seed at least once before this is read, and the counter never goes back
 * (net_seedstore.h), so no two boots share a value. 0 before net_seed_init() succeeded.
 */
uint32_t net_seed_boot(void);

/** How many times the seed was written this boot (each Mbed TLS entropy context writes once). */
uint32_t net_seed_writes(void);

#endif /* KEEL_MICROVISOR_NET_NET_SEED_H */

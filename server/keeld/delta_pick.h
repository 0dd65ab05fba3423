/*
 * keeld's half of delta updates (docs/delta.md "keeld"): deltas are stored per base, and the
 * way each device is served is chosen per device, from what its hello showed.
 *
 *   upload   a delta bundle (`keel bundle build --base`) is uploaded as a bundle of its own; it
 *            serves every deployment of a full bundle whose signed result it equals (region,
 *            version, counter, device type), for devices whose app region is its base
 *   choose   at a device's first offer: nothing (it runs the bundle: ota.c settles it), else the
 *            delta for its base when keeld has one, else the full bundle (the device fetches only
 *            the pages that differ); the choice is kept in the device's row
 *   serve    fetches of the delta bundle are answered for the devices offered it
 *   fallback a device that refuses its delta (another base, a microvisor that does not know the
 *            format, a patch that does not decode) gets the full bundle at once: the row stays
 *            open, "pages", with the reason shown in deploy status; no operator action
 */
#ifndef KEEL_SERVER_KEELD_DELTA_PICK_H
#define KEEL_SERVER_KEELD_DELTA_PICK_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "keel.pb.h"
#include "keel/bundle.h"
#include "store.h"

/* A checked delta bundle m was stored as bundle id: index it by its base. */
store_rc_t delta_uploaded(store_t *s, int64_t id, const kbdl_manifest_t *m);

/* Add "kind" ("full" or "delta") and, for a delta, "delta": {"base_region_sha256","patch_size"}
 * to a bundle's JSON (NULL: nothing) or to every bundle of an array. */
void delta_describe(store_t *s, json_t *bundle);
void delta_describe_all(store_t *s, json_t *bundles);

/* Before an offer to device: choose its delivery (first offer) and, when it is the delta, make
 * u name the delta bundle (id, SHA-256, sizes) instead of the full one. */
void delta_choose(store_t *s, const char *device, store_update_t *u);

/* A fetch naming bundle sha (not u's full bundle): true when it is the delta this device was
 * offered, u then naming it. */
bool delta_serving(store_t *s, const char *device, store_update_t *u, const uint8_t sha[32]);

/*
 * A device's UpdateStatus, before it is recorded: 1 when it refused its delta (the row now says
 * pages: offer again), 2 when it is that refusal again after the fallback (ack it, record
 * nothing), 0 when it is no delta refusal (record it as usual), -1 when the store failed (no ack).
 */
int delta_on_status(store_t *s, const char *device, const keel_v1_UpdateStatus *st, int64_t now_ms);

#endif /* KEEL_SERVER_KEELD_DELTA_PICK_H */

/*
 * keeld's side of over-the-air updates (docs/api.md "Bundles" and "Deployments", docs/protocol.md
 * "UpdateOffer / UpdateFetch / UpdateChunk / UpdateStatus").
 *
 *   upload   a bundle is checked like a device would (structure, fleet key, signature, payload
 *            hashes) before it is stored; the same bytes again are the same bundle
 *   decide   per device, from its operational manifest (the hello's region "app"): nothing when
 *            the region already is the bundle's (success, 0 bytes); otherwise an UpdateOffer,
 *            repeated after every hello until the device reports a final result
 *   serve    each UpdateFetch is answered with the requested bytes of the offered bundle (kept in
 *            memory), after checking deployment, bundle hash and bounds; bytes sent are counted
 *            per device in memory and written with the ingest batch (ota_flush)
 *   record   every UpdateStatus (LwM2M state and result, Keel code and detail, progress)
 *
 * The device pulls: it fetches the manifest, checks it, and asks only for the blocks whose hashes
 * differ from its own region, so "only what changed" is decided where the old image is. All state
 * is in the store (kill -9 safe); offers and fetches are idempotent, so a restarted keeld simply
 * answers the next fetch. Safe to call from the HTTP threads and the MQTT thread.
 */
#ifndef KEEL_SERVER_KEELD_OTA_H
#define KEEL_SERVER_KEELD_OTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "keel.pb.h"
#include "store.h"

typedef struct ota ota_t;
struct mq;

/*
 * Load the fleet signing keys (cfg->update_keys). NULL with a message in err when a key file is
 * unreadable or not a P-256 public key. No keys is allowed: uploads are then refused (409).
 */
ota_t *ota_open(const kd_config_t *cfg, store_t *store, char *err, size_t errcap);
void ota_close(ota_t *o);
/* Where offers and chunks go (set once the MQTT client exists; before that nothing is sent). */
void ota_bind(ota_t *o, struct mq *mq);

/*
 * POST /v1/bundles: check and store. Returns the HTTP status (201 stored, 200 already stored,
 * 4xx refused with a sentence in why, 503 store failure) and, on 200/201, the bundle's JSON.
 */
unsigned ota_upload(ota_t *o, const uint8_t *data, size_t len, json_t **out, char *why,
                    size_t cap);

/* A deployment was created: wake download admission (admit.h), which offers at its rate. */
void ota_deployment_started(ota_t *o, int64_t id);

/* Admission gave device its turn: settle it (it runs the bundle already) or offer. */
void ota_admit(ota_t *o, const char *device);
/* Admission's wake-up: bumped when a deployment is created or a device waiting for it says hello. */
uint64_t ota_admission_gen(ota_t *o);
uint64_t ota_admission_wait(ota_t *o, uint64_t seen, int timeout_ms);
void ota_admission_kick(ota_t *o);

/*
 * POST /v1/deployments/{id}/force: mark it forced, send UPDATE_APPLY to every device not done
 * (that implements it) and offer again with force set. HTTP status; *out lists what was sent.
 */
unsigned ota_force(ota_t *o, int64_t id, json_t **out, char *why, size_t cap);

/* Device messages (from the ingest worker; the hello is already stored). received_us: when the
 * message reached keeld (ingest_msg_t.queued_us, monotonic): a fetch asked again while the answer
 * to its first ask was on its way is not answered twice (chunkmemo.h). */
void ota_on_hello(ota_t *o, const char *device, const keel_v1_Hello *hello, int64_t received_us);
void ota_on_fetch(ota_t *o, const char *device, const keel_v1_UpdateFetch *f, int64_t received_us);
/*
 * Record an UpdateStatus (idempotent: a final result is recorded once). true when the device may
 * forget it (committed, a repeat, or about nothing keeld keeps): the caller acks it then, and
 * only then (protocol.md P1).
 */
bool ota_on_status(ota_t *o, const char *device, const keel_v1_UpdateStatus *st);

/* Write the bytes served since the last flush (counted in memory by ota_on_fetch) to the store:
 * the ingest worker calls it inside each batch, so chunks cost no database write of their own. */
void ota_flush(ota_t *o);
/* Chunks and their bytes served since start, and fetches not answered because the chunk was
 * already on its way (GET /metrics). */
void ota_counters(ota_t *o, uint64_t *chunks, uint64_t *bytes, uint64_t *duplicates);

/* Change counter of deployment progress, and a bounded wait for it to move (long polls). */
uint64_t ota_changes(ota_t *o);
uint64_t ota_wait(ota_t *o, uint64_t seen, int timeout_ms);

#endif /* KEEL_SERVER_KEELD_OTA_H */

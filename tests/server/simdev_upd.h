/*
 * simdev_upd: the update agent of a simulated device. It runs the real update engine
 * (core/src/upd_engine.c) over flash files in the AN505 geometry (internal flash and QSPI, like
 * a device's state directory) and speaks the update protocol to keeld as the microvisor does:
 * take an offer, fetch and verify the manifest, fetch only the blocks the engine says differ,
 * stage, apply (now, when forced, or at the deadline), run the new app on trial, confirm or
 * roll back, and report every step with UpdateStatus.
 *
 * MQTT callbacks only queue what arrives (sdu_push); all engine work happens in sdu_poll(),
 * called from simdev's main thread.
 */
#ifndef KEEL_TESTS_SERVER_SIMDEV_UPD_H
#define KEEL_TESTS_SERVER_SIMDEV_UPD_H

#include <stdbool.h>
#include <stdint.h>

#include "keel.pb.h"
#include "keel/kproto.h"

typedef struct sdu sdu_t;

/* Publish env on the device's topic t (simdev fills the header). Returns its msg_id, 0 when the
 * publish failed (not connected: the agent sends it again). */
typedef uint32_t (*sdu_send_fn)(void *ctx, kproto_topic_t t, keel_v1_Envelope *env);

typedef struct sdu_config {
    const char *dir;          /* store.bin (store.h; created erased) */
    const char *keys;         /* trusted fleet keys: PEM files, comma-separated */
    const char *install;      /* NULL, or a bundle whose region is written as the factory would */
    uint32_t device_type;
    uint32_t uv_version;
    bool defer;               /* the app does not apply: wait for force or the deadline */
    bool crash_on_trial;      /* the new app crashes at once: the engine rolls back */
    unsigned pace_ms;         /* pause after each staged block (0: none) */
    bool hello_image;         /* hello reports the app image (size, header hash), not the slot */
    unsigned lose_finals;     /* the first N final statuses are lost on the way (tests of P1) */
    unsigned repeat_status;   /* every status is published this many times (0: once) */
    sdu_send_fn send;
    void *ctx;
} sdu_config_t;

/* Open the flash, mount the engine, finish what a kill interrupted. Exits with a message on error. */
sdu_t *sdu_open(const sdu_config_t *cfg);
void sdu_close(sdu_t *u);

/* The app region for the hello: SHA-256 of the whole slot, its size, the app's version. */
void sdu_hello(sdu_t *u, keel_v1_Hello *h);

/* From the MQTT thread: an UpdateOffer, UpdateChunk, Ack or an update Command (queued). */
void sdu_push(sdu_t *u, kproto_topic_t t, const keel_v1_Envelope *env);

/* Do pending work (bounded). Returns true when the hello changed (the app was replaced). */
bool sdu_poll(sdu_t *u);

/* Final results reported so far (success, refusal, rollback). */
unsigned sdu_finals(sdu_t *u);
/* keeld acked the latest status (protocol.md P1). */
bool sdu_status_acked(sdu_t *u);
/* From the MQTT thread: a new connection (the kept status and missing chunks go out again). */
void sdu_reconnected(sdu_t *u);

#endif /* KEEL_TESTS_SERVER_SIMDEV_UPD_H */

/*
 * simdev_upd: the update agent of a simulated device. It runs the real update engine
 * (core/src/upd_engine.c) over flash in its board's geometry (internal flash and QSPI, like
 * a device's state directory) and speaks the update protocol to keeld as the microvisor does:
 * take an offer, fetch and verify the manifest, fetch only the blocks the engine says differ,
 * stage, apply (now, when forced, or at the deadline), run the new app on trial, confirm or
 * roll back, and report every step with UpdateStatus.
 *
 * MQTT callbacks only queue what arrives (sdu_push); all engine work happens in sdu_poll(),
 * called from the device's own loop (simdev's main thread, or fleetsim's event loop, which asks
 * sdu_next_ms() when to call it again instead of polling).
 *
 * The device side of the fleet protocol rules (docs/protocol.md):
 *   P1  the latest UpdateStatus is kept until keeld acknowledges it (an Ack pushed with
 *       sdu_push) and said again after every reconnect (sdu_reconnected) and after
 *       STATUS_RESEND_MS without an ack; a bundle the region already holds is not installed again;
 *   P3  at most FETCH_WINDOW chunk requests in flight; a request unanswered for the timeout (2 s
 *       at first) is asked again with exponential back-off (x2, capped at 60 s, +-25 % jitter);
 *       any chunk received resets the back-off;
 *   P4  an interrupted download resumes from the engine's staging map: staged blocks are never
 *       asked for again (upd_stage_begin of the same bundle resumes).
 *
 * Shared by simdev (tests/server) and fleetsim (tools/fleetsim).
 */
#ifndef KEEL_TESTS_SERVER_SIMDEV_UPD_H
#define KEEL_TESTS_SERVER_SIMDEV_UPD_H

#include <stdbool.h>
#include <stdint.h>

#include "keel.pb.h"
#include "keel/board.h"
#include "keel/flash.h"
#include "keel/kproto.h"

typedef struct sdu sdu_t;

/* Publish env on the device's topic t (the caller fills the header). Returns its msg_id, 0 when
 * the publish failed (not connected: the agent sends it again). */
typedef uint32_t (*sdu_send_fn)(void *ctx, kproto_topic_t t, keel_v1_Envelope *env);

typedef struct sdu_config {
    const kboard_t *board;    /* the device's board (NULL: kboard_host()) */
    const char *dir;          /* the board's store file in dir (created erased); or: */
    kflash_t *iflash, *qspi;  /* flash the caller owns (the board's geometry), when dir is NULL */
    const char *keys;         /* trusted fleet keys: PEM files, comma-separated */
    const char *install;      /* NULL, or a bundle whose region is written as the factory would */
    uint32_t device_type;     /* 0: the board's */
    uint32_t uv_version;
    bool defer;               /* the app does not apply: wait for force or the deadline */
    bool crash_on_trial;      /* the new app crashes at once: the engine rolls back */
    unsigned pace_ms;         /* pause after each staged block (0: none) */
    bool hello_image;         /* hello reports the app image (size, header hash), not the slot */
    unsigned lose_finals;     /* the first N final statuses are lost on the way (tests of P1) */
    unsigned repeat_status;   /* every status is published this many times (0: once) */
    bool quiet;               /* no event lines on stdout (thousands of devices in one process) */
    unsigned queue_len;       /* messages queued for sdu_poll (0: 32; each ~2.2 KB) */
    unsigned status_every_ms; /* progress statuses while downloading (0: 500 ms) */
    unsigned status_resend_ms; /* an unacked status is sent again after this (0: 3 s) */
    uint32_t seed;            /* jitter of the fetch back-off (0: from the clock) */
    sdu_send_fn send;
    void *ctx;
} sdu_config_t;

/* Open the flash, mount the engine, finish what a kill interrupted. Exits with a message on error. */
sdu_t *sdu_open(const sdu_config_t *cfg);
void sdu_close(sdu_t *u);

/* The app region for the hello: SHA-256 of the whole slot, its size, the app's version; and the
 * device type its engine checks bundles against. */
void sdu_hello(sdu_t *u, keel_v1_Hello *h);

/* From the MQTT thread: an UpdateOffer, UpdateChunk, update Command or Ack (queued). */
void sdu_push(sdu_t *u, kproto_topic_t t, const keel_v1_Envelope *env);

/* Do pending work (bounded). Returns true when the hello changed (the app was replaced). */
bool sdu_poll(sdu_t *u);

/* Final results reported so far (success, refusal, rollback). */
unsigned sdu_finals(sdu_t *u);

/* Bytes the update in hand needs at least: its signed manifest and the content of the blocks the
 * device lacked when staging began (0 before). */
uint32_t sdu_min_bytes(sdu_t *u);

/* Apps installed (applied and confirmed) so far, and how many of them were of a bundle this
 * device had installed before (a double install: P2 says never). */
unsigned sdu_installs(sdu_t *u);
unsigned sdu_reinstalls(sdu_t *u);

/* The monotonic time (ms) by which sdu_poll() must run again; UINT64_MAX: only when a message
 * arrives. */
uint64_t sdu_next_ms(sdu_t *u);

/* keeld acked the latest status (protocol.md P1). */
bool sdu_status_acked(sdu_t *u);

/* From the MQTT thread: a new connection (the kept status and missing chunks go out again). */
void sdu_reconnected(sdu_t *u);

/* Statuses sent, and how many of them keeld has acknowledged. */
void sdu_counts(sdu_t *u, unsigned *statuses, unsigned *acked);

#endif /* KEEL_TESTS_SERVER_SIMDEV_UPD_H */

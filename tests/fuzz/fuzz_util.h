/*
 * Shared by the fuzz targets and the seed writer: the fleet signing key of the unit tests, a
 * simulated device (internal flash + QSPI, tests/unit/test_upd_fixture.h) and a fixed debug
 * session, so a target can get past signatures and tags to the code behind them.
 */
#ifndef KEEL_TESTS_FUZZ_UTIL_H
#define KEEL_TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "keel/dbgsess.h"
#include "keel/upd.h"

/* The simulated device of the update-engine tests, opened once per process and reset to its
 * factory image (region content, empty journal and staging) by fz_dev_reset(). */
upd_t *fz_dev_reset(void);
/* Build a signed one-layer bundle for a region image of the simulated device: content_len
 * pseudo-random bytes (seed), version/counter as given. Returns its signed length, 0 on error. */
uint32_t fz_bundle(uint8_t *out, uint32_t cap, uint32_t content_len, uint32_t seed, uint32_t version,
                   uint32_t counter);
/* Re-sign buf[0, manifest_len) with the fleet key the simulated device trusts; manifest_len is
 * taken from the manifest header. Returns the signed length, 0 when that does not fit in len/cap. */
uint32_t fz_resign(uint8_t *buf, uint32_t len, uint32_t cap);

/* Two ends of one established debug session (fixed keys; the same in every process). */
typedef struct fz_dbg {
    dbgsess_t client;  /* seals DOWN (what a device opens) */
    dbgsess_t device;  /* opens DOWN, seals UP */
    uint64_t session;
} fz_dbg_t;
int fz_dbg_start(fz_dbg_t *d);
/* A deterministic "RNG" for Mbed TLS callbacks (fixed sequence: reproducible runs). */
int fz_rng(void *ctx, unsigned char *out, size_t len);

/* Read all of a file (seed writer); NULL on error. */
uint8_t *fz_read_file(const char *path, size_t *out_len);

#endif /* KEEL_TESTS_FUZZ_UTIL_H */

/*
 * One protocol message as a receiver sees it. Input: one byte choosing the topic among topics[n]
 * (and the length of a topic string to parse, taken from the start of the rest), then the payload.
 * Checks, beyond "no sanitizer report": a decoded envelope re-encodes (every field within its
 * bound) and that encoding decodes to the same bytes again (one meaning per message). Returns the
 * decoded envelope, or NULL when the payload was refused.
 */
#include "keel/kproto.h"
const keel_v1_Envelope *fz_envelope(const kproto_topic_t *topics, unsigned n, const uint8_t *data,
                                    size_t size, kproto_topic_t *out_topic);

/*
 * The RSP engine on a fake Cortex-M target (code at 0x10000000 and RAM at 0x38000000, 64 KiB
 * each, 8 breakpoint slots). fz_rsp_reset() starts a fresh session; fz_rsp_feed() hands it bytes
 * as a transport would and, when the engine resumed the app, reports a stop (as the stub does).
 * Every reply is checked: a single '+'/'-', or one whole packet with a correct checksum within
 * RSP_PACKET_MAX; every memory access the engine passes lies in the target's memory.
 */
#include "keel/rsp.h"
void fz_rsp_reset(void);
void fz_rsp_feed(const uint8_t *data, size_t len);
/* The debugger's connection is lost: every breakpoint must be removed. */
void fz_rsp_lost(void);
/* The public key of the fleet key the simulated device trusts (65 bytes). */
void fz_bundle_pubkey(uint8_t out[65]);

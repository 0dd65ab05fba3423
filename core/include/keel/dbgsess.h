/*
 * dbgsess: the cryptography of a live debug session (docs/debug.md "Transport"), shared by the
 * microvisor's debug channel and the `keel debug` CLI.
 *
 * The session is an ECDH P-256 exchange between two ephemeral keys, authenticated on both ends by
 * ECDSA signatures over fixed transcripts (proto/keel.proto DebugOpen/DebugAccept):
 *
 *   CLI                                                 device
 *   dbgsess_keygen(eph_c)
 *   DebugOpen{session, client_pub = eph_c.pub,
 *             signature = sign(debug key, open transcript)}  ──►  verify with the bundle's debug key
 *                                                               dbgsess_keygen(eph_d)
 *   verify with the device certificate's key   ◄──  DebugAccept{session, ok, device_pub = eph_d.pub,
 *                                                     signature = sign(device key, accept transcript)}
 *   dbgsess_start(CLIENT, eph_c, device_pub)            dbgsess_start(DEVICE, eph_d, client_pub)
 *   DebugFrame{seq, dbgsess_seal(...)}  ◄────────────►  dbgsess_open(...)
 *
 * Byte encodings (all fixed except the device id, so the transcripts are unambiguous):
 *
 *   open transcript   = SHA-256("keel-debug-open"   || id || session || client_pub)
 *   accept transcript = SHA-256("keel-debug-accept" || id || session || client_pub || device_pub)
 *       id: the device id's characters, no terminator; session: u64 little-endian (8 bytes);
 *       points: 65-byte uncompressed (0x04 || X || Y); signatures: r || s, 32 bytes each.
 *   keys   = HKDF-SHA256(salt = empty, IKM = ECDH shared x (32 bytes),
 *                        info = "keel-debug-keys" || session || client_pub || device_pub), 32 bytes:
 *            [0, 16) the AES-128-GCM key of the down direction (CLI -> device),
 *            [16, 32) the key of the up direction (device -> CLI).
 *   nonce  = direction (u32 LE: 0 down, 1 up) || 0 (u32) || seq (u32 LE)           (12 bytes)
 *   AAD    = session (u64 LE)
 *   sealed = AES-128-GCM ciphertext || 16-byte tag
 *
 * Sequence numbers count per direction from 1. A receiver accepts only seq > the last one it
 * accepted (replays and reordered frames are refused; a gap is allowed, the RSP layer resyncs). A
 * sender refuses to seal past UINT32_MAX: a (key, nonce) pair is never used twice, the session
 * must be reopened (at one frame per millisecond that is 49 days).
 *
 * The crypto goes through keel/kcrypto.h (PSA Crypto). No allocation in this module (PSA allocates
 * its volatile key slots). The ephemeral scalars come from the caller's RNG callback (the
 * NV-seeded DRBG on the device, kc_random on the host); ECDSA nonces from PSA's generator, which
 * on the device is that same DRBG.
 */
#ifndef KEEL_DBGSESS_H
#define KEEL_DBGSESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

#define DBGSESS_PUB_SIZE 65u    /* uncompressed P-256 point */
#define DBGSESS_PRIV_SIZE 32u   /* P-256 scalar, big-endian */
#define DBGSESS_SIG_SIZE 64u    /* ECDSA r || s */
#define DBGSESS_HASH_SIZE 32u   /* SHA-256 */
#define DBGSESS_KEY_SIZE 16u    /* AES-128 */
#define DBGSESS_TAG_SIZE 16u    /* GCM tag */
#define DBGSESS_NONCE_SIZE 12u
#define DBGSESS_SEALED_MAX 1200u /* keel.options DebugFrame.sealed */
#define DBGSESS_PLAIN_MAX (DBGSESS_SEALED_MAX - DBGSESS_TAG_SIZE)

/* persisted (on the wire, in the nonce): never renumber. */
typedef enum dbgsess_dir {
    DBGSESS_DOWN = 0, /* CLI -> device, topic debug/down */
    DBGSESS_UP = 1,   /* device -> CLI, topic debug/up */
} dbgsess_dir_t;

/* Which end of the session this context is: it seals in its own direction, opens the other. */
typedef enum dbgsess_role {
    DBGSESS_CLIENT = 0, /* the keel CLI: seals DOWN, opens UP */
    DBGSESS_DEVICE = 1, /* the microvisor: seals UP, opens DOWN */
} dbgsess_role_t;

/* Mbed TLS RNG convention: fill out[0, len), return 0 on success. */
typedef int (*dbgsess_rng_fn)(void *ctx, unsigned char *out, size_t len);

/* An ephemeral key pair; the secret is wiped by dbgsess_start() (or dbgsess_wipe()). */
typedef struct dbgsess_eph {
    uint8_t priv[DBGSESS_PRIV_SIZE];
    uint8_t pub[DBGSESS_PUB_SIZE];
} dbgsess_eph_t;

/* An established session: the two directional keys and the sequence state. Plain data. */
typedef struct dbgsess {
    uint64_t session;
    dbgsess_role_t role;
    bool ready;                          /* keys derived and not ended */
    uint8_t tx_key[DBGSESS_KEY_SIZE];
    uint8_t rx_key[DBGSESS_KEY_SIZE];
    uint32_t tx_seq;                     /* last sealed, 0 before the first */
    uint32_t rx_seq;                     /* last opened, 0 before the first */
} dbgsess_t;

/*
 * A fresh ephemeral P-256 key pair.
 * Errors: KERR_INVAL (NULL argument), KERR_DBG_CRYPTO (RNG or library failure).
 */
kerr_t dbgsess_keygen(dbgsess_eph_t *out_eph, dbgsess_rng_fn rng, void *rng_ctx);

/*
 * Derive the session keys from our ephemeral key and the peer's public point (checked to be on
 * the curve), and reset both sequence counters. Wipes mine->priv whatever the outcome.
 * Errors: KERR_INVAL (NULL, bad role), KERR_DBG_KEY (peer point invalid or not on P-256),
 * KERR_DBG_CRYPTO.
 */
kerr_t dbgsess_start(dbgsess_t *s, dbgsess_role_t role, uint64_t session, dbgsess_eph_t *mine,
                     const uint8_t peer_pub[DBGSESS_PUB_SIZE]);

/*
 * Seal len bytes (1 .. DBGSESS_PLAIN_MAX) as the next frame of our direction: out gets
 * ciphertext || tag (len + DBGSESS_TAG_SIZE bytes, needs cap for it), *out_seq its sequence number.
 * Errors: KERR_INVAL (not ready, NULL, len 0 or > DBGSESS_PLAIN_MAX), KERR_NOMEM (cap too small),
 * KERR_DBG_SEQ (sequence numbers exhausted: reopen the session), KERR_DBG_CRYPTO.
 */
kerr_t dbgsess_seal(dbgsess_t *s, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                    size_t *out_len, uint32_t *out_seq);

/*
 * Open a frame of the peer's direction: sealed = ciphertext || tag (DBGSESS_TAG_SIZE + 1 ..
 * DBGSESS_SEALED_MAX bytes). On success out gets the plaintext (len - DBGSESS_TAG_SIZE bytes) and
 * seq becomes the last accepted number. Nothing changes on failure.
 * Errors: KERR_INVAL (not ready, NULL, length out of range), KERR_NOMEM (cap too small),
 * KERR_DBG_REPLAY (seq 0 or not above the last accepted one), KERR_DBG_AUTH (tag mismatch:
 * altered, wrong key or wrong direction), KERR_DBG_CRYPTO.
 */
kerr_t dbgsess_open(dbgsess_t *s, uint32_t seq, const uint8_t *sealed, size_t len, uint8_t *out,
                    size_t cap, size_t *out_len);

/* End the session: wipe the keys; seal/open refuse from then on. */
void dbgsess_end(dbgsess_t *s);

/* Zero n bytes in a way the compiler keeps (secrets: ephemeral and long-term private keys). */
void dbgsess_wipe(void *p, size_t n);

/* The signed transcripts (see the top of this file). id: a valid device id (1..63 chars). */
kerr_t dbgsess_open_hash(const char *device_id, uint64_t session,
                         const uint8_t client_pub[DBGSESS_PUB_SIZE],
                         uint8_t out[DBGSESS_HASH_SIZE]);
kerr_t dbgsess_accept_hash(const char *device_id, uint64_t session,
                           const uint8_t client_pub[DBGSESS_PUB_SIZE],
                           const uint8_t device_pub[DBGSESS_PUB_SIZE],
                           uint8_t out[DBGSESS_HASH_SIZE]);

/*
 * ECDSA P-256 over a transcript hash with a raw private scalar (the debug key on the CLI, the
 * device key on the device), r || s out.
 * Errors: KERR_INVAL (NULL, scalar out of range), KERR_DBG_CRYPTO.
 */
kerr_t dbgsess_sign(const uint8_t priv[DBGSESS_PRIV_SIZE], const uint8_t hash[DBGSESS_HASH_SIZE],
                    uint8_t out_sig[DBGSESS_SIG_SIZE]);

/*
 * Check r || s over hash against an uncompressed public point.
 * Errors: KERR_INVAL (NULL), KERR_DBG_KEY (point invalid), KERR_DBG_SIGNATURE (does not verify).
 */
kerr_t dbgsess_verify(const uint8_t pub[DBGSESS_PUB_SIZE], const uint8_t hash[DBGSESS_HASH_SIZE],
                      const uint8_t sig[DBGSESS_SIG_SIZE]);

#endif /* KEEL_DBGSESS_H */

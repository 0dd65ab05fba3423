/*
 * kcrypto: every cryptographic operation Keel's own code does, over PSA Crypto.
 *
 * The microvisor (update engine, debug sessions, network key derivation), the host tools (keel,
 * keeld, simdev) and the tests call these and nothing of Mbed TLS's legacy crypto API
 * (mbedtls_sha256*, mbedtls_gcm*, mbedtls_ecdsa*, mbedtls_ecp*, mbedtls_hkdf, mbedtls_md_hmac*,
 * mbedtls_ctr_drbg*, mbedtls_entropy*): that API goes private in Mbed TLS 4.x (TF-PSA-Crypto),
 * and then this file, src/kcrypto.c, src/kcrypto_rng.c and the lwIP altcp patch are what the move
 * touches (docs/development.md).
 *
 *   SHA-256        kc_sha256() one-shot (kc_sha256_parts() over pieces), kc_sha256_start/update/
 *                  finish streaming
 *   HKDF-SHA-256   kc_hkdf_sha256() (RFC 5869, extract and expand)
 *   AES-GCM        kc_gcm_seal()/kc_gcm_open() one-shot (in place allowed, tag apart from the
 *                  text), kc_gcm_seal_start/open_start, kc_gcm_update, kc_gcm_*_finish streaming
 *   ECDSA P-256    kc_p256_verify(), kc_p256_sign() (randomized), kc_p256_sign_det() (RFC 6979,
 *                  host only: the device build leaves deterministic ECDSA out)
 *   ECDH P-256     kc_p256_keygen() (scalar from the caller's RNG), kc_p256_ecdh()
 *   key files      kc_p256_priv_from_key(): the raw scalar of a PEM/DER P-256 private key;
 *                  kc_p256_from_pk()/kc_p256_to_pk(): raw keys out of / into Mbed TLS's PK
 *                  (key files, certificates: PK and X.509 stay public API in 4.x, ECP does not)
 *   random         kc_random(): PSA's generator, with the Mbed TLS RNG callback signature;
 *                  kc_rng_init()/kc_rng_random(): the device's NV-seeded DRBG that PSA draws from
 *                  (src/kcrypto_rng.c, firmware only)
 *
 * Keys are bytes owned by the caller; each call imports them as a volatile PSA key and destroys
 * it before returning, so no key outlives a call and nothing needs freeing between calls.
 * PSA is initialised on first use (kc_init(); idempotent). On the device PSA draws its random
 * numbers from the NV-seeded DRBG (MBEDTLS_PSA_CRYPTO_EXTERNAL_RNG, kc_rng_init()) and does P-256
 * in the constant-time p256-m driver; on the host from the OS.
 *
 * Sizes are fixed: points are 65-byte uncompressed (0x04 || X || Y), scalars and shared secrets
 * 32-byte big-endian, signatures r || s (64 bytes), GCM nonces 12 bytes and tags 16.
 */
#ifndef KEEL_KCRYPTO_H
#define KEEL_KCRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <psa/crypto.h>

#define KC_SHA256_SIZE 32u
#define KC_P256_PUB_SIZE 65u
#define KC_P256_PRIV_SIZE 32u
#define KC_P256_SIG_SIZE 64u
#define KC_P256_SECRET_SIZE 32u
#define KC_GCM_NONCE_SIZE 12u
#define KC_GCM_TAG_SIZE 16u

typedef enum kc_rc {
    KC_OK = 0,
    KC_BAD_KEY,  /* a public key that is not an uncompressed point of the curve */
    KC_BAD_PRIV, /* a private scalar out of range (0 or >= the group order), or a bad key length */
    KC_OTHER_CURVE, /* an EC key, but not on P-256 (kc_p256_from_pk) */
    KC_BAD_SIG,  /* the signature does not verify */
    KC_BAD_TAG,  /* GCM: the tag does not match (the output has been wiped) */
    KC_ERROR,    /* PSA failed (out of key slots or memory, not supported in this build) */
} kc_rc_t;

/* Mbed TLS RNG convention: fill out[0, len), return 0 on success. */
typedef int (*kc_rng_fn)(void *ctx, unsigned char *out, size_t len);

/* One piece of a message hashed in pieces. */
typedef struct kc_part {
    const void *p;
    size_t n;
} kc_part_t;

kc_rc_t kc_init(void);

/* Zero n bytes at p in a way the compiler cannot drop. */
void kc_wipe(void *p, size_t n);

/* PSA's random generator as an Mbed TLS RNG callback (ctx unused): for kc_p256_keygen() and
 * for Mbed TLS APIs that still take an RNG (key parsing, certificate writing). */
int kc_random(void *ctx, unsigned char *out, size_t len);

/* ---- The device's generator (firmware only: src/kcrypto_rng.c, MBEDTLS_ENTROPY_NV_SEED) ----
 * One CTR_DRBG seeded only from the device's secret seed through Mbed TLS's NV seed, which also
 * feeds PSA (MBEDTLS_PSA_CRYPTO_EXTERNAL_RNG), so the device has one generator. The caller owns
 * the seed's storage: read fills len bytes with the current seed; write persists len bytes as the
 * new one (the entropy context writes it once, before any output is used). Both return true when
 * done; ctx is passed back. *nv must stay valid for the life of the program. */
typedef struct kc_nv_seed_ops {
    bool (*read)(void *ctx, uint8_t *buf, size_t len);
    bool (*write)(void *ctx, const uint8_t *buf, size_t len);
    void *ctx;
} kc_nv_seed_ops_t;

typedef enum kc_rng_rc {
    KC_RNG_OK = 0,
    KC_RNG_SEED_FAILED, /* seeding the DRBG failed (*code: the Mbed TLS error, negative) */
    KC_RNG_PSA_FAILED,  /* the DRBG is seeded, but psa_crypto_init() failed (*code: its status) */
} kc_rng_rc_t;

/* Install the seed storage, seed the DRBG (pers: personalization bytes, e.g. the device id) and
 * initialise PSA over it. Once: a second call is a programming error. */
kc_rng_rc_t kc_rng_init(const kc_nv_seed_ops_t *nv, const uint8_t *pers, size_t len, int *code);
/* The seeded DRBG as an Mbed TLS RNG callback (ctx unused); an Mbed TLS error before
 * kc_rng_init() succeeded. */
int kc_rng_random(void *ctx, unsigned char *out, size_t len);

/* ---- SHA-256 ---- */
typedef struct kc_sha256 {
    psa_hash_operation_t op;
} kc_sha256_t;
#define KC_SHA256_INIT { PSA_HASH_OPERATION_INIT } /* or kc_sha256_start(): abort is then safe */

kc_rc_t kc_sha256(const void *p, size_t n, uint8_t out[KC_SHA256_SIZE]);
/* SHA-256 of the concatenation of parts[0, nparts). */
kc_rc_t kc_sha256_parts(const kc_part_t *parts, size_t nparts, uint8_t out[KC_SHA256_SIZE]);
kc_rc_t kc_sha256_start(kc_sha256_t *h);
kc_rc_t kc_sha256_update(kc_sha256_t *h, const void *p, size_t n);
/* Ends the operation whatever the outcome; kc_sha256_abort() ends one left unfinished. */
kc_rc_t kc_sha256_finish(kc_sha256_t *h, uint8_t out[KC_SHA256_SIZE]);
void kc_sha256_abort(kc_sha256_t *h);

/* ---- HKDF-SHA-256 (salt may be empty) ---- */
kc_rc_t kc_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                       const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len);

/* ---- AES-GCM (key_len 16 or 32), the tag kept apart from the text; in == out allowed ---- */
kc_rc_t kc_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t nonce[KC_GCM_NONCE_SIZE],
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n, uint8_t *out,
                    uint8_t tag[KC_GCM_TAG_SIZE]);
kc_rc_t kc_gcm_open(const uint8_t *key, size_t key_len, const uint8_t nonce[KC_GCM_NONCE_SIZE],
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n,
                    const uint8_t tag[KC_GCM_TAG_SIZE], uint8_t *out);

/* Streaming (no AAD): start, any number of updates (an update's output is as long as its input;
 * in == out allowed), then finish or abort, which end the operation (finish whatever its
 * outcome). Decrypted pieces are unauthenticated until kc_gcm_open_finish() returns KC_OK: the
 * caller must not act on them before. A start that fails leaves nothing to abort. */
typedef struct kc_gcm {
    psa_aead_operation_t op;
    psa_key_id_t key;
} kc_gcm_t;

kc_rc_t kc_gcm_seal_start(kc_gcm_t *g, const uint8_t *key, size_t key_len,
                          const uint8_t nonce[KC_GCM_NONCE_SIZE]);
kc_rc_t kc_gcm_open_start(kc_gcm_t *g, const uint8_t *key, size_t key_len,
                          const uint8_t nonce[KC_GCM_NONCE_SIZE]);
kc_rc_t kc_gcm_update(kc_gcm_t *g, const uint8_t *in, size_t n, uint8_t *out);
kc_rc_t kc_gcm_seal_finish(kc_gcm_t *g, uint8_t tag[KC_GCM_TAG_SIZE]);
kc_rc_t kc_gcm_open_finish(kc_gcm_t *g, const uint8_t tag[KC_GCM_TAG_SIZE]);
void kc_gcm_abort(kc_gcm_t *g);

/* ---- P-256 ---- */
/* A key pair whose scalar is drawn from rng (retried in the rare case it is out of range). */
kc_rc_t kc_p256_keygen(uint8_t priv[KC_P256_PRIV_SIZE], uint8_t pub[KC_P256_PUB_SIZE],
                       kc_rng_fn rng, void *rng_ctx);
kc_rc_t kc_p256_pub_from_priv(const uint8_t priv[KC_P256_PRIV_SIZE], uint8_t pub[KC_P256_PUB_SIZE]);
/* The ECDH shared secret (the x coordinate) of our scalar and the peer's point. */
kc_rc_t kc_p256_ecdh(const uint8_t priv[KC_P256_PRIV_SIZE], const uint8_t peer_pub[KC_P256_PUB_SIZE],
                     uint8_t secret[KC_P256_SECRET_SIZE]);
/* The raw scalar of a P-256 private key in PEM (NUL included in len) or DER (SEC1 or PKCS#8):
 * parsed by Mbed TLS's PK and exported through PSA. KC_BAD_KEY if it is not one. */
kc_rc_t kc_p256_priv_from_key(const uint8_t *key, size_t len, uint8_t priv[KC_P256_PRIV_SIZE]);
/* The P-256 key in pk: its point, and its scalar into priv (when priv is not NULL and pk holds a
 * private key; *has_priv says which). KC_BAD_KEY: not an EC key; KC_OTHER_CURVE: another curve. */
kc_rc_t kc_p256_from_pk(const mbedtls_pk_context *pk, uint8_t pub[KC_P256_PUB_SIZE],
                        uint8_t priv[KC_P256_PRIV_SIZE], bool *has_priv);
/* Set up pk (initialised, empty) as the P-256 key pub, with the scalar priv when not NULL (it must
 * be pub's: kc_p256_keygen() gives both). pk can then be written (PEM) or used to sign. */
kc_rc_t kc_p256_to_pk(mbedtls_pk_context *pk, const uint8_t priv[KC_P256_PRIV_SIZE],
                      const uint8_t pub[KC_P256_PUB_SIZE]);
/* ECDSA over a SHA-256 hash. */
kc_rc_t kc_p256_verify(const uint8_t pub[KC_P256_PUB_SIZE], const uint8_t hash[KC_SHA256_SIZE],
                       const uint8_t sig[KC_P256_SIG_SIZE]);
kc_rc_t kc_p256_sign(const uint8_t priv[KC_P256_PRIV_SIZE], const uint8_t hash[KC_SHA256_SIZE],
                     uint8_t sig[KC_P256_SIG_SIZE]);
/* Deterministic ECDSA (RFC 6979): the same key and hash always give the same signature, so
 * signed artefacts are reproducible and golden vectors stay golden. */
kc_rc_t kc_p256_sign_det(const uint8_t priv[KC_P256_PRIV_SIZE], const uint8_t hash[KC_SHA256_SIZE],
                         uint8_t sig[KC_P256_SIG_SIZE]);

#endif /* KEEL_KCRYPTO_H */

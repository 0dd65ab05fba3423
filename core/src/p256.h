/*
 * ECDSA P-256 (private to core/src): the one public-key load and signature check that bundles
 * (bundle.c) and debug sessions (dbgsess.c) share. Each caller maps the outcome to its own kerr_t
 * family, so the results stay a small enum here.
 */
#ifndef KEEL_CORE_SRC_P256_H
#define KEEL_CORE_SRC_P256_H

#include <stdint.h>

#include <mbedtls/ecp.h>

#define P256_PUB_SIZE 65u  /* uncompressed point: 0x04 || X || Y */
#define P256_HASH_SIZE 32u /* SHA-256 */
#define P256_SIG_SIZE 64u  /* r || s, 32 bytes each, big-endian */

typedef enum p256_rc {
    P256_OK = 0,
    P256_BAD_KEY,  /* not an uncompressed point on the curve */
    P256_BAD_SIG,  /* the signature does not verify (or r, s do not decode) */
    P256_ERROR,    /* Mbed TLS failed (the curve did not load) */
} p256_rc_t;

/* Load the curve into grp (initialised by the caller) and pub into q: a key checked to be on it. */
p256_rc_t p256_load_pub(mbedtls_ecp_group *grp, mbedtls_ecp_point *q, const uint8_t pub[P256_PUB_SIZE]);

/* Verify sig over a SHA-256 hash with pub. */
p256_rc_t p256_verify(const uint8_t pub[P256_PUB_SIZE], const uint8_t hash[P256_HASH_SIZE],
                      const uint8_t sig[P256_SIG_SIZE]);

/* The public key of the private scalar priv (PSA Crypto). */
p256_rc_t p256_pub_from_priv(const uint8_t priv[32], uint8_t pub[P256_PUB_SIZE]);

/* Deterministic ECDSA (RFC 6979, PSA Crypto) of a SHA-256 hash: the same key and hash always give
 * the same signature, so signed artefacts are reproducible and golden vectors stay golden. */
p256_rc_t p256_sign_det(const uint8_t priv[32], const uint8_t hash[P256_HASH_SIZE],
                        uint8_t sig[P256_SIG_SIZE]);

#endif /* KEEL_CORE_SRC_P256_H */

/*
 * Mbed TLS 3.6 LTS configuration for Keel: the secure firmware (Cortex-M33, no OS, no file system)
 * and, with KEEL_MBEDTLS_HOST, the host tools (keel, keeld, simdev, tests), built from the same
 * pinned source tree (scripts/third_party.lock) so device and host run one version.
 * Selected with -DMBEDTLS_CONFIG_FILE="keel_mbedtls_config.h" (firmware/third_party.cmake and
 * cmake/keel_mbedtls.cmake set it PUBLIC, so everyone including mbedtls/ headers sees it).
 *
 * Only what Keel uses is compiled: SHA-256 (image and bundle hashes), AES-CTR/GCM and CMAC,
 * P-256 ECDSA (signature checks, debug session signatures) and ECDH, HKDF, a CTR_DRBG and PSA
 * Crypto. The TLS client (1.3, and 1.2 when a fleet setting allows it) is compiled only with
 * KEEL_MBEDTLS_TLS (the microvisor's network link).
 *
 * Entropy on the device: the QEMU boards have no TRNG, and a timer-derived value would be guessable,
 * so the only entropy source is Mbed TLS's NV seed: a per-device seed provisioned into secure
 * storage, mixed in and rewritten on every boot. With MBEDTLS_PLATFORM_NV_SEED_ALT the firmware
 * installs its storage functions at boot (kc_rng_init(), core/src/kcrypto_rng.c); until it does,
 * seeding fails (no silent weak fallback). PSA Crypto (which TLS 1.3 uses for its key exchange and
 * key schedule) draws from that same NV-seeded CTR_DRBG through MBEDTLS_PSA_CRYPTO_EXTERNAL_RNG
 * (mbedtls_psa_external_get_random() in core/src/kcrypto_rng.c) instead of seeding a
 * second DRBG of its own. The host uses the OS's entropy (getrandom) for both.
 *
 * Memory: bignum/ECP allocate with calloc. MBEDTLS_PLATFORM_MEMORY is left undefined on purpose:
 * with it, lwIP's altcp_tls would route every Mbed TLS allocation to its small MEM_SIZE heap.
 *
 * Hardening (docs/security.md): MBEDTLS_ECP_NIST_OPTIM is off on the device: its fast reduction
 * was flagged as a timing side channel exploitable by local code that can time the secure world,
 * which is what an NS app is. The speed it cost is won back by the constant-time p256-m driver
 * (MBEDTLS_PSA_P256M_DRIVER_ENABLED below), which does the device's P-256 work through PSA.
 */
#ifndef KEEL_MBEDTLS_CONFIG_H
#define KEEL_MBEDTLS_CONFIG_H

/* ---- system ---- */
#define MBEDTLS_PLATFORM_C
#if defined(KEEL_MBEDTLS_HOST)
#define MBEDTLS_FS_IO                   /* keys and certificates from files (keel, keeld) */
/* keel debug, keeld and simdev call keel/kcrypto.h from several threads: PSA's key store must be
 * thread-safe (3.6 makes it so with MBEDTLS_THREADING_C). */
#define MBEDTLS_THREADING_C
#define MBEDTLS_THREADING_PTHREAD
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_HAVE_TIME_DATE
#else
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_ENTROPY_NV_SEED
#define MBEDTLS_PLATFORM_NV_SEED_ALT
#define MBEDTLS_PSA_CRYPTO_EXTERNAL_RNG /* PSA draws from the NV-seeded DRBG (kcrypto_rng.c) */
#endif

/* ---- symmetric ---- */
#define MBEDTLS_AES_C
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_AES_FEWER_TABLES
#define MBEDTLS_CIPHER_C
#define MBEDTLS_CIPHER_MODE_CTR
#define MBEDTLS_CMAC_C
#define MBEDTLS_GCM_C

/* ---- hashes ---- */
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA224_C                /* 3.x: SHA-256 requires the SHA-224 module too */
#define MBEDTLS_SHA256_SMALLER
#define MBEDTLS_MD_C
#define MBEDTLS_HKDF_C                  /* debug session keys (core/src/dbgsess.c) */

/* ---- public key: P-256 only ---- */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#if defined(KEEL_MBEDTLS_HOST)
/* Keys on other curves must parse on the host, so keel can say "another curve (Keel needs P-256)"
 * instead of "not a key". Nothing on the host or the device signs or verifies with them. */
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_DP_SECP521R1_ENABLED
#define MBEDTLS_SHA384_C
#define MBEDTLS_SHA512_C
/* The host tools have no co-resident hostile app timing them, and they verify and sign thousands
 * of times in the tests (3x slower without it, measured). Never on the device: see the header. */
#define MBEDTLS_ECP_NIST_OPTIM
#endif
#define MBEDTLS_ECDSA_C
#if defined(KEEL_MBEDTLS_HOST)
/* Bundle signatures (host only) and their golden vectors. Not on the device: with it, PK's
 * signatures (the TLS client's CertificateVerify) would be deterministic, which p256-m cannot
 * do, and would fall back to the slow built-in ECP. */
#define MBEDTLS_ECDSA_DETERMINISTIC
#define MBEDTLS_HMAC_DRBG_C             /* required by deterministic ECDSA */
#endif
#define MBEDTLS_ECDH_C
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_OID_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_BASE64_C

/* ---- random ---- */
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C

/* ---- PSA Crypto (TLS 1.3 key schedule; the core's crypto wrapper) ---- */
#define MBEDTLS_PSA_CRYPTO_C
/* Volatile keys held at once: a TLS handshake in flight (with MBEDTLS_USE_PSA_CRYPTO: its ECDHE
 * key, handshake and application traffic keys, the ticket's PSK, the peer's and our own key while
 * they verify or sign) plus the update engine (one or two keys for the length of a call, seal or
 * open) and a debug session frame (one). 16 leaves room; a slot costs ~50 bytes of RAM. */
#define MBEDTLS_PSA_KEY_SLOT_COUNT 16
#if !defined(KEEL_MBEDTLS_HOST)
/* P-256 key generation, ECDH and ECDSA through p256-m (3rdparty/p256-m, built by
 * cmake/keel_mbedtls.cmake): constant-time by design, ~3x faster than the built-in ECP without
 * NIST_OPTIM, a few KiB. PSA tries it first and falls back to the built-in code for what it does
 * not do (deterministic ECDSA). MBEDTLS_USE_PSA_CRYPTO makes PK, X.509 and TLS 1.2 go through
 * PSA too, so the whole handshake (ECDHE, chain and CertificateVerify checks, the client's
 * signature) uses it; psa_crypto_init() must run before any of them (kc_rng_init()). */
#define MBEDTLS_PSA_P256M_DRIVER_ENABLED
#define MBEDTLS_USE_PSA_CRYPTO
#endif

/* ---- host tools: keys, certificates, their files ---- */
#if defined(KEEL_MBEDTLS_HOST)
#define MBEDTLS_PK_WRITE_C
#define MBEDTLS_PEM_WRITE_C
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_X509_CREATE_C
#define MBEDTLS_X509_CRT_WRITE_C
#define MBEDTLS_ERROR_C
#endif

/* ---- TLS client: 1.3 by default, 1.2 when the fleet allows it; P-256 ECDHE + ECDSA, AES-128-GCM ---- */
#if defined(KEEL_MBEDTLS_TLS)
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_3
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED /* resumption with (EC)DHE */
#define MBEDTLS_SSL_SESSION_TICKETS
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_SSL_CIPHERSUITES \
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE  /* TLS 1.3 requires it */
#define MBEDTLS_SSL_IN_CONTENT_LEN 16384
#define MBEDTLS_SSL_OUT_CONTENT_LEN 4096
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#endif

#endif /* KEEL_MBEDTLS_CONFIG_H */

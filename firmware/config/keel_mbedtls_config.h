/*
 * Mbed TLS 2.28 configuration for Keel's secure firmware (Cortex-M33, no OS, no file system).
 * Selected with -DMBEDTLS_CONFIG_FILE="keel_mbedtls_config.h" (firmware/third_party.cmake sets it
 * PUBLIC, so everyone including mbedtls/ headers sees the same configuration).
 *
 * Only what Keel uses is compiled: SHA-256 (image and bundle hashes), AES-CTR/GCM and CMAC,
 * P-256 ECDSA (signature checks, debug session signatures) and ECDH, HKDF, and a CTR_DRBG. The TLS 1.2 client part is compiled only
 * with KEEL_MBEDTLS_TLS (the connectivity work turns it on).
 *
 * Entropy: QEMU's AN505 has no TRNG, and a timer-derived value would be guessable, so the only
 * entropy source is Mbed TLS's NV seed: a per-device seed provisioned into secure storage, mixed in
 * and rewritten on every boot. With MBEDTLS_PLATFORM_NV_SEED_ALT the firmware installs its storage
 * functions at boot with mbedtls_platform_set_nv_seed(); until it does, seeding fails (no silent
 * weak fallback).
 *
 * Memory: bignum/ECP allocate with calloc. MBEDTLS_PLATFORM_MEMORY is left undefined on purpose:
 * with it, lwIP's altcp_tls would route every Mbed TLS allocation to its small MEM_SIZE heap.
 */
#ifndef KEEL_MBEDTLS_CONFIG_H
#define KEEL_MBEDTLS_CONFIG_H

/* ---- system ---- */
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_ENTROPY_NV_SEED
#define MBEDTLS_PLATFORM_NV_SEED_ALT

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
#define MBEDTLS_SHA256_SMALLER
#define MBEDTLS_MD_C
#define MBEDTLS_HKDF_C          /* debug session keys (core/src/dbgsess.c) */

/* ---- public key: P-256 only ---- */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECDH_C
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C

/* ---- random ---- */
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C

/* ---- TLS 1.2 client: ECDHE-ECDSA-AES128-GCM-SHA256 only ---- */
#if defined(KEEL_MBEDTLS_TLS)
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_SSL_CIPHERSUITES MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_IN_CONTENT_LEN 16384
#define MBEDTLS_SSL_OUT_CONTENT_LEN 4096
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_OID_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_ERROR_C
#endif

#include "mbedtls/check_config.h"

#endif /* KEEL_MBEDTLS_CONFIG_H */

/* Keel's crypto over PSA Crypto: see keel/kcrypto.h. With kcrypto_rng.c (the device's NV-seeded
 * DRBG and PSA's external-RNG hook), the only file of Keel's own code that calls psa_*. */
#include <stdbool.h>
#include <string.h>

#include <mbedtls/pk.h>

#include "keel/kcrypto.h"

#define ECDSA_ALG PSA_ALG_ECDSA(PSA_ALG_SHA_256)
#define ECDSA_DET_ALG PSA_ALG_DETERMINISTIC_ECDSA(PSA_ALG_SHA_256)
#define P256_PAIR PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1)
#define P256_PUBLIC PSA_KEY_TYPE_ECC_PUBLIC_KEY(PSA_ECC_FAMILY_SECP_R1)

kc_rc_t kc_init(void)
{
    return psa_crypto_init() == PSA_SUCCESS ? KC_OK : KC_ERROR;
}

void kc_wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n-- > 0u) {
        *v++ = 0;
    }
}

int kc_random(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    return kc_init() == KC_OK && psa_generate_random(out, len) == PSA_SUCCESS ? 0 : -1;
}

/* Import key bytes as a volatile key of type/bits for one usage and algorithm. bad is what an
 * INVALID_ARGUMENT from PSA means for this key (out of range, not on the curve, wrong length). */
static kc_rc_t import(const uint8_t *key, size_t len, psa_key_type_t type, size_t bits,
                      psa_key_usage_t usage, psa_algorithm_t alg, kc_rc_t bad, psa_key_id_t *id)
{
    *id = PSA_KEY_ID_NULL;
    if (kc_init() != KC_OK) {
        return KC_ERROR;
    }
    psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
    psa_set_key_type(&a, type);
    psa_set_key_bits(&a, bits);
    psa_set_key_usage_flags(&a, usage);
    psa_set_key_algorithm(&a, alg);
    psa_status_t st = psa_import_key(&a, key, len, id);
    psa_reset_key_attributes(&a);
    if (st == PSA_SUCCESS) {
        return KC_OK;
    }
    return st == PSA_ERROR_INVALID_ARGUMENT || st == PSA_ERROR_NOT_SUPPORTED ? bad : KC_ERROR;
}

/* ---- SHA-256 ---- */

kc_rc_t kc_sha256(const void *p, size_t n, uint8_t out[KC_SHA256_SIZE])
{
    size_t olen = 0;
    return kc_init() == KC_OK &&
                   psa_hash_compute(PSA_ALG_SHA_256, p, n, out, KC_SHA256_SIZE, &olen) == PSA_SUCCESS
               ? KC_OK
               : KC_ERROR;
}

kc_rc_t kc_sha256_parts(const kc_part_t *parts, size_t nparts, uint8_t out[KC_SHA256_SIZE])
{
    kc_sha256_t h;
    kc_rc_t rc = kc_sha256_start(&h);
    for (size_t i = 0; rc == KC_OK && i < nparts; i++) {
        rc = kc_sha256_update(&h, parts[i].p, parts[i].n);
    }
    if (rc != KC_OK) {
        kc_sha256_abort(&h);
        return rc;
    }
    return kc_sha256_finish(&h, out);
}

kc_rc_t kc_sha256_start(kc_sha256_t *h)
{
    h->op = psa_hash_operation_init();
    return kc_init() == KC_OK && psa_hash_setup(&h->op, PSA_ALG_SHA_256) == PSA_SUCCESS ? KC_OK : KC_ERROR;
}

kc_rc_t kc_sha256_update(kc_sha256_t *h, const void *p, size_t n)
{
    return psa_hash_update(&h->op, p, n) == PSA_SUCCESS ? KC_OK : KC_ERROR;
}

kc_rc_t kc_sha256_finish(kc_sha256_t *h, uint8_t out[KC_SHA256_SIZE])
{
    size_t olen = 0;
    psa_status_t st = psa_hash_finish(&h->op, out, KC_SHA256_SIZE, &olen);
    psa_hash_abort(&h->op); /* a no-op after a successful finish; ends a failed one */
    return st == PSA_SUCCESS ? KC_OK : KC_ERROR;
}

void kc_sha256_abort(kc_sha256_t *h)
{
    psa_hash_abort(&h->op);
}

/* ---- HKDF ---- */

kc_rc_t kc_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                       const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len)
{
    if (kc_init() != KC_OK) {
        return KC_ERROR;
    }
    psa_key_derivation_operation_t op = PSA_KEY_DERIVATION_OPERATION_INIT;
    psa_status_t st = psa_key_derivation_setup(&op, PSA_ALG_HKDF(PSA_ALG_SHA_256));
    if (st == PSA_SUCCESS && salt_len > 0u) {
        st = psa_key_derivation_input_bytes(&op, PSA_KEY_DERIVATION_INPUT_SALT, salt, salt_len);
    }
    if (st == PSA_SUCCESS) {
        st = psa_key_derivation_input_bytes(&op, PSA_KEY_DERIVATION_INPUT_SECRET, ikm, ikm_len);
    }
    if (st == PSA_SUCCESS) {
        st = psa_key_derivation_input_bytes(&op, PSA_KEY_DERIVATION_INPUT_INFO, info, info_len);
    }
    if (st == PSA_SUCCESS) {
        st = psa_key_derivation_output_bytes(&op, okm, okm_len);
    }
    psa_key_derivation_abort(&op);
    if (st != PSA_SUCCESS) {
        kc_wipe(okm, okm_len);
        return KC_ERROR;
    }
    return KC_OK;
}

/* ---- AES-GCM ---- */

static kc_rc_t gcm_start(kc_gcm_t *g, bool encrypt, const uint8_t *key, size_t key_len,
                         const uint8_t nonce[KC_GCM_NONCE_SIZE])
{
    g->op = psa_aead_operation_init();
    if (key_len != 16u && key_len != 32u) {
        g->key = PSA_KEY_ID_NULL;
        return KC_BAD_PRIV;
    }
    kc_rc_t rc = import(key, key_len, PSA_KEY_TYPE_AES, PSA_BYTES_TO_BITS(key_len),
                        encrypt ? PSA_KEY_USAGE_ENCRYPT : PSA_KEY_USAGE_DECRYPT, PSA_ALG_GCM,
                        KC_BAD_PRIV, &g->key);
    if (rc != KC_OK) {
        return rc;
    }
    psa_status_t st = encrypt ? psa_aead_encrypt_setup(&g->op, g->key, PSA_ALG_GCM)
                              : psa_aead_decrypt_setup(&g->op, g->key, PSA_ALG_GCM);
    if (st == PSA_SUCCESS) {
        st = psa_aead_set_nonce(&g->op, nonce, KC_GCM_NONCE_SIZE);
    }
    if (st != PSA_SUCCESS) {
        kc_gcm_abort(g);
        return KC_ERROR;
    }
    return KC_OK;
}

void kc_gcm_abort(kc_gcm_t *g)
{
    psa_aead_abort(&g->op);
    if (g->key != PSA_KEY_ID_NULL) {
        psa_destroy_key(g->key);
        g->key = PSA_KEY_ID_NULL;
    }
}

/* For GCM an update's output is exactly as long as its input. */
static psa_status_t gcm_update(kc_gcm_t *g, const uint8_t *in, size_t n, uint8_t *out)
{
    size_t olen = 0;
    psa_status_t st = n == 0u ? PSA_SUCCESS : psa_aead_update(&g->op, in, n, out, n, &olen);
    return st == PSA_SUCCESS && olen != n ? PSA_ERROR_GENERIC_ERROR : st;
}

kc_rc_t kc_gcm_seal_start(kc_gcm_t *g, const uint8_t *key, size_t key_len,
                          const uint8_t nonce[KC_GCM_NONCE_SIZE])
{
    return gcm_start(g, true, key, key_len, nonce);
}

kc_rc_t kc_gcm_open_start(kc_gcm_t *g, const uint8_t *key, size_t key_len,
                          const uint8_t nonce[KC_GCM_NONCE_SIZE])
{
    return gcm_start(g, false, key, key_len, nonce);
}

kc_rc_t kc_gcm_update(kc_gcm_t *g, const uint8_t *in, size_t n, uint8_t *out)
{
    return gcm_update(g, in, n, out) == PSA_SUCCESS ? KC_OK : KC_ERROR;
}

kc_rc_t kc_gcm_seal_finish(kc_gcm_t *g, uint8_t tag[KC_GCM_TAG_SIZE])
{
    size_t olen = 0, tlen = 0;
    psa_status_t st = psa_aead_finish(&g->op, NULL, 0, &olen, tag, KC_GCM_TAG_SIZE, &tlen);
    kc_gcm_abort(g);
    return st == PSA_SUCCESS && olen == 0u && tlen == KC_GCM_TAG_SIZE ? KC_OK : KC_ERROR;
}

kc_rc_t kc_gcm_open_finish(kc_gcm_t *g, const uint8_t tag[KC_GCM_TAG_SIZE])
{
    size_t olen = 0;
    psa_status_t st = psa_aead_verify(&g->op, NULL, 0, &olen, tag, KC_GCM_TAG_SIZE);
    kc_gcm_abort(g);
    return st == PSA_SUCCESS ? KC_OK : st == PSA_ERROR_INVALID_SIGNATURE ? KC_BAD_TAG : KC_ERROR;
}

/* One-shot: start, the AAD, the text, finish. Seals when tag_out is set, else opens with tag_in. */
static kc_rc_t gcm_once(const uint8_t *key, size_t key_len, const uint8_t nonce[KC_GCM_NONCE_SIZE],
                        const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n,
                        uint8_t *out, uint8_t *tag_out, const uint8_t *tag_in)
{
    kc_gcm_t g;
    kc_rc_t rc = gcm_start(&g, tag_out != NULL, key, key_len, nonce);
    if (rc != KC_OK) {
        return rc;
    }
    psa_status_t st = aad_len == 0u ? PSA_SUCCESS : psa_aead_update_ad(&g.op, aad, aad_len);
    if (st == PSA_SUCCESS) {
        st = gcm_update(&g, in, n, out);
    }
    if (st != PSA_SUCCESS) {
        kc_gcm_abort(&g);
        return KC_ERROR;
    }
    return tag_out != NULL ? kc_gcm_seal_finish(&g, tag_out) : kc_gcm_open_finish(&g, tag_in);
}

kc_rc_t kc_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t nonce[KC_GCM_NONCE_SIZE],
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n, uint8_t *out,
                    uint8_t tag[KC_GCM_TAG_SIZE])
{
    return gcm_once(key, key_len, nonce, aad, aad_len, in, n, out, tag, NULL);
}

kc_rc_t kc_gcm_open(const uint8_t *key, size_t key_len, const uint8_t nonce[KC_GCM_NONCE_SIZE],
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t n,
                    const uint8_t tag[KC_GCM_TAG_SIZE], uint8_t *out)
{
    kc_rc_t rc = gcm_once(key, key_len, nonce, aad, aad_len, in, n, out, NULL, tag);
    if (rc != KC_OK) {
        kc_wipe(out, n); /* never hand out unauthenticated bytes */
    }
    return rc;
}

/* ---- P-256 ---- */

static kc_rc_t import_priv(const uint8_t priv[KC_P256_PRIV_SIZE], psa_key_usage_t usage,
                           psa_algorithm_t alg, psa_key_id_t *id)
{
    return import(priv, KC_P256_PRIV_SIZE, P256_PAIR, 256, usage, alg, KC_BAD_PRIV, id);
}

kc_rc_t kc_p256_pub_from_priv(const uint8_t priv[KC_P256_PRIV_SIZE], uint8_t pub[KC_P256_PUB_SIZE])
{
    psa_key_id_t id;
    kc_rc_t rc = import_priv(priv, 0, 0, &id);
    if (rc == KC_OK) {
        size_t olen = 0;
        if (psa_export_public_key(id, pub, KC_P256_PUB_SIZE, &olen) != PSA_SUCCESS ||
            olen != KC_P256_PUB_SIZE) {
            rc = KC_ERROR;
        }
        psa_destroy_key(id);
    }
    return rc;
}

kc_rc_t kc_p256_keygen(uint8_t priv[KC_P256_PRIV_SIZE], uint8_t pub[KC_P256_PUB_SIZE],
                       kc_rng_fn rng, void *rng_ctx)
{
    /* A uniform 256-bit string is out of range with probability < 2^-32: a handful of tries is
     * more than enough, and a bound keeps a broken RNG (all ones) from looping forever. */
    kc_rc_t rc = KC_ERROR;
    for (int tries = 0; tries < 8; tries++) {
        if (rng(rng_ctx, priv, KC_P256_PRIV_SIZE) != 0) {
            rc = KC_ERROR;
            break;
        }
        rc = kc_p256_pub_from_priv(priv, pub);
        if (rc != KC_BAD_PRIV) {
            break;
        }
    }
    if (rc != KC_OK) {
        kc_wipe(priv, KC_P256_PRIV_SIZE);
    }
    return rc;
}

kc_rc_t kc_p256_ecdh(const uint8_t priv[KC_P256_PRIV_SIZE], const uint8_t peer_pub[KC_P256_PUB_SIZE],
                     uint8_t secret[KC_P256_SECRET_SIZE])
{
    psa_key_id_t id;
    kc_rc_t rc = import_priv(priv, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, &id);
    if (rc != KC_OK) {
        return rc;
    }
    size_t olen = 0;
    psa_status_t st = psa_raw_key_agreement(PSA_ALG_ECDH, id, peer_pub, KC_P256_PUB_SIZE, secret,
                                            KC_P256_SECRET_SIZE, &olen);
    psa_destroy_key(id);
    if (st == PSA_SUCCESS && olen == KC_P256_SECRET_SIZE) {
        return KC_OK;
    }
    kc_wipe(secret, KC_P256_SECRET_SIZE);
    return st == PSA_ERROR_INVALID_ARGUMENT ? KC_BAD_KEY : KC_ERROR;
}

/* ---- keys in PK ----
 * Through PK's ECP accessors, the one place of ours that uses them. On Mbed TLS 4.x (no public
 * ECP) these become mbedtls_pk_get_psa_attributes() + mbedtls_pk_import_into_psa() +
 * psa_export_key() (out) and mbedtls_pk_copy_from_psa() (in); on 3.6 that route links 2.5 KiB more
 * into the microvisor (measured), so not yet. */

kc_rc_t kc_p256_from_pk(const mbedtls_pk_context *pk, uint8_t pub[KC_P256_PUB_SIZE],
                        uint8_t priv[KC_P256_PRIV_SIZE], bool *has_priv)
{
    *has_priv = false;
    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY) {
        return KC_BAD_KEY;
    }
    const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*pk);
    if (mbedtls_ecp_keypair_get_group_id(ec) != MBEDTLS_ECP_DP_SECP256R1) {
        return KC_OTHER_CURVE;
    }
    size_t olen = 0;
    if (mbedtls_ecp_write_public_key(ec, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, pub,
                                     KC_P256_PUB_SIZE) != 0 ||
        olen != KC_P256_PUB_SIZE) {
        return KC_ERROR;
    }
    if (priv == NULL) {
        return KC_OK;
    }
    /* A public key's scalar reads as absent (write_key fails), not as an error. */
    if (mbedtls_ecp_write_key_ext(ec, &olen, priv, KC_P256_PRIV_SIZE) == 0 &&
        olen == KC_P256_PRIV_SIZE) {
        *has_priv = true;
    } else {
        kc_wipe(priv, KC_P256_PRIV_SIZE);
    }
    return KC_OK;
}

kc_rc_t kc_p256_to_pk(mbedtls_pk_context *pk, const uint8_t priv[KC_P256_PRIV_SIZE],
                      const uint8_t pub[KC_P256_PUB_SIZE])
{
    if (mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0) {
        return KC_ERROR;
    }
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*pk);
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    kc_rc_t rc = KC_BAD_KEY;
    if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0 && pub[0] == 0x04 &&
        mbedtls_ecp_point_read_binary(&grp, &q, pub, KC_P256_PUB_SIZE) == 0 &&
        mbedtls_ecp_check_pubkey(&grp, &q) == 0) {
        rc = KC_OK;
        if (priv != NULL &&
            mbedtls_ecp_read_key(MBEDTLS_ECP_DP_SECP256R1, ec, priv, KC_P256_PRIV_SIZE) != 0) {
            rc = KC_BAD_PRIV;
        }
        if (rc == KC_OK && mbedtls_ecp_set_public_key(MBEDTLS_ECP_DP_SECP256R1, ec, &q) != 0) {
            rc = KC_ERROR;
        }
    }
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return rc;
}

kc_rc_t kc_p256_priv_from_key(const uint8_t *key, size_t len, uint8_t priv[KC_P256_PRIV_SIZE])
{
    if (kc_init() != KC_OK) {
        return KC_ERROR;
    }
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    uint8_t pub[KC_P256_PUB_SIZE];
    bool has_priv = false;
    kc_rc_t rc = KC_BAD_KEY;
    if (mbedtls_pk_parse_key(&pk, key, len, NULL, 0, kc_random, NULL) == 0) {
        rc = kc_p256_from_pk(&pk, pub, priv, &has_priv);
        rc = rc == KC_OK && !has_priv ? KC_ERROR : rc == KC_OTHER_CURVE ? KC_BAD_KEY : rc;
    }
    mbedtls_pk_free(&pk);
    if (rc != KC_OK) {
        kc_wipe(priv, KC_P256_PRIV_SIZE);
    }
    return rc;
}

kc_rc_t kc_p256_verify(const uint8_t pub[KC_P256_PUB_SIZE], const uint8_t hash[KC_SHA256_SIZE],
                       const uint8_t sig[KC_P256_SIG_SIZE])
{
    psa_key_id_t id;
    kc_rc_t rc = import(pub, KC_P256_PUB_SIZE, P256_PUBLIC, 256, PSA_KEY_USAGE_VERIFY_HASH,
                        ECDSA_ALG, KC_BAD_KEY, &id);
    if (rc != KC_OK) {
        return rc;
    }
    psa_status_t st = psa_verify_hash(id, ECDSA_ALG, hash, KC_SHA256_SIZE, sig, KC_P256_SIG_SIZE);
    psa_destroy_key(id);
    return st == PSA_SUCCESS ? KC_OK : st == PSA_ERROR_INVALID_SIGNATURE ? KC_BAD_SIG : KC_ERROR;
}

static kc_rc_t sign(psa_algorithm_t alg, const uint8_t priv[KC_P256_PRIV_SIZE],
                    const uint8_t hash[KC_SHA256_SIZE], uint8_t sig[KC_P256_SIG_SIZE])
{
    psa_key_id_t id;
    kc_rc_t rc = import_priv(priv, PSA_KEY_USAGE_SIGN_HASH, alg, &id);
    if (rc != KC_OK) {
        return rc;
    }
    size_t olen = 0;
    psa_status_t st = psa_sign_hash(id, alg, hash, KC_SHA256_SIZE, sig, KC_P256_SIG_SIZE, &olen);
    psa_destroy_key(id);
    return st == PSA_SUCCESS && olen == KC_P256_SIG_SIZE ? KC_OK : KC_ERROR;
}

kc_rc_t kc_p256_sign(const uint8_t priv[KC_P256_PRIV_SIZE], const uint8_t hash[KC_SHA256_SIZE],
                     uint8_t sig[KC_P256_SIG_SIZE])
{
    return sign(ECDSA_ALG, priv, hash, sig);
}

kc_rc_t kc_p256_sign_det(const uint8_t priv[KC_P256_PRIV_SIZE], const uint8_t hash[KC_SHA256_SIZE],
                         uint8_t sig[KC_P256_SIG_SIZE])
{
    return sign(ECDSA_DET_ALG, priv, hash, sig);
}

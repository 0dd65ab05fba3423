/* ECDSA P-256 shared by bundle.c and dbgsess.c: see p256.h. */
#include "p256.h"

#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <psa/crypto.h>

p256_rc_t p256_load_pub(mbedtls_ecp_group *grp, mbedtls_ecp_point *q, const uint8_t pub[P256_PUB_SIZE])
{
    if (mbedtls_ecp_group_load(grp, MBEDTLS_ECP_DP_SECP256R1) != 0) {
        return P256_ERROR;
    }
    if (pub[0] != 0x04 || mbedtls_ecp_point_read_binary(grp, q, pub, P256_PUB_SIZE) != 0 ||
        mbedtls_ecp_check_pubkey(grp, q) != 0) {
        return P256_BAD_KEY;
    }
    return P256_OK;
}

p256_rc_t p256_verify(const uint8_t pub[P256_PUB_SIZE], const uint8_t hash[P256_HASH_SIZE],
                      const uint8_t sig[P256_SIG_SIZE])
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r, s;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    p256_rc_t rc = p256_load_pub(&grp, &q, pub);
    if (rc == P256_OK) {
        rc = P256_BAD_SIG;
        if (mbedtls_mpi_read_binary(&r, sig, 32) == 0 &&
            mbedtls_mpi_read_binary(&s, sig + 32, 32) == 0 &&
            mbedtls_ecdsa_verify(&grp, hash, P256_HASH_SIZE, &q, &r, &s) == 0) {
            rc = P256_OK;
        }
    }
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return rc;
}

/* Import priv as a volatile P-256 key pair allowed to sign hashes with deterministic ECDSA. */
static p256_rc_t import_priv(const uint8_t priv[32], psa_key_id_t *id)
{
    if (psa_crypto_init() != PSA_SUCCESS) {
        return P256_ERROR;
    }
    psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
    psa_set_key_type(&a, PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1));
    psa_set_key_bits(&a, 256);
    psa_set_key_usage_flags(&a, PSA_KEY_USAGE_SIGN_HASH);
    psa_set_key_algorithm(&a, PSA_ALG_DETERMINISTIC_ECDSA(PSA_ALG_SHA_256));
    psa_status_t st = psa_import_key(&a, priv, 32, id);
    psa_reset_key_attributes(&a);
    return st == PSA_SUCCESS ? P256_OK : st == PSA_ERROR_INVALID_ARGUMENT ? P256_BAD_KEY : P256_ERROR;
}

p256_rc_t p256_pub_from_priv(const uint8_t priv[32], uint8_t pub[P256_PUB_SIZE])
{
    psa_key_id_t id = PSA_KEY_ID_NULL;
    p256_rc_t rc = import_priv(priv, &id);
    if (rc == P256_OK) {
        size_t olen = 0;
        if (psa_export_public_key(id, pub, P256_PUB_SIZE, &olen) != PSA_SUCCESS || olen != P256_PUB_SIZE) {
            rc = P256_ERROR;
        }
        psa_destroy_key(id);
    }
    return rc;
}

p256_rc_t p256_sign_det(const uint8_t priv[32], const uint8_t hash[P256_HASH_SIZE],
                        uint8_t sig[P256_SIG_SIZE])
{
    psa_key_id_t id = PSA_KEY_ID_NULL;
    p256_rc_t rc = import_priv(priv, &id);
    if (rc == P256_OK) {
        size_t olen = 0;
        if (psa_sign_hash(id, PSA_ALG_DETERMINISTIC_ECDSA(PSA_ALG_SHA_256), hash, P256_HASH_SIZE, sig,
                          P256_SIG_SIZE, &olen) != PSA_SUCCESS || olen != P256_SIG_SIZE) {
            rc = P256_ERROR;
        }
        psa_destroy_key(id);
    }
    return rc;
}

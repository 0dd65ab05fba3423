/* ECDSA P-256 shared by bundle.c and dbgsess.c: see p256.h. */
#include "p256.h"

#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>

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

/* The device's generator (keel/kcrypto.h, kc_rng_*): one CTR_DRBG over an entropy context whose
 * only source is Mbed TLS's NV seed, the storage of which the caller supplies (the microvisor's
 * two seed pages, firmware/microvisor/net/net_seed.c). Firmware only: it needs
 * MBEDTLS_ENTROPY_NV_SEED, MBEDTLS_PLATFORM_NV_SEED_ALT and MBEDTLS_PSA_CRYPTO_EXTERNAL_RNG
 * (firmware/config/keel_mbedtls_config.h). This file and the altcp patch are the only users of
 * the legacy entropy and CTR_DRBG API: in Mbed TLS 4.x (TF-PSA-Crypto) the DRBG becomes PSA's
 * own, NV-seeded the same way, and this file shrinks to the seed callbacks and
 * psa_crypto_init(). */
#include <stdbool.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/platform.h>

#include "keel/kcrypto.h"

#if !defined(MBEDTLS_ENTROPY_NV_SEED) || !defined(MBEDTLS_PLATFORM_NV_SEED_ALT) || \
    !defined(MBEDTLS_PSA_CRYPTO_EXTERNAL_RNG)
#error "kcrypto_rng.c needs the firmware's Mbed TLS configuration (NV seed, external RNG)"
#endif

static struct {
    const kc_nv_seed_ops_t *nv;
    bool ready;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} rng;

/* Mbed TLS's NV seed convention: the byte count on success, -1 on failure. */
static int nv_read(unsigned char *buf, size_t len)
{
    return rng.nv->read(rng.nv->ctx, buf, len) ? (int)len : -1;
}

static int nv_write(unsigned char *buf, size_t len)
{
    return rng.nv->write(rng.nv->ctx, buf, len) ? (int)len : -1;
}

kc_rng_rc_t kc_rng_init(const kc_nv_seed_ops_t *nv, const uint8_t *pers, size_t len, int *code)
{
    rng.nv = nv;
    mbedtls_platform_set_nv_seed(nv_read, nv_write);
    mbedtls_entropy_init(&rng.entropy);
    mbedtls_ctr_drbg_init(&rng.drbg);
    /* The first output of the entropy context reads the seed, mixes it in and writes the next one
     * (nv->write) before anything is returned; the DRBG reseeds from the same context every
     * MBEDTLS_CTR_DRBG_RESEED_INTERVAL requests (Mbed TLS's default). */
    *code = mbedtls_ctr_drbg_seed(&rng.drbg, mbedtls_entropy_func, &rng.entropy, pers, len);
    if (*code != 0)
        return KC_RNG_SEED_FAILED;
    rng.ready = true;
    /* PSA Crypto (TLS 1.3's key exchange and key schedule, kc_*) draws from this DRBG through
     * mbedtls_psa_external_get_random() below: initialised here, before any TLS handshake. */
    *code = (int)psa_crypto_init();
    if (*code != PSA_SUCCESS) {
        rng.ready = false;
        return KC_RNG_PSA_FAILED;
    }
    return KC_RNG_OK;
}

int kc_rng_random(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    if (!rng.ready)
        return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
    return mbedtls_ctr_drbg_random(&rng.drbg, out, len);
}

/* MBEDTLS_PSA_CRYPTO_EXTERNAL_RNG: PSA's random numbers come from the NV-seeded CTR_DRBG, so the
 * device has one DRBG seeded from its one secret, not a second one PSA would seed from the same NV
 * seed. Requests larger than the DRBG's per-call limit are split. */
psa_status_t mbedtls_psa_external_get_random(mbedtls_psa_external_random_context_t *context,
                                             uint8_t *output, size_t output_size, size_t *output_length)
{
    (void)context;
    *output_length = 0;
    while (*output_length < output_size) {
        size_t n = output_size - *output_length;
        if (n > MBEDTLS_CTR_DRBG_MAX_REQUEST)
            n = MBEDTLS_CTR_DRBG_MAX_REQUEST;
        if (kc_rng_random(NULL, output + *output_length, n) != 0)
            return PSA_ERROR_INSUFFICIENT_ENTROPY;
        *output_length += n;
    }
    return PSA_SUCCESS;
}

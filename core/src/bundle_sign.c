/*
 * Bundle signing (host only: the CLI and tests; devices only verify, bundle.c).
 *
 * Deterministic ECDSA (RFC 6979) so the same manifest and key always give the same bundle bytes:
 * builds are reproducible and golden vectors stay golden. The blinding RNG Mbed TLS asks for is
 * seeded from the host's entropy; it does not change the signature.
 */
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/sha256.h>

#include "keel/bundle.h"

#include "le.h"

/* Load priv into a keypair on P-256 (d and Q = dG). */
static kerr_t load_key(const uint8_t priv[32], mbedtls_ecp_keypair *kp,
                       mbedtls_ctr_drbg_context *drbg)
{
    if (mbedtls_ecp_group_load(&kp->grp, MBEDTLS_ECP_DP_SECP256R1) != 0) {
        return KERR_UPD_CRYPTO;
    }
    if (mbedtls_mpi_read_binary(&kp->d, priv, 32) != 0 ||
        mbedtls_ecp_check_privkey(&kp->grp, &kp->d) != 0) {
        return KERR_INVAL;
    }
    if (mbedtls_ecp_mul(&kp->grp, &kp->Q, &kp->d, &kp->grp.G, mbedtls_ctr_drbg_random, drbg) != 0) {
        return KERR_UPD_CRYPTO;
    }
    return KERR_OK;
}

/* Runs fn with a seeded DRBG and a loaded key pair, freeing everything after. */
typedef kerr_t (*with_key_fn)(mbedtls_ecp_keypair *kp, mbedtls_ctr_drbg_context *drbg, void *arg);

static kerr_t with_key(const uint8_t priv[32], with_key_fn fn, void *arg)
{
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ecp_keypair kp;
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ecp_keypair_init(&kp);
    static const char pers[] = "keel bundle sign";
    kerr_t err = KERR_UPD_CRYPTO;
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, (const unsigned char *)pers,
                              sizeof(pers) - 1u) == 0) {
        err = load_key(priv, &kp, &drbg);
        if (err == KERR_OK) {
            err = fn(&kp, &drbg, arg);
        }
    }
    mbedtls_ecp_keypair_free(&kp);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
    return err;
}

static kerr_t write_pub(mbedtls_ecp_keypair *kp, mbedtls_ctr_drbg_context *drbg, void *arg)
{
    size_t olen = 0;
    if (mbedtls_ecp_point_write_binary(&kp->grp, &kp->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, arg,
                                       KBDL_PUBKEY_SIZE) != 0 ||
        olen != KBDL_PUBKEY_SIZE) {
        return KERR_UPD_CRYPTO;
    }
    return KERR_OK;
}

kerr_t kbdl_pubkey(const uint8_t priv[32], uint8_t out[KBDL_PUBKEY_SIZE])
{
    return with_key(priv, write_pub, out);
}

typedef struct sign_job {
    const uint8_t *msg;
    uint32_t len;
    uint8_t *sig; /* 64 bytes r||s */
} sign_job_t;

static kerr_t sign_hash(mbedtls_ecp_keypair *kp, mbedtls_ctr_drbg_context *drbg, void *arg)
{
    sign_job_t *job = arg;
    uint8_t hash[32];
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    kerr_t err = KERR_UPD_CRYPTO;
    if (mbedtls_sha256_ret(job->msg, job->len, hash, 0) == 0 &&
        mbedtls_ecdsa_sign_det_ext(&kp->grp, &r, &s, &kp->d, hash, sizeof(hash), MBEDTLS_MD_SHA256,
                                   mbedtls_ctr_drbg_random, drbg) == 0 &&
        mbedtls_mpi_write_binary(&r, job->sig, 32) == 0 &&
        mbedtls_mpi_write_binary(&s, job->sig + 32, 32) == 0) {
        err = KERR_OK;
    }
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    return err;
}

kerr_t kbdl_sign(uint8_t *buf, uint32_t manifest_len, uint32_t cap, const uint8_t priv[32])
{
    if (cap < manifest_len || cap - manifest_len < KBDL_SIG_ENV_SIZE) {
        return KERR_NOMEM;
    }
    uint8_t *env = buf + manifest_len;
    le_put32(env, KBDL_SIG_MAGIC);
    le_put16(env + 4, KBDL_SIG_SIZE);
    le_put16(env + 6, 0);
    sign_job_t job = {buf, manifest_len, env + 8};
    return with_key(priv, sign_hash, &job);
}

/* kbdl_build and kbdl_build_delta: delta (base_sha, patch fields) is NULL for a page bundle. */
static kerr_t build(const kbdl_manifest_t *tmpl, const uint8_t *region, uint32_t region_len,
                    uint32_t content_off, uint32_t content_len, const kbdl_layer_t *delta,
                    const uint8_t priv[32], uint8_t *out, uint32_t cap, uint32_t *out_len)
{
    static const uint32_t max_len = KBDL_MAX_BLOCKS * 65536u;
    uint32_t bs = tmpl->block_size;
    if (bs == 0u || region_len == 0u || region_len > max_len || region_len % bs != 0u ||
        region_len / bs > KBDL_MAX_BLOCKS || content_off > region_len ||
        content_len > region_len - content_off) {
        return KERR_INVAL;
    }
    uint8_t hashes[KBDL_MAX_BLOCKS * 32u];
    kbdl_manifest_t m = *tmpl;
    m.layer_count = 1;
    kbdl_layer_t *l = &m.layers[0];
    memset(&m.layers[1], 0, sizeof(m.layers) - sizeof(m.layers[0]));
    l->region_len = region_len;
    l->offset = content_off;
    l->size = content_len;
    l->block_count = region_len / bs;
    l->block_sha = delta ? NULL : hashes;
    l->delta = delta != NULL;
    if (delta) {
        l->patch_size = delta->patch_size;
        memcpy(l->base_sha, delta->base_sha, 32);
        memcpy(l->patch_sha, delta->patch_sha, 32);
    }
    for (uint32_t i = 0; !delta && i < l->block_count; i++) {
        if (mbedtls_sha256_ret(region + i * bs, bs, hashes + i * 32u, 0) != 0) {
            return KERR_UPD_CRYPTO;
        }
    }
    if (mbedtls_sha256_ret(region + content_off, content_len, l->content_sha, 0) != 0 ||
        mbedtls_sha256_ret(region, region_len, l->region_sha, 0) != 0) {
        return KERR_UPD_CRYPTO;
    }
    uint8_t pub[KBDL_PUBKEY_SIZE];
    kerr_t err = kbdl_pubkey(priv, pub);
    if (err != KERR_OK) {
        return err;
    }
    kbdl_key_id(pub, m.key_id);
    uint32_t len;
    err = kbdl_encode(&m, out, cap, &len);
    if (err == KERR_OK) {
        err = kbdl_sign(out, len, cap, priv);
    }
    if (err == KERR_OK) {
        *out_len = len + KBDL_SIG_ENV_SIZE;
    }
    return err;
}

kerr_t kbdl_build(const kbdl_manifest_t *tmpl, const uint8_t *region, uint32_t region_len,
                  uint32_t content_off, uint32_t content_len, const uint8_t priv[32],
                  uint8_t *out, uint32_t cap, uint32_t *out_len)
{
    return build(tmpl, region, region_len, content_off, content_len, NULL, priv, out, cap,
                 out_len);
}

kerr_t kbdl_build_delta(const kbdl_manifest_t *tmpl, const uint8_t *region, uint32_t region_len,
                        uint32_t content_off, uint32_t content_len, const uint8_t base_sha[32],
                        const uint8_t *patch, uint32_t patch_len, const uint8_t priv[32],
                        uint8_t *out, uint32_t cap, uint32_t *out_len)
{
    kbdl_layer_t d;
    if (patch == NULL || patch_len == 0u || patch_len > region_len) {
        return KERR_INVAL;
    }
    d.patch_size = patch_len;
    memcpy(d.base_sha, base_sha, 32);
    if (mbedtls_sha256_ret(patch, patch_len, d.patch_sha, 0) != 0) {
        return KERR_UPD_CRYPTO;
    }
    return build(tmpl, region, region_len, content_off, content_len, &d, priv, out, cap, out_len);
}

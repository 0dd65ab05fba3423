/*
 * Bundle signing (host only: the CLI and tests; devices only verify, bundle.c).
 *
 * Deterministic ECDSA (RFC 6979) so the same manifest and key always give the same bundle bytes:
 * builds are reproducible and golden vectors stay golden (keel/kcrypto.h, over PSA Crypto).
 */
#include <string.h>

#include "keel/bundle.h"
#include "keel/kcrypto.h"

#include "le.h"

static kerr_t p256_err(kc_rc_t rc)
{
    return rc == KC_OK ? KERR_OK : rc == KC_BAD_PRIV ? KERR_INVAL : KERR_UPD_CRYPTO;
}

kerr_t kbdl_pubkey(const uint8_t priv[32], uint8_t out[KBDL_PUBKEY_SIZE])
{
    return p256_err(kc_p256_pub_from_priv(priv, out));
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
    uint8_t hash[KC_SHA256_SIZE];
    if (kc_sha256(buf, manifest_len, hash) != KC_OK) {
        return KERR_UPD_CRYPTO;
    }
    return p256_err(kc_p256_sign_det(priv, hash, env + 8));
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
        if (kc_sha256(region + i * bs, bs, hashes + i * 32u) != KC_OK) {
            return KERR_UPD_CRYPTO;
        }
    }
    if (kc_sha256(region + content_off, content_len, l->content_sha) != KC_OK ||
        kc_sha256(region, region_len, l->region_sha) != KC_OK) {
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
    if (kc_sha256(patch, patch_len, d.patch_sha) != KC_OK) {
        return KERR_UPD_CRYPTO;
    }
    return build(tmpl, region, region_len, content_off, content_len, &d, priv, out, cap, out_len);
}

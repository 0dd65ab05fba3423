/*
 * Bundle manifest codec and verification (format: bundle.h, docs/bundle.md).
 *
 * The decoder treats every byte as hostile: each length and offset is checked against the input
 * before it is used, reserved bytes must be zero (so a future field cannot be silently ignored by
 * an old device), and the manifest length must equal exactly what the header, layers and hash
 * tables add up to. Verification does the cheap identity checks after the signature, so a claim
 * (device type, counter) is only acted on once it is known to come from a trusted key.
 */
#include <string.h>

#include "keel/bundle.h"
#include "keel/kcrypto.h"

#include "le.h"

static bool all_zero(const uint8_t *p, uint32_t n)
{
    uint8_t acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0u;
}

static bool is_pow2(uint32_t v)
{
    return v != 0u && (v & (v - 1u)) == 0u;
}

uint32_t kbdl_manifest_size(const kbdl_manifest_t *m)
{
    uint32_t n = KBDL_HDR_SIZE + m->layer_count * KBDL_LAYER_SIZE;
    for (uint32_t i = 0; i < m->layer_count && i < KBDL_MAX_LAYERS; i++) {
        n += m->layers[i].delta ? KBDL_DELTA_REC_SIZE : m->layers[i].block_count * 32u;
    }
    return n;
}

/* The layer rules shared by encoder and decoder. */
static bool layer_ok(const kbdl_layer_t *l, uint32_t block_size)
{
    return l->block_count >= 1u && l->block_count <= KBDL_MAX_BLOCKS &&
           l->region_len == l->block_count * block_size && l->offset <= l->region_len &&
           l->size <= l->region_len - l->offset &&
           (!l->delta || (l->patch_size >= 1u && l->patch_size <= l->region_len));
}

kerr_t kbdl_encode(const kbdl_manifest_t *m, uint8_t *out, uint32_t cap, uint32_t *out_len)
{
    if (m->layer_count < 1u || m->layer_count > KBDL_MAX_LAYERS || !is_pow2(m->block_size) ||
        m->block_size < 512u || m->block_size > 65536u) {
        return KERR_INVAL;
    }
    bool delta = m->layers[0].delta;
    for (uint32_t i = 0; i < m->layer_count; i++) {
        const kbdl_layer_t *l = &m->layers[i];
        if (!layer_ok(l, m->block_size) || (!l->delta && l->block_sha == NULL) ||
            (l->delta && m->layer_count != 1u)) {
            return KERR_INVAL;
        }
    }
    uint32_t len = kbdl_manifest_size(m);
    if (cap < len) {
        return KERR_NOMEM;
    }
    memset(out, 0, KBDL_HDR_SIZE + m->layer_count * KBDL_LAYER_SIZE);
    le_put32(out + KBDL_OFF_MAGIC, KBDL_MAGIC);
    le_put16(out + KBDL_OFF_FMT_VERSION, delta ? KBDL_FMT_DELTA : KBDL_FMT_VERSION);
    le_put16(out + KBDL_OFF_HDR_SIZE, KBDL_HDR_SIZE);
    le_put32(out + KBDL_OFF_MANIFEST_LEN, len);
    le_put32(out + KBDL_OFF_VERSION, m->version);
    le_put32(out + KBDL_OFF_COUNTER, m->security_counter);
    le_put32(out + KBDL_OFF_MIN_UV, m->min_uv_version);
    le_put32(out + KBDL_OFF_DEVICE_TYPE, m->device_type);
    le_put32(out + KBDL_OFF_BLOCK_SIZE, m->block_size);
    memcpy(out + KBDL_OFF_KEY_ID, m->key_id, KBDL_KEY_ID_SIZE);
    le_put16(out + KBDL_OFF_LAYER_COUNT, (uint16_t)m->layer_count);
    le_put16(out + KBDL_OFF_LAYER_SIZE, KBDL_LAYER_SIZE);
    le_put32(out + KBDL_OFF_BACKOFF_MIN, m->policy.backoff_min_ms);
    le_put32(out + KBDL_OFF_BACKOFF_MAX, m->policy.backoff_max_ms);
    le_put32(out + KBDL_OFF_POLITENESS, m->policy.politeness_s);
    le_put32(out + KBDL_OFF_TRIAL, m->policy.trial_s);
    if (m->policy.has_debug_key) {
        memcpy(out + KBDL_OFF_DEBUG_KEY, m->policy.debug_key, KBDL_PUBKEY_SIZE);
    }
    uint32_t hash_off = KBDL_HDR_SIZE + m->layer_count * KBDL_LAYER_SIZE;
    for (uint32_t i = 0; i < m->layer_count; i++) {
        const kbdl_layer_t *l = &m->layers[i];
        uint8_t *e = out + KBDL_HDR_SIZE + i * KBDL_LAYER_SIZE;
        e[KBDL_LOFF_REGION] = l->region;
        e[KBDL_LOFF_FLAGS] = l->delta ? KBDL_LAYER_DELTA : 0u;
        le_put32(e + KBDL_LOFF_REGION_LEN, l->region_len);
        le_put32(e + KBDL_LOFF_OFFSET, l->offset);
        le_put32(e + KBDL_LOFF_SIZE, l->size);
        le_put32(e + KBDL_LOFF_KEY_ID, l->enc_key_id);
        le_put32(e + KBDL_LOFF_BLOCKS, l->block_count);
        le_put32(e + KBDL_LOFF_HASH_OFF, hash_off);
        memcpy(e + KBDL_LOFF_CONTENT_SHA, l->content_sha, 32);
        memcpy(e + KBDL_LOFF_REGION_SHA, l->region_sha, 32);
        if (l->delta) {
            uint8_t *d = out + hash_off;
            memset(d, 0, KBDL_DELTA_REC_SIZE);
            memcpy(d + KBDL_DOFF_BASE_SHA, l->base_sha, 32);
            memcpy(d + KBDL_DOFF_PATCH_SHA, l->patch_sha, 32);
            le_put32(d + KBDL_DOFF_PATCH_SIZE, l->patch_size);
            le_put32(d + KBDL_DOFF_PATCH_FMT, KBDL_PATCH_FMT);
            hash_off += KBDL_DELTA_REC_SIZE;
            continue;
        }
        memmove(out + hash_off, l->block_sha, l->block_count * 32u);
        hash_off += l->block_count * 32u;
    }
    *out_len = len;
    return KERR_OK;
}

/* The delta record of a KBDL_FMT_DELTA layer, at *off. */
static kerr_t decode_delta(const uint8_t *in, uint32_t mlen, uint32_t *off, kbdl_layer_t *l)
{
    if (KBDL_DELTA_REC_SIZE > mlen - *off) {
        return KERR_BDL_MALFORMED;
    }
    const uint8_t *d = in + *off;
    memcpy(l->base_sha, d + KBDL_DOFF_BASE_SHA, 32);
    memcpy(l->patch_sha, d + KBDL_DOFF_PATCH_SHA, 32);
    l->patch_size = le_get32(d + KBDL_DOFF_PATCH_SIZE);
    if (le_get32(d + KBDL_DOFF_PATCH_FMT) != KBDL_PATCH_FMT) {
        return le_get32(d + KBDL_DOFF_PATCH_FMT) > KBDL_PATCH_FMT ? KERR_BDL_VERSION
                                                                   : KERR_BDL_MALFORMED;
    }
    if (!all_zero(d + 72, KBDL_DELTA_REC_SIZE - 72u)) {
        return KERR_BDL_MALFORMED;
    }
    *off += KBDL_DELTA_REC_SIZE;
    return KERR_OK;
}

static kerr_t decode_layer(const uint8_t *in, uint32_t mlen, uint32_t i, uint32_t block_size,
                           bool delta, uint32_t *hash_off, kbdl_layer_t *l)
{
    const uint8_t *e = in + KBDL_HDR_SIZE + i * KBDL_LAYER_SIZE;
    l->region = e[KBDL_LOFF_REGION];
    l->region_len = le_get32(e + KBDL_LOFF_REGION_LEN);
    l->offset = le_get32(e + KBDL_LOFF_OFFSET);
    l->size = le_get32(e + KBDL_LOFF_SIZE);
    l->enc_key_id = le_get32(e + KBDL_LOFF_KEY_ID);
    l->block_count = le_get32(e + KBDL_LOFF_BLOCKS);
    memcpy(l->content_sha, e + KBDL_LOFF_CONTENT_SHA, 32);
    memcpy(l->region_sha, e + KBDL_LOFF_REGION_SHA, 32);
    l->delta = delta;
    if (e[KBDL_LOFF_FLAGS] != (delta ? KBDL_LAYER_DELTA : 0u) || le_get16(e + 2) != 0u ||
        le_get32(e + 28) != 0u || le_get32(e + KBDL_LOFF_HASH_OFF) != *hash_off) {
        return KERR_BDL_MALFORMED;
    }
    if (delta) {
        kerr_t err = decode_delta(in, mlen, hash_off, l);
        return err != KERR_OK ? err : layer_ok(l, block_size) ? KERR_OK : KERR_BDL_MALFORMED;
    }
    if (!layer_ok(l, block_size)) {
        return KERR_BDL_MALFORMED;
    }
    /* Hash tables follow the layer table back to back, in layer order: nothing to skip. */
    if (
        l->block_count * 32u > mlen - *hash_off) {
        return KERR_BDL_MALFORMED;
    }
    l->block_sha = in + *hash_off;
    *hash_off += l->block_count * 32u;
    return KERR_OK;
}

kerr_t kbdl_decode(const uint8_t *in, uint32_t len, kbdl_manifest_t *out)
{
    memset(out, 0, sizeof(*out));
    if (in == NULL || len < KBDL_HDR_SIZE) {
        return KERR_BDL_TRUNCATED;
    }
    if (le_get32(in + KBDL_OFF_MAGIC) != KBDL_MAGIC) {
        return KERR_BDL_MALFORMED;
    }
    uint32_t fmt = le_get16(in + KBDL_OFF_FMT_VERSION);
    if (fmt != KBDL_FMT_VERSION && fmt != KBDL_FMT_DELTA) {
        return fmt > KBDL_FMT_DELTA ? KERR_BDL_VERSION : KERR_BDL_MALFORMED;
    }
    bool delta = fmt == KBDL_FMT_DELTA;
    uint32_t mlen = le_get32(in + KBDL_OFF_MANIFEST_LEN);
    out->manifest_len = mlen;
    out->layer_count = le_get16(in + KBDL_OFF_LAYER_COUNT);
    out->block_size = le_get32(in + KBDL_OFF_BLOCK_SIZE);
    if (le_get16(in + KBDL_OFF_HDR_SIZE) != KBDL_HDR_SIZE ||
        le_get16(in + KBDL_OFF_LAYER_SIZE) != KBDL_LAYER_SIZE || out->layer_count < 1u ||
        out->layer_count > KBDL_MAX_LAYERS || (delta && out->layer_count != 1u) ||
        !is_pow2(out->block_size) ||
        out->block_size < 512u || out->block_size > 65536u || mlen > KBDL_MAX_MANIFEST ||
        mlen < KBDL_HDR_SIZE + out->layer_count * KBDL_LAYER_SIZE ||
        !all_zero(in + KBDL_OFF_DEBUG_KEY + KBDL_PUBKEY_SIZE, 3)) {
        return KERR_BDL_MALFORMED;
    }
    if (len < mlen + KBDL_SIG_ENV_SIZE) {
        return KERR_BDL_TRUNCATED;
    }
    out->version = le_get32(in + KBDL_OFF_VERSION);
    out->security_counter = le_get32(in + KBDL_OFF_COUNTER);
    out->min_uv_version = le_get32(in + KBDL_OFF_MIN_UV);
    out->device_type = le_get32(in + KBDL_OFF_DEVICE_TYPE);
    memcpy(out->key_id, in + KBDL_OFF_KEY_ID, KBDL_KEY_ID_SIZE);
    out->policy.backoff_min_ms = le_get32(in + KBDL_OFF_BACKOFF_MIN);
    out->policy.backoff_max_ms = le_get32(in + KBDL_OFF_BACKOFF_MAX);
    out->policy.politeness_s = le_get32(in + KBDL_OFF_POLITENESS);
    out->policy.trial_s = le_get32(in + KBDL_OFF_TRIAL);
    const uint8_t *dk = in + KBDL_OFF_DEBUG_KEY;
    out->policy.has_debug_key = !all_zero(dk, KBDL_PUBKEY_SIZE);
    if (out->policy.has_debug_key && dk[0] != 0x04u) {
        return KERR_BDL_MALFORMED;
    }
    memcpy(out->policy.debug_key, dk, KBDL_PUBKEY_SIZE);
    if (out->policy.backoff_min_ms > out->policy.backoff_max_ms) {
        return KERR_BDL_MALFORMED;
    }
    uint32_t hash_off = KBDL_HDR_SIZE + out->layer_count * KBDL_LAYER_SIZE;
    for (uint32_t i = 0; i < out->layer_count; i++) {
        kerr_t err = decode_layer(in, mlen, i, out->block_size, delta, &hash_off, &out->layers[i]);
        if (err != KERR_OK) {
            return err;
        }
    }
    if (hash_off != mlen) {
        return KERR_BDL_MALFORMED;
    }
    const uint8_t *env = in + mlen;
    if (le_get32(env) != KBDL_SIG_MAGIC || le_get16(env + 4) != KBDL_SIG_SIZE ||
        le_get16(env + 6) != 0u) {
        return KERR_BDL_MALFORMED;
    }
    memcpy(out->sig, env + 8, KBDL_SIG_SIZE);
    return KERR_OK;
}

void kbdl_key_id(const uint8_t pub[KBDL_PUBKEY_SIZE], uint8_t out[KBDL_KEY_ID_SIZE])
{
    uint8_t h[32];
    if (kc_sha256(pub, KBDL_PUBKEY_SIZE, h) != KC_OK) {
        memset(h, 0, sizeof(h)); /* matches no key: PSA cannot fail to hash */
    }
    memcpy(out, h, KBDL_KEY_ID_SIZE);
}

_Static_assert(KBDL_PUBKEY_SIZE == KC_P256_PUB_SIZE && KBDL_SIG_SIZE == KC_P256_SIG_SIZE, "bundle keys are P-256");

/* ECDSA P-256 over SHA-256(msg). KERR_BDL_SIGNATURE on mismatch or an invalid key/signature. */
static kerr_t ecdsa_check(const uint8_t pub[KBDL_PUBKEY_SIZE], const uint8_t *msg, uint32_t len,
                          const uint8_t sig[KBDL_SIG_SIZE])
{
    uint8_t hash[KC_SHA256_SIZE];
    if (kc_sha256(msg, len, hash) != KC_OK) {
        return KERR_UPD_CRYPTO;
    }
    switch (kc_p256_verify(pub, hash, sig)) {
    case KC_OK: return KERR_OK;
    case KC_ERROR: return KERR_UPD_CRYPTO;
    default: return KERR_BDL_SIGNATURE;
    }
}

kerr_t kbdl_verify(const uint8_t *in, uint32_t len, const kbdl_trust_t *trust,
                   kbdl_manifest_t *out)
{
    kerr_t err = kbdl_decode(in, len, out);
    if (err != KERR_OK) {
        return err;
    }
    const kbdl_key_t *key = NULL;
    for (uint32_t i = 0; i < trust->key_count && key == NULL; i++) {
        uint8_t id[KBDL_KEY_ID_SIZE];
        kbdl_key_id(trust->keys[i].pub, id);
        if (memcmp(id, out->key_id, sizeof(id)) == 0) {
            key = &trust->keys[i];
        }
    }
    if (key == NULL) {
        return KERR_BDL_KEY;
    }
    err = ecdsa_check(key->pub, in, out->manifest_len, out->sig);
    if (err != KERR_OK) {
        return err;
    }
    if (out->device_type != trust->device_type) {
        return KERR_BDL_DEVICE;
    }
    if (out->security_counter < trust->installed_counter) {
        return KERR_BDL_COUNTER;
    }
    if (out->min_uv_version > trust->uv_version) {
        return KERR_BDL_UV_VERSION;
    }
    return KERR_OK;
}

kerr_t kbdl_block_payload(const kbdl_manifest_t *m, uint32_t idx, uint32_t *out_off,
                          uint32_t *out_len, uint32_t *out_in_block)
{
    const kbdl_layer_t *l = &m->layers[0];
    if (m->layer_count == 0u || idx >= l->block_count) {
        return KERR_RANGE;
    }
    uint32_t b0 = idx * m->block_size, b1 = b0 + m->block_size;
    uint32_t start = l->delta ? 0u : l->offset, size = l->delta ? l->patch_size : l->size;
    uint32_t a = b0 > start ? b0 : start;
    uint32_t e = b1 < start + size ? b1 : start + size;
    *out_in_block = a < b1 ? a - b0 : 0u;
    *out_off = kbdl_signed_size(m) + (a - start);
    *out_len = e > a ? e - a : 0u;
    return KERR_OK;
}

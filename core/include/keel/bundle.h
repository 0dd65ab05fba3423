/*
 * Update bundles: the signed manifest codec and its verification (docs/bundle.md).
 *
 * One codec for the device (microvisor), keeld and the keel CLI. A bundle is
 *
 *   +---------------------------+  offset 0
 *   | manifest (manifest_len B) |  header 128 B | layers 96 B each | per-block SHA-256 tables
 *   +---------------------------+
 *   | signature envelope (72 B) |  "KBSG", sig_len=64, reserved, ECDSA P-256 r||s (32+32, big end.)
 *   +---------------------------+
 *   | layer payloads            |  content bytes of each layer, in layer order (not signed
 *   +---------------------------+  directly: every byte is covered by the manifest's hashes)
 *
 * The signature is over SHA-256 of the exact manifest bytes [0, manifest_len). Encoding is
 * little-endian at fixed offsets (KBDL_OFF_*), like app_image.h, with an explicit format version:
 * persisted: never renumber or move a field; new fields take reserved bytes.
 *
 * Inspect, then execute: kbdl_verify() is read-only and decides everything (key, signature,
 * device type, anti-rollback, microvisor version, layer sanity) before the update engine writes
 * anything.
 */
#ifndef KEEL_BUNDLE_H
#define KEEL_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

#define KBDL_MAGIC 0x464D424Bu     /* "KBMF" */
#define KBDL_SIG_MAGIC 0x4753424Bu /* "KBSG" */
#define KBDL_FMT_VERSION 1u
#define KBDL_FMT_DELTA 2u        /* a delta bundle: one app layer whose payload is a patch */
#define KBDL_HDR_SIZE 128u
#define KBDL_LAYER_SIZE 96u
#define KBDL_SIG_SIZE 64u        /* r||s */
#define KBDL_SIG_ENV_SIZE 72u    /* magic, sig_len, reserved, r||s */
#define KBDL_MAX_LAYERS 4u
#define KBDL_KEY_ID_SIZE 8u      /* first 8 bytes of SHA-256(public key) */
#define KBDL_PUBKEY_SIZE 65u     /* uncompressed P-256 point: 0x04 || X || Y */
#define KBDL_MAX_BLOCKS 192u     /* per layer: 1.5 MiB of 8 KiB blocks */
#define KBDL_MAX_MANIFEST (KBDL_HDR_SIZE + KBDL_MAX_LAYERS * KBDL_LAYER_SIZE + \
                           KBDL_MAX_BLOCKS * 32u) /* the device keeps one manifest of this size */

/* Header field offsets. */
#define KBDL_OFF_MAGIC 0u
#define KBDL_OFF_FMT_VERSION 4u   /* u16 */
#define KBDL_OFF_HDR_SIZE 6u      /* u16 */
#define KBDL_OFF_MANIFEST_LEN 8u
#define KBDL_OFF_VERSION 12u      /* bundle version, kapp_version_pack() */
#define KBDL_OFF_COUNTER 16u      /* monotonic security counter */
#define KBDL_OFF_MIN_UV 20u       /* minimum microvisor version, packed like the bundle version */
#define KBDL_OFF_DEVICE_TYPE 24u
#define KBDL_OFF_BLOCK_SIZE 28u   /* the board's internal flash page (8192 on QEMU boards) */
#define KBDL_OFF_KEY_ID 32u       /* 8 bytes */
#define KBDL_OFF_LAYER_COUNT 40u  /* u16 */
#define KBDL_OFF_LAYER_SIZE 42u   /* u16 */
#define KBDL_OFF_BACKOFF_MIN 44u  /* ms */
#define KBDL_OFF_BACKOFF_MAX 48u  /* ms */
#define KBDL_OFF_POLITENESS 52u   /* s from "staged" until the microvisor applies anyway */
#define KBDL_OFF_TRIAL 56u        /* s the new app has to confirm */
#define KBDL_OFF_DEBUG_KEY 60u    /* 65 bytes, all zero: no debug access */
/* 125..127 reserved, zero */

/* Layer field offsets (relative to the layer entry). */
#define KBDL_LOFF_REGION 0u       /* u8: KBDL_REGION_* */
#define KBDL_LOFF_FLAGS 1u        /* u8: zero, or KBDL_LAYER_DELTA in a KBDL_FMT_DELTA manifest */
#define KBDL_LOFF_REGION_LEN 4u   /* bytes of region the layer defines: block_count * block_size */
#define KBDL_LOFF_OFFSET 8u       /* content offset in the region */
#define KBDL_LOFF_SIZE 12u        /* content bytes */
#define KBDL_LOFF_KEY_ID 16u      /* encryption key id (0: the device staging key) */
#define KBDL_LOFF_BLOCKS 20u      /* block count */
#define KBDL_LOFF_HASH_OFF 24u    /* offset of the block hash table (delta: the delta record) */
#define KBDL_LOFF_CONTENT_SHA 32u /* SHA-256 of the content bytes */
#define KBDL_LOFF_REGION_SHA 64u  /* SHA-256 of the whole region as it must end up */

/*
 * Delta bundles (fmt_version KBDL_FMT_DELTA, docs/bundle.md "Delta bundles"): the one layer has
 * KBDL_LAYER_DELTA set and, instead of a block hash table, a 96-byte delta record naming the base
 * the patch applies to and the patch; the payload is the patch (docs/delta.md). content_sha and
 * region_sha still describe the result; block_count is the region's. The device derives the
 * per-block hashes from the decoded result after checking it against region_sha.
 */
#define KBDL_LAYER_DELTA 0x01u
#define KBDL_DELTA_REC_SIZE 96u
#define KBDL_DOFF_BASE_SHA 0u     /* SHA-256 of the whole region the patch applies to */
#define KBDL_DOFF_PATCH_SHA 32u   /* SHA-256 of the patch (the payload) */
#define KBDL_DOFF_PATCH_SIZE 64u  /* patch bytes, 1 .. region_len */
#define KBDL_DOFF_PATCH_FMT 68u   /* patch format: KDLT_VERSION (delta.h) */
/* 72..95 reserved, zero */
#define KBDL_PATCH_FMT 1u

/* persisted: never renumber. */
enum {
    KBDL_REGION_APP = 1, /* the app slot of internal flash: header page + image */
};

typedef struct kbdl_layer {
    uint8_t region;
    uint32_t region_len;
    uint32_t offset;
    uint32_t size;
    uint32_t enc_key_id;
    uint32_t block_count;
    uint8_t content_sha[32];
    uint8_t region_sha[32];   /* bytes outside [offset, offset+size) are 0xFF */
    const uint8_t *block_sha; /* block_count * 32 bytes; points into the decoded buffer;
                                 NULL in a delta layer until the device derived them */
    bool delta;               /* KBDL_LAYER_DELTA: the payload is a patch against base_sha */
    uint32_t patch_size;
    uint8_t base_sha[32];
    uint8_t patch_sha[32];
} kbdl_layer_t;

typedef struct kbdl_policy {
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
    uint32_t politeness_s;
    uint32_t trial_s;
    bool has_debug_key;
    uint8_t debug_key[KBDL_PUBKEY_SIZE];
} kbdl_policy_t;

typedef struct kbdl_manifest {
    uint32_t manifest_len;     /* signed bytes */
    uint32_t version;
    uint32_t security_counter;
    uint32_t min_uv_version;
    uint32_t device_type;
    uint32_t block_size;
    uint8_t key_id[KBDL_KEY_ID_SIZE];
    kbdl_policy_t policy;
    uint32_t layer_count;
    kbdl_layer_t layers[KBDL_MAX_LAYERS];
    uint8_t sig[KBDL_SIG_SIZE]; /* filled by kbdl_decode */
} kbdl_manifest_t;

typedef struct kbdl_key {
    uint8_t pub[KBDL_PUBKEY_SIZE];
} kbdl_key_t;

/* What the device accepts (inputs of kbdl_verify). */
typedef struct kbdl_trust {
    const kbdl_key_t *keys; /* fleet signing keys provisioned with the device */
    uint32_t key_count;
    uint32_t device_type;
    uint32_t uv_version;       /* running microvisor version (packed) */
    uint32_t installed_counter;
} kbdl_trust_t;

/* Bytes of manifest m encodes to (header + layers + block hash tables or delta record). */
uint32_t kbdl_manifest_size(const kbdl_manifest_t *m);

/*
 * Encode m (key_id, layers with block_sha tables set) into out. The signature envelope is not
 * written (kbdl_sign appends it). Errors: KERR_INVAL (no or too many layers, block count or
 * region_len inconsistent, content outside the region), KERR_NOMEM (cap too small).
 */
kerr_t kbdl_encode(const kbdl_manifest_t *m, uint8_t *out, uint32_t cap, uint32_t *out_len);

/*
 * Parse a manifest and its signature envelope (in[0, len) may continue with payloads). Structure
 * only: no signature or policy check. out->layers[i].block_sha points into in.
 * Errors: KERR_BDL_TRUNCATED, KERR_BDL_MALFORMED, KERR_BDL_VERSION.
 */
kerr_t kbdl_decode(const uint8_t *in, uint32_t len, kbdl_manifest_t *out);

/* Key id of a public key: the first 8 bytes of its SHA-256. */
void kbdl_key_id(const uint8_t pub[KBDL_PUBKEY_SIZE], uint8_t out[KBDL_KEY_ID_SIZE]);

/*
 * Decode and verify a bundle for this device (read-only). On success out is the decoded manifest.
 * Checks in this order, each with its own error: structure (KERR_BDL_TRUNCATED/MALFORMED/VERSION),
 * signer key trusted (KERR_BDL_KEY), signature (KERR_BDL_SIGNATURE), device type
 * (KERR_BDL_DEVICE), security counter >= installed (KERR_BDL_COUNTER), microvisor new enough
 * (KERR_BDL_UV_VERSION). KERR_UPD_CRYPTO if Mbed TLS fails.
 */
kerr_t kbdl_verify(const uint8_t *in, uint32_t len, const kbdl_trust_t *trust,
                   kbdl_manifest_t *out);

/* Total bytes of manifest + signature envelope of a decoded manifest. */
static inline uint32_t kbdl_signed_size(const kbdl_manifest_t *m)
{
    return m->manifest_len + KBDL_SIG_ENV_SIZE;
}

/*
 * Where the payload bytes of block idx of layer 0 are: bundle bytes [*out_off, *out_off + *out_len)
 * (payloads start right after the signature envelope) go to offset *out_in_block of the block;
 * the rest of the block is 0xFF. *out_len is 0 for a block outside the content (all 0xFF).
 * In a delta bundle, block idx is the patch's idx-th block_size piece (in_block 0; length 0
 * past the patch's end).
 * Errors: KERR_RANGE (idx out of the layer).
 */
kerr_t kbdl_block_payload(const kbdl_manifest_t *m, uint32_t idx, uint32_t *out_off,
                          uint32_t *out_len, uint32_t *out_in_block);

/*
 * (host only: core/src/bundle_sign.c) Sign buf[0, manifest_len) with the P-256 private scalar
 * priv (32 bytes, big-endian) and write the signature envelope at buf + manifest_len
 * (cap must allow KBDL_SIG_ENV_SIZE more). Deterministic (RFC 6979).
 * Errors: KERR_NOMEM, KERR_INVAL (bad key), KERR_UPD_CRYPTO.
 */
kerr_t kbdl_sign(uint8_t *buf, uint32_t manifest_len, uint32_t cap, const uint8_t priv[32]);

/* (host only) Derive the public key of priv. Errors: KERR_INVAL, KERR_UPD_CRYPTO. */
kerr_t kbdl_pubkey(const uint8_t priv[32], uint8_t out[KBDL_PUBKEY_SIZE]);

/*
 * (host only) Build and sign the manifest of a one-layer bundle for a region image, as the CLI
 * does: region[0, region_len) is the region as it must end up (0xFF outside the content),
 * the content is [content_off, content_off + content_len). tmpl supplies version, counter,
 * minimum microvisor version, device type, block size and policy; layer 0's region id and
 * key id are taken from it too; everything else (key id, sizes, hashes) is computed. Writes
 * manifest + signature envelope to out; *out_len = their size (kbdl_signed_size).
 * Errors: KERR_INVAL (region_len not a multiple of the block size, too many blocks, content
 * outside the region, bad key), KERR_NOMEM, KERR_UPD_CRYPTO.
 */
kerr_t kbdl_build(const kbdl_manifest_t *tmpl, const uint8_t *region, uint32_t region_len,
                  uint32_t content_off, uint32_t content_len, const uint8_t priv[32],
                  uint8_t *out, uint32_t cap, uint32_t *out_len);

/*
 * (host only) The same for a delta bundle: region is the result, base_sha the SHA-256 of the
 * whole region the patch (patch_len bytes, docs/delta.md) applies to. Writes the signed
 * manifest (KBDL_FMT_DELTA, 392 bytes) to out; the bundle is that followed by the patch.
 * Errors: kbdl_build's, and KERR_INVAL for an empty patch or one larger than the region.
 */
kerr_t kbdl_build_delta(const kbdl_manifest_t *tmpl, const uint8_t *region, uint32_t region_len,
                        uint32_t content_off, uint32_t content_len, const uint8_t base_sha[32],
                        const uint8_t *patch, uint32_t patch_len, const uint8_t priv[32],
                        uint8_t *out, uint32_t cap, uint32_t *out_len);

#endif /* KEEL_BUNDLE_H */

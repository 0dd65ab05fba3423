/*
 * Bundle manifest codec and verification: golden layout (checked with independent peeks, not the
 * codec's own constants), signature determinism, every rejection with its own code, and
 * mutation/truncation of every byte never being accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "test_upd_fixture.h"

static uint8_t g_region[FX_REGION];
static uint8_t g_bundle[FX_BUNDLE_MAX];
static uint8_t g_copy[FX_BUNDLE_MAX];

static kbdl_key_t fleet_key(void)
{
    kbdl_key_t k;
    assert_int_equal(kbdl_pubkey(fx_priv_fleet, k.pub), KERR_OK);
    return k;
}

static kbdl_trust_t trust(const kbdl_key_t *k, uint32_t installed)
{
    return (kbdl_trust_t){k, 1, FX_DEVICE_TYPE, FX_UV_VERSION, installed};
}

static uint32_t build(fx_bundle_opts_t o)
{
    fx_image(g_region, 40000u, 7);
    uint32_t n = fx_bundle(g_region, &o, g_bundle);
    assert_true(n > 0u);
    return n;
}

static void test_golden_layout(void **state)
{
    (void)state;
    uint32_t n = build(fx_opts(0x01020003u, 5, 40000u));
    const uint32_t mlen = 128u + 96u + FX_PAGES * 32u;
    assert_int_equal(n, mlen + 72u);
    /* Header, as docs/bundle.md draws it. */
    static const uint8_t head[] = {'K', 'B', 'M', 'F', 1, 0, 128, 0};
    assert_memory_equal(g_bundle, head, sizeof(head));
    assert_int_equal(peek32(g_bundle + 8), mlen);
    assert_int_equal(peek32(g_bundle + 12), 0x01020003u);
    assert_int_equal(peek32(g_bundle + 16), 5u);
    assert_int_equal(peek32(g_bundle + 20), FX_UV_VERSION);
    assert_int_equal(peek32(g_bundle + 24), FX_DEVICE_TYPE);
    assert_int_equal(peek32(g_bundle + 28), FX_PAGE);
    kbdl_key_t k = fleet_key();
    uint8_t h[32];
    kc_sha256(k.pub, sizeof(k.pub), h);
    assert_memory_equal(g_bundle + 32, h, 8);
    assert_int_equal(g_bundle[40] | g_bundle[41] << 8, 1);
    assert_int_equal(g_bundle[42] | g_bundle[43] << 8, 96);
    assert_int_equal(peek32(g_bundle + 44), 100u);
    assert_int_equal(peek32(g_bundle + 48), 30000u);
    assert_int_equal(peek32(g_bundle + 52), 3600u);
    assert_int_equal(peek32(g_bundle + 56), 60u);
    for (uint32_t i = 60; i < 128; i++) {
        assert_int_equal(g_bundle[i], 0); /* no debug key, reserved */
    }
    /* Layer 0. */
    const uint8_t *l = g_bundle + 128;
    assert_int_equal(l[0], 1);
    assert_int_equal(peek32(l + 4), FX_REGION);
    assert_int_equal(peek32(l + 8), 0u);
    assert_int_equal(peek32(l + 12), 40000u);
    assert_int_equal(peek32(l + 16), 0u);
    assert_int_equal(peek32(l + 20), FX_PAGES);
    assert_int_equal(peek32(l + 24), 224u);
    kc_sha256(g_region, 40000u, h);
    assert_memory_equal(l + 32, h, 32);
    kc_sha256(g_region, FX_REGION, h);
    assert_memory_equal(l + 64, h, 32);
    for (uint32_t i = 0; i < FX_PAGES; i++) {
        kc_sha256(g_region + i * FX_PAGE, FX_PAGE, h);
        assert_memory_equal(g_bundle + 224 + i * 32u, h, 32);
    }
    /* Signature envelope. */
    static const uint8_t env[] = {'K', 'B', 'S', 'G', 64, 0, 0, 0};
    assert_memory_equal(g_bundle + mlen, env, sizeof(env));
    /* Deterministic: the same manifest and key give the same bytes. */
    memcpy(g_copy, g_bundle, n);
    assert_int_equal(build(fx_opts(0x01020003u, 5, 40000u)), n);
    assert_memory_equal(g_copy, g_bundle, n);
}

static void test_decode_roundtrip(void **state)
{
    (void)state;
    uint32_t n = build(fx_opts(0x00010000u, 9, 12345u));
    kbdl_manifest_t m;
    kbdl_key_t k = fleet_key();
    kbdl_trust_t t = trust(&k, 9);
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_OK);
    assert_int_equal(m.version, 0x00010000u);
    assert_int_equal(m.security_counter, 9u);
    assert_int_equal(m.layer_count, 1u);
    assert_int_equal(m.layers[0].size, 12345u);
    assert_int_equal(m.policy.trial_s, 60u);
    assert_false(m.policy.has_debug_key);
    assert_ptr_equal(m.layers[0].block_sha, g_bundle + 224);
    /* Payloads after the envelope are allowed. */
    assert_int_equal(kbdl_verify(g_bundle, n + 100u, &t, &m), KERR_OK);
}

static void test_rejections_have_distinct_codes(void **state)
{
    (void)state;
    kbdl_key_t k = fleet_key();
    kbdl_manifest_t m;
    kbdl_trust_t t = trust(&k, 5);
    uint32_t n;

    fx_bundle_opts_t o = fx_opts(1, 5, 1000u);
    o.priv = fx_priv_other;
    n = build(o);
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_KEY);

    n = build(fx_opts(1, 5, 1000u));
    g_bundle[n - 1] ^= 0x01u; /* s */
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_SIGNATURE);
    g_bundle[n - 1] ^= 0x01u;
    g_bundle[12] ^= 0x01u; /* a signed field */
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_SIGNATURE);
    g_bundle[12] ^= 0x01u;
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_OK);

    o = fx_opts(1, 5, 1000u);
    o.device_type = 0x1234u;
    n = build(o);
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_DEVICE);

    n = build(fx_opts(1, 4, 1000u));
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_COUNTER);

    o = fx_opts(1, 5, 1000u);
    o.min_uv = FX_UV_VERSION + 1u;
    n = build(o);
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_UV_VERSION);

    n = build(fx_opts(1, 5, 1000u));
    assert_int_equal(kbdl_verify(g_bundle, n - 1u, &t, &m), KERR_BDL_TRUNCATED);
    assert_int_equal(kbdl_verify(g_bundle, 100u, &t, &m), KERR_BDL_TRUNCATED);
    g_bundle[4] = 3; /* format version from the future */
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_VERSION);
    g_bundle[4] = 2; /* the delta format, but a layer of pages */
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_MALFORMED);
    g_bundle[4] = 1;
    g_bundle[126] = 1; /* reserved */
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_MALFORMED);
    g_bundle[126] = 0;
    g_bundle[0] = 'X';
    assert_int_equal(kbdl_verify(g_bundle, n, &t, &m), KERR_BDL_MALFORMED);

    /* Every code has a message that is not the fallback. */
    for (kerr_t e = KERR_BDL_TRUNCATED; e >= KERR_BDL_UNSUPPORTED; e--) {
        assert_string_not_equal(kerr_str(e), "unknown error");
    }
    for (kerr_t e = KERR_UPD_STATE; e >= KERR_UPD_CRYPTO; e--) {
        assert_string_not_equal(kerr_str(e), "unknown error");
    }
}

static void test_encode_rejects_bad_input(void **state)
{
    (void)state;
    static uint8_t hashes[32];
    kbdl_manifest_t m;
    memset(&m, 0, sizeof(m));
    m.block_size = FX_PAGE;
    uint32_t len;
    assert_int_equal(kbdl_encode(&m, g_bundle, sizeof(g_bundle), &len), KERR_INVAL); /* 0 layers */
    m.layer_count = 1;
    m.layers[0] = (kbdl_layer_t){.region = 1, .region_len = FX_PAGE, .offset = 0,
                                 .size = FX_PAGE + 1u, .block_count = 1, .block_sha = hashes};
    assert_int_equal(kbdl_encode(&m, g_bundle, sizeof(g_bundle), &len), KERR_INVAL);
    m.layers[0].size = FX_PAGE;
    assert_int_equal(kbdl_encode(&m, g_bundle, 100, &len), KERR_NOMEM);
    assert_int_equal(kbdl_encode(&m, g_bundle, sizeof(g_bundle), &len), KERR_OK);
    assert_int_equal(len, 128u + 96u + 32u);
    /* The builder checks the region against the block size and the content against the region. */
    fx_image(g_region, 1000u, 3);
    assert_int_equal(kbdl_build(&m, g_region, FX_PAGE + 1u, 0, 10, fx_priv_fleet, g_bundle,
                                sizeof(g_bundle), &len), KERR_INVAL);
    assert_int_equal(kbdl_build(&m, g_region, FX_PAGE, 10, FX_PAGE, fx_priv_fleet, g_bundle,
                                sizeof(g_bundle), &len), KERR_INVAL);
    static const uint8_t zero_key[32];
    assert_int_equal(kbdl_build(&m, g_region, FX_PAGE, 0, 1000u, zero_key, g_bundle,
                                sizeof(g_bundle), &len), KERR_INVAL);
    assert_int_equal(kbdl_build(&m, g_region, FX_PAGE, 0, 1000u, fx_priv_fleet, g_bundle, 300,
                                &len), KERR_NOMEM);
    assert_int_equal(kbdl_build(&m, g_region, FX_PAGE, 0, 1000u, fx_priv_fleet, g_bundle,
                                sizeof(g_bundle), &len), KERR_OK);
    assert_int_equal(len, 128u + 96u + 32u + 72u);
}

/* Flip each bit of every byte of manifest + envelope, and cut at every length: never accepted. */
static void test_mutation_and_truncation_never_accepted(void **state)
{
    (void)state;
    uint32_t n = build(fx_opts(3, 5, 30000u));
    kbdl_key_t k = fleet_key();
    kbdl_trust_t t = trust(&k, 0);
    kbdl_manifest_t m;
    uint32_t accepted = 0;
    for (uint32_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b += 3) {
            memcpy(g_copy, g_bundle, n);
            g_copy[i] ^= (uint8_t)(1u << b);
            kerr_t err = kbdl_verify(g_copy, n, &t, &m);
            accepted += err == KERR_OK ? 1u : 0u;
            assert_true(err <= KERR_BDL_TRUNCATED && err >= KERR_BDL_UNSUPPORTED);
        }
    }
    assert_int_equal(accepted, 0u);
    for (uint32_t len = 0; len < n; len++) {
        kerr_t err = kbdl_decode(g_bundle, len, &m);
        assert_true(err == KERR_BDL_TRUNCATED || err == KERR_BDL_MALFORMED);
    }
}

/*
 * Random manifests with a valid header prefix and random layer fields: the decoder never reads
 * outside the input (ASan) and whatever it accepts is self-consistent.
 */
#define RANDOM_ITERS 8000u

static void test_random_structures(void **state)
{
    (void)state;
    uint32_t n = build(fx_opts(3, 5, 30000u));
    uint32_t seed = 0x1234567u;
    uint32_t accepted = 0;
    kbdl_key_t k = fleet_key();
    kbdl_trust_t t = trust(&k, 0);
    for (uint32_t iter = 0; iter < RANDOM_ITERS; iter++) {
        memcpy(g_copy, g_bundle, n);
        uint32_t len = n;
        switch (xs32(&seed) % 4u) {
        case 0: /* a random layer field */
            poke32(g_copy + 128u + (xs32(&seed) % 8u) * 4u, xs32(&seed) % 70000u);
            break;
        case 1: /* a random length field */
            poke32(g_copy + 8, xs32(&seed) % 8000u);
            break;
        case 2: /* layer count */
            g_copy[40] = (uint8_t)(xs32(&seed) % 6u);
            break;
        default: /* random bytes anywhere after the magic, random length */
            for (int k = 0; k < 8; k++) {
                g_copy[4u + xs32(&seed) % (n - 4u)] = (uint8_t)xs32(&seed);
            }
            len = 4u + xs32(&seed) % (n - 3u);
            break;
        }
        kbdl_manifest_t m;
        if (kbdl_decode(g_copy, len, &m) == KERR_OK) {
            accepted++;
            assert_true(m.manifest_len + KBDL_SIG_ENV_SIZE <= len);
            for (uint32_t l = 0; l < m.layer_count; l++) {
                const kbdl_layer_t *ly = &m.layers[l];
                assert_true(ly->block_sha >= g_copy);
                assert_true(ly->block_sha + ly->block_count * 32u <= g_copy + m.manifest_len);
                assert_true(ly->offset + ly->size <= ly->region_len);
            }
            if (memcmp(g_copy, g_bundle, m.manifest_len + KBDL_SIG_ENV_SIZE) != 0) {
                assert_int_not_equal(kbdl_verify(g_copy, len, &t, &m), KERR_OK);
            }
        }
    }
    print_message("  random structures: %u of %u decoded, all then refused by the signature\n",
                  accepted, RANDOM_ITERS);
}

/* Which payload bytes make up each block: inside, straddling either end, outside the content. */
static void test_block_payload(void **state)
{
    (void)state;
    kbdl_manifest_t m = {0};
    m.manifest_len = 1000;
    m.block_size = 100;
    m.layer_count = 1;
    m.layers[0].block_count = 6;
    m.layers[0].offset = 150; /* content [150, 420) */
    m.layers[0].size = 270;
    uint32_t off, len, in;
    const uint32_t base = 1000 + KBDL_SIG_ENV_SIZE; /* payload starts after the envelope */
    assert_int_equal(kbdl_block_payload(&m, 0, &off, &len, &in), KERR_OK);
    assert_int_equal(len, 0); /* before the content: all 0xFF */
    assert_int_equal(kbdl_block_payload(&m, 1, &off, &len, &in), KERR_OK);
    assert_int_equal(off, base);
    assert_int_equal(len, 50);
    assert_int_equal(in, 50);
    assert_int_equal(kbdl_block_payload(&m, 2, &off, &len, &in), KERR_OK);
    assert_int_equal(off, base + 50);
    assert_int_equal(len, 100);
    assert_int_equal(in, 0);
    assert_int_equal(kbdl_block_payload(&m, 4, &off, &len, &in), KERR_OK);
    assert_int_equal(off, base + 250);
    assert_int_equal(len, 20);
    assert_int_equal(in, 0);
    assert_int_equal(kbdl_block_payload(&m, 5, &off, &len, &in), KERR_OK);
    assert_int_equal(len, 0);
    assert_int_equal(kbdl_block_payload(&m, 6, &off, &len, &in), KERR_RANGE);
}

/* Delta bundles (fmt 2): 392 signed bytes whatever the region, golden delta record, round trip,
 * patch pieces as blocks, every byte mutated or cut refused, bad delta fields named. */
#define PATCH_LEN 20000u
static uint8_t g_dbundle[FX_BUNDLE_MAX + PATCH_LEN];
static uint8_t g_dcopy[FX_BUNDLE_MAX + PATCH_LEN];

static uint32_t build_delta(const uint8_t *patch, uint32_t patch_len)
{
    uint8_t base_sha[32];
    memset(base_sha, 0xB5, sizeof(base_sha));
    fx_image(g_region, 40000u, 8);
    kbdl_manifest_t m;
    memset(&m, 0, sizeof(m));
    m.version = 2, m.security_counter = 5, m.min_uv_version = FX_UV_VERSION;
    m.device_type = FX_DEVICE_TYPE, m.block_size = FX_PAGE, m.layer_count = 1;
    m.layers[0].region = KBDL_REGION_APP;
    m.policy.backoff_min_ms = 100, m.policy.backoff_max_ms = 1000;
    uint32_t n = 0;
    assert_int_equal(kbdl_build_delta(&m, g_region, FX_REGION, 0, 40000u, base_sha, patch,
                                      patch_len, fx_priv_fleet, g_dbundle, sizeof(g_dbundle), &n),
                     KERR_OK);
    memcpy(g_dbundle + n, patch, patch_len);
    return n;
}

static void test_delta_bundle(void **state)
{
    (void)state;
    static uint8_t patch[PATCH_LEN];
    for (uint32_t i = 0; i < sizeof(patch); i++)
        patch[i] = (uint8_t)(i * 7u + 3u);
    uint32_t n = build_delta(patch, sizeof(patch));
    assert_int_equal(n, 128u + 96u + 96u + 72u);
    assert_int_equal(peek32(g_dbundle + 8), 320u); /* manifest_len */
    assert_int_equal(g_dbundle[4], 2);
    assert_int_equal(g_dbundle[128 + 1], 1);      /* layer flag: delta */
    assert_int_equal(peek32(g_dbundle + 128 + 24), 224u); /* the delta record follows */
    assert_int_equal(g_dbundle[224], 0xB5);
    assert_int_equal(peek32(g_dbundle + 224 + 64), sizeof(patch));
    assert_int_equal(peek32(g_dbundle + 224 + 68), 1u);
    kbdl_key_t k = fleet_key();
    kbdl_trust_t t = trust(&k, 0);
    kbdl_manifest_t m;
    uint32_t total = n + (uint32_t)sizeof(patch);
    assert_int_equal(kbdl_verify(g_dbundle, total, &t, &m), KERR_OK);
    const kbdl_layer_t *l = &m.layers[0];
    assert_true(l->delta);
    assert_null(l->block_sha);
    assert_int_equal(l->patch_size, sizeof(patch));
    assert_int_equal(l->block_count, FX_PAGES);
    assert_int_equal(l->size, 40000u);
    uint8_t h[32];
    assert_int_equal(kc_sha256(patch, sizeof(patch), h), KC_OK);
    assert_memory_equal(l->patch_sha, h, 32);
    assert_int_equal(kc_sha256(g_region, FX_REGION, h), KC_OK);
    assert_memory_equal(l->region_sha, h, 32);
    /* The patch travels in block-size pieces: 8192, 8192, 3616, then nothing. */
    uint32_t off, len, in_block, got = 0;
    for (uint32_t i = 0; i < l->block_count; i++) {
        assert_int_equal(kbdl_block_payload(&m, i, &off, &len, &in_block), KERR_OK);
        assert_int_equal(in_block, 0u);
        if (len)
            assert_memory_equal(g_dbundle + off, patch + i * FX_PAGE, len);
        assert_int_equal(len, i < 2 ? FX_PAGE : i == 2 ? 3616u : 0u);
        got += len;
    }
    assert_int_equal(got, sizeof(patch));
    /* Every manifest byte changed, and every cut, is refused. */
    memcpy(g_dcopy, g_dbundle, total);
    for (uint32_t i = 0; i < n; i++) {
        g_dcopy[i] ^= 0x01;
        assert_int_not_equal(kbdl_verify(g_dcopy, total, &t, &m), KERR_OK);
        g_dcopy[i] ^= 0x01;
    }
    for (uint32_t cut = 0; cut < n; cut++)
        assert_int_not_equal(kbdl_verify(g_dbundle, cut, &t, &m), KERR_OK);
    /* Structure errors before the signature, each named. */
    g_dcopy[224 + 68] = 2; /* a patch format from the future */
    assert_int_equal(kbdl_decode(g_dcopy, total, &m), KERR_BDL_VERSION);
    g_dcopy[224 + 68] = 1;
    g_dcopy[224 + 80] = 1; /* reserved */
    assert_int_equal(kbdl_decode(g_dcopy, total, &m), KERR_BDL_MALFORMED);
    g_dcopy[224 + 80] = 0;
    g_dcopy[129] = 0; /* no delta flag in a delta manifest */
    assert_int_equal(kbdl_decode(g_dcopy, total, &m), KERR_BDL_MALFORMED);
    g_dcopy[129] = 1;
    poke32(g_dcopy + 224 + 64, FX_REGION + 1u); /* a patch larger than the region */
    assert_int_equal(kbdl_decode(g_dcopy, total, &m), KERR_BDL_MALFORMED);
    poke32(g_dcopy + 224 + 64, 0);
    assert_int_equal(kbdl_decode(g_dcopy, total, &m), KERR_BDL_MALFORMED);
    /* The builder refuses an empty or oversized patch. */
    uint8_t base[32] = {0};
    kbdl_manifest_t tm = m;
    assert_int_equal(kbdl_build_delta(&tm, g_region, FX_REGION, 0, 40000u, base, patch, 0,
                                      fx_priv_fleet, g_dcopy, sizeof(g_dbundle), &n), KERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_payload),
        cmocka_unit_test(test_delta_bundle),
        cmocka_unit_test(test_golden_layout),
        cmocka_unit_test(test_decode_roundtrip),
        cmocka_unit_test(test_rejections_have_distinct_codes),
        cmocka_unit_test(test_encode_rejects_bad_input),
        cmocka_unit_test(test_mutation_and_truncation_never_accepted),
        cmocka_unit_test(test_random_structures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

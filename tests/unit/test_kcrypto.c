/*
 * The crypto wrapper (keel/kcrypto.h) on its own: published test vectors (FIPS 180-2 SHA-256,
 * RFC 5869 HKDF, the GCM specification's test case 2), the streaming forms against the one-shot
 * ones, and every refusal: a wrong tag (output wiped), a wrong signature, points off the curve,
 * scalars out of range, a broken RNG (bounded, secret wiped); key files. The callers' golden vectors are in
 * test_bundle.c and test_dbgsess.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/kcrypto.h"
#include "unit_util.h"

static int test_rng(void *ctx, unsigned char *out, size_t len)
{
    uint32_t *st = ctx;
    for (size_t i = 0; i < len; i++) {
        out[i] = (uint8_t)xs32(st);
    }
    return 0;
}

static int ones_rng(void *ctx, unsigned char *out, size_t len)
{
    (*(int *)ctx)++;
    memset(out, 0xFF, len); /* > the group order: never a valid scalar */
    return 0;
}

static int failing_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx, (void)out, (void)len;
    return -1;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

static void test_sha256(void **state)
{
    (void)state;
    static const uint8_t abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
    };
    uint8_t h[32];
    assert_int_equal(kc_sha256("abc", 3, h), KC_OK);
    assert_memory_equal(h, abc, 32);

    const kc_part_t parts[] = { { "a", 1 }, { "", 0 }, { "bc", 2 } };
    memset(h, 0, sizeof(h));
    assert_int_equal(kc_sha256_parts(parts, 3, h), KC_OK);
    assert_memory_equal(h, abc, 32);

    kc_sha256_t s;
    memset(h, 0, sizeof(h));
    assert_int_equal(kc_sha256_start(&s), KC_OK);
    assert_int_equal(kc_sha256_update(&s, "ab", 2), KC_OK);
    assert_int_equal(kc_sha256_update(&s, "c", 1), KC_OK);
    assert_int_equal(kc_sha256_finish(&s, h), KC_OK);
    assert_memory_equal(h, abc, 32);
    kc_sha256_abort(&s); /* harmless after finish */

    kc_sha256_t z = KC_SHA256_INIT;
    kc_sha256_abort(&z); /* and on one never started */
}

/* RFC 5869, test case 1. */
static void test_hkdf(void **state)
{
    (void)state;
    uint8_t ikm[22], salt[13], info[10], okm[42];
    memset(ikm, 0x0b, sizeof(ikm));
    for (uint8_t i = 0; i < sizeof(salt); i++) {
        salt[i] = i;
    }
    for (uint8_t i = 0; i < sizeof(info); i++) {
        info[i] = (uint8_t)(0xf0 + i);
    }
    static const uint8_t want[42] = {
        0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43, 0x4f, 0x64, 0xd0, 0x36,
        0x2f, 0x2a, 0x2d, 0x2d, 0x0a, 0x90, 0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56,
        0xec, 0xc4, 0xc5, 0xbf, 0x34, 0x00, 0x72, 0x08, 0xd5, 0xb8, 0x87, 0x18, 0x58, 0x65,
    };
    assert_int_equal(kc_hkdf_sha256(salt, sizeof(salt), ikm, sizeof(ikm), info, sizeof(info), okm,
                                    sizeof(okm)),
                     KC_OK);
    assert_memory_equal(okm, want, sizeof(want));
}

/* The GCM specification (McGrew, Viega), test case 2: AES-128, zero key, IV and plaintext. */
static void test_gcm_vector(void **state)
{
    (void)state;
    uint8_t key[16] = { 0 }, nonce[12] = { 0 }, plain[16] = { 0 }, ct[16], tag[16], back[16];
    static const uint8_t want_ct[16] = { 0x03, 0x88, 0xda, 0xce, 0x60, 0xb6, 0xa3, 0x92,
                                         0xf3, 0x28, 0xc2, 0xb9, 0x71, 0xb2, 0xfe, 0x78 };
    static const uint8_t want_tag[16] = { 0xab, 0x6e, 0x47, 0xd4, 0x2c, 0xec, 0x13, 0xbd,
                                          0xf5, 0x3a, 0x67, 0xb2, 0x12, 0x57, 0xbd, 0xdf };
    assert_int_equal(kc_gcm_seal(key, 16, nonce, NULL, 0, plain, 16, ct, tag), KC_OK);
    assert_memory_equal(ct, want_ct, 16);
    assert_memory_equal(tag, want_tag, 16);
    assert_int_equal(kc_gcm_open(key, 16, nonce, NULL, 0, ct, 16, tag, back), KC_OK);
    assert_memory_equal(back, plain, 16);

    /* Streaming, in two uneven pieces, in place. */
    kc_gcm_t g;
    uint8_t buf[16];
    memcpy(buf, ct, 16);
    assert_int_equal(kc_gcm_open_start(&g, key, 16, nonce), KC_OK);
    assert_int_equal(kc_gcm_update(&g, buf, 5, buf), KC_OK);
    assert_int_equal(kc_gcm_update(&g, buf + 5, 11, buf + 5), KC_OK);
    assert_int_equal(kc_gcm_open_finish(&g, tag), KC_OK);
    assert_memory_equal(buf, plain, 16);
    uint8_t t2[16];
    assert_int_equal(kc_gcm_seal_start(&g, key, 16, nonce), KC_OK);
    assert_int_equal(kc_gcm_update(&g, plain, 16, buf), KC_OK);
    assert_int_equal(kc_gcm_seal_finish(&g, t2), KC_OK);
    assert_memory_equal(buf, want_ct, 16);
    assert_memory_equal(t2, want_tag, 16);
}

static void test_gcm_refusals(void **state)
{
    (void)state;
    uint8_t key[32], nonce[12], msg[100], sealed[100], tag[16], out[100];
    uint32_t st = 7;
    test_rng(&st, key, sizeof(key));
    test_rng(&st, nonce, sizeof(nonce));
    test_rng(&st, msg, sizeof(msg));
    static const uint8_t aad[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    assert_int_equal(kc_gcm_seal(key, 32, nonce, aad, 8, msg, sizeof(msg), sealed, tag), KC_OK);
    assert_int_equal(kc_gcm_open(key, 32, nonce, aad, 8, sealed, sizeof(msg), tag, out), KC_OK);
    assert_memory_equal(out, msg, sizeof(msg));

    /* A flipped tag bit, AAD byte or text byte: refused, and nothing of the text handed out. */
    tag[3] ^= 0x10;
    memset(out, 0xA5, sizeof(out));
    assert_int_equal(kc_gcm_open(key, 32, nonce, aad, 8, sealed, sizeof(msg), tag, out), KC_BAD_TAG);
    assert_true(all_zero(out, sizeof(out)));
    tag[3] ^= 0x10;
    assert_int_equal(kc_gcm_open(key, 32, nonce, aad, 7, sealed, sizeof(msg), tag, out), KC_BAD_TAG);
    sealed[50] ^= 1;
    assert_int_equal(kc_gcm_open(key, 32, nonce, aad, 8, sealed, sizeof(msg), tag, out), KC_BAD_TAG);
    assert_true(all_zero(out, sizeof(out)));

    /* AES key lengths other than 128 and 256 bits. */
    assert_int_equal(kc_gcm_seal(key, 24, nonce, NULL, 0, msg, 16, sealed, tag), KC_BAD_PRIV);
    kc_gcm_t g;
    assert_int_equal(kc_gcm_open_start(&g, key, 0, nonce), KC_BAD_PRIV);
}

static void test_p256(void **state)
{
    (void)state;
    uint32_t st = 0x1234567u;
    uint8_t a_priv[32], a_pub[65], b_priv[32], b_pub[65], za[32], zb[32], h[32], sig[64], sig2[64];
    assert_int_equal(kc_p256_keygen(a_priv, a_pub, test_rng, &st), KC_OK);
    assert_int_equal(kc_p256_keygen(b_priv, b_pub, test_rng, &st), KC_OK);
    assert_int_equal(a_pub[0], 0x04);
    uint8_t again[65];
    assert_int_equal(kc_p256_pub_from_priv(a_priv, again), KC_OK);
    assert_memory_equal(again, a_pub, 65);

    /* ECDH agrees both ways. */
    assert_int_equal(kc_p256_ecdh(a_priv, b_pub, za), KC_OK);
    assert_int_equal(kc_p256_ecdh(b_priv, a_pub, zb), KC_OK);
    assert_memory_equal(za, zb, 32);

    /* ECDSA: randomized and deterministic signatures verify; deterministic ones repeat. */
    assert_int_equal(kc_sha256("keel", 4, h), KC_OK);
    assert_int_equal(kc_p256_sign(a_priv, h, sig), KC_OK);
    assert_int_equal(kc_p256_verify(a_pub, h, sig), KC_OK);
    assert_int_equal(kc_p256_sign_det(a_priv, h, sig), KC_OK);
    assert_int_equal(kc_p256_sign_det(a_priv, h, sig2), KC_OK);
    assert_memory_equal(sig, sig2, 64);
    assert_int_equal(kc_p256_verify(a_pub, h, sig), KC_OK);

    /* Wrong key, changed hash, changed signature, zero signature. */
    assert_int_equal(kc_p256_verify(b_pub, h, sig), KC_BAD_SIG);
    h[0] ^= 1;
    assert_int_equal(kc_p256_verify(a_pub, h, sig), KC_BAD_SIG);
    h[0] ^= 1;
    sig[63] ^= 1;
    assert_int_equal(kc_p256_verify(a_pub, h, sig), KC_BAD_SIG);
    memset(sig, 0, sizeof(sig));
    assert_int_equal(kc_p256_verify(a_pub, h, sig), KC_BAD_SIG);

    /* A point off the curve, a compressed-point prefix. */
    uint8_t bad[65];
    memcpy(bad, a_pub, 65);
    bad[64] ^= 1;
    assert_int_equal(kc_p256_verify(bad, h, sig2), KC_BAD_KEY);
    assert_int_equal(kc_p256_ecdh(b_priv, bad, za), KC_BAD_KEY);
    assert_true(all_zero(za, 32));
    memcpy(bad, a_pub, 65);
    bad[0] = 0x02;
    assert_int_equal(kc_p256_verify(bad, h, sig2), KC_BAD_KEY);

    /* Scalars out of range: 0 and all ones (> n). */
    uint8_t zero[32] = { 0 }, ones[32];
    memset(ones, 0xFF, sizeof(ones));
    assert_int_equal(kc_p256_sign(zero, h, sig), KC_BAD_PRIV);
    assert_int_equal(kc_p256_sign(ones, h, sig), KC_BAD_PRIV);
    assert_int_equal(kc_p256_ecdh(ones, a_pub, za), KC_BAD_PRIV);
    assert_int_equal(kc_p256_pub_from_priv(zero, again), KC_BAD_PRIV);
}

static void test_keygen_bad_rng(void **state)
{
    (void)state;
    uint8_t priv[32], pub[65];
    int calls = 0;
    /* An RNG that only yields out-of-range scalars: bounded retries, nothing left behind. */
    assert_int_not_equal(kc_p256_keygen(priv, pub, ones_rng, &calls), KC_OK);
    assert_true(calls > 1 && calls <= 8);
    assert_true(all_zero(priv, sizeof(priv)));
    assert_int_equal(kc_p256_keygen(priv, pub, failing_rng, NULL), KC_ERROR);
    assert_true(all_zero(priv, sizeof(priv)));

    /* kc_random fills what it is asked for. */
    uint8_t r1[48] = { 0 }, r2[48] = { 0 };
    assert_int_equal(kc_random(NULL, r1, sizeof(r1)), 0);
    assert_int_equal(kc_random(NULL, r2, sizeof(r2)), 0);
    assert_memory_not_equal(r1, r2, sizeof(r1));
}

/* A key file of a test key made with `openssl ecparam -name prime256v1 -genkey`, and its scalar
 * as `openssl ec -text` prints it; a P-384 key and garbage are refused. */
static const char p256_pem[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIGexsp0PxLiOAL+SoqiExG4GN2K5bV0WNkxUzKBn1Xy5oAoGCCqGSM49\n"
    "AwEHoUQDQgAEmpYpb52mcfzMYGmXD7ViW/nTOn3dbE+njhXmqSCoghiENs9Ge2cA\n"
    "FwJTCbcyTSRAPnxj5MPNOAMdN10PQ2Xn+Q==\n"
    "-----END EC PRIVATE KEY-----\n";
static const char p384_pem[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MIGkAgEBBDB32dILInFB+hJpQsmQJz3NanRHbeZ9c/HSpirV7nOde0LyEaaVx0Fw\n"
    "lpMdtw57pNegBwYFK4EEACKhZANiAASM66kgI6DzpJea2Naiv04P0aZfhf8pqMVg\n"
    "E+WFTqBa7YdxLSMtle2hf0JSzU1M2Q+5ehcu6LGT9KJvuYb/h9s4FDsl76lKeyUx\n"
    "ZBpsyTZyLqbrdDgj1stL6EIy1WmRRms=\n"
    "-----END EC PRIVATE KEY-----\n";

static void test_priv_from_key(void **state)
{
    (void)state;
    static const uint8_t want[32] = {
        0x67, 0xb1, 0xb2, 0x9d, 0x0f, 0xc4, 0xb8, 0x8e, 0x00, 0xbf, 0x92, 0xa2,
        0xa8, 0x84, 0xc4, 0x6e, 0x06, 0x37, 0x62, 0xb9, 0x6d, 0x5d, 0x16, 0x36,
        0x4c, 0x54, 0xcc, 0xa0, 0x67, 0xd5, 0x7c, 0xb9,
    };
    uint8_t priv[32];
    assert_int_equal(kc_p256_priv_from_key((const uint8_t *)p256_pem, sizeof(p256_pem), priv), KC_OK);
    assert_memory_equal(priv, want, 32);
    assert_int_equal(kc_p256_priv_from_key((const uint8_t *)p384_pem, sizeof(p384_pem), priv),
                     KC_BAD_KEY);
    assert_true(all_zero(priv, sizeof(priv)));
    static const uint8_t junk[] = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
    assert_int_equal(kc_p256_priv_from_key(junk, sizeof(junk), priv), KC_BAD_KEY);
}

/* Raw keys into PK and back, through PEM as the key files and certificates carry them. */
static void test_pk_bridge(void **state)
{
    (void)state;
    uint32_t st = 99;
    uint8_t priv[32], pub[65], priv2[32], pub2[65];
    bool has_priv = false;
    assert_int_equal(kc_p256_keygen(priv, pub, test_rng, &st), KC_OK);
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    assert_int_equal(kc_p256_to_pk(&pk, priv, pub), KC_OK);
    unsigned char pem[600];
    assert_int_equal(mbedtls_pk_write_key_pem(&pk, pem, sizeof(pem)), 0);
    mbedtls_pk_free(&pk);
    assert_int_equal(kc_p256_priv_from_key(pem, strlen((char *)pem) + 1u, priv2), KC_OK);
    assert_memory_equal(priv2, priv, 32);

    /* Public only: the point comes back, no scalar. */
    mbedtls_pk_init(&pk);
    assert_int_equal(kc_p256_to_pk(&pk, NULL, pub), KC_OK);
    memset(priv2, 0xA5, sizeof(priv2));
    assert_int_equal(kc_p256_from_pk(&pk, pub2, priv2, &has_priv), KC_OK);
    assert_false(has_priv);
    assert_true(all_zero(priv2, 32));
    assert_memory_equal(pub2, pub, 65);
    mbedtls_pk_free(&pk);

    /* A point off the curve, a scalar out of range, an empty context. */
    uint8_t bad[65], ones[32];
    memcpy(bad, pub, 65);
    bad[64] ^= 1;
    mbedtls_pk_init(&pk);
    assert_int_equal(kc_p256_to_pk(&pk, NULL, bad), KC_BAD_KEY);
    mbedtls_pk_free(&pk);
    memset(ones, 0xFF, sizeof(ones));
    mbedtls_pk_init(&pk);
    assert_int_equal(kc_p256_to_pk(&pk, ones, pub), KC_BAD_PRIV);
    mbedtls_pk_free(&pk);
    mbedtls_pk_init(&pk);
    assert_int_equal(kc_p256_from_pk(&pk, pub2, NULL, &has_priv), KC_BAD_KEY);
    mbedtls_pk_free(&pk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_hkdf),
        cmocka_unit_test(test_gcm_vector),
        cmocka_unit_test(test_gcm_refusals),
        cmocka_unit_test(test_p256),
        cmocka_unit_test(test_keygen_bad_rng),
        cmocka_unit_test(test_priv_from_key),
        cmocka_unit_test(test_pk_bridge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Debug session crypto (dbgsess): golden vectors from an independent implementation (Python
 * `cryptography`: ECDH, HKDF, AES-GCM, SHA-256 over the byte layouts of dbgsess.h), the whole
 * handshake with real signatures, and every refusal: tampering, replay, reordering, wrong key,
 * wrong direction, wrong session, sequence exhaustion, bad points and bad arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/dbgsess.h"
#include "unit_util.h"

/* Test randomness: a seeded xorshift (the library only needs "random enough" here). */
static int test_rng(void *ctx, unsigned char *out, size_t len)
{
    uint32_t *st = ctx;
    for (size_t i = 0; i < len; i++) {
        out[i] = (uint8_t)xs32(st);
    }
    return 0;
}

static uint32_t rng_state = 0x9E3779B9u;
#define RNG test_rng, &rng_state

/*
 * Golden vectors, printed by test_dbgsess_golden.py (Python `cryptography`, not this code):
 * client scalar 0x11..11, device scalar 0x22..22, session 0x0102030405060708, device "dev-1";
 * down frame 1 = seal("$g#67"), up frame 1 = seal("+$OK#9a").
 */
static const uint8_t g_client_pub[65] = {
    0x04, 0x02, 0x17, 0xe6, 0x17, 0xf0, 0xb6, 0x44, 0x39, 0x28, 0x27, 0x8f, 0x96, 0x99, 0x9e,
    0x69, 0xa2, 0x3a, 0x4f, 0x2c, 0x15, 0x2b, 0xdf, 0x6d, 0x6c, 0xdf, 0x66, 0xe5, 0xb8, 0x02,
    0x82, 0xd4, 0xed, 0x19, 0x4a, 0x7d, 0xeb, 0xcb, 0x97, 0x71, 0x2d, 0x2d, 0xda, 0x3c, 0xa8,
    0x5a, 0xa8, 0x76, 0x5a, 0x56, 0xf4, 0x5f, 0xc7, 0x58, 0x59, 0x96, 0x52, 0xf2, 0x89, 0x7c,
    0x65, 0x30, 0x6e, 0x57, 0x94
};
static const uint8_t g_device_pub[65] = {
    0x04, 0xd6, 0x5a, 0x93, 0x97, 0x7c, 0xaa, 0x3d, 0x1b, 0x08, 0x18, 0x52, 0xff, 0x57, 0xa7,
    0x9e, 0x46, 0x5f, 0x16, 0x60, 0x57, 0x73, 0x04, 0xba, 0xea, 0xd5, 0x05, 0xdd, 0x3a, 0x48,
    0x58, 0x9c, 0xf3, 0x50, 0x18, 0x5e, 0x89, 0x53, 0x72, 0xdf, 0x62, 0x21, 0xea, 0x3a, 0x13,
    0x75, 0x57, 0xe4, 0x73, 0xfd, 0xdb, 0x67, 0x55, 0xf0, 0x5b, 0xd5, 0x07, 0xc3, 0xc5, 0x33,
    0xfc, 0xe9, 0xc9, 0x12, 0x85
};
static const uint8_t g_down_frame[21] = {
    0xf3, 0x01, 0x7b, 0x1d, 0x79, 0x68, 0xe5, 0x5e, 0x49, 0xa7, 0x7b, 0x1a, 0xaf, 0xf5, 0xa8,
    0xf5, 0x5c, 0xf9, 0x0f, 0xa3, 0xd6
};
static const uint8_t g_up_frame[23] = {
    0x0a, 0x39, 0xd0, 0xf8, 0x05, 0x1c, 0x52, 0x3a, 0x96, 0xe2, 0xfd, 0x53, 0x8f, 0x52, 0x74,
    0xe3, 0xf0, 0x3b, 0x16, 0x08, 0x4f, 0x00, 0xaa
};
static const uint8_t g_open_hash[32] = {
    0x9a, 0xb6, 0x24, 0xc4, 0x4c, 0xb1, 0x34, 0xdb, 0xcd, 0xc7, 0x85, 0xee, 0x93, 0xae, 0x17,
    0x03, 0x1e, 0xc1, 0x23, 0x35, 0x2f, 0xe1, 0x4a, 0x49, 0x22, 0x44, 0x23, 0x47, 0x06, 0x4a,
    0xb6, 0xb8
};
static const uint8_t g_accept_hash[32] = {
    0x38, 0x27, 0xf7, 0xd3, 0x98, 0x7e, 0x2b, 0x36, 0xa2, 0xf0, 0xbf, 0x8f, 0x4e, 0x43, 0xb5,
    0xbe, 0x0a, 0x6b, 0x9f, 0xb2, 0xde, 0x12, 0xfe, 0x53, 0x3f, 0x08, 0x29, 0xf4, 0x61, 0xdc,
    0x20, 0xe9
};

static void fill_priv(uint8_t priv[DBGSESS_PRIV_SIZE], uint8_t byte)
{
    memset(priv, byte, DBGSESS_PRIV_SIZE);
}

static void test_golden(void **state)
{
    (void)state;
    dbgsess_eph_t ce, de;
    fill_priv(ce.priv, 0x11);
    memcpy(ce.pub, g_client_pub, sizeof(ce.pub));
    fill_priv(de.priv, 0x22);
    memcpy(de.pub, g_device_pub, sizeof(de.pub));
    const uint64_t sid = 0x0102030405060708ull;

    uint8_t h[DBGSESS_HASH_SIZE];
    assert_int_equal(dbgsess_open_hash("dev-1", sid, g_client_pub, h), KERR_OK);
    assert_memory_equal(h, g_open_hash, sizeof(h));
    assert_int_equal(dbgsess_accept_hash("dev-1", sid, g_client_pub, g_device_pub, h), KERR_OK);
    assert_memory_equal(h, g_accept_hash, sizeof(h));

    dbgsess_t c, d;
    assert_int_equal(dbgsess_start(&c, DBGSESS_CLIENT, sid, &ce, g_device_pub), KERR_OK);
    assert_int_equal(dbgsess_start(&d, DBGSESS_DEVICE, sid, &de, g_client_pub), KERR_OK);
    /* The secrets are gone, the public halves stay. */
    uint8_t zero[DBGSESS_PRIV_SIZE] = {0};
    assert_memory_equal(ce.priv, zero, sizeof(zero));
    assert_memory_equal(de.priv, zero, sizeof(zero));

    uint8_t out[64];
    size_t n = 0;
    uint32_t seq = 0;
    assert_int_equal(dbgsess_seal(&c, (const uint8_t *)"$g#67", 5, out, sizeof(out), &n, &seq),
                     KERR_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(n, sizeof(g_down_frame));
    assert_memory_equal(out, g_down_frame, n);
    assert_int_equal(dbgsess_seal(&d, (const uint8_t *)"+$OK#9a", 7, out, sizeof(out), &n, &seq),
                     KERR_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(n, sizeof(g_up_frame));
    assert_memory_equal(out, g_up_frame, n);

    uint8_t plain[64];
    assert_int_equal(dbgsess_open(&d, 1, g_down_frame, sizeof(g_down_frame), plain, sizeof(plain),
                                  &n),
                     KERR_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(plain, "$g#67", 5);
    assert_int_equal(dbgsess_open(&c, 1, g_up_frame, sizeof(g_up_frame), plain, sizeof(plain), &n),
                     KERR_OK);
    assert_memory_equal(plain, "+$OK#9a", 7);
}

/* A full handshake with fresh keys, as the CLI and the device do it. */
typedef struct pair {
    dbgsess_t c, d;
    uint8_t debug_priv[DBGSESS_PRIV_SIZE], debug_pub[DBGSESS_PUB_SIZE];
    uint8_t device_priv[DBGSESS_PRIV_SIZE], device_pub[DBGSESS_PUB_SIZE];
} pair_t;

static void longterm(uint8_t priv[DBGSESS_PRIV_SIZE], uint8_t pub[DBGSESS_PUB_SIZE])
{
    dbgsess_eph_t k;
    assert_int_equal(dbgsess_keygen(&k, RNG), KERR_OK);
    memcpy(priv, k.priv, DBGSESS_PRIV_SIZE);
    memcpy(pub, k.pub, DBGSESS_PUB_SIZE);
}

static void handshake(pair_t *p, uint64_t sid)
{
    longterm(p->debug_priv, p->debug_pub);
    longterm(p->device_priv, p->device_pub);

    /* CLI: DebugOpen. */
    dbgsess_eph_t ce;
    uint8_t h[DBGSESS_HASH_SIZE], open_sig[DBGSESS_SIG_SIZE];
    assert_int_equal(dbgsess_keygen(&ce, RNG), KERR_OK);
    assert_int_equal(ce.pub[0], 0x04);
    assert_int_equal(dbgsess_open_hash("unit-dev", sid, ce.pub, h), KERR_OK);
    assert_int_equal(dbgsess_sign(p->debug_priv, h, open_sig), KERR_OK);

    /* Device: verify with the bundle's debug key, DebugAccept. */
    assert_int_equal(dbgsess_open_hash("unit-dev", sid, ce.pub, h), KERR_OK);
    assert_int_equal(dbgsess_verify(p->debug_pub, h, open_sig), KERR_OK);
    dbgsess_eph_t de;
    uint8_t acc_sig[DBGSESS_SIG_SIZE];
    assert_int_equal(dbgsess_keygen(&de, RNG), KERR_OK);
    assert_int_equal(dbgsess_accept_hash("unit-dev", sid, ce.pub, de.pub, h), KERR_OK);
    assert_int_equal(dbgsess_sign(p->device_priv, h, acc_sig), KERR_OK);
    uint8_t client_pub[DBGSESS_PUB_SIZE];
    memcpy(client_pub, ce.pub, sizeof(client_pub));
    assert_int_equal(dbgsess_start(&p->d, DBGSESS_DEVICE, sid, &de, client_pub), KERR_OK);

    /* CLI: verify with the device certificate's key, derive. */
    assert_int_equal(dbgsess_verify(p->device_pub, h, acc_sig), KERR_OK);
    assert_int_equal(dbgsess_start(&p->c, DBGSESS_CLIENT, sid, &ce, de.pub), KERR_OK);
}

static void seal_ok(dbgsess_t *s, const char *text, uint8_t *out, size_t cap, size_t *n,
                    uint32_t *seq)
{
    assert_int_equal(dbgsess_seal(s, (const uint8_t *)text, strlen(text), out, cap, n, seq),
                     KERR_OK);
}

static void test_round_trip(void **state)
{
    (void)state;
    pair_t p;
    handshake(&p, 42);
    uint8_t msg[DBGSESS_PLAIN_MAX], sealed[DBGSESS_SEALED_MAX], plain[DBGSESS_PLAIN_MAX];
    uint32_t st = 7;
    /* Every size from 1 to the maximum, alternating directions. */
    for (size_t len = 1; len <= DBGSESS_PLAIN_MAX; len += (len < 40 ? 1 : 37)) {
        for (size_t i = 0; i < len; i++) {
            msg[i] = (uint8_t)xs32(&st);
        }
        dbgsess_t *tx = (len & 1u) ? &p.c : &p.d;
        dbgsess_t *rx = (len & 1u) ? &p.d : &p.c;
        size_t n = 0, m = 0;
        uint32_t seq = 0;
        assert_int_equal(dbgsess_seal(tx, msg, len, sealed, sizeof(sealed), &n, &seq), KERR_OK);
        assert_int_equal(n, len + DBGSESS_TAG_SIZE);
        assert_int_equal(seq, tx->tx_seq);
        assert_true(len < 16 || memcmp(sealed, msg, len) != 0);
        assert_int_equal(dbgsess_open(rx, seq, sealed, n, plain, sizeof(plain), &m), KERR_OK);
        assert_int_equal(m, len);
        assert_memory_equal(plain, msg, len);
    }
    /* The maximum is exact. */
    size_t n = 0;
    uint32_t seq = 0;
    assert_int_equal(dbgsess_seal(&p.c, msg, DBGSESS_PLAIN_MAX + 1u, sealed, sizeof(sealed) + 16u,
                                  &n, &seq),
                     KERR_INVAL);
    assert_int_equal(dbgsess_seal(&p.c, msg, 10, sealed, 10 + DBGSESS_TAG_SIZE - 1u, &n, &seq),
                     KERR_NOMEM);
    dbgsess_end(&p.c);
    dbgsess_end(&p.d);
}

static void test_tamper(void **state)
{
    (void)state;
    pair_t p;
    handshake(&p, 43);
    uint8_t sealed[64], bad[64], plain[64];
    size_t n = 0, m = 0;
    uint32_t seq = 0;
    seal_ok(&p.c, "$m20000000,4#b5", sealed, sizeof(sealed), &n, &seq);
    /* Every bit of ciphertext and tag. */
    for (size_t i = 0; i < n * 8u; i++) {
        memcpy(bad, sealed, n);
        bad[i / 8u] ^= (uint8_t)(1u << (i % 8u));
        memset(plain, 0xA5, sizeof(plain));
        assert_int_equal(dbgsess_open(&p.d, seq, bad, n, plain, sizeof(plain), &m),
                         KERR_DBG_AUTH);
        /* Unauthenticated bytes are never handed out. */
        for (size_t k = 0; k < n - DBGSESS_TAG_SIZE; k++) {
            assert_int_equal(plain[k], 0);
        }
    }
    /* Truncated (a shorter tag) and under-long frames. */
    assert_int_equal(dbgsess_open(&p.d, seq, sealed, n - 1u, plain, sizeof(plain), &m),
                     KERR_DBG_AUTH);
    assert_int_equal(dbgsess_open(&p.d, seq, sealed, DBGSESS_TAG_SIZE, plain, sizeof(plain), &m),
                     KERR_INVAL);
    /* A different sequence number than the one it was sealed under (nonce). */
    assert_int_equal(dbgsess_open(&p.d, seq + 1u, sealed, n, plain, sizeof(plain), &m),
                     KERR_DBG_AUTH);
    /* None of that moved the receiver: the genuine frame still opens. */
    assert_int_equal(p.d.rx_seq, 0);
    assert_int_equal(dbgsess_open(&p.d, seq, sealed, n, plain, sizeof(plain), &m), KERR_OK);
    assert_memory_equal(plain, "$m20000000,4#b5", m);
}

static void test_replay_reorder(void **state)
{
    (void)state;
    pair_t p;
    handshake(&p, 44);
    uint8_t f[4][64], plain[64];
    size_t n[4], m = 0;
    uint32_t seq[4];
    for (int i = 0; i < 4; i++) {
        seal_ok(&p.d, "$T05#b9", f[i], sizeof(f[i]), &n[i], &seq[i]);
        assert_int_equal(seq[i], (uint32_t)i + 1u);
    }
    assert_int_equal(dbgsess_open(&p.c, seq[0], f[0], n[0], plain, sizeof(plain), &m), KERR_OK);
    /* Replay of the same frame. */
    assert_int_equal(dbgsess_open(&p.c, seq[0], f[0], n[0], plain, sizeof(plain), &m),
                     KERR_DBG_REPLAY);
    /* A gap is allowed (frame 2 lost)... */
    assert_int_equal(dbgsess_open(&p.c, seq[2], f[2], n[2], plain, sizeof(plain), &m), KERR_OK);
    /* ...but the late frame 2 is then refused (reorder), and so is seq 0. */
    assert_int_equal(dbgsess_open(&p.c, seq[1], f[1], n[1], plain, sizeof(plain), &m),
                     KERR_DBG_REPLAY);
    assert_int_equal(dbgsess_open(&p.c, 0, f[1], n[1], plain, sizeof(plain), &m),
                     KERR_DBG_REPLAY);
    assert_int_equal(dbgsess_open(&p.c, seq[3], f[3], n[3], plain, sizeof(plain), &m), KERR_OK);
    assert_int_equal(p.c.rx_seq, 4);
}

static void test_wrong_key(void **state)
{
    (void)state;
    pair_t p;
    handshake(&p, 45);
    uint8_t h[DBGSESS_HASH_SIZE], sig[DBGSESS_SIG_SIZE];
    dbgsess_eph_t ce;
    assert_int_equal(dbgsess_keygen(&ce, RNG), KERR_OK);

    /* DebugOpen signed with some other key: the device's check against the debug key fails. */
    uint8_t other_priv[DBGSESS_PRIV_SIZE], other_pub[DBGSESS_PUB_SIZE];
    longterm(other_priv, other_pub);
    assert_int_equal(dbgsess_open_hash("unit-dev", 45, ce.pub, h), KERR_OK);
    assert_int_equal(dbgsess_sign(other_priv, h, sig), KERR_OK);
    assert_int_equal(dbgsess_verify(p.debug_pub, h, sig), KERR_DBG_SIGNATURE);
    assert_int_equal(dbgsess_verify(other_pub, h, sig), KERR_OK);
    /* The right key over another device's, or another session's, transcript. */
    assert_int_equal(dbgsess_sign(p.debug_priv, h, sig), KERR_OK);
    uint8_t h2[DBGSESS_HASH_SIZE];
    assert_int_equal(dbgsess_open_hash("unit-dev2", 45, ce.pub, h2), KERR_OK);
    assert_int_equal(dbgsess_verify(p.debug_pub, h2, sig), KERR_DBG_SIGNATURE);
    assert_int_equal(dbgsess_open_hash("unit-dev", 46, ce.pub, h2), KERR_OK);
    assert_int_equal(dbgsess_verify(p.debug_pub, h2, sig), KERR_DBG_SIGNATURE);
    /* An accept transcript never verifies as an open one (labels differ). */
    assert_int_equal(dbgsess_accept_hash("unit-dev", 45, ce.pub, ce.pub, h2), KERR_OK);
    assert_memory_not_equal(h, h2, sizeof(h));

    /* An eavesdropper who derives with its own ephemeral key cannot open the frames. */
    dbgsess_eph_t mallory;
    dbgsess_t m;
    assert_int_equal(dbgsess_keygen(&mallory, RNG), KERR_OK);
    uint8_t dev_eph_pub[DBGSESS_PUB_SIZE];
    dbgsess_eph_t dev_eph;
    assert_int_equal(dbgsess_keygen(&dev_eph, RNG), KERR_OK);
    memcpy(dev_eph_pub, dev_eph.pub, sizeof(dev_eph_pub));
    assert_int_equal(dbgsess_start(&m, DBGSESS_CLIENT, 45, &mallory, dev_eph_pub), KERR_OK);
    uint8_t sealed[64], plain[64];
    size_t n = 0, k = 0;
    uint32_t seq = 0;
    seal_ok(&p.d, "$OK#9a", sealed, sizeof(sealed), &n, &seq);
    assert_int_equal(dbgsess_open(&m, seq, sealed, n, plain, sizeof(plain), &k), KERR_DBG_AUTH);

    /* Same keys, another session id: refused (AAD). */
    dbgsess_t other = p.c;
    other.session = 46;
    assert_int_equal(dbgsess_open(&other, seq, sealed, n, plain, sizeof(plain), &k),
                     KERR_DBG_AUTH);
    assert_int_equal(dbgsess_open(&p.c, seq, sealed, n, plain, sizeof(plain), &k), KERR_OK);
}

static void test_wrong_direction(void **state)
{
    (void)state;
    pair_t p;
    handshake(&p, 46);
    uint8_t sealed[64], plain[64];
    size_t n = 0, k = 0;
    uint32_t seq = 0;
    /* A frame reflected back to its sender (a relay echoing down as up) is refused. */
    seal_ok(&p.c, "$c#63", sealed, sizeof(sealed), &n, &seq);
    assert_int_equal(dbgsess_open(&p.c, seq, sealed, n, plain, sizeof(plain), &k),
                     KERR_DBG_AUTH);
    seal_ok(&p.d, "$S05#b8", sealed, sizeof(sealed), &n, &seq);
    assert_int_equal(dbgsess_open(&p.d, seq, sealed, n, plain, sizeof(plain), &k),
                     KERR_DBG_AUTH);
    /* Even if one side's keys were mixed up, the nonce's direction still differs. */
    dbgsess_t swapped = p.d;
    memcpy(swapped.rx_key, p.d.tx_key, DBGSESS_KEY_SIZE);
    assert_int_equal(dbgsess_open(&swapped, seq, sealed, n, plain, sizeof(plain), &k),
                     KERR_DBG_AUTH);
    assert_int_equal(dbgsess_open(&p.c, seq, sealed, n, plain, sizeof(plain), &k), KERR_OK);
}

static void test_sequence_end(void **state)
{
    (void)state;
    pair_t p;
    handshake(&p, 47);
    uint8_t sealed[64], plain[64];
    size_t n = 0, k = 0;
    uint32_t seq = 0;
    p.c.tx_seq = UINT32_MAX - 1u;
    p.d.rx_seq = UINT32_MAX - 2u;
    seal_ok(&p.c, "$?#3f", sealed, sizeof(sealed), &n, &seq);
    assert_int_equal(seq, UINT32_MAX);
    assert_int_equal(dbgsess_open(&p.d, seq, sealed, n, plain, sizeof(plain), &k), KERR_OK);
    /* The last number is used: never wrap to 1 (same nonce under the same key). */
    assert_int_equal(dbgsess_seal(&p.c, (const uint8_t *)"x", 1, sealed, sizeof(sealed), &n, &seq),
                     KERR_DBG_SEQ);
    assert_int_equal(p.c.tx_seq, UINT32_MAX);
    assert_int_equal(dbgsess_open(&p.d, 1, sealed, n, plain, sizeof(plain), &k), KERR_DBG_REPLAY);
}

static void test_refusals(void **state)
{
    (void)state;
    dbgsess_eph_t e;
    dbgsess_t s;
    memset(&s, 0, sizeof(s));
    uint8_t bad[DBGSESS_PUB_SIZE];
    uint8_t h[DBGSESS_HASH_SIZE] = {1}, sig[DBGSESS_SIG_SIZE] = {1};

    /* Points: not on the curve, compressed marker, the valid golden point as a sanity check. */
    memcpy(bad, g_device_pub, sizeof(bad));
    bad[64] ^= 1u;
    assert_int_equal(dbgsess_keygen(&e, RNG), KERR_OK);
    assert_int_equal(dbgsess_start(&s, DBGSESS_CLIENT, 1, &e, bad), KERR_DBG_KEY);
    assert_false(s.ready);
    assert_int_equal(dbgsess_verify(bad, h, sig), KERR_DBG_KEY);
    bad[64] ^= 1u;
    bad[0] = 0x02;
    assert_int_equal(dbgsess_verify(bad, h, sig), KERR_DBG_KEY);
    memset(bad, 0, sizeof(bad));
    assert_int_equal(dbgsess_verify(bad, h, sig), KERR_DBG_KEY);
    assert_int_equal(dbgsess_verify(g_device_pub, h, sig), KERR_DBG_SIGNATURE);

    /* Private scalars out of range: 0 and the all-ones value (> n). */
    uint8_t priv[DBGSESS_PRIV_SIZE];
    fill_priv(priv, 0);
    assert_int_equal(dbgsess_sign(priv, h, sig), KERR_INVAL);
    fill_priv(priv, 0xFF);
    assert_int_equal(dbgsess_sign(priv, h, sig), KERR_INVAL);

    /* Bad ids and NULLs. */
    assert_int_equal(dbgsess_open_hash("", 1, g_client_pub, h), KERR_INVAL);
    assert_int_equal(dbgsess_open_hash("a/b", 1, g_client_pub, h), KERR_INVAL);
    assert_int_equal(dbgsess_accept_hash("dev", 1, g_client_pub, NULL, h), KERR_INVAL);
    assert_int_equal(dbgsess_keygen(NULL, RNG), KERR_INVAL);
    assert_int_equal(dbgsess_start(&s, (dbgsess_role_t)7, 1, &e, g_device_pub), KERR_INVAL);

    /* Not started, or ended: nothing seals or opens. */
    size_t n = 0;
    uint32_t seq = 0;
    uint8_t buf[64];
    assert_int_equal(dbgsess_seal(&s, (const uint8_t *)"x", 1, buf, sizeof(buf), &n, &seq),
                     KERR_INVAL);
    assert_int_equal(dbgsess_open(&s, 1, buf, 20, buf, sizeof(buf), &n), KERR_INVAL);
    pair_t p;
    handshake(&p, 48);
    dbgsess_end(&p.c);
    assert_false(p.c.ready);
    uint8_t zero[DBGSESS_KEY_SIZE] = {0};
    assert_memory_equal(p.c.tx_key, zero, sizeof(zero));
    assert_int_equal(dbgsess_seal(&p.c, (const uint8_t *)"x", 1, buf, sizeof(buf), &n, &seq),
                     KERR_INVAL);
    /* Open: output too small; the receiver does not move. */
    uint8_t small[5];
    size_t k = 0;
    pair_t q;
    handshake(&q, 49);
    seal_ok(&q.d, "abcdef", buf, sizeof(buf), &n, &seq);
    assert_int_equal(dbgsess_open(&q.c, seq, buf, n, small, sizeof(small), &k), KERR_NOMEM);
    assert_int_equal(q.c.rx_seq, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_replay_reorder),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_wrong_direction),
        cmocka_unit_test(test_sequence_end),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

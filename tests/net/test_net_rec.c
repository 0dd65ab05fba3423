/*
 * Host unit tests of the network provisioning records (net_rec) and the A/B seed store
 * (net_seedstore), including a power-cut sweep over the seed rewrite: power is cut at every
 * flash operation of several boots in a row, and after each cut the device must still find a
 * seed, never an older one than the last it committed, never the provisioned one again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/flash.h"
#include "keel/flash_ram.h"
#include "keel/crc32.h"
#include "net_rec.h"
#include "net_updkey.h"
#include "net_seedstore.h"

static const char ca_pem[] = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
static const char key_pem[] = "-----BEGIN EC PRIVATE KEY-----\nMHcfake\n-----END EC PRIVATE KEY-----\n";

/* ---- records ------------------------------------------------------------------------------ */

static void test_seed_rec(void **state)
{
    (void)state;
    uint8_t seed[NET_SEED_BYTES], out[NET_SEED_BYTES], rec[NET_SEED_REC_SIZE];
    for (unsigned i = 0; i < sizeof(seed); i++)
        seed[i] = (uint8_t)(i * 7u + 1u);
    assert_int_equal(net_seed_rec_encode(seed, rec), KERR_OK);
    assert_int_equal(net_seed_rec_decode(rec, out), KERR_OK);
    assert_memory_equal(seed, out, sizeof(seed));
    rec[20] ^= 1u;
    assert_int_equal(net_seed_rec_decode(rec, out), KERR_CRC);
    memset(rec, 0xFF, sizeof(rec));
    assert_int_equal(net_seed_rec_decode(rec, out), KERR_FORMAT);
}

static void test_fleet_rec(void **state)
{
    (void)state;
    uint8_t rec[NET_FLEET_REC_MAX];
    uint32_t size = net_fleet_rec_size(sizeof(ca_pem), 0);
    assert_true(size > 0u && size % 16u == 0u);
    assert_int_equal(net_fleet_rec_encode("localhost", (const uint8_t *)ca_pem, sizeof(ca_pem), 0, rec, size), KERR_OK);
    net_fleet_t f;
    assert_int_equal(net_fleet_rec_decode(rec, size, &f), KERR_OK);
    assert_string_equal(f.broker_name, "localhost");
    assert_int_equal(f.ca_len, sizeof(ca_pem));
    assert_int_equal(f.flags, 0u);
    assert_int_equal(rec[0], 'K');
    assert_int_equal(rec[3], '1'); /* no settings: the KFL1 record devices already carry */
    assert_memory_equal(f.ca_pem, ca_pem, sizeof(ca_pem));
    /* every truncation is refused, never read past the end */
    for (uint32_t n = 0; n < size; n++)
        assert_int_not_equal(net_fleet_rec_decode(rec, n, &f), KERR_OK);
    rec[size - 20u] ^= 0x40u;
    assert_int_equal(net_fleet_rec_decode(rec, size, &f), KERR_CRC);
    /* bad inputs to the encoder */
    assert_int_equal(net_fleet_rec_encode("bad name", (const uint8_t *)ca_pem, sizeof(ca_pem), 0, rec, size), KERR_INVAL);
    assert_int_equal(net_fleet_rec_encode("", (const uint8_t *)ca_pem, sizeof(ca_pem), 0, rec, size), KERR_INVAL);
    assert_int_equal(net_fleet_rec_encode("localhost", (const uint8_t *)key_pem, sizeof(key_pem), 0, rec, sizeof(rec)), KERR_INVAL);
    assert_int_equal(net_fleet_rec_encode("localhost", (const uint8_t *)ca_pem, sizeof(ca_pem) - 1u, 0, rec, size), KERR_INVAL);
    assert_int_equal(net_fleet_rec_encode("localhost", (const uint8_t *)ca_pem, sizeof(ca_pem), 0, rec, size - 16u), KERR_INVAL);
    assert_int_equal(net_fleet_rec_size(NET_FLEET_CA_MAX + 1u, 0), 0u);
    memset(rec, 0xFF, sizeof(rec));
    assert_int_equal(net_fleet_rec_decode(rec, sizeof(rec), &f), KERR_FORMAT);
}

/* Fleet settings (KFL2): round trip, truncations, an unknown setting refused at both ends. */
static void test_fleet_rec_flags(void **state)
{
    (void)state;
    uint8_t rec[NET_FLEET_REC_MAX];
    uint32_t size = net_fleet_rec_size(sizeof(ca_pem), NET_FLEET_F_ALLOW_TLS12);
    assert_true(size >= net_fleet_rec_size(sizeof(ca_pem), 0) && size % 16u == 0u);
    assert_int_equal(net_fleet_rec_encode("broker.example", (const uint8_t *)ca_pem, sizeof(ca_pem),
                                          NET_FLEET_F_ALLOW_TLS12, rec, size), KERR_OK);
    assert_int_equal(rec[3], '2');
    net_fleet_t f;
    assert_int_equal(net_fleet_rec_decode(rec, size, &f), KERR_OK);
    assert_string_equal(f.broker_name, "broker.example");
    assert_int_equal(f.flags, NET_FLEET_F_ALLOW_TLS12);
    assert_memory_equal(f.ca_pem, ca_pem, sizeof(ca_pem));
    for (uint32_t n = 0; n < size; n++)
        assert_int_not_equal(net_fleet_rec_decode(rec, n, &f), KERR_OK);
    assert_int_equal(net_fleet_rec_encode("broker.example", (const uint8_t *)ca_pem, sizeof(ca_pem),
                                          0x80u, rec, sizeof(rec)), KERR_INVAL);
    /* a setting this firmware does not know, with a valid CRC: refused, not ignored */
    assert_int_equal(net_fleet_rec_encode("broker.example", (const uint8_t *)ca_pem, sizeof(ca_pem),
                                          NET_FLEET_F_ALLOW_TLS12, rec, size), KERR_OK);
    rec[NET_FLEET_HDR] = 0x81u;
    rec[12] = rec[13] = rec[14] = rec[15] = 0;
    uint32_t crc = kcrc32(0, rec + NET_FLEET_HDR, size - NET_FLEET_HDR);
    for (int i = 0; i < 4; i++)
        rec[12 + i] = (uint8_t)(crc >> (8 * i));
    assert_int_equal(net_fleet_rec_decode(rec, size, &f), KERR_INVAL);
}

static void test_device_rec(void **state)
{
    (void)state;
    uint8_t rec[NET_DEVICE_REC_MAX];
    uint32_t size = net_device_rec_size(sizeof(key_pem), sizeof(ca_pem));
    assert_true(size > 0u && size <= NET_DEVICE_REC_MAX);
    assert_int_equal(net_device_rec_encode((const uint8_t *)key_pem, sizeof(key_pem),
                                           (const uint8_t *)ca_pem, sizeof(ca_pem), rec, size), KERR_OK);
    net_device_cred_t c;
    assert_int_equal(net_device_rec_decode(rec, size, &c), KERR_OK);
    assert_memory_equal(c.key_pem, key_pem, sizeof(key_pem));
    assert_memory_equal(c.cert_pem, ca_pem, sizeof(ca_pem));
    for (uint32_t n = 0; n < size; n++)
        assert_int_not_equal(net_device_rec_decode(rec, n, &c), KERR_OK);
    /* key and certificate swapped: refused */
    assert_int_equal(net_device_rec_encode((const uint8_t *)ca_pem, sizeof(ca_pem),
                                           (const uint8_t *)key_pem, sizeof(key_pem), rec, size), KERR_INVAL);
    assert_int_equal(net_device_rec_size(NET_DEVICE_REC_MAX, 16u), 0u);
}

/* ---- seed store ----------------------------------------------------------------------------- */

#define SIZE 2048u
#define PAGE 256u
#define UNIT 16u
#define PAGE_A 512u
#define PAGE_B 1024u
#define BOOTS 5u

typedef struct dev {
    uint8_t mem[SIZE];
    uint8_t used[KFLASH_BITMAP_BYTES(SIZE, UNIT)];
    kflash_ram_t ram;
    kflash_t f;
    kflash_geometry_t geo;
} dev_t;

static dev_t g_dev;

static kflash_t *dev_fresh(void)
{
    g_dev.geo = (kflash_geometry_t){SIZE, PAGE, UNIT, true};
    kflash_ram_init(&g_dev.ram, g_dev.mem, SIZE, true);
    assert_int_equal(kflash_init(&g_dev.f, &kflash_ram_backend, &g_dev.ram, &g_dev.geo, g_dev.used,
                                 sizeof(g_dev.used)), KERR_OK);
    return &g_dev.f;
}

static void seed_of(uint32_t n, uint8_t out[NET_STATE_SEED])
{
    for (unsigned i = 0; i < NET_STATE_SEED; i++)
        out[i] = (uint8_t)(n * 31u + i);
}

/* Update keys record: round trip, golden header bytes, every refusal. */
static void test_updkeys_rec(void **state)
{
    (void)state;
    uint8_t keys[NET_UPDKEYS_MAX * NET_UPDKEY_SIZE], out[NET_UPDKEYS_MAX * NET_UPDKEY_SIZE];
    uint8_t rec[NET_UPDKEYS_REC_MAX];
    for (uint32_t i = 0; i < sizeof keys; i++)
        keys[i] = (uint8_t)(i * 7u + 1u);
    for (uint32_t k = 0; k < NET_UPDKEYS_MAX; k++)
        keys[k * NET_UPDKEY_SIZE] = 0x04;
    assert_int_equal(net_updkeys_rec_size(0), 0);
    assert_int_equal(net_updkeys_rec_size(5), 0);
    assert_int_equal(net_updkeys_rec_size(1), 96);   /* 16 + 65, padded to 16 */
    assert_int_equal(net_updkeys_rec_size(4), 288);  /* 16 + 260, padded */
    assert_true(NET_REC_UPDKEYS_OFF + NET_UPDKEYS_REC_MAX <= NET_REC_FLEET_OFF);
    assert_true(NET_REC_SEED_OFF + NET_SEED_REC_SIZE <= NET_REC_UPDKEYS_OFF);

    uint32_t n = 0;
    assert_int_equal(net_updkeys_rec_encode(keys, 2, rec, sizeof rec), KERR_OK);
    assert_memory_equal(rec, "KUK1\x02\0\0\0\0\0\0\0", 12);
    assert_int_equal(net_updkeys_rec_decode(rec, sizeof rec, out, &n), KERR_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(out, keys, 2 * NET_UPDKEY_SIZE);
    /* A record too short for its count, a damaged key, a foreign or erased page. */
    assert_int_equal(net_updkeys_rec_decode(rec, 100, out, &n), KERR_TRUNCATED);
    rec[20] ^= 1u;
    assert_int_equal(net_updkeys_rec_decode(rec, sizeof rec, out, &n), KERR_CRC);
    rec[20] ^= 1u;
    rec[4] = 9;
    assert_int_equal(net_updkeys_rec_decode(rec, sizeof rec, out, &n), KERR_INVAL);
    memset(rec, 0xFF, sizeof rec);
    assert_int_equal(net_updkeys_rec_decode(rec, sizeof rec, out, &n), KERR_FORMAT);
    /* Not uncompressed points; too many keys; no room. */
    keys[NET_UPDKEY_SIZE] = 0x02;
    assert_int_equal(net_updkeys_rec_encode(keys, 2, rec, sizeof rec), KERR_INVAL);
    keys[NET_UPDKEY_SIZE] = 0x04;
    assert_int_equal(net_updkeys_rec_encode(keys, 5, rec, sizeof rec), KERR_INVAL);
    assert_int_equal(net_updkeys_rec_encode(keys, 4, rec, 100), KERR_INVAL);
}

/* The staging key: HKDF-SHA256 as net_updkey.h writes it down (golden from Python's hmac), so the
 * host (keel device install) and the device derive the same key. */
static void test_updkey_derive(void **state)
{
    (void)state;
    static const uint8_t want[32] = {
        0x27, 0xf2, 0xcc, 0x54, 0x6f, 0x0e, 0x39, 0x9d, 0xd8, 0x22, 0x92, 0x6a, 0x97, 0xc4, 0x36, 0x0c,
        0x8f, 0x1e, 0x8f, 0x0a, 0x63, 0xba, 0xb7, 0xed, 0x09, 0x2d, 0x7c, 0x4f, 0xf7, 0xea, 0x35, 0x0e};
    uint8_t seed[64], key[32], other[32];
    for (unsigned i = 0; i < sizeof(seed); i++)
        seed[i] = (uint8_t)(i * 7u + 1u);
    assert_int_equal(net_updkey_derive(seed, "dev-1", key), KERR_OK);
    assert_memory_equal(key, want, sizeof(want));
    assert_int_equal(net_updkey_derive(seed, "dev-2", other), KERR_OK);
    assert_memory_not_equal(key, other, sizeof(key));
}

static void test_seedstore_basic(void **state)
{
    (void)state;
    kflash_t *fl = dev_fresh();
    net_seedstore_t s;
    assert_int_equal(net_seedstore_load(&s, fl, PAGE_A, PAGE_B, NULL), KERR_FORMAT);
    uint8_t prov[NET_STATE_SEED], next[NET_STATE_SEED];
    seed_of(1000u, prov);
    assert_int_equal(net_seedstore_load(&s, fl, PAGE_A, PAGE_B, prov), KERR_OK);
    assert_int_equal(s.counter, 0u);
    assert_memory_equal(s.seed, prov, sizeof(prov));
    for (uint32_t i = 1; i <= 4u; i++) {
        seed_of(i, next);
        assert_int_equal(net_seedstore_write(&s, next), KERR_OK);
        net_seedstore_t again;
        assert_int_equal(net_seedstore_load(&again, fl, PAGE_A, PAGE_B, prov), KERR_OK);
        assert_int_equal(again.counter, i);
        assert_memory_equal(again.seed, next, sizeof(next));
        assert_int_equal(again.page, i % 2u ? PAGE_A : PAGE_B); /* alternates, A written first */
        s = again;
    }
}

/*
 * BOOTS boots in a row, each loading and then writing a new seed, with power cut during the
 * cut-th flash operation of the whole sequence (torn as kflash models it), then power back on
 * and the remaining boots.
 */
static void sweep_one(uint32_t cut, uint32_t *out_ops)
{
    kflash_t *fl = dev_fresh();
    uint8_t prov[NET_STATE_SEED], next[NET_STATE_SEED];
    seed_of(1000u, prov);
    kflash_set_powercut(fl, cut, cut * 2654435761u);
    uint32_t committed = 0, last_loaded = 0, ops = 0;
    bool cut_seen = false;
    for (uint32_t boot = 1; boot <= BOOTS; boot++) {
        net_seedstore_t s;
        assert_int_equal(net_seedstore_load(&s, fl, PAGE_A, PAGE_B, prov), KERR_OK);
        assert_true(s.counter >= committed);          /* nothing committed is lost */
        assert_true(s.counter <= committed + 1u);     /* at most the torn write, complete */
        assert_true(s.counter >= last_loaded);        /* never goes back */
        if (committed > 0u)
            assert_memory_not_equal(s.seed, prov, sizeof(prov));
        last_loaded = s.counter;
        seed_of(boot, next);
        kerr_t err = net_seedstore_write(&s, next);
        ops += 2u;
        if (err == KERR_FLASH_POWER) {
            cut_seen = true;
            kflash_power_on(fl); /* the reboot */
            continue;
        }
        assert_int_equal(err, KERR_OK);
        committed = s.counter;
    }
    if (cut != 0u && cut <= 2u * BOOTS)
        assert_true(cut_seen);
    *out_ops = ops;
}

static void test_seedstore_powercut_sweep(void **state)
{
    (void)state;
    uint32_t ops;
    sweep_one(0u, &ops);
    for (uint32_t cut = 1; cut <= ops + 1u; cut++) {
        uint32_t o;
        sweep_one(cut, &o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_rec),
        cmocka_unit_test(test_fleet_rec),
        cmocka_unit_test(test_fleet_rec_flags),
        cmocka_unit_test(test_device_rec),
        cmocka_unit_test(test_updkeys_rec),
        cmocka_unit_test(test_updkey_derive),
        cmocka_unit_test(test_seedstore_basic),
        cmocka_unit_test(test_seedstore_powercut_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

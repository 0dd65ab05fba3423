/*
 * Shared by the bundle and update-engine tests: fleet keys, a bundle builder for an app region,
 * and a simulated device (internal flash + QSPI on the strict NOR model) that can be power-cut
 * and rebooted.
 */
#ifndef KEEL_TESTS_UNIT_TEST_UPD_FIXTURE_H
#define KEEL_TESTS_UNIT_TEST_UPD_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "keel/kcrypto.h"

#include "keel/bundle.h"
#include "keel/flash.h"
#include "keel/flash_ram.h"
#include "keel/upd.h"

#include "unit_util.h"

#define FX_PAGE 8192u
#ifndef FX_PAGES
#define FX_PAGES 12u /* app region: 96 KiB (the bench uses AN505's 129 pages) */
#endif
#define FX_REGION (FX_PAGES * FX_PAGE)
#define FX_IF_SIZE ((FX_PAGES + 2u) * FX_PAGE) /* region, then the 2 journal pages */
#define FX_UNIT 16u
#define FX_SECTOR 4096u
#define FX_Q_SIZE (((UPD_QSPI_META + 2u * FX_REGION) + FX_SECTOR - 1u) / FX_SECTOR * FX_SECTOR)
#define FX_DEVICE_TYPE 0x0A505u
#define FX_UV_VERSION 0x01000000u
#define FX_BUNDLE_MAX (KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE)

/* Fleet signing keys (P-256 private scalars; any value in [1, n-1] will do for tests). */
static const uint8_t fx_priv_fleet[32] = {
    0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a, 0x79, 0x88, 0x97, 0xa6, 0xb5, 0xc4, 0xd3, 0xe2, 0xf1, 0x00,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};
static const uint8_t fx_priv_other[32] = {
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x01};

typedef struct fx_bundle_opts {
    uint32_t version;
    uint32_t counter;
    uint32_t min_uv;
    uint32_t device_type;
    const uint8_t *priv;  /* signer */
    uint32_t content_len; /* content = region[0, content_len) */
} fx_bundle_opts_t;

static inline fx_bundle_opts_t fx_opts(uint32_t version, uint32_t counter, uint32_t content_len)
{
    return (fx_bundle_opts_t){version, counter, FX_UV_VERSION, FX_DEVICE_TYPE, fx_priv_fleet,
                              content_len};
}

/* A region image: pseudo-random content in [0, content_len), 0xFF after. */
static inline void fx_image(uint8_t *region, uint32_t content_len, uint32_t seed)
{
    memset(region, 0xFF, FX_REGION);
    uint32_t s = seed | 1u;
    for (uint32_t i = 0; i < content_len; i++) {
        region[i] = (uint8_t)xs32(&s);
    }
}

/* Build and sign a bundle (manifest + envelope) for region; returns its length, 0 on error. */
static inline uint32_t fx_bundle(const uint8_t *region, const fx_bundle_opts_t *o, uint8_t *out)
{
    kbdl_manifest_t m;
    memset(&m, 0, sizeof(m));
    m.version = o->version;
    m.security_counter = o->counter;
    m.min_uv_version = o->min_uv;
    m.device_type = o->device_type;
    m.block_size = FX_PAGE;
    m.policy = (kbdl_policy_t){100, 30000, 3600, 60, false, {0}};
    m.layers[0].region = KBDL_REGION_APP;
    uint32_t len;
    return kbdl_build(&m, region, FX_REGION, 0, o->content_len, o->priv, out, FX_BUNDLE_MAX,
                      &len) == KERR_OK
               ? len
               : 0u;
}

/* --- simulated device --------------------------------------------------------------------- */

typedef struct fx_dev {
    uint8_t imem[FX_IF_SIZE];
    uint8_t iused[KFLASH_BITMAP_BYTES(FX_IF_SIZE, FX_UNIT)];
    uint8_t qmem[FX_Q_SIZE];
    kflash_ram_t iram, qram;
    kflash_t ifl, qfl;
    kbdl_key_t keys[1];
    upd_config_t cfg;
    upd_t upd;
    bool open;
} fx_dev_t;

/* A power cut is global: when one part tears, the other dies with it. */
static inline void fx_on_cut(kflash_t *f, void *arg)
{
    kflash_t *other = arg;
    other->dead = true;
}

static inline kerr_t fx_open_engine(fx_dev_t *d)
{
    if (d->open) {
        upd_close(&d->upd);
    }
    d->open = true;
    return upd_open(&d->upd, &d->cfg);
}

/* Fresh device with region content installed (written directly, as a factory would). */
static inline kerr_t fx_dev_init(fx_dev_t *d, const uint8_t *region)
{
    if (d->open) {
        upd_close(&d->upd); /* Mbed TLS's GCM holds an allocated cipher context */
    }
    memset(d, 0, sizeof(*d));
    kflash_ram_init(&d->iram, d->imem, FX_IF_SIZE, true);
    kflash_ram_init(&d->qram, d->qmem, FX_Q_SIZE, true);
    memcpy(d->imem, region, FX_REGION);
    kflash_geometry_t gi = {FX_IF_SIZE, FX_PAGE, FX_UNIT, true};
    kflash_geometry_t gq = {FX_Q_SIZE, FX_SECTOR, 1, false};
    kerr_t err = kflash_init(&d->ifl, &kflash_ram_backend, &d->iram, &gi, d->iused, sizeof(d->iused));
    if (err == KERR_OK) {
        err = kflash_init(&d->qfl, &kflash_ram_backend, &d->qram, &gq, NULL, 0);
    }
    d->ifl.on_cut = fx_on_cut;
    d->ifl.on_cut_arg = &d->qfl;
    d->qfl.on_cut = fx_on_cut;
    d->qfl.on_cut_arg = &d->ifl;
    if (kbdl_pubkey(fx_priv_fleet, d->keys[0].pub) != KERR_OK) {
        return KERR_UPD_CRYPTO;
    }
    d->cfg = (upd_config_t){
        .iflash = &d->ifl,
        .region_off = 0,
        .region_len = FX_REGION,
        .journal_off = FX_REGION,
        .qspi = &d->qfl,
        .stage_off = 0,
        .stage_len = FX_Q_SIZE,
        .trust = {d->keys, 1, FX_DEVICE_TYPE, FX_UV_VERSION, 0},
    };
    for (uint32_t i = 0; i < UPD_KEY_SIZE; i++) {
        d->cfg.key[i] = (uint8_t)(0xA0u + i);
    }
    return err == KERR_OK ? fx_open_engine(d) : err;
}

/* Power comes back: the parts keep their content (and program-once state); the engine restarts. */
static inline kerr_t fx_reboot(fx_dev_t *d)
{
    kflash_power_on(&d->ifl);
    kflash_power_on(&d->qfl);
    kerr_t err = fx_open_engine(d);
    return err == KERR_OK ? upd_boot(&d->upd) : err;
}

#endif /* KEEL_TESTS_UNIT_TEST_UPD_FIXTURE_H */

/*
 * The entropy of the microvisor: the QEMU boards have no TRNG, and a timer value is guessable, so every
 * random number descends from a secret seed provisioned into the device (64 random bytes written
 * by the keel CLI into the identity page, net_rec.h).
 *
 * Mbed TLS's NV seed does the rest, behind the crypto wrapper (kc_rng_init(), core/src/
 * kcrypto_rng.c: the entropy context, the CTR_DRBG and PSA's external-RNG hook; this file only
 * keeps the seed's storage and calls no Mbed TLS): the first time an entropy context produces
 * output, it reads the seed, mixes it into its pool, and writes a *new* seed derived from the pool
 * back (before any output is used). We keep that seed in two flash pages used alternately, A and B, each with
 * a counter; the newest valid page wins:
 *
 *   boot n:   read A (counter c)  -> entropy pool -> write B (counter c+1) -> use the DRBG
 *   boot n+1: read B (counter c+1) -> ...          -> write A (counter c+2)
 *
 * Why two pages: a power cut while B is erased or programmed leaves A intact and no output of
 * this boot used (the write comes first), so the next boot starts again from A exactly as this
 * one did and nothing random is ever repeated *after being used*. With one page, a torn write
 * would leave only the provisioned seed, and every boot after it would replay the first one.
 *
 * Before the first write (a new device), the provisioned 64 bytes, hashed to the 32-byte block
 * Mbed TLS's SHA-256 entropy pool uses, are the seed (counter 0).
 *
 * Flash wear: each entropy context writes once per boot (ours, and the one lwIP's TLS glue
 * creates), so each page is erased about once per boot: fine for QEMU and for thousands of real
 * boots; a long-lived product would append records within a page before erasing.
 */
#include "net_seed.h"

#include <string.h>

#include "keel/board.h"
#include "keel/kcrypto.h"
#include "lwip/arch.h"
#include "net_rec.h"
#include "net_seedstore.h"
#include "uv.h"

typedef struct seed_state {
    net_seedstore_t store;
    bool have;
    uint32_t writes;
    uint32_t boot;
} seed_state_t;

static seed_state_t ss;

/* The current seed: the seed pages, else the provisioned 64 bytes hashed to one 32-byte block. */
static bool load_current(kflash_t *fl)
{
    uint8_t rec[NET_SEED_REC_SIZE], prov[NET_SEED_BYTES], first[NET_STATE_SEED];
    bool have_prov = kflash_read(fl, kboard_fw.ipart.ident + NET_REC_SEED_OFF, rec, sizeof(rec)) == KERR_OK &&
                     net_seed_rec_decode(rec, prov) == KERR_OK;
    if (have_prov)
        kc_sha256(prov, sizeof(prov), first);
    kerr_t err = net_seedstore_load(&ss.store, fl, kboard_fw.ipart.seed_a, kboard_fw.ipart.seed_b,
                                    have_prov ? first : NULL);
    memset(prov, 0, sizeof(prov));
    memset(first, 0, sizeof(first));
    return err == KERR_OK;
}

static bool nv_read(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    if (!ss.have || len > NET_STATE_SEED)
        return false;
    memcpy(buf, ss.store.seed, len);
    return true;
}

static bool nv_write(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    if (!ss.have || len != NET_STATE_SEED)
        return false;
    kerr_t err = net_seedstore_write(&ss.store, buf);
    if (err != KERR_OK) {
        uv_log("net: cannot persist the entropy seed (%s): no randomness this boot", kerr_str(err));
        return false;
    }
    ss.writes++;
    return true;
}

static const kc_nv_seed_ops_t seed_ops = { nv_read, nv_write, NULL };

bool net_seed_init(kflash_t *fl, const char *personal)
{
    ss.have = fl && load_current(fl);
    if (!ss.have) {
        uv_log("net: the device has no entropy seed (keel device provision or keel device run "
               "--broker write one): network off");
        return false;
    }
    int code;
    kc_rng_rc_t rc = kc_rng_init(&seed_ops, (const uint8_t *)personal, strlen(personal), &code);
    if (rc == KC_RNG_SEED_FAILED) {
        uv_log("net: seeding the DRBG failed (-0x%04x): network off", (unsigned)-code);
        return false;
    }
    /* Seeding wrote the seed pages once: their counter is now above every earlier boot's. */
    ss.boot = ss.store.counter;
    if (rc == KC_RNG_PSA_FAILED) {
        uv_log("net: PSA crypto init failed (%d): network off", code);
        return false;
    }
    return true;
}

int net_seed_random(void *p_rng, unsigned char *out, size_t len)
{
    return kc_rng_random(p_rng, out, len);
}

uint32_t net_seed_boot(void)
{
    return ss.boot;
}

uint32_t net_seed_writes(void)
{
    return ss.writes;
}

/* lwIP's LWIP_RAND (arch/cc.h): TCP source ports, DHCP transaction ids. lwIP is only started
 * after net_seed_init() succeeded, so a failure here is a broken invariant. */
uint32_t lwip_port_rand(void)
{
    uint32_t v;
    if (net_seed_random(NULL, (unsigned char *)&v, sizeof(v)) != 0)
        lwip_port_assert("lwip_port_rand before the DRBG was seeded", __FILE__, __LINE__);
    return v;
}

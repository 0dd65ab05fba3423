/*
 * The entropy of the microvisor: the AN505 has no TRNG, and a timer value is guessable, so every
 * random number descends from a secret seed provisioned into the device (64 random bytes written
 * by the keel CLI into the identity page, net_rec.h).
 *
 * Mbed TLS's NV seed does the rest: the first time an entropy context produces output, it reads
 * the seed, mixes it into its pool, and writes a *new* seed derived from the pool back (before
 * any output is used). We keep that seed in two flash pages used alternately, A and B, each with
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

#include "layout.h"
#include "lwip/arch.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/platform.h"
#include "mbedtls/sha256.h"
#include "net_rec.h"
#include "uv.h"

typedef struct seed_state {
    kflash_t *fl;
    uint32_t counter;       /* counter of the current seed */
    uint32_t page;          /* page holding it, 0 when it is the provisioned one */
    uint8_t seed[NET_STATE_SEED];
    uint32_t writes;
    bool ready;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} seed_state_t;

static seed_state_t ss;

static bool read_page(uint32_t page, uint32_t *out_counter, uint8_t out_seed[NET_STATE_SEED])
{
    uint8_t rec[NET_STATE_REC_SIZE];
    return kflash_read(ss.fl, page, rec, sizeof(rec)) == KERR_OK &&
           net_state_rec_decode(rec, out_counter, out_seed) == KERR_OK;
}

static bool load_current(void)
{
    uint32_t ca = 0, cb = 0;
    uint8_t sa[NET_STATE_SEED], sb[NET_STATE_SEED];
    bool va = read_page(NET_SEED_PAGE_A, &ca, sa), vb = read_page(NET_SEED_PAGE_B, &cb, sb);
    if (va || vb) {
        /* Newer = larger counter, wrap-safe. */
        bool use_a = va && (!vb || (int32_t)(ca - cb) > 0);
        ss.counter = use_a ? ca : cb;
        ss.page = use_a ? NET_SEED_PAGE_A : NET_SEED_PAGE_B;
        memcpy(ss.seed, use_a ? sa : sb, NET_STATE_SEED);
        return true;
    }
    uint8_t rec[NET_SEED_REC_SIZE], prov[NET_SEED_BYTES];
    if (kflash_read(ss.fl, AN505_IDENT_OFF + NET_REC_SEED_OFF, rec, sizeof(rec)) != KERR_OK ||
        net_seed_rec_decode(rec, prov) != KERR_OK)
        return false;
    mbedtls_sha256_ret(prov, sizeof(prov), ss.seed, 0);
    memset(prov, 0, sizeof(prov));
    ss.counter = 0u;
    ss.page = 0u;
    return true;
}

static int nv_read(unsigned char *buf, size_t len)
{
    if (!ss.fl || len > NET_STATE_SEED)
        return -1;
    memcpy(buf, ss.seed, len);
    return (int)len;
}

/* Persist a new seed into the page not holding the current one (erase, then program). */
static int nv_write(unsigned char *buf, size_t len)
{
    if (!ss.fl || len != NET_STATE_SEED)
        return -1;
    uint32_t page = ss.page == NET_SEED_PAGE_A ? NET_SEED_PAGE_B : NET_SEED_PAGE_A;
    uint8_t rec[NET_STATE_REC_SIZE];
    net_state_rec_encode(ss.counter + 1u, buf, rec);
    kerr_t err = kflash_erase(ss.fl, page);
    if (err == KERR_OK)
        err = kflash_program(ss.fl, page, rec, sizeof(rec));
    if (err != KERR_OK) {
        uv_log("net: cannot persist the entropy seed (%s): no randomness this boot", kerr_str(err));
        return -1;
    }
    ss.counter++;
    ss.page = page;
    memcpy(ss.seed, buf, NET_STATE_SEED);
    ss.writes++;
    return (int)len;
}

bool net_seed_init(kflash_t *fl, const char *personal)
{
    ss.fl = fl;
    if (!fl || !load_current()) {
        uv_log("net: the device has no entropy seed (provision it with keel device run "
               "--broker PORT, which writes one): network off");
        ss.fl = NULL;
        return false;
    }
    mbedtls_platform_set_nv_seed(nv_read, nv_write);
    mbedtls_entropy_init(&ss.entropy);
    mbedtls_ctr_drbg_init(&ss.drbg);
    int ret = mbedtls_ctr_drbg_seed(&ss.drbg, mbedtls_entropy_func, &ss.entropy,
                                    (const unsigned char *)personal, strlen(personal));
    if (ret != 0) {
        uv_log("net: seeding the DRBG failed (-0x%04x): network off", (unsigned)-ret);
        return false;
    }
    ss.ready = true;
    return true;
}

int net_seed_random(void *p_rng, unsigned char *out, size_t len)
{
    (void)p_rng;
    if (!ss.ready)
        return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
    return mbedtls_ctr_drbg_random(&ss.drbg, out, len);
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

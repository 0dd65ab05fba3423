/* net_seedstore: see net_seedstore.h (and net_seed.c for why two pages). */
#include "net_seedstore.h"

#include <stdbool.h>
#include <string.h>

static bool read_page(kflash_t *fl, uint32_t page, uint32_t *out_counter, uint8_t *out_seed)
{
    uint8_t rec[NET_STATE_REC_SIZE];
    return kflash_read(fl, page, rec, sizeof(rec)) == KERR_OK &&
           net_state_rec_decode(rec, out_counter, out_seed) == KERR_OK;
}

kerr_t net_seedstore_load(net_seedstore_t *s, kflash_t *fl, uint32_t page_a, uint32_t page_b,
                          const uint8_t *provisioned)
{
    uint32_t ca = 0, cb = 0;
    uint8_t sa[NET_STATE_SEED], sb[NET_STATE_SEED];
    bool va = read_page(fl, page_a, &ca, sa), vb = read_page(fl, page_b, &cb, sb);
    memset(s, 0, sizeof(*s));
    s->fl = fl;
    s->page_a = page_a;
    s->page_b = page_b;
    if (va || vb) {
        bool use_a = va && (!vb || (int32_t)(ca - cb) > 0); /* newer = larger, wrap-safe */
        s->counter = use_a ? ca : cb;
        s->page = use_a ? page_a : page_b;
        memcpy(s->seed, use_a ? sa : sb, NET_STATE_SEED);
        return KERR_OK;
    }
    if (!provisioned)
        return KERR_FORMAT;
    memcpy(s->seed, provisioned, NET_STATE_SEED);
    return KERR_OK;
}

kerr_t net_seedstore_write(net_seedstore_t *s, const uint8_t seed[NET_STATE_SEED])
{
    uint32_t page = s->page == s->page_a ? s->page_b : s->page_a;
    uint8_t rec[NET_STATE_REC_SIZE];
    net_state_rec_encode(s->counter + 1u, seed, rec);
    kerr_t err = kflash_erase(s->fl, page);
    if (err == KERR_OK)
        err = kflash_program(s->fl, page, rec, sizeof(rec));
    if (err != KERR_OK)
        return err;
    s->counter++;
    s->page = page;
    memcpy(s->seed, seed, NET_STATE_SEED);
    return KERR_OK;
}

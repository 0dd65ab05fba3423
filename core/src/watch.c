/*
 * Data watchpoints: the set and the hit rule (keel/watch.h).
 */
#include "keel/watch.h"

#include <string.h>

void watch_init(watch_set_t *s)
{
    memset(s, 0, sizeof(*s));
}

kerr_t watch_add(watch_set_t *s, watch_type_t type, uint32_t addr, uint32_t len)
{
    if ((type != WATCH_WRITE && type != WATCH_READ && type != WATCH_ACCESS) || len == 0u ||
        (uint64_t)addr + len > 0x100000000ull)
        return KERR_INVAL;
    if (s->count >= WATCH_MAX)
        return KERR_NOMEM;
    watch_t *w = &s->w[s->count++];
    w->addr = addr;
    w->len = len;
    w->type = type;
    w->hash = 0;
    return KERR_OK;
}

kerr_t watch_remove(watch_set_t *s, watch_type_t type, uint32_t addr, uint32_t len)
{
    for (unsigned i = 0; i < s->count; i++) {
        if (s->w[i].type == type && s->w[i].addr == addr && s->w[i].len == len) {
            /* keep the order: the first matching entry wins in watch_hit */
            memmove(&s->w[i], &s->w[i + 1], (s->count - i - 1u) * sizeof(s->w[0]));
            s->count--;
            return KERR_OK;
        }
    }
    return KERR_INVAL;
}

uint32_t watch_granule_base(const watch_t *w)
{
    return w->addr & ~(WATCH_GRANULE - 1u);
}

uint32_t watch_granule_limit(const watch_t *w)
{
    return (w->addr + (w->len - 1u)) | (WATCH_GRANULE - 1u);
}

static bool overlaps(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    /* 64-bit ends: a range may end exactly at 4 GiB */
    return (uint64_t)a < (uint64_t)b + blen && (uint64_t)b < (uint64_t)a + alen;
}

bool watch_in_granules(const watch_set_t *s, uint32_t addr, uint32_t len)
{
    for (unsigned i = 0; i < s->count; i++) {
        uint32_t base = watch_granule_base(&s->w[i]);
        if (overlaps(addr, len, base, watch_granule_limit(&s->w[i]) - base + 1u))
            return true;
    }
    return false;
}

uint32_t watch_hash(const uint8_t *p, uint32_t len)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

const watch_t *watch_hit(const watch_set_t *s, bool write, uint32_t fault_addr, uint32_t changed)
{
    uint32_t extent = 4u - (fault_addr & 3u);
    for (unsigned i = 0; i < s->count; i++) {
        const watch_t *w = &s->w[i];
        bool kind = write ? w->type != WATCH_READ : w->type != WATCH_WRITE;
        if (!kind)
            continue;
        if (overlaps(fault_addr, extent, w->addr, w->len))
            return w;
        if (write && (changed & (1u << i)))
            return w;
    }
    return NULL;
}

/* Copy-on-write kflash backend: see flash_cow.h. */
#include "keel/flash_cow.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool erased(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (p[i] != 0xFFu) {
            return false;
        }
    }
    return true;
}

kerr_t kflash_cow_freeze(kflash_cow_base_t *b, const uint8_t *image, uint32_t size, uint32_t unit)
{
    memset(b, 0, sizeof(*b));
    if (unit == 0 || (unit & (unit - 1u)) != 0 || size == 0 || size % unit != 0) {
        return KERR_INVAL;
    }
    b->size = size;
    b->unit = unit;
    b->units = calloc(size / unit, sizeof(*b->units));
    if (b->units == NULL) {
        return KERR_NOMEM;
    }
    for (uint32_t i = 0; i < size / unit; i++) {
        const uint8_t *p = image + (size_t)i * unit;
        if (erased(p, unit)) {
            continue;
        }
        if ((b->units[i] = malloc(unit)) == NULL) {
            kflash_cow_base_free(b);
            return KERR_NOMEM;
        }
        memcpy(b->units[i], p, unit);
    }
    return KERR_OK;
}

void kflash_cow_base_free(kflash_cow_base_t *b)
{
    if (b->units != NULL) {
        for (uint32_t i = 0; i < b->size / b->unit; i++) {
            free(b->units[i]);
        }
    }
    free(b->units);
    memset(b, 0, sizeof(*b));
}

void kflash_cow_init(kflash_cow_t *c, const kflash_cow_base_t *base)
{
    memset(c, 0, sizeof(*c));
    c->base = base;
}

void kflash_cow_free(kflash_cow_t *c)
{
    for (uint32_t i = 0; i < c->n; i++) {
        free(c->ov[i].data);
    }
    free(c->ov);
    kflash_cow_init(c, c->base);
}

size_t kflash_cow_bytes(const kflash_cow_t *c)
{
    return (size_t)c->n * c->base->unit + (size_t)c->cap * sizeof(*c->ov);
}

/* Position of unit idx in the overlay, or where it would go (*found false). */
static uint32_t find(const kflash_cow_t *c, uint32_t idx, bool *found)
{
    uint32_t lo = 0, hi = c->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2u;
        if (c->ov[mid].idx < idx) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    *found = lo < c->n && c->ov[lo].idx == idx;
    return lo;
}

/* The device's copy of unit idx, made from the base on first use; NULL without memory. */
static uint8_t *copy_of(kflash_cow_t *c, uint32_t idx)
{
    const kflash_cow_base_t *b = c->base;
    bool found;
    uint32_t pos = find(c, idx, &found);

    if (found) {
        return c->ov[pos].data;
    }
    if (c->n == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2u : 4u;
        kflash_cow_unit_t *ov = realloc(c->ov, cap * sizeof(*ov));
        if (ov == NULL) {
            return NULL;
        }
        c->ov = ov;
        c->cap = cap;
    }
    uint8_t *data = malloc(b->unit);
    if (data == NULL) {
        return NULL;
    }
    if (b->units[idx] != NULL) {
        memcpy(data, b->units[idx], b->unit);
    } else {
        memset(data, 0xFF, b->unit);
    }
    memmove(&c->ov[pos + 1u], &c->ov[pos], (c->n - pos) * sizeof(*c->ov));
    c->ov[pos] = (kflash_cow_unit_t){idx, data};
    c->n++;
    return data;
}

/* Move [off, off + len) between buf and the flash, unit by unit. */
static kerr_t span(kflash_cow_t *c, uint32_t off, uint8_t *buf, uint32_t len, bool write)
{
    const kflash_cow_base_t *b = c->base;

    if (off > b->size || len > b->size - off) {
        return KERR_IO;
    }
    while (len > 0) {
        uint32_t idx = off / b->unit, in = off % b->unit;
        uint32_t n = b->unit - in < len ? b->unit - in : len;
        if (write) {
            uint8_t *dst = copy_of(c, idx);
            if (dst == NULL) {
                return KERR_NOMEM;
            }
            memcpy(dst + in, buf, n);
        } else {
            bool found;
            uint32_t pos = find(c, idx, &found);
            const uint8_t *src = found ? c->ov[pos].data : b->units[idx];
            if (src != NULL) {
                memcpy(buf, src + in, n);
            } else {
                memset(buf, 0xFF, n);
            }
        }
        buf += n;
        off += n;
        len -= n;
    }
    return KERR_OK;
}

static kerr_t cow_read(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    return span(ctx, off, buf, len, false);
}

static kerr_t cow_write(void *ctx, uint32_t off, const void *buf, uint32_t len)
{
    return span(ctx, off, (uint8_t *)buf, len, true); /* not written to when write is true */
}

const kflash_backend_t kflash_cow_backend = {cow_read, cow_write};

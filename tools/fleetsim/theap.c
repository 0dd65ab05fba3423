/* theap: see theap.h. */
#include "theap.h"

#include <stdlib.h>

bool theap_init(theap_t *h, uint32_t devices)
{
    h->n = 0;
    h->cap = devices;
    h->idx = calloc(devices ? devices : 1u, sizeof(*h->idx));
    h->pos = malloc((devices ? devices : 1u) * sizeof(*h->pos));
    h->due = calloc(devices ? devices : 1u, sizeof(*h->due));
    if (h->idx == NULL || h->pos == NULL || h->due == NULL) {
        theap_free(h);
        return false;
    }
    for (uint32_t i = 0; i < devices; i++) {
        h->pos[i] = THEAP_NONE;
        h->due[i] = UINT64_MAX;
    }
    return true;
}

void theap_free(theap_t *h)
{
    free(h->idx);
    free(h->pos);
    free(h->due);
    h->idx = h->pos = NULL;
    h->due = NULL;
    h->n = h->cap = 0;
}

static void place(theap_t *h, uint32_t at, uint32_t d)
{
    h->idx[at] = d;
    h->pos[d] = at;
}

static void up(theap_t *h, uint32_t at)
{
    uint32_t d = h->idx[at];
    while (at > 0) {
        uint32_t parent = (at - 1u) / 2u;
        if (h->due[h->idx[parent]] <= h->due[d]) {
            break;
        }
        place(h, at, h->idx[parent]);
        at = parent;
    }
    place(h, at, d);
}

static void down(theap_t *h, uint32_t at)
{
    uint32_t d = h->idx[at];
    for (;;) {
        uint32_t l = 2u * at + 1u, r = l + 1u, m = at;
        uint64_t best = h->due[d];
        if (l < h->n && h->due[h->idx[l]] < best) {
            m = l;
            best = h->due[h->idx[l]];
        }
        if (r < h->n && h->due[h->idx[r]] < best) {
            m = r;
        }
        if (m == at) {
            break;
        }
        place(h, at, h->idx[m]);
        at = m;
    }
    place(h, at, d);
}

void theap_set(theap_t *h, uint32_t d, uint64_t due)
{
    uint32_t at = h->pos[d];
    if (due == UINT64_MAX) {
        if (at == THEAP_NONE) {
            return;
        }
        h->due[d] = due;
        h->pos[d] = THEAP_NONE;
        uint32_t last = h->idx[--h->n];
        if (at < h->n) {
            place(h, at, last);
            up(h, at);
            down(h, h->pos[last]);
        }
        return;
    }
    if (at == THEAP_NONE) {
        h->due[d] = due;
        place(h, h->n++, d);
        up(h, h->n - 1u);
        return;
    }
    uint64_t old = h->due[d];
    h->due[d] = due;
    if (due < old) {
        up(h, at);
    } else if (due > old) {
        down(h, at);
    }
}

uint64_t theap_peek(const theap_t *h, uint32_t *d)
{
    if (h->n == 0) {
        return UINT64_MAX;
    }
    *d = h->idx[0];
    return h->due[h->idx[0]];
}

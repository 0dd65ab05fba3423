/*
 * Delta encoder (host only: keel bundle build, keeld, tests). docs/delta.md.
 *
 * 1. bsdiff matching (suffix array of the old image, approximate extension of exact matches)
 *    on the raw images gives copy segments; their old->new shifts are the address map
 *    (unless the caller passes one, e.g. from both ELFs' symbols).
 * 2. Both images are normalized: every branch target and image pointer is replaced by where
 *    it points in the *new* image (through the map for the old one), so moved code matches
 *    exactly; bsdiff matching runs again on the normalized images.
 * 3. The ops are coded against the raw old image through kdlt_predict(), exactly as the
 *    decoder will replay them; the smallest of (map, normalized ops), (map, raw ops) and
 *    (no map, raw ops) is kept.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "keel/crc32.h"
#include "keel/delta.h"

#include "delta_model.h"
#include "le.h"

/* ---- range encoder: the mirror of delta_dec.c ---- */

typedef struct {
    uint8_t *buf;
    size_t n, cap;
    int oom;
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t cache_size;
    uint16_t p_int[KDLT_INT_CTX][KDLT_INT_PROBS];
    uint16_t p_diff[256];
    uint16_t p_lit[2][256];
} enc_t;

static void put(enc_t *e, uint8_t b)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 4096;
        uint8_t *nb = realloc(e->buf, cap);
        if (!nb) {
            e->oom = 1;
            return;
        }
        e->buf = nb;
        e->cap = cap;
    }
    e->buf[e->n++] = b;
}

static void shift_low(enc_t *e)
{
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32), b = e->cache;
        do {
            put(e, (uint8_t)(b + carry));
            b = 0xFF;
        } while (--e->cache_size != 0);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->cache_size++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

static void enc_bit(enc_t *e, uint16_t *p, uint32_t b)
{
    uint32_t bound = (e->range >> DLT_PROB_BITS) * *p;
    if (!b) {
        e->range = bound;
        *p = (uint16_t)(*p + (((1u << DLT_PROB_BITS) - *p) >> DLT_MOVE_BITS));
    } else {
        e->low += bound;
        e->range -= bound;
        *p = (uint16_t)(*p - (*p >> DLT_MOVE_BITS));
    }
    while (e->range < DLT_TOP) {
        e->range <<= 8;
        shift_low(e);
    }
}

static void enc_tree(enc_t *e, uint16_t *p, unsigned bits, uint32_t v)
{
    uint32_t m = 1;
    for (unsigned i = bits; i-- > 0;) {
        uint32_t b = (v >> i) & 1u;
        enc_bit(e, p + m, b);
        m = (m << 1) | b;
    }
}

static void enc_int(enc_t *e, unsigned ctx, uint32_t v)
{
    uint16_t *p = e->p_int[ctx];
    unsigned n = v ? 32u - (unsigned)__builtin_clz(v) : 0;
    enc_tree(e, p, 6, n);
    if (n < 2)
        return;
    enc_bit(e, p + DLT_LEN_TREE + n, (v >> (n - 2)) & 1u);
    for (unsigned i = n - 2; i-- > 0;) {
        e->range >>= 1;
        if ((v >> i) & 1u)
            e->low += e->range;
        while (e->range < DLT_TOP) {
            e->range <<= 8;
            shift_low(e);
        }
    }
}

static void enc_init(enc_t *e)
{
    memset(e, 0, sizeof(*e));
    e->range = 0xFFFFFFFFu;
    e->cache_size = 1;
    for (uint16_t *p = &e->p_int[0][0]; p < &e->p_int[0][0] + KDLT_INT_CTX * KDLT_INT_PROBS; p++)
        *p = DLT_PROB_INIT;
    for (unsigned i = 0; i < 256; i++)
        e->p_diff[i] = e->p_lit[0][i] = e->p_lit[1][i] = DLT_PROB_INIT;
}

/* ---- bsdiff matching ---- */

typedef struct {
    uint32_t add, extra;
    int32_t seek;
} ctrl_t;

typedef struct {
    ctrl_t *v;
    size_t n, cap;
} ctrls_t;

typedef struct {
    const int32_t *rank;
    int32_t k, n;
} sa_ctx_t;

static int sa_cmp(const void *a, const void *b, void *arg)
{
    const sa_ctx_t *c = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (c->rank[x] != c->rank[y])
        return c->rank[x] < c->rank[y] ? -1 : 1;
    int32_t rx = x + c->k < c->n ? c->rank[x + c->k] : -1;
    int32_t ry = y + c->k < c->n ? c->rank[y + c->k] : -1;
    return rx < ry ? -1 : rx > ry;
}

/* Suffix array by prefix doubling (O(n log^2 n); images are at most a few hundred KiB). */
static int32_t *suffix_array(const uint8_t *s, int32_t n)
{
    int32_t *sa = malloc(sizeof(int32_t) * (size_t)n), *rank = malloc(sizeof(int32_t) * (size_t)n),
            *tmp = malloc(sizeof(int32_t) * (size_t)n);
    if (!sa || !rank || !tmp) {
        free(sa), free(rank), free(tmp);
        return NULL;
    }
    for (int32_t i = 0; i < n; i++)
        sa[i] = i, rank[i] = s[i];
    for (int32_t k = 1;; k <<= 1) {
        sa_ctx_t c = { rank, k, n };
        qsort_r(sa, (size_t)n, sizeof(int32_t), sa_cmp, &c);
        tmp[sa[0]] = 0;
        for (int32_t i = 1; i < n; i++)
            tmp[sa[i]] = tmp[sa[i - 1]] + (sa_cmp(&sa[i - 1], &sa[i], &c) < 0);
        memcpy(rank, tmp, sizeof(int32_t) * (size_t)n);
        if (rank[sa[n - 1]] == n - 1 || k >= n)
            break;
    }
    free(rank), free(tmp);
    return sa;
}

static int32_t match_len(const uint8_t *a, int32_t na, const uint8_t *b, int32_t nb)
{
    int32_t i = 0;
    while (i < na && i < nb && a[i] == b[i])
        i++;
    return i;
}

/* Longest match of nw[0..nn) in old: its length, its old offset in *pos. */
static int32_t search(const int32_t *sa, const uint8_t *old, int32_t on, const uint8_t *nw,
                      int32_t nn, int32_t *pos)
{
    int32_t st = 0, en = on - 1;
    while (en - st > 1) {
        int32_t x = st + (en - st) / 2, l = on - sa[x] < nn ? on - sa[x] : nn;
        if (memcmp(old + sa[x], nw, (size_t)l) < 0)
            st = x;
        else
            en = x;
    }
    int32_t a = match_len(old + sa[st], on - sa[st], nw, nn);
    int32_t b = match_len(old + sa[en], on - sa[en], nw, nn);
    *pos = a >= b ? sa[st] : sa[en];
    return a >= b ? a : b;
}

static int push(ctrls_t *c, uint32_t add, uint32_t extra, int32_t seek)
{
    if (add == 0 && extra == 0) { /* nothing to do here: fold the seek into the previous one */
        if (c->n)
            c->v[c->n - 1].seek += seek;
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        ctrl_t *nv = realloc(c->v, cap * sizeof(ctrl_t));
        if (!nv)
            return -1;
        c->v = nv, c->cap = cap;
    }
    c->v[c->n++] = (ctrl_t){ add, extra, seek };
    return 0;
}

/*
 * bsdiff's scan (Colin Percival's algorithm): find an exact match that beats the bytes the
 * current alignment already matches by more than 8, then extend the previous match forwards and
 * this one backwards as long as at least half of the bytes agree; what lies between is extra.
 */
static int bsdiff(const uint8_t *old, int32_t on, const uint8_t *nw, int32_t nn, ctrls_t *out)
{
    int32_t *sa = suffix_array(old, on);
    if (!sa)
        return -1;
    int32_t scan = 0, len = 0, pos = 0, lastscan = 0, lastpos = 0, lastoffset = 0;
    while (scan < nn) {
        int32_t oldscore = 0, scsc;
        for (scsc = scan += len; scan < nn; scan++) {
            len = search(sa, old, on, nw + scan, nn - scan, &pos);
            for (; scsc < scan + len; scsc++)
                if (scsc + lastoffset < on && scsc + lastoffset >= 0 &&
                    old[scsc + lastoffset] == nw[scsc])
                    oldscore++;
            if ((len == oldscore && len != 0) || len > oldscore + 8)
                break;
            if (scan + lastoffset < on && scan + lastoffset >= 0 &&
                old[scan + lastoffset] == nw[scan])
                oldscore--;
        }
        if (len == oldscore && scan != nn)
            continue;
        int32_t s = 0, sf = 0, lenf = 0, lenb = 0;
        for (int32_t i = 0; lastscan + i < scan && lastpos + i < on;) {
            if (old[lastpos + i] == nw[lastscan + i])
                s++;
            i++;
            if (s * 2 - i > sf * 2 - lenf)
                sf = s, lenf = i;
        }
        if (scan < nn) {
            int32_t sb = 0;
            s = 0;
            for (int32_t i = 1; scan >= lastscan + i && pos >= i; i++) {
                if (old[pos - i] == nw[scan - i])
                    s++;
                if (s * 2 - i > sb * 2 - lenb)
                    sb = s, lenb = i;
            }
        }
        if (lastscan + lenf > scan - lenb) {
            int32_t overlap = (lastscan + lenf) - (scan - lenb), ss = 0, lens = 0;
            s = 0;
            for (int32_t i = 0; i < overlap; i++) {
                if (nw[lastscan + lenf - overlap + i] == old[lastpos + lenf - overlap + i])
                    s++;
                if (nw[scan - lenb + i] == old[pos - lenb + i])
                    s--;
                if (s > ss)
                    ss = s, lens = i + 1;
            }
            lenf += lens - overlap;
            lenb -= lens;
        }
        if (push(out, (uint32_t)lenf, (uint32_t)((scan - lenb) - (lastscan + lenf)),
                 (pos - lenb) - (lastpos + lenf)) != 0) {
            free(sa);
            return -1;
        }
        lastscan = scan - lenb;
        lastpos = pos - lenb;
        lastoffset = pos - scan;
    }
    free(sa);
    return 0;
}

/* ---- address map ---- */

#define MIN_SEG 32 /* copy segments shorter than this say little about where code moved */

typedef struct {
    kdlt_seg_t v[KDLT_MAP_MAX];
    uint32_t n;
} map_t;

typedef struct {
    uint32_t start, len;
    int32_t delta;
} run_t;

static int by_len(const void *a, const void *b)
{
    const run_t *x = a, *y = b;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* The old->new shifts of the copy segments, longest winning, merged down to KDLT_MAP_MAX. */
static int derive_map(const ctrls_t *c, uint32_t on, map_t *m)
{
    int32_t *d = malloc(sizeof(int32_t) * on);
    run_t *r = malloc(sizeof(run_t) * (on > c->n ? on : c->n));
    uint32_t nr = 0, o = 0, n = 0;
    if (!d || !r) {
        free(d), free(r);
        return -1;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].add >= MIN_SEG)
            r[nr++] = (run_t){ o, c->v[i].add, (int32_t)(n - o) };
        o += c->v[i].add + (uint32_t)c->v[i].seek;
        n += c->v[i].add + c->v[i].extra;
    }
    qsort(r, nr, sizeof(run_t), by_len);
    for (uint32_t i = 0; i < on; i++)
        d[i] = KDLT_MAP_HOLE;
    for (uint32_t i = 0; i < nr; i++)
        for (uint32_t k = 0; k < r[i].len; k++)
            d[r[i].start + k] = r[i].delta;
    nr = 0;
    for (uint32_t i = 0; i < on; i++) {
        if (nr && r[nr - 1].delta == d[i])
            r[nr - 1].len++;
        else
            r[nr++] = (run_t){ i, 1, d[i] };
    }
    free(d);
    for (;;) { /* merge the weakest run into its left neighbour until the map fits */
        uint32_t w = 0;
        for (uint32_t i = 0; i < nr; i++) {
            if (w && r[w - 1].delta == r[i].delta)
                r[w - 1].len += r[i].len;
            else
                r[w++] = r[i];
        }
        nr = w;
        uint32_t best = UINT32_MAX, bi = 0;
        for (uint32_t i = 1; i < nr; i++) {
            int hole_between = r[i].delta == KDLT_MAP_HOLE && i + 1 < nr &&
                               r[i - 1].delta == r[i + 1].delta;
            uint32_t score = hole_between ? 0 : r[i].len;
            if ((nr > KDLT_MAP_MAX || hole_between || r[i].len < MIN_SEG) && score < best)
                best = score, bi = i;
        }
        if (best == UINT32_MAX)
            break;
        r[bi].delta = r[bi - 1].delta;
    }
    m->n = 0;
    for (uint32_t i = 0; i < nr && m->n < KDLT_MAP_MAX; i++)
        if (m->n || r[i].delta != KDLT_MAP_HOLE) /* nothing is predicted before the first */
            m->v[m->n++] = (kdlt_seg_t){ r[i].start, r[i].delta };
    free(r);
    return 0;
}

/*
 * Normalized copy for matching: each branch or image pointer becomes its target in the new
 * image (the old image's through the map), by the scan rules of kdlt_predict(): predicting
 * "to new offset 0" turns a branch's offset into its absolute target.
 */
static void normalize(uint8_t *s, uint32_t n, const kdlt_map_t *m)
{
    for (uint32_t p = 0; p + 4 <= n; p += 2) {
        uint8_t out[4];
        if (kdlt_predict(m, p, 0, s + p, 4, out) == 4) {
            memcpy(s + p, out, 4);
            p += 2;
        }
    }
}

/* ---- the body ---- */

static void code_body(enc_t *e, const uint8_t *old, const uint8_t *nw, uint32_t nn,
                      const ctrls_t *c, const kdlt_map_t *m, uint8_t *diff)
{
    enc_int(e, DLT_I_MAP, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        enc_int(e, DLT_I_MAP, m->seg[i].start - (i ? m->seg[i - 1].start : 0));
        enc_int(e, DLT_I_MAP,
                m->seg[i].delta == KDLT_MAP_HOLE ? 0 : dlt_zigzag(m->seg[i].delta) + 1);
    }
    uint32_t o = 0, np = 0;
    for (size_t ci = 0; ci < c->n; ci++) {
        const ctrl_t *k = &c->v[ci];
        enc_int(e, DLT_I_ADD, k->add);
        for (uint32_t i = 0; i < k->add;) { /* the bytes the decoder will predict */
            uint32_t left = k->add - i;
            uint8_t pred[4];
            uint32_t pn = kdlt_predict(m, o + i, np + i, old + o + i, left < 4 ? left : 4, pred);
            for (uint32_t j = 0; j < pn; j++, i++)
                diff[i] = (uint8_t)(nw[np + i] - pred[j]);
        }
        for (uint32_t i = 0; i < k->add;) { /* zero run, non-zero byte, zero run, ... */
            uint32_t z = 0;
            while (i + z < k->add && diff[i + z] == 0)
                z++;
            enc_int(e, DLT_I_ZRUN, z);
            i += z;
            if (i == k->add)
                break;
            enc_tree(e, e->p_diff, 8, diff[i++]);
            if (i == k->add)
                break;
        }
        o += k->add, np += k->add;
        if (np == nn)
            break;
        enc_int(e, DLT_I_EXTRA, k->extra);
        for (uint32_t i = 0; i < k->extra; i++)
            enc_tree(e, e->p_lit[(np + i) & 1u], 8, nw[np + i]);
        np += k->extra;
        if (np == nn)
            break;
        enc_int(e, DLT_I_SEEK, dlt_zigzag(k->seek));
        o += (uint32_t)k->seek;
    }
}

/* One candidate patch (header + body) into *out. */
static int encode_one(const uint8_t *old, uint32_t on, const uint8_t *nw, uint32_t nn,
                      const ctrls_t *c, const kdlt_map_t *m, uint8_t *diff, uint8_t **out,
                      size_t *out_len)
{
    enc_t *e = malloc(sizeof(enc_t));
    if (!e)
        return -1;
    enc_init(e);
    for (unsigned i = 0; i < KDLT_HDR_SIZE; i++)
        put(e, 0);
    code_body(e, old, nw, nn, c, m, diff);
    for (int i = 0; i < 5; i++)
        shift_low(e);
    if (e->oom) {
        free(e->buf), free(e);
        return -1;
    }
    uint8_t *h = e->buf;
    le_put32(h + KDLT_OFF_MAGIC, KDLT_MAGIC);
    h[KDLT_OFF_VERSION] = KDLT_VERSION;
    h[KDLT_OFF_FLAGS] = 0;
    le_put16(h + KDLT_OFF_HDR_SIZE, KDLT_HDR_SIZE);
    le_put32(h + KDLT_OFF_OLD_LEN, on);
    le_put32(h + KDLT_OFF_NEW_LEN, nn);
    le_put32(h + KDLT_OFF_OLD_CRC, kcrc32(0, old, on));
    le_put32(h + KDLT_OFF_NEW_CRC, kcrc32(0, nw, nn));
    le_put32(h + KDLT_OFF_BASE, m->base);
    le_put32(h + KDLT_OFF_BODY_LEN, (uint32_t)(e->n - KDLT_HDR_SIZE));
    *out = e->buf;
    *out_len = e->n;
    free(e);
    return 0;
}

kerr_t kdlt_encode(const uint8_t *old, uint32_t old_len, const uint8_t *new_, uint32_t new_len,
                   const kdlt_enc_opts_t *opts, uint8_t **out, size_t *out_len)
{
    if (!old || old_len == 0 || old_len > INT32_MAX / 2 || !new_ || new_len == 0 ||
        new_len > INT32_MAX / 2 || !opts || !out || !out_len || opts->map_n > KDLT_MAP_MAX)
        return KERR_INVAL;
    for (uint32_t i = 1; i < opts->map_n; i++)
        if (opts->map[i].start <= opts->map[i - 1].start)
            return KERR_INVAL;
    ctrls_t raw = { 0 }, norm = { 0 };
    map_t *mp = malloc(sizeof(map_t));
    uint8_t *no = malloc(old_len), *nn = malloc(new_len), *diff = malloc(new_len);
    kerr_t err = KERR_NOMEM;
    *out = NULL;
    if (!mp || !no || !nn || !diff || bsdiff(old, (int32_t)old_len, new_, (int32_t)new_len, &raw))
        goto done;
    if (opts->map) {
        memcpy(mp->v, opts->map, opts->map_n * sizeof(kdlt_seg_t));
        mp->n = opts->map_n;
    } else if (derive_map(&raw, old_len, mp)) {
        goto done;
    }
    kdlt_map_t m = { mp->v, mp->n, old_len, opts->base };
    kdlt_map_t none = { mp->v, 0, old_len, opts->base };
    static const kdlt_seg_t same = { 0, 0 };
    kdlt_map_t id = { &same, 1, new_len, opts->base };
    memcpy(no, old, old_len);
    memcpy(nn, new_, new_len);
    normalize(no, old_len, &m);
    normalize(nn, new_len, &id);
    if (bsdiff(no, (int32_t)old_len, nn, (int32_t)new_len, &norm))
        goto done;
    const struct { const ctrls_t *c; const kdlt_map_t *m; } cand[] = {
        { &norm, &m }, { &raw, &m }, { &raw, &none },
    };
    for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
        uint8_t *p;
        size_t n;
        if (encode_one(old, old_len, new_, new_len, cand[i].c, cand[i].m, diff, &p, &n))
            goto done;
        if (!*out || n < *out_len) {
            free(*out);
            *out = p, *out_len = n;
        } else {
            free(p);
        }
    }
    err = KERR_OK;
done:
    if (err) {
        free(*out);
        *out = NULL;
    }
    free(raw.v), free(norm.v), free(mp), free(no), free(nn), free(diff);
    return err;
}

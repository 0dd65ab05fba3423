/*
 * Streaming delta decoder (docs/delta.md): no allocation, bounded reads of the old image,
 * writes only the caller's page buffer. Runs on the device at staging time and on the host.
 *
 * Streaming without a coroutine: the body is range-coded, and one decoding step (an integer,
 * a byte) consumes at most STEP_IN input bytes. Input is staged in a small buffer and a step
 * runs only when the buffer holds STEP_IN bytes or the rest of the body, so a step never stops
 * half-way and the patch can arrive in pieces of any size. Steps that only copy old bytes
 * (a zero run of an add) need no input and run to the end of the run.
 *
 *   HDR -> RC_INIT -> MAP_N -> (MAP_START -> MAP_DELTA)* -> ADD_LEN -+-> ZRUN -> COPY -+-> DIFF -+
 *                                    ^                              |     ^            |         |
 *                                    |                              |     +------------+---------+
 *                                    +-- SEEK <- (LIT)* <- EXTRA_LEN <-+   (add done)
 *   DONE when the result is complete (after an add or an extra); then the CRC is checked.
 */
#include <string.h>

#include "keel/crc32.h"
#include "keel/delta.h"

#include "delta_model.h"

enum {
    S_HDR, S_RC_INIT, S_MAP_N, S_MAP_START, S_MAP_DELTA, S_ADD_LEN, S_ZRUN, S_COPY, S_DIFF,
    S_EXTRA_LEN, S_LIT, S_SEEK, S_DONE
};

#define STEP_IN 16u /* input bytes one step can consume: 7 decisions + 31 plain bits < 16 */

static kerr_t fail(kdlt_dec_t *d, kerr_t err)
{
    d->err = err;
    return err;
}

static uint32_t in_byte(kdlt_dec_t *d)
{
    if (d->in_pos < d->in_n)
        return d->in[d->in_pos++];
    d->overrun = 1; /* read past the body: reported as corrupt by the step */
    return 0;
}

static uint32_t bit(kdlt_dec_t *d, uint16_t *p)
{
    uint32_t bound = (d->range >> DLT_PROB_BITS) * *p, b;
    if (d->code < bound) {
        d->range = bound;
        *p = (uint16_t)(*p + (((1u << DLT_PROB_BITS) - *p) >> DLT_MOVE_BITS));
        b = 0;
    } else {
        d->range -= bound;
        d->code -= bound;
        *p = (uint16_t)(*p - (*p >> DLT_MOVE_BITS));
        b = 1;
    }
    if (d->range < DLT_TOP) {
        d->range <<= 8;
        d->code = (d->code << 8) | in_byte(d);
    }
    return b;
}

static uint32_t tree(kdlt_dec_t *d, uint16_t *p, unsigned bits)
{
    uint32_t m = 1;
    for (unsigned i = 0; i < bits; i++)
        m = (m << 1) | bit(d, p + m);
    return m - (1u << bits);
}

/* An integer (delta_model.h); a bit length over 32 marks the stream corrupt. */
static uint32_t get_int(kdlt_dec_t *d, unsigned ctx)
{
    uint16_t *p = d->p_int[ctx];
    uint32_t n = tree(d, p, 6), v;
    if (n < 2)
        return n;
    if (n > 32) {
        d->overrun = 1;
        return 0;
    }
    v = 2u | bit(d, p + DLT_LEN_TREE + n);
    for (uint32_t i = 2; i < n; i++) {
        d->range >>= 1;
        uint32_t b = d->code >= d->range;
        if (b)
            d->code -= d->range;
        v = (v << 1) | b;
        if (d->range < DLT_TOP) {
            d->range <<= 8;
            d->code = (d->code << 8) | in_byte(d);
        }
    }
    return v;
}

static kerr_t emit(kdlt_dec_t *d, uint32_t b)
{
    d->cfg.page_buf[d->page_fill++] = (uint8_t)b;
    d->npos++;
    if (d->page_fill < d->cfg.page_size && d->npos < d->new_len)
        return KERR_OK;
    kerr_t err = KERR_OK;
    d->crc = kcrc32(d->crc, d->cfg.page_buf, d->page_fill);
    if (d->cfg.page)
        err = d->cfg.page(d->cfg.ctx, d->page_index, d->cfg.page_buf, d->page_fill);
    d->page_index++;
    d->page_fill = 0;
    d->paused = d->pause;
    return err;
}

/* The next predicted old byte of the current add (kdlt_predict over a read-ahead window). */
static kerr_t predicted(kdlt_dec_t *d, uint32_t *out)
{
    if (d->pend_i == d->pend_n) {
        uint32_t k = d->left < 4 ? d->left : 4;
        if (d->opos < d->ob_off || d->opos + k > d->ob_off + d->ob_n) {
            uint32_t n = d->old_len - d->opos;
            if (n > KDLT_OLD_BUF)
                n = KDLT_OLD_BUF;
            kerr_t err = d->cfg.read_old(d->cfg.ctx, d->opos, d->ob, n);
            if (err)
                return err;
            d->ob_off = d->opos;
            d->ob_n = n;
        }
        kdlt_map_t m = { d->map, d->map_n, d->old_len, d->base };
        d->pend_n = (uint8_t)kdlt_predict(&m, d->opos, d->npos, d->ob + (d->opos - d->ob_off),
                                          k, d->pend);
        d->pend_i = 0;
    }
    *out = d->pend[d->pend_i++];
    d->opos++;
    d->left--;
    return KERR_OK;
}

static void init_probs(uint16_t *p, uint32_t n)
{
    while (n--)
        *p++ = DLT_PROB_INIT;
}

/* Header complete: check it against the caller's limits and the old image, set up the model. */
static kerr_t start(kdlt_dec_t *d)
{
    kdlt_hdr_t h;
    kerr_t err = kdlt_parse_header(d->in, KDLT_HDR_SIZE, &h);
    if (err)
        return err;
    if (h.old_len > d->cfg.old_cap || h.new_len > d->cfg.new_cap)
        return KERR_DLT_TOOBIG;
    d->old_len = h.old_len;
    d->new_len = h.new_len;
    d->new_crc = h.new_crc;
    d->body_len = h.body_len;
    d->base = h.base;
    uint32_t crc = 0;
    for (uint32_t off = 0; off < h.old_len; off += KDLT_OLD_BUF) {
        uint32_t n = h.old_len - off < KDLT_OLD_BUF ? h.old_len - off : KDLT_OLD_BUF;
        err = d->cfg.read_old(d->cfg.ctx, off, d->ob, n);
        if (err)
            return err;
        crc = kcrc32(crc, d->ob, n);
    }
    if (crc != h.old_crc)
        return KERR_DLT_BASE;
    init_probs(&d->p_int[0][0], KDLT_INT_CTX * KDLT_INT_PROBS);
    init_probs(d->p_diff, 256);
    init_probs(&d->p_lit[0][0], 2 * 256);
    d->in_n = 0;
    d->state = S_RC_INIT;
    return KERR_OK;
}

static kerr_t add_done(kdlt_dec_t *d, unsigned next)
{
    if (d->npos < d->new_len) {
        d->state = (uint8_t)next;
        return KERR_OK;
    }
    d->state = S_DONE;
    return d->crc == d->new_crc ? KERR_OK : KERR_DLT_RESULT;
}

/* One step of the state machine above. */
static kerr_t step(kdlt_dec_t *d)
{
    uint32_t v, b;
    kerr_t err;
    switch (d->state) {
    case S_RC_INIT:
        d->range = 0xFFFFFFFFu;
        for (int i = 0; i < 5; i++)
            d->code = (d->code << 8) | in_byte(d);
        if (d->in[0] != 0)
            return KERR_DLT_CORRUPT;
        d->state = S_MAP_N;
        return KERR_OK;
    case S_MAP_N:
        d->map_n = get_int(d, DLT_I_MAP);
        if (d->map_n > KDLT_MAP_MAX)
            return KERR_DLT_CORRUPT;
        d->left = 0;
        d->state = d->map_n ? S_MAP_START : S_ADD_LEN;
        return KERR_OK;
    case S_MAP_START:
        v = get_int(d, DLT_I_MAP);
        b = d->left ? d->map[d->left - 1].start : 0;
        if ((d->left && v == 0) || v >= d->old_len - b)
            return KERR_DLT_CORRUPT;
        d->map[d->left].start = b + v;
        d->state = S_MAP_DELTA;
        return KERR_OK;
    case S_MAP_DELTA:
        v = get_int(d, DLT_I_MAP);
        d->map[d->left].delta = v ? dlt_unzigzag(v - 1) : KDLT_MAP_HOLE;
        d->state = ++d->left < d->map_n ? S_MAP_START : S_ADD_LEN;
        return KERR_OK;
    case S_ADD_LEN:
        v = get_int(d, DLT_I_ADD);
        if (v > d->new_len - d->npos || v > d->old_len - d->opos)
            return KERR_DLT_CORRUPT;
        d->left = v;
        d->last_add = v; /* an empty add may not be followed by an empty extra */
        d->pend_i = d->pend_n = 0;
        return v ? (d->state = S_ZRUN, KERR_OK) : add_done(d, S_EXTRA_LEN);
    case S_ZRUN:
        v = get_int(d, DLT_I_ZRUN);
        if (v > d->left)
            return KERR_DLT_CORRUPT;
        d->zrun = v;
        d->state = S_COPY;
        return KERR_OK;
    case S_COPY:
        while (d->zrun) {
            d->zrun--;
            if ((err = predicted(d, &b)) != KERR_OK || (err = emit(d, b)) != KERR_OK)
                return err;
            if (d->paused)
                return KERR_OK; /* the copy goes on at the next feed */
        }
        if (d->left == 0)
            return add_done(d, S_EXTRA_LEN);
        d->state = S_DIFF;
        return KERR_OK;
    case S_DIFF:
        v = tree(d, d->p_diff, 8);
        if (v == 0)
            return KERR_DLT_CORRUPT;
        if ((err = predicted(d, &b)) != KERR_OK || (err = emit(d, b + v)) != KERR_OK)
            return err;
        return d->left ? (d->state = S_ZRUN, KERR_OK) : add_done(d, S_EXTRA_LEN);
    case S_EXTRA_LEN:
        v = get_int(d, DLT_I_EXTRA);
        if (v > d->new_len - d->npos || (v == 0 && d->last_add == 0))
            return KERR_DLT_CORRUPT;
        d->left = v;
        return v ? (d->state = S_LIT, KERR_OK) : add_done(d, S_SEEK);
    case S_LIT:
        v = tree(d, d->p_lit[d->npos & 1u], 8);
        if ((err = emit(d, v)) != KERR_OK)
            return err;
        return --d->left ? KERR_OK : add_done(d, S_SEEK);
    case S_SEEK:
        v = (uint32_t)dlt_unzigzag(get_int(d, DLT_I_SEEK));
        if (d->opos + v > d->old_len) /* wraps for a seek before 0 too */
            return KERR_DLT_CORRUPT;
        d->opos += v;
        d->state = S_ADD_LEN;
        return KERR_OK;
    default:
        return KERR_DLT_CORRUPT;
    }
}

kerr_t kdlt_dec_init(kdlt_dec_t *d, const kdlt_dec_cfg_t *cfg)
{
    if (!cfg->read_old || !cfg->page_buf || cfg->page_size < 4)
        return KERR_INVAL;
    memset(d, 0, sizeof(*d));
    d->cfg = *cfg;
    return KERR_OK;
}

/* kdlt_dec_feed and kdlt_dec_feed_page: with d->pause set, stops after a completed page. */
static kerr_t feed(kdlt_dec_t *d, const void *data, size_t len, size_t *used)
{
    const uint8_t *p = data;
    *used = 0;
    if (d->err)
        return d->err;
    for (;;) {
        uint32_t take;
        kerr_t err;
        if (d->state == S_HDR) {
            take = KDLT_HDR_SIZE - d->in_n < len ? KDLT_HDR_SIZE - d->in_n : (uint32_t)len;
            memcpy(d->in + d->in_n, p, take);
            d->in_n += take, p += take, len -= take, *used += take;
            if (d->in_n < KDLT_HDR_SIZE)
                return KERR_OK;
            if ((err = start(d)) != KERR_OK)
                return fail(d, err);
            continue;
        }
        if (d->state == S_DONE)
            d->in_pos = d->in_n; /* what is left of the coder's flush bytes */
        if (d->in_pos) {
            memmove(d->in, d->in + d->in_pos, d->in_n - d->in_pos);
            d->in_n -= d->in_pos;
            d->in_pos = 0;
        }
        take = KDLT_IN_BUF - d->in_n;
        if (take > d->body_len - d->body_seen)
            take = d->body_len - d->body_seen;
        if (take > len)
            take = (uint32_t)len;
        memcpy(d->in + d->in_n, p, take);
        d->in_n += take, d->body_seen += take, p += take, len -= take, *used += take;
        int all_in = d->body_seen == d->body_len;
        if (len && all_in)
            return fail(d, KERR_DLT_CORRUPT); /* bytes past the end of the patch */
        while (d->state != S_DONE) {
            if (d->state != S_COPY && !all_in && d->in_n - d->in_pos < STEP_IN)
                break;
            d->overrun = 0;
            err = step(d);
            if (!err && d->overrun)
                err = KERR_DLT_CORRUPT;
            if (err)
                return fail(d, err);
            if (d->paused)
                return KERR_OK;
        }
        if (len == 0)
            return KERR_OK;
    }
}

kerr_t kdlt_dec_feed(kdlt_dec_t *d, const void *data, size_t len)
{
    size_t used;
    d->pause = 0;
    return feed(d, data, len, &used);
}

kerr_t kdlt_dec_feed_page(kdlt_dec_t *d, const void *data, size_t len, size_t *used, bool *page)
{
    d->pause = 1;
    d->paused = 0;
    kerr_t err = feed(d, data, len, used);
    *page = d->paused;
    d->paused = 0;
    return err;
}

kerr_t kdlt_dec_finish(const kdlt_dec_t *d)
{
    if (d->err)
        return d->err;
    return d->state == S_DONE ? KERR_OK : KERR_DLT_TRUNCATED;
}

uint32_t kdlt_dec_new_len(const kdlt_dec_t *d)
{
    return d->state == S_HDR ? 0 : d->new_len;
}

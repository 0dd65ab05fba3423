/*
 * The NOR rules of flash.h, enforced above a byte-moving backend.
 *
 * Every request is validated completely (alignment, range, bit transitions, program-once) before
 * the first byte is written, so a refused request leaves the device exactly as it was. Work is
 * done in CHUNK-byte pieces through a stack buffer: no malloc, no VLA, and the same code runs in
 * the secure image, on the host and in the power-cut sweeps.
 *
 * Operation counting: only requests that pass validation and would touch the device count as
 * operations (a refused or empty request changes nothing, so a cut "during" it means nothing).
 * f->ops counts them whether or not a cut is armed: a sweep runs a scenario once without a cut,
 * reads f->ops, then replays it with a cut at every 1..ops.
 */
#include <string.h>

#include "keel/flash.h"

#include "le.h"

#define CHUNK 64u       /* read-modify-write granularity of this layer (stack buffer) */
#define SCAN_CHUNK 1024u /* kflash_init's content scan: fewer, larger reads (semihosting traps) */
#define TORN_CHUNK 16u  /* a torn erase decides the fate of each 16-byte piece separately */

static bool is_pow2(uint32_t v)
{
    return v != 0u && (v & (v - 1u)) == 0u;
}

static bool in_range(const kflash_t *f, uint32_t off, uint32_t len)
{
    return off <= f->geo.size && len <= f->geo.size - off;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Reads and range erases need power and an in-device range. */
static kerr_t live_range(const kflash_t *f, uint32_t off, uint32_t len)
{
    if (f->dead) {
        return KERR_FLASH_POWER;
    }
    return in_range(f, off, len) ? KERR_OK : KERR_FLASH_RANGE;
}

/* xorshift32: deterministic per seed, never returns 0 for a non-zero state. */
static uint32_t rng_next(kflash_t *f)
{
    uint32_t x = f->rng;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    f->rng = x;
    return x;
}

static bool used_get(const kflash_t *f, uint32_t unit)
{
    return (f->used[unit / 8u] >> (unit % 8u)) & 1u;
}

/* Mark (or clear) the program units overlapping [off, off+len). No-op without a bitmap. */
static void used_mark(kflash_t *f, uint32_t off, uint32_t len, bool used)
{
    if (f->used == NULL || len == 0u) {
        return;
    }
    uint32_t first = off / f->geo.prog_unit;
    uint32_t last = (off + len - 1u) / f->geo.prog_unit;
    for (uint32_t u = first; u <= last; u++) {
        uint8_t bit = (uint8_t)(1u << (u % 8u));
        if (used) {
            f->used[u / 8u] |= bit;
        } else {
            f->used[u / 8u] &= (uint8_t)~bit;
        }
    }
}

/*
 * One pass over [off, off+len) against the bytes src wants there:
 *   WALK_CHECK    refuse with KERR_FLASH_BITS if any bit would go 0->1; writes nothing;
 *   WALK_PROGRAM  clear the bits src clears (the request was checked before);
 *   WALK_TORN     the program unit hit by the cut. Real cells stop part way: some of the bits
 *                 being cleared are cleared, others not. Besides a random subset, a quarter of
 *                 the cuts apply none (the unit reads as erased although it is used) and a
 *                 quarter apply all (it reads as complete although the operation failed): the
 *                 two cases a journal most easily gets wrong.
 */
typedef enum walk { WALK_CHECK, WALK_PROGRAM, WALK_TORN } walk_t;

static kerr_t walk(kflash_t *f, walk_t how, uint32_t off, const uint8_t *src, uint32_t len)
{
    uint8_t cur[CHUNK];
    uint32_t mode = how == WALK_TORN ? rng_next(f) % 4u : 1u; /* 0: none, 1: all, 2-3: subset */

    for (uint32_t done = 0; done < len;) {
        uint32_t n = min_u32(CHUNK, len - done);
        kerr_t err = f->be->read(f->be_ctx, off + done, cur, n);
        if (err != KERR_OK) {
            return err;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint8_t want = src[done + i];
            if (how == WALK_CHECK) {
                if ((uint8_t)(~cur[i] & want) != 0u) {
                    return KERR_FLASH_BITS;
                }
                continue;
            }
            uint8_t mask = mode == 0u ? 0u : mode == 1u ? 0xFFu : (uint8_t)rng_next(f);
            cur[i] &= (uint8_t)~(cur[i] & ~want & mask);
        }
        if (how != WALK_CHECK) {
            err = f->be->write(f->be_ctx, off + done, cur, n);
            if (err != KERR_OK) {
                return err;
            }
        }
        done += n;
    }
    return KERR_OK;
}

/* The torn operation is over: power is gone until kflash_power_on(). */
static kerr_t cut_power(kflash_t *f)
{
    f->dead = true;
    if (f->on_cut != NULL) {
        f->on_cut(f, f->on_cut_arg);
    }
    return KERR_FLASH_POWER;
}

/* Count one operation; true when it is the one the armed cut tears. */
static bool op_is_torn(kflash_t *f)
{
    f->ops++;
    return f->cut_at != 0u && f->ops == f->cut_at;
}

kerr_t kflash_init(kflash_t *f, const kflash_backend_t *be, void *be_ctx,
                   const kflash_geometry_t *geo, uint8_t *used, size_t used_len)
{
    if (f == NULL || be == NULL || be->read == NULL || be->write == NULL || geo == NULL) {
        return KERR_INVAL;
    }
    if (!is_pow2(geo->erase_size) || !is_pow2(geo->prog_unit) ||
        geo->prog_unit > geo->erase_size || geo->size == 0u || geo->size % geo->erase_size != 0u) {
        return KERR_INVAL;
    }
    if (geo->prog_once &&
        (used == NULL || used_len < KFLASH_BITMAP_BYTES(geo->size, geo->prog_unit))) {
        return KERR_INVAL;
    }

    memset(f, 0, sizeof(*f));
    f->be = be;
    f->be_ctx = be_ctx;
    f->geo = *geo;
    f->used = geo->prog_once ? used : NULL;
    f->rng = 1u;
    if (f->used == NULL) {
        return KERR_OK;
    }

    /* Rebuild: a unit holding any non-0xFF byte has been programmed since its erase. */
    memset(f->used, 0, KFLASH_BITMAP_BYTES(geo->size, geo->prog_unit));
    uint8_t buf[SCAN_CHUNK];
    for (uint32_t off = 0; off < geo->size; off += SCAN_CHUNK) {
        uint32_t n = min_u32(SCAN_CHUNK, geo->size - off);
        kerr_t err = be->read(be_ctx, off, buf, n);
        if (err != KERR_OK) {
            return err;
        }
        /* One test per program unit (or the part of it in this chunk). */
        for (uint32_t i = 0; i < n;) {
            uint32_t end = min_u32(n, i + geo->prog_unit - (off + i) % geo->prog_unit);
            if (!le_all_ff(buf + i, end - i)) {
                used_mark(f, off + i, 1u, true);
            }
            i = end;
        }
    }
    return KERR_OK;
}

kerr_t kflash_read(kflash_t *f, uint32_t off, void *buf, uint32_t len)
{
    kerr_t err = live_range(f, off, len);
    if (err != KERR_OK || len == 0u) {
        return err;
    }
    return f->be->read(f->be_ctx, off, buf, len);
}

/* Validate a program request without touching the device. */
static kerr_t program_check(kflash_t *f, uint32_t off, const uint8_t *src, uint32_t len)
{
    if (off % f->geo.prog_unit != 0u || len % f->geo.prog_unit != 0u) {
        return KERR_FLASH_ALIGN;
    }
    if (!in_range(f, off, len)) {
        return KERR_FLASH_RANGE;
    }
    if (f->used != NULL) {
        for (uint32_t u = off / f->geo.prog_unit; u < (off + len) / f->geo.prog_unit; u++) {
            if (used_get(f, u)) {
                return KERR_FLASH_TWICE;
            }
        }
    }
    return walk(f, WALK_CHECK, off, src, len);
}

kerr_t kflash_program(kflash_t *f, uint32_t off, const void *buf, uint32_t len)
{
    const uint8_t *src = buf;

    if (f->dead) {
        return KERR_FLASH_POWER;
    }
    kerr_t err = program_check(f, off, src, len);
    if (err != KERR_OK || len == 0u) {
        return err;
    }

    if (op_is_torn(f)) {
        uint32_t unit = f->geo.prog_unit;
        uint32_t whole = (rng_next(f) % (len / unit)) * unit; /* bytes fully programmed */
        err = walk(f, WALK_PROGRAM, off, src, whole);
        if (err == KERR_OK) {
            err = walk(f, WALK_TORN, off + whole, src + whole, unit);
        }
        used_mark(f, off, whole + unit, true);
        return err != KERR_OK ? err : cut_power(f);
    }

    err = walk(f, WALK_PROGRAM, off, src, len);
    /* Even a failed backend write may have reached the cells: treat the units as used. */
    used_mark(f, off, len, true);
    if (err != KERR_OK) {
        return err;
    }
    f->stats.programs++;
    f->stats.prog_bytes += len;
    return KERR_OK;
}

/*
 * A cut erase leaves each 16-byte piece erased, untouched or garbage, and every unit used: the
 * ECC of a half-erased unit is not trustworthy, so it must be erased again before programming.
 */
static kerr_t erase_torn(kflash_t *f, uint32_t off)
{
    uint8_t piece[TORN_CHUNK];
    uint32_t step = min_u32(TORN_CHUNK, f->geo.erase_size);

    for (uint32_t done = 0; done < f->geo.erase_size; done += step) {
        uint32_t fate = rng_next(f) % 3u; /* 0: erased, 1: as before, 2: random */
        if (fate == 1u) {
            continue;
        }
        for (uint32_t i = 0; i < step; i++) {
            piece[i] = fate == 0u ? 0xFFu : (uint8_t)rng_next(f);
        }
        kerr_t err = f->be->write(f->be_ctx, off + done, piece, step);
        if (err != KERR_OK) {
            return err;
        }
    }
    used_mark(f, off, f->geo.erase_size, true);
    return KERR_OK;
}

kerr_t kflash_erase(kflash_t *f, uint32_t off)
{
    if (f->dead) {
        return KERR_FLASH_POWER;
    }
    if (off % f->geo.erase_size != 0u) {
        return KERR_FLASH_ALIGN;
    }
    if (!in_range(f, off, f->geo.erase_size)) {
        return KERR_FLASH_RANGE;
    }

    if (op_is_torn(f)) {
        kerr_t err = erase_torn(f, off);
        return err != KERR_OK ? err : cut_power(f);
    }

    uint8_t ff[CHUNK];
    memset(ff, 0xFF, sizeof(ff));
    for (uint32_t done = 0; done < f->geo.erase_size;) {
        uint32_t n = min_u32(CHUNK, f->geo.erase_size - done);
        kerr_t err = f->be->write(f->be_ctx, off + done, ff, n);
        if (err != KERR_OK) {
            used_mark(f, off, f->geo.erase_size, true);
            return err;
        }
        done += n;
    }
    used_mark(f, off, f->geo.erase_size, false);
    f->stats.erases++;
    return KERR_OK;
}

kerr_t kflash_erase_range(kflash_t *f, uint32_t off, uint32_t len)
{
    kerr_t err = live_range(f, off, len);
    if (err != KERR_OK || len == 0u) {
        return err;
    }
    uint32_t mask = f->geo.erase_size - 1u;
    uint32_t last = (off + len - 1u) & ~mask;
    for (uint32_t page = off & ~mask;; page += f->geo.erase_size) {
        err = kflash_erase(f, page);
        if (err != KERR_OK || page == last) {
            return err;
        }
    }
}

void kflash_set_powercut(kflash_t *f, uint32_t n, uint32_t seed)
{
    f->cut_at = n;
    f->ops = 0u;
    /* xorshift32 is stuck at 0; any other seed is used as is (same seed, same tearing). */
    f->rng = seed != 0u ? seed : 0x9E3779B9u;
}

void kflash_power_on(kflash_t *f)
{
    f->dead = false;
    f->cut_at = 0u;
}

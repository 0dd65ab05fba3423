/*
 * NOR flash with the semantics of real parts enforced in software.
 *
 * Every Keel flash store (the internal flash and the QSPI NOR of a device, whether backed by a
 * QEMU semihosting file, a host file or RAM in a unit test) goes through this one layer, so the
 * rules below hold everywhere and the power-cut sweeps prove what real silicon would do:
 *
 *   - erase works on a whole erase unit (page/sector) and sets it to 0xFF;
 *   - program works on whole program units and may only clear bits (1->0); asking for a 0->1
 *     transition is an error (KERR_FLASH_BITS), the device is left unchanged;
 *   - with geo.prog_once (STM32U5-like internal flash with ECC) a program unit may be programmed
 *     once per erase, even if the data written was all 0xFF (KERR_FLASH_TWICE);
 *   - misaligned or out-of-range operations are errors, never partial writes.
 *
 * Fault injection: kflash_set_powercut(f, n, seed) cuts power during the n-th program/erase
 * operation counted from that call. The cut operation is torn (see kflash_program/kflash_erase)
 * and every later operation fails with KERR_FLASH_POWER, reads included, until kflash_power_on().
 * One operation is one kflash_program() or kflash_erase() call: the driver's natural atom.
 *
 * The backend only moves bytes; it knows nothing of NOR rules. The program-once bitmap is owned
 * by the caller (no malloc): a unit is marked used when programmed or torn and cleared by erase.
 * kflash_init() rebuilds it from the content (a unit that is not all 0xFF is used), which is exact
 * for the strict in-RAM model when the caller keeps the bitmap across simulated reboots instead.
 */
#ifndef KEEL_FLASH_H
#define KEEL_FLASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

typedef struct kflash_backend {
    /* Copy len bytes at off into buf. */
    kerr_t (*read)(void *ctx, uint32_t off, void *buf, uint32_t len);
    /* Store len bytes at off exactly as given (the NOR layer already computed the result). */
    kerr_t (*write)(void *ctx, uint32_t off, const void *buf, uint32_t len);
} kflash_backend_t;

typedef struct kflash_geometry {
    uint32_t size;       /* bytes; a multiple of erase_size */
    uint32_t erase_size; /* page (internal) or sector (QSPI) size in bytes, a power of two */
    uint32_t prog_unit;  /* program granularity in bytes, a power of two <= erase_size */
    bool prog_once;      /* a unit may be programmed only once per erase (ECC) */
} kflash_geometry_t;

typedef struct kflash_stats {
    uint32_t erases;     /* erase operations that completed */
    uint32_t programs;   /* program operations that completed */
    uint32_t prog_bytes; /* bytes programmed */
} kflash_stats_t;

typedef struct kflash {
    const kflash_backend_t *be;
    void *be_ctx;
    kflash_geometry_t geo;
    uint8_t *used;      /* prog_once bitmap (1 bit per program unit) or NULL */
    uint32_t ops;       /* program+erase operations since kflash_set_powercut() */
    uint32_t cut_at;    /* 0: no cut armed; else the 1-based op number that is torn */
    uint32_t rng;       /* xorshift32 state for torn-operation patterns */
    bool dead;          /* power is cut */
    void (*on_cut)(struct kflash *f, void *arg); /* called once, after the torn op */
    void *on_cut_arg;
    kflash_stats_t stats;
} kflash_t;

/* Bytes of bitmap kflash_init() needs for a geometry (0 when !prog_once). */
#define KFLASH_BITMAP_BYTES(size, prog_unit) (((size) / (prog_unit) + 7u) / 8u)

/*
 * Bind a device to its backend. used/used_len: the program-once bitmap (may be NULL when
 * !geo->prog_once). Rebuilds the bitmap from the content (reads the whole device once).
 * Errors: KERR_INVAL (bad geometry, bitmap too small), KERR_IO (backend read failed).
 */
kerr_t kflash_init(kflash_t *f, const kflash_backend_t *be, void *be_ctx,
                   const kflash_geometry_t *geo, uint8_t *used, size_t used_len);

/* Read any byte range. Errors: KERR_FLASH_RANGE, KERR_FLASH_POWER, KERR_IO. */
kerr_t kflash_read(kflash_t *f, uint32_t off, void *buf, uint32_t len);

/*
 * Program len bytes at off (both multiples of prog_unit; may span units and erase units).
 * The whole request is checked before anything is written. Errors: KERR_FLASH_ALIGN,
 * KERR_FLASH_RANGE, KERR_FLASH_BITS, KERR_FLASH_TWICE, KERR_FLASH_POWER, KERR_IO.
 * Torn (power cut during this op): a prefix of the units is programmed, the next unit has a
 * random subset of its cleared bits applied (possibly none) and is marked used, the rest is
 * untouched; returns KERR_FLASH_POWER.
 */
kerr_t kflash_program(kflash_t *f, uint32_t off, const void *buf, uint32_t len);

/*
 * Erase the erase unit at off (aligned to erase_size). Errors: KERR_FLASH_ALIGN,
 * KERR_FLASH_RANGE, KERR_FLASH_POWER, KERR_IO.
 * Torn: each 16-byte chunk of the unit ends as 0xFF, as before, or as random bytes, and every
 * program unit of it is marked used (it must be erased again before programming).
 */
kerr_t kflash_erase(kflash_t *f, uint32_t off);

/* Erase every erase unit that overlaps [off, off+len). Stops at the first error. */
kerr_t kflash_erase_range(kflash_t *f, uint32_t off, uint32_t len);

/*
 * Arm a power cut during the n-th operation from now (n >= 1), or disarm with n == 0.
 * seed drives the torn patterns (same seed, same patterns). Resets the op counter.
 */
void kflash_set_powercut(kflash_t *f, uint32_t n, uint32_t seed);

/* Restore power after a cut (a simulated reboot): operations work again, the cut is disarmed. */
void kflash_power_on(kflash_t *f);

#endif /* KEEL_FLASH_H */

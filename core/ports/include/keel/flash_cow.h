/*
 * Copy-on-write backend for kflash: thousands of simulated devices in one process share one
 * factory image and each keeps only the erase units it changed.
 *
 * The base is frozen from a RAM image once (kflash_cow_freeze): an all-0xFF unit is stored as
 * NULL (QSPI is mostly erased), every other unit once. A device's overlay is a sorted array of
 * (unit index, unit copy), empty for a device that never wrote: an idle device costs nothing but
 * its kflash_cow_t. The first write into a unit copies it from the base; the NOR rules
 * themselves stay in kflash (flash.h), this layer only moves bytes.
 *
 *   kflash_cow_base_t b;  kflash_cow_freeze(&b, image, size, erase_size);   // once
 *   kflash_cow_t c;       kflash_cow_init(&c, &b);                          // per device
 *   kflash_t f = factory_kflash; f.be_ctx = &c;  // or kflash_init(&f, &kflash_cow_backend, &c, ...)
 *   ...  kflash_cow_free(&c);
 */
#ifndef KEEL_FLASH_COW_H
#define KEEL_FLASH_COW_H

#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"
#include "keel/flash.h"

typedef struct kflash_cow_base {
    uint32_t size, unit;  /* bytes; unit = the erase unit, a power of two dividing size */
    uint8_t **units;      /* size / unit entries; NULL: erased (all 0xFF) */
} kflash_cow_base_t;

typedef struct kflash_cow_unit {
    uint32_t idx;
    uint8_t *data;        /* unit bytes */
} kflash_cow_unit_t;

typedef struct kflash_cow {
    const kflash_cow_base_t *base;
    kflash_cow_unit_t *ov; /* sorted by idx */
    uint32_t n, cap;
} kflash_cow_t;

/* Backend ops; ctx is a kflash_cow_t *. KERR_IO out of range, KERR_NOMEM when a copy fails. */
extern const kflash_backend_t kflash_cow_backend;

/* Freeze image[0, size) as a base (copied: the image may be freed). KERR_INVAL, KERR_NOMEM. */
kerr_t kflash_cow_freeze(kflash_cow_base_t *b, const uint8_t *image, uint32_t size, uint32_t unit);
void kflash_cow_base_free(kflash_cow_base_t *b);

void kflash_cow_init(kflash_cow_t *c, const kflash_cow_base_t *base);
void kflash_cow_free(kflash_cow_t *c);

/* Bytes the overlay holds (unit copies and the index). */
size_t kflash_cow_bytes(const kflash_cow_t *c);

#endif /* KEEL_FLASH_COW_H */

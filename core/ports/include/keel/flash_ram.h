/*
 * RAM backend for kflash: with kflash it forms the strict NOR model used by unit tests, power-cut
 * sweeps and simulated devices.
 *
 * The memory is the caller's (no malloc). A simulated reboot keeps mem (and, for an exact
 * program-once model, the kflash bitmap) and calls kflash_init() or kflash_power_on() again.
 *
 *   static uint8_t mem[64 * 1024], used[KFLASH_BITMAP_BYTES(sizeof(mem), 16)];
 *   kflash_ram_t ram;
 *   kflash_ram_init(&ram, mem, sizeof(mem), true);          // a fresh, erased part
 *   kflash_init(&f, &kflash_ram_backend, &ram, &geo, used, sizeof(used));
 */
#ifndef KEEL_FLASH_RAM_H
#define KEEL_FLASH_RAM_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/flash.h"

typedef struct kflash_ram {
    uint8_t *mem;
    uint32_t size;
} kflash_ram_t;

/* Backend ops; ctx is a kflash_ram_t *. Out-of-range accesses return KERR_IO. */
extern const kflash_backend_t kflash_ram_backend;

/* Bind mem[0, size). erased: fill it with 0xFF (a new part); otherwise keep the content. */
void kflash_ram_init(kflash_ram_t *r, uint8_t *mem, uint32_t size, bool erased);

#endif /* KEEL_FLASH_RAM_H */

/*
 * Data watchpoints of the app debugger: the set gdb asked for (Z2 write, Z3 read, Z4 access) and
 * the rules that do not depend on the hardware that traps the accesses (docs/debug.md,
 * "Watchpoints").
 *
 * The stub traps every access to the 32-byte granules a watchpoint covers (the v8-M MPU's
 * granule: it cannot be finer), lets the trapped instruction run once, and then asks
 * watch_hit() whether the access really touched a watched range of a matching kind. A trapped
 * access is known by its kind and the address of its first faulting byte (MMFAR); the rest of
 * its extent is taken to the next word boundary (a single load or store never crosses one in a
 * way the MPU reports later). A write also hits a write or access watchpoint whose bytes it
 * changed, whatever its address (a doubleword or multiple store reaching into the range).
 *
 * No allocation, no hardware: tested on the host (tests/unit/test_watch.c).
 */
#ifndef KEEL_WATCH_H
#define KEEL_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

#define WATCH_MAX 4u       /* as many as a Cortex-M33's DWT data comparators */
#define WATCH_GRANULE 32u  /* v8-M MPU region granule */

typedef enum {
    WATCH_WRITE = 2,  /* numbered as gdb's Z packets */
    WATCH_READ = 3,
    WATCH_ACCESS = 4,
} watch_type_t;

typedef struct watch {
    uint32_t addr;
    uint32_t len;
    watch_type_t type;
    uint32_t hash;  /* watch_hash() of the bytes before the trapped access (writes only) */
} watch_t;

typedef struct watch_set {
    watch_t w[WATCH_MAX];
    unsigned count;
} watch_set_t;

void watch_init(watch_set_t *s);

/* KERR_INVAL: unknown type, len 0 or a range past 4 GiB; KERR_NOMEM: WATCH_MAX set already. */
kerr_t watch_add(watch_set_t *s, watch_type_t type, uint32_t addr, uint32_t len);

/* Removes one entry equal in type, address and length; KERR_INVAL if there is none. */
kerr_t watch_remove(watch_set_t *s, watch_type_t type, uint32_t addr, uint32_t len);

/* The granules covering w: [base, limit], limit inclusive (base 32-aligned, limit + 1 too). */
uint32_t watch_granule_base(const watch_t *w);
uint32_t watch_granule_limit(const watch_t *w);

/* Does [addr, addr + len) reach into a granule of any watchpoint? */
bool watch_in_granules(const watch_set_t *s, uint32_t addr, uint32_t len);

/* FNV-1a over len bytes: what a write changed, without a copy of the watched bytes. */
uint32_t watch_hash(const uint8_t *p, uint32_t len);

/*
 * The watchpoint a trapped access hits, or NULL. write: the access stored; fault_addr: its
 * first faulting byte; changed: bit i set if watchpoint i's bytes hash differently now than
 * before the access (only looked at for writes). The first matching entry wins.
 */
const watch_t *watch_hit(const watch_set_t *s, bool write, uint32_t fault_addr, uint32_t changed);

#endif /* KEEL_WATCH_H */

/*
 * The non-secure MPU as the app debugger's data watchpoint comparators (docs/debug.md,
 * "Watchpoints"). QEMU's Cortex-M33 has no DWT (its registers read as zero), so the stub makes
 * the watched granules fault instead: a write watchpoint is a read-only region, a read or access
 * watchpoint two overlapping regions (v8-M: an address in two enabled regions faults on any
 * access, by any privilege). The fault escalates to HardFault_S (the app's MemManage handler is
 * disabled while the MPU is borrowed) and uv_dbg.c steps the access and decides.
 *
 * The app's own MPU state (CTRL, the regions used, MAIR1, SHCSR.MEMFAULTENA) is saved at the
 * first arm and put back by uv_watch_mpu_release(); an app that enabled its MPU is not touched.
 */
#ifndef KEEL_MICROVISOR_UV_WATCH_H
#define KEEL_MICROVISOR_UV_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/watch.h"

/* How many watchpoints the NS MPU can hold (two regions each; at most WATCH_MAX). */
unsigned uv_watch_mpu_capacity(void);

/* The app enabled its own MPU: the stub must not borrow it. */
bool uv_watch_mpu_app_owned(void);

/* Program s (its first uv_watch_mpu_capacity() entries) and enable; an empty set releases. */
void uv_watch_mpu_arm(const watch_set_t *s);

/* Only one read-only region over the 32-byte granule at base: a store there faults, a load
 * does not (tells a trapped access's kind without decoding it). */
void uv_watch_mpu_probe(uint32_t base);

/* MPU off (the app's state stays saved): the trapped instruction runs unhindered. */
void uv_watch_mpu_off(void);

/* The app's MPU state back, as before the first arm. Nothing if not armed. */
void uv_watch_mpu_release(void);

#endif /* KEEL_MICROVISOR_UV_WATCH_H */

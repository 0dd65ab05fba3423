/*
 * AN505 persistent store: the board descriptor's "store entry".
 *
 * The AN505 has no flash. On QEMU its 16 MiB PSRAM (0x80000000, no alias, no MPC) is backed by a
 * host file in the device's state directory (QEMU: -object memory-backend-file,share=on and
 * -machine mps2-an505,memory-backend=...), so what the microvisor writes there survives the
 * process. Internal flash, QSPI NOR and two small records are regions of that one memory; the
 * NOR rules and power-cut injection stay in core's flash layer above a byte-moving backend.
 *
 * The firmware reads these constants (flash_store.c, port.c); host tools read the same entry as
 * data from the board descriptor (board_desc.c: kboard_t.store), so no host file restates an
 * offset or a size. docs/porting.md describes the entry.
 *
 *   store offset                                        (firmware address = base + offset)
 *   0x000000 +------------------------------+
 *            | internal flash (2 MiB)       |  layout.h: AN505_IFLASH_*
 *   0x200000 +------------------------------+
 *            | QSPI NOR (8 MiB)             |  layout.h: AN505_QSPI_*
 *   0xA00000 +------------------------------+
 *            | boot-word record (4 KiB)     |  written by keel before QEMU starts, erased by the
 *   0xA01000 +------------------------------+  firmware once read (kept in .noinit for resets)
 *            | power-cut record (4 KiB)     |  written by the firmware when an injected cut tears
 *   0xA02000 +------------------------------+  an operation; keel sees it and ends QEMU
 *            | unused                       |
 *   0x1000000+------------------------------+
 *
 * Security: the SAU keeps the CPU's non-secure accesses out (no SAU region covers the PSRAM). No
 * MPC guards this RAM, and a non-secure bus master reaches whatever the IDAU calls non-secure
 * (0x8xxxxxxx here), so the board keeps the DMA controllers' registers Secure (board.c checks
 * mpc_guarded at compile time). A board whose store sits behind an MPC may give a DMA to the app.
 */
#ifndef KEEL_PLATFORM_AN505_STORE_H
#define KEEL_PLATFORM_AN505_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "layout.h"

/* The entry as constants (the firmware needs them in constant expressions). */
#define AN505_STORE_FILE "store.bin"    /* in the device's state directory */
#define AN505_STORE_RAM "PSRAM"         /* the board RAM QEMU backs with the file */
#define AN505_STORE_QEMU_MACHINE "mps2-an505"
#define AN505_STORE_BASE 0x80000000u    /* where the secure firmware sees it */
#define AN505_STORE_SIZE 0x01000000u    /* = the RAM's size = the backing file's size */
#define AN505_STORE_MPC_GUARDED 0       /* no MPC: DMA stays Secure */
#define AN505_STORE_IFLASH_OFF 0x000000u
#define AN505_STORE_QSPI_OFF 0x200000u
#define AN505_STORE_BOOTWORDS_OFF 0xA00000u
#define AN505_STORE_BOOTWORDS_SIZE 0x1000u
#define AN505_STORE_POWERCUT_OFF 0xA01000u
#define AN505_STORE_POWERCUT_SIZE 0x1000u

/* The records' formats (kboard_bootwords_t, kboard_powercut_t) and the entry as data
 * (kboard_t.store) are in core/include/keel/board.h and board_desc.c. */
#include "keel/board.h"

_Static_assert(AN505_STORE_IFLASH_OFF + AN505_IFLASH_SIZE <= AN505_STORE_QSPI_OFF, "store: iflash");
_Static_assert(AN505_STORE_QSPI_OFF + AN505_QSPI_SIZE <= AN505_STORE_BOOTWORDS_OFF, "store: qspi");
_Static_assert(sizeof(kboard_bootwords_t) <= AN505_STORE_BOOTWORDS_SIZE, "store: boot words");
_Static_assert(AN505_STORE_BOOTWORDS_OFF + AN505_STORE_BOOTWORDS_SIZE <= AN505_STORE_POWERCUT_OFF,
               "store: records");
_Static_assert(AN505_STORE_POWERCUT_OFF + AN505_STORE_POWERCUT_SIZE <= AN505_STORE_SIZE,
               "store: size");

#endif /* KEEL_PLATFORM_AN505_STORE_H */

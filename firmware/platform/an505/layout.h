/*
 * AN505 device layout: memory partition and flash stores.
 *
 * Shared by the secure firmware (which enforces it) and the host tools (which install apps and
 * provision identities into the device's store file). Everything a second board changes is here or in
 * board.c beside it.
 *
 * Address space (IDAU: bit 28 set = Secure alias):
 *
 *   0x10000000 +--------------------------+  SSRAM1, secure code (microvisor, 508 KiB)
 *   0x1007F000 |  NSC veneers (4 KiB)     |
 *   0x00200000 +--------------------------+  SSRAM1 NS alias: app code region (1 MiB), the app
 *              |  app code (copied from   |  image is copied here from internal flash each boot
 *   0x00300000 +--- internal flash) ------+
 *   0x38000000 +--------------------------+  SSRAM2, secure RAM (1 MiB; .noinit survives resets)
 *   0x28200000 +--------------------------+  SSRAM3 NS alias: app RAM (512 KiB)
 *   0x38280000 +--------------------------+  SSRAM3 secure rest: microvisor heap (1.5 MiB)
 *
 * Internal flash (a region of the persistent store, store.h: on QEMU a host file mapped as the
 * board's PSRAM; 2 MiB, 8 KiB pages, 16-byte program-once units, like STM32U5):
 *
 *   0x000000 +------------------------------+
 *            | app slot: header + image     |  1 MiB + 8 KiB (header page + 1 MiB of image)
 *   0x102000 +------------------------------+
 *            | flash self-test page         |  8 KiB (boot word flash-selftest; erased after)
 *   0x104000 +------------------------------+
 *            | free: microvisor record log  |  (crash reports, counters: later)
 *   0x1F6000 +------------------------------+
 *            | update journal A, B          |  2 x 8 KiB (core/src/upd_journal.c)
 *   0x1FA000 +------------------------------+
 *            | entropy seed A, B            |  2 x 8 KiB (firmware/microvisor/net/net_seedstore.c)
 *   0x1FE000 +------------------------------+
 *            | identity page                |  8 KiB: identity, seed, fleet CA, device key+cert
 *   0x200000 +------------------------------+     (firmware/microvisor/net/net_rec.h)
 *
 * QSPI NOR (a region of the persistent store, 8 MiB, 4 KiB sectors, 1-byte program units):
 *
 *   0x000000 +------------------------------+
 *            | update staging area          |  upd_stage_bytes(app slot) = 20 KiB + 2 x 1032 KiB
 *   0x209000 +------------------------------+  (manifest, tags, map, staged blocks, saved pages;
 *            | installed manifest copy      |   core/include/keel/upd.h, docs/update-engine.md)
 *   0x20B000 +------------------------------+  8 KiB: the signed manifest of the installed bundle
 *            | free                         |  (its policy: debug key), firmware/microvisor/uv_upd.c
 *   0x800000 +------------------------------+
 */
#ifndef KEEL_PLATFORM_AN505_LAYOUT_H
#define KEEL_PLATFORM_AN505_LAYOUT_H

/* Memory partition */
#define AN505_S_CODE_BASE 0x10000000u
#define AN505_S_CODE_SIZE 0x0007F000u
#define AN505_NSC_BASE 0x1007F000u
#define AN505_NSC_SIZE 0x00001000u
#define AN505_NS_CODE_BASE 0x00200000u
#define AN505_NS_CODE_SIZE 0x00100000u
#define AN505_S_RAM_BASE 0x38000000u
#define AN505_S_RAM_SIZE 0x00100000u
#define AN505_NS_RAM_BASE 0x28200000u
#define AN505_NS_RAM_SIZE 0x00080000u
#define AN505_S_HEAP_BASE 0x38280000u
#define AN505_S_HEAP_SIZE 0x00180000u

/* Internal flash (a region of the persistent store: store.h) */
#define AN505_IFLASH_SIZE 0x00200000u
#define AN505_IFLASH_PAGE 0x2000u
#define AN505_IFLASH_UNIT 16u
#define AN505_APP_SLOT_OFF 0x000000u
#define AN505_APP_SLOT_SIZE (AN505_IFLASH_PAGE + AN505_NS_CODE_SIZE)
#define AN505_APP_HDR_OFF AN505_APP_SLOT_OFF                         /* header page */
#define AN505_APP_IMAGE_OFF (AN505_APP_SLOT_OFF + AN505_IFLASH_PAGE) /* image pages */
#define AN505_SELFTEST_OFF 0x102000u
#define AN505_SPARE_OFF 0x104000u /* free: microvisor record log (up to the journal) */
#define AN505_UPD_JOURNAL_A 0x1F6000u
#define AN505_UPD_JOURNAL_B 0x1F8000u
#define AN505_SEED_PAGE_A 0x1FA000u
#define AN505_SEED_PAGE_B 0x1FC000u
#define AN505_IDENT_OFF 0x1FE000u

/* Device type in update bundles (docs/bundle.md): a bundle for another type is refused. */
#define AN505_DEVICE_TYPE 0x00000505u

/* QSPI NOR (a region of the persistent store: store.h) */
#define AN505_QSPI_SIZE 0x00800000u
#define AN505_QSPI_SECTOR 0x1000u
#define AN505_QSPI_UNIT 1u
#define AN505_QSPI_STAGE_OFF 0x000000u
#define AN505_QSPI_STAGE_SIZE 0x00209000u /* >= upd_stage_bytes(AN505_APP_SLOT_SIZE), sectors */
#define AN505_QSPI_INSTALLED_OFF 0x00209000u
#define AN505_QSPI_INSTALLED_SIZE 0x00002000u

#endif /* KEEL_PLATFORM_AN505_LAYOUT_H */

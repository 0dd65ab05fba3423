/*
 * The board descriptor: every fact about a board that code outside its platform folder needs, as
 * data. One descriptor per board, in firmware/platform/<board>/board_desc.c; read by the
 * microvisor (its own board, kboard_fw), by keel (qrun, devstate: the board named with --board)
 * and by the simulated devices (fleetsim, simdev). keeld reads none: it learns a device's type
 * and geometry from the bundles it is given and the hellos devices send.
 *
 * What the descriptor holds:
 *   - the memory map: secure code, NSC veneers, secure RAM and heap, the app's code and RAM;
 *   - the persistent store entry (which RAM or flash parts keep the device's state, and where);
 *   - the flash geometry of internal flash and the QSPI NOR, and the partition tables of both;
 *   - the device type bundles must name;
 *   - peripheral ownership (which devices the app gets, which the microvisor keeps), the console
 *     UART and the NIC;
 *   - how QEMU emulates the board (machine name and options), for boards that have a machine.
 *
 * kboard_upd_config() derives the update engine's configuration from it: the one place the app
 * slot, the journal and the staging area become an upd_config_t (microvisor, keel, simdev).
 *
 * Addresses and offsets are plain numbers (no pointers into the target), so the same descriptor
 * compiles into the firmware and into host tools.
 */
#ifndef KEEL_CORE_BOARD_H
#define KEEL_CORE_BOARD_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/flash.h"

/* A range of the address space (firmware addresses). */
typedef struct kboard_mem {
    uint32_t base, size;
} kboard_mem_t;

/* A range of one flash part or of the store (byte offsets). */
typedef struct kboard_range {
    uint32_t off, size;
} kboard_range_t;

/*
 * The persistent store entry: where the device's state lives. On QEMU boards it is one host file
 * QEMU maps as a board RAM (-object memory-backend-file,share=on; -M <machine>,memory-backend=),
 * with internal flash, QSPI NOR and two small records as regions of it.
 */
typedef struct kboard_store {
    const char *file;    /* backing file, relative to the device's state directory */
    const char *ram;     /* which board RAM backs the store (for messages and docs) */
    uint32_t base;       /* firmware address of offset 0 */
    uint32_t size;       /* RAM size = backing file size */
    bool mpc_guarded;    /* an MPC guards the RAM (a DMA may then be given to the app) */
    kboard_range_t iflash, qspi, bootwords, powercut;
} kboard_store_t;

/* Boot-word record (store.bootwords): magic, length, then the words (space separated, no NUL
 * needed); written by keel before QEMU starts, erased by the firmware once read. Anything else
 * (erased 0xFF, zeroed) means "no words". */
#define KBOARD_BOOTWORDS_MAGIC 0x3157424Bu /* "KBW1" */
#define KBOARD_BOOTWORDS_MAX 255u          /* bytes of words */
typedef struct kboard_bootwords {
    uint32_t magic;
    uint32_t len;
    char words[KBOARD_BOOTWORDS_MAX + 1u];
} kboard_bootwords_t;

/* Power-cut record (store.powercut): magic and the number of the flash operation the cut tore;
 * written by the firmware, seen and cleared by keel. */
#define KBOARD_POWERCUT_MAGIC 0x3143504Bu /* "KPC1" */
typedef struct kboard_powercut {
    uint32_t magic;
    uint32_t op;
} kboard_powercut_t;

/* Allocations in internal flash (offsets from its start), each a whole number of pages. */
typedef struct kboard_iflash_part {
    kboard_range_t app_slot; /* header page, then the app image (the region bundles update) */
    uint32_t selftest;       /* one page the boot word flash-selftest may erase */
    kboard_range_t spare;    /* free for the microvisor's records (benches use it as scratch) */
    uint32_t journal;        /* update journal: two pages (core/src/upd_journal.c) */
    uint32_t seed_a, seed_b; /* entropy seed pages */
    uint32_t ident;          /* identity page (firmware/microvisor/net/net_rec.h records) */
} kboard_iflash_part_t;

/* Allocations in the QSPI NOR, whole sectors. */
typedef struct kboard_qspi_part {
    kboard_range_t stage;     /* encrypted update staging, >= upd_stage_bytes(app slot) */
    kboard_range_t installed; /* the installed bundle's signed manifest */
} kboard_qspi_part_t;

/* Who owns a peripheral. */
typedef enum kboard_owner {
    KBOARD_OWNER_UV = 0, /* the microvisor (secure) */
    KBOARD_OWNER_APP,    /* the app (non-secure) */
} kboard_owner_t;

/* One peripheral: its secure-alias address (the app uses the board's non-secure alias), its
 * first NVIC line (external numbering, -1 for none) and its owner. */
typedef struct kboard_periph {
    const char *name;
    uint32_t base;
    int16_t irq;
    kboard_owner_t owner;
} kboard_periph_t;

typedef struct kboard {
    const char *name;       /* the folder's name: what --board and hellos name */
    const char *summary;    /* one line for --help */
    uint32_t device_type;   /* bundles for another type are refused (docs/bundle.md) */

    /* memory map */
    kboard_mem_t s_code, nsc, s_ram, s_heap; /* the microvisor's */
    kboard_mem_t app_code, app_ram;          /* the app's */

    kboard_store_t store;

    kflash_geometry_t iflash, qspi; /* geometry of the two flash parts */
    kboard_iflash_part_t ipart;
    kboard_qspi_part_t qpart;

    const kboard_periph_t *periphs; /* peripheral ownership table */
    uint32_t nperiphs;
    uint32_t console_uart;      /* index of the microvisor's console UART (QEMU -serial order) */
    const char *nic;            /* NIC model behind the netif contract ("lan9118"), NULL: none */

    const char *qemu_machine;       /* QEMU -M value, NULL for hardware-only boards */
    const char *const *qemu_opts;   /* extra QEMU arguments, NULL-terminated (may be NULL) */
} kboard_t;

/* Offsets of the app slot's header page and image in internal flash. */
static inline uint32_t kboard_app_hdr_off(const kboard_t *b)
{
    return b->ipart.app_slot.off;
}
static inline uint32_t kboard_app_image_off(const kboard_t *b)
{
    return b->ipart.app_slot.off + b->iflash.erase_size;
}

/* The firmware's own board: its board_desc.c under this name too (firmware builds only). */
extern const kboard_t kboard_fw;

/* The address slot offset 0 would run at: the image page runs at the app code base (address-aware
 * delta encoding of the app slot's content). */
static inline uint32_t kboard_slot_addr(const kboard_t *b)
{
    return b->app_code.base - (kboard_app_image_off(b) - b->ipart.app_slot.off);
}

struct upd_config;
/*
 * The update engine's configuration for board b: the app slot as the region, the journal pages,
 * the staging area; iflash and qspi as given. The caller adds the staging key and the trust
 * (keys, counter, microvisor version; trust.device_type is set from b).
 */
void kboard_upd_config(const kboard_t *b, kflash_t *iflash, kflash_t *qspi,
                       struct upd_config *out);

/* ---- host registry (host builds: every board under firmware/platform/) ---- */

/* The board named name, or NULL. */
const kboard_t *kboard_find(const char *name);

/* The boards known to this build, in name order; *out_n set. */
const kboard_t *const *kboard_all(unsigned *out_n);

/* The board host tools use when none is named (the first in firmware/platform/boards.cmake). */
const kboard_t *kboard_default(void);

/*
 * Host tools' board selection: removes "--board NAME" or "--board=NAME" from argv (anywhere
 * after argv[0]), and returns the board (the default when none is named). On an unknown name
 * prints "prog: unknown board 'X' (known: ...)" and returns NULL.
 */
const kboard_t *kboard_take_option(const char *prog, int *argc, char **argv);

/* The board selected by the last kboard_take_option() (the default before any). */
const kboard_t *kboard_host(void);

#endif /* KEEL_CORE_BOARD_H */

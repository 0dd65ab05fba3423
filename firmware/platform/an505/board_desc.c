/*
 * The AN505's board descriptor (core/include/keel/board.h): the board's facts as data, read by
 * the microvisor (as kboard_fw), by keel and by the simulated devices (as kboard_an505, through
 * the host registry). Every number comes from layout.h and store.h beside it.
 */
#include "keel/board.h"

#include "layout.h"
#include "store.h"

/* Who owns what (board.c programs the partition; this table names it for tools and docs).
 * irq: the first NVIC line (external numbering: 32 + the device number for expansion devices). */
static const kboard_periph_t periphs[] = {
    {"timer0", 0x50000000u, 3, KBOARD_OWNER_UV},    /* the secure tick */
    {"timer1", 0x50001000u, 4, KBOARD_OWNER_APP},
    {"dualtimer", 0x50002000u, 5, KBOARD_OWNER_APP},
    {"s32k-timer", 0x5002F000u, 2, KBOARD_OWNER_UV},
    {"s32k-watchdog", 0x5002E000u, -1, KBOARD_OWNER_UV},
    {"uart0", 0x50200000u, 32, KBOARD_OWNER_APP},     /* the app's console */
    {"uart1", 0x50201000u, 34, KBOARD_OWNER_UV},      /* the microvisor's console */
    {"uart2", 0x50202000u, 36, KBOARD_OWNER_APP},     /* or the debugger's line (dbg-uart) */
    {"uart3", 0x50203000u, 38, KBOARD_OWNER_APP},
    {"uart4", 0x50204000u, 40, KBOARD_OWNER_APP},
    {"spi0-4", 0x50205000u, -1, KBOARD_OWNER_APP},
    {"i2c0-3", 0x50207000u, -1, KBOARD_OWNER_APP},
    {"i2s", 0x50301000u, -1, KBOARD_OWNER_APP},
    {"fpgaio", 0x50302000u, -1, KBOARD_OWNER_APP},
    {"scc", 0x50300000u, -1, KBOARD_OWNER_UV},
    {"vga", 0x51000000u, -1, KBOARD_OWNER_APP},
    {"gpio0-3", 0x50100000u, -1, KBOARD_OWNER_APP},
    {"eth-lan9118", 0x52000000u, 48, KBOARD_OWNER_UV}, /* the microvisor's NIC */
    {"dma0-3", 0x50110000u, 88, KBOARD_OWNER_UV},   /* the store has no MPC: DMA stays secure */
};

const kboard_t kboard_an505 = {
    .name = "an505",
    .summary = "QEMU mps2-an505: Cortex-M33 with TrustZone (IoTKit), SSRAM, LAN9118",
    .device_type = AN505_DEVICE_TYPE,

    .s_code = {AN505_S_CODE_BASE, AN505_S_CODE_SIZE},
    .nsc = {AN505_NSC_BASE, AN505_NSC_SIZE},
    .s_ram = {AN505_S_RAM_BASE, AN505_S_RAM_SIZE},
    .s_heap = {AN505_S_HEAP_BASE, AN505_S_HEAP_SIZE},
    .app_code = {AN505_NS_CODE_BASE, AN505_NS_CODE_SIZE},
    .app_ram = {AN505_NS_RAM_BASE, AN505_NS_RAM_SIZE},

    .store = {
        .file = AN505_STORE_FILE,
        .ram = AN505_STORE_RAM,
        .base = AN505_STORE_BASE,
        .size = AN505_STORE_SIZE,
        .mpc_guarded = AN505_STORE_MPC_GUARDED,
        .iflash = {AN505_STORE_IFLASH_OFF, AN505_IFLASH_SIZE},
        .qspi = {AN505_STORE_QSPI_OFF, AN505_QSPI_SIZE},
        .bootwords = {AN505_STORE_BOOTWORDS_OFF, AN505_STORE_BOOTWORDS_SIZE},
        .powercut = {AN505_STORE_POWERCUT_OFF, AN505_STORE_POWERCUT_SIZE},
    },

    .iflash = {AN505_IFLASH_SIZE, AN505_IFLASH_PAGE, AN505_IFLASH_UNIT, true},
    .qspi = {AN505_QSPI_SIZE, AN505_QSPI_SECTOR, AN505_QSPI_UNIT, false},
    .ipart = {
        .app_slot = {AN505_APP_SLOT_OFF, AN505_APP_SLOT_SIZE},
        .selftest = AN505_SELFTEST_OFF,
        .spare = {AN505_SPARE_OFF, AN505_UPD_JOURNAL_A - AN505_SPARE_OFF},
        .journal = AN505_UPD_JOURNAL_A,
        .seed_a = AN505_SEED_PAGE_A,
        .seed_b = AN505_SEED_PAGE_B,
        .ident = AN505_IDENT_OFF,
    },
    .qpart = {
        .stage = {AN505_QSPI_STAGE_OFF, AN505_QSPI_STAGE_SIZE},
        .installed = {AN505_QSPI_INSTALLED_OFF, AN505_QSPI_INSTALLED_SIZE},
    },

    .periphs = periphs,
    .nperiphs = sizeof periphs / sizeof periphs[0],
    .console_uart = 1u,
    .nic = "lan9118",

    .qemu_machine = AN505_STORE_QEMU_MACHINE,
    .qemu_opts = NULL,
};

#ifdef KEEL_FIRMWARE
/* The firmware's own board: the microvisor reads its descriptor under this one name. */
extern const kboard_t kboard_fw __attribute__((alias("kboard_an505")));
_Static_assert(KEEL_BOARD_NSC_BASE == AN505_NSC_BASE, "board.cmake's NSC base is layout.h's");
#endif

_Static_assert(AN505_UPD_JOURNAL_B == AN505_UPD_JOURNAL_A + AN505_IFLASH_PAGE,
               "the journal's two pages follow each other");
_Static_assert(AN505_APP_IMAGE_OFF == AN505_APP_SLOT_OFF + AN505_IFLASH_PAGE,
               "the app image follows the slot's header page");

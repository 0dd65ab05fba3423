/*
 * AN505 partition: which memory, peripherals and interrupts belong to the app (non-secure) and
 * which stay with the microvisor (secure). Everything is data in the tables below; the code just
 * applies them. Measured facts behind each choice: shared/an505.md (sections 3, 6, 8).
 *
 * The app gets: its code and RAM regions, UART0/2/3/4, SPI, I2C, TIMER1, the dual timer, GPIO,
 * FPGA I/O, I2S, the VGA frame buffer and every interrupt line not listed in secure_irqs.
 * The microvisor keeps: TIMER0 (its tick), the S32K timer and watchdog, UART1 (its console),
 * the Ethernet MAC, the PL081 DMA controllers (and their bus masters are made non-secure through
 * the master security controllers, so even a DMA it programmed could not reach secure memory),
 * the system control blocks, and all other memory.
 */
#include "board.h"

#include <stddef.h>

#include "regs.h"
#include "store.h"

const board_region_t board_app_code = {AN505_NS_CODE_BASE, AN505_NS_CODE_SIZE};
const board_region_t board_app_ram = {AN505_NS_RAM_BASE, AN505_NS_RAM_SIZE};

/* SAU regions, in RNR order. A region is NS unless nsc is set (then Secure, NS-callable). */
static const struct sau_region {
    uint32_t base, limit;
    bool nsc;
} sau_regions[] = {
    {AN505_NS_CODE_BASE, AN505_NS_CODE_BASE + AN505_NS_CODE_SIZE - 1u, false},
    {AN505_NSC_BASE, AN505_NSC_BASE + AN505_NSC_SIZE - 1u, true},
    {AN505_NS_RAM_BASE, AN505_NS_RAM_BASE + AN505_NS_RAM_SIZE - 1u, false},
    {0x40000000u, 0x4FFFFFFFu, false}, /* NS peripheral aliases; the PPCs decide per device */
};

/* MPC blocks made non-secure: [offset, offset + size) within each SSRAM. */
static const struct mpc_range {
    uint32_t mpc, offset, size;
} mpc_ns_ranges[] = {
    {MPC_SSRAM1, AN505_NS_CODE_BASE - 0x00000000u, AN505_NS_CODE_SIZE},
    {MPC_SSRAM3, AN505_NS_RAM_BASE - 0x28200000u, AN505_NS_RAM_SIZE},
};

/* Peripheral protection: each register gets exactly these NS bits (all others Secure). */
static const struct ppc_setting {
    uint32_t reg, ns_bits;
} ppc_settings[] = {
    {SECCTL_APBNSPPC0, (1u << 1) | (1u << 2)},             /* TIMER1, DUALTIMER */
    {SECCTL_APBNSPPC1, 0u},                                /* S32K timer stays secure */
    {SECCTL_APBNSPPCEXP0, 0u},                             /* MPC register blocks: secure */
    {SECCTL_APBNSPPCEXP1, 0x1Fu | (1u << 5) | (7u << 7) | (0xFu << 10)}, /* SPI0-4, UART0, UART2-4, I2C0-3 */
    {SECCTL_APBNSPPCEXP2, (1u << 1) | (1u << 2)},          /* I2S, FPGA I/O (SCC stays secure) */
    {SECCTL_AHBNSPPCEXP0, (1u << 0) | (0xFu << 1)},        /* VGA, GPIO0-3 (Ethernet stays secure) */
    {SECCTL_AHBNSPPCEXP1, 0u},                             /* DMA0-3 registers: secure */
    {SECCTL_NSMSCEXP, 0xFu},                               /* DMA0-3 bus masters: non-secure */
};

/* A non-secure bus master reaches any address the IDAU calls non-secure, the store's PSRAM
 * included (store.h: no MPC guards it). The DMA registers above must then stay Secure: only a
 * board whose store sits behind an MPC may give a DMA controller to the app. */
_Static_assert(!AN505_STORE_MPC_GUARDED, "store MPC-guarded: revisit the DMA ownership above");

/* External interrupts the microvisor keeps; every other line targets the app. */
static const uint8_t secure_irqs[] = {
    2,  /* S32K timer */
    3,  /* TIMER0: the secure tick */
    9,  /* MPC combined */
    10, /* PPC combined */
    11, /* MSC combined */
    12, /* bridge error */
    34, 35, 43, /* UART1 RX, TX, combined: the microvisor console */
    47, /* UART overflow (shared) */
    48, /* Ethernet */
    88, 89, 90, 91, 92, 93, 94, 95, /* PL081 DMA0-2 (secure peripherals; DMA3's lines do not exist) */
};

/* The debug UART (boot word dbg-uart): UART2, an app UART in every other boot. Its PPC bit and its
 * RX, TX and combined interrupt lines stay secure once claimed. */
#define DEBUG_UART_PPC_BIT (1u << 7)
static const uint8_t debug_uart_irqs[] = {UART2_RX_IRQ, UART2_RX_IRQ + 1u, 44};
static bool debug_uart_claimed;

void board_debug_uart_claim(void)
{
    debug_uart_claimed = true;
}

/* Registers written to return app peripherals to reset state before each app start. */
static const struct reg_write {
    uint32_t addr, value;
} app_periph_reset[] = {
    {TIMER_CTRL(TIMER1_NS), 0u},
    {TIMER_INTCLR(TIMER1_NS), 1u},
    {DUALTIMER_NS + 0x08u, 0x20u}, /* timer 1 control: reset value (disabled, 32-bit off) */
    {DUALTIMER_NS + 0x0Cu, 1u},    /* timer 1 interrupt clear */
    {DUALTIMER_NS + 0x28u, 0x20u}, /* timer 2 control */
    {DUALTIMER_NS + 0x2Cu, 1u},
    {UART_CTRL(UART0_NS), 0u},     /* UART0: TX/RX and its interrupts off */
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool region_has(const board_region_t *r, uint32_t addr, uint32_t len)
{
    return addr >= r->base && len <= r->size && addr - r->base <= r->size - len;
}

bool board_app_mem(uint32_t addr, uint32_t len)
{
    return region_has(&board_app_code, addr, len) || region_has(&board_app_ram, addr, len);
}

static void sau_setup(void)
{
    for (uint32_t i = 0; i < ARRAY_LEN(sau_regions); i++) {
        REG32(SAU_RNR) = i;
        REG32(SAU_RBAR) = sau_regions[i].base & ~0x1Fu;
        REG32(SAU_RLAR) = (sau_regions[i].limit & ~0x1Fu) | (sau_regions[i].nsc ? 2u : 0u) | 1u;
    }
    REG32(SAU_CTRL) = 1u; /* ENABLE; ALLNS = 0: everything else is Secure */
}

static void mpc_set_ns(uint32_t mpc, uint32_t offset, uint32_t size)
{
    uint32_t blk = 1u << (REG32(MPC_BLK_CFG(mpc)) + 5u);
    REG32(MPC_CTRL(mpc)) &= ~MPC_CTRL_AUTOINC;
    for (uint32_t off = offset; off < offset + size; off += blk) {
        uint32_t b = off / blk;
        REG32(MPC_BLK_IDX(mpc)) = b / 32u;
        REG32(MPC_BLK_LUT(mpc)) |= 1u << (b % 32u);
    }
}

uint32_t board_irq_count(void)
{
    return ((REG32(ICTR) & 0xFu) + 1u) * 32u;
}

bool board_irq_is_app(uint32_t irq)
{
    if (irq >= board_irq_count())
        return false;
    for (uint32_t i = 0; i < ARRAY_LEN(secure_irqs); i++)
        if (secure_irqs[i] == irq)
            return false;
    for (uint32_t i = 0; debug_uart_claimed && i < ARRAY_LEN(debug_uart_irqs); i++)
        if (debug_uart_irqs[i] == irq)
            return false;
    return true;
}

void board_partition(void)
{
    for (uint32_t i = 0; i < ARRAY_LEN(mpc_ns_ranges); i++)
        mpc_set_ns(mpc_ns_ranges[i].mpc, mpc_ns_ranges[i].offset, mpc_ns_ranges[i].size);
    for (uint32_t i = 0; i < ARRAY_LEN(ppc_settings); i++) {
        uint32_t ns = ppc_settings[i].ns_bits;
        if (debug_uart_claimed && ppc_settings[i].reg == SECCTL_APBNSPPCEXP1)
            ns &= ~DEBUG_UART_PPC_BIT;
        REG32(ppc_settings[i].reg) = ns;
    }
    REG32(SECCTL_NSCCFG) = 1u; /* CODENSC: without it the SAU's NSC region faults (INVEP) */
    sau_setup();

    uint32_t n = board_irq_count();
    for (uint32_t w = 0; w < n / 32u; w++) {
        uint32_t ns = 0;
        for (uint32_t b = 0; b < 32u; b++)
            if (board_irq_is_app(w * 32u + b))
                ns |= 1u << b;
        REG32(NVIC_ITNS(w)) = ns;
    }

    /* PRIS: NS priorities squashed to 0x80-0xFF, so no app masking stops a secure IRQ below
     * 0x80. BFHFNMINS = 0: HardFault, BusFault and NMI stay secure. SYSRESETREQS: only the
     * secure world may reset the chip. */
    REG32(SCB_AIRCR) = AIRCR_VECTKEY | AIRCR_PRIS | AIRCR_SYSRESETREQS;
    __asm__ volatile("dsb\n isb" ::: "memory");
}

void board_reset_app_peripherals(void)
{
    for (uint32_t i = 0; i < ARRAY_LEN(app_periph_reset); i++)
        REG32(app_periph_reset[i].addr) = app_periph_reset[i].value;
}

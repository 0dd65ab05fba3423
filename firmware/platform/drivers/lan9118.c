/*
 * LAN9118 driver: see lan9118.h. Register sequence measured on QEMU 7.2's model.
 */
#include "lan9118.h"

#include <stddef.h>

#include "regs.h" /* the board's: LAN9118_BASE (secure alias), LAN9118_IRQ; the core's registers */

#define ER(off) REG32(LAN9118_BASE + (off))

/* System control and status registers (byte offsets). */
#define RX_DATA 0x00u
#define TX_DATA 0x20u
#define RX_STATUS 0x40u
#define TX_STATUS 0x48u
#define ID_REV 0x50u
#define IRQ_CFG 0x54u
#define INT_STS 0x58u
#define INT_EN 0x5Cu
#define BYTE_TEST 0x64u
#define FIFO_INT 0x68u
#define RX_CFG 0x6Cu
#define TX_CFG 0x70u
#define HW_CFG 0x74u
#define RX_FIFO_INF 0x7Cu
#define TX_FIFO_INF 0x80u
#define PMT_CTRL 0x84u
#define MAC_CSR_CMD 0xA4u
#define MAC_CSR_DATA 0xA8u

#define BYTE_TEST_VALUE 0x87654321u
#define ID_LAN9118 0x0118u
#define HW_CFG_SRST (1u << 0)
#define PMT_CTRL_READY (1u << 0)
#define IRQ_CFG_PUSHPULL_HIGH_EN 0x111u /* IRQ_EN | IRQ_POL high | IRQ_TYPE push-pull */
#define INT_RSFL (1u << 3)              /* RX status FIFO level reached */
#define FIFO_INT_RX_ANY 0x48000000u     /* RX status level 0: interrupt on the first frame */
#define TX_CFG_ON_SAO 0x6u              /* TX_ON | TXSAO (TX status overrun allowed) */
#define TX_CMD_A_FIRST (1u << 13)
#define TX_CMD_A_LAST (1u << 12)
#define RX_STS_ERROR (1u << 15)

/* MAC CSRs through MAC_CSR_CMD/DATA. */
#define CSR_BUSY (1u << 31)
#define CSR_READ (1u << 30)
#define MAC_CR 1u
#define MAC_ADDRH 2u
#define MAC_ADDRL 3u
#define MAC_MII_ACC 6u
#define MAC_MII_DATA 7u
#define MAC_CR_FDPX (1u << 20)
#define MAC_CR_TXEN (1u << 3)
#define MAC_CR_RXEN (1u << 2)
#define MII_BUSY (1u << 0)
#define MII_WRITE (1u << 1)
#define PHY_ADDR 1u
#define PHY_BMCR 0u
#define PHY_BMSR 1u
#define BMCR_ANENABLE_RESTART 0x1200u
#define BMSR_LINK (1u << 2)

/* Every wait on the controller is bounded: a wedged (or absent) device must not hang the
 * microvisor's service; QEMU answers in one access. */
#define SPIN_MAX 100000u

static void (*on_rx_cb)(void);
static nic_stats_t stats;

static bool wait_clear(uint32_t off, uint32_t mask)
{
    for (uint32_t i = 0; i < SPIN_MAX; i++)
        if (!(ER(off) & mask))
            return true;
    return false;
}

static bool mac_write(uint32_t idx, uint32_t value)
{
    if (!wait_clear(MAC_CSR_CMD, CSR_BUSY))
        return false;
    ER(MAC_CSR_DATA) = value;
    ER(MAC_CSR_CMD) = CSR_BUSY | idx;
    return wait_clear(MAC_CSR_CMD, CSR_BUSY);
}

static bool mac_read(uint32_t idx, uint32_t *out)
{
    if (!wait_clear(MAC_CSR_CMD, CSR_BUSY))
        return false;
    ER(MAC_CSR_CMD) = CSR_BUSY | CSR_READ | idx;
    if (!wait_clear(MAC_CSR_CMD, CSR_BUSY))
        return false;
    *out = ER(MAC_CSR_DATA);
    return true;
}

static bool mii_wait(void)
{
    for (uint32_t i = 0; i < SPIN_MAX; i++) {
        uint32_t acc;
        if (!mac_read(MAC_MII_ACC, &acc))
            return false;
        if (!(acc & MII_BUSY))
            return true;
    }
    return false;
}

static bool phy_write(uint32_t reg, uint32_t value)
{
    return mii_wait() && mac_write(MAC_MII_DATA, value) &&
           mac_write(MAC_MII_ACC, (PHY_ADDR << 11) | (reg << 6) | MII_WRITE | MII_BUSY) && mii_wait();
}

static bool phy_read(uint32_t reg, uint32_t *out)
{
    return mii_wait() && mac_write(MAC_MII_ACC, (PHY_ADDR << 11) | (reg << 6) | MII_BUSY) &&
           mii_wait() && mac_read(MAC_MII_DATA, out);
}

bool nic_init(void (*on_rx)(void), uint8_t out_mac[6])
{
    if (ER(BYTE_TEST) != BYTE_TEST_VALUE || (ER(ID_REV) >> 16) != ID_LAN9118)
        return false;
    ER(HW_CFG) = HW_CFG_SRST;
    if (!wait_clear(HW_CFG, HW_CFG_SRST))
        return false;
    bool ready = false;
    for (uint32_t i = 0; i < SPIN_MAX && !ready; i++)
        ready = (ER(PMT_CTRL) & PMT_CTRL_READY) != 0u;
    uint32_t lo, hi;
    if (!ready || !mac_read(MAC_ADDRL, &lo) || !mac_read(MAC_ADDRH, &hi))
        return false;
    for (unsigned i = 0; i < 4u; i++)
        out_mac[i] = (uint8_t)(lo >> (8u * i));
    out_mac[4] = (uint8_t)hi;
    out_mac[5] = (uint8_t)(hi >> 8);
    if (!phy_write(PHY_BMCR, BMCR_ANENABLE_RESTART))
        return false;
    ER(TX_CFG) = TX_CFG_ON_SAO;
    ER(RX_CFG) = 0u;
    ER(FIFO_INT) = FIFO_INT_RX_ANY;
    /* The reset value of MAC_CR has PRMS (promiscuous) set; this value clears it. */
    if (!mac_write(MAC_CR, MAC_CR_FDPX | MAC_CR_TXEN | MAC_CR_RXEN))
        return false;

    on_rx_cb = on_rx;
    ER(INT_STS) = 0xFFFFFFFFu;
    ER(INT_EN) = INT_RSFL;
    ER(IRQ_CFG) = IRQ_CFG_PUSHPULL_HIGH_EN; /* before the NVIC line: see lan9118.h */
    REG8(NVIC_IPR(LAN9118_IRQ)) = LAN9118_IRQ_PRIO;
    REG32(NVIC_ICPR(LAN9118_IRQ / 32u)) = 1u << (LAN9118_IRQ % 32u);
    REG32(NVIC_ISER(LAN9118_IRQ / 32u)) = 1u << (LAN9118_IRQ % 32u);
    return true;
}

bool nic_link_up(void)
{
    uint32_t bmsr;
    return phy_read(PHY_BMSR, &bmsr) && (bmsr & BMSR_LINK);
}

bool nic_send(const uint8_t *frame, uint32_t len)
{
    if (len < 14u || len > NIC_FRAME_MAX || ((uintptr_t)frame & 3u))
        return false;
    uint32_t words = (len + 3u) / 4u;
    /* Room for the two command words and the data. */
    if ((ER(TX_FIFO_INF) & 0xFFFFu) < words * 4u + 8u) {
        stats.tx_full++;
        return false;
    }
    ER(TX_DATA) = TX_CMD_A_FIRST | TX_CMD_A_LAST | len;
    ER(TX_DATA) = (len << 16) | len; /* command B: tag, packet length */
    const uint32_t *w = (const uint32_t *)(const void *)frame;
    for (uint32_t i = 0; i < words; i++)
        ER(TX_DATA) = w[i];
    /* TXSAO lets the status FIFO overrun harmlessly; drain it anyway so it stays readable. */
    for (uint32_t i = 0; i < 512u && ((ER(TX_FIFO_INF) >> 16) & 0xFFu); i++)
        (void)ER(TX_STATUS);
    stats.tx_frames++;
    return true;
}

int32_t nic_recv(uint8_t *buf, uint32_t cap)
{
    /* Acknowledge first: a frame that lands after this raises RSFL again. */
    ER(INT_STS) = INT_RSFL;
    if (((ER(RX_FIFO_INF) >> 16) & 0xFFu) == 0u)
        return 0;
    uint32_t st = ER(RX_STATUS);
    uint32_t flen = (st >> 16) & 0x3FFFu; /* with the 4-byte FCS */
    uint32_t words = (flen + 3u) / 4u;
    bool keep = !(st & RX_STS_ERROR) && flen > 4u && words * 4u <= cap && !((uintptr_t)buf & 3u);
    uint32_t *w = (uint32_t *)(void *)buf;
    for (uint32_t i = 0; i < words; i++) {
        uint32_t v = ER(RX_DATA); /* the whole frame leaves the FIFO, kept or not */
        if (keep)
            w[i] = v;
    }
    if (!keep) {
        stats.rx_errors++;
        return -1;
    }
    stats.rx_frames++;
    return (int32_t)(flen - 4u);
}

void nic_rx_irq_enable(void)
{
    ER(INT_EN) = INT_RSFL;
}

nic_stats_t nic_stats(void)
{
    return stats;
}

/*
 * Level interrupt: acknowledge what is enabled and pending, and mask the receive interrupt until
 * the service has drained the FIFO (nic_rx_irq_enable()). Without the mask, frames still
 * waiting could re-raise the line before the lower-priority service ever runs.
 */
void LAN9118_IRQHandler(void)
{
    uint32_t sts = ER(INT_STS) & ER(INT_EN);
    ER(INT_EN) = 0u;
    ER(INT_STS) = sts;
    stats.irqs++;
    if (on_rx_cb)
        on_rx_cb();
}

/*
 * SMSC LAN9118 Ethernet controller of the AN505 (secure alias 0x52000000, NVIC IRQ 48).
 *
 * A small frame-level driver with no knowledge of any network stack: the microvisor's lwIP glue
 * (firmware/microvisor/net/) moves frames between it and lwIP. Threading model: the interrupt
 * handler only acknowledges the controller, masks its receive interrupt and calls the on_rx
 * callback given to lan9118_init() (which pends the microvisor service); every other function is
 * called from that one service context, never concurrently.
 *
 * Measured facts of QEMU 7.2's model (shared/an505-network.md section 4): IRQ_CFG must be 0x111
 * (push-pull, active high) before the NVIC line is enabled, or the line reads asserted; the RX
 * FIFO holds about 7 full frames and a full FIFO drops frames silently; TX completes
 * synchronously with the last data word.
 */
#ifndef KEEL_PLATFORM_AN505_LAN9118_H
#define KEEL_PLATFORM_AN505_LAN9118_H

#include <stdbool.h>
#include <stdint.h>

#define LAN9118_IRQ 48u
#define LAN9118_IRQ_PRIO 0x40u  /* secure, above the service (0x60): never masked by the app */
#define LAN9118_FRAME_MAX 1518u /* Ethernet frame without FCS, with a VLAN tag */

/** Counters kept by the driver (read from the service context). */
typedef struct lan9118_stats {
    uint32_t rx_frames;  /**< frames delivered by lan9118_recv() */
    uint32_t rx_errors;  /**< frames the MAC flagged bad, or too long for the caller: dropped */
    uint32_t tx_frames;  /**< frames handed to the MAC */
    uint32_t tx_full;    /**< frames refused because the TX FIFO had no room */
    uint32_t irqs;       /**< interrupts taken */
} lan9118_stats_t;

/**
 * Reset and configure the controller (full duplex, TX and RX on, promiscuous mode off), read its
 * MAC address into out_mac and enable its interrupt at LAN9118_IRQ_PRIO. on_rx is called from the
 * interrupt handler when frames are waiting. Returns false (nothing enabled) when no LAN9118
 * answers at the expected address or it does not come out of reset.
 */
bool lan9118_init(void (*on_rx)(void), uint8_t out_mac[6]);

/** true when the PHY reports the link up. */
bool lan9118_link_up(void);

/**
 * Send one frame of len bytes (14..LAN9118_FRAME_MAX, without FCS). frame must be 4-byte aligned
 * and readable up to len rounded up to 4. Returns false when len is out of range or the TX FIFO
 * has no room (the frame is dropped; the stack's retransmission covers it).
 */
bool lan9118_send(const uint8_t *frame, uint32_t len);

/**
 * Take the next received frame into buf (4-byte aligned, cap bytes; cap >= LAN9118_FRAME_MAX + 4
 * recommended: the FCS is read into buf too but not counted). Returns its length without FCS,
 * 0 when no frame is waiting, or -1 when a frame was dropped (bad, or larger than cap); call
 * again in both non-zero cases. Acknowledges the receive interrupt first, so a frame arriving
 * while the FIFO is drained raises it again.
 */
int32_t lan9118_recv(uint8_t *buf, uint32_t cap);

/** Re-enable the receive interrupt after a drain (lan9118_recv() returned 0). */
void lan9118_rx_irq_enable(void);

/** Driver counters. */
lan9118_stats_t lan9118_stats(void);

/** Interrupt handler (vector of LAN9118_IRQ). */
void LAN9118_IRQHandler(void);

#endif /* KEEL_PLATFORM_AN505_LAN9118_H */

/*
 * The NIC contract: what a board's Ethernet controller gives the microvisor's network
 * (firmware/microvisor/net/uv_net.c). It is the low-level half of lwIP's netif skeleton
 * (contrib's ethernetif.c: low_level_init / low_level_output / low_level_input): frames in and
 * out, a MAC address, a receive notification. The lwIP glue (pbufs, netif, ARP, DHCP) is the
 * microvisor's and is the same on every board; a board implements these functions in its folder
 * (an SMSC LAN9118 driver, for instance: lan9118.c) and names the controller in its descriptor
 * (kboard_t.nic).
 *
 * Threading: the controller's interrupt handler (the board's vector table names it) only
 * acknowledges the controller, masks its receive interrupt and calls on_rx (which pends the
 * microvisor's service); every other function is called from that one service context, never
 * concurrently. The interrupt must sit above the service's priority and stay secure.
 */
#ifndef KEEL_PLATFORM_NIC_H
#define KEEL_PLATFORM_NIC_H

#include <stdbool.h>
#include <stdint.h>

#define NIC_FRAME_MAX 1518u /* Ethernet frame without FCS, with a VLAN tag */

/** Counters kept by the driver (read from the service context). */
typedef struct nic_stats {
    uint32_t rx_frames;  /**< frames delivered by nic_recv() */
    uint32_t rx_errors;  /**< frames the MAC flagged bad, or too long for the caller: dropped */
    uint32_t tx_frames;  /**< frames handed to the MAC */
    uint32_t tx_full;    /**< frames refused because the controller had no room */
    uint32_t irqs;       /**< interrupts taken */
} nic_stats_t;

/**
 * low_level_init: reset and configure the controller (full duplex, TX and RX on, no promiscuous
 * mode), read its MAC address into out_mac and enable its interrupt. on_rx is called from the
 * interrupt handler when frames are waiting. Returns false (nothing enabled) when no controller
 * answers or it does not come out of reset: the microvisor then runs without a network.
 */
bool nic_init(void (*on_rx)(void), uint8_t out_mac[6]);

/** true when the PHY reports the link up. */
bool nic_link_up(void);

/**
 * low_level_output: send one frame of len bytes (14..NIC_FRAME_MAX, without FCS). frame is
 * 4-byte aligned and readable up to len rounded up to 4. Returns false when len is out of range
 * or the controller has no room (the frame is dropped; the stack's retransmission covers it).
 */
bool nic_send(const uint8_t *frame, uint32_t len);

/**
 * low_level_input: take the next received frame into buf (4-byte aligned, cap bytes; cap >=
 * NIC_FRAME_MAX + 4: a driver may read the FCS into buf too, not counted). Returns its length
 * without FCS, 0 when no frame is waiting, or -1 when a frame was dropped (bad, or larger than
 * cap); call again in both non-zero cases. Acknowledges the receive interrupt first, so a frame
 * arriving while the queue is drained raises it again.
 */
int32_t nic_recv(uint8_t *buf, uint32_t cap);

/** Re-enable the receive interrupt after a drain (nic_recv() returned 0). */
void nic_rx_irq_enable(void);

/** Driver counters. */
nic_stats_t nic_stats(void);

#endif /* KEEL_PLATFORM_NIC_H */

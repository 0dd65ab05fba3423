/*
 * SMSC LAN9118 Ethernet controller: a board's implementation of the NIC contract
 * (firmware/platform/include/nic.h), shared by every board that has one (QEMU's Arm FPGA-image
 * boards do). The board's regs.h gives its secure-alias address (LAN9118_BASE) and NVIC line
 * (LAN9118_IRQ), and its vector table names LAN9118_IRQHandler; the board keeps the controller
 * secure (PPC).
 *
 * A small frame-level driver with no knowledge of any network stack; the microvisor's lwIP glue
 * (firmware/microvisor/net/) moves frames through it. Threading model: nic.h.
 *
 * Measured facts of QEMU 7.2's model: IRQ_CFG must be 0x111 (push-pull, active high) before the
 * NVIC line is enabled, or the line reads asserted; the RX FIFO holds about 7 full frames and a
 * full FIFO drops frames silently; TX completes synchronously with the last data word.
 */
#ifndef KEEL_PLATFORM_DRIVERS_LAN9118_H
#define KEEL_PLATFORM_DRIVERS_LAN9118_H

#include "nic.h" /* nic_init, nic_send, nic_recv, ... */

#define LAN9118_IRQ_PRIO 0x40u /* secure, above the service (0x60): never masked by the app */

/** Interrupt handler (the vector of the board's LAN9118_IRQ). */
void LAN9118_IRQHandler(void);

#endif /* KEEL_PLATFORM_DRIVERS_LAN9118_H */

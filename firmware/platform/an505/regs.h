/*
 * Register addresses of the AN505 (SSE-200 / IoTKit) peripherals its port uses.
 * Facts measured on QEMU 7.2 (the memory map is in docs/porting.md and layout.h).
 */
#ifndef KEEL_PLATFORM_AN505_REGS_H
#define KEEL_PLATFORM_AN505_REGS_H

#include <stdint.h>

#include "cpu_regs.h" /* the core's registers (firmware/platform/armv8m/) */

/* ---- Secure privilege control (secctl) ---- */
#define SECCTL_BASE 0x50080000u
#define SECCTL_NSCCFG (SECCTL_BASE + 0x14u)
#define SECCTL_AHBNSPPCEXP0 (SECCTL_BASE + 0x60u)
#define SECCTL_AHBNSPPCEXP1 (SECCTL_BASE + 0x64u)
#define SECCTL_APBNSPPC0 (SECCTL_BASE + 0x70u)
#define SECCTL_APBNSPPC1 (SECCTL_BASE + 0x74u)
#define SECCTL_APBNSPPCEXP0 (SECCTL_BASE + 0x80u)
#define SECCTL_APBNSPPCEXP1 (SECCTL_BASE + 0x84u)
#define SECCTL_APBNSPPCEXP2 (SECCTL_BASE + 0x88u)
#define SECCTL_APBNSPPCEXP3 (SECCTL_BASE + 0x8Cu)
#define SECCTL_NSMSCEXP (SECCTL_BASE + 0xD0u)

/* ---- Memory protection controllers ---- */
#define MPC_SSRAM1 0x58007000u
#define MPC_SSRAM2 0x58008000u
#define MPC_SSRAM3 0x58009000u
#define MPC_CTRL(m) ((m) + 0x00u)
#define MPC_BLK_MAX(m) ((m) + 0x10u)
#define MPC_BLK_CFG(m) ((m) + 0x14u)
#define MPC_BLK_IDX(m) ((m) + 0x18u)
#define MPC_BLK_LUT(m) ((m) + 0x1Cu)
#define MPC_CTRL_AUTOINC (1u << 8)

/* ---- Sysctl ---- */
#define SYSCTL_RESET_SYNDROME 0x50021100u

/* ---- CMSDK timer (TIMER0 secure tick) ---- */
#define TIMER0_S 0x50000000u
#define TIMER1_NS 0x40001000u
#define DUALTIMER_NS 0x40002000u
#define TIMER_CTRL(t) ((t) + 0x00u)
#define TIMER_VALUE(t) ((t) + 0x04u)
#define TIMER_RELOAD(t) ((t) + 0x08u)
#define TIMER_INTCLR(t) ((t) + 0x0Cu)
#define TIMER_CTRL_EN 1u
#define TIMER_CTRL_IRQEN 8u
#define TIMER0_IRQ 3u
#define CPU_HZ 20000000u

/* ---- CMSDK watchdog (S32K watchdog, secure, 32768 Hz) ---- */
#define WDOG_S32K 0x5002E000u
#define WDOG_LOAD(w) ((w) + 0x000u)
#define WDOG_CTRL(w) ((w) + 0x008u)
#define WDOG_INTCLR(w) ((w) + 0x00Cu)
#define WDOG_LOCK(w) ((w) + 0xC00u)
#define WDOG_UNLOCK_KEY 0x1ACCE551u
#define WDOG_CTRL_INTEN 1u
#define WDOG_CTRL_RESEN 2u
#define WDOG_HZ 32768u

/* ---- SMSC LAN9118 Ethernet (firmware/platform/drivers/lan9118.c) ---- */
#define LAN9118_BASE 0x52000000u /* secure alias; the PPC keeps the controller secure */
#define LAN9118_IRQ 48u

/* ---- CMSDK UART ---- */
#define UART0_NS 0x40200000u
#define UART1_S 0x50201000u
#define UART2_S 0x50202000u  /* the debug serial line when claimed (boot word dbg-uart) */
#define UART2_RX_IRQ 36u
#define UART_DATA(u) ((u) + 0x00u)
#define UART_STATE(u) ((u) + 0x04u)
#define UART_CTRL(u) ((u) + 0x08u)
#define UART_BAUDDIV(u) ((u) + 0x10u)
#define UART_INTCLR(u) ((u) + 0x0Cu)
#define UART_STATE_RXFULL 2u
#define UART_CTRL_TXEN 1u
#define UART_CTRL_RXEN 2u
#define UART_CTRL_RXIRQEN 8u
#define UART_STATE_TXFULL 1u

#endif /* KEEL_PLATFORM_AN505_REGS_H */

/*
 * Register addresses of the AN505 (SSE-200 / IoTKit + Cortex-M33) used by the microvisor.
 * Facts measured on QEMU 7.2 (the memory map is in docs/porting.md and layout.h).
 */
#ifndef KEEL_PLATFORM_AN505_REGS_H
#define KEEL_PLATFORM_AN505_REGS_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define REG8(addr) (*(volatile uint8_t *)(uintptr_t)(addr))

/* ---- System control space (secure view; NS view at +0x20000) ---- */
#define SCS_NS_OFFSET 0x20000u
#define ICTR 0xE000E004u
#define NVIC_ISER(n) (0xE000E100u + 4u * (n))
#define NVIC_ICER(n) (0xE000E180u + 4u * (n))
#define NVIC_ISPR(n) (0xE000E200u + 4u * (n))
#define NVIC_ICPR(n) (0xE000E280u + 4u * (n))
#define NVIC_IABR(n) (0xE000E300u + 4u * (n))
#define NVIC_ITNS(n) (0xE000E380u + 4u * (n))
#define NVIC_IPR(irq) (0xE000E400u + (irq))
#define SCB_ICSR 0xE000ED04u
#define SCB_VTOR 0xE000ED08u
#define SCB_AIRCR 0xE000ED0Cu
#define SCB_SCR 0xE000ED10u
#define SCB_CCR 0xE000ED14u
#define SCB_SHPR1 0xE000ED18u
#define SCB_SHPR2 0xE000ED1Cu
#define SCB_SHPR3 0xE000ED20u
#define SCB_SHCSR 0xE000ED24u
#define SCB_CFSR 0xE000ED28u
#define SCB_HFSR 0xE000ED2Cu
#define SCB_MMFAR 0xE000ED34u
#define SCB_BFAR 0xE000ED38u
#define SCB_CPACR 0xE000ED88u
#define MPU_TYPE 0xE000ED90u
#define MPU_CTRL 0xE000ED94u
#define MPU_RNR 0xE000ED98u
#define MPU_RBAR 0xE000ED9Cu
#define MPU_RLAR 0xE000EDA0u
#define MPU_MAIR1 0xE000EDC4u
#define SAU_CTRL 0xE000EDD0u
#define SAU_RNR 0xE000EDD8u
#define SAU_RBAR 0xE000EDDCu
#define SAU_RLAR 0xE000EDE0u
#define SAU_SFSR 0xE000EDE4u
#define SAU_SFAR 0xE000EDE8u
#define NS(addr) ((addr) + SCS_NS_OFFSET)

#define AIRCR_VECTKEY (0x05FAu << 16)
#define AIRCR_PRIS (1u << 14)
#define AIRCR_BFHFNMINS (1u << 13)
#define AIRCR_SYSRESETREQS (1u << 3)
#define AIRCR_SYSRESETREQ (1u << 2)
#define ICSR_PENDSVSET (1u << 28)
#define ICSR_PENDSVCLR (1u << 27)
#define ICSR_PENDSTCLR (1u << 25)
#define HFSR_FORCED (1u << 30)
#define MMFSR_IACCVIOL (1u << 0)
#define MMFSR_DACCVIOL (1u << 1)
#define MMFSR_MUNSTKERR (1u << 3)
#define MMFSR_MSTKERR (1u << 4)
#define MMFSR_MLSPERR (1u << 5)
#define MMFSR_MMARVALID (1u << 7)
#define MPU_CTRL_ENABLE (1u << 0)
#define MPU_CTRL_PRIVDEFENA (1u << 2)
#define SHCSR_MEMFAULTENA (1u << 16)
#define SHCSR_BUSFAULTENA (1u << 17)
#define SHCSR_USGFAULTENA (1u << 18)
#define SHCSR_SECUREFAULTENA (1u << 19)
#define CCR_RESET 0x00000201u /* v8-M reset value: bit0 and bit9 (STKALIGN) RES1 */

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

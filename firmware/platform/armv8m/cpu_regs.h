/*
 * Armv8-M Mainline core registers (Cortex-M33, secure view; the non-secure view of the system
 * control space is at +0x20000): NVIC, SCB, MPU, SAU and their bits. The same on every board with
 * this core, so the microvisor includes this header and never a board's regs.h.
 */
#ifndef KEEL_PLATFORM_ARMV8M_CPU_REGS_H
#define KEEL_PLATFORM_ARMV8M_CPU_REGS_H

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

#endif /* KEEL_PLATFORM_ARMV8M_CPU_REGS_H */

/*
 * app_hw.h: the AN505 peripherals the microvisor gives to the app (non-secure aliases), for the
 * example apps (firmware/apps/: the board's app folder is on their include path). A real app
 * would use its vendor's CMSIS headers instead.
 */
#ifndef KEEL_PLATFORM_AN505_APP_APP_HW_H
#define KEEL_PLATFORM_AN505_APP_APP_HW_H

#include <stdint.h>

#define APP_REG(addr) (*(volatile uint32_t *)(addr))

#define APP_CPU_HZ 20000000u

/* Addresses an app must never reach (the partition: ../layout.h, ../board.c), for the fault zoo
 * (crashy). */
#define APP_HW_SECURE_RAM 0x38000000u      /* the microvisor's RAM */
#define APP_HW_SECURE_CODE 0x10000000u     /* the microvisor's code */
#define APP_HW_SECURE_CODE_NOT_NSC 0x10000401u /* secure code outside the NSC region (Thumb) */
#define APP_HW_NSC 0x1007F000u             /* the veneers: only their SG entries may be called */
#define APP_HW_UART1_NS 0x40201000u        /* the microvisor's console, NS alias (PPC: secure) */
#define APP_HW_UART1_S 0x50201000u         /* and its secure alias */
#define APP_HW_APP_RAM_END 0x28280000u     /* the first byte past the app's RAM */

/* CMSDK APB timer TIMER1 (IRQ 4), 20 MHz, counts down from RELOAD. */
#define TIMER1_BASE 0x40001000u
#define TIMER1_CTRL APP_REG(TIMER1_BASE + 0x00u)
#define TIMER1_VALUE APP_REG(TIMER1_BASE + 0x04u)
#define TIMER1_RELOAD APP_REG(TIMER1_BASE + 0x08u)
#define TIMER1_INTCLEAR APP_REG(TIMER1_BASE + 0x0Cu)
#define TIMER_CTRL_EN 0x1u
#define TIMER_CTRL_IRQEN 0x8u
#define TIMER1_IRQN 4u
#define DUALTIMER_IRQN 5u

/* NVIC and SCB (the app's own, non-secure bank). */
#define NVIC_ISER(n) APP_REG(0xE000E100u + 4u * (n))
#define NVIC_ICER(n) APP_REG(0xE000E180u + 4u * (n))
#define NVIC_ISPR(n) APP_REG(0xE000E200u + 4u * (n))
#define NVIC_ICPR(n) APP_REG(0xE000E280u + 4u * (n))
#define SCB_CCR APP_REG(0xE000ED14u)
#define SCB_CCR_DIV_0_TRP (1u << 4)

/*
 * The external line the examples give the microvisor for notifications: one with no peripheral
 * behind it. QEMU 7.2's AN505 NVIC has 96 lines (ICTR = 2); lines 49..82 have no device.
 */
#define APP_NOTIFY_IRQN 70 /* no suffix: pasted into IRQ70_Handler */

/* The weak startup handler name of external line n: APP_IRQ_HANDLER(APP_NOTIFY_IRQN). */
#define APP_IRQ_HANDLER(n) APP_IRQ_HANDLER_(n)
#define APP_IRQ_HANDLER_(n) IRQ##n##_Handler

/* TIMER1 as a periodic interrupt every period_us (the examples use it to wake from WFI). */
static inline void timer1_start_periodic(uint32_t period_us)
{
    TIMER1_CTRL = 0;
    TIMER1_INTCLEAR = 1;
    TIMER1_RELOAD = period_us * (APP_CPU_HZ / 1000000u) - 1u;
    TIMER1_VALUE = TIMER1_RELOAD;
    TIMER1_CTRL = TIMER_CTRL_EN | TIMER_CTRL_IRQEN;
}

static inline void nvic_enable(uint32_t irq)
{
    NVIC_ICPR(irq / 32u) = 1u << (irq % 32u);
    NVIC_ISER(irq / 32u) = 1u << (irq % 32u);
}

static inline void nvic_disable(uint32_t irq)
{
    NVIC_ICER(irq / 32u) = 1u << (irq % 32u);
}

static inline void nvic_pend(uint32_t irq)
{
    NVIC_ISPR(irq / 32u) = 1u << (irq % 32u);
}

#endif /* KEEL_PLATFORM_AN505_APP_APP_HW_H */

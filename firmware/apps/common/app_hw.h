/*
 * app_hw.h: the AN505 peripherals the microvisor gives to the app (non-secure aliases), for the
 * example apps. A real app would use its vendor's CMSIS headers instead.
 */
#ifndef KEEL_APPS_COMMON_APP_HW_H
#define KEEL_APPS_COMMON_APP_HW_H

#include <stdint.h>

#define APP_REG(addr) (*(volatile uint32_t *)(addr))

#define APP_CPU_HZ 20000000u

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

#endif /* KEEL_APPS_COMMON_APP_HW_H */

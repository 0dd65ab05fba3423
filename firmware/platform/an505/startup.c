/*
 * Secure vector table and reset handler of the microvisor on the AN505.
 */
#include <stdint.h>
#include <string.h>

#include "lan9118.h"
#include "port.h"
#include "regs.h"

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern uint32_t __msp_stack_top[], __msp_stack_limit[];

void microvisor_main(void) __attribute__((noreturn));
void uv_exception_entry(void);
void NMI_Handler(void);
void TIMER0_IRQHandler(void);

/* An interrupt nobody asked for: turn it off and carry on (never hang the microvisor). */
static void unexpected_irq(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    if (ipsr >= 16u) {
        uint32_t irq = ipsr - 16u;
        REG32(NVIC_ICER(irq / 32u)) = 1u << (irq % 32u);
    }
}

__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm__ volatile(
        "ldr r0, =__msp_stack_limit\n msr msplim, r0\n"
        "ldr r0, =__msp_stack_top\n msr msp, r0\n"
        "b reset_c\n .ltorg\n");
}

__attribute__((noreturn, used)) void reset_c(void)
{
    memcpy(__data_start, __data_load, (uintptr_t)__data_end - (uintptr_t)__data_start);
    memset(__bss_start, 0, (uintptr_t)__bss_end - (uintptr_t)__bss_start);
    microvisor_main();
}

#define IRQS 96u
typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) const vector_t vectors[16u + IRQS] = {
    [0] = (vector_t)__msp_stack_top,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = uv_exception_entry,  /* HardFault */
    [4] = uv_exception_entry,  /* MemManage */
    [5] = uv_exception_entry,  /* BusFault */
    [6] = uv_exception_entry,  /* UsageFault */
    [7] = uv_exception_entry,  /* SecureFault */
    [11] = unexpected_irq,     /* SVCall */
    [12] = uv_exception_entry, /* DebugMonitor */
    [14] = uv_exception_entry, /* PendSV: the microvisor service */
    [15] = unexpected_irq,     /* SysTick */
    [16 + 0 ... 16 + IRQS - 1] = unexpected_irq,
    [16 + TIMER0_IRQ] = TIMER0_IRQHandler,
    [16 + LAN9118_IRQ] = LAN9118_IRQHandler,
    [16 + UART2_RX_IRQ] = port_dbg_uart_irq, /* enabled only with the debug serial line */
};

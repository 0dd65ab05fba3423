/*
 * dbgtarget: a small program to debug (tests/debug/debug.sh drives it with gdb-multiarch).
 *
 * A main loop calls a chain of nested functions with locals (level1 .. level5) and updates
 * globals; TIMER1 interrupts every millisecond and its handler calls isr_work(); the app watchdog
 * runs (500 ms) so a halt that forgot to pause it would restart the app. Every 50 rounds (about
 * half a second) it prints "dbgtarget: alive N" on UART0, which shows it runs on after a detach.
 * A debugger sets fault_mode to make it fault: 1 reads secure RAM (SecureFault, SIGBUS),
 * 2 executes an undefined instruction (UsageFault, SIGILL), 3 hangs (the app watchdog stops it).
 * mpu_ctrl_seen is the app's own view of its MPU_CTRL: watchpoints borrow the NS MPU while the app
 * runs and must give it back untouched when none is set (debug.watch checks both).
 */
#include <stdint.h>

#include "app_hw.h"
#include "console.h"
#include "keel.h"

#define DBG_WATCHDOG_MS 500u
#define DBG_TIMER_US 1000u
#define DBG_ALIVE_EVERY 50u
#define DBG_ROUND_TICKS 10u

volatile uint32_t counter;    /* main loop rounds */
volatile uint32_t isr_ticks;  /* TIMER1 interrupts */
volatile uint32_t fault_mode; /* set by the debugger */
uint32_t table[16] = {0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01,
                      0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
int32_t result;
volatile uint32_t mpu_ctrl_seen;

__attribute__((noinline)) void isr_work(void)
{
    uint32_t seen = isr_ticks;
    isr_ticks = seen + 1u;
}

void IRQ4_Handler(void) /* TIMER1 */
{
    TIMER1_INTCLEAR = 1;
    isr_work();
}

__attribute__((noinline)) int32_t level5(int32_t x)
{
    int32_t local5 = x * 3;
    table[x & 15] += 1u;
    return local5 + 1;
}

__attribute__((noinline)) int32_t level4(int32_t x)
{
    int32_t local4 = x + 4;
    int32_t r = level5(local4);
    return r + local4;
}

__attribute__((noinline)) int32_t level3(int32_t x)
{
    int32_t local3 = x * 2;
    return level4(local3) - 1;
}

__attribute__((noinline)) int32_t level2(int32_t x)
{
    int32_t local2 = x + 1;
    return level3(local2);
}

__attribute__((noinline)) int32_t level1(int32_t x)
{
    int32_t local1 = x;
    int32_t r = level2(local1);
    return r;
}

static void misbehave(uint32_t mode)
{
    if (mode == 1u)
        (void)*(volatile uint32_t *)0x38000000u; /* secure RAM */
    else if (mode == 2u)
        __asm__ volatile("udf #2");
    else if (mode == 3u)
        for (;;) /* deliberately unbounded: the app watchdog ends it */
            __asm__ volatile("nop");
}

int main(void)
{
    console_init();
    console_puts("dbgtarget: started\n");
    (void)keel_watchdog_start(DBG_WATCHDOG_MS);
    timer1_start_periodic(DBG_TIMER_US);
    nvic_enable(TIMER1_IRQN);
    for (;;) {
        counter = counter + 1u;
        result = level1((int32_t)(counter & 7u));
        misbehave(fault_mode);
        (void)keel_watchdog_kick();
        if (counter % DBG_ALIVE_EVERY == 0u) {
            console_puts("dbgtarget: alive ");
            console_put_dec(counter);
            console_puts("\n");
        }
        uint32_t until = isr_ticks + DBG_ROUND_TICKS;
        while ((int32_t)(until - isr_ticks) > 0)
            __asm__ volatile("wfi");
        mpu_ctrl_seen = *(volatile uint32_t *)0xE000ED94u; /* MPU_CTRL */
    }
}

/*
 * startup.c: vector table and reset handler for a Keel non-secure app.
 *
 * The microvisor starts the app the way a CPU reset would: VTOR_NS = start of the code region,
 * MSP_NS = vector 0, then it calls vector 1 (Reset_Handler) with BLXNS. If Reset_Handler returns,
 * the microvisor stops the app with reason "exit" and r0 as the exit code; so Reset_Handler
 * returns main's value instead of looping.
 *
 * Handlers are weak: define a function with the same name to take a vector. System handlers use
 * the CMSIS names (SVC_Handler, PendSV_Handler, SysTick_Handler, ...); external interrupt n
 * (0-based, as in NVIC_EnableIRQ) is IRQ<n>_Handler, e.g. IRQ4_Handler for TIMER1.
 *
 * Unhandled exceptions land in Default_Handler, which executes UDF: the resulting fault escalates
 * to the microvisor, whose crash report carries the IPSR of the exception nobody handled,
 * instead of the app hanging in a silent loop. The configurable faults (MemManage, BusFault,
 * UsageFault) are left disabled in SHCSR so they escalate to the microvisor directly with their
 * status bits intact; an app that wants to handle them enables them itself.
 */
#include <stdint.h>

#define KEEL_EXT_IRQS 128 /* external lines in the table: ICTR.INTLINESNUM <= 3 */
#define ICTR (*(volatile const uint32_t *)0xE000E004u)

typedef void (*keel_vector_t)(void);

extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_top[], __stack_limit[];
extern void (*__preinit_array_start[])(void);
extern void (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

int main(void);
int Reset_Handler(void);
void Default_Handler(void);

#define KEEL_WEAK __attribute__((weak, alias("Default_Handler")))

void NMI_Handler(void) KEEL_WEAK;
void HardFault_Handler(void) KEEL_WEAK;
void MemManage_Handler(void) KEEL_WEAK;
void BusFault_Handler(void) KEEL_WEAK;
void UsageFault_Handler(void) KEEL_WEAK;
void SVC_Handler(void) KEEL_WEAK;
void DebugMon_Handler(void) KEEL_WEAK;
void PendSV_Handler(void) KEEL_WEAK;
void SysTick_Handler(void) KEEL_WEAK;

/* IRQ0_Handler .. IRQ127_Handler, declared and listed by the same two macros. */
#define KEEL_IRQ_DECL(n) void IRQ##n##_Handler(void) KEEL_WEAK;
#define KEEL_IRQ_ENTRY(n) IRQ##n##_Handler,
#define KEEL_IRQ_TENS(m, t)                                                                    \
    m(t##0) m(t##1) m(t##2) m(t##3) m(t##4) m(t##5) m(t##6) m(t##7) m(t##8) m(t##9)
#define KEEL_IRQ_ALL(m)                                                                        \
    m(0) m(1) m(2) m(3) m(4) m(5) m(6) m(7) m(8) m(9)                                          \
    KEEL_IRQ_TENS(m, 1) KEEL_IRQ_TENS(m, 2) KEEL_IRQ_TENS(m, 3) KEEL_IRQ_TENS(m, 4)            \
    KEEL_IRQ_TENS(m, 5) KEEL_IRQ_TENS(m, 6) KEEL_IRQ_TENS(m, 7) KEEL_IRQ_TENS(m, 8)            \
    KEEL_IRQ_TENS(m, 9) KEEL_IRQ_TENS(m, 10) KEEL_IRQ_TENS(m, 11)                              \
    m(120) m(121) m(122) m(123) m(124) m(125) m(126) m(127)

KEEL_IRQ_ALL(KEEL_IRQ_DECL)

__attribute__((section(".vectors"), used))
const keel_vector_t keel_vectors[16 + KEEL_EXT_IRQS] = {
    (keel_vector_t)(uintptr_t)__stack_top,
    (keel_vector_t)(uintptr_t)Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, /* SecureFault: secure state only */
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    KEEL_IRQ_ALL(KEEL_IRQ_ENTRY)
};

_Static_assert(sizeof(keel_vectors) / sizeof(keel_vectors[0]) == 16 + KEEL_EXT_IRQS,
               "vector table must list every external line");

void Default_Handler(void)
{
    __asm__ volatile("udf #0xfe");
    for (;;) {
    }
}

/*
 * Runs before .data and .bss exist: touch no global state until both are set up. The copy
 * and clear loops are volatile so the compiler does not turn them into library calls that
 * might themselves depend on initialised data.
 */
int Reset_Handler(void)
{
    __asm__ volatile("msr msplim, %0" : : "r"(__stack_limit));

    /* A board with more interrupt lines than the table would vector into the code after it. */
    if (32u * ((ICTR & 0xFu) + 1u) > KEEL_EXT_IRQS) {
        __asm__ volatile("udf #0xfd");
    }

    const volatile uint32_t *src = __data_load;
    for (volatile uint32_t *dst = __data_start; dst < __data_end; dst++, src++) {
        *dst = *src;
    }
    for (volatile uint32_t *dst = __bss_start; dst < __bss_end; dst++) {
        *dst = 0;
    }

    for (void (**fn)(void) = __preinit_array_start; fn < __preinit_array_end; fn++) {
        (*fn)();
    }
    for (void (**fn)(void) = __init_array_start; fn < __init_array_end; fn++) {
        (*fn)();
    }

    return main();
}

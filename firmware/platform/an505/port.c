/*
 * AN505 platform services: UART1 console, TIMER0 tick, S32K watchdog, reset, boot arguments.
 */
#include "port.h"

#include <string.h>

#include "regs.h"
#include "store.h"

/* ---- console ----
 *
 * Lines go into a secure ring and out to UART1 whenever its transmitter takes a byte: at once
 * when the host reads (QEMU's UART drains instantly), later from the service's drain when the
 * host is slow (QEMU holds TXFULL while its socket is full). A write that does not fit whole is
 * dropped whole and counted: a line is never cut or mixed with another. */

#define CONSOLE_RING 8192u /* a power of two; the longest write (a crash report) is 2 KiB */
static char con_ring[CONSOLE_RING];
static uint32_t con_head, con_tail; /* free-running: bytes written / sent */
static uint32_t con_dropped;        /* writes dropped since last taken */

static uint32_t irq_save(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    return primask;
}

static void irq_restore(uint32_t primask)
{
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
}

/* Send what the transmitter takes now; interrupts masked by the caller. */
static void console_push(void)
{
    while (con_tail != con_head && !(REG32(UART_STATE(UART1_S)) & UART_STATE_TXFULL)) {
        REG32(UART_DATA(UART1_S)) = (uint8_t)con_ring[con_tail % CONSOLE_RING];
        con_tail++;
    }
}

void port_console_init(void)
{
    REG32(UART_BAUDDIV(UART1_S)) = 16u;
    REG32(UART_CTRL(UART1_S)) = 1u; /* TX enable */
}

void port_console_write(const char *s, size_t len)
{
    uint32_t m = irq_save();
    if (len > CONSOLE_RING - (con_head - con_tail)) {
        con_dropped++;
    } else {
        for (size_t i = 0; i < len; i++)
            con_ring[(con_head + i) % CONSOLE_RING] = s[i];
        con_head += (uint32_t)len;
    }
    console_push();
    irq_restore(m);
}

void port_console_drain(void)
{
    uint32_t m = irq_save();
    console_push();
    irq_restore(m);
}

void port_console_flush(void)
{
    /* Bounded: a host that never reads again must not keep the chip from resetting. */
    for (uint32_t spin = 0; con_tail != con_head && spin < 2000000u; spin++)
        port_console_drain();
}

uint32_t port_console_dropped_take(void)
{
    uint32_t m = irq_save();
    uint32_t n = 0;
    if (CONSOLE_RING - (con_head - con_tail) >= CONSOLE_RING / 2u) {
        n = con_dropped;
        con_dropped = 0u;
    }
    irq_restore(m);
    return n;
}

/* ---- debug serial line (UART2, secure only once the board claimed it) ---- */

static void (*dbg_uart_rx)(uint8_t byte);

void port_dbg_uart_start(void (*rx)(uint8_t byte))
{
    dbg_uart_rx = rx;
    REG32(UART_BAUDDIV(UART2_S)) = 16u;
    REG32(UART_CTRL(UART2_S)) = UART_CTRL_TXEN | UART_CTRL_RXEN | UART_CTRL_RXIRQEN;
    REG8(NVIC_IPR(UART2_RX_IRQ)) = PORT_DBG_UART_PRIO;
    REG32(NVIC_ISER(UART2_RX_IRQ / 32u)) = 1u << (UART2_RX_IRQ % 32u);
}

void port_dbg_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        for (uint32_t spin = 0; (REG32(UART_STATE(UART2_S)) & UART_STATE_TXFULL) && spin < 100000u;
             spin++)
            ;
        REG32(UART_DATA(UART2_S)) = data[i];
    }
}

void port_dbg_uart_irq(void)
{
    /* The CMSDK UART holds one received byte: QEMU hands over the next once it is read. */
    REG32(UART_INTCLR(UART2_S)) = 2u;
    for (unsigned i = 0; i < 16u && (REG32(UART_STATE(UART2_S)) & UART_STATE_RXFULL); i++) {
        uint8_t b = (uint8_t)REG32(UART_DATA(UART2_S));
        if (dbg_uart_rx)
            dbg_uart_rx(b);
    }
}

/* ---- tick and time ---- */

static volatile uint64_t tick_count;

#define TICK_RELOAD (CPU_HZ / PORT_TICK_HZ - 1u)

void port_tick_start(void)
{
    REG32(TIMER_CTRL(TIMER0_S)) = 0u;
    REG32(TIMER_RELOAD(TIMER0_S)) = TICK_RELOAD;
    REG32(TIMER_VALUE(TIMER0_S)) = TICK_RELOAD;
    REG32(TIMER_INTCLR(TIMER0_S)) = 1u;
    REG8(NVIC_IPR(TIMER0_IRQ)) = PORT_TICK_PRIO;
    REG32(NVIC_ISER(TIMER0_IRQ / 32u)) = 1u << (TIMER0_IRQ % 32u);
    REG32(TIMER_CTRL(TIMER0_S)) = TIMER_CTRL_EN | TIMER_CTRL_IRQEN;
}

__attribute__((used)) static void tick_irq(uint32_t exc_return)
{
    REG32(TIMER_INTCLR(TIMER0_S)) = 1u;
    tick_count = tick_count + 1u;
    port_tick_hook(exc_return);
}

__attribute__((naked)) void TIMER0_IRQHandler(void)
{
    __asm__ volatile("mov r0, lr\n push {r0, lr}\n bl tick_irq\n pop {r0, pc}\n");
}

uint32_t port_ticks(void)
{
    return (uint32_t)tick_count;
}

uint64_t port_time_us(void)
{
    /* Ticks plus the down-counter, read consistently without masking anything:
     *  - retry when a tick interrupt slipped in between (tick_count changed);
     *  - the counter may have reloaded while its interrupt is not yet taken (the caller is above
     *    the tick's priority, or the interrupt is simply late: QEMU delivers it up to a period
     *    late). The pending flag read *before* the counter says the value is of the next
     *    period for sure; set only *after*, the reload fell between the two reads and the
     *    value itself tells (just reloaded = near the top). */
    uint64_t t1, t2;
    uint32_t v, before, after;
    unsigned tries = 0;
    do {
        t1 = tick_count;
        before = REG32(TIMER_INTCLR(TIMER0_S)) & 1u; /* INTSTATUS */
        v = REG32(TIMER_VALUE(TIMER0_S));
        after = REG32(TIMER_INTCLR(TIMER0_S)) & 1u;
        t2 = tick_count;
    } while (t1 != t2 && ++tries < 8u);
    if (before || (after && v > TICK_RELOAD / 2u))
        t1++;
    return t1 * 1000u + (uint64_t)(TICK_RELOAD - v) * 1000000u / CPU_HZ;
}

/* ---- watchdog ---- */

void port_wdog_start(void)
{
    REG32(WDOG_LOCK(WDOG_S32K)) = WDOG_UNLOCK_KEY;
    REG32(WDOG_LOAD(WDOG_S32K)) = WDOG_HZ / 1000u * PORT_WDOG_MS;
    REG32(WDOG_CTRL(WDOG_S32K)) = WDOG_CTRL_INTEN | WDOG_CTRL_RESEN;
    REG32(WDOG_LOCK(WDOG_S32K)) = 0u;
}

void port_wdog_kick(void)
{
    REG32(WDOG_LOCK(WDOG_S32K)) = WDOG_UNLOCK_KEY;
    REG32(WDOG_INTCLR(WDOG_S32K)) = 1u;
    REG32(WDOG_LOCK(WDOG_S32K)) = 0u;
}

void port_wdog_stop(void)
{
    REG32(WDOG_LOCK(WDOG_S32K)) = WDOG_UNLOCK_KEY;
    REG32(WDOG_CTRL(WDOG_S32K)) = 0u;
    REG32(WDOG_LOCK(WDOG_S32K)) = 0u;
}

/* ---- reset ---- */

void port_system_reset(void)
{
    port_console_flush(); /* the ring is RAM: what the reset is about must reach the host */
    __asm__ volatile("dsb" ::: "memory");
    REG32(SCB_AIRCR) = AIRCR_VECTKEY | AIRCR_PRIS | AIRCR_SYSRESETREQS | AIRCR_SYSRESETREQ;
    __asm__ volatile("dsb" ::: "memory");
    for (;;)
        __asm__ volatile("wfi");
}

/* ---- boot arguments ---- */

/* The words of this power-on, in .noinit so that system resets keep them (QEMU zeroes RAM only
 * when the process starts). valid holds a magic tied to the length. */
static struct {
    uint32_t valid;
    uint32_t len;
    char words[KBOARD_BOOTWORDS_MAX + 1u];
} boot_words __attribute__((section(".noinit")));

#define BOOT_WORDS_VALID(len) (0x4B425700u ^ (len))

static const char *args(void)
{
    if (boot_words.valid == BOOT_WORDS_VALID(boot_words.len) && boot_words.len <= KBOARD_BOOTWORDS_MAX)
        return boot_words.words;
    volatile kboard_bootwords_t *rec =
        (volatile kboard_bootwords_t *)(AN505_STORE_BASE + AN505_STORE_BOOTWORDS_OFF);
    uint32_t len = 0;
    if (rec->magic == KBOARD_BOOTWORDS_MAGIC && rec->len <= KBOARD_BOOTWORDS_MAX) {
        len = rec->len;
        for (uint32_t i = 0; i < len; i++) {
            char c = rec->words[i];
            boot_words.words[i] = c == '\0' ? ' ' : c;
        }
    }
    boot_words.words[len] = '\0';
    boot_words.len = len;
    boot_words.valid = BOOT_WORDS_VALID(len);
    /* Read once: erase the record so the next power-on (keel writes a new one) starts clean. */
    rec->magic = 0xFFFFFFFFu;
    rec->len = 0xFFFFFFFFu;
    __asm__ volatile("dsb" ::: "memory");
    return boot_words.words;
}

/* Find word name or name=... ; returns pointer after the name, or NULL. */
static const char *arg_find(const char *name)
{
    size_t n = strlen(name);
    const char *p = args();
    while (*p) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        if ((size_t)(p - w) >= n && memcmp(w, name, n) == 0 && (w[n] == '=' || w + n == p))
            return w + n;
    }
    return NULL;
}

bool port_arg_has(const char *name)
{
    return arg_find(name) != NULL;
}

uint32_t port_arg_u32(const char *name, uint32_t def)
{
    const char *p = arg_find(name);
    if (!p || *p != '=' || p[1] < '0' || p[1] > '9')
        return def;
    uint32_t v = 0;
    for (p++; *p >= '0' && *p <= '9'; p++) {
        if (v > 429496728u)
            return def;
        v = v * 10u + (uint32_t)(*p - '0');
    }
    return (*p == '\0' || *p == ' ') ? v : def;
}

/* console.c: polled CMSDK UART0 console for the example apps. */
#include "console.h"

#include <string.h>

#include "app_hw.h"
#include "keel.h"

#define UART0_BASE 0x40200000u
#define UART0_DATA APP_REG(UART0_BASE + 0x00u)
#define UART0_STATE APP_REG(UART0_BASE + 0x04u)
#define UART0_CTRL APP_REG(UART0_BASE + 0x08u)
#define UART0_BAUDDIV APP_REG(UART0_BASE + 0x10u)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u
#define UART_CTRL_TXEN 0x1u
#define UART_CTRL_RXEN 0x2u

void console_init(void)
{
    UART0_BAUDDIV = APP_CPU_HZ / 115200u;
    UART0_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN;
}

void console_putc(char c)
{
    /* Bounded: a UART that never drains (it is ours, so it should) costs a lost byte, not a hang. */
    for (uint32_t spins = 0; (UART0_STATE & UART_STATE_TXFULL) && spins < 1000000u; spins++) {
    }
    UART0_DATA = (uint8_t)c;
}

void console_puts(const char *s)
{
    while (*s) {
        if (*s == '\n') {
            console_putc('\r');
        }
        console_putc(*s++);
    }
}

void console_put_dec(uint64_t v)
{
    char digits[21];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        console_putc(digits[--n]);
    }
}

void console_put_int(int32_t v)
{
    if (v < 0) {
        console_putc('-');
        console_put_dec((uint64_t)(-(int64_t)v));
    } else {
        console_put_dec((uint64_t)v);
    }
}

void console_put_hex(uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    console_puts("0x");
    for (int shift = 28; shift >= 0; shift -= 4) {
        console_putc(hex[(v >> shift) & 0xFu]);
    }
}

void console_put_version(uint32_t v)
{
    console_put_dec(KEEL_VERSION_MAJOR(v));
    console_putc('.');
    console_put_dec(KEEL_VERSION_MINOR(v));
    console_putc('.');
    console_put_dec(KEEL_VERSION_PATCH(v));
}

int console_getc(void)
{
    if (!(UART0_STATE & UART_STATE_RXFULL)) {
        return -1;
    }
    return (int)(UART0_DATA & 0xFFu);
}

int console_read_line(char *buf, size_t cap, uint64_t timeout_us, void (*idle)(void))
{
    uint64_t start = 0;
    uint64_t now = 0;
    size_t len = 0;

    if (cap == 0) {
        return -1;
    }
    buf[0] = '\0';
    if (keel_time_get_us(&start) != KEEL_OK) {
        return -1;
    }
    for (;;) {
        int c = console_getc();
        /* "\r\n" and blank lines: a terminator only ends a line that has something in it. */
        if ((c == '\n' || c == '\r') && len > 0) {
            return (int)len;
        }
        if (c >= 0 && c != '\n' && c != '\r' && len + 1 < cap) {
            buf[len++] = (char)c;
            buf[len] = '\0';
        }
        if (idle != NULL) {
            idle();
        }
        if (keel_time_get_us(&now) != KEEL_OK || now - start >= timeout_us) {
            return -1;
        }
    }
}

int32_t console_log(int level, const char *msg)
{
    return keel_log_write((keel_log_level_t)level, msg, strlen(msg));
}

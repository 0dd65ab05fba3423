/*
 * The microvisor console: whole lines, never interleaved, from any context.
 *
 * A line is formatted on the caller's stack and handed whole to port_console_write(), which
 * queues it in secure RAM (never waiting for the host); the service drains the queue, and a line
 * that does not fit is dropped whole, counted and reported (uv_sup.c console_service).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "port.h"
#include "uv.h"

#define LINE_MAX 256u

static void write_line(const char *s, size_t len)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    port_console_write(s, len);
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
}

void uv_log(const char *fmt, ...)
{
    char line[LINE_MAX];
    size_t n = 7u;
    memcpy(line, "[keel] ", n);
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(line + n, sizeof(line) - n - 1u, fmt, ap);
    va_end(ap);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n - 1u ? (size_t)r : sizeof(line) - n - 2u;
    line[n++] = '\n';
    write_line(line, n);
}

void uv_log_raw(const char *prefix, const char *text, uint32_t len)
{
    char line[LINE_MAX];
    size_t n = strnlen(prefix, 32u);
    memcpy(line, prefix, n);
    for (uint32_t i = 0; i < len && n < sizeof(line) - 1u; i++) {
        char c = text[i];
        line[n++] = (c >= 0x20 && c < 0x7F) ? c : '.'; /* no forged console lines */
    }
    line[n++] = '\n';
    write_line(line, n);
}

uint32_t uv_crit_enter(void)
{
    uint32_t old;
    __asm__ volatile("mrs %0, basepri\n msr basepri_max, %1"
                     : "=&r"(old)
                     : "r"(PORT_SERVICE_PRIO)
                     : "memory");
    return old;
}

void uv_crit_exit(uint32_t saved)
{
    __asm__ volatile("msr basepri, %0" ::"r"(saved) : "memory");
}

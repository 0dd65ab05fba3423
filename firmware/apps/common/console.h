/*
 * console.h: a polled UART0 console for the example apps (UART0 belongs to the app; the keel
 * CLI shows its lines prefixed "app| "). No printf: the formatting helpers below are all the
 * examples need and keep them free of a heap.
 */
#ifndef KEEL_APPS_COMMON_CONSOLE_H
#define KEEL_APPS_COMMON_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Enable UART0 TX and RX (115200 baud divisor; QEMU ignores the rate). */
void console_init(void);

void console_putc(char c);
void console_puts(const char *s);
void console_put_dec(uint64_t v);
void console_put_int(int32_t v);
void console_put_hex(uint32_t v); /* "0x" + 8 digits */
void console_put_version(uint32_t v); /* a packed keel version: "major.minor.patch" */

/* One received byte, or -1 if none is waiting. */
int console_getc(void);

/*
 * Read one non-empty line (blank lines are skipped; without its '\r'/'\n') into buf, NUL-terminated, at most cap - 1 characters
 * (the rest of a longer line is dropped). Waits at most timeout_us, measured with
 * keel_time_get_us; idle() (if not NULL) runs on each poll, e.g. to kick the watchdog.
 * Returns the line length, or -1 on timeout (buf then holds what arrived so far).
 */
int console_read_line(char *buf, size_t cap, uint64_t timeout_us, void (*idle)(void));

/* Log a NUL-terminated message through keel_log_write; returns its status. */
int32_t console_log(int level, const char *msg);

#ifdef __cplusplus
}
#endif

#endif /* KEEL_APPS_COMMON_CONSOLE_H */

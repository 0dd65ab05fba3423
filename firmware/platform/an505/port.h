/*
 * Platform services for the microvisor: console, tick/time, watchdog, reset, flash stores,
 * boot arguments. One implementation per board in firmware/platform/<board>/.
 */
#ifndef KEEL_PLATFORM_PORT_H
#define KEEL_PLATFORM_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/flash.h"

/* ---- console (the microvisor's own UART) ----
 * Writes are buffered in secure RAM and never wait for the host: a write that does not fit whole
 * is dropped whole and counted. Callable from any context, interrupts masked or not. */
void port_console_init(void);
void port_console_write(const char *s, size_t len);
/* Send what the UART takes now (the service calls it on every run). */
void port_console_drain(void);
/* Send everything, bounded (before a reset or a power cut). */
void port_console_flush(void);
/* Writes dropped since the last call, once the buffer has room again to report them (else 0). */
uint32_t port_console_dropped_take(void);

/* ---- the debug serial line (local development: boot word dbg-uart; the board claims the UART) --
 * Received bytes go to rx, called from the UART's interrupt (secure, priority PORT_DBG_UART_PRIO,
 * above the service). */
#define PORT_DBG_UART_PRIO 0x40u
void port_dbg_uart_start(void (*rx)(uint8_t byte));
/* Bounded like the console: a stuck TX drops bytes rather than hang the microvisor. */
void port_dbg_uart_write(const uint8_t *data, size_t len);
void port_dbg_uart_irq(void); /* vector of UART2_RX_IRQ */

/* ---- time: a 1 kHz secure tick that the app can neither stop nor mask ---- */
#define PORT_TICK_HZ 1000u
#define PORT_TICK_PRIO 0x20u     /* secure, below 0x80: never masked by the app (PRIS) */
#define PORT_SERVICE_PRIO 0x60u  /* secure PendSV: the microvisor's background work */
/* Start the tick; port_tick_hook() is called from its interrupt with the EXC_RETURN value of
 * that interrupt (it tells what the tick interrupted). */
void port_tick_start(void);
void port_tick_hook(uint32_t exc_return); /* provided by the microvisor */
uint32_t port_ticks(void);       /* ms since this boot (wraps after 49 days) */
uint64_t port_time_us(void);     /* us since this boot, monotonic, re-entrant */

/* ---- the secure watchdog guarding the microvisor itself ---- */
/*
 * Secure watchdog period: first expiry NMI (cause recorded), second chip reset. QEMU runs it on
 * the host's clock, so a host that starves QEMU of CPU looks like a stalled microvisor: 3 s rides
 * out a loaded build machine, where 1 s reset devices in the middle of tests. On silicon, a port
 * picks its period from the longest flash operation it must survive.
 */
#define PORT_WDOG_MS 3000u
void port_wdog_start(void);
void port_wdog_kick(void);
void port_wdog_stop(void);

/* ---- reset ---- */
__attribute__((noreturn)) void port_system_reset(void);

/* ---- power-cut injection (simulation) ---- */
/* Stops dead when the store says an injected power cut already happened (the watchdog reset the
 * chip before keel ended QEMU): call first thing at boot. */
void port_powercut_check(void);

/* ---- boot arguments (simulation: words keel writes into the store's boot-word record; hardware:
 * none). Read once per power-on: the record is erased at once and the words are kept in .noinit,
 * so they hold across the system resets of one run and never for the next. ---- */
/* Value of word "name=value" as an unsigned number, or def when absent/invalid. */
uint32_t port_arg_u32(const char *name, uint32_t def);
/* true when the bare word "name" or "name=..." is present. */
bool port_arg_has(const char *name);

/* ---- flash stores ---- */
typedef enum port_flash_id { PORT_FLASH_INTERNAL = 0, PORT_FLASH_QSPI = 1 } port_flash_id_t;
/* Open (creating if needed) the store; returns the NOR device or NULL with *out_err set. */
kflash_t *port_flash_open(port_flash_id_t id, kerr_t *out_err);

#endif /* KEEL_PLATFORM_PORT_H */

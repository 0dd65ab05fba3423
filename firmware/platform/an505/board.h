/*
 * The board interface the microvisor core uses. One implementation per board
 * (firmware/platform/<board>/board.c); the microvisor never touches TrustZone controllers,
 * peripherals or memory addresses except through this header and port.h.
 */
#ifndef KEEL_PLATFORM_BOARD_H
#define KEEL_PLATFORM_BOARD_H

#include <stdbool.h>
#include <stdint.h>


/* Memory the app may own; pointers it passes must lie inside one of these. */
typedef struct board_region {
    uint32_t base;
    uint32_t size;
} board_region_t;

extern const board_region_t board_app_code; /* NS code region (image copied here) */
extern const board_region_t board_app_ram;  /* NS RAM */

/* true when [addr, addr+len) lies wholly inside the app's code or RAM region (no wrap). */
bool board_app_mem(uint32_t addr, uint32_t len);

/* Partition the chip: SAU, MPCs, PPCs, master security, NSCCFG, interrupt targets, AIRCR.
 * Called once at boot before anything non-secure runs. */
void board_partition(void);

/* Number of external interrupt lines of the NVIC. */
uint32_t board_irq_count(void);

/* true when irq (external, 0-based) is owned by the app (targets the NS world). */
bool board_irq_is_app(uint32_t irq);

/* Put every peripheral the app owns back in its reset state (as a chip reset would),
 * so a restarted app never inherits a running timer or pending interrupt source. */
void board_reset_app_peripherals(void);

/* A secure UART for the app debugger's plain serial line (local development only: the boot word
 * dbg-uart asks for it; port_dbg_uart_* drive it). Claiming takes the UART away from the app:
 * call it before board_partition(), which then leaves the UART and its interrupt lines secure. */
void board_debug_uart_claim(void);

#endif /* KEEL_PLATFORM_BOARD_H */

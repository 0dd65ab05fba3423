/*
 * State that survives system resets (but not power cycles): it lives in .noinit RAM, which no
 * ELF segment covers, so neither QEMU's loader nor the startup code touches it on a reset.
 * A CRC tells a warm reset (valid) from power-on (RAM content undefined, all zero on QEMU).
 */
#include <stddef.h>
#include <string.h>

#include "keel/crc32.h"
#include "port.h"
#include "uv.h"

#define NOINIT_MAGIC 0x4E49564Bu /* "KVIN" */

__attribute__((section(".noinit"))) uv_noinit_t uv_ni;

static uint32_t noinit_crc(void)
{
    return kcrc32(0, &uv_ni, offsetof(uv_noinit_t, crc));
}

void uv_noinit_commit(void)
{
    uv_ni.crc = noinit_crc();
}

uv_reset_cause_t uv_noinit_boot(void)
{
    uv_reset_cause_t cause;
    if (uv_ni.magic != NOINIT_MAGIC || uv_ni.crc != noinit_crc()) {
        memset(&uv_ni, 0, sizeof(uv_ni));
        uv_ni.magic = NOINIT_MAGIC;
        cause = UV_RESET_POWER_ON;
    } else {
        cause = uv_ni.reset_cause <= UV_RESET_UNKNOWN ? (uv_reset_cause_t)uv_ni.reset_cause
                                                      : UV_RESET_UNKNOWN;
    }
    uv_ni.reset_cause = UV_RESET_UNKNOWN; /* whoever resets next must say why */
    uv_ni.boots++;
    uv_noinit_commit();
    return cause;
}

uint64_t uv_uptime_ms(void)
{
    return ((uint64_t)uv_ni.uptime_base_hi << 32 | uv_ni.uptime_base_lo) + port_ticks();
}

uint64_t uv_uptime_us(void)
{
    return ((uint64_t)uv_ni.uptime_base_hi << 32 | uv_ni.uptime_base_lo) * 1000u + port_time_us();
}

void uv_reset(uv_reset_cause_t cause)
{
    uint64_t up = uv_uptime_ms();
    __asm__ volatile("cpsid i" ::: "memory");
    uv_ni.uptime_base_lo = (uint32_t)up;
    uv_ni.uptime_base_hi = (uint32_t)(up >> 32);
    uv_ni.reset_cause = cause;
    uv_noinit_commit();
    port_system_reset();
}

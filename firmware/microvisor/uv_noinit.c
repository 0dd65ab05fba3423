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
        cause = uv_ni.reset_cause < UV_RESET_CAUSE_COUNT ? (uv_reset_cause_t)uv_ni.reset_cause
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

/*
 * Device time in us never goes backwards, even when the tick interrupt is late by more than a
 * period (seen on QEMU when its main loop is busy): the counter then cannot tell how many
 * reloads it missed, and the value is held at the last one returned until the ticks catch up.
 * Callers are the app's keel_* calls and the service; the section keeps them consistent.
 */
uint64_t uv_uptime_us(void)
{
    static uint64_t last;
    uint32_t c = uv_crit_enter();
    uint64_t t = ((uint64_t)uv_ni.uptime_base_hi << 32 | uv_ni.uptime_base_lo) * 1000u + port_time_us();
    if (t < last)
        t = last;
    last = t;
    uv_crit_exit(c);
    return t;
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

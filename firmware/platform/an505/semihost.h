/*
 * Arm semihosting, used on QEMU only: it backs the "internal flash" and "QSPI NOR" stores with
 * host files, reads the boot arguments and leaves the emulator. Real silicon has none of this:
 * a hardware port replaces semihost_flash.c and the args/exit parts of port.c.
 *
 * Caveat (an505.md 6d): QEMU services semihosting for any privileged code, NS included. That is
 * a property of the simulator, not of the partition.
 */
#ifndef KEEL_PLATFORM_AN505_SEMIHOST_H
#define KEEL_PLATFORM_AN505_SEMIHOST_H

#include <stdint.h>

#define SH_OPEN 0x01u
#define SH_CLOSE 0x02u
#define SH_WRITE 0x05u
#define SH_READ 0x06u
#define SH_SEEK 0x0Au
#define SH_FLEN 0x0Cu
#define SH_GET_CMDLINE 0x15u
#define SH_EXIT_EXTENDED 0x20u

#define SH_MODE_RB_PLUS 3u  /* "r+b" */
#define SH_MODE_WB_PLUS 7u  /* "w+b" */

static inline int32_t semihost_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

#endif /* KEEL_PLATFORM_AN505_SEMIHOST_H */

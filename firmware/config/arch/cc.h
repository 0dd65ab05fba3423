/*
 * lwIP port for Keel's secure firmware: arm-none-eabi, newlib-nano, NO_SYS (no RTOS).
 *
 * Byte order, struct packing and the integer types come from lwIP's own defaults in lwip/arch.h,
 * which are right for GCC on a little-endian Cortex-M33 (newlib's <machine/endian.h> defines
 * BYTE_ORDER to the same value). Packed structs matter: with ETH_PAD_SIZE 0 the IP header sits at
 * a 2-byte offset, and packing keeps GCC from emitting LDRD/LDM on it (those fault when unaligned).
 *
 * The network port (not this library) provides, next to sys_now():
 *   lwip_port_rand()    random numbers for TCP/UDP source ports and the DHCP xid; must come from
 *                       the seeded CTR_DRBG, never from a timer.
 *   lwip_port_assert()  an lwIP invariant broke: log it and restart the network stack or the device.
 *   lwip_port_yield()   run the network poll again soon (a TLS handshake continues there).
 */
#ifndef KEEL_LWIP_ARCH_CC_H
#define KEEL_LWIP_ARCH_CC_H

#include <stdint.h>

/** Next pseudo-random 32-bit value for lwIP; provided by the network port. */
uint32_t lwip_port_rand(void);

/** Reports a failed lwIP assertion; provided by the network port. Never returns. */
void lwip_port_assert(const char *msg, const char *file, int line) __attribute__((noreturn));
/* Run the network poll again soon (altcp_tls: the rest of a handshake that gave the CPU back). */
void lwip_port_yield(void);

#define LWIP_RAND() ((u32_t)lwip_port_rand())
#define LWIP_PLATFORM_ASSERT(msg) lwip_port_assert((msg), __FILE__, __LINE__)

#endif /* KEEL_LWIP_ARCH_CC_H */

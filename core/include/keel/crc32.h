/*
 * CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): the checksum of every Keel format.
 */
#ifndef KEEL_CRC32_H
#define KEEL_CRC32_H

#include <stddef.h>
#include <stdint.h>

/*
 * CRC of n bytes at p, continuing from crc (0 to start). Chaining is exact:
 * kcrc32(kcrc32(0, a, na), b, nb) == kcrc32(0, a||b, na + nb). "123456789" -> 0xCBF43926.
 */
uint32_t kcrc32(uint32_t crc, const void *p, size_t n);

#endif /* KEEL_CRC32_H */

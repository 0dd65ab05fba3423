/*
 * Little-endian field access for the persisted formats (private to core/src).
 *
 * Every Keel on-flash and on-wire format is little-endian at fixed offsets. Going through these
 * byte-wise helpers instead of casting to structs keeps the encoders independent of the host's
 * endianness, alignment and struct padding.
 */
#ifndef KEEL_CORE_SRC_LE_H
#define KEEL_CORE_SRC_LE_H

#include <stdint.h>
#include <string.h>

static inline uint16_t le_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t le_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline void le_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void le_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* True when all n bytes at p are 0xFF (erased NOR). */
static inline int le_all_ff(const uint8_t *p, uint32_t n)
{
    uint32_t i = 0;
    /* Word at a time where aligned: this runs over whole flash parts at boot. */
    for (; i < n && ((uintptr_t)(p + i) & 3u) != 0u; i++) {
        if (p[i] != 0xFFu) {
            return 0;
        }
    }
    for (; i + 4u <= n; i += 4u) {
        uint32_t w;
        memcpy(&w, p + i, 4u);
        if (w != 0xFFFFFFFFu) {
            return 0;
        }
    }
    for (; i < n; i++) {
        if (p[i] != 0xFFu) {
            return 0;
        }
    }
    return 1;
}

#endif /* KEEL_CORE_SRC_LE_H */

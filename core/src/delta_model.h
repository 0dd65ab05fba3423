/*
 * The delta body's range coder and model constants (private to core/src/delta_*.c).
 *
 * An LZMA-style adaptive binary range coder: 11-bit probabilities that move 1/32 of the way
 * towards each decoded bit, 32-bit range, one input byte per normalization. Encoder and decoder
 * include this one file so the model cannot drift apart.
 *
 * Integers (lengths, seeks, map fields) are coded as their bit length n (0..32, a 6-bit tree
 * per context), the bit below the leading one (adaptive, per context and n), then n-2 plain
 * bits. Seeks and map shifts are zigzag-coded. Diff bytes of an add are coded as zero runs
 * (an integer) each followed by one non-zero byte (an 8-bit tree); literals of an extra by an
 * 8-bit tree chosen by the byte's offset parity (Thumb halfwords: low and high bytes differ).
 */
#ifndef KEEL_CORE_SRC_DELTA_MODEL_H
#define KEEL_CORE_SRC_DELTA_MODEL_H

#include <stdint.h>

#define DLT_PROB_BITS 11u
#define DLT_PROB_INIT (1u << (DLT_PROB_BITS - 1))
#define DLT_MOVE_BITS 5u
#define DLT_TOP (1u << 24)

enum { DLT_I_MAP, DLT_I_ADD, DLT_I_EXTRA, DLT_I_SEEK, DLT_I_ZRUN };

#define DLT_LEN_TREE 64u /* probabilities of the bit-length tree; the 33 mantissa ones follow */

static inline uint32_t dlt_zigzag(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

static inline int32_t dlt_unzigzag(uint32_t v)
{
    return (int32_t)(v >> 1) ^ -(int32_t)(v & 1u);
}

#endif /* KEEL_CORE_SRC_DELTA_MODEL_H */

/*
 * Thumb-2 next-PC decoder (ARMv8-M Mainline) for software single step.
 *
 * Without halting debug or DebugMonitor (QEMU has neither), a step is: find every address the
 * instruction at pc can go to next, plant a temporary BKPT at each, resume, and stop at the
 * first BKPT hit. This decoder finds those addresses: branches (B, B<c>, BL, BX, BLX, CBZ,
 * CBNZ), loads into pc (POP, LDM, LDMDB, LDR literal/immediate/register), MOV/ADD to pc, and
 * TBB/TBH; anything else falls through to pc + 2 or pc + 4. The condition of B<c>, and of any
 * instruction inside an IT block (ITSTATE in xpsr), is evaluated from the NZCV flags when the
 * xpsr is known; otherwise both outcomes are returned.
 *
 * 32-bit data-processing instructions writing pc are UNPREDICTABLE in Thumb-2, and BLX
 * (immediate) is UNDEFINED on M-profile: both fall through (the core faults on them, and the
 * stub reports that fault as the stop instead).
 */
#ifndef KEEL_THUMB_H
#define KEEL_THUMB_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/err.h"

/* Read len (1, 2 or 4) bytes of the app's memory at addr, little-endian as stored. Returns
 * KERR_OK, or the error that made it impossible (KERR_RANGE outside the app's memory). */
typedef kerr_t (*thumb_read_fn)(void *ctx, uint32_t addr, uint8_t *out, uint32_t len);

typedef struct thumb_state {
    uint32_t r[16];  /* r0-r12, sp, lr; r[15] = address of the instruction to step */
    uint32_t xpsr;   /* flags (N Z C V, bits 31..28) and ITSTATE (bits 26:25, 15:10) */
    bool xpsr_valid; /* false: conditions are unknown, conditional outcomes are both returned */
} thumb_state_t;

typedef struct thumb_next {
    uint32_t pc[2];  /* the possible next pcs; pc[0] is the branch target when one exists */
    unsigned count;  /* 1 or 2 */
    uint8_t size;    /* length of the instruction at pc: 2 or 4 */
    /* pc[0] is an EXC_RETURN or FNC_RETURN value (0xFExxxxxx-0xFFxxxxxx) loaded by BX, POP,
     * LDM or LDR: an exception or secure-call return whose real destination is on a stack,
     * not at an address a BKPT can be planted at. */
    bool exc_return;
} thumb_next_t;

/*
 * Decode the instruction at st->r[15] and give its possible successors in *out.
 * Errors: KERR_INVAL for a null argument or an odd pc; any error of read (instruction
 * fetch, or the memory a load into pc or a table branch would read), unchanged.
 */
kerr_t thumb_next_pc(const thumb_state_t *st, thumb_read_fn read, void *read_ctx,
                     thumb_next_t *out);

/* Is an instruction with first halfword hw1 32 bits long? */
bool thumb_is_32bit(uint16_t hw1);

/* Does condition cond (0..15, as in B<c> and IT) pass with these xpsr flags? */
bool thumb_cond_pass(unsigned cond, uint32_t xpsr);

#endif /* KEEL_THUMB_H */

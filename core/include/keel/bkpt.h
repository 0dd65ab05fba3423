/*
 * Breakpoint manager for the app debug stub.
 *
 * The stub sees breakpoints through bkpt_t, a small vtable, so the mechanism can change per
 * board: on QEMU (no FPB, no DebugMonitor) the software implementation below patches a BKPT
 * instruction into the app's code and the resulting HardFault is the stop; on silicon an FPB
 * implementation would program comparators and take DebugMonitor instead, behind the same
 * calls. The stub also sends every debugger memory access through bkpt_read()/bkpt_write(),
 * so gdb always sees (and edits) the app's own instructions, never a planted BKPT.
 *
 * Breakpoints are counted: a user breakpoint and a step's temporary one at the same address
 * are two inserts and need two removes before the original instruction comes back.
 */
#ifndef KEEL_BKPT_H
#define KEEL_BKPT_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/err.h"

/* The 16-bit Thumb BKPT #0 that the software implementation plants. */
#define BKPT_INSN 0xBE00u

/* Software breakpoints at once (user breakpoints plus up to two for a step). */
#define BKPT_SW_MAX 32u

/* The mechanism. impl is the implementation's own state (e.g. a bkpt_sw_t). */
typedef struct bkpt_ops {
    /* Plant a breakpoint at addr (halfword aligned). KERR_INVAL: odd address;
     * KERR_NOMEM: no slot left; KERR_IO: the code did not change (not writable);
     * any error of the memory ops unchanged (KERR_RANGE outside the app). */
    kerr_t (*insert)(void *impl, uint32_t addr);
    /* Drop one reference; the last one restores the instruction. KERR_INVAL: none at addr. */
    kerr_t (*remove)(void *impl, uint32_t addr);
    /* Restore every instruction (detach, lost connection). Returns the first error, having
     * still tried all; entries that could not be restored are kept for another try. */
    kerr_t (*remove_all)(void *impl);
    /* Is a breakpoint of ours at addr? (the stub asks on a BKPT HardFault) */
    bool (*is_set)(void *impl, uint32_t addr);
    /* App memory with breakpoints hidden: reads show the original code, writes update the
     * saved originals and leave the breakpoints planted. */
    kerr_t (*read)(void *impl, uint32_t addr, uint8_t *out, uint32_t len);
    kerr_t (*write)(void *impl, uint32_t addr, const uint8_t *data, uint32_t len);
} bkpt_ops_t;

typedef struct bkpt {
    const bkpt_ops_t *ops;
    void *impl;
} bkpt_t;

/* The calls the stub makes; each forwards to the implementation. */
static inline kerr_t bkpt_insert(const bkpt_t *b, uint32_t addr)
{
    return b->ops->insert(b->impl, addr);
}
static inline kerr_t bkpt_remove(const bkpt_t *b, uint32_t addr)
{
    return b->ops->remove(b->impl, addr);
}
static inline kerr_t bkpt_remove_all(const bkpt_t *b)
{
    return b->ops->remove_all(b->impl);
}
static inline bool bkpt_is_set(const bkpt_t *b, uint32_t addr)
{
    return b->ops->is_set(b->impl, addr);
}
static inline kerr_t bkpt_read(const bkpt_t *b, uint32_t addr, uint8_t *out, uint32_t len)
{
    return b->ops->read(b->impl, addr, out, len);
}
static inline kerr_t bkpt_write(const bkpt_t *b, uint32_t addr, const uint8_t *data, uint32_t len)
{
    return b->ops->write(b->impl, addr, data, len);
}

/* ---- software implementation: BKPT patched into code ------------------------------- */

/* App memory as the microvisor reaches it; both check that the range is the app's own and
 * return KERR_RANGE (touching nothing) otherwise. */
typedef struct bkpt_mem_ops {
    kerr_t (*read)(void *ctx, uint32_t addr, uint8_t *out, uint32_t len);
    kerr_t (*write)(void *ctx, uint32_t addr, const uint8_t *data, uint32_t len);
} bkpt_mem_ops_t;

typedef struct bkpt_sw_entry {
    uint32_t addr;
    uint16_t orig;  /* the instruction halfword the BKPT replaced */
    uint16_t refs;  /* 0: free slot */
} bkpt_sw_entry_t;

typedef struct bkpt_sw {
    const bkpt_mem_ops_t *mem;
    void *mem_ctx;
    bkpt_sw_entry_t e[BKPT_SW_MAX];
} bkpt_sw_t;

/* Set up sw with no breakpoints and make *out the bkpt_t that uses it. KERR_INVAL if an
 * argument or memory op is missing. */
kerr_t bkpt_sw_init(bkpt_sw_t *sw, const bkpt_mem_ops_t *mem, void *mem_ctx, bkpt_t *out);

/* Number of distinct addresses with a breakpoint planted. */
unsigned bkpt_sw_count(const bkpt_sw_t *sw);

#endif /* KEEL_BKPT_H */

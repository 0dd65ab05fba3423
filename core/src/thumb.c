/*
 * Thumb-2 next-PC decoder. Encodings follow the ARMv8-M Architecture Reference Manual
 * (section C2, "Alphabetical list of instructions"); each decoder names its encoding.
 *
 * Every outcome goes through one of two exits: a flow change (target, under a condition) or
 * plain fall-through. The condition is the instruction's own (B<c>), else the IT block's,
 * else "always"; CBZ/CBNZ decide from a register, which is always known.
 */
#include "keel/thumb.h"

#include <stddef.h>

#define COND_AL 14u
#define SPECIAL_RETURN 0xFE000000u /* EXC_RETURN 0xFFxxxxxx, FNC_RETURN 0xFEFFFFFF */

bool thumb_is_32bit(uint16_t hw1)
{
    return (hw1 & 0xF800u) >= 0xE800u;
}

bool thumb_cond_pass(unsigned cond, uint32_t xpsr)
{
    bool n = (xpsr >> 31) & 1u, z = (xpsr >> 30) & 1u, c = (xpsr >> 29) & 1u,
         v = (xpsr >> 28) & 1u;
    bool r;
    switch ((cond >> 1) & 7u) {
    case 0: r = z; break;              /* EQ / NE */
    case 1: r = c; break;              /* CS / CC */
    case 2: r = n; break;              /* MI / PL */
    case 3: r = v; break;              /* VS / VC */
    case 4: r = c && !z; break;        /* HI / LS */
    case 5: r = n == v; break;         /* GE / LT */
    case 6: r = n == v && !z; break;   /* GT / LE */
    default: return true;              /* AL, and 0b1111 treated as AL */
    }
    return (cond & 1u) ? !r : r;
}

typedef struct {
    const thumb_state_t *st;
    thumb_read_fn read;
    void *ctx;
    uint32_t pc;
} dec_t;

/* A register as an instruction reads it: pc reads as the instruction address + 4. */
static uint32_t reg(const dec_t *d, unsigned n)
{
    return n == 15u ? d->pc + 4u : d->st->r[n & 15u];
}

static kerr_t load32(const dec_t *d, uint32_t addr, uint32_t *out)
{
    uint8_t b[4];
    kerr_t err = d->read(d->ctx, addr, b, 4);
    if (err == KERR_OK)
        *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return err;
}

static uint32_t sext(uint32_t v, unsigned bits)
{
    uint32_t m = 1u << (bits - 1u);
    return (v ^ m) - m;
}

static unsigned popcount16(uint32_t v)
{
    unsigned n = 0;
    for (v &= 0xFFFFu; v; v &= v - 1u)
        n++;
    return n;
}

/* The condition this instruction runs under: the IT block's if one is active, else AL. */
static unsigned it_cond(const thumb_state_t *st)
{
    if (!st->xpsr_valid)
        return COND_AL;
    uint32_t it = ((st->xpsr >> 25) & 3u) | ((st->xpsr >> 8) & 0xFCu);
    return (it & 0xFu) ? (it >> 4) : COND_AL;
}

/*
 * Fill *out for an instruction that goes to target when cond passes, else falls through.
 * With unknown flags a conditional one (any, when xpsr is unknown: the IT state is unknown
 * too) gives both.
 */
static void flow(const dec_t *d, thumb_next_t *out, unsigned cond, uint32_t target, bool interwork)
{
    uint32_t fall = d->pc + out->size;
    out->count = 1;
    if (d->st->xpsr_valid && !thumb_cond_pass(cond, d->st->xpsr)) {
        out->pc[0] = fall;
        return;
    }
    out->exc_return = interwork && target >= SPECIAL_RETURN;
    out->pc[0] = out->exc_return ? target : target & ~1u;
    if (!d->st->xpsr_valid && out->pc[0] != fall) {
        out->pc[1] = fall;
        out->count = 2;
    }
}

/* A load into pc from addr (POP, LDM, LDR): the loaded word is the target. */
static kerr_t flow_load(const dec_t *d, thumb_next_t *out, uint32_t addr)
{
    uint32_t v;
    unsigned cond = it_cond(d->st);
    if (d->st->xpsr_valid && !thumb_cond_pass(cond, d->st->xpsr)) {
        flow(d, out, cond, 0, false); /* skipped: the load does not happen, nothing to read */
        return KERR_OK;
    }
    kerr_t err = load32(d, addr, &v);
    if (err == KERR_OK)
        flow(d, out, cond, v, true);
    return err;
}

static kerr_t decode16(const dec_t *d, uint16_t hw, thumb_next_t *out)
{
    uint32_t pc4 = d->pc + 4u;
    if ((hw & 0xF000u) == 0xD000u) { /* B<c> T1; cond 1110 is UDF, 1111 is SVC */
        unsigned cond = (hw >> 8) & 0xFu;
        if (cond < 14u)
            flow(d, out, cond, pc4 + sext((hw & 0xFFu) << 1, 9), false);
        return KERR_OK;
    }
    if ((hw & 0xF800u) == 0xE000u) { /* B T2 (may end an IT block) */
        flow(d, out, it_cond(d->st), pc4 + sext((hw & 0x7FFu) << 1, 12), false);
        return KERR_OK;
    }
    if ((hw & 0xFF00u) == 0x4700u) { /* BX / BLX (register) T1 */
        flow(d, out, it_cond(d->st), reg(d, (hw >> 3) & 0xFu), true);
        return KERR_OK;
    }
    if ((hw & 0xF500u) == 0xB100u) { /* CBZ / CBNZ T1: never inside IT */
        uint32_t off = ((hw >> 9) & 1u) << 6 | ((hw >> 3) & 0x1Fu) << 1;
        bool zero = reg(d, hw & 7u) == 0u, nonzero_op = (hw >> 11) & 1u;
        out->pc[0] = (zero != nonzero_op) ? pc4 + off : d->pc + 2u;
        out->count = 1;
        return KERR_OK;
    }
    if ((hw & 0xFF00u) == 0xBD00u) /* POP T1 with pc: pc is the highest, last word */
        return flow_load(d, out, reg(d, 13) + 4u * popcount16(hw & 0xFFu));
    if ((hw & 0xFC00u) == 0x4400u && (hw & 0x0300u) != 0x0300u) {
        /* ADD (register) T2 (0x44xx) and MOV (register) T1 (0x46xx) with Rd = D:Rd = pc */
        unsigned rd = ((hw >> 4) & 8u) | (hw & 7u), rm = (hw >> 3) & 0xFu;
        if (rd != 15u || (hw & 0x0300u) == 0x0100u) /* 0x45xx is CMP */
            return KERR_OK;
        uint32_t v = (hw & 0x0200u) ? reg(d, rm) : pc4 + reg(d, rm);
        flow(d, out, it_cond(d->st), v, false);
    }
    return KERR_OK;
}

/* B T3 / B T4 / BL T1: the 21- or 25-bit signed offset with its J1/J2 bits. */
static uint32_t branch_offset(uint16_t hw1, uint16_t hw2, bool t3)
{
    uint32_t s = (hw1 >> 10) & 1u, j1 = (hw2 >> 13) & 1u, j2 = (hw2 >> 11) & 1u;
    uint32_t imm11 = hw2 & 0x7FFu;
    if (t3)
        return sext(s << 20 | j2 << 19 | j1 << 18 | (hw1 & 0x3Fu) << 12 | imm11 << 1, 21);
    uint32_t i1 = !(j1 ^ s), i2 = !(j2 ^ s);
    return sext(s << 24 | i1 << 23 | i2 << 22 | (hw1 & 0x3FFu) << 12 | imm11 << 1, 25);
}

static kerr_t decode32(const dec_t *d, uint16_t hw1, uint16_t hw2, thumb_next_t *out)
{
    uint32_t pc4 = d->pc + 4u;
    unsigned rn = hw1 & 0xFu;
    if ((hw1 & 0xF800u) == 0xF000u && (hw2 & 0x8000u)) { /* branches and misc control */
        switch (hw2 & 0x5000u) {
        case 0x0000u: { /* B T3, unless cond is 111x: MSR, MRS, hints, barriers */
            unsigned cond = (hw1 >> 6) & 0xFu;
            if (cond < 14u)
                flow(d, out, cond, pc4 + branch_offset(hw1, hw2, true), false);
            return KERR_OK;
        }
        case 0x1000u: /* B T4 */
        case 0x5000u: /* BL T1 */
            flow(d, out, it_cond(d->st), pc4 + branch_offset(hw1, hw2, false), false);
            return KERR_OK;
        default: /* BLX (immediate): UNDEFINED on M-profile */
            return KERR_OK;
        }
    }
    if ((hw1 & 0xFFD0u) == 0xE890u && (hw2 & 0x8000u)) /* LDM(IA) T2 / POP T2 with pc */
        return flow_load(d, out, reg(d, rn) + 4u * (popcount16(hw2) - 1u));
    if ((hw1 & 0xFFD0u) == 0xE910u && (hw2 & 0x8000u)) /* LDMDB T1 with pc */
        return flow_load(d, out, reg(d, rn) - 4u);
    if ((hw1 & 0xFFF0u) == 0xE8D0u && (hw2 & 0xFFE0u) == 0xF000u) { /* TBB / TBH T1 */
        unsigned cond = it_cond(d->st);
        if (d->st->xpsr_valid && !thumb_cond_pass(cond, d->st->xpsr)) {
            flow(d, out, cond, 0, false);
            return KERR_OK;
        }
        bool half = (hw2 >> 4) & 1u;
        uint32_t addr = reg(d, rn) + (reg(d, hw2 & 0xFu) << (half ? 1 : 0));
        uint8_t b[2] = {0, 0};
        kerr_t err = d->read(d->ctx, addr, b, half ? 2u : 1u);
        if (err != KERR_OK)
            return err;
        flow(d, out, cond, pc4 + 2u * ((uint32_t)b[0] | (uint32_t)b[1] << 8), false);
        return KERR_OK;
    }
    if ((hw1 & 0xFF70u) == 0xF850u && (hw2 >> 12) == 15u) { /* LDR (word) into pc */
        uint32_t base = reg(d, rn), addr;
        if (rn == 15u) { /* LDR (literal) T2: Align(pc, 4) +/- imm12 */
            base &= ~3u;
            addr = (hw1 & 0x80u) ? base + (hw2 & 0xFFFu) : base - (hw2 & 0xFFFu);
        } else if (hw1 & 0x80u) { /* LDR (immediate) T3 */
            addr = base + (hw2 & 0xFFFu);
        } else if (hw2 & 0x800u) { /* LDR (immediate) T4: P U W imm8 */
            uint32_t imm8 = hw2 & 0xFFu;
            uint32_t offset_addr = (hw2 & 0x200u) ? base + imm8 : base - imm8;
            addr = (hw2 & 0x400u) ? offset_addr : base;
        } else if ((hw2 & 0x0FC0u) == 0u) { /* LDR (register) T2: Rn + (Rm << imm2) */
            addr = base + (reg(d, hw2 & 0xFu) << ((hw2 >> 4) & 3u));
        } else {
            return KERR_OK;
        }
        return flow_load(d, out, addr);
    }
    return KERR_OK;
}

kerr_t thumb_next_pc(const thumb_state_t *st, thumb_read_fn read, void *read_ctx,
                     thumb_next_t *out)
{
    if (!st || !read || !out || (st->r[15] & 1u))
        return KERR_INVAL;
    dec_t d = {st, read, read_ctx, st->r[15]};
    uint8_t b[4];
    kerr_t err = read(read_ctx, d.pc, b, 2);
    if (err != KERR_OK)
        return err;
    uint16_t hw1 = (uint16_t)(b[0] | b[1] << 8);
    out->exc_return = false;
    out->size = thumb_is_32bit(hw1) ? 4u : 2u;
    out->pc[0] = out->pc[1] = d.pc + out->size; /* fall-through unless a decoder says more */
    out->count = 1;
    if (out->size == 2u)
        return decode16(&d, hw1, out);
    err = read(read_ctx, d.pc + 2u, b + 2, 2);
    if (err != KERR_OK)
        return err;
    return decode32(&d, hw1, (uint16_t)(b[2] | b[3] << 8), out);
}

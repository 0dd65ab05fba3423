/*
 * The Thumb-2 next-PC decoder on real encodings.
 *
 * The encodings are a committed table (text, hw1, hw2) made with arm-none-eabi-as 2.40
 * (-mcpu=cortex-m33) and its objdump at development time. Why a table rather than assembling
 * at build time: the host unit tests then need no cross toolchain, and a reader sees the bits
 * each case is about next to its expectation. So the table cannot drift from the assembler,
 * test_encodings_match_assembler re-assembles every line and compares, whenever CMake finds
 * arm-none-eabi-as (it does on every machine that builds the firmware).
 *
 * Then the oracle: test_thumb_qemu_trace.log is QEMU single-stepping test_thumb_trace.S (every
 * form, taken and not, IT blocks, with the xpsr QEMU really has) under gdb-multiarch; at each
 * recorded step the decoder must name exactly the pc of the next one.
 *
 *   test_thumb TRACE [AS OBJCOPY TMPDIR]
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/thumb.h"
#include "unit_util.h"

/* The app's memory as the decoder sees it: code and RAM, each filled with distinct odd words. */
#define CODE_BASE 0x00200000u
#define RAM_BASE 0x28200000u
#define MEM_SIZE 0x2000u

/* The register file every case starts from. */
#define PC 0x00200100u
#define SP 0x28200200u
#define LR 0x00200301u
#define R2 0x28200100u
#define R3 0x20u
#define R4 0x00200201u
#define R5 0xFFFFFFF9u

typedef enum {
    W_FALL, /* pc + size */
    W_PC,   /* pc + arg */
    W_ABS,  /* arg */
    W_EXC,  /* arg, flagged as an exception/secure return */
    W_LOAD, /* the word at arg, bit 0 cleared */
    W_TBB,  /* pc + 4 + 2 * the byte at arg */
    W_TBH,  /* pc + 4 + 2 * the halfword at arg */
    W_COND, /* B<c> .+20 / .+0x1000: checked against every flag combination */
} want_t;

typedef struct {
    const char *as; /* assembler source; ';' separates lines */
    uint16_t hw1, hw2;
    want_t want;
    uint32_t arg;
} tcase_t;

static const tcase_t cases[] = {
    {"nop", 0xbf00, 0, W_FALL, 0},
    {"adds r0, r1, r2", 0x1888, 0, W_FALL, 0},
    {"b.n .+20", 0xe008, 0, W_PC, 20},
    {"b.n .-200", 0xe79a, 0, W_PC, -200},
    {"b.n .+2050", 0xe3ff, 0, W_PC, 2050},
    {"b.n .-2044", 0xe400, 0, W_PC, -2044},
    {"bx lr", 0x4770, 0, W_ABS, 0x00200300},
    {"blx r4", 0x47a0, 0, W_ABS, 0x00200200},
    {"bx r5", 0x4728, 0, W_EXC, 0xFFFFFFF9},
    {"cbz r0, .+20", 0xb140, 0, W_PC, 20},
    {"cbz r1, .+20", 0xb141, 0, W_FALL, 0},
    {"cbnz r1, .+130", 0xbbf9, 0, W_PC, 130},
    {"cbnz r0, .+4", 0xb900, 0, W_FALL, 0},
    {"pop {pc}", 0xbd00, 0, W_LOAD, SP},
    {"pop {r4-r7, pc}", 0xbdf0, 0, W_LOAD, SP + 16},
    {"mov pc, r4", 0x46a7, 0, W_ABS, 0x00200200},
    {"add pc, r3", 0x449f, 0, W_ABS, PC + 4 + R3},
    {"mov r8, pc", 0x46f8, 0, W_FALL, 0},
    {"cmp r4, r8", 0x4544, 0, W_FALL, 0},
    {"svc #1", 0xdf01, 0, W_FALL, 0},
    {"udf #0", 0xde00, 0, W_FALL, 0},
    {"bkpt #0", 0xbe00, 0, W_FALL, 0},
    {"it eq; nopeq", 0xbf08, 0, W_FALL, 0},
    {"b.w .+0x1000", 0xf000, 0xbffe, W_PC, 0x1000},
    {"b.w .+0x1000002", 0xf3ff, 0x97ff, W_PC, 0x1000002},
    {"b.w .-0xFFFFFC", 0xf400, 0x9000, W_PC, -0xFFFFFC},
    {"bl .+0x2000", 0xf001, 0xfffe, W_PC, 0x2000},
    {"bl .-0x2000", 0xf7fd, 0xfffe, W_PC, -0x2000},
    {"bl .+0x1000002", 0xf3ff, 0xd7ff, W_PC, 0x1000002},
    {"bne.w .-0xFFFFC", 0xf440, 0x8000, W_PC, -0xFFFFC},
    {"bne.w .+0x100002", 0xf07f, 0xafff, W_PC, 0x100002},
    {"ldr.w pc, [sp], #4", 0xf85d, 0xfb04, W_LOAD, SP},
    {"ldr.w pc, [r2, #-8]", 0xf852, 0xfc08, W_LOAD, R2 - 8},
    {"ldr.w pc, [r2, #8]!", 0xf852, 0xff08, W_LOAD, R2 + 8},
    {"ldr.w pc, [r2, #0x100]", 0xf8d2, 0xf100, W_LOAD, R2 + 0x100},
    {"ldr.w pc, [r2, r3, lsl #2]", 0xf852, 0xf023, W_LOAD, R2 + (R3 << 2)},
    {"ldr.w pc, [pc, #12]", 0xf8df, 0xf00c, W_LOAD, PC + 4 + 12},
    {"ldr.w pc, [pc, #-4]", 0xf85f, 0xf004, W_LOAD, PC + 4 - 4},
    {"pop.w {r4, r5, pc}", 0xe8bd, 0x8030, W_LOAD, SP + 8},
    {"ldm.w r2, {r0, r1, pc}", 0xe892, 0x8003, W_LOAD, R2 + 8},
    {"ldmdb r2, {r0, r1, pc}", 0xe912, 0x8003, W_LOAD, R2 - 4},
    {"tbb [r2, r3]", 0xe8d2, 0xf003, W_TBB, R2 + R3},
    {"tbh [r2, r3, lsl #1]", 0xe8d2, 0xf013, W_TBH, R2 + 2 * R3},
    {"tbb [pc, r3]", 0xe8df, 0xf003, W_TBB, PC + 4 + R3},
    {"ldr.w r0, [r1]", 0xf8d1, 0x0000, W_FALL, 0},
    {"mrs r0, apsr", 0xf3ef, 0x8000, W_FALL, 0},
    {"msr apsr_nzcvq, r0", 0xf380, 0x8800, W_FALL, 0},
    {"dsb sy", 0xf3bf, 0x8f4f, W_FALL, 0},
    {"ldm.w r2, {r0, r1}", 0xe892, 0x0003, W_FALL, 0},
    {"ldr.w r0, [pc, #8]", 0xf8df, 0x0008, W_FALL, 0},
    {"beq.n .+20", 0xd008, 0, W_COND, 0},
    {"bne.n .+20", 0xd108, 0, W_COND, 0},
    {"bcs.n .+20", 0xd208, 0, W_COND, 0},
    {"bcc.n .+20", 0xd308, 0, W_COND, 0},
    {"bmi.n .+20", 0xd408, 0, W_COND, 0},
    {"bpl.n .+20", 0xd508, 0, W_COND, 0},
    {"bvs.n .+20", 0xd608, 0, W_COND, 0},
    {"bvc.n .+20", 0xd708, 0, W_COND, 0},
    {"bhi.n .+20", 0xd808, 0, W_COND, 0},
    {"bls.n .+20", 0xd908, 0, W_COND, 0},
    {"bge.n .+20", 0xda08, 0, W_COND, 0},
    {"blt.n .+20", 0xdb08, 0, W_COND, 0},
    {"bgt.n .+20", 0xdc08, 0, W_COND, 0},
    {"ble.n .+20", 0xdd08, 0, W_COND, 0},
    {"beq.w .+0x1000", 0xf000, 0x87fe, W_COND, 0},
    {"bne.w .+0x1000", 0xf040, 0x87fe, W_COND, 0},
    {"bcs.w .+0x1000", 0xf080, 0x87fe, W_COND, 0},
    {"bcc.w .+0x1000", 0xf0c0, 0x87fe, W_COND, 0},
    {"bmi.w .+0x1000", 0xf100, 0x87fe, W_COND, 0},
    {"bpl.w .+0x1000", 0xf140, 0x87fe, W_COND, 0},
    {"bvs.w .+0x1000", 0xf180, 0x87fe, W_COND, 0},
    {"bvc.w .+0x1000", 0xf1c0, 0x87fe, W_COND, 0},
    {"bhi.w .+0x1000", 0xf200, 0x87fe, W_COND, 0},
    {"bls.w .+0x1000", 0xf240, 0x87fe, W_COND, 0},
    {"bge.w .+0x1000", 0xf280, 0x87fe, W_COND, 0},
    {"blt.w .+0x1000", 0xf2c0, 0x87fe, W_COND, 0},
    {"bgt.w .+0x1000", 0xf300, 0x87fe, W_COND, 0},
    {"ble.w .+0x1000", 0xf340, 0x87fe, W_COND, 0},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

typedef struct {
    uint8_t code[MEM_SIZE];
    uint8_t ram[MEM_SIZE];
    int reads;
} mem_t;

static mem_t mem;

static uint8_t *mem_at(uint32_t addr, uint32_t len)
{
    if (addr >= CODE_BASE && addr - CODE_BASE <= MEM_SIZE - len)
        return mem.code + (addr - CODE_BASE);
    if (addr >= RAM_BASE && addr - RAM_BASE <= MEM_SIZE - len)
        return mem.ram + (addr - RAM_BASE);
    return NULL;
}

static kerr_t mem_read(void *ctx, uint32_t addr, uint8_t *out, uint32_t len)
{
    (void)ctx;
    assert_true(len == 1 || len == 2 || len == 4);
    uint8_t *p = mem_at(addr, len);
    if (!p)
        return KERR_RANGE;
    mem.reads++;
    memcpy(out, p, len);
    return KERR_OK;
}

static void mem_fill(void)
{
    for (uint32_t i = 0; i < MEM_SIZE; i += 4) {
        poke32(mem.code + i, 0x00208001u + 2u * i);
        poke32(mem.ram + i, 0x00209001u + 6u * i);
    }
}

static void place(uint32_t pc, uint16_t hw1, uint16_t hw2)
{
    uint8_t *p = mem_at(pc, 2);
    assert_non_null(p);
    poke16(p, hw1);
    if (thumb_is_32bit(hw1)) {
        p = mem_at(pc + 2, 2);
        assert_non_null(p);
        poke16(p, hw2);
    }
}

static thumb_state_t base_state(void)
{
    thumb_state_t st;
    memset(&st, 0, sizeof(st));
    st.r[0] = 0;
    st.r[1] = 1;
    st.r[2] = R2;
    st.r[3] = R3;
    st.r[4] = R4;
    st.r[5] = R5;
    for (unsigned i = 6; i < 13; i++)
        st.r[i] = 0x1000u * i;
    st.r[13] = SP;
    st.r[14] = LR;
    st.r[15] = PC;
    st.xpsr = 0x01000000u; /* T bit, flags clear, no IT */
    st.xpsr_valid = true;
    return st;
}

static uint32_t rd32(uint32_t a)
{
    uint8_t *p = mem_at(a, 4);
    assert_non_null(p);
    return peek32(p);
}

/* The expected single successor of case c from state st (not W_COND). */
static uint32_t expect(const tcase_t *c, unsigned size)
{
    uint8_t *p;
    switch (c->want) {
    case W_FALL: return PC + size;
    case W_PC: return PC + c->arg;
    case W_ABS: case W_EXC: return c->arg;
    case W_LOAD: return rd32(c->arg) & ~1u;
    case W_TBB: p = mem_at(c->arg, 1); assert_non_null(p); return PC + 4 + 2u * p[0];
    case W_TBH: p = mem_at(c->arg, 2); assert_non_null(p); return PC + 4 + 2u * (p[0] | p[1] << 8);
    default: fail(); return 0;
    }
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const tcase_t *c = &cases[i];
        if (c->want == W_COND)
            continue;
        mem_fill();
        place(PC, c->hw1, c->hw2);
        thumb_state_t st = base_state();
        thumb_next_t nx;
        kerr_t err = thumb_next_pc(&st, mem_read, NULL, &nx);
        unsigned size = c->hw2 || thumb_is_32bit(c->hw1) ? 4u : 2u;
        uint32_t want = expect(c, size);
        if (err != KERR_OK || nx.count != 1 || nx.pc[0] != want || nx.size != size ||
            nx.exc_return != (c->want == W_EXC))
            fail_msg("%s: err %d count %u pc 0x%08x size %u exc %d; want pc 0x%08x size %u",
                     c->as, err, nx.count, nx.pc[0], nx.size, nx.exc_return, want, size);
    }
}

/* The ARM ARM's condition table, written out independently of the decoder's bit tricks. */
static bool ref_cond(const char *cc, uint32_t flags)
{
    bool n = flags & 8, z = flags & 4, c = flags & 2, v = flags & 1;
    static const char *names[] = {"eq", "ne", "cs", "cc", "mi", "pl", "vs",
                                  "vc", "hi", "ls", "ge", "lt", "gt", "le"};
    bool r[] = {z, !z, c, !c, n, !n, v, !v, c && !z, !c || z, n == v, n != v, !z && n == v,
                z || n != v};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(cc, names[i]) == 0)
            return r[i];
    fail_msg("unknown condition %s", cc);
    return false;
}

/* Every B<c> (T1 and T3) with all 16 NZCV combinations: taken exactly when the table says. */
static void test_conditional_branches(void **state)
{
    (void)state;
    int checked = 0, taken = 0;
    for (size_t i = 0; i < NCASES; i++) {
        const tcase_t *c = &cases[i];
        if (c->want != W_COND)
            continue;
        char cc[3] = {c->as[1], c->as[2], 0};
        bool wide = strstr(c->as, ".w") != NULL;
        uint32_t target = PC + (wide ? 0x1000u : 20u), fall = PC + (wide ? 4u : 2u);
        mem_fill();
        place(PC, c->hw1, c->hw2);
        for (uint32_t flags = 0; flags < 16; flags++) {
            thumb_state_t st = base_state();
            st.xpsr |= flags << 28;
            thumb_next_t nx;
            assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_OK);
            bool t = ref_cond(cc, flags);
            assert_int_equal(thumb_cond_pass((c->hw1 >> (wide ? 6 : 8)) & 0xFu, st.xpsr), t);
            assert_int_equal(nx.count, 1);
            if (nx.pc[0] != (t ? target : fall))
                fail_msg("%s flags %x: got 0x%08x", c->as, flags, nx.pc[0]);
            checked++;
            taken += t;
        }
        /* Flags unknown: both outcomes, the target first. */
        thumb_state_t st = base_state();
        st.xpsr_valid = false;
        thumb_next_t nx;
        assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_OK);
        assert_int_equal(nx.count, 2);
        assert_int_equal(nx.pc[0], target);
        assert_int_equal(nx.pc[1], fall);
    }
    assert_int_equal(checked, 28 * 16);
    assert_int_equal(taken, 28 * 8); /* each condition holds for exactly half the flag sets */
}

static const tcase_t *find(const char *as)
{
    for (size_t i = 0; i < NCASES; i++)
        if (strcmp(cases[i].as, as) == 0)
            return &cases[i];
    fail_msg("no case %s", as);
    return NULL;
}

/* ITSTATE (IT[7:0]) into xpsr: IT[1:0] at bits 26:25, IT[7:2] at bits 15:10. */
static uint32_t it_xpsr(uint8_t it, uint32_t nzcv)
{
    return 0x01000000u | nzcv << 28 | (uint32_t)(it & 3u) << 25 | (uint32_t)(it >> 2) << 10;
}

static thumb_next_t step(const char *as, uint32_t xpsr, bool valid, kerr_t want_err)
{
    const tcase_t *c = find(as);
    mem_fill();
    place(PC, c->hw1, c->hw2);
    thumb_state_t st = base_state();
    st.xpsr = xpsr;
    st.xpsr_valid = valid;
    thumb_next_t nx;
    memset(&nx, 0, sizeof(nx));
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), want_err);
    return nx;
}

static void test_it_blocks(void **state)
{
    (void)state;
    /* it eq (IT = 0x08): taken with Z set, skipped without. Same for ne (0x18) inverted. */
    static const char *under_it[] = {"b.w .+0x1000", "bl .+0x2000", "bx lr", "mov pc, r4",
                                     "add pc, r3", "b.n .+20", "pop {pc}", "ldr.w pc, [sp], #4",
                                     "pop.w {r4, r5, pc}", "tbb [r2, r3]", "ldmdb r2, {r0, r1, pc}"};
    for (size_t i = 0; i < sizeof(under_it) / sizeof(under_it[0]); i++) {
        const tcase_t *c = find(under_it[i]);
        unsigned size = thumb_is_32bit(c->hw1) ? 4u : 2u;
        uint32_t taken_pc = expect(c, size);
        assert_int_not_equal(taken_pc, PC + size);
        thumb_next_t nx = step(c->as, it_xpsr(0x08, 4 /* Z */), true, KERR_OK);
        assert_int_equal(nx.pc[0], taken_pc);
        nx = step(c->as, it_xpsr(0x08, 0), true, KERR_OK);
        assert_int_equal(nx.count, 1);
        assert_int_equal(nx.pc[0], PC + size);
        nx = step(c->as, it_xpsr(0x18, 0), true, KERR_OK);
        assert_int_equal(nx.pc[0], taken_pc);
        /* Later slots of a block: ITTE GT (IT = 0xC6) at its third instruction is IT = 0xD8
         * (LE): taken when Z is set. */
        nx = step(c->as, it_xpsr(0xD8, 4), true, KERR_OK);
        assert_int_equal(nx.pc[0], taken_pc);
        nx = step(c->as, it_xpsr(0xC6, 4), true, KERR_OK); /* first slot: GT fails with Z */
        assert_int_equal(nx.pc[0], PC + size);
    }
    /* A skipped load into pc does not read memory at all (sp may point anywhere). */
    const tcase_t *c = find("pop {pc}");
    mem_fill();
    place(PC, c->hw1, 0);
    thumb_state_t st = base_state();
    st.r[13] = 0x40000000u;
    st.xpsr = it_xpsr(0x08, 0);
    thumb_next_t nx;
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_OK);
    assert_int_equal(nx.pc[0], PC + 2);
    st.xpsr = it_xpsr(0x08, 4);
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_RANGE);
    /* CBZ ignores ITSTATE (it cannot be in an IT block): the register decides. */
    nx = step("cbz r0, .+20", it_xpsr(0x08, 0), true, KERR_OK);
    assert_int_equal(nx.pc[0], PC + 20);
}

static void test_unknown_flags_and_returns(void **state)
{
    (void)state;
    /* Unknown xpsr: an instruction that branches may be under an IT block, so both. */
    thumb_next_t nx = step("b.n .+20", 0, false, KERR_OK);
    assert_int_equal(nx.count, 2);
    assert_int_equal(nx.pc[0], PC + 20);
    assert_int_equal(nx.pc[1], PC + 2);
    nx = step("nop", 0, false, KERR_OK);
    assert_int_equal(nx.count, 1);
    nx = step("cbnz r1, .+130", 0, false, KERR_OK);
    assert_int_equal(nx.count, 1);
    assert_int_equal(nx.pc[0], PC + 130);
    /* pop {pc} of an EXC_RETURN (returning from an app handler): flagged, value kept. */
    const tcase_t *c = find("pop {pc}");
    mem_fill();
    place(PC, c->hw1, 0);
    poke32(mem_at(SP, 4), 0xFFFFFFFDu);
    thumb_state_t st = base_state();
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_OK);
    assert_true(nx.exc_return);
    assert_int_equal(nx.pc[0], 0xFFFFFFFDu);
    /* bx to FNC_RETURN, as after a secure call: flagged too. */
    c = find("bx r5");
    place(PC, c->hw1, 0);
    st.r[5] = 0xFEFFFFFFu;
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_OK);
    assert_true(nx.exc_return);
    st.r[5] = 0x00200401u; /* a plain address is not */
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_OK);
    assert_false(nx.exc_return);
    assert_int_equal(nx.pc[0], 0x00200400u);
}

static void test_errors(void **state)
{
    (void)state;
    thumb_state_t st = base_state();
    thumb_next_t nx;
    mem_fill();
    st.r[15] = PC + 1;
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_INVAL);
    st.r[15] = PC;
    assert_int_equal(thumb_next_pc(NULL, mem_read, NULL, &nx), KERR_INVAL);
    assert_int_equal(thumb_next_pc(&st, NULL, NULL, &nx), KERR_INVAL);
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, NULL), KERR_INVAL);
    st.r[15] = 0x10000000u; /* not app memory */
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_RANGE);
    /* A 32-bit instruction whose second halfword lies past the end of app memory. */
    uint32_t last = CODE_BASE + MEM_SIZE - 2;
    poke16(mem_at(last, 2), 0xF000);
    st.r[15] = last;
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_RANGE);
    /* tbh with a table outside app memory */
    const tcase_t *c = find("tbh [r2, r3, lsl #1]");
    place(PC, c->hw1, c->hw2);
    st.r[15] = PC;
    st.r[2] = 0x30000000u;
    assert_int_equal(thumb_next_pc(&st, mem_read, NULL, &nx), KERR_RANGE);
}

/* Random halfword pairs at random pcs: the decoder must never read outside what it reports,
 * never crash, and give 1 or 2 even successors (or an exception-return value). */
static void test_random_encodings(void **state)
{
    (void)state;
    uint32_t s = 0xD1CEu;
    mem_fill();
    for (int i = 0; i < 100000; i++) {
        uint32_t pc = CODE_BASE + ((xs32(&s) % (MEM_SIZE / 2)) & ~1u);
        uint16_t hw1 = (uint16_t)xs32(&s), hw2 = (uint16_t)xs32(&s);
        place(pc, hw1, pc + 2 < CODE_BASE + MEM_SIZE ? hw2 : 0);
        thumb_state_t st = base_state();
        for (unsigned r = 0; r < 13; r++)
            st.r[r] = (xs32(&s) & 1u) ? xs32(&s) : RAM_BASE + (xs32(&s) % MEM_SIZE);
        st.r[15] = pc;
        st.xpsr = xs32(&s);
        st.xpsr_valid = xs32(&s) & 1u;
        thumb_next_t nx;
        kerr_t err = thumb_next_pc(&st, mem_read, NULL, &nx);
        if (err != KERR_OK) {
            assert_int_equal(err, KERR_RANGE);
            continue;
        }
        assert_true(nx.count == 1 || nx.count == 2);
        assert_true(nx.size == (thumb_is_32bit(hw1) ? 4 : 2));
        for (unsigned k = 0; k < nx.count; k++)
            assert_true((nx.pc[k] & 1u) == 0 || (k == 0 && nx.exc_return));
        if (nx.count == 2)
            assert_int_equal(nx.pc[1], pc + nx.size);
    }
}

/* ---- the QEMU oracle ------------------------------------------------------------------ */

static const char *trace_path;

#define TRACE_MAX 1024

typedef struct {
    uint32_t r[17]; /* r0-r12, sp, lr, pc, xpsr */
    uint8_t stack[32];
} step_t;

static struct {
    uint32_t base;
    uint8_t code[4096];
    uint32_t code_len;
    step_t steps[TRACE_MAX];
    int n;
    const step_t *cur; /* the step being decoded: its stack window is readable */
} trace;

static bool unhex_into(const char *h, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = strlen(h);
    if (n % 2 || n / 2 > cap)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    *out_len = n / 2;
    return true;
}

static void load_trace(void)
{
    FILE *f = fopen(trace_path, "r");
    assert_non_null(f);
    static char line[16384];
    trace.n = 0;
    trace.code_len = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == 'C') {
            char hex[10000];
            size_t len;
            assert_int_equal(sscanf(line, "C %x %9999s", &trace.base, hex), 2);
            assert_true(unhex_into(hex, trace.code, sizeof(trace.code), &len));
            trace.code_len = (uint32_t)len;
        } else if (line[0] == 'S') {
            assert_true(trace.n < TRACE_MAX);
            step_t *st = &trace.steps[trace.n++];
            char *p = line + 1;
            for (int k = 0; k < 17; k++)
                st->r[k] = (uint32_t)strtoul(p, &p, 16);
            while (*p == ' ')
                p++;
            size_t len;
            assert_true(unhex_into(p, st->stack, sizeof(st->stack), &len));
            assert_int_equal(len, 32);
        }
    }
    fclose(f);
    assert_true(trace.code_len > 0 && trace.n > 100);
}

static kerr_t trace_read(void *ctx, uint32_t addr, uint8_t *out, uint32_t len)
{
    (void)ctx;
    uint32_t sp = trace.cur->r[13];
    if (addr >= trace.base && addr - trace.base < trace.code_len && len <= trace.code_len - (addr - trace.base)) {
        memcpy(out, trace.code + (addr - trace.base), len);
        return KERR_OK;
    }
    if (addr >= sp && addr - sp < 32 && len <= 32 - (addr - sp)) {
        memcpy(out, trace.cur->stack + (addr - sp), len);
        return KERR_OK;
    }
    return KERR_RANGE;
}

static void test_qemu_oracle(void **state)
{
    (void)state;
    if (!trace_path)
        fail_msg("no trace given");
    load_trace();
    int taken = 0, in_it = 0, skipped_in_it = 0;
    for (int i = 0; i + 1 < trace.n; i++) {
        const step_t *s = &trace.steps[i];
        trace.cur = s;
        thumb_state_t st;
        memcpy(st.r, s->r, sizeof(st.r));
        st.xpsr = s->r[16];
        st.xpsr_valid = true;
        thumb_next_t nx;
        kerr_t err = thumb_next_pc(&st, trace_read, NULL, &nx);
        uint32_t actual = trace.steps[i + 1].r[15];
        if (err != KERR_OK || nx.count != 1 || nx.pc[0] != actual)
            fail_msg("step %d at 0x%08x (xpsr 0x%08x): err %d, decoder says 0x%08x (count %u), QEMU went to 0x%08x",
                     i, s->r[15], st.xpsr, err, nx.pc[0], nx.count, actual);
        bool it = (st.xpsr & 0x0600FC00u) != 0;
        taken += actual != s->r[15] + nx.size;
        in_it += it;
        skipped_in_it += it && actual == s->r[15] + nx.size;
    }
    print_message("oracle: %d steps, %d changed flow, %d under IT (%d of those skipped)\n",
                  trace.n - 1, taken, in_it, skipped_in_it);
    assert_true(taken > 120 && in_it > 10 && skipped_in_it > 3);
}

/* ---- the table against the real assembler -------------------------------------------- */

static const char *as_path, *objcopy_path, *tmp_dir;

static void test_encodings_match_assembler(void **state)
{
    (void)state;
    if (!as_path) {
        print_message("arm-none-eabi-as not given: encodings not re-checked\n");
        skip();
    }
    char src[256], obj[256], bin[256], cmd[2048];
    snprintf(src, sizeof(src), "%s/thumb_cases.s", tmp_dir);
    snprintf(obj, sizeof(obj), "%s/thumb_cases.o", tmp_dir);
    snprintf(bin, sizeof(bin), "%s/thumb_cases.bin", tmp_dir);
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    /* each case in its own 8-byte slot: relative branches (".+N") do not depend on where */
    fputs(".syntax unified\n.thumb\n", f);
    for (size_t i = 0; i < NCASES; i++) {
        fputs(".balign 8\n", f);
        for (const char *p = cases[i].as; *p; p++)
            fputc(*p == ';' ? '\n' : *p, f);
        fputc('\n', f);
    }
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' -mcpu=cortex-m33 -mthumb -o '%s' '%s' && '%s' -O binary -j .text '%s' '%s'",
             as_path, obj, src, objcopy_path, obj, bin);
    assert_int_equal(system(cmd), 0);
    f = fopen(bin, "rb");
    assert_non_null(f);
    static uint8_t b[8 * 256];
    size_t n = fread(b, 1, sizeof(b), f);
    fclose(f);
    assert_true(n >= 8 * (NCASES - 1) + 2);
    for (size_t i = 0; i < NCASES; i++) {
        uint16_t hw1 = (uint16_t)(b[8 * i] | b[8 * i + 1] << 8);
        uint16_t hw2 = thumb_is_32bit(hw1) ? (uint16_t)(b[8 * i + 2] | b[8 * i + 3] << 8) : 0;
        if (hw1 != cases[i].hw1 || hw2 != cases[i].hw2)
            fail_msg("'%s' assembles to %04x %04x, the table says %04x %04x", cases[i].as, hw1,
                     hw2, cases[i].hw1, cases[i].hw2);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 5) {
        fprintf(stderr, "usage: %s QEMU_TRACE [ARM_AS ARM_OBJCOPY TMPDIR]\n", argv[0]);
        return 2;
    }
    trace_path = argv[1];
    if (argc == 5) {
        as_path = argv[2];
        objcopy_path = argv[3];
        tmp_dir = argv[4];
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encodings_match_assembler),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_conditional_branches),
        cmocka_unit_test(test_it_blocks),
        cmocka_unit_test(test_unknown_flags_and_returns),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_random_encodings),
        cmocka_unit_test(test_qemu_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Control flow for the Thumb-2 decoder's oracle test: every form test_thumb decodes, each
 * taken and not taken, run on QEMU mps2-an505 (secure state, from reset) and single-stepped
 * by gdb-multiarch; the recorded next pc of every step is what the decoder must predict.
 * Each branch skips a nop, so taken and not taken land on different addresses.
 *
 * Recorded into test_thumb_qemu_trace.log (C: code image, S: one step) with:
 *   arm-none-eabi-gcc -mcpu=cortex-m33 -mthumb -nostdlib -nostartfiles -Wl,-Ttext=0x10000000 \
 *       test_thumb_trace.S -o trace.elf
 *   qemu-system-arm -M mps2-an505 -display none -monitor none -serial null -kernel trace.elf \
 *       -gdb tcp:127.0.0.1:PORT -S
 *   gdb-multiarch -batch: file trace.elf, target remote, then a Python loop that writes
 *       "S r0..r12 sp lr pc xpsr <32 bytes at sp>" and does stepi until pc = done.
 * QEMU 7.2 (Debian 1:7.2+dfsg-7+deb12u18+b3), gdb-multiarch 13.1-3, binutils 2.40-2+18+b1.
 */
    .syntax unified
    .thumb
    .text
vectors:
    .word 0x38001000
    .word start + 1

    .macro cb c
    b\c\().n 91f
    nop
91:
    b\c\().w 92f
    nop
92:
    .endm

    .macro conds flags
    ldr r0, =\flags
    msr APSR_nzcvq, r0
    cb eq
    cb ne
    cb cs
    cb cc
    cb mi
    cb pl
    cb vs
    cb vc
    cb hi
    cb ls
    cb ge
    cb lt
    cb gt
    cb le
    .endm

    .global start
    .thumb_func
start:
    conds 0x00000000
    conds 0x40000000
    conds 0x80000000
    conds 0x20000000
    conds 0x10000000
    conds 0x90000000
    conds 0x60000000
    conds 0xF0000000

    /* IT blocks: a branch or a load into pc as the last instruction, condition true and false */
    ldr r0, =0x40000000         /* Z */
    msr APSR_nzcvq, r0
    it eq
    beq.w 1f
    nop
1:  it ne
    bne.w 1f
    nop
1:  ite eq
    moveq r1, #1
    movne r1, #2
    itte ne
    movne r1, #3
    movne r1, #4
    beq.n 1f
    nop
1:  ittt eq
    moveq r1, #5
    moveq r1, #6
    beq.w 1f
    nop
1:  adr r0, ret1 + 1
    push {r0}
    it ne
    popne {pc}
    pop {r0}
    push {r0}
    it eq
    popeq {pc}
    nop
ret1:
    adr r4, ret2 + 1
    it ne
    movne pc, r4
    it eq
    bxeq r4
    nop
ret2:

    /* calls and returns */
    bl func_pop
    bl func_bx
    adr r4, func_bx + 1
    blx r4
    bl func_ldr_post
    bl func_ldm

    /* loads into pc */
    ldr.w pc, lit1
    nop
    .balign 4
lit1: .word after_lit1 + 1
after_lit1:
    adr r2, table_addr
    ldr.w pc, [r2, #4]
    nop
t1:
    movs r3, #2
    ldr.w pc, [r2, r3, lsl #2]
    nop
t2:
    adds r2, r2, #16
    ldr.w pc, [r2, #-4]!
    nop
t3:
    adr r2, table_ldm
    ldm.w r2, {r0, r1, pc}
    nop
t4:
    adr r2, table_end
    ldmdb r2, {r0, r1, pc}
    nop
t5:
    /* mov/add pc */
    adr r4, t6 + 1
    mov pc, r4
    nop
t6:
    movs r3, #4
    add pc, r3
    nop
    nop
    nop
    nop
    /* cbz / cbnz both ways */
    movs r0, #0
    movs r1, #1
    cbz r0, 1f
    nop
1:  cbz r1, 1f
    nop
1:  cbnz r1, 1f
    nop
1:  cbnz r0, 1f
    nop
1:
    /* table branches */
    movs r3, #0
    tbb [pc, r3]
tbb1:
    .byte (c0 - tbb1) / 2, (c1 - tbb1) / 2
    .balign 2
c1: nop
c0: movs r3, #1
    tbb [pc, r3]
tbb2:
    .byte (d0 - tbb2) / 2, (d1 - tbb2) / 2
    .balign 2
d0: nop
d1: movs r3, #1
    tbh [pc, r3, lsl #1]
tbh1:
    .hword (e0 - tbh1) / 2, (e1 - tbh1) / 2
e0: nop
e1: adr r2, tbh1
    movs r3, #0
    tbh [r2, r3, lsl #1]
    nop
    /* a skipped table branch and a skipped load */
    ldr r0, =0x00000000
    msr APSR_nzcvq, r0
    it eq
    tbbeq [r2, r3]
    it eq
    ldreq.w pc, [sp], #4
    /* 32-bit non-branches fall through */
    ldr.w r0, [r2]
    mrs r0, apsr
    dsb sy
    b.w done
    nop

func_pop:
    push {r4-r7, lr}
    movs r4, #1
    pop {r4-r7, pc}
func_bx:
    bx lr
func_ldr_post:
    push {lr}
    ldr.w pc, [sp], #4
func_ldm:
    push.w {r4, r5, lr}
    pop.w {r4, r5, pc}

    .balign 4
table_addr:
    .word t1 + 1, t1 + 1, t2 + 1, t3 + 1
table_ldm:
    .word 0, 0, t4 + 1
    .word 0, 0, t5 + 1
table_end:

done:
    b done
    .ltorg

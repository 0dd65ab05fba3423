/*
 * The program gdb-multiarch debugs in unit.rsp.gdb (through the RSP engine, on QEMU): five
 * nested calls with locals, a global and an array, forever. Bare metal, secure state from
 * reset, no startup code: the vector table is the first thing at 0x10000000 and the data
 * is loaded in place by QEMU at 0x38000000 (built with -fno-zero-initialized-in-bss).
 */
#include <stdint.h>

void reset(void);

__attribute__((section(".vectors"), used)) static const uintptr_t vectors[2] = {
    0x38010000u, /* initial sp: top of the app's 64 KiB of RAM */
    (uintptr_t)reset,
};

volatile uint32_t counter = 0;
uint32_t table[16] = {0};

__attribute__((noinline)) static int level5(int x)
{
    int local5 = x * 3;
    counter += (uint32_t)local5;
    return local5 + 1;
}

__attribute__((noinline)) static int level4(int x)
{
    int local4 = x + 4;
    return level5(local4) + 1;
}

__attribute__((noinline)) static int level3(int x)
{
    int local3 = x + 3;
    return level4(local3) + 1;
}

__attribute__((noinline)) static int level2(int x)
{
    int local2 = x + 2;
    return level3(local2) + 1;
}

__attribute__((noinline)) static int level1(int x)
{
    int local1 = x + 1;
    int r = level2(local1);
    return r + 1;
}

void reset(void)
{
    for (uint32_t round = 0;; round++) {
        int r = level1((int)(counter & 7u));
        table[round & 15u] = (uint32_t)r;
    }
}

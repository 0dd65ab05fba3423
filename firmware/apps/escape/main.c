/*
 * escape: an app that tries to get out of the emulated chip (tests/net/net.sh escape-*). Asks for
 * a mode on UART0, then makes that one attempt:
 *
 *   semi-open-store   semihosting SYS_OPEN of the device's store file ("store.bin", QEMU's cwd)
 *   semi-open-host    semihosting SYS_OPEN for writing of a new host file (relative and absolute)
 *   semi-system       semihosting SYS_SYSTEM: a host command that would create a file
 *   semi-exit         semihosting SYS_EXIT_EXTENDED: end QEMU
 *   store-read        read the persistent store (PSRAM, 0x80000000)
 *   store-write       write it
 *   store-alias       read and write 0x90000000 (the IDAU's secure alias range of that RAM)
 *   dma               program DMA controller 0 (PL081) to copy from the store into app RAM,
 *                     through its NS alias (ignored: Secure) and its secure alias (faults)
 *
 * QEMU serves semihosting only to privileged code, so the calls are made from the SVC handler
 * (NS handler mode: privileged), the way a real attacker would. Every attempt must end with the
 * microvisor stopping and reporting the app; if one returns, escape says so with "(FAIL)".
 */
#include <stdint.h>
#include <string.h>

#include "console.h"
#include "keel.h"

#define ESCAPE_PROMPT_US 3000000u
#define ADDR_STORE 0x80000000u
#define ADDR_STORE_ALIAS 0x90000000u
#define ADDR_DMA0 0x40110000u /* PL081 DMA0, NS alias (its registers stay Secure) */
#define ADDR_APP_RAM 0x28270000u

#define SYS_OPEN 0x01u
#define SYS_SYSTEM 0x12u
#define SYS_EXIT_EXTENDED 0x20u

/* The semihosting call the SVC handler makes. */
static volatile uint32_t semi_op;
static const void *volatile semi_arg;
static volatile int32_t semi_ret;

void SVC_Handler(void)
{
    register uint32_t r0 __asm__("r0") = semi_op;
    register const void *r1 __asm__("r1") = semi_arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    semi_ret = (int32_t)r0;
}

static void fail_returned(const char *what, uint32_t v)
{
    console_puts("escape: ");
    console_puts(what);
    console_puts(" returned ");
    console_put_hex(v);
    console_puts(" (FAIL)\n");
}

static void semihost(const char *what, uint32_t op, const void *arg)
{
    semi_op = op;
    semi_arg = arg;
    semi_ret = 0x7FFFFFFF;
    __asm__ volatile("svc #0" ::: "memory");
    fail_returned(what, (uint32_t)semi_ret);
}

static void semi_open(const char *path, uint32_t mode)
{
    uint32_t blk[3] = {(uint32_t)(uintptr_t)path, mode, (uint32_t)strlen(path)};
    semihost(path, SYS_OPEN, blk);
}

static int mode_semi_open_store(void)
{
    semi_open("store.bin", 2u /* "r+" */);
    return 0;
}

static int mode_semi_open_host(void)
{
    semi_open("escape-created", 4u /* "w" */);
    semi_open("/tmp/keel-escape-created", 4u);
    return 0;
}

static int mode_semi_system(void)
{
    static const char cmd[] = "touch escape-system /tmp/keel-escape-system";
    uint32_t blk[2] = {(uint32_t)(uintptr_t)cmd, sizeof(cmd) - 1u};
    semihost("SYS_SYSTEM", SYS_SYSTEM, blk);
    return 0;
}

static int mode_semi_exit(void)
{
    uint32_t blk[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, 0u};
    semihost("SYS_EXIT_EXTENDED", SYS_EXIT_EXTENDED, blk);
    return 0;
}

static int mode_store_read(void)
{
    fail_returned("store read", *(volatile uint32_t *)ADDR_STORE);
    return 0;
}

static int mode_store_write(void)
{
    *(volatile uint32_t *)(ADDR_STORE + 0x1FE000u) = 0u; /* the identity page */
    fail_returned("store write", 0u);
    return 0;
}

static int mode_store_alias(void)
{
    fail_returned("store alias read", *(volatile uint32_t *)ADDR_STORE_ALIAS);
    *(volatile uint32_t *)ADDR_STORE_ALIAS = 0u;
    fail_returned("store alias write", 0u);
    return 0;
}

/* Channel 0 of a PL081 at base: copy 64 words from the store into app RAM. */
static void dma_program(uint32_t base)
{
    volatile uint32_t *dma = (volatile uint32_t *)base;
    dma[0x030 / 4] = 1u;                            /* DMACConfiguration: enable */
    dma[0x100 / 4] = ADDR_STORE;                    /* channel 0 source: the store */
    dma[0x104 / 4] = ADDR_APP_RAM;                  /* destination: app RAM */
    dma[0x10C / 4] = 64u | (1u << 26) | (1u << 27); /* 64 transfers, increment both */
    dma[0x110 / 4] = 1u;                            /* channel enable */
}

static int mode_dma(void)
{
    /* Through the NS alias: the controller is Secure (PPC), so the writes are ignored and the
     * registers read as zero; a source address read back would mean the DMA is the app's. */
    dma_program(ADDR_DMA0);
    uint32_t src = *(volatile uint32_t *)(ADDR_DMA0 + 0x100u);
    uint32_t cfg = *(volatile uint32_t *)(ADDR_DMA0 + 0x030u);
    if (src == ADDR_STORE || cfg != 0u)
        fail_returned("DMA programming (NS alias)", src);
    else
        console_puts("escape: dma: the controller ignores the app (registers read as zero)\n");
    /* Through the secure alias: a non-secure access to a secure address. */
    dma_program(ADDR_DMA0 | 0x10000000u);
    fail_returned("DMA programming (secure alias)", 0u);
    return 0;
}

struct mode {
    const char *name;
    int (*run)(void);
};

static const struct mode modes[] = {
    {"semi-open-store", mode_semi_open_store},
    {"semi-open-host", mode_semi_open_host},
    {"semi-system", mode_semi_system},
    {"semi-exit", mode_semi_exit},
    {"store-read", mode_store_read},
    {"store-write", mode_store_write},
    {"store-alias", mode_store_alias},
    {"dma", mode_dma},
};

int main(void)
{
    char line[32];
    console_init();
    console_puts("escape: mode? \n");
    if (console_read_line(line, sizeof line, ESCAPE_PROMPT_US, NULL) < 0) {
        console_puts("escape: no mode given in time\n");
        for (;;)
            __asm__ volatile("wfi");
    }
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(line, modes[i].name) == 0) {
            console_puts("escape: trying ");
            console_puts(line);
            console_puts("\n");
            modes[i].run();
            for (;;) /* every attempt returned: the app stays up, visibly failed */
                __asm__ volatile("wfi");
        }
    }
    console_puts("escape: unknown mode\n");
    for (;;)
        __asm__ volatile("wfi");
}

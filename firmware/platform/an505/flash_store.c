/*
 * The AN505 has no flash: the device's internal flash and QSPI NOR are regions of the persistent
 * store (store.h), a host file QEMU maps as the board's PSRAM. This file only moves bytes; the
 * NOR rules and power-cut injection live in core (kflash), so the device enforces exactly what
 * the host unit tests and sweeps prove.
 *
 * Power cut: boot word "powercut=N" cuts power during the N-th program/erase operation of the
 * internal flash since boot. The torn operation is in the store; the microvisor then writes the
 * power-cut record and stops dead (interrupts masked, watchdog stopped): keel sees the record,
 * ends QEMU and reports the cut, as if the supply had failed at that instant.
 */
#include <string.h>

#include "port.h"
#include "regs.h"
#include "store.h"

typedef struct mem_store {
    uint8_t *base;
    kflash_geometry_t geo;
    kflash_t dev;
    bool open;
} mem_store_t;

/* Every flash operation kicks the secure watchdog: long update work in the service (verifying a
 * staged region: ~130 page reads and hashes) makes progress one operation at a time, and each
 * operation is bounded. A microvisor stalled anywhere else still trips the watchdog. */
static kerr_t mem_read(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    mem_store_t *s = ctx;
    port_wdog_kick();
    memcpy(buf, s->base + off, len); /* kflash checked the range */
    return KERR_OK;
}

static kerr_t mem_write(void *ctx, uint32_t off, const void *buf, uint32_t len)
{
    mem_store_t *s = ctx;
    port_wdog_kick();
    memcpy(s->base + off, buf, len);
    __asm__ volatile("dsb" ::: "memory");
    return KERR_OK;
}

static const kflash_backend_t mem_backend = {mem_read, mem_write};

/* Program-once bitmap of the internal flash (16 KiB for 2 MiB in 16-byte units). */
static uint8_t iflash_used[KFLASH_BITMAP_BYTES(AN505_IFLASH_SIZE, AN505_IFLASH_UNIT)];

static mem_store_t stores[2] = {
    [PORT_FLASH_INTERNAL] = {(uint8_t *)(AN505_STORE_BASE + AN505_STORE_IFLASH_OFF),
                             {AN505_IFLASH_SIZE, AN505_IFLASH_PAGE, AN505_IFLASH_UNIT, true}},
    [PORT_FLASH_QSPI] = {(uint8_t *)(AN505_STORE_BASE + AN505_STORE_QSPI_OFF),
                         {AN505_QSPI_SIZE, AN505_QSPI_SECTOR, AN505_QSPI_UNIT, false}},
};

static volatile kboard_powercut_t *const powercut_rec =
    (volatile kboard_powercut_t *)(AN505_STORE_BASE + AN505_STORE_POWERCUT_OFF);

/* Power is gone: nothing runs any more, secure or not, until keel ends the process. */
static __attribute__((noreturn)) void power_off(void)
{
    __asm__ volatile("cpsid i\n cpsid f" ::: "memory");
    port_wdog_stop();
    for (;;)
        __asm__ volatile("wfi");
}

static void on_powercut(kflash_t *f, void *arg)
{
    (void)arg;
    static const char msg[] = "[keel] power cut (fault injection)\n";
    port_console_write(msg, sizeof(msg) - 1u);
    port_console_flush();
    powercut_rec->op = f->ops;
    __asm__ volatile("dsb" ::: "memory");
    powercut_rec->magic = KBOARD_POWERCUT_MAGIC;
    __asm__ volatile("dsb" ::: "memory");
    power_off();
}

void port_powercut_check(void)
{
    /* keel clears the record before it starts QEMU: one seen at boot means the watchdog reset
     * the chip before keel ended the process. The supply is still off. */
    if (powercut_rec->magic == KBOARD_POWERCUT_MAGIC)
        power_off();
}

kflash_t *port_flash_open(port_flash_id_t id, kerr_t *out_err)
{
    if ((unsigned)id >= 2u) {
        *out_err = KERR_INVAL;
        return NULL;
    }
    mem_store_t *s = &stores[id];
    if (s->open)
        return &s->dev;
    kerr_t err = kflash_init(&s->dev, &mem_backend, s, &s->geo,
                             id == PORT_FLASH_INTERNAL ? iflash_used : NULL,
                             id == PORT_FLASH_INTERNAL ? sizeof(iflash_used) : 0u);
    if (err != KERR_OK) {
        *out_err = err;
        return NULL;
    }
    if (id == PORT_FLASH_INTERNAL) {
        uint32_t n = port_arg_u32("powercut", 0u);
        s->dev.on_cut = on_powercut;
        if (n)
            kflash_set_powercut(&s->dev, n, n * 2654435761u);
    }
    s->open = true;
    *out_err = KERR_OK;
    return &s->dev;
}

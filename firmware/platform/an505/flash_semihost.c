/*
 * The AN505 has no flash, so the device's internal flash and QSPI NOR are host files reached
 * through semihosting (paths relative to QEMU's working directory: the device state dir).
 * This file only moves bytes; the NOR rules and power-cut injection live in core (kflash), so
 * the device enforces exactly what the host unit tests and sweeps prove.
 *
 * Power cut: boot word "powercut=N" cuts power during the N-th program/erase operation of the
 * internal flash since boot. The torn operation is written to the file, then QEMU exits with
 * status PORT_POWERCUT_EXIT, as if the supply had failed at that instant.
 */
#include <string.h>

#include "layout.h"
#include "port.h"
#include "semihost.h"

#define PORT_POWERCUT_EXIT 86

typedef struct sh_store {
    const char *path;
    kflash_geometry_t geo;
    int32_t fd;
    kflash_t dev;
    bool open;
} sh_store_t;

static kerr_t sh_seek(int32_t fd, uint32_t off)
{
    uint32_t blk[2] = {(uint32_t)fd, off};
    return semihost_call(SH_SEEK, blk) == 0 ? KERR_OK : KERR_IO;
}

/* Every flash operation kicks the secure watchdog: long update work in the service (verifying a
 * staged region: ~130 page reads and hashes) makes progress one operation at a time, and each
 * operation is bounded. A microvisor stalled anywhere else still trips the watchdog. */
static kerr_t sh_read(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    sh_store_t *s = ctx;
    port_wdog_kick();
    if (sh_seek(s->fd, off) != KERR_OK)
        return KERR_IO;
    uint32_t blk[3] = {(uint32_t)s->fd, (uint32_t)(uintptr_t)buf, len};
    return semihost_call(SH_READ, blk) == 0 ? KERR_OK : KERR_IO; /* returns bytes NOT read */
}

static kerr_t sh_write(void *ctx, uint32_t off, const void *buf, uint32_t len)
{
    sh_store_t *s = ctx;
    port_wdog_kick();
    if (sh_seek(s->fd, off) != KERR_OK)
        return KERR_IO;
    uint32_t blk[3] = {(uint32_t)s->fd, (uint32_t)(uintptr_t)buf, len};
    return semihost_call(SH_WRITE, blk) == 0 ? KERR_OK : KERR_IO;
}

static const kflash_backend_t sh_backend = {sh_read, sh_write};

/* Program-once bitmap of the internal flash (16 KiB for 2 MiB in 16-byte units). */
static uint8_t iflash_used[KFLASH_BITMAP_BYTES(AN505_IFLASH_SIZE, AN505_IFLASH_UNIT)];

static sh_store_t stores[2] = {
    [PORT_FLASH_INTERNAL] = {AN505_IFLASH_FILE,
                             {AN505_IFLASH_SIZE, AN505_IFLASH_PAGE, AN505_IFLASH_UNIT, true}},
    [PORT_FLASH_QSPI] = {AN505_QSPI_FILE, {AN505_QSPI_SIZE, AN505_QSPI_SECTOR, AN505_QSPI_UNIT, false}},
};

static int32_t sh_open(const char *path, uint32_t mode)
{
    uint32_t blk[3] = {(uint32_t)(uintptr_t)path, mode, (uint32_t)strlen(path)};
    return semihost_call(SH_OPEN, blk);
}

/* Make the file exactly as large as the device, new bytes erased (0xFF). */
static kerr_t sh_fill_to(sh_store_t *s)
{
    uint32_t blk[1] = {(uint32_t)s->fd};
    int32_t len = semihost_call(SH_FLEN, blk);
    if (len < 0)
        return KERR_IO;
    static uint8_t ff[1024];
    memset(ff, 0xFF, sizeof(ff));
    for (uint32_t off = (uint32_t)len; off < s->geo.size; off += sizeof(ff)) {
        uint32_t n = s->geo.size - off < sizeof(ff) ? s->geo.size - off : sizeof(ff);
        kerr_t err = sh_write(s, off, ff, n);
        if (err != KERR_OK)
            return err;
    }
    return KERR_OK;
}

static void on_powercut(kflash_t *f, void *arg)
{
    (void)f;
    (void)arg;
    static const char msg[] = "[keel] power cut (fault injection)\n";
    port_console_write(msg, sizeof(msg) - 1u);
    port_exit(PORT_POWERCUT_EXIT);
}

kflash_t *port_flash_open(port_flash_id_t id, kerr_t *out_err)
{
    if ((unsigned)id >= 2u) {
        *out_err = KERR_INVAL;
        return NULL;
    }
    sh_store_t *s = &stores[id];
    if (s->open)
        return &s->dev;
    s->fd = sh_open(s->path, SH_MODE_RB_PLUS);
    if (s->fd < 0)
        s->fd = sh_open(s->path, SH_MODE_WB_PLUS);
    if (s->fd < 0) {
        *out_err = KERR_IO;
        return NULL;
    }
    kerr_t err = sh_fill_to(s);
    if (err == KERR_OK)
        err = kflash_init(&s->dev, &sh_backend, s, &s->geo,
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

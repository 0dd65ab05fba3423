/*
 * Microvisor boot: partition the chip, start the secure tick and watchdog, find the installed
 * app, then hand over to the supervisor. Whatever is wrong with the app (none installed, corrupt
 * header or image), the microvisor says so and keeps running: it must stay reachable.
 */
#include <string.h>

#include "board.h"
#include "keel/board.h"
#include "keel/app_image.h"
#include "keel/identity.h"
#include "port.h"
#include "cpu_regs.h"
#include "uv.h"
#include "uv_dbg.h"
#include "uv_upd.h"
#include "net/uv_net.h"

static const char *const reset_names[] = {
    [UV_RESET_POWER_ON] = "power-on",
    [UV_RESET_APP_RESTART] = "app restart",
    [UV_RESET_WATCHDOG] = "watchdog (microvisor stalled)",
    [UV_RESET_FAULT] = "microvisor fault",
    /* Nobody wrote a cause: an external reset, or both watchdog expiries passed while the core
     * was blocked (on QEMU: the host starved the process of CPU for seconds), so the
     * warning NMI never ran. */
    [UV_RESET_UNKNOWN] = "unannounced (external, or the watchdog before its warning could run)",
    [UV_RESET_REBOOT] = "reboot requested",
};

uv_reset_cause_t uv_boot_cause;

const char *uv_reset_name(uv_reset_cause_t cause)
{
    return (unsigned)cause < UV_RESET_CAUSE_COUNT ? reset_names[cause] : "unknown";
}

static void core_setup(void)
{
    /* Secure faults get their own handlers (all routed to the supervisor) at top priority. */
    REG32(SCB_SHPR1) = 0u;
    REG32(SCB_SHPR3) = (REG32(SCB_SHPR3) & ~0x00FF0000u) | (PORT_SERVICE_PRIO << 16);
    REG32(SCB_SHCSR) |= SHCSR_MEMFAULTENA | SHCSR_BUSFAULTENA | SHCSR_USGFAULTENA | SHCSR_SECUREFAULTENA;
    /* Secure code never divides by zero or accesses unaligned data silently. */
    REG32(SCB_CCR) |= (1u << 4);
    __asm__ volatile("dsb\n isb" ::: "memory");
}

static void load_identity(kflash_t *fl)
{
    uint8_t rec[KIDENT_SIZE];
    if (fl && kflash_read(fl, kboard_fw.ipart.ident, rec, sizeof(rec)) == KERR_OK &&
        kident_decode(rec, &uv_ident) == KERR_OK) {
        uv_log("device %s", uv_ident.id);
        return;
    }
    strcpy(uv_ident.id, "unprovisioned");
    uv_log("device is not provisioned (no identity record): id \"unprovisioned\"");
}

void uv_app_find(kflash_t *fl)
{
    uint8_t hdr[KAPP_HDR_SIZE];
    uv_app.valid = false;
    kerr_t err = fl ? kflash_read(fl, kboard_app_hdr_off(&kboard_fw), hdr, sizeof(hdr)) : KERR_IO;
    if (err == KERR_OK)
        err = kapp_hdr_decode(hdr, board_app_code.base, board_app_code.size, &uv_app.hdr);
    if (err == KERR_IMG_EMPTY) {
        uv_log("no app installed; install one with: keel device run --state DIR --install APP.elf");
        return;
    }
    if (err != KERR_OK) {
        uv_log("installed app header is invalid (%s); reinstall the app", kerr_str(err));
        return;
    }
    char ver[16];
    kapp_version_format(uv_app.hdr.version, ver, sizeof(ver));
    uv_log("app %.32s %s, %lu bytes, sha256 %02x%02x%02x%02x%02x%02x%02x%02x", uv_app.hdr.name, ver,
           (unsigned long)uv_app.hdr.image_size, uv_app.hdr.sha256[0], uv_app.hdr.sha256[1],
           uv_app.hdr.sha256[2], uv_app.hdr.sha256[3], uv_app.hdr.sha256[4], uv_app.hdr.sha256[5],
           uv_app.hdr.sha256[6], uv_app.hdr.sha256[7]);
    uv_app.valid = true;
}

void microvisor_main(void)
{
    port_console_init();
    port_powercut_check();
    uv_reset_cause_t cause = uv_noinit_boot();
    uv_boot_cause = cause;
    core_setup();
    uv_dbg_boot(); /* may claim the debug UART: before the partition */
    board_partition();
    port_tick_start();
    port_wdog_start();
    __asm__ volatile("cpsie i" ::: "memory");

    uv_log("Keel microvisor %s (API %u), boot %lu, reset: %s", UV_VERSION_STR, 1u,
           (unsigned long)uv_ni.boots, reset_names[cause]);
    if (cause == UV_RESET_WATCHDOG)
        uv_log("the watchdog found the microvisor stalled at pc=0x%08lx", (unsigned long)uv_ni.stall_pc);

    kerr_t err;
    kflash_t *fl = port_flash_open(PORT_FLASH_INTERNAL, &err);
    if (!fl)
        uv_log("internal flash unavailable (%s)", kerr_str(err));
    if (port_arg_has("flash-selftest"))
        uv_flash_selftest();
    load_identity(fl);
    uv_upd_init(fl); /* finishes an interrupted apply or rollback before the header is read */
    uv_app_find(fl);
    uv_net_init();
    uv_sup_start();
}

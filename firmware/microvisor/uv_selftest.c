/*
 * Flash self-test (boot word "flash-selftest"): exercises the device's flash stores through
 * the same driver and NOR layer the update engine will use, on areas no data lives in yet
 * (the reserved state area of internal flash, the first QSPI sector), and reports each rule.
 * With "powercut=N" it is also the simplest way to watch a torn operation end the emulator.
 */
#include <string.h>

#include "keel/board.h"
#include "port.h"
#include "uv.h"

#define TEST_IFLASH_OFF kboard_fw.ipart.selftest /* a page nothing else uses */

static bool expect(const char *what, kerr_t got, kerr_t want)
{
    if (got == want)
        return true;
    uv_log("flash self-test: %s: got %s, expected %s", what, kerr_str(got), kerr_str(want));
    return false;
}

void uv_flash_selftest(void)
{
    kerr_t err;
    kflash_t *in = port_flash_open(PORT_FLASH_INTERNAL, &err);
    kflash_t *qs = in ? port_flash_open(PORT_FLASH_QSPI, &err) : NULL;
    if (!qs) {
        uv_log("flash self-test: cannot open the flash stores (%s)", kerr_str(err));
        return;
    }
    static const uint8_t data[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                     0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x0F};
    static const uint8_t ones[16] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                     0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    uint8_t back[16];
    bool ok = true;
    /* internal flash: erase, program, read back; program-once; alignment */
    ok &= expect("internal erase", kflash_erase(in, TEST_IFLASH_OFF), KERR_OK);
    ok &= expect("internal program", kflash_program(in, TEST_IFLASH_OFF, data, 16), KERR_OK);
    ok &= expect("internal read", kflash_read(in, TEST_IFLASH_OFF, back, 16), KERR_OK);
    ok &= expect("internal read-back", memcmp(back, data, 16) == 0 ? KERR_OK : KERR_IO, KERR_OK);
    ok &= expect("internal program twice", kflash_program(in, TEST_IFLASH_OFF, data, 16), KERR_FLASH_TWICE);
    ok &= expect("internal program all-0xFF twice", kflash_program(in, TEST_IFLASH_OFF, ones, 16), KERR_FLASH_TWICE);
    ok &= expect("internal misaligned program", kflash_program(in, TEST_IFLASH_OFF + 24, data, 8), KERR_FLASH_ALIGN);
    ok &= expect("internal misaligned erase", kflash_erase(in, TEST_IFLASH_OFF + 16), KERR_FLASH_ALIGN);
    ok &= expect("internal out of range", kflash_erase(in, kboard_fw.iflash.size), KERR_FLASH_RANGE);
    /* QSPI: 1 -> 0 only, any number of times */
    ok &= expect("qspi erase", kflash_erase(qs, 0), KERR_OK);
    ok &= expect("qspi program", kflash_program(qs, 0, data, 16), KERR_OK);
    ok &= expect("qspi program 0->1", kflash_program(qs, 0, ones, 16), KERR_FLASH_BITS);
    ok &= expect("qspi program again 1->0", kflash_program(qs, 0, data, 16), KERR_OK);
    ok &= expect("qspi erase again", kflash_erase(qs, 0), KERR_OK);
    ok &= expect("qspi read", kflash_read(qs, 0, back, 16), KERR_OK);
    ok &= expect("qspi erased", memcmp(back, ones, 16) == 0 ? KERR_OK : KERR_IO, KERR_OK);
    /* leave the internal test page erased */
    ok &= expect("internal erase again", kflash_erase(in, TEST_IFLASH_OFF), KERR_OK);
    uv_log("flash self-test: %s (internal: %lu erases %lu programs)", ok ? "ok" : "FAILED",
           (unsigned long)in->stats.erases, (unsigned long)in->stats.programs);
}

/*
 * A minimal Keel app built outside the Keel tree with nothing but the SDK (tests/qemu/outoftree.sh
 * copies this directory away and builds it with the Make fragment and with the CMake package).
 * It brings its own UART0 output: the example apps' console helper is not part of the SDK.
 */
#include <stdint.h>

#include "keel.h"

#ifndef OOT_BUILD
#define OOT_BUILD "unknown"
#endif

#define UART0_DATA (*(volatile uint32_t *)0x40200000u)
#define UART0_STATE (*(volatile uint32_t *)0x40200004u)
#define UART0_CTRL (*(volatile uint32_t *)0x40200008u)
#define UART0_BAUDDIV (*(volatile uint32_t *)0x40200010u)

static void put(const char *s)
{
    for (; *s; s++) {
        for (uint32_t spins = 0; (UART0_STATE & 1u) && spins < 1000000u; spins++) {
        }
        UART0_DATA = (uint8_t)*s;
    }
}

int main(void)
{
    static const char msg[] = "outoftree: logging through the SDK";
    keel_version_t v;

    UART0_BAUDDIV = 173;
    UART0_CTRL = 3;
    put("outoftree: hello from an app built with " OOT_BUILD "\n");
    if (keel_version_get(&v) == KEEL_OK && v.api == KEEL_API_VERSION) {
        put("outoftree: keel api matches\n");
    }
    (void)keel_log_write(KEEL_LOG_INFO, msg, sizeof msg - 1u);
    for (;;) {
        __asm__ volatile("wfi");
    }
}

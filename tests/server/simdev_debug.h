/*
 * simdev's debug channel: the device half of a debug session (docs/debug.md "Transport") on the
 * host, with the same core code the microvisor uses (dbgsess for the crypto, kproto for the
 * messages). It checks DebugOpen against the "installed bundle's" debug key (--debug-pub; none
 * given = a bundle without one), answers DebugAccept signed with the device's own TLS key, and
 * relays the opened RSP bytes to an RSP server on 127.0.0.1 (--debug-target PORT: the RSP engine
 * of tests/unit/test_rsp_qemu.c in front of a real QEMU), sealing its answers back.
 *
 * It stands in for the microvisor's stub until that speaks MQTT, so keel debug, keeld and the
 * broker are tested with the real gdb-multiarch on the real protocol.
 */
#ifndef KEEL_TESTS_SERVER_SIMDEV_DEBUG_H
#define KEEL_TESTS_SERVER_SIMDEV_DEBUG_H

#include <stdbool.h>

#include "keel/kproto.h"

/* Publish d on the device's debug/up topic (simdev's MQTT client). */
typedef void (*simdbg_publish_fn)(void *ctx, const keel_v1_Debug *d);

/*
 * Set up: id (the device id), key_path (the device's PEM private key), debug_pub_path (PEM public
 * debug key or NULL), target_port (0: no RSP server, every open is refused). Exits with a message
 * on a bad file.
 */
void simdbg_init(const char *id, const char *key_path, const char *debug_pub_path,
                 int target_port, simdbg_publish_fn publish, void *ctx);

/* A Debug message from debug/down (MQTT thread). */
void simdbg_down(const keel_v1_Debug *d);

/* Sessions closed so far (for the "debug-sessions:N" action). */
unsigned simdbg_closed(void);

#endif /* KEEL_TESTS_SERVER_SIMDEV_DEBUG_H */

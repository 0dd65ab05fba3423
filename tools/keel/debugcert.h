/*
 * The public key of a fleet device, for `keel debug` to check the device's DebugAccept: taken
 * from the device's certificate after checking that the fleet CA issued it to that device id.
 */
#ifndef KEEL_TOOLS_KEEL_DEBUGCERT_H
#define KEEL_TOOLS_KEEL_DEBUGCERT_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/dbgsess.h"

/*
 * The device's public key, from a certificate the fleet CA issued to this device id. Where the
 * certificate comes from (first that applies): --device-cert FILE; --device-state DIR (an
 * emulated device's flash); the stack's STATE/devices/ID (emulated by keel up) or STATE/ID.pem
 * (simulated). The CA is --fleet-ca, else STATE/ca.pem.
 */
bool debugcert_device_pub(const char *prog, const char *device, const char *cert_path,
                          const char *dev_state, const char *state, const char *ca_path,
                          uint8_t out[DBGSESS_PUB_SIZE]);

#endif /* KEEL_TOOLS_KEEL_DEBUGCERT_H */

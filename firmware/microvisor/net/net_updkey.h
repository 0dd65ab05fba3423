/*
 * The device's update staging key (AES-256-GCM, docs/update-engine.md "Device integration"),
 * derived on the device and by `keel device install` (factory install on the host) alike.
 *
 * Why derived and not stored: the identity page already holds a per-device secret that never
 * leaves the secure world, the 64-byte entropy seed record written at provisioning from
 * /dev/urandom. HKDF-SHA256 with a label of its own gives an independent key from it (domain
 * separation: the DRBG uses the seed, never this output), so no second secret needs provisioning,
 * no record can be lost or torn, and a device provisioned before updates existed gets its key
 * for free. The device key (the TLS private key) was the other candidate; it is absent on devices
 * provisioned without --fleet-ca-key, the seed is always there.
 *
 *   PRK = HMAC-SHA256(salt = "keel/v1 update staging key", IKM = seed record's 64 bytes)
 *   key = HMAC-SHA256(PRK, device id || 0x01)            (HKDF-Expand, one block, RFC 5869)
 *   i.e. HKDF-SHA256(salt = label, IKM = seed, info = device id, 32 bytes): kc_hkdf_sha256().
 */
#ifndef KEEL_MICROVISOR_NET_NET_UPDKEY_H
#define KEEL_MICROVISOR_NET_NET_UPDKEY_H

#include <stdint.h>

#include "keel/err.h"

#define NET_UPDKEY_LABEL "keel/v1 update staging key"

/* seed: the identity page's seed bytes (net_seed_rec_decode). KERR_UPD_CRYPTO if the crypto library fails. */
kerr_t net_updkey_derive(const uint8_t seed[64], const char *device_id, uint8_t out[32]);

#endif /* KEEL_MICROVISOR_NET_NET_UPDKEY_H */

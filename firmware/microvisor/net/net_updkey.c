/* net_updkey: see net_updkey.h. */
#include "net_updkey.h"

#include <string.h>

#include "keel/kcrypto.h"

kerr_t net_updkey_derive(const uint8_t seed[64], const char *device_id, uint8_t out[32])
{
    return kc_hkdf_sha256((const uint8_t *)NET_UPDKEY_LABEL, strlen(NET_UPDKEY_LABEL), seed, 64,
                          (const uint8_t *)device_id, strlen(device_id), out, 32) == KC_OK
               ? KERR_OK
               : KERR_UPD_CRYPTO;
}

/* net_updkey: see net_updkey.h. */
#include "net_updkey.h"

#include <string.h>

#include "mbedtls/md.h"

kerr_t net_updkey_derive(const uint8_t seed[64], const char *device_id, uint8_t out[32])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    uint8_t prk[32];
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    int ret = md ? mbedtls_md_hmac(md, (const unsigned char *)NET_UPDKEY_LABEL,
                                   strlen(NET_UPDKEY_LABEL), seed, 64, prk)
                 : -1;
    static const uint8_t one = 1u;
    if (ret == 0)
        ret = mbedtls_md_setup(&ctx, md, 1);
    if (ret == 0)
        ret = mbedtls_md_hmac_starts(&ctx, prk, sizeof(prk));
    if (ret == 0)
        ret = mbedtls_md_hmac_update(&ctx, (const unsigned char *)device_id, strlen(device_id));
    if (ret == 0)
        ret = mbedtls_md_hmac_update(&ctx, &one, 1);
    if (ret == 0)
        ret = mbedtls_md_hmac_finish(&ctx, out);
    mbedtls_md_free(&ctx);
    memset(prk, 0, sizeof(prk));
    return ret == 0 ? KERR_OK : KERR_UPD_CRYPTO;
}

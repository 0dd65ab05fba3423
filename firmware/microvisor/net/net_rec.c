/* net_rec: see net_rec.h. */
#include "net_rec.h"

#include <stdbool.h>
#include <string.h>

#include "keel/crc32.h"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static kerr_t check_magic_crc(const uint8_t *in, uint32_t magic, uint32_t crc_off)
{
    if (get32(in) != magic)
        return KERR_FORMAT;
    return kcrc32(0, in, crc_off) == get32(in + crc_off) ? KERR_OK : KERR_CRC;
}

/* Both seed records: magic, one word, bytes, zero padding, crc32 of the rest in the last word. */
static kerr_t small_rec_encode(uint8_t *out, uint32_t size, uint32_t magic, uint32_t word,
                               const uint8_t *bytes, uint32_t len)
{
    memset(out, 0, size);
    put32(out, magic);
    put32(out + 4, word);
    memcpy(out + 8, bytes, len);
    put32(out + size - 4u, kcrc32(0, out, size - 4u));
    return KERR_OK;
}

kerr_t net_seed_rec_encode(const uint8_t seed[NET_SEED_BYTES], uint8_t out[NET_SEED_REC_SIZE])
{
    return small_rec_encode(out, NET_SEED_REC_SIZE, NET_SEED_MAGIC, NET_SEED_BYTES, seed, NET_SEED_BYTES);
}

kerr_t net_seed_rec_decode(const uint8_t in[NET_SEED_REC_SIZE], uint8_t out_seed[NET_SEED_BYTES])
{
    kerr_t err = check_magic_crc(in, NET_SEED_MAGIC, NET_SEED_REC_SIZE - 4u);
    if (err != KERR_OK)
        return err;
    if (get32(in + 4) != NET_SEED_BYTES)
        return KERR_FORMAT;
    memcpy(out_seed, in + 8, NET_SEED_BYTES);
    return KERR_OK;
}

static bool name_ok(const char *name, size_t n)
{
    if (n == 0u || n > NET_FLEET_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

/* PEM text: NUL-terminated exactly at len - 1, no other NUL, and a block of that kind in it. */
static bool pem_ok(const uint8_t *pem, uint32_t len, uint32_t max, const char *begin)
{
    if (len < strlen(begin) + 1u || len > max || pem[len - 1u] != 0u)
        return false;
    if (memchr(pem, 0, len - 1u) != NULL)
        return false;
    return strstr((const char *)pem, begin) != NULL;
}

#define PEM_CERT "-----BEGIN CERTIFICATE-----"
#define PEM_KEY "PRIVATE KEY-----"

uint32_t net_fleet_rec_size(uint32_t ca_len, uint32_t flags)
{
    if (ca_len == 0u || ca_len > NET_FLEET_CA_MAX)
        return 0u;
    return (NET_FLEET_HDR + (flags ? 4u : 0u) + NET_FLEET_NAME_MAX + 1u + ca_len + 15u) & ~15u;
}

kerr_t net_fleet_rec_encode(const char *name, const uint8_t *ca_pem, uint32_t ca_len, uint32_t flags,
                            uint8_t *out, uint32_t out_len)
{
    uint32_t size = net_fleet_rec_size(ca_len, flags);
    size_t nlen = strnlen(name, NET_FLEET_NAME_MAX + 1u);
    if (size == 0u || out_len < size || (flags & ~NET_FLEET_F_KNOWN) != 0u || !name_ok(name, nlen) ||
        !pem_ok(ca_pem, ca_len, NET_FLEET_CA_MAX, PEM_CERT))
        return KERR_INVAL;
    memset(out, 0, size);
    uint8_t *body = out + NET_FLEET_HDR;
    put32(out, flags ? NET_FLEET_MAGIC2 : NET_FLEET_MAGIC);
    put32(out + 4, (uint32_t)nlen);
    put32(out + 8, ca_len);
    if (flags) {
        put32(body, flags);
        body += 4;
    }
    memcpy(body, name, nlen);
    memcpy(body + NET_FLEET_NAME_MAX + 1u, ca_pem, ca_len);
    put32(out + 12, kcrc32(0, out + NET_FLEET_HDR, size - NET_FLEET_HDR));
    return KERR_OK;
}

kerr_t net_fleet_rec_decode(const uint8_t *in, uint32_t in_len, net_fleet_t *out)
{
    if (in_len < NET_FLEET_HDR + 4u)
        return KERR_TRUNCATED;
    bool v2 = get32(in) == NET_FLEET_MAGIC2;
    if (!v2 && get32(in) != NET_FLEET_MAGIC)
        return KERR_FORMAT;
    uint32_t nlen = get32(in + 4), ca_len = get32(in + 8);
    uint32_t flags = v2 ? get32(in + NET_FLEET_HDR) : 0u;
    uint32_t size = net_fleet_rec_size(ca_len, v2 ? 1u : 0u);
    if (size == 0u || nlen == 0u || nlen > NET_FLEET_NAME_MAX)
        return KERR_INVAL;
    if (in_len < size)
        return KERR_TRUNCATED;
    if (kcrc32(0, in + NET_FLEET_HDR, size - NET_FLEET_HDR) != get32(in + 12))
        return KERR_CRC;
    const char *name = (const char *)in + NET_FLEET_HDR + (v2 ? 4u : 0u);
    const uint8_t *ca = (const uint8_t *)name + NET_FLEET_NAME_MAX + 1u;
    if ((v2 && (flags == 0u || (flags & ~NET_FLEET_F_KNOWN) != 0u)) || !name_ok(name, nlen) ||
        !pem_ok(ca, ca_len, NET_FLEET_CA_MAX, PEM_CERT))
        return KERR_INVAL;
    memset(out->broker_name, 0, sizeof(out->broker_name));
    memcpy(out->broker_name, name, nlen);
    out->flags = flags;
    out->ca_len = ca_len;
    out->ca_pem = ca;
    return KERR_OK;
}

uint32_t net_device_rec_size(uint32_t key_len, uint32_t cert_len)
{
    if (key_len == 0u || cert_len == 0u || key_len > NET_DEVICE_REC_MAX || cert_len > NET_DEVICE_REC_MAX)
        return 0u;
    uint32_t size = (NET_DEVICE_HDR + key_len + cert_len + 15u) & ~15u;
    return size <= NET_DEVICE_REC_MAX ? size : 0u;
}

kerr_t net_device_rec_encode(const uint8_t *key_pem, uint32_t key_len, const uint8_t *cert_pem,
                             uint32_t cert_len, uint8_t *out, uint32_t out_len)
{
    uint32_t size = net_device_rec_size(key_len, cert_len);
    if (size == 0u || out_len < size || !pem_ok(key_pem, key_len, NET_DEVICE_REC_MAX, PEM_KEY) ||
        !pem_ok(cert_pem, cert_len, NET_DEVICE_REC_MAX, PEM_CERT))
        return KERR_INVAL;
    memset(out, 0, size);
    put32(out, NET_DEVICE_MAGIC);
    put32(out + 4, key_len);
    put32(out + 8, cert_len);
    memcpy(out + NET_DEVICE_HDR, key_pem, key_len);
    memcpy(out + NET_DEVICE_HDR + key_len, cert_pem, cert_len);
    put32(out + 12, kcrc32(0, out + NET_DEVICE_HDR, size - NET_DEVICE_HDR));
    return KERR_OK;
}

kerr_t net_device_rec_decode(const uint8_t *in, uint32_t in_len, net_device_cred_t *out)
{
    if (in_len < NET_DEVICE_HDR)
        return KERR_TRUNCATED;
    if (get32(in) != NET_DEVICE_MAGIC)
        return KERR_FORMAT;
    uint32_t key_len = get32(in + 4), cert_len = get32(in + 8);
    uint32_t size = net_device_rec_size(key_len, cert_len);
    if (size == 0u)
        return KERR_INVAL;
    if (in_len < size)
        return KERR_TRUNCATED;
    if (kcrc32(0, in + NET_DEVICE_HDR, size - NET_DEVICE_HDR) != get32(in + 12))
        return KERR_CRC;
    const uint8_t *key = in + NET_DEVICE_HDR, *cert = key + key_len;
    if (!pem_ok(key, key_len, NET_DEVICE_REC_MAX, PEM_KEY) ||
        !pem_ok(cert, cert_len, NET_DEVICE_REC_MAX, PEM_CERT))
        return KERR_INVAL;
    *out = (net_device_cred_t){key, key_len, cert, cert_len};
    return KERR_OK;
}

uint32_t net_updkeys_rec_size(uint32_t count)
{
    if (count == 0u || count > NET_UPDKEYS_MAX)
        return 0u;
    return (NET_UPDKEYS_HDR + count * NET_UPDKEY_SIZE + 15u) & ~15u;
}

static bool points_ok(const uint8_t *keys, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        if (keys[i * NET_UPDKEY_SIZE] != 0x04u)
            return false;
    return true;
}

kerr_t net_updkeys_rec_encode(const uint8_t *keys, uint32_t count, uint8_t *out, uint32_t out_len)
{
    uint32_t size = net_updkeys_rec_size(count);
    if (size == 0u || out_len < size || !points_ok(keys, count))
        return KERR_INVAL;
    memset(out, 0, size);
    put32(out, NET_UPDKEYS_MAGIC);
    put32(out + 4, count);
    memcpy(out + NET_UPDKEYS_HDR, keys, count * NET_UPDKEY_SIZE);
    put32(out + 12, kcrc32(0, out + NET_UPDKEYS_HDR, count * NET_UPDKEY_SIZE));
    return KERR_OK;
}

kerr_t net_updkeys_rec_decode(const uint8_t *in, uint32_t in_len, uint8_t *out_keys,
                              uint32_t *out_count)
{
    if (in_len < NET_UPDKEYS_HDR)
        return KERR_TRUNCATED;
    if (get32(in) != NET_UPDKEYS_MAGIC)
        return KERR_FORMAT;
    uint32_t count = get32(in + 4);
    uint32_t size = net_updkeys_rec_size(count);
    if (size == 0u || get32(in + 8) != 0u)
        return KERR_INVAL;
    if (in_len < size)
        return KERR_TRUNCATED;
    const uint8_t *keys = in + NET_UPDKEYS_HDR;
    if (kcrc32(0, keys, count * NET_UPDKEY_SIZE) != get32(in + 12))
        return KERR_CRC;
    if (!points_ok(keys, count))
        return KERR_INVAL;
    memcpy(out_keys, keys, count * NET_UPDKEY_SIZE);
    *out_count = count;
    return KERR_OK;
}

kerr_t net_state_rec_encode(uint32_t counter, const uint8_t seed[NET_STATE_SEED],
                            uint8_t out[NET_STATE_REC_SIZE])
{
    return small_rec_encode(out, NET_STATE_REC_SIZE, NET_STATE_MAGIC, counter, seed, NET_STATE_SEED);
}

kerr_t net_state_rec_decode(const uint8_t in[NET_STATE_REC_SIZE], uint32_t *out_counter,
                            uint8_t out_seed[NET_STATE_SEED])
{
    kerr_t err = check_magic_crc(in, NET_STATE_MAGIC, NET_STATE_REC_SIZE - 4u);
    if (err != KERR_OK)
        return err;
    *out_counter = get32(in + 4);
    memcpy(out_seed, in + 8, NET_STATE_SEED);
    return KERR_OK;
}

/*
 * Network provisioning records in internal flash, shared by the microvisor (reads them, keeps the
 * seed) and the keel CLI (writes them at provisioning). Pure C, no hardware: host and device.
 *
 * Identity page (the board descriptor's ipart.ident, one page, secure-only), written by the host at provisioning; the
 * device only reads it. The records sit in units the identity record never uses, so each can be
 * programmed once into an erased page without touching the others:
 *
 *   +0x0000  identity record (128 B, core/include/keel/identity.h)
 *   +0x0100  seed record (96 B): the per-device entropy seed, 64 random bytes
 *   +0x0200  update keys record (<= 288 B): the fleet's bundle signing public keys (P-256)
 *   +0x0400  fleet record (<= 4176 B): broker name + fleet CA certificate (PEM)
 *   +0x1600  device record (<= 2.5 KiB): the device's P-256 key and its certificate from the
 *            fleet CA (PEM), for mutual TLS; the certificate's CN is the device id
 *   +0x2000
 *
 * Seed state (two pages of the reserved microvisor-state area, written by the device on every
 * boot, never by the host): the current Mbed TLS NV seed, alternating A/B with a counter, so a
 * power cut while one page is rewritten leaves the other intact:
 *
 *   board ipart.seed_a  seed state record (64 B) | erased...
 *   board ipart.seed_b  seed state record (64 B) | erased...
 *
 * All encodings little-endian; persisted: never move a field or renumber a magic.
 */
#ifndef KEEL_MICROVISOR_NET_NET_REC_H
#define KEEL_MICROVISOR_NET_NET_REC_H

#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

#define NET_REC_SEED_OFF 0x0100u  /* within the identity page */
#define NET_REC_UPDKEYS_OFF 0x0200u /* within the identity page */
#define NET_REC_FLEET_OFF 0x0400u /* within the identity page */
#define NET_REC_DEVICE_OFF 0x1600u /* within the identity page */

/* ---- seed record (identity page): u32 magic "KSD1", u32 length (64), 64 bytes, pad, u32 crc
 * of bytes [0, 92) at 92 ---- */
#define NET_SEED_MAGIC 0x3144534Bu
#define NET_SEED_BYTES 64u
#define NET_SEED_REC_SIZE 96u

kerr_t net_seed_rec_encode(const uint8_t seed[NET_SEED_BYTES], uint8_t out[NET_SEED_REC_SIZE]);
/* KERR_FORMAT when erased or foreign, KERR_CRC when damaged. */
kerr_t net_seed_rec_decode(const uint8_t in[NET_SEED_REC_SIZE], uint8_t out_seed[NET_SEED_BYTES]);

/* ---- fleet record (identity page): u32 magic "KFL1", u32 name length, u32 CA length (PEM with
 * its NUL), u32 crc32 of everything after the 16-byte header; then the broker name (64 bytes,
 * NUL-padded), then the CA PEM. Total padded to 16 bytes.
 * With fleet settings (flags != 0) the magic is "KFL2" and a u32 of NET_FLEET_F_* follows the
 * header, before the name; a record without settings stays "KFL1", byte for byte as before. ---- */
#define NET_FLEET_MAGIC 0x314C464Bu
#define NET_FLEET_MAGIC2 0x324C464Bu
#define NET_FLEET_HDR 16u
#define NET_FLEET_NAME_MAX 63u
#define NET_FLEET_CA_MAX 4096u
#define NET_FLEET_REC_MAX (NET_FLEET_HDR + 4u + NET_FLEET_NAME_MAX + 1u + NET_FLEET_CA_MAX)
/* The broker may negotiate TLS 1.2 (the default is TLS 1.3 only: a downgrade is refused). */
#define NET_FLEET_F_ALLOW_TLS12 0x1u
#define NET_FLEET_F_KNOWN NET_FLEET_F_ALLOW_TLS12

typedef struct net_fleet {
    char broker_name[NET_FLEET_NAME_MAX + 1]; /* the name the broker's certificate must carry */
    uint32_t flags;                           /* NET_FLEET_F_* */
    uint32_t ca_len;                          /* bytes of ca_pem including the final NUL */
    const uint8_t *ca_pem;                    /* points into the decoded buffer */
} net_fleet_t;

/* Encoded size of a fleet record (a multiple of 16), 0 when the inputs are out of bounds. */
uint32_t net_fleet_rec_size(uint32_t ca_len, uint32_t flags);
/* ca_pem: NUL-terminated PEM text, ca_len counts the NUL. name: 1..63 of [A-Za-z0-9.-]. flags:
 * NET_FLEET_F_*. out: net_fleet_rec_size(ca_len, flags) bytes. KERR_INVAL for out-of-bounds
 * inputs or unknown flags. */
kerr_t net_fleet_rec_encode(const char *name, const uint8_t *ca_pem, uint32_t ca_len, uint32_t flags,
                            uint8_t *out, uint32_t out_len);
/* in: at least NET_FLEET_HDR bytes, in_len available. out->ca_pem points into in.
 * KERR_FORMAT (erased/foreign), KERR_TRUNCATED, KERR_CRC, KERR_INVAL (bad name or CA text, or a
 * setting this firmware does not know: refusing beats ignoring a security setting). */
kerr_t net_fleet_rec_decode(const uint8_t *in, uint32_t in_len, net_fleet_t *out);

/* ---- device record (identity page): u32 magic "KDV1", u32 key length, u32 certificate length
 * (both PEM with their NUL), u32 crc32 of everything after the header; then the key, then the
 * certificate. Total padded to 16 bytes, at most NET_DEVICE_REC_MAX. ---- */
#define NET_DEVICE_MAGIC 0x3156444Bu
#define NET_DEVICE_HDR 16u
#define NET_DEVICE_REC_MAX 2560u

typedef struct net_device_cred {
    const uint8_t *key_pem; /* points into the decoded buffer */
    uint32_t key_len;       /* with the NUL */
    const uint8_t *cert_pem;
    uint32_t cert_len;      /* with the NUL */
} net_device_cred_t;

/* Encoded size (multiple of 16), 0 when it would exceed NET_DEVICE_REC_MAX. */
uint32_t net_device_rec_size(uint32_t key_len, uint32_t cert_len);
/* key_pem/cert_pem: NUL-terminated PEM, lengths with the NUL. KERR_INVAL when out of bounds. */
kerr_t net_device_rec_encode(const uint8_t *key_pem, uint32_t key_len, const uint8_t *cert_pem,
                             uint32_t cert_len, uint8_t *out, uint32_t out_len);
/* KERR_FORMAT (erased/foreign), KERR_TRUNCATED, KERR_CRC, KERR_INVAL. Pointers point into in. */
kerr_t net_device_rec_decode(const uint8_t *in, uint32_t in_len, net_device_cred_t *out);

/* ---- update keys record (identity page): u32 magic "KUK1", u32 key count (1..4), u32 reserved
 * (0), u32 crc32 of the keys; then count uncompressed P-256 points (65 B each: 04 || X || Y), the
 * fleet keys whose bundle signatures the device trusts (docs/bundle.md). Padded to 16 bytes. ---- */
#define NET_UPDKEYS_MAGIC 0x314B554Bu
#define NET_UPDKEYS_HDR 16u
#define NET_UPDKEYS_MAX 4u
#define NET_UPDKEY_SIZE 65u
#define NET_UPDKEYS_REC_MAX ((NET_UPDKEYS_HDR + NET_UPDKEYS_MAX * NET_UPDKEY_SIZE + 15u) & ~15u)

/* Encoded size (multiple of 16), 0 when count is not 1..NET_UPDKEYS_MAX. */
uint32_t net_updkeys_rec_size(uint32_t count);
/* keys: count * 65 bytes, each starting with 0x04. KERR_INVAL for bad counts or points. */
kerr_t net_updkeys_rec_encode(const uint8_t *keys, uint32_t count, uint8_t *out, uint32_t out_len);
/* out_keys: NET_UPDKEYS_MAX * 65 bytes. KERR_FORMAT (erased/foreign), KERR_TRUNCATED, KERR_CRC,
 * KERR_INVAL (count or a point out of bounds). */
kerr_t net_updkeys_rec_decode(const uint8_t *in, uint32_t in_len, uint8_t *out_keys,
                              uint32_t *out_count);

/* ---- seed state record (seed pages): u32 magic "KNS1", u32 counter, 32-byte seed, pad,
 * u32 crc of [0, 60) at 60 ---- */
#define NET_STATE_MAGIC 0x31534E4Bu
#define NET_STATE_SEED 32u
#define NET_STATE_REC_SIZE 64u

kerr_t net_state_rec_encode(uint32_t counter, const uint8_t seed[NET_STATE_SEED],
                            uint8_t out[NET_STATE_REC_SIZE]);
kerr_t net_state_rec_decode(const uint8_t in[NET_STATE_REC_SIZE], uint32_t *out_counter,
                            uint8_t out_seed[NET_STATE_SEED]);

#endif /* KEEL_MICROVISOR_NET_NET_REC_H */

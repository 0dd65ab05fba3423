/*
 * Records read from flash at boot or provisioning (written by a host, torn by power cuts, or
 * forged by anyone with flash access): the identity record, the app image header, update journal
 * records, and the provisioning records of the identity page (seed, fleet CA, device key and
 * certificate, update keys, A/B state).
 * Input: byte 0 chooses the record, byte 1 bit 0 asks for its CRC-32 to be recomputed first (so
 * mutations reach the field checks behind it), then the record bytes.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "keel/app_image.h"
#include "keel/crc32.h"
#include "keel/identity.h"
#include "keel/upd_journal.h"
#include "net_rec.h"

static uint8_t rec[NET_FLEET_REC_MAX + 64];

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* CRC of [from, to) stored at at, when the record is long enough for it. */
static void fix(size_t len, size_t at, size_t from, size_t to)
{
    if (at + 4 <= len && to <= len && from <= to) {
        put32(rec + at, kcrc32(0, rec + from, to - from));
    }
}

static void check_terminated(const char *s, size_t cap)
{
    if (strnlen(s, cap) == cap) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size - 2 > sizeof(rec)) {
        return 0;
    }
    unsigned kind = data[0] % 8u;
    bool fixcrc = data[1] & 1u;
    size_t len = size - 2;
    memset(rec, 0, sizeof(rec));
    memcpy(rec, data + 2, len);
    /* Fixed-size records are read whole from flash: short input is zero-padded, as above. */
    switch (kind) {
    case 0: { /* identity */
        kident_t id;
        if (fixcrc) fix(KIDENT_SIZE, 124, 0, 124);
        if (kident_decode(rec, &id) == KERR_OK) {
            check_terminated(id.id, sizeof(id.id));
            if (kident_check_id(id.id) != KERR_OK) abort();
            uint8_t again[KIDENT_SIZE];
            if (kident_encode(&id, again) != KERR_OK) abort();
        }
        break;
    }
    case 1: { /* app image header, against the AN505 non-secure code region */
        kapp_hdr_t h;
        if (fixcrc) fix(KAPP_HDR_SIZE, KAPP_OFF_CRC, 0, KAPP_OFF_CRC);
        if (kapp_hdr_decode(rec, 0x00200000u, 0x00100000u, &h) == KERR_OK) {
            char v[32];
            kapp_version_format(h.version, v, sizeof(v));
            check_terminated(v, sizeof(v));
            if (h.stack_dump > 256u || h.backoff_min_ms > h.backoff_max_ms) abort();
        }
        /* Version strings come from the CLI's command line and bundle tooling. */
        char s[64];
        size_t n = len < sizeof(s) - 1 ? len : sizeof(s) - 1;
        memcpy(s, rec, n);
        s[n] = '\0';
        uint32_t ver;
        (void)kapp_version_parse(s, &ver);
        break;
    }
    case 2: { /* update journal record */
        upd_pstate_t ps;
        uint32_t seq;
        if (fixcrc) fix(UPD_JREC_SIZE, 124, 0, 124);
        if (upd_jrec_decode(rec, &ps, &seq) == KERR_OK) {
            uint8_t again[UPD_JREC_SIZE];
            upd_jrec_encode(&ps, seq, again);
            if (memcmp(again, rec, UPD_JREC_SIZE) != 0) abort(); /* one meaning per record */
        }
        break;
    }
    case 3: { /* network seed */
        uint8_t seed[NET_SEED_BYTES];
        if (fixcrc) fix(NET_SEED_REC_SIZE, NET_SEED_REC_SIZE - 4, 0, NET_SEED_REC_SIZE - 4);
        (void)net_seed_rec_decode(rec, seed);
        break;
    }
    case 4: { /* fleet: broker name and CA */
        net_fleet_t f;
        if (fixcrc && len >= NET_FLEET_HDR) {
            /* KFL2 (fleet settings) records carry 4 more bytes. */
            uint32_t sz = net_fleet_rec_size(get32(rec + 8), get32(rec) == NET_FLEET_MAGIC2 ? 1u : 0u);
            fix(len, 12, NET_FLEET_HDR, sz);
        }
        if (net_fleet_rec_decode(rec, (uint32_t)len, &f) == KERR_OK) {
            check_terminated(f.broker_name, sizeof(f.broker_name));
            if (f.ca_pem < rec || f.ca_pem + f.ca_len > rec + len || f.ca_len == 0 || f.ca_pem[f.ca_len - 1] != 0)
                abort(); /* handed to Mbed TLS as a NUL-terminated PEM */
        }
        break;
    }
    case 5: { /* device key and certificate */
        net_device_cred_t c;
        if (fixcrc && len >= NET_DEVICE_HDR) {
            uint32_t sz = net_device_rec_size(get32(rec + 4), get32(rec + 8));
            fix(len, 12, NET_DEVICE_HDR, sz);
        }
        if (net_device_rec_decode(rec, (uint32_t)len, &c) == KERR_OK) {
            if (c.key_pem < rec || c.key_pem + c.key_len > rec + len || c.cert_pem < rec ||
                c.cert_pem + c.cert_len > rec + len || c.key_len == 0 || c.cert_len == 0 ||
                c.key_pem[c.key_len - 1] != 0 || c.cert_pem[c.cert_len - 1] != 0)
                abort();
        }
        break;
    }
    case 6: { /* fleet update keys */
        uint8_t keys[NET_UPDKEYS_MAX * NET_UPDKEY_SIZE];
        uint32_t count = 0;
        if (fixcrc && len >= NET_UPDKEYS_HDR) {
            uint32_t n = get32(rec + 4);
            if (n <= NET_UPDKEYS_MAX) fix(len, 12, NET_UPDKEYS_HDR, NET_UPDKEYS_HDR + n * NET_UPDKEY_SIZE);
        }
        if (net_updkeys_rec_decode(rec, (uint32_t)len, keys, &count) == KERR_OK &&
            count > NET_UPDKEYS_MAX)
            abort();
        break;
    }
    default: { /* A/B state: counter and seed */
        uint32_t counter;
        uint8_t seed[NET_STATE_SEED];
        if (fixcrc) fix(NET_STATE_REC_SIZE, NET_STATE_REC_SIZE - 4, 0, NET_STATE_REC_SIZE - 4);
        (void)net_state_rec_decode(rec, &counter, seed);
        break;
    }
    }
    return 0;
}

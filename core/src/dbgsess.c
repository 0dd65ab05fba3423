/*
 * Debug session cryptography (keel/dbgsess.h): ECDH P-256, HKDF-SHA256, AES-128-GCM, ECDSA,
 * all through keel/kcrypto.h (PSA Crypto).
 *
 * The GCM key is imported per frame from the stored key rather than kept in dbgsess_t: the
 * struct stays plain data with no crypto-library type in the public header and nothing to free,
 * and the key schedule costs far less than one MQTT hop.
 */
#include <string.h>

#include "keel/dbgsess.h"
#include "keel/identity.h"
#include "keel/kcrypto.h"

#include "le.h"

static const char open_label[] = "keel-debug-open";
static const char accept_label[] = "keel-debug-accept";
static const char keys_label[] = "keel-debug-keys";

void dbgsess_wipe(void *p, size_t n)
{
    kc_wipe(p, n);
}

static void put64(uint8_t out[8], uint64_t v)
{
    le_put32(out, (uint32_t)v);
    le_put32(out + 4, (uint32_t)(v >> 32));
}

_Static_assert(DBGSESS_PUB_SIZE == KC_P256_PUB_SIZE && DBGSESS_SIG_SIZE == KC_P256_SIG_SIZE &&
                   DBGSESS_HASH_SIZE == KC_SHA256_SIZE && DBGSESS_PRIV_SIZE == KC_P256_PRIV_SIZE,
               "debug session keys are P-256");

kerr_t dbgsess_keygen(dbgsess_eph_t *out_eph, dbgsess_rng_fn rng, void *rng_ctx)
{
    if (out_eph == NULL || rng == NULL) {
        return KERR_INVAL;
    }
    if (kc_p256_keygen(out_eph->priv, out_eph->pub, rng, rng_ctx) != KC_OK) {
        dbgsess_wipe(out_eph, sizeof(*out_eph));
        return KERR_DBG_CRYPTO;
    }
    return KERR_OK;
}

/* The ECDH shared secret (x coordinate, 32 bytes big-endian) of our scalar and the peer's point. */
static kerr_t shared_secret(const uint8_t priv[DBGSESS_PRIV_SIZE],
                            const uint8_t peer_pub[DBGSESS_PUB_SIZE], uint8_t out[32])
{
    switch (kc_p256_ecdh(priv, peer_pub, out)) {
    case KC_OK: return KERR_OK;
    case KC_BAD_KEY: return KERR_DBG_KEY;
    case KC_BAD_PRIV: return KERR_INVAL;
    default: return KERR_DBG_CRYPTO;
    }
}

kerr_t dbgsess_start(dbgsess_t *s, dbgsess_role_t role, uint64_t session, dbgsess_eph_t *mine,
                     const uint8_t peer_pub[DBGSESS_PUB_SIZE])
{
    if (s == NULL || mine == NULL || peer_pub == NULL ||
        (role != DBGSESS_CLIENT && role != DBGSESS_DEVICE)) {
        if (mine != NULL) {
            dbgsess_wipe(mine->priv, sizeof(mine->priv));
        }
        return KERR_INVAL;
    }
    dbgsess_end(s);
    uint8_t z[32];
    kerr_t err = shared_secret(mine->priv, peer_pub, z);
    dbgsess_wipe(mine->priv, sizeof(mine->priv));
    if (err != KERR_OK) {
        dbgsess_wipe(z, sizeof(z));
        return err;
    }
    /* info = label || session || client_pub || device_pub: both ends build the same bytes. */
    const uint8_t *client_pub = role == DBGSESS_CLIENT ? mine->pub : peer_pub;
    const uint8_t *device_pub = role == DBGSESS_CLIENT ? peer_pub : mine->pub;
    uint8_t info[sizeof(keys_label) - 1u + 8u + 2u * DBGSESS_PUB_SIZE];
    size_t n = sizeof(keys_label) - 1u;
    memcpy(info, keys_label, n);
    put64(info + n, session);
    n += 8u;
    memcpy(info + n, client_pub, DBGSESS_PUB_SIZE);
    n += DBGSESS_PUB_SIZE;
    memcpy(info + n, device_pub, DBGSESS_PUB_SIZE);
    n += DBGSESS_PUB_SIZE;
    uint8_t okm[2u * DBGSESS_KEY_SIZE];
    if (kc_hkdf_sha256(NULL, 0, z, sizeof(z), info, n, okm, sizeof(okm)) != KC_OK) {
        err = KERR_DBG_CRYPTO;
    } else {
        const uint8_t *down = okm;
        const uint8_t *up = okm + DBGSESS_KEY_SIZE;
        memcpy(s->tx_key, role == DBGSESS_CLIENT ? down : up, DBGSESS_KEY_SIZE);
        memcpy(s->rx_key, role == DBGSESS_CLIENT ? up : down, DBGSESS_KEY_SIZE);
        s->session = session;
        s->role = role;
        s->tx_seq = 0;
        s->rx_seq = 0;
        s->ready = true;
    }
    dbgsess_wipe(z, sizeof(z));
    dbgsess_wipe(okm, sizeof(okm));
    return err;
}

void dbgsess_end(dbgsess_t *s)
{
    if (s != NULL) {
        dbgsess_wipe(s, sizeof(*s));
    }
}

/* nonce = direction || 0 || seq (u32 LE each); aad = session (u64 LE). */
static void frame_params(dbgsess_dir_t dir, uint32_t seq, uint64_t session,
                         uint8_t nonce[DBGSESS_NONCE_SIZE], uint8_t aad[8])
{
    le_put32(nonce, (uint32_t)dir);
    le_put32(nonce + 4, 0);
    le_put32(nonce + 8, seq);
    put64(aad, session);
}

static dbgsess_dir_t tx_dir(const dbgsess_t *s)
{
    return s->role == DBGSESS_CLIENT ? DBGSESS_DOWN : DBGSESS_UP;
}

static dbgsess_dir_t rx_dir(const dbgsess_t *s)
{
    return s->role == DBGSESS_CLIENT ? DBGSESS_UP : DBGSESS_DOWN;
}

kerr_t dbgsess_seal(dbgsess_t *s, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                    size_t *out_len, uint32_t *out_seq)
{
    if (s == NULL || !s->ready || in == NULL || out == NULL || out_len == NULL ||
        out_seq == NULL || len == 0 || len > DBGSESS_PLAIN_MAX) {
        return KERR_INVAL;
    }
    if (cap < len + DBGSESS_TAG_SIZE) {
        return KERR_NOMEM;
    }
    if (s->tx_seq == UINT32_MAX) {
        return KERR_DBG_SEQ;
    }
    uint32_t seq = s->tx_seq + 1u;
    uint8_t nonce[DBGSESS_NONCE_SIZE];
    uint8_t aad[8];
    frame_params(tx_dir(s), seq, s->session, nonce, aad);
    if (kc_gcm_seal(s->tx_key, DBGSESS_KEY_SIZE, nonce, aad, sizeof(aad), in, len, out,
                    out + len) != KC_OK) {
        return KERR_DBG_CRYPTO;
    }
    s->tx_seq = seq;
    *out_seq = seq;
    *out_len = len + DBGSESS_TAG_SIZE;
    return KERR_OK;
}

kerr_t dbgsess_open(dbgsess_t *s, uint32_t seq, const uint8_t *sealed, size_t len, uint8_t *out,
                    size_t cap, size_t *out_len)
{
    if (s == NULL || !s->ready || sealed == NULL || out == NULL || out_len == NULL ||
        len <= DBGSESS_TAG_SIZE || len > DBGSESS_SEALED_MAX) {
        return KERR_INVAL;
    }
    size_t plain = len - DBGSESS_TAG_SIZE;
    if (cap < plain) {
        return KERR_NOMEM;
    }
    if (seq == 0 || seq <= s->rx_seq) {
        return KERR_DBG_REPLAY;
    }
    uint8_t nonce[DBGSESS_NONCE_SIZE];
    uint8_t aad[8];
    frame_params(rx_dir(s), seq, s->session, nonce, aad);
    /* kc_gcm_open wipes out when the tag does not match: no unauthenticated bytes leave. */
    switch (kc_gcm_open(s->rx_key, DBGSESS_KEY_SIZE, nonce, aad, sizeof(aad), sealed, plain,
                        sealed + plain, out)) {
    case KC_OK:
        s->rx_seq = seq;
        *out_len = plain;
        return KERR_OK;
    case KC_BAD_TAG: return KERR_DBG_AUTH;
    default: return KERR_DBG_CRYPTO;
    }
}

/* SHA-256(label || id || session || pub_a [|| pub_b]). */
static kerr_t transcript(const char *label, size_t label_len, const char *device_id,
                         uint64_t session, const uint8_t *pub_a, const uint8_t *pub_b,
                         uint8_t out[DBGSESS_HASH_SIZE])
{
    if (device_id == NULL || pub_a == NULL || out == NULL || kident_check_id(device_id) != KERR_OK) {
        return KERR_INVAL;
    }
    uint8_t sess[8];
    put64(sess, session);
    kc_sha256_t sha;
    if (kc_sha256_start(&sha) != KC_OK) {
        return KERR_DBG_CRYPTO;
    }
    kc_rc_t rc = kc_sha256_update(&sha, label, label_len);
    rc = rc != KC_OK ? rc : kc_sha256_update(&sha, device_id, strlen(device_id));
    rc = rc != KC_OK ? rc : kc_sha256_update(&sha, sess, sizeof(sess));
    rc = rc != KC_OK ? rc : kc_sha256_update(&sha, pub_a, DBGSESS_PUB_SIZE);
    if (pub_b != NULL) {
        rc = rc != KC_OK ? rc : kc_sha256_update(&sha, pub_b, DBGSESS_PUB_SIZE);
    }
    if (rc != KC_OK) {
        kc_sha256_abort(&sha);
        return KERR_DBG_CRYPTO;
    }
    return kc_sha256_finish(&sha, out) == KC_OK ? KERR_OK : KERR_DBG_CRYPTO;
}

kerr_t dbgsess_open_hash(const char *device_id, uint64_t session,
                         const uint8_t client_pub[DBGSESS_PUB_SIZE],
                         uint8_t out[DBGSESS_HASH_SIZE])
{
    return transcript(open_label, sizeof(open_label) - 1u, device_id, session, client_pub, NULL,
                      out);
}

kerr_t dbgsess_accept_hash(const char *device_id, uint64_t session,
                           const uint8_t client_pub[DBGSESS_PUB_SIZE],
                           const uint8_t device_pub[DBGSESS_PUB_SIZE],
                           uint8_t out[DBGSESS_HASH_SIZE])
{
    if (device_pub == NULL) {
        return KERR_INVAL;
    }
    return transcript(accept_label, sizeof(accept_label) - 1u, device_id, session, client_pub,
                      device_pub, out);
}

kerr_t dbgsess_sign(const uint8_t priv[DBGSESS_PRIV_SIZE], const uint8_t hash[DBGSESS_HASH_SIZE],
                    uint8_t out_sig[DBGSESS_SIG_SIZE])
{
    if (priv == NULL || hash == NULL || out_sig == NULL) {
        return KERR_INVAL;
    }
    switch (kc_p256_sign(priv, hash, out_sig)) {
    case KC_OK: return KERR_OK;
    case KC_BAD_PRIV: return KERR_INVAL;
    default: return KERR_DBG_CRYPTO;
    }
}

kerr_t dbgsess_verify(const uint8_t pub[DBGSESS_PUB_SIZE], const uint8_t hash[DBGSESS_HASH_SIZE],
                      const uint8_t sig[DBGSESS_SIG_SIZE])
{
    if (pub == NULL || hash == NULL || sig == NULL) {
        return KERR_INVAL;
    }
    switch (kc_p256_verify(pub, hash, sig)) {
    case KC_OK: return KERR_OK;
    case KC_BAD_KEY: return KERR_DBG_KEY;
    case KC_BAD_SIG: return KERR_DBG_SIGNATURE;
    default: return KERR_DBG_CRYPTO;
    }
}

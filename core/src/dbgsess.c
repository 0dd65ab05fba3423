/*
 * Debug session cryptography (keel/dbgsess.h): ECDH P-256, HKDF-SHA256, AES-128-GCM, ECDSA.
 *
 * The GCM context is set up per frame from the stored key rather than kept in dbgsess_t: the
 * struct stays plain data with no Mbed TLS type in the public header and nothing to free, and the
 * key schedule costs far less than one MQTT hop.
 */
#include <string.h>

#include <mbedtls/ecdh.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "keel/dbgsess.h"
#include "keel/identity.h"

#include "le.h"
#include "p256.h"

static const char open_label[] = "keel-debug-open";
static const char accept_label[] = "keel-debug-accept";
static const char keys_label[] = "keel-debug-keys";

void dbgsess_wipe(void *p, size_t n)
{
    mbedtls_platform_zeroize(p, n);
}

static void put64(uint8_t out[8], uint64_t v)
{
    le_put32(out, (uint32_t)v);
    le_put32(out + 4, (uint32_t)(v >> 32));
}

_Static_assert(DBGSESS_PUB_SIZE == P256_PUB_SIZE && DBGSESS_SIG_SIZE == P256_SIG_SIZE &&
                   DBGSESS_HASH_SIZE == P256_HASH_SIZE, "debug session keys are P-256");

/* Load P-256 and a public point, checked to be a valid point of the curve. */
static kerr_t load_pub(mbedtls_ecp_group *grp, mbedtls_ecp_point *q,
                       const uint8_t pub[DBGSESS_PUB_SIZE])
{
    switch (p256_load_pub(grp, q, pub)) {
    case P256_OK: return KERR_OK;
    case P256_BAD_KEY: return KERR_DBG_KEY;
    default: return KERR_DBG_CRYPTO;
    }
}

kerr_t dbgsess_keygen(dbgsess_eph_t *out_eph, dbgsess_rng_fn rng, void *rng_ctx)
{
    if (out_eph == NULL || rng == NULL) {
        return KERR_INVAL;
    }
    mbedtls_ecp_group grp;
    mbedtls_mpi d;
    mbedtls_ecp_point q;
    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&d);
    mbedtls_ecp_point_init(&q);
    size_t olen = 0;
    kerr_t err = KERR_DBG_CRYPTO;
    if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0 &&
        mbedtls_ecp_gen_keypair(&grp, &d, &q, rng, rng_ctx) == 0 &&
        mbedtls_mpi_write_binary(&d, out_eph->priv, DBGSESS_PRIV_SIZE) == 0 &&
        mbedtls_ecp_point_write_binary(&grp, &q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, out_eph->pub,
                                       DBGSESS_PUB_SIZE) == 0 &&
        olen == DBGSESS_PUB_SIZE) {
        err = KERR_OK;
    } else {
        dbgsess_wipe(out_eph, sizeof(*out_eph));
    }
    mbedtls_ecp_point_free(&q);
    mbedtls_mpi_free(&d);
    mbedtls_ecp_group_free(&grp);
    return err;
}

/* The ECDH shared secret (x coordinate, 32 bytes big-endian) of our scalar and the peer's point. */
static kerr_t shared_secret(const uint8_t priv[DBGSESS_PRIV_SIZE],
                            const uint8_t peer_pub[DBGSESS_PUB_SIZE], uint8_t out[32],
                            dbgsess_rng_fn rng, void *rng_ctx)
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi d, z;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&d);
    mbedtls_mpi_init(&z);
    kerr_t err = load_pub(&grp, &q, peer_pub);
    if (err == KERR_OK) {
        if (mbedtls_mpi_read_binary(&d, priv, DBGSESS_PRIV_SIZE) != 0 ||
            mbedtls_ecp_check_privkey(&grp, &d) != 0) {
            err = KERR_INVAL;
        } else if (mbedtls_ecdh_compute_shared(&grp, &z, &q, &d, rng, rng_ctx) != 0 ||
                   mbedtls_mpi_write_binary(&z, out, 32) != 0) {
            err = KERR_DBG_CRYPTO;
        }
    }
    mbedtls_mpi_free(&z);
    mbedtls_mpi_free(&d);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return err;
}

kerr_t dbgsess_start(dbgsess_t *s, dbgsess_role_t role, uint64_t session, dbgsess_eph_t *mine,
                     const uint8_t peer_pub[DBGSESS_PUB_SIZE], dbgsess_rng_fn rng, void *rng_ctx)
{
    if (s == NULL || mine == NULL || peer_pub == NULL || rng == NULL ||
        (role != DBGSESS_CLIENT && role != DBGSESS_DEVICE)) {
        if (mine != NULL) {
            dbgsess_wipe(mine->priv, sizeof(mine->priv));
        }
        return KERR_INVAL;
    }
    dbgsess_end(s);
    uint8_t z[32];
    kerr_t err = shared_secret(mine->priv, peer_pub, z, rng, rng_ctx);
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
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (md == NULL || mbedtls_hkdf(md, NULL, 0, z, sizeof(z), info, n, okm, sizeof(okm)) != 0) {
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
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    kerr_t err = KERR_DBG_CRYPTO;
    if (mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, s->tx_key, 8u * DBGSESS_KEY_SIZE) == 0 &&
        mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, len, nonce, sizeof(nonce), aad,
                                  sizeof(aad), in, out, DBGSESS_TAG_SIZE, out + len) == 0) {
        s->tx_seq = seq;
        *out_seq = seq;
        *out_len = len + DBGSESS_TAG_SIZE;
        err = KERR_OK;
    }
    mbedtls_gcm_free(&gcm);
    return err;
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
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    kerr_t err = KERR_DBG_CRYPTO;
    if (mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, s->rx_key, 8u * DBGSESS_KEY_SIZE) == 0) {
        int rc = mbedtls_gcm_auth_decrypt(&gcm, plain, nonce, sizeof(nonce), aad, sizeof(aad),
                                          sealed + plain, DBGSESS_TAG_SIZE, sealed, out);
        if (rc == 0) {
            s->rx_seq = seq;
            *out_len = plain;
            err = KERR_OK;
        } else if (rc == MBEDTLS_ERR_GCM_AUTH_FAILED) {
            dbgsess_wipe(out, plain); /* never hand out unauthenticated bytes */
            err = KERR_DBG_AUTH;
        }
    }
    mbedtls_gcm_free(&gcm);
    return err;
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
    mbedtls_sha256_context sha;
    mbedtls_sha256_init(&sha);
    int rc = mbedtls_sha256_starts(&sha, 0);
    rc = rc != 0 ? rc : mbedtls_sha256_update(&sha, (const uint8_t *)label, label_len);
    rc = rc != 0 ? rc
                 : mbedtls_sha256_update(&sha, (const uint8_t *)device_id, strlen(device_id));
    rc = rc != 0 ? rc : mbedtls_sha256_update(&sha, sess, sizeof(sess));
    rc = rc != 0 ? rc : mbedtls_sha256_update(&sha, pub_a, DBGSESS_PUB_SIZE);
    if (pub_b != NULL) {
        rc = rc != 0 ? rc : mbedtls_sha256_update(&sha, pub_b, DBGSESS_PUB_SIZE);
    }
    rc = rc != 0 ? rc : mbedtls_sha256_finish(&sha, out);
    mbedtls_sha256_free(&sha);
    return rc == 0 ? KERR_OK : KERR_DBG_CRYPTO;
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
                    uint8_t out_sig[DBGSESS_SIG_SIZE], dbgsess_rng_fn rng, void *rng_ctx)
{
    if (priv == NULL || hash == NULL || out_sig == NULL || rng == NULL) {
        return KERR_INVAL;
    }
    mbedtls_ecp_group grp;
    mbedtls_mpi d, r, s;
    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&d);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    kerr_t err = KERR_DBG_CRYPTO;
    if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0) {
        if (mbedtls_mpi_read_binary(&d, priv, DBGSESS_PRIV_SIZE) != 0 ||
            mbedtls_ecp_check_privkey(&grp, &d) != 0) {
            err = KERR_INVAL;
        } else if (mbedtls_ecdsa_sign(&grp, &r, &s, &d, hash, DBGSESS_HASH_SIZE, rng, rng_ctx) ==
                       0 &&
                   mbedtls_mpi_write_binary(&r, out_sig, 32) == 0 &&
                   mbedtls_mpi_write_binary(&s, out_sig + 32, 32) == 0) {
            err = KERR_OK;
        }
    }
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&d);
    mbedtls_ecp_group_free(&grp);
    return err;
}

kerr_t dbgsess_verify(const uint8_t pub[DBGSESS_PUB_SIZE], const uint8_t hash[DBGSESS_HASH_SIZE],
                      const uint8_t sig[DBGSESS_SIG_SIZE])
{
    if (pub == NULL || hash == NULL || sig == NULL) {
        return KERR_INVAL;
    }
    switch (p256_verify(pub, hash, sig)) {
    case P256_OK: return KERR_OK;
    case P256_BAD_KEY: return KERR_DBG_KEY;
    case P256_BAD_SIG: return KERR_DBG_SIGNATURE;
    default: return KERR_DBG_CRYPTO;
    }
}

/* devcert: see devcert.h. Mbed TLS 3.6 (cmake/keel_mbedtls.cmake, the pinned source the device runs). */
#include "devcert.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "keel/kcrypto.h"

#define VALID_YEARS 20

typedef struct issue_ctx {
    mbedtls_x509_crt ca;
    mbedtls_pk_context ca_key, key;
    mbedtls_x509write_cert crt;
    uint8_t priv[KC_P256_PRIV_SIZE];
} issue_ctx_t;

static bool fail(const char *prog, const char *what, int ret)
{
    fprintf(stderr, "%s: %s (mbedtls -0x%04x)\n", prog, what, (unsigned)-ret);
    return false;
}

static void when(time_t t, char out[16])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

static bool issue(const char *prog, const char *id, const char *ca_cert_path, const char *ca_key_path,
                  issue_ctx_t *c, devcert_t *out)
{
    int ret;
    if (kc_init() != KC_OK)
        return fail(prog, "cannot start the crypto library (PSA)", -1);
    if ((ret = mbedtls_x509_crt_parse_file(&c->ca, ca_cert_path)) != 0) {
        fprintf(stderr, "%s: --fleet-ca %s: not a PEM X.509 certificate\n", prog, ca_cert_path);
        return false;
    }
    if ((ret = mbedtls_pk_parse_keyfile(&c->ca_key, ca_key_path, NULL, kc_random, NULL)) != 0) {
        fprintf(stderr, "%s: --fleet-ca-key %s: not an unencrypted PEM private key\n", prog, ca_key_path);
        return false;
    }
    if (mbedtls_pk_check_pair(&c->ca.pk, &c->ca_key, kc_random, NULL) != 0) {
        fprintf(stderr, "%s: --fleet-ca-key %s is not the key of --fleet-ca %s\n", prog, ca_key_path,
                ca_cert_path);
        return false;
    }
    uint8_t pub[KC_P256_PUB_SIZE];
    if (kc_p256_keygen(c->priv, pub, kc_random, NULL) != KC_OK ||
        kc_p256_to_pk(&c->key, c->priv, pub) != KC_OK)
        return fail(prog, "cannot generate the device key", -1);
    if ((ret = mbedtls_pk_write_key_pem(&c->key, (unsigned char *)out->key_pem, sizeof out->key_pem)) != 0)
        return fail(prog, "cannot encode the device key", ret);

    char issuer[256], subject[96], nb[16], na[16];
    if (mbedtls_x509_dn_gets(issuer, sizeof issuer, &c->ca.subject) < 0)
        return fail(prog, "cannot read the CA's name", -1);
    snprintf(subject, sizeof subject, "CN=%s", id);
    time_t now = time(NULL);
    when(now - 24 * 3600, nb);
    when(now + (time_t)VALID_YEARS * 365 * 24 * 3600, na);
    unsigned char rnd[16];
    if ((ret = kc_random(NULL, rnd, sizeof rnd)) != 0)
        return fail(prog, "no random serial number", ret);
    /* A positive serial in minimal DER: set_serial_raw() writes the bytes as they are, and a
     * leading zero byte (1 device in 128 before this) makes a certificate OpenSSL refuses to
     * decode: the broker then answers every handshake with alert 50. */
    rnd[0] = (unsigned char)((rnd[0] & 0x7F) | 0x40);
    mbedtls_x509write_crt_set_version(&c->crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&c->crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&c->crt, &c->key);
    mbedtls_x509write_crt_set_issuer_key(&c->crt, &c->ca_key);
    if ((ret = mbedtls_x509write_crt_set_serial_raw(&c->crt, rnd, sizeof rnd)) != 0 ||
        (ret = mbedtls_x509write_crt_set_subject_name(&c->crt, subject)) != 0 ||
        (ret = mbedtls_x509write_crt_set_issuer_name(&c->crt, issuer)) != 0 ||
        (ret = mbedtls_x509write_crt_set_validity(&c->crt, nb, na)) != 0 ||
        (ret = mbedtls_x509write_crt_set_basic_constraints(&c->crt, 0, -1)) != 0 ||
        (ret = mbedtls_x509write_crt_set_key_usage(&c->crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) != 0 ||
        (ret = mbedtls_x509write_crt_pem(&c->crt, (unsigned char *)out->cert_pem, sizeof out->cert_pem,
                                         kc_random, NULL)) != 0)
        return fail(prog, "cannot issue the device certificate", ret);
    return true;
}

bool devcert_issue(const char *prog, const char *device_id, const char *ca_cert_path,
                   const char *ca_key_path, devcert_t *out)
{
    issue_ctx_t c;
    mbedtls_x509_crt_init(&c.ca);
    mbedtls_pk_init(&c.ca_key);
    mbedtls_pk_init(&c.key);
    mbedtls_x509write_crt_init(&c.crt);
    memset(out, 0, sizeof *out);
    bool ok = issue(prog, device_id, ca_cert_path, ca_key_path, &c, out);
    kc_wipe(c.priv, sizeof c.priv);
    mbedtls_x509write_crt_free(&c.crt);
    mbedtls_pk_free(&c.key);
    mbedtls_pk_free(&c.ca_key);
    mbedtls_x509_crt_free(&c.ca);
    if (!ok)
        memset(out, 0, sizeof *out);
    return ok;
}

/* simcert: see simcert.h. */
#include "simcert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>

bool simcert_ca_load(simcert_ca_t *ca, const char *cert_path, const char *key_path, char *why,
                     unsigned cap)
{
    memset(ca, 0, sizeof(*ca));
    FILE *f = fopen(cert_path, "r");
    if (f != NULL) {
        ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (ca->cert == NULL) {
        snprintf(why, cap, "%s: not a readable PEM certificate", cert_path);
        return false;
    }
    f = fopen(key_path, "r");
    if (f != NULL) {
        ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (ca->key == NULL || X509_check_private_key(ca->cert, ca->key) != 1) {
        snprintf(why, cap, "%s: not a readable PEM key of the CA in %s", key_path, cert_path);
        simcert_ca_free(ca);
        ERR_clear_error();
        return false;
    }
    return true;
}

void simcert_ca_free(simcert_ca_t *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    memset(ca, 0, sizeof(*ca));
}

bool simcert_issue(const simcert_ca_t *ca, const char *id, uint64_t serial, simcert_t *out)
{
    memset(out, 0, sizeof(*out));
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();
    bool ok = k != NULL && x != NULL && n != NULL &&
              X509_set_version(x, 2) == 1 &&
              ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) == 1 &&
              X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)id, -1, -1, 0) == 1 &&
              X509_set_subject_name(x, n) == 1 &&
              X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(x), -86400L) != NULL &&
              X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400L) != NULL &&
              X509_set_pubkey(x, k) == 1 && X509_sign(x, ca->key, EVP_sha256()) > 0;
    int cl = ok ? i2d_X509(x, NULL) : -1;
    int kl = ok ? i2d_PrivateKey(k, NULL) : -1;
    ok = ok && cl > 0 && kl > 0 && cl < 65536 && kl < 65536 &&
         (out->cert = malloc((size_t)cl + (size_t)kl)) != NULL;
    if (ok) {
        unsigned char *p = out->cert;
        out->key = out->cert + cl;
        out->cert_len = (uint16_t)i2d_X509(x, &p);
        p = out->key;
        out->key_len = (uint16_t)i2d_PrivateKey(k, &p);
    }
    X509_NAME_free(n);
    X509_free(x);
    EVP_PKEY_free(k);
    if (!ok) {
        ERR_clear_error();
        simcert_free(out);
    }
    return ok;
}

void simcert_free(simcert_t *c)
{
    free(c->cert);
    memset(c, 0, sizeof(*c));
}

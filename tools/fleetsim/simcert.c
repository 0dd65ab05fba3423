/* simcert: see simcert.h. */
#include "simcert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#define IDFILE_MAGIC "KSIMID1\n"
#define IDFILE_DER_MAX 4096u /* a P-256 certificate or key is ~500 bytes */

static bool put(FILE *f, const void *p, size_t n)
{
    return n == 0 || fwrite(p, 1, n, f) == n;
}

static bool put_u16(FILE *f, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return put(f, b, 2);
}

bool simcert_save(const char *path, char *const ids[], const simcert_t *certs, uint32_t count,
                  char *why, unsigned cap)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (f == NULL) {
        snprintf(why, cap, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    uint8_t n[4] = {(uint8_t)count, (uint8_t)(count >> 8), (uint8_t)(count >> 16), (uint8_t)(count >> 24)};
    bool ok = put(f, IDFILE_MAGIC, 8) && put(f, n, 4);
    for (uint32_t i = 0; ok && i < count; i++) {
        size_t idlen = strlen(ids[i]);
        uint8_t l = (uint8_t)idlen;
        ok = idlen < 256u && put(f, &l, 1) && put(f, ids[i], idlen) &&
             put_u16(f, certs[i].cert_len) && put_u16(f, certs[i].key_len) &&
             put(f, certs[i].cert, certs[i].cert_len) && put(f, certs[i].key, certs[i].key_len);
    }
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(why, cap, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}

static bool get(FILE *f, void *p, size_t n)
{
    return n == 0 || fread(p, 1, n, f) == n;
}

static bool get_u16(FILE *f, uint16_t *v)
{
    uint8_t b[2];
    if (!get(f, b, 2)) {
        return false;
    }
    *v = (uint16_t)(b[0] | b[1] << 8);
    return true;
}

bool simcert_load(const char *path, char *const ids[], simcert_t *certs, uint32_t count, char *why,
                  unsigned cap)
{
    memset(certs, 0, sizeof(*certs) * count);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, cap, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    char magic[8];
    uint8_t n[4];
    bool ok = get(f, magic, 8) && memcmp(magic, IDFILE_MAGIC, 8) == 0 && get(f, n, 4) &&
              ((uint32_t)n[0] | (uint32_t)n[1] << 8 | (uint32_t)n[2] << 16 | (uint32_t)n[3] << 24) == count;
    const char *what = ok ? "" : "not an identities file of this many devices";
    for (uint32_t i = 0; ok && i < count; i++) {
        uint8_t l;
        char id[256];
        uint16_t cl, kl;
        ok = get(f, &l, 1) && get(f, id, l) && get_u16(f, &cl) && get_u16(f, &kl);
        id[ok ? l : 0] = '\0';
        if (ok && strcmp(id, ids[i]) != 0) {
            what = "devices in another order or of other names";
            ok = false;
        } else if (ok && (cl == 0 || kl == 0 || cl > IDFILE_DER_MAX || kl > IDFILE_DER_MAX)) {
            what = "a certificate or key of an impossible length";
            ok = false;
        } else if (ok) {
            certs[i].cert = malloc((size_t)cl + kl);
            ok = certs[i].cert != NULL && get(f, certs[i].cert, (size_t)cl + kl);
            certs[i].key = certs[i].cert + cl;
            certs[i].cert_len = cl;
            certs[i].key_len = kl;
            what = ok ? what : "cut short";
        } else {
            what = "cut short";
        }
    }
    ok = ok && fgetc(f) == EOF;
    fclose(f);
    if (!ok) {
        snprintf(why, cap, "%s: %s", path, what[0] ? what : "bytes after the last device");
        for (uint32_t i = 0; i < count; i++) {
            simcert_free(&certs[i]);
        }
    }
    return ok;
}

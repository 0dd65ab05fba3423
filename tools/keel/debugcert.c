/*
 * The device's certificate and public key for `keel debug` (debugcert.h).
 */
#include "debugcert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "keel/identity.h"
#include "keel/kcrypto.h"

#include "cli.h"
#include "keel/board.h"
#include "net_rec.h"
#include "stack.h"

/* Read a file into a NUL-terminated malloc'd buffer (at most max bytes). */
static char *slurp(const char *path, size_t max, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf != NULL ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n > max) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *out_len = n;
    return buf;
}

/*
 * The device record of an emulated device's state directory: its certificate PEM. The identity
 * page is written once at provisioning and never again, so it is read here without the device's
 * lock, also while the device runs.
 */
static char *cert_from_state(const char *dir)
{
    char path[STACK_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, kboard_host()->store.file);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    uint8_t rec[NET_DEVICE_REC_MAX];
    bool ok = fseek(f, (long)(kboard_host()->store.iflash.off + kboard_host()->ipart.ident + NET_REC_DEVICE_OFF),
                    SEEK_SET) == 0 &&
              fread(rec, 1, sizeof rec, f) == sizeof rec;
    fclose(f);
    net_device_cred_t cred;
    if (!ok || net_device_rec_decode(rec, sizeof rec, &cred) != KERR_OK)
        return NULL;
    char *pem = malloc(cred.cert_len);
    if (pem != NULL)
        memcpy(pem, cred.cert_pem, cred.cert_len);
    return pem;
}

/*
 * The device's public key, from a certificate the fleet CA issued to this device id. Where the
 * certificate comes from (first that applies): --device-cert FILE; --device-state DIR (an
 * emulated device's flash); the stack's STATE/devices/ID (emulated by keel up) or STATE/ID.pem
 * (simulated). The CA is --fleet-ca, else STATE/ca.pem.
 */
bool debugcert_device_pub(const char *prog, const char *device, const char *cert_path,
                          const char *dev_state, const char *state, const char *ca_path,
                          uint8_t out[DBGSESS_PUB_SIZE])
{
    char path[STACK_PATH_MAX + 80], where[STACK_PATH_MAX + 160];
    char *pem = NULL;
    size_t n = 0;
    if (cert_path != NULL) {
        pem = slurp(cert_path, 16384, &n);
        snprintf(where, sizeof where, "--device-cert %s", cert_path);
        if (pem == NULL) {
            fprintf(stderr, "%s: %s: cannot read it (%s)\n", prog, where, strerror(errno));
            return false;
        }
    } else if (dev_state != NULL) {
        pem = cert_from_state(dev_state);
        snprintf(where, sizeof where, "the device record in %s/%s", dev_state,
                 kboard_host()->store.file);
        if (pem == NULL) {
            fprintf(stderr, "%s: %s has no device certificate (not provisioned with --fleet-ca-key?)\n",
                    prog, where);
            return false;
        }
    } else {
        snprintf(path, sizeof path, "%s/devices/%s", state, device);
        pem = cert_from_state(path);
        snprintf(where, sizeof where, "the device record in %s/%s", path, kboard_host()->store.file);
        if (pem == NULL) {
            snprintf(path, sizeof path, "%s/%s.pem", state, device);
            pem = slurp(path, 16384, &n);
            snprintf(where, sizeof where, "%s", path);
        }
        if (pem == NULL) {
            fprintf(stderr, "%s: no certificate of '%s' found in the stack's state %s (neither "
                            "devices/%s/ nor %s.pem): give --device-cert CERT.pem or --device-state "
                            "DIR\n", prog, device, state, device, device);
            return false;
        }
    }
    char capath[STACK_PATH_MAX + 16];
    if (ca_path == NULL) {
        snprintf(capath, sizeof capath, "%s/ca.pem", state);
        ca_path = capath;
    }
    mbedtls_x509_crt crt, ca;
    mbedtls_x509_crt_init(&crt);
    mbedtls_x509_crt_init(&ca);
    bool ok = false;
    uint32_t flags = 0;
    bool has_priv = false;
    char cn[KIDENT_ID_MAX + 2] = "";
    if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, strlen(pem) + 1) != 0) {
        fprintf(stderr, "%s: %s is not a PEM X.509 certificate\n", prog, where);
    } else if (mbedtls_x509_crt_parse_file(&ca, ca_path) != 0) {
        fprintf(stderr, "%s: the fleet CA %s is missing or not a PEM certificate: give --fleet-ca "
                        "CA.pem\n", prog, ca_path);
    } else if (mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL) != 0) {
        fprintf(stderr, "%s: the certificate from %s is not issued by the fleet CA %s: refusing to "
                        "trust it\n", prog, where, ca_path);
    } else {
        for (const mbedtls_x509_name *nm = &crt.subject; nm != NULL; nm = nm->next) {
            if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid) == 0 && nm->val.len < sizeof cn) {
                memcpy(cn, nm->val.p, nm->val.len);
                cn[nm->val.len] = '\0';
            }
        }
        if (strcmp(cn, device) != 0) {
            fprintf(stderr, "%s: the certificate from %s belongs to '%s', not '%s'\n", prog, where,
                    cn, device);
        } else if (kc_p256_from_pk(&crt.pk, out, NULL, &has_priv) != KC_OK) {
            fprintf(stderr, "%s: the certificate from %s does not hold a P-256 key\n", prog, where);
        } else {
            ok = true;
        }
    }
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&crt);
    free(pem);
    return ok;
}

/*
 * simcert: device identities made in memory, fast: a P-256 key and an X.509 certificate
 * (CN = device id) signed by the stack's CA, kept as DER (about 500 bytes a device) and parsed
 * again at each connect. OpenSSL, like the rest of the load generator's TLS; ~0.1 ms a device,
 * against a fork of openssl(1) per device in scripts/stack.sh.
 */
#ifndef KEEL_FLEETSIM_SIMCERT_H
#define KEEL_FLEETSIM_SIMCERT_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

typedef struct simcert_ca {
    X509 *cert;
    EVP_PKEY *key;
} simcert_ca_t;

typedef struct simcert {
    uint8_t *cert, *key; /* DER (one allocation: key follows cert) */
    uint16_t cert_len, key_len;
} simcert_t;

/* Load the CA certificate and key (PEM files). False with a message in why. */
bool simcert_ca_load(simcert_ca_t *ca, const char *cert_path, const char *key_path, char *why,
                     unsigned cap);
void simcert_ca_free(simcert_ca_t *ca);

/* Issue a key and certificate for id, valid from a day ago for a year. */
bool simcert_issue(const simcert_ca_t *ca, const char *id, uint64_t serial, simcert_t *out);
void simcert_free(simcert_t *c);

/*
 * Identities issued ahead of time (`fleetsim --issue FILE`, run by `keel up` with the CA key), so
 * the long-running fleetsim needs no CA key (`--identities FILE`; docs/security.md). The file:
 * "KSIMID1\n", count (u32 LE), then per device: id length (u8), id, cert length and key length
 * (u16 LE each), the DER certificate, the DER key. Written 0600 through a temporary file.
 */
bool simcert_save(const char *path, char *const ids[], const simcert_t *certs, uint32_t count,
                  char *why, unsigned cap);

/*
 * Load count identities into certs (simcert_free each); device i must be ids[i] (the file is in
 * the devices' tree: nothing in it is trusted, every length is bounded). False with why.
 */
bool simcert_load(const char *path, char *const ids[], simcert_t *certs, uint32_t count, char *why,
                  unsigned cap);

#endif /* KEEL_FLEETSIM_SIMCERT_H */

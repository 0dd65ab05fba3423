/*
 * devcert: issue a device's identity for mutual TLS: a fresh P-256 key and a certificate for it
 * signed by the fleet CA, CN = the device id. Done on the host at provisioning (like a factory
 * station): the key is written into the device's secure identity page and kept nowhere else.
 */
#ifndef KEEL_TOOLS_KEEL_DEVCERT_H
#define KEEL_TOOLS_KEEL_DEVCERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVCERT_PEM_MAX 2048u

typedef struct devcert {
    char key_pem[DEVCERT_PEM_MAX];  /* SEC1 "EC PRIVATE KEY" PEM, NUL-terminated */
    char cert_pem[DEVCERT_PEM_MAX]; /* X.509 v3 PEM, NUL-terminated */
} devcert_t;

/*
 * Issue a key and certificate for device_id with the CA in ca_cert_path/ca_key_path (PEM files;
 * the key must belong to the certificate). Valid from a day ago for 20 years. On failure prints
 * "prog: ..." (what was wrong with which file) and returns false.
 */
bool devcert_issue(const char *prog, const char *device_id, const char *ca_cert_path,
                   const char *ca_key_path, devcert_t *out);

#endif /* KEEL_TOOLS_KEEL_DEVCERT_H */

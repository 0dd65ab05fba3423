/*
 * keyfile: fleet signing keys on disk (P-256, PEM, through Mbed TLS).
 *
 *   NAME.key   the private key, SEC1 "-----BEGIN EC PRIVATE KEY-----", mode 0600: signs bundles
 *   NAME.pub   its public key, "-----BEGIN PUBLIC KEY-----" (SubjectPublicKeyInfo): given to
 *              keeld and provisioned into devices, which trust bundles it verifies
 *
 * The files are the interface: `openssl ec -in NAME.key -pubout` gives the same NAME.pub, and a
 * key made by `openssl ecparam -name prime256v1 -genkey` loads here. Keys of another curve or
 * type are refused with a sentence that says so. Used by the keel CLI and keeld.
 */
#ifndef KEEL_TOOLS_KEEL_KEYFILE_H
#define KEEL_TOOLS_KEEL_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/bundle.h"

#define KEYFILE_PEM_MAX 1024u

/* A loaded key: the public point always, the private scalar when the file held one. */
typedef struct keyfile_key {
    bool has_priv;
    uint8_t priv[32];              /* big-endian scalar */
    uint8_t pub[KBDL_PUBKEY_SIZE]; /* 0x04 || X || Y */
} keyfile_key_t;

/*
 * Generate a key pair and write DIR/NAME.key (0600, created exclusively: an existing key is
 * never overwritten) and DIR/NAME.pub; DIR is made (0700) if missing, its parent must exist. name must be 1..63 of [A-Za-z0-9._-]. The paths written
 * go to out_key/out_pub (cap bytes each) when not NULL. On failure writes a sentence into why
 * (why_cap bytes) and returns false; a half-written pair is removed.
 */
bool keyfile_new(const char *dir, const char *name, char *out_key, char *out_pub, size_t cap,
                 char *why, size_t why_cap);

/*
 * Load a PEM key from path: a private key (EC PRIVATE KEY or PKCS#8) or a public key
 * (PUBLIC KEY). want_priv: a public key is an error. On failure writes why and returns false.
 */
bool keyfile_load(const char *path, bool want_priv, keyfile_key_t *out, char *why,
                  size_t why_cap);

/* The same from a NUL-terminated PEM text held in memory (what keeld's config gives). */
bool keyfile_parse(const char *pem, bool want_priv, keyfile_key_t *out, char *why,
                   size_t why_cap);

/* "-----BEGIN PUBLIC KEY-----..." for the point pub (NUL-terminated, cap >= KEYFILE_PEM_MAX). */
bool keyfile_pub_pem(const uint8_t pub[KBDL_PUBKEY_SIZE], char *out, size_t cap);

/* The key id as 16 hex digits (out >= 17 bytes): what bundle inspect and keeld print. */
void keyfile_id_hex(const uint8_t key_id[KBDL_KEY_ID_SIZE], char *out, size_t cap);

#endif /* KEEL_TOOLS_KEEL_KEYFILE_H */

/* keyfile: see keyfile.h. Mbed TLS 3.6 (cmake/keel_mbedtls.cmake, the pinned source the device runs). */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/pk.h>

#include "keel/identity.h"
#include "keel/kcrypto.h"

#define KEYFILE_READ_MAX 16384u /* a PEM P-256 key is < 300 bytes; anything this big is not one */

static bool say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool say(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return false;
}

/* Write the whole text to a new file (O_EXCL) with mode; false with errno set. */
static bool write_new(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return false;
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(path);
            errno = e ? e : EIO;
            return false;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(path);
        errno = e;
        return false;
    }
    return true;
}

/* Take the P-256 point (and scalar) out of a parsed pk context. */
static bool from_pk(mbedtls_pk_context *pk, bool want_priv, keyfile_key_t *out, char *why,
                    size_t cap)
{
    bool has_priv = false;
    switch (kc_p256_from_pk(pk, out->pub, out->priv, &has_priv)) {
    case KC_OK: break;
    case KC_BAD_KEY:
        return say(why, cap, "not an EC key (Keel signs with ECDSA P-256: make one with "
                             "'keel keys new')");
    case KC_OTHER_CURVE:
        return say(why, cap, "an EC key on another curve (Keel needs P-256, prime256v1)");
    default: return say(why, cap, "cannot read the key");
    }
    out->has_priv = has_priv;
    if (want_priv && !has_priv)
        return say(why, cap, "a public key, not a private key (sign with NAME.key, not NAME.pub)");
    return true;
}

bool keyfile_parse(const char *pem, bool want_priv, keyfile_key_t *out, char *why,
                   size_t why_cap)
{
    memset(out, 0, sizeof *out);
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    size_t len = strlen(pem) + 1u; /* PEM input is parsed with its NUL */
    bool ok;
    if (kc_init() != KC_OK) {
        mbedtls_pk_free(&pk);
        return say(why, why_cap, "cannot initialise PSA Crypto");
    }
    if (mbedtls_pk_parse_key(&pk, (const unsigned char *)pem, len, NULL, 0, kc_random, NULL) == 0) {
        ok = from_pk(&pk, want_priv, out, why, why_cap);
    } else {
        mbedtls_pk_free(&pk);
        mbedtls_pk_init(&pk);
        if (mbedtls_pk_parse_public_key(&pk, (const unsigned char *)pem, len) == 0)
            ok = from_pk(&pk, want_priv, out, why, why_cap);
        else
            ok = say(why, why_cap, "not a PEM key (expected '-----BEGIN EC PRIVATE KEY-----' "
                                   "or '-----BEGIN PUBLIC KEY-----', unencrypted)");
    }
    mbedtls_pk_free(&pk);
    if (!ok)
        memset(out, 0, sizeof *out);
    return ok;
}

bool keyfile_load(const char *path, bool want_priv, keyfile_key_t *out, char *why,
                  size_t why_cap)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return say(why, why_cap, "cannot read the file: %s", strerror(errno));
    char buf[KEYFILE_READ_MAX + 1u];
    size_t n = fread(buf, 1, KEYFILE_READ_MAX + 1u, f);
    bool err = ferror(f) != 0;
    fclose(f);
    if (err)
        return say(why, why_cap, "cannot read: %s", strerror(errno));
    if (n > KEYFILE_READ_MAX)
        return say(why, why_cap, "too big to be a PEM key (%u bytes at most)",
                   KEYFILE_READ_MAX);
    buf[n] = '\0';
    if (memchr(buf, '\0', n) != NULL)
        return say(why, why_cap, "not a PEM key (binary data)");
    return keyfile_parse(buf, want_priv, out, why, why_cap);
}

bool keyfile_pub_pem(const uint8_t pub[KBDL_PUBKEY_SIZE], char *out, size_t cap)
{
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    bool ok = kc_p256_to_pk(&pk, NULL, pub) == KC_OK &&
              mbedtls_pk_write_pubkey_pem(&pk, (unsigned char *)out, cap) == 0;
    mbedtls_pk_free(&pk);
    return ok;
}

void keyfile_id_hex(const uint8_t key_id[KBDL_KEY_ID_SIZE], char *out, size_t cap)
{
    size_t o = 0;
    for (unsigned i = 0; i < KBDL_KEY_ID_SIZE && o + 3u <= cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", key_id[i]);
}

/* Generate the pair into PEM texts. */
static bool generate(char key_pem[KEYFILE_PEM_MAX], char pub_pem[KEYFILE_PEM_MAX], char *why,
                     size_t cap)
{
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    uint8_t priv[KC_P256_PRIV_SIZE], pub[KC_P256_PUB_SIZE];
    bool ok = kc_p256_keygen(priv, pub, kc_random, NULL) == KC_OK &&
              kc_p256_to_pk(&pk, priv, pub) == KC_OK;
    if (!ok)
        say(why, cap, "cannot generate a P-256 key");
    if (ok && (mbedtls_pk_write_key_pem(&pk, (unsigned char *)key_pem, KEYFILE_PEM_MAX) != 0 ||
               mbedtls_pk_write_pubkey_pem(&pk, (unsigned char *)pub_pem, KEYFILE_PEM_MAX) != 0))
        ok = say(why, cap, "cannot encode the key as PEM");
    mbedtls_pk_free(&pk);
    kc_wipe(priv, sizeof priv);
    return ok;
}

bool keyfile_new(const char *dir, const char *name, char *out_key, char *out_pub, size_t cap,
                 char *why, size_t why_cap)
{
    /* Same alphabet as device ids: the name becomes a file name, never a path. */
    if (kident_check_id(name) != KERR_OK)
        return say(why, why_cap, "'%s' is not a key name: 1 to %u characters from A-Z a-z 0-9 "
                                 ". _ -", name, KIDENT_ID_MAX);
    char key_path[4096], pub_path[4096];
    if ((size_t)snprintf(key_path, sizeof key_path, "%s/%s.key", dir, name) >= sizeof key_path ||
        (size_t)snprintf(pub_path, sizeof pub_path, "%s/%s.pub", dir, name) >= sizeof pub_path)
        return say(why, why_cap, "directory path too long");
    /* A keys directory of its own is private: 0700 when we make it. */
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return say(why, why_cap, "cannot create directory %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(key_path, &st) == 0 || stat(pub_path, &st) == 0)
        return say(why, why_cap, "%s already exists: a signing key is never overwritten (pick "
                                 "another NAME or move the old pair away)",
                   stat(key_path, &st) == 0 ? key_path : pub_path);
    char key_pem[KEYFILE_PEM_MAX], pub_pem[KEYFILE_PEM_MAX];
    if (!generate(key_pem, pub_pem, why, why_cap))
        return false;
    bool ok = true;
    if (!write_new(key_path, key_pem, 0600))
        ok = say(why, why_cap, "cannot write %s: %s", key_path, strerror(errno));
    else if (!write_new(pub_path, pub_pem, 0644)) {
        ok = say(why, why_cap, "cannot write %s: %s", pub_path, strerror(errno));
        unlink(key_path);
    }
    kc_wipe(key_pem, sizeof key_pem);
    if (ok && out_key != NULL)
        snprintf(out_key, cap, "%s", key_path);
    if (ok && out_pub != NULL)
        snprintf(out_pub, cap, "%s", pub_path);
    return ok;
}

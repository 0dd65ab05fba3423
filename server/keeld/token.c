/* API token generation and hashing. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "keel/kcrypto.h"

#include "token.h"

static void hex(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", in[i]);
    }
}

int tok_generate(char out[TOK_LEN + 1])
{
    uint8_t raw[32];

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        return -1;
    }
    memcpy(out, "keel_", 5);
    hex(raw, sizeof(raw), out + 5);
    return 0;
}

void tok_hash(const char *token, size_t len, char out[TOK_HASH_HEX])
{
    uint8_t digest[32];

    kc_sha256((const unsigned char *)token, len, digest);
    hex(digest, sizeof(digest), out);
}

/*
 * API tokens. A token is "keel_" followed by 64 hex digits (32 bytes from getrandom); only its
 * SHA-256 (hex) is stored, so a copy of the database does not give API access.
 */
#ifndef KEEL_SERVER_KEELD_TOKEN_H
#define KEEL_SERVER_KEELD_TOKEN_H

#include <stddef.h>

#define TOK_LEN (5u + 64u)        /* characters, without the NUL */
#define TOK_HASH_HEX 65u          /* 64 hex digits + NUL */

/* New random token into out (TOK_LEN + 1 bytes). 0, or -1 when the system has no randomness. */
int tok_generate(char out[TOK_LEN + 1]);

/* SHA-256 of the token's characters as lowercase hex. */
void tok_hash(const char *token, size_t len, char out[TOK_HASH_HEX]);

#endif /* KEEL_SERVER_KEELD_TOKEN_H */

/*
 * Device identity record, written once at provisioning into the identity page of internal
 * flash (secure-only), read by the microvisor at every boot.
 *
 * Encoding (little-endian): u32 magic "KID1", u16 version (1), u16 length of id,
 * 64 bytes id (NUL-padded), ... reserved (0) ..., u32 crc32 of bytes [0, 124) at offset 124.
 * persisted: never move a field. Later issues append keys and certificates in new records.
 */
#ifndef KEEL_IDENTITY_H
#define KEEL_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

#define KIDENT_MAGIC 0x3144494Bu /* "KID1" */
#define KIDENT_SIZE 128u
#define KIDENT_ID_MAX 63u        /* characters; [A-Za-z0-9._-] */

typedef struct kident {
    char id[KIDENT_ID_MAX + 1];  /* NUL-terminated */
} kident_t;

/* KERR_INVAL when the id is empty, too long or has a character outside [A-Za-z0-9._-]. */
kerr_t kident_check_id(const char *id);
kerr_t kident_encode(const kident_t *id, uint8_t out[KIDENT_SIZE]);
/* Errors: KERR_IMG_EMPTY-like KERR_FORMAT when erased or foreign, KERR_CRC, KERR_INVAL. */
kerr_t kident_decode(const uint8_t in[KIDENT_SIZE], kident_t *out);

#endif /* KEEL_IDENTITY_H */

/*
 * The installed-app header.
 *
 * An installed app occupies the app slot of internal flash: a 256-byte header in the slot's
 * first page, and the image from the next page on (the board layout gives both offsets), i.e. the bytes the app's ELF loads into the non-secure code region starting at
 * load_addr (vector table first). On every boot the microvisor checks the header, copies the
 * image into the NS code region, checks its SHA-256 there, and starts it.
 *
 *   app slot (internal flash)            NS code region (board app_code)    
 *   +--------------------------+         +--------------------------+
 *   | header (256 B, LE), 0xFF |         | vector table             |
 *   +-- page boundary ---------+  copy   | .text .rodata            |
 *   | image (image_size bytes) | ------> | .data load image         |
 *   +--------------------------+         +--------------------------+
 *   | 0xFF ...                 |
 *
 * Encoding: little-endian, fixed offsets below; crc32 (IEEE) covers bytes [0, 252).
 * persisted: never renumber or move a field; new fields take reserved bytes and bump nothing
 * that an older microvisor would misread (hdr_version changes only for incompatible layouts).
 */
#ifndef KEEL_APP_IMAGE_H
#define KEEL_APP_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

#define KAPP_MAGIC 0x5050414Bu /* "KAPP" */
#define KAPP_HDR_VERSION 1u
#define KAPP_HDR_SIZE 256u
#define KAPP_NAME_MAX 32u      /* bytes of name, NUL-padded, not necessarily terminated */

/* Field offsets in the encoded header. */
#define KAPP_OFF_MAGIC 0u
#define KAPP_OFF_HDR_VERSION 4u   /* u16 */
#define KAPP_OFF_HDR_SIZE 6u      /* u16 */
#define KAPP_OFF_IMAGE_SIZE 8u
#define KAPP_OFF_LOAD_ADDR 12u
#define KAPP_OFF_VERSION 16u      /* major << 24 | minor << 16 | patch */
#define KAPP_OFF_BACKOFF_MIN 20u  /* ms */
#define KAPP_OFF_BACKOFF_MAX 24u  /* ms */
#define KAPP_OFF_STACK_DUMP 28u   /* bytes of app stack kept in a crash report */
#define KAPP_OFF_SHA256 32u       /* 32 bytes */
#define KAPP_OFF_NAME 64u         /* 32 bytes */
#define KAPP_OFF_CRC 252u

/* Policy defaults used when an installer does not choose. */
#define KAPP_DEFAULT_BACKOFF_MIN_MS 100u
#define KAPP_DEFAULT_BACKOFF_MAX_MS 30000u
#define KAPP_DEFAULT_STACK_DUMP 128u

typedef struct kapp_hdr {
    uint32_t image_size;
    uint32_t load_addr;
    uint32_t version;
    uint32_t backoff_min_ms;  /* first restart delay after a failure */
    uint32_t backoff_max_ms;  /* cap of the doubling delay */
    uint32_t stack_dump;      /* 0 .. KCRASH_STACK_MAX */
    uint8_t sha256[32];
    char name[KAPP_NAME_MAX];
} kapp_hdr_t;

/* Pack a version triple; each part is clamped to its field width. */
uint32_t kapp_version_pack(uint32_t major, uint32_t minor, uint32_t patch);
/* "1.2.3" -> packed; KERR_INVAL when not three numbers within range (255.255.65535). */
kerr_t kapp_version_parse(const char *s, uint32_t *out_version);
/* packed -> "1.2.3" (buf of at least 16 bytes). */
void kapp_version_format(uint32_t version, char *buf, size_t cap);

/* Encode h into out (KAPP_HDR_SIZE bytes, reserved bytes zero, CRC set). */
void kapp_hdr_encode(const kapp_hdr_t *h, uint8_t out[KAPP_HDR_SIZE]);

/*
 * Decode and validate a header read from flash.
 * Errors: KERR_IMG_EMPTY (all 0xFF: nothing installed), KERR_IMG_HEADER (magic, version, size
 * or CRC wrong), KERR_IMG_SIZE (image does not fit [region_base, region_base + region_size)
 * or is empty, or load_addr is not region_base-aligned to 128 bytes).
 */
kerr_t kapp_hdr_decode(const uint8_t in[KAPP_HDR_SIZE], uint32_t region_base,
                       uint32_t region_size, kapp_hdr_t *out);

#endif /* KEEL_APP_IMAGE_H */

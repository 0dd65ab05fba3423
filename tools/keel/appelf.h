/*
 * appelf: turn a Keel app ELF into the flat image the microvisor copies into the NS code region.
 *
 * Shared by the keel CLI (install) and keeld (ELF uploads: keel_appelf library).
 *
 * The ELF is untrusted input: every offset and size is bounds-checked, and a problem is reported
 * as a sentence for the user ("program header 2 lies outside the file"), never as a crash.
 */
#ifndef KEEL_TOOLS_KEEL_APPELF_H
#define KEEL_TOOLS_KEEL_APPELF_H

#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

/* Where the image must go: the NS code region and the NS RAM region (for the initial SP). */
typedef struct appelf_target {
    uint32_t code_base, code_size;
    uint32_t ram_base, ram_size;
} appelf_target_t;

typedef struct appelf_image {
    uint8_t *bytes;     /* malloc'd, size bytes; gaps between segments are 0xFF */
    uint32_t size;
    uint32_t load_addr; /* == target code_base */
} appelf_image_t;

/*
 * Build the image from an ELF held in memory (elf, len). On error returns KERR_IMG_ELF (or
 * KERR_NOMEM) and writes a user-facing explanation into why (cap bytes, NUL-terminated).
 */
kerr_t appelf_from_memory(const uint8_t *elf, size_t len, const appelf_target_t *t,
                          appelf_image_t *out, char *why, size_t cap);

/* Read path and build the image; file errors are reported in why too (KERR_IO). */
kerr_t appelf_load(const char *path, const appelf_target_t *t, appelf_image_t *out, char *why,
                   size_t cap);

void appelf_free(appelf_image_t *img);

struct kboard;
/* Board b's app code and RAM regions: where every Keel app for that board is loaded. */
appelf_target_t appelf_target(const struct kboard *b);

/* The largest app code region appelf_identify() accepts (no board has a larger one). */
#define APPELF_CODE_MAX 0x01000000u

/* SHA-256 of an image: the value a device running it reports for region "app" (Hello). */
void appelf_sha256(const appelf_image_t *img, uint8_t out[32]);

/*
 * The identity of an app ELF for symbolication: build its image exactly as `keel device install`
 * does for its board, and give the image's SHA-256 and size. Needs no board: the image starts at
 * the ELF's first loadable segment (the vector table, at the base of the board's app code region;
 * the initial SP is checked for alignment only). keeld uses it to verify an uploaded ELF against
 * the hash it is filed under. Errors as appelf_from_memory.
 */
kerr_t appelf_identify(const uint8_t *elf, size_t len, uint8_t out_sha[32], uint32_t *out_size,
                       char *why, size_t cap);

#endif /* KEEL_TOOLS_KEEL_APPELF_H */

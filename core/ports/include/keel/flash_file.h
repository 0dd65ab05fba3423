/*
 * Host-file backend for kflash: a device's flash_int.bin / qspi.bin, the same files QEMU's
 * microvisor reaches through semihosting. Used by the keel CLI to install apps and provision
 * identities while the device is not running.
 *
 *   kflash_file_t ff;
 *   kerr_t err = kflash_file_open(&ff, "state/flash_int.bin", AN505_IFLASH_SIZE, true);
 *   ... kflash_init(&f, &kflash_file_backend, &ff, &geo, used, sizeof(used)) ...
 *   err = kflash_file_close(&ff);
 */
#ifndef KEEL_FLASH_FILE_H
#define KEEL_FLASH_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "keel/flash.h"

typedef struct kflash_file {
    FILE *fp;
    uint32_t size;
} kflash_file_t;

/* Backend ops; ctx is a kflash_file_t *. Short reads/writes and flush failures return KERR_IO. */
extern const kflash_backend_t kflash_file_backend;

/*
 * Open the flash file at path for reading and writing. A missing file is created filled with
 * 0xFF (an erased part) when create is true, else KERR_IO. An existing file must be exactly
 * size bytes: KERR_FORMAT otherwise (it belongs to another layout; do not guess).
 * Errors: KERR_INVAL (size 0), KERR_IO (errno tells why), KERR_FORMAT.
 */
kerr_t kflash_file_open(kflash_file_t *ff, const char *path, uint32_t size, bool create);

/* Close the file (no-op when not open). KERR_IO if the final flush failed. */
kerr_t kflash_file_close(kflash_file_t *ff);

#endif /* KEEL_FLASH_FILE_H */

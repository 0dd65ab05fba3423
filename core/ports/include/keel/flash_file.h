/*
 * Host-file backend for kflash: a file, or a region of one. A device's internal flash and QSPI
 * are regions of its store file (the file QEMU maps as the board's RAM; the board's store entry
 * gives the offsets). Used by the keel CLI to install apps and provision identities while the
 * device is not running, and by the simulated device.
 *
 *   kflash_file_t ff;
 *   kerr_t err = kflash_file_open_region(&ff, "state/store.bin", b->store.size,
 *                                        b->store.iflash.off, b->store.iflash.size, true);
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
    uint32_t base; /* offset of the flash in the file */
    uint32_t size; /* of the flash */
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

/*
 * The same for a flash of size bytes at offset base of a file of file_size bytes (created wholly
 * erased; an existing file must be exactly file_size bytes). KERR_INVAL when the region does not
 * lie inside the file.
 */
kerr_t kflash_file_open_region(kflash_file_t *ff, const char *path, uint32_t file_size,
                               uint32_t base, uint32_t size, bool create);

/* Close the file (no-op when not open). KERR_IO if the final flush failed. */
kerr_t kflash_file_close(kflash_file_t *ff);

#endif /* KEEL_FLASH_FILE_H */

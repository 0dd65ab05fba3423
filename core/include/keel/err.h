/*
 * Keel internal error codes.
 *
 * One signed type for every core module: 0 is success, negative values are errors, grouped in a
 * band per module so a code tells where it came from. These codes never cross the NSC boundary
 * (the app sees keel_status_t from keel.h); they do appear in logs, crash reports and host tools.
 *
 * persisted: never renumber (codes are stored in reports and sent over the wire).
 */
#ifndef KEEL_ERR_H
#define KEEL_ERR_H

#include <stdint.h>

typedef int32_t kerr_t;

enum {
    KERR_OK = 0,

    /* general: -1 .. -99 */
    KERR_INVAL = -1,      /* an argument is out of its domain */
    KERR_RANGE = -2,      /* offset/length outside the object */
    KERR_NOMEM = -3,      /* a caller-provided buffer is too small */
    KERR_IO = -4,         /* the backing store failed (host file, semihosting) */
    KERR_TRUNCATED = -5,  /* input ended before a complete object */
    KERR_FORMAT = -6,     /* input is not in the expected format (magic, version) */
    KERR_CRC = -7,        /* checksum mismatch */

    /* flash: -100 .. -199 */
    KERR_FLASH_ALIGN = -100,    /* offset or length not aligned to the program/erase unit */
    KERR_FLASH_RANGE = -101,    /* operation outside the device */
    KERR_FLASH_BITS = -102,     /* program would need a 0->1 transition: erase first */
    KERR_FLASH_TWICE = -103,    /* program-once unit already programmed since its erase */
    KERR_FLASH_POWER = -104,    /* power was cut (fault injection); nothing more is written */

    /* app image: -200 .. -299 */
    KERR_IMG_EMPTY = -200,      /* no app installed (erased header) */
    KERR_IMG_HEADER = -201,     /* header magic, version or CRC is wrong */
    KERR_IMG_SIZE = -202,       /* image size or load address does not fit the app region */
    KERR_IMG_HASH = -203,       /* image content does not match the header's SHA-256 */
    KERR_IMG_ELF = -204,        /* (host) the ELF is not a Keel app image */

    /* crash reports: -300 .. -399 */
    KERR_CRASH_VERSION = -300,  /* report encoded by a newer, incompatible format */
};

/* A short English description of the code ("program would need a 0->1 transition ..."). */
const char *kerr_str(kerr_t err);

#endif /* KEEL_ERR_H */

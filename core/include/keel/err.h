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

    /* bundles (docs/bundle.md): -400 .. -419 */
    KERR_BDL_TRUNCATED = -400,  /* bundle ended before the manifest and signature were complete */
    KERR_BDL_MALFORMED = -401,  /* manifest fields inconsistent (magic, sizes, offsets, reserved) */
    KERR_BDL_VERSION = -402,    /* manifest format newer than this code understands */
    KERR_BDL_KEY = -403,        /* signed by a key this device does not trust */
    KERR_BDL_SIGNATURE = -404,  /* ECDSA signature does not match the manifest bytes */
    KERR_BDL_DEVICE = -405,     /* built for another device type */
    KERR_BDL_COUNTER = -406,    /* security counter lower than the installed one (anti-rollback) */
    KERR_BDL_UV_VERSION = -407, /* needs a newer microvisor than the one running */
    KERR_BDL_UNSUPPORTED = -408, /* layer region or size this device cannot take */

    /* update engine (docs/update-engine.md): -420 .. -449 */
    KERR_UPD_STATE = -420,      /* request not valid in the current update state */
    KERR_UPD_BLOCK = -421,      /* block data does not match the manifest's block hash */
    KERR_UPD_INCOMPLETE = -422, /* staging is missing blocks */
    KERR_UPD_VERIFY = -423,     /* a region does not match the manifest's measurement */
    KERR_UPD_AUTH = -424,       /* a staged or saved copy failed authentication (AES-GCM) */
    KERR_UPD_JOURNAL = -425,    /* the update journal is unusable */
    KERR_UPD_NOSPACE = -426,    /* the staging area is too small for this bundle */
    KERR_UPD_CRYPTO = -427,     /* the crypto library failed */

    /* binary deltas (docs/delta.md, delta.h): -450 .. -469 */
    KERR_DLT_FORMAT = -450,     /* patch header wrong (magic, version, sizes) */
    KERR_DLT_BASE = -451,       /* the old image is not the base the patch was made against */
    KERR_DLT_CORRUPT = -452,    /* patch stream out of bounds or inconsistent */
    KERR_DLT_TRUNCATED = -453,  /* patch ended before the result was complete */
    KERR_DLT_RESULT = -454,     /* decoded result does not match the patch's CRC */
    KERR_DLT_TOOBIG = -455,     /* base or result larger than the region */

    /* debug sessions (docs/debug.md, dbgsess.h): -500 .. -519 */
    KERR_DBG_KEY = -500,        /* a public point is not a valid P-256 point */
    KERR_DBG_SIGNATURE = -501,  /* a session signature does not verify */
    KERR_DBG_AUTH = -502,       /* a frame failed authentication (altered, wrong key/direction) */
    KERR_DBG_REPLAY = -503,     /* a frame's sequence number is not above the last accepted one */
    KERR_DBG_SEQ = -504,        /* sequence numbers exhausted: the session must be reopened */
    KERR_DBG_CRYPTO = -505,     /* the crypto library failed */
};

/* A short English description of the code ("program would need a 0->1 transition ..."). */
const char *kerr_str(kerr_t err);

#endif /* KEEL_ERR_H */

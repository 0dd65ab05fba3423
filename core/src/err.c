/* Descriptions of kerr_t codes, for logs and host tools. */
#include "keel/err.h"

const char *kerr_str(kerr_t err)
{
    switch (err) {
    case KERR_OK: return "ok";
    case KERR_INVAL: return "invalid argument";
    case KERR_RANGE: return "offset or length outside the object";
    case KERR_NOMEM: return "buffer too small";
    case KERR_IO: return "I/O error on the backing store";
    case KERR_TRUNCATED: return "input ended before a complete object";
    case KERR_FORMAT: return "input is not in the expected format (magic or version)";
    case KERR_CRC: return "checksum mismatch";
    case KERR_FLASH_ALIGN: return "flash offset or length not aligned to the program/erase unit";
    case KERR_FLASH_RANGE: return "flash operation outside the device";
    case KERR_FLASH_BITS: return "program would need a 0->1 transition: erase first";
    case KERR_FLASH_TWICE: return "flash unit already programmed since its last erase: erase first";
    case KERR_FLASH_POWER: return "flash power was cut (fault injection)";
    case KERR_IMG_EMPTY: return "no app installed";
    case KERR_IMG_HEADER: return "app header magic, version, fields or CRC is wrong: reinstall the app";
    case KERR_IMG_SIZE: return "app image size or load address does not fit the app region";
    case KERR_IMG_HASH: return "app image does not match the header's SHA-256: reinstall the app";
    case KERR_IMG_ELF: return "the ELF file is not a Keel app image (build it with the Keel SDK)";
    case KERR_CRASH_VERSION: return "crash report encoded by a newer format: update the tools";
    case KERR_BDL_TRUNCATED: return "bundle is truncated: download it again";
    case KERR_BDL_MALFORMED: return "bundle manifest is malformed: rebuild it with `keel bundle build`";
    case KERR_BDL_VERSION: return "bundle manifest format is newer than this device understands: update the microvisor";
    case KERR_BDL_KEY: return "bundle is signed by a key this device does not trust: sign with a fleet key";
    case KERR_BDL_SIGNATURE: return "bundle signature does not match its manifest: it was altered or signed wrongly";
    case KERR_BDL_DEVICE: return "bundle is built for another device type";
    case KERR_BDL_COUNTER: return "bundle security counter is lower than the installed one (anti-rollback)";
    case KERR_BDL_UV_VERSION: return "bundle needs a newer microvisor: update the microvisor first";
    case KERR_BDL_UNSUPPORTED: return "bundle layer targets a region or size this device does not support";
    case KERR_UPD_STATE: return "not possible in the current update state";
    case KERR_UPD_BLOCK: return "block data does not match the manifest's block hash: send it again";
    case KERR_UPD_INCOMPLETE: return "staging is incomplete: blocks are missing";
    case KERR_UPD_VERIFY: return "region does not match the manifest's measurement";
    case KERR_UPD_AUTH: return "staged or saved copy failed authentication (corrupted or wrong device key)";
    case KERR_UPD_JOURNAL: return "update journal is unusable";
    case KERR_UPD_NOSPACE: return "not enough flash for this update's staging area";
    case KERR_UPD_CRYPTO: return "crypto library failure";
    case KERR_DLT_FORMAT: return "delta patch header is malformed: rebuild the bundle";
    case KERR_DLT_BASE: return "delta patch was made against another base image: send pages instead";
    case KERR_DLT_CORRUPT: return "delta patch stream is corrupt: download it again";
    case KERR_DLT_TRUNCATED: return "delta patch is truncated: download it again";
    case KERR_DLT_RESULT: return "delta patch result does not match its checksum";
    case KERR_DLT_TOOBIG: return "delta patch base or result does not fit the region";
    case KERR_DBG_KEY: return "debug session: a public key is not a valid P-256 point";
    case KERR_DBG_SIGNATURE: return "debug session: signature does not verify (wrong key)";
    case KERR_DBG_AUTH: return "debug session: frame failed authentication (altered or wrong key)";
    case KERR_DBG_REPLAY: return "debug session: frame replayed or out of order";
    case KERR_DBG_SEQ: return "debug session: sequence numbers exhausted: reopen the session";
    case KERR_DBG_CRYPTO: return "debug session: crypto library failure";
    default: return "unknown error";
    }
}

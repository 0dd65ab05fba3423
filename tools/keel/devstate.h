/*
 * devstate: an emulated device's state directory, as the host tools see it.
 *
 *   DIR/store.bin       the device's persistent store (the board descriptor's store entry,
 *                       keel/board.h; the file's name is the board's): internal
 *                       flash (app slot, microvisor state, identity page), QSPI NOR (update
 *                       staging), the boot-word and power-cut records
 *   DIR/board           the device's board (its descriptor's name): written when the state is
 *                       made, and every later open must name the same board (--board)
 *   DIR/run/            console sockets while the device runs (see qrun.h)
 *   DIR/keel.lock       flock()ed by every keel command using DIR, exclusively by those that
 *                       write or run the device: two writers on one flash would corrupt it
 *
 * The same file is the device's memory when QEMU runs (QEMU maps it as a board RAM), so every change here goes through kflash with the board's
 * geometry: the host tools can never leave the flash in a state a real part could not be in. The
 * board is the one keel was told with --board (kboard_host()).
 */
#ifndef KEEL_TOOLS_KEEL_DEVSTATE_H
#define KEEL_TOOLS_KEEL_DEVSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/app_image.h"
#include "keel/flash.h"
#include "keel/flash_file.h"
#include "keel/identity.h"

#include "keel/board.h"

#include "appelf.h"

typedef struct devstate {
    char dir[4096];
    const kboard_t *board; /* the device's board (kboard_host() at open) */
    kflash_file_t iflash_file;
    kflash_t iflash;
    uint8_t *used;   /* kflash program-once bitmap (malloc'd) */
    int lock_fd;     /* DIR/keel.lock, held until devstate_close() */
    kident_t ident;
} devstate_t;

/*
 * Open the state in dir and lock it. With create, makes dir (and parents) if needed, creates
 * missing flash files erased, and provisions the identity if the identity page is erased: with
 * want_id if given, else "dev-" + 8 random hex digits. Without create, everything must already
 * exist (keel.lock included) and the lock is shared (readers only). A directory locked by another keel (a running
 * device, an install) is an error, not a wait. want_id given and the device already provisioned
 * under another id is an error. On failure prints "prog: ..." to stderr and returns false
 * (s needs no close).
 */
bool devstate_open(devstate_t *s, const char *prog, const char *dir, bool create,
                   const char *want_id);

/*
 * Network provisioning, once per device: the entropy seed (written if missing), the fleet
 * record (broker_name + the CA certificate in ca_path, PEM) and, when ca_key_path (the fleet CA's
 * private key) is given and the device has none yet, the device's own P-256 key and certificate
 * for mutual TLS. ca_path NULL: the fleet record must already be there (ca_key_path must then be
 * NULL too). Giving the same CA and name again is a no-op; different ones are an error (identity
 * page records are set once). fleet_flags: NET_FLEET_F_* settings stored with the CA (e.g.
 * NET_FLEET_F_ALLOW_TLS12). Prints an error and returns false on failure.
 */
bool devstate_provision_net(devstate_t *s, const char *prog, const char *ca_path,
                            const char *ca_key_path, const char *broker_name, uint32_t fleet_flags);

/*
 * Close the flash files but keep the lock (the device is about to run and opens them itself).
 * False (message printed) if the final write-back failed.
 */
bool devstate_release_flash(devstate_t *s, const char *prog);

/*
 * Open one region of dir's store file (b->store.iflash, .qspi) as a flash file; with create a
 * missing store file is created erased. Prints why and returns false on failure.
 */
bool devstate_store_open(const char *prog, const kboard_t *b, const char *dir,
                         const kboard_range_t *region, bool create, kflash_file_t *ff);

/* Close the flash files (if still open) and drop the lock; false as above. */
bool devstate_close(devstate_t *s, const char *prog);

/* App policy chosen by the installer (see kapp_hdr_t). */
typedef struct devstate_policy {
    uint32_t version;
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
    uint32_t stack_dump;
} devstate_policy_t;

/*
 * The app slot as an update must leave it (the region of a bundle's app layer, docs/bundle.md):
 * region (b->ipart.app_slot.size bytes) gets the encoded header h in the header page, img from the
 * image page on, 0xFF everywhere else. *out_content_len = bytes from the slot's start to the
 * image's end (the layer's content). False if the image does not fit the slot.
 */
bool devstate_app_region(const kboard_t *b, const appelf_image_t *img, const kapp_hdr_t *h,
                         uint8_t *region, uint32_t *out_content_len);

/* Defaults: version 0.0.0 and the KAPP_DEFAULT_* policy. */
void devstate_policy_default(devstate_policy_t *p);

/* Fill the header for img (SHA-256 of the image, name from the ELF path's basename). */
void devstate_app_header(const appelf_image_t *img, const char *elf_path,
                         const devstate_policy_t *p, kapp_hdr_t *out);

/*
 * Install img with header h into the app slot. The header page is erased first and
 * programmed last, so an install cut short leaves "no app installed", never a header that vouches
 * for a half-written image. Prints an error and returns false on failure.
 */
bool devstate_install(devstate_t *s, const char *prog, const appelf_image_t *img,
                      const kapp_hdr_t *h);

/*
 * Read and decode the installed app's header and check the image in the slot against its
 * SHA-256: KERR_OK, KERR_IMG_HASH (header fine, image damaged: *out is still filled), or
 * kapp_hdr_decode's / kflash's error.
 */
kerr_t devstate_app(devstate_t *s, kapp_hdr_t *out);

/* ---- updates (devstate_upd.c) ---- */

/*
 * Provision the fleet's bundle signing public keys (PEM files, "-----BEGIN PUBLIC KEY-----",
 * P-256, as `keel keys new` writes them), 1..4, once: the same keys again are a no-op, other
 * keys an error. Prints an error and returns false on failure.
 */
bool devstate_provision_updkeys(devstate_t *s, const char *prog, const char *const *paths,
                                unsigned n);

/* Whether the file at path starts like a bundle (docs/bundle.md magic "KBMF"). */
bool devstate_is_bundle(const char *path);

/*
 * Factory install of a signed bundle: the update engine, configured as the microvisor does, over
 * the device's flash files: verify (the device's trusted keys, type, counter), stage (encrypted
 * with the device's own staging key), apply, confirm. A refused bundle writes nothing. Prints
 * what it did or an error (false).
 */
bool devstate_install_bundle(devstate_t *s, const char *prog, const char *path);

/* "1a2b3c..." : the first 16 hex digits of a SHA-256 (buf >= 17 bytes). */
void devstate_sha_prefix(const uint8_t sha[32], char *buf, size_t cap);

#endif /* KEEL_TOOLS_KEEL_DEVSTATE_H */

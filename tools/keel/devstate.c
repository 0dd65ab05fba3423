/* devstate: see devstate.h. */
#include "devstate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/x509_crt.h>

#include "keel/kcrypto.h"
#include "devcert.h"
#include "net_rec.h"

/* mkdir -p: each missing component of dir, 0755. */
static bool make_dirs(const char *prog, const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) {
        fprintf(stderr, "%s: bad state directory path\n", prog);
        return false;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "%s: cannot create %s: %s\n", prog, path, strerror(errno));
            return false;
        }
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s is not a directory\n", prog, dir);
        return false;
    }
    return true;
}

bool devstate_store_open(const char *prog, const kboard_t *b, const char *dir,
                         const kboard_range_t *region, bool create, kflash_file_t *ff)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, b->store.file);
    errno = 0;
    kerr_t err = kflash_file_open_region(ff, path, b->store.size, region->off, region->size,
                                         create);
    if (err == KERR_OK)
        return true;
    if (err == KERR_FORMAT)
        fprintf(stderr, "%s: %s is not %lu bytes: it is not a store file of board %s "
                        "(--board names another; or move it away, or use another --state "
                        "directory)\n",
                prog, path, (unsigned long)b->store.size, b->name);
    else if (!create && errno == ENOENT)
        fprintf(stderr, "%s: %s: no device state here (create it with 'keel device install' or "
                        "'keel device run')\n", prog, path);
    else
        fprintf(stderr, "%s: %s: %s\n", prog, path, errno ? strerror(errno) : kerr_str(err));
    return false;
}

static bool urandom(const char *prog, const char *what, uint8_t *out, size_t len)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, len) : -1;
    if (fd >= 0)
        close(fd);
    if (n != (ssize_t)len) {
        fprintf(stderr, "%s: cannot read /dev/urandom for %s\n", prog, what);
        return false;
    }
    return true;
}

static bool random_id(const char *prog, char *out, size_t cap)
{
    uint8_t rnd[4];
    if (!urandom(prog, "a device id", rnd, sizeof rnd))
        return false;
    snprintf(out, cap, "dev-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    return true;
}

static bool all_erased(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0xFF)
            return false;
    return true;
}

static bool flash_fail(const char *prog, const char *what, kerr_t err)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, kerr_str(err));
    return false;
}

static bool provision_seed(devstate_t *s, const char *prog);

/* Provision the identity page: erase it, program the identity record and the entropy seed. */
static bool provision(devstate_t *s, const char *prog, const char *want_id)
{
    kident_t id = {{0}};
    if (want_id != NULL)
        snprintf(id.id, sizeof id.id, "%s", want_id);
    else if (!random_id(prog, id.id, sizeof id.id))
        return false;
    uint8_t rec[KIDENT_SIZE];
    kerr_t err = kident_encode(&id, rec);
    if (err == KERR_OK)
        err = kflash_erase(&s->iflash, s->board->ipart.ident);
    if (err == KERR_OK)
        err = kflash_program(&s->iflash, s->board->ipart.ident, rec, sizeof rec);
    if (err != KERR_OK)
        return flash_fail(prog, "writing the identity record", err);
    if (!provision_seed(s, prog))
        return false;
    s->ident = id;
    printf("provisioned device %s in %s\n", id.id, s->dir);
    return true;
}

static bool load_identity(devstate_t *s, const char *prog, bool create, const char *want_id)
{
    uint8_t rec[KIDENT_SIZE];
    kerr_t err = kflash_read(&s->iflash, s->board->ipart.ident, rec, sizeof rec);
    if (err != KERR_OK)
        return flash_fail(prog, "reading the identity page", err);
    if (all_erased(rec, sizeof rec)) {
        if (create)
            return provision(s, prog, want_id);
        fprintf(stderr, "%s: %s: the device has no identity yet (it is provisioned by 'keel "
                        "device install' or 'keel device run')\n", prog, s->dir);
        return false;
    }
    err = kident_decode(rec, &s->ident);
    if (err != KERR_OK) {
        fprintf(stderr, "%s: %s: the identity record is damaged (%s): the device must be "
                        "provisioned again in a new --state directory\n",
                prog, s->dir, kerr_str(err));
        return false;
    }
    if (want_id != NULL && strcmp(want_id, s->ident.id) != 0) {
        fprintf(stderr, "%s: %s is already provisioned as %s; --id %s applies only to a new "
                        "device\n", prog, s->dir, s->ident.id, want_id);
        return false;
    }
    return true;
}

#define DEVSTATE_LOCK_FILE "keel.lock"
#define DEVSTATE_BOARD_FILE "board" /* the device's board: check_board() */

/* Take DIR's lock without waiting: a device that runs holds it for as long as it runs. */
static int take_lock(const char *prog, const char *dir, bool exclusive)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, DEVSTATE_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CLOEXEC | (exclusive ? O_CREAT : 0), 0644);
    if (fd < 0) {
        if (errno == ENOENT)
            fprintf(stderr, "%s: %s: no device state here (create it with 'keel device install' "
                            "or 'keel device run')\n", prog, dir);
        else
            fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            fprintf(stderr, "%s: %s is in use by another keel command (is the device running? "
                            "stop it first)\n", prog, dir);
        else
            fprintf(stderr, "%s: locking %s: %s\n", prog, path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * DIR/board names the device's board: written when the state is made, checked on every open, so
 * a device made with --board X is never run, installed or read as another board. A state from
 * before the file existed gets it at its next writing open.
 */
static bool check_board(devstate_t *s, const char *prog, bool writer)
{
    char path[4200], have[64] = "";
    snprintf(path, sizeof path, "%s/%s", s->dir, DEVSTATE_BOARD_FILE);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        bool ok = fgets(have, sizeof have, f) != NULL;
        fclose(f);
        have[strcspn(have, "\r\n")] = '\0';
        if (ok && strcmp(have, s->board->name) == 0)
            return true;
        fprintf(stderr, "%s: %s holds a device of board '%s', not '%s': give --board %s\n", prog,
                s->dir, ok ? have : "?", s->board->name, ok ? have : "<its board>");
        return false;
    }
    if (errno != ENOENT) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return false;
    }
    if (!writer)
        return true;
    f = fopen(path, "w");
    bool ok = f != NULL && fprintf(f, "%s\n", s->board->name) > 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
    return ok;
}

/* Create (if asked) and open the flash files, then read or provision the identity. */
static bool open_flash(devstate_t *s, const char *prog, bool create, const char *want_id)
{
    /* One store file holds internal flash, QSPI and the boot records: created wholly erased. */
    const kboard_t *b = s->board;
    if (!devstate_store_open(prog, b, s->dir, &b->store.iflash, create, &s->iflash_file))
        return false;
    size_t used_len = KFLASH_BITMAP_BYTES(b->iflash.size, b->iflash.prog_unit);
    s->used = calloc(1, used_len);
    kerr_t err = s->used ? kflash_init(&s->iflash, &kflash_file_backend, &s->iflash_file,
                                       &b->iflash, s->used, used_len)
                         : KERR_NOMEM;
    if (err == KERR_OK && load_identity(s, prog, create, want_id))
        return true;
    if (err != KERR_OK)
        flash_fail(prog, "internal flash", err);
    kflash_file_close(&s->iflash_file);
    free(s->used);
    s->used = NULL;
    return false;
}

bool devstate_open(devstate_t *s, const char *prog, const char *dir, bool create,
                   const char *want_id)
{
    memset(s, 0, sizeof *s);
    s->lock_fd = -1;
    s->board = kboard_host();
    if (strlen(dir) >= sizeof s->dir) {
        fprintf(stderr, "%s: state directory path too long\n", prog);
        return false;
    }
    strcpy(s->dir, dir);
    if (create && !make_dirs(prog, dir))
        return false;
    s->lock_fd = take_lock(prog, dir, create);
    if (s->lock_fd < 0)
        return false;
    if (check_board(s, prog, create) && open_flash(s, prog, create, want_id))
        return true;
    close(s->lock_fd);
    s->lock_fd = -1;
    return false;
}

bool devstate_release_flash(devstate_t *s, const char *prog)
{
    kerr_t err = kflash_file_close(&s->iflash_file);
    free(s->used);
    s->used = NULL;
    if (err != KERR_OK)
        return flash_fail(prog, "internal flash", err);
    return true;
}

bool devstate_close(devstate_t *s, const char *prog)
{
    bool ok = devstate_release_flash(s, prog);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    s->lock_fd = -1;
    return ok;
}

void devstate_policy_default(devstate_policy_t *p)
{
    *p = (devstate_policy_t){
        .version = kapp_version_pack(0, 0, 0),
        .backoff_min_ms = KAPP_DEFAULT_BACKOFF_MIN_MS,
        .backoff_max_ms = KAPP_DEFAULT_BACKOFF_MAX_MS,
        .stack_dump = KAPP_DEFAULT_STACK_DUMP,
    };
}

void devstate_app_header(const appelf_image_t *img, const char *elf_path,
                         const devstate_policy_t *p, kapp_hdr_t *out)
{
    memset(out, 0, sizeof *out);
    out->image_size = img->size;
    out->load_addr = img->load_addr;
    out->version = p->version;
    out->backoff_min_ms = p->backoff_min_ms;
    out->backoff_max_ms = p->backoff_max_ms;
    out->stack_dump = p->stack_dump;
    appelf_sha256(img, out->sha256);
    const char *base = strrchr(elf_path, '/');
    base = base ? base + 1 : elf_path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    memcpy(out->name, base, n < KAPP_NAME_MAX ? n : KAPP_NAME_MAX);
}

bool devstate_app_region(const kboard_t *b, const appelf_image_t *img, const kapp_hdr_t *h,
                         uint8_t *region, uint32_t *out_content_len)
{
    const uint32_t image_off = kboard_app_image_off(b) - b->ipart.app_slot.off;
    if (img->size > b->ipart.app_slot.size - image_off)
        return false;
    memset(region, 0xFF, b->ipart.app_slot.size);
    kapp_hdr_encode(h, region + (kboard_app_hdr_off(b) - b->ipart.app_slot.off));
    memcpy(region + image_off, img->bytes, img->size);
    *out_content_len = image_off + img->size;
    return true;
}

/*
 * App slot (internal flash):
 *
 *   kboard_app_hdr_off   +----------------------+  erased first, programmed last
 *                        | kapp header (256 B)  |
 *   kboard_app_image_off +----------------------+
 *                        | image, padded with   |  only the pages the image needs are erased:
 *                        | 0xFF to 16 B units   |  bytes past image_size are never read
 *                        +----------------------+
 */
bool devstate_install(devstate_t *s, const char *prog, const appelf_image_t *img,
                      const kapp_hdr_t *h)
{
    const kboard_t *b = s->board;
    const uint32_t hdr_off = kboard_app_hdr_off(b), image_off = kboard_app_image_off(b);
    const uint32_t unit = b->iflash.prog_unit;
    uint32_t padded = (img->size + unit - 1u) & ~(unit - 1u);
    if (padded > b->ipart.app_slot.size - (image_off - b->ipart.app_slot.off)) {
        fprintf(stderr, "%s: the image (%lu bytes) does not fit the app slot\n", prog,
                (unsigned long)img->size);
        return false;
    }
    uint8_t *buf = malloc(padded);
    if (buf == NULL)
        return flash_fail(prog, "installing", KERR_NOMEM);
    memset(buf, 0xFF, padded);
    memcpy(buf, img->bytes, img->size);
    uint8_t hdr[KAPP_HDR_SIZE];
    kapp_hdr_encode(h, hdr);

    kerr_t err = kflash_erase(&s->iflash, hdr_off);
    if (err == KERR_OK)
        err = kflash_erase_range(&s->iflash, image_off, padded);
    if (err == KERR_OK)
        err = kflash_program(&s->iflash, image_off, buf, padded);
    if (err == KERR_OK)
        err = kflash_program(&s->iflash, hdr_off, hdr, sizeof hdr);
    free(buf);
    if (err != KERR_OK)
        return flash_fail(prog, "installing the app", err);
    return true;
}

kerr_t devstate_app(devstate_t *s, kapp_hdr_t *out)
{
    uint8_t hdr[KAPP_HDR_SIZE];
    const kboard_t *b = s->board;
    kerr_t err = kflash_read(&s->iflash, kboard_app_hdr_off(b), hdr, sizeof hdr);
    if (err == KERR_OK)
        err = kapp_hdr_decode(hdr, b->app_code.base, b->app_code.size, out);
    if (err != KERR_OK)
        return err;
    /* The same check the microvisor makes before it runs the app (on its RAM copy). */
    kc_sha256_t ctx;
    if (kc_sha256_start(&ctx) != KC_OK)
        return KERR_IMG_HASH;
    uint8_t buf[4096], sha[32];
    for (uint32_t off = 0; off < out->image_size && err == KERR_OK; off += sizeof buf) {
        uint32_t n = out->image_size - off < sizeof buf ? out->image_size - off : sizeof buf;
        err = kflash_read(&s->iflash, kboard_app_image_off(b) + off, buf, n);
        if (err == KERR_OK && kc_sha256_update(&ctx, buf, n) != KC_OK)
            err = KERR_IMG_HASH;
    }
    if (err != KERR_OK)
        kc_sha256_abort(&ctx);
    else if (kc_sha256_finish(&ctx, sha) != KC_OK || memcmp(sha, out->sha256, sizeof sha) != 0)
        err = KERR_IMG_HASH;
    return err;
}

void devstate_sha_prefix(const uint8_t sha[32], char *buf, size_t cap)
{
    size_t n = 0;
    for (unsigned i = 0; i < 8 && n + 2 < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%02x", sha[i]);
}

/* ---- network provisioning (identity page records of net_rec.h) ------------------------------ */

/* The device's entropy seed: 64 bytes from /dev/urandom, written once (a device provisioned
 * before seeds existed gets one the first time it is run with a broker). */
static bool provision_seed(devstate_t *s, const char *prog)
{
    uint8_t rec[NET_SEED_REC_SIZE], seed[NET_SEED_BYTES];
    kerr_t err = kflash_read(&s->iflash, s->board->ipart.ident + NET_REC_SEED_OFF, rec, sizeof rec);
    if (err != KERR_OK)
        return flash_fail(prog, "reading the entropy seed", err);
    if (!all_erased(rec, sizeof rec)) {
        if (net_seed_rec_decode(rec, seed) == KERR_OK)
            return true;
        fprintf(stderr, "%s: %s: the entropy seed record is damaged: the device must be "
                        "provisioned again in a new --state directory\n", prog, s->dir);
        return false;
    }
    if (!urandom(prog, "the device's entropy seed", seed, sizeof seed))
        return false;
    net_seed_rec_encode(seed, rec);
    memset(seed, 0, sizeof seed);
    err = kflash_program(&s->iflash, s->board->ipart.ident + NET_REC_SEED_OFF, rec, sizeof rec);
    if (err != KERR_OK)
        return flash_fail(prog, "writing the entropy seed", err);
    return true;
}

/* Read a PEM certificate file completely and check that it parses; *out is malloc'd text with
 * its NUL, *out_len counts the NUL. */
static bool read_ca(const char *prog, const char *path, uint8_t **out, uint32_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: --fleet-ca %s: %s\n", prog, path, strerror(errno));
        return false;
    }
    uint8_t *buf = malloc(NET_FLEET_CA_MAX + 1u);
    size_t n = buf ? fread(buf, 1, NET_FLEET_CA_MAX + 1u, f) : 0;
    fclose(f);
    if (buf == NULL || n == 0 || n >= NET_FLEET_CA_MAX) {
        fprintf(stderr, "%s: --fleet-ca %s: %s\n", prog, path,
                buf == NULL ? "out of memory" : n == 0 ? "empty file" :
                "larger than the device's limit of 6 KiB: give the CA certificate alone");
        free(buf);
        return false;
    }
    buf[n++] = 0;
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int ret = memchr(buf, 0, n - 1) ? -1 : mbedtls_x509_crt_parse(&crt, buf, n);
    bool ec = ret == 0 && mbedtls_pk_get_type(&crt.pk) == MBEDTLS_PK_ECKEY;
    mbedtls_x509_crt_free(&crt);
    if (ret != 0 || !ec) {
        fprintf(stderr, "%s: --fleet-ca %s: %s\n", prog, path,
                ret != 0 ? "not a PEM X.509 certificate" :
                "not an EC (P-256) certificate: the device speaks ECDHE-ECDSA only");
        free(buf);
        return false;
    }
    *out = buf;
    *out_len = (uint32_t)n;
    return true;
}

/* The device's key and certificate: issued once, when the record is still erased and the
 * fleet CA's key is given. */
static bool provision_device_cert(devstate_t *s, const char *prog, const char *ca_path,
                                  const char *ca_key_path)
{
    uint8_t have[NET_DEVICE_REC_MAX];
    net_device_cred_t cred;
    kerr_t err = kflash_read(&s->iflash, s->board->ipart.ident + NET_REC_DEVICE_OFF, have, sizeof have);
    if (err != KERR_OK)
        return flash_fail(prog, "reading the device record", err);
    if (!all_erased(have, sizeof have)) {
        if (net_device_rec_decode(have, sizeof have, &cred) == KERR_OK)
            return true; /* issued before: a device keeps its identity */
        fprintf(stderr, "%s: %s: the device record is damaged: provision the device again in a "
                        "new --state directory\n", prog, s->dir);
        return false;
    }
    if (ca_key_path == NULL) {
        printf("note: %s has no device certificate; a broker that requires client certificates "
               "refuses it (issue one with --fleet-ca-key CA.key)\n", s->ident.id);
        return true;
    }
    static devcert_t dc;
    if (!devcert_issue(prog, s->ident.id, ca_path, ca_key_path, &dc))
        return false;
    uint32_t klen = (uint32_t)strlen(dc.key_pem) + 1u, clen = (uint32_t)strlen(dc.cert_pem) + 1u;
    uint32_t size = net_device_rec_size(klen, clen);
    uint8_t rec[NET_DEVICE_REC_MAX];
    err = size ? net_device_rec_encode((const uint8_t *)dc.key_pem, klen, (const uint8_t *)dc.cert_pem,
                                       clen, rec, sizeof rec)
               : KERR_INVAL;
    if (err == KERR_OK)
        err = kflash_program(&s->iflash, s->board->ipart.ident + NET_REC_DEVICE_OFF, rec, size);
    memset(&dc, 0, sizeof dc);
    memset(rec, 0, sizeof rec);
    if (err != KERR_OK)
        return flash_fail(prog, "writing the device key and certificate", err);
    printf("issued a P-256 key and a certificate (CN=%s) from the fleet CA\n", s->ident.id);
    return true;
}

bool devstate_provision_net(devstate_t *s, const char *prog, const char *ca_path,
                            const char *ca_key_path, const char *broker_name, uint32_t fleet_flags)
{
    if (!provision_seed(s, prog))
        return false;
    uint8_t *have = malloc(NET_FLEET_REC_MAX);
    if (have == NULL)
        return flash_fail(prog, "provisioning", KERR_NOMEM);
    kerr_t err = kflash_read(&s->iflash, s->board->ipart.ident + NET_REC_FLEET_OFF, have, NET_FLEET_REC_MAX);
    bool ok = false;
    if (err != KERR_OK) {
        flash_fail(prog, "reading the fleet record", err);
    } else if (ca_path == NULL) {
        net_fleet_t fleet;
        ok = net_fleet_rec_decode(have, NET_FLEET_REC_MAX, &fleet) == KERR_OK;
        if (!ok)
            fprintf(stderr, "%s: %s: the device has no fleet CA yet: give --fleet-ca CA.pem (the "
                            "CA that signed the broker's certificate) the first time\n",
                    prog, s->dir);
    } else {
        uint8_t *ca = NULL, *rec = NULL;
        uint32_t ca_len = 0, size = 0;
        if (read_ca(prog, ca_path, &ca, &ca_len)) {
            size = net_fleet_rec_size(ca_len, fleet_flags);
            rec = malloc(size ? size : 1u);
            err = rec ? net_fleet_rec_encode(broker_name, ca, ca_len, fleet_flags, rec, size) : KERR_NOMEM;
            if (err == KERR_INVAL)
                fprintf(stderr, "%s: --broker-name '%s' is not a host name (1 to %u of A-Z a-z 0-9 . -)\n",
                        prog, broker_name, NET_FLEET_NAME_MAX);
            else if (err != KERR_OK)
                flash_fail(prog, "provisioning", err);
            else if (memcmp(have, rec, size) == 0)
                ok = true; /* already provisioned exactly so */
            else if (!all_erased(have, size))
                fprintf(stderr, "%s: %s is already provisioned with another fleet CA, broker "
                                "name or TLS setting; these are set once: use a new --state directory\n",
                        prog, s->dir);
            else if ((err = kflash_program(&s->iflash, s->board->ipart.ident + NET_REC_FLEET_OFF, rec, size)) != KERR_OK)
                flash_fail(prog, "writing the fleet record", err);
            else
                ok = true;
        }
        free(rec);
        free(ca);
    }
    free(have);
    return ok && provision_device_cert(s, prog, ca_path, ca_key_path);
}

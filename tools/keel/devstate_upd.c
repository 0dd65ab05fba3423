/*
 * devstate: the update side of an emulated device's state (devstate.h): the fleet's bundle
 * signing keys in the identity page, and the factory install of a signed bundle, which runs the
 * real update engine (core/src/upd_engine.c) over the device's flash files exactly as the
 * microvisor would: stage (verified, encrypted with the device's staging key), apply, confirm.
 */
#include "devstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/bundle.h"
#include "keel/upd.h"
#include "keyfile.h"
#include "keel/board.h"
#include "net_rec.h"
#include "net_updkey.h"

static bool fail(const char *prog, const char *what, kerr_t err)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, kerr_str(err));
    return false;
}

/* A PEM public key file ("-----BEGIN PUBLIC KEY-----", P-256) as an uncompressed point. A
 * private key is refused although its public half could be taken: device provisioning should
 * never need the signing key on hand. */
static bool read_pubkey(const char *prog, const char *path, uint8_t out[NET_UPDKEY_SIZE])
{
    keyfile_key_t k;
    char why[256];
    bool ok = keyfile_load(path, false, &k, why, sizeof why);
    if (!ok)
        fprintf(stderr, "%s: --update-key %s: %s\n", prog, path, why);
    else if (k.has_priv)
        fprintf(stderr, "%s: --update-key %s: not a PEM public key but a private key: give its "
                        "public half, NAME.pub ('keel keys new' writes both)\n", prog, path);
    else
        memcpy(out, k.pub, NET_UPDKEY_SIZE);
    ok = ok && !k.has_priv;
    memset(&k, 0, sizeof k);
    return ok;
}

_Static_assert(NET_UPDKEY_SIZE == KBDL_PUBKEY_SIZE, "update keys are bundle keys");

bool devstate_provision_updkeys(devstate_t *s, const char *prog, const char *const *paths,
                                unsigned n)
{
    uint8_t keys[NET_UPDKEYS_MAX * NET_UPDKEY_SIZE];
    if (n == 0u || n > NET_UPDKEYS_MAX) {
        fprintf(stderr, "%s: give 1 to %u --update-key files\n", prog, NET_UPDKEYS_MAX);
        return false;
    }
    for (unsigned i = 0; i < n; i++)
        if (!read_pubkey(prog, paths[i], keys + i * NET_UPDKEY_SIZE))
            return false;
    uint8_t rec[NET_UPDKEYS_REC_MAX], have[NET_UPDKEYS_REC_MAX];
    uint32_t size = net_updkeys_rec_size(n);
    kerr_t err = net_updkeys_rec_encode(keys, n, rec, sizeof rec);
    if (err == KERR_OK)
        err = kflash_read(&s->iflash, s->board->ipart.ident + NET_REC_UPDKEYS_OFF, have, sizeof have);
    if (err != KERR_OK)
        return fail(prog, "update keys", err);
    if (memcmp(have, rec, size) == 0)
        return true; /* provisioned exactly so already */
    for (uint32_t i = 0; i < sizeof have; i++)
        if (have[i] != 0xFF) {
            fprintf(stderr, "%s: %s already trusts other update keys; they are set once: use a "
                            "new --state directory\n", prog, s->dir);
            return false;
        }
    err = kflash_program(&s->iflash, s->board->ipart.ident + NET_REC_UPDKEYS_OFF, rec, size);
    if (err != KERR_OK)
        return fail(prog, "writing the update keys", err);
    printf("the device trusts %u bundle signing key(s)\n", n);
    return true;
}

/* ---- factory install of a bundle ------------------------------------------------------------ */

static uint8_t *read_file(const char *prog, const char *path, uint32_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    uint32_t cap = 4u << 20, n = 0;
    uint8_t *buf = malloc(cap);
    if (buf)
        n = (uint32_t)fread(buf, 1, cap, f);
    bool big = buf && n == cap;
    fclose(f);
    if (buf == NULL || big || n == 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, buf == NULL ? "out of memory" :
                big ? "larger than any bundle this device can take" : "empty file");
        free(buf);
        return NULL;
    }
    *out_len = n;
    return buf;
}

bool devstate_is_bundle(const char *path)
{
    uint8_t m[4] = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    size_t n = fread(m, 1, sizeof m, f);
    fclose(f);
    return n == 4 && ((uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 |
                      (uint32_t)m[3] << 24) == KBDL_MAGIC;
}

typedef struct engine {
    upd_t u;
    kflash_file_t qf;
    kflash_t q;
    kbdl_key_t keys[NET_UPDKEYS_MAX];
} engine_t;

/* The engine over the device's files, configured as the microvisor configures it (uv_upd.c). */
static bool engine_open(devstate_t *s, const char *prog, engine_t *e)
{
    const kboard_t *b = s->board;
    if (!devstate_store_open(prog, b, s->dir, &b->store.qspi, true, &e->qf))
        return false;
    kerr_t err = kflash_init(&e->q, &kflash_file_backend, &e->qf, &b->qspi, NULL, 0);
    if (err != KERR_OK) {
        kflash_file_close(&e->qf);
        return fail(prog, "QSPI", err);
    }
    upd_config_t cfg;
    kboard_upd_config(b, &s->iflash, &e->q, &cfg);
    uint8_t rec[NET_UPDKEYS_REC_MAX], keys[NET_UPDKEYS_MAX * NET_UPDKEY_SIZE];
    uint8_t srec[NET_SEED_REC_SIZE], seed[NET_SEED_BYTES];
    uint32_t n = 0;
    err = kflash_read(&s->iflash, s->board->ipart.ident + NET_REC_UPDKEYS_OFF, rec, sizeof rec);
    if (err == KERR_OK)
        err = net_updkeys_rec_decode(rec, sizeof rec, keys, &n);
    if (err != KERR_OK) {
        fprintf(stderr, "%s: %s: the device trusts no bundle signing key (%s): provision it with "
                        "'keel device provision --state %s --update-key PUB.pem' first\n",
                prog, s->dir, kerr_str(err), s->dir);
        kflash_file_close(&e->qf);
        return false;
    }
    for (uint32_t i = 0; i < n; i++)
        memcpy(e->keys[i].pub, keys + i * NET_UPDKEY_SIZE, KBDL_PUBKEY_SIZE);
    err = kflash_read(&s->iflash, s->board->ipart.ident + NET_REC_SEED_OFF, srec, sizeof srec);
    if (err == KERR_OK)
        err = net_seed_rec_decode(srec, seed);
    if (err == KERR_OK)
        err = net_updkey_derive(seed, s->ident.id, cfg.key);
    memset(seed, 0, sizeof seed);
    if (err != KERR_OK) {
        kflash_file_close(&e->qf);
        return fail(prog, "the device's staging key (seed record)", err);
    }
    /* The microvisor version this host build matches (uv.h UV_VERSION). */
    cfg.trust.keys = e->keys;
    cfg.trust.key_count = n;
    cfg.trust.uv_version = (0u << 24) | (1u << 16) | 0u;
    err = upd_open(&e->u, &cfg);
    memset(cfg.key, 0, sizeof cfg.key);
    if (err == KERR_OK)
        err = upd_boot(&e->u);
    if (err != KERR_OK) {
        upd_close(&e->u);
        kflash_file_close(&e->qf);
        return fail(prog, "the device's update journal", err);
    }
    return true;
}

static bool engine_close(engine_t *e, const char *prog)
{
    upd_close(&e->u);
    kerr_t err = kflash_file_close(&e->qf);
    return err == KERR_OK || fail(prog, "QSPI", err);
}

/* Stage every needed block from the bundle file, then finish, apply and confirm. */
static kerr_t install(engine_t *e, const uint8_t *b, uint32_t len, const char **out_step)
{
    upd_t *u = &e->u;
    *out_step = "staging";
    kerr_t err = upd_stage_begin(u, b, len);
    static uint8_t block[UPD_BLOCK_MAX];
    for (uint32_t i = 0; err == KERR_OK && i < u->blocks; i++) {
        kerr_t need = upd_block_needed(u, i);
        if (need < 0)
            err = need;
        if (need != 1)
            continue;
        uint32_t off, n, in_block;
        err = kbdl_block_payload(&u->m, i, &off, &n, &in_block);
        if (err == KERR_OK && (off > len || len - off < n))
            err = KERR_BDL_TRUNCATED;
        if (err != KERR_OK)
            break;
        memset(block, 0xFF, u->page);
        memcpy(block + in_block, b + off, n);
        err = upd_stage_block(u, i, block, u->page);
    }
    if (err == KERR_OK) {
        *out_step = "verifying the staged bundle";
        err = upd_stage_finish(u);
    }
    if (err == KERR_OK) {
        *out_step = "applying";
        err = upd_apply(u);
    }
    if (err == KERR_OK) {
        *out_step = "confirming";
        err = upd_confirm(u);
    }
    return err;
}

bool devstate_install_bundle(devstate_t *s, const char *prog, const char *path)
{
    uint32_t len = 0;
    uint8_t *b = read_file(prog, path, &len);
    if (b == NULL)
        return false;
    engine_t *e = calloc(1, sizeof *e);
    if (e == NULL || !engine_open(s, prog, e)) {
        free(e);
        free(b);
        return false;
    }
    upd_plan_t plan;
    kerr_t err = upd_inspect(&e->u, b, len, &plan);
    bool ok = false;
    if (err != KERR_OK) {
        fprintf(stderr, "%s: %s: refused: %s (nothing was written)\n", prog, path, kerr_str(err));
    } else if (e->u.ps.phase != UPD_PHASE_IDLE) {
        fprintf(stderr, "%s: %s: an update is in flight on this device (journal phase %u): run the "
                        "device to finish it first\n", prog, s->dir, (unsigned)e->u.ps.phase);
    } else if (plan.nothing_to_do) {
        printf("%s is already installed in %s: nothing written\n", path, s->dir);
        ok = true;
    } else {
        const char *step = "";
        err = install(e, b, len, &step);
        if (err != KERR_OK) {
            fprintf(stderr, "%s: %s: %s failed: %s\n", prog, path, step, kerr_str(err));
        } else {
            char v[16];
            kapp_version_format(e->u.ps.version, v, sizeof v);
            printf("installed bundle %s (security counter %lu, %lu of %lu pages written) into %s\n",
                   v, (unsigned long)e->u.ps.counter, (unsigned long)e->u.ctr.page_erases,
                   (unsigned long)plan.blocks, s->dir);
            ok = true;
        }
    }
    ok = engine_close(e, prog) && ok;
    free(e);
    free(b);
    return ok;
}

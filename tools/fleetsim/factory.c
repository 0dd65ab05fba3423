/*
 * The factory image of fleetsim's devices: the board's internal flash and QSPI in RAM, the app
 * bundle installed as the factory would (simdev_upd's --install), the update engine booted once,
 * then frozen as the copy-on-write base every device of the process reads (flash_cow.h). The
 * hello's app region (SHA-256 of the 1 MiB slot) is computed here once, not per device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetsim.h"
#include "keel/flash_ram.h"
#include "keel/board.h"

static uint32_t no_send(void *ctx, kproto_topic_t t, keel_v1_Envelope *env)
{
    (void)ctx;
    (void)t;
    (void)env;
    return 0;
}

bool fs_factory(fs_t *fs, char *why, unsigned cap)
{
    const kboard_t *b = kboard_host();
    const kflash_geometry_t gi = b->iflash, gq = b->qspi;
    uint8_t *imem = malloc(gi.size), *qmem = malloc(gq.size);
    size_t ub = KFLASH_BITMAP_BYTES(gi.size, gi.prog_unit);
    uint8_t *iused = malloc(ub);
    kflash_ram_t ir, qr;
    kflash_t ifl, qfl;
    bool ok = false;

    if (imem == NULL || qmem == NULL || iused == NULL) {
        snprintf(why, cap, "no memory for the factory image");
        goto out;
    }
    kflash_ram_init(&ir, imem, gi.size, true);
    kflash_ram_init(&qr, qmem, gq.size, true);
    if (kflash_init(&ifl, &kflash_ram_backend, &ir, &gi, iused, ub) != KERR_OK ||
        kflash_init(&qfl, &kflash_ram_backend, &qr, &gq, NULL, 0) != KERR_OK) {
        snprintf(why, cap, "cannot make the factory flash");
        goto out;
    }
    /* The real agent installs the bundle and boots the engine (it exits with a message if the
     * bundle is not one for the app slot). */
    sdu_config_t cfg = {.iflash = &ifl, .qspi = &qfl, .keys = fs->cfg.keys,
                        .install = fs->cfg.install, .board = b,
                        .uv_version = (1u << 24) | (2u << 16) | 3u, .quiet = true, .send = no_send};
    sdu_t *u = sdu_open(&cfg);
    keel_v1_Hello h = keel_v1_Hello_init_zero;
    sdu_hello(u, &h);
    fs->app_region = h.regions[0];
    fs->app_version = h.app_version;
    sdu_close(u);
    if (kflash_cow_freeze(&fs->ibase, imem, gi.size, gi.erase_size) != KERR_OK ||
        kflash_cow_freeze(&fs->qbase, qmem, gq.size, gq.erase_size) != KERR_OK) {
        snprintf(why, cap, "no memory for the factory image");
        goto out;
    }
    /* Every device's flash starts as this kflash state over its own copy-on-write view: the
     * program-once bitmap is rebuilt from the content once here, copied per device. */
    kflash_cow_t view;
    kflash_cow_init(&view, &fs->ibase);
    fs->used_bytes = ub;
    if ((fs->used_tmpl = malloc(ub)) == NULL ||
        kflash_init(&fs->ifl_tmpl, &kflash_cow_backend, &view, &gi, fs->used_tmpl, ub) != KERR_OK) {
        snprintf(why, cap, "cannot read the factory image back");
        goto out;
    }
    kflash_cow_init(&view, &fs->qbase);
    if (kflash_init(&fs->qfl_tmpl, &kflash_cow_backend, &view, &gq, NULL, 0) != KERR_OK) {
        snprintf(why, cap, "cannot read the factory image back");
        goto out;
    }
    fs->ifl_tmpl.be_ctx = fs->qfl_tmpl.be_ctx = NULL; /* each device sets its own */
    ok = true;
out:
    free(imem);
    free(qmem);
    free(iused);
    return ok;
}

/*
 * `keel bundle diff OLD.kb NEW.kb`: what updating a device that runs OLD to NEW puts on the air,
 * by changed pages (the signed manifest with its per-page hashes, then every page whose bytes
 * differ) and by a binary delta (docs/delta.md), the delta checked by decoding it back. With -o
 * the patch is written; --json is what scripts/bench-delta.sh reads.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "keel/bundle.h"
#include "keel/delta.h"

#include "cli.h"
#include "cmd.h"
#include "keel/board.h"

#define FILE_MAX (KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE + kboard_host()->ipart.app_slot.size)
/* Address of app slot offset 0: the image (slot offset 8192) is linked at the NS code base. */
#define SLOT_BASE kboard_slot_addr(kboard_host()) /* the board --board names */
#define PAGE (kboard_host()->iflash.erase_size)

typedef struct side {
    uint8_t *buf;
    size_t len;
    kbdl_manifest_t m;
    const uint8_t *content;
    uint32_t content_len, signed_len;
} side_t;

static bool load(const char *prog, const char *path, side_t *s)
{
    if (!cmd_bundle_read(prog, path, FILE_MAX, &s->buf, &s->len))
        return false;
    kerr_t err = kbdl_decode(s->buf, (uint32_t)s->len, &s->m);
    if (err) {
        cli_fail(prog, "%s: not a bundle: %s", path, kerr_str(err));
        return false;
    }
    const kbdl_layer_t *l = &s->m.layers[0];
    s->signed_len = kbdl_signed_size(&s->m);
    if (s->m.layer_count != 1 || l->region != KBDL_REGION_APP || l->offset != 0 ||
        s->signed_len + (uint64_t)l->size != s->len || l->size == 0) {
        cli_fail(prog, "%s: not a one-layer app bundle with its whole payload", path);
        return false;
    }
    s->content = s->buf + s->signed_len;
    s->content_len = l->size;
    return true;
}

/* Byte i of a region whose content is c[0, n) (0xFF after it). */
static int region_block_differs(const side_t *a, const side_t *b, uint32_t off, uint32_t bs)
{
    for (uint32_t i = off; i < off + bs; i++) {
        int x = i < a->content_len ? a->content[i] : 0xFF;
        int y = i < b->content_len ? b->content[i] : 0xFF;
        if (x != y)
            return 1;
    }
    return 0;
}

typedef struct {
    const uint8_t *old;
    uint32_t old_len;
    uint8_t *out;
} dec_ctx_t;

static kerr_t rd(void *ctx, uint32_t off, void *buf, uint32_t len)
{
    dec_ctx_t *c = ctx;
    memcpy(buf, c->old + off, len);
    return KERR_OK;
}

static kerr_t pg(void *ctx, uint32_t index, const uint8_t *page, uint32_t len)
{
    dec_ctx_t *c = ctx;
    memcpy(c->out + (size_t)index * PAGE, page, len);
    return KERR_OK;
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* Decodes the patch (checking the result) runs times; the fastest run in microseconds. */
static kerr_t decode_check(const side_t *o, const side_t *n, const uint8_t *p, size_t plen,
                           int runs, double *best_us)
{
    static uint8_t page[65536]; /* >= PAGE: the largest block a bundle may have */
    uint8_t *out = malloc(n->content_len);
    kdlt_dec_t *d = malloc(sizeof(*d));
    kerr_t err = out && d ? KERR_OK : KERR_NOMEM;
    *best_us = 0;
    for (int r = 0; r < runs && !err; r++) {
        dec_ctx_t c = { o->content, o->content_len, out };
        kdlt_dec_cfg_t cfg = { rd, pg, &c, page, PAGE, o->content_len, n->content_len };
        double t0 = now_us();
        err = kdlt_dec_init(d, &cfg);
        if (!err)
            err = kdlt_dec_feed(d, p, plen);
        if (!err)
            err = kdlt_dec_finish(d);
        double t = now_us() - t0;
        if (!err && memcmp(out, n->content, n->content_len) != 0)
            err = KERR_DLT_RESULT;
        if (r == 0 || t < *best_us)
            *best_us = t;
    }
    free(out), free(d);
    return err;
}

static void vstr(uint32_t v, char out[16])
{
    snprintf(out, 16, "%u.%u.%u", v >> 24, (v >> 16) & 0xFFu, v & 0xFFFFu);
}

static int diff_help(const char *prog)
{
    printf("usage: %s OLD.kb NEW.kb [-o PATCH] [--json] [--decode-runs N]\n\n"
           "What updating a device that runs OLD.kb to NEW.kb sends: by changed pages (the\n"
           "signed manifest, then every 8 KiB page that differs) and by a binary delta of the\n"
           "app slot (docs/delta.md), which is decoded back and checked before it is reported.\n\n"
           "options:\n"
           "  -o PATCH          write the delta patch\n"
           "  --json            print JSON\n"
           "  --decode-runs N   time N decodes (host), report the fastest (default 5)\n", prog);
    return CLI_EXIT_OK;
}

int cmd_bundle_diff(const char *prog, int argc, char **argv)
{
    enum { OPT_JSON = 256, OPT_RUNS };
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"decode-runs", required_argument, NULL, OPT_RUNS},
                                         {0}};
    const char *out_path = NULL;
    bool json = false;
    int runs = 5, c;
    while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
        if (c == 'h')
            return diff_help(prog);
        if (c == 'o') {
            out_path = optarg;
        } else if (c == OPT_JSON) {
            json = true;
        } else if (c == OPT_RUNS) {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 1000)
                return cli_usage_error(prog, "--decode-runs: give 1..1000, not '%s'", optarg);
            runs = (int)v;
        } else {
            return cli_bad_option(prog, c, argv);
        }
    }
    if (optind != argc - 2)
        return cli_usage_error(prog, "give OLD.kb and NEW.kb");
    side_t o = {0}, n = {0};
    int rc = CLI_EXIT_FAIL;
    uint8_t *patch = NULL;
    size_t plen = 0;
    if (!load(prog, argv[optind], &o) || !load(prog, argv[optind + 1], &n))
        goto done;
    const kbdl_layer_t *nl = &n.m.layers[0];
    uint32_t bs = n.m.block_size, changed = 0, content_blocks = 0;
    uint64_t pages_bytes = n.signed_len;
    for (uint32_t i = 0; i < nl->block_count; i++) {
        uint32_t off, len, in_block;
        if (kbdl_block_payload(&n.m, i, &off, &len, &in_block) != KERR_OK)
            goto done;
        content_blocks += len != 0;
        if (region_block_differs(&o, &n, i * bs, bs)) {
            changed++;
            pages_bytes += len;
        }
    }
    kdlt_enc_opts_t eo = { SLOT_BASE, NULL, 0 };
    double t0 = now_us();
    kerr_t err = kdlt_encode(o.content, o.content_len, n.content, n.content_len, &eo, &patch, &plen);
    double enc_ms = (now_us() - t0) / 1e3, dec_us = 0;
    if (err) {
        cli_fail(prog, "making the delta failed: %s", kerr_str(err));
        goto done;
    }
    if ((err = decode_check(&o, &n, patch, plen, runs, &dec_us)) != KERR_OK) {
        cli_fail(prog, "the delta does not decode back to %s: %s (a bug: please report it)",
                 argv[optind + 1], kerr_str(err));
        goto done;
    }
    if (out_path) {
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(patch, 1, plen, f) != plen || fclose(f) != 0) {
            cli_fail(prog, "%s: cannot write the patch", out_path);
            goto done;
        }
    }
    /* The signed delta manifest that goes with the patch (fixed size: no per-page hashes). */
    kbdl_manifest_t dm = n.m;
    dm.layers[0].delta = true;
    dm.layers[0].patch_size = (uint32_t)plen;
    uint32_t dman = kbdl_manifest_size(&dm) + KBDL_SIG_ENV_SIZE;
    char ov[16], nv[16];
    vstr(o.m.version, ov), vstr(n.m.version, nv);
    uint32_t image = n.content_len > kboard_app_image_off(kboard_host()) ? n.content_len - kboard_app_image_off(kboard_host()) : 0;
    if (json) {
        json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "old_version", ov,
                              "new_version", nv, "image_bytes", (json_int_t)image,
                              "content_bytes", (json_int_t)n.content_len, "blocks",
                              (json_int_t)content_blocks, "blocks_changed", (json_int_t)changed,
                              "manifest_bytes", (json_int_t)n.signed_len, "pages_bytes",
                              (json_int_t)pages_bytes, "patch_bytes", (json_int_t)plen,
                              "delta_manifest_bytes", (json_int_t)dman,
                              "delta_wire_bytes", (json_int_t)(dman + plen),
                              "decode_us_host", dec_us, "encode_ms_host", enc_ms);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (s)
            puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("%s (%s) -> %s (%s): app image %u bytes, %u pages with content\n", argv[optind], ov,
               argv[optind + 1], nv, image, content_blocks);
        printf("  pages: %u changed: %llu bytes (manifest and signature %u + pages)\n", changed,
               (unsigned long long)pages_bytes, n.signed_len);
        printf("  delta: patch %zu bytes (%.2f %% of the image) + delta manifest %u = %llu bytes, "
               "decodes in %.0f us here\n", plen, image ? 100.0 * (double)plen / image : 0.0,
               dman, (unsigned long long)(dman + plen), dec_us);
    }
    rc = CLI_EXIT_OK;
done:
    free(o.buf), free(n.buf), free(patch);
    return rc;
}

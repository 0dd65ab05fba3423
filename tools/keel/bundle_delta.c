/*
 * `keel bundle build APP.elf ... -o APP.kb --base OLD.kb|OLD.elf[@X.Y.Z]`: besides APP.kb, a delta
 * bundle (docs/bundle.md "Delta bundles") for devices that run that base, named after the base's
 * region hash so keeld (and a person) can tell which devices it serves: APP.delta-<12 hex>.kb.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/kcrypto.h"

#include "keel/app_image.h"
#include "keel/bundle.h"
#include "keel/delta.h"

#include "cli.h"
#include "cmd.h"
#include "devstate.h"
#include "keel/board.h"

#define SLOT_SIZE (kboard_host()->ipart.app_slot.size) /* the board --board names */
#define FILE_MAX (KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE + SLOT_SIZE)

/*
 * The base's app-slot content (malloc'ed) and region hash: from a bundle, or from an ELF as
 * `keel device install OLD.elf --app-version X.Y.Z` writes it ("OLD.elf@X.Y.Z"; default 0.0.0,
 * default back-off: the header page carries both, so the region depends on them).
 */
typedef struct base {
    uint8_t *content;
    uint32_t len;
    uint8_t sha[32];
} base_t;

static bool base_from_bundle(const char *prog, const char *path, base_t *out)
{
    uint8_t *b = NULL;
    size_t len = 0;
    kbdl_manifest_t bm;
    if (!cmd_bundle_read(prog, path, FILE_MAX, &b, &len))
        return false;
    const kbdl_layer_t *bl = &bm.layers[0];
    kerr_t err = kbdl_decode(b, (uint32_t)len, &bm);
    if (err != KERR_OK || bm.layer_count != 1 || bl->delta || bl->offset != 0 ||
        bl->region_len != SLOT_SIZE || kbdl_signed_size(&bm) + (uint64_t)bl->size != len) {
        cli_fail(prog, "--base %s: not a whole app bundle (%s)", path,
                 err != KERR_OK ? kerr_str(err) : "a delta, another region, or truncated");
        free(b);
        return false;
    }
    out->len = bl->size;
    memcpy(out->sha, bl->region_sha, 32);
    out->content = b;
    memmove(b, b + kbdl_signed_size(&bm), out->len);
    return true;
}

static bool base_from_elf(const char *prog, const char *arg, base_t *out)
{
    char path[4096], why[512];
    devstate_policy_t pol;
    devstate_policy_default(&pol);
    const char *at = strrchr(arg, '@');
    size_t n = at ? (size_t)(at - arg) : strlen(arg);
    if (n >= sizeof path) {
        cli_fail(prog, "--base %s: path too long", arg);
        return false;
    }
    memcpy(path, arg, n);
    path[n] = '\0';
    if (at && kapp_version_parse(at + 1, &pol.version) != KERR_OK) {
        cli_fail(prog, "--base %s: the version after '@' wants MAJOR.MINOR.PATCH", arg);
        return false;
    }
    const appelf_target_t t = appelf_target(kboard_host());
    appelf_image_t img = {0};
    if (appelf_load(path, &t, &img, why, sizeof why) != KERR_OK) {
        cli_fail(prog, "--base %s: %s", path, why);
        return false;
    }
    kapp_hdr_t hdr;
    devstate_app_header(&img, path, &pol, &hdr);
    bool ok = (out->content = malloc(SLOT_SIZE)) != NULL &&
              devstate_app_region(kboard_host(), &img, &hdr, out->content, &out->len) &&
              kc_sha256(out->content, SLOT_SIZE, out->sha) == KC_OK;
    appelf_free(&img);
    if (!ok) {
        cli_fail(prog, "--base %s: the image does not fit the app slot", path);
        free(out->content);
        out->content = NULL;
    }
    return ok;
}

/* A bundle, or an ELF (by its magic; "@X.Y.Z" may follow the path). */
static bool load_base(const char *prog, const char *arg, base_t *out)
{
    char path[4096];
    const char *at = strrchr(arg, '@');
    size_t n = at ? (size_t)(at - arg) : strlen(arg);
    uint8_t magic[4] = {0};
    FILE *f = NULL;
    if (n < sizeof path) {
        memcpy(path, arg, n);
        path[n] = '\0';
        f = fopen(path, "rb");
    }
    bool elf = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "\x7f" "ELF", 4) == 0;
    if (f)
        fclose(f);
    memset(out, 0, sizeof *out);
    return elf ? base_from_elf(prog, arg, out) : base_from_bundle(prog, arg, out);
}

bool bundle_base_ok(const char *prog, const char *base_path)
{
    base_t b;
    bool ok = load_base(prog, base_path, &b);
    free(b.content);
    return ok;
}

int bundle_write_delta(const char *prog, const char *out, const char *base_path,
                       const struct kbdl_manifest *tmpl, const uint8_t *region,
                       uint32_t content_len, const uint8_t priv[32])
{
    uint8_t *patch = NULL, signed_part[KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE];
    size_t plen = 0;
    base_t base;
    int rc = CLI_EXIT_FAIL;
    if (!load_base(prog, base_path, &base))
        return CLI_EXIT_FAIL;
    kerr_t err;
    /* The patch reads the base's whole content: the device's slot holds exactly that. */
    kdlt_enc_opts_t eo = { kboard_slot_addr(kboard_host()), NULL, 0 };
    err = kdlt_encode(base.content, base.len, region, content_len, &eo, &patch, &plen);
    uint32_t slen = 0;
    if (err == KERR_OK)
        err = kbdl_build_delta(tmpl, region, SLOT_SIZE, 0, content_len, base.sha,
                               patch, (uint32_t)plen, priv, signed_part, sizeof signed_part, &slen);
    if (err != KERR_OK) {
        cli_fail(prog, "--base %s: cannot build the delta: %s", base_path, kerr_str(err));
        goto done;
    }
    char path[4200], base_hex[13];
    for (int i = 0; i < 6; i++)
        snprintf(base_hex + 2 * i, 3, "%02x", base.sha[i]);
    size_t stem = strlen(out);
    if (stem > 3 && strcmp(out + stem - 3, ".kb") == 0)
        stem -= 3;
    if ((size_t)snprintf(path, sizeof path, "%.*s.delta-%s.kb", (int)stem, out, base_hex) >=
        sizeof path) {
        cli_fail(prog, "%s: path too long", out);
        goto done;
    }
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(signed_part, 1, slen, f) == slen && fwrite(patch, 1, plen, f) == plen;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok) {
        cli_fail(prog, "cannot write %s", path);
        remove(path);
        goto done;
    }
    printf("built %s: delta from %s (region sha256 %s...), %lu bytes (manifest %lu, patch %zu)\n",
           path, base_path, base_hex, (unsigned long)(slen + plen), (unsigned long)slen, plen);
    rc = CLI_EXIT_OK;
done:
    free(base.content);
    free(patch);
    return rc;
}

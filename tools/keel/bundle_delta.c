/*
 * `keel bundle build APP.elf ... -o APP.kb --base OLD.kb`: besides APP.kb, a delta bundle
 * (docs/bundle.md "Delta bundles") for devices that run OLD.kb, named after the base's region
 * hash so keeld (and a person) can tell which devices it serves: APP.delta-<12 hex>.kb.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/bundle.h"
#include "keel/delta.h"

#include "cli.h"
#include "cmd.h"
#include "layout.h"

#define FILE_MAX (KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE + AN505_APP_SLOT_SIZE)

/* The base's app bundle, whole; NULL after saying why. */
static uint8_t *load_base(const char *prog, const char *base_path, kbdl_manifest_t *bm, size_t *len)
{
    uint8_t *b = NULL;
    if (!cmd_bundle_read(prog, base_path, FILE_MAX, &b, len))
        return NULL;
    const kbdl_layer_t *bl = &bm->layers[0];
    kerr_t err = kbdl_decode(b, (uint32_t)*len, bm);
    if (err != KERR_OK || bm->layer_count != 1 || bl->delta || bl->offset != 0 ||
        bl->region_len != AN505_APP_SLOT_SIZE ||
        kbdl_signed_size(bm) + (uint64_t)bl->size != *len) {
        cli_fail(prog, "--base %s: not a whole app bundle (%s)", base_path,
                 err != KERR_OK ? kerr_str(err) : "a delta, another region, or truncated");
        free(b);
        return NULL;
    }
    return b;
}

bool bundle_base_ok(const char *prog, const char *base_path)
{
    kbdl_manifest_t bm;
    size_t len;
    uint8_t *b = load_base(prog, base_path, &bm, &len);
    free(b);
    return b != NULL;
}

int bundle_write_delta(const char *prog, const char *out, const char *base_path,
                       const struct kbdl_manifest *tmpl, const uint8_t *region,
                       uint32_t content_len, const uint8_t priv[32])
{
    uint8_t *b = NULL, *patch = NULL, signed_part[KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE];
    size_t blen = 0, plen = 0;
    kbdl_manifest_t bm;
    int rc = CLI_EXIT_FAIL;
    if ((b = load_base(prog, base_path, &bm, &blen)) == NULL)
        return CLI_EXIT_FAIL;
    const kbdl_layer_t *bl = &bm.layers[0];
    kerr_t err;
    /* The patch reads the base's whole content: the device's slot holds exactly that. */
    kdlt_enc_opts_t eo = { AN505_NS_CODE_BASE - AN505_APP_IMAGE_OFF, NULL, 0 };
    err = kdlt_encode(b + kbdl_signed_size(&bm), bl->size, region, content_len, &eo, &patch, &plen);
    uint32_t slen = 0;
    if (err == KERR_OK)
        err = kbdl_build_delta(tmpl, region, AN505_APP_SLOT_SIZE, 0, content_len, bl->region_sha,
                               patch, (uint32_t)plen, priv, signed_part, sizeof signed_part, &slen);
    if (err != KERR_OK) {
        cli_fail(prog, "--base %s: cannot build the delta: %s", base_path, kerr_str(err));
        goto done;
    }
    char path[4200], base_hex[13];
    for (int i = 0; i < 6; i++)
        snprintf(base_hex + 2 * i, 3, "%02x", bl->region_sha[i]);
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
    free(b);
    free(patch);
    return rc;
}

/*
 * `keel bundle ...`: signed update bundles (docs/bundle.md).
 *
 *   build    app ELF -> the app slot as it must end up -> signed one-layer bundle (APP.kb)
 *   inspect  decode a bundle (read-only): manifest, layers, policies, payload, signature
 *
 * A bundle file is manifest | signature envelope | payload (the layer's content bytes), exactly
 * the bytes keeld stores and devices fetch.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include "keel/kcrypto.h"

#include "keel/bundle.h"
#include "keel/crash.h"

#include "cli.h"
#include "cmd.h"
#include "devstate.h"
#include "keyfile.h"
#include "keel/board.h"

#define BUNDLE_FILE_MAX (KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE + kboard_host()->ipart.app_slot.size)
#define BACKOFF_MAX_MS (24u * 3600u * 1000u)
#define POLICY_S_MAX (30u * 24u * 3600u)
#define POLITENESS_DEFAULT_S 3600u /* an hour from "staged" until the microvisor applies anyway */
#define TRIAL_DEFAULT_S 60u        /* the new app confirms within a minute or is rolled back */

enum {
    OPT_HELP = 'h',
    OPT_OUT = 'o',
    OPT_VERSION = 256,
    OPT_KEY,
    OPT_COUNTER,
    OPT_MIN_UV,
    OPT_DEVICE_TYPE,
    OPT_BACKOFF_MIN,
    OPT_BACKOFF_MAX,
    OPT_POLITENESS,
    OPT_TRIAL,
    OPT_DEBUG_KEY,
    OPT_JSON,
    OPT_BASE,
};

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* ---- reading a bundle file -------------------------------------------------------------------- */

/* Read a whole file of at most max bytes (malloc'd into *out). False with a message. */
bool cmd_bundle_read(const char *prog, const char *path, size_t max, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        cli_fail(prog, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    uint8_t *buf = malloc(max + 1u);
    size_t n = buf ? fread(buf, 1, max + 1u, f) : 0;
    bool err = buf == NULL || ferror(f);
    fclose(f);
    if (err || n > max) {
        if (err)
            cli_fail(prog, "%s: cannot read: %s", path, buf ? strerror(errno) : "out of memory");
        else
            cli_fail(prog, "%s: larger than any bundle can be (%zu bytes at most): not a "
                           "bundle", path, max);
        free(buf);
        return false;
    }
    *out = buf;
    *len = n;
    return true;
}

/* What a bundle's payload says against its manifest. */
typedef struct payload_check {
    uint64_t expected;  /* bytes the file should have: signed part + every layer's content */
    bool sizes_ok;
    bool content_ok[KBDL_MAX_LAYERS];
} payload_check_t;

static void check_payload(const kbdl_manifest_t *m, const uint8_t *b, size_t len,
                          payload_check_t *out)
{
    memset(out, 0, sizeof *out);
    uint64_t off = kbdl_signed_size(m);
    for (uint32_t i = 0; i < m->layer_count; i++) {
        const kbdl_layer_t *l = &m->layers[i];
        uint32_t n = l->delta ? l->patch_size : l->size; /* a delta's payload is its patch */
        if (off + n <= len) {
            uint8_t sha[32];
            kc_sha256(b + off, n, sha);
            out->content_ok[i] = memcmp(sha, l->delta ? l->patch_sha : l->content_sha, 32) == 0;
        }
        off += n;
    }
    out->expected = off;
    out->sizes_ok = off == len;
}

/* ---- keel bundle build ------------------------------------------------------------------------ */

typedef struct build_req {
    const char *elf, *key, *out, *debug_key;
    const char *bases[BUNDLE_BASES_MAX];
    unsigned nbases;
    devstate_policy_t app;
    kbdl_manifest_t m;
    bool have_version;
} build_req_t;

static void build_help(const char *prog)
{
    printf("usage: %s APP.elf --version X.Y.Z --key K.key -o APP.kb [options]\n\n"
           "Build a signed update bundle: the app ELF becomes the app slot as it must end up\n"
           "(header page + image), described block by block in a manifest signed with K.key.\n\n"
           "options:\n"
           "  --version X.Y.Z      the app's version (required)\n"
           "  --key K.key          fleet signing key (from 'keel keys new') (required)\n"
           "  -o, --output APP.kb  where to write the bundle (required)\n"
           "  --counter N          security counter: devices refuse a bundle with a lower\n"
           "                       counter than installed (anti-rollback; default 0)\n"
           "  --min-uv X.Y.Z       oldest microvisor that may install it (default 0.0.0)\n"
           "  --device-type T      device type the bundle is for (default 0x%x: board %s)\n"
           "  --backoff-min MS     first restart delay after a crash (default %u)\n"
           "  --backoff-max MS     cap of the doubling restart delay (default %u)\n"
           "  --politeness S       seconds after 'staged' until the device applies even if the\n"
           "                       app has not (default %u)\n"
           "  --trial S            seconds the new app has to confirm (default %u)\n"
           "  --debug-key DEV.pub  P-256 public key allowed to open a debug session\n"
           "                       (default: none)\n"
           "  --base OLD.kb        also write a delta bundle for devices that run OLD.kb:\n"
           "                       APP.delta-<base region sha256, 12 hex>.kb (repeatable);\n"
           "                       or OLD.elf[@X.Y.Z]: what 'keel device install\n"
           "                       --app-version X.Y.Z OLD.elf' wrote\n",
           prog, kboard_host()->device_type, kboard_host()->name, KAPP_DEFAULT_BACKOFF_MIN_MS, KAPP_DEFAULT_BACKOFF_MAX_MS,
           POLITENESS_DEFAULT_S, TRIAL_DEFAULT_S);
}

static int parse_version(const char *prog, const char *opt, const char *arg, uint32_t *out)
{
    if (kapp_version_parse(arg, out) != KERR_OK)
        return cli_usage_error(prog, "%s wants MAJOR.MINOR.PATCH (at most 255.255.65535), not "
                                     "'%s'", opt, arg);
    return CLI_EXIT_OK;
}

static int parse_device_type(const char *prog, const char *arg, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 0);
    if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || v > UINT32_MAX)
        return cli_usage_error(prog, "--device-type wants a number (0x%x for board %s), not '%s'",
                               kboard_host()->device_type, kboard_host()->name, arg);
    *out = (uint32_t)v;
    return CLI_EXIT_OK;
}

static int build_opt(const char *prog, int c, char **argv, build_req_t *r)
{
    kbdl_policy_t *p = &r->m.policy;
    switch (c) {
    case OPT_OUT: r->out = optarg; return CLI_EXIT_OK;
    case OPT_KEY: r->key = optarg; return CLI_EXIT_OK;
    case OPT_DEBUG_KEY: r->debug_key = optarg; return CLI_EXIT_OK;
    case OPT_BASE:
        if (r->nbases == BUNDLE_BASES_MAX)
            return cli_usage_error(prog, "at most %u --base bundles", BUNDLE_BASES_MAX);
        r->bases[r->nbases++] = optarg;
        return CLI_EXIT_OK;
    case OPT_VERSION:
        r->have_version = true;
        return parse_version(prog, "--version", optarg, &r->m.version);
    case OPT_MIN_UV: return parse_version(prog, "--min-uv", optarg, &r->m.min_uv_version);
    case OPT_DEVICE_TYPE: return parse_device_type(prog, optarg, &r->m.device_type);
    case OPT_COUNTER:
        return cli_parse_u32(prog, "--counter", optarg, 0, UINT32_MAX, &r->m.security_counter)
                   ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    case OPT_BACKOFF_MIN:
        return cli_parse_u32(prog, "--backoff-min", optarg, 1, BACKOFF_MAX_MS,
                             &p->backoff_min_ms) ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    case OPT_BACKOFF_MAX:
        return cli_parse_u32(prog, "--backoff-max", optarg, 1, BACKOFF_MAX_MS,
                             &p->backoff_max_ms) ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    case OPT_POLITENESS:
        return cli_parse_u32(prog, "--politeness", optarg, 0, POLICY_S_MAX, &p->politeness_s)
                   ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    case OPT_TRIAL:
        return cli_parse_u32(prog, "--trial", optarg, 1, POLICY_S_MAX, &p->trial_s)
                   ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    default: return cli_bad_option(prog, c, argv);
    }
}

/* Write bytes to path through a temporary file and a rename: never a half-written bundle. */
static bool write_atomic(const char *prog, const char *path, const uint8_t *a, size_t alen,
                         const uint8_t *b, size_t blen)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        cli_fail(prog, "%s: path too long", path);
        return false;
    }
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        cli_fail(prog, "cannot write %s: %s", tmp, strerror(errno));
        return false;
    }
    bool ok = fwrite(a, 1, alen, f) == alen && fwrite(b, 1, blen, f) == blen;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        cli_fail(prog, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    return ok;
}

/* Everything is checked and loaded before the output file is touched. */
static int build_run(const char *prog, build_req_t *r)
{
    char why[512];
    keyfile_key_t key;
    if (!keyfile_load(r->key, true, &key, why, sizeof why))
        return cli_fail(prog, "--key %s: %s", r->key, why);
    if (r->debug_key != NULL) {
        keyfile_key_t dk;
        if (!keyfile_load(r->debug_key, false, &dk, why, sizeof why))
            return cli_fail(prog, "--debug-key %s: %s", r->debug_key, why);
        r->m.policy.has_debug_key = true;
        memcpy(r->m.policy.debug_key, dk.pub, KBDL_PUBKEY_SIZE);
    }
    for (unsigned b = 0; b < r->nbases; b++)
        if (!bundle_base_ok(prog, r->bases[b]))
            return CLI_EXIT_FAIL;
    const kboard_t *board = kboard_host();
    const appelf_target_t t = appelf_target(board);
    appelf_image_t img = {0};
    if (appelf_load(r->elf, &t, &img, why, sizeof why) != KERR_OK)
        return cli_fail(prog, "%s: %s", r->elf, why);
    /* The app header in the slot carries the same version and back-off as the manifest. */
    r->app.version = r->m.version;
    r->app.backoff_min_ms = r->m.policy.backoff_min_ms;
    r->app.backoff_max_ms = r->m.policy.backoff_max_ms;
    kapp_hdr_t hdr;
    devstate_app_header(&img, r->elf, &r->app, &hdr);
    int rc = CLI_EXIT_FAIL;
    uint8_t *region = malloc(board->ipart.app_slot.size);
    uint8_t *signed_part = malloc(KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE);
    uint32_t content_len = 0, signed_len = 0;
    if (region == NULL || signed_part == NULL) {
        cli_fail(prog, "out of memory");
    } else if (hdr.name[0] == '\0') {
        cli_fail(prog, "%s: cannot name the app after this file: rename it (the name is the "
                       "file name without its extension)", r->elf);
    } else if (!devstate_app_region(board, &img, &hdr, region, &content_len)) {
        cli_fail(prog, "%s: the image (%lu bytes) does not fit the app slot", r->elf,
                 (unsigned long)img.size);
    } else {
        kerr_t err = kbdl_build(&r->m, region, board->ipart.app_slot.size, 0, content_len, key.priv,
                                signed_part, KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE, &signed_len);
        if (err != KERR_OK) {
            cli_fail(prog, "cannot build the manifest: %s", kerr_str(err));
        } else if (write_atomic(prog, r->out, signed_part, signed_len, region, content_len)) {
            const kc_part_t parts[] = { { signed_part, signed_len }, { region, content_len } };
            uint8_t sha[32];
            char sha_hex[65], ver[16];
            kc_sha256_parts(parts, 2, sha);
            hex(sha, 32, sha_hex);
            kapp_version_format(r->m.version, ver, sizeof ver);
            printf("built %s: %s %s, counter %lu, %lu bytes (manifest %lu, payload %lu), "
                   "sha256 %s\n", r->out, hdr.name, ver, (unsigned long)r->m.security_counter,
                   (unsigned long)(signed_len + content_len), (unsigned long)signed_len,
                   (unsigned long)content_len, sha_hex);
            rc = CLI_EXIT_OK;
            for (unsigned b = 0; b < r->nbases && rc == CLI_EXIT_OK; b++)
                rc = bundle_write_delta(prog, r->out, r->bases[b], &r->m, region, content_len,
                                        key.priv);
        }
    }
    kc_wipe(&key, sizeof key);
    free(signed_part);
    free(region);
    appelf_free(&img);
    return rc;
}

static int bundle_build(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, OPT_HELP},
        {"output", required_argument, NULL, OPT_OUT},
        {"version", required_argument, NULL, OPT_VERSION},
        {"key", required_argument, NULL, OPT_KEY},
        {"counter", required_argument, NULL, OPT_COUNTER},
        {"min-uv", required_argument, NULL, OPT_MIN_UV},
        {"device-type", required_argument, NULL, OPT_DEVICE_TYPE},
        {"backoff-min", required_argument, NULL, OPT_BACKOFF_MIN},
        {"backoff-max", required_argument, NULL, OPT_BACKOFF_MAX},
        {"politeness", required_argument, NULL, OPT_POLITENESS},
        {"trial", required_argument, NULL, OPT_TRIAL},
        {"debug-key", required_argument, NULL, OPT_DEBUG_KEY},
        {"base", required_argument, NULL, OPT_BASE},
        {0}};
    build_req_t r = {0};
    devstate_policy_default(&r.app);
    r.m.device_type = kboard_host()->device_type;
    r.m.block_size = kboard_host()->iflash.erase_size;
    r.m.layer_count = 1;
    r.m.layers[0].region = KBDL_REGION_APP;
    r.m.policy.backoff_min_ms = KAPP_DEFAULT_BACKOFF_MIN_MS;
    r.m.policy.backoff_max_ms = KAPP_DEFAULT_BACKOFF_MAX_MS;
    r.m.policy.politeness_s = POLITENESS_DEFAULT_S;
    r.m.policy.trial_s = TRIAL_DEFAULT_S;
    int c;
    while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            build_help(prog);
            return CLI_EXIT_OK;
        }
        int rc = build_opt(prog, c, argv, &r);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    if (optind != argc - 1)
        return cli_usage_error(prog, optind == argc ? "which app? give APP.elf"
                                                    : "give exactly one APP.elf");
    r.elf = argv[optind];
    if (!r.have_version)
        return cli_usage_error(prog, "--version X.Y.Z is required (the app's version)");
    if (r.key == NULL)
        return cli_usage_error(prog, "--key K.key is required (make one with 'keel keys new')");
    if (r.out == NULL)
        return cli_usage_error(prog, "-o APP.kb is required (where to write the bundle)");
    if (r.m.policy.backoff_min_ms > r.m.policy.backoff_max_ms)
        return cli_usage_error(prog, "--backoff-min (%lu) is larger than --backoff-max (%lu)",
                               (unsigned long)r.m.policy.backoff_min_ms,
                               (unsigned long)r.m.policy.backoff_max_ms);
    return build_run(prog, &r);
}

/* ---- keel bundle inspect ---------------------------------------------------------------------- */

/* The signature verdict of inspect. */
typedef enum { SIG_UNCHECKED, SIG_OK, SIG_OTHER_KEY, SIG_BAD } sig_verdict_t;

static const char *sig_text(sig_verdict_t v)
{
    switch (v) {
    case SIG_OK: return "verified";
    case SIG_OTHER_KEY: return "signed by another key";
    case SIG_BAD: return "INVALID";
    default: return "not checked (give --key PUB)";
    }
}

static json_t *jhex(const uint8_t *b, size_t n)
{
    char s[2 * 72 + 1];
    hex(b, n, s);
    return json_string(s);
}

static json_t *jversion(uint32_t v)
{
    char s[16];
    kapp_version_format(v, s, sizeof s);
    return json_string(s);
}

static void inspect_json(const char *path, size_t len, const uint8_t sha[32],
                         const kbdl_manifest_t *m, const payload_check_t *pc, sig_verdict_t sv)
{
    json_t *j = json_object();
    json_object_set_new(j, "file", json_string(path));
    json_object_set_new(j, "size", json_integer((json_int_t)len));
    json_object_set_new(j, "sha256", jhex(sha, 32));
    json_object_set_new(j, "version", jversion(m->version));
    json_object_set_new(j, "security_counter", json_integer(m->security_counter));
    json_object_set_new(j, "min_uv_version", jversion(m->min_uv_version));
    json_object_set_new(j, "device_type", json_integer(m->device_type));
    json_object_set_new(j, "block_size", json_integer(m->block_size));
    json_object_set_new(j, "key_id", jhex(m->key_id, KBDL_KEY_ID_SIZE));
    json_object_set_new(j, "manifest_size", json_integer(m->manifest_len));
    json_object_set_new(j, "signed_size", json_integer(kbdl_signed_size(m)));
    json_object_set_new(j, "signature", json_string(sv == SIG_OK ? "verified"
                                                    : sv == SIG_OTHER_KEY ? "other-key"
                                                    : sv == SIG_BAD ? "invalid" : "unchecked"));
    json_t *p = json_object();
    json_object_set_new(p, "backoff_min_ms", json_integer(m->policy.backoff_min_ms));
    json_object_set_new(p, "backoff_max_ms", json_integer(m->policy.backoff_max_ms));
    json_object_set_new(p, "politeness_s", json_integer(m->policy.politeness_s));
    json_object_set_new(p, "trial_s", json_integer(m->policy.trial_s));
    json_object_set_new(p, "debug_key", m->policy.has_debug_key
                                            ? jhex(m->policy.debug_key, KBDL_PUBKEY_SIZE)
                                            : json_null());
    json_object_set_new(j, "policy", p);
    json_t *layers = json_array();
    for (uint32_t i = 0; i < m->layer_count; i++) {
        const kbdl_layer_t *l = &m->layers[i];
        json_t *o = json_object();
        json_object_set_new(o, "region", json_string(l->region == KBDL_REGION_APP ? "app"
                                                                                   : "unknown"));
        json_object_set_new(o, "region_len", json_integer(l->region_len));
        json_object_set_new(o, "offset", json_integer(l->offset));
        json_object_set_new(o, "size", json_integer(l->size));
        json_object_set_new(o, "blocks", json_integer(l->block_count));
        json_object_set_new(o, "content_sha256", jhex(l->content_sha, 32));
        json_object_set_new(o, "region_sha256", jhex(l->region_sha, 32));
        json_object_set_new(o, "content_ok", json_boolean(pc->content_ok[i]));
        if (l->delta) {
            json_t *d = json_object();
            json_object_set_new(d, "base_region_sha256", jhex(l->base_sha, 32));
            json_object_set_new(d, "patch_size", json_integer(l->patch_size));
            json_object_set_new(d, "patch_sha256", jhex(l->patch_sha, 32));
            json_object_set_new(o, "delta", d);
        }
        json_array_append_new(layers, o);
    }
    json_object_set_new(j, "layers", layers);
    json_object_set_new(j, "payload_ok", json_boolean(pc->sizes_ok));
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL)
        printf("%s\n", s);
    free(s);
    json_decref(j);
}

static void inspect_text(const char *path, size_t len, const uint8_t sha[32],
                         const kbdl_manifest_t *m, const payload_check_t *pc, sig_verdict_t sv,
                         const char *key_path)
{
    char s[2 * KBDL_PUBKEY_SIZE + 1], ver[16], uv[16];
    hex(sha, 32, s);
    kapp_version_format(m->version, ver, sizeof ver);
    kapp_version_format(m->min_uv_version, uv, sizeof uv);
    printf("bundle:       %s (%zu bytes)\nsha256:       %s\n", path, len, s);
    printf("version:      %s\ncounter:      %lu\nmin uv:       %s\n", ver,
           (unsigned long)m->security_counter, uv);
    printf("device type:  0x%lx\nblock size:   %lu\n", (unsigned long)m->device_type,
           (unsigned long)m->block_size);
    hex(m->key_id, KBDL_KEY_ID_SIZE, s);
    printf("signed by:    key id %s\n", s);
    printf("signature:    %s%s%s\n", sig_text(sv), key_path ? " with " : "",
           key_path ? key_path : "");
    printf("manifest:     %lu bytes + %u bytes signature\n", (unsigned long)m->manifest_len,
           KBDL_SIG_ENV_SIZE);
    printf("policy:       crash back-off %lu..%lu ms, politeness %lu s, trial %lu s\n",
           (unsigned long)m->policy.backoff_min_ms, (unsigned long)m->policy.backoff_max_ms,
           (unsigned long)m->policy.politeness_s, (unsigned long)m->policy.trial_s);
    if (m->policy.has_debug_key) {
        uint8_t kid[KBDL_KEY_ID_SIZE];
        kbdl_key_id(m->policy.debug_key, kid);
        hex(kid, KBDL_KEY_ID_SIZE, s);
        printf("debug key:    key id %s\n", s);
    } else {
        printf("debug key:    none (no debug access)\n");
    }
    for (uint32_t i = 0; i < m->layer_count; i++) {
        const kbdl_layer_t *l = &m->layers[i];
        printf("layer %lu:      %s region, %lu bytes (%lu blocks); content %lu bytes at %lu: %s\n",
               (unsigned long)i, l->region == KBDL_REGION_APP ? "app" : "unknown",
               (unsigned long)l->region_len, (unsigned long)l->block_count,
               (unsigned long)l->size, (unsigned long)l->offset,
               l->delta ? "the result of the patch below"
               : pc->content_ok[i] ? "payload matches" : "PAYLOAD DOES NOT MATCH");
        hex(l->content_sha, 32, s);
        printf("  content sha256 %s\n", s);
        hex(l->region_sha, 32, s);
        printf("  region sha256  %s\n", s);
        if (l->delta) {
            hex(l->base_sha, 32, s);
            printf("  delta against the region with sha256 %s\n", s);
            hex(l->patch_sha, 32, s);
            printf("  patch %lu bytes, sha256 %s: %s\n", (unsigned long)l->patch_size, s,
                   pc->content_ok[i] ? "payload matches" : "PAYLOAD DOES NOT MATCH");
        }
    }
    if (!pc->sizes_ok)
        printf("payload:      WRONG SIZE: the file has %zu bytes, the manifest says %llu\n", len,
               (unsigned long long)pc->expected);
}

static int bundle_inspect(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, OPT_HELP},
                                         {"key", required_argument, NULL, OPT_KEY},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {0}};
    const char *key_path = NULL;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s APP.kb [--key PUB] [--json]\n\n"
                   "Show what a bundle holds: version, counter, device type, signer, policies,\n"
                   "layers, and whether the payload matches the manifest's hashes. With --key\n"
                   "the signature is verified against that public (or private) key.\n"
                   "Exit status 1 when the bundle is malformed, its payload does not match, or\n"
                   "(with --key) the signature does not verify.\n\n"
                   "options:\n"
                   "  --key PUB   verify the signature with this key (NAME.pub)\n"
                   "  --json      print JSON\n", prog);
            return CLI_EXIT_OK;
        }
        if (c == OPT_KEY)
            key_path = optarg;
        else if (c == OPT_JSON)
            json = true;
        else
            return cli_bad_option(prog, c, argv);
    }
    if (optind != argc - 1)
        return cli_usage_error(prog, optind == argc ? "which bundle? give APP.kb"
                                                    : "give exactly one APP.kb");
    const char *path = argv[optind];
    char why[512];
    kbdl_key_t key;
    if (key_path != NULL) {
        keyfile_key_t k;
        if (!keyfile_load(key_path, false, &k, why, sizeof why))
            return cli_fail(prog, "--key %s: %s", key_path, why);
        memcpy(key.pub, k.pub, sizeof key.pub);
    }
    uint8_t *b = NULL;
    size_t len = 0;
    if (!cmd_bundle_read(prog, path, BUNDLE_FILE_MAX, &b, &len))
        return CLI_EXIT_FAIL;
    kbdl_manifest_t m;
    kerr_t err = kbdl_decode(b, (uint32_t)len, &m);
    if (err != KERR_OK) {
        free(b);
        return cli_fail(prog, "%s: not a valid bundle: %s", path,
                        err == KERR_BDL_TRUNCATED ? "the file ends before the manifest and "
                                                    "signature do (truncated)"
                        : err == KERR_BDL_VERSION ? "a newer bundle format than this keel "
                                                    "understands"
                                                  : "the manifest is malformed (bad magic, "
                                                    "sizes, offsets or reserved bytes)");
    }
    sig_verdict_t sv = SIG_UNCHECKED;
    if (key_path != NULL) {
        kbdl_trust_t trust = {&key, 1, m.device_type, UINT32_MAX, 0};
        kbdl_manifest_t vm;
        err = kbdl_verify(b, (uint32_t)len, &trust, &vm);
        sv = err == KERR_OK ? SIG_OK : err == KERR_BDL_KEY ? SIG_OTHER_KEY : SIG_BAD;
    }
    payload_check_t pc;
    check_payload(&m, b, len, &pc);
    uint8_t sha[32];
    kc_sha256(b, len, sha);
    if (json)
        inspect_json(path, len, sha, &m, &pc, sv);
    else
        inspect_text(path, len, sha, &m, &pc, sv, key_path);
    bool ok = pc.sizes_ok && (sv == SIG_UNCHECKED || sv == SIG_OK);
    for (uint32_t i = 0; i < m.layer_count; i++)
        ok = ok && pc.content_ok[i];
    free(b);
    if (!ok) {
        if (sv == SIG_OTHER_KEY) {
            char kid[17];
            uint8_t id[KBDL_KEY_ID_SIZE];
            kbdl_key_id(key.pub, id);
            keyfile_id_hex(id, kid, sizeof kid);
            return cli_fail(prog, "%s: signed by another key than %s (key id %s)", path,
                            key_path, kid);
        }
        if (sv == SIG_BAD)
            return cli_fail(prog, "%s: the signature does not verify: the manifest was changed "
                                  "after signing, or the signature is damaged", path);
        return cli_fail(prog, "%s: the payload does not match the manifest (damaged or "
                              "truncated bundle)", path);
    }
    return CLI_EXIT_OK;
}

static const cli_verb_t bundle_verbs[] = {
    {"build", "build a signed update bundle from an app ELF", bundle_build},
    {"inspect", "show a bundle's manifest, policies and signature", bundle_inspect},
    {"diff", "what an update from one bundle to another sends: pages and delta", cmd_bundle_diff},
    {"upload", "store a bundle in keeld (checked there like a device would)", cmd_bundle_upload},
    {"list", "the bundles keeld stores", cmd_bundle_list},
};

const cli_noun_t cmd_bundle = {"bundle", "signed update bundles (build, inspect, diff, upload, list)", bundle_verbs,
                               sizeof bundle_verbs / sizeof bundle_verbs[0], NULL};

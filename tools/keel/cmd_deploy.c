/*
 * keel bundle upload|list and keel deploy: bundles into keeld, deployments to devices, their
 * status (docs/cli.md "Updates"). Server and token: see fapi.h. Errors go to stderr with exit
 * status 1 (2 for a bad command line), as in every keel command.
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "keel/kproto.h"

#include "cli.h"
#include "cmd.h"
#include "fapi.h"
#include "fleetcli.h"

/* ---- keel bundle upload, keel deploy ---------------------------------------------------------- */

#define BUNDLE_UPLOAD_MAX (64u * 1024u * 1024u) /* keeld's --max-bundle decides; this is a guard */
#define FORCE_AFTER_MAX_S (30u * 24u * 3600u)
#define WATCH_WAIT_S 5 /* one long poll of GET /v1/deployments/{id}: also how long Ctrl-C may take */
#define BAR_WIDTH 20

/* Read a bundle file whole (malloc'd). False with a message. */
static bool read_bundle(const char *prog, const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        cli_fail(prog, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    uint8_t *b = malloc(BUNDLE_UPLOAD_MAX + 1u);
    size_t n = b != NULL ? fread(b, 1, BUNDLE_UPLOAD_MAX + 1u, f) : 0;
    bool bad = b == NULL || ferror(f) || n > BUNDLE_UPLOAD_MAX;
    fclose(f);
    if (bad) {
        cli_fail(prog, "%s: cannot read it as a bundle (%s)", path,
                 b == NULL ? "out of memory" : n > BUNDLE_UPLOAD_MAX ? "far too large" : "read error");
        free(b);
        return false;
    }
    *out = b;
    *len = n;
    return true;
}

/* POST the bundle file; *out is keeld's bundle JSON. */
static bool upload_bundle(const fapi_t *a, const char *path, json_t **out)
{
    uint8_t *b = NULL;
    size_t len = 0;
    if (!read_bundle(a->prog, path, &b, &len))
        return false;
    bool ok = fapi_upload(a, "POST", "/v1/bundles", b, len, out, NULL);
    free(b);
    return ok;
}

static void print_bundle(json_t *b)
{
    json_t *delta = json_object_get(b, "delta");
    printf("bundle %lld: %s %s, %lld bytes, counter %lld, sha256 %s%s%s%.12s%s\n", fleetcli_jint(b, "id"),
           fleetcli_jstr(b, "name", "?"), fleetcli_jstr(b, "version", "?"), fleetcli_jint(b, "size"),
           fleetcli_jint(b, "security_counter"), fleetcli_jstr(b, "sha256", "?"),
           json_is_false(json_object_get(b, "created")) ? " (already stored)" : "",
           delta ? "; a delta for devices whose app region is " : "",
           delta ? fleetcli_jstr(delta, "base_region_sha256", "?") : "", delta ? "..." : "");
}

/* The deltas `keel bundle build --base` wrote beside APP.kb (APP.delta-<base>.kb): uploaded with
 * it, so keeld can send each device the delta for its base (docs/delta.md "keeld"). One keeld
 * refuses (with its reason, printed) is left out: the devices on its base get pages. */
static void upload_deltas(const fapi_t *a, const char *path, bool quiet)
{
    size_t n = strlen(path);
    if (n < 4 || strcmp(path + n - 3, ".kb") != 0 || n > 4000)
        return;
    char pattern[4096 + 16];
    snprintf(pattern, sizeof pattern, "%.*s.delta-*.kb", (int)(n - 3), path);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        return; /* none */
    for (size_t i = 0; i < g.gl_pathc; i++) {
        json_t *b = NULL;
        if (!upload_bundle(a, g.gl_pathv[i], &b))
            fprintf(stderr, "%s: %s was not uploaded (above): devices on its base get pages\n",
                    a->prog, g.gl_pathv[i]);
        else if (!quiet)
            print_bundle(b);
        json_decref(b);
    }
    globfree(&g);
}

int cmd_bundle_upload(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API, {0}};
    api_opts_t o = {0};
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s APP.kb [options]\n\n"
                   "Upload a bundle to keeld. keeld checks it as a device would (structure,\n"
                   "signer among its fleet keys, signature, payload hashes) and stores it by its\n"
                   "SHA-256: uploading the same file again changes nothing.\n\n"
                   "options:\n" HELP_API, prog);
            return CLI_EXIT_OK;
        }
        if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    if (optind != argc - 1)
        return cli_usage_error(prog, optind == argc ? "which bundle? give APP.kb"
                                                    : "give exactly one APP.kb");
    fapi_t a;
    json_t *b = NULL;
    if (!fapi_open(prog, o.url, o.token, &a) || !upload_bundle(&a, argv[optind], &b))
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (o.json)
        fleetcli_print_json(b);
    else
        print_bundle(b);
    json_decref(b);
    return fleetcli_finish(CLI_EXIT_OK);
}

int cmd_bundle_list(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API, {0}};
    api_opts_t o = {0};
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s [options]\n\nThe bundles keeld stores.\n\noptions:\n" HELP_API, prog);
            return CLI_EXIT_OK;
        }
        if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    if (optind != argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    fapi_t a;
    json_t *j = NULL;
    if (!fapi_open(prog, o.url, o.token, &a) || !fapi_call(&a, "GET", "/v1/bundles", NULL, &j, NULL))
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (o.json) {
        fleetcli_print_json(j);
    } else {
        size_t i;
        json_t *b;
        char t[40];
        printf("%-5s %-16s %-10s %7s %9s %-16s %-16s  %s\n", "ID", "APP", "VERSION", "COUNTER",
               "BYTES", "SIGNED BY", "SHA256", "UPLOADED");
        json_array_foreach(json_object_get(j, "bundles"), i, b) {
            printf("%-5lld %-16s %-10s %7lld %9lld %-16s %.16s  %s\n", fleetcli_jint(b, "id"),
                   fleetcli_jstr(b, "name", "?"), fleetcli_jstr(b, "version", "?"), fleetcli_jint(b, "security_counter"),
                   fleetcli_jint(b, "size"), fleetcli_jstr(b, "key_id", "?"), fleetcli_jstr(b, "sha256", "?"),
                   fleetcli_fmt_time(fleetcli_jint(b, "created_ms"), t, sizeof t));
        }
    }
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

/* One device row of a deployment: a bar of staged blocks, the state and the bytes sent, and the
 * versions: what the device runs -> what the deployment installs. */
static void print_deploy_row(json_t *d, const char *version, bool tty)
{
    const char *phase = fleetcli_jstr(d, "phase", "?"), *result = fleetcli_jstr(d, "result", "?");
    const char *state = fleetcli_jstr(d, "state", "?");
    long long needed = fleetcli_jint(d, "blocks_needed"), staged = fleetcli_jint(d, "blocks_staged");
    bool done = strcmp(phase, "done") == 0;
    bool ok = done && strcmp(result, "success") == 0;
    int pct = 0;
    if (ok || strcmp(state, "downloaded") == 0 || strcmp(state, "updating") == 0)
        pct = 100;
    else if (needed > 0)
        pct = (int)(staged * 100 / needed);
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < pct * BAR_WIDTH / 100 ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
    const char *label = done ? result
                        : strcmp(phase, "pending") == 0 ? (json_is_true(json_object_get(d, "online"))
                                                               ? "pending" : "pending (offline)")
                        : strcmp(phase, "superseded") == 0 ? "superseded"
                        : json_is_true(json_object_get(d, "trial")) ? "on trial"
                        : json_is_null(json_object_get(d, "status_ms")) ? "offered" : state;
    /* How keeld serves it (docs/delta.md "keeld"): delta, pages, nothing; "-" not offered yet. */
    const char *via = fleetcli_jstr(d, "delivery", "");
    printf("%-16s [%s] %3d%%  %-20s %4lld/%-4lld blocks %-7s %9lld B sent  %s -> %s%s", fleetcli_jstr(d, "device", "?"),
           bar, pct, label, staged, needed, via[0] ? via : "-", fleetcli_jint(d, "bytes_sent"),
           fleetcli_jstr(d, "app_version", "?"), version, tty ? "\033[K\n" : "\n");
    const char *refused = fleetcli_jstr(d, "delta_refused", "");
    if (refused[0] != '\0')
        printf("%16s  delta refused: %s; sent pages instead%s", "", refused, tty ? "\033[K\n" : "\n");
    const char *detail = fleetcli_jstr(d, "detail", "");
    if (done && !ok)
        printf("%16s  %s (code %lld): %s%s", "", result, fleetcli_jint(d, "code"), detail, tty ? "\033[K\n" : "\n");
    else if (detail[0] != '\0' && !done)
        printf("%16s  %s%s", "", detail, tty ? "\033[K\n" : "\n");
    else if (ok && detail[0] != '\0')
        printf("%16s  %s%s", "", detail, tty ? "\033[K\n" : "\n");
}

/* The deployment as text; returns the number of lines printed (for redrawing in place). */
static int print_deployment(json_t *d, bool tty)
{
    char t[40];
    json_t *s = json_object_get(d, "summary");
    int lines = 0;
    printf("deployment %lld: %s %s (bundle %lld, %lld bytes) to %s%s%s%s, created %s%s",
           fleetcli_jint(d, "id"), fleetcli_jstr(d, "app", "?"), fleetcli_jstr(d, "version", "?"), fleetcli_jint(d, "bundle_id"),
           fleetcli_jint(d, "bundle_size"), fleetcli_jstr(d, "target_kind", "?"),
           strcmp(fleetcli_jstr(d, "target_kind", ""), "all") == 0 ? "" : " ", fleetcli_jstr(d, "target", ""),
           json_is_true(json_object_get(d, "forced")) ? " (forced)" : "",
           fleetcli_fmt_time(fleetcli_jint(d, "created_ms"), t, sizeof t), tty ? "\033[K\n" : "\n");
    lines++;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(d, "devices"), i, r) {
        print_deploy_row(r, fleetcli_jstr(d, "version", "?"), tty);
        lines += 1 + (fleetcli_jstr(r, "delta_refused", "")[0] != '\0') +
                 (fleetcli_jstr(r, "detail", "")[0] != '\0' ||
                      (strcmp(fleetcli_jstr(r, "phase", ""), "done") == 0 &&
                       strcmp(fleetcli_jstr(r, "result", ""), "success") != 0));
    }
    printf("summary: %lld devices: %lld succeeded, %lld failed, %lld in progress, %lld pending, "
           "%lld superseded; %lld bytes sent (the whole bundle is %lld bytes)%s",
           fleetcli_jint(s, "devices"), fleetcli_jint(s, "succeeded"), fleetcli_jint(s, "failed"), fleetcli_jint(s, "in_progress"),
           fleetcli_jint(s, "pending"), fleetcli_jint(s, "superseded"), fleetcli_jint(s, "bytes_sent"), fleetcli_jint(s, "full_size"),
           tty ? "\033[K\n" : "\n");
    printf("delivery: %lld delta (%lld bytes sent), %lld pages (%lld bytes sent), %lld nothing to send; "
           "%lld deltas refused%s", fleetcli_jint(s, "delta"), fleetcli_jint(s, "delta_bytes"),
           fleetcli_jint(s, "pages"), fleetcli_jint(s, "pages_bytes"), fleetcli_jint(s, "nothing"),
           fleetcli_jint(s, "delta_refused"), tty ? "\033[K\n" : "\n");
    return lines + 2;
}

static int by_device(const void *x, const void *y)
{
    return strcmp(fleetcli_jstr(*(json_t *const *)x, "device", ""), fleetcli_jstr(*(json_t *const *)y, "device", ""));
}

/* Merge the rows of a changes-only answer into table (device -> row) and put the whole table,
 * by device id, into d as its "devices" (so printing does not care where rows came from). */
static void merge_rows(json_t *table, json_t *d)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(d, "devices"), i, r)
        json_object_set(table, fleetcli_jstr(r, "device", ""), r);
    size_t n = json_object_size(table), k = 0;
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    const char *key;
    json_object_foreach(table, key, r)
        if (v != NULL)
            v[k++] = r;
    json_t *all = json_array();
    if (v != NULL) {
        qsort(v, k, sizeof(*v), by_device);
        for (size_t j = 0; j < k; j++)
            json_array_append(all, v[j]);
    }
    free(v);
    json_object_set_new(d, "devices", all);
}

/*
 * Follow a deployment with long polls (GET ?after=REV&wait=WATCH_WAIT_S&changes=1: only the rows
 * that changed since the rev seen, not the whole table each time) until every device is done or
 * superseded, or Ctrl-C (noticed at the end of the current poll). Exit 0 when none failed. On a
 * terminal the table is redrawn in place; --json prints the whole merged deployment per change.
 */
static int deploy_watch(fapi_t *a, long long id, bool json)
{
    bool tty = isatty(STDOUT_FILENO) && !json;
    long long rev = -1;
    int lines = 0, errors = 0;
    json_t *table = json_object();
    struct sigaction sa = {0};
    sa.sa_handler = fleetcli_on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!fleetcli_stop) {
        char path[96];
        json_t *d = NULL;
        snprintf(path, sizeof path, "/v1/deployments/%lld?after=%lld&wait=%d&changes=1", id, rev, WATCH_WAIT_S);
        if (!fapi_call(a, "GET", path, NULL, &d, NULL)) {
            /* keeld restarting: keep trying for a while, like logs -f */
            if (++errors > FAPI_STREAM_RETRIES) {
                json_decref(table);
                return CLI_EXIT_FAIL;
            }
            sleep(1);
            continue;
        }
        errors = 0;
        merge_rows(table, d);
        if (fleetcli_jint(d, "rev") != rev) {
            rev = fleetcli_jint(d, "rev");
            if (json) {
                char *s = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (s != NULL)
                    printf("%s\n", s);
                free(s);
            } else {
                if (tty && lines > 0)
                    printf("\033[%dA", lines);
                lines = print_deployment(d, tty);
            }
            fflush(stdout);
        }
        json_t *s = json_object_get(d, "summary");
        bool finished = json_is_true(json_object_get(s, "finished"));
        long long failed = fleetcli_jint(s, "failed");
        json_decref(d);
        if (finished) {
            json_decref(table);
            return failed == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        }
    }
    json_decref(table);
    return CLI_EXIT_OK;
}

static bool is_sha(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static bool is_id(const char *s)
{
    return s[0] != '\0' && strspn(s, "0123456789") == strlen(s) && strlen(s) < 19;
}

static void deploy_help(const char *prog)
{
    printf("usage: %s BUNDLE --to DEVICE|--tag T|--all [--force-after SECS] [--watch]\n"
           "       %s force ID\n"
           "       %s status ID [--watch]\n"
           "       %s list\n\n"
           "Deploy an update bundle to devices, and follow it.\n"
           "  BUNDLE            an APP.kb file (uploaded first, idempotent), or a bundle id or\n"
           "                    SHA-256 that keeld already has\n"
           "  --to DEVICE       one device\n"
           "  --tag T           devices with tag T (any value) or T=VALUE\n"
           "  --all             every device keeld knows\n"
           "  --force-after S   devices apply at most S seconds after staging, even if the app\n"
           "                    has not (0: the bundle's politeness deadline)\n"
           "  --watch           follow the deployment until every device is done\n"
           "A device already running the bundle gets nothing (0 bytes); a device whose app is the base of\n"
           "a delta keeld has (APP.delta-*.kb beside APP.kb are uploaded with it) gets that delta;\n"
           "the others fetch only the blocks that differ. A newer deployment to a device supersedes\n"
           "an unfinished older one.\n"
           "  force ID          apply now on every device of deployment ID not done yet\n"
           "  status ID         per device: state, blocks staged, bytes sent, result and reason;\n"
           "                    --watch redraws it until done (exit 1 if any device failed)\n"
           "  list              recent deployments\n\n"
           "options:\n" HELP_API, prog, prog, prog, prog);
}

/* keel deploy force|status|list: prog names the verb ("keel deploy status"), base the noun (for
 * the one help text of every deploy form). */
static int deploy_status(const char *base, const char *prog, int argc, char **argv, bool force,
                         bool list)
{
    static const struct option opts[] = {OPTS_API, {"watch", no_argument, NULL, 'w'}, {0}};
    api_opts_t o = {0};
    bool watch = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            deploy_help(base);
            return CLI_EXIT_OK;
        }
        if (c == 'w' && !force && !list)
            watch = true;
        else if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    if (list ? optind != argc : (optind != argc - 1 || !is_id(argv[optind])))
        return cli_usage_error(prog, list ? "list takes no arguments"
                                          : "give one deployment ID (a number)");
    fapi_t a;
    json_t *j = NULL;
    char path[96];
    if (!fapi_open(prog, o.url, o.token, &a))
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (list) {
        if (!fapi_call(&a, "GET", "/v1/deployments", NULL, &j, NULL))
            return fleetcli_finish(CLI_EXIT_FAIL);
        if (o.json) {
            fleetcli_print_json(j);
        } else {
            size_t i;
            json_t *d;
            char t[40];
            printf("%-5s %-16s %-10s %-24s %8s %9s %6s  %s\n", "ID", "APP", "VERSION", "TARGET",
                   "DEVICES", "SUCCEEDED", "FAILED", "CREATED");
            json_array_foreach(json_object_get(j, "deployments"), i, d) {
                char target[64];
                snprintf(target, sizeof target, "%s%s%s", fleetcli_jstr(d, "target_kind", "?"),
                         strcmp(fleetcli_jstr(d, "target_kind", ""), "all") ? ":" : "", fleetcli_jstr(d, "target", ""));
                printf("%-5lld %-16s %-10s %-24s %8lld %9lld %6lld  %s\n", fleetcli_jint(d, "id"),
                       fleetcli_jstr(d, "app", "?"), fleetcli_jstr(d, "version", "?"), target, fleetcli_jint(d, "devices"),
                       fleetcli_jint(d, "succeeded"), fleetcli_jint(d, "failed"),
                       fleetcli_fmt_time(fleetcli_jint(d, "created_ms"), t, sizeof t));
            }
        }
        json_decref(j);
        return fleetcli_finish(CLI_EXIT_OK);
    }
    long long id = strtoll(argv[optind], NULL, 10);
    if (force) {
        snprintf(path, sizeof path, "/v1/deployments/%lld/force", id);
        if (!fapi_call(&a, "POST", path, NULL, &j, NULL))
            return fleetcli_finish(CLI_EXIT_FAIL);
        if (o.json) {
            fleetcli_print_json(j);
        } else {
            size_t i;
            json_t *e;
            printf("deployment %lld forced: the devices not done apply as soon as staged\n", id);
            json_array_foreach(json_object_get(j, "commands"), i, e)
                printf("  %s: apply command %lld\n", fleetcli_jstr(e, "device", "?"), fleetcli_jint(e, "command"));
            json_array_foreach(json_object_get(j, "not_supported"), i, e)
                printf("  %s: does not take the apply command; offered again with force set\n",
                       json_string_value(e) ? json_string_value(e) : "?");
        }
        json_decref(j);
        return fleetcli_finish(CLI_EXIT_OK);
    }
    if (watch)
        return fleetcli_finish(deploy_watch(&a, id, o.json));
    snprintf(path, sizeof path, "/v1/deployments/%lld", id);
    if (!fapi_call(&a, "GET", path, NULL, &j, NULL))
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (o.json)
        fleetcli_print_json(j);
    else
        print_deployment(j, false);
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

static int run_deploy(const char *prog, int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "force") == 0 || strcmp(argv[1], "status") == 0 ||
                      strcmp(argv[1], "list") == 0)) {
        char sub[96];
        snprintf(sub, sizeof sub, "%s %s", prog, argv[1]);
        optind = 0;
        return deploy_status(prog, sub, argc - 1, argv + 1, strcmp(argv[1], "force") == 0,
                             strcmp(argv[1], "list") == 0);
    }
    enum { OPT_TO = 400, OPT_TAG, OPT_ALL, OPT_FORCE_AFTER, OPT_WATCH };
    static const struct option opts[] = {OPTS_API,
                                         {"to", required_argument, NULL, OPT_TO},
                                         {"tag", required_argument, NULL, OPT_TAG},
                                         {"all", no_argument, NULL, OPT_ALL},
                                         {"force-after", required_argument, NULL, OPT_FORCE_AFTER},
                                         {"watch", no_argument, NULL, OPT_WATCH},
                                         {0}};
    api_opts_t o = {0};
    const char *to = NULL, *tag = NULL;
    bool watch = false;
    uint32_t force_after = 0;
    int c, targets = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_HELP: deploy_help(prog); return CLI_EXIT_OK;
        case OPT_TO: to = optarg; targets++; break;
        case OPT_TAG: tag = optarg; targets++; break;
        case OPT_ALL: targets++; break;
        case OPT_WATCH: watch = true; break;
        case OPT_FORCE_AFTER:
            if (!cli_parse_u32(prog, "--force-after", optarg, 0, FORCE_AFTER_MAX_S, &force_after))
                return CLI_EXIT_USAGE;
            break;
        default:
            if (!fleetcli_api_opt(c, &o))
                return cli_bad_option(prog, c, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error(prog, optind == argc ? "which bundle? give APP.kb, a bundle id or "
                                                      "its SHA-256" : "give exactly one BUNDLE");
    if (targets != 1)
        return cli_usage_error(prog, "say where with exactly one of --to DEVICE, --tag T, --all");
    const char *ref = argv[optind];
    fapi_t a;
    json_t *body = json_object(), *bundle = NULL, *d = NULL;
    int rc = CLI_EXIT_FAIL;
    if (!fapi_open(prog, o.url, o.token, &a)) {
        json_decref(body);
        return fleetcli_finish(CLI_EXIT_FAIL);
    }
    if (access(ref, F_OK) == 0) {
        /* A file: upload it (the same bytes again are the same bundle). */
        if (!upload_bundle(&a, ref, &bundle))
            goto out;
        if (!o.json)
            print_bundle(bundle);
        upload_deltas(&a, ref, o.json);
        json_object_set(body, "bundle", json_object_get(bundle, "sha256"));
    } else if (is_id(ref)) {
        json_object_set_new(body, "bundle", json_integer(strtoll(ref, NULL, 10)));
    } else if (is_sha(ref)) {
        json_object_set_new(body, "bundle", json_string(ref));
    } else {
        json_decref(body);
        return fleetcli_finish(cli_usage_error(prog, "'%s' is no file, bundle id or SHA-256", ref));
    }
    if (to != NULL)
        json_object_set_new(body, "device", json_string(to));
    else if (tag != NULL)
        json_object_set_new(body, "tag", json_string(tag));
    else
        json_object_set_new(body, "all", json_true());
    if (force_after != 0)
        json_object_set_new(body, "force_after_s", json_integer(force_after));
    if (!fapi_call(&a, "POST", "/v1/deployments", body, &d, NULL))
        goto out;
    if (o.json && !watch)
        fleetcli_print_json(d);
    else if (!watch)
        print_deployment(d, false);
    rc = watch ? deploy_watch(&a, fleetcli_jint(d, "id"), o.json) : CLI_EXIT_OK;
out:
    json_decref(body);
    json_decref(bundle);
    json_decref(d);
    return fleetcli_finish(rc);
}

const cli_noun_t cmd_deploy = {
    .name = "deploy", .summary = "deploy update bundles and follow them (keeld)", .run = run_deploy};

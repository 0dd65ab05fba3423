/*
 * keel CLI: the fleet commands, each one or a few calls of keeld's REST API (docs/api.md):
 *
 *   keel devices                 the device registry (board "sim": a simulated device)
 *   keel device show D           one device: versions, manifest, tags
 *   keel logs [-f] [D]           stored logs; -f follows live (server-sent events)
 *   keel crashes [D]             crash reports, each pc symbolicated with the ELF keeld keeps for
 *                                the report's app image (or --elf APP.elf)
 *   keel crash show ID           one report, formatted by the core crash formatter, symbolicated
 *                                with arm-none-eabi-addr2line the same way
 *   keel ping|restart|reboot D   a command, waiting for the device's answer
 *   keel token create            an API token (a local keeld's database, or through the API)
 *   keel channel send|read D C   app channel data down to / up from a device's app
 *   keel elf upload|list         app ELFs keeld keeps to symbolicate crash reports
 *
 * Listings take --json (keeld's JSON, pretty-printed; `logs -f --json` prints one entry per line).
 * Server and token: see fapi.h. Output for people goes to stdout; every error to stderr with
 * exit status 1 (2 for a bad command line).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "keel/crash.h"
#include "keel/identity.h"
#include "keel/kproto.h"

#include "cli.h"
#include "cmd.h"
#include "fapi.h"
#include "fleetcli.h"
#include "stack.h"

#define PAGE_MAX 1000u
#define LOGS_MAX 1000000u /* a guard on paging, far above any useful listing */
#define CMD_POLL_MS 100u
#define CMD_WAIT_DEFAULT_S 30u
#define CMD_WAIT_MAX_S 3600u
#define CRASH_TEXT_MAX 8192u
#define ADDR2LINE_TIMEOUT_S 20u

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long ago, coarsely: "4s ago", "3m ago", "2h ago", "5d ago". */
static const char *fmt_age(long long ms, char *buf, size_t cap)
{
    if (ms <= 0)
        return "never";
    long long s = (now_ms() - ms) / 1000;
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(buf, cap, "%llds ago", s);
    else if (s < 7200)
        snprintf(buf, cap, "%lldm ago", s / 60);
    else if (s < 172800)
        snprintf(buf, cap, "%lldh ago", s / 3600);
    else
        snprintf(buf, cap, "%lldd ago", s / 86400);
    return buf;
}

/* A packed app/region version (major << 24 | minor << 16 | patch) as text. */
static const char *fmt_version(long long v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%u.%u.%u", (unsigned)(v >> 24) & 0xffu, (unsigned)(v >> 16) & 0xffu,
             (unsigned)v & 0xffffu);
    return buf;
}

/* Append "&name=<escaped value>" (or "?name=" first) to a path. */
static void add_query(char *path, size_t cap, const char *name, const char *value)
{
    char *esc = curl_easy_escape(NULL, value, 0);
    size_t n = strlen(path);
    snprintf(path + n, cap - n, "%c%s=%s", strchr(path, '?') ? '&' : '?', name,
             esc != NULL ? esc : "");
    curl_free(esc);
}

/* Parse "30s", "10m", "2h", "3d" (or plain seconds) into ms; false when it is not one. */
static bool parse_duration(const char *s, long long *out_ms)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0 || v > 100000000LL)
        return false;
    long long unit = 1000;
    if (*end == 'm')
        unit = 60000;
    else if (*end == 'h')
        unit = 3600000;
    else if (*end == 'd')
        unit = 86400000;
    else if (*end != 's' && *end != '\0')
        return false;
    if (*end != '\0' && end[1] != '\0')
        return false;
    *out_ms = v * unit;
    return true;
}

/* ---- keel devices ----------------------------------------------------------------------------- */

static int devices_help(const char *prog, FILE *out)
{
    fprintf(out, "usage: %s [--online|--offline] [--tag NAME[=VALUE]] [options]\n\nList the devices "
                 "keeld knows (one appears on its first message), filtered by keeld.\n"
                 "  --online, --offline  only devices online (offline) now\n"
                 "  --tag NAME[=VALUE]   only devices with that tag (any value, or that value)\n\n"
                 "options:\n" HELP_API, prog);
    return CLI_EXIT_OK;
}

/* Every page of GET /v1/devices?QUERY (keeld answers 1,000 devices at most per page): one
 * {"devices": [...]} with them all, or NULL (reported). */
static json_t *all_devices(fapi_t *a, const char *query)
{
    json_t *all = json_array();
    char after[KIDENT_ID_MAX + 8] = "";
    for (;;) {
        char path[1200];
        json_t *j = NULL;
        snprintf(path, sizeof path, "/v1/devices?limit=1000%s%s", query, after);
        if (!fapi_call(a, "GET", path, NULL, &j, NULL)) {
            json_decref(all);
            return NULL;
        }
        json_array_extend(all, json_object_get(j, "devices"));
        const char *next = json_string_value(json_object_get(j, "next"));
        if (next != NULL && strlen(next) <= KIDENT_ID_MAX && kident_check_id(next) == KERR_OK)
            snprintf(after, sizeof after, "&after=%s", next);
        json_decref(j);
        if (next == NULL)
            return json_pack("{s:o}", "devices", all);
    }
}

static int run_devices(const char *prog, int argc, char **argv)
{
    enum { OPT_ONLINE = 400, OPT_OFFLINE, OPT_TAG }; /* after fleetcli.h's OPT_* */
    static const struct option opts[] = {OPTS_API, {"online", no_argument, NULL, OPT_ONLINE},
                                         {"offline", no_argument, NULL, OPT_OFFLINE},
                                         {"tag", required_argument, NULL, OPT_TAG}, {0}};
    api_opts_t o = {0};
    char query[1024] = "";
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP)
            return devices_help(prog, stdout);
        if (c == OPT_ONLINE || c == OPT_OFFLINE) {
            snprintf(query + strlen(query), sizeof query - strlen(query), "&online=%s",
                     c == OPT_ONLINE ? "true" : "false");
            continue;
        }
        if (c == OPT_TAG) {
            if (optarg[0] == '\0' || optarg[0] == '=' || strlen(optarg) > 200)
                return cli_usage_error(prog, "--tag wants NAME or NAME=VALUE, not '%s'", optarg);
            /* the value may hold any character: percent-encoded for the query */
            size_t n = strlen(query);
            n += (size_t)snprintf(query + n, sizeof query - n, "&tag=");
            for (const unsigned char *p = (const unsigned char *)optarg; *p != '\0' && n + 4 < sizeof query; p++) {
                bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                             (*p >= '0' && *p <= '9') || strchr("._-~", *p) != NULL;
                n += (size_t)snprintf(query + n, sizeof query - n, plain ? "%c" : "%%%02X", *p);
            }
            continue;
        }
        if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    if (optind < argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    fapi_t a;
    json_t *j = NULL;
    if (!fapi_open(prog, o.url, o.token, &a) || (j = all_devices(&a, query)) == NULL)
        return fleetcli_finish(CLI_EXIT_FAIL);
    json_t *list = json_object_get(j, "devices");
    if (o.json) {
        fleetcli_print_json(j);
    } else if (json_array_size(list) == 0) {
        printf("no devices yet (a device appears when it first connects; 'keel up --devices N' "
               "starts some)\n");
    } else {
        int w = 6;
        size_t i;
        json_t *d;
        json_array_foreach(list, i, d) {
            int n = (int)strlen(fleetcli_jstr(d, "id", ""));
            w = n > w ? n : w;
        }
        printf("%-*s  %-7s  %-9s  %-11s  %-10s  %-6s  %8s  %s\n", w, "DEVICE", "ONLINE", "APP",
               "APP STATE", "MICROVISOR", "BOARD", "RESTARTS", "LAST SEEN");
        json_array_foreach(list, i, d) {
            char age[32];
            printf("%-*s  %-7s  %-9s  %-11s  %-10s  %-6s  %8lld  %s\n", w, fleetcli_jstr(d, "id", "?"),
                   json_is_true(json_object_get(d, "online")) ? "yes" : "no",
                   fleetcli_jstr(d, "app_version", "-"), fleetcli_jstr(d, "app_state", "-"),
                   fleetcli_jstr(d, "microvisor_version", "-"), fleetcli_jstr(d, "board", "-"), fleetcli_jint(d, "restart_count"),
                   fmt_age(fleetcli_jint(d, "last_seen_ms"), age, sizeof age));
        }
    }
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

/* ---- keel device show D ----------------------------------------------------------------------- */

static int run_device_show(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API, {0}};
    api_opts_t o = {0};
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s DEVICE [options]\n\nShow one device as keeld knows it: presence, "
                   "versions, app state,\nits regions (operational manifest) and tags.\n\noptions:\n"
                   HELP_API, prog);
            return CLI_EXIT_OK;
        }
        if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    if (optind + 1 != argc)
        return cli_usage_error(prog, optind >= argc ? "which device? give its id" :
                                                      "give exactly one device id");
    char path[512] = "/v1/devices/";
    char *esc = curl_easy_escape(NULL, argv[optind], 0);
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s", esc != NULL ? esc : "");
    curl_free(esc);
    fapi_t a;
    json_t *d = NULL;
    if (!fapi_open(prog, o.url, o.token, &a) || !fapi_call(&a, "GET", path, NULL, &d, NULL))
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (o.json) {
        fleetcli_print_json(d);
        json_decref(d);
        return fleetcli_finish(CLI_EXIT_OK);
    }
    char t1[40], t2[40], age[32], v[32];
    printf("device       %s\n", fleetcli_jstr(d, "id", "?"));
    printf("online       %s (last seen %s, %s)\n",
           json_is_true(json_object_get(d, "online")) ? "yes" : "no",
           fleetcli_fmt_time(fleetcli_jint(d, "last_seen_ms"), t1, sizeof t1),
           fmt_age(fleetcli_jint(d, "last_seen_ms"), age, sizeof age));
    printf("first seen   %s\n", fleetcli_fmt_time(fleetcli_jint(d, "first_seen_ms"), t2, sizeof t2));
    printf("board        %s\n", fleetcli_jstr(d, "board", "-"));
    printf("microvisor   %s (API %lld, protocol revision %lld)\n",
           fleetcli_jstr(d, "microvisor_version", "-"), fleetcli_jint(d, "api_version"), fleetcli_jint(d, "proto_revision"));
    printf("app          %s, %s, %lld restarts\n", fleetcli_jstr(d, "app_version", "-"),
           fleetcli_jstr(d, "app_state", "-"), fleetcli_jint(d, "restart_count"));
    printf("boot         %lld, up %.1f s, reset reason %lld\n", fleetcli_jint(d, "boot"),
           (double)fleetcli_jint(d, "uptime_ms") / 1000.0, fleetcli_jint(d, "reset_reason"));
    printf("log dropped  %lld\n", fleetcli_jint(d, "log_dropped"));
    printf("commands    ");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(d, "commands"), i, e)
        printf(" %s", json_string_value(e) ? json_string_value(e) : "?");
    printf("\nregions:\n");
    json_array_foreach(json_object_get(d, "regions"), i, e) {
        printf("  %-12s %8lld bytes  version %-12s sha256 %.16s...\n", fleetcli_jstr(e, "name", "?"),
               fleetcli_jint(e, "size"), fmt_version(fleetcli_jint(e, "version"), v, sizeof v), fleetcli_jstr(e, "sha256", ""));
    }
    printf("tags:\n");
    const char *k;
    json_object_foreach(json_object_get(d, "tags"), k, e)
        printf("  %s=%s\n", k, json_string_value(e) ? json_string_value(e) : "");
    json_decref(d);
    return fleetcli_finish(CLI_EXIT_OK);
}

/* ---- keel logs -------------------------------------------------------------------------------- */

static void print_log(json_t *e)
{
    char t[40];
    printf("%s %s %-5s %s: %s\n", fleetcli_fmt_time(fleetcli_jint(e, "received_ms"), t, sizeof t), fleetcli_jstr(e, "device", "?"),
           fleetcli_jstr(e, "level", "?"), fleetcli_jstr(e, "source", "?"), fleetcli_jstr(e, "text", ""));
}

static bool on_live_log(void *ctx, json_t *e)
{
    const bool *json = ctx;
    if (*json) {
        char *s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s != NULL)
            printf("%s\n", s);
        free(s);
    } else {
        print_log(e);
    }
    fflush(stdout);
    return true;
}

static int logs_follow(const char *prog, fapi_t *a, const char *device, uint64_t after, bool json)
{
    char path[512] = "/v1/logs/stream";
    if (device != NULL)
        add_query(path, sizeof path, "device", device);
    char opened[256];
    snprintf(opened, sizeof opened, "following the logs of %s (Ctrl-C to stop)",
             device != NULL ? device : "every device");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fleetcli_on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    uint64_t last = after;
    bool ok = fapi_stream(a, path, opened, &fleetcli_stop, &last, on_live_log, &json);
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int run_logs(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API,
                                         {"follow", no_argument, NULL, OPT_FOLLOW},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         {"since", required_argument, NULL, OPT_SINCE},
                                         {"after", required_argument, NULL, OPT_AFTER},
                                         {0}};
    api_opts_t o = {0};
    bool follow = false;
    uint32_t limit = LOGS_MAX, after = 0;
    long long since_ms = -1;
    int c;
    while ((c = getopt_long(argc, argv, ":hf", opts, NULL)) != -1) {
        switch (c) {
        case OPT_HELP:
            printf("usage: %s [DEVICE] [options]\n\n"
                   "Print stored log entries (every device, or DEVICE's), oldest first:\n"
                   "  TIME DEVICE LEVEL SOURCE: TEXT\n\noptions:\n"
                   "  -f, --follow   then keep printing new entries as they arrive (server-sent\n"
                   "                 events; reconnects by itself and resumes where it was; Ctrl-C\n"
                   "                 stops). With -f, only new entries unless --after is given.\n"
                   "  --since AGE    only entries received in the last AGE (30s, 10m, 2h, 3d)\n"
                   "  --after ID     only entries after the entry with this id\n"
                   "  --limit N      at most N entries (not with -f)\n"
                   HELP_API
                   "With --json: {\"logs\": [...]}; with -f --json: one JSON entry per line.\n", prog);
            return CLI_EXIT_OK;
        case OPT_FOLLOW:
            follow = true;
            break;
        case OPT_LIMIT:
            if (!cli_parse_u32(prog, "--limit", optarg, 1, LOGS_MAX, &limit))
                return CLI_EXIT_USAGE;
            break;
        case OPT_AFTER:
            if (!cli_parse_u32(prog, "--after", optarg, 0, UINT32_MAX, &after))
                return CLI_EXIT_USAGE;
            break;
        case OPT_SINCE:
            if (!parse_duration(optarg, &since_ms))
                return cli_usage_error(prog, "--since wants an age like 30s, 10m, 2h or 3d, not '%s'",
                                       optarg);
            break;
        default:
            if (!fleetcli_api_opt(c, &o))
                return cli_bad_option(prog, c, argv);
        }
    }
    if (argc - optind > 1)
        return cli_usage_error(prog, "give at most one device id (got '%s' and '%s')", argv[optind],
                               argv[optind + 1]);
    const char *device = optind < argc ? argv[optind] : NULL;
    if (follow && since_ms >= 0)
        return cli_usage_error(prog, "--since and --follow do not go together: use --after ID");
    fapi_t a;
    if (!fapi_open(prog, o.url, o.token, &a))
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (follow)
        return fleetcli_finish(logs_follow(prog, &a, device, after, o.json));

    /* Page with the `after` cursor until a short page (docs/api.md). */
    json_t *all = o.json ? json_array() : NULL;
    uint64_t cursor = after;
    uint32_t printed = 0;
    long long since = since_ms >= 0 ? now_ms() - since_ms : -1;
    int rc = CLI_EXIT_OK;
    while (printed < limit) {
        uint32_t want = limit - printed < PAGE_MAX ? limit - printed : PAGE_MAX;
        char path[512], num[32];
        snprintf(path, sizeof path, "/v1/logs?limit=%u", want);
        if (device != NULL)
            add_query(path, sizeof path, "device", device);
        if (cursor > 0) {
            snprintf(num, sizeof num, "%llu", (unsigned long long)cursor);
            add_query(path, sizeof path, "after", num);
        }
        if (since >= 0) {
            snprintf(num, sizeof num, "%lld", since);
            add_query(path, sizeof path, "since", num);
        }
        json_t *j = NULL;
        if (!fapi_call(&a, "GET", path, NULL, &j, NULL)) {
            rc = CLI_EXIT_FAIL;
            break;
        }
        json_t *page = json_object_get(j, "logs");
        size_t i, n = json_array_size(page);
        json_t *e;
        json_array_foreach(page, i, e) {
            if (all != NULL)
                json_array_append(all, e);
            else
                print_log(e);
            cursor = (uint64_t)fleetcli_jint(e, "id");
        }
        printed += (uint32_t)n;
        json_decref(j);
        if (n < want)
            break;
    }
    if (all != NULL) {
        if (rc == CLI_EXIT_OK) {
            json_t *wrap = json_pack("{s:O}", "logs", all);
            fleetcli_print_json(wrap);
            json_decref(wrap);
        }
        json_decref(all);
    } else if (rc == CLI_EXIT_OK && printed == 0) {
        fprintf(stderr, "%s: no log entries%s%s\n", prog, device ? " from " : "", device ? device : "");
    }
    return fleetcli_finish(rc);
}

/* ---- symbolication ------------------------------------------------------------------------- */

#define SYM_MAX 512

/*
 * Symbolicate addrs[0..n) with one run of arm-none-eabi-addr2line (or $KEEL_ADDR2LINE) on elf:
 * out[i] = "function at file:line" ("?? at ??:0" where the ELF has nothing). Addresses are looked
 * up as given; callers pass lr as the return address (bit 0, the Thumb bit, cleared), which names
 * the caller and the line after its call. False (message printed) when the tool fails.
 */
static bool symbolicate(const char *prog, const char *elf, const uint32_t *addrs, unsigned n,
                        char (*out)[SYM_MAX])
{
    const char *tool = getenv("KEEL_ADDR2LINE");
    if (tool == NULL || tool[0] == '\0')
        tool = "arm-none-eabi-addr2line";
    size_t cap = (size_t)n * 2u * SYM_MAX + 1u;
    char **argv = calloc(n + 6u, sizeof *argv);
    char (*hex)[12] = calloc(n, sizeof *hex);
    char *text = malloc(cap);
    bool ok = false;
    if (argv == NULL || hex == NULL || text == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    unsigned k = 0;
    argv[k++] = (char *)tool;
    argv[k++] = "-f";
    argv[k++] = "-C";
    argv[k++] = "-e";
    argv[k++] = (char *)elf;
    for (unsigned i = 0; i < n; i++) {
        snprintf(hex[i], sizeof hex[i], "0x%08x", (unsigned)addrs[i]);
        argv[k++] = hex[i];
    }
    argv[k] = NULL;
    int rc = stack_capture(prog, argv, ADDR2LINE_TIMEOUT_S, NULL, text, cap);
    if (rc != 0) {
        fprintf(stderr, "%s: %s failed (exit %d); it comes with gcc-arm-none-eabi (make deps), or set "
                        "KEEL_ADDR2LINE\n", prog, tool, rc);
        goto out;
    }
    /* Two lines per address: function, then file:line. */
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    for (unsigned i = 0; i < n; i++) {
        char *file = line != NULL ? strtok_r(NULL, "\n", &save) : NULL;
        if (file == NULL) {
            fprintf(stderr, "%s: unexpected output from %s\n", prog, tool);
            goto out;
        }
        snprintf(out[i], SYM_MAX, "%s at %s", line, file);
        line = strtok_r(NULL, "\n", &save);
    }
    ok = true;
out:
    free(argv);
    free(hex);
    free(text);
    return ok;
}

/*
 * The ELF of app image sha from keeld, in a new temporary file whose name goes into out (the
 * caller unlinks it). False, quietly, when keeld has none or the download fails.
 */
static bool elf_fetch(const fapi_t *a, const char *sha, char *out, size_t cap)
{
    fapi_t q = *a;
    q.quiet = true;
    char path[128];
    uint8_t *b = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "/v1/elfs/%s", sha);
    if (!fapi_download(&q, path, &b, &n, NULL))
        return false;
    const char *tmp = getenv("TMPDIR");
    snprintf(out, cap, "%s/keel-elf-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    int fd = mkstemp(out);
    bool ok = fd >= 0 && write(fd, b, n) == (ssize_t)n;
    if (fd >= 0)
        close(fd);
    if (!ok && fd >= 0)
        unlink(out);
    free(b);
    return ok;
}

/* Fill sym[] for every report of list whose image is sha, with that image's ELF from keeld. */
static bool symbolicate_image(const char *prog, const fapi_t *a, const char *sha, json_t *list,
                              const uint32_t *pcs, char (*sym)[SYM_MAX])
{
    size_t n = json_array_size(list), m = 0;
    uint32_t *mine = calloc(n, sizeof *mine);
    char (*out)[SYM_MAX] = calloc(n, sizeof *out);
    char file[512];
    bool ok = mine != NULL && out != NULL;
    for (size_t i = 0; ok && i < n; i++)
        if (strcmp(fleetcli_jstr(json_array_get(list, i), "app_sha256", ""), sha) == 0)
            mine[m++] = pcs[i];
    if (ok && !elf_fetch(a, sha, file, sizeof file)) {
        fprintf(stderr, "%s: keeld lists an ELF for app image %s but did not send it\n", prog, sha);
        ok = false;
    } else if (ok) {
        ok = symbolicate(prog, file, mine, (unsigned)m, out);
        unlink(file);
    }
    for (size_t i = 0, k = 0; ok && i < n; i++)
        if (strcmp(fleetcli_jstr(json_array_get(list, i), "app_sha256", ""), sha) == 0)
            snprintf(sym[i], SYM_MAX, "%s", out[k++]);
    free(mine);
    free(out);
    return ok;
}

/* ---- keel crashes ----------------------------------------------------------------------------- */

static int run_crashes(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API,
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         {"elf", required_argument, NULL, OPT_ELF},
                                         {0}};
    api_opts_t o = {0};
    uint32_t limit = 100;
    const char *elf = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s [DEVICE] [options]\n\nList crash reports (every device, or DEVICE's), "
                   "newest first, with\nthe function and line of each pc when keeld has the ELF of "
                   "the app image it came\nfrom (arm-none-eabi-addr2line).\n'keel crash show ID' prints one in full.\n\noptions:\n"
                   "  --limit N      at most N reports, 1..1000 (default 100)\n"
                   "  --elf APP.elf  symbolicate every pc with this ELF instead of the ELF keeld\n"
                   "                 keeps for each report's app image (keel elf upload)\n"
                   HELP_API, prog);
            return CLI_EXIT_OK;
        }
        if (c == OPT_ELF) {
            elf = optarg;
        } else if (c == OPT_LIMIT) {
            if (!cli_parse_u32(prog, "--limit", optarg, 1, PAGE_MAX, &limit))
                return CLI_EXIT_USAGE;
        } else if (!fleetcli_api_opt(c, &o)) {
            return cli_bad_option(prog, c, argv);
        }
    }
    if (argc - optind > 1)
        return cli_usage_error(prog, "give at most one device id");
    if (elf != NULL && access(elf, R_OK) != 0)
        return cli_fail(prog, "cannot read the ELF '%s'", elf);
    char path[512];
    snprintf(path, sizeof path, "/v1/crashes?limit=%u", limit);
    if (optind < argc)
        add_query(path, sizeof path, "device", argv[optind]);
    fapi_t a;
    memset(&a, 0, sizeof a);
    json_t *j = NULL;
    if (!fapi_open(prog, o.url, o.token, &a) || !fapi_call(&a, "GET", path, NULL, &j, NULL))
        return fleetcli_finish(CLI_EXIT_FAIL);
    json_t *list = json_object_get(j, "crashes");
    size_t i, n = json_array_size(list);
    json_t *e;
    char (*sym)[SYM_MAX] = n > 0 ? calloc(n, sizeof *sym) : NULL;
    uint32_t *pcs = n > 0 ? calloc(n, sizeof *pcs) : NULL;
    if (n > 0 && (sym == NULL || pcs == NULL)) {
        free(sym);
        free(pcs);
        json_decref(j);
        return fleetcli_finish(cli_fail(prog, "out of memory"));
    }
    json_array_foreach(list, i, e)
        pcs[i] = (uint32_t)fleetcli_jint(e, "pc");
    bool ok = true;
    unsigned missing = 0;
    if (elf != NULL && n > 0) {
        ok = symbolicate(prog, elf, pcs, (unsigned)n, sym);
    } else {
        /* Each image's ELF once from keeld, for the reports of that image. */
        for (size_t k = 0; ok && k < n; k++) {
            const char *sha = fleetcli_jstr(json_array_get(list, k), "app_sha256", "");
            if (sym[k][0] != '\0')
                continue;
            if (!json_is_true(json_object_get(json_array_get(list, k), "elf_known"))) {
                missing++;
                continue;
            }
            /* Symbols are extra here: without them (no addr2line, a failed download) the
             * reports are still listed, after the message saying why. */
            if (!symbolicate_image(prog, &a, sha, list, pcs, sym))
                break;
        }
    }
    free(pcs);
    if (!ok) {
        free(sym);
        json_decref(j);
        return fleetcli_finish(CLI_EXIT_FAIL);
    }
    if (o.json) {
        json_array_foreach(list, i, e) {
            if (sym[i][0] != '\0')
                json_object_set_new(e, "pc_symbol", json_string(sym[i]));
        }
        fleetcli_print_json(j);
    } else if (n == 0) {
        printf("no crash reports\n");
    } else {
        printf("%6s  %-16s  %-23s  %-10s  %-10s  %-10s  %s\n", "ID", "DEVICE", "RECEIVED", "PC", "LR",
               "APP", "REASON");
        json_array_foreach(list, i, e) {
            char t[40], v[32];
            printf("%6lld  %-16s  %-23s  0x%08llx  0x%08llx  %-10s  %s", fleetcli_jint(e, "id"),
                   fleetcli_jstr(e, "device", "?"), fleetcli_fmt_time(fleetcli_jint(e, "received_ms"), t, sizeof t),
                   (unsigned long long)fleetcli_jint(e, "pc"), (unsigned long long)fleetcli_jint(e, "lr"),
                   fmt_version(fleetcli_jint(e, "app_version"), v, sizeof v), fleetcli_jstr(e, "reason", "?"));
            if (sym[i][0] != '\0')
                printf("  (pc in %s)", sym[i]);
            printf("\n");
        }
        if (missing > 0)
            printf("%u report%s without symbols: keeld has no ELF of the app image they came from;\n"
                   "upload it with 'keel elf upload APP.elf' (or give --elf APP.elf); "
                   "'keel crash show ID' names the image\n", missing, missing == 1 ? "" : "s");
    }
    free(sym);
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

/* ---- keel crash show ID ----------------------------------------------------------------------- */

static bool hex_decode(const char *hex, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > cap)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    *out_len = n / 2;
    return true;
}

static int run_crash_show(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API, {"elf", required_argument, NULL, OPT_ELF}, {0}};
    api_opts_t o = {0};
    const char *elf = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s ID [options]\n\n"
                   "Print crash report ID (from 'keel crashes'), decoded and formatted by Keel's\n"
                   "crash decoder from the report's stored bytes.\n\noptions:\n"
                   "  --elf APP.elf  symbolicate pc and lr with this ELF (arm-none-eabi-addr2line;\n"
                   "                 $KEEL_ADDR2LINE overrides the tool). Without it, the ELF keeld\n"
                   "                 keeps for the report's app image is used when there is one\n"
                   HELP_API, prog);
            return CLI_EXIT_OK;
        }
        if (c == OPT_ELF)
            elf = optarg;
        else if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    uint32_t id;
    if (optind + 1 != argc)
        return cli_usage_error(prog, "give exactly one crash report id (see 'keel crashes')");
    if (!cli_parse_u32(prog, "the crash id", argv[optind], 1, UINT32_MAX, &id))
        return CLI_EXIT_USAGE;
    if (elf != NULL && access(elf, R_OK) != 0)
        return cli_fail(prog, "cannot read the ELF '%s': give the app's .elf built for this report",
                        elf);
    char path[64];
    snprintf(path, sizeof path, "/v1/crashes/%u", (unsigned)id);
    fapi_t a;
    json_t *j = NULL;
    if (!fapi_open(prog, o.url, o.token, &a) || !fapi_call(&a, "GET", path, NULL, &j, NULL))
        return fleetcli_finish(CLI_EXIT_FAIL);
    uint8_t raw[KCRASH_ENCODED_MAX];
    size_t raw_len = 0;
    kcrash_report_t r;
    bool decoded = hex_decode(fleetcli_jstr(j, "report_hex", ""), raw, sizeof raw, &raw_len) &&
                   kcrash_decode(raw, raw_len, &r) == KERR_OK;
    char sym[2][SYM_MAX] = {"", ""};
    const char *sym_pc = sym[0], *sym_lr = sym[1];
    const char *image = fleetcli_jstr(j, "app_sha256", "");
    char fetched[512] = "";
    int rc = CLI_EXIT_OK;
    /* Without --elf, the ELF keeld keeps for the report's app image, when it has it. */
    if (elf == NULL && decoded && json_is_true(json_object_get(j, "elf_known"))) {
        if (elf_fetch(&a, image, fetched, sizeof fetched))
            elf = fetched;
        else
            fprintf(stderr, "%s: keeld lists an ELF for app image %s but did not send it\n", prog, image);
    }
    const char *from = elf == fetched ? "the ELF keeld has for this app image" : elf;
    if (elf != NULL && decoded) {
        uint32_t addrs[2] = {r.pc, r.lr & ~1u};
        /* A failure with the user's --elf fails the command; with keeld's ELF the report is
         * still shown, after the message saying why there are no symbols. */
        if (!symbolicate(prog, elf, addrs, 2, sym) && elf != fetched)
            rc = CLI_EXIT_FAIL;
    }
    if (fetched[0] != '\0')
        unlink(fetched);
    if (o.json) {
        if (sym_pc[0] != '\0')
            json_object_set_new(j, "symbols", json_pack("{s:s,s:s}", "pc", sym_pc, "lr", sym_lr));
        fleetcli_print_json(j);
    } else {
        char t[40];
        printf("crash %u from %s, received %s\n", (unsigned)id, fleetcli_jstr(j, "device", "?"),
               fleetcli_fmt_time(fleetcli_jint(j, "received_ms"), t, sizeof t));
        if (decoded) {
            static char text[CRASH_TEXT_MAX];
            kcrash_format(&r, "  ", text, sizeof text);
            fputs(text, stdout);
            if (text[0] != '\0' && text[strlen(text) - 1] != '\n')
                putchar('\n');
            printf("  app image: %s\n", image[0] != '\0' ? image : "unknown (the device never reported it)");
            if (sym_pc[0] != '\0') {
                printf("  symbols (%s):\n    pc 0x%08x  %s\n    lr 0x%08x  %s\n", from, (unsigned)r.pc,
                       sym_pc, (unsigned)r.lr, sym_lr);
            } else if (elf == NULL && image[0] != '\0') {
                printf("  (no symbols: keeld has no ELF of this app image; upload it with 'keel elf\n"
                       "   upload APP.elf', or give --elf APP.elf)\n");
            } else if (elf == NULL) {
                printf("  (no symbols: give --elf APP.elf to see function and line for pc and lr)\n");
            }
        } else {
            printf("  the report does not decode: %s\n  raw bytes: %s\n",
                   fleetcli_jstr(j, "decode_error", "not a KCR1 crash report"), fleetcli_jstr(j, "report_hex", ""));
            if (elf != NULL)
                fprintf(stderr, "%s: nothing to symbolicate in an undecodable report\n", prog);
        }
    }
    json_decref(j);
    return fleetcli_finish(rc);
}

/* ---- keel ping / restart / reboot ------------------------------------------------------------- */

static bool is_final(const char *status)
{
    return strcmp(status, "pending") != 0 && strcmp(status, "sent") != 0;
}

static int run_command(const char *prog, int argc, char **argv, const char *kind, const char *what)
{
    static const struct option opts[] = {OPTS_API,
                                         {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                         {"no-wait", no_argument, NULL, OPT_NO_WAIT},
                                         {0}};
    api_opts_t o = {0};
    uint32_t wait_s = CMD_WAIT_DEFAULT_S;
    bool no_wait = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s DEVICE [options]\n\n%s: keeld stores the command, sends it to the "
                   "device, and\nthis waits for the device's answer (exit 0 only for 'ok').\n\n"
                   "options:\n"
                   "  --timeout S    wait at most S seconds for the answer (default %u)\n"
                   "  --no-wait      print the command id and return once keeld has stored it\n"
                   HELP_API, prog, what, CMD_WAIT_DEFAULT_S);
            return CLI_EXIT_OK;
        }
        if (c == OPT_TIMEOUT) {
            if (!cli_parse_u32(prog, "--timeout", optarg, 1, CMD_WAIT_MAX_S, &wait_s))
                return CLI_EXIT_USAGE;
        } else if (c == OPT_NO_WAIT) {
            no_wait = true;
        } else if (!fleetcli_api_opt(c, &o)) {
            return cli_bad_option(prog, c, argv);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error(prog, optind >= argc ? "which device? give its id" :
                                                      "give exactly one device id");
    const char *device = argv[optind];
    fapi_t a;
    if (!fapi_open(prog, o.url, o.token, &a))
        return fleetcli_finish(CLI_EXIT_FAIL);
    json_t *req = json_pack("{s:s,s:s}", "device", device, "kind", kind);
    json_t *cmd = NULL;
    bool ok = fapi_call(&a, "POST", "/v1/commands", req, &cmd, NULL);
    json_decref(req);
    if (!ok)
        return fleetcli_finish(CLI_EXIT_FAIL);
    long long id = fleetcli_jint(cmd, "id");
    char path[64];
    snprintf(path, sizeof path, "/v1/commands/%lld", id);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned waited = 0; !no_wait && !is_final(fleetcli_jstr(cmd, "status", "pending")) &&
                              waited < wait_s * 1000u;
         waited += CMD_POLL_MS) {
        struct timespec ts = {0, (long)CMD_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        json_t *next = NULL;
        if (!fapi_call(&a, "GET", path, NULL, &next, NULL)) {
            json_decref(cmd);
            return fleetcli_finish(CLI_EXIT_FAIL);
        }
        json_decref(cmd);
        cmd = next;
    }
    const char *status = fleetcli_jstr(cmd, "status", "?");
    int rc = CLI_EXIT_OK;
    if (o.json) {
        fleetcli_print_json(cmd);
    } else if (no_wait) {
        printf("%s: %s sent as command %lld (status %s); see GET /v1/commands/%lld\n", device, kind, id,
               status, id);
    } else if (strcmp(status, "ok") == 0) {
        printf("%s: %s ok in %lld ms", device, kind,
               fleetcli_jint(cmd, "completed_ms") - fleetcli_jint(cmd, "created_ms"));
        if (json_is_integer(json_object_get(cmd, "device_uptime_ms")))
            printf(" (device up %.1f s)", (double)fleetcli_jint(cmd, "device_uptime_ms") / 1000.0);
        printf("\n");
    }
    if (!no_wait && strcmp(status, "ok") != 0) {
        rc = CLI_EXIT_FAIL;
        if (!is_final(status))
            fprintf(stderr, "%s: no answer from %s within %u s: command %lld is still '%s' (keeld "
                            "keeps it and times it out by itself; is the device online? "
                            "'keel devices')\n", prog, device, wait_s, id, status);
        else
            fprintf(stderr, "%s: %s answered '%s' to command %lld%s%s\n", prog, device, status, id,
                    fleetcli_jstr(cmd, "detail", "")[0] ? ": " : "", fleetcli_jstr(cmd, "detail", ""));
    }
    json_decref(cmd);
    return fleetcli_finish(rc);
}

static int run_ping(const char *prog, int argc, char **argv)
{
    return run_command(prog, argc, argv, "ping", "Ping a device");
}

static int run_restart(const char *prog, int argc, char **argv)
{
    return run_command(prog, argc, argv, "restart", "Restart a device's app");
}

static int run_reboot(const char *prog, int argc, char **argv)
{
    return run_command(prog, argc, argv, "reboot", "Reboot (reset) a device");
}

/* ---- keel token create ------------------------------------------------------------------------ */

static int run_token_create(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API,
                                         {"name", required_argument, NULL, OPT_NAME},
                                         {"db", required_argument, NULL, OPT_DB},
                                         {"state", required_argument, NULL, OPT_STATE},
                                         {0}};
    api_opts_t o = {0};
    const char *name = NULL, *db = NULL, *state = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s [--name NAME] [--db FILE | --state DIR | API options]\n\n"
                   "Create an API token and print it (the only time it is shown).\n"
                   "  --db FILE      directly in a local keeld's database (runs 'keeld token create')\n"
                   "  --state DIR    in the database of the stack 'keel up --state DIR' runs\n"
                   "  otherwise      through the API of a running keeld, with an existing token\n"
                   "  --name NAME    a label for the token (at most 64 characters)\n\noptions:\n"
                   HELP_API, prog);
            return CLI_EXIT_OK;
        }
        if (c == OPT_NAME)
            name = optarg;
        else if (c == OPT_DB)
            db = optarg;
        else if (c == OPT_STATE)
            state = optarg;
        else if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    if (optind < argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (db != NULL && state != NULL)
        return cli_usage_error(prog, "give --db or --state, not both");
    char dbpath[STACK_PATH_MAX];
    if (state != NULL) {
        snprintf(dbpath, sizeof dbpath, "%s/keeld.db", state);
        if (access(dbpath, F_OK) != 0)
            return cli_fail(prog, "%s has no keeld database: start the stack with 'keel up --state %s'",
                            state, state);
        db = dbpath;
    }
    if (db != NULL) {
        char keeld[STACK_PATH_MAX];
        if (!stack_find_tool(prog, "keeld", "KEEL_KEELD", "../../server/keeld", keeld, sizeof keeld))
            return CLI_EXIT_FAIL;
        char *args[] = {keeld, "token", "create", "--db", (char *)db, "--name",
                        (char *)(name != NULL ? name : "cli"), NULL};
        char out[256];
        int rc = stack_capture(prog, args, 30, NULL, out, sizeof out);
        if (rc != 0)
            return cli_fail(prog, "keeld token create failed (see above)");
        if (o.json) {
            size_t n = strcspn(out, "\n");
            out[n] = '\0';
            json_t *j = json_pack("{s:s,s:s}", "name", name != NULL ? name : "cli", "token", out);
            fleetcli_print_json(j);
            json_decref(j);
        } else {
            fputs(out, stdout);
        }
        return CLI_EXIT_OK;
    }
    fapi_t a;
    json_t *j = NULL, *req = name != NULL ? json_pack("{s:s}", "name", name) : json_object();
    bool ok = fapi_open(prog, o.url, o.token, &a) && fapi_call(&a, "POST", "/v1/tokens", req, &j, NULL);
    json_decref(req);
    if (!ok)
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (o.json)
        fleetcli_print_json(j);
    else
        printf("%s\n", fleetcli_jstr(j, "token", ""));
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

/* ---- keel channel send / read ----------------------------------------------------------------- */

#define CHANNEL_DATA_MAX 512u /* keel.h KEEL_CHANNEL_DATA_MAX */

/* DEVICE and CHANNEL checked here as the protocol takes them, so that a typo gets a sentence of
 * its own instead of a URL error or keeld's 404. CLI_EXIT_OK or the usage error. */
static int channel_args_check(const char *prog, const char *device, const char *channel)
{
    char topic[KPROTO_TOPIC_MAX];
    if (kident_check_id(device) != KERR_OK)
        return cli_usage_error(prog, "'%s' is not a device id (1 to %u of A-Z a-z 0-9 . _ -; "
                               "'keel devices' lists them)", device, KIDENT_ID_MAX);
    if (kproto_topic_build(KPROTO_T_APP_UP, device, channel, topic, sizeof topic) != KERR_OK)
        return cli_usage_error(prog, "'%s' is not a channel name (1 to %u of A-Z a-z 0-9 . _ -, "
                               "as the app passes it to keel_channel_open)", channel, KPROTO_CHANNEL_MAX);
    return CLI_EXIT_OK;
}

static int run_channel_send(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API, {"file", required_argument, NULL, OPT_FILE}, {0}};
    api_opts_t o = {0};
    const char *file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s DEVICE CHANNEL DATA\n       %s DEVICE CHANNEL --file F\n\n"
                   "Send DATA (text) or the bytes of file F (1 to %u bytes) down app channel CHANNEL\n"
                   "of DEVICE; its app receives it with keel_channel_recv(). The device must be\n"
                   "online: nothing queues channel data for an offline device.\n\noptions:\n"
                   "  --file F       send the contents of F instead of DATA\n" HELP_API,
                   prog, prog, CHANNEL_DATA_MAX);
            return CLI_EXIT_OK;
        }
        if (c == OPT_FILE)
            file = optarg;
        else if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    int want = file != NULL ? 2 : 3;
    if (argc - optind != want)
        return cli_usage_error(prog, file != NULL ? "give DEVICE and CHANNEL (the data comes from --file)"
                                                  : "give DEVICE, CHANNEL and DATA (or --file F)");
    const char *device = argv[optind], *channel = argv[optind + 1];
    int rc = channel_args_check(prog, device, channel);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *req;
    if (file != NULL) {
        uint8_t buf[CHANNEL_DATA_MAX + 1];
        FILE *f = fopen(file, "rb");
        if (f == NULL)
            return cli_fail(prog, "cannot read '%s'", file);
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (n == 0 || n > CHANNEL_DATA_MAX)
            return cli_fail(prog, "'%s' is %s: a channel message is 1 to %u bytes", file,
                            n == 0 ? "empty" : "too big", CHANNEL_DATA_MAX);
        char hex[2 * CHANNEL_DATA_MAX + 1];
        for (size_t i = 0; i < n; i++)
            snprintf(hex + 2 * i, 3, "%02x", buf[i]);
        req = json_pack("{s:s}", "hex", hex);
    } else {
        size_t n = strlen(argv[optind + 2]);
        if (n == 0 || n > CHANNEL_DATA_MAX)
            return cli_usage_error(prog, "DATA is %zu bytes: a channel message is 1 to %u bytes", n,
                                   CHANNEL_DATA_MAX);
        req = json_pack("{s:s}", "text", argv[optind + 2]);
    }
    char path[256];
    snprintf(path, sizeof path, "/v1/devices/%s/channels/%s", device, channel);
    fapi_t a;
    json_t *j = NULL;
    bool ok = fapi_open(prog, o.url, o.token, &a) && fapi_call(&a, "POST", path, req, &j, NULL);
    json_decref(req);
    if (!ok)
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (o.json)
        fleetcli_print_json(j);
    else
        printf("sent %lld bytes to %s channel %s\n", fleetcli_jint(j, "size"), device, channel);
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

static void print_channel_msg(json_t *e)
{
    char t[40];
    const char *text = fleetcli_jstr(e, "text", NULL);
    printf("%s %-4s ", fleetcli_fmt_time(fleetcli_jint(e, "received_ms"), t, sizeof t), fleetcli_jstr(e, "direction", "?"));
    if (text != NULL)
        printf("%s\n", text);
    else
        printf("hex:%s\n", fleetcli_jstr(e, "data", ""));
}

static bool on_live_channel(void *ctx, json_t *e)
{
    const bool *json = ctx;
    if (*json) {
        char *s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s != NULL)
            printf("%s\n", s);
        free(s);
    } else {
        print_channel_msg(e);
    }
    fflush(stdout);
    return true;
}

static int run_channel_read(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API,
                                         {"follow", no_argument, NULL, OPT_FOLLOW},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         {"after", required_argument, NULL, OPT_AFTER},
                                         {"direction", required_argument, NULL, OPT_DIRECTION},
                                         {0}};
    api_opts_t o = {0};
    bool follow = false;
    uint32_t limit = 100, after = 0;
    const char *direction = "up";
    int c;
    while ((c = getopt_long(argc, argv, ":hf", opts, NULL)) != -1) {
        switch (c) {
        case OPT_HELP:
            printf("usage: %s DEVICE CHANNEL [options]\n\n"
                   "Print what DEVICE's app sent on channel CHANNEL, oldest first:\n"
                   "  TIME DIRECTION DATA   (DATA as text, or hex:... when it is not text)\n\noptions:\n"
                   "  -f, --follow       then keep printing new messages as they arrive (Ctrl-C stops);\n"
                   "                     with -f only new ones unless --after is given\n"
                   "  --after ID         only messages after the one with this id\n"
                   "  --limit N          at most N messages, 1..1000 (default 100; not with -f)\n"
                   "  --direction D      up (from the app, the default), down (sent to it) or all\n"
                   HELP_API
                   "With --json: {\"messages\": [...]}; with -f --json: one JSON message per line.\n",
                   prog);
            return CLI_EXIT_OK;
        case OPT_FOLLOW:
            follow = true;
            break;
        case OPT_LIMIT:
            if (!cli_parse_u32(prog, "--limit", optarg, 1, PAGE_MAX, &limit))
                return CLI_EXIT_USAGE;
            break;
        case OPT_AFTER:
            if (!cli_parse_u32(prog, "--after", optarg, 0, UINT32_MAX, &after))
                return CLI_EXIT_USAGE;
            break;
        case OPT_DIRECTION:
            if (strcmp(optarg, "up") != 0 && strcmp(optarg, "down") != 0 && strcmp(optarg, "all") != 0)
                return cli_usage_error(prog, "--direction is up, down or all, not '%s'", optarg);
            direction = optarg;
            break;
        default:
            if (!fleetcli_api_opt(c, &o))
                return cli_bad_option(prog, c, argv);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error(prog, "give DEVICE and CHANNEL");
    if (follow && strcmp(direction, "up") != 0)
        return cli_usage_error(prog, "-f follows what the app sends (--direction up) only");
    const char *device = argv[optind], *channel = argv[optind + 1];
    int rc = channel_args_check(prog, device, channel);
    if (rc != CLI_EXIT_OK)
        return rc;
    fapi_t a;
    if (!fapi_open(prog, o.url, o.token, &a))
        return fleetcli_finish(CLI_EXIT_FAIL);
    char path[512], num[32];
    if (follow) {
        snprintf(path, sizeof path, "/v1/devices/%s/channels/%s/stream", device, channel);
        if (after > 0) {
            snprintf(num, sizeof num, "%u", (unsigned)after);
            add_query(path, sizeof path, "after", num);
        }
        char opened[256];
        snprintf(opened, sizeof opened, "following channel %s of %s (Ctrl-C to stop)", channel, device);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = fleetcli_on_stop;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        uint64_t last = after;
        bool ok = fapi_stream(&a, path, opened, &fleetcli_stop, &last, on_live_channel, &o.json);
        return fleetcli_finish(ok ? CLI_EXIT_OK : CLI_EXIT_FAIL);
    }
    snprintf(path, sizeof path, "/v1/devices/%s/channels/%s?limit=%u&direction=%s", device, channel,
             (unsigned)limit, direction);
    if (after > 0) {
        snprintf(num, sizeof num, "%u", (unsigned)after);
        add_query(path, sizeof path, "after", num);
    }
    json_t *j = NULL;
    if (!fapi_call(&a, "GET", path, NULL, &j, NULL))
        return fleetcli_finish(CLI_EXIT_FAIL);
    json_t *list = json_object_get(j, "messages");
    size_t i;
    json_t *e;
    if (o.json) {
        fleetcli_print_json(j);
    } else if (json_array_size(list) == 0) {
        fprintf(stderr, "%s: no messages on channel %s of %s\n", prog, channel, device);
    } else {
        json_array_foreach(list, i, e)
            print_channel_msg(e);
    }
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

/* ---- keel elf upload / list --------------------------------------------------------------------- */

static int run_elf_upload(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API, {0}};
    api_opts_t o = {0};
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s APP.elf [options]\n\n"
                   "Upload an app's ELF to keeld, filed under the SHA-256 of the app image it builds\n"
                   "(what devices running it report), so that 'keel crashes' and 'keel crash show'\n"
                   "symbolicate that app's crash reports by themselves. keeld checks the ELF builds\n"
                   "an app image. 'keel device install' and 'keel up' upload theirs when a server\n"
                   "is configured.\n\noptions:\n" HELP_API, prog);
            return CLI_EXIT_OK;
        }
        if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    if (argc - optind != 1)
        return cli_usage_error(prog, "give one app ELF file");
    fapi_t a;
    if (!fapi_open(prog, o.url, o.token, &a))
        return fleetcli_finish(CLI_EXIT_FAIL);
    json_t *j = NULL;
    if (!fapi_elf_upload(&a, argv[optind], &j))
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (o.json)
        fleetcli_print_json(j);
    else
        printf("%s %s: app image sha256 %s (%lld bytes)\n",
               json_is_true(json_object_get(j, "created")) ? "uploaded" : "keeld already has the ELF of",
               argv[optind], fleetcli_jstr(j, "sha256", "?"), fleetcli_jint(j, "image_size"));
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

static int run_elf_list(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_API, {0}};
    api_opts_t o = {0};
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s [options]\n\nList the app ELFs keeld keeps for symbolication.\n\n"
                   "options:\n" HELP_API, prog);
            return CLI_EXIT_OK;
        }
        if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    if (optind != argc)
        return cli_usage_error(prog, "no arguments expected");
    fapi_t a;
    json_t *j = NULL;
    if (!fapi_open(prog, o.url, o.token, &a) || !fapi_call(&a, "GET", "/v1/elfs", NULL, &j, NULL))
        return fleetcli_finish(CLI_EXIT_FAIL);
    json_t *list = json_object_get(j, "elfs");
    size_t i;
    json_t *e;
    if (o.json) {
        fleetcli_print_json(j);
    } else if (json_array_size(list) == 0) {
        printf("no ELFs (upload one with 'keel elf upload APP.elf')\n");
    } else {
        printf("%-64s  %-10s  %-23s  %s\n", "IMAGE SHA256", "IMAGE", "UPLOADED", "NAME");
        json_array_foreach(list, i, e) {
            char t[40];
            printf("%-64s  %-10lld  %-23s  %s\n", fleetcli_jstr(e, "sha256", "?"), fleetcli_jint(e, "image_size"),
                   fleetcli_fmt_time(fleetcli_jint(e, "uploaded_ms"), t, sizeof t), fleetcli_jstr(e, "name", ""));
        }
    }
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

/* ---- tables ----------------------------------------------------------------------------------- */

const cli_noun_t cmd_devices = {
    .name = "devices", .summary = "list the fleet's devices (keeld)", .run = run_devices};
const cli_noun_t cmd_logs = {
    .name = "logs", .summary = "print or follow (-f) device logs (keeld)", .run = run_logs};
const cli_noun_t cmd_crashes = {
    .name = "crashes", .summary = "list crash reports (keeld)", .run = run_crashes};
const cli_noun_t cmd_ping = {.name = "ping", .summary = "ping a device (keeld)", .run = run_ping};
const cli_noun_t cmd_restart = {
    .name = "restart", .summary = "restart a device's app (keeld)", .run = run_restart};
const cli_noun_t cmd_reboot = {.name = "reboot", .summary = "reboot a device (keeld)", .run = run_reboot};

static const cli_verb_t crash_verbs[] = {
    {"show", "print one crash report, formatted and optionally symbolicated", run_crash_show},
};
const cli_noun_t cmd_crash = {
    .name = "crash",
    .summary = "one crash report (keeld)",
    .verbs = crash_verbs,
    .nverbs = sizeof crash_verbs / sizeof crash_verbs[0],
};

static const cli_verb_t channel_verbs[] = {
    {"send", "send data down an app channel of a device", run_channel_send},
    {"read", "print (or follow, -f) what a device's app sent on a channel", run_channel_read},
};
const cli_noun_t cmd_channel = {
    .name = "channel",
    .summary = "app channels: data to and from a device's app (keeld)",
    .verbs = channel_verbs,
    .nverbs = sizeof channel_verbs / sizeof channel_verbs[0],
};

static const cli_verb_t elf_verbs[] = {
    {"upload", "give keeld an app ELF to symbolicate its crash reports", run_elf_upload},
    {"list", "the app ELFs keeld keeps", run_elf_list},
};
const cli_noun_t cmd_elf = {
    .name = "elf",
    .summary = "app ELFs for crash symbolication (keeld)",
    .verbs = elf_verbs,
    .nverbs = sizeof elf_verbs / sizeof elf_verbs[0],
};

static const cli_verb_t token_verbs[] = {
    {"create", "create an API token", run_token_create},
};
const cli_noun_t cmd_token = {
    .name = "token",
    .summary = "API tokens for keeld",
    .verbs = token_verbs,
    .nverbs = sizeof token_verbs / sizeof token_verbs[0],
};

int cmd_device_show(const char *prog, int argc, char **argv)
{
    return run_device_show(prog, argc, argv);
}

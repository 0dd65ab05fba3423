/*
 * keel rollout create|status|list|pause|resume|approve|abort|rollback: deployments in phases that
 * stop themselves (docs/rollouts.md, docs/cli.md "Rollouts"). A family of its own rather than
 * more `keel deploy` options: a rollout has its own id, lifecycle and operator verbs, and its
 * status is phases, not device rows (each phase's devices are a deployment `keel deploy status`
 * shows). Server and token: see fapi.h.
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cmd.h"
#include "fapi.h"
#include "fleetcli.h"

#define WATCH_WAIT_S 5                          /* one long poll; also how long Ctrl-C may take */
#define BUNDLE_MAX (64u * 1024u * 1024u)        /* keeld's --max-bundle decides; a guard */
#define SECS_MAX (30u * 24u * 3600u)
#define BAR_WIDTH 16

static bool is_id(const char *s)
{
    return s[0] != '\0' && strspn(s, "0123456789") == strlen(s) && strlen(s) < 19;
}

/* A bundle reference for the API: a file is uploaded first (idempotent), an id or a SHA-256 is
 * taken as is. NULL after saying why. */
static json_t *bundle_ref(const fapi_t *a, const char *ref, bool quiet)
{
    if (access(ref, F_OK) == 0) {
        uint8_t *b = NULL;
        size_t len = 0;
        json_t *out = NULL;
        if (!cmd_bundle_read(a->prog, ref, BUNDLE_MAX, &b, &len))
            return NULL;
        bool ok = fapi_upload(a, "POST", "/v1/bundles", b, len, &out, NULL);
        free(b);
        if (!ok)
            return NULL;
        if (!quiet)
            printf("bundle %lld: %s %s, sha256 %s%s\n", fleetcli_jint(out, "id"), fleetcli_jstr(out, "name", "?"),
                   fleetcli_jstr(out, "version", "?"), fleetcli_jstr(out, "sha256", "?"),
                   json_is_false(json_object_get(out, "created")) ? " (already stored)" : "");
        json_t *sha = json_incref(json_object_get(out, "sha256"));
        json_decref(out);
        return sha;
    }
    if (is_id(ref))
        return json_integer(strtoll(ref, NULL, 10));
    if (strlen(ref) == 64 && strspn(ref, "0123456789abcdef") == 64)
        return json_string(ref);
    cli_fail(a->prog, "'%s' is no file, bundle id or SHA-256", ref);
    return NULL;
}

/*
 * --phase SPEC: "N" devices, "P%" of the target, or "tag:NAME[=VALUE]"; then ",approve",
 * ",success=P", ",errors=P", ",min=N" in any order. NULL after saying why.
 */
static json_t *parse_phase(const char *prog, const char *spec)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    json_t *p = json_object();
    char *save = NULL;
    char *tok = strtok_r(buf, ",", &save);
    uint32_t v = 0;
    bool ok = tok != NULL;
    if (ok && strncmp(tok, "tag:", 4) == 0 && tok[4] != '\0') {
        json_object_set_new(p, "tag", json_string(tok + 4));
    } else if (ok && tok[0] != '\0' && tok[strlen(tok) - 1] == '%') {
        tok[strlen(tok) - 1] = '\0';
        ok = cli_parse_u32(prog, "--phase (percent)", tok, 1, 100, &v);
        json_object_set_new(p, "percent", json_integer(v));
    } else if (ok) {
        ok = cli_parse_u32(prog, "--phase (devices)", tok, 1, 10000000, &v);
        json_object_set_new(p, "count", json_integer(v));
    }
    while (ok && (tok = strtok_r(NULL, ",", &save)) != NULL) {
        static const struct { const char *prefix, *key; uint32_t lo, hi; } kv[] = {
            {"success=", "success_pct", 0, 100}, {"errors=", "error_pct", 0, 100}, {"min=", "min_results", 1, 10000000}};
        bool known = strcmp(tok, "approve") == 0;
        if (known)
            json_object_set_new(p, "approve", json_true());
        for (size_t i = 0; i < sizeof kv / sizeof kv[0] && !known; i++) {
            size_t n = strlen(kv[i].prefix);
            if (strncmp(tok, kv[i].prefix, n) == 0) {
                known = true;
                ok = cli_parse_u32(prog, "--phase", tok + n, kv[i].lo, kv[i].hi, &v);
                json_object_set_new(p, kv[i].key, json_integer(v));
            }
        }
        if (!known) {
            cli_usage_error(prog, "--phase '%s': unknown '%s' (approve, success=P, errors=P, min=N)", spec, tok);
            ok = false;
        }
    }
    if (!ok) {
        if (tok == NULL)
            cli_usage_error(prog, "--phase is empty: give N, P%% or tag:NAME[=VALUE]");
        json_decref(p);
        return NULL;
    }
    return p;
}

/* ---- printing --------------------------------------------------------------------------------- */

static void bar(char *out, long long done, long long total)
{
    int fill = total > 0 ? (int)(done * BAR_WIDTH / total) : 0;
    for (int i = 0; i < BAR_WIDTH; i++)
        out[i] = i < fill ? '#' : '-';
    out[BAR_WIDTH] = '\0';
}

/* The rollout as text; returns the lines printed (for redrawing in place). */
static int print_rollout(json_t *r, bool tty)
{
    const char *eol = tty ? "\033[K\n" : "\n";
    char t[40], b[BAR_WIDTH + 1];
    int lines = 0;
    const char *kind = fleetcli_jstr(r, "target_kind", "?");
    printf("rollout %lld: %s %s (bundle %lld) to %s%s%s, %lld devices: %s%s", fleetcli_jint(r, "id"),
           fleetcli_jstr(r, "app", "?"), fleetcli_jstr(r, "version", "?"), fleetcli_jint(r, "bundle_id"), kind,
           strcmp(kind, "all") ? " " : "", fleetcli_jstr(r, "target", ""), fleetcli_jint(r, "devices"),
           fleetcli_jstr(r, "state", "?"), eol);
    lines++;
    size_t i;
    json_t *p;
    long long current = fleetcli_jint(r, "phase");
    json_array_foreach(json_object_get(r, "phases"), i, p) {
        long long n = fleetcli_jint(p, "devices"), ok = fleetcli_jint(p, "succeeded");
        char what[160];
        snprintf(what, sizeof what, "%s %s%s", fleetcli_jstr(p, "kind", "?"), fleetcli_jstr(p, "value", "?"),
                 strcmp(fleetcli_jstr(p, "kind", ""), "percent") == 0 ? "%" : "");
        bar(b, ok, n);
        const char *mark = (long long)i == current ? ">" : " ";
        if (json_is_null(json_object_get(p, "started_ms"))) {
            printf("%s phase %zu  %-18s %5lld devices  [%s] not started%s%s", mark, i + 1, what, n, b,
                   json_is_true(json_object_get(p, "approve")) ? " (needs approval)" : "", eol);
        } else {
            printf("%s phase %zu  %-18s %5lld devices  [%s] %lld succeeded, %lld failed, %lld timed out, "
                   "%lld waiting%s%s", mark, i + 1, what, n, b, ok, fleetcli_jint(p, "failed"),
                   fleetcli_jint(p, "timed_out"), fleetcli_jint(p, "waiting"),
                   fleetcli_jint(p, "inconclusive") ? " (some inconclusive)" : "", eol);
        }
        lines++;
    }
    printf("gates: success %lld%%, errors at most %lld%% after %lld results; device timeout %lld s; on "
           "error: %s%s", fleetcli_jint(json_array_get(json_object_get(r, "phases"), 0), "success_pct"),
           fleetcli_jint(json_array_get(json_object_get(r, "phases"), 0), "error_pct"),
           fleetcli_jint(json_array_get(json_object_get(r, "phases"), 0), "min_results"),
           fleetcli_jint(r, "device_timeout_s"), fleetcli_jstr(r, "on_error", "?"), eol);
    printf("%s: %s%s", fleetcli_fmt_time(fleetcli_jint(r, "updated_ms"), t, sizeof t), fleetcli_jstr(r, "reason", ""), eol);
    return lines + 2;
}

static bool final_state(const char *s)
{
    return strcmp(s, "completed") == 0 || strcmp(s, "aborted") == 0 || strcmp(s, "paused") == 0;
}

/*
 * Follow a rollout with long polls until it is completed (exit 0), aborted or paused (exit 1:
 * someone must act), or Ctrl-C. On a terminal the phases are redrawn in place; --json prints the
 * rollout on every change.
 */
static int watch(fapi_t *a, long long id, bool json)
{
    bool tty = isatty(STDOUT_FILENO) && !json;
    long long rev = -1;
    int lines = 0, errors = 0;
    struct sigaction sa = {0};
    sa.sa_handler = fleetcli_on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!fleetcli_stop) {
        char path[96];
        json_t *r = NULL;
        snprintf(path, sizeof path, "/v1/rollouts/%lld?after=%lld&wait=%d", id, rev, WATCH_WAIT_S);
        if (!fapi_call(a, "GET", path, NULL, &r, NULL)) {
            if (++errors > FAPI_STREAM_RETRIES) /* keeld restarting: keep trying for a while */
                return CLI_EXIT_FAIL;
            sleep(1);
            continue;
        }
        errors = 0;
        if (fleetcli_jint(r, "watch_rev") != rev) {
            rev = fleetcli_jint(r, "watch_rev");
            if (json) {
                char *s = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (s != NULL)
                    printf("%s\n", s);
                free(s);
            } else {
                if (tty && lines > 0)
                    printf("\033[%dA", lines);
                lines = print_rollout(r, tty);
            }
            fflush(stdout);
        }
        const char *state = fleetcli_jstr(r, "state", "");
        int rc = strcmp(state, "completed") == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        bool end = final_state(state);
        json_decref(r);
        if (end)
            return rc;
    }
    return CLI_EXIT_OK;
}

/* ---- verbs ------------------------------------------------------------------------------------ */

static int rollout_create(const char *prog, int argc, char **argv)
{
    enum { O_TAG = 400, O_ALL, O_PHASE, O_SUCCESS, O_ERRORS, O_MIN, O_TIMEOUT, O_ON_ERROR, O_BACK,
           O_FORCE_AFTER, O_WATCH, O_SEED, O_WINDOW };
    static const struct option opts[] = {OPTS_API,
                                         {"tag", required_argument, NULL, O_TAG},
                                         {"all", no_argument, NULL, O_ALL},
                                         {"phase", required_argument, NULL, O_PHASE},
                                         {"success", required_argument, NULL, O_SUCCESS},
                                         {"errors", required_argument, NULL, O_ERRORS},
                                         {"min-results", required_argument, NULL, O_MIN},
                                         {"timeout", required_argument, NULL, O_TIMEOUT},
                                         {"on-error", required_argument, NULL, O_ON_ERROR},
                                         {"rollback-to", required_argument, NULL, O_BACK},
                                         {"force-after", required_argument, NULL, O_FORCE_AFTER},
                                         {"seed", required_argument, NULL, O_SEED},
                                         {"window", required_argument, NULL, O_WINDOW},
                                         {"watch", no_argument, NULL, O_WATCH},
                                         {0}};
    api_opts_t o = {0};
    json_t *body = json_object(), *phases = json_array();
    const char *back = NULL;
    bool watching = false;
    int c, targets = 0, rc = CLI_EXIT_USAGE;
    uint32_t v;
    json_object_set(body, "phases", phases);
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        const char *key = c == O_SUCCESS ? "success_pct" : c == O_ERRORS ? "error_pct" : c == O_MIN ? "min_results"
                          : c == O_TIMEOUT ? "device_timeout_s" : c == O_FORCE_AFTER ? "force_after_s" : NULL;
        if (c == OPT_HELP) {
            printf("usage: %s BUNDLE --tag T|--all --phase SPEC... [options]\n\n"
                   "Roll BUNDLE (an APP.kb file, uploaded first, or a bundle id or SHA-256) out in\n"
                   "phases. Each phase starts when the one before met its success threshold (and,\n"
                   "with approve, when an operator approves it); more errors than the error\n"
                   "threshold in any started phase pause the rollout.\n"
                   "  --tag T | --all     the devices (T: NAME or NAME=VALUE)\n"
                   "  --phase SPEC        N devices, P%% of the target, or tag:NAME[=VALUE]; then\n"
                   "                      ,approve ,success=P ,errors=P ,min=N for that phase. The\n"
                   "                      devices are drawn in a fixed order (a hash of each id);\n"
                   "                      the last phase also takes every device left\n"
                   "  --success P         percent of a phase's devices that must succeed (90)\n"
                   "  --errors P          pause when more than P%% of a phase's results are errors\n"
                   "                      (refused, failed download, rolled back, timed out) (10)\n"
                   "  --min-results N     ... once the phase has N results (1)\n"
                   "  --timeout S         a device with no final result S seconds after its phase\n"
                   "                      started counts as an error (3600)\n"
                   "  --on-error pause|rollback  rollback also deploys the previous bundle to the\n"
                   "                      devices updated so far\n"
                   "  --rollback-to B     that previous bundle (default: each device's last one)\n"
                   "  --force-after S     as for keel deploy\n"
                   "  --seed TEXT         draw the devices' order from TEXT (default: the bundle)\n"
                   "  --window FROM-TO    offer only between FROM and TO (HH:MM) of each device's\n"
                   "                      local time: UTC plus its utc_offset tag (minutes)\n"
                   "  --watch             follow it (exit 0 when complete, 1 when paused or aborted)\n\n"
                   "options:\n" HELP_API, prog);
            rc = CLI_EXIT_OK;
            goto out;
        }
        if (c == O_TAG || c == O_ALL) {
            targets++;
            json_object_set_new(body, c == O_TAG ? "tag" : "all", c == O_TAG ? json_string(optarg) : json_true());
        } else if (c == O_PHASE) {
            json_t *p = parse_phase(prog, optarg);
            if (p == NULL)
                goto out;
            json_array_append_new(phases, p);
        } else if (key != NULL) {
            uint32_t lo = c == O_MIN || c == O_TIMEOUT ? 1 : 0;
            uint32_t hi = c == O_SUCCESS || c == O_ERRORS ? 100 : c == O_MIN ? 10000000 : SECS_MAX;
            char name[32] = "option";
            for (size_t i = 0; opts[i].name != NULL; i++)
                if (opts[i].val == c)
                    snprintf(name, sizeof name, "--%s", opts[i].name);
            if (!cli_parse_u32(prog, name, optarg, lo, hi, &v))
                goto out;
            json_object_set_new(body, key, json_integer(v));
        } else if (c == O_ON_ERROR) {
            if (strcmp(optarg, "pause") != 0 && strcmp(optarg, "rollback") != 0) {
                cli_usage_error(prog, "--on-error is pause or rollback");
                goto out;
            }
            json_object_set_new(body, "on_error", json_string(optarg));
        } else if (c == O_BACK) {
            back = optarg;
        } else if (c == O_SEED) {
            json_object_set_new(body, "seed", json_string(optarg));
        } else if (c == O_WINDOW) {
            /* FROM-TO, keeld checks the times */
            const char *dash = strchr(optarg, '-');
            if (dash == NULL || dash == optarg || dash[1] == '\0' || dash - optarg > 5) {
                cli_usage_error(prog, "--window is HH:MM-HH:MM (each device's local time)");
                goto out;
            }
            json_object_set_new(body, "window", json_pack("{s:s%, s:s}", "from", optarg, (size_t)(dash - optarg),
                                                          "to", dash + 1));
        } else if (c == O_WATCH) {
            watching = true;
        } else if (!fleetcli_api_opt(c, &o)) {
            rc = cli_bad_option(prog, c, argv);
            goto out;
        }
    }
    if (optind != argc - 1) {
        cli_usage_error(prog, optind == argc ? "which bundle? give APP.kb, a bundle id or its SHA-256"
                                             : "give exactly one BUNDLE");
        goto out;
    }
    if (targets != 1 || json_array_size(phases) == 0) {
        cli_usage_error(prog, targets != 1 ? "say which devices with exactly one of --tag T, --all"
                                           : "give the phases: --phase N|P%%|tag:T, e.g. --phase 1 --phase 10%% --phase 100%%");
        goto out;
    }
    fapi_t a;
    json_t *ref, *r = NULL;
    rc = CLI_EXIT_FAIL;
    if (!fapi_open(prog, o.url, o.token, &a) || (ref = bundle_ref(&a, argv[optind], o.json)) == NULL)
        goto out;
    json_object_set_new(body, "bundle", ref);
    if (back != NULL) {
        json_t *b = bundle_ref(&a, back, o.json);
        if (b == NULL)
            goto out;
        json_object_set_new(body, "rollback_bundle", b);
    }
    if (!fapi_call(&a, "POST", "/v1/rollouts", body, &r, NULL))
        goto out;
    if (!watching && o.json)
        fleetcli_print_json(r);
    else if (!watching)
        print_rollout(r, false);
    rc = watching ? watch(&a, fleetcli_jint(r, "id"), o.json) : CLI_EXIT_OK;
    json_decref(r);
out:
    json_decref(phases);
    json_decref(body);
    return fleetcli_finish(rc);
}

/* status ID [--watch], list, and the operators' verbs ID [--reason TEXT]. */
static int rollout_other(const char *prog, int argc, char **argv)
{
    enum { O_WATCH = 400, O_REASON };
    static const struct option opts[] = {OPTS_API, {"watch", no_argument, NULL, O_WATCH},
                                         {"reason", required_argument, NULL, O_REASON}, {0}};
    const char *verb = argv[0];
    bool list = strcmp(verb, "list") == 0, status = strcmp(verb, "status") == 0;
    api_opts_t o = {0};
    const char *reason = NULL;
    bool watching = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf(list ? "usage: %s [options]\n\nRecent rollouts, newest first.\n\noptions:\n" HELP_API
                   : status ? "usage: %s ID [--watch] [options]\n\nA rollout's phases, counts and why it is in its "
                              "state;\n--watch follows it (exit 0 when complete, 1 when paused or aborted).\n\noptions:\n" HELP_API
                            : "usage: %s ID [--reason TEXT] [options]\n\n"
                              "pause: no phase starts and no device not offered yet is offered; resume:\n"
                              "go on, counting errors from now; approve: start the phase waiting for\n"
                              "approval; abort: end it, unfinished devices get nothing more; rollback:\n"
                              "pause and deploy the previous bundle to the devices updated so far.\n\n"
                              "options:\n" HELP_API, prog);
            return CLI_EXIT_OK;
        }
        if (c == O_WATCH && status)
            watching = true;
        else if (c == O_REASON && !list && !status)
            reason = optarg;
        else if (!fleetcli_api_opt(c, &o))
            return cli_bad_option(prog, c, argv);
    }
    if (list ? optind != argc : (optind != argc - 1 || !is_id(argv[optind])))
        return cli_usage_error(prog, list ? "list takes no arguments" : "give one rollout ID (a number)");
    fapi_t a;
    json_t *j = NULL;
    char path[96];
    if (!fapi_open(prog, o.url, o.token, &a))
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (list) {
        if (!fapi_call(&a, "GET", "/v1/rollouts", NULL, &j, NULL))
            return fleetcli_finish(CLI_EXIT_FAIL);
        if (o.json) {
            fleetcli_print_json(j);
        } else {
            size_t i;
            json_t *r;
            char t[40];
            printf("%-5s %-16s %-10s %-18s %8s %-6s %-18s %s\n", "ID", "APP", "VERSION", "TARGET", "DEVICES",
                   "PHASE", "STATE", "UPDATED");
            json_array_foreach(json_object_get(j, "rollouts"), i, r) {
                char target[64];
                snprintf(target, sizeof target, "%s%s%s", fleetcli_jstr(r, "target_kind", "?"),
                         strcmp(fleetcli_jstr(r, "target_kind", ""), "all") ? ":" : "", fleetcli_jstr(r, "target", ""));
                printf("%-5lld %-16s %-10s %-18s %8lld %-6lld %-18s %s\n", fleetcli_jint(r, "id"),
                       fleetcli_jstr(r, "app", "?"), fleetcli_jstr(r, "version", "?"), target,
                       fleetcli_jint(r, "devices"), fleetcli_jint(r, "phase") + 1, fleetcli_jstr(r, "state", "?"),
                       fleetcli_fmt_time(fleetcli_jint(r, "updated_ms"), t, sizeof t));
            }
        }
        json_decref(j);
        return fleetcli_finish(CLI_EXIT_OK);
    }
    long long id = strtoll(argv[optind], NULL, 10);
    if (watching)
        return fleetcli_finish(watch(&a, id, o.json));
    bool ok;
    if (status) {
        snprintf(path, sizeof path, "/v1/rollouts/%lld", id);
        ok = fapi_call(&a, "GET", path, NULL, &j, NULL);
    } else {
        json_t *body = reason ? json_pack("{s:s}", "reason", reason) : json_object();
        snprintf(path, sizeof path, "/v1/rollouts/%lld/%s", id, verb);
        ok = fapi_call(&a, "POST", path, body, &j, NULL);
        json_decref(body);
    }
    if (!ok)
        return fleetcli_finish(CLI_EXIT_FAIL);
    if (o.json)
        fleetcli_print_json(j);
    else
        print_rollout(j, false);
    json_decref(j);
    return fleetcli_finish(CLI_EXIT_OK);
}

static const cli_verb_t rollout_verbs[] = {
    {"create", "roll a bundle out in phases gated by success and error thresholds", rollout_create},
    {"status", "phases, counts and the reason for the state (--watch follows it)", rollout_other},
    {"list", "recent rollouts", rollout_other},
    {"pause", "stop starting phases and offering the update", rollout_other},
    {"resume", "go on after a pause (errors counted from now)", rollout_other},
    {"approve", "start the phase that waits for approval", rollout_other},
    {"abort", "end the rollout; unfinished devices get nothing more", rollout_other},
    {"rollback", "pause and deploy the previous bundle to the devices updated so far", rollout_other},
};

const cli_noun_t cmd_rollout = {"rollout", "deployments in phases that stop themselves (keeld)", rollout_verbs,
                                sizeof rollout_verbs / sizeof rollout_verbs[0], NULL};

/*
 * `keel up` / `keel down`: the local fleet stack in one command.
 *
 *   keel up [--devices N --simulated] [--state DIR]
 *     1. DIR (default ~/.local/state/keel): CA and certificates on the first run (scripts/stack.sh,
 *        the same code the server tests use), kept for later runs
 *     2. Mosquitto on a free 127.0.0.1 port: TLS, client certificates required, identity = CN, the
 *        ACL of docs/protocol.md (generated DIR/mosquitto.conf, DIR/acl)
 *     3. keeld with SQLite (DIR/keeld.db) on a free 127.0.0.1 port; an API token on the first run
 *     4. DIR/config (url=, token=): later `keel ...` commands read it (see fapi.h)
 *     5. N devices. Until the device network stack (issue 4) lands, only --simulated ones:
 *        simdev processes speaking protocol v1 from the host, labelled SIMULATED everywhere.
 *   Every process is recorded in DIR/pids as it starts; on any failure everything started is stopped.
 *
 *   keel down [--state DIR]: SIGTERM to all, a bounded wait, SIGKILL to the rest. Idempotent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cmd.h"
#include "fapi.h"
#include "stack.h"

#define DEVICES_MAX 64u
#define START_WAIT_MS 15000u
#define STOP_WAIT_MS 10000u
#define CERTS_TIMEOUT_S 300u
#define POLL_MS 100u
/* simdev's serve action needs an end: a week, far past any local session. */
#define SIMDEV_SERVE "serve:604800"

enum { OPT_HELP = 'h', OPT_STATE = 256, OPT_DEVICES, OPT_SIMULATED };

typedef struct up {
    const char *prog;
    char dir[STACK_PATH_MAX];
    char pids[STACK_PATH_MAX + 8];
    char keeld[STACK_PATH_MAX];
    char simdev[STACK_PATH_MAX];
    char mosquitto[STACK_PATH_MAX];
    char script[STACK_PATH_MAX];
    unsigned mqtt_port;
    unsigned http_port;
    char token[FAPI_TOKEN_MAX];
} up_t;


/* A free TCP port on 127.0.0.1 (bound and released: the broker takes it right after). */
static unsigned free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    unsigned port = 0;
    if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

static bool port_open(unsigned port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static bool mkdir_p(const char *path)
{
    char tmp[STACK_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return false;
        *p = '/';
    }
    return mkdir(tmp, 0700) == 0 || errno == EEXIST;
}

/* Resolve --state (or the default) to an absolute, existing directory. */
static bool state_dir(const char *prog, const char *given, bool create, char *out, size_t cap)
{
    char dir[STACK_PATH_MAX - 64];
    if (given != NULL)
        snprintf(dir, sizeof dir, "%s", given);
    else if (!fapi_default_state(prog, dir, sizeof dir))
        return false;
    if (create && !mkdir_p(dir)) {
        fprintf(stderr, "%s: cannot create the state directory %s: %s\n", prog, dir, strerror(errno));
        return false;
    }
    if (realpath(dir, out) == NULL) {
        if (!create && errno == ENOENT) {
            snprintf(out, cap, "%s", dir);
            return true;
        }
        fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
        return false;
    }
    return true;
}

/* Run scripts/stack.sh with args; false (message printed) when it fails. */
static bool run_script(up_t *u, char **args, unsigned nargs)
{
    char *argv[8 + DEVICES_MAX];
    unsigned n = 0;
    argv[n++] = "bash";
    argv[n++] = u->script;
    for (unsigned i = 0; i < nargs && n + 1 < sizeof argv / sizeof argv[0]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char out[1024];
    if (stack_capture(u->prog, argv, CERTS_TIMEOUT_S, NULL, out, sizeof out) != 0) {
        fprintf(stderr, "%s: %s %s failed (see above)\n", u->prog, u->script, args[0]);
        return false;
    }
    return true;
}

/* The token a previous `keel up` wrote into DIR/config, if any. */
static void read_token(up_t *u)
{
    char path[STACK_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/config", u->dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "token=", 6) == 0) {
            snprintf(u->token, sizeof u->token, "%s", line + 6);
            u->token[strcspn(u->token, "\r\n")] = '\0';
        }
    }
    fclose(f);
}

static bool write_config(up_t *u)
{
    char path[STACK_PATH_MAX + 16], tmp[STACK_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config", u->dir);
    snprintf(tmp, sizeof tmp, "%s/config.tmp", u->dir);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot write %s: %s\n", u->prog, tmp, strerror(errno));
        return false;
    }
    chmod(tmp, 0600);
    fprintf(f, "# written by 'keel up': the local stack's keeld and its API token\n"
               "url=http://127.0.0.1:%u\ntoken=%s\n", u->http_port, u->token);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", u->prog, path, strerror(errno));
        return false;
    }
    return true;
}

/* A quiet client of the keeld just started (for polling it while it comes up). */
static bool open_local(up_t *u, fapi_t *a)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", u->http_port);
    if (!fapi_open(u->prog, url, u->token, a))
        return false;
    a->quiet = true;
    return true;
}

static bool start_broker(up_t *u)
{
    u->mqtt_port = free_port();
    if (u->mqtt_port == 0) {
        fprintf(stderr, "%s: no free TCP port on 127.0.0.1\n", u->prog);
        return false;
    }
    char port[16];
    snprintf(port, sizeof port, "%u", u->mqtt_port);
    char *conf_args[] = {"broker-conf", u->dir, port};
    if (!run_script(u, conf_args, 3))
        return false;
    char conf[STACK_PATH_MAX + 32], log[STACK_PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", u->dir);
    snprintf(log, sizeof log, "%s/mosquitto.out", u->dir);
    char *argv[] = {u->mosquitto, "-c", conf, NULL};
    pid_t pid = stack_spawn(u->prog, u->pids, "mosquitto", argv, log);
    if (pid < 0)
        return false;
    for (unsigned t = 0; t < START_WAIT_MS; t += POLL_MS) {
        if (port_open(u->mqtt_port))
            return true;
        if (!stack_alive(pid))
            break;
        stack_sleep_ms(POLL_MS);
    }
    fprintf(stderr, "%s: mosquitto did not start (see %s/mosquitto.log and %s)\n", u->prog, u->dir, log);
    return false;
}

static bool start_keeld(up_t *u)
{
    char db[STACK_PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/keeld.db", u->dir);
    read_token(u);
    if (u->token[0] == '\0' || access(db, F_OK) != 0) {
        char *argv[] = {u->keeld, "token", "create", "--db", db, "--name", "keel-up", NULL};
        char out[FAPI_TOKEN_MAX], log[STACK_PATH_MAX + 16];
        snprintf(log, sizeof log, "%s/keeld.log", u->dir);
        if (stack_capture(u->prog, argv, 60, log, out, sizeof out) != 0) {
            fprintf(stderr, "%s: could not create an API token in %s (see %s)\n", u->prog, db, log);
            return false;
        }
        out[strcspn(out, "\r\n")] = '\0';
        snprintf(u->token, sizeof u->token, "%s", out);
    }
    char portfile[STACK_PATH_MAX + 16], log[STACK_PATH_MAX + 16], mport[16];
    char ca[STACK_PATH_MAX + 16], cert[STACK_PATH_MAX + 16], key[STACK_PATH_MAX + 16];
    snprintf(portfile, sizeof portfile, "%s/keeld.port", u->dir);
    snprintf(log, sizeof log, "%s/keeld.log", u->dir);
    snprintf(mport, sizeof mport, "%u", u->mqtt_port);
    snprintf(ca, sizeof ca, "%s/ca.pem", u->dir);
    snprintf(cert, sizeof cert, "%s/keeld.pem", u->dir);
    snprintf(key, sizeof key, "%s/keeld.key", u->dir);
    unlink(portfile);
    char *argv[] = {u->keeld,      "--db",      db,     "--http-addr", "127.0.0.1", "--http-port",
                    "0",           "--port-file", portfile, "--mqtt-host", "127.0.0.1",
                    "--mqtt-port", mport,       "--mqtt-ca", ca,         "--mqtt-cert", cert,
                    "--mqtt-key",  key,         NULL};
    pid_t pid = stack_spawn(u->prog, u->pids, "keeld", argv, log);
    if (pid < 0)
        return false;
    for (unsigned t = 0; t < START_WAIT_MS && u->http_port == 0; t += POLL_MS) {
        FILE *f = fopen(portfile, "r");
        unsigned p = 0;
        if (f != NULL) {
            if (fscanf(f, "%u", &p) != 1)
                p = 0;
            fclose(f);
        }
        u->http_port = p;
        if (p == 0) {
            if (!stack_alive(pid))
                break;
            stack_sleep_ms(POLL_MS);
        }
    }
    if (u->http_port == 0) {
        fprintf(stderr, "%s: keeld did not start (see %s)\n", u->prog, log);
        return false;
    }
    /* Up means connected to the broker with every subscription acknowledged (GET /v1/health). */
    fapi_t a;
    if (!open_local(u, &a))
        return false;
    for (unsigned t = 0; t < START_WAIT_MS; t += POLL_MS) {
        json_t *h = NULL;
        bool connected = fapi_call(&a, "GET", "/v1/health", NULL, &h, NULL) &&
                         strcmp(json_string_value(json_object_get(h, "mqtt")) ?: "", "connected") == 0;
        json_decref(h);
        if (connected)
            return true;
        stack_sleep_ms(POLL_MS);
    }
    fprintf(stderr, "%s: keeld did not connect to the broker (see %s and %s/mosquitto.log)\n", u->prog,
            log, u->dir);
    return false;
}

static bool start_devices(up_t *u, unsigned n)
{
    char mport[16], ca[STACK_PATH_MAX + 16];
    snprintf(mport, sizeof mport, "%u", u->mqtt_port);
    snprintf(ca, sizeof ca, "%s/ca.pem", u->dir);
    for (unsigned i = 1; i <= n; i++) {
        char id[16], cert[STACK_PATH_MAX + 32], key[STACK_PATH_MAX + 32], log[STACK_PATH_MAX + 32];
        snprintf(id, sizeof id, "dev-%u", i);
        snprintf(cert, sizeof cert, "%s/%s.pem", u->dir, id);
        snprintf(key, sizeof key, "%s/%s.key", u->dir, id);
        snprintf(log, sizeof log, "%s/%s.log", u->dir, id);
        char *argv[] = {u->simdev, "--port", mport, "--ca", ca, "--cert", cert, "--key", key,
                        "--id", id, SIMDEV_SERVE, NULL};
        if (stack_spawn(u->prog, u->pids, id, argv, log) < 0)
            return false;
    }
    /* Wait until keeld lists every device online: the stack is usable when `keel up` returns. */
    fapi_t a;
    if (!open_local(u, &a))
        return false;
    for (unsigned t = 0; t < START_WAIT_MS; t += POLL_MS) {
        json_t *j = NULL;
        unsigned online = 0;
        if (fapi_call(&a, "GET", "/v1/devices", NULL, &j, NULL)) {
            size_t k;
            json_t *d;
            json_array_foreach(json_object_get(j, "devices"), k, d) {
                const char *id = json_string_value(json_object_get(d, "id"));
                unsigned num;
                char extra;
                if (id != NULL && sscanf(id, "dev-%u%c", &num, &extra) == 1 && num >= 1 && num <= n &&
                    json_is_true(json_object_get(d, "online")))
                    online++;
            }
        }
        json_decref(j);
        if (online == n)
            return true;
        stack_sleep_ms(POLL_MS);
    }
    fprintf(stderr, "%s: not every simulated device came online (see %s/dev-*.log)\n", u->prog, u->dir);
    return false;
}

static int up_help(const char *prog)
{
    printf("usage: %s [--devices N --simulated] [--state DIR]\n\n"
           "Start the local fleet stack: a CA and certificates (first run only), Mosquitto (TLS,\n"
           "client certificates, per-device ACL) and keeld (SQLite) on free 127.0.0.1 ports, an API\n"
           "token in DIR/config so later 'keel ...' commands find the server, and N devices.\n\n"
           "options:\n"
           "  --state DIR    where everything lives (default $KEEL_STATE or ~/.local/state/keel)\n"
           "  --devices N    devices to start, 0..%u (default 0)\n"
           "  --simulated    the devices are SIMULATED: simdev processes speaking the device\n"
           "                 protocol from the host (no QEMU, no app). Required with --devices\n"
           "                 until emulated devices can reach the broker (issue 4).\n"
           "  -h, --help     this help\n\n"
           "'keel down' stops it; the state (certificates, database, token) stays for the next run.\n",
           prog, DEVICES_MAX);
    return CLI_EXIT_OK;
}

static int run_up(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, OPT_HELP},
                                         {"state", required_argument, NULL, OPT_STATE},
                                         {"devices", required_argument, NULL, OPT_DEVICES},
                                         {"simulated", no_argument, NULL, OPT_SIMULATED},
                                         {0}};
    const char *state = NULL;
    uint32_t ndev = 0;
    bool simulated = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP)
            return up_help(prog);
        else if (c == OPT_STATE)
            state = optarg;
        else if (c == OPT_DEVICES) {
            if (!cli_parse_u32(prog, "--devices", optarg, 0, DEVICES_MAX, &ndev))
                return CLI_EXIT_USAGE;
        } else if (c == OPT_SIMULATED)
            simulated = true;
        else
            return cli_bad_option(prog, c, argv);
    }
    if (optind < argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (ndev > 0 && !simulated)
        return cli_fail(prog, "not yet: emulated devices (QEMU + microvisor + hello) need the device "
                              "network stack of issue 4 to reach the broker, which is not merged yet.\n"
                              "  Use '--devices %u --simulated' for simulated stand-ins (simdev, the "
                              "device protocol from the host), or --devices 0.", (unsigned)ndev);

    up_t *u = calloc(1, sizeof *u);
    if (u == NULL)
        return cli_fail(prog, "out of memory");
    u->prog = prog;
    int rc = CLI_EXIT_FAIL;
    const char *script = getenv("KEEL_STACK_SCRIPT");
    snprintf(u->script, sizeof u->script, "%s",
             script != NULL && script[0] != '\0' ? script : KEEL_STACK_SCRIPT_DEFAULT);
    if (!state_dir(prog, state, true, u->dir, sizeof u->dir))
        goto out;
    snprintf(u->pids, sizeof u->pids, "%s/pids", u->dir);
    if (stack_count_alive(u->pids) > 0) {
        cli_fail(prog, "a stack is already running from %s: stop it with 'keel down%s%s' first",
                 u->dir, state ? " --state " : "", state ? state : "");
        goto out;
    }
    unlink(u->pids); /* stale: nothing in it runs */
    if (access(u->script, R_OK) != 0) {
        cli_fail(prog, "cannot read %s (set KEEL_STACK_SCRIPT to scripts/stack.sh of a Keel tree)",
                 u->script);
        goto out;
    }
    if (!stack_find_tool(prog, "keeld", "KEEL_KEELD", "../../server/keeld", u->keeld, sizeof u->keeld) ||
        !stack_find_tool(prog, "mosquitto", "KEEL_MOSQUITTO", "/usr/sbin/mosquitto", u->mosquitto,
                         sizeof u->mosquitto) ||
        (ndev > 0 && !stack_find_tool(prog, "simdev", "KEEL_SIMDEV", "../../tests/server/simdev",
                                      u->simdev, sizeof u->simdev)))
        goto out;

    char *names[2 + DEVICES_MAX + 2];
    char ids[DEVICES_MAX][16];
    unsigned n = 0;
    names[n++] = "certs";
    names[n++] = u->dir;
    names[n++] = "broker";
    names[n++] = "keeld";
    for (unsigned i = 0; i < ndev; i++) {
        snprintf(ids[i], sizeof ids[i], "dev-%u", i + 1);
        names[n++] = ids[i];
    }
    if (!run_script(u, names, n) || !start_broker(u) || !start_keeld(u) || !write_config(u) ||
        (ndev > 0 && !start_devices(u, ndev))) {
        fprintf(stderr, "%s: stopping what was started\n", prog);
        stack_stop_all(prog, u->pids, STOP_WAIT_MS, false);
        goto out;
    }
    printf("local Keel stack running (state in %s)\n", u->dir);
    printf("  broker   mosquitto on 127.0.0.1:%u (TLS, client certificates, per-device ACL)\n",
           u->mqtt_port);
    printf("  keeld    http://127.0.0.1:%u (database %s/keeld.db)\n", u->http_port, u->dir);
    if (ndev == 0) {
        printf("  devices  none (--devices N --simulated starts simulated ones)\n");
    } else {
        printf("  devices  %u SIMULATED (simdev: the device protocol from the host, no QEMU):",
               (unsigned)ndev);
        for (unsigned i = 0; i < ndev; i++)
            printf(" %s", ids[i]);
        printf("\n");
    }
    printf("  config   %s/config (url and API token)\n", u->dir);
    if (state != NULL)
        printf("Use it with: export KEEL_CONFIG=%s/config   then e.g. 'keel devices'\n"
               "Stop it with: keel down --state %s\n", u->dir, state);
    else
        printf("Try 'keel devices'. Stop it with: keel down\n");
    rc = CLI_EXIT_OK;
out:
    fapi_cleanup();
    free(u);
    return rc;
}

static int run_down(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, OPT_HELP},
                                         {"state", required_argument, NULL, OPT_STATE},
                                         {0}};
    const char *state = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s [--state DIR]\n\nStop the local stack 'keel up' started from DIR "
                   "(default $KEEL_STATE or ~/.local/state/keel):\nSIGTERM, up to %u s to exit, then "
                   "SIGKILL. Running it again is harmless.\n\noptions:\n"
                   "  --state DIR    the state directory given to 'keel up'\n"
                   "  -h, --help     this help\n", prog, STOP_WAIT_MS / 1000u);
            return CLI_EXIT_OK;
        }
        if (c == OPT_STATE)
            state = optarg;
        else
            return cli_bad_option(prog, c, argv);
    }
    if (optind < argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    char dir[STACK_PATH_MAX], pids[STACK_PATH_MAX + 8];
    if (!state_dir(prog, state, false, dir, sizeof dir))
        return CLI_EXIT_FAIL;
    snprintf(pids, sizeof pids, "%s/pids", dir);
    int n = stack_stop_all(prog, pids, STOP_WAIT_MS, true);
    if (n == 0)
        printf("nothing running from %s\n", dir);
    else
        printf("local Keel stack stopped (%d processes); state kept in %s\n", n, dir);
    return CLI_EXIT_OK;
}

const cli_noun_t cmd_up = {
    .name = "up", .summary = "start the local fleet stack (broker, keeld, devices)", .run = run_up};
const cli_noun_t cmd_down = {.name = "down", .summary = "stop the local fleet stack", .run = run_down};

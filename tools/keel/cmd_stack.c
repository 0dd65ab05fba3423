/*
 * `keel up` / `keel down`: the local fleet stack in one command.
 *
 *   keel up [--devices N] [--simulated | --app ELF|APP.kb [--elf ELF]] [--state DIR]
 *     0. DIR (default ~/.local/state/keel). Its secrets (the CA key, the fleet signing key, the
 *        broker's and keeld's keys, the API token's config) live in DIR/secrets (0700), apart
 *        from the devices' tree DIR/devices: no device process is given a path there or can see
 *        it (docs/security.md, "What each process can read"). An older layout (keys and config at
 *        the top of DIR) is moved there on the first run.
 *     1. CA and certificates on the first run (scripts/stack.sh --keys DIR/secrets, the same code
 *        the server tests use), kept for later runs
 *     2. Mosquitto on a free 127.0.0.1 port: TLS, client certificates required, identity = CN, the
 *        ACL of docs/protocol.md (generated DIR/mosquitto.conf, DIR/acl)
 *     3. keeld with SQLite (DIR/keeld.db) on a free 127.0.0.1 port; an API token on the first run;
 *        the fleet signing key pair DIR/secrets/fleet.key, DIR/fleet.pub on the first run
 *        (keyfile.h): keeld checks uploaded bundles against fleet.pub, devices are provisioned
 *        with it, and `keel bundle build --key DIR/secrets/fleet.key` signs for this fleet
 *     4. DIR/secrets/config (url=, token=): later `keel ...` commands read it (see fapi.h)
 *     5. N devices (default DEVICES_DEFAULT), dev-1..dev-N: each a `keel device run` of this
 *        keel (QEMU + microvisor + the hello app) with its state in DIR/devices/dev-K, provisioned
 *        from the stack's CA by `keel up` itself (`keel device provision`: its key and
 *        certificate, issued once), so the device's own process gets no CA key; its console in
 *        DIR/devices/dev-K/console.log.
 *        With --simulated: SIMULATED devices instead (up to SIM_DEVICES_MAX), labelled so
 *        everywhere: fleetsim processes (tools/fleetsim, SIM_PER_PROCESS devices each) speaking
 *        protocol v1 with the real update engine, trusting DIR/fleet.pub, logs in
 *        DIR/fleetsim-K.log. Their keys and certificates are issued by `keel up` at each start
 *        (`fleetsim --issue`, with the CA key) into DIR/devices/sim-K/identities; each fleetsim
 *        then runs in a bubblewrap view (sandbox.h) that holds /usr, its binary, that file and
 *        the public ca.pem and fleet.pub, and the host's network: not the CA key. `keel up`
 *        returns when keeld lists every device online.
 *        --app APP.kb (a signed bundle): the factory install of each device that runs no app
 *        yet, through the update engine, like `keel device install APP.kb`; a device that runs
 *        one keeps it: deployments update it, and installing v1 again over a v2 would be
 *        refused by its anti-rollback counter anyway.
 *   Every process is recorded in DIR/pids as it starts; on any failure everything started is stopped.
 *
 *   keel down [--state DIR]: SIGTERM to all, a bounded wait, SIGKILL to the rest. Idempotent.
 *   Only the `keel device run` of each emulated device is recorded: on SIGTERM it stops its QEMU,
 *   and if it is killed outright QEMU dies with it (qrun: PR_SET_PDEATHSIG). QEMU's relays (one
 *   per broker connection, detached by QEMU) end when either side closes: QEMU's or the broker's.
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
#include "devstate.h"
#include "fapi.h"
#include "keyfile.h"
#include "keel/board.h"
#include "qrun.h"
#include "sandbox.h"
#include "stack.h"

#define DEVICES_MAX 64u
/* Simulated devices: one broker takes them all (one client port range of 127.0.0.1), and each
 * fleetsim process holds at most SIM_PER_PROCESS sockets (the open-file limit). */
#define SIM_DEVICES_MAX 20000u
#define SIM_PER_PROCESS 10000u
#define SIM_PROCS_MAX ((SIM_DEVICES_MAX + SIM_PER_PROCESS - 1u) / SIM_PER_PROCESS)
#define SIM_WAIT_BASE_MS 30000u
#define SIM_WAIT_PER_1000_MS 30000u
#define DEVICES_DEFAULT 2u
#define START_WAIT_MS 15000u
/* An emulated device boots, runs a TLS handshake in the emulator and says hello; with several
 * QEMUs sharing a few cores that takes a while: a base plus a share per device. */
#define DEVICE_WAIT_BASE_MS 60000u
#define DEVICE_WAIT_EACH_MS 15000u
#define APP_REL "apps/hello/hello.elf"
#define STOP_WAIT_MS 10000u
#define OFFLINE_WAIT_MS 5000u
#define CERTS_TIMEOUT_S 300u
#define POLL_MS 100u

enum { OPT_HELP = 'h', OPT_STATE = 256, OPT_DEVICES, OPT_SIMULATED, OPT_APP, OPT_FIRMWARE, OPT_ELF };

typedef struct up {
    const char *prog;
    char dir[STACK_PATH_MAX];
    char secrets[STACK_PATH_MAX + 16]; /* DIR/secrets: no device process sees it */
    char pids[STACK_PATH_MAX + 8];
    char keeld[STACK_PATH_MAX];
    char fleetsim[STACK_PATH_MAX];
    char mosquitto[STACK_PATH_MAX];
    char script[STACK_PATH_MAX];
    char self[STACK_PATH_MAX];     /* this keel: each emulated device is a `keel device run` */
    char firmware[STACK_PATH_MAX]; /* emulated devices: the secure firmware ELF */
    char fleet_pub[STACK_PATH_MAX + 16]; /* DIR/fleet.pub: the fleet's bundle signing key */
    char app[STACK_PATH_MAX];      /* emulated devices: the app installed on each */
    char elf[STACK_PATH_MAX];      /* the ELF given to keeld for symbolication ("" = none) */
    bool app_bundle;               /* app is a signed bundle: installed on devices without an app */
    bool simulated;
    unsigned ndev;
    char ids[DEVICES_MAX][16];
    pid_t dev_pid[DEVICES_MAX];    /* emulated: one process a device */
    pid_t sim_pid[SIM_PROCS_MAX];  /* simulated: one fleetsim per SIM_PER_PROCESS devices */
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

/* The url and token a previous `keel up` wrote into DIR/secrets/config, if any (left as they are
 * if not). */
static void read_config(const char *dir, char *url, size_t url_cap, char *token, size_t token_cap)
{
    char path[STACK_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" FAPI_STATE_CONFIG, dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "token=", 6) == 0)
            snprintf(token, token_cap, "%s", line + 6);
        else if (strncmp(line, "url=", 4) == 0)
            snprintf(url, url_cap, "%s", line + 4);
    }
    fclose(f);
}

static bool write_config(up_t *u)
{
    char path[STACK_PATH_MAX + 32], tmp[STACK_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/config", u->secrets);
    snprintf(tmp, sizeof tmp, "%s/config.tmp", u->secrets);
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
    char *conf_args[] = {"broker-conf", "--keys", u->secrets, u->dir, port};
    if (!run_script(u, conf_args, 5))
        return false;
    char conf[STACK_PATH_MAX + 32], log[STACK_PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", u->dir);
    snprintf(log, sizeof log, "%s/mosquitto.out", u->dir);
    /* The broker's OpenSSL settings (stateful TLS 1.3 tickets), written by broker-conf. */
    char ossl[STACK_PATH_MAX + 32];
    snprintf(ossl, sizeof ossl, "OPENSSL_CONF=%s/openssl.cnf", u->dir);
    char *argv[] = {"/usr/bin/env", ossl, u->mosquitto, "-c", conf, NULL};
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

/*
 * The fleet signing key: made once, on the first `keel up`, and kept (a new key would orphan
 * every device provisioned with the old one). A pair that is half there is an error to fix by
 * hand, never something to overwrite.
 */
static bool fleet_key(up_t *u)
{
    char key[STACK_PATH_MAX + 32], pub[STACK_PATH_MAX + 32], why[512];
    snprintf(key, sizeof key, "%s/fleet.key", u->secrets);
    snprintf(u->fleet_pub, sizeof u->fleet_pub, "%s/fleet.pub", u->dir);
    snprintf(pub, sizeof pub, "%s/fleet.pub", u->secrets);
    /* `keel keys new fleet --dir DIR/secrets` made the pair side by side: the public half moves
     * out beside the certificates (it is what devices and keeld are given). */
    if (access(u->fleet_pub, F_OK) != 0 && access(pub, F_OK) == 0 && rename(pub, u->fleet_pub) != 0) {
        fprintf(stderr, "%s: cannot move %s to %s: %s\n", u->prog, pub, u->fleet_pub, strerror(errno));
        return false;
    }
    bool have_key = access(key, F_OK) == 0, have_pub = access(u->fleet_pub, F_OK) == 0;
    if (have_key && have_pub)
        return true;
    if (have_key || have_pub) {
        fprintf(stderr, "%s: %s exists but %s does not: restore the pair (or move both away to "
                        "make a new fleet key, then re-provision the devices)\n",
                u->prog, have_key ? key : u->fleet_pub, have_key ? u->fleet_pub : key);
        return false;
    }
    /* Made in the secrets dir; the public half moves out next to the certificates. */
    if (!keyfile_new(u->secrets, "fleet", NULL, pub, sizeof pub, why, sizeof why)) {
        fprintf(stderr, "%s: cannot make the fleet signing key: %s\n", u->prog, why);
        return false;
    }
    if (rename(pub, u->fleet_pub) != 0) {
        fprintf(stderr, "%s: cannot move %s to %s: %s\n", u->prog, pub, u->fleet_pub, strerror(errno));
        return false;
    }
    printf("made the fleet signing key %s (public key %s)\n", key, u->fleet_pub);
    return true;
}

static bool start_keeld(up_t *u)
{
    char db[STACK_PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/keeld.db", u->dir);
    char url[256];
    read_config(u->dir, url, sizeof url, u->token, sizeof u->token);
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
    char ca[STACK_PATH_MAX + 16], cert[STACK_PATH_MAX + 16], key[STACK_PATH_MAX + 32];
    snprintf(portfile, sizeof portfile, "%s/keeld.port", u->dir);
    snprintf(log, sizeof log, "%s/keeld.log", u->dir);
    snprintf(mport, sizeof mport, "%u", u->mqtt_port);
    snprintf(ca, sizeof ca, "%s/ca.pem", u->dir);
    snprintf(cert, sizeof cert, "%s/keeld.pem", u->dir);
    snprintf(key, sizeof key, "%s/keeld.key", u->secrets);
    unlink(portfile);
    /* The stack's fleet key, plus any the caller gave keeld through its environment (the flag
     * would otherwise hide them). */
    char keys[2 * STACK_PATH_MAX];
    const char *more = getenv("KEELD_UPDATE_KEYS");
    snprintf(keys, sizeof keys, "%s%s%s", u->fleet_pub, more && *more ? "," : "", more ? more : "");
    char *argv[] = {u->keeld,      "--db",      db,     "--http-addr", "127.0.0.1", "--http-port",
                    "0",           "--port-file", portfile, "--mqtt-host", "127.0.0.1",
                    "--mqtt-port", mport,       "--mqtt-ca", ca,         "--mqtt-cert", cert,
                    "--mqtt-key",  key,         "--update-key", keys, NULL};
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

/* Where device i's output goes: its console log (emulated) or its fleetsim's log (simulated). */
static void device_log(const up_t *u, unsigned i, char *out, size_t cap)
{
    if (u->simulated)
        snprintf(out, cap, "%s/fleetsim-%u.log", u->dir, i / SIM_PER_PROCESS + 1u);
    else
        snprintf(out, cap, "%s/devices/%s/console.log", u->dir, u->ids[i]);
}

/* The process that runs device i. */
static pid_t device_pid(const up_t *u, unsigned i)
{
    return u->simulated ? u->sim_pid[i / SIM_PER_PROCESS] : u->dev_pid[i];
}

/*
 * fleetsim k (0-based) runs devices dev-(k*SIM_PER_PROCESS+1).. of the ndev. Their keys and
 * certificates are issued first, here, where the CA key is (fleetsim --issue, a short run of the
 * same binary); the fleetsim that runs them sees only its view: /usr, its binary, the public
 * ca.pem and fleet.pub, and its own DIR/devices/sim-K (the identities file), read-only.
 */
static pid_t start_simulated(up_t *u, unsigned k, char *mport)
{
    char ca[STACK_PATH_MAX + 16], cakey[STACK_PATH_MAX + 32], log[STACK_PATH_MAX + 64];
    char dir[STACK_PATH_MAX + 32], ids[STACK_PATH_MAX + 48];
    char first[16], count[16], name[32];
    unsigned n = u->ndev - k * SIM_PER_PROCESS;
    snprintf(ca, sizeof ca, "%s/ca.pem", u->dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", u->secrets);
    snprintf(dir, sizeof dir, "%s/devices/sim-%u", u->dir, k + 1u);
    snprintf(ids, sizeof ids, "%s/identities", dir);
    device_log(u, k * SIM_PER_PROCESS, log, sizeof log);
    snprintf(first, sizeof first, "%u", k * SIM_PER_PROCESS + 1u);
    snprintf(count, sizeof count, "%u", n < SIM_PER_PROCESS ? n : SIM_PER_PROCESS);
    snprintf(name, sizeof name, "fleetsim-%u", k + 1u);
    if (!mkdir_p(dir)) {
        fprintf(stderr, "%s: cannot create %s: %s\n", u->prog, dir, strerror(errno));
        return -1;
    }
    char *issue[] = {u->fleetsim, "--issue", ids, "--ca", ca, "--ca-key", cakey, "--first", first,
                     "--count", count, NULL};
    char out[256];
    if (stack_capture(u->prog, issue, CERTS_TIMEOUT_S, log, out, sizeof out) != 0) {
        fprintf(stderr, "%s: could not issue the identities of %s's devices (see %s)\n", u->prog,
                name, log);
        return -1;
    }
    const char *view[STACK_VIEW_ARGS_MAX];
    int v = sandbox_base(view, SANDBOX_SHARE_NET | SANDBOX_AS_PID1, 1);
    const char *ro[] = {u->fleetsim, ca, u->fleet_pub, dir};
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) {
        view[v++] = "--ro-bind";
        view[v++] = ro[i];
        view[v++] = ro[i];
    }
    view[v++] = "--chdir";
    view[v++] = dir;
    view[v] = NULL;
    char *argv[] = {u->fleetsim, "--port", mport, "--ca", ca, "--identities", ids, "--first", first,
                    "--count", count, "--update-key", u->fleet_pub, "--stats-every", "10000", NULL};
    return stack_spawn_view(u->prog, u->pids, name, view, argv, log);
}

/*
 * Whether the device in dir already runs a verified app (then a bundle is not installed again:
 * the device may have moved on through deployments). A state without flash has none; a
 * factory install that failed left none either, so the next `keel up` tries it again.
 */
static bool runs_app(const up_t *u, const char *dir)
{
    char flash[STACK_PATH_MAX + 64];
    snprintf(flash, sizeof flash, "%s/%s", dir, kboard_host()->store.file);
    if (access(flash, F_OK) != 0)
        return false;
    devstate_t s;
    if (!devstate_open(&s, u->prog, dir, false, NULL))
        return false;
    kapp_hdr_t h;
    bool runs = devstate_app(&s, &h) == KERR_OK;
    devstate_close(&s, u->prog);
    return runs;
}

static void print_tail(const char *path);

/*
 * An emulated device: `keel up` provisions it from the stack's CA (`keel device provision`: the
 * state on the first run, its key and certificate issued once, CN = id; the same values again
 * change nothing), then runs this keel's own `keel device run`, which is given no path outside
 * the device's state but the firmware, the app and the public ca.pem and fleet.pub: it installs
 * the app and runs QEMU (in its own sandbox) until `keel down` sends it SIGTERM.
 */
static pid_t start_emulated(up_t *u, unsigned i, char *mport, const char *log)
{
    char dir[STACK_PATH_MAX + 32], ca[STACK_PATH_MAX + 16], cakey[STACK_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/devices/%s", u->dir, u->ids[i]);
    snprintf(ca, sizeof ca, "%s/ca.pem", u->dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", u->secrets);
    if (!mkdir_p(dir)) {
        fprintf(stderr, "%s: cannot create %s: %s\n", u->prog, dir, strerror(errno));
        return -1;
    }
    unlink(log); /* each `keel up` starts a fresh console log */
    bool install = !u->app_bundle || !runs_app(u, dir);
    char *prov[] = {u->self,      "device",       "provision",  "--state",  dir,  "--id", u->ids[i],
                    "--fleet-ca", ca,             "--fleet-ca-key", cakey, "--update-key",
                    u->fleet_pub, NULL};
    char out[1024];
    int rc = stack_capture(u->prog, prov, CERTS_TIMEOUT_S, log, out, sizeof out);
    FILE *f = fopen(log, "a"); /* what provisioning did heads the device's console log */
    if (f != NULL) {
        fputs(out, f);
        fclose(f);
    }
    if (rc != 0) {
        fprintf(stderr, "%s: could not provision %s; the end of %s:\n", u->prog, u->ids[i], log);
        print_tail(log);
        return -1;
    }
    char *argv[] = {u->self,       "device",       "run",         "--state",  dir,
                    "--id",        u->ids[i],      "--firmware",  u->firmware,
                    "--broker",    mport,          "--fleet-ca",  ca,
                    "--update-key", u->fleet_pub,  "--install", u->app, NULL};
    if (!install) {
        argv[sizeof argv / sizeof argv[0] - 3] = NULL; /* the run without "--install APP" */
        printf("%s keeps the app it runs (a bundle is the factory install of devices without one)\n",
               u->ids[i]);
    }
    return stack_spawn(u->prog, u->pids, u->ids[i], argv, log);
}

/* Our device's index from its id (dev-K), or -1. */
static int device_index(const up_t *u, const char *id)
{
    char *end = NULL;
    if (strncmp(id, "dev-", 4) != 0 || id[4] < '1' || id[4] > '9')
        return -1;
    unsigned long k = strtoul(id + 4, &end, 10);
    return *end == '\0' && k >= 1 && k <= u->ndev ? (int)(k - 1) : -1;
}

/*
 * keeld's view: which of our devices are online (online[i]) with a hello received since since_ms
 * (wall clock, like keeld's): the registry may still say "online" from a previous run whose
 * devices' last wills keeld did not see before it stopped. False when keeld did not answer.
 */
static bool poll_online(up_t *u, fapi_t *a, int64_t since_ms, bool *online)
{
    json_t *j = NULL;
    if (!fapi_call(a, "GET", "/v1/devices", NULL, &j, NULL)) {
        json_decref(j);
        return false;
    }
    size_t k;
    json_t *d;
    json_array_foreach(json_object_get(j, "devices"), k, d) {
        const char *id = json_string_value(json_object_get(d, "id"));
        int i = id != NULL ? device_index(u, id) : -1;
        if (i >= 0)
            online[i] = json_is_true(json_object_get(d, "online")) &&
                        json_integer_value(json_object_get(d, "hello_ms")) >= since_ms;
    }
    json_decref(j);
    return true;
}

/* The last lines of a device's log, so a failure shows its cause without opening the file. */
static void print_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char buf[1024];
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
    size_t n = 0;
    if (size > 0 && fseek(f, from, SEEK_SET) == 0)
        n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = buf;
    if (from > 0 && (p = strchr(buf, '\n')) != NULL)
        p++; /* a partial first line is dropped */
    for (char *save = NULL, *line = strtok_r(p ? p : buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
        fprintf(stderr, "  | %s\n", line);
}

/*
 * Wait until keeld lists every device online: the stack is usable when `keel up` returns. A
 * device whose process ends, or that is not online in time, is named with its log.
 */
static bool wait_online(up_t *u, int64_t since_ms)
{
    fapi_t a;
    if (!open_local(u, &a))
        return false;
    unsigned wait_ms = u->simulated ? SIM_WAIT_BASE_MS + SIM_WAIT_PER_1000_MS * (u->ndev / 1000u)
                                    : DEVICE_WAIT_BASE_MS + DEVICE_WAIT_EACH_MS * u->ndev;
    bool *online = calloc(u->ndev, sizeof *online);
    char log[STACK_PATH_MAX + 64];
    uint64_t end = stack_mono_ms() + wait_ms;
    bool ok = false, dead = false;
    while (online != NULL && !ok && !dead) {
        poll_online(u, &a, since_ms, online);
        unsigned up = 0;
        for (unsigned i = 0; i < u->ndev && !dead; i++) {
            up += online[i];
            if (!online[i] && !stack_alive(device_pid(u, i))) {
                device_log(u, i, log, sizeof log);
                fprintf(stderr, "%s: device dev-%u stopped before it came online; the end of %s:\n",
                        u->prog, i + 1u, log);
                print_tail(log);
                dead = true;
            }
        }
        ok = up == u->ndev;
        if (ok || dead || stack_mono_ms() >= end)
            break;
        stack_sleep_ms(u->simulated && u->ndev > 1000u ? 10u * POLL_MS : POLL_MS);
    }
    /* Named with their log: every emulated device, the first few simulated ones. */
    for (unsigned i = 0, named = 0; online != NULL && !ok && !dead && i < u->ndev && named < 8u; i++) {
        if (online[i])
            continue;
        named++;
        device_log(u, i, log, sizeof log);
        fprintf(stderr, "%s: device dev-%u did not come online within %u s; the end of %s:\n",
                u->prog, i + 1u, wait_ms / 1000u, log);
        print_tail(log);
    }
    free(online);
    return ok;
}

static bool start_devices(up_t *u)
{
    char mport[16];
    snprintf(mport, sizeof mport, "%u", u->mqtt_port);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t since_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    if (!u->simulated) {
        /* keeld gets the app's ELF first, so the devices' crash reports are symbolicated. A
         * bundle holds images, not the ELF's symbols: that ELF comes with --elf. */
        fapi_t a;
        json_t *j = NULL;
        if (u->elf[0] == '\0')
            printf("no ELF for %s (--elf ELF): crash reports of its app are not symbolicated "
                   "until 'keel elf upload APP.elf'\n", strrchr(u->app, '/') + 1);
        else if (open_local(u, &a) && fapi_elf_upload(&a, u->elf, &j))
            printf("gave keeld %s for crash symbolication (app image %.16s...)\n",
                   strrchr(u->elf, '/') + 1, json_string_value(json_object_get(j, "sha256")));
        else
            fprintf(stderr, "%s: warning: keeld did not take %s (above): its crash reports are not "
                            "symbolicated\n", u->prog, u->elf);
        json_decref(j);
        printf("starting %u emulated device%s (QEMU), waiting until keeld lists %s online...\n",
               u->ndev, u->ndev == 1 ? "" : "s", u->ndev == 1 ? "it" : "them");
    }
    fflush(stdout);
    for (unsigned k = 0; u->simulated && k * SIM_PER_PROCESS < u->ndev; k++)
        if ((u->sim_pid[k] = start_simulated(u, k, mport)) < 0)
            return false;
    for (unsigned i = 0; !u->simulated && i < u->ndev; i++) {
        char log[STACK_PATH_MAX + 64];
        device_log(u, i, log, sizeof log);
        if ((u->dev_pid[i] = start_emulated(u, i, mport, log)) < 0)
            return false;
    }
    return wait_online(u, since_ms);
}

/*
 * The app emulated devices run: --app, else the hello app of the firmware's build tree:
 * FW/microvisor/keel-microvisor.elf and FW/apps/hello/hello.elf (the firmware is found first).
 */
static bool find_app(up_t *u, const char *given, const char *elf)
{
    if (elf != NULL && (realpath(elf, u->elf) == NULL || access(u->elf, R_OK) != 0)) {
        fprintf(stderr, "%s: --elf %s: %s\n", u->prog, elf, strerror(errno));
        return false;
    }
    if (given != NULL) {
        if (realpath(given, u->app) == NULL || access(u->app, R_OK) != 0) {
            fprintf(stderr, "%s: --app %s: %s\n", u->prog, given, strerror(errno));
            return false;
        }
        u->app_bundle = devstate_is_bundle(u->app);
        if (u->elf[0] == '\0' && !u->app_bundle)
            snprintf(u->elf, sizeof u->elf, "%s", u->app);
        return true;
    }
    char cand[STACK_PATH_MAX + 32];
    snprintf(cand, sizeof cand, "%s", u->firmware);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(cand, '/');
        if (slash != NULL)
            *slash = '\0';
    }
    snprintf(cand + strlen(cand), sizeof cand - strlen(cand), "/%s", APP_REL);
    if (realpath(cand, u->app) != NULL && access(u->app, R_OK) == 0) {
        if (u->elf[0] == '\0')
            snprintf(u->elf, sizeof u->elf, "%s", u->app);
        return true;
    }
    fprintf(stderr, "%s: no hello app at %s (the build tree of the firmware %s): run 'make' at "
                    "the top of the Keel tree, or give the app with --app ELF\n", u->prog, cand,
            u->firmware);
    return false;
}

/* What emulated devices need, checked before anything starts. */
static bool find_device_parts(up_t *u, const char *firmware, const char *app, const char *elf)
{
    ssize_t n = readlink("/proc/self/exe", u->self, sizeof u->self - 1);
    if (n <= 0) {
        fprintf(stderr, "%s: cannot find this keel's own path: %s\n", u->prog, strerror(errno));
        return false;
    }
    u->self[n] = '\0';
    return qrun_find_firmware(u->prog, firmware, u->firmware, sizeof u->firmware) &&
           find_app(u, app, elf);
}

static int up_help(const char *prog)
{
    printf("usage: %s [--devices N] [--app ELF|APP.kb [--elf ELF]] [--firmware ELF] [--simulated]\n"
           "       [--state DIR]\n\n"
           "Start the local fleet stack: a CA and certificates (first run only), Mosquitto (TLS,\n"
           "client certificates, per-device ACL) and keeld (SQLite) on free 127.0.0.1 ports, an API\n"
           "token in DIR/secrets/config so later 'keel ...' commands find the server, and N\n"
           "emulated devices dev-1..dev-N (QEMU + microvisor + the hello app), each provisioned\n"
           "from the stack's CA. It returns when keeld lists every device online. The stack's\n"
           "secrets (keys, token) stay in DIR/secrets, which no device process can see.\n\n"
           "options:\n"
           "  --state DIR    where everything lives (default $KEEL_STATE or ~/.local/state/keel);\n"
           "                 device K keeps its flash in DIR/devices/dev-K, its console in\n"
           "                 DIR/devices/dev-K/console.log\n"
           "  --devices N    devices to start, 0..%u (default %u; simulated: 0..%u)\n"
           "  --app ELF      the app the devices run (default: the hello app built with the firmware)\n"
           "  --app APP.kb   a signed bundle instead ('keel bundle build --key\n"
           "                 DIR/secrets/fleet.key'): the\n"
           "                 factory install of each device without an app, verified by the engine;\n"
           "                 devices that run an app keep it. Make the fleet key before the\n"
           "                 first 'keel up' to sign it: 'keel keys new fleet --dir DIR/secrets'\n"
           "  --elf ELF      the app's ELF for keeld's crash symbolication (default: the --app ELF;\n"
           "                 a bundle has no symbols, so give its ELF here)\n"
           "  --firmware ELF the secure firmware (default $KEEL_FIRMWARE, else the one built by\n"
           "                 'make' beside this keel)\n"
           "  --simulated    SIMULATED devices instead: fleetsim processes (thousands of devices\n"
           "                 each) speaking the device protocol from the host with the real update\n"
           "                 engine, trusting DIR/fleet.pub (no QEMU, no app); logs in\n"
           "                 DIR/fleetsim-K.log\n"
           "  -h, --help     this help\n\n"
           "'keel down' stops it; the state (certificates, database, token, devices) stays for the\n"
           "next run.\n",
           prog, DEVICES_MAX, DEVICES_DEFAULT, SIM_DEVICES_MAX);
    return CLI_EXIT_OK;
}

static int run_up(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, OPT_HELP},
                                         {"state", required_argument, NULL, OPT_STATE},
                                         {"devices", required_argument, NULL, OPT_DEVICES},
                                         {"simulated", no_argument, NULL, OPT_SIMULATED},
                                         {"app", required_argument, NULL, OPT_APP},
                                         {"firmware", required_argument, NULL, OPT_FIRMWARE},
                                         {"elf", required_argument, NULL, OPT_ELF},
                                         {0}};
    const char *state = NULL, *app = NULL, *firmware = NULL, *elf = NULL;
    uint32_t ndev = DEVICES_DEFAULT;
    bool simulated = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP)
            return up_help(prog);
        else if (c == OPT_STATE)
            state = optarg;
        else if (c == OPT_DEVICES) {
            if (!cli_parse_u32(prog, "--devices", optarg, 0, SIM_DEVICES_MAX, &ndev))
                return CLI_EXIT_USAGE;
        } else if (c == OPT_SIMULATED)
            simulated = true;
        else if (c == OPT_APP)
            app = optarg;
        else if (c == OPT_FIRMWARE)
            firmware = optarg;
        else if (c == OPT_ELF)
            elf = optarg;
        else
            return cli_bad_option(prog, c, argv);
    }
    if (optind < argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (simulated && (app != NULL || firmware != NULL || elf != NULL))
        return cli_usage_error(prog, "--app, --elf and --firmware are for emulated devices; "
                                     "simulated ones run neither");
    if (!simulated && ndev > DEVICES_MAX)
        return cli_usage_error(prog, "--devices %u: at most %u emulated devices (simulated ones: "
                                     "--simulated)", (unsigned)ndev, DEVICES_MAX);

    up_t *u = calloc(1, sizeof *u);
    if (u == NULL)
        return cli_fail(prog, "out of memory");
    u->prog = prog;
    u->simulated = simulated;
    u->ndev = ndev;
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
        (ndev > 0 && simulated &&
         !stack_find_tool(prog, "fleetsim", "KEEL_FLEETSIM", "../fleetsim/fleetsim", u->fleetsim,
                          sizeof u->fleetsim)) ||
        (ndev > 0 && !simulated && !find_device_parts(u, firmware, app, elf)))
        goto out;

    /* Devices issue their own certificates from ca.key: emulated ones at provisioning,
     * simulated ones in memory at each start. */
    char *names[] = {"certs", "--keys", u->secrets, u->dir, "broker", "keeld"};
    unsigned n = 6;
    for (unsigned i = 0; i < ndev && !simulated; i++)
        snprintf(u->ids[i], sizeof u->ids[i], "dev-%u", i + 1);
    if (!stack_secrets_dir(prog, u->dir, u->secrets, sizeof u->secrets))
        goto out;
    if (!run_script(u, names, n) || !fleet_key(u) || !start_broker(u) || !start_keeld(u) ||
        !write_config(u) ||
        (ndev > 0 && !start_devices(u))) {
        fprintf(stderr, "%s: stopping what was started\n", prog);
        stack_stop_all(prog, u->pids, STOP_WAIT_MS, false);
        goto out;
    }
    printf("local Keel stack running (state in %s)\n", u->dir);
    printf("  broker   mosquitto on 127.0.0.1:%u (TLS, client certificates, per-device ACL)\n",
           u->mqtt_port);
    printf("  keeld    http://127.0.0.1:%u (database %s/keeld.db)\n", u->http_port, u->dir);
    if (ndev == 0)
        printf("  devices  none (--devices N starts some)\n");
    else if (simulated)
        printf("  devices  %u SIMULATED (fleetsim: the device protocol and update engine from the\n"
               "           host, no QEMU), online: dev-1..dev-%u; logs %s/fleetsim-K.log",
               (unsigned)ndev, (unsigned)ndev, u->dir);
    else
        printf("  devices  %u emulated (QEMU + microvisor + %s), online:", (unsigned)ndev,
               strrchr(u->app, '/') + 1);
    for (unsigned i = 0; i < ndev && !simulated; i++)
        printf(" %s", u->ids[i]);
    if (ndev > 0)
        printf("\n");
    if (ndev > 0 && !simulated)
        printf("  consoles %s/devices/<id>/console.log\n", u->dir);
    printf("  secrets  %s (CA and service keys, fleet signing key, API token: no device process\n"
           "           sees this directory)\n", u->secrets);
    printf("  config   %s/config (url and API token)\n", u->secrets);
    printf("  updates  sign bundles with %s/fleet.key (keel bundle build --key), then keel deploy\n",
           u->secrets);
    if (state != NULL)
        printf("Use it with: export KEEL_CONFIG=%s/config   then e.g. 'keel devices'\n"
               "Stop it with: keel down --state %s\n", u->secrets, state);
    else
        printf("Try 'keel devices'. Stop it with: keel down\n");
    rc = CLI_EXIT_OK;
out:
    fapi_cleanup();
    free(u);
    return rc;
}

/*
 * Until keeld lists no device online, at most OFFLINE_WAIT_MS: then the registry is true for the
 * next `keel up` too. Best effort: when keeld does not answer, down goes on.
 */
static void wait_offline(const char *prog, const char *dir)
{
    char url[256] = "", token[FAPI_TOKEN_MAX] = "";
    read_config(dir, url, sizeof url, token, sizeof token);
    fapi_t a;
    if (url[0] == '\0' || !fapi_open(prog, url, token, &a))
        return;
    a.quiet = true;
    for (unsigned t = 0; t < OFFLINE_WAIT_MS; t += POLL_MS) {
        json_t *j = NULL;
        bool any = false;
        if (!fapi_call(&a, "GET", "/v1/devices", NULL, &j, NULL)) {
            json_decref(j);
            break;
        }
        size_t k;
        json_t *d;
        json_array_foreach(json_object_get(j, "devices"), k, d)
            any = any || json_is_true(json_object_get(d, "online"));
        json_decref(j);
        if (!any)
            break;
        stack_sleep_ms(POLL_MS);
    }
    fapi_cleanup();
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
    /* Devices first, so keeld is still there to record them going offline (their last wills). */
    int n = stack_stop_some(pids, "dev-", STOP_WAIT_MS, true);
    if (n > 0)
        wait_offline(prog, dir);
    n += stack_stop_all(prog, pids, STOP_WAIT_MS, true);
    if (n == 0)
        printf("nothing running from %s\n", dir);
    else
        printf("local Keel stack stopped (%d processes); state kept in %s\n", n, dir);
    return CLI_EXIT_OK;
}

const cli_noun_t cmd_up = {
    .name = "up", .summary = "start the local fleet stack (broker, keeld, devices)", .run = run_up};
const cli_noun_t cmd_down = {.name = "down", .summary = "stop the local fleet stack", .run = run_down};

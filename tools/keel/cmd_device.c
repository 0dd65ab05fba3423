/*
 * `keel device ...`: emulated devices on this machine.
 *
 *   run      provision, optionally install an app, and run the device in QEMU
 *   install  install an app into a device's flash without running it
 *   info     show a device's identity and installed app
 *
 * Every command that changes flash inspects first: the ELF is read and validated completely
 * before the state directory is created or touched.
 */
#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/crash.h"

#include "cli.h"
#include "cmd.h"
#include "devstate.h"
#include "gdbrelay.h"
#include "fapi.h"
#include "keel/board.h"
#include "net_rec.h"
#include "qrun.h"

#define BACKOFF_MAX_MS (24u * 3600u * 1000u) /* a day: longer is a stopped app, not a back-off */
#define SECONDS_MAX (30u * 24u * 3600u)
#define APPEND_MAX KBOARD_BOOTWORDS_MAX /* the store's boot-word record (store.h) */

/* Options shared by run and install. Long-only options use codes above the char range. */
enum {
    OPT_HELP = 'h',
    OPT_STATE = 256,
    OPT_ID,
    OPT_INSTALL,
    OPT_APP_VERSION,
    OPT_BACKOFF_MIN,
    OPT_BACKOFF_MAX,
    OPT_STACK_DUMP,
    OPT_SECONDS,
    OPT_FIRMWARE,
    OPT_ICOUNT,
    OPT_POWERCUT,
    OPT_APPEND,
    OPT_BROKER,
    OPT_GDB_SERIAL,
    OPT_FLEET_CA,
    OPT_BROKER_NAME,
    OPT_FLEET_CA_KEY,
    OPT_UPDATE_KEY,
    OPT_ALLOW_TLS12,
};

#define BROKER_NAME_DEFAULT "localhost"
#define OPTS_NET {"fleet-ca", required_argument, NULL, OPT_FLEET_CA}, \
                 {"fleet-ca-key", required_argument, NULL, OPT_FLEET_CA_KEY}, \
                 {"broker-name", required_argument, NULL, OPT_BROKER_NAME}, \
                 {"update-key", required_argument, NULL, OPT_UPDATE_KEY}, \
                 {"allow-tls12", no_argument, NULL, OPT_ALLOW_TLS12}
#define HELP_NET_OPTS \
    "  --fleet-ca CA.pem    the CA that signed the broker's certificate (P-256); stored in\n" \
    "                       the device once, needed the first time --broker is used\n" \
    "  --fleet-ca-key KEY   the fleet CA's private key: issue the device its own P-256 key\n" \
    "                       and certificate (CN = device id) for mutual TLS, once\n" \
    "  --broker-name NAME   the name the broker's certificate must carry (default\n" \
    "                       " BROKER_NAME_DEFAULT "; stored with the CA)\n" \
    "  --allow-tls12        let the broker connection fall back to TLS 1.2 (default: TLS 1.3\n" \
    "                       only, a downgrade is refused); stored with the CA\n" \
    "  --update-key PUB.pem a fleet bundle signing public key (P-256 PEM, 'keel keys new')\n" \
    "                       the device trusts; repeatable (up to 4), stored once\n"

/* What the network provisioning options asked for. */
typedef struct net_req {
    const char *ca, *ca_key, *broker_name;
    const char *upd_keys[NET_UPDKEYS_MAX];
    unsigned n_upd_keys;
    bool too_many_keys;
    bool allow_tls12;
} net_req_t;

/* Handle one of OPTS_NET; false when c is not one of them. */
static bool net_opt(int c, const char *arg, net_req_t *n)
{
    switch (c) {
    case OPT_FLEET_CA: n->ca = arg; return true;
    case OPT_FLEET_CA_KEY: n->ca_key = arg; return true;
    case OPT_BROKER_NAME: n->broker_name = arg; return true;
    case OPT_ALLOW_TLS12: n->allow_tls12 = true; return true;
    case OPT_UPDATE_KEY:
        if (n->n_upd_keys < NET_UPDKEYS_MAX)
            n->upd_keys[n->n_upd_keys++] = arg;
        else
            n->too_many_keys = true;
        return true;
    default: return false;
    }
}

static int net_check(const char *prog, const net_req_t *n)
{
    if ((n->broker_name != NULL || n->ca_key != NULL || n->allow_tls12) && n->ca == NULL)
        return cli_usage_error(prog, "--broker-name, --fleet-ca-key and --allow-tls12 go with --fleet-ca CA.pem");
    if (n->too_many_keys)
        return cli_usage_error(prog, "at most %u --update-key files", NET_UPDKEYS_MAX);
    return CLI_EXIT_OK;
}

/* The update keys alone (any time), then the fleet records when a CA is given or needed. */
static bool net_provision(devstate_t *s, const char *prog, const net_req_t *n, bool need_fleet)
{
    if (n->n_upd_keys && !devstate_provision_updkeys(s, prog, n->upd_keys, n->n_upd_keys))
        return false;
    if (!need_fleet && n->ca == NULL)
        return true;
    return devstate_provision_net(s, prog, n->ca, n->ca_key,
                                  n->broker_name ? n->broker_name : BROKER_NAME_DEFAULT,
                                  n->allow_tls12 ? NET_FLEET_F_ALLOW_TLS12 : 0u);
}

#define OPTS_COMMON {"help", no_argument, NULL, OPT_HELP}, \
                    {"state", required_argument, NULL, OPT_STATE}
#define OPTS_INSTALL {"id", required_argument, NULL, OPT_ID}, \
                     {"app-version", required_argument, NULL, OPT_APP_VERSION}, \
                     {"backoff-min", required_argument, NULL, OPT_BACKOFF_MIN}, \
                     {"backoff-max", required_argument, NULL, OPT_BACKOFF_MAX}, \
                     {"stack-dump", required_argument, NULL, OPT_STACK_DUMP}

#define HELP_INSTALL_OPTS \
    "  --app-version X.Y.Z  app version (default 0.0.0)\n" \
    "  --backoff-min MS     first restart delay after a crash (default 100)\n" \
    "  --backoff-max MS     cap of the doubling restart delay (default 30000)\n" \
    "  --stack-dump BYTES   app stack bytes kept in a crash report, 0..256 (default 128)\n" \
    "  --id NAME            device id when the state is new ([A-Za-z0-9._-], 1..63 chars;\n" \
    "                       default dev-<8 random hex digits>)\n"

/* What the install options asked for. */
typedef struct install_req {
    const char *elf;
    const char *id;
    devstate_policy_t policy;
    bool policy_given; /* a policy flag was used */
} install_req_t;

/* Handle one of the OPTS_INSTALL options (anything else is a usage error); a CLI_EXIT_* code. */
static int install_opt(const char *prog, int c, const char *arg, char **argv, install_req_t *r)
{
    switch (c) {
    case OPT_ID:
        if (kident_check_id(arg) != KERR_OK)
            return cli_usage_error(prog, "--id '%s' is not a device id: 1 to %u characters from "
                                         "A-Z a-z 0-9 . _ -", arg, KIDENT_ID_MAX);
        r->id = arg;
        return CLI_EXIT_OK;
    case OPT_APP_VERSION:
        r->policy_given = true;
        if (kapp_version_parse(arg, &r->policy.version) != KERR_OK)
            return cli_usage_error(prog, "--app-version wants MAJOR.MINOR.PATCH (at most "
                                         "255.255.65535), not '%s'", arg);
        return CLI_EXIT_OK;
    case OPT_BACKOFF_MIN:
        r->policy_given = true;
        return cli_parse_u32(prog, "--backoff-min", arg, 1, BACKOFF_MAX_MS,
                             &r->policy.backoff_min_ms) ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    case OPT_BACKOFF_MAX:
        r->policy_given = true;
        return cli_parse_u32(prog, "--backoff-max", arg, 1, BACKOFF_MAX_MS,
                             &r->policy.backoff_max_ms) ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    case OPT_STACK_DUMP:
        r->policy_given = true;
        return cli_parse_u32(prog, "--stack-dump", arg, 0, KCRASH_STACK_MAX,
                             &r->policy.stack_dump) ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    default:
        return cli_bad_option(prog, c, argv);
    }
}

static int need_state(const char *prog)
{
    return cli_usage_error(prog, "--state DIR is required (the device's state directory)");
}

static int install_check(const char *prog, const install_req_t *r)
{
    if (r->policy.backoff_min_ms > r->policy.backoff_max_ms)
        return cli_usage_error(prog, "--backoff-min (%lu) is larger than --backoff-max (%lu)",
                               (unsigned long)r->policy.backoff_min_ms,
                               (unsigned long)r->policy.backoff_max_ms);
    return CLI_EXIT_OK;
}

/* Read and validate the ELF: nothing is touched when this fails. */
static bool load_app(const char *prog, const install_req_t *r, appelf_image_t *img,
                     kapp_hdr_t *hdr)
{
    char why[512];
    const appelf_target_t t = appelf_target(kboard_host());
    if (appelf_load(r->elf, &t, img, why, sizeof why) != KERR_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, r->elf, why);
        return false;
    }
    devstate_app_header(img, r->elf, &r->policy, hdr);
    if (hdr->name[0] == '\0') {
        fprintf(stderr, "%s: %s: cannot name the app after this file: rename it (the name is "
                        "the file name without its extension)\n", prog, r->elf);
        appelf_free(img);
        return false;
    }
    return true;
}

/* The header's name as printable text: it comes from flash, which anyone may have written. */
static void app_name(const kapp_hdr_t *h, char out[KAPP_NAME_MAX + 1])
{
    size_t n = 0;
    for (; n < KAPP_NAME_MAX && h->name[n] != '\0'; n++)
        out[n] = isprint((unsigned char)h->name[n]) ? h->name[n] : '?';
    out[n] = '\0';
}

/* Open (creating/provisioning) the state and install the app if one is requested. */
static int open_and_install(const char *prog, const char *dir, const install_req_t *r,
                            devstate_t *s)
{
    appelf_image_t img = {0};
    kapp_hdr_t hdr;
    if (r->elf != NULL && !load_app(prog, r, &img, &hdr))
        return CLI_EXIT_FAIL;
    bool ok = devstate_open(s, prog, dir, true, r->id);
    if (ok && r->elf != NULL) {
        ok = devstate_install(s, prog, &img, &hdr);
        if (ok) {
            char ver[16], sha[17], name[KAPP_NAME_MAX + 1];
            kapp_version_format(hdr.version, ver, sizeof ver);
            devstate_sha_prefix(hdr.sha256, sha, sizeof sha);
            app_name(&hdr, name);
            printf("installed %s %s (%lu bytes, sha256 %s) into %s\n", name, ver,
                   (unsigned long)hdr.image_size, sha, dir);
        }
        if (!ok)
            devstate_close(s, prog);
    }
    appelf_free(&img);
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/*
 * With a fleet server configured (fapi.h: KEEL_URL/KEEL_TOKEN or a config file), give it the ELF
 * just installed so the crash reports of this app are symbolicated by themselves. The install
 * has succeeded whatever happens here: a failure is a warning that says how to do it later.
 */
static void upload_elf(const char *prog, const char *elf)
{
    fapi_t a;
    json_t *j = NULL;
    if (!fapi_open_configured(prog, &a))
        return;
    a.quiet = true;
    if (fapi_elf_upload(&a, elf, &j))
        printf("gave keeld at %s the ELF for crash symbolication (app image %.16s...)\n", a.url,
               json_string_value(json_object_get(j, "sha256")));
    else
        fprintf(stderr, "%s: warning: could not upload %s to keeld at %s; crash reports of this app "
                        "are not symbolicated until 'keel elf upload %s'\n", prog, elf, a.url, elf);
    json_decref(j);
    fapi_cleanup();
}

/* ---- keel device install ------------------------------------------------------------- */

static int device_install(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_COMMON, OPTS_INSTALL, {0}};
    const char *dir = NULL;
    install_req_t req = {0};
    devstate_policy_default(&req.policy);
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s --state DIR [options] APP.elf|APP.kb\n\n"
                   "Install an app (an ELF linked with the Keel SDK linker script) into the\n"
                   "device in DIR, creating and provisioning the device if DIR is new.\n"
                   "A signed bundle (APP.kb, 'keel bundle build') is installed the way the\n"
                   "device installs an update (factory install): verified against the device's\n"
                   "update keys (--update-key, 'keel device provision'), staged, applied and\n"
                   "confirmed by the real update engine; its policy (debug key) then holds.\n\n"
                   "options:\n"
                   "  --state DIR          the device's state directory (required)\n"
                   HELP_INSTALL_OPTS, prog);
            return CLI_EXIT_OK;
        }
        if (c == OPT_STATE) {
            dir = optarg;
            continue;
        }
        int rc = install_opt(prog, c, optarg, argv, &req);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    if (dir == NULL || dir[0] == '\0')
        return need_state(prog);
    if (optind != argc - 1)
        return cli_usage_error(prog, optind == argc ? "which app? give APP.elf or APP.kb"
                                                    : "give exactly one APP.elf or APP.kb");
    if (devstate_is_bundle(argv[optind])) {
        if (req.policy_given)
            return cli_usage_error(prog, "app policy options do not go with a bundle: its signed "
                                         "manifest holds the version and policy");
        devstate_t s;
        if (!devstate_open(&s, prog, dir, true, req.id))
            return CLI_EXIT_FAIL;
        bool ok = devstate_install_bundle(&s, prog, argv[optind]);
        return devstate_close(&s, prog) && ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
    req.elf = argv[optind];
    int rc = install_check(prog, &req);
    if (rc != CLI_EXIT_OK)
        return rc;
    devstate_t s;
    rc = open_and_install(prog, dir, &req, &s);
    if (rc == CLI_EXIT_OK && !devstate_close(&s, prog))
        rc = CLI_EXIT_FAIL;
    if (rc == CLI_EXIT_OK)
        upload_elf(prog, req.elf);
    return rc;
}

/* ---- keel device info ---------------------------------------------------------------- */

static void print_app(const kapp_hdr_t *h)
{
    char ver[16], sha[17], name[KAPP_NAME_MAX + 1];
    app_name(h, name);
    kapp_version_format(h->version, ver, sizeof ver);
    devstate_sha_prefix(h->sha256, sha, sizeof sha);
    printf("app:       %s %s\n", name, ver);
    printf("size:      %lu bytes at 0x%08lx\n", (unsigned long)h->image_size,
           (unsigned long)h->load_addr);
    printf("sha256:    %s\n", sha);
    printf("policy:    backoff %lu..%lu ms, stack dump %lu bytes\n",
           (unsigned long)h->backoff_min_ms, (unsigned long)h->backoff_max_ms,
           (unsigned long)h->stack_dump);
}

static int device_info(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {OPTS_COMMON, {0}};
    const char *dir = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s --state DIR\n\n"
                   "Show the device id and the installed app of the device in DIR.\n", prog);
            return CLI_EXIT_OK;
        }
        if (c != OPT_STATE)
            return cli_bad_option(prog, c, argv);
        dir = optarg;
    }
    if (dir == NULL || dir[0] == '\0')
        return need_state(prog);
    if (optind != argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    devstate_t s;
    if (!devstate_open(&s, prog, dir, false, NULL))
        return CLI_EXIT_FAIL;
    printf("device:    %s\n", s.ident.id);
    kapp_hdr_t h;
    kerr_t err = devstate_app(&s, &h);
    if (err == KERR_OK || err == KERR_IMG_HASH)
        print_app(&h);
    if (err == KERR_OK)
        printf("image:     verified (sha256 matches)\n");
    else if (err == KERR_IMG_HASH)
        printf("image:     DAMAGED: the image in flash does not match the header's sha256; "
               "install the app again\n");
    else if (err == KERR_IMG_EMPTY)
        printf("app:       no app installed\n");
    else
        printf("app:       unreadable header (%s): install the app again\n", kerr_str(err));
    return devstate_close(&s, prog) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- keel device run ----------------------------------------------------------------- */

static void run_help(const char *prog)
{
    printf("usage: %s --state DIR [options]\n\n"
           "Run an emulated device (QEMU, the board's machine) with its state in DIR, creating and\n"
           "provisioning it if DIR is new. The microvisor's console (UART1) is printed as is,\n"
           "the app's console (UART0) prefixed with 'app| '; what you type goes to the app.\n"
           "Ctrl-C stops the device.\n\n"
           "options:\n"
           "  --state DIR          the device's state directory (required)\n"
           "  --install APP        install this app first: an ELF, or a signed bundle APP.kb\n"
           "                       (factory install, verified against the update keys; see\n"
           "                       'keel device install')\n"
           HELP_INSTALL_OPTS
           "  --seconds N          stop the device after N seconds (default: run until stopped)\n"
           "  --firmware PATH      secure firmware ELF (default $KEEL_FIRMWARE, else the one\n"
           "                       built by 'make' beside this keel)\n"
           "  --icount             deterministic instruction counting (-icount shift=0)\n"
           "  --powercut N         cut power during the device's N-th flash operation\n"
           "  --append WORDS       extra boot words for the microvisor (all boot words: at\n"
           "                       most 255 bytes, the store's boot-word record)\n"
           "  --broker PORT        connect the device to the MQTT/TLS broker on 127.0.0.1:PORT\n"
           "                       (QEMU gets a restricted network whose only way out is that\n"
           "                       port; without --broker the device has no network)\n"
           "  --gdb-serial PORT    the app debugger on a plain serial line: keel listens on\n"
           "                       127.0.0.1:PORT for gdb's 'target remote' and relays to QEMU's\n"
           "                       UART2 (local development; UART2 is taken from the app, no\n"
           "                       encryption, see docs/debug.md)\n"
           HELP_NET_OPTS "\n"
           "Exit status: the device's own when it ends by itself, 0 when stopped.\n", prog);
}

/* The microvisor's command line: "powercut=N", "broker-port=P", "dbg-uart" first, then the
 * user's words. */
static bool build_append(const char *prog, uint32_t powercut, uint32_t broker, bool dbg_uart,
                         const char *extra, char *out, size_t cap)
{
    char pc[32] = "", bp[32] = "";
    if (powercut)
        snprintf(pc, sizeof pc, "powercut=%lu ", (unsigned long)powercut);
    if (broker)
        snprintf(bp, sizeof bp, "broker-port=%lu ", (unsigned long)broker);
    int n = snprintf(out, cap, "%s%s%s%s", pc, bp, dbg_uart ? "dbg-uart " : "", extra ? extra : "");
    if (n > 0 && (size_t)n < cap && out[n - 1] == ' ')
        out[--n] = '\0';
    if (n < 0 || (size_t)n >= cap) {
        cli_usage_error(prog, "--append: the boot words are longer than %zu bytes", cap - 1);
        return false;
    }
    return true;
}

static int device_run(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {
        OPTS_COMMON,
        OPTS_INSTALL,
        {"install", required_argument, NULL, OPT_INSTALL},
        {"seconds", required_argument, NULL, OPT_SECONDS},
        {"firmware", required_argument, NULL, OPT_FIRMWARE},
        {"icount", no_argument, NULL, OPT_ICOUNT},
        {"powercut", required_argument, NULL, OPT_POWERCUT},
        {"append", required_argument, NULL, OPT_APPEND},
        {"broker", required_argument, NULL, OPT_BROKER},
        {"gdb-serial", required_argument, NULL, OPT_GDB_SERIAL},
        OPTS_NET,
        {0},
    };
    qrun_opts_t q = {.append = ""};
    install_req_t req = {0};
    devstate_policy_default(&req.policy);
    const char *dir = NULL, *firmware = NULL, *extra = NULL;
    net_req_t net = {0};
    uint32_t powercut = 0, broker = 0, gdb_serial = 0;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_HELP: run_help(prog); return CLI_EXIT_OK;
        case OPT_STATE: dir = optarg; break;
        case OPT_INSTALL: req.elf = optarg; break;
        case OPT_FIRMWARE: firmware = optarg; break;
        case OPT_ICOUNT: q.icount = true; break;
        case OPT_APPEND: extra = optarg; break;
        case OPT_SECONDS:
            if (!cli_parse_u32(prog, "--seconds", optarg, 1, SECONDS_MAX, &q.seconds))
                return CLI_EXIT_USAGE;
            break;
        case OPT_BROKER:
            if (!cli_parse_u32(prog, "--broker", optarg, 1, 65535, &broker))
                return CLI_EXIT_USAGE;
            break;
        case OPT_GDB_SERIAL:
            if (!cli_parse_u32(prog, "--gdb-serial", optarg, 1, 65535, &gdb_serial))
                return CLI_EXIT_USAGE;
            break;
        case OPT_POWERCUT:
            if (!cli_parse_u32(prog, "--powercut", optarg, 1, UINT32_MAX, &powercut))
                return CLI_EXIT_USAGE;
            break;
        default:
            if (net_opt(c, optarg, &net))
                break;
            if ((rc = install_opt(prog, c, optarg, argv, &req)) != CLI_EXIT_OK)
                return rc;
        }
    }
    if (dir == NULL || dir[0] == '\0')
        return need_state(prog);
    if (optind != argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (req.policy_given && req.elf == NULL)
        return cli_usage_error(prog, "app policy options need --install APP.elf");
    bool bundle = req.elf != NULL && devstate_is_bundle(req.elf);
    if (bundle && req.policy_given)
        return cli_usage_error(prog, "app policy options do not go with a bundle: its signed "
                                     "manifest holds the version and policy");
    if ((rc = net_check(prog, &net)) != CLI_EXIT_OK)
        return rc;
    if ((rc = install_check(prog, &req)) != CLI_EXIT_OK)
        return rc;
    if (net.ca != NULL && broker == 0)
        return cli_usage_error(prog, "--fleet-ca goes with --broker PORT (or use 'keel device "
                                     "provision' to provision without running)");
    q.broker_port = (uint16_t)broker;
    q.gdb_serial_port = (uint16_t)gdb_serial;
    char append[APPEND_MAX + 1];
    if (!build_append(prog, powercut, broker, gdb_serial != 0, extra, append, sizeof append))
        return CLI_EXIT_USAGE;
    q.append = append;

    /* Everything that can be checked without touching the device is checked first. */
    char fw[PATH_MAX];
    if (!qrun_find_firmware(prog, firmware, fw, sizeof fw))
        return CLI_EXIT_FAIL;
    q.firmware = fw;
    devstate_t s;
    if (bundle) {
        /* A signed bundle is verified against the device's update keys: they are provisioned
         * first (on a new device from --update-key), then the factory install runs the update
         * engine, exactly as 'keel device install APP.kb' does. */
        if (!devstate_open(&s, prog, dir, true, req.id))
            return CLI_EXIT_FAIL;
        if (!net_provision(&s, prog, &net, broker != 0) ||
            !devstate_install_bundle(&s, prog, req.elf)) {
            devstate_close(&s, prog);
            return CLI_EXIT_FAIL;
        }
    } else {
        if ((rc = open_and_install(prog, dir, &req, &s)) != CLI_EXIT_OK)
            return rc;
        if (!net_provision(&s, prog, &net, broker != 0)) {
            devstate_close(&s, prog);
            return CLI_EXIT_FAIL;
        }
    }
    /* The microvisor opens the flash files itself: ours are closed before it starts, the
     * directory stays locked while it runs. */
    char real[PATH_MAX];
    if (!devstate_release_flash(&s, prog))
        rc = CLI_EXIT_FAIL;
    else if (realpath(dir, real) == NULL)
        rc = cli_fail(prog, "%s: cannot resolve the path", dir);
    else {
        q.state_dir = real;
        /* gdb talks to keel's relay on the user's port; QEMU's UART2 listens on another. */
        gdbrelay_t gr = {0};
        if (gdb_serial != 0 && !gdbrelay_start(&gr, prog, (uint16_t)gdb_serial)) {
            rc = CLI_EXIT_FAIL;
        } else {
            if (gdb_serial != 0)
                q.gdb_serial_port = gr.qemu_port;
            rc = qrun_run(prog, &q);
            gdbrelay_stop(&gr);
        }
    }
    devstate_close(&s, prog);
    return rc;
}

/* ---- keel device provision ----------------------------------------------------------- */

static void provision_help(const char *prog)
{
    printf("usage: %s --state DIR [--fleet-ca CA.pem] [--update-key PUB.pem]... [options]\n\n"
           "Provision a device for the fleet without running it: its identity (if DIR is new),\n"
           "its entropy seed, the fleet CA and broker name it trusts and, with --fleet-ca-key,\n"
           "its own key and certificate for mutual TLS. Each is written once; giving the same\n"
           "values again changes nothing.\n\n"
           "options:\n"
           "  --state DIR          the device's state directory (required)\n"
           "  --id NAME            device id when the state is new (default dev-<8 hex digits>)\n"
           HELP_NET_OPTS, prog);
}

static int device_provision(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {
        OPTS_COMMON,
        {"id", required_argument, NULL, OPT_ID},
        OPTS_NET,
        {0},
    };
    const char *dir = NULL, *id = NULL;
    net_req_t net = {0};
    int c, rc;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_HELP: provision_help(prog); return CLI_EXIT_OK;
        case OPT_STATE: dir = optarg; break;
        case OPT_ID:
            if (kident_check_id(optarg) != KERR_OK)
                return cli_usage_error(prog, "--id '%s' is not a device id: 1 to %u characters "
                                             "from A-Z a-z 0-9 . _ -", optarg, KIDENT_ID_MAX);
            id = optarg;
            break;
        default:
            if (!net_opt(c, optarg, &net))
                return cli_bad_option(prog, c, argv);
        }
    }
    if (dir == NULL)
        return need_state(prog);
    if (optind != argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (net.ca == NULL && net.n_upd_keys == 0)
        return cli_usage_error(prog, "--fleet-ca CA.pem (or --update-key PUB.pem) is required");
    if ((rc = net_check(prog, &net)) != CLI_EXIT_OK)
        return rc;
    devstate_t s;
    if (!devstate_open(&s, prog, dir, true, id))
        return CLI_EXIT_FAIL;
    bool ok = net_provision(&s, prog, &net, false);
    if (!devstate_close(&s, prog) || !ok)
        return CLI_EXIT_FAIL;
    printf("device %s is provisioned for the fleet\n", s.ident.id);
    return CLI_EXIT_OK;
}

static const cli_verb_t device_verbs[] = {
    {"run", "run an emulated device in QEMU (provisions it and installs an app if asked)",
     device_run},
    {"install", "install an app ELF or a signed bundle into an emulated device's flash",
     device_install},
    {"info", "show an emulated device's id and installed app", device_info},
    {"provision", "provision an emulated device for the fleet (CA, broker name, device key)",
     device_provision},
    {"show", "show a device as keeld knows it (registry, manifest, tags)", cmd_device_show},
};

const cli_noun_t cmd_device = {
    .name = "device",
    .summary = "devices: run emulated ones, install apps, inspect; show one from keeld",
    .verbs = device_verbs,
    .nverbs = sizeof device_verbs / sizeof device_verbs[0],
};

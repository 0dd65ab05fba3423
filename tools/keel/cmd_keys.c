/*
 * `keel keys new NAME [--dir D]`: a fleet signing key pair (keyfile.h). NAME.key signs bundles
 * (`keel bundle build --key`); NAME.pub goes to keeld (`--update-key`) and into devices.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "cmd.h"
#include "keyfile.h"

static int keys_new(const char *prog, int argc, char **argv)
{
    enum { OPT_HELP = 'h', OPT_DIR = 256 };
    static const struct option opts[] = {{"help", no_argument, NULL, OPT_HELP},
                                         {"dir", required_argument, NULL, OPT_DIR},
                                         {0}};
    const char *dir = ".";
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            printf("usage: %s NAME [--dir D]\n\n"
                   "Create a fleet signing key pair (ECDSA P-256, PEM):\n"
                   "  D/NAME.key  private key, mode 0600: signs bundles (keel bundle build --key)\n"
                   "  D/NAME.pub  public key: give it to keeld and to devices, which then trust\n"
                   "              bundles signed with NAME.key\n"
                   "An existing key is never overwritten.\n\n"
                   "options:\n"
                   "  --dir D   where to write the pair (default: the current directory; made 0700\n"
                   "            if missing)\n", prog);
            return CLI_EXIT_OK;
        }
        if (c != OPT_DIR)
            return cli_bad_option(prog, c, argv);
        dir = optarg;
    }
    if (optind != argc - 1)
        return cli_usage_error(prog, optind == argc ? "name the key: %s NAME"
                                                    : "give exactly one NAME (%s NAME)", prog);
    char key[4096], pub[4096], why[512];
    if (!keyfile_new(dir, argv[optind], key, pub, sizeof key, why, sizeof why))
        return cli_fail(prog, "%s", why);
    keyfile_key_t k;
    char id[17] = "";
    if (keyfile_load(pub, false, &k, why, sizeof why)) {
        uint8_t kid[KBDL_KEY_ID_SIZE];
        kbdl_key_id(k.pub, kid);
        keyfile_id_hex(kid, id, sizeof id);
    }
    printf("private key: %s (keep it secret)\npublic key:  %s\nkey id:      %s\n", key, pub, id);
    return CLI_EXIT_OK;
}

static const cli_verb_t keys_verbs[] = {
    {"new", "create a fleet signing key pair (NAME.key, NAME.pub)", keys_new},
};

const cli_noun_t cmd_keys = {"keys", "fleet signing keys for update bundles", keys_verbs,
                             sizeof keys_verbs / sizeof keys_verbs[0], NULL};

/*
 * What the keel commands that talk to keeld share (cmd_fleet.c, cmd_deploy.c): option ids, the
 * --url/--token/--json options and their help text, and JSON and time formatting.
 */
#ifndef KEEL_TOOLS_FLEETCLI_H
#define KEEL_TOOLS_FLEETCLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum {
    OPT_HELP = 'h',
    OPT_FOLLOW = 'f',
    OPT_URL = 300,
    OPT_TOKEN,
    OPT_JSON,
    OPT_LIMIT,
    OPT_SINCE,
    OPT_AFTER,
    OPT_ELF,
    OPT_TIMEOUT,
    OPT_NO_WAIT,
    OPT_NAME,
    OPT_DB,
    OPT_STATE,
    OPT_FILE,
    OPT_DIRECTION,
};

#define OPTS_API {"help", no_argument, NULL, OPT_HELP}, \
                 {"url", required_argument, NULL, OPT_URL}, \
                 {"token", required_argument, NULL, OPT_TOKEN}, \
                 {"json", no_argument, NULL, OPT_JSON}

#define HELP_API \
    "  --url URL      keeld's address (default: KEEL_URL, the config file, http://127.0.0.1:8080)\n" \
    "  --token TOKEN  API token (default: KEEL_TOKEN, then the config file: $KEEL_CONFIG,\n" \
    "                 ~/.config/keel/config, or the one 'keel up' wrote)\n" \
    "  --json         print keeld's JSON instead of text\n" \
    "  -h, --help     this help\n"

/* The options every API command shares. */
typedef struct api_opts {
    const char *url;
    const char *token;
    bool json;
} api_opts_t;

/* Handle a shared option; false when c is not one of them. */
bool fleetcli_api_opt(int c, api_opts_t *o);
/* Print j as indented JSON. */
void fleetcli_print_json(json_t *j);
/* Release the HTTP client and return rc: the last call of a command. */
int fleetcli_finish(int rc);
/* o[key] as a string (dflt when absent or not a string) or an integer (0). */
const char *fleetcli_jstr(json_t *o, const char *key, const char *dflt);
long long fleetcli_jint(json_t *o, const char *key);
/* Unix ms as local "YYYY-MM-DD HH:MM:SS.mmm" into buf; "-" for 0/null. */
const char *fleetcli_fmt_time(long long ms, char *buf, size_t cap);

/* Set by fleetcli_on_stop (the SIGINT/SIGTERM handler of following and watching commands). */
extern volatile int fleetcli_stop;
void fleetcli_on_stop(int sig);

#endif /* KEEL_TOOLS_FLEETCLI_H */

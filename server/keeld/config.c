/* keeld configuration table, loading and validation. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

typedef enum { OPT_STR, OPT_LONG } opt_kind_t;

typedef struct opt {
    const char *name;       /* flag without "--" */
    const char *env;
    opt_kind_t kind;
    size_t off;             /* into kd_config_t */
    size_t cap;             /* OPT_STR: buffer size */
    const char *def;
    long min, max;          /* OPT_LONG bounds */
    const char *help;
} opt_t;

#define STR(field, name, env, def, help) \
    {name, env, OPT_STR, offsetof(kd_config_t, field), sizeof(((kd_config_t *)0)->field), def, 0, 0, help}
#define NUM(field, name, env, def, lo, hi, help) \
    {name, env, OPT_LONG, offsetof(kd_config_t, field), 0, def, lo, hi, help}

static const opt_t options[] = {
    STR(db, "db", "KEELD_DB", "keeld.db", "SQLite database file (created and migrated on start)"),
    STR(http_addr, "http-addr", "KEELD_HTTP_ADDR", "127.0.0.1", "IPv4 address for the REST API"),
    NUM(http_port, "http-port", "KEELD_HTTP_PORT", "8080", 0, 65535, "REST API port (0: any free port)"),
    STR(port_file, "port-file", "KEELD_PORT_FILE", "", "write the bound REST port to this file"),
    STR(mqtt_host, "mqtt-host", "KEELD_MQTT_HOST", "127.0.0.1", "MQTT broker host"),
    NUM(mqtt_port, "mqtt-port", "KEELD_MQTT_PORT", "8883", 1, 65535, "MQTT broker TLS port"),
    STR(mqtt_ca, "mqtt-ca", "KEELD_MQTT_CA", "", "CA certificate (PEM) of the broker (required)"),
    STR(mqtt_cert, "mqtt-cert", "KEELD_MQTT_CERT", "", "keeld's client certificate (PEM) (required)"),
    STR(mqtt_key, "mqtt-key", "KEELD_MQTT_KEY", "", "keeld's client private key (PEM) (required)"),
    STR(mqtt_client_id, "mqtt-client-id", "KEELD_MQTT_CLIENT_ID", "keeld", "MQTT client id: its persistent session keeps messages while keeld is down; unique per instance"),
    STR(mqtt_group, "mqtt-group", "KEELD_MQTT_GROUP", "keeld", "shared subscription group of keeld instances"),
    STR(mqtt_brokers, "mqtt-brokers", "KEELD_MQTT_BROKERS", "", "several brokers, HOST:PORT,... (at most 16): keeld connects to every one, and reaches each device on the broker its id maps to (docs/protocol.md); replaces --mqtt-host/--mqtt-port"),
    NUM(mqtt_keepalive, "mqtt-keepalive", "KEELD_MQTT_KEEPALIVE", "30", 5, 600, "MQTT keepalive, seconds"),
    NUM(max_body, "max-body", "KEELD_MAX_BODY", "65536", 1024, 16777216, "largest request body, bytes"),
    NUM(max_elf, "max-elf", "KEELD_MAX_ELF", "16777216", 1024, 268435456, "largest app ELF upload (POST /v1/elfs), bytes"),
    NUM(cmd_timeout, "cmd-timeout", "KEELD_CMD_TIMEOUT", "60", 1, 86400, "seconds before an unanswered command times out"),
    NUM(log_level, "log-level", "KEELD_LOG_LEVEL", "2", 0, 3, "0 error, 1 warn, 2 info, 3 debug"),
    STR(update_keys, "update-key", "KEELD_UPDATE_KEYS", "", "fleet signing public keys (PEM files, comma-separated; 'keel keys new' makes them): uploaded bundles must be signed by one"),
    NUM(max_bundle, "max-bundle", "KEELD_MAX_BUNDLE", "4194304", 4096, 67108864, "largest uploaded bundle, bytes"),
    NUM(ingest_queue, "ingest-queue", "KEELD_INGEST_QUEUE", "16384", 16, 1048576, "device messages queued for the database worker; when full, keeld stops reading from the broker until there is room"),
    NUM(ingest_batch, "ingest-batch", "KEELD_INGEST_BATCH", "512", 1, 65536, "device messages per database transaction (group commit)"),
    NUM(offer_rate, "offer-rate", "KEELD_OFFER_RATE", "200", 1, 1000000, "download admission: update offers per second at most"),
    NUM(max_downloads, "max-downloads", "KEELD_MAX_DOWNLOADS", "2000", 1, 10000000, "download admission: devices downloading at once at most"),
    NUM(download_idle_s, "download-idle", "KEELD_DOWNLOAD_IDLE", "120", 5, 86400, "seconds without progress after which a download no longer holds an admission slot"),
};
#define NOPTS (sizeof(options) / sizeof(options[0]))

static int set_value(kd_config_t *cfg, const opt_t *o, const char *value, const char *from, FILE *err)
{
    char *field = (char *)cfg + o->off;

    if (o->kind == OPT_STR) {
        if (strlen(value) >= o->cap) {
            fprintf(err, "keeld: %s: --%s is %zu characters long; at most %zu are allowed\n", from,
                    o->name, strlen(value), o->cap - 1);
            return -1;
        }
        strcpy(field, value);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < o->min || v > o->max) {
        fprintf(err, "keeld: %s: --%s '%s' is not a whole number in [%ld, %ld]\n", from, o->name,
                value, o->min, o->max);
        return -1;
    }
    *(long *)(void *)field = v;
    return 0;
}

void kd_config_usage(FILE *out)
{
    fprintf(out, "usage: keeld [serve] [--option VALUE ...]\n"
                 "       keeld token create --db PATH [--name NAME]\n"
                 "       keeld migrate --db PATH\n\n"
                 "options (flag, environment variable, default):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        fprintf(out, "  --%-16s %-22s %-10s %s\n", options[i].name, options[i].env,
                options[i].def[0] ? options[i].def : "\"\"", options[i].help);
    }
}

int kd_config_load(kd_config_t *cfg, int argc, char **argv, int first, FILE *out, FILE *err)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++) {
        const char *env = getenv(options[i].env);
        if (set_value(cfg, &options[i], options[i].def, "default", err) != 0) {
            return -1;
        }
        if (env != NULL && set_value(cfg, &options[i], env, options[i].env, err) != 0) {
            return -1;
        }
    }
    for (int a = first; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            kd_config_usage(out);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(err, "keeld: unexpected argument '%s' (options start with --; see --help)\n", arg);
            return -1;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *o = NULL;
        for (size_t i = 0; i < NOPTS; i++) {
            if (strlen(options[i].name) == nlen && strncmp(options[i].name, name, nlen) == 0) {
                o = &options[i];
            }
        }
        if (o == NULL) {
            fprintf(err, "keeld: unknown option '%s' (see keeld --help)\n", arg);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL) {
            if (a + 1 >= argc) {
                fprintf(err, "keeld: --%s needs a value\n", o->name);
                return -1;
            }
            value = argv[++a];
        }
        if (set_value(cfg, o, value, "command line", err) != 0) {
            return -1;
        }
    }
    if (cfg->db[0] == '\0') {
        fprintf(err, "keeld: --db must name a database file\n");
        return -1;
    }
    return 0;
}

/* The broker settings are checked only by commands that connect to it (serve). */
int kd_config_check_mqtt(const kd_config_t *cfg, FILE *err)
{
    const char *missing = cfg->mqtt_ca[0] == '\0'     ? "mqtt-ca"
                          : cfg->mqtt_cert[0] == '\0' ? "mqtt-cert"
                          : cfg->mqtt_key[0] == '\0'  ? "mqtt-key"
                                                      : NULL;
    if (missing != NULL) {
        fprintf(err, "keeld: --%s is required: keeld talks to the broker only over TLS with its own "
                     "client certificate (--mqtt-ca, --mqtt-cert, --mqtt-key)\n", missing);
        return -1;
    }
    const char *files[] = {cfg->mqtt_ca, cfg->mqtt_cert, cfg->mqtt_key};
    for (size_t i = 0; i < 3; i++) {
        if (access(files[i], R_OK) != 0) {
            fprintf(err, "keeld: cannot read '%s': %s\n", files[i], strerror(errno));
            return -1;
        }
    }
    return 0;
}

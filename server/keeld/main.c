/*
 * keeld: the Keel fleet server. Subcommands:
 *   keeld [serve] [options]                      run (REST API + MQTT ingest)
 *   keeld token create --db PATH [--name NAME]   print a new API token once
 *   keeld migrate --db PATH                      create/upgrade the database and exit
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit.h"
#include "api.h"
#include "config.h"
#include "kd_log.h"
#include "mqtt.h"
#include "notify.h"
#include "ota.h"
#include "rollout.h"
#include "store.h"
#include "token.h"

#define TICK_MS 500

/* docs/openapi.yaml, built in (server/CMakeLists.txt). */
extern const unsigned char keeld_openapi[];
extern const size_t keeld_openapi_len;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    stop_requested = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static store_t *open_store(const char *path)
{
    char err[512] = "";
    store_t *s = store_sqlite_open(path, err, sizeof(err));

    if (s == NULL) {
        fprintf(stderr, "keeld: %s\n", err);
    }
    return s;
}

/* Write the bound port to path atomically (tests and scripts poll for the file). */
static int write_port_file(const char *path, unsigned port)
{
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "keeld: cannot write the port file '%s'\n", path);
        return -1;
    }
    return 0;
}

static int cmd_serve(int argc, char **argv, int first)
{
    kd_config_t cfg;
    char err[512] = "";
    unsigned port = 0;
    int rc = kd_config_load(&cfg, argc, argv, first, stdout, stderr);

    if (rc != 0) {
        return rc < 0 ? 2 : 0;
    }
    if (kd_config_check_mqtt(&cfg, stderr) != 0) {
        return 2;
    }
    kd_log_set_level((int)cfg.log_level);
    store_t *store = open_store(cfg.db);
    if (store == NULL) {
        return 1;
    }
    kd_notify_t logs;
    kd_notify_init(&logs);
    ota_t *ota = ota_open(&cfg, store, err, sizeof(err));
    mq_t *mq = ota ? mq_start(&cfg, store, &logs, ota, err, sizeof(err)) : NULL;
    if (mq != NULL) {
        ota_bind(ota, mq);
    }
    admit_t *admit = mq ? admit_start(&cfg, store, ota) : NULL;
    api_t *api = admit ? api_start(&cfg, store, mq, ota, admit, &logs, &port, err, sizeof(err)) : NULL;
    rollouts_t *rollouts = api ? rollouts_start(store, ota) : NULL;
    if (rollouts != NULL) {
        api_set_openapi(api, keeld_openapi, keeld_openapi_len);
        api_set_rollouts(api, rollouts);
    }
    if (api == NULL || rollouts == NULL || (cfg.port_file[0] != '\0' && write_port_file(cfg.port_file, port) != 0)) {
        if (err[0] != '\0') {
            fprintf(stderr, "keeld: %s\n", err);
        }
        api_stop(api);
        rollouts_stop(rollouts);
        admit_stop(admit);
        mq_stop(mq);
        ota_close(ota);
        kd_notify_destroy(&logs);
        store->ops->close(store);
        return 1;
    }
    KD_INFO("REST API on http://%s:%u, database %s (%s)", cfg.http_addr, port, cfg.db,
            store->ops->backend);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The main thread only runs periodic work; HTTP and MQTT have their own threads. */
    while (!stop_requested) {
        struct timespec ts = {0, TICK_MS * 1000000L};
        nanosleep(&ts, NULL);
        mq_flush_commands(mq);
        store->ops->commands_expire(store, now_ms() - cfg.cmd_timeout * 1000, now_ms());
    }
    KD_INFO("stopping");
    api_stop(api);
    rollouts_stop(rollouts);
    admit_stop(admit);
    mq_stop(mq);
    ota_close(ota);
    kd_notify_destroy(&logs);
    store->ops->close(store);
    return 0;
}

static int cmd_token_create(int argc, char **argv, int first)
{
    const char *db = getenv("KEELD_DB");
    const char *name = "";
    char tok[TOK_LEN + 1], hash[TOK_HASH_HEX];
    int64_t id = 0;

    for (int a = first; a < argc; a++) {
        if (strcmp(argv[a], "--help") == 0) {
            printf("usage: keeld token create --db PATH [--name NAME]\n"
                   "Creates an API token and prints it once; only its SHA-256 is stored.\n");
            return 0;
        }
        if ((strcmp(argv[a], "--db") == 0 || strcmp(argv[a], "--name") == 0) && a + 1 < argc) {
            *(strcmp(argv[a], "--db") == 0 ? &db : &name) = argv[a + 1];
            a++;
            continue;
        }
        fprintf(stderr, "keeld: token create: unexpected '%s' (usage: keeld token create --db PATH "
                        "[--name NAME])\n", argv[a]);
        return 2;
    }
    if (db == NULL || db[0] == '\0') {
        fprintf(stderr, "keeld: token create needs --db PATH (or KEELD_DB)\n");
        return 2;
    }
    if (strlen(name) > 64) {
        fprintf(stderr, "keeld: --name is longer than 64 characters\n");
        return 2;
    }
    store_t *store = open_store(db);
    if (store == NULL) {
        return 1;
    }
    int rc = 1;
    if (tok_generate(tok) != 0) {
        fprintf(stderr, "keeld: no randomness available (getrandom failed)\n");
    } else {
        tok_hash(tok, strlen(tok), hash);
        if (store->ops->token_add(store, name, hash, now_ms(), &id) == STORE_OK) {
            printf("%s\n", tok);
            rc = 0;
        } else {
            fprintf(stderr, "keeld: could not store the token in %s\n", db);
        }
    }
    store->ops->close(store);
    return rc;
}

static int cmd_migrate(int argc, char **argv, int first)
{
    kd_config_t cfg;
    int rc = kd_config_load(&cfg, argc, argv, first, stdout, stderr);

    if (rc != 0) {
        return rc < 0 ? 2 : 0;
    }
    store_t *store = open_store(cfg.db);
    if (store == NULL) {
        return 1;
    }
    store->ops->close(store);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "token") == 0 && strcmp(argv[2], "create") == 0) {
        return cmd_token_create(argc, argv, 3);
    }
    if (argc >= 2 && strcmp(argv[1], "token") == 0) {
        fprintf(stderr, "keeld: unknown token command; usage: keeld token create --db PATH [--name NAME]\n");
        return 2;
    }
    if (argc >= 2 && strcmp(argv[1], "migrate") == 0) {
        return cmd_migrate(argc, argv, 2);
    }
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
        return cmd_serve(argc, argv, 2);
    }
    return cmd_serve(argc, argv, 1);
}

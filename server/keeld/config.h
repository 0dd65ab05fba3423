/*
 * keeld configuration: one table of options (name, environment variable, default, bounds, help).
 * Precedence: command-line flag > environment > default. Every value is validated once at start-up;
 * a bad value stops keeld with a message naming the option, the value and what is allowed.
 */
#ifndef KEEL_SERVER_KEELD_CONFIG_H
#define KEEL_SERVER_KEELD_CONFIG_H

#include <stdio.h>

typedef struct kd_config {
    char db[512];              /* SQLite database file */
    char http_addr[64];        /* IPv4 address the REST API listens on */
    long http_port;            /* 0 = any free port (see port_file) */
    char port_file[512];       /* if set, the bound HTTP port is written here once listening */
    char mqtt_host[256];
    long mqtt_port;
    char mqtt_ca[512];         /* CA that signed the broker's certificate */
    char mqtt_cert[512];       /* keeld's own client certificate (its service identity) */
    char mqtt_key[512];
    char mqtt_client_id[128];  /* persistent session: unique per keeld instance */
    char mqtt_group[64];       /* shared-subscription group ($share/<group>/...) */
    long mqtt_keepalive;       /* seconds */
    char mqtt_brokers[2048];   /* "host:port,..." (several brokers); empty: mqtt_host:mqtt_port */
    long max_body;             /* bytes of one request body */
    long max_elf;              /* bytes of one ELF upload (/v1/elfs) */
    long cmd_timeout;          /* seconds before an unanswered command is marked "timeout" */
    long log_level;            /* 0 error .. 3 debug */
    char update_keys[2048];    /* fleet signing public keys (PEM files), comma-separated */
    long max_bundle;           /* bytes of one uploaded bundle */
    long ingest_queue;         /* device messages queued between the MQTT thread and the worker */
    long ingest_batch;         /* device messages per store transaction (group commit) */
    long offer_rate;           /* download admission: offers per second */
    long max_downloads;        /* download admission: devices downloading at once */
    long download_idle_s;      /* a download quiet this long no longer holds a slot */
} kd_config_t;

/*
 * Fill cfg from defaults, environment and argv[first..argc). On error prints a message to err and
 * returns -1; returns 1 after printing help to out for --help; 0 on success.
 */
int kd_config_load(kd_config_t *cfg, int argc, char **argv, int first, FILE *out, FILE *err);

/* Check the broker settings (required files present and readable). 0 or -1 with a message. */
int kd_config_check_mqtt(const kd_config_t *cfg, FILE *err);

/* The option table as help text. */
void kd_config_usage(FILE *out);

#endif /* KEEL_SERVER_KEELD_CONFIG_H */

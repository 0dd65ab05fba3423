/*
 * One broker connection of keeld (docs/fleet-service.md "Connections heal", "Several brokers"):
 * a libmosquitto client over TLS with keeld's certificate and a persistent session, its own
 * network thread that reconnects after any error (with back-off), the subscriptions to every
 * device topic, and "connected" only once the broker acknowledged all of them. mqtt.c keeps one
 * per broker and routes each device's messages to the broker the device uses.
 */
#ifndef KEEL_SERVER_KEELD_MQCONN_H
#define KEEL_SERVER_KEELD_MQCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>

#include "config.h"

typedef struct mqconn mqconn_t;

/* Called on the connection's network thread for every message that arrives. */
typedef void (*mqconn_msg_fn)(void *ctx, const struct mosquitto_message *msg);

typedef struct mqconn_health {
    bool connected;           /* connected and every subscription acknowledged */
    int64_t down_ms;          /* not connected for this long (0 when connected) */
    unsigned reconnects;      /* network-loop restarts after an error */
    char last_error[128];     /* why the connection was last lost */
} mqconn_health_t;

/* Connect asynchronously (keeld starts while the broker is down) and start the thread. NULL with
 * a message in err when TLS files are unusable or libmosquitto fails. mosquitto_lib_init first. */
mqconn_t *mqconn_start(const kd_config_t *cfg, const char *host, long port, const char *client_id,
                       mqconn_msg_fn on_msg, void *ctx, char *err, size_t errcap);
/* Disconnect and join the thread: no callback runs after it (publishing is refused). */
void mqconn_stop(mqconn_t *c);
/* Free a stopped connection. */
void mqconn_free(mqconn_t *c);
bool mqconn_connected(mqconn_t *c);
void mqconn_health(mqconn_t *c, mqconn_health_t *out);
const char *mqconn_name(mqconn_t *c);   /* "host:port" */
/* mosquitto_publish on this connection (thread-safe): MOSQ_ERR_SUCCESS or its error. */
int mqconn_publish(mqconn_t *c, const char *topic, const void *payload, size_t len, int qos, bool retain);

#endif /* KEEL_SERVER_KEELD_MQCONN_H */

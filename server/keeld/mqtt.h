/*
 * keeld's MQTT side: one libmosquitto client over TLS with keeld's own certificate, a persistent
 * session (messages for keeld queue in the broker while it is down) and shared subscriptions
 * ($share/<group>/keel/v1/+/...) so several keeld instances split the device traffic.
 *
 * Device messages are decoded with kproto (untrusted bytes: anything malformed is logged and
 * dropped), stored (app channel data too) or, for updates, handed to ota.c. Log batches and
 * crash reports are answered with an Ack only after the store committed them: a device frees its copy only then, so kill -9 of keeld loses nothing.
 */
#ifndef KEEL_SERVER_KEELD_MQTT_H
#define KEEL_SERVER_KEELD_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dbgrelay.h"
#include "keel/kproto.h"
#include "notify.h"
#include "ota.h"
#include "store.h"

typedef struct mq mq_t;

/* Connect (asynchronously: keeld starts even while the broker is down) and start the network
 * thread. NULL with a message in err when TLS files are unusable or libmosquitto fails. */
mq_t *mq_start(const kd_config_t *cfg, store_t *store, kd_notify_t *logs_notify, ota_t *ota,
               char *err, size_t errcap);
void mq_stop(mq_t *mq);
bool mq_connected(mq_t *mq);

/* The broker connection for GET /v1/health. */
typedef struct mq_health {
    bool connected;           /* connected and every subscription acknowledged */
    int64_t down_ms;          /* not connected for this long (0 when connected) */
    unsigned reconnects;      /* network-loop restarts after an error since keeld started */
    char last_error[128];     /* why the connection was last lost */
} mq_health_t;
void mq_health(mq_t *mq, mq_health_t *out);

/*
 * Publish every pending command (oldest first) and mark it sent. Safe from any thread; a command is
 * claimed in the store before it is published, so two keeld instances never both send it.
 */
void mq_flush_commands(mq_t *mq);

/*
 * Publish data (at most 512 bytes) to device's app/down/<channel> (QoS 1). 0 when libmosquitto
 * took it (it is then sent, or resent after a broker reconnect), -1 when not. *out_msg_id: the
 * Envelope.msg_id it carries.
 */
int mq_send_channel(mq_t *mq, const char *device, const char *channel, const uint8_t *data, size_t len,
                    uint64_t *out_msg_id);
/* The debug relay fed by this client's debug/up subscription (docs/debug.md "Transport"). */
dbgrelay_t *mq_debug_relay(mq_t *mq);

/* Publish one Debug message to device on debug/down. 0 on success, -1 when not connected or the
 * publish failed (logged). Safe from any thread. */
int mq_publish_debug(mq_t *mq, const char *device, const keel_v1_Debug *d);

/* Encode env (header filled here) and publish it on device's topic t. 0, or -1 (logged). */
int mq_send(mq_t *mq, kproto_topic_t t, const char *device, keel_v1_Envelope *env);

#endif /* KEEL_SERVER_KEELD_MQTT_H */

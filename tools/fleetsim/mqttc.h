/*
 * mqttc: one MQTT 3.1.1 client connection over TLS (OpenSSL), non-blocking, driven by the
 * simulator's epoll loop. Thousands live in one process, so it holds only what a connection
 * needs: the socket, the SSL object (shared SSL_CTX; buffers released while idle), and read
 * and write buffers allocated while data is in flight and freed when drained.
 *
 * Why not libmosquitto: it makes one SSL_CTX per client (each with its own copy of the CA store)
 * and takes its certificate from files; 10,000+ clients want one context, certificates made in
 * memory, and buffers that shrink to nothing while idle. The packets a device needs are few
 * (CONNECT with a will, SUBSCRIBE, PUBLISH QoS 0/1 both ways, PUBACK, PINGREQ), so the client is
 * small and every byte it moves is counted (payload, MQTT and TLS wire bytes).
 *
 * The owner calls mqttc_io() when epoll reports the socket, reads parsed packets through the
 * on_packet callback, and queues packets with mqttc_send(). Any error closes the connection
 * (mqttc_close) and the owner reconnects with back-off.
 */
#ifndef KEEL_FLEETSIM_MQTTC_H
#define KEEL_FLEETSIM_MQTTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define MQTTC_PACKET_MAX 16384u /* largest packet accepted from the broker */
#define MQTTC_WBUF_MAX 262144u  /* queued bytes beyond this: the connection is given up */

typedef enum {
    MQTTC_CLOSED = 0,
    MQTTC_TCP,       /* connect() in progress */
    MQTTC_TLS,       /* TLS handshake */
    MQTTC_OPEN,      /* TLS up: MQTT packets flow */
} mqttc_state_t;

/* MQTT control packet types (high nibble of the first byte). */
enum {
    MQ_CONNECT = 1, MQ_CONNACK = 2, MQ_PUBLISH = 3, MQ_PUBACK = 4, MQ_SUBSCRIBE = 8,
    MQ_SUBACK = 9, MQ_PINGREQ = 12, MQ_PINGRESP = 13, MQ_DISCONNECT = 14,
};

typedef struct mqttc_bytes {
    uint64_t wire_tx, wire_rx;   /* TLS records on the socket (what a modem would send/receive) */
    uint64_t mqtt_tx, mqtt_rx;   /* MQTT packets */
} mqttc_bytes_t;

typedef struct mqttc {
    int fd;
    SSL *ssl;
    uint8_t state;
    uint32_t events;             /* epoll interest registered */
    uint8_t *rbuf, *wbuf;
    uint32_t rlen, rcap, wlen, wcap;
    mqttc_bytes_t bytes;         /* this connection's, and every earlier one's (kept on close) */
} mqttc_t;

/* Called once per complete packet: first byte, the packet body (after the length). Returns false
 * to drop the connection (a protocol error). */
typedef bool (*mqttc_packet_fn)(void *ctx, uint8_t first, const uint8_t *body, uint32_t len);

/* Start a non-blocking connect to 127.0.0.1:port; the SSL object is made from ctx with the
 * device's certificate and key (DER). False: the socket could not be made (errno). */
bool mqttc_connect(mqttc_t *c, int epfd, uint32_t tag, uint16_t port, SSL_CTX *ctx,
                   const uint8_t *cert_der, uint32_t cert_len, const uint8_t *key_der,
                   uint32_t key_len);

/* Drive the connection after an epoll event (or with events 0 after mqttc_send to flush).
 * Returns false when it failed and was closed; *opened is set when the TLS handshake finished
 * in this call. */
bool mqttc_io(mqttc_t *c, int epfd, uint32_t tag, mqttc_packet_fn fn, void *ctx, bool *opened);

/* Queue one encoded packet (any state but CLOSED; written when TLS is up). False: too much is
 * queued (the caller closes). */
bool mqttc_send(mqttc_t *c, const uint8_t *pkt, uint32_t len);

/* Close at once (no DISCONNECT; the broker publishes the will). Buffers are freed. */
void mqttc_close(mqttc_t *c, int epfd);

/* Byte counts including the open connection's TLS bytes so far. */
mqttc_bytes_t mqttc_bytes(const mqttc_t *c);

/* ---- packet encoders: return the length written to out (0 when cap is too small; cap counts
 * a 5-byte header slot, so even a PINGREQ needs 5) ------------------------------------------ */
uint32_t mq_connect(uint8_t *out, uint32_t cap, const char *client_id, uint16_t keepalive_s,
                    const char *will_topic, const uint8_t *will, uint32_t will_len);
uint32_t mq_subscribe(uint8_t *out, uint32_t cap, uint16_t pid, const char *const *topics,
                      unsigned n, uint8_t qos);
uint32_t mq_publish(uint8_t *out, uint32_t cap, const char *topic, const uint8_t *payload,
                    uint32_t len, uint8_t qos, bool retain, uint16_t pid);
uint32_t mq_puback(uint8_t *out, uint32_t cap, uint16_t pid);
uint32_t mq_pingreq(uint8_t *out, uint32_t cap);

#endif /* KEEL_FLEETSIM_MQTTC_H */

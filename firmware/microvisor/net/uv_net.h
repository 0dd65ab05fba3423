/*
 * The microvisor's network: the board's NIC (nic.h) + lwIP (NO_SYS) + MQTT over TLS to the fleet broker.
 *
 * Everything runs in the microvisor service (secure PendSV, priority 0x60), which no app can
 * mask or starve: uv_net_poll() is its one entry, called on every service run (every 10 ms from
 * the tick, and at once when the NIC interrupt reports frames). lwIP is never entered from
 * an interrupt (see firmware/config/lwipopts.h).
 *
 * The network is started only when the boot arguments name a broker port (broker-port=PORT, set
 * by `keel device run --broker PORT`); the broker is at NET_BROKER_ADDR, the address QEMU's
 * restricted user network forwards to the host. Without it, nothing of this runs.
 */
#ifndef KEEL_MICROVISOR_NET_UV_NET_H
#define KEEL_MICROVISOR_NET_UV_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/flash.h"

/** Start the network if configured (boot word broker-port=N); logs why when it does not. */
void uv_net_init(void);

/** Service entry: drain received frames, run lwIP timers and the connection manager. */
void uv_net_poll(void);

/**
 * Queue one log entry for the fleet service (docs/protocol.md LogBatch): level is a
 * keel_log_level_t, source a keel_v1_LogSource (0 app, 1 microvisor). Copied; any context; a
 * no-op while the network is not configured. When the queue is full the oldest entry is dropped
 * and counted (heartbeat, LogBatch.dropped, KEEL_NOTIFY_LOG_DROPPED).
 */
void uv_net_log(uint32_t level, uint32_t source, const char *text, uint32_t len);

/** A microvisor event for the fleet's log (printf-style, truncated to KEEL_LOG_MAX). */
void uv_net_event(uint32_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- internal to firmware/microvisor/net/ ---- */

/** The link to the broker (net_link.c). */
typedef struct net_link_cfg {
    const char *device_id;
    const char *broker_name; /* name the broker's certificate must carry */
    const uint8_t *ca_pem;   /* fleet CA, PEM with its NUL */
    uint32_t ca_len;
    uint32_t broker_ip;      /* IPv4, network byte order */
    uint16_t broker_port;
    const uint8_t *key_pem;  /* the device's key and certificate (PEM with NUL), NULL = none */
    uint32_t key_len;
    const uint8_t *cert_pem;
    uint32_t cert_len;
    bool allow_tls12;        /* fleet setting: TLS 1.2 accepted (default: TLS 1.3 only) */
} net_link_cfg_t;

bool net_link_init(const net_link_cfg_t *cfg);
/** Deepest use of the handler stack (MSP_S) since the network started, in bytes. */
uint32_t uv_net_stack_used(void);
/** Connection manager step; ip_up: the interface has an address. */
void net_link_poll(bool ip_up);

#endif /* KEEL_MICROVISOR_NET_UV_NET_H */

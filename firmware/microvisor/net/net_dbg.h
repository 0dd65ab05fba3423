/*
 * The encrypted debug session over MQTT (docs/debug.md "Transport"): Debug envelopes on
 * debug/down and debug/up, between `keel debug` and the app debugger (uv_dbg.h). Service context
 * only, like the rest of the link.
 */
#ifndef KEEL_MICROVISOR_NET_NET_DBG_H
#define KEEL_MICROVISOR_NET_NET_DBG_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/kproto.h"

/** At link start: the device id (transcripts) and its TLS key (signs DebugAccept), or NULL. */
void net_dbg_init(const char *device_id, const uint8_t *key_pem, uint32_t key_len);

/** A Debug envelope arrived on debug/down. */
void net_dbg_message(const keel_v1_Debug *m);

/** Every service run: flush output, end the session on timeout or when the link is down. */
void net_dbg_poll(uint32_t now, bool link_up);

#endif /* KEEL_MICROVISOR_NET_NET_DBG_H */

/*
 * App channels (keel.h keel_channel_*): the app's own data to and from the cloud over the
 * microvisor's MQTT connection, on keel/v1/<device>/app/up/<name> and .../app/down/<name>
 * (docs/protocol.md, ChannelData).
 *
 * All memory is static and bounded (no malloc), in secure RAM:
 *
 *   channels   KEEL_CHANNEL_MAX (4) open at once, each a name and a generation
 *   send queue NET_CHAN_SENDQ (8) messages of up to KEEL_CHANNEL_DATA_MAX (512) bytes, shared by
 *              every channel, oldest first; full -> keel_channel_send() returns KEEL_EBUSY
 *   receive    NET_CHAN_RECVQ (4) messages per channel; a message for a full channel, or for a
 *              channel the app has not opened, is dropped with a log line (the broker already
 *              has our PUBACK: the cloud side must not rely on unread data being kept)
 *
 * Sending: the oldest queued message is published (QoS 1); when its PUBACK arrives it leaves the
 * queue and KEEL_NOTIFY_CHANNEL_SENT(handle, seq) goes to the app. One message is in flight at
 * a time, so messages reach the cloud in the order they were sent. A connection lost before the
 * PUBACK (lwIP forgets its pending requests) or a PUBACK timeout sends the same message again
 * on the next connection: delivery is at least once, like every QoS 1 topic.
 *
 * Handles carry a generation: a handle of a closed channel (or of a previous app run: every
 * channel is closed when the app starts) is refused with KEEL_EINVAL, even when its slot was
 * reused. A message queued before its channel closed is still delivered (the app was told
 * KEEL_OK), but no SENT notification goes out for it.
 *
 * Contexts: the net_chan_* calls of the NSC side run in the app's context (thread or interrupt);
 * the link side runs in the service. Shared state is touched only in uv_crit_enter() sections.
 * Pointers passed in are already checked by uv_nsc.c (app memory of the given length).
 */
#ifndef KEEL_MICROVISOR_NET_NET_CHAN_H
#define KEEL_MICROVISOR_NET_NET_CHAN_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/kproto.h"

#define NET_CHAN_SENDQ 8u /* messages waiting to be sent, all channels together */
#define NET_CHAN_RECVQ 4u /* received messages waiting per channel */

/* ---- app side (called from uv_nsc.c; KEEL_* statuses) ---- */

/** true when name (NUL-terminated) is 1..KEEL_CHANNEL_NAME_MAX of [A-Za-z0-9._-]. */
bool net_chan_name_ok(const char *name);
int32_t net_chan_open(const char *name, uint32_t *out_handle);
/** data is app memory of len bytes (checked by the caller); copied into the queue. */
int32_t net_chan_send(uint32_t handle, const void *data, uint32_t len, uint32_t *out_seq);
/** buf is writable app memory of cap bytes (checked by the caller). */
int32_t net_chan_recv(uint32_t handle, void *buf, uint32_t cap, uint32_t *out_len);
int32_t net_chan_close(uint32_t handle);
/** The app is being (re)started: every channel is closed and its received messages dropped. */
void net_chan_app_reset(void);

/* ---- link side (net_link.c, service context) ---- */

/** Build the subscription filter keel/v1/<device>/app/down/+; false when it does not fit. */
bool net_chan_init(const char *device_id);
/** The filter net_link subscribes to on every connect. */
const char *net_chan_down_filter(void);
/** A new connection: whatever was in flight on the old one goes again. */
void net_chan_link_up(void);
/** Connected: publish the oldest queued message if none is in flight. */
void net_chan_poll(void);
/** true when topic is this device's app/down/<channel>; the channel is kept for the delivery. */
bool net_chan_match(const char *topic);
/** The decoded ChannelData of the publish net_chan_match() accepted. */
void net_chan_deliver(const keel_v1_ChannelData *cd);

/**
 * Implemented by net_link.c: publish data as an Envelope{channel} on app/up/<channel> (QoS 1);
 * done(arg, err) runs when the PUBACK arrives (ERR_OK) or lwIP gives up waiting (ERR_TIMEOUT).
 * *io_msg_id: the Envelope.msg_id; 0 takes the next of this boot and stores it, so a resend
 * carries the same (boot, msg_id) and the server stores the message once.
 * Returns lwIP's err_t: ERR_OK; ERR_VAL: it can never be sent (does not encode); other (ERR_MEM:
 * no room now, ERR_CONN: the connection is going): not sent now, try again later.
 */
int net_link_publish_app(const char *channel, const uint8_t *data, uint32_t len, uint32_t *io_msg_id,
                         void (*done)(void *arg, int8_t err), void *arg);

#endif /* KEEL_MICROVISOR_NET_NET_CHAN_H */

/*
 * The update download (docs/protocol.md "UpdateOffer / UpdateFetch / UpdateChunk / UpdateStatus"):
 * the device pulls an offered bundle over its MQTT link into the update engine (uv_upd.h), and
 * reports its update state. Service context only, like the rest of the link.
 */
#ifndef KEEL_MICROVISOR_NET_NET_UPD_H
#define KEEL_MICROVISOR_NET_NET_UPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/kproto.h"

/* ---- what net_link.c gives the download ---- */
/** tx envelope, cleared, with the header filled and body_tag set. */
keel_v1_Envelope *net_link_env(pb_size_t body_tag);
/** Publish the tx envelope on t; false when lwIP has no room now (retry later) or it failed. */
bool net_link_send(kproto_topic_t t);

/* ---- what the download gives net_link.c ---- */
void net_upd_offer(const keel_v1_UpdateOffer *o);
void net_upd_chunk(const keel_v1_UpdateChunk *c);
/** keeld acked (this boot's) msg_id: if it is the latest UpdateStatus, it need not be sent again. */
void net_upd_ack(uint32_t msg_id);
/** The link is (again) up: resend fetches in flight and the status. */
void net_upd_connected(void);
/** Every service run while the link is up. */
void net_upd_poll(uint32_t now);
/** COMMAND_KIND_UPDATE_APPLY / _CANCEL: the result status, detail filled (cap bytes). */
keel_v1_CommandStatus net_upd_command(keel_v1_CommandKind kind, char *detail, size_t cap);

#endif /* KEEL_MICROVISOR_NET_NET_UPD_H */

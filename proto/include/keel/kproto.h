/*
 * Device protocol v1 helpers shared by the microvisor, keeld and the keel CLI: the topic table,
 * topic build/parse, and Envelope encode/decode with the checks every receiver must make.
 * Portable C, no malloc, no OS: the message structs come from keel.pb.h (nanopb, generated at
 * build time from proto/keel.proto + keel.options). docs/protocol.md is the prose version.
 */
#ifndef KEEL_PROTO_KPROTO_H
#define KEEL_PROTO_KPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel.pb.h"
#include "keel/err.h"
#include "keel/identity.h"

/* Protocol revision this code implements within v1 (Envelope.version). */
#define KPROTO_REVISION 1u
#define KPROTO_PREFIX "keel/v1/"

/* Longest app channel name in a topic: [A-Za-z0-9._-], 1..KPROTO_CHANNEL_MAX characters. */
#define KPROTO_CHANNEL_MAX 32u
/* Longest topic: prefix + id + "/app/down/" + channel + NUL. */
#define KPROTO_TOPIC_MAX (8u + KIDENT_ID_MAX + 10u + KPROTO_CHANNEL_MAX + 1u)
/* Largest encoded Envelope (nanopb's bound from keel.options). */
#define KPROTO_ENVELOPE_MAX keel_v1_Envelope_size
/* Largest UpdateChunk.data (keel.options): the most an UpdateFetch may ask for. */
#define KPROTO_CHUNK_MAX 2048u

/* The topics of protocol v1, one per suffix under keel/v1/<device>/. persisted: never renumber. */
typedef enum kproto_topic {
    KPROTO_T_HELLO = 0,     /* device -> cloud, QoS 1 */
    KPROTO_T_PRESENCE,      /* device -> cloud, QoS 1, retained, also the last will */
    KPROTO_T_HEARTBEAT,     /* device -> cloud, QoS 0 */
    KPROTO_T_LOGS,          /* device -> cloud, QoS 1, acked */
    KPROTO_T_CRASH,         /* device -> cloud, QoS 1, acked */
    KPROTO_T_RESULT,        /* device -> cloud, QoS 1 */
    KPROTO_T_APP_UP,        /* device -> cloud, QoS 1, app/up/<channel> */
    KPROTO_T_CMD,           /* cloud -> device, QoS 1 */
    KPROTO_T_ACK,           /* cloud -> device, QoS 1 */
    KPROTO_T_APP_DOWN,      /* cloud -> device, QoS 1, app/down/<channel> */
    KPROTO_T_UPDATE_STATUS, /* device -> cloud, QoS 1, update/status */
    KPROTO_T_UPDATE_FETCH,  /* device -> cloud, QoS 1, update/fetch */
    KPROTO_T_UPDATE,        /* cloud -> device, QoS 1, update (UpdateOffer) */
    KPROTO_T_UPDATE_DATA,   /* cloud -> device, QoS 1, update/data (UpdateChunk) */
    KPROTO_T_DEBUG_UP,      /* device -> cloud, QoS 0, debug/up (interactive: see protocol.md) */
    KPROTO_T_DEBUG_DOWN,    /* cloud -> device, QoS 0, debug/down */
    KPROTO_T_COUNT
} kproto_topic_t;

typedef struct kproto_topic_info {
    const char *suffix;     /* after keel/v1/<device>/ ("app/up" is followed by /<channel>) */
    uint8_t qos;
    bool retained;
    bool to_device;         /* direction: cloud -> device */
    bool has_channel;
    pb_size_t body_tag;     /* the Envelope.body member this topic carries (keel_v1_Envelope_*_tag) */
} kproto_topic_info_t;

/* The row for t, or NULL when t is out of range. */
const kproto_topic_info_t *kproto_topic_info(kproto_topic_t t);

/*
 * Build keel/v1/<device>/<suffix>[/<channel>] into out. channel is required (and only allowed)
 * for the app topics. Errors: KERR_INVAL (bad device id, channel or topic), KERR_NOMEM (cap).
 */
kerr_t kproto_topic_build(kproto_topic_t t, const char *device, const char *channel, char *out,
                          size_t cap);

/*
 * Split an incoming topic. On success out_device holds the id (NUL-terminated) and out_channel
 * the channel for app topics ("" otherwise). Errors: KERR_FORMAT (not a v1 topic we know).
 */
kerr_t kproto_topic_parse(const char *topic, char out_device[KIDENT_ID_MAX + 1],
                          kproto_topic_t *out_t, char out_channel[KPROTO_CHANNEL_MAX + 1]);

/* Encode env. Errors: KERR_NOMEM (cap), KERR_INVAL (a field over its keel.options bound). */
kerr_t kproto_encode(const keel_v1_Envelope *env, uint8_t *out, size_t cap, size_t *out_len);

/*
 * Decode untrusted bytes received on topic t. Unknown fields are skipped (forward compatibility).
 * Errors: KERR_FORMAT (not a protobuf Envelope, or a field over its bound), KERR_INVAL (the body
 * is absent, or is not the one topic t carries: a newer sender's unknown body lands here too, and
 * receivers ignore it with a log line). Decodes in place (no 2 KiB copy on the stack): after an
 * error *out holds partial data and must not be used.
 */
kerr_t kproto_decode(kproto_topic_t t, const uint8_t *in, size_t len, keel_v1_Envelope *out);

/*
 * A bare Debug message (debug/up and debug/down carry it inside an Envelope; keeld's REST API
 * carries it alone, docs/api.md). Decode errors: KERR_FORMAT (not a Debug message, a field over
 * its bound), KERR_INVAL (no kind, or session 0).
 */
#define KPROTO_DEBUG_MAX keel_v1_Debug_size
kerr_t kproto_debug_encode(const keel_v1_Debug *d, uint8_t *out, size_t cap, size_t *out_len);
kerr_t kproto_debug_decode(const uint8_t *in, size_t len, keel_v1_Debug *out);
/* The session a Debug message belongs to (0 when it has no kind). */
uint64_t kproto_debug_session(const keel_v1_Debug *d);
/* "open", "accept", "frame", "close" or "unknown". */
const char *kproto_debug_kind_name(const keel_v1_Debug *d);

/*
 * Lowercase hex, the REST API's text form of protocol bytes. encode: out gets 2 * len characters
 * and a NUL (KERR_NOMEM when cap is smaller). decode: an even number of hex digits (either case)
 * and nothing else, else KERR_FORMAT; KERR_NOMEM when more than cap bytes.
 */
kerr_t kproto_hex_encode(const uint8_t *in, size_t len, char *out, size_t cap);
kerr_t kproto_hex_decode(const char *in, uint8_t *out, size_t cap, size_t *out_len);

/* Short names for logs and JSON ("ping", "running", "error", ...); "unknown" when out of range. */
const char *kproto_command_name(keel_v1_CommandKind k);
const char *kproto_status_name(keel_v1_CommandStatus s);
const char *kproto_app_state_name(keel_v1_AppState s);
const char *kproto_level_name(keel_v1_LogLevel l);
const char *kproto_source_name(keel_v1_LogSource s);
/* Update state and result as the LwM2M object names them: "downloading", "integrity_failure". */
const char *kproto_update_state_name(keel_v1_UpdateState s);
const char *kproto_update_result_name(keel_v1_UpdateResult r);

/*
 * Which of n brokers device uses when a fleet is spread over several (docs/protocol.md
 * "Several brokers"): FNV-1a (32 bit) of the id modulo n. keeld publishes to a device on that
 * broker; whoever provisions or simulates devices connects each to it. 0 when n <= 1.
 */
uint32_t kproto_broker_index(const char *device, uint32_t n);

/* Inverse of kproto_command_name; COMMAND_KIND_UNKNOWN for an unknown name. */
keel_v1_CommandKind kproto_command_from_name(const char *name);

#endif /* KEEL_PROTO_KPROTO_H */

/* Device protocol v1: topic table, topic build/parse, Envelope encode/decode. */
#include <string.h>

#include "keel/crash.h"
#include "keel/kproto.h"
#include "pb_decode.h"
#include "pb_encode.h"

/* The crash bytes must fit the nanopb field; keel.options repeats the number (it cannot include C). */
_Static_assert(sizeof(((keel_v1_Crash *)0)->report.bytes) == KCRASH_ENCODED_MAX,
               "keel.options Crash.report max_size must equal KCRASH_ENCODED_MAX");
_Static_assert(sizeof(((keel_v1_UpdateChunk *)0)->data.bytes) == KPROTO_CHUNK_MAX,
               "keel.options UpdateChunk.data max_size must equal KPROTO_CHUNK_MAX");
_Static_assert(sizeof(((keel_v1_LogEntry *)0)->text) == 240 + 1,
               "keel.options LogEntry.text max_size must be KEEL_LOG_MAX + 1");

/* One row per kproto_topic_t, in enum order. docs/protocol.md has the same table in prose. */
static const kproto_topic_info_t topics[KPROTO_T_COUNT] = {
    [KPROTO_T_HELLO] = {"hello", 1, false, false, false, keel_v1_Envelope_hello_tag},
    [KPROTO_T_PRESENCE] = {"presence", 1, true, false, false, keel_v1_Envelope_presence_tag},
    [KPROTO_T_HEARTBEAT] = {"heartbeat", 0, false, false, false, keel_v1_Envelope_heartbeat_tag},
    [KPROTO_T_LOGS] = {"logs", 1, false, false, false, keel_v1_Envelope_logs_tag},
    [KPROTO_T_CRASH] = {"crash", 1, false, false, false, keel_v1_Envelope_crash_tag},
    [KPROTO_T_RESULT] = {"result", 1, false, false, false, keel_v1_Envelope_result_tag},
    [KPROTO_T_APP_UP] = {"app/up", 1, false, false, true, keel_v1_Envelope_channel_tag},
    [KPROTO_T_CMD] = {"cmd", 1, false, true, false, keel_v1_Envelope_command_tag},
    [KPROTO_T_ACK] = {"ack", 1, false, true, false, keel_v1_Envelope_ack_tag},
    [KPROTO_T_APP_DOWN] = {"app/down", 1, false, true, true, keel_v1_Envelope_channel_tag},
    [KPROTO_T_UPDATE_STATUS] = {"update/status", 1, false, false, false,
                                keel_v1_Envelope_update_status_tag},
    [KPROTO_T_UPDATE_FETCH] = {"update/fetch", 1, false, false, false,
                               keel_v1_Envelope_update_fetch_tag},
    [KPROTO_T_UPDATE] = {"update", 1, false, true, false, keel_v1_Envelope_update_offer_tag},
    [KPROTO_T_UPDATE_DATA] = {"update/data", 1, false, true, false,
                              keel_v1_Envelope_update_chunk_tag},
    /* Debug frames are QoS 0: at QoS 1 every exchange waited ~44 ms for the PUBACK's delayed
     * ACK on the device's path (docs/protocol.md); the session's sequence numbers catch a loss,
     * and a broken connection ends the session anyway. */
    [KPROTO_T_DEBUG_UP] = {"debug/up", 0, false, false, false, keel_v1_Envelope_debug_tag},
    [KPROTO_T_DEBUG_DOWN] = {"debug/down", 0, false, true, false, keel_v1_Envelope_debug_tag},
};

const kproto_topic_info_t *kproto_topic_info(kproto_topic_t t)
{
    return ((unsigned)t < KPROTO_T_COUNT) ? &topics[t] : NULL;
}

static bool name_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* Length of a valid channel name, or 0 when it is not one. */
static size_t channel_len(const char *ch)
{
    size_t n = 0;

    while (ch[n] != '\0') {
        if (n == KPROTO_CHANNEL_MAX || !name_char_ok(ch[n])) {
            return 0u;
        }
        n++;
    }
    return n;
}

kerr_t kproto_topic_build(kproto_topic_t t, const char *device, const char *channel, char *out,
                          size_t cap)
{
    const kproto_topic_info_t *ti = kproto_topic_info(t);

    if (ti == NULL || out == NULL || kident_check_id(device) != KERR_OK) {
        return KERR_INVAL;
    }
    if (ti->has_channel != (channel != NULL) || (channel != NULL && channel_len(channel) == 0u)) {
        return KERR_INVAL;
    }
    size_t need = strlen(KPROTO_PREFIX) + strlen(device) + 1u + strlen(ti->suffix) + 1u;
    if (channel != NULL) {
        need += 1u + strlen(channel);
    }
    if (need > cap) {
        return KERR_NOMEM;
    }
    strcpy(out, KPROTO_PREFIX);
    strcat(out, device);
    strcat(out, "/");
    strcat(out, ti->suffix);
    if (channel != NULL) {
        strcat(out, "/");
        strcat(out, channel);
    }
    return KERR_OK;
}

kerr_t kproto_topic_parse(const char *topic, char out_device[KIDENT_ID_MAX + 1],
                          kproto_topic_t *out_t, char out_channel[KPROTO_CHANNEL_MAX + 1])
{
    size_t plen = strlen(KPROTO_PREFIX);

    if (topic == NULL || strncmp(topic, KPROTO_PREFIX, plen) != 0) {
        return KERR_FORMAT;
    }
    const char *dev = topic + plen;
    const char *slash = strchr(dev, '/');
    if (slash == NULL || slash == dev || (size_t)(slash - dev) > KIDENT_ID_MAX) {
        return KERR_FORMAT;
    }
    char id[KIDENT_ID_MAX + 1];
    memcpy(id, dev, (size_t)(slash - dev));
    id[slash - dev] = '\0';
    if (kident_check_id(id) != KERR_OK) {
        return KERR_FORMAT;
    }
    const char *rest = slash + 1;
    for (unsigned t = 0; t < KPROTO_T_COUNT; t++) {
        size_t sl = strlen(topics[t].suffix);
        if (strncmp(rest, topics[t].suffix, sl) != 0) {
            continue;
        }
        const char *tail = rest + sl;
        if (!topics[t].has_channel && *tail == '\0') {
            strcpy(out_device, id);
            out_channel[0] = '\0';
            *out_t = (kproto_topic_t)t;
            return KERR_OK;
        }
        if (topics[t].has_channel && *tail == '/' && channel_len(tail + 1) != 0u) {
            strcpy(out_device, id);
            strcpy(out_channel, tail + 1);
            *out_t = (kproto_topic_t)t;
            return KERR_OK;
        }
    }
    return KERR_FORMAT;
}

kerr_t kproto_encode(const keel_v1_Envelope *env, uint8_t *out, size_t cap, size_t *out_len)
{
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);

    if (!pb_encode(&os, keel_v1_Envelope_fields, env)) {
        /* nanopb reports both "buffer full" and "field too long" as a failed write. */
        return (os.bytes_written >= cap) ? KERR_NOMEM : KERR_INVAL;
    }
    *out_len = os.bytes_written;
    return KERR_OK;
}

kerr_t kproto_decode(kproto_topic_t t, const uint8_t *in, size_t len, keel_v1_Envelope *out)
{
    const kproto_topic_info_t *ti = kproto_topic_info(t);

    if (ti == NULL || out == NULL || (in == NULL && len != 0u)) {
        return KERR_INVAL;
    }
    /* Decoded in place: an Envelope is over 2 KiB, too big for a second copy on a device stack. */
    pb_istream_t is = pb_istream_from_buffer(in, len);
    if (!pb_decode(&is, keel_v1_Envelope_fields, out)) {
        return KERR_FORMAT;
    }
    return out->which_body == ti->body_tag ? KERR_OK : KERR_INVAL;
}

kerr_t kproto_debug_encode(const keel_v1_Debug *d, uint8_t *out, size_t cap, size_t *out_len)
{
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);

    if (d == NULL || out_len == NULL) {
        return KERR_INVAL;
    }
    if (!pb_encode(&os, keel_v1_Debug_fields, d)) {
        return (os.bytes_written >= cap) ? KERR_NOMEM : KERR_INVAL;
    }
    *out_len = os.bytes_written;
    return KERR_OK;
}

kerr_t kproto_debug_decode(const uint8_t *in, size_t len, keel_v1_Debug *out)
{
    if (out == NULL || (in == NULL && len != 0u)) {
        return KERR_INVAL;
    }
    pb_istream_t is = pb_istream_from_buffer(in, len);
    if (!pb_decode(&is, keel_v1_Debug_fields, out)) {
        return KERR_FORMAT;
    }
    return kproto_debug_session(out) != 0u ? KERR_OK : KERR_INVAL;
}

uint64_t kproto_debug_session(const keel_v1_Debug *d)
{
    switch (d->which_kind) {
    case keel_v1_Debug_open_tag: return d->kind.open.session;
    case keel_v1_Debug_accept_tag: return d->kind.accept.session;
    case keel_v1_Debug_frame_tag: return d->kind.frame.session;
    case keel_v1_Debug_close_tag: return d->kind.close.session;
    default: return 0;
    }
}

kerr_t kproto_hex_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";

    if ((in == NULL && len != 0u) || out == NULL) {
        return KERR_INVAL;
    }
    if (cap < 2u * len + 1u) {
        return KERR_NOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        out[2u * i] = digits[in[i] >> 4];
        out[2u * i + 1u] = digits[in[i] & 0xFu];
    }
    out[2u * len] = '\0';
    return KERR_OK;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

kerr_t kproto_hex_decode(const char *in, uint8_t *out, size_t cap, size_t *out_len)
{
    if (in == NULL || out_len == NULL) {
        return KERR_INVAL;
    }
    size_t n = strlen(in);
    if (n % 2u != 0u) {
        return KERR_FORMAT;
    }
    if (n / 2u > cap) {
        return KERR_NOMEM;
    }
    for (size_t i = 0; i < n / 2u; i++) {
        int hi = hex_digit(in[2u * i]), lo = hex_digit(in[2u * i + 1u]);
        if (hi < 0 || lo < 0) {
            return KERR_FORMAT;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = n / 2u;
    return KERR_OK;
}

static const char *name_of(const char *const *names, size_t count, unsigned v)
{
    return (v < count && names[v] != NULL) ? names[v] : "unknown";
}

#define NAME_OF(tbl, v) name_of((tbl), sizeof(tbl) / sizeof((tbl)[0]), (unsigned)(v))

static const char *const command_names[] = {NULL, "ping", "restart", "reboot", "update_apply",
                                            "update_cancel"};
static const char *const status_names[] = {NULL, "ok", "unsupported", "failed", "rejected"};
static const char *const state_names[] = {"unknown", "none",   "running",
                                          "backoff", "failed", "updating"};
static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const source_names[] = {"app", "microvisor"};
static const char *const debug_kind_names[] = {NULL, "open", "accept", "frame", "close"};
/* LwM2M Firmware Update object /5/0/3 and /5/0/5, in its own words. */
static const char *const update_state_names[] = {"idle", "downloading", "downloaded", "updating"};
static const char *const update_result_names[] = {
    "initial",   "success",     "not_enough_flash",    "out_of_ram",    "connection_lost",
    "integrity_failure", "unsupported_package", "invalid_uri", "update_failed",
    "unsupported_protocol", "inconclusive"};

const char *kproto_command_name(keel_v1_CommandKind k) { return NAME_OF(command_names, k); }
const char *kproto_status_name(keel_v1_CommandStatus s) { return NAME_OF(status_names, s); }
const char *kproto_app_state_name(keel_v1_AppState s) { return NAME_OF(state_names, s); }
const char *kproto_level_name(keel_v1_LogLevel l) { return NAME_OF(level_names, l); }
const char *kproto_source_name(keel_v1_LogSource s) { return NAME_OF(source_names, s); }
const char *kproto_debug_kind_name(const keel_v1_Debug *d) { return NAME_OF(debug_kind_names, d->which_kind); }
const char *kproto_update_state_name(keel_v1_UpdateState s)
{
    return NAME_OF(update_state_names, s);
}
const char *kproto_update_result_name(keel_v1_UpdateResult r)
{
    return NAME_OF(update_result_names, r);
}

keel_v1_CommandKind kproto_command_from_name(const char *name)
{
    for (unsigned i = 1; name != NULL && i < sizeof(command_names) / sizeof(command_names[0]); i++) {
        if (strcmp(name, command_names[i]) == 0) {
            return (keel_v1_CommandKind)i;
        }
    }
    return keel_v1_CommandKind_COMMAND_KIND_UNKNOWN;
}

uint32_t kproto_broker_index(const char *device, uint32_t n)
{
    uint32_t h = 2166136261u;

    if (n <= 1u) {
        return 0u;
    }
    for (const unsigned char *p = (const unsigned char *)device; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h % n;
}

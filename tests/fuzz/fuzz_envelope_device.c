/*
 * Protocol envelopes on the topics a device subscribes to (firmware/microvisor/net/net_link.c
 * handle_incoming): commands, acks, update offers and chunks, debug messages, app channel data.
 * The checks after decoding are the ones the device's handlers rely on. Input: see fz_envelope.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "keel/kproto.h"

static const kproto_topic_t topics[] = {KPROTO_T_CMD, KPROTO_T_ACK, KPROTO_T_UPDATE, KPROTO_T_UPDATE_DATA,
                                        KPROTO_T_DEBUG_DOWN, KPROTO_T_APP_DOWN};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kproto_topic_t t;
    const keel_v1_Envelope *env = fz_envelope(topics, sizeof(topics) / sizeof(topics[0]), data, size, &t);
    if (env == NULL) {
        return 0;
    }
    switch (t) {
    case KPROTO_T_CMD:
        (void)kproto_command_name(env->body.command.kind); /* logged by name */
        break;
    case KPROTO_T_UPDATE_DATA:
        if (env->body.update_chunk.data.size > KPROTO_CHUNK_MAX) {
            abort();
        }
        break;
    case KPROTO_T_APP_DOWN:
        if (env->body.channel.data.size > sizeof(env->body.channel.data.bytes)) {
            abort();
        }
        break;
    case KPROTO_T_DEBUG_DOWN:
        (void)kproto_debug_kind_name(&env->body.debug);
        (void)kproto_debug_session(&env->body.debug);
        break;
    default:
        break;
    }
    return 0;
}

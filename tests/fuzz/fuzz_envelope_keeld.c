/*
 * Protocol envelopes on the topics keeld subscribes to (server/keeld/mqtt.c on_message): hello,
 * presence, heartbeats, log batches, crash reports, command results, update status and fetch, app
 * channel data and debug/up. What keeld does next with the bytes it stores is checked too: log
 * texts are strings within bounds, a crash report decodes and formats (kcrash), names render.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "keel/crash.h"
#include "keel/kproto.h"

static const kproto_topic_t topics[] = {KPROTO_T_HELLO, KPROTO_T_PRESENCE, KPROTO_T_HEARTBEAT, KPROTO_T_LOGS,
                                        KPROTO_T_CRASH, KPROTO_T_RESULT, KPROTO_T_APP_UP,
                                        KPROTO_T_UPDATE_STATUS, KPROTO_T_UPDATE_FETCH, KPROTO_T_DEBUG_UP};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kproto_topic_t t;
    const keel_v1_Envelope *env = fz_envelope(topics, sizeof(topics) / sizeof(topics[0]), data, size, &t);
    if (env == NULL) {
        return 0;
    }
    static char text[4096];
    switch (t) {
    case KPROTO_T_HELLO:
        (void)kproto_app_state_name(env->body.hello.app_state);
        if (env->body.hello.regions_count > 4 || env->body.hello.commands_count > 8 ||
            strnlen(env->body.hello.board, sizeof(env->body.hello.board)) == sizeof(env->body.hello.board)) {
            abort();
        }
        break;
    case KPROTO_T_LOGS:
        if (env->body.logs.entries_count > 8) {
            abort();
        }
        for (pb_size_t i = 0; i < env->body.logs.entries_count; i++) {
            const keel_v1_LogEntry *e = &env->body.logs.entries[i];
            if (strnlen(e->text, sizeof(e->text)) == sizeof(e->text)) {
                abort(); /* keeld stores it as a C string */
            }
            (void)kproto_level_name(e->level);
            (void)kproto_source_name(e->source);
        }
        break;
    case KPROTO_T_CRASH: {
        kcrash_report_t r;
        if (env->body.crash.report.size > sizeof(env->body.crash.report.bytes)) {
            abort();
        }
        if (kcrash_decode(env->body.crash.report.bytes, env->body.crash.report.size, &r) == KERR_OK) {
            (void)kcrash_format(&r, "", text, sizeof(text));
        }
        break;
    }
    case KPROTO_T_RESULT:
        (void)kproto_status_name(env->body.result.status);
        break;
    case KPROTO_T_UPDATE_STATUS:
        (void)kproto_update_state_name(env->body.update_status.state);
        (void)kproto_update_result_name(env->body.update_status.result);
        break;
    case KPROTO_T_DEBUG_UP:
        (void)kproto_debug_kind_name(&env->body.debug);
        break;
    default:
        break;
    }
    return 0;
}

/*
 * keeld's MQTT ingest (server/keeld/mqtt.c on_message) with everything behind it real: the SQLite
 * store, OTA (update status and fetch handling), the debug relay. What a device (or anyone holding
 * a device's credentials) can send keeld.
 * Input: byte 0 chooses the topic (one of the device -> cloud topics, or: the rest starts with a
 * topic string of its own up to the first newline), byte 1 the device (dev-1 .. dev-4), then the
 * payload. keeld's state carries over from one input to the next, as it does in service.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/kproto.h"
#include "keeld_fixture.h"

static const kproto_topic_t topics[] = {KPROTO_T_HELLO, KPROTO_T_PRESENCE, KPROTO_T_HEARTBEAT, KPROTO_T_LOGS,
                                        KPROTO_T_CRASH, KPROTO_T_RESULT, KPROTO_T_APP_UP,
                                        KPROTO_T_UPDATE_STATUS, KPROTO_T_UPDATE_FETCH, KPROTO_T_DEBUG_UP};
#define NTOPICS (sizeof(topics) / sizeof(topics[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_keeld_start();
    if (size < 2) {
        return 0;
    }
    char topic[256], dev[8];
    const uint8_t *p = data + 2;
    size_t len = size - 2;
    unsigned sel = data[0] % (NTOPICS + 1);
    snprintf(dev, sizeof(dev), "dev-%u", 1u + data[1] % 4u);
    if (sel < NTOPICS) {
        kproto_topic_t t = topics[sel];
        if (kproto_topic_build(t, dev, kproto_topic_info(t)->has_channel ? "ch" : NULL, topic, sizeof(topic)) !=
            KERR_OK) {
            abort();
        }
    } else {
        const uint8_t *nl = memchr(p, '\n', len < sizeof(topic) - 1 ? len : sizeof(topic) - 1);
        size_t tl = nl ? (size_t)(nl - p) : 0;
        memcpy(topic, p, tl);
        topic[tl] = '\0';
        if (strlen(topic) != tl) {
            return 0; /* MQTT topics are UTF-8 without NUL: the broker refuses anything else */
        }
        p += nl ? tl + 1 : 0;
        len -= nl ? tl + 1 : 0;
    }
    fz_keeld_mqtt(topic, p, len);
    return 0;
}

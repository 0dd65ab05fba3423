/*
 * Device protocol v1 helpers: golden bytes (the wire format must never drift: devices in the field
 * decode exactly these), topic build/parse, and the checks on untrusted input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/kproto.h"

static int failures, checks;

#define CHECK(cond)                                                             \
    do {                                                                        \
        checks++;                                                               \
        if (!(cond)) {                                                          \
            failures++;                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                       \
    } while (0)

/* Envelope{version 1, msg_id 2, boot 3, time_ms 4, command{id 7, kind PING}}. */
static const uint8_t golden_ping[] = {0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x04,
                                      0x82, 0x01, 0x04, 0x08, 0x07, 0x10, 0x01};

static void test_golden(void)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    uint8_t buf[KPROTO_ENVELOPE_MAX];
    size_t len = 0;

    env.version = 1;
    env.msg_id = 2;
    env.boot = 3;
    env.time_ms = 4;
    env.which_body = keel_v1_Envelope_command_tag;
    env.body.command.id = 7;
    env.body.command.kind = keel_v1_CommandKind_COMMAND_KIND_PING;
    CHECK(kproto_encode(&env, buf, sizeof(buf), &len) == KERR_OK);
    CHECK(len == sizeof(golden_ping) && memcmp(buf, golden_ping, len) == 0);
    CHECK(kproto_encode(&env, buf, 5, &len) == KERR_NOMEM);

    keel_v1_Envelope out;
    CHECK(kproto_decode(KPROTO_T_CMD, golden_ping, sizeof(golden_ping), &out) == KERR_OK);
    CHECK(out.msg_id == 2 && out.boot == 3 && out.body.command.id == 7);
    /* The right bytes on the wrong topic, truncated bytes, garbage: all refused. */
    CHECK(kproto_decode(KPROTO_T_HELLO, golden_ping, sizeof(golden_ping), &out) == KERR_INVAL);
    CHECK(kproto_decode(KPROTO_T_CMD, golden_ping, sizeof(golden_ping) - 1, &out) == KERR_FORMAT);
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
    CHECK(kproto_decode(KPROTO_T_CMD, garbage, sizeof(garbage), &out) == KERR_FORMAT);
    CHECK(kproto_decode(KPROTO_T_CMD, NULL, 0, &out) == KERR_INVAL); /* no body */

    /* A newer sender's unknown field (99, varint) is skipped: forward compatibility. */
    uint8_t newer[sizeof(golden_ping) + 3];
    memcpy(newer, golden_ping, sizeof(golden_ping));
    newer[sizeof(golden_ping)] = 0x98;
    newer[sizeof(golden_ping) + 1] = 0x06;
    newer[sizeof(golden_ping) + 2] = 0x01;
    CHECK(kproto_decode(KPROTO_T_CMD, newer, sizeof(newer), &out) == KERR_OK && out.body.command.id == 7);
    /* ... and so is an unknown enum value. */
    uint8_t kind9[sizeof(golden_ping)];
    memcpy(kind9, golden_ping, sizeof(kind9));
    kind9[sizeof(kind9) - 1] = 9;
    CHECK(kproto_decode(KPROTO_T_CMD, kind9, sizeof(kind9), &out) == KERR_OK);
    CHECK(strcmp(kproto_command_name(out.body.command.kind), "unknown") == 0);
}

static void test_bounds(void)
{
    /* Envelope{logs{entries{text: 241 x 'a'}}}: one byte over KEEL_LOG_MAX must not decode. */
    uint8_t msg[300];
    size_t n = 0;
    msg[n++] = 0x6a;                  /* field 13 (logs), length-delimited */
    msg[n++] = 0xf7;                  /* 247 = 3 + 244 */
    msg[n++] = 0x01;
    msg[n++] = 0x0a;                  /* LogBatch.entries */
    msg[n++] = 0xf4;                  /* 244 = 3 + 241 */
    msg[n++] = 0x01;
    msg[n++] = 0x22;                  /* LogEntry.text */
    msg[n++] = 0xf1;                  /* 241 */
    msg[n++] = 0x01;
    memset(msg + n, 'a', 241);
    n += 241;
    keel_v1_Envelope out;
    CHECK(kproto_decode(KPROTO_T_LOGS, msg, n, &out) == KERR_FORMAT);
    /* 240 characters fit (lengths one smaller). */
    msg[1] = 0xf6;
    msg[4] = 0xf3;
    msg[7] = 0xf0;
    CHECK(kproto_decode(KPROTO_T_LOGS, msg, n - 1, &out) == KERR_OK);
    CHECK(strlen(out.body.logs.entries[0].text) == 240);
}

static void test_topics(void)
{
    char topic[KPROTO_TOPIC_MAX], dev[KIDENT_ID_MAX + 1], ch[KPROTO_CHANNEL_MAX + 1];
    kproto_topic_t t;

    CHECK(kproto_topic_build(KPROTO_T_HELLO, "dev-1", NULL, topic, sizeof(topic)) == KERR_OK);
    CHECK(strcmp(topic, "keel/v1/dev-1/hello") == 0);
    CHECK(kproto_topic_build(KPROTO_T_APP_UP, "dev-1", "temp", topic, sizeof(topic)) == KERR_OK);
    CHECK(strcmp(topic, "keel/v1/dev-1/app/up/temp") == 0);
    CHECK(kproto_topic_parse(topic, dev, &t, ch) == KERR_OK);
    CHECK(t == KPROTO_T_APP_UP && strcmp(dev, "dev-1") == 0 && strcmp(ch, "temp") == 0);
    CHECK(kproto_topic_build(KPROTO_T_APP_UP, "dev-1", NULL, topic, sizeof(topic)) == KERR_INVAL);
    CHECK(kproto_topic_build(KPROTO_T_CMD, "dev-1", "x", topic, sizeof(topic)) == KERR_INVAL);
    CHECK(kproto_topic_build(KPROTO_T_CMD, "dev+1", NULL, topic, sizeof(topic)) == KERR_INVAL);
    CHECK(kproto_topic_build(KPROTO_T_CMD, "dev-1", NULL, topic, 10) == KERR_NOMEM);
    CHECK(kproto_topic_build(KPROTO_T_COUNT, "dev-1", NULL, topic, sizeof(topic)) == KERR_INVAL);

    /* The longest valid topic fits KPROTO_TOPIC_MAX. */
    char id[KIDENT_ID_MAX + 1], chan[KPROTO_CHANNEL_MAX + 1];
    memset(id, 'd', KIDENT_ID_MAX);
    id[KIDENT_ID_MAX] = '\0';
    memset(chan, 'c', KPROTO_CHANNEL_MAX);
    chan[KPROTO_CHANNEL_MAX] = '\0';
    CHECK(kproto_topic_build(KPROTO_T_APP_DOWN, id, chan, topic, sizeof(topic)) == KERR_OK);

    static const char *const bad[] = {
        "keel/v2/dev-1/hello", "keel/v1//hello", "keel/v1/dev-1/hello/x", "keel/v1/dev-1/helloo",
        "keel/v1/dev-1/app/up", "keel/v1/dev-1/app/up/", "keel/v1/dev-1/app/up/a/b",
        "keel/v1/dev+1/hello", "keel/v1/dev-1", "keel/v1/dev-1/", "", "keel/v1/dev-1/app/up/a+b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(kproto_topic_parse(bad[i], dev, &t, ch) == KERR_FORMAT);
    }
    /* Every table row round-trips. */
    for (unsigned i = 0; i < KPROTO_T_COUNT; i++) {
        const kproto_topic_info_t *ti = kproto_topic_info((kproto_topic_t)i);
        CHECK(kproto_topic_build((kproto_topic_t)i, "d", ti->has_channel ? "c" : NULL, topic,
                                 sizeof(topic)) == KERR_OK);
        CHECK(kproto_topic_parse(topic, dev, &t, ch) == KERR_OK && t == (kproto_topic_t)i);
    }
}

/*
 * Untrusted bytes never crash the decoder (run under ASan/UBSan): random buffers, and valid
 * messages with random bytes changed or cut short. Deterministic (fixed seed) so a failure repeats.
 */
static uint32_t rng = 0x12345678u;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void test_fuzz_smoke(void)
{
    keel_v1_Envelope env = keel_v1_Envelope_init_zero;
    uint8_t valid[KPROTO_ENVELOPE_MAX], buf[KPROTO_ENVELOPE_MAX];
    size_t vlen = 0;
    keel_v1_Envelope *out = malloc(sizeof(*out));

    env.which_body = keel_v1_Envelope_hello_tag;
    env.body.hello.regions_count = 4;
    env.body.hello.commands_count = 3;
    snprintf(env.body.hello.board, sizeof(env.body.hello.board), "an505");
    CHECK(kproto_encode(&env, valid, sizeof(valid), &vlen) == KERR_OK);
    int ok = 0;
    for (int i = 0; i < 50000; i++) {
        size_t len;
        if (i % 2 == 0) {
            len = next_rand() % sizeof(buf);
            for (size_t k = 0; k < len; k++) {
                buf[k] = (uint8_t)next_rand();
            }
        } else {
            memcpy(buf, valid, vlen);
            len = vlen - (next_rand() % 4 == 0 ? next_rand() % vlen : 0);
            for (int k = 0, n = (int)(next_rand() % 4) + 1; k < n; k++) {
                buf[next_rand() % vlen] = (uint8_t)next_rand();
            }
        }
        kerr_t e = kproto_decode((kproto_topic_t)(next_rand() % KPROTO_T_COUNT), buf, len, out);
        ok += e == KERR_OK;
        if (e != KERR_OK && e != KERR_FORMAT && e != KERR_INVAL) {
            CHECK(!"unexpected error code");
        }
    }
    CHECK(ok > 0); /* some mutations stay valid: the loop really reaches the decoder's success path */
    free(out);
}

/* The REST form of debug messages: a bare Debug (golden bytes), hex both ways, refusals. */
static void test_debug_hex(void)
{
    /* Debug{close{session 0x0102, reason "x"}} = field 4 (len 6) { field 1 varint, field 2 "x" } */
    static const uint8_t golden_close[] = {0x22, 0x06, 0x08, 0x82, 0x02, 0x12, 0x01, 0x78};
    keel_v1_Debug d = keel_v1_Debug_init_zero;
    uint8_t buf[KPROTO_DEBUG_MAX];
    size_t len = 0;

    d.which_kind = keel_v1_Debug_close_tag;
    d.kind.close.session = 0x102;
    snprintf(d.kind.close.reason, sizeof(d.kind.close.reason), "x");
    CHECK(kproto_debug_encode(&d, buf, sizeof(buf), &len) == KERR_OK);
    CHECK(len == sizeof(golden_close) && memcmp(buf, golden_close, len) == 0);
    CHECK(strcmp(kproto_debug_kind_name(&d), "close") == 0);

    char hex[2 * KPROTO_DEBUG_MAX + 1];
    CHECK(kproto_hex_encode(buf, len, hex, sizeof(hex)) == KERR_OK);
    CHECK(strcmp(hex, "2206088202120178") == 0);
    CHECK(kproto_hex_encode(buf, len, hex, 2 * len) == KERR_NOMEM);

    keel_v1_Debug back = keel_v1_Debug_init_zero;
    uint8_t raw[KPROTO_DEBUG_MAX];
    size_t rlen = 0;
    CHECK(kproto_hex_decode("2206088202120178", raw, sizeof(raw), &rlen) == KERR_OK);
    CHECK(kproto_debug_decode(raw, rlen, &back) == KERR_OK);
    CHECK(kproto_debug_session(&back) == 0x102 && strcmp(back.kind.close.reason, "x") == 0);
    CHECK(kproto_hex_decode("22060882021201", raw, sizeof(raw), &rlen) == KERR_OK);
    CHECK(kproto_debug_decode(raw, rlen, &back) == KERR_FORMAT); /* truncated */

    /* Hex refusals: odd length, a non-digit, too long for the buffer; upper case is fine. */
    CHECK(kproto_hex_decode("abc", raw, sizeof(raw), &rlen) == KERR_FORMAT);
    CHECK(kproto_hex_decode("zz", raw, sizeof(raw), &rlen) == KERR_FORMAT);
    CHECK(kproto_hex_decode("0a 0", raw, sizeof(raw), &rlen) == KERR_FORMAT);
    CHECK(kproto_hex_decode("00112233", raw, 3, &rlen) == KERR_NOMEM);
    CHECK(kproto_hex_decode("AbCd", raw, sizeof(raw), &rlen) == KERR_OK && rlen == 2 &&
          raw[0] == 0xAB && raw[1] == 0xCD);

    /* Session 0 or no kind at all: not a debug message anyone can route. */
    d.kind.close.session = 0;
    CHECK(kproto_debug_encode(&d, buf, sizeof(buf), &len) == KERR_OK);
    CHECK(kproto_debug_decode(buf, len, &back) == KERR_INVAL);
    CHECK(kproto_debug_decode(buf, 0, &back) == KERR_INVAL);
    /* A frame at its largest fits KPROTO_DEBUG_MAX; one byte more sealed is refused. */
    d.which_kind = keel_v1_Debug_frame_tag;
    d.kind.frame.session = UINT64_MAX;
    d.kind.frame.seq = UINT32_MAX;
    d.kind.frame.sealed.size = sizeof(d.kind.frame.sealed.bytes);
    CHECK(kproto_debug_encode(&d, buf, sizeof(buf), &len) == KERR_OK && len <= KPROTO_DEBUG_MAX);
    CHECK(kproto_debug_decode(buf, len, &back) == KERR_OK && back.kind.frame.seq == UINT32_MAX);
    buf[len - 1u - sizeof(d.kind.frame.sealed.bytes) - 1u] += 1u; /* sealed's length byte (2nd of 2) */
    CHECK(kproto_debug_decode(buf, len, &back) == KERR_FORMAT);
}

/* The broker of a device: fixed values (every simulator and keeld must agree forever), spread. */
static void test_broker_index(void)
{
    /* FNV-1a 32 of "dev-1" is 0x181c8e76 (reference value computed independently, in Python). */
    CHECK(kproto_broker_index("dev-1", 0) == 0 && kproto_broker_index("dev-1", 1) == 0);
    CHECK(kproto_broker_index("dev-1", 6) == 0x181c8e76u % 6u);
    CHECK(kproto_broker_index("", 6) == 2166136261u % 6u);
    unsigned count[6] = {0};
    char id[32];
    for (int i = 0; i < 60000; i++) {
        snprintf(id, sizeof(id), "sim-%06d", i);
        unsigned b = kproto_broker_index(id, 6);
        CHECK(b < 6);
        count[b < 6 ? b : 0]++;
    }
    for (int b = 0; b < 6; b++) {
        CHECK(count[b] > 9000 && count[b] < 11000); /* about 10,000 each */
    }
}

int main(void)
{
    test_fuzz_smoke();
    test_broker_index();
    test_golden();
    test_bounds();
    test_topics();
    test_debug_hex();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}

/*
 * Writes the seed corpora of the fuzz targets (seeds/<target>/<name>), generated from the encoders
 * the unit tests check against golden bytes, so seeds follow the formats without committed binaries.
 * Usage: fuzz_seeds <out dir> <recorded gdb session log (tests/unit/test_rsp_gdb13_qemu.log)>
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "keel/app_image.h"
#include "keel/crash.h"
#include "keel/delta.h"
#include "keel/identity.h"
#include "keel/kproto.h"
#include "keel/upd_journal.h"
#include "net_rec.h"

static const char *out_dir;
static int failures;

static void put(const char *target, const char *name, uint8_t sel, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", out_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        failures++;
        return;
    }
    snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(&sel, 1, 1, f) != 1 || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "fuzz_seeds: cannot write %s\n", path);
        failures++;
    }
}

static void must(kerr_t err, const char *what)
{
    if (err != KERR_OK) {
        fprintf(stderr, "fuzz_seeds: %s: %s\n", what, kerr_str(err));
        failures++;
    }
}

static void bundles(void)
{
    static uint8_t b[KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE];
    const struct { uint32_t content, seed, version, counter; } v[] = {
        {40000, 3, 0x01010000, 1}, {8192 * 12, 5, 0x02000000, 2}, {1, 9, 0x01000001, 0}, {0, 1, 1, 0}};
    for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint32_t n = fz_bundle(b, sizeof(b), v[i].content, v[i].seed, v[i].version, v[i].counter);
        if (n == 0 && v[i].content != 0) {
            must(KERR_INVAL, "bundle");
        }
        if (n == 0) {
            continue;
        }
        char name[32];
        static const uint8_t sels[] = {0, 14, 15}; /* decode, inspect, stage (fuzz_bundle.c) */
        for (unsigned k = 0; k < sizeof(sels); k++) {
            snprintf(name, sizeof(name), "bundle-%u-mode%u", i, sels[k]);
            put("bundle", name, sels[k], b, n);
        }
    }
}

/* Envelope seeds: selector byte = index in the target's topic table, then a 0 topic length. */
static void envelope(const char *target, unsigned idx, const char *name, keel_v1_Envelope *env)
{
    uint8_t buf[KPROTO_ENVELOPE_MAX + 1];
    size_t len = 0;
    env->version = 1;
    env->msg_id = 2;
    env->boot = 3;
    env->time_ms = 4;
    must(kproto_encode(env, buf + 1, sizeof(buf) - 1, &len), name);
    buf[0] = 0; /* no topic string */
    put(target, name, (uint8_t)idx, buf, len + 1);
    if (strcmp(target, "envelope_keeld") == 0) {
        /* keeld_mqtt: the same topic table, then the device byte (dev-1), then the payload. */
        put("keeld_mqtt", name, (uint8_t)idx, buf, len + 1);
    }
}

/* keeld_http: method index (GET POST PUT PATCH DELETE HEAD), flags 0, target, newline, body. */
static void http(const char *name, uint8_t method, const char *target, const char *body)
{
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "%c%s\n%s", 0, target, body);
    put("keeld_http", name, method, buf, (size_t)n);
}

static void http_requests(void)
{
    http("health", 0, "/v1/health", "");
    http("devices", 0, "/v1/devices", "");
    http("device", 0, "/v1/devices/dev-1", "");
    http("device-tags", 3, "/v1/devices/dev-1", "{\"tags\":[\"lab\",\"eu\"]}");
    http("logs", 0, "/v1/logs?device=dev-1&limit=10&after=0&since=0&until=99999999999", "");
    http("crashes", 0, "/v1/crashes?device=dev-1&limit=5", "");
    http("crash", 0, "/v1/crashes/1", "");
    http("command", 1, "/v1/commands", "{\"device\":\"dev-1\",\"kind\":\"ping\"}");
    http("command-get", 0, "/v1/commands/1", "");
    http("tokens", 0, "/v1/tokens", "");
    http("token-new", 1, "/v1/tokens", "{\"name\":\"ci\"}");
    http("channel-post", 1, "/v1/devices/dev-1/channels/ch", "{\"text\":\"hi\"}");
    http("channel-hex", 1, "/v1/devices/dev-1/channels/ch", "{\"hex\":\"00ff10\"}");
    http("channel-get", 0, "/v1/devices/dev-1/channels/ch?after=0&limit=5&direction=up&wait=0", "");
    http("elfs", 0, "/v1/elfs", "");
    http("elf", 2, "/v1/elfs/0000000000000000000000000000000000000000000000000000000000000000", "\x7f" "ELF");
    http("bundles", 0, "/v1/bundles", "");
    http("bundle", 0, "/v1/bundles/1", "");
    http("deploy", 1, "/v1/deployments",
         "{\"bundle\":1,\"device\":\"dev-1\",\"force_after_s\":30}");
    http("deploy-tag", 1, "/v1/deployments", "{\"bundle\":\"v1.2.3\",\"tag\":\"lab\"}");
    http("deployments", 0, "/v1/deployments?after=0", "");
    http("deployment", 0, "/v1/deployments/1", "");
    http("force", 1, "/v1/deployments/1/force", "");
    http("debug", 1, "/v1/devices/dev-1/debug", "{\"debug\":\"1a0408011001\"}");
}

static void crash_sample(kcrash_report_t *r, uint16_t stack)
{
    memset(r, 0, sizeof(*r));
    r->reason = KCRASH_SECUREFAULT;
    r->pc = 0x00201234;
    r->lr = 0x00200ff1;
    r->xpsr = 0x01000003;
    r->sfsr = 0x48;
    r->cfsr = 0x00020000;
    r->stack_addr = 0x2003ff00;
    r->stack_len = stack;
    for (uint16_t i = 0; i < stack; i++) {
        r->stack[i] = (uint8_t)(i * 3u);
    }
}

static void envelopes(void)
{
    keel_v1_Envelope e;
    /* Device side: CMD, ACK, UPDATE, UPDATE_DATA, DEBUG_DOWN, APP_DOWN (fuzz_envelope_device.c). */
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_command_tag;
    e.body.command.id = 7;
    e.body.command.kind = keel_v1_CommandKind_COMMAND_KIND_PING;
    envelope("envelope_device", 0, "cmd-ping", &e);
    e.body.command.kind = keel_v1_CommandKind_COMMAND_KIND_UPDATE_APPLY;
    envelope("envelope_device", 0, "cmd-apply", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_ack_tag;
    e.body.ack.boot = 3;
    e.body.ack.msg_id = 9;
    envelope("envelope_device", 1, "ack", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_update_offer_tag;
    e.body.update_offer.deployment_id = 12;
    e.body.update_offer.signed_size = 772;
    e.body.update_offer.bundle_size = 40772;
    memset(e.body.update_offer.bundle_sha256, 0xAB, 32);
    envelope("envelope_device", 2, "offer", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_update_chunk_tag;
    e.body.update_chunk.deployment_id = 12;
    e.body.update_chunk.offset = 2048;
    e.body.update_chunk.data.size = 64;
    memset(e.body.update_chunk.data.bytes, 0x5A, 64);
    envelope("envelope_device", 3, "chunk", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_debug_tag;
    e.body.debug.which_kind = keel_v1_Debug_frame_tag;
    e.body.debug.kind.frame.session = 77;
    e.body.debug.kind.frame.seq = 1;
    e.body.debug.kind.frame.sealed.size = 40;
    envelope("envelope_device", 4, "debug-frame", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_channel_tag;
    e.body.channel.data.size = 5;
    memcpy(e.body.channel.data.bytes, "hello", 5);
    envelope("envelope_device", 5, "channel", &e);

    /* keeld side: HELLO, PRESENCE, HEARTBEAT, LOGS, CRASH, RESULT, APP_UP, UPDATE_STATUS,
     * UPDATE_FETCH, DEBUG_UP (fuzz_envelope_keeld.c). */
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_hello_tag;
    e.body.hello.app_state = keel_v1_AppState_APP_STATE_RUNNING;
    e.body.hello.restart_count = 2;
    strcpy(e.body.hello.board, "an505");
    e.body.hello.regions_count = 1;
    strcpy(e.body.hello.regions[0].name, "app");
    e.body.hello.commands_count = 2;
    e.body.hello.commands[0] = keel_v1_CommandKind_COMMAND_KIND_PING;
    e.body.hello.commands[1] = keel_v1_CommandKind_COMMAND_KIND_REBOOT;
    envelope("envelope_keeld", 0, "hello", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_presence_tag;
    e.body.presence.online = true;
    envelope("envelope_keeld", 1, "presence", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_heartbeat_tag;
    envelope("envelope_keeld", 2, "heartbeat", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_logs_tag;
    e.body.logs.entries_count = 2;
    strcpy(e.body.logs.entries[0].text, "app: started");
    strcpy(e.body.logs.entries[1].text, "net: connected");
    e.body.logs.entries[1].level = keel_v1_LogLevel_LOG_LEVEL_DEBUG;
    envelope("envelope_keeld", 3, "logs", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_crash_tag;
    kcrash_report_t r;
    crash_sample(&r, 64);
    size_t n = 0;
    must(kcrash_encode(&r, e.body.crash.report.bytes, sizeof(e.body.crash.report.bytes), &n), "crash");
    e.body.crash.report.size = (pb_size_t)n;
    envelope("envelope_keeld", 4, "crash", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_result_tag;
    e.body.result.command_id = 7;
    e.body.result.status = keel_v1_CommandStatus_COMMAND_STATUS_OK;
    envelope("envelope_keeld", 5, "result", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_channel_tag;
    e.body.channel.data.size = 3;
    memcpy(e.body.channel.data.bytes, "abc", 3);
    envelope("envelope_keeld", 6, "app-up", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_update_status_tag;
    e.body.update_status.deployment_id = 12;
    e.body.update_status.state = keel_v1_UpdateState_UPDATE_STATE_DOWNLOADING;
    strcpy(e.body.update_status.detail, "12 of 40 blocks");
    envelope("envelope_keeld", 7, "update-status", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_update_fetch_tag;
    e.body.update_fetch.deployment_id = 12;
    e.body.update_fetch.offset = 4096;
    e.body.update_fetch.length = 2048;
    envelope("envelope_keeld", 8, "update-fetch", &e);
    memset(&e, 0, sizeof(e));
    e.which_body = keel_v1_Envelope_debug_tag;
    e.body.debug.which_kind = keel_v1_Debug_accept_tag;
    e.body.debug.kind.accept.session = 77;
    e.body.debug.kind.accept.ok = true;
    envelope("envelope_keeld", 9, "debug-accept", &e);
}

static void crashes(void)
{
    static const uint16_t stacks[] = {0, 16, 128, KCRASH_STACK_MAX};
    for (unsigned i = 0; i < 4; i++) {
        kcrash_report_t r;
        uint8_t buf[KCRASH_ENCODED_MAX];
        size_t n = 0;
        crash_sample(&r, stacks[i]);
        r.reason = i + 1;
        must(kcrash_encode(&r, buf, sizeof(buf), &n), "crash");
        char name[32];
        snprintf(name, sizeof(name), "report-%u", stacks[i]);
        put("crash", name, 1, buf, n);
    }
}

static const char ca_pem[] = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
static const char key_pem[] = "-----BEGIN EC PRIVATE KEY-----\nMHcfake\n-----END EC PRIVATE KEY-----\n";

static void record(unsigned kind, const char *name, const uint8_t *rec, size_t len)
{
    uint8_t buf[NET_FLEET_REC_MAX + 2];
    buf[0] = 1; /* recompute the CRC */
    memcpy(buf + 1, rec, len);
    put("records", name, (uint8_t)kind, buf, len + 1);
}

static void records(void)
{
    static uint8_t rec[NET_FLEET_REC_MAX];
    kident_t id;
    strcpy(id.id, "dev-0001");
    must(kident_encode(&id, rec), "identity");
    record(0, "identity", rec, KIDENT_SIZE);
    kapp_hdr_t h = {.image_size = 4096, .load_addr = 0x00200100, .version = kapp_version_pack(1, 2, 3),
                    .backoff_min_ms = 100, .backoff_max_ms = 30000, .stack_dump = 128, .name = "hello"};
    kapp_hdr_encode(&h, rec);
    record(1, "app-header", rec, KAPP_HDR_SIZE);
    upd_pstate_t ps;
    memset(&ps, 0, sizeof(ps));
    ps.phase = UPD_PHASE_STAGED;
    ps.stage_gen = 2;
    upd_jrec_encode(&ps, 5, rec);
    record(2, "journal", rec, UPD_JREC_SIZE);
    uint8_t seed[NET_SEED_BYTES];
    memset(seed, 0x33, sizeof(seed));
    must(net_seed_rec_encode(seed, rec), "seed");
    record(3, "seed", rec, NET_SEED_REC_SIZE);
    uint32_t n = net_fleet_rec_size(sizeof(ca_pem), 0);
    must(net_fleet_rec_encode("localhost", (const uint8_t *)ca_pem, sizeof(ca_pem), 0, rec, n), "fleet");
    record(4, "fleet", rec, n);
    /* With fleet settings (KFL2): TLS 1.2 allowed. */
    n = net_fleet_rec_size(sizeof(ca_pem), NET_FLEET_F_ALLOW_TLS12);
    must(net_fleet_rec_encode("localhost", (const uint8_t *)ca_pem, sizeof(ca_pem),
                              NET_FLEET_F_ALLOW_TLS12, rec, n), "fleet");
    record(4, "fleet-tls12", rec, n);
    n = net_device_rec_size(sizeof(key_pem), sizeof(ca_pem));
    must(net_device_rec_encode((const uint8_t *)key_pem, sizeof(key_pem), (const uint8_t *)ca_pem,
                               sizeof(ca_pem), rec, n), "device");
    record(5, "device", rec, n);
    uint8_t keys[2 * NET_UPDKEY_SIZE];
    fz_bundle_pubkey(keys);
    memcpy(keys + NET_UPDKEY_SIZE, keys, NET_UPDKEY_SIZE);
    n = net_updkeys_rec_size(2);
    must(net_updkeys_rec_encode(keys, 2, rec, n), "updkeys");
    record(6, "updkeys", rec, n);
    must(net_state_rec_encode(9, seed, rec), "state");
    record(7, "state", rec, NET_STATE_REC_SIZE);
}

/* RSP: the recorded gdb session's packets ('>' lines), in runs of 8, as byte streams. */
static void rsp(const char *log)
{
    size_t n = 0;
    char *text = (char *)fz_read_file(log, &n);
    if (text == NULL) {
        fprintf(stderr, "fuzz_seeds: cannot read %s\n", log);
        failures++;
        return;
    }
    text = realloc(text, n + 1);
    text[n] = '\0';
    static uint8_t stream[8192];
    size_t len = 0;
    unsigned packets = 0, seeds = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "> ", 2) != 0) {
            continue;
        }
        size_t l = strlen(line + 2);
        if (len + l + 1 < sizeof(stream)) {
            memcpy(stream + len, line + 2, l);
            len += l;
            stream[len++] = '+';
        }
        if (++packets % 8 == 0) {
            char name[32];
            snprintf(name, sizeof(name), "gdb13-%03u", seeds++);
            put("rsp", name, stream[0], stream + 1, len - 1);
            put("dbgframe", name, 1, stream, len); /* through an authenticated session */
            len = 0;
        }
    }
    free(text);
    if (seeds < 10) {
        fprintf(stderr, "fuzz_seeds: only %u RSP seeds from %s\n", seeds, log);
        failures++;
    }
}

/* devchan: operation sequences (fuzz_devchan.c): open "a" and "b", deliver, receive, send,
 * acknowledge, reconnect, close, restart. The first operation is put()'s selector byte. */
static void devchan(void)
{
    static const uint8_t life[] = {/* 0: open "a" */ 1, 'a', /* open "b" (slot 1) */ 9, 1, 'b',
                                   /* 5: deliver 6 bytes to a */ 5, 2, 'h', 'e', 'l', 'l', 'o', '!',
                                   /* 2: recv slot 0, cap 30 */ 2, 0, 10,
                                   /* 1: send slot 0, 3 bytes */ 1, 0, 1, 'x', 'y', 'z',
                                   /* 7: poll */ 7, /* 6: ack */ 6,
                                   /* 7|0x80: reconnect */ 0x87, /* 3: close slot 1 */ 3, 1,
                                   /* 8: app restart */ 8};
    put("devchan", "life", 0, life, sizeof(life));
    static const uint8_t wire[] = {1, 'a', 4, 24, 'k', 'e', 'e', 'l', '/', 'v', '1', '/', 'd', 'e', 'v', '-', '1',
                                   '/', 'a', 'p', 'p', '/', 'd', 'o', 'w', 'n', '/', 'a', 2,
                                   0x92, 0x01, 0x03, 0x0a, 0x01, 0x41, 2, 0, 50};
    put("devchan", "wire", 0, wire, sizeof(wire));
}

static void debug_msgs(void)
{
    fz_dbg_t s;
    if (fz_dbg_start(&s) != 0) {
        failures++;
        return;
    }
    keel_v1_Debug d;
    uint8_t buf[KPROTO_DEBUG_MAX];
    size_t n = 0, sn = 0;
    uint32_t seq = 0;
    memset(&d, 0, sizeof(d));
    d.which_kind = keel_v1_Debug_frame_tag;
    d.kind.frame.session = s.session;
    static const char pkt[] = "$g#67";
    must(dbgsess_seal(&s.client, (const uint8_t *)pkt, strlen(pkt), d.kind.frame.sealed.bytes,
                      sizeof(d.kind.frame.sealed.bytes), &sn, &seq), "seal");
    d.kind.frame.seq = seq;
    d.kind.frame.sealed.size = (pb_size_t)sn;
    must(kproto_debug_encode(&d, buf, sizeof(buf), &n), "debug frame");
    put("dbgframe", "frame-g", 0, buf, n);
    memset(&d, 0, sizeof(d));
    d.which_kind = keel_v1_Debug_open_tag;
    d.kind.open.session = s.session;
    dbgsess_eph_t e;
    must(dbgsess_keygen(&e, fz_rng, NULL), "keygen");
    memcpy(d.kind.open.client_pub, e.pub, DBGSESS_PUB_SIZE);
    must(kproto_debug_encode(&d, buf, sizeof(buf), &n), "debug open");
    put("dbgframe", "open", 2, buf, n);
    d.which_kind = keel_v1_Debug_accept_tag;
    d.kind.accept.session = s.session;
    d.kind.accept.ok = true;
    memcpy(d.kind.accept.device_pub, e.pub, DBGSESS_PUB_SIZE);
    must(kproto_debug_encode(&d, buf, sizeof(buf), &n), "debug accept");
    put("dbgframe", "accept", 2, buf, n);
    memset(&d, 0, sizeof(d));
    d.which_kind = keel_v1_Debug_close_tag;
    d.kind.close.session = s.session;
    strcpy(d.kind.close.reason, "detached");
    must(kproto_debug_encode(&d, buf, sizeof(buf), &n), "debug close");
    put("dbgframe", "close", 0, buf, n);
}

/* Delta patches against fuzz_delta.c's old image: a constant changed, bytes inserted early (every
 * later address moves), and an unrelated image; each fed whole, in pieces, validate-only, and a
 * page per call. */
const uint8_t *fuzz_delta_old(uint32_t *len);
static void deltas(void)
{
    uint32_t n = 0;
    const uint8_t *old = fuzz_delta_old(&n);
    static uint8_t img[3][8192];
    uint32_t lens[3] = {n, n + 24u, 2048u};
    memcpy(img[0], old, n);
    img[0][100] ^= 0x5Au;
    memcpy(img[1], old, 200);
    memset(img[1] + 200, 0xBF, 24);
    memcpy(img[1] + 224, old + 200, n - 200);
    for (uint32_t i = 0; i < lens[2]; i++)
        img[2][i] = (uint8_t)(i * 7u + 3u);
    static const char *const names[3] = {"const", "insert", "unrelated"};
    static const uint8_t sels[4] = {0x0E, 0x02, 0x10, 0x24}; /* 0x24: in 3-byte pieces, a page per call */
    for (unsigned k = 0; k < 3; k++) {
        kdlt_enc_opts_t opts = {.base = 0x00202000u};
        uint8_t *patch = NULL;
        size_t plen = 0;
        must(kdlt_encode(old, n, img[k], lens[k], &opts, &patch, &plen), "delta");
        for (unsigned s = 0; s < 4; s++) {
            char name[64];
            snprintf(name, sizeof(name), "%s-%u", names[k], s);
            put("delta", name, sels[s], patch, plen);
        }
        free(patch);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_seeds <out dir> <gdb session log>\n");
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        perror(out_dir);
        return 1;
    }
    bundles();
    envelopes();
    crashes();
    records();
    rsp(argv[2]);
    debug_msgs();
    http_requests();
    devchan();
    deltas();
    return failures ? 1 : 0;
}

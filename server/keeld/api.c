/* keeld REST/JSON API. Routes, auth, body limits, JSON replies and the log event stream. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "api.h"
#include "appelf.h"
#include "delta_pick.h"
#include "devtype.h"
#include "kd_log.h"
#include "keel/crash.h"
#include "keel/kproto.h"
#include "metrics.h"
#include "page.h"
#include "rollout_api.h"
#include "token.h"

#define SSE_WAIT_SLICE_MS 1000   /* how often a waiting stream checks for shutdown */
/*
 * Hostile clients (scripts/bench-http-hostile.sh): one thread per connection, so connections are
 * bounded. One address may hold API_CONN_PER_IP of them (idle sockets, slow-loris header drips,
 * event streams that are never read), so a client elsewhere is still served; a connection that
 * sends nothing for API_IDLE_S is closed (streams send a keepalive every 10 s). Headers are
 * bounded by libmicrohttpd's per-connection memory (32 KiB: 431 beyond).
 */
#define API_CONN_MAX 512
#define API_CONN_PER_IP 64
#define API_IDLE_S 30
#define SSE_KEEPALIVE_MS 10000   /* comment line so proxies and clients see a live stream */
#define LIST_LIMIT_MAX 1000
#define CRASH_TEXT_MAX 8192     /* formatted crash report (registers + stack dump) */
#define CHANNEL_DATA_MAX 512    /* ChannelData.data (proto/keel.options, keel.h KEEL_CHANNEL_DATA_MAX) */
#define WATCH_WAIT_MAX_S 30     /* longest long poll of GET /v1/deployments/{id}?after= */
#define FORCE_AFTER_MAX_S (30 * 24 * 3600)

struct api {
    struct MHD_Daemon *d;
    const kd_config_t *cfg;
    store_t *store;
    mq_t *mq;
    ota_t *ota;
    admit_t *admit;
    kd_notify_t *logs;
    atomic_bool stopping;
    _Atomic(rollouts_t *) rollouts; /* ops: api_set_rollouts */
    const unsigned char *openapi;   /* ops: api_set_openapi (NULL: not served) */
    size_t openapi_len;
};

/* Per-request state: the body collected so far. */
typedef struct req {
    char *body;
    size_t len;
    bool too_big;
    bool bundle;   /* POST /v1/bundles: raw bytes, --max-bundle */
    bool elf;      /* /v1/elfs: an ELF upload, --max-elf */
} req_t;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- replies ---------------------------------------------------------------------------------- */

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL) {
        return MHD_NO;
    }
    size_t n = strlen(s);
    /* A trailing newline makes curl output and shell tests tidier; JSON parsers ignore it. */
    char *t = realloc(s, n + 2);
    if (t == NULL) {
        free(s);
        return MHD_NO;
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    struct MHD_Response *r = MHD_create_response_from_buffer(n + 1, t, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Messages quote the request (a query value, a path): JSON strings must be UTF-8, so bytes of
     * anything else become '?' rather than leave the client without an answer (found by
     * tests/fuzz/fuzz_keeld_http.c: '?limit=%FF' got the connection closed). */
    json_t *text = json_string(msg);
    if (text == NULL) {
        for (char *p = msg; *p != '\0'; p++) {
            if ((unsigned char)*p >= 0x80u || (unsigned char)*p < 0x20u) {
                *p = '?';
            }
        }
        text = json_string(msg);
    }
    return reply_json(c, status, json_pack("{s:o}", "error", text));
}

static enum MHD_Result reply_store_error(struct MHD_Connection *c)
{
    return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                       "the database failed (see keeld's log); nothing was changed, retry later");
}

/* ---- request helpers -------------------------------------------------------------------------- */

static const char *query(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* Integer query parameter in [lo, hi]; absent -> def. Returns false (reply sent) when invalid. */
static bool query_int(struct MHD_Connection *c, const char *name, int64_t lo, int64_t hi, int64_t def,
                      int64_t *out, enum MHD_Result *ret)
{
    const char *v = query(c, name);
    char *end = NULL;

    if (v == NULL) {
        *out = def;
        return true;
    }
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
        *ret = reply_error(c, MHD_HTTP_BAD_REQUEST,
                           "query parameter '%s' is '%s'; it must be a whole number in [%lld, %lld]",
                           name, v, (long long)lo, (long long)hi);
        return false;
    }
    *out = x;
    return true;
}

/* The id after a prefix ("/v1/crashes/" + "12"), or -1 when it is not a positive number. */
static int64_t path_id(const char *rest)
{
    char *end = NULL;

    errno = 0;
    long long x = strtoll(rest, &end, 10);
    return (errno != 0 || end == rest || *end != '\0' || x <= 0) ? -1 : x;
}

/* The device exists in the registry; otherwise a 404 reply is sent. */
static bool known_device(api_t *api, struct MHD_Connection *c, const char *device, enum MHD_Result *ret)
{
    if (kident_check_id(device) != KERR_OK) {
        *ret = reply_error(c, MHD_HTTP_BAD_REQUEST,
                           "'%s' is not a device id: use 1 to %u characters of A-Z a-z 0-9 . _ -",
                           device, KIDENT_ID_MAX);
        return false;
    }
    json_t *d = api->store->ops->device_get(api->store, device);
    if (d == NULL) {
        *ret = reply_error(c, MHD_HTTP_NOT_FOUND,
                           "unknown device '%s': it has never connected; list devices with GET /v1/devices",
                           device);
        return false;
    }
    json_decref(d);
    return true;
}

/*
 * Parse the body as a JSON object whose keys are all in allowed (NULL-terminated).
 * NULL (reply sent) when it is not.
 */
static json_t *body_object(struct MHD_Connection *c, const req_t *rq, const char *const *allowed,
                           enum MHD_Result *ret)
{
    json_error_t jerr;
    json_t *j = json_loadb(rq->body ? rq->body : "", rq->len, 0, &jerr);

    if (j == NULL) {
        *ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "malformed JSON body at line %d, column %d: %s",
                           jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL; i++) {
            ok = ok || strcmp(key, allowed[i]) == 0;
        }
        if (!ok) {
            char list[128] = "";
            for (size_t i = 0; allowed[i] != NULL; i++) {
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", allowed[i]);
            }
            *ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "unknown field '%s'; allowed fields: %s", key, list);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* ---- authentication --------------------------------------------------------------------------- */

/* name (cap bytes): the token's name, for the record of who changed what. */
static bool authorized(api_t *api, struct MHD_Connection *c, enum MHD_Result *ret, char *name, size_t cap)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    char hash[TOK_HASH_HEX];

    if (h == NULL || strncmp(h, "Bearer ", 7) != 0 || h[7] == '\0') {
        *ret = reply_error(c, MHD_HTTP_UNAUTHORIZED,
                           "missing 'Authorization: Bearer <token>' header; create a token with "
                           "`keeld token create --db PATH`");
        return false;
    }
    const char *tok = h + 7;
    tok_hash(tok, strlen(tok), hash);
    store_rc_t rc = api->store->ops->token_check(api->store, hash, name, cap);
    if (rc == STORE_ENOTFOUND) {
        *ret = reply_error(c, MHD_HTTP_UNAUTHORIZED,
                           "the bearer token is not valid for this keeld; check KEEL_TOKEN or create one");
        return false;
    }
    if (rc != STORE_OK) {
        *ret = reply_store_error(c);
        return false;
    }
    return true;
}

/* ---- endpoints -------------------------------------------------------------------------------- */

/* 200 "ok" while keeld is connected to the broker; 503 "degraded" while it is not (it keeps
 * reconnecting, and the REST API works meanwhile): a load balancer or monitor sees it at once. */
static enum MHD_Result get_health(api_t *api, struct MHD_Connection *c)
{
    mq_health_t h;

    mq_health(api->mq, &h);
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:i}", "status", h.connected ? "ok" : "degraded",
                          "store", api->store->ops->backend, "mqtt",
                          h.connected ? "connected" : "disconnected", "protocol", KPROTO_REVISION,
                          "mqtt_down_ms", (json_int_t)h.down_ms, "mqtt_reconnects", (int)h.reconnects);
    if (!h.connected) {
        json_object_set_new(o, "mqtt_error", json_string(h.last_error));
    }
    if (h.nbrokers > 1) {
        json_t *b = json_array();
        for (int i = 0; i < h.nbrokers; i++) {
            json_array_append_new(b, json_pack("{s:s, s:s}", "broker", h.brokers[i].name, "mqtt",
                                               h.brokers[i].connected ? "connected" : "disconnected"));
        }
        json_object_set_new(o, "brokers", b);
    }
    return reply_json(c, h.connected ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, o);
}

/* GET /metrics (token needed, like everything but health): Prometheus text (metrics.h). */
static enum MHD_Result get_metrics(api_t *api, struct MHD_Connection *c)
{
    size_t len = 0;
    char *text = metrics_render(api->store, api->mq, api->ota, api->admit, &len);

    if (text == NULL) {
        return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* An optional device-id cursor (?NAME=ID): false (reply sent) when it is not a valid id. */
static bool query_device_cursor(struct MHD_Connection *c, const char *name, const char **out,
                                enum MHD_Result *ret)
{
    *out = query(c, name);
    if (*out != NULL && kident_check_id(*out) != KERR_OK) {
        *ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "query parameter '%s' is not a device id (the "
                           "\"next\" of the previous page)", name);
        return false;
    }
    return true;
}

/* GET /v1/devices[?limit=N&after=ID&online=true|false&tag=NAME[=VALUE]]: a page (page.h). */
static enum MHD_Result get_devices(api_t *api, struct MHD_Connection *c)
{
    enum MHD_Result ret;
    int64_t limit;
    store_device_query_t q = {NULL, -1, query(c, "tag"), 0};
    const char *online = query(c, "online");

    if (!query_int(c, "limit", 1, LIST_LIMIT_MAX, LIST_LIMIT_MAX, &limit, &ret) ||
        !query_device_cursor(c, "after", &q.after, &ret)) {
        return ret;
    }
    if (online != NULL && strcmp(online, "true") != 0 && strcmp(online, "false") != 0) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "query parameter 'online' is '%s'; use true or false",
                           online);
    }
    if (q.tag != NULL && (q.tag[0] == '\0' || q.tag[0] == '=' || strlen(q.tag) > 200)) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "query parameter 'tag' wants NAME or NAME=VALUE");
    }
    q.online = online == NULL ? -1 : strcmp(online, "true") == 0;
    q.limit = (int)limit;
    json_t *page = page_wrap("devices", api->store->ops->devices_list(api->store, &q), q.limit, "id");
    return page ? reply_json(c, MHD_HTTP_OK, page) : reply_store_error(c);
}

static enum MHD_Result get_device(api_t *api, struct MHD_Connection *c, const char *id)
{
    enum MHD_Result ret;

    if (!known_device(api, c, id, &ret)) {
        return ret;
    }
    json_t *d = api->store->ops->device_get(api->store, id);
    return d ? reply_json(c, MHD_HTTP_OK, d) : reply_store_error(c);
}

#define TAGS_MAX 64          /* per request */
#define TAG_VALUE_MAX 256

/* PATCH /v1/devices/{id} {"tags": {"name": "value" | null, ...}}: set or remove tags. */
static enum MHD_Result patch_device(api_t *api, struct MHD_Connection *c, const char *id, const req_t *rq)
{
    static const char *const allowed[] = {"tags", NULL};
    enum MHD_Result ret;

    if (!known_device(api, c, id, &ret)) {
        return ret;
    }
    json_t *j = body_object(c, rq, allowed, &ret);
    if (j == NULL) {
        return ret;
    }
    json_t *tags = json_object_get(j, "tags");
    const char *name;
    json_t *v;
    bool valid = json_is_object(tags) && json_object_size(tags) <= TAGS_MAX;
    if (!valid) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST,
                          "the body needs \"tags\": an object of at most %d names, each a string "
                          "value (set) or null (remove)", TAGS_MAX);
    }
    json_object_foreach(tags, name, v) {
        if (!valid) {
            break;
        }
        if (kident_check_id(name) != KERR_OK) {
            valid = false;
            ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "tag name '%s' is not 1 to %u characters of "
                              "A-Z a-z 0-9 . _ -", name, KIDENT_ID_MAX);
        } else if (!json_is_null(v) && (!json_is_string(v) || json_string_length(v) > TAG_VALUE_MAX)) {
            valid = false;
            ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "tag '%s' must be a string of at most %d "
                              "characters, or null to remove it", name, TAG_VALUE_MAX);
        }
    }
    if (valid) {
        store_rc_t rc = api->store->ops->device_tags_set(api->store, id, tags);
        json_t *d = rc == STORE_OK ? api->store->ops->device_get(api->store, id) : NULL;
        ret = d ? reply_json(c, MHD_HTTP_OK, d) : reply_store_error(c);
    }
    json_decref(j);
    return ret;
}

/* Fill a log query from ?device=&since=&until=&after=&limit=. */
static bool log_query(api_t *api, struct MHD_Connection *c, store_log_query_t *q, enum MHD_Result *ret)
{
    int64_t limit = 0;

    memset(q, 0, sizeof(*q));
    q->device = query(c, "device");
    if (q->device != NULL && !known_device(api, c, q->device, ret)) {
        return false;
    }
    if (!query_int(c, "since", 0, INT64_MAX, 0, &q->since_ms, ret) ||
        !query_int(c, "until", 0, INT64_MAX, 0, &q->until_ms, ret) ||
        !query_int(c, "after", 0, INT64_MAX, 0, &q->after_id, ret) ||
        !query_int(c, "limit", 1, LIST_LIMIT_MAX, 100, &limit, ret)) {
        return false;
    }
    q->limit = (int)limit;
    return true;
}

static enum MHD_Result get_logs(api_t *api, struct MHD_Connection *c)
{
    store_log_query_t q;
    enum MHD_Result ret;

    if (!log_query(api, c, &q, &ret)) {
        return ret;
    }
    json_t *arr = api->store->ops->logs_query(api->store, &q);
    return arr ? reply_json(c, MHD_HTTP_OK, json_pack("{s:o}", "logs", arr)) : reply_store_error(c);
}

/* ---- live log stream (server-sent events) ------------------------------------------------------ */

typedef struct sse {
    api_t *api;
    char device[KIDENT_ID_MAX + 1];
    char channel[KPROTO_CHANNEL_MAX + 1]; /* non-empty: a channel's up messages, not logs */
    bool all_devices;
    int64_t after_id;
    char *buf;                /* events formatted but not yet handed to MHD */
    size_t len, off, cap;
    int64_t last_out_ms;
} sse_t;

static void sse_append(sse_t *s, const char *text, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = (s->len + n) * 2;
        char *b = realloc(s->buf, cap);
        if (b == NULL) {
            return; /* dropped; the client resumes from the last id it saw */
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
}

static void chan_decorate(json_t *arr);

/* Format new entries (log entries, or a channel's messages) as events; returns how many. */
static size_t sse_fill(sse_t *s)
{
    json_t *arr;
    const char *event = s->channel[0] != '\0' ? "channel" : "log";
    if (s->channel[0] != '\0') {
        store_chan_query_t q = {.device = s->device, .channel = s->channel, .direction = "up",
                                .after_id = s->after_id, .limit = 100};
        arr = s->api->store->ops->channel_query(s->api->store, &q);
        chan_decorate(arr);
    } else {
        store_log_query_t q = {.device = s->all_devices ? NULL : s->device, .after_id = s->after_id,
                               .limit = 100};
        arr = s->api->store->ops->logs_query(s->api->store, &q);
    }
    size_t i, n = json_array_size(arr);
    json_t *e;

    json_array_foreach(arr, i, e) {
        char *data = json_dumps(e, JSON_COMPACT);
        char head[64];
        int64_t id = json_integer_value(json_object_get(e, "id"));
        int hn = snprintf(head, sizeof(head), "id: %lld\nevent: %s\ndata: ", (long long)id, event);
        if (data != NULL) {
            sse_append(s, head, (size_t)hn);
            sse_append(s, data, strlen(data));
            sse_append(s, "\n\n", 2);
            free(data);
        }
        s->after_id = id;
    }
    json_decref(arr);
    return n;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    sse_t *s = cls;

    /* Block (in slices, so shutdown is noticed) until there is something to send. */
    while (s->off == s->len) {
        s->off = s->len = 0;
        if (atomic_load(&s->api->stopping)) {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        uint64_t gen = kd_notify_gen(s->api->logs);
        if (sse_fill(s) > 0) {
            break;
        }
        if (mono_ms() - s->last_out_ms >= SSE_KEEPALIVE_MS) {
            sse_append(s, ": keepalive\n\n", 13);
            break;
        }
        kd_notify_wait(s->api->logs, gen, SSE_WAIT_SLICE_MS);
    }
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(out, s->buf + s->off, n);
    s->off += n;
    s->last_out_ms = mono_ms();
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    sse_t *s = cls;

    free(s->buf);
    free(s);
}

/* Answer with the stream s (which it then owns), opening with the comment line hello. */
static enum MHD_Result sse_start(struct MHD_Connection *c, sse_t *s, const char *hello)
{
    sse_append(s, hello, strlen(hello));
    s->last_out_ms = mono_ms();
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/*
 * Where a stream starts: right after Last-Event-ID (a reconnecting EventSource resumes), else
 * after ?after=. True when neither was given: the caller starts at the end, like tail -f.
 */
static bool sse_resume(struct MHD_Connection *c, sse_t *s, int64_t after)
{
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    s->after_id = after;
    if (last != NULL && path_id(last) > 0) {
        s->after_id = path_id(last);
        return false;
    }
    return query(c, "after") == NULL;
}

static enum MHD_Result get_log_stream(api_t *api, struct MHD_Connection *c)
{
    store_log_query_t q;
    enum MHD_Result ret;

    if (!log_query(api, c, &q, &ret)) {
        return ret;
    }
    sse_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return MHD_NO;
    }
    s->api = api;
    s->all_devices = q.device == NULL;
    snprintf(s->device, sizeof(s->device), "%s", q.device ? q.device : "");
    if (sse_resume(c, s, q.after_id) &&
        api->store->ops->logs_last_id(api->store, q.device, &s->after_id) != STORE_OK) {
        sse_free(s);
        return reply_store_error(c);
    }
    return sse_start(c, s, ": keel log stream\n\n");
}

/* ---- crashes ---------------------------------------------------------------------------------- */

static enum MHD_Result get_crashes(api_t *api, struct MHD_Connection *c)
{
    enum MHD_Result ret;
    int64_t limit, before;
    const char *device = query(c, "device");

    if ((device != NULL && !known_device(api, c, device, &ret)) ||
        !query_int(c, "limit", 1, LIST_LIMIT_MAX, 100, &limit, &ret) ||
        !query_int(c, "before", 1, INT64_MAX, 0, &before, &ret)) {
        return ret;
    }
    json_t *arr = api->store->ops->crashes_list(api->store, device, before, (int)limit);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        json_object_set_new(e, "elf_known", json_boolean(json_integer_value(json_object_get(e, "elf_known"))));
    }
    json_t *page = page_wrap("crashes", arr, (int)limit, "id");
    return page ? reply_json(c, MHD_HTTP_OK, page) : reply_store_error(c);
}

static enum MHD_Result get_crash(api_t *api, struct MHD_Connection *c, const char *rest)
{
    int64_t id = path_id(rest);
    store_crash_t cr;
    kcrash_report_t r;

    if (id < 0) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "'%s' is not a crash id (a positive number)", rest);
    }
    store_rc_t rc = api->store->ops->crash_get(api->store, id, &cr);
    if (rc == STORE_ENOTFOUND) {
        return reply_error(c, MHD_HTTP_NOT_FOUND, "no crash report %lld; list them with GET /v1/crashes",
                           (long long)id);
    }
    if (rc != STORE_OK) {
        return reply_store_error(c);
    }
    json_t *j = json_pack("{s:I, s:s, s:I}", "id", (json_int_t)id, "device", cr.device, "received_ms",
                          (json_int_t)cr.received_ms);
    json_t *elf = cr.app_sha256[0] ? api->store->ops->elfs_list(api->store, cr.app_sha256) : NULL;
    json_object_set_new(j, "app_sha256", json_string(cr.app_sha256));
    json_object_set_new(j, "elf_known", json_boolean(json_array_size(elf) == 1));
    json_decref(elf);
    char hex[2 * sizeof(cr.report) + 1];
    for (size_t i = 0; i < cr.report_len; i++) {
        snprintf(hex + 2 * i, 3, "%02x", cr.report[i]);
    }
    hex[2 * cr.report_len] = '\0';
    json_object_set_new(j, "report_hex", json_string(hex));
    kerr_t err = kcrash_decode(cr.report, cr.report_len, &r);
    if (err != KERR_OK) {
        json_object_set_new(j, "decode_error", json_string(kerr_str(err)));
        return reply_json(c, MHD_HTTP_OK, j);
    }
    char *text = malloc(CRASH_TEXT_MAX);
    if (text != NULL) {
        kcrash_format(&r, "", text, CRASH_TEXT_MAX);
        json_object_set_new(j, "text", json_string(text));
        free(text);
    }
    json_object_set_new(j, "reason", json_string(kcrash_reason_name(r.reason)));
    json_t *regs = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "pc", (json_int_t)r.pc,
                             "lr", (json_int_t)r.lr, "sp", (json_int_t)r.sp, "xpsr", (json_int_t)r.xpsr,
                             "cfsr", (json_int_t)r.cfsr, "hfsr", (json_int_t)r.hfsr, "sfsr",
                             (json_int_t)r.sfsr, "sfar", (json_int_t)r.sfar, "bfar", (json_int_t)r.bfar);
    json_object_set_new(j, "registers", regs);
    json_object_set_new(j, "app_version", json_integer(r.app_version));
    json_object_set_new(j, "restart_count", json_integer(r.restart_count));
    json_object_set_new(j, "run_ms", json_integer(r.run_ms));
    return reply_json(c, MHD_HTTP_OK, j);
}

/* ---- app channels ----------------------------------------------------------------------------- */

static bool channel_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= KPROTO_CHANNEL_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static bool printable(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((b[i] < 0x20 || b[i] > 0x7e) && b[i] != '\t' && b[i] != '\n' && b[i] != '\r') {
            return false;
        }
    }
    return true;
}

static bool hex_to_bytes(const char *hex, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > cap || strspn(hex, "0123456789abcdefABCDEF") != n) {
        return false;
    }
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    *out_len = n / 2;
    return true;
}

/* Each stored message's "data" (hex) gets "size" and, when it is printable text, "text". */
static void chan_decorate(json_t *arr)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        uint8_t b[CHANNEL_DATA_MAX];
        size_t n = 0;
        const char *hex = json_string_value(json_object_get(e, "data"));
        if (hex == NULL || !hex_to_bytes(hex, b, sizeof(b), &n)) {
            continue;
        }
        json_object_set_new(e, "size", json_integer((json_int_t)n));
        if (printable(b, n)) {
            json_object_set_new(e, "text", json_stringn((const char *)b, n));
        }
    }
}

/* Split "<device>/channels/<name>[/stream]" (after /v1/devices/); false when it is not that. */
static bool channel_path(const char *rest, char dev[KIDENT_ID_MAX + 1], char chan[KPROTO_CHANNEL_MAX + 1],
                         bool *out_stream)
{
    const char *slash = strchr(rest, '/');
    if (slash == NULL || (size_t)(slash - rest) > KIDENT_ID_MAX || strncmp(slash, "/channels/", 10) != 0) {
        return false;
    }
    memcpy(dev, rest, (size_t)(slash - rest));
    dev[slash - rest] = '\0';
    const char *name = slash + 10;
    const char *end = strchr(name, '/');
    size_t n = end ? (size_t)(end - name) : strlen(name);
    *out_stream = end != NULL && strcmp(end, "/stream") == 0;
    if (n == 0 || (end != NULL && !*out_stream)) {
        return false;
    }
    if (n > KPROTO_CHANNEL_MAX) {
        return false; /* refused by the caller with the naming rule */
    }
    memcpy(chan, name, n);
    chan[n] = '\0';
    return true;
}

static bool channel_target(api_t *api, struct MHD_Connection *c, const char *dev, const char *chan,
                           enum MHD_Result *ret)
{
    if (!channel_name_ok(chan)) {
        *ret = reply_error(c, MHD_HTTP_BAD_REQUEST,
                           "'%s' is not a channel name: use 1 to %u characters of A-Z a-z 0-9 . _ -", chan,
                           KPROTO_CHANNEL_MAX);
        return false;
    }
    return known_device(api, c, dev, ret);
}

/* POST /v1/devices/D/channels/C {"text": "..."} or {"hex": "..."}: data down to the app. */
static enum MHD_Result post_channel(api_t *api, struct MHD_Connection *c, const char *dev, const char *chan,
                                    const req_t *rq)
{
    static const char *const allowed[] = {"text", "hex", NULL};
    enum MHD_Result ret;
    uint8_t data[CHANNEL_DATA_MAX];
    size_t len = 0;

    if (!channel_target(api, c, dev, chan, &ret)) {
        return ret;
    }
    json_t *j = body_object(c, rq, allowed, &ret);
    if (j == NULL) {
        return ret;
    }
    json_t *jt = json_object_get(j, "text"), *jh = json_object_get(j, "hex");
    json_t *d = NULL;
    if ((jt == NULL) == (jh == NULL) || (jt != NULL && !json_is_string(jt)) || (jh != NULL && !json_is_string(jh))) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "the body needs exactly one of \"text\" (a string) or "
                          "\"hex\" (bytes as hex digits), e.g. {\"text\": \"hello\"}");
    } else if (jt != NULL && (json_string_length(jt) == 0 || json_string_length(jt) > CHANNEL_DATA_MAX)) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "\"text\" is %zu bytes: a channel message is 1 to %u bytes",
                          json_string_length(jt), CHANNEL_DATA_MAX);
    } else if (jh != NULL && (!hex_to_bytes(json_string_value(jh), data, sizeof(data), &len) || len == 0)) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "\"hex\" must be 2 to %u hex digits (1 to %u bytes), "
                          "an even number of them", 2 * CHANNEL_DATA_MAX, CHANNEL_DATA_MAX);
    } else if ((d = api->store->ops->device_get(api->store, dev)) == NULL) {
        ret = reply_store_error(c);
    } else if (!json_is_true(json_object_get(d, "online"))) {
        /* Nothing queues channel data for an offline device (docs/api.md): say so, keep nothing. */
        ret = reply_error(c, MHD_HTTP_CONFLICT, "device '%s' is offline: channel data is delivered only "
                          "to a connected device; send it again when it is online", dev);
    } else if (!mq_connected(api->mq)) {
        ret = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "keeld is not connected to the broker; retry shortly");
    } else {
        if (jt != NULL) {
            len = json_string_length(jt);
            memcpy(data, json_string_value(jt), len);
        }
        uint64_t msg_id = 0;
        int64_t id = 0;
        if (mq_send_channel(api->mq, dev, chan, data, len, &msg_id) != 0) {
            ret = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the broker did not take the message; retry");
        } else if (api->store->ops->channel_add(api->store, dev, chan, "down", now_ms(), 0, msg_id, data, len,
                                                &id) != STORE_OK) {
            ret = reply_store_error(c);
        } else {
            ret = reply_json(c, MHD_HTTP_CREATED,
                             json_pack("{s:I, s:s, s:s, s:s, s:I}", "id", (json_int_t)id, "device", dev,
                                       "channel", chan, "direction", "down", "size", (json_int_t)len));
        }
    }
    json_decref(d);
    json_decref(j);
    return ret;
}

/* GET /v1/devices/D/channels/C[/stream]: stored messages (?direction=up|down|all), or follow. */
static enum MHD_Result get_channel(api_t *api, struct MHD_Connection *c, const char *dev, const char *chan,
                                   bool stream)
{
    enum MHD_Result ret;
    int64_t limit = 0;
    store_chan_query_t q = {.device = dev, .channel = chan, .direction = "up"};
    const char *dir = query(c, "direction");

    if (!channel_target(api, c, dev, chan, &ret) ||
        !query_int(c, "since", 0, INT64_MAX, 0, &q.since_ms, &ret) ||
        !query_int(c, "until", 0, INT64_MAX, 0, &q.until_ms, &ret) ||
        !query_int(c, "after", 0, INT64_MAX, 0, &q.after_id, &ret) ||
        !query_int(c, "limit", 1, LIST_LIMIT_MAX, 100, &limit, &ret)) {
        return ret;
    }
    if (dir != NULL && strcmp(dir, "up") != 0 && strcmp(dir, "down") != 0 && strcmp(dir, "all") != 0) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "direction '%s': use up (from the app), down (to it) or all",
                           dir);
    }
    if (dir != NULL) {
        q.direction = strcmp(dir, "all") == 0 ? NULL : dir;
    }
    q.limit = (int)limit;
    if (!stream) {
        json_t *arr = api->store->ops->channel_query(api->store, &q);
        chan_decorate(arr);
        return arr ? reply_json(c, MHD_HTTP_OK, json_pack("{s:o}", "messages", arr)) : reply_store_error(c);
    }
    if (dir != NULL && strcmp(dir, "up") != 0) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "a channel stream follows what the app sends (up) only");
    }
    sse_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return MHD_NO;
    }
    s->api = api;
    snprintf(s->device, sizeof(s->device), "%s", dev);
    snprintf(s->channel, sizeof(s->channel), "%s", chan);
    if (sse_resume(c, s, q.after_id) &&
        api->store->ops->channel_last_id(api->store, dev, chan, &s->after_id) != STORE_OK) {
        sse_free(s);
        return reply_store_error(c);
    }
    return sse_start(c, s, ": keel channel stream\n\n");
}

/* ---- app ELFs --------------------------------------------------------------------------------- */

static bool is_sha_hex(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/*
 * POST /v1/elfs (claimed NULL) or PUT /v1/elfs/SHA: keep an app ELF under the SHA-256 of the
 * image it builds, computed here with the same code `keel device install` uses (appelf), so an
 * ELF is never filed under an image it does not make.
 */
static enum MHD_Result put_elf(api_t *api, struct MHD_Connection *c, const char *claimed, const req_t *rq)
{
    char why[256], hex[65];
    uint8_t sha[32];
    uint32_t image_size = 0;
    bool created = false;
    const char *name = query(c, "name");

    if (claimed != NULL && !is_sha_hex(claimed)) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "'%s' is not an image SHA-256 (64 lowercase hex digits)",
                           claimed);
    }
    if (name != NULL && strlen(name) > 128) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "?name= is at most 128 characters");
    }
    if (rq->len == 0) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "the body must be the app's ELF file (application/octet-stream)");
    }
    if (appelf_identify((const uint8_t *)rq->body, rq->len, sha, &image_size, why, sizeof(why)) != KERR_OK) {
        return reply_error(c, MHD_HTTP_UNPROCESSABLE_CONTENT, "not a Keel app ELF for this board: %s", why);
    }
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", sha[i]);
    }
    if (claimed != NULL && strcmp(claimed, hex) != 0) {
        return reply_error(c, MHD_HTTP_UNPROCESSABLE_CONTENT,
                           "this ELF builds the app image %s, not %s: it is not the ELF of that image", hex,
                           claimed);
    }
    if (api->store->ops->elf_put(api->store, hex, name ? name : "", image_size, (const uint8_t *)rq->body, rq->len,
                                 now_ms(), &created) != STORE_OK) {
        return reply_store_error(c);
    }
    json_t *arr = api->store->ops->elfs_list(api->store, hex);
    json_t *e = json_array_size(arr) == 1 ? json_incref(json_array_get(arr, 0)) : NULL;
    json_decref(arr);
    if (e == NULL) {
        return reply_store_error(c);
    }
    json_object_set_new(e, "created", json_boolean(created));
    return reply_json(c, created ? MHD_HTTP_CREATED : MHD_HTTP_OK, e);
}

static enum MHD_Result get_elfs(api_t *api, struct MHD_Connection *c)
{
    const char *sha = query(c, "sha256");
    if (sha != NULL && !is_sha_hex(sha)) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "sha256 '%s' is not 64 lowercase hex digits", sha);
    }
    json_t *arr = api->store->ops->elfs_list(api->store, sha);
    return arr ? reply_json(c, MHD_HTTP_OK, json_pack("{s:o}", "elfs", arr)) : reply_store_error(c);
}

/* GET /v1/elfs/SHA: the ELF itself. */
static enum MHD_Result get_elf(api_t *api, struct MHD_Connection *c, const char *sha)
{
    uint8_t *elf = NULL;
    size_t len = 0;

    if (!is_sha_hex(sha)) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "'%s' is not an image SHA-256 (64 lowercase hex digits)", sha);
    }
    store_rc_t rc = api->store->ops->elf_get(api->store, sha, &elf, &len);
    if (rc == STORE_ENOTFOUND) {
        return reply_error(c, MHD_HTTP_NOT_FOUND, "no ELF for app image %s; upload it with `keel elf upload "
                           "APP.elf` (POST /v1/elfs)", sha);
    }
    if (rc != STORE_OK) {
        return reply_store_error(c);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, elf, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- commands --------------------------------------------------------------------------------- */

static enum MHD_Result post_command(api_t *api, struct MHD_Connection *c, const req_t *rq)
{
    static const char *const allowed[] = {"device", "kind", NULL};
    enum MHD_Result ret;
    json_t *j = body_object(c, rq, allowed, &ret);

    if (j == NULL) {
        return ret;
    }
    const char *device = json_string_value(json_object_get(j, "device"));
    const char *kind_s = json_string_value(json_object_get(j, "kind"));
    keel_v1_CommandKind kind = kproto_command_from_name(kind_s);
    if (device == NULL || kind_s == NULL) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST,
                          "the body needs \"device\" and \"kind\" as strings, e.g. "
                          "{\"device\": \"dev-1\", \"kind\": \"ping\"}");
    } else if (kind == keel_v1_CommandKind_COMMAND_KIND_UNKNOWN) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "unknown command kind '%s'; use ping, restart or reboot",
                          kind_s);
    } else if (known_device(api, c, device, &ret)) {
        bool supported = false;
        int64_t id = 0;
        if (api->store->ops->device_supports(api->store, device, kind, &supported) != STORE_OK) {
            ret = reply_store_error(c);
        } else if (!supported) {
            ret = reply_error(c, MHD_HTTP_CONFLICT,
                              "device '%s' does not implement '%s' (see \"commands\" in GET /v1/devices/%s)",
                              device, kind_s, device);
        } else if (api->store->ops->command_create(api->store, device, kind, now_ms(), &id) != STORE_OK) {
            ret = reply_store_error(c);
        } else {
            /* Committed: from here the command survives a crash and is sent after a restart. */
            mq_flush_commands(api->mq);
            json_t *cmd = api->store->ops->command_get(api->store, id);
            ret = cmd ? reply_json(c, MHD_HTTP_CREATED, cmd) : reply_store_error(c);
        }
    }
    json_decref(j);
    return ret;
}

static enum MHD_Result get_command(api_t *api, struct MHD_Connection *c, const char *rest)
{
    int64_t id = path_id(rest);

    if (id < 0) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "'%s' is not a command id (a positive number)", rest);
    }
    json_t *cmd = api->store->ops->command_get(api->store, id);
    return cmd ? reply_json(c, MHD_HTTP_OK, cmd)
               : reply_error(c, MHD_HTTP_NOT_FOUND, "no command %lld", (long long)id);
}

/* ---- debug sessions (relay only: keeld cannot read the sealed frames) -------------------------- */

#define DEBUG_HEX_MAX (2u * KPROTO_DEBUG_MAX + 1u)

/* "/v1/devices/<id>/debug" -> id (into dev); false for any other path. */
static bool debug_path(const char *url, char dev[KIDENT_ID_MAX + 1])
{
    static const char prefix[] = "/v1/devices/", suffix[] = "/debug";
    size_t n = strlen(url), p = sizeof(prefix) - 1u, q = sizeof(suffix) - 1u;

    if (n <= p + q || strncmp(url, prefix, p) != 0 || strcmp(url + n - q, suffix) != 0 ||
        n - p - q > KIDENT_ID_MAX) {
        return false;
    }
    memcpy(dev, url + p, n - p - q);
    dev[n - p - q] = '\0';
    return strchr(dev, '/') == NULL;
}

/* The device is known and online (a debug message to an offline device would be lost). */
static bool debug_device_ready(api_t *api, struct MHD_Connection *c, const char *device,
                               enum MHD_Result *ret)
{
    if (!known_device(api, c, device, ret)) {
        return false;
    }
    json_t *d = api->store->ops->device_get(api->store, device);
    bool online = d != NULL && json_is_true(json_object_get(d, "online"));
    json_decref(d);
    if (!online) {
        *ret = reply_error(c, MHD_HTTP_CONFLICT,
                           "device '%s' is offline: a debug session needs it connected (check "
                           "GET /v1/devices/%s and the device's console)", device, device);
        return false;
    }
    if (!mq_connected(api->mq)) {
        *ret = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                           "keeld is not connected to the broker; retry when GET /v1/health says "
                           "\"mqtt\": \"connected\"");
        return false;
    }
    return true;
}

/* POST /v1/devices/{id}/debug {"debug": "<hex of a Debug message>"}: publish it on debug/down. */
static enum MHD_Result post_debug(api_t *api, struct MHD_Connection *c, const char *device,
                                  const req_t *rq)
{
    static const char *const allowed[] = {"debug", NULL};
    enum MHD_Result ret;
    if (!debug_device_ready(api, c, device, &ret)) {
        return ret;
    }
    json_t *j = body_object(c, rq, allowed, &ret);
    if (j == NULL) {
        return ret;
    }
    const char *hex = json_string_value(json_object_get(j, "debug"));
    uint8_t raw[KPROTO_DEBUG_MAX];
    size_t len = 0;
    keel_v1_Debug d = keel_v1_Debug_init_zero;
    kerr_t err = hex != NULL ? kproto_hex_decode(hex, raw, sizeof(raw), &len) : KERR_INVAL;
    err = err == KERR_OK ? kproto_debug_decode(raw, len, &d) : err;
    if (hex == NULL) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST,
                          "the body needs \"debug\": the hex of one protobuf Debug message "
                          "(proto/keel.proto)");
    } else if (err != KERR_OK) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST,
                          "\"debug\" is not the hex of a Debug message with a session (%s)",
                          err == KERR_NOMEM ? "longer than the largest Debug message"
                                            : "malformed");
    } else if (d.which_kind == keel_v1_Debug_accept_tag) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST,
                          "an accept comes from the device; a client sends open, frame or close");
    } else if (mq_publish_debug(api->mq, device, &d) != 0) {
        ret = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "the broker did not take the message; retry");
    } else {
        char sess[24];
        snprintf(sess, sizeof(sess), "%llu", (unsigned long long)kproto_debug_session(&d));
        ret = reply_json(c, MHD_HTTP_ACCEPTED,
                         json_pack("{s:s, s:s}", "session", sess, "kind", kproto_debug_kind_name(&d)));
    }
    json_decref(j);
    return ret;
}

typedef struct dbg_stream {
    api_t *api;
    dbgrelay_stream_t *rs;
    int sock;
    char buf[DEBUG_HEX_MAX + 160];
    size_t len, off;
    bool ended;
    int64_t last_out_ms;
} dbg_stream_t;

/* One event into the (empty) buffer: {"debug": hex} or, at the end, {"end": reason}. */
static void dbg_event(dbg_stream_t *s, const char *key, const char *value)
{
    int n = snprintf(s->buf, sizeof(s->buf), "event: %s\ndata: {\"%s\":\"%s\"}\n\n", key, key, value);
    s->len = n > 0 && (size_t)n < sizeof(s->buf) ? (size_t)n : 0;
    s->off = 0;
}

/*
 * MHD corks the socket while it writes a response whose end it has not reached (TCP_CORK), and
 * Linux then holds a partial segment up to 200 ms: fine for a log stream, a disaster for a debug
 * session where every RSP packet waits for the previous answer. MHD calls the reader again as soon
 * as the previous event is handed to the socket, so uncorking here pushes that event out at once.
 */
static void dbg_flush(int sock)
{
    int off = 0, on = 1;
    if (sock >= 0) {
        setsockopt(sock, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
        setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }
}

static ssize_t dbg_read(void *cls, uint64_t pos, char *out, size_t max)
{
    dbg_stream_t *s = cls;

    dbg_flush(s->sock);

    while (s->off == s->len) {
        if (s->ended || atomic_load(&s->api->stopping)) {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        uint8_t raw[KPROTO_DEBUG_MAX];
        size_t n = 0;
        const char *reason = NULL;
        int got = dbgrelay_next(s->rs, s->sock, SSE_WAIT_SLICE_MS, raw, sizeof(raw), &n, &reason);
        if (got > 0) {
            char hex[DEBUG_HEX_MAX];
            if (kproto_hex_encode(raw, n, hex, sizeof(hex)) == KERR_OK) {
                dbg_event(s, "debug", hex);
            }
        } else if (got < 0) {
            if (strcmp(reason, "the debugger disconnected") == 0) {
                /* Nobody to tell; END_WITH_ERROR would make MHD log an "application error". */
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            dbg_event(s, "end", reason);
            s->ended = true;
        } else if (mono_ms() - s->last_out_ms >= SSE_KEEPALIVE_MS) {
            s->len = (size_t)snprintf(s->buf, sizeof(s->buf), ": keepalive\n\n");
            s->off = 0;
        }
    }
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(out, s->buf + s->off, n);
    s->off += n;
    s->last_out_ms = mono_ms();
    return (ssize_t)n;
}

/* The stream is over, whoever ended it: unregister, and tell the device unless it already knows. */
static void dbg_free(void *cls)
{
    dbg_stream_t *s = cls;
    char device[KIDENT_ID_MAX + 1];
    uint64_t session = 0;

    if (dbgrelay_detach(mq_debug_relay(s->api->mq), s->rs, device, &session)) {
        keel_v1_Debug d = keel_v1_Debug_init_zero;
        d.which_kind = keel_v1_Debug_close_tag;
        d.kind.close.session = session;
        snprintf(d.kind.close.reason, sizeof(d.kind.close.reason), "the debugger disconnected");
        mq_publish_debug(s->api->mq, device, &d);
    }
    KD_INFO("device '%s': debug session %llu stream closed", device, (unsigned long long)session);
    free(s);
}

/* GET /v1/devices/{id}/debug?session=S: the device's debug/up messages of session S as events. */
static enum MHD_Result get_debug_stream(api_t *api, struct MHD_Connection *c, const char *device)
{
    enum MHD_Result ret;
    const char *sv = query(c, "session");
    char *end = NULL;

    if (!debug_device_ready(api, c, device, &ret)) {
        return ret;
    }
    errno = 0;
    unsigned long long session = sv != NULL ? strtoull(sv, &end, 10) : 0;
    if (sv == NULL || errno != 0 || end == sv || *end != '\0' || session == 0 || sv[0] == '-') {
        return reply_error(c, MHD_HTTP_BAD_REQUEST,
                           "query parameter 'session' must be the session id, a whole number in "
                           "[1, 18446744073709551615]");
    }
    dbg_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return MHD_NO;
    }
    dbgrelay_attach_rc_t rc = dbgrelay_attach(mq_debug_relay(api->mq), device, session, &s->rs);
    if (rc != DBGRELAY_OK) {
        free(s);
        return rc == DBGRELAY_BUSY
                   ? reply_error(c, MHD_HTTP_CONFLICT,
                                 "debug session %llu of '%s' already has a stream; pick a new "
                                 "random session id", session, device)
                   : reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                 "keeld has %u debug sessions open, its limit; retry later",
                                 DBGRELAY_STREAMS_MAX);
    }
    s->api = api;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->sock = ci != NULL ? ci->connect_fd : -1;
    /* Registered before the first byte goes out: a client that sees the stream open may send its
     * open at once, and the device's accept cannot arrive before the relay knows the session. */
    s->len = (size_t)snprintf(s->buf, sizeof(s->buf), ": keel debug stream\n\n");
    s->last_out_ms = mono_ms();
    KD_INFO("device '%s': debug session %llu stream opened", device, session);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, dbg_read, s, dbg_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- tokens ----------------------------------------------------------------------------------- */

static enum MHD_Result post_token(api_t *api, struct MHD_Connection *c, const req_t *rq)
{
    static const char *const allowed[] = {"name", NULL};
    enum MHD_Result ret;
    json_t *j = body_object(c, rq, allowed, &ret);
    char tok[TOK_LEN + 1], hash[TOK_HASH_HEX];
    int64_t id = 0;

    if (j == NULL) {
        return ret;
    }
    json_t *jn = json_object_get(j, "name");
    const char *name = jn ? json_string_value(jn) : "";
    if (name == NULL || strlen(name) > 64) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "\"name\" must be a string of at most 64 characters");
    } else if (tok_generate(tok) != 0) {
        ret = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no randomness available; retry");
    } else {
        tok_hash(tok, strlen(tok), hash);
        if (api->store->ops->token_add(api->store, name, hash, now_ms(), &id) != STORE_OK) {
            ret = reply_store_error(c);
        } else {
            ret = reply_json(c, MHD_HTTP_CREATED,
                             json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "name", name, "token", tok));
        }
    }
    json_decref(j);
    return ret;
}

static enum MHD_Result get_tokens(api_t *api, struct MHD_Connection *c)
{
    json_t *arr = api->store->ops->tokens_list(api->store);

    return arr ? reply_json(c, MHD_HTTP_OK, json_pack("{s:o}", "tokens", arr)) : reply_store_error(c);
}

/* ---- bundles and deployments (ota.c decides and talks to devices) ------------------------------ */

static enum MHD_Result post_bundle(api_t *api, struct MHD_Connection *c, const req_t *rq)
{
    json_t *b = NULL;
    char why[512];
    unsigned status = ota_upload(api->ota, (const uint8_t *)(rq->body ? rq->body : ""), rq->len, &b,
                                 why, sizeof(why));
    return b ? reply_json(c, status, b) : reply_error(c, status, "%s", why);
}

static enum MHD_Result get_bundles(api_t *api, struct MHD_Connection *c)
{
    json_t *arr = api->store->ops->bundles_list(api->store);

    delta_describe_all(api->store, arr);
    return arr ? reply_json(c, MHD_HTTP_OK, json_pack("{s:o}", "bundles", arr)) : reply_store_error(c);
}

/* A bundle reference: its id, or its SHA-256 (64 hex digits). */
static json_t *find_bundle(api_t *api, const char *ref)
{
    int64_t id = path_id(ref);
    bool sha = strlen(ref) == 64 && strspn(ref, "0123456789abcdef") == 64;

    if (id < 0 && !sha) {
        return NULL;
    }
    json_t *b = api->store->ops->bundle_get(api->store, id > 0 ? id : 0, sha ? ref : NULL);
    delta_describe(api->store, b);
    return b;
}

static enum MHD_Result get_bundle(api_t *api, struct MHD_Connection *c, const char *ref)
{
    json_t *b = find_bundle(api, ref);

    return b ? reply_json(c, MHD_HTTP_OK, b)
             : reply_error(c, MHD_HTTP_NOT_FOUND, "no bundle '%s' (give its id or its SHA-256 in "
                           "lowercase hex; list them with GET /v1/bundles)", ref);
}

/* POST /v1/deployments {"bundle": ID|"SHA256", "device"|"tag": "..." | "all": true,
 *                       "force_after_s": N} */
static enum MHD_Result post_deployment(api_t *api, struct MHD_Connection *c, const req_t *rq)
{
    static const char *const allowed[] = {"bundle", "device", "tag", "all", "force_after_s", NULL};
    enum MHD_Result ret;
    json_t *j = body_object(c, rq, allowed, &ret);

    if (j == NULL) {
        return ret;
    }
    json_t *jb = json_object_get(j, "bundle"), *jf = json_object_get(j, "force_after_s");
    const char *device = json_string_value(json_object_get(j, "device"));
    const char *tag = json_string_value(json_object_get(j, "tag"));
    bool all = json_is_true(json_object_get(j, "all"));
    int targets = (json_object_get(j, "device") != NULL) + (json_object_get(j, "tag") != NULL) +
                  (json_object_get(j, "all") != NULL);
    char ref[80] = "";
    if (json_is_integer(jb)) {
        snprintf(ref, sizeof(ref), "%lld", (long long)json_integer_value(jb));
    } else if (json_is_string(jb) && json_string_length(jb) < sizeof(ref)) {
        snprintf(ref, sizeof(ref), "%s", json_string_value(jb));
    }
    json_t *bundle = ref[0] ? find_bundle(api, ref) : NULL;
    json_int_t force_after = jf ? json_integer_value(jf) : 0;
    char why[512];
    unsigned status;
    if (ref[0] == '\0') {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "the body needs \"bundle\": a bundle id or its "
                          "SHA-256 (upload it first with POST /v1/bundles)");
    } else if (bundle == NULL) {
        ret = reply_error(c, MHD_HTTP_NOT_FOUND, "no bundle '%s'; upload it first (POST /v1/bundles, "
                          "keel bundle upload) or list them with GET /v1/bundles", ref);
    } else if (json_object_get(bundle, "delta") != NULL) {
        ret = reply_error(c, 422, "bundle '%s' is a delta (a patch for devices that run one "
                          "base): deploy the full bundle; keeld sends each device its delta when "
                          "it has one for the device's base, else the pages that differ", ref);
    } else if (targets != 1 || (json_object_get(j, "device") && device == NULL) ||
               (json_object_get(j, "tag") && (tag == NULL || tag[0] == '\0' || strlen(tag) > 127)) ||
               (json_object_get(j, "all") && !all)) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "say where to deploy with exactly one of "
                          "\"device\": \"ID\", \"tag\": \"NAME\" or \"NAME=VALUE\", \"all\": true");
    } else if (jf != NULL && (!json_is_integer(jf) || force_after < 0 || force_after > FORCE_AFTER_MAX_S)) {
        ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "\"force_after_s\" must be a whole number of "
                          "seconds from 0 (never) to %d", FORCE_AFTER_MAX_S);
    } else if (device != NULL && !known_device(api, c, device, &ret)) {
        /* reply sent */
    } else if ((status = devtype_refuse(api->store, json_integer_value(json_object_get(bundle, "device_type")),
                                        device ? "device" : tag ? "tag" : "all",
                                        device ? device : tag ? tag : "", why, sizeof(why))) != 0) {
        ret = reply_error(c, status, "%s", why); /* ops: no targeted board can install it */
    } else {
        int64_t id = 0;
        int n = 0;
        const char *kind = device ? "device" : tag ? "tag" : "all";
        store_rc_t rc = api->store->ops->deployment_create(
            api->store, json_integer_value(json_object_get(bundle, "id")), kind,
            device ? device : tag ? tag : "", force_after, now_ms(), &id, &n);
        if (rc == STORE_ENOTFOUND) {
            ret = reply_error(c, MHD_HTTP_CONFLICT, tag ? "no device has tag '%s' (set tags with "
                              "PATCH /v1/devices/{id})" : "no device to deploy to%s: none has "
                              "connected yet", tag ? tag : "");
        } else if (rc != STORE_OK) {
            ret = reply_store_error(c);
        } else {
            /* Committed: from here a kill -9 loses nothing; devices are offered at their hello. */
            ota_deployment_started(api->ota, id);
            /* The first page of rows, as GET answers with ?limit (every row was 8 s at 100,000). */
            store_rows_query_t first = {-1, NULL, NULL, LIST_LIMIT_MAX, true};
            json_t *d = api->store->ops->deployment_get(api->store, id, &first);
            if (d != NULL) {
                json_object_set_new(d, "next", page_next(json_object_get(d, "devices"), first.limit, "device"));
            }
            ret = d ? reply_json(c, MHD_HTTP_CREATED, d) : reply_store_error(c);
        }
    }
    json_decref(bundle);
    json_decref(j);
    return ret;
}

static enum MHD_Result get_deployments(api_t *api, struct MHD_Connection *c)
{
    enum MHD_Result ret;
    int64_t limit;

    if (!query_int(c, "limit", 1, LIST_LIMIT_MAX, 100, &limit, &ret)) {
        return ret;
    }
    json_t *arr = api->store->ops->deployments_list(api->store, (int)limit);
    return arr ? reply_json(c, MHD_HTTP_OK, json_pack("{s:o}", "deployments", arr)) : reply_store_error(c);
}

/* GET /v1/deployments/{id}[?after=REV&wait=S]: with after, a long poll that answers as soon as
 * the deployment's rev passes REV, or after S seconds (default 20, at most 30) with it as is. */
static enum MHD_Result get_deployment(api_t *api, struct MHD_Connection *c, const char *rest)
{
    enum MHD_Result ret;
    int64_t id = path_id(rest), after, wait_s;

    if (id < 0) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "'%s' is not a deployment id (a positive number)", rest);
    }
    int64_t limit, changes;
    store_rows_query_t q = {-1, NULL, query(c, "phase"), 0, true};
    if (!query_int(c, "after", -1, INT64_MAX, -1, &after, &ret) ||
        !query_int(c, "wait", 0, WATCH_WAIT_MAX_S, 20, &wait_s, &ret) ||
        !query_int(c, "limit", 0, LIST_LIMIT_MAX, 0, &limit, &ret) ||
        !query_int(c, "changes", 0, 1, 0, &changes, &ret) ||
        !query_device_cursor(c, "cursor", &q.after, &ret)) {
        return ret;
    }
    static const char *const phases[] = {"pending", "offered", "done", "superseded", "held"};
    bool phase_ok = q.phase == NULL;
    for (size_t i = 0; i < 5 && !phase_ok; i++) {
        phase_ok = strcmp(q.phase, phases[i]) == 0;
    }
    if (!phase_ok) {
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "query parameter 'phase' is '%s'; use pending, "
                           "offered, done, superseded or held", q.phase);
    }
    /* changes=1: only the rows changed since rev `after` (a watch), without the event history. */
    q.changed_after = changes ? after : -1;
    q.events = !changes;
    q.limit = (int)limit;
    int64_t deadline = mono_ms() + wait_s * 1000;
    for (;;) {
        uint64_t gen = ota_changes(api->ota);
        json_t *d = api->store->ops->deployment_get(api->store, id, &q);
        if (d == NULL) {
            return reply_error(c, MHD_HTTP_NOT_FOUND, "no deployment %lld; list them with GET "
                               "/v1/deployments", (long long)id);
        }
        if (after < 0 || json_integer_value(json_object_get(d, "rev")) > after ||
            mono_ms() >= deadline || atomic_load(&api->stopping)) {
            json_object_set_new(d, "next", page_next(json_object_get(d, "devices"), q.limit, "device"));
            return reply_json(c, MHD_HTTP_OK, d);
        }
        json_decref(d);
        ota_wait(api->ota, gen, SSE_WAIT_SLICE_MS);
    }
}

static enum MHD_Result post_force(api_t *api, struct MHD_Connection *c, int64_t id)
{
    json_t *out = NULL;
    char why[512];
    unsigned status = ota_force(api->ota, id, &out, why, sizeof(why));

    return out ? reply_json(c, status, out) : reply_error(c, status, "%s", why);
}

/* "/v1/deployments/12/force" -> 12, else -1. */
static int64_t force_path(const char *url)
{
    static const char prefix[] = "/v1/deployments/", suffix[] = "/force";
    size_t n = strlen(url);
    char id[24];

    if (strncmp(url, prefix, sizeof(prefix) - 1) != 0 || n < sizeof(prefix) + sizeof(suffix) - 1 ||
        strcmp(url + n - (sizeof(suffix) - 1), suffix) != 0 ||
        n - (sizeof(prefix) - 1) - (sizeof(suffix) - 1) >= sizeof(id)) {
        return -1;
    }
    size_t len = n - (sizeof(prefix) - 1) - (sizeof(suffix) - 1);
    memcpy(id, url + sizeof(prefix) - 1, len);
    id[len] = '\0';
    return strchr(id, '/') ? -1 : path_id(id);
}

/* ---- routing ---------------------------------------------------------------------------------- */

static bool is(const char *method, const char *want)
{
    return strcmp(method, want) == 0;
}

/* Path after prefix when url starts with it and has a non-empty remainder without '/'. */
static const char *sub(const char *url, const char *prefix)
{
    size_t n = strlen(prefix);

    if (strncmp(url, prefix, n) != 0 || url[n] == '\0' || strchr(url + n, '/') != NULL) {
        return NULL;
    }
    return url + n;
}

static enum MHD_Result route(api_t *api, struct MHD_Connection *c, const char *url, const char *method,
                             const req_t *rq)
{
    enum MHD_Result ret;
    const char *rest;
    bool get = is(method, "GET"), post = is(method, "POST");

    if (strcmp(url, "/v1/health") == 0 && get) {
        return get_health(api, c);
    }
    /* ops: no token. main.c sets the document before the engine; the atomic load orders them. */
    if (strcmp(url, "/v1/openapi.yaml") == 0 && get && atomic_load(&api->rollouts) != NULL &&
        api->openapi != NULL) {
        struct MHD_Response *r = MHD_create_response_from_buffer(api->openapi_len, (void *)api->openapi,
                                                                 MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Content-Type", "application/yaml");
        ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    char who[128] = "";
    if (!authorized(api, c, &ret, who, sizeof(who))) {
        return ret;
    }
    if (strcmp(url, "/metrics") == 0 && get) {
        return get_metrics(api, c);
    }
    if (strcmp(url, "/v1/devices") == 0 && get) {
        return get_devices(api, c);
    }
    char dev[KIDENT_ID_MAX + 1], chan[KPROTO_CHANNEL_MAX + 1];
    bool stream = false;
    if (strncmp(url, "/v1/devices/", 12) == 0 && strstr(url + 12, "/channels/") != NULL) {
        if (!channel_path(url + 12, dev, chan, &stream)) {
            return reply_error(c, MHD_HTTP_NOT_FOUND, "no endpoint %s; channels are /v1/devices/DEVICE/channels/"
                               "NAME[/stream] with NAME 1 to %u of A-Z a-z 0-9 . _ -", url, KPROTO_CHANNEL_MAX);
        }
        if (get) {
            return get_channel(api, c, dev, chan, stream);
        }
        if (post && !stream) {
            return post_channel(api, c, dev, chan, rq);
        }
        return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "%s %s is not supported; use %s", method, url,
                           stream ? "GET" : "GET, POST");
    }
    if (strcmp(url, "/v1/elfs") == 0 && (get || post)) {
        return get ? get_elfs(api, c) : put_elf(api, c, NULL, rq);
    }
    if ((rest = sub(url, "/v1/elfs/")) != NULL && (get || is(method, "PUT"))) {
        return get ? get_elf(api, c, rest) : put_elf(api, c, rest, rq);
    }
    if (debug_path(url, dev) && (get || post)) {
        return get ? get_debug_stream(api, c, dev) : post_debug(api, c, dev, rq);
    }
    if ((rest = sub(url, "/v1/devices/")) != NULL && (get || is(method, "PATCH"))) {
        return get ? get_device(api, c, rest) : patch_device(api, c, rest, rq);
    }
    if (strcmp(url, "/v1/logs") == 0 && get) {
        return get_logs(api, c);
    }
    if (strcmp(url, "/v1/logs/stream") == 0 && get) {
        return get_log_stream(api, c);
    }
    if (strcmp(url, "/v1/crashes") == 0 && get) {
        return get_crashes(api, c);
    }
    if ((rest = sub(url, "/v1/crashes/")) != NULL && get) {
        return get_crash(api, c, rest);
    }
    if (strcmp(url, "/v1/commands") == 0 && post) {
        return post_command(api, c, rq);
    }
    if ((rest = sub(url, "/v1/commands/")) != NULL && get) {
        return get_command(api, c, rest);
    }
    if (strcmp(url, "/v1/tokens") == 0 && (get || post)) {
        return get ? get_tokens(api, c) : post_token(api, c, rq);
    }
    if (strcmp(url, "/v1/bundles") == 0 && (get || post)) {
        return get ? get_bundles(api, c) : post_bundle(api, c, rq);
    }
    if ((rest = sub(url, "/v1/bundles/")) != NULL && get) {
        return get_bundle(api, c, rest);
    }
    if (strcmp(url, "/v1/deployments") == 0 && (get || post)) {
        return get ? get_deployments(api, c) : post_deployment(api, c, rq);
    }
    if ((rest = sub(url, "/v1/deployments/")) != NULL && get) {
        return get_deployment(api, c, rest);
    }
    if (force_path(url) > 0 && post) {
        return post_force(api, c, force_path(url));
    }
    if (strcmp(url, "/v1/rollouts") == 0 || strncmp(url, "/v1/rollouts/", 13) == 0) { /* ops */
        json_t *out = NULL;
        unsigned status = rollout_api(atomic_load(&api->rollouts), api->store, api->ota, c, url, method,
                                      rq->body, rq->len, who, &api->stopping, &out);
        return reply_json(c, status, out);
    }
    /* A known path with another method: say which methods it has. */
    static const struct { const char *path; const char *methods; } known[] = {
        {"/v1/health", "GET"}, {"/v1/devices", "GET"}, {"/v1/devices/", "GET, PATCH"}, {"/v1/logs", "GET"},
        {"/v1/logs/stream", "GET"}, {"/v1/crashes", "GET"}, {"/v1/crashes/", "GET"},
        {"/v1/commands", "POST"}, {"/v1/commands/", "GET"}, {"/v1/tokens", "GET, POST"},
        {"/v1/elfs", "GET, POST"}, {"/v1/elfs/", "GET, PUT"},
        {"/v1/bundles", "GET, POST"}, {"/v1/bundles/", "GET"}, {"/v1/deployments", "GET, POST"},
        {"/v1/deployments/", "GET"}, {"/metrics", "GET"},
    };
    if (debug_path(url, dev)) {
        return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "%s %s is not supported; use GET, POST",
                           method, url);
    }
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        size_t n = strlen(known[i].path);
        bool prefix = known[i].path[n - 1] == '/';
        if (prefix ? sub(url, known[i].path) != NULL : strcmp(url, known[i].path) == 0) {
            return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "%s %s is not supported; use %s",
                               method, url, known[i].methods);
        }
    }
    return reply_error(c, MHD_HTTP_NOT_FOUND, "no endpoint %s %s; see docs/api.md", method, url);
}

/* Bundle and ELF uploads have their own, larger limits (an ELF with debug information is big). */
static long body_limit(const api_t *api, const req_t *rq)
{
    return rq->bundle ? api->cfg->max_bundle : rq->elf ? api->cfg->max_elf : api->cfg->max_body;
}

static const char *body_limit_flag(const req_t *rq)
{
    return rq->bundle ? "--max-bundle" : rq->elf ? "--max-elf" : "--max-body";
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
    api_t *api = cls;
    req_t *rq = *con_cls;

    if (rq == NULL) {
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return MHD_NO;
        }
        *con_cls = rq;
        /* A bundle upload is raw bytes with its own, larger limit. */
        rq->bundle = strcmp(url, "/v1/bundles") == 0 && is(method, "POST");
        rq->elf = strncmp(url, "/v1/elfs", 8) == 0;
        /* Refuse a declared oversize body before reading any of it. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > (unsigned long long)body_limit(api, rq)) {
            return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                               "request body of %s bytes is larger than the limit of %ld bytes (%s)",
                               cl, body_limit(api, rq), body_limit_flag(rq));
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        /* A body without Content-Length (chunked) is read and dropped once over the limit. */
        if (!rq->too_big && rq->len + *upload_data_size <= (size_t)body_limit(api, rq)) {
            char *b = realloc(rq->body, rq->len + *upload_data_size + 1);
            if (b == NULL) {
                return MHD_NO;
            }
            memcpy(b + rq->len, upload_data, *upload_data_size);
            rq->body = b;
            rq->len += *upload_data_size;
            rq->body[rq->len] = '\0';
        } else {
            rq->too_big = true;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->too_big) {
        return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                           "request body is larger than the limit of %ld bytes (%s)",
                           body_limit(api, rq), body_limit_flag(rq));
    }
    return route(api, c, url, method, rq);
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    req_t *rq = *con_cls;

    if (rq != NULL) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

api_t *api_start(const kd_config_t *cfg, store_t *store, mq_t *mq, ota_t *ota, admit_t *admit,
                 kd_notify_t *logs_notify, unsigned *out_port, char *err, size_t errcap)
{
    struct sockaddr_in sa;
    api_t *api = calloc(1, sizeof(*api));

    if (api == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->http_port);
    if (inet_pton(AF_INET, cfg->http_addr, &sa.sin_addr) != 1) {
        snprintf(err, errcap, "--http-addr '%s' is not an IPv4 address", cfg->http_addr);
        free(api);
        return NULL;
    }
    api->cfg = cfg;
    api->store = store;
    api->mq = mq;
    api->ota = ota;
    api->admit = admit;
    api->logs = logs_notify;
    atomic_init(&api->stopping, false);
    api->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                  MHD_USE_ERROR_LOG,
                              0, NULL, NULL, handle, api, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_NOTIFY_COMPLETED, request_done, api,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONN_MAX,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)API_CONN_PER_IP,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_IDLE_S, MHD_OPTION_END);
    if (api->d == NULL) {
        snprintf(err, errcap, "cannot listen on %s:%ld (in use? another keeld running?)", cfg->http_addr,
                 cfg->http_port);
        free(api);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(api->d, MHD_DAEMON_INFO_BIND_PORT);
    *out_port = info ? info->port : (unsigned)cfg->http_port;
    return api;
}

void api_stop(api_t *api)
{
    if (api == NULL) {
        return;
    }
    atomic_store(&api->stopping, true);
    kd_notify_bump(api->logs); /* wake waiting streams so they see stopping */
    MHD_stop_daemon(api->d);
    free(api);
}

/* ops: the rollout engine, once started (main.c); until then /v1/rollouts answers 503. */
void api_set_rollouts(api_t *api, rollouts_t *r)
{
    atomic_store(&api->rollouts, r);
}

/* ops: the OpenAPI description served at GET /v1/openapi.yaml (call before api_set_rollouts). */
void api_set_openapi(api_t *api, const unsigned char *doc, size_t len)
{
    api->openapi = doc;
    api->openapi_len = len;
}

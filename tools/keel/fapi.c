/* keel CLI: keeld REST client (see fapi.h). */
#include "fapi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "stack.h"

#define BODY_MAX (16u * 1024u * 1024u) /* no keeld answer is near this: a guard, not a limit */
#define CONNECT_TIMEOUT_S 5L
#define REQUEST_TIMEOUT_S 30L
#define SSE_LINE_MAX (64u * 1024u)
/* keeld sends a comment every 10 s of silence: 30 s without a byte is a dead connection. */
#define STREAM_SILENCE_S 30L
#define RETRY_MAX_MS 5000u

static bool curl_ready;

static bool global_init(const char *prog)
{
    if (curl_ready)
        return true;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s: cannot initialise libcurl\n", prog);
        return false;
    }
    curl_ready = true;
    return true;
}

void fapi_cleanup(void)
{
    if (curl_ready)
        curl_global_cleanup();
    curl_ready = false;
}

/* ---- configuration ---------------------------------------------------------------------------- */

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    size_t k = strspn(s, " \t");
    memmove(s, s + k, strlen(s + k) + 1);
}

/*
 * Read url/token from a key=value file into out (only keys not set yet). missing_ok: a file that
 * does not exist is not an error (the implicit locations).
 */
static bool read_config(const char *prog, const char *path, bool missing_ok, char *url, char *token,
                        char *token_src, size_t src_cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (missing_ok && errno == ENOENT)
            return true;
        fprintf(stderr, "%s: cannot read the config file %s: %s\n", prog, path, strerror(errno));
        return false;
    }
    char line[1024];
    unsigned lineno = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        trim(line);
        if (line[0] == '\0')
            continue;
        char *eq = strchr(line, '=');
        if (eq == NULL) {
            fprintf(stderr, "%s: %s:%u: expected key=value, got '%s'\n", prog, path, lineno, line);
            ok = false;
            break;
        }
        *eq = '\0';
        char *val = eq + 1;
        trim(line);
        trim(val);
        if (strcmp(line, "url") == 0) {
            if (url[0] == '\0')
                snprintf(url, FAPI_URL_MAX, "%s", val);
        } else if (strcmp(line, "token") == 0) {
            if (token[0] == '\0') {
                snprintf(token, FAPI_TOKEN_MAX, "%s", val);
                snprintf(token_src, src_cap, "the config file %s", path);
            }
        } else {
            fprintf(stderr, "%s: %s:%u: unknown key '%s' (known: url, token)\n", prog, path, lineno,
                    line);
            ok = false;
        }
    }
    fclose(f);
    return ok;
}

bool fapi_default_state(const char *prog, char *out, size_t cap)
{
    const char *st = getenv("KEEL_STATE");
    if (st != NULL && st[0] != '\0') {
        snprintf(out, cap, "%s", st);
        return true;
    }
    const char *home = getenv("HOME");
    if (home == NULL || home[0] == '\0') {
        fprintf(stderr, "%s: neither KEEL_STATE nor HOME is set: give --state DIR\n", prog);
        return false;
    }
    snprintf(out, cap, "%s/.local/state/keel", home);
    return true;
}

/* fapi_open; without a token found anywhere, says so only when tell_no_token. */
static bool open_api(const char *prog, const char *url_flag, const char *token_flag, fapi_t *out,
                     bool tell_no_token)
{
    memset(out, 0, sizeof *out);
    out->prog = prog;
    if (url_flag != NULL)
        snprintf(out->url, sizeof out->url, "%s", url_flag);
    if (token_flag != NULL) {
        snprintf(out->token, sizeof out->token, "%s", token_flag);
        snprintf(out->source, sizeof out->source, "--token");
    }
    const char *env_url = getenv("KEEL_URL"), *env_token = getenv("KEEL_TOKEN");
    if (out->url[0] == '\0' && env_url != NULL && env_url[0] != '\0')
        snprintf(out->url, sizeof out->url, "%s", env_url);
    if (out->token[0] == '\0' && env_token != NULL && env_token[0] != '\0') {
        snprintf(out->token, sizeof out->token, "%s", env_token);
        snprintf(out->source, sizeof out->source, "KEEL_TOKEN");
    }
    if (out->url[0] == '\0' || out->token[0] == '\0') {
        const char *cfg = getenv("KEEL_CONFIG");
        char path[FAPI_URL_MAX];
        if (cfg != NULL && cfg[0] != '\0') {
            if (!read_config(prog, cfg, false, out->url, out->token, out->source, sizeof out->source))
                return false;
        } else {
            const char *home = getenv("HOME");
            if (home != NULL && home[0] != '\0') {
                snprintf(path, sizeof path, "%s/.config/keel/config", home);
                if (!read_config(prog, path, true, out->url, out->token, out->source,
                                 sizeof out->source))
                    return false;
            }
            char state[FAPI_URL_MAX - 16];
            if ((out->url[0] == '\0' || out->token[0] == '\0') &&
                fapi_default_state(prog, state, sizeof state)) {
                snprintf(path, sizeof path, "%s/" FAPI_STATE_CONFIG, state);
                if (!read_config(prog, path, true, out->url, out->token, out->source,
                                 sizeof out->source))
                    return false;
            }
        }
    }
    if (out->url[0] == '\0')
        snprintf(out->url, sizeof out->url, "%s", FAPI_DEFAULT_URL);
    size_t n = strlen(out->url);
    while (n > 0 && out->url[n - 1] == '/')
        out->url[--n] = '\0';
    if (strncmp(out->url, "http://", 7) != 0 && strncmp(out->url, "https://", 8) != 0) {
        fprintf(stderr, "%s: server URL '%s' must start with http:// or https://\n", prog, out->url);
        return false;
    }
    if (out->token[0] == '\0') {
        if (!tell_no_token)
            return false;
        fprintf(stderr, "%s: no API token: give --token TOKEN, set KEEL_TOKEN, or put token=... in "
                        "the config file ($KEEL_CONFIG or ~/.config/keel/config). 'keel up' writes "
                        "one for its local stack; 'keel token create' makes one.\n", prog);
        return false;
    }
    return global_init(prog);
}

bool fapi_open(const char *prog, const char *url_flag, const char *token_flag, fapi_t *out)
{
    return open_api(prog, url_flag, token_flag, out, true);
}

bool fapi_open_configured(const char *prog, fapi_t *out)
{
    return open_api(prog, NULL, NULL, out, false);
}

/* ---- requests --------------------------------------------------------------------------------- */

typedef struct body {
    char *p;
    size_t n;
    bool overflow;
} body_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    body_t *b = user;
    size_t len = size * nmemb;
    if (b->n + len > BODY_MAX) {
        b->overflow = true;
        return 0;
    }
    char *p = realloc(b->p, b->n + len + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->n, data, len);
    b->p = p;
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

/* Say why nothing usable came back from the server (transport level). */
static void transport_error(const fapi_t *a, CURLcode rc, const char *errbuf)
{
    if (rc == CURLE_COULDNT_CONNECT) {
        fprintf(stderr, "%s: cannot connect to keeld at %s (%s).\n"
                        "  Is it running? Start the local stack with 'keel up', or point --url / "
                        "KEEL_URL at a running keeld.\n",
                a->prog, a->url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else {
        fprintf(stderr, "%s: request to keeld at %s failed: %s\n", a->prog, a->url,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
}

/* Say why keeld refused: its "error" text, plus a hint for the token case. */
static void http_error(const fapi_t *a, long status, const body_t *b)
{
    json_t *j = b->p != NULL ? json_loads(b->p, 0, NULL) : NULL;
    const char *msg = j != NULL ? json_string_value(json_object_get(j, "error")) : NULL;
    if (msg != NULL)
        fprintf(stderr, "%s: keeld answered %ld: %s\n", a->prog, status, msg);
    else
        fprintf(stderr, "%s: keeld answered HTTP %ld%s%.200s\n", a->prog, status,
                b->n ? ": " : "", b->n ? b->p : "");
    if (status == 401)
        fprintf(stderr, "  The token from %s was refused: give a valid one with --token, KEEL_TOKEN "
                        "or the config file ('keel token create' makes one).\n", a->source);
    json_decref(j);
}

/* Set up c (fresh, or reset for reuse: its connection stays in the cache) for path. */
static CURL *easy_for_on(CURL *c, const fapi_t *a, const char *path, struct curl_slist **hdrs,
                         char *errbuf)
{
    if (c == NULL)
        return NULL;
    char url[FAPI_URL_MAX + 1024];
    snprintf(url, sizeof url, "%s%s", a->url, path);
    char auth[FAPI_TOKEN_MAX + 32];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", a->token);
    *hdrs = curl_slist_append(*hdrs, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "keel-cli/1");
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    errbuf[0] = '\0';
    return c;
}

static CURL *easy_for(const fapi_t *a, const char *path, struct curl_slist **hdrs, char *errbuf)
{
    return easy_for_on(curl_easy_init(), a, path, hdrs, errbuf);
}

/*
 * One request with an optional body (ctype: its Content-Type) on conn's handle (kept alive between
 * calls). True on a 2xx answer, whose body is then in *b (the caller frees b->p); otherwise the
 * reason is printed (unless a->quiet).
 */
static bool perform(const fapi_t *a, fapi_conn_t *conn, const char *method, const char *path,
                    const char *ctype, const void *payload, size_t plen, body_t *b, long *out_status)
{
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE];
    long status = 0;

    if (conn->curl != NULL)
        curl_easy_reset(conn->curl);
    else
        conn->curl = curl_easy_init();
    CURL *c = easy_for_on(conn->curl, a, path, &hdrs, errbuf);
    if (c == NULL) {
        fprintf(stderr, "%s: out of memory\n", a->prog);
        curl_slist_free_all(hdrs);
        return false;
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (ctype != NULL) {
        char h[96];
        snprintf(h, sizeof h, "Content-Type: %s", ctype);
        hdrs = curl_slist_append(hdrs, h);
        /* No "Expect: 100-continue" round trip (curl waits up to 1 s for it on larger bodies). */
        hdrs = curl_slist_append(hdrs, "Expect:");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload != NULL ? payload : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)plen);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    bool ok = rc == CURLE_OK && status >= 200 && status <= 299;
    if (a->quiet || ok) {
        /* nothing to say */
    } else if (rc != CURLE_OK) {
        if (b->overflow)
            fprintf(stderr, "%s: keeld's answer is larger than %u bytes: refused\n", a->prog, BODY_MAX);
        else
            transport_error(a, rc, errbuf);
    } else {
        http_error(a, status, b);
    }
    if (out_status != NULL)
        *out_status = status;
    curl_slist_free_all(hdrs);
    return ok;
}

void fapi_conn_close(fapi_conn_t *conn)
{
    if (conn->curl != NULL)
        curl_easy_cleanup(conn->curl);
    conn->curl = NULL;
}

/* A 2xx answer's body as JSON into *out (message printed when it is not JSON). */
static bool parse_answer(const fapi_t *a, const body_t *b, json_t **out)
{
    json_error_t jerr;
    *out = b->p != NULL ? json_loads(b->p, 0, &jerr) : NULL;
    if (*out == NULL && !a->quiet)
        fprintf(stderr, "%s: keeld at %s sent an answer that is not JSON (is that URL a keeld?)\n",
                a->prog, a->url);
    return *out != NULL;
}

/* One request on conn whose answer is JSON (fapi_call and friends). */
static bool call_json(const fapi_t *a, fapi_conn_t *conn, const char *method, const char *path,
                      const char *ctype, const void *payload, size_t len, json_t **out,
                      long *out_status)
{
    body_t b = {0};

    *out = NULL;
    bool ok = perform(a, conn, method, path, ctype, payload, len, &b, out_status) &&
              parse_answer(a, &b, out);
    free(b.p);
    return ok;
}

bool fapi_call_conn(const fapi_t *a, fapi_conn_t *conn, const char *method, const char *path,
                    json_t *body, json_t **out, long *out_status)
{
    char *payload = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    bool ok = call_json(a, conn, method, path, body != NULL ? "application/json" : NULL, payload,
                        payload != NULL ? strlen(payload) : 0, out, out_status);
    free(payload);
    return ok;
}

bool fapi_call(const fapi_t *a, const char *method, const char *path, json_t *body, json_t **out,
               long *out_status)
{
    fapi_conn_t conn = {0};
    bool ok = fapi_call_conn(a, &conn, method, path, body, out, out_status);
    fapi_conn_close(&conn);
    return ok;
}

bool fapi_upload(const fapi_t *a, const char *method, const char *path, const void *data, size_t len,
                 json_t **out, long *out_status)
{
    fapi_conn_t conn = {0};
    bool ok = call_json(a, &conn, method, path, "application/octet-stream", data, len, out,
                        out_status);
    fapi_conn_close(&conn);
    return ok;
}

bool fapi_download(const fapi_t *a, const char *path, uint8_t **out, size_t *out_len, long *out_status)
{
    fapi_conn_t conn = {0};
    body_t b = {0};

    *out = NULL;
    *out_len = 0;
    bool ok = perform(a, &conn, "GET", path, NULL, NULL, 0, &b, out_status);
    fapi_conn_close(&conn);
    if (!ok) {
        free(b.p);
        return false;
    }
    *out = b.p != NULL ? (uint8_t *)b.p : malloc(1);
    *out_len = b.n;
    return *out != NULL;
}

/* ---- server-sent events ----------------------------------------------------------------------- */

/*
 * The stream parser: bytes arrive in arbitrary pieces; complete lines are handled as they end.
 * An event is the `id:` and `data:` lines before a blank line (docs/api.md); comments (`:`) only
 * tell us the stream is open.
 */
typedef struct sse {
    const fapi_t *a;
    char line[SSE_LINE_MAX];
    size_t line_len;
    bool line_overflow;
    char *data;
    size_t data_len;
    uint64_t event_id;
    uint64_t *last_id;
    bool opened;
    const char *opened_msg;
    void (*on_open)(void *ctx);
    fapi_event_fn on_event;
    void *ctx;
    bool stopped_by_callback;
    volatile int *stop;
    long status; /* HTTP status once headers arrived */
    body_t err;  /* body of a non-2xx answer */
} sse_t;

static bool sse_dispatch(sse_t *s)
{
    bool go = true;
    if (s->data_len > 0) {
        json_t *j = json_loadb(s->data, s->data_len, 0, NULL);
        if (j != NULL) {
            if (s->event_id > *s->last_id)
                *s->last_id = s->event_id;
            go = s->on_event(s->ctx, j);
            json_decref(j);
        } else {
            fprintf(stderr, "%s: skipped a stream event that is not JSON\n", s->a->prog);
        }
    }
    s->data_len = 0;
    s->event_id = 0;
    return go;
}

static bool sse_line(sse_t *s, char *line)
{
    if (line[0] == '\0')
        return sse_dispatch(s);
    if (line[0] == ':') {
        if (!s->opened && s->opened_msg != NULL)
            fprintf(stderr, "%s\n", s->opened_msg);
        if (!s->opened && s->on_open != NULL)
            s->on_open(s->ctx);
        s->opened = true;
        return true;
    }
    char *colon = strchr(line, ':');
    char *val = colon != NULL ? colon + 1 : line + strlen(line);
    if (colon != NULL)
        *colon = '\0';
    if (*val == ' ')
        val++;
    if (strcmp(line, "id") == 0) {
        s->event_id = strtoull(val, NULL, 10);
    } else if (strcmp(line, "data") == 0) {
        size_t n = strlen(val);
        char *p = realloc(s->data, s->data_len + n + 2);
        if (p == NULL)
            return false;
        s->data = p;
        if (s->data_len > 0)
            s->data[s->data_len++] = '\n';
        memcpy(s->data + s->data_len, val, n);
        s->data_len += n;
    }
    return true;
}

static size_t on_stream(char *data, size_t size, size_t nmemb, void *user)
{
    sse_t *s = user;
    size_t len = size * nmemb;
    if (s->status == 0 || s->status > 299) {
        /* Not a stream: collect the error body. */
        return on_body(data, size, nmemb, &s->err);
    }
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        if (ch == '\n') {
            s->line[s->line_len] = '\0';
            if (s->line_len > 0 && s->line[s->line_len - 1] == '\r')
                s->line[--s->line_len] = '\0';
            bool go = s->line_overflow ? true : sse_line(s, s->line);
            s->line_len = 0;
            s->line_overflow = false;
            if (!go) {
                s->stopped_by_callback = true;
                return 0;
            }
        } else if (s->line_len + 1 < sizeof s->line) {
            s->line[s->line_len++] = ch;
        } else {
            s->line_overflow = true; /* dropped: no keeld event is this long */
        }
    }
    return len;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *user)
{
    sse_t *s = user;
    size_t len = size * nmemb;
    if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
        const char *sp = memchr(data, ' ', len);
        s->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
    }
    return len;
}

static int on_progress(void *user, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    sse_t *s = user;
    return *s->stop ? 1 : 0;
}


static bool stream(const fapi_t *a, const char *path, const char *opened, volatile int *stop,
                   uint64_t *last_id, fapi_event_fn on_event, void *ctx, void (*on_open)(void *));

bool fapi_stream(const fapi_t *a, const char *path, const char *opened, volatile int *stop,
                 uint64_t *last_id, fapi_event_fn on_event, void *ctx)
{
    return stream(a, path, opened, stop, last_id, on_event, ctx, NULL);
}

bool fapi_stream_once(const fapi_t *a, const char *path, volatile int *stop,
                      void (*on_open)(void *ctx), fapi_event_fn on_event, void *ctx)
{
    uint64_t last_id = 0;
    return stream(a, path, NULL, stop, &last_id, on_event, ctx, on_open);
}

static bool stream(const fapi_t *a, const char *path, const char *opened, volatile int *stop,
                   uint64_t *last_id, fapi_event_fn on_event, void *ctx, void (*on_open)(void *))
{
    sse_t s;
    unsigned failures = 0, backoff = 250;
    bool result = false;

    memset(&s, 0, sizeof s);
    s.a = a;
    s.last_id = last_id;
    s.opened_msg = opened;
    s.on_open = on_open;
    s.on_event = on_event;
    s.ctx = ctx;
    s.stop = stop;
    while (!*stop) {
        struct curl_slist *hdrs = NULL;
        char errbuf[CURL_ERROR_SIZE];
        CURL *c = easy_for(a, path, &hdrs, errbuf);
        if (c == NULL) {
            fprintf(stderr, "%s: out of memory\n", a->prog);
            curl_slist_free_all(hdrs);
            break;
        }
        char resume[64];
        if (*last_id > 0) {
            snprintf(resume, sizeof resume, "Last-Event-ID: %llu", (unsigned long long)*last_id);
            hdrs = curl_slist_append(hdrs, resume);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        }
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, STREAM_SILENCE_S);
        s.status = 0;
        s.opened = false;
        s.line_len = 0;
        s.data_len = 0;
        s.err.n = 0;
        CURLcode rc = curl_easy_perform(c);
        bool was_open = s.opened;
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(c);
        if (*stop || s.stopped_by_callback) {
            result = true;
            break;
        }
        if (s.status > 299) {
            http_error(a, s.status, &s.err);
            break;
        }
        if (was_open && on_open != NULL) {
            fprintf(stderr, "%s: the stream from keeld ended (%s)\n", a->prog,
                    rc == CURLE_OK ? "closed by the server" : curl_easy_strerror(rc));
            break;
        }
        if (was_open) {
            failures = 0;
            backoff = 250;
            fprintf(stderr, "%s: the stream from keeld ended (%s); reconnecting\n", a->prog,
                    rc == CURLE_OK ? "closed by the server" : curl_easy_strerror(rc));
        } else if (on_open != NULL) {
            transport_error(a, rc, errbuf);
            break;
        } else if (++failures >= FAPI_STREAM_RETRIES) {
            transport_error(a, rc, errbuf);
            fprintf(stderr, "%s: gave up after %u attempts in a row\n", a->prog, failures);
            break;
        } else if (failures == 1) {
            transport_error(a, rc, errbuf);
            fprintf(stderr, "%s: retrying (Ctrl-C to stop)\n", a->prog);
        }
        /* Sleep in slices so Ctrl-C is prompt. */
        for (unsigned t = 0; t < backoff && !*stop; t += 50)
            stack_sleep_ms(50);
        backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
    }
    if (*stop)
        result = true;
    free(s.data);
    free(s.err.p);
    return result;
}

bool fapi_elf_upload(const fapi_t *a, const char *path, json_t **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (!a->quiet)
            fprintf(stderr, "%s: cannot read the ELF '%s': %s\n", a->prog, path, strerror(errno));
        return false;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    bool ok = true;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *p = cap <= BODY_MAX ? realloc(buf, cap) : NULL;
            if (p == NULL) {
                ok = false;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    ok = ok && !ferror(f);
    fclose(f);
    if (!ok) {
        if (!a->quiet)
            fprintf(stderr, "%s: cannot read the ELF '%s' (larger than %u bytes?)\n", a->prog, path, BODY_MAX);
        free(buf);
        return false;
    }
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    char *esc = curl_easy_escape(NULL, base, 0);
    char req[512];
    snprintf(req, sizeof req, "/v1/elfs?name=%s", esc != NULL ? esc : "");
    curl_free(esc);
    ok = fapi_upload(a, "POST", req, buf, n, out, NULL);
    free(buf);
    return ok;
}

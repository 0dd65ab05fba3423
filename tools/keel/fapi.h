/*
 * keel CLI: the client side of keeld's REST API (docs/api.md), over libcurl with JSON from jansson.
 *
 * Where the server and token come from, first match wins (docs/cli.md):
 *   1. --url / --token on the command line
 *   2. KEEL_URL / KEEL_TOKEN in the environment
 *   3. the config file: $KEEL_CONFIG if set, else ~/.config/keel/config if it exists, else the
 *      config that `keel up` wrote into its default state directory
 *      (~/.local/state/keel/secrets/config: the token is a stack secret, kept apart from the
 *      devices' tree, docs/security.md)
 *   4. url defaults to http://127.0.0.1:8080; there is no default token
 * The config file holds `key=value` lines (`url`, `token`); `#` starts a comment.
 *
 * Every function that fails has already printed a message saying what was wrong and what to do
 * (the HTTP error body's "error", or how to start the stack when nothing answers).
 */
#ifndef KEEL_TOOLS_KEEL_FAPI_H
#define KEEL_TOOLS_KEEL_FAPI_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#define FAPI_URL_MAX 512
#define FAPI_TOKEN_MAX 128
#define FAPI_DEFAULT_URL "http://127.0.0.1:8080"
/* Where `keel up` keeps its secrets (keys, the API token's config), relative to its state dir. */
#define FAPI_STATE_SECRETS "secrets"
#define FAPI_STATE_CONFIG FAPI_STATE_SECRETS "/config"

/* One keeld to talk to. */
typedef struct fapi {
    const char *prog; /* for messages: "keel devices" */
    char url[FAPI_URL_MAX];
    char token[FAPI_TOKEN_MAX];
    char source[FAPI_URL_MAX + 32]; /* where the token came from, for the 401 hint */
    bool quiet;                     /* fapi_call prints nothing (polling a server coming up) */
} fapi_t;

/*
 * Resolve url and token (flags may be NULL) into out. Fails (message printed) when the config file
 * named by KEEL_CONFIG is unreadable or has a bad line, or when no token is found at all.
 */
bool fapi_open(const char *prog, const char *url_flag, const char *token_flag, fapi_t *out);

/*
 * fapi_open without flags, for commands that use a server only when one is configured (`keel
 * device install` uploading its ELF): false, silently, when no token is found anywhere.
 */
bool fapi_open_configured(const char *prog, fapi_t *out);

/*
 * The default state directory of `keel up` ($KEEL_STATE, else ~/.local/state/keel) into out.
 * False (message printed) when neither KEEL_STATE nor HOME is set.
 */
bool fapi_default_state(const char *prog, char *out, size_t cap);

/*
 * One request: method (GET, POST, PATCH), path ("/v1/devices?x=y"), body (NULL or a JSON value to
 * send). On a 2xx answer stores the parsed JSON (caller json_decref's it) in *out and returns true;
 * otherwise prints the reason and returns false. *out_status (may be NULL) gets the HTTP status, or 0
 * when no answer came.
 */
bool fapi_call(const fapi_t *a, const char *method, const char *path, json_t *body, json_t **out,
               long *out_status);

/* A request whose body is raw bytes (application/octet-stream); the answer as for fapi_call. */
bool fapi_upload(const fapi_t *a, const char *method, const char *path, const void *data, size_t len,
                 json_t **out, long *out_status);

/*
 * GET path and keep the answer's bytes (*out: malloc'd, caller frees). False (message printed
 * unless a->quiet) on anything but a 2xx answer; *out_status (may be NULL) as for fapi_call.
 */
bool fapi_download(const fapi_t *a, const char *path, uint8_t **out, size_t *out_len, long *out_status);

/*
 * Upload the app ELF at path (POST /v1/elfs?name=<its file name>): keeld files it under the
 * SHA-256 of the app image it builds. *out: keeld's answer ({"sha256", "created", ...}).
 * False, with a message unless a->quiet, when the file cannot be read or keeld refuses it.
 */
bool fapi_elf_upload(const fapi_t *a, const char *path, json_t **out);
/*
 * A kept-alive connection to keeld for a series of calls (`keel debug` posts one per RSP packet:
 * no TCP handshake each time). Zero-initialise; fapi_conn_close() when done.
 */
typedef struct fapi_conn {
    void *curl;
} fapi_conn_t;
bool fapi_call_conn(const fapi_t *a, fapi_conn_t *conn, const char *method, const char *path,
                    json_t *body, json_t **out, long *out_status);
void fapi_conn_close(fapi_conn_t *conn);

/* Called once per log event of a stream; return false to stop following. */
typedef bool (*fapi_event_fn)(void *ctx, json_t *entry);

/*
 * Follow GET path (a server-sent-event stream) until *stop becomes true (the caller's SIGINT
 * handler sets it) or on_event returns false. `opened` is printed to stderr when the stream is
 * established (every time, also after a reconnect). When the connection drops the stream is
 * reopened with Last-Event-ID = the last id seen (*last_id, 0 = none yet), backing off up to 5 s;
 * after FAPI_STREAM_RETRIES failed attempts in a row it gives up. Returns true when stopped by
 * *stop or on_event, false (message printed) on an HTTP error or after giving up.
 */
#define FAPI_STREAM_RETRIES 60
bool fapi_stream(const fapi_t *a, const char *path, const char *opened, volatile int *stop,
                 uint64_t *last_id, fapi_event_fn on_event, void *ctx);

/*
 * Like fapi_stream, but one connection only (no resume: a debug session's stream cannot be
 * resumed) and on_open(ctx) is called once the stream is established (its first comment line).
 * Returns true when stopped by *stop or on_event, false (message printed) when the connection
 * failed, was refused or ended by itself.
 */
bool fapi_stream_once(const fapi_t *a, const char *path, volatile int *stop,
                      void (*on_open)(void *ctx), fapi_event_fn on_event, void *ctx);

/* Release libcurl's global state (call once before exit; harmless if nothing was done). */
void fapi_cleanup(void);

#endif /* KEEL_TOOLS_KEEL_FAPI_H */

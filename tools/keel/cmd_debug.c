/*
 * keel debug DEVICE --key DEBUG.key [--port 3333]: a GDB server on 127.0.0.1 whose target is the
 * app on a fleet device, through keeld and the broker (docs/debug.md "Transport").
 *
 *   gdb ──TCP 127.0.0.1:PORT── keel debug ══ POST /v1/devices/D/debug ══► keeld ══ debug/down ══► device
 *                                         ◄═ GET  /v1/devices/D/debug?session=S (events) ═ debug/up ═╝
 *
 * The RSP bytes are sealed here and opened only by the microvisor (dbgsess.h): keeld and the broker
 * relay ciphertext. The session is authenticated both ways: DebugOpen is signed with the debug key
 * (the device checks it against the debug key of its installed bundle), DebugAccept with the
 * device's own key, checked here against its certificate, which must be issued by the fleet CA to
 * that device id.
 *
 * Threads: the main thread accepts gdb, reads its bytes and posts sealed frames (one kept-alive
 * connection to keeld); a second thread follows the event stream and writes opened frames to gdb.
 * They share the session keys, each using only its own direction's half of dbgsess_t.
 *
 * Between gdb and the session sits the round-trip-saving relay (keel/rspcache.h: memory reads
 * answered from what was read since the last resume, in 64-byte lines; the stub's fixed query
 * answers kept), unless --no-cache. Its state is under d->lock; bytes it has for the device are
 * queued in d->out and posted by the main thread (woken through a pipe when the stream thread
 * queued them).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#include "keel/dbgsess.h"
#include "keel/identity.h"
#include "keel/kcrypto.h"
#include "keel/kproto.h"
#include "keel/rspcache.h"

#include "cli.h"
#include "cmd.h"
#include "debugcert.h"
#include "fapi.h"
#include "keyfile.h"
#include "stack.h"

#define DEBUG_PORT_DEFAULT 3333u
#define ACCEPT_WAIT_DEFAULT_S 15u
#define IDLE_DEFAULT_S 3600u
#define POLL_SLICE_MS 100

enum {
    OPT_HELP = 'h',
    OPT_URL = 300,
    OPT_TOKEN,
    OPT_KEY,
    OPT_PORT,
    OPT_DEVICE_CERT,
    OPT_DEVICE_STATE,
    OPT_FLEET_CA,
    OPT_STATE,
    OPT_TIMEOUT,
    OPT_IDLE,
    OPT_NO_CACHE,
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

/* ---- the session ------------------------------------------------------------------------------ */

typedef struct dbg {
    const char *prog;
    const char *device;
    fapi_t api;
    fapi_conn_t conn;         /* main thread's kept-alive connection for posts */
    char path[160];           /* /v1/devices/D/debug */
    uint64_t session;
    dbgsess_t sess;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool opened;              /* the event stream is registered at keeld */
    bool have_accept;
    keel_v1_DebugAccept accept;
    bool closed;              /* the device (or keeld for it) ended the session */
    char close_reason[128];
    bool stream_done;
    volatile int stop_stream;
    bool established;         /* keys derived: frames may flow */
    int gdb_fd;               /* -1 until gdb connects */
    uint64_t last_activity_ms;
    unsigned long frames_up, frames_down, bad_frames;

    bool use_cache;           /* the rspcache relay between gdb and the session */
    rspcache_t cache;
    uint8_t out[8192];        /* RSP bytes for the device, queued by the relay */
    size_t out_len;
    bool out_overflow;
    int wake[2];              /* the stream thread queued bytes: the main thread posts them */
} dbg_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return; /* gdb went away: the main loop sees the hang-up */
        p += k;
        n -= (size_t)k;
    }
}

static void mark_closed(dbg_t *d, const char *reason)
{
    pthread_mutex_lock(&d->lock);
    if (!d->closed) {
        d->closed = true;
        snprintf(d->close_reason, sizeof d->close_reason, "%s", reason);
    }
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void on_open(void *ctx)
{
    dbg_t *d = ctx;
    pthread_mutex_lock(&d->lock);
    d->opened = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* rspcache outputs (d->lock held). */
static void cache_to_gdb(void *ctx, const uint8_t *data, size_t n)
{
    dbg_t *d = ctx;
    if (d->gdb_fd >= 0)
        write_all(d->gdb_fd, data, n);
}

static void cache_to_stub(void *ctx, const uint8_t *data, size_t n)
{
    dbg_t *d = ctx;
    if (n > sizeof d->out - d->out_len) {
        d->out_overflow = true; /* cannot happen with gdb waiting for its replies */
        return;
    }
    memcpy(d->out + d->out_len, data, n);
    d->out_len += n;
    uint8_t b = 1;
    if (write(d->wake[1], &b, 1) < 0) { /* full pipe: the main thread is awake anyway */
    }
}

/* A frame from the device: open it and hand the RSP bytes to gdb. */
static void on_frame(dbg_t *d, const keel_v1_DebugFrame *f)
{
    uint8_t plain[DBGSESS_PLAIN_MAX];
    size_t n = 0;
    pthread_mutex_lock(&d->lock);
    bool ready = d->established;
    int fd = d->gdb_fd;
    pthread_mutex_unlock(&d->lock);
    if (!ready) {
        d->bad_frames++;
        return;
    }
    kerr_t err = dbgsess_open(&d->sess, f->seq, f->sealed.bytes, f->sealed.size, plain,
                              sizeof plain, &n);
    if (err != KERR_OK) {
        /* Never passed on: a frame that fails here was altered, replayed or is not ours. */
        d->bad_frames++;
        fprintf(stderr, "%s: dropped a frame from the device (seq %u): %s\n", d->prog, f->seq,
                kerr_str(err));
        return;
    }
    d->frames_up++;
    d->last_activity_ms = mono_ms();
    if (d->use_cache) {
        pthread_mutex_lock(&d->lock);
        rspcache_from_stub(&d->cache, plain, n);
        pthread_mutex_unlock(&d->lock);
    } else if (fd >= 0) {
        write_all(fd, plain, n);
    }
}

static bool on_event(void *ctx, json_t *e)
{
    dbg_t *d = ctx;
    const char *end = json_string_value(json_object_get(e, "end"));
    const char *hex = json_string_value(json_object_get(e, "debug"));
    if (end != NULL) {
        mark_closed(d, end);
        return false;
    }
    uint8_t raw[KPROTO_DEBUG_MAX];
    size_t len = 0;
    keel_v1_Debug m = keel_v1_Debug_init_zero;
    if (hex == NULL || kproto_hex_decode(hex, raw, sizeof raw, &len) != KERR_OK ||
        kproto_debug_decode(raw, len, &m) != KERR_OK || kproto_debug_session(&m) != d->session) {
        fprintf(stderr, "%s: ignored a malformed debug event from keeld\n", d->prog);
        return true;
    }
    switch (m.which_kind) {
    case keel_v1_Debug_accept_tag:
        pthread_mutex_lock(&d->lock);
        if (!d->have_accept) {
            d->have_accept = true;
            d->accept = m.kind.accept;
        }
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        return true;
    case keel_v1_Debug_frame_tag:
        on_frame(d, &m.kind.frame);
        return true;
    case keel_v1_Debug_close_tag:
        mark_closed(d, m.kind.close.reason[0] ? m.kind.close.reason : "no reason given");
        return false;
    default:
        return true;
    }
}

static void *stream_thread(void *arg)
{
    dbg_t *d = arg;
    char path[200];
    snprintf(path, sizeof path, "%s?session=%llu", d->path, (unsigned long long)d->session);
    bool ok = fapi_stream_once(&d->api, path, &d->stop_stream, on_open, on_event, d);
    if (!ok)
        mark_closed(d, "the event stream from keeld ended");
    pthread_mutex_lock(&d->lock);
    d->stream_done = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* Post one Debug message. False (message printed) when keeld refused it. */
static bool post(dbg_t *d, const keel_v1_Debug *m)
{
    uint8_t raw[KPROTO_DEBUG_MAX];
    char hex[2 * KPROTO_DEBUG_MAX + 1];
    size_t len = 0;
    if (kproto_debug_encode(m, raw, sizeof raw, &len) != KERR_OK ||
        kproto_hex_encode(raw, len, hex, sizeof hex) != KERR_OK) {
        fprintf(stderr, "%s: cannot encode a debug message\n", d->prog);
        return false;
    }
    json_t *body = json_pack("{s:s}", "debug", hex), *out = NULL;
    bool ok = fapi_call_conn(&d->api, &d->conn, "POST", d->path, body, &out, NULL);
    json_decref(body);
    json_decref(out);
    return ok;
}

static void post_close(dbg_t *d, const char *reason)
{
    keel_v1_Debug m = keel_v1_Debug_init_zero;
    m.which_kind = keel_v1_Debug_close_tag;
    m.kind.close.session = d->session;
    snprintf(m.kind.close.reason, sizeof m.kind.close.reason, "%s", reason);
    d->api.quiet = true; /* best effort: the device may be gone already */
    post(d, &m);
    d->api.quiet = false;
}

/* Wait until cond_fn(d) or timeout/signal; lock held by the caller. */
static bool wait_for(dbg_t *d, bool (*cond_fn)(const dbg_t *), unsigned timeout_ms)
{
    uint64_t until = mono_ms() + timeout_ms;
    while (!cond_fn(d) && !got_signal && mono_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += POLL_SLICE_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->cond, &d->lock, &ts);
    }
    return cond_fn(d);
}

static bool opened_or_done(const dbg_t *d) { return d->opened || d->stream_done; }
static bool accepted_or_done(const dbg_t *d) { return d->have_accept || d->closed || d->stream_done; }

/* DebugOpen, then DebugAccept checked against the device's key; derive the session keys. */
static bool handshake(dbg_t *d, const keyfile_key_t *debug_key, const uint8_t dev_pub[DBGSESS_PUB_SIZE],
                      unsigned wait_s)
{
    dbgsess_eph_t eph;
    uint8_t h[DBGSESS_HASH_SIZE];
    keel_v1_Debug m = keel_v1_Debug_init_zero;
    m.which_kind = keel_v1_Debug_open_tag;
    m.kind.open.session = d->session;
    if (dbgsess_keygen(&eph, kc_random, NULL) != KERR_OK ||
        dbgsess_open_hash(d->device, d->session, eph.pub, h) != KERR_OK ||
        dbgsess_sign(debug_key->priv, h, m.kind.open.signature) != KERR_OK) {
        fprintf(stderr, "%s: cannot make the session keys or sign with the debug key\n", d->prog);
        return false;
    }
    memcpy(m.kind.open.client_pub, eph.pub, DBGSESS_PUB_SIZE);
    if (!post(d, &m)) {
        dbgsess_wipe(&eph, sizeof eph);
        return false;
    }
    pthread_mutex_lock(&d->lock);
    bool got = wait_for(d, accepted_or_done, wait_s * 1000u) && d->have_accept;
    keel_v1_DebugAccept acc = d->accept;
    pthread_mutex_unlock(&d->lock);
    if (!got) {
        dbgsess_wipe(&eph, sizeof eph);
        if (got_signal)
            return false;
        if (d->closed)
            fprintf(stderr, "%s: the session ended before the device answered: %s\n", d->prog,
                    d->close_reason);
        else
            fprintf(stderr, "%s: %s did not answer the debug request within %u s: is it running "
                            "firmware with debug support, and online ('keel devices')?\n",
                    d->prog, d->device, wait_s);
        return false;
    }
    if (!acc.ok) {
        dbgsess_wipe(&eph, sizeof eph);
        fprintf(stderr, "%s: %s refused the debug session: %s\n", d->prog, d->device,
                acc.detail[0] ? acc.detail : "no reason given");
        return false;
    }
    kerr_t err = dbgsess_accept_hash(d->device, d->session, eph.pub, acc.device_pub, h);
    err = err == KERR_OK ? dbgsess_verify(dev_pub, h, acc.signature) : err;
    if (err != KERR_OK) {
        dbgsess_wipe(&eph, sizeof eph);
        fprintf(stderr, "%s: the answer to the debug request is not signed by %s's certificate key "
                        "(%s): refusing to talk to it\n", d->prog, d->device, kerr_str(err));
        return false;
    }
    pthread_mutex_lock(&d->lock);
    err = dbgsess_start(&d->sess, DBGSESS_CLIENT, d->session, &eph, acc.device_pub);
    d->established = err == KERR_OK;
    pthread_mutex_unlock(&d->lock);
    if (err != KERR_OK) {
        fprintf(stderr, "%s: cannot derive the session keys: %s\n", d->prog, kerr_str(err));
        return false;
    }
    return true;
}

static int listen_local(const char *prog, uint32_t port)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0)
        return -1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1) != 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%u (%s): pick another --port\n", prog,
                port, strerror(errno));
        close(ls);
        return -1;
    }
    return ls;
}

/* Seal and post RSP bytes for the device, in frames of at most DBGSESS_PLAIN_MAX. NULL, or why
 * the session cannot go on. */
static const char *send_to_device(dbg_t *d, const uint8_t *data, size_t len)
{
    uint8_t sealed[DBGSESS_SEALED_MAX];
    for (size_t off = 0; off < len;) {
        size_t n = len - off < DBGSESS_PLAIN_MAX ? len - off : DBGSESS_PLAIN_MAX;
        size_t slen = 0;
        keel_v1_Debug m = keel_v1_Debug_init_zero;
        m.which_kind = keel_v1_Debug_frame_tag;
        m.kind.frame.session = d->session;
        kerr_t err = dbgsess_seal(&d->sess, data + off, n, sealed, sizeof sealed, &slen,
                                  &m.kind.frame.seq);
        if (err != KERR_OK) {
            fprintf(stderr, "%s: cannot seal a frame: %s\n", d->prog, kerr_str(err));
            return "keel debug failed to seal a frame";
        }
        memcpy(m.kind.frame.sealed.bytes, sealed, slen);
        m.kind.frame.sealed.size = (pb_size_t)slen;
        if (!post(d, &m))
            return "keel debug lost keeld";
        d->frames_down++;
        off += n;
    }
    return NULL;
}

/* What the relay queued for the device goes out. */
static const char *flush_out(dbg_t *d)
{
    static uint8_t out[sizeof d->out];
    pthread_mutex_lock(&d->lock);
    size_t n = d->out_len;
    bool overflow = d->out_overflow;
    memcpy(out, d->out, n);
    d->out_len = 0;
    pthread_mutex_unlock(&d->lock);
    if (overflow)
        return "keel debug's relay queue overflowed";
    return n ? send_to_device(d, out, n) : NULL;
}

/* Relay gdb -> device until gdb leaves, the session ends, a signal, or the idle limit. Returns the
 * reason for the DebugClose (NULL when the device ended it). */
static const char *relay(dbg_t *d, int ls, unsigned idle_s, bool *failed)
{
    uint8_t buf[DBGSESS_PLAIN_MAX];
    d->last_activity_ms = mono_ms();
    for (;;) {
        pthread_mutex_lock(&d->lock);
        bool closed = d->closed;
        int fd = d->gdb_fd;
        pthread_mutex_unlock(&d->lock);
        if (closed)
            return NULL;
        if (got_signal)
            return got_signal == SIGINT ? "keel debug interrupted (SIGINT)" : "keel debug terminated";
        if (idle_s > 0 && mono_ms() - d->last_activity_ms > idle_s * 1000ull) {
            fprintf(stderr, "%s: no traffic for %u s (--idle): ending the session\n", d->prog, idle_s);
            return "idle timeout";
        }
        struct pollfd p[2] = {{.fd = fd >= 0 ? fd : ls, .events = POLLIN},
                              {.fd = d->wake[0], .events = POLLIN}};
        if (poll(p, 2, POLL_SLICE_MS) <= 0)
            continue;
        if (p[1].revents & POLLIN) {
            uint8_t drain[64];
            (void)read(d->wake[0], drain, sizeof drain);
            const char *why = flush_out(d);
            if (why != NULL) {
                *failed = true;
                return why;
            }
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if (fd < 0) {
            int g = accept(ls, NULL, NULL);
            if (g < 0)
                continue;
            int one = 1;
            setsockopt(g, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            pthread_mutex_lock(&d->lock);
            d->gdb_fd = g;
            rspcache_init(&d->cache, cache_to_gdb, d, cache_to_stub, d);
            pthread_mutex_unlock(&d->lock);
            fprintf(stderr, "%s: gdb connected\n", d->prog);
            d->last_activity_ms = mono_ms();
            continue;
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "%s: gdb disconnected\n", d->prog);
            return "the debugger detached";
        }
        const char *why;
        if (d->use_cache) {
            pthread_mutex_lock(&d->lock);
            rspcache_from_gdb(&d->cache, buf, (size_t)n);
            pthread_mutex_unlock(&d->lock);
            why = flush_out(d);
        } else {
            why = send_to_device(d, buf, (size_t)n);
        }
        if (why != NULL) {
            *failed = true;
            return why;
        }
        d->last_activity_ms = mono_ms();
    }
}

static int run_debug(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, OPT_HELP},
        {"url", required_argument, NULL, OPT_URL},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"key", required_argument, NULL, OPT_KEY},
        {"port", required_argument, NULL, OPT_PORT},
        {"device-cert", required_argument, NULL, OPT_DEVICE_CERT},
        {"device-state", required_argument, NULL, OPT_DEVICE_STATE},
        {"fleet-ca", required_argument, NULL, OPT_FLEET_CA},
        {"state", required_argument, NULL, OPT_STATE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"idle", required_argument, NULL, OPT_IDLE},
        {"no-cache", no_argument, NULL, OPT_NO_CACHE},
        {0}};
    const char *url = NULL, *token = NULL, *key_path = NULL, *cert = NULL, *dev_state = NULL,
               *ca = NULL, *state_opt = NULL;
    uint32_t port = DEBUG_PORT_DEFAULT, wait_s = ACCEPT_WAIT_DEFAULT_S, idle_s = IDLE_DEFAULT_S;
    bool no_cache = false;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_HELP:
            printf("usage: %s DEVICE --key DEBUG.key [--port PORT] [options]\n\n"
                   "Debug the app on DEVICE with gdb: a GDB server on 127.0.0.1:PORT whose packets\n"
                   "travel end-to-end encrypted through keeld and the broker to the device.\n"
                   "  gdb-multiarch APP.elf -ex 'target remote 127.0.0.1:PORT'\n\n"
                   "options:\n"
                   "  --key FILE          the debug private key (PEM) whose public half is the\n"
                   "                      debug key of the bundle installed on DEVICE\n"
                   "  --port PORT         GDB server port on 127.0.0.1 (default %u)\n"
                   "  --device-cert FILE  DEVICE's certificate (PEM); default: from the stack's\n"
                   "                      state (STATE/devices/DEVICE, or STATE/DEVICE.pem)\n"
                   "  --device-state DIR  an emulated device's state directory to take it from\n"
                   "  --fleet-ca FILE     the CA that issued it (default STATE/ca.pem)\n"
                   "  --state DIR         the stack's state (default: KEEL_STATE, ~/.local/state/keel)\n"
                   "  --timeout S         wait at most S s for the device to answer (default %u)\n"
                   "  --idle S            end the session after S s without traffic (default %u,\n"
                   "                      0 = never)\n"
                   "  --no-cache          relay every packet to the device (by default memory\n"
                   "                      gdb read since the last resume is answered here)\n"
                   "  --url URL, --token TOKEN  keeld (as for every fleet command)\n"
                   "  -h, --help          this help\n\n"
                   "The session ends when gdb detaches or disconnects, on Ctrl-C, when the device\n"
                   "ends it or goes offline, and after --idle; the device then removes every\n"
                   "breakpoint and lets the app run on.\n",
                   prog, DEBUG_PORT_DEFAULT, ACCEPT_WAIT_DEFAULT_S, IDLE_DEFAULT_S);
            return CLI_EXIT_OK;
        case OPT_URL: url = optarg; break;
        case OPT_TOKEN: token = optarg; break;
        case OPT_KEY: key_path = optarg; break;
        case OPT_DEVICE_CERT: cert = optarg; break;
        case OPT_DEVICE_STATE: dev_state = optarg; break;
        case OPT_FLEET_CA: ca = optarg; break;
        case OPT_STATE: state_opt = optarg; break;
        case OPT_NO_CACHE: no_cache = true; break;
        case OPT_PORT:
            if (!cli_parse_u32(prog, "--port", optarg, 1, 65535, &port))
                return CLI_EXIT_USAGE;
            break;
        case OPT_TIMEOUT:
            if (!cli_parse_u32(prog, "--timeout", optarg, 1, 3600, &wait_s))
                return CLI_EXIT_USAGE;
            break;
        case OPT_IDLE:
            if (!cli_parse_u32(prog, "--idle", optarg, 0, 86400, &idle_s))
                return CLI_EXIT_USAGE;
            break;
        default:
            return cli_bad_option(prog, c, argv);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error(prog, optind >= argc ? "which device? give its id"
                                                    : "one device only ('%s' is extra)",
                               argv[argc - 1]);
    const char *device = argv[optind];
    if (kident_check_id(device) != KERR_OK)
        return cli_usage_error(prog, "'%s' is not a device id (1 to %u of A-Z a-z 0-9 . _ -)",
                               device, KIDENT_ID_MAX);
    if (key_path == NULL)
        return cli_usage_error(prog, "--key DEBUG.key is required: the private key whose public "
                                     "half is the debug key of the installed bundle");
    if (cert != NULL && dev_state != NULL)
        return cli_usage_error(prog, "give --device-cert or --device-state, not both");

    keyfile_key_t key;
    char why[256];
    if (!keyfile_load(key_path, true, &key, why, sizeof why))
        return cli_fail(prog, "--key %s: %s", key_path, why);
    char state[STACK_PATH_MAX];
    if (state_opt != NULL)
        snprintf(state, sizeof state, "%s", state_opt);
    else if ((cert == NULL || ca == NULL) && !fapi_default_state(prog, state, sizeof state))
        return CLI_EXIT_FAIL;
    uint8_t dev_pub[DBGSESS_PUB_SIZE];
    if (!debugcert_device_pub(prog, device, cert, dev_state, state, ca, dev_pub))
        return CLI_EXIT_FAIL;

    static dbg_t d; /* large (keys, buffers); one per process */
    memset(&d, 0, sizeof d);
    d.prog = prog;
    d.device = device;
    d.gdb_fd = -1;
    d.use_cache = !no_cache;
    if (pipe(d.wake) != 0)
        return cli_fail(prog, "cannot make a pipe: %s", strerror(errno));
    fcntl(d.wake[0], F_SETFL, O_NONBLOCK);
    fcntl(d.wake[1], F_SETFL, O_NONBLOCK);
    snprintf(d.path, sizeof d.path, "/v1/devices/%s/debug", device);
    if (!fapi_open(prog, url, token, &d.api))
        return CLI_EXIT_FAIL;
    while (d.session == 0) {
        if (getrandom(&d.session, sizeof d.session, 0) != (ssize_t)sizeof d.session)
            return cli_fail(prog, "no randomness available (getrandom: %s)", strerror(errno));
    }
    if (kc_init() != KC_OK)
        return cli_fail(prog, "cannot start the crypto library (PSA)");
    int ls = listen_local(prog, port);
    if (ls < 0)
        return CLI_EXIT_FAIL;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.cond, NULL);
    pthread_t th;
    int rc = CLI_EXIT_FAIL;
    if (pthread_create(&th, NULL, stream_thread, &d) != 0) {
        close(ls);
        return cli_fail(prog, "cannot start a thread");
    }
    pthread_mutex_lock(&d.lock);
    bool opened = wait_for(&d, opened_or_done, 10000u) && d.opened;
    pthread_mutex_unlock(&d.lock);
    const char *why_end = NULL;
    bool failed = false;
    if (opened && handshake(&d, &key, dev_pub, wait_s)) {
        printf("debug session with %s open (end-to-end encrypted); in gdb:\n"
               "  target remote 127.0.0.1:%u\n", device, port);
        fflush(stdout);
        why_end = relay(&d, ls, idle_s, &failed);
        if (why_end != NULL)
            post_close(&d, why_end);
        pthread_mutex_lock(&d.lock);
        bool by_device = d.closed && why_end == NULL;
        pthread_mutex_unlock(&d.lock);
        if (by_device)
            fprintf(stderr, "%s: the session ended: %s\n", prog, d.close_reason);
        printf("session over: %lu frames to the device, %lu from it%s\n", d.frames_down,
               d.frames_up, d.bad_frames ? " (some refused, see above)" : "");
        if (d.use_cache)
            printf("relay: %lu memory reads answered here, %lu fetched, %lu queries answered here\n",
                   d.cache.hits, d.cache.misses, d.cache.memo_hits);
        /* A clean end: gdb left, Ctrl-C, the idle limit, or the device's own close after a
         * detach. The device refusing more, going offline, or keeld failing is a failure. */
        rc = !failed && (!by_device || strstr(d.close_reason, "detach") != NULL) ? CLI_EXIT_OK
                                                                                 : CLI_EXIT_FAIL;
    } else if (opened && !got_signal) {
        post_close(&d, "keel debug gave up");
    }
    d.stop_stream = 1;
    pthread_join(th, NULL);
    pthread_mutex_lock(&d.lock);
    if (d.gdb_fd >= 0)
        close(d.gdb_fd);
    pthread_mutex_unlock(&d.lock);
    close(ls);
    dbgsess_end(&d.sess);
    dbgsess_wipe(&key, sizeof key);
    fapi_conn_close(&d.conn);
    close(d.wake[0]);
    close(d.wake[1]);
    pthread_cond_destroy(&d.cond);
    pthread_mutex_destroy(&d.lock);
    fapi_cleanup();
    return rc;
}

const cli_noun_t cmd_debug = {
    .name = "debug", .summary = "debug a device's app with gdb, through keeld", .run = run_debug};

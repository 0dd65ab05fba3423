/* keeld's debug relay: (device, session) -> bounded queue of debug/up messages. */
#define _GNU_SOURCE /* pipe2, POLLRDHUP */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dbgrelay.h"
#include "kd_log.h"

typedef struct slot {
    uint16_t len;
    uint8_t bytes[KPROTO_DEBUG_MAX];
} slot_t;

struct dbgrelay_stream {
    struct dbgrelay *relay;
    char device[KIDENT_ID_MAX + 1];
    uint64_t session;
    int wake[2];              /* pipe: a byte is written when something changes */
    slot_t queue[DBGRELAY_QUEUE];
    unsigned head, count;
    const char *end_reason;   /* set once the stream is over (after the queue drains) */
    bool device_done;         /* the device closed the session or went offline */
};

struct dbgrelay {
    pthread_mutex_t lock;
    dbgrelay_stream_t *streams[DBGRELAY_STREAMS_MAX];
};

dbgrelay_t *dbgrelay_new(void)
{
    dbgrelay_t *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        pthread_mutex_init(&r->lock, NULL);
    }
    return r;
}

void dbgrelay_free(dbgrelay_t *r)
{
    if (r != NULL) {
        pthread_mutex_destroy(&r->lock);
        free(r);
    }
}

static dbgrelay_stream_t **find(dbgrelay_t *r, const char *device, uint64_t session)
{
    for (unsigned i = 0; i < DBGRELAY_STREAMS_MAX; i++) {
        dbgrelay_stream_t *s = r->streams[i];
        if (s != NULL && s->session == session && strcmp(s->device, device) == 0) {
            return &r->streams[i];
        }
    }
    return NULL;
}

dbgrelay_attach_rc_t dbgrelay_attach(dbgrelay_t *r, const char *device, uint64_t session,
                                     dbgrelay_stream_t **out)
{
    dbgrelay_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return DBGRELAY_NOMEM;
    }
    if (pipe2(s->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        free(s);
        return DBGRELAY_NOMEM;
    }
    snprintf(s->device, sizeof(s->device), "%s", device);
    s->session = session;
    s->relay = r;
    dbgrelay_attach_rc_t rc = DBGRELAY_FULL;
    pthread_mutex_lock(&r->lock);
    if (find(r, device, session) != NULL) {
        rc = DBGRELAY_BUSY;
    } else {
        for (unsigned i = 0; i < DBGRELAY_STREAMS_MAX; i++) {
            if (r->streams[i] == NULL) {
                r->streams[i] = s;
                rc = DBGRELAY_OK;
                break;
            }
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (rc != DBGRELAY_OK) {
        close(s->wake[0]);
        close(s->wake[1]);
        free(s);
        return rc;
    }
    *out = s;
    return DBGRELAY_OK;
}

static void wake(dbgrelay_stream_t *s)
{
    /* A full pipe already holds a wake-up: losing this byte loses nothing. */
    ssize_t n = write(s->wake[1], "", 1);
    (void)n;
}

/* The client hung up: its socket reads as closed (it never sends anything on this stream). */
static bool hung_up(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

int dbgrelay_next(dbgrelay_stream_t *s, int sock_fd, int timeout_ms, uint8_t *out, size_t cap,
                  size_t *out_len, const char **reason)
{
    /* The stream struct is owned by this thread; the lock guards the queue and flags. */
    pthread_mutex_t *lock = &s->relay->lock;
    for (int pass = 0; pass < 2; pass++) {
        pthread_mutex_lock(lock);
        if (s->count > 0) {
            slot_t *sl = &s->queue[s->head];
            int got = 0;
            if (cap >= sl->len) {
                memcpy(out, sl->bytes, sl->len);
                *out_len = sl->len;
                got = 1;
            }
            s->head = (s->head + 1u) % DBGRELAY_QUEUE;
            s->count--;
            pthread_mutex_unlock(lock);
            return got;
        }
        const char *end = s->end_reason;
        pthread_mutex_unlock(lock);
        if (end != NULL) {
            *reason = end;
            return -1;
        }
        if (pass == 1) {
            break;
        }
        struct pollfd p[2] = {{.fd = s->wake[0], .events = POLLIN},
                              {.fd = sock_fd, .events = POLLIN | POLLRDHUP}};
        int n = poll(p, sock_fd >= 0 ? 2 : 1, timeout_ms);
        if (n > 0 && (p[0].revents & POLLIN)) {
            char drain[64];
            while (read(s->wake[0], drain, sizeof(drain)) > 0) {
            }
        }
        if (sock_fd >= 0 && n > 0 && (p[1].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) &&
            hung_up(sock_fd)) {
            *reason = "the debugger disconnected";
            return -1;
        }
    }
    return 0;
}

bool dbgrelay_detach(dbgrelay_t *r, dbgrelay_stream_t *s, char out_device[KIDENT_ID_MAX + 1],
                     uint64_t *out_session)
{
    pthread_mutex_lock(&r->lock);
    dbgrelay_stream_t **at = find(r, s->device, s->session);
    if (at != NULL) {
        *at = NULL;
    }
    bool device_open = !s->device_done;
    pthread_mutex_unlock(&r->lock);
    if (out_device != NULL) {
        snprintf(out_device, KIDENT_ID_MAX + 1, "%s", s->device);
    }
    if (out_session != NULL) {
        *out_session = s->session;
    }
    close(s->wake[0]);
    close(s->wake[1]);
    free(s);
    return device_open;
}

/* Queue bytes for s (lock held); on overflow the stream ends (RSP cannot skip a message). */
static void enqueue(dbgrelay_stream_t *s, const uint8_t *bytes, size_t len)
{
    if (s->end_reason != NULL) {
        return;
    }
    if (s->count == DBGRELAY_QUEUE) {
        s->end_reason = "keeld's relay buffer overflowed: the debugger stopped reading";
        KD_WARN("device '%s': debug session %llu ended: %s", s->device,
                (unsigned long long)s->session, s->end_reason);
        return;
    }
    slot_t *sl = &s->queue[(s->head + s->count) % DBGRELAY_QUEUE];
    memcpy(sl->bytes, bytes, len);
    sl->len = (uint16_t)len;
    s->count++;
}

void dbgrelay_deliver(dbgrelay_t *r, const char *device, const keel_v1_Debug *d)
{
    uint8_t buf[KPROTO_DEBUG_MAX];
    size_t len = 0;
    uint64_t session = kproto_debug_session(d);
    if (session == 0 || kproto_debug_encode(d, buf, sizeof(buf), &len) != KERR_OK) {
        KD_WARN("device '%s': debug message without a session ignored", device);
        return;
    }
    pthread_mutex_lock(&r->lock);
    dbgrelay_stream_t **at = find(r, device, session);
    if (at != NULL) {
        dbgrelay_stream_t *s = *at;
        enqueue(s, buf, len);
        if (d->which_kind == keel_v1_Debug_close_tag && s->end_reason == NULL) {
            s->device_done = true;
            s->end_reason = "the device closed the session";
        }
        wake(s);
    }
    pthread_mutex_unlock(&r->lock);
    if (at == NULL) {
        KD_DEBUG("device '%s': debug %s for session %llu, which has no stream here; dropped", device,
                 kproto_debug_kind_name(d), (unsigned long long)session);
    }
}

void dbgrelay_device_offline(dbgrelay_t *r, const char *device)
{
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < DBGRELAY_STREAMS_MAX; i++) {
        dbgrelay_stream_t *s = r->streams[i];
        if (s == NULL || strcmp(s->device, device) != 0) {
            continue;
        }
        /* The client hears it as a close (closes are plain, not sealed: keeld may send them). */
        keel_v1_Debug d = keel_v1_Debug_init_zero;
        uint8_t buf[KPROTO_DEBUG_MAX];
        size_t len = 0;
        d.which_kind = keel_v1_Debug_close_tag;
        d.kind.close.session = s->session;
        snprintf(d.kind.close.reason, sizeof(d.kind.close.reason), "the device went offline");
        if (kproto_debug_encode(&d, buf, sizeof(buf), &len) == KERR_OK) {
            enqueue(s, buf, len);
        }
        s->device_done = true;
        if (s->end_reason == NULL) {
            s->end_reason = "the device went offline";
        }
        wake(s);
    }
    pthread_mutex_unlock(&r->lock);
}

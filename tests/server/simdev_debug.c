/* simdev's debug channel (see simdev_debug.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


#include "keel/dbgsess.h"
#include "keel/kcrypto.h"
#include "keyfile.h"
#include "simdev_debug.h"

static struct {
    const char *id;
    keyfile_key_t device_key;
    bool has_debug_key;
    keyfile_key_t debug_key;
    int target_port;
    simdbg_publish_fn publish;
    void *ctx;

    pthread_mutex_t lock;  /* session state below; the reader thread seals under it */
    bool active;
    uint64_t session;
    dbgsess_t sess;
    int fd;                /* the RSP server connection */
    pthread_t reader;
    bool reader_running;
    atomic_uint closed;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static void fail(const char *what, const char *path, const char *why)
{
    fprintf(stderr, "simdev: %s %s: %s\n", what, path, why);
    exit(1);
}

void simdbg_init(const char *id, const char *key_path, const char *debug_pub_path,
                 int target_port, simdbg_publish_fn publish, void *ctx)
{
    char why[256];
    g.id = id;
    g.target_port = target_port;
    g.publish = publish;
    g.ctx = ctx;
    if (!keyfile_load(key_path, true, &g.device_key, why, sizeof why)) {
        fail("--key", key_path, why);
    }
    if (debug_pub_path != NULL) {
        if (!keyfile_load(debug_pub_path, false, &g.debug_key, why, sizeof why)) {
            fail("--debug-pub", debug_pub_path, why);
        }
        g.has_debug_key = true;
    }
    if (kc_init() != KC_OK) {
        fail("crypto", "PSA", "cannot start");
    }
}

unsigned simdbg_closed(void)
{
    return atomic_load(&g.closed);
}

static void send_close(uint64_t session, const char *reason)
{
    keel_v1_Debug m = keel_v1_Debug_init_zero;
    m.which_kind = keel_v1_Debug_close_tag;
    m.kind.close.session = session;
    snprintf(m.kind.close.reason, sizeof m.kind.close.reason, "%s", reason);
    g.publish(g.ctx, &m);
}

static void refuse(uint64_t session, const char *detail)
{
    keel_v1_Debug m = keel_v1_Debug_init_zero;
    m.which_kind = keel_v1_Debug_accept_tag;
    m.kind.accept.session = session;
    m.kind.accept.ok = false;
    snprintf(m.kind.accept.detail, sizeof m.kind.accept.detail, "%s", detail);
    g.publish(g.ctx, &m);
    printf("debug refused %s\n", detail);
    fflush(stdout);
}

/* RSP server -> sealed frames on debug/up, until the connection ends. */
static void *reader(void *arg)
{
    uint8_t buf[DBGSESS_PLAIN_MAX];
    for (;;) {
        ssize_t n = recv(g.fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        pthread_mutex_lock(&g.lock);
        if (!g.active) {
            pthread_mutex_unlock(&g.lock);
            return NULL;
        }
        if (n <= 0) {
            /* The target ended the session (it detached): tell the client. */
            uint64_t session = g.session;
            g.active = false;
            dbgsess_end(&g.sess);
            pthread_mutex_unlock(&g.lock);
            send_close(session, "the target detached");
            atomic_fetch_add(&g.closed, 1u);
            printf("debug closed by target\n");
            fflush(stdout);
            return NULL;
        }
        keel_v1_Debug m = keel_v1_Debug_init_zero;
        size_t slen = 0;
        m.which_kind = keel_v1_Debug_frame_tag;
        m.kind.frame.session = g.session;
        kerr_t err = dbgsess_seal(&g.sess, buf, (size_t)n, m.kind.frame.sealed.bytes,
                                  sizeof m.kind.frame.sealed.bytes, &slen, &m.kind.frame.seq);
        m.kind.frame.sealed.size = (pb_size_t)slen;
        pthread_mutex_unlock(&g.lock);
        if (err == KERR_OK) {
            g.publish(g.ctx, &m);
        }
    }
}

static int connect_target(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.target_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
    }
    if (fd >= 0) {
        close(fd);
    }
    return -1;
}

/* End the current session (lock held): the target sees its connection drop (= detach). */
static void end_session(void)
{
    g.active = false;
    dbgsess_end(&g.sess);
    if (g.fd >= 0) {
        shutdown(g.fd, SHUT_RDWR);
    }
}

static void on_open(const keel_v1_DebugOpen *o)
{
    uint8_t h[DBGSESS_HASH_SIZE];
    if (!g.has_debug_key) {
        refuse(o->session, "no debug key in the installed bundle");
        return;
    }
    if (dbgsess_open_hash(g.id, o->session, o->client_pub, h) != KERR_OK ||
        dbgsess_verify(g.debug_key.pub, h, o->signature) != KERR_OK) {
        refuse(o->session, "not signed by the debug key of the installed bundle");
        return;
    }
    pthread_mutex_lock(&g.lock);
    bool busy = g.active;
    pthread_mutex_unlock(&g.lock);
    if (busy) {
        refuse(o->session, "another debug session is open");
        return;
    }
    if (g.reader_running) {
        pthread_join(g.reader, NULL);
        g.reader_running = false;
        close(g.fd);
        g.fd = -1;
    }
    int fd = g.target_port > 0 ? connect_target() : -1;
    if (fd < 0) {
        refuse(o->session, "the debug target is not available");
        return;
    }
    keel_v1_Debug m = keel_v1_Debug_init_zero;
    dbgsess_eph_t eph;
    m.which_kind = keel_v1_Debug_accept_tag;
    m.kind.accept.session = o->session;
    m.kind.accept.ok = true;
    pthread_mutex_lock(&g.lock);
    kerr_t err = dbgsess_keygen(&eph, kc_random, NULL);
    memcpy(m.kind.accept.device_pub, eph.pub, DBGSESS_PUB_SIZE);
    err = err ? err : dbgsess_accept_hash(g.id, o->session, o->client_pub, eph.pub, h);
    err = err ? err : dbgsess_sign(g.device_key.priv, h, m.kind.accept.signature);
    err = err ? err : dbgsess_start(&g.sess, DBGSESS_DEVICE, o->session, &eph, o->client_pub);
    if (err == KERR_OK) {
        g.active = true;
        g.session = o->session;
        g.fd = fd;
    }
    pthread_mutex_unlock(&g.lock);
    if (err != KERR_OK) {
        close(fd);
        refuse(o->session, kerr_str(err));
        return;
    }
    g.publish(g.ctx, &m);
    g.reader_running = pthread_create(&g.reader, NULL, reader, NULL) == 0;
    printf("debug open %llu\n", (unsigned long long)o->session);
    fflush(stdout);
}

void simdbg_down(const keel_v1_Debug *d)
{
    uint64_t session = kproto_debug_session(d);
    if (d->which_kind == keel_v1_Debug_open_tag) {
        on_open(&d->kind.open);
        return;
    }
    pthread_mutex_lock(&g.lock);
    bool ours = g.active && session == g.session;
    if (ours && d->which_kind == keel_v1_Debug_frame_tag) {
        uint8_t plain[DBGSESS_PLAIN_MAX];
        size_t n = 0;
        kerr_t err = dbgsess_open(&g.sess, d->kind.frame.seq, d->kind.frame.sealed.bytes,
                                  d->kind.frame.sealed.size, plain, sizeof plain, &n);
        if (err == KERR_OK) {
            for (size_t off = 0; off < n;) {
                ssize_t k = send(g.fd, plain + off, n - off, MSG_NOSIGNAL);
                if (k <= 0) {
                    break;
                }
                off += (size_t)k;
            }
        } else {
            printf("debug frame refused: %s\n", kerr_str(err));
        }
    } else if (ours && d->which_kind == keel_v1_Debug_close_tag) {
        end_session();
        atomic_fetch_add(&g.closed, 1u);
        printf("debug closed: %s\n", d->kind.close.reason);
    }
    pthread_mutex_unlock(&g.lock);
    fflush(stdout);
}

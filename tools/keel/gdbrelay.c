/*
 * The local gdb relay (gdbrelay.h).
 */
#include "gdbrelay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "keel/rspcache.h"

#define POLL_MS 100
#define CONNECT_TRIES 50   /* QEMU listens from its start: 50 x 40 ms at most */
#define CONNECT_PAUSE_NS 40000000L

typedef struct {
    int gdb, qemu;
} link_t;

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0 && fd >= 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return; /* the peer went away: the loop sees the hang-up */
        p += k;
        n -= (size_t)k;
    }
}

static void to_gdb(void *ctx, const uint8_t *d, size_t n) { send_all(((link_t *)ctx)->gdb, d, n); }
static void to_qemu(void *ctx, const uint8_t *d, size_t n) { send_all(((link_t *)ctx)->qemu, d, n); }

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int listen_on(uint16_t port, uint16_t *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

static int connect_qemu(const gdbrelay_t *r)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(r->qemu_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < CONNECT_TRIES && !r->stop; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            nodelay(fd);
            return fd;
        }
        close(fd);
        struct timespec ts = {0, CONNECT_PAUSE_NS};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void end_link(link_t *l)
{
    if (l->gdb >= 0)
        close(l->gdb);
    if (l->qemu >= 0)
        close(l->qemu);
    l->gdb = l->qemu = -1;
}

static void *relay_thread(void *arg)
{
    gdbrelay_t *r = arg;
    static rspcache_t cache; /* one relay per process */
    static uint8_t buf[4096];
    link_t l = {-1, -1};
    while (!r->stop) {
        struct pollfd p[2];
        nfds_t n = 0;
        if (l.gdb < 0) {
            p[n++] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
        } else {
            p[n++] = (struct pollfd){.fd = l.gdb, .events = POLLIN};
            p[n++] = (struct pollfd){.fd = l.qemu, .events = POLLIN};
        }
        if (poll(p, n, POLL_MS) <= 0)
            continue;
        if (l.gdb < 0) {
            int g = accept(r->listen_fd, NULL, NULL);
            if (g < 0)
                continue;
            nodelay(g);
            int q = connect_qemu(r);
            if (q < 0) {
                fprintf(stderr, "%s: gdb relay: QEMU's debug serial line does not answer\n", r->prog);
                close(g);
                continue;
            }
            l.gdb = g;
            l.qemu = q;
            rspcache_init(&cache, to_gdb, &l, to_qemu, &l);
            continue;
        }
        for (nfds_t i = 0; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t k = recv(p[i].fd, buf, sizeof buf, 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) { /* either side gone: the next gdb gets a fresh connection */
                end_link(&l);
                break;
            }
            if (p[i].fd == l.gdb)
                rspcache_from_gdb(&cache, buf, (size_t)k);
            else
                rspcache_from_stub(&cache, buf, (size_t)k);
        }
    }
    end_link(&l);
    return NULL;
}

bool gdbrelay_start(gdbrelay_t *r, const char *prog, uint16_t port)
{
    memset(r, 0, sizeof(*r));
    r->prog = prog;
    uint16_t bound;
    r->listen_fd = listen_on(port, &bound);
    if (r->listen_fd < 0) {
        fprintf(stderr, "%s: --gdb-serial %u: cannot listen on 127.0.0.1:%u: %s\n", prog, port,
                port, strerror(errno));
        return false;
    }
    /* QEMU's own port: free now, QEMU binds it a moment later (loopback, ephemeral range). */
    int probe = listen_on(0, &r->qemu_port);
    if (probe < 0) {
        close(r->listen_fd);
        fprintf(stderr, "%s: no free port on 127.0.0.1 for QEMU's debug line\n", prog);
        return false;
    }
    close(probe);
    if (pthread_create(&r->thread, NULL, relay_thread, r) != 0) {
        close(r->listen_fd);
        fprintf(stderr, "%s: cannot start the gdb relay thread\n", prog);
        return false;
    }
    r->running = true;
    return true;
}

void gdbrelay_stop(gdbrelay_t *r)
{
    if (!r->running)
        return;
    r->stop = 1;
    pthread_join(r->thread, NULL);
    close(r->listen_fd);
    r->running = false;
}

/*
 * `keel relay PORT` / `keel relay unix:PATH`: join stdin/stdout to a TCP connection to
 * 127.0.0.1:PORT, or to the Unix socket PATH.
 *
 * QEMU runs one relay per guest connection to the broker address
 * (guestfwd=tcp:10.0.2.100:PORT-cmd:keel relay unix:run/broker.sock, see qrun.c): the plain
 * guestfwd "tcp:" target is a single host connection for QEMU's whole life, so a device that
 * reconnects would silently talk to nothing. With one process per connection, each guest connect
 * is a fresh host connect and each close is a close. QEMU runs in a sandbox without a network:
 * the relay reaches the Unix socket that `keel device run` listens on outside, which joins each
 * connection to the broker's port (relay_forward).
 *
 * Bounded: the connect waits at most RELAY_CONNECT_MS; then the relay lives exactly as long as
 * both sides are open (either side closing ends it), and dies with QEMU (PR_SET_PDEATHSIG).
 * Only loopback is ever dialled.
 *
 * QEMU's side: libslirp joins the guest connection to this process through a TCP connection on
 * loopback (its "socketpair with OOB"), and QEMU's end of it has Nagle on. So when the device
 * sends two segments back to back (the PUBACK of a message, then the app's answer), QEMU holds
 * the second until this end acknowledges the first, and Linux delays that ACK by 40 ms
 * (measured with strace: QEMU's send of the answer returns at once, it is readable here 41 ms
 * later; a ping's answer shares the PUBACK's segment and never waited). Hence TCP_QUICKACK on
 * stdin, set again after every read (Linux leaves quick-ack mode by itself), and TCP_NODELAY on
 * it for the other direction. Both are no-ops when stdin is not a TCP socket.
 */
#define _GNU_SOURCE
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

#define RELAY_CONNECT_MS 5000
#define RELAY_BUF 16384

int relay_dial_unix(const char *prog, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "%s: socket path %s is too long\n", prog, path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "%s: cannot connect to %s: %s\n", prog, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int relay_dial_tcp(const char *prog, uint32_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        fprintf(stderr, "%s: cannot connect to 127.0.0.1:%u: %s (is the broker running?)\n", prog,
                (unsigned)port, strerror(errno));
        close(fd);
        return -1;
    }
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int r = poll(&pf, 1, RELAY_CONNECT_MS);
    int err = 0;
    socklen_t len = sizeof err;
    if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        fprintf(stderr, "%s: cannot connect to 127.0.0.1:%u: %s (is the broker running?)\n", prog,
                (unsigned)port, r == 0 ? "timed out" : strerror(err ? err : errno));
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    /* The device's bytes go on as they come. With Nagle, a write that follows an unacknowledged
     * one (a debug reply after the PUBACK of the request) waits for the broker's delayed ACK:
     * 40 ms per exchange. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Write all of buf (blocking); false when the peer is gone. */
static bool write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        buf += w;
        n -= (size_t)w;
    }
    return true;
}

/* Acknowledge what QEMU sends at once (see the top): its Nagle waits for our ACK. */
static void quickack(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

/* Copy what is readable on from to to; false at EOF or error. */
static bool pump(int from, int to)
{
    char buf[RELAY_BUF];
    ssize_t n = read(from, buf, sizeof buf);
    if (from == STDIN_FILENO)
        quickack(from);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    return n > 0 && write_all(to, buf, (size_t)n);
}

void relay_join(int a_in, int a_out, int b)
{
    for (;;) {
        struct pollfd pf[2] = {{.fd = a_in, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if ((pf[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) && !pump(a_in, b))
            break;
        if ((pf[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) && !pump(b, a_out))
            break;
    }
}

void relay_forward(int accepted, const char *unix_path, uint32_t tcp_port)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    int fd = unix_path != NULL ? relay_dial_unix("keel relay", unix_path)
                               : relay_dial_tcp("keel relay", tcp_port);
    if (fd >= 0) {
        int one = 1;
        setsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on Unix: fine */
        relay_join(accepted, accepted, fd);
        close(fd);
    }
    close(accepted);
    _exit(0);
}

int relay_main(int argc, char **argv)
{
    const char *prog = "keel relay";
    if (argc == 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: keel relay PORT | unix:PATH\n\n"
               "Join stdin/stdout to a TCP connection to 127.0.0.1:PORT, or to the Unix socket\n"
               "PATH, until either side closes. QEMU runs it for each device connection to the\n"
               "broker ('keel device run --broker').\n");
        return CLI_EXIT_OK;
    }
    if (argc != 1)
        return cli_usage_error(prog, "wants exactly one argument: the broker's TCP port on "
                                     "127.0.0.1, or unix:PATH");
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    int fd;
    if (strncmp(argv[0], "unix:", 5) == 0) {
        fd = relay_dial_unix(prog, argv[0] + 5);
    } else {
        uint32_t port;
        if (!cli_parse_u32(prog, "PORT", argv[0], 1, 65535, &port))
            return CLI_EXIT_USAGE;
        fd = relay_dial_tcp(prog, port);
    }
    if (fd < 0)
        return CLI_EXIT_FAIL;
    int one = 1;
    (void)setsockopt(STDIN_FILENO, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    quickack(STDIN_FILENO);
    relay_join(STDIN_FILENO, STDOUT_FILENO, fd);
    close(fd);
    return CLI_EXIT_OK;
}

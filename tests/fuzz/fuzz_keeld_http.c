/*
 * keeld's REST API (server/keeld/api.c): routes, path parameters, query strings and JSON bodies,
 * through the real libmicrohttpd daemon on 127.0.0.1 with the real store behind it.
 * Input: byte 0 the method, byte 1 flags (bit 0: no Authorization header, bit 1: a wrong token,
 * bit 2: Content-Type text/plain), then the request target (path and query, any bytes:
 * percent-encoded on the wire) up to the first newline, then the body. The request is always
 * well-formed HTTP/1.1 with a correct Content-Length: the target is keeld's parsing, not
 * libmicrohttpd's. keeld must answer every request (within 20 s: a loaded machine stalls) with a status line, never just
 * close. Live streams are left out (see below).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keeld_fixture.h"

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};

static char req[1 << 17];
static char resp[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned port = fz_keeld_start();
    if (size < 2) {
        return 0;
    }
    const uint8_t *p = data + 2, *end = data + size;
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    const uint8_t *url_end = nl ? nl : end;
    size_t n = 0;
    n += (size_t)snprintf(req + n, sizeof(req) - n, "%s ", methods[data[0] % 6]);
    if (url_end == p || *p != '/') {
        req[n++] = '/';
    }
    for (const uint8_t *u = p; u < url_end && n + 4 < sizeof(req) / 2; u++) {
        /* Bytes a request line cannot carry raw go percent-encoded; keeld sees them decoded. */
        if (*u <= 0x20 || *u >= 0x7f || *u == '#') {
            n += (size_t)snprintf(req + n, sizeof(req) - n, "%%%02X", *u);
        } else {
            req[n++] = (char)*u;
        }
    }
    /* Live streams (logs, channels, debug) are left out: keeld holds a connection thread for each
     * until a keepalive write fails (10-20 s after the client went), so at fuzzing rates they
     * would fill keeld's connection limit and every later request would wait. Their query
     * parsing is the same query_int as the listings'. The check is on the path as keeld sees
     * it (percent-decoded). */
    req[n] = '\0';
    char decoded[sizeof(req) / 2];
    size_t dn = 0;
    for (const char *q = req; *q != '\0' && *q != '?' && dn + 1 < sizeof(decoded); q++) {
        unsigned v;
        if (q[0] == '%' && sscanf(q + 1, "%2x", &v) == 1) {
            decoded[dn++] = (char)v;
            q += 2;
        } else {
            decoded[dn++] = *q;
        }
    }
    decoded[dn] = '\0';
    /* Likewise the long poll of a deployment (GET /v1/deployments/{id}?after=REV waits up to
     * 30 s for a change): a legitimate wait, not a hang. */
    if (strstr(decoded, "stream") != NULL ||
        (strstr(decoded, "/v1/deployments/") != NULL && strstr(req, "after") != NULL)) {
        return 0;
    }
    const uint8_t *body = nl ? nl + 1 : end;
    size_t blen = (size_t)(end - body);
    const char *auth = (data[1] & 1u) ? "" : (data[1] & 2u) ? "Authorization: Bearer keel_nope\r\n"
                                                           : "Authorization: Bearer " FZ_KEELD_TOKEN "\r\n";
    n += (size_t)snprintf(req + n, sizeof(req) - n,
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n",
                          auth, (data[1] & 4u) ? "text/plain" : "application/json", blen);
    if (n + blen > sizeof(req)) {
        return 0;
    }
    memcpy(req + n, body, blen);
    n += blen;

    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("keeld fuzz: connect");
        abort();
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = send(s, req + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) {
            break; /* keeld may answer (413) and close before reading a large body */
        }
        off += (size_t)w;
    }
    size_t got = 0;
    for (;;) {
        struct pollfd pf = {.fd = s, .events = POLLIN};
        static int deadline_ms;
        if (deadline_ms == 0) {
            deadline_ms = getenv("FZ_HTTP_DEADLINE_MS") ? atoi(getenv("FZ_HTTP_DEADLINE_MS")) : 20000;
        }
        if (poll(&pf, 1, deadline_ms) != 1) {
            fprintf(stderr, "keeld fuzz: no complete answer within the deadline (FZ_HTTP_DEADLINE_MS, 20 s) (%zu bytes so far)\n", got);
            abort();
        }
        ssize_t r = recv(s, resp + got, sizeof(resp) - 1 - got, 0);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        resp[got] = '\0';
        if (strstr(resp, "\r\n\r\n") != NULL && strstr(resp, "text/event-stream") != NULL) {
            break; /* a live stream: it would run until keeld stops */
        }
        if (got == sizeof(resp) - 1) {
            got = 9; /* a long answer: keep its status line, read on to its end */
        }
    }
    close(s);
    if (got == 0) {
        fprintf(stderr, "keeld fuzz: the connection closed without an answer\n");
        abort();
    }
    if (strncmp(resp, "HTTP/1.1 ", 9) != 0) {
        fprintf(stderr, "keeld fuzz: not an HTTP answer: %.40s\n", resp);
        abort();
    }
    return 0;
}

/* mqttc: see mqttc.h. */
#include "mqttc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define RBUF_MIN 512u
#define READ_SLICE 4096u

/* ---- buffers ---------------------------------------------------------------------------------- */

static bool reserve(uint8_t **buf, uint32_t *cap, uint32_t need)
{
    if (need <= *cap) {
        return true;
    }
    uint32_t n = *cap ? *cap : RBUF_MIN;
    while (n < need) {
        n *= 2u;
    }
    uint8_t *b = realloc(*buf, n);
    if (b == NULL) {
        return false;
    }
    *buf = b;
    *cap = n;
    return true;
}

/* Drained buffers are given back: an idle device holds none. */
static void shrink(uint8_t **buf, uint32_t *cap, uint32_t len)
{
    if (len == 0 && *cap != 0) {
        free(*buf);
        *buf = NULL;
        *cap = 0;
    }
}

/* ---- connection ------------------------------------------------------------------------------- */

static void set_events(mqttc_t *c, int epfd, uint32_t tag, uint32_t ev)
{
    if (ev == c->events) {
        return;
    }
    struct epoll_event e = {.events = ev, .data.u32 = tag};
    epoll_ctl(epfd, c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

bool mqttc_connect(mqttc_t *c, int epfd, uint32_t tag, uint16_t port, SSL_CTX *ctx,
                   const uint8_t *cert_der, uint32_t cert_len, const uint8_t *key_der,
                   uint32_t key_len)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return false;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->events = 0;
    c->ssl = SSL_new(ctx);
    const uint8_t *p = cert_der, *k = key_der;
    X509 *x = c->ssl ? d2i_X509(NULL, &p, cert_len) : NULL;
    EVP_PKEY *pk = x ? d2i_AutoPrivateKey(NULL, &k, key_len) : NULL;
    bool ok = pk != NULL && SSL_use_certificate(c->ssl, x) == 1 && SSL_use_PrivateKey(c->ssl, pk) == 1 &&
              X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1") == 1 &&
              SSL_set_fd(c->ssl, c->fd) == 1;
    X509_free(x);
    EVP_PKEY_free(pk);
    if (!ok) {
        ERR_clear_error();
        mqttc_close(c, epfd);
        errno = EINVAL;
        return false;
    }
    SSL_set_connect_state(c->ssl);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
        int e = errno;
        mqttc_close(c, epfd);
        errno = e;
        return false;
    }
    c->state = MQTTC_TCP;
    set_events(c, epfd, tag, EPOLLOUT);
    return true;
}

void mqttc_close(mqttc_t *c, int epfd)
{
    if (c->ssl != NULL) {
        mqttc_bytes_t b = mqttc_bytes(c);
        c->bytes.wire_tx = b.wire_tx;
        c->bytes.wire_rx = b.wire_rx;
        SSL_free(c->ssl); /* frees its socket BIO, not the fd */
        c->ssl = NULL;
    }
    if (c->fd >= 0 && c->state != MQTTC_CLOSED) {
        if (c->events != 0) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        }
        struct linger l = {1, 0}; /* the link is gone: no FIN handshake, no TIME_WAIT */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->events = 0;
    c->state = MQTTC_CLOSED;
    free(c->rbuf);
    free(c->wbuf);
    c->rbuf = c->wbuf = NULL;
    c->rlen = c->rcap = c->wlen = c->wcap = 0;
}

mqttc_bytes_t mqttc_bytes(const mqttc_t *c)
{
    mqttc_bytes_t b = c->bytes;
    if (c->ssl != NULL) {
        b.wire_tx += BIO_number_written(SSL_get_wbio(c->ssl));
        b.wire_rx += BIO_number_read(SSL_get_rbio(c->ssl));
    }
    return b;
}

bool mqttc_send(mqttc_t *c, const uint8_t *pkt, uint32_t len)
{
    if (c->state == MQTTC_CLOSED || len == 0 || c->wlen + len > MQTTC_WBUF_MAX ||
        !reserve(&c->wbuf, &c->wcap, c->wlen + len)) {
        return false;
    }
    memcpy(c->wbuf + c->wlen, pkt, len);
    c->wlen += len;
    c->bytes.mqtt_tx += len;
    return true;
}

/* SSL result -> keep going (want is EPOLLIN/EPOLLOUT) or fail. */
static bool ssl_retry(mqttc_t *c, int r, uint32_t *want)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *want = EPOLLIN;
        return true;
    case SSL_ERROR_WANT_WRITE:
        *want = EPOLLOUT;
        return true;
    default:
        ERR_clear_error();
        return false;
    }
}

/* Remaining length (1-4 bytes). 0: need more bytes; -1: malformed. */
static int remaining(const uint8_t *p, uint32_t n, uint32_t *len)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < 4; i++) {
        if (1u + i >= n) {
            return 0;
        }
        v |= (uint32_t)(p[1 + i] & 0x7Fu) << (7u * i);
        if (!(p[1 + i] & 0x80u)) {
            *len = v;
            return (int)(2 + i);
        }
    }
    return -1;
}

static bool parse(mqttc_t *c, mqttc_packet_fn fn, void *ctx)
{
    uint32_t at = 0;
    while (at < c->rlen) {
        uint32_t len = 0;
        int hdr = remaining(c->rbuf + at, c->rlen - at, &len);
        if (hdr < 0 || len > MQTTC_PACKET_MAX) {
            return false;
        }
        if (hdr == 0 || c->rlen - at < (uint32_t)hdr + len) {
            break;
        }
        c->bytes.mqtt_rx += (uint32_t)hdr + len;
        if (!fn(ctx, c->rbuf[at], c->rbuf + at + hdr, len)) {
            return false;
        }
        at += (uint32_t)hdr + len;
    }
    memmove(c->rbuf, c->rbuf + at, c->rlen - at);
    c->rlen -= at;
    shrink(&c->rbuf, &c->rcap, c->rlen);
    return true;
}

bool mqttc_io(mqttc_t *c, int epfd, uint32_t tag, mqttc_packet_fn fn, void *ctx, bool *opened)
{
    uint32_t want = EPOLLIN;
    *opened = false;
    if (c->state == MQTTC_TCP) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
            if (err == EINPROGRESS) {
                return true;
            }
            mqttc_close(c, epfd);
            return false;
        }
        c->state = MQTTC_TLS;
    }
    if (c->state == MQTTC_TLS) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            if (!ssl_retry(c, r, &want)) {
                mqttc_close(c, epfd);
                return false;
            }
            set_events(c, epfd, tag, want);
            return true;
        }
        c->state = MQTTC_OPEN;
        *opened = true;
        want = EPOLLIN;
    }
    /* Read everything there is (TLS may hold whole records). */
    for (;;) {
        if (!reserve(&c->rbuf, &c->rcap, c->rlen + READ_SLICE)) {
            mqttc_close(c, epfd);
            return false;
        }
        int r = SSL_read(c->ssl, c->rbuf + c->rlen, READ_SLICE);
        if (r <= 0) {
            uint32_t w = 0;
            if (!ssl_retry(c, r, &w)) {
                mqttc_close(c, epfd);
                return false;
            }
            want = w == EPOLLOUT ? EPOLLIN | EPOLLOUT : EPOLLIN;
            break;
        }
        c->rlen += (uint32_t)r;
        if (!parse(c, fn, ctx)) {
            mqttc_close(c, epfd);
            return false;
        }
    }
    shrink(&c->rbuf, &c->rcap, c->rlen);
    /* Write what is queued. */
    while (c->wlen > 0) {
        int r = SSL_write(c->ssl, c->wbuf, (int)c->wlen);
        if (r <= 0) {
            uint32_t w = 0;
            if (!ssl_retry(c, r, &w)) {
                mqttc_close(c, epfd);
                return false;
            }
            want |= EPOLLOUT;
            break;
        }
        memmove(c->wbuf, c->wbuf + r, c->wlen - (uint32_t)r);
        c->wlen -= (uint32_t)r;
    }
    shrink(&c->wbuf, &c->wcap, c->wlen);
    set_events(c, epfd, tag, want);
    return true;
}

/* ---- encoders --------------------------------------------------------------------------------- */

typedef struct w {
    uint8_t *p;
    uint32_t n, cap;
    bool ok;
} w_t;

static void put(w_t *w, const void *b, uint32_t n)
{
    if (w->n + n > w->cap) {
        w->ok = false;
        return;
    }
    memcpy(w->p + w->n, b, n);
    w->n += n;
}

static void put8(w_t *w, uint8_t v)
{
    put(w, &v, 1);
}

static void put16(w_t *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}

static void putstr(w_t *w, const void *s, uint32_t n)
{
    put16(w, (uint16_t)n);
    put(w, s, n);
}

/* Fixed header then body: body is built at out + 5 and moved behind the real header. */
static uint32_t finish(uint8_t *out, uint32_t cap, uint8_t first, w_t *body)
{
    if (!body->ok) {
        return 0;
    }
    uint8_t hdr[5];
    uint32_t h = 0, len = body->n - 5u;
    hdr[h++] = first;
    do {
        uint8_t b = (uint8_t)(len & 0x7Fu);
        len >>= 7;
        hdr[h++] = (uint8_t)(b | (len ? 0x80u : 0u));
    } while (len != 0);
    memmove(out + h, out + 5, body->n - 5u);
    memcpy(out, hdr, h);
    (void)cap;
    return h + body->n - 5u;
}

static w_t begin(uint8_t *out, uint32_t cap)
{
    w_t w = {out, 5, cap, cap >= 5};
    return w;
}

uint32_t mq_connect(uint8_t *out, uint32_t cap, const char *client_id, uint16_t keepalive_s,
                    const char *will_topic, const uint8_t *will, uint32_t will_len)
{
    w_t w = begin(out, cap);
    putstr(&w, "MQTT", 4);
    put8(&w, 4);                                       /* 3.1.1 */
    put8(&w, 0x02u | 0x04u | 0x08u | 0x20u);          /* clean session, will QoS 1 retained */
    put16(&w, keepalive_s);
    putstr(&w, client_id, (uint32_t)strlen(client_id));
    putstr(&w, will_topic, (uint32_t)strlen(will_topic));
    putstr(&w, will, will_len);
    return finish(out, cap, MQ_CONNECT << 4, &w);
}

uint32_t mq_subscribe(uint8_t *out, uint32_t cap, uint16_t pid, const char *const *topics,
                      unsigned n, uint8_t qos)
{
    w_t w = begin(out, cap);
    put16(&w, pid);
    for (unsigned i = 0; i < n; i++) {
        putstr(&w, topics[i], (uint32_t)strlen(topics[i]));
        put8(&w, qos);
    }
    return finish(out, cap, (MQ_SUBSCRIBE << 4) | 0x02u, &w);
}

uint32_t mq_publish(uint8_t *out, uint32_t cap, const char *topic, const uint8_t *payload,
                    uint32_t len, uint8_t qos, bool retain, uint16_t pid)
{
    w_t w = begin(out, cap);
    putstr(&w, topic, (uint32_t)strlen(topic));
    if (qos > 0) {
        put16(&w, pid);
    }
    put(&w, payload, len);
    return finish(out, cap, (uint8_t)((MQ_PUBLISH << 4) | (qos << 1) | (retain ? 1u : 0u)), &w);
}

uint32_t mq_puback(uint8_t *out, uint32_t cap, uint16_t pid)
{
    w_t w = begin(out, cap);
    put16(&w, pid);
    return finish(out, cap, MQ_PUBACK << 4, &w);
}

uint32_t mq_pingreq(uint8_t *out, uint32_t cap)
{
    w_t w = begin(out, cap);
    return finish(out, cap, MQ_PINGREQ << 4, &w);
}

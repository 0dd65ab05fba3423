/*
 * The round-trip-saving RSP relay (keel/rspcache.h).
 */
#include "keel/rspcache.h"

#include <string.h>

static const char *const memo_queries[] = {
    "qfThreadInfo", "qsThreadInfo", "qC", "qAttached", "qOffsets", "qTStatus",
};

static const char hexdig[] = "0123456789abcdef";

void rspcache_init(rspcache_t *c, rspcache_out_fn to_gdb, void *gdb_ctx, rspcache_out_fn to_stub,
                   void *stub_ctx)
{
    memset(c, 0, sizeof(*c));
    c->to_gdb = to_gdb;
    c->gdb_ctx = gdb_ctx;
    c->to_stub = to_stub;
    c->stub_ctx = stub_ctx;
    for (unsigned i = 0; i < RSPCACHE_MEMO && i < sizeof(memo_queries) / sizeof(memo_queries[0]); i++)
        strncpy(c->memo[i].query, memo_queries[i], RSPCACHE_MEMO_MAX - 1u);
}

static void invalidate(rspcache_t *c)
{
    for (unsigned i = 0; i < RSPCACHE_LINES; i++)
        c->line[i].present = false;
    c->gen++;
    c->invalidations++;
}

/* ---- framing: '$' payload '#' two digits; any other byte outside a packet is returned -------- */

/* Feed one byte; returns 1 when a packet is complete in rx->buf (raw, with '$' and checksum),
 * 0 while inside one, -1 for a byte outside any packet (the caller handles it). */
static int rx_byte(rspcache_rx_t *rx, uint8_t b)
{
    switch (rx->state) {
    case 0:
        if (b != '$')
            return -1;
        rx->len = 0;
        rx->overflow = false;
        rx->state = 1;
        break;
    case 1:
        if (b == '#')
            rx->state = 2;
        break;
    default:
        rx->state = rx->state == 2 ? 3 : 0;
        break;
    }
    if (rx->len < RSPCACHE_PKT_MAX)
        rx->buf[rx->len++] = b;
    else
        rx->overflow = true;
    return rx->state == 0 ? 1 : 0;
}

static const uint8_t *payload(const rspcache_rx_t *rx, size_t *n)
{
    *n = rx->len >= 4u ? rx->len - 4u : 0u;
    return rx->buf + 1;
}

static bool payload_is(const uint8_t *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* '$' p '#' checksum into out (room for n + 4 bytes checked by the callers' sizes). */
static size_t frame_packet(uint8_t *out, const uint8_t *p, size_t n)
{
    uint8_t sum = 0;
    out[0] = '$';
    for (size_t i = 0; i < n; i++) {
        out[1 + i] = p[i];
        sum = (uint8_t)(sum + p[i]);
    }
    out[1 + n] = '#';
    out[2 + n] = (uint8_t)hexdig[sum >> 4];
    out[3 + n] = (uint8_t)hexdig[sum & 15u];
    return n + 4u;
}

static void send_packet(rspcache_t *c, const uint8_t *p, size_t n)
{
    uint8_t frame[2u * RSPCACHE_FETCH_MAX + 8u];
    if (n + 4u <= sizeof(frame))
        c->to_gdb(c->gdb_ctx, frame, frame_packet(frame, p, n));
}

static void forward_to_stub(rspcache_t *c, const uint8_t *p, size_t n)
{
    c->to_stub(c->stub_ctx, p, n);
    c->forwarded++;
}

static bool push_pending(rspcache_t *c, rspcache_kind_t kind, uint32_t addr, uint32_t len,
                         uint32_t waddr, uint32_t wlen, unsigned memo)
{
    if (c->npending == RSPCACHE_PENDING) {
        c->disabled = true; /* gdb does not wait for replies: nothing to gain, pass through */
        return false;
    }
    rspcache_pending_t *q = &c->pending[c->npending++];
    q->kind = kind;
    q->addr = addr;
    q->len = len;
    q->waddr = waddr;
    q->wlen = wlen;
    q->memo = memo;
    q->gen = c->gen;
    return true;
}

/* Is a reply owed to gdb? (Prefetch replies are the relay's own.) */
static bool replies_owed(const rspcache_t *c)
{
    for (unsigned i = 0; i < c->npending; i++)
        if (c->pending[i].kind != RSPCACHE_PREFETCH)
            return true;
    return false;
}

/* gdb's packet (as received) goes to the stub; its reply will be of this kind. */
static void forward_request(rspcache_t *c, rspcache_kind_t kind, unsigned memo)
{
    (void)push_pending(c, kind, 0, 0, 0, 0, memo);
    forward_to_stub(c, c->from_gdb.buf, c->from_gdb.len);
}

/* "m<waddr>,<wlen>" framed into frame (room for 24 bytes); returns its length. */
static size_t frame_m(uint8_t *frame, uint32_t waddr, uint32_t wlen)
{
    uint8_t pl[20];
    size_t k = 0;
    pl[k++] = 'm';
    for (int s = 28; s >= 0; s -= 4)
        pl[k++] = (uint8_t)hexdig[(waddr >> s) & 15u];
    pl[k++] = ',';
    for (int s = 28; s >= 0; s -= 4)
        pl[k++] = (uint8_t)hexdig[(wlen >> s) & 15u];
    return frame_packet(frame, pl, k);
}

/* Ask the stub for waddr,wlen itself, on behalf of gdb's addr,len. */
static void ask_m(rspcache_t *c, rspcache_kind_t kind, uint32_t addr, uint32_t len, uint32_t waddr,
                  uint32_t wlen)
{
    uint8_t frame[24];
    if (push_pending(c, kind, addr, len, waddr, wlen, 0))
        forward_to_stub(c, frame, frame_m(frame, waddr, wlen));
    else
        forward_to_stub(c, c->from_gdb.buf, c->from_gdb.len);
}

/* ---- the memory lines ---------------------------------------------------------------------- */

static int find_line(const rspcache_t *c, uint32_t addr)
{
    for (unsigned i = 0; i < RSPCACHE_LINES; i++)
        if (c->line[i].present && c->line[i].addr == addr)
            return (int)i;
    return -1;
}

/* Copy [addr, addr+len) out of the cache if every byte is there. */
static bool cache_read(const rspcache_t *c, uint32_t addr, uint32_t len, uint8_t *out)
{
    for (uint32_t done = 0; done < len;) {
        uint32_t a = addr + done, base = a & ~(RSPCACHE_LINE - 1u), off = a - base;
        int i = find_line(c, base);
        if (i < 0)
            return false;
        uint32_t k = RSPCACHE_LINE - off < len - done ? RSPCACHE_LINE - off : len - done;
        memcpy(out + done, c->line[i].data + off, k);
        done += k;
    }
    return true;
}

static void cache_store_line(rspcache_t *c, uint32_t base, const uint8_t *data)
{
    int i = find_line(c, base);
    if (i < 0) {
        i = (int)c->next_victim;
        c->next_victim = (c->next_victim + 1u) % RSPCACHE_LINES;
    }
    c->line[i].addr = base;
    c->line[i].present = true;
    memcpy(c->line[i].data, data, RSPCACHE_LINE);
}

static int hexval(uint8_t ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* "m<addr>,<len>" with nothing after: true and the two numbers. */
static bool parse_m(const uint8_t *p, size_t n, uint32_t *addr, uint32_t *len)
{
    if (n < 4u || p[0] != 'm')
        return false;
    uint64_t v[2] = {0, 0};
    unsigned which = 0, digits = 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] == ',' && which == 0 && digits > 0) {
            which = 1;
            digits = 0;
            continue;
        }
        int h = hexval(p[i]);
        if (h < 0 || ++digits > 8u)
            return false;
        v[which] = v[which] << 4 | (uint64_t)h;
    }
    if (which != 1 || digits == 0 || v[1] == 0 || v[0] + v[1] > 0x100000000ull)
        return false;
    *addr = (uint32_t)v[0];
    *len = (uint32_t)v[1];
    return true;
}

/* Hex reply into bytes; false if it is not plain hex of an even length (an error, RLE, ...). */
static bool unhex(const uint8_t *p, size_t n, uint8_t *out, size_t cap, size_t *got)
{
    if (n % 2u != 0 || n / 2u > cap)
        return false;
    for (size_t i = 0; i < n / 2u; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *got = n / 2u;
    return true;
}

static void reply_mem(rspcache_t *c, const uint8_t *data, uint32_t len)
{
    uint8_t hex[2u * RSPCACHE_FETCH_MAX];
    for (uint32_t i = 0; i < len; i++) {
        hex[2 * i] = (uint8_t)hexdig[data[i] >> 4];
        hex[2 * i + 1] = (uint8_t)hexdig[data[i] & 15u];
    }
    send_packet(c, hex, 2u * len);
}

/* The relay's own read of the line at addr (after a stop), unless cached or asked already. */
static void prefetch(rspcache_t *c, uint32_t addr)
{
    uint32_t base = addr & ~(RSPCACHE_LINE - 1u);
    for (unsigned i = 0; i < c->npending; i++)
        if (c->pending[i].kind == RSPCACHE_PREFETCH && c->pending[i].waddr == base)
            return;
    uint8_t frame[24], probe[1];
    if (cache_read(c, base, 1u, probe) || c->npending + 1u >= RSPCACHE_PENDING)
        return;
    if (push_pending(c, RSPCACHE_PREFETCH, base, RSPCACHE_LINE, base, RSPCACHE_LINE, 0)) {
        c->prefetches++;
        forward_to_stub(c, frame, frame_m(frame, base, RSPCACHE_LINE));
    }
}

/* A stop reply "T<sig>nn:value;...": the value of register regno (little-endian hex). */
static bool stop_reg(const uint8_t *p, size_t n, unsigned regno, uint32_t *out)
{
    for (size_t i = 3; i + 12u <= n; i++) {
        if (p[i - 1] != ';' && i != 3)
            continue;
        if (hexval(p[i]) != (int)(regno >> 4) || hexval(p[i + 1]) != (int)(regno & 15u) || p[i + 2] != ':')
            continue;
        uint32_t v = 0;
        for (int b = 3; b >= 0; b--) {
            int hi = hexval(p[i + 3 + 2 * b]), lo = hexval(p[i + 4 + 2 * b]);
            if (hi < 0 || lo < 0)
                return false;
            v = v << 8 | (uint32_t)(hi << 4 | lo);
        }
        *out = v;
        return true;
    }
    return false;
}

/* ---- from gdb ------------------------------------------------------------------------------- */

/* Does a packet leave the target as it was? (reads and queries) */
static bool is_read_only(const uint8_t *p, size_t n)
{
    if (n == 0)
        return true;
    switch (p[0]) {
    case 'm': case 'g': case 'p': case '?': case 'H': case 'q':
        return true;
    default:
        return payload_is(p, n, "vCont?");
    }
}

/* gdb's read: from the cache; held while prefetches are in flight; else fetched. */
static void request_m(rspcache_t *c, uint32_t addr, uint32_t len)
{
    uint8_t data[RSPCACHE_FETCH_MAX];
    if (len <= RSPCACHE_FETCH_MAX && cache_read(c, addr, len, data)) {
        c->hits++;
        reply_mem(c, data, len);
        return;
    }
    if (c->npending > 0) { /* only prefetches (the caller checked): they may bring it */
        c->held = true;
        c->held_addr = addr;
        c->held_len = len;
        return;
    }
    c->misses++;
    uint32_t wa = addr & ~(RSPCACHE_LINE - 1u);
    uint64_t we = ((uint64_t)addr + len + RSPCACHE_LINE - 1u) & ~(uint64_t)(RSPCACHE_LINE - 1u);
    if (we - wa > RSPCACHE_FETCH_MAX)
        forward_request(c, RSPCACHE_PASS, 0); /* too big to widen: as gdb asked */
    else
        ask_m(c, RSPCACHE_WIDE, addr, len, wa, (uint32_t)(we - wa));
}

static void gdb_packet(rspcache_t *c)
{
    size_t n;
    const uint8_t *p = payload(&c->from_gdb, &n);
    if (c->disabled || !c->no_ack || c->from_gdb.overflow) {
        if (!c->no_ack && payload_is(p, n, "QStartNoAckMode"))
            c->ack_asked = true;
        if (c->from_gdb.overflow)
            c->disabled = true;
        forward_to_stub(c, c->from_gdb.buf, c->from_gdb.len);
        return;
    }
    if (!is_read_only(p, n))
        invalidate(c);
    uint32_t addr, len;
    bool owed = replies_owed(c);
    if (!owed && parse_m(p, n, &addr, &len)) {
        request_m(c, addr, len);
        return;
    }
    for (unsigned i = 0; !owed && i < RSPCACHE_MEMO; i++) {
        if (c->memo[i].query[0] == '\0' || !payload_is(p, n, c->memo[i].query))
            continue;
        if (c->memo[i].have) {
            c->memo_hits++;
            send_packet(c, (const uint8_t *)c->memo[i].reply, strlen(c->memo[i].reply));
        } else {
            forward_request(c, RSPCACHE_MEMO_Q, i);
        }
        return;
    }
    forward_request(c, RSPCACHE_PASS, 0);
}

void rspcache_from_gdb(rspcache_t *c, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int r = rx_byte(&c->from_gdb, data[i]);
        if (r == 1) {
            gdb_packet(c);
        } else if (r < 0) {
            if (data[i] == 0x03)
                invalidate(c); /* Ctrl-C: the app is (about to be) halted anew */
            forward_to_stub(c, &data[i], 1u);
        }
    }
}

/* ---- from the stub ------------------------------------------------------------------------ */

static void stub_packet(rspcache_t *c)
{
    size_t n;
    const uint8_t *p = payload(&c->from_stub, &n);
    if (c->ack_asked) {
        c->ack_asked = false;
        c->no_ack = payload_is(p, n, "OK");
        c->to_gdb(c->gdb_ctx, c->from_stub.buf, c->from_stub.len);
        return;
    }
    if (c->npending == 0 || c->disabled || c->from_stub.overflow) {
        /* an unexpected packet (or pass-through): it goes on, and nothing is to be trusted */
        if (c->no_ack && !c->disabled && c->npending == 0)
            invalidate(c);
        c->to_gdb(c->gdb_ctx, c->from_stub.buf, c->from_stub.len);
        return;
    }
    rspcache_pending_t q = c->pending[0];
    memmove(&c->pending[0], &c->pending[1], (c->npending - 1u) * sizeof(c->pending[0]));
    c->npending--;
    switch (q.kind) {
    case RSPCACHE_WIDE: {
        uint8_t data[RSPCACHE_FETCH_MAX];
        size_t got = 0;
        if (unhex(p, n, data, sizeof(data), &got) && got > 0 && q.addr - q.waddr < got) {
            for (uint32_t off = 0; off + RSPCACHE_LINE <= got; off += RSPCACHE_LINE)
                cache_store_line(c, q.waddr + off, data + off);
            uint32_t have = (uint32_t)got - (q.addr - q.waddr);
            reply_mem(c, data + (q.addr - q.waddr), have < q.len ? have : q.len);
            return;
        }
        /* refused (a line reaching outside the app's memory) or not understood: ask gdb's own */
        ask_m(c, RSPCACHE_RETRY, q.addr, q.len, q.addr, q.len);
        return;
    }
    case RSPCACHE_PREFETCH: {
        uint8_t data[RSPCACHE_LINE];
        size_t got = 0;
        if (q.gen == c->gen && unhex(p, n, data, sizeof(data), &got) && got == RSPCACHE_LINE)
            cache_store_line(c, q.waddr, data);
        if (c->held && !replies_owed(c)) {
            uint8_t probe[RSPCACHE_FETCH_MAX];
            bool have = c->held_len <= RSPCACHE_FETCH_MAX &&
                        cache_read(c, c->held_addr, c->held_len, probe);
            if (have || c->npending == 0) {
                c->held = false;
                request_m(c, c->held_addr, c->held_len);
            }
        }
        return; /* the relay's own: gdb never sees it */
    }
    case RSPCACHE_MEMO_Q:
        if (n < RSPCACHE_MEMO_MAX && (n == 0 || p[0] != 'E') && memchr(p, '}', n) == NULL &&
            memchr(p, '*', n) == NULL) {
            memcpy(c->memo[q.memo].reply, p, n);
            c->memo[q.memo].reply[n] = '\0';
            c->memo[q.memo].have = true;
        }
        break;
    default:
        break;
    }
    c->to_gdb(c->gdb_ctx, c->from_stub.buf, c->from_stub.len);
    uint32_t pc, sp;
    if (q.kind == RSPCACHE_PASS && n > 3u && p[0] == 'T' && stop_reg(p, n, 15u, &pc) &&
        stop_reg(p, n, 13u, &sp)) {
        prefetch(c, pc);
        prefetch(c, sp);
    }
}

void rspcache_from_stub(rspcache_t *c, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int r = rx_byte(&c->from_stub, data[i]);
        if (r == 1)
            stub_packet(c);
        else if (r < 0)
            c->to_gdb(c->gdb_ctx, &data[i], 1u); /* acks */
    }
}

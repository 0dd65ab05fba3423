/*
 * GDB remote serial protocol engine: framing, then one handler per command.
 *
 * Framing is a byte-at-a-time state machine so any transport chunking works (one byte per
 * MQTT message or a whole burst). Escapes ('}' x^0x20) and run-length encoding ('*' n) are
 * undone while receiving; the checksum covers the raw bytes, as gdb computes it. Every
 * received byte is stored only after a bound check against RSP_PACKET_MAX; a packet that
 * would overflow is still consumed up to its checksum and then answered with E16, so the
 * stream stays in sync.
 *
 * Replies are built directly in rsp->tx, so the last one can be resent on '-'. A reply never
 * grows beyond RSP_PACKET_MAX payload bytes: readers clip their data to the room left.
 */
#include "keel/rsp.h"

#include <string.h>

#define E_INVAL "E16"
#define E_FAULT "E0e"
#define E_NOSPC "E1c"
#define E_IO "E05"

#define MAX_RETRIES 8u
#define MEM_MAX (RSP_PACKET_MAX / 2u) /* bytes per 'm' reply: two hex digits each */

static const char target_xml[] =
    "<?xml version=\"1.0\"?>\n"
    "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
    "<target version=\"1.0\">\n"
    "<architecture>arm</architecture>\n"
    "<feature name=\"org.gnu.gdb.arm.m-profile\">\n"
    "<reg name=\"r0\" bitsize=\"32\" regnum=\"0\"/>\n"
    "<reg name=\"r1\" bitsize=\"32\"/>\n"
    "<reg name=\"r2\" bitsize=\"32\"/>\n"
    "<reg name=\"r3\" bitsize=\"32\"/>\n"
    "<reg name=\"r4\" bitsize=\"32\"/>\n"
    "<reg name=\"r5\" bitsize=\"32\"/>\n"
    "<reg name=\"r6\" bitsize=\"32\"/>\n"
    "<reg name=\"r7\" bitsize=\"32\"/>\n"
    "<reg name=\"r8\" bitsize=\"32\"/>\n"
    "<reg name=\"r9\" bitsize=\"32\"/>\n"
    "<reg name=\"r10\" bitsize=\"32\"/>\n"
    "<reg name=\"r11\" bitsize=\"32\"/>\n"
    "<reg name=\"r12\" bitsize=\"32\"/>\n"
    "<reg name=\"sp\" bitsize=\"32\" type=\"data_ptr\"/>\n"
    "<reg name=\"lr\" bitsize=\"32\"/>\n"
    "<reg name=\"pc\" bitsize=\"32\" type=\"code_ptr\"/>\n"
    "<reg name=\"xpsr\" bitsize=\"32\"/>\n"
    "</feature>\n"
    "<feature name=\"org.gnu.gdb.arm.m-system\">\n"
    "<reg name=\"msp\" bitsize=\"32\" type=\"data_ptr\"/>\n"
    "<reg name=\"psp\" bitsize=\"32\" type=\"data_ptr\"/>\n"
    "</feature>\n"
    "</target>\n";

const char *rsp_target_xml(void)
{
    return target_xml;
}

/* ---- reply building ---------------------------------------------------------------- */

static const char hexdig[] = "0123456789abcdef";

static void reply_begin(rsp_t *r)
{
    r->tx[0] = '$';
    r->tx_len = 1;
}

/* Room left for payload bytes in the reply being built. */
static size_t reply_room(const rsp_t *r)
{
    return RSP_PACKET_MAX + 1u - r->tx_len;
}

static void reply_byte(rsp_t *r, uint8_t c)
{
    if (reply_room(r) > 0)
        r->tx[r->tx_len++] = c;
}

static void reply_str(rsp_t *r, const char *s)
{
    while (*s)
        reply_byte(r, (uint8_t)*s++);
}

static void reply_hex8(rsp_t *r, uint8_t v)
{
    reply_byte(r, (uint8_t)hexdig[v >> 4]);
    reply_byte(r, (uint8_t)hexdig[v & 15u]);
}

/* A register as gdb expects it: target (little-endian) byte order. */
static void reply_reg(rsp_t *r, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        reply_hex8(r, (uint8_t)(v >> (8 * i)));
}

static bool needs_escape(uint8_t c)
{
    return c == '$' || c == '#' || c == '}' || c == '*';
}

static void reply_send(rsp_t *r)
{
    uint8_t sum = 0;
    for (size_t i = 1; i < r->tx_len; i++)
        sum = (uint8_t)(sum + r->tx[i]);
    r->tx[r->tx_len++] = '#';
    r->tx[r->tx_len++] = (uint8_t)hexdig[sum >> 4];
    r->tx[r->tx_len++] = (uint8_t)hexdig[sum & 15u];
    r->tx_retries = 0;
    r->cfg.send(r->cfg.send_ctx, r->tx, r->tx_len);
}

static void reply_simple(rsp_t *r, const char *s)
{
    reply_begin(r);
    reply_str(r, s);
    reply_send(r);
}

static void reply_err(rsp_t *r, kerr_t err)
{
    switch (err) {
    case KERR_RANGE: reply_simple(r, E_FAULT); break;
    case KERR_NOMEM: reply_simple(r, E_NOSPC); break;
    case KERR_INVAL: reply_simple(r, E_INVAL); break;
    default: reply_simple(r, E_IO); break;
    }
}

/* ---- parsing of the (untrusted) payload ------------------------------------------ */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} cursor_t;

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 1..8 hex digits into a 32-bit value; stops at the first non-digit. */
static bool get_hex(cursor_t *c, uint32_t *out)
{
    uint32_t v = 0;
    unsigned n = 0;
    while (c->p < c->end && hexval(*c->p) >= 0) {
        if (n == 8)
            return false;
        v = (v << 4) | (uint32_t)hexval(*c->p);
        c->p++;
        n++;
    }
    *out = v;
    return n > 0;
}

static bool get_char(cursor_t *c, uint8_t want)
{
    if (c->p < c->end && *c->p == want) {
        c->p++;
        return true;
    }
    return false;
}

static bool at_end(const cursor_t *c)
{
    return c->p == c->end;
}

/* Does the payload start with the NUL-terminated prefix? */
static bool has_prefix(const uint8_t *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(p, prefix, k) == 0;
}

/* Exactly 2*n hex digits into n bytes; dst may alias the digits (it writes behind reading).
 * Compared as digits/2 so a huge n cannot wrap 2*n on a 32-bit target. */
static bool unhex(const uint8_t *src, size_t digits, uint8_t *dst, size_t n)
{
    if (digits % 2u != 0 || digits / 2u != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(src[2 * i]), lo = hexval(src[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        dst[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* "addr,len" common to m, M, X, Z and z. */
static bool get_addr_len(cursor_t *c, uint32_t *addr, uint32_t *len)
{
    return get_hex(c, addr) && get_char(c, ',') && get_hex(c, len);
}

/* ---- commands ---------------------------------------------------------------------- */

static void send_stop_reply(rsp_t *r)
{
    const rsp_target_ops_t *ops = r->cfg.ops;
    int sig = ops->stop_signal(r->cfg.target_ctx);
    reply_begin(r);
    reply_byte(r, 'T');
    reply_hex8(r, (uint8_t)sig);
    rsp_bp_type_t wtype;
    uint32_t waddr;
    if (ops->stop_watch && ops->stop_watch(r->cfg.target_ctx, &wtype, &waddr)) {
        /* gdb matches the address to its watchpoint and shows old and new value itself. */
        reply_str(r, wtype == RSP_WP_READ ? "rwatch:" : wtype == RSP_WP_ACCESS ? "awatch:" : "watch:");
        for (int shift = 28; shift >= 0; shift -= 4)
            reply_byte(r, (uint8_t)hexdig[(waddr >> shift) & 15u]);
        reply_byte(r, ';');
    }
    /* Every register rides along: gdb needs no 'g' round trip after a stop (a step's stop costs
     * one round trip less). */
    for (unsigned i = 0; i < RSP_REG_COUNT; i++) {
        uint32_t v;
        if (ops->read_reg(r->cfg.target_ctx, i, &v) != KERR_OK)
            continue;
        reply_hex8(r, (uint8_t)i);
        reply_byte(r, ':');
        reply_reg(r, v);
        reply_byte(r, ';');
    }
    reply_str(r, "thread:1;");
    reply_send(r);
}

static void cmd_read_regs(rsp_t *r)
{
    uint32_t v[RSP_REG_COUNT];
    for (unsigned i = 0; i < RSP_REG_COUNT; i++) {
        kerr_t err = r->cfg.ops->read_reg(r->cfg.target_ctx, i, &v[i]);
        if (err != KERR_OK) {
            reply_err(r, err);
            return;
        }
    }
    reply_begin(r);
    for (unsigned i = 0; i < RSP_REG_COUNT; i++)
        reply_reg(r, v[i]);
    reply_send(r);
}

static bool parse_reg_value(const uint8_t *hex, size_t digits, uint32_t *out)
{
    uint8_t b[4];
    if (!unhex(hex, digits, b, 4))
        return false;
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

static void cmd_write_regs(rsp_t *r, const uint8_t *arg, size_t n)
{
    uint32_t v[RSP_REG_COUNT];
    if (n != RSP_REG_COUNT * 8u) {
        reply_simple(r, E_INVAL);
        return;
    }
    for (unsigned i = 0; i < RSP_REG_COUNT; i++) {
        if (!parse_reg_value(arg + 8u * i, 8, &v[i])) {
            reply_simple(r, E_INVAL);
            return;
        }
    }
    for (unsigned i = 0; i < RSP_REG_COUNT; i++) {
        kerr_t err = r->cfg.ops->write_reg(r->cfg.target_ctx, i, v[i]);
        if (err != KERR_OK) {
            reply_err(r, err);
            return;
        }
    }
    reply_simple(r, "OK");
}

static void cmd_read_reg(rsp_t *r, const uint8_t *arg, size_t n)
{
    cursor_t c = {arg, arg + n};
    uint32_t regno, v;
    if (!get_hex(&c, &regno) || !at_end(&c) || regno >= RSP_REG_COUNT) {
        reply_simple(r, E_INVAL);
        return;
    }
    kerr_t err = r->cfg.ops->read_reg(r->cfg.target_ctx, regno, &v);
    if (err != KERR_OK) {
        reply_err(r, err);
        return;
    }
    reply_begin(r);
    reply_reg(r, v);
    reply_send(r);
}

static void cmd_write_reg(rsp_t *r, const uint8_t *arg, size_t n)
{
    cursor_t c = {arg, arg + n};
    uint32_t regno, v;
    if (!get_hex(&c, &regno) || !get_char(&c, '=') || regno >= RSP_REG_COUNT ||
        !parse_reg_value(c.p, (size_t)(c.end - c.p), &v)) {
        reply_simple(r, E_INVAL);
        return;
    }
    kerr_t err = r->cfg.ops->write_reg(r->cfg.target_ctx, regno, v);
    if (err != KERR_OK)
        reply_err(r, err);
    else
        reply_simple(r, "OK");
}

static void cmd_read_mem(rsp_t *r, const uint8_t *arg, size_t n)
{
    cursor_t c = {arg, arg + n};
    uint32_t addr, len;
    if (!get_addr_len(&c, &addr, &len) || !at_end(&c) || len == 0 ||
        (uint64_t)addr + len > 0x100000000ull) {
        reply_simple(r, E_INVAL);
        return;
    }
    /* A shorter reply than asked is allowed: gdb asks again for the rest. */
    if (len > MEM_MAX)
        len = MEM_MAX;
    uint8_t buf[MEM_MAX];
    kerr_t err = r->cfg.ops->read_mem(r->cfg.target_ctx, addr, buf, len);
    if (err != KERR_OK) {
        reply_err(r, err);
        return;
    }
    reply_begin(r);
    for (uint32_t i = 0; i < len; i++)
        reply_hex8(r, buf[i]);
    reply_send(r);
}

/* M (hex) and X (binary): the data must be exactly len bytes, checked before any write. */
static void cmd_write_mem(rsp_t *r, const uint8_t *arg, size_t n, bool binary)
{
    cursor_t c = {arg, arg + n};
    uint32_t addr, len;
    if (!get_addr_len(&c, &addr, &len) || !get_char(&c, ':') ||
        (uint64_t)addr + len > 0x100000000ull) {
        reply_simple(r, E_INVAL);
        return;
    }
    size_t have = (size_t)(c.end - c.p);
    uint8_t *data = (uint8_t *)(uintptr_t)c.p; /* decoded in place, in rsp->rx */
    bool ok = binary ? have == len : unhex(c.p, have, data, len);
    if (!ok) {
        reply_simple(r, E_INVAL);
        return;
    }
    if (len == 0) { /* gdb's probe for X support */
        reply_simple(r, "OK");
        return;
    }
    kerr_t err = r->cfg.ops->write_mem(r->cfg.target_ctx, addr, data, len);
    if (err != KERR_OK)
        reply_err(r, err);
    else
        reply_simple(r, "OK");
}

static void cmd_breakpoint(rsp_t *r, const uint8_t *arg, size_t n, bool insert)
{
    cursor_t c = {arg, arg + n};
    uint32_t type, addr, kind;
    if (!get_hex(&c, &type) || !get_char(&c, ',')) {
        reply_simple(r, E_INVAL);
        return;
    }
    const rsp_target_ops_t *ops = r->cfg.ops;
    bool watch = type >= RSP_WP_WRITE && type <= RSP_WP_ACCESS;
    if (type > RSP_WP_ACCESS || (watch && !ops->insert_wp)) {
        reply_simple(r, ""); /* not supported: gdb stops asking */
        return;
    }
    if (!get_addr_len(&c, &addr, &kind) || !at_end(&c) ||
        (watch && (kind == 0 || (uint64_t)addr + kind > 0x100000000ull))) {
        reply_simple(r, E_INVAL);
        return;
    }
    kerr_t err;
    if (watch) /* kind is the length of the watched range */
        err = insert ? ops->insert_wp(r->cfg.target_ctx, (rsp_bp_type_t)type, addr, kind)
                     : ops->remove_wp(r->cfg.target_ctx, (rsp_bp_type_t)type, addr, kind);
    else
        err = insert ? ops->insert_bp(r->cfg.target_ctx, (rsp_bp_type_t)type, addr, kind)
                     : ops->remove_bp(r->cfg.target_ctx, (rsp_bp_type_t)type, addr, kind);
    if (err != KERR_OK)
        reply_err(r, err);
    else
        reply_simple(r, "OK");
}

/* Resume, after writing pc if the packet gave an address. No reply until the stop. */
static void do_resume(rsp_t *r, bool step, int sig, bool has_addr, uint32_t addr)
{
    const rsp_target_ops_t *ops = r->cfg.ops;
    kerr_t err = KERR_OK;
    if (has_addr)
        err = ops->write_reg(r->cfg.target_ctx, RSP_REG_PC, addr);
    if (err == KERR_OK)
        err = ops->resume(r->cfg.target_ctx, step, sig);
    if (err != KERR_OK) {
        reply_err(r, err);
        return;
    }
    r->running = true;
}

/* c [addr], s [addr], C sig[;addr], S sig[;addr] */
static void cmd_continue(rsp_t *r, uint8_t cmd, const uint8_t *arg, size_t n)
{
    cursor_t c = {arg, arg + n};
    uint32_t sig = 0, addr = 0;
    bool with_sig = cmd == 'C' || cmd == 'S';
    if (with_sig && (!get_hex(&c, &sig) || sig > 0xFF)) {
        reply_simple(r, E_INVAL);
        return;
    }
    bool has_addr = false;
    if (!at_end(&c)) {
        if (with_sig && !get_char(&c, ';')) {
            reply_simple(r, E_INVAL);
            return;
        }
        if (!get_hex(&c, &addr) || !at_end(&c)) {
            reply_simple(r, E_INVAL);
            return;
        }
        has_addr = true;
    }
    do_resume(r, cmd == 's' || cmd == 'S', (int)sig, has_addr, addr);
}

/*
 * vCont;action[:thread-id];... The app is one thread, and gdb's rule is that the leftmost
 * action matching a thread applies to it: so the first action is the one, whatever thread id
 * it names ("p1.1", "1", "-1"). The rest are still checked so a malformed packet is refused.
 */
static void cmd_vcont(rsp_t *r, const uint8_t *arg, size_t n)
{
    cursor_t c = {arg, arg + n};
    bool first = true, step = false, range = false;
    uint32_t sig = 0, start = 0, end = 0;
    if (at_end(&c)) {
        reply_simple(r, E_INVAL);
        return;
    }
    while (!at_end(&c)) {
        uint32_t s = 0;
        if (!get_char(&c, ';') || at_end(&c)) {
            reply_simple(r, E_INVAL);
            return;
        }
        uint8_t a = *c.p++;
        uint32_t rs = 0, re = 0;
        if (a == 'C' || a == 'S') {
            if (!get_hex(&c, &s) || s > 0xFF) {
                reply_simple(r, E_INVAL);
                return;
            }
        } else if (a == 'r' && r->cfg.ops->resume_range) {
            if (!get_hex(&c, &rs) || !get_char(&c, ',') || !get_hex(&c, &re) || re < rs) {
                reply_simple(r, E_INVAL);
                return;
            }
        } else if (a != 'c' && a != 's') {
            reply_simple(r, E_INVAL); /* t (and r without a target for it): not offered */
            return;
        }
        if (get_char(&c, ':')) { /* thread id: skip its characters */
            unsigned k = 0;
            while (!at_end(&c) && *c.p != ';' && k++ < 32)
                c.p++;
            if (k > 32) {
                reply_simple(r, E_INVAL);
                return;
            }
        }
        if (first) {
            step = a == 's' || a == 'S';
            range = a == 'r';
            start = rs;
            end = re;
            sig = s;
            first = false;
        }
    }
    if (!range) {
        do_resume(r, step, (int)sig, false, 0);
        return;
    }
    kerr_t err = r->cfg.ops->resume_range(r->cfg.target_ctx, start, end);
    if (err != KERR_OK)
        reply_err(r, err);
    else
        r->running = true;
}

/* qXfer:features:read:ANNEX:offset,length */
static void cmd_xfer_features(rsp_t *r, const uint8_t *arg, size_t n)
{
    static const char annex[] = "target.xml:";
    cursor_t c = {arg, arg + n};
    uint32_t off, len;
    if (!has_prefix(arg, n, annex)) {
        reply_simple(r, "E00"); /* unknown annex, as the protocol asks */
        return;
    }
    c.p += sizeof(annex) - 1u;
    if (!get_addr_len(&c, &off, &len) || !at_end(&c)) {
        reply_simple(r, E_INVAL);
        return;
    }
    size_t total = sizeof(target_xml) - 1u;
    reply_begin(r);
    reply_byte(r, 'l'); /* rewritten to 'm' below if data remains */
    size_t pos = off < total ? off : total, sent = 0;
    while (pos < total && sent < len) {
        uint8_t ch = (uint8_t)target_xml[pos];
        size_t need = needs_escape(ch) ? 2u : 1u;
        if (reply_room(r) < need)
            break;
        if (need == 2u) {
            reply_byte(r, '}');
            ch ^= 0x20u;
        }
        reply_byte(r, ch);
        pos++;
        sent++;
    }
    if (pos < total)
        r->tx[1] = 'm';
    reply_send(r);
}

static void cmd_query(rsp_t *r, const uint8_t *p, size_t n)
{
    static const char xfer[] = "qXfer:features:read:";
    if (has_prefix(p, n, "qSupported") && (n == 10 || p[10] == ':')) {
        reply_begin(r);
        reply_str(r, "PacketSize=");
        /* hex, as the protocol wants */
        for (int shift = 12; shift >= 0; shift -= 4)
            if ((RSP_PACKET_MAX >> shift) != 0u)
                reply_byte(r, (uint8_t)hexdig[(RSP_PACKET_MAX >> shift) & 15u]);
        reply_str(r, ";qXfer:features:read+;QStartNoAckMode+;vContSupported+");
        reply_send(r);
    } else if (has_prefix(p, n, xfer)) {
        cmd_xfer_features(r, p + sizeof(xfer) - 1u, n - (sizeof(xfer) - 1u));
    } else if (n == 2 && has_prefix(p, n, "qC")) {
        reply_simple(r, "QC1");
    } else if (n == 12 && has_prefix(p, n, "qfThreadInfo")) {
        reply_simple(r, "m1");
    } else if (n == 12 && has_prefix(p, n, "qsThreadInfo")) {
        reply_simple(r, "l");
    } else if (has_prefix(p, n, "qAttached")) {
        /* "attached": quitting gdb detaches and leaves the app running instead of killing it. */
        reply_simple(r, "1");
    } else if (n == 15 && has_prefix(p, n, "QStartNoAckMode")) {
        reply_simple(r, "OK");
        r->no_ack = true;
    } else {
        reply_simple(r, "");
    }
}

static void cmd_v(rsp_t *r, const uint8_t *p, size_t n)
{
    if (n == 6 && has_prefix(p, n, "vCont?")) {
        reply_simple(r, r->cfg.ops->resume_range ? "vCont;c;C;s;S;r" : "vCont;c;C;s;S");
    } else if (has_prefix(p, n, "vCont") && n > 5 && p[5] == ';') {
        cmd_vcont(r, p + 5, n - 5);
    } else if (has_prefix(p, n, "vKill")) {
        r->running = false;
        r->cfg.ops->kill(r->cfg.target_ctx);
        reply_simple(r, "OK");
    } else {
        reply_simple(r, "");
    }
}

static void dispatch(rsp_t *r, const uint8_t *p, size_t n)
{
    if (n == 0) {
        reply_simple(r, "");
        return;
    }
    const uint8_t *arg = p + 1;
    size_t an = n - 1;
    switch (p[0]) {
    case '?': send_stop_reply(r); break;
    case 'g': if (an == 0) cmd_read_regs(r); else reply_simple(r, E_INVAL); break;
    case 'G': cmd_write_regs(r, arg, an); break;
    case 'p': cmd_read_reg(r, arg, an); break;
    case 'P': cmd_write_reg(r, arg, an); break;
    case 'm': cmd_read_mem(r, arg, an); break;
    case 'M': cmd_write_mem(r, arg, an, false); break;
    case 'X': cmd_write_mem(r, arg, an, true); break;
    case 'Z': cmd_breakpoint(r, arg, an, true); break;
    case 'z': cmd_breakpoint(r, arg, an, false); break;
    case 'c': case 's': case 'C': case 'S': cmd_continue(r, p[0], arg, an); break;
    case 'v': cmd_v(r, p, n); break;
    case 'q': case 'Q': cmd_query(r, p, n); break;
    case 'H': reply_simple(r, "OK"); break; /* one thread: any selection is that thread */
    case 'D':
        r->running = false;
        r->cfg.ops->detach(r->cfg.target_ctx);
        reply_simple(r, "OK");
        break;
    case 'k':
        r->running = false;
        r->cfg.ops->kill(r->cfg.target_ctx);
        break;
    default: reply_simple(r, ""); break;
    }
}

/* ---- framing ----------------------------------------------------------------------- */

static void rx_store(rsp_t *r, uint8_t c)
{
    if (r->rx_len < RSP_PACKET_MAX)
        r->rx[r->rx_len++] = c;
    else
        r->rx_overflow = true;
}

static void send_ack(rsp_t *r, uint8_t c)
{
    if (!r->no_ack)
        r->cfg.send(r->cfg.send_ctx, &c, 1);
}

static void rx_packet_done(rsp_t *r, uint8_t csum_lo)
{
    int hi = hexval(r->rx_csum_hi), lo = hexval(csum_lo);
    r->rx_state = RSP_RX_IDLE;
    /* Checked in no-ack mode too: there a damaged packet is dropped rather than run. */
    if (hi < 0 || lo < 0 || (uint8_t)(hi << 4 | lo) != r->rx_sum) {
        r->stats_bad_csum++;
        send_ack(r, '-');
        return;
    }
    /* qSupported opens every connection. A debugger connecting after one that vanished without
     * a 'D' (a serial line cannot tell) expects acks until it asks for no-ack mode itself. */
    if (r->rx_len >= 10u && memcmp(r->rx, "qSupported", 10) == 0)
        r->no_ack = false;
    send_ack(r, '+');
    if (r->rx_overflow)
        reply_simple(r, E_INVAL);
    else
        dispatch(r, r->rx, r->rx_len);
}

static void rx_byte(rsp_t *r, uint8_t c)
{
    if (c == '$' && r->rx_state != RSP_RX_CSUM1 && r->rx_state != RSP_RX_CSUM2) {
        /* a '$' always starts a packet: gdb resends from the start after a timeout */
        r->rx_state = RSP_RX_DATA;
        r->rx_len = 0;
        r->rx_sum = 0;
        r->rx_overflow = false;
        return;
    }
    switch (r->rx_state) {
    case RSP_RX_IDLE:
        if (c == 0x03) {
            if (r->running)
                r->cfg.ops->halt(r->cfg.target_ctx);
        } else if (c == '-' && !r->no_ack && r->tx_len > 0 && r->tx_retries < MAX_RETRIES) {
            r->tx_retries++;
            r->cfg.send(r->cfg.send_ctx, r->tx, r->tx_len);
        }
        break; /* '+' and noise */
    case RSP_RX_DATA:
        if (c == '#') {
            r->rx_state = RSP_RX_CSUM1;
            break;
        }
        r->rx_sum = (uint8_t)(r->rx_sum + c);
        if (c == '}')
            r->rx_state = RSP_RX_ESCAPE;
        else if (c == '*')
            r->rx_state = RSP_RX_RUN;
        else
            rx_store(r, c);
        break;
    case RSP_RX_ESCAPE:
        r->rx_sum = (uint8_t)(r->rx_sum + c);
        rx_store(r, c ^ 0x20u);
        r->rx_state = RSP_RX_DATA;
        break;
    case RSP_RX_RUN:
        /* '*' n: the previous byte n-29 more times. Without a previous byte it is garbage. */
        r->rx_sum = (uint8_t)(r->rx_sum + c);
        if (r->rx_len == 0 || c < 29u + 3u || c > 126u) {
            r->rx_overflow = true;
        } else {
            uint8_t prev = r->rx[r->rx_len - 1];
            for (unsigned k = 0; k < (unsigned)c - 29u; k++)
                rx_store(r, prev);
        }
        r->rx_state = RSP_RX_DATA;
        break;
    case RSP_RX_CSUM1:
        r->rx_csum_hi = c;
        r->rx_state = RSP_RX_CSUM2;
        break;
    case RSP_RX_CSUM2:
        rx_packet_done(r, c);
        break;
    }
}

kerr_t rsp_init(rsp_t *rsp, const rsp_config_t *cfg)
{
    if (!rsp || !cfg || !cfg->send || !cfg->ops)
        return KERR_INVAL;
    const rsp_target_ops_t *o = cfg->ops;
    if (!o->read_reg || !o->write_reg || !o->read_mem || !o->write_mem || !o->insert_bp ||
        !o->remove_bp || !o->resume || !o->halt || !o->stop_signal || !o->detach || !o->kill)
        return KERR_INVAL;
    if (!o->insert_wp != !o->remove_wp || !o->insert_wp != !o->stop_watch)
        return KERR_INVAL; /* watchpoints: all three or none */
    memset(rsp, 0, sizeof(*rsp));
    rsp->cfg = *cfg;
    return KERR_OK;
}

void rsp_input(rsp_t *rsp, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        rx_byte(rsp, data[i]);
}

void rsp_notify_stop(rsp_t *rsp)
{
    if (!rsp->running)
        return;
    rsp->running = false;
    send_stop_reply(rsp);
}

void rsp_notify_exit(rsp_t *rsp, int signal)
{
    if (!rsp->running)
        return;
    rsp->running = false;
    reply_begin(rsp);
    reply_byte(rsp, 'X');
    reply_hex8(rsp, (uint8_t)signal);
    reply_send(rsp);
}

bool rsp_running(const rsp_t *rsp)
{
    return rsp->running;
}

void rsp_connection_lost(rsp_t *rsp)
{
    rsp->running = false;
    rsp->cfg.ops->detach(rsp->cfg.target_ctx);
    rsp->rx_state = RSP_RX_IDLE;
    rsp->tx_len = 0;
    rsp->no_ack = false;
}

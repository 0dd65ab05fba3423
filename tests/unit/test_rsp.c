/*
 * The RSP engine against a target that is memory and a register file (the engine cannot tell),
 * checked byte for byte: framing (acks, checksums, escapes, run-length, overflow, resync),
 * every command, the stop/Ctrl-C cycle, and a replay of what gdb-multiarch 13 really sent to
 * QEMU's gdbstub (test_rsp_gdb13_qemu.log): every one of those packets must be acked and
 * answered with a well-formed reply that says what gdb expects. Then seeded mutations of those
 * packets: output must stay well-formed and the target untouched outside its memory.
 *
 *   test_rsp LOG                  run the tests (LOG: the recorded session)
 *   test_rsp --print-target-xml   print target.xml (CTest feeds it to gdb-multiarch)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/rsp.h"
#include "unit_util.h"

/* ---- the fake target: two memory regions, a register file, a call log ------------- */

#define CODE_BASE 0x10000000u /* the recorded session debugged code and RAM at these */
#define CODE_SIZE 0x10000u
#define RAM_BASE 0x38000000u
#define RAM_SIZE 0x10000u
#define MAX_BP 8

typedef struct {
    uint32_t regs[RSP_REG_COUNT];
    uint8_t code[CODE_SIZE];
    uint8_t ram[RAM_SIZE];
    struct { rsp_bp_type_t type; uint32_t addr, kind; } bp[MAX_BP];
    int nbp;
    int resumes, steps, last_sig, halts, detaches, kills, stop_sig;
    int mem_out_of_region; /* must stay 0: the engine passes only what the target accepts */
    struct { rsp_bp_type_t type; uint32_t addr, len; } wp[2];
    int nwp;
    bool stop_by_watch;    /* the next stop reply names wp[0] */
    int ranges;            /* resume_range calls, with the last range: */
    uint32_t range_start, range_end;
} fake_t;

static uint8_t *fake_mem(fake_t *f, uint32_t addr, uint32_t len)
{
    if (addr >= CODE_BASE && len <= CODE_SIZE && addr - CODE_BASE <= CODE_SIZE - len)
        return f->code + (addr - CODE_BASE);
    if (addr >= RAM_BASE && len <= RAM_SIZE && addr - RAM_BASE <= RAM_SIZE - len)
        return f->ram + (addr - RAM_BASE);
    return NULL;
}

static kerr_t f_read_reg(void *c, unsigned n, uint32_t *v)
{
    fake_t *f = c;
    if (n >= RSP_REG_COUNT)
        return KERR_INVAL;
    *v = f->regs[n];
    return KERR_OK;
}

static kerr_t f_write_reg(void *c, unsigned n, uint32_t v)
{
    fake_t *f = c;
    if (n >= RSP_REG_COUNT)
        return KERR_INVAL;
    f->regs[n] = v;
    return KERR_OK;
}

static kerr_t f_read_mem(void *c, uint32_t a, uint8_t *out, uint32_t len)
{
    uint8_t *m = fake_mem(c, a, len);
    if (!m)
        return KERR_RANGE;
    memcpy(out, m, len);
    return KERR_OK;
}

static kerr_t f_write_mem(void *c, uint32_t a, const uint8_t *d, uint32_t len)
{
    uint8_t *m = fake_mem(c, a, len);
    if (!m)
        return KERR_RANGE;
    memcpy(m, d, len);
    return KERR_OK;
}

static kerr_t f_insert_bp(void *c, rsp_bp_type_t t, uint32_t a, uint32_t k)
{
    fake_t *f = c;
    if (!fake_mem(f, a, 2))
        return KERR_RANGE;
    if (f->nbp == MAX_BP)
        return KERR_NOMEM;
    f->bp[f->nbp].type = t;
    f->bp[f->nbp].addr = a;
    f->bp[f->nbp].kind = k;
    f->nbp++;
    return KERR_OK;
}

static kerr_t f_remove_bp(void *c, rsp_bp_type_t t, uint32_t a, uint32_t k)
{
    fake_t *f = c;
    for (int i = 0; i < f->nbp; i++) {
        if (f->bp[i].type == t && f->bp[i].addr == a) {
            f->bp[i] = f->bp[--f->nbp];
            return KERR_OK;
        }
    }
    return KERR_INVAL;
}

static kerr_t f_resume(void *c, bool step, int sig)
{
    fake_t *f = c;
    f->resumes++;
    f->steps += step;
    f->last_sig = sig;
    return KERR_OK;
}

static void f_halt(void *c) { ((fake_t *)c)->halts++; }
static int f_stop_signal(void *c) { return ((fake_t *)c)->stop_sig; }
static void f_detach(void *c) { ((fake_t *)c)->detaches++; }
static void f_kill(void *c) { ((fake_t *)c)->kills++; }

static const rsp_target_ops_t fake_ops = {
    f_read_reg, f_write_reg, f_read_mem, f_write_mem, f_insert_bp, f_remove_bp,
    f_resume, f_halt, f_stop_signal, f_detach, f_kill, NULL, NULL, NULL, NULL,
};

static kerr_t f_resume_range(void *c, uint32_t start, uint32_t end)
{
    fake_t *f = c;
    f->ranges++;
    f->range_start = start;
    f->range_end = end;
    return start < CODE_BASE ? KERR_RANGE : KERR_OK;
}

/* Watchpoints: two slots, RAM only. */
static kerr_t f_insert_wp(void *c, rsp_bp_type_t t, uint32_t a, uint32_t len)
{
    fake_t *f = c;
    if (a < RAM_BASE || a - RAM_BASE >= RAM_SIZE || len > RAM_SIZE - (a - RAM_BASE))
        return KERR_RANGE;
    if (f->nwp == 2)
        return KERR_NOMEM;
    f->wp[f->nwp].type = t;
    f->wp[f->nwp].addr = a;
    f->wp[f->nwp].len = len;
    f->nwp++;
    return KERR_OK;
}

static kerr_t f_remove_wp(void *c, rsp_bp_type_t t, uint32_t a, uint32_t len)
{
    fake_t *f = c;
    for (int i = 0; i < f->nwp; i++) {
        if (f->wp[i].type == t && f->wp[i].addr == a && f->wp[i].len == len) {
            f->wp[i] = f->wp[--f->nwp];
            return KERR_OK;
        }
    }
    return KERR_INVAL;
}

static bool f_stop_watch(void *c, rsp_bp_type_t *t, uint32_t *a)
{
    fake_t *f = c;
    if (!f->stop_by_watch || f->nwp == 0)
        return false;
    *t = f->wp[0].type;
    *a = f->wp[0].addr;
    return true;
}

static const rsp_target_ops_t fake_ops_wp = {
    f_read_reg, f_write_reg, f_read_mem, f_write_mem, f_insert_bp, f_remove_bp,
    f_resume, f_halt, f_stop_signal, f_detach, f_kill, f_insert_wp, f_remove_wp, f_stop_watch,
    NULL,
};

/* ---- the transport: everything the engine sent, in one buffer ------------------------ */

typedef struct {
    uint8_t buf[1 << 16];
    size_t len;
} out_t;

static void out_send(void *c, const uint8_t *d, size_t n)
{
    out_t *o = c;
    assert_true(o->len + n <= sizeof(o->buf));
    memcpy(o->buf + o->len, d, n);
    o->len += n;
}

typedef struct {
    fake_t f;
    out_t out;
    rsp_t rsp;
} fixture_t;

static fixture_t *fx_new(void)
{
    fixture_t *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->f.stop_sig = RSP_SIGTRAP;
    for (unsigned i = 0; i < RSP_REG_COUNT; i++)
        x->f.regs[i] = 0x11111111u * (i % 15u) + i;
    for (unsigned i = 0; i < CODE_SIZE; i++)
        x->f.code[i] = (uint8_t)(i * 7u + 3u);
    rsp_config_t cfg = {&fake_ops, &x->f, out_send, &x->out};
    assert_int_equal(rsp_init(&x->rsp, &cfg), KERR_OK);
    return x;
}

static void feed(fixture_t *x, const char *s)
{
    rsp_input(&x->rsp, (const uint8_t *)s, strlen(s));
}

/* Frame payload (raw, no escaping) as gdb would and feed it. */
static void feed_packet(fixture_t *x, const char *payload)
{
    char frame[4200];
    uint8_t sum = 0;
    for (const char *p = payload; *p; p++)
        sum = (uint8_t)(sum + (uint8_t)*p);
    int n = snprintf(frame, sizeof(frame), "$%s#%02x", payload, sum);
    assert_true(n > 0 && (size_t)n < sizeof(frame));
    feed(x, frame);
}

/*
 * Parse what the engine sent since *pos: an optional ack, then exactly one packet whose
 * checksum must be right. Returns the payload (NUL-terminated, escapes undone) in out.
 */
static void take_reply(fixture_t *x, size_t *pos, bool want_ack, char *out, size_t cap)
{
    const uint8_t *b = x->out.buf;
    size_t i = *pos, end = x->out.len;
    if (want_ack) {
        assert_true(i < end);
        assert_int_equal(b[i], '+');
        i++;
    }
    assert_true(i < end);
    assert_int_equal(b[i], '$');
    i++;
    uint8_t sum = 0;
    size_t n = 0;
    while (i < end && b[i] != '#') {
        sum = (uint8_t)(sum + b[i]);
        uint8_t c = b[i++];
        assert_true(c != '$' && c != '*');
        if (c == '}') {
            assert_true(i < end);
            sum = (uint8_t)(sum + b[i]);
            c = b[i++] ^ 0x20u;
        }
        assert_true(n + 1 < cap);
        out[n++] = (char)c;
    }
    out[n] = 0;
    assert_true(i + 3 <= end);
    char cs[3] = {(char)b[i + 1], (char)b[i + 2], 0};
    assert_int_equal(strtoul(cs, NULL, 16), sum);
    assert_true(n <= RSP_PACKET_MAX);
    *pos = i + 3;
}

/* Send one packet, expect '+' and one reply; returns the reply payload in a static buffer. */
static const char *transact(fixture_t *x, const char *payload)
{
    static char reply[RSP_PACKET_MAX + 1];
    size_t pos = x->out.len;
    feed_packet(x, payload);
    take_reply(x, &pos, true, reply, sizeof(reply));
    assert_int_equal(pos, x->out.len); /* nothing else was sent */
    return reply;
}

static void hex_le32(char *out, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        sprintf(out + 2 * i, "%02x", (unsigned)(v >> (8 * i)) & 0xFFu);
}

/* The stop reply the engine must send: T, the signal, an optional "watch:ADDR;"-like prefix,
 * every register expedited (regno:value;) and the thread (gdb keeps expedited registers only
 * for a known thread; without them it asks 'g' after every stop). */
static void want_stop(const fixture_t *x, int sig, const char *extra, char *out, size_t cap)
{
    int n = snprintf(out, cap, "T%02x%s", sig, extra);
    for (unsigned i = 0; i < RSP_REG_COUNT; i++) {
        char v[9];
        hex_le32(v, x->f.regs[i]);
        n += snprintf(out + n, cap - (size_t)n, "%02x:%s;", i, v);
    }
    snprintf(out + n, cap - (size_t)n, "thread:1;");
}

/* ---- framing ---------------------------------------------------------------------------- */

static void test_framing_ack_and_checksum(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    /* A wrong checksum is refused with '-' and not acted upon. */
    feed(x, "$g#00");
    assert_int_equal(x->out.len, 1);
    assert_int_equal(x->out.buf[0], '-');
    assert_int_equal(x->rsp.stats_bad_csum, 1);
    /* A bad hex digit in the checksum too. */
    feed(x, "$g#zz");
    assert_int_equal(x->out.len, 2);
    assert_int_equal(x->out.buf[1], '-');
    /* The same packet with its right checksum, one byte at a time. */
    const char *pkt = "$g#67";
    size_t pos = x->out.len;
    for (const char *p = pkt; *p; p++)
        rsp_input(&x->rsp, (const uint8_t *)p, 1);
    char reply[RSP_PACKET_MAX + 1];
    take_reply(x, &pos, true, reply, sizeof(reply));
    assert_int_equal(strlen(reply), RSP_REG_COUNT * 8);
    /* '-' from gdb: the same reply again, byte for byte; then a bounded number of times. */
    size_t first = x->out.len; /* "--", '+', then the reply from index 3 */
    feed(x, "-");
    assert_int_equal(x->out.len - first, first - 3);
    assert_memory_equal(x->out.buf + first, x->out.buf + 3, first - 3);
    for (int i = 0; i < 20; i++)
        feed(x, "-");
    assert_int_equal(x->out.len, first + 8 * (first - 3));
    /* '+' and noise between packets are ignored. */
    size_t before = x->out.len;
    feed(x, "+++\r\nxyz");
    assert_int_equal(x->out.len, before);
    free(x);
}

static void test_framing_escape_rle_resync(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    /* X with binary data containing every escaped byte: 0x23 '#', 0x24 '$', 0x7d '}', 0x2a '*'.
     * Escaped as gdb does: '}' then byte ^ 0x20. */
    const char raw[] = "X38000010,5:}\x03}\x04}]}\x0a\x01";
    assert_string_equal(transact(x, raw), "OK");
    static const uint8_t want[] = {0x23, 0x24, 0x7d, 0x2a, 0x01};
    assert_memory_equal(x->f.ram + 0x10, want, sizeof(want));
    /* Run-length: "m38000000,1* " would not be meaningful; use M with a run of zeros:
     * "0* " is '0' plus 3 more = "0000". */
    memset(x->f.ram, 0xAA, 4);
    assert_string_equal(transact(x, "M38000000,2:0* "), "OK");
    assert_int_equal(x->f.ram[0], 0);
    assert_int_equal(x->f.ram[1], 0);
    assert_int_equal(x->f.ram[2], 0xAA);
    /* '*' with nothing before it, or a count byte out of range: refused. */
    assert_string_equal(transact(x, "*  "), "E16");
    assert_string_equal(transact(x, "M38000000,2:0*\x1f"), "E16");
    /* A '$' inside a packet restarts it (gdb's resend after a lost byte). */
    size_t pos = x->out.len;
    feed(x, "$m3800");
    feed_packet(x, "m38000000,1");
    char reply[64];
    take_reply(x, &pos, true, reply, sizeof(reply));
    assert_string_equal(reply, "00");
    free(x);
}

static void test_framing_overflow(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    /* A packet longer than RSP_PACKET_MAX is consumed whole and answered E16; the next one
     * works normally. Both plain and run-length-expanded overflow. */
    char *big = malloc(RSP_PACKET_MAX + 100);
    memset(big, 'a', RSP_PACKET_MAX + 99);
    big[0] = 'M';
    big[RSP_PACKET_MAX + 99] = 0;
    assert_string_equal(transact(x, big), "E16");
    free(big);
    char rle[64] = "Maaaa";
    for (int i = 0; i < 12; i++)
        strcat(rle, "a*~"); /* '~' = 126: 97 more each */
    assert_true(strlen(rle) < 64);
    assert_string_equal(transact(x, rle), "E16");
    assert_int_equal(x->rsp.rx_len, RSP_PACKET_MAX);
    assert_string_equal(transact(x, "m38000000,1"), "00");
    free(x);
}

static void test_no_ack_mode(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    assert_string_equal(transact(x, "QStartNoAckMode"), "OK");
    size_t pos = x->out.len;
    feed_packet(x, "m38000000,2");
    char reply[64];
    take_reply(x, &pos, false, reply, sizeof(reply));
    assert_string_equal(reply, "0000");
    /* A damaged packet is dropped silently (no '-' in no-ack mode), never run. */
    size_t before = x->out.len;
    feed(x, "$M38000000,1:ff#00");
    assert_int_equal(x->out.len, before);
    assert_int_equal(x->f.ram[0], 0);
    /* '-' no longer triggers a resend. */
    feed(x, "-");
    assert_int_equal(x->out.len, before);
    /* A new debugger on the same line (the last one vanished without 'D'): its qSupported is
     * acked, and acks stay on until it asks for no-ack mode again. */
    pos = x->out.len;
    feed_packet(x, "qSupported:multiprocess+");
    char features[128];
    take_reply(x, &pos, true, features, sizeof(features));
    assert_false(x->rsp.no_ack);
    free(x);
}

/* ---- commands ------------------------------------------------------------------------- */

static void test_qsupported_and_target_xml(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    const char *r = transact(x, "qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386");
    assert_string_equal(r, "PacketSize=400;qXfer:features:read+;QStartNoAckMode+;vContSupported+");
    assert_string_equal(transact(x, "qSupported"), r);
    assert_string_equal(transact(x, "qSupportedX"), "");
    /* Fetch target.xml in small chunks as gdb may, and in one go; both must give it whole. */
    const char *xml = rsp_target_xml();
    char got[8192] = "";
    size_t off = 0;
    for (int guard = 0; guard < 1000; guard++) {
        char q[80];
        snprintf(q, sizeof(q), "qXfer:features:read:target.xml:%zx,%x", off, 0x3bu);
        r = transact(x, q);
        assert_true(r[0] == 'm' || r[0] == 'l');
        assert_true(strlen(r + 1) <= 0x3bu);
        strcat(got, r + 1);
        off += strlen(r + 1);
        if (r[0] == 'l')
            break;
    }
    assert_string_equal(got, xml);
    r = transact(x, "qXfer:features:read:target.xml:0,ffb");
    assert_int_equal(r[0], 'l');
    assert_string_equal(r + 1, xml);
    assert_string_equal(transact(x, "qXfer:features:read:target.xml:ffff,10"), "l");
    assert_string_equal(transact(x, "qXfer:features:read:arm-vfp.xml:0,ffb"), "E00");
    assert_string_equal(transact(x, "qXfer:features:read:target.xml:0"), "E16");
    assert_true(strstr(xml, "org.gnu.gdb.arm.m-profile") && strstr(xml, "\"msp\"") &&
                strstr(xml, "\"psp\"") && strstr(xml, "\"xpsr\""));
    free(x);
}

static void test_registers(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    char want[RSP_REG_COUNT * 8 + 1];
    for (unsigned i = 0; i < RSP_REG_COUNT; i++)
        hex_le32(want + 8 * i, x->f.regs[i]);
    assert_string_equal(transact(x, "g"), want);
    /* G: every register, as gdb sends; then read back. */
    for (unsigned i = 0; i < RSP_REG_COUNT; i++)
        hex_le32(want + 8 * i, 0xA0000000u + i);
    char g[RSP_REG_COUNT * 8 + 2] = "G";
    strcat(g, want);
    assert_string_equal(transact(x, g), "OK");
    assert_int_equal(x->f.regs[RSP_REG_PSP], 0xA0000000u + RSP_REG_PSP);
    /* A short or non-hex G changes nothing. */
    uint32_t before = x->f.regs[0];
    g[8] = 0;
    assert_string_equal(transact(x, g), "E16");
    g[8] = 'x';
    assert_string_equal(transact(x, "Gzz"), "E16");
    assert_int_equal(x->f.regs[0], before);
    /* p/P; the captured "P0=34120000" sets r0 = 0x1234. */
    assert_string_equal(transact(x, "P0=34120000"), "OK");
    assert_int_equal(x->f.regs[0], 0x1234u);
    assert_string_equal(transact(x, "p0"), "34120000");
    assert_string_equal(transact(x, "P12=78563412"), "OK");
    assert_int_equal(x->f.regs[RSP_REG_PSP], 0x12345678u);
    assert_string_equal(transact(x, "p13"), "E16"); /* 0x13 = 19: no such register */
    assert_string_equal(transact(x, "p"), "E16");
    assert_string_equal(transact(x, "p123456789"), "E16");
    assert_string_equal(transact(x, "P1=123"), "E16");
    assert_string_equal(transact(x, "P1=1234567890"), "E16");
    assert_string_equal(transact(x, "P1"), "E16");
    assert_string_equal(transact(x, "g0"), "E16");
    free(x);
}

static void test_memory(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    memcpy(x->f.ram + 0x100, "\x01\x02\xfe\xff", 4);
    assert_string_equal(transact(x, "m38000100,4"), "0102feff");
    assert_string_equal(transact(x, "M38000100,3:A0b1C2"), "OK");
    assert_string_equal(transact(x, "m38000100,4"), "a0b1c2ff");
    /* Refused by the target (outside its regions), or straddling a region's end. */
    assert_string_equal(transact(x, "mffffffff,4"), "E16"); /* wraps past 4 GiB */
    assert_string_equal(transact(x, "mfffffffb,4"), "E0e");
    assert_string_equal(transact(x, "m3800fffe,4"), "E0e");
    assert_string_equal(transact(x, "M20000000,1:00"), "E0e");
    /* Malformed: each one refused, memory unchanged. */
    static const char *bad[] = {"m", "m38000100", "m38000100,", "m,4", "m38000100,0",
                                "m38000100,4x", "m123456789,1", "M38000100,2:a0b1c2",
                                "M38000100,2:a0b", "M38000100,2:zzzz", "M38000100,2",
                                "X38000100,2:a", "X38000100,1:ab", "Z0,38000000", "Z0",
                                "M0,80000001:00", "M0,ffffffff:", "X0,80000001:a",
                                "z0,38000000,2,", "Z9999999999,0,2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_string_equal(transact(x, bad[i]), "E16");
    assert_memory_equal(x->f.ram + 0x100, "\xa0\xb1\xc2\xff", 4);
    /* A long read is clipped to what one reply holds; gdb asks again for the rest. */
    const char *r = transact(x, "m10000000,10000");
    assert_int_equal(strlen(r), RSP_PACKET_MAX);
    assert_string_equal(transact(x, "X38000000,0:"), "OK"); /* gdb's X probe */
    free(x);
}

static void test_breakpoints(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    assert_string_equal(transact(x, "Z0,10000268,2"), "OK");
    assert_string_equal(transact(x, "Z1,1000037c,2"), "OK");
    assert_int_equal(x->f.nbp, 2);
    assert_int_equal(x->f.bp[0].type, RSP_BP_SOFTWARE);
    assert_int_equal(x->f.bp[0].addr, 0x10000268u);
    assert_int_equal(x->f.bp[0].kind, 2);
    assert_int_equal(x->f.bp[1].type, RSP_BP_HARDWARE);
    assert_string_equal(transact(x, "z1,1000037c,2"), "OK");
    assert_string_equal(transact(x, "z0,10000268,2"), "OK");
    assert_int_equal(x->f.nbp, 0);
    assert_string_equal(transact(x, "z0,10000268,2"), "E16"); /* not set */
    assert_string_equal(transact(x, "Z0,20000000,2"), "E0e"); /* outside the app */
    for (int i = 0; i < MAX_BP; i++)
        assert_string_equal(transact(x, "Z0,10000000,2"), "OK");
    assert_string_equal(transact(x, "Z0,10000000,2"), "E1c"); /* no slot left */
    /* Watchpoints: not supported, the empty reply. */
    assert_string_equal(transact(x, "Z2,38000000,4"), "");
    assert_string_equal(transact(x, "z4,38000000,4"), "");
    free(x);
}

/* Z2/Z3/Z4 reach the target's watch ops with the length; a stop it blames on a watchpoint
 * names it first in the stop reply, as gdb wants (watch:, rwatch:, awatch: and the address). */
static void test_watchpoints(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    rsp_config_t cfg = {&fake_ops_wp, &x->f, out_send, &x->out};
    assert_int_equal(rsp_init(&x->rsp, &cfg), KERR_OK);
    /* all three ops or none */
    rsp_target_ops_t half = fake_ops_wp;
    half.stop_watch = NULL;
    rsp_config_t bad = {&half, &x->f, out_send, &x->out};
    rsp_t other;
    assert_int_equal(rsp_init(&other, &bad), KERR_INVAL);

    assert_string_equal(transact(x, "Z2,38000010,4"), "OK");
    assert_string_equal(transact(x, "Z4,38000100,8"), "OK");
    assert_int_equal(x->f.nwp, 2);
    assert_int_equal(x->f.wp[0].type, RSP_WP_WRITE);
    assert_int_equal(x->f.wp[0].addr, 0x38000010u);
    assert_int_equal(x->f.wp[0].len, 4);
    assert_int_equal(x->f.wp[1].type, RSP_WP_ACCESS);
    assert_int_equal(x->f.wp[1].len, 8);
    assert_string_equal(transact(x, "Z3,38000200,4"), "E1c");  /* comparators used up */
    assert_string_equal(transact(x, "z4,38000100,8"), "OK");
    assert_string_equal(transact(x, "z4,38000100,8"), "E16");  /* not set */
    assert_string_equal(transact(x, "Z3,10000000,4"), "E0e");  /* outside what the target watches */
    assert_string_equal(transact(x, "Z3,38000200,0"), "E16");  /* empty range */
    assert_string_equal(transact(x, "Z3,fffffffe,4"), "E16");  /* past 4 GiB */
    assert_string_equal(transact(x, "Z3,38000200"), "E16");
    assert_string_equal(transact(x, "Z5,38000200,4"), "");     /* no such type */
    assert_int_equal(x->f.nwp, 1);
    assert_int_equal(x->f.nbp, 0);

    static const struct { rsp_bp_type_t t; const char *name; } kinds[] = {
        {RSP_WP_WRITE, "watch"}, {RSP_WP_READ, "rwatch"}, {RSP_WP_ACCESS, "awatch"}};
    for (size_t k = 0; k < 3; k++) {
        x->f.wp[0].type = kinds[k].t;
        x->f.stop_by_watch = true;
        size_t pos = x->out.len;
        feed_packet(x, "c");
        rsp_notify_stop(&x->rsp);
        char reply[512], want[512], extra[32];
        take_reply(x, &pos, true, reply, sizeof(reply));
        snprintf(extra, sizeof(extra), "%s:38000010;", kinds[k].name);
        want_stop(x, 5, extra, want, sizeof(want));
        assert_string_equal(reply, want);
    }
    /* A stop that is no watchpoint says nothing of one. */
    x->f.stop_by_watch = false;
    size_t pos = x->out.len;
    feed_packet(x, "c");
    rsp_notify_stop(&x->rsp);
    char reply[512];
    take_reply(x, &pos, true, reply, sizeof(reply));
    assert_null(strstr(reply, "watch"));
    free(x);
}

/* vCont;r start,end: offered in vCont? only by a target that can; the first action wins. */
static void test_range_stepping(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    assert_string_equal(transact(x, "vCont?"), "vCont;c;C;s;S");
    assert_string_equal(transact(x, "vCont;r10000100,10000120:1"), "E16"); /* not offered */
    rsp_target_ops_t ops = fake_ops;
    ops.resume_range = f_resume_range;
    rsp_config_t cfg = {&ops, &x->f, out_send, &x->out};
    assert_int_equal(rsp_init(&x->rsp, &cfg), KERR_OK);
    assert_string_equal(transact(x, "vCont?"), "vCont;c;C;s;S;r");
    size_t before = x->out.len;
    feed_packet(x, "vCont;r10000100,10000120:p1.1;c:p1.-1"); /* as gdb 13 sends it */
    assert_int_equal(x->out.len, before + 1); /* the ack; the reply is the stop */
    assert_int_equal(x->f.ranges, 1);
    assert_int_equal(x->f.range_start, 0x10000100u);
    assert_int_equal(x->f.range_end, 0x10000120u);
    assert_int_equal(x->f.resumes, 0);
    assert_true(rsp_running(&x->rsp));
    rsp_notify_stop(&x->rsp);
    assert_false(rsp_running(&x->rsp));
    x->out.len = 0;
    /* a later action does not override the first */
    feed_packet(x, "vCont;c:p1.1;r10000100,10000120");
    assert_int_equal(x->f.ranges, 1);
    assert_int_equal(x->f.resumes, 1);
    rsp_notify_stop(&x->rsp);
    x->out.len = 0;
    assert_string_equal(transact(x, "vCont;r10000120,10000100"), "E16"); /* end before start */
    assert_string_equal(transact(x, "vCont;r10000100"), "E16");
    assert_string_equal(transact(x, "vCont;r,10000100"), "E16");
    assert_string_equal(transact(x, "vCont;r100,200"), "E0e"); /* the target's refusal */
    assert_false(rsp_running(&x->rsp));
    free(x);
}

/* Resume with packet p, check the resume call, then stop and check the stop reply. */
static void resume_and_stop(fixture_t *x, const char *p, int want_step, int want_sig)
{
    int resumes = x->f.resumes, steps = x->f.steps;
    size_t before = x->out.len;
    feed_packet(x, p);
    assert_int_equal(x->out.len, before + 1); /* just the ack: no reply until the stop */
    assert_int_equal(x->f.resumes, resumes + 1);
    assert_int_equal(x->f.steps, steps + want_step);
    assert_int_equal(x->f.last_sig, want_sig);
    assert_true(rsp_running(&x->rsp));
    rsp_notify_stop(&x->rsp);
    assert_false(rsp_running(&x->rsp));
    size_t pos = before + 1;
    char reply[512], want[512];
    take_reply(x, &pos, false, reply, sizeof(reply));
    want_stop(x, x->f.stop_sig, "", want, sizeof(want));
    assert_string_equal(reply, want);
    /* A second stop notification with nothing pending sends nothing. */
    rsp_notify_stop(&x->rsp);
    assert_int_equal(x->out.len, pos);
}

static void test_run_control(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    char want[512];
    want_stop(x, 5, "", want, sizeof(want));
    assert_string_equal(transact(x, "?"), want);
    assert_string_equal(transact(x, "qC"), "QC1");
    assert_string_equal(transact(x, "qfThreadInfo"), "m1");
    assert_string_equal(transact(x, "qsThreadInfo"), "l");
    assert_string_equal(transact(x, "vCont?"), "vCont;c;C;s;S");
    resume_and_stop(x, "c", 0, 0);
    resume_and_stop(x, "s", 1, 0);
    resume_and_stop(x, "vCont;c", 0, 0);
    resume_and_stop(x, "vCont;c:p1.-1", 0, 0);           /* as recorded from gdb 13 */
    resume_and_stop(x, "vCont;s:p1.1;c:p1.-1", 1, 0);    /* stepi: the first action applies */
    resume_and_stop(x, "vCont;s:1", 1, 0);
    resume_and_stop(x, "vCont;C0b:1;c", 0, 0x0b);
    resume_and_stop(x, "vCont;S05", 1, 5);
    resume_and_stop(x, "C0a", 0, 0x0a);
    x->f.stop_sig = RSP_SIGSEGV;
    resume_and_stop(x, "S02", 1, 2);
    x->f.stop_sig = RSP_SIGTRAP;
    /* c with an address: pc is written first. */
    resume_and_stop(x, "c10000100", 0, 0);
    assert_int_equal(x->f.regs[RSP_REG_PC], 0x10000100u);
    resume_and_stop(x, "S05;10000200", 1, 5);
    assert_int_equal(x->f.regs[RSP_REG_PC], 0x10000200u);
    /* Malformed resumes: refused, the app stays halted. */
    static const char *bad[] = {"vCont;", "vCont;x", "vCont;t", "vCont;C", "vCont;c;",
                                "vCont;Cxyz", "C", "C100", "S05;", "S05;zz", "c10000100x",
                                "vCont;c:p1.1111111111111111111111111111111111111111111"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_string_equal(transact(x, bad[i]), "E16");
        assert_false(rsp_running(&x->rsp));
    }
    /* Ctrl-C: halt only while running; the stub's stop then reports SIGINT. */
    feed(x, "\x03");
    assert_int_equal(x->f.halts, 0);
    feed_packet(x, "vCont;c:p1.-1");
    feed(x, "\x03");
    assert_int_equal(x->f.halts, 1);
    x->f.stop_sig = RSP_SIGINT;
    size_t pos = x->out.len;
    rsp_notify_stop(&x->rsp);
    char reply[512];
    take_reply(x, &pos, false, reply, sizeof(reply));
    assert_memory_equal(reply, "T02", 3);
    /* The app gone for good while the debugger waits: "X09", once, and nothing when idle. */
    feed_packet(x, "c");
    pos = x->out.len;
    rsp_notify_exit(&x->rsp, RSP_SIGKILL);
    take_reply(x, &pos, false, reply, sizeof(reply));
    assert_string_equal(reply, "X09");
    assert_false(rsp_running(&x->rsp));
    rsp_notify_exit(&x->rsp, RSP_SIGKILL);
    assert_int_equal(x->out.len, pos);
    free(x);
}

static void test_detach_kill_misc(void **state)
{
    (void)state;
    fixture_t *x = fx_new();
    assert_string_equal(transact(x, "qAttached:1"), "1");
    assert_string_equal(transact(x, "Hg0"), "OK");
    assert_string_equal(transact(x, "Hc-1"), "OK");
    assert_string_equal(transact(x, "vMustReplyEmpty"), "");
    assert_string_equal(transact(x, "qTStatus"), "");
    assert_string_equal(transact(x, ""), "");
    assert_string_equal(transact(x, "!"), "");
    assert_string_equal(transact(x, "D;1"), "OK");
    assert_int_equal(x->f.detaches, 1);
    /* k: the app is restarted by the stub, no reply. */
    size_t before = x->out.len;
    feed_packet(x, "k");
    assert_int_equal(x->out.len, before + 1);
    assert_int_equal(x->f.kills, 1);
    assert_string_equal(transact(x, "vKill;1"), "OK");
    assert_int_equal(x->f.kills, 2);
    /* A dropped connection while the app runs: detached, nothing pending any more. */
    feed_packet(x, "c");
    assert_true(rsp_running(&x->rsp));
    rsp_connection_lost(&x->rsp);
    assert_false(rsp_running(&x->rsp));
    assert_int_equal(x->f.detaches, 2);
    /* rsp_init refuses an incomplete ops table. */
    rsp_target_ops_t ops = fake_ops;
    ops.halt = NULL;
    rsp_config_t cfg = {&ops, &x->f, out_send, &x->out};
    assert_int_equal(rsp_init(&x->rsp, &cfg), KERR_INVAL);
    cfg.ops = &fake_ops;
    cfg.send = NULL;
    assert_int_equal(rsp_init(&x->rsp, &cfg), KERR_INVAL);
    free(x);
}

/* ---- the recorded gdb-multiarch 13 session --------------------------------------------- */

static const char *log_path;

typedef struct {
    char *pkt[1024]; /* "$...#cs" exactly as gdb sent them */
    int n;
} session_t;

static void load_session(session_t *s)
{
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    char line[8192];
    s->n = 0;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] != '>' || line[1] != ' ')
            continue;
        line[strcspn(line, "\n")] = 0;
        assert_true(s->n < 1024);
        s->pkt[s->n++] = strdup(line + 2);
    }
    fclose(f);
    assert_true(s->n > 100);
}

static void free_session(session_t *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->pkt[i]);
}

/* What gdb needs to see for its packet p (payload only), given reply r. */
static void check_replay_reply(fixture_t *x, const char *p, const char *r)
{
    unsigned long a = 0, len = 0;
    switch (p[0]) {
    case 'q':
        if (strncmp(p, "qSupported", 10) == 0) {
            assert_non_null(strstr(r, "PacketSize=400"));
            assert_non_null(strstr(r, "qXfer:features:read+"));
        } else if (strncmp(p, "qXfer:features:read:target.xml:", 31) == 0) {
            assert_true(r[0] == 'l' && strcmp(r + 1, rsp_target_xml()) == 0);
        } else if (strncmp(p, "qXfer:", 6) == 0) {
            assert_string_equal(r, "E00"); /* our target.xml includes nothing else */
        } else if (strncmp(p, "qAttached", 9) == 0) {
            assert_string_equal(r, "1");
        } else if (strcmp(p, "qfThreadInfo") == 0) {
            assert_string_equal(r, "m1"); /* one thread, 1: what the stop replies name */
        } else if (strcmp(p, "qsThreadInfo") == 0) {
            assert_string_equal(r, "l");
        } else if (strcmp(p, "qC") == 0) {
            assert_string_equal(r, "QC1");
        } else {
            assert_string_equal(r, ""); /* qTStatus, qOffsets, qSymbol, ... */
        }
        break;
    case 'g': assert_int_equal(strlen(r), RSP_REG_COUNT * 8); break;
    case 'p':
        a = strtoul(p + 1, NULL, 16);
        if (a < RSP_REG_COUNT)
            assert_int_equal(strlen(r), 8);
        else
            assert_string_equal(r, "E16"); /* p2a: QEMU's fpscr, not in our description */
        break;
    case 'm':
        assert_int_equal(sscanf(p + 1, "%lx,%lx", &a, &len), 2);
        if (fake_mem(&x->f, (uint32_t)a, (uint32_t)len)) {
            assert_int_equal(strlen(r), 2 * len);
            char hx[3];
            snprintf(hx, sizeof(hx), "%02x", *fake_mem(&x->f, (uint32_t)a, 1));
            assert_memory_equal(r, hx, 2);
        } else {
            assert_true(strcmp(r, "E0e") == 0 || strcmp(r, "E16") == 0);
        }
        break;
    case 'Z': case 'z': case 'P': case 'M': case 'X': case 'D': case 'H':
        assert_string_equal(r, "OK");
        break;
    case 'v':
        if (strcmp(p, "vCont?") == 0)
            assert_string_equal(r, "vCont;c;C;s;S");
        else if (strncmp(p, "vCont;", 6) != 0)
            assert_string_equal(r, "");
        break;
    case '?': assert_memory_equal(r, "T05", 3); break;
    default: fail_msg("unexpected packet in the recording: %s", p);
    }
}

static void test_replay_gdb13_session(void **state)
{
    (void)state;
    session_t s;
    load_session(&s);
    fixture_t *x = fx_new();
    int resumes = 0, steps = 0;
    for (int i = 0; i < s.n; i++) {
        const char *raw = s.pkt[i];
        size_t rl = strlen(raw);
        assert_true(rl >= 4 && raw[0] == '$' && raw[rl - 3] == '#');
        char payload[4096];
        memcpy(payload, raw + 1, rl - 4);
        payload[rl - 4] = 0;
        size_t pos = x->out.len;
        feed(x, raw); /* the exact bytes, checksum included: all must be acked */
        if (payload[0] == 'v' && strncmp(payload, "vCont;", 6) == 0) {
            assert_int_equal(x->out.len, pos + 1);
            assert_int_equal(x->out.buf[pos], '+');
            resumes++;
            steps += payload[6] == 's';
            assert_int_equal(x->f.resumes, resumes);
            assert_int_equal(x->f.steps, steps);
            rsp_notify_stop(&x->rsp);
            pos++;
            char reply[512];
            take_reply(x, &pos, false, reply, sizeof(reply));
            assert_memory_equal(reply, "T05", 3);
            continue;
        }
        char reply[RSP_PACKET_MAX + 1];
        take_reply(x, &pos, true, reply, sizeof(reply));
        assert_int_equal(pos, x->out.len);
        check_replay_reply(x, payload, reply);
    }
    /* What the session did to the target: r0 = 0x1234 and the word at 0x38000000. */
    assert_int_equal(x->f.regs[0], 0x1234u);
    assert_int_equal(peek32(x->f.ram), 0x55667788u);
    assert_int_equal(x->f.nbp, 0); /* every Z was matched by a z */
    assert_int_equal(x->f.detaches, 1);
    assert_true(resumes >= 8 && steps >= 3);
    assert_int_equal(x->rsp.stats_bad_csum, 0);
    free(x);
    free_session(&s);
}

/*
 * Seeded mutations of the recorded packets (bit flips, byte changes, truncation, splices,
 * random bytes), with the checksum fixed half of the time so the command parsers are reached.
 * Every byte sent back must be '+', '-' or part of a well-formed packet; the fake target
 * checks its own bounds, and ASan/UBSan watch the engine.
 */
static void test_mutation(void **state)
{
    (void)state;
    session_t s;
    load_session(&s);
    fixture_t *x = fx_new();
    uint32_t seed = 0x5EED1234u;
    uint8_t buf[5000];
    unsigned replies = 0, naks = 0;
    for (int round = 0; round < 30000; round++) {
        const char *src = s.pkt[xs32(&seed) % (uint32_t)s.n];
        size_t n = strlen(src);
        if (n > sizeof(buf) - 200)
            n = sizeof(buf) - 200;
        memcpy(buf, src, n);
        uint32_t edits = 1u + xs32(&seed) % 6u;
        for (uint32_t e = 0; e < edits; e++) {
            size_t at = 1u + xs32(&seed) % (uint32_t)(n > 4 ? n - 4 : 1);
            switch (xs32(&seed) % 6u) {
            case 0: buf[at] ^= (uint8_t)(1u << (xs32(&seed) % 8u)); break;
            case 1: buf[at] = (uint8_t)xs32(&seed); break;
            case 2: buf[at] = "0f,:;=}*#$\x03-+"[xs32(&seed) % 13u]; break;
            case 3: n = at + 1; break; /* truncate */
            case 4: { /* insert a run of random bytes */
                size_t k = xs32(&seed) % 64u;
                if (n + k < sizeof(buf) - 4) {
                    memmove(buf + at + k, buf + at, n - at);
                    for (size_t j = 0; j < k; j++)
                        buf[at + j] = (uint8_t)xs32(&seed);
                    n += k;
                }
                break;
            }
            default: /* a long run of digits: huge numbers */
                for (size_t j = at; j < n && j < at + 12; j++)
                    buf[j] = "f9"[xs32(&seed) & 1u];
                break;
            }
        }
        if (xs32(&seed) & 1u) { /* re-seal: $payload#cs */
            size_t end = n;
            while (end > 1 && buf[end - 1] != '#')
                end--;
            if (end <= 1)
                end = n;
            else
                end--;
            uint8_t sum = 0;
            for (size_t j = 1; j < end; j++)
                sum = (uint8_t)(sum + buf[j]);
            n = end;
            n += (size_t)snprintf((char *)buf + n, 4, "#%02x", sum);
        }
        size_t pos = x->out.len;
        rsp_input(&x->rsp, buf, n);
        /* finish any packet left open so the next round starts clean */
        rsp_input(&x->rsp, (const uint8_t *)"#00", 3);
        if (rsp_running(&x->rsp))
            rsp_notify_stop(&x->rsp);
        while (pos < x->out.len) {
            uint8_t c = x->out.buf[pos];
            if (c == '+' || c == '-') {
                naks += c == '-';
                pos++;
                continue;
            }
            char reply[RSP_PACKET_MAX + 1];
            take_reply(x, &pos, false, reply, sizeof(reply));
            replies++;
        }
        assert_true(x->rsp.rx_len <= RSP_PACKET_MAX);
        x->out.len = 0;
        x->rsp.no_ack = false; /* a mutated QStartNoAckMode must not hide later checks */
    }
    /* both halves were exercised: damaged frames refused, re-sealed ones answered */
    assert_true(replies > 10000 && naks > 10000);
    print_message("mutation: %u replies, %u naks\n", replies, naks);
    free(x);
    free_session(&s);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-target-xml") == 0) {
        fputs(rsp_target_xml(), stdout);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s RECORDED_SESSION_LOG | --print-target-xml\n", argv[0]);
        return 2;
    }
    log_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_ack_and_checksum),
        cmocka_unit_test(test_framing_escape_rle_resync),
        cmocka_unit_test(test_framing_overflow),
        cmocka_unit_test(test_no_ack_mode),
        cmocka_unit_test(test_qsupported_and_target_xml),
        cmocka_unit_test(test_registers),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_breakpoints),
        cmocka_unit_test(test_watchpoints),
        cmocka_unit_test(test_range_stepping),
        cmocka_unit_test(test_run_control),
        cmocka_unit_test(test_detach_kill_misc),
        cmocka_unit_test(test_replay_gdb13_session),
        cmocka_unit_test(test_mutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

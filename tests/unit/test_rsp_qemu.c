/*
 * The RSP engine with the real gdb-multiarch on one side and a real running Cortex-M33 on the
 * other: QEMU mps2-an505 executing test_rsp_qemu_app.c, reached through QEMU's own gdbstub.
 *
 *   gdb-multiarch ──127.0.0.1:PORT── rsp_t (this engine) ── target ops ──unix socket──► QEMU gdbstub
 *
 * The target ops here are a small RSP client of QEMU: registers from QEMU's 'g' at each stop,
 * memory by 'm'/'M' (refused outside the app's regions first, as the device stub will), and
 * breakpoints through a bkpt_t whose implementation forwards to QEMU's breakpoints as if they
 * were FPB comparators (a patched BKPT would be a real HardFault in this bare program). Single
 * step is done the way the device will do it: thumb_next_pc() on the halted state, temporary
 * breakpoints at the successors, continue. So gdb's stepi/next/step/finish exercise the
 * decoder and the breakpoint interface on real execution.
 *
 * QEMU's gdbstub has no msp/psp (an505.md §6h); this bare program runs in Thread mode on the
 * main stack from reset and never touches PSP, so msp = sp and psp = 0 (its reset value) are
 * the true values here, and are what is served.
 *
 *   test_rsp_qemu QEMU_GDB_SOCKET     (prints "port N", serves one gdb session on it, detaches)
 *
 * test_rsp_qemu.sh runs it between QEMU and gdb-multiarch; CTest checks gdb's output.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "keel/bkpt.h"
#include "keel/rsp.h"
#include "keel/thumb.h"

#define IO_TIMEOUT_MS 10000
#define SESSION_IDLE_MS 60000
#define CODE_BASE 0x10000000u /* the app's regions (test_rsp_qemu_app.c's link map) */
#define CODE_SIZE 0x00010000u
#define RAM_BASE 0x38000000u
#define RAM_SIZE 0x00010000u
#define MAX_CMP 16

static void die(const char *what)
{
    fprintf(stderr, "test_rsp_qemu: %s (%s)\n", what, strerror(errno));
    exit(1);
}

/* ---- a minimal RSP client of QEMU's gdbstub --------------------------------------------- */

static int qfd = -1;

static int read_byte(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    uint8_t c;
    return read(fd, &c, 1) == 1 ? c : -1;
}

static void write_all(int fd, const void *d, size_t n)
{
    const uint8_t *p = d;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k <= 0)
            die("write");
        p += k;
        n -= (size_t)k;
    }
}

/* Read one packet from QEMU (acking it); payload into out. Returns its length, -1 on timeout. */
static int q_recv(char *out, size_t cap, int timeout_ms)
{
    int c;
    do {
        c = read_byte(qfd, timeout_ms);
        if (c < 0)
            return -1;
    } while (c != '$');
    size_t n = 0;
    while ((c = read_byte(qfd, IO_TIMEOUT_MS)) >= 0 && c != '#') {
        if (n + 1 < cap)
            out[n++] = (char)c;
    }
    out[n] = 0;
    if (c < 0 || read_byte(qfd, IO_TIMEOUT_MS) < 0 || read_byte(qfd, IO_TIMEOUT_MS) < 0)
        return -1;
    write_all(qfd, "+", 1);
    return (int)n;
}

static void q_send(const char *payload)
{
    char frame[4200];
    uint8_t sum = 0;
    for (const char *p = payload; *p; p++)
        sum = (uint8_t)(sum + (uint8_t)*p);
    int n = snprintf(frame, sizeof(frame), "$%s#%02x", payload, sum);
    for (int tries = 0; tries < 3; tries++) {
        write_all(qfd, frame, (size_t)n);
        int c = read_byte(qfd, IO_TIMEOUT_MS);
        if (c == '+')
            return;
    }
    die("QEMU did not ack");
}

static const char *q_transact(const char *payload)
{
    static char reply[4200];
    q_send(payload);
    if (q_recv(reply, sizeof(reply), IO_TIMEOUT_MS) < 0)
        die("no reply from QEMU");
    return reply;
}

/* ---- the target ------------------------------------------------------------------------- */

typedef struct {
    uint32_t regs[RSP_REG_COUNT];
    int stop_sig;
    bool running, stepping;
    uint32_t step_bp[2];
    unsigned n_step_bp;
    bkpt_t bp;
} target_t;

static target_t tg;

static uint32_t le32_hex(const char *h)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        unsigned b;
        sscanf(h + 2 * i, "%2x", &b);
        v = v << 8 | b;
    }
    return v;
}

/* r0-r15 from QEMU's 'g', xpsr by 'p' with QEMU's number for it (25). Both need the target
 * description to have been fetched (main does): QEMU 7.2 answers 'p' only after that, and
 * lays 'g' out per the description. */
static void refresh_regs(void)
{
    const char *g = q_transact("g");
    if (strlen(g) < 16 * 8)
        die("short g reply from QEMU");
    for (int i = 0; i < 16; i++)
        tg.regs[i] = le32_hex(g + 8 * i);
    const char *x = q_transact("p19");
    if (strlen(x) != 8)
        die("no xpsr from QEMU");
    tg.regs[RSP_REG_XPSR] = le32_hex(x);
    tg.regs[RSP_REG_MSP] = tg.regs[RSP_REG_SP]; /* see the header comment */
    tg.regs[RSP_REG_PSP] = 0;
}

static bool app_range(uint32_t a, uint32_t len)
{
    return (a >= CODE_BASE && len <= CODE_SIZE && a - CODE_BASE <= CODE_SIZE - len) ||
           (a >= RAM_BASE && len <= RAM_SIZE && a - RAM_BASE <= RAM_SIZE - len);
}

static kerr_t t_read_reg(void *c, unsigned n, uint32_t *v)
{
    if (n >= RSP_REG_COUNT)
        return KERR_INVAL;
    *v = tg.regs[n];
    return KERR_OK;
}

static kerr_t t_write_reg(void *c, unsigned n, uint32_t v)
{
    char p[32];
    if (n > RSP_REG_XPSR)
        return KERR_INVAL;
    snprintf(p, sizeof(p), "P%x=%02x%02x%02x%02x", n == RSP_REG_XPSR ? 0x19u : n, v & 0xFFu,
             (v >> 8) & 0xFFu, (v >> 16) & 0xFFu, v >> 24);
    if (strcmp(q_transact(p), "OK") != 0)
        return KERR_IO;
    tg.regs[n] = v;
    return KERR_OK;
}

static kerr_t mem_read(void *c, uint32_t a, uint8_t *out, uint32_t len)
{
    if (!app_range(a, len))
        return KERR_RANGE;
    while (len > 0) {
        uint32_t k = len > 512 ? 512 : len;
        char q[40];
        snprintf(q, sizeof(q), "m%x,%x", a, k);
        const char *r = q_transact(q);
        if (strlen(r) != 2u * k)
            return KERR_RANGE;
        for (uint32_t i = 0; i < k; i++) {
            unsigned b;
            sscanf(r + 2 * i, "%2x", &b);
            out[i] = (uint8_t)b;
        }
        a += k;
        out += k;
        len -= k;
    }
    return KERR_OK;
}

static kerr_t mem_write(void *c, uint32_t a, const uint8_t *d, uint32_t len)
{
    if (!app_range(a, len))
        return KERR_RANGE;
    static char q[4200];
    while (len > 0) {
        uint32_t k = len > 1024 ? 1024 : len;
        int n = snprintf(q, sizeof(q), "M%x,%x:", a, k);
        for (uint32_t i = 0; i < k; i++)
            n += snprintf(q + n, sizeof(q) - (size_t)n, "%02x", d[i]);
        if (strcmp(q_transact(q), "OK") != 0)
            return KERR_IO;
        a += k;
        d += k;
        len -= k;
    }
    return KERR_OK;
}

/* bkpt_ops over QEMU's breakpoints: the shape an FPB implementation takes on silicon. */
static struct {
    uint32_t addr[MAX_CMP];
    unsigned refs[MAX_CMP];
} cmp;

static int cmp_find(uint32_t a)
{
    for (int i = 0; i < MAX_CMP; i++)
        if (cmp.refs[i] && cmp.addr[i] == a)
            return i;
    return -1;
}

static kerr_t cmp_insert(void *impl, uint32_t a)
{
    int i = cmp_find(a);
    if (i >= 0) {
        cmp.refs[i]++;
        return KERR_OK;
    }
    if ((a & 1u) || !app_range(a, 2))
        return (a & 1u) ? KERR_INVAL : KERR_RANGE;
    for (i = 0; i < MAX_CMP && cmp.refs[i]; i++)
        ;
    if (i == MAX_CMP)
        return KERR_NOMEM;
    char q[40];
    snprintf(q, sizeof(q), "Z1,%x,2", a);
    if (strcmp(q_transact(q), "OK") != 0)
        return KERR_IO;
    cmp.addr[i] = a;
    cmp.refs[i] = 1;
    return KERR_OK;
}

static kerr_t cmp_remove(void *impl, uint32_t a)
{
    int i = cmp_find(a);
    if (i < 0)
        return KERR_INVAL;
    if (--cmp.refs[i] > 0)
        return KERR_OK;
    char q[40];
    snprintf(q, sizeof(q), "z1,%x,2", a);
    return strcmp(q_transact(q), "OK") == 0 ? KERR_OK : KERR_IO;
}

static kerr_t cmp_remove_all(void *impl)
{
    kerr_t first = KERR_OK;
    for (int i = 0; i < MAX_CMP; i++) {
        while (cmp.refs[i]) {
            kerr_t e = cmp_remove(impl, cmp.addr[i]);
            if (e != KERR_OK) {
                first = first ? first : e;
                break;
            }
        }
    }
    return first;
}

static bool cmp_is_set(void *impl, uint32_t a) { return cmp_find(a) >= 0; }

static const bkpt_ops_t cmp_ops = {cmp_insert, cmp_remove, cmp_remove_all, cmp_is_set,
                                   mem_read, mem_write};

static kerr_t t_read_mem(void *c, uint32_t a, uint8_t *o, uint32_t n) { return bkpt_read(&tg.bp, a, o, n); }
static kerr_t t_write_mem(void *c, uint32_t a, const uint8_t *d, uint32_t n) { return bkpt_write(&tg.bp, a, d, n); }
static kerr_t t_insert_bp(void *c, rsp_bp_type_t t, uint32_t a, uint32_t k) { return bkpt_insert(&tg.bp, a); }
static kerr_t t_remove_bp(void *c, rsp_bp_type_t t, uint32_t a, uint32_t k) { return bkpt_remove(&tg.bp, a); }

static kerr_t thumb_read(void *c, uint32_t a, uint8_t *o, uint32_t n) { return bkpt_read(&tg.bp, a, o, n); }

static kerr_t t_resume(void *c, bool step, int sig)
{
    tg.n_step_bp = 0;
    if (step) {
        thumb_state_t st;
        memcpy(st.r, tg.regs, sizeof(st.r));
        st.xpsr = tg.regs[RSP_REG_XPSR];
        st.xpsr_valid = true;
        thumb_next_t nx;
        kerr_t err = thumb_next_pc(&st, thumb_read, NULL, &nx);
        if (err != KERR_OK)
            return err;
        if (nx.exc_return)
            return KERR_INVAL; /* this bare program has no exception handlers to return from */
        for (unsigned i = 0; i < nx.count; i++) {
            err = bkpt_insert(&tg.bp, nx.pc[i]);
            if (err != KERR_OK)
                return err;
            tg.step_bp[tg.n_step_bp++] = nx.pc[i];
        }
    }
    q_send("c");
    tg.running = true;
    tg.stepping = step;
    return KERR_OK;
}

static void t_halt(void *c) { write_all(qfd, "\x03", 1); }
static int t_stop_signal(void *c) { return tg.stop_sig; }

static void t_detach(void *c)
{
    bkpt_remove_all(&tg.bp);
}

static void t_kill(void *c) { bkpt_remove_all(&tg.bp); }

static const rsp_target_ops_t target_ops = {
    t_read_reg, t_write_reg, t_read_mem, t_write_mem, t_insert_bp, t_remove_bp,
    t_resume, t_halt, t_stop_signal, t_detach, t_kill, NULL, NULL, NULL, NULL,
};

/* QEMU stopped: the stop packet is "T05..." or "S05"; with gdb's Ctrl-C forwarded, T02. */
static void on_qemu_stop(const char *pkt)
{
    unsigned sig = 5;
    if ((pkt[0] == 'T' || pkt[0] == 'S') && sscanf(pkt + 1, "%2x", &sig) == 1)
        tg.stop_sig = (int)sig;
    else
        tg.stop_sig = RSP_SIGTRAP;
    for (unsigned i = 0; i < tg.n_step_bp; i++)
        bkpt_remove(&tg.bp, tg.step_bp[i]);
    tg.n_step_bp = 0;
    tg.running = false;
    refresh_regs();
}

static int gfd = -1;

static void gdb_send(void *c, const uint8_t *d, size_t n) { write_all(gfd, d, n); }

static int unix_connect(const char *path)
{
    for (int tries = 0; tries < 200; tries++) { /* QEMU creates the socket as it starts */
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            return fd;
        close(fd);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    die("cannot reach QEMU's gdbstub");
    return -1;
}

static int tcp_accept_one(void)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0}; /* any free port */
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 1) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) != 0)
        die("listen");
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    struct pollfd p = {ls, POLLIN, 0};
    if (poll(&p, 1, 30000) <= 0)
        die("no gdb connection within 30 s");
    int fd = accept(ls, NULL, NULL);
    close(ls);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s QEMU_GDB_SOCKET\n", argv[0]);
        return 2;
    }
    qfd = unix_connect(argv[1]);
    /* A gdbstub that was detached from while running stops the CPU on the next connection and
     * says so unprompted (T02): drop whatever arrives before we ask. */
    for (int i = 0; i < 65536 && read_byte(qfd, 300) >= 0; i++)
        ;
    char pkt[4200];
    q_transact("?"); /* halted: QEMU was started with -S, or stopped on this connection */
    q_transact("qXfer:features:read:target.xml:0,ffb");
    refresh_regs();
    tg.stop_sig = RSP_SIGTRAP;
    tg.bp.ops = &cmp_ops;
    tg.bp.impl = &cmp;
    gfd = tcp_accept_one();

    static rsp_t rsp;
    rsp_config_t cfg = {&target_ops, &tg, gdb_send, NULL};
    if (rsp_init(&rsp, &cfg) != KERR_OK)
        die("rsp_init");
    int idle = 0;
    for (;;) {
        struct pollfd p[2] = {{gfd, POLLIN, 0}, {qfd, POLLIN, 0}};
        int n = poll(p, tg.running ? 2 : 1, 100);
        if (n < 0)
            die("poll");
        if (n == 0) {
            idle += 100;
            if (idle > SESSION_IDLE_MS)
                die("session idle for 60 s");
            continue;
        }
        idle = 0;
        if (tg.running && (p[1].revents & POLLIN)) {
            if (q_recv(pkt, sizeof(pkt), IO_TIMEOUT_MS) < 0)
                die("lost QEMU");
            on_qemu_stop(pkt);
            rsp_notify_stop(&rsp);
        }
        if (p[0].revents & (POLLIN | POLLHUP)) {
            uint8_t buf[4096];
            ssize_t k = read(gfd, buf, sizeof(buf));
            if (k <= 0) {
                rsp_connection_lost(&rsp);
                break;
            }
            rsp_input(&rsp, buf, (size_t)k);
        }
    }
    /* gdb is gone (after 'D' or not): breakpoints are out; let the program run on. */
    if (tg.running) {
        write_all(qfd, "\x03", 1);
        q_recv(pkt, sizeof(pkt), IO_TIMEOUT_MS);
    }
    q_transact("D");
    unsigned left = 0;
    for (int i = 0; i < MAX_CMP; i++)
        left += cmp.refs[i];
    printf("session over: %u breakpoint references left\n", left);
    close(gfd);
    close(qfd);
    return 0;
}

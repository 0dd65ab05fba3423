/* qrun: see qrun.h. */
#define _GNU_SOURCE
#include "qrun.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "keel/board.h"
#include "sandbox.h"

#define QRUN_FW_REL "fw/microvisor/keel-microvisor.elf"
#define QRUN_QEMU "qemu-system-arm"
#define QRUN_BWRAP SANDBOX_BWRAP
#define QRUN_BROKER_SOCK "broker.sock" /* in run/: the guest's relays reach the broker here */
#define QRUN_GDB_SOCK "gdb.sock"       /* in run/: QEMU's debug serial line (UART2) */
#define QRUN_RUN_DIR "run"
#define QRUN_QEMU_LOG "qemu.log" /* QEMU's stderr, in the state dir */
#define QRUN_NUARTS 2
#define QRUN_LINE_MAX 4096
#define QRUN_CONNECT_MS 10000 /* QEMU connects while it initialises: well under a second */
#define QRUN_STOP_MS 2000     /* grace between SIGTERM and SIGKILL */
#define QRUN_DRAIN_MS 500     /* reading what QEMU wrote just before it exited */
#define QRUN_CUT_POLL_MS 20   /* how often the power-cut record is looked at */

/* One UART: its listening socket, QEMU's connection and the line being assembled. */
typedef struct uart {
    const char *sock_name; /* relative to the state dir: QEMU runs there */
    const char *prefix;    /* put before each line on stdout */
    char path[PATH_MAX];   /* absolute, for bind/unlink here */
    int lfd, cfd;
    size_t len;
    char line[QRUN_LINE_MAX];
} uart_t;

typedef struct run {
    const char *prog;
    pid_t pid;
    int sfd;   /* signalfd: SIGINT, SIGTERM, SIGCHLD */
    int stdin_fd;
    /* Console input read from stdin and not yet taken by QEMU's UART0 (an app that does not read
     * its console stops QEMU reading the socket): stdin is read again only once it has gone. */
    char in_buf[1024];
    size_t in_len, in_off;
    bool exited;
    int status; /* waitpid status once exited */
    int store_fd; /* the device's store file: the power-cut record is read from it */
    uart_t uart[QRUN_NUARTS];
    /* Forwards across the sandbox wall: each accepted connection gets a child that joins it to
     * the other side (relay_forward). broker: run/broker.sock -> 127.0.0.1:broker_port;
     * gdb: 127.0.0.1:gdb_serial_port -> run/gdb.sock. */
    int broker_lfd, gdb_lfd;
    char broker_path[PATH_MAX];
    char gdb_path[PATH_MAX];
    const qrun_opts_t *o;
} run_t;

/* ---- firmware lookup ------------------------------------------------------------------- */

static bool readable_abs(const char *path, char *out, size_t cap)
{
    char real[PATH_MAX];
    if (access(path, R_OK) != 0 || realpath(path, real) == NULL || strlen(real) >= cap)
        return false;
    strcpy(out, real);
    return true;
}

bool qrun_find_firmware(const char *prog, const char *given, char *out, size_t cap)
{
    const char *from = "--firmware";
    if (given == NULL) {
        given = getenv("KEEL_FIRMWARE");
        from = "$KEEL_FIRMWARE";
    }
    if (given != NULL && given[0] != '\0') {
        if (readable_abs(given, out, cap))
            return true;
        fprintf(stderr, "%s: firmware %s (from %s): %s\n", prog, given, from, strerror(errno));
        return false;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        static const char *const rel[] = {"/../" QRUN_FW_REL, "/../../../" QRUN_FW_REL};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            char cand[PATH_MAX + 64];
            snprintf(cand, sizeof cand, "%s%s", exe, rel[i]);
            if (readable_abs(cand, out, cap))
                return true;
        }
    }
    fprintf(stderr,
            "%s: no secure firmware found: run 'make' at the top of the Keel tree to build "
            "build/fw/microvisor/keel-microvisor.elf, or give its path with --firmware PATH or "
            "$KEEL_FIRMWARE\n",
            prog);
    return false;
}

/* ---- console --------------------------------------------------------------------------- */

static void emit_line(const uart_t *u)
{
    fprintf(stdout, "%s%.*s\n", u->prefix, (int)u->len, u->line);
    fflush(stdout);
}

/* Split bytes from a UART into lines; carriage returns are dropped (consoles send CR LF). */
static void uart_feed(uart_t *u, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\r')
            continue;
        if (buf[i] == '\n' || u->len == sizeof u->line) {
            emit_line(u);
            u->len = 0;
            if (buf[i] == '\n')
                continue;
        }
        u->line[u->len++] = buf[i];
    }
}

static void uart_flush(uart_t *u)
{
    if (u->len > 0)
        emit_line(u);
    u->len = 0;
}

/* Read what is there; returns false at EOF or error (the connection is then closed). */
static bool uart_read(uart_t *u)
{
    char buf[4096];
    ssize_t n = read(u->cfd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0) {
        close(u->cfd);
        u->cfd = -1;
        return false;
    }
    uart_feed(u, buf, (size_t)n);
    return true;
}

/* ---- sockets --------------------------------------------------------------------------- */

/* Listen on DIR/run/NAME (path written to path, PATH_MAX); -1 (message printed) on failure. */
static int unix_listen(const run_t *r, const char *dir, const char *name, char *path, int backlog)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(path, PATH_MAX, "%s/%s/%s", dir, QRUN_RUN_DIR, name);
    if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
        fprintf(stderr,
                "%s: socket path %s/%s/%s is longer than %zu bytes: use a shorter --state path\n",
                r->prog, dir, QRUN_RUN_DIR, name, sizeof sa.sun_path - 1);
        path[0] = '\0';
        return -1;
    }
    memcpy(sa.sun_path, path, (size_t)n + 1);
    /* A socket left by a keel that was SIGKILLed: binding over it needs it gone. */
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, backlog) != 0) {
        fprintf(stderr, "%s: cannot listen on %s: %s\n", r->prog, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static bool uart_listen(run_t *r, uart_t *u, const char *dir)
{
    u->lfd = unix_listen(r, dir, u->sock_name, u->path, 1);
    return u->lfd >= 0;
}

/* The debugger's serial line: a TCP listener here, joined to QEMU's Unix socket in the sandbox. */
static int tcp_listen(const run_t *r, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%u: %s\n", r->prog, (unsigned)port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A connection on a forward's listener: a child joins it to the other side of the wall. */
static void forward_accept(run_t *r, int lfd)
{
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        /* keel blocks these for its signalfd: the forward must die with keel (PDEATHSIG). */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Nothing of keel's but the connection: above all not the state dir's lock, which the
         * next keel of this device must get as soon as this one has exited. */
        for (int fd = 3; fd < 1024; fd++)
            if (fd != c)
                close(fd);
        if (lfd == r->broker_lfd)
            relay_forward(c, NULL, r->o->broker_port);
        relay_forward(c, r->gdb_path, 0);
    }
    if (p < 0)
        fprintf(stderr, "%s: fork (a forward): %s\n", r->prog, strerror(errno));
    close(c);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    return left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* Reap the sandbox (QEMU) if it has exited, and any finished forward; true when QEMU has. */
static bool reap(run_t *r)
{
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0)
        if (p == r->pid) {
            r->status = st;
            r->exited = true;
        }
    return r->exited;
}

/* Consume pending signals; returns the last INT/TERM seen (0 if none). Reaps QEMU on CHLD. */
static int take_signals(run_t *r)
{
    struct signalfd_siginfo si;
    int stop = 0;
    while (read(r->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)
            stop = (int)si.ssi_signo;
    }
    reap(r);
    return stop;
}

/* Why the console phase ended. */
enum { END_READY, END_QEMU, END_SIGNAL, END_TIME, END_FAIL, END_POWERCUT };

/* Wait (bounded) until QEMU has connected to every UART socket: END_READY when it has. */
static int accept_uarts(run_t *r)
{
    int64_t deadline = now_ms() + QRUN_CONNECT_MS;
    for (;;) {
        struct pollfd pf[QRUN_NUARTS + 1];
        int map[QRUN_NUARTS + 1], n = 0;
        for (int i = 0; i < QRUN_NUARTS; i++)
            if (r->uart[i].cfd < 0) {
                pf[n] = (struct pollfd){.fd = r->uart[i].lfd, .events = POLLIN};
                map[n++] = i;
            }
        if (n == 0)
            return END_READY;
        pf[n] = (struct pollfd){.fd = r->sfd, .events = POLLIN};
        int left = ms_left(deadline);
        if (left == 0) {
            fprintf(stderr, "%s: QEMU did not connect to the console sockets within %d s\n",
                    r->prog, QRUN_CONNECT_MS / 1000);
            return END_FAIL;
        }
        if (poll(pf, (nfds_t)n + 1, left) < 0 && errno != EINTR)
            return END_FAIL;
        if ((pf[n].revents & POLLIN) && take_signals(r) != 0)
            return END_SIGNAL;
        for (int k = 0; k < n; k++)
            if (pf[k].revents & POLLIN) {
                uart_t *u = &r->uart[map[k]];
                u->cfd = accept4(u->lfd, NULL, NULL, SOCK_CLOEXEC);
            }
        if (reap(r) && (r->uart[0].cfd < 0 || r->uart[1].cfd < 0))
            return END_QEMU;
    }
}

/* ---- the store's records (keel/board.h) ------------------------------------------------------ */

/*
 * Before QEMU starts: the boot words go into the boot-word record (the microvisor erases it once
 * read) and the power-cut record is erased. The store file itself was made by devstate.
 */
static bool store_prepare(run_t *r, const qrun_opts_t *o)
{
    char path[PATH_MAX];
    const kboard_store_t *st_e = &kboard_host()->store;
    snprintf(path, sizeof path, "%s/%s", o->state_dir, st_e->file);
    r->store_fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (r->store_fd < 0 || fstat(r->store_fd, &st) != 0) {
        fprintf(stderr, "%s: %s: %s\n", r->prog, path, strerror(errno));
        return false;
    }
    if (st.st_size != (off_t)st_e->size) {
        fprintf(stderr, "%s: %s is %lld bytes, not the %lu of board %s's store (--board)\n",
                r->prog, path, (long long)st.st_size, (unsigned long)st_e->size,
                kboard_host()->name);
        return false;
    }
    size_t len = strlen(o->append);
    if (len > KBOARD_BOOTWORDS_MAX) {
        fprintf(stderr, "%s: the device's boot words are %zu bytes, more than the %u its record "
                        "holds\n", r->prog, len, KBOARD_BOOTWORDS_MAX);
        return false;
    }
    kboard_bootwords_t words;
    memset(&words, 0xFF, sizeof words);
    words.magic = KBOARD_BOOTWORDS_MAGIC;
    words.len = (uint32_t)len;
    memcpy(words.words, o->append, len);
    kboard_powercut_t cut;
    memset(&cut, 0xFF, sizeof cut);
    if (pwrite(r->store_fd, &words, sizeof words, st_e->bootwords.off) != (ssize_t)sizeof words ||
        pwrite(r->store_fd, &cut, sizeof cut, st_e->powercut.off) != (ssize_t)sizeof cut) {
        fprintf(stderr, "%s: cannot write the boot records into %s: %s\n", r->prog, path,
                strerror(errno));
        return false;
    }
    return true;
}

/* Whether the microvisor recorded an injected power cut (it has stopped dead since). */
static bool powercut_recorded(const run_t *r)
{
    kboard_powercut_t cut;
    return pread(r->store_fd, &cut, sizeof cut, kboard_host()->store.powercut.off) ==
               (ssize_t)sizeof cut &&
           cut.magic == KBOARD_POWERCUT_MAGIC;
}

/* ---- QEMU process ---------------------------------------------------------------------- */

/* The guest address QEMU forwards to the broker; the microvisor has the same constant
 * (firmware/microvisor/net/uv_net.c, NET_BROKER_ADDR). */
#define QRUN_BROKER_GUEST_ADDR "10.0.2.100"

/*
 * The -nic value for a device with a broker: restricted user network, one forward, whose relay
 * (this keel, in the sandbox) reaches the broker through run/broker.sock. The keel path goes into
 * a QEMU option (commas would split it) and a command QEMU splits on spaces: refuse such paths
 * rather than quote them wrongly. exe: this keel's path (PATH_MAX), for the sandbox to show.
 */
static bool nic_value(const char *prog, uint16_t port, char *out, size_t cap, char *exe)
{
    ssize_t n = readlink("/proc/self/exe", exe, PATH_MAX - 1);
    if (n <= 0) {
        fprintf(stderr, "%s: cannot find this keel executable (/proc/self/exe): %s\n", prog,
                strerror(errno));
        return false;
    }
    exe[n] = '\0';
    if (strpbrk(exe, ", \t\n'\"\\$;&|<>") != NULL) {
        fprintf(stderr, "%s: the keel executable's path %s contains a comma, space or shell "
                        "character, which QEMU's guestfwd cannot carry: run keel from a plain path\n",
                prog, exe);
        return false;
    }
    int w = snprintf(out, cap, "user,id=n0,restrict=on,guestfwd=tcp:%s:%u-cmd:%s relay unix:%s/%s",
                     QRUN_BROKER_GUEST_ADDR, (unsigned)port, exe, QRUN_RUN_DIR, QRUN_BROKER_SOCK);
    if (w < 0 || (size_t)w >= cap) {
        fprintf(stderr, "%s: the keel executable's path is too long for QEMU's options\n", prog);
        return false;
    }
    return true;
}

/*
 * Build QEMU's command line. A -nic option is not optional: without one QEMU adds a user-mode
 * network with unrestricted access to the host's networks. nic: the -nic value.
 */
#define QRUN_BOARD_OPTS_MAX 8 /* QEMU options a board descriptor may add */

typedef struct qargs {
    char chardev[QRUN_NUARTS][PATH_MAX + 64];
    char serial[QRUN_NUARTS][16];
    char machine[96];
    char store[160];
    char gdb_serial[80];
    char state[PATH_MAX]; /* absolute */
    char keel[PATH_MAX];  /* this executable ("" without a broker) */
} qargs_t;

/*
 * The sandbox QEMU runs in (bubblewrap): no namespace shared with the host (no network at all),
 * /usr read-only, the device's state directory the only writable place, the firmware and (for
 * the broker relay) this keel read-only, nothing else of the host. A new session: QEMU cannot
 * push input into keel's terminal. It dies with keel.
 */
static int sandbox_argv(const qrun_opts_t *o, const qargs_t *q, const char **argv)
{
    int n = sandbox_base(argv, SANDBOX_DIE_WITH_PARENT, 0);
    argv[n++] = "--bind";
    argv[n++] = q->state;
    argv[n++] = q->state;
    argv[n++] = "--ro-bind";
    argv[n++] = o->firmware;
    argv[n++] = o->firmware;
    if (q->keel[0] != '\0') {
        argv[n++] = "--ro-bind";
        argv[n++] = q->keel;
        argv[n++] = q->keel;
    }
    argv[n++] = "--chdir";
    argv[n++] = q->state;
    argv[n++] = "--";
    return n;
}

/*
 * Semihosting stays off (QEMU would serve it to any privileged guest code, the app's handlers
 * included: host files, host commands, exit). The store file is the board's RAM: shared, so the
 * microvisor's writes land in the file and survive the process.
 */
static void build_argv(const qrun_opts_t *o, const run_t *r, qargs_t *q, const char *nic,
                       const char **argv)
{
    const kboard_t *b = kboard_host();
    int n = sandbox_argv(o, q, argv);
    snprintf(q->machine, sizeof q->machine, "%s,memory-backend=store", b->qemu_machine);
    snprintf(q->store, sizeof q->store,
             "memory-backend-file,id=store,size=%lu,mem-path=%s,share=on",
             (unsigned long)b->store.size, b->store.file);
    argv[n++] = QRUN_QEMU;
    argv[n++] = "-M";
    argv[n++] = q->machine;
    argv[n++] = "-object";
    argv[n++] = q->store;
    argv[n++] = "-display";
    argv[n++] = "none";
    argv[n++] = "-monitor";
    argv[n++] = "none";
    argv[n++] = "-nic";
    argv[n++] = nic;
    argv[n++] = "-semihosting-config";
    argv[n++] = "enable=off";
    argv[n++] = "-kernel";
    argv[n++] = o->firmware;
    for (int k = 0; b->qemu_opts != NULL && b->qemu_opts[k] != NULL && k < QRUN_BOARD_OPTS_MAX; k++)
        argv[n++] = b->qemu_opts[k]; /* the board's own machine options */
    for (int i = 0; i < QRUN_NUARTS; i++) {
        snprintf(q->chardev[i], PATH_MAX + 64, "socket,id=u%d,path=%s/%s", i, QRUN_RUN_DIR,
                 r->uart[i].sock_name);
        snprintf(q->serial[i], 16, "chardev:u%d", i);
        argv[n++] = "-chardev";
        argv[n++] = q->chardev[i];
        argv[n++] = "-serial";
        argv[n++] = q->serial[i];
    }
    if (o->gdb_serial_port != 0) {
        /* No network in the sandbox: a Unix socket, joined to 127.0.0.1:P by keel outside. */
        snprintf(q->gdb_serial, sizeof q->gdb_serial, "unix:%s/%s,server=on,wait=off",
                 QRUN_RUN_DIR, QRUN_GDB_SOCK);
        argv[n++] = "-serial";
        argv[n++] = q->gdb_serial;
    }
    if (o->icount) {
        argv[n++] = "-icount";
        argv[n++] = "shift=0";
    }
    argv[n] = NULL;
}

/*
 * Child side of the fork. Runs QEMU in its own process group (so the terminal's Ctrl-C reaches
 * only keel), dying with keel if keel is killed outright. An exec failure is reported through
 * the close-on-exec pipe, so the parent can tell "QEMU not installed" from "QEMU failed".
 */
static void child_exec(const qrun_opts_t *o, const char *const *argv, const sigset_t *oldmask,
                       pid_t parent, int errpipe)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    sigprocmask(SIG_SETMASK, oldmask, NULL);
    /* keel reads the terminal and forwards it to UART0; QEMU in a background process group
     * must not touch it (a read would stop it with SIGTTIN). */
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0 && devnull != STDIN_FILENO) {
        dup2(devnull, STDIN_FILENO);
        close(devnull);
    }
    int err = 0;
    if (chdir(o->state_dir) != 0)
        err = errno;
    else {
        /* QEMU's own messages (warnings, "terminating on signal") go to the state dir's log,
         * not between the device's console lines; keel shows them when QEMU fails. Its stdout
         * too: nothing in the sandbox holds keel's terminal. */
        int log = open(QRUN_QEMU_LOG, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (log >= 0) {
            dup2(log, STDOUT_FILENO);
            dup2(log, STDERR_FILENO);
            close(log);
        }
        execvp(argv[0], (char *const *)argv);
        err = errno;
    }
    ssize_t w = write(errpipe, &err, sizeof err);
    (void)w;
    _exit(127);
}

static bool spawn(run_t *r, const qrun_opts_t *o, const sigset_t *oldmask)
{
    static qargs_t q;
    const char *argv[80 + QRUN_BOARD_OPTS_MAX];
    char nic[PATH_MAX + 128] = "none";
    q.keel[0] = '\0';
    if (o->broker_port != 0 && !nic_value(r->prog, o->broker_port, nic, sizeof nic, q.keel))
        return false;
    if (realpath(o->state_dir, q.state) == NULL) {
        fprintf(stderr, "%s: %s: %s\n", r->prog, o->state_dir, strerror(errno));
        return false;
    }
    build_argv(o, r, &q, nic, argv);

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", r->prog, strerror(errno));
        return false;
    }
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    r->pid = fork();
    if (r->pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", r->prog, strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return false;
    }
    if (r->pid == 0)
        child_exec(o, argv, oldmask, parent, pfd[1]);
    setpgid(r->pid, r->pid); /* both sides set it: no race with a signal sent right away */
    close(pfd[1]);
    int err = 0;
    ssize_t got;
    do
        got = read(pfd[0], &err, sizeof err);
    while (got < 0 && errno == EINTR);
    close(pfd[0]);
    if (got == (ssize_t)sizeof err) {
        waitpid(r->pid, NULL, 0);
        r->pid = -1;
        if (err == ENOENT)
            fprintf(stderr, "%s: %s not found on PATH: QEMU runs in a bubblewrap sandbox; install "
                            "it (apt-get install bubblewrap, or 'make deps')\n", r->prog, QRUN_BWRAP);
        else
            fprintf(stderr, "%s: cannot start %s in %s: %s\n", r->prog, QRUN_BWRAP,
                    o->state_dir, strerror(err));
        return false;
    }
    return true;
}

/* SIGTERM, a bounded grace period, then SIGKILL (which cannot be ignored: the wait is short). */
static void stop_qemu(run_t *r)
{
    if (r->pid <= 0 || reap(r))
        return;
    kill(-r->pid, SIGTERM);
    int64_t deadline = now_ms() + QRUN_STOP_MS;
    while (!reap(r) && ms_left(deadline) > 0) {
        struct pollfd pf = {.fd = r->sfd, .events = POLLIN};
        poll(&pf, 1, ms_left(deadline) < 50 ? ms_left(deadline) : 50);
        take_signals(r);
    }
    if (!r->exited) {
        kill(-r->pid, SIGKILL);
        if (waitpid(r->pid, &r->status, 0) == r->pid)
            r->exited = true;
    }
}

/* Print what QEMU wrote before it went away, waiting at most QRUN_DRAIN_MS for EOF. */
static void drain(run_t *r, int wait_ms)
{
    int64_t deadline = now_ms() + wait_ms;
    for (;;) {
        struct pollfd pf[QRUN_NUARTS];
        int map[QRUN_NUARTS], n = 0;
        for (int i = 0; i < QRUN_NUARTS; i++)
            if (r->uart[i].cfd >= 0) {
                pf[n] = (struct pollfd){.fd = r->uart[i].cfd, .events = POLLIN};
                map[n++] = i;
            }
        if (n == 0 || poll(pf, (nfds_t)n, ms_left(deadline)) <= 0)
            break;
        for (int k = 0; k < n; k++)
            if (pf[k].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
                uart_read(&r->uart[map[k]]);
    }
    for (int i = 0; i < QRUN_NUARTS; i++)
        uart_flush(&r->uart[i]);
}

/*
 * Pass pending console input to UART0 as far as QEMU takes it, never waiting: a blocking send to
 * an app that does not read its console would stop keel itself, signals, console and power-cut
 * watch included (seen with `yes | keel device run`: SIGTERM was never acted on).
 */
static void push_stdin(run_t *r)
{
    while (r->in_off < r->in_len && r->uart[0].cfd >= 0) {
        ssize_t w = send(r->uart[0].cfd, r->in_buf + r->in_off, r->in_len - r->in_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w <= 0) {
            fprintf(stderr, "%s: console input lost: %s\n", r->prog, strerror(errno));
            break;
        }
        r->in_off += (size_t)w;
    }
    r->in_off = r->in_len = 0;
}

/* Read what the user typed for the app's console; false once stdin is done. */
static bool forward_stdin(run_t *r)
{
    ssize_t n = read(r->stdin_fd, r->in_buf, sizeof r->in_buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    r->in_len = (size_t)n;
    r->in_off = 0;
    push_stdin(r);
    return true;
}

static int console_loop(run_t *r, uint32_t seconds)
{
    int64_t deadline = seconds ? now_ms() + (int64_t)seconds * 1000 : 0;
    for (;;) {
        struct pollfd pf[QRUN_NUARTS + 4];
        int map[QRUN_NUARTS], n = 0;
        bool pending = r->in_off < r->in_len;
        for (int i = 0; i < QRUN_NUARTS; i++)
            if (r->uart[i].cfd >= 0) {
                short ev = (short)(POLLIN | (i == 0 && pending ? POLLOUT : 0));
                pf[n] = (struct pollfd){.fd = r->uart[i].cfd, .events = ev};
                map[n++] = i;
            }
        int nu = n;
        pf[n++] = (struct pollfd){.fd = r->sfd, .events = POLLIN};
        int fw_idx = n; /* the forwards' listeners (-1: none, poll ignores it) */
        pf[n++] = (struct pollfd){.fd = r->broker_lfd, .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = r->gdb_lfd, .events = POLLIN};
        int in_idx = -1;
        if (r->stdin_fd >= 0 && !pending) {
            in_idx = n;
            pf[n++] = (struct pollfd){.fd = r->stdin_fd, .events = POLLIN};
        }
        int timeout = QRUN_CUT_POLL_MS;
        if (deadline) {
            int left = ms_left(deadline);
            if (left == 0)
                return END_TIME;
            timeout = left < timeout ? left : timeout;
        }
        if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR) {
            fprintf(stderr, "%s: poll: %s\n", r->prog, strerror(errno));
            return END_FAIL;
        }
        for (int k = 0; k < nu; k++) {
            if (pf[k].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
                uart_read(&r->uart[map[k]]);
            if (map[k] == 0 && (pf[k].revents & POLLOUT))
                push_stdin(r);
        }
        if (ferror(stdout)) {
            fprintf(stderr, "%s: cannot write the console to stdout: stopping the device\n",
                    r->prog);
            return END_FAIL;
        }
        for (int k = fw_idx; k < fw_idx + 2; k++)
            if (pf[k].fd >= 0 && (pf[k].revents & POLLIN))
                forward_accept(r, pf[k].fd);
        if (in_idx >= 0 && (pf[in_idx].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) &&
            !forward_stdin(r))
            r->stdin_fd = -1;
        if (pf[nu].revents & POLLIN) {
            if (take_signals(r) != 0)
                return END_SIGNAL;
        }
        if (reap(r))
            return END_QEMU;
        if (powercut_recorded(r))
            return END_POWERCUT;
    }
}

/* Copy the last lines of QEMU's log to stderr (QEMU failed: its own words say why). */
static void show_qemu_log(const run_t *r, const qrun_opts_t *o)
{
    char path[PATH_MAX], buf[2048];
    snprintf(path, sizeof path, "%s/%s", o->state_dir, QRUN_QEMU_LOG);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        fseek(f, end > (long)sizeof buf - 1 ? end - (long)sizeof buf + 1 : 0, SEEK_SET);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "-nic none" always earns a warning that the NIC has no peer: not news. */
    char *keep = buf, *line = buf;
    for (char *nl; (nl = strchr(line, '\n')) != NULL || *line; line = nl ? nl + 1 : line + strlen(line)) {
        size_t len = nl ? (size_t)(nl - line) + 1u : strlen(line);
        if (!memmem(line, len, "has no peer", 11)) {
            memmove(keep, line, len);
            keep += len;
        }
        if (!nl)
            break;
    }
    *keep = '\0';
    if (keep != buf)
        fprintf(stderr, "%s: QEMU says (%s):\n%s", r->prog, path, buf);
}

static int exit_code_of(const run_t *r)
{
    if (WIFEXITED(r->status))
        return WEXITSTATUS(r->status);
    fprintf(stderr, "%s: QEMU was killed by signal %d\n", r->prog,
            WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0);
    return 1;
}

int qrun_run(const char *prog, const qrun_opts_t *o)
{
    run_t r = {.prog = prog, .pid = -1, .sfd = -1, .stdin_fd = STDIN_FILENO, .store_fd = -1,
               .broker_lfd = -1, .gdb_lfd = -1, .o = o};
    static const char *const names[QRUN_NUARTS] = {"uart0.sock", "uart1.sock"};
    static const char *const prefixes[QRUN_NUARTS] = {"app| ", ""};
    for (int i = 0; i < QRUN_NUARTS; i++)
        r.uart[i] = (uart_t){.sock_name = names[i], .prefix = prefixes[i], .lfd = -1, .cfd = -1};

    char rundir[PATH_MAX];
    snprintf(rundir, sizeof rundir, "%s/%s", o->state_dir, QRUN_RUN_DIR);
    if (mkdir(rundir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create %s: %s\n", prog, rundir, strerror(errno));
        return 1;
    }

    /* A closed stdout (keel ... | head) is an error on write, noticed by the loop, not a kill
     * that would leave QEMU's sockets behind. */
    signal(SIGPIPE, SIG_IGN);
    /* Signals arrive through a signalfd polled with the consoles: no handler, no global flag. */
    sigset_t mask, oldmask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, &oldmask);
    r.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    int rc = 1;
    bool ok = r.sfd >= 0;
    for (int i = 0; ok && i < QRUN_NUARTS; i++)
        ok = uart_listen(&r, &r.uart[i], o->state_dir);
    if (ok && o->broker_port != 0) {
        r.broker_lfd = unix_listen(&r, o->state_dir, QRUN_BROKER_SOCK, r.broker_path, 8);
        ok = r.broker_lfd >= 0;
    }
    if (ok && o->gdb_serial_port != 0) {
        snprintf(r.gdb_path, sizeof r.gdb_path, "%s/%s/%s", o->state_dir, QRUN_RUN_DIR, QRUN_GDB_SOCK);
        unlink(r.gdb_path); /* QEMU makes it; one left by a killed run would be in the way */
        r.gdb_lfd = tcp_listen(&r, o->gdb_serial_port);
        ok = r.gdb_lfd >= 0;
    }
    if (ok && store_prepare(&r, o) && spawn(&r, o, &oldmask)) {
        int end = accept_uarts(&r);
        if (end == END_READY)
            end = console_loop(&r, o->seconds);
        if (end == END_POWERCUT) {
            /* The supply failed: the process ends at once, what the console had said is kept. */
            kill(-r.pid, SIGKILL);
            if (waitpid(r.pid, &r.status, 0) == r.pid)
                r.exited = true;
            drain(&r, QRUN_DRAIN_MS);
            rc = QRUN_POWERCUT_EXIT;
        } else if (r.exited) {
            drain(&r, QRUN_DRAIN_MS);
            rc = exit_code_of(&r);
            /* Non-zero: QEMU failing; its words say why. */
            if (rc != 0)
                show_qemu_log(&r, o);
        } else {
            drain(&r, 0);
            stop_qemu(&r);
            drain(&r, 0);
            rc = end == END_FAIL ? 1 : 0;
            if (end == END_SIGNAL)
                printf("device stopped\n");
        }
    }
    fflush(stdout);
    for (int i = 0; i < QRUN_NUARTS; i++) {
        if (r.uart[i].cfd >= 0)
            close(r.uart[i].cfd);
        if (r.uart[i].lfd >= 0)
            close(r.uart[i].lfd);
        if (r.uart[i].path[0] != '\0')
            unlink(r.uart[i].path);
    }
    if (r.broker_lfd >= 0)
        close(r.broker_lfd);
    if (r.broker_path[0] != '\0')
        unlink(r.broker_path);
    if (r.gdb_lfd >= 0) {
        close(r.gdb_lfd);
        unlink(r.gdb_path);
    }
    rmdir(rundir); /* only if empty: someone else's files stay */
    if (r.store_fd >= 0)
        close(r.store_fd);
    if (r.sfd >= 0)
        close(r.sfd);
    /* The device is stopped and keel only returns from here on. timeout(1) and shells signal keel
     * and then its whole process group, so a second SIGTERM/SIGINT follows the first: pending or
     * arriving now, it must not turn a clean stop into death by signal (exit 143 or 130 after
     * "device stopped"). */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    return rc;
}

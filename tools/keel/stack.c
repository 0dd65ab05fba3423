/* keel CLI: local stack processes and helper tools (see stack.h). */
#define _GNU_SOURCE
#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PIDS_MAX 256
#define POLL_SLICE_MS 50
#define VIEW_START_MS 10000 /* bwrap sets a view up in milliseconds; generous for a loaded host */

uint64_t stack_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void stack_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

bool stack_find_tool(const char *prog, const char *name, const char *env_var, const char *build_rel,
                     char *out, size_t cap)
{
    const char *env = getenv(env_var);
    if (env != NULL && env[0] != '\0') {
        if (!executable(env)) {
            fprintf(stderr, "%s: %s=%s is not an executable file\n", prog, env_var, env);
            return false;
        }
        snprintf(out, cap, "%s", env);
        return true;
    }
    if (build_rel != NULL && build_rel[0] == '/' && executable(build_rel)) {
        snprintf(out, cap, "%s", build_rel);
        return true;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0 && build_rel != NULL && build_rel[0] != '/') {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            char cand[PATH_MAX + 256];
            snprintf(cand, sizeof cand, "%s/%s", self, build_rel);
            char real[PATH_MAX];
            if (realpath(cand, real) != NULL && executable(real)) {
                snprintf(out, cap, "%s", real);
                return true;
            }
        }
    }
    const char *path = getenv("PATH");
    if (path != NULL) {
        char copy[8192];
        snprintf(copy, sizeof copy, "%s", path);
        for (char *save = NULL, *d = strtok_r(copy, ":", &save); d != NULL;
             d = strtok_r(NULL, ":", &save)) {
            char cand[PATH_MAX];
            snprintf(cand, sizeof cand, "%s/%s", d, name);
            if (executable(cand)) {
                snprintf(out, cap, "%s", cand);
                return true;
            }
        }
    }
    fprintf(stderr, "%s: cannot find '%s': build it (make), put it on PATH, or set %s to its path\n",
            prog, name, env_var);
    return false;
}

int stack_capture(const char *prog, char *const argv[], unsigned timeout_s, const char *err_log,
                  char *out, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        int err = err_log != NULL ? open(err_log, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
        if (err >= 0) {
            dup2(err, STDERR_FILENO);
            close(err);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "%s: cannot run %s: %s\n", prog, argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    uint64_t end = stack_mono_ms() + (uint64_t)timeout_s * 1000u;
    bool timed_out = false;
    for (;;) {
        uint64_t now = stack_mono_ms();
        if (now >= end) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int r = poll(&p, 1, (int)(end - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char buf[4096];
        ssize_t got = read(fds[0], buf, sizeof buf);
        if (got <= 0)
            break;
        size_t keep = (size_t)got;
        if (cap > 0 && len + keep > cap - 1)
            keep = cap - 1 - len;
        if (cap > 0)
            memcpy(out + len, buf, keep);
        len += keep;
    }
    if (cap > 0)
        out[len] = '\0';
    close(fds[0]);
    if (timed_out) {
        kill(pid, SIGKILL);
        fprintf(stderr, "%s: %s did not finish within %u s: stopped\n", prog, argv[0], timeout_s);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* Field 22 of /proc/PID/stat (start time in clock ticks) and the state letter; false if gone. */
static bool proc_stat(pid_t pid, unsigned long long *out_start, char *out_state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    char state = 0;
    unsigned long long start = 0;
    /* After ')': state(3) ppid(4) ... starttime(22): skip 18 fields after the state. */
    if (sscanf(p + 1, " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
               &state, &start) != 2)
        return false;
    *out_start = start;
    *out_state = state;
    return true;
}

bool stack_alive(pid_t pid)
{
    unsigned long long start;
    char state;
    return pid > 0 && proc_stat(pid, &start, &state) && state != 'Z' && state != 'X';
}

/* Fork argv detached (own session, stdin /dev/null, stdout+stderr appended to log_path); info_fd,
 * when >= 0, becomes the child's fd 3 (bwrap's --info-fd). Returns the pid or -1 (printed). */
static pid_t spawn_detached(const char *prog, char *const argv[], const char *log_path, int info_fd)
{
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, log_path, strerror(errno));
        return -1;
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
        close(log);
        if (devnull >= 0)
            close(devnull);
        return -1;
    }
    if (pid == 0) {
        /* Own session: Ctrl-C in the terminal that ran `keel up` does not reach the stack. */
        setsid();
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
        if (info_fd >= 0)
            dup2(info_fd, 3); /* dup2 clears close-on-exec on the copy */
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(log);
    if (devnull >= 0)
        close(devnull);
    return pid;
}

/* Record pid as NAME in pids_path (with its start time); false (printed, pid killed) on failure. */
static bool record(const char *prog, const char *pids_path, const char *name, pid_t pid)
{
    unsigned long long start = 0;
    char state;
    /* The child may not have a /proc entry with its final start time instantly; it does once forked. */
    if (!proc_stat(pid, &start, &state))
        start = 0;
    FILE *f = fopen(pids_path, "a");
    if (f == NULL || fprintf(f, "%s %ld %llu\n", name, (long)pid, start) < 0 || fclose(f) != 0) {
        fprintf(stderr, "%s: cannot record %s's pid in %s: stopping it\n", prog, name, pids_path);
        kill(pid, SIGKILL);
        return false;
    }
    return true;
}

pid_t stack_spawn(const char *prog, const char *pids_path, const char *name, char *const argv[],
                  const char *log_path)
{
    pid_t pid = spawn_detached(prog, argv, log_path, -1);
    return pid > 0 && record(prog, pids_path, name, pid) ? pid : -1;
}

/* bwrap's --info-fd JSON says the sandboxed command's host pid as "child-pid": N; 0 if not (yet). */
static pid_t info_child_pid(const char *json)
{
    const char *p = strstr(json, "\"child-pid\"");
    if (p == NULL || (p = strchr(p, ':')) == NULL)
        return 0;
    char *end = NULL;
    long v = strtol(p + 1, &end, 10);
    return end != p + 1 && v > 1 && v < INT_MAX ? (pid_t)v : 0;
}

pid_t stack_spawn_view(const char *prog, const char *pids_path, const char *name,
                       const char *const view[], char *const argv[], const char *log_path)
{
    const char *full[STACK_VIEW_ARGS_MAX];
    size_t n = 0;
    for (; view[n] != NULL && n < STACK_VIEW_ARGS_MAX - 4; n++)
        full[n] = view[n];
    full[n++] = "--info-fd";
    full[n++] = "3";
    full[n++] = "--";
    for (size_t i = 0; argv[i] != NULL; i++) {
        if (n + 1 >= STACK_VIEW_ARGS_MAX) {
            fprintf(stderr, "%s: too many words for %s's sandbox\n", prog, name);
            return -1;
        }
        full[n++] = argv[i];
    }
    full[n] = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
        return -1;
    }
    pid_t bw = spawn_detached(prog, (char *const *)full, log_path, fds[1]);
    close(fds[1]);
    /* bwrap says the command's pid, then its namespaces, in several writes, and closes the pipe:
     * read to the end (closing early would kill bwrap with SIGPIPE before it lets the command
     * start). The command (pid 1 of its namespace, SANDBOX_AS_PID1) is what `keel down`
     * signals. Bounded. */
    char json[4096];
    size_t len = 0;
    uint64_t end = stack_mono_ms() + VIEW_START_MS;
    bool eof = false;
    while (bw > 0 && !eof && stack_mono_ms() < end) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (poll(&p, 1, POLL_SLICE_MS) <= 0)
            continue;
        char buf[512];
        ssize_t got = read(fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        eof = got <= 0;
        size_t keep = got > 0 ? (size_t)got : 0;
        if (keep > sizeof json - 1 - len)
            keep = sizeof json - 1 - len;
        memcpy(json + len, buf, keep);
        len += keep;
    }
    json[len] = '\0';
    pid_t pid = eof ? info_child_pid(json) : 0;
    close(fds[0]);
    if (bw > 0 && pid == 0) {
        fprintf(stderr, "%s: %s did not start in its sandbox (bubblewrap: see %s; is bubblewrap "
                        "installed and may it make namespaces?)\n", prog, name, log_path);
        kill(bw, SIGKILL);
        waitpid(bw, NULL, 0);
        return -1;
    }
    return pid > 0 && record(prog, pids_path, name, pid) ? pid : -1;
}

typedef struct entry {
    char name[64];
    pid_t pid;
    unsigned long long start;
} entry_t;

/* Read pids_path; returns the number of entries (0 when the file does not exist). */
static int read_pids(const char *pids_path, entry_t *e, int max)
{
    FILE *f = fopen(pids_path, "r");
    if (f == NULL)
        return 0;
    int n = 0;
    char line[256];
    while (n < max && fgets(line, sizeof line, f) != NULL) {
        long pid;
        if (sscanf(line, "%63s %ld %llu", e[n].name, &pid, &e[n].start) == 3 && pid > 1) {
            e[n].pid = (pid_t)pid;
            n++;
        }
    }
    fclose(f);
    return n;
}

/* Still the process we started (same start time), and running? */
static bool ours_alive(const entry_t *e)
{
    unsigned long long start;
    char state;
    if (!proc_stat(e->pid, &start, &state) || state == 'Z' || state == 'X')
        return false;
    return e->start == 0 || start == e->start;
}

int stack_count_alive(const char *pids_path)
{
    entry_t e[PIDS_MAX];
    int n = read_pids(pids_path, e, PIDS_MAX), alive = 0;
    for (int i = 0; i < n; i++)
        alive += ours_alive(&e[i]);
    return alive;
}

int stack_stop_some(const char *pids_path, const char *prefix, unsigned wait_ms, bool verbose)
{
    entry_t e[PIDS_MAX];
    int n = read_pids(pids_path, e, PIDS_MAX), running = 0;
    bool was[PIDS_MAX];
    /* Newest first: devices, then keeld, then the broker they talk to. */
    for (int i = n - 1; i >= 0; i--) {
        was[i] = strncmp(e[i].name, prefix, strlen(prefix)) == 0 && ours_alive(&e[i]);
        if (was[i]) {
            kill(e[i].pid, SIGTERM);
            running++;
        }
    }
    uint64_t end = stack_mono_ms() + wait_ms;
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++)
            left += was[i] && ours_alive(&e[i]);
        if (left == 0 || stack_mono_ms() >= end)
            break;
        stack_sleep_ms(POLL_SLICE_MS);
    }
    for (int i = n - 1; i >= 0; i--) {
        if (!was[i])
            continue;
        bool killed = false;
        if (ours_alive(&e[i])) {
            kill(e[i].pid, SIGKILL);
            killed = true;
        }
        if (verbose)
            printf("  stopped %-10s pid %ld%s\n", e[i].name, (long)e[i].pid,
                   killed ? " (SIGKILL: it ignored SIGTERM)" : "");
    }
    /* After SIGKILL the kernel needs a moment to tear the process down; bounded. */
    for (int t = 0; t < 40; t++) {
        int left = 0;
        for (int i = 0; i < n; i++)
            left += was[i] && ours_alive(&e[i]);
        if (left == 0)
            break;
        stack_sleep_ms(POLL_SLICE_MS);
    }
    return running;
}

int stack_stop_all(const char *prog, const char *pids_path, unsigned wait_ms, bool verbose)
{
    int running = stack_stop_some(pids_path, "", wait_ms, verbose);
    if (unlink(pids_path) != 0 && errno != ENOENT)
        fprintf(stderr, "%s: cannot remove %s: %s\n", prog, pids_path, strerror(errno));
    return running;
}

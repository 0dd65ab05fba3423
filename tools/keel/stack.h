/*
 * keel CLI: processes of the local fleet stack (`keel up` / `keel down`) and the helper tools the
 * fleet commands run (keeld, simdev, addr2line).
 *
 * Processes started by `keel up` outlive it, so `keel down` finds them through DIR/pids: one line
 * "NAME PID STARTTIME" each, STARTTIME being field 22 of /proc/PID/stat. A PID whose start time
 * differs is a different process that reused the number and is never signalled.
 */
#ifndef KEEL_TOOLS_KEEL_STACK_H
#define KEEL_TOOLS_KEEL_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STACK_PATH_MAX 4096

/*
 * Find helper program name: $env_var if set (must be executable), else build_rel relative to the
 * directory of the running keel (the build tree: "../../server/keeld"; an absolute build_rel is
 * taken as it is), else name on PATH. False
 * (message printed, naming env_var) when none is executable.
 */
bool stack_find_tool(const char *prog, const char *name, const char *env_var, const char *build_rel,
                     char *out, size_t cap);

/*
 * Run argv[0] (a path or a PATH name) to completion, at most timeout_s seconds (then SIGKILL).
 * Its stdout goes into out (NUL-terminated, truncated to cap); its stderr is appended to err_log,
 * or passes through when err_log is NULL. Returns its exit status, or -1 (message printed) when it
 * could not run or was killed.
 */
int stack_capture(const char *prog, char *const argv[], unsigned timeout_s, const char *err_log,
                  char *out, size_t cap);

/*
 * Start argv detached (own session, stdin /dev/null, stdout+stderr appended to log_path) and record
 * it as NAME in pids_path. Returns its pid, or -1 (message printed).
 */
pid_t stack_spawn(const char *prog, const char *pids_path, const char *name, char *const argv[],
                  const char *log_path);

/*
 * The same inside a sandbox (sandbox.h): view is the bwrap command and its options up to the
 * command (NULL-terminated, without "--"); argv the command run inside. What is recorded (and
 * returned) is the host pid of the command itself (bwrap --info-fd), which must be pid 1 of its
 * namespace (SANDBOX_AS_PID1) so that keel down's SIGTERM reaches it. -1 (message printed) when
 * the sandbox could not start.
 */
#define STACK_VIEW_ARGS_MAX 128
pid_t stack_spawn_view(const char *prog, const char *pids_path, const char *name,
                       const char *const view[], char *const argv[], const char *log_path);

/*
 * DIR/secrets (0700; path into secrets, cap bytes): where `keel up` keeps the CA key, the fleet
 * signing key, the service keys and the API token's config, apart from the devices' tree
 * DIR/devices (docs/security.md). A state dir of an older `keel up` kept its keys (*.key) and
 * config at DIR's top: they are moved in (and said so); a copy already there with the same bytes
 * stays and the old one goes; two different copies are an error for the operator to settle.
 * False (message printed) on failure.
 */
bool stack_secrets_dir(const char *prog, const char *dir, char *secrets, size_t cap);

/* Monotonic milliseconds, and a sleep of ms milliseconds (shared by the CLI's bounded waits). */
uint64_t stack_mono_ms(void);
void stack_sleep_ms(unsigned ms);

/* True while pid runs (a zombie counts as gone). */
bool stack_alive(pid_t pid);

/*
 * Stop every process recorded in pids_path, newest first: SIGTERM to all, up to wait_ms for them to
 * go, SIGKILL to the rest; then remove the file. Prints one line per process when verbose.
 * Returns the number of processes that were running; a missing file is 0 (nothing to do).
 */
int stack_stop_all(const char *prog, const char *pids_path, unsigned wait_ms, bool verbose);

/*
 * The same for the processes whose recorded name starts with prefix only (the file stays): e.g.
 * the devices first, so keeld still runs to record them going offline. Returns how many ran.
 */
int stack_stop_some(const char *pids_path, const char *prefix, unsigned wait_ms, bool verbose);

/* The number of processes recorded in pids_path that still run. */
int stack_count_alive(const char *pids_path);

#endif /* KEEL_TOOLS_KEEL_STACK_H */

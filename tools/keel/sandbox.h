/*
 * The bubblewrap views Keel runs device processes in (docs/security.md, "What each process can
 * read"): a device process sees /usr read-only, its own files and nothing else of the host, above
 * all not the stack's secrets (`keel up`'s DIR/secrets).
 *
 *   QEMU (qrun.c)          no namespace shared with the host (no network), dies with keel
 *   fleetsim (cmd_stack.c) the host's network (it dials the broker on 127.0.0.1), everything else
 *                          its own; pid 1 of its pid namespace, so `keel down` signals it directly
 */
#ifndef KEEL_TOOLS_KEEL_SANDBOX_H
#define KEEL_TOOLS_KEEL_SANDBOX_H

#define SANDBOX_BWRAP "bwrap"
/* The fixed part is at most this many words; callers size argv for it plus their own. */
#define SANDBOX_BASE_MAX 40

enum {
    SANDBOX_DIE_WITH_PARENT = 1u << 0, /* SIGKILL when the process that started bwrap dies */
    SANDBOX_SHARE_NET = 1u << 1,       /* the host's network namespace (loopback to the broker) */
    SANDBOX_AS_PID1 = 1u << 2,         /* the command is pid 1 of its pid namespace (no init of
                                          bwrap's between): its host pid is bwrap's "child-pid" */
};

/*
 * The fixed words of a view into argv: bwrap, every namespace unshared (but the network with
 * SANDBOX_SHARE_NET), a new session, /usr read-only with the /bin, /sbin, /lib, /lib64 links, a
 * /proc of its own pid namespace, a minimal /dev and an empty /tmp. With keep_sanitizer_logs, the
 * directory of ASAN_OPTIONS' log_path (test builds) is bound read-write, so a sanitizer report of
 * the process inside still reaches the test. Returns the number of words written. The caller adds
 * its binds ("--ro-bind P P", "--bind P P"), "--chdir", "--" and the command.
 */
int sandbox_base(const char **argv, unsigned flags, int keep_sanitizer_logs);

#endif /* KEEL_TOOLS_KEEL_SANDBOX_H */

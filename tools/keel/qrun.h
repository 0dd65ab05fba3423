/*
 * qrun: run one emulated Keel device in QEMU (the board's machine, keel/board.h) and be its
 * console.
 *
 * QEMU runs with its working directory in the device's state directory. The device's store file
 * there (the board descriptor's store entry) is mapped as a board RAM (memory-backend-file,
 * share=on): internal flash, QSPI and the boot records are regions of it. Semihosting is off.
 * Before QEMU starts, the boot words (append) go into the store's boot-word record, which the
 * microvisor erases once read; an injected power cut writes the store's power-cut record and
 * stops the CPU, and this process then kills QEMU and returns QRUN_POWERCUT_EXIT. Both UARTs are Unix-domain
 * sockets that this process listens on in DIR/run/ (QEMU connects as a client):
 *
 *   keel ── stdin ─────────────▶ run/uart0.sock ──▶ UART0 (the app's console)
 *   stdout ◀── "app| " + line ── run/uart0.sock
 *   stdout ◀── line ───────────── run/uart1.sock ◀── UART1 (the microvisor's console)
 *
 * Sandbox: QEMU runs under bubblewrap (bwrap --unshare-all: no host network, pid, ipc, user
 * namespaces of its own; a new session), seeing /usr read-only, the state directory read-write,
 * the firmware and this keel read-only, and nothing else of the host. It dies with keel.
 *
 * Network: without a broker, -nic none (QEMU would otherwise add an *unrestricted* user
 * network). With broker_port P, a restricted user network whose only way out is the broker:
 *   -nic user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:P-cmd:<this keel> relay unix:run/broker.sock
 * QEMU starts one `keel relay` per guest connection (relay.c), so reconnects work; it dials the
 * Unix socket this process listens on, and a child of this process joins each such connection to
 * 127.0.0.1:P (relay_forward). The debugger's serial line goes the other way: QEMU serves UART2 on
 * run/gdb.sock, this process listens on 127.0.0.1:gdb_serial_port and joins each connection to it.
 *
 * The sandbox gets its own session and process group, so a Ctrl-C at the terminal reaches only
 * keel, which then stops it (SIGTERM, then SIGKILL after 2 s) and removes the sockets.
 */
#ifndef KEEL_TOOLS_KEEL_QRUN_H
#define KEEL_TOOLS_KEEL_QRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* keel's exit status when the device's supply was cut (fault injection: boot word powercut=N). */
#define QRUN_POWERCUT_EXIT 86

typedef struct qrun_opts {
    const char *state_dir; /* must exist */
    const char *firmware;  /* secure firmware ELF, absolute path */
    const char *append;    /* boot words for the microvisor ("" for none; at most
                              KBOARD_BOOTWORDS_MAX bytes) */
    bool icount;           /* deterministic instruction counting (-icount shift=0) */
    uint32_t seconds;      /* stop after this long; 0 = until QEMU exits or keel is signalled */
    uint16_t broker_port;  /* 0: no network (-nic none); else the broker's port on 127.0.0.1 */
    /* 0: none; else the app debugger's serial line (UART2, -serial #2) listens on 127.0.0.1:P
     * (nodelay: RSP is request/reply, Nagle would add 40 ms per packet) */
    uint16_t gdb_serial_port;
} qrun_opts_t;

/*
 * Find the secure firmware: given (--firmware), else $KEEL_FIRMWARE, else beside the keel
 * executable: <exe dir>/../fw/microvisor/keel-microvisor.elf (an installed tree: bin/ next to fw/)
 * or <exe dir>/../../../fw/microvisor/keel-microvisor.elf (the build tree: build/host/tools/keel/keel
 * and build/fw/microvisor/).
 * Writes an absolute path into out. On failure prints why (and how to build it) to stderr as
 * "prog: ..." and returns false.
 */
bool qrun_find_firmware(const char *prog, const char *given, char *out, size_t cap);

/*
 * Run QEMU until it exits, o->seconds pass, the device records a power cut, or keel gets
 * SIGINT/SIGTERM. Returns keel's exit code: QEMU's own status when it ended by itself,
 * QRUN_POWERCUT_EXIT after a power cut, 0 when keel stopped it, 1 on failure to run (message on
 * stderr).
 */
int qrun_run(const char *prog, const qrun_opts_t *o);

#endif /* KEEL_TOOLS_KEEL_QRUN_H */

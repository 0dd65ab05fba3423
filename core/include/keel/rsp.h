/*
 * GDB remote serial protocol (RSP) engine for a Cortex-M target.
 *
 * OS-free, no allocation: one rsp_t context holds the receive framer, the last reply (for
 * retransmission on '-') and the run state. Bytes from the debugger go in through rsp_input();
 * replies leave through the transport's send callback. What the engine knows about the target
 * is an ops struct: the stub behind it (the microvisor) decides which memory the debugger may
 * touch, how breakpoints are made and how the app is resumed, stepped and halted.
 *
 * Run model (all-stop): 'c'/'s'/'vCont' call ops->resume() and return without a reply; the
 * stub later calls rsp_notify_stop() when the app stops (breakpoint, step done, fault, Ctrl-C),
 * which sends the stop reply. A 0x03 byte while the app runs calls ops->halt().
 *
 * Register numbering (the order of target.xml, the 'g' packet and 'p'/'P'):
 *   0..12 r0-r12, 13 sp, 14 lr, 15 pc, 16 xpsr, 17 msp, 18 psp
 * Registers travel as 8 hex digits, little-endian (target byte order).
 *
 * Error replies are "Enn" with errno-style numbers (gdb shows only that an error happened):
 *   E16 (EINVAL) malformed packet or argument,  E0e (EFAULT) memory refused or unreadable,
 *   E1c (ENOSPC) no breakpoint slot left,       E05 (EIO)    the target failed otherwise.
 */
#ifndef KEEL_RSP_H
#define KEEL_RSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/err.h"

/* Largest packet payload accepted and sent (advertised as PacketSize). Must hold a 'G' packet
 * (1 + 19 * 8 bytes) and is what bounds 'm' replies: 2 hex digits per byte. */
#define RSP_PACKET_MAX 1024u

enum {
    RSP_REG_R0 = 0,
    RSP_REG_SP = 13,
    RSP_REG_LR = 14,
    RSP_REG_PC = 15,
    RSP_REG_XPSR = 16,
    RSP_REG_MSP = 17,
    RSP_REG_PSP = 18,
    RSP_REG_COUNT = 19,
};

/* GDB signal numbers used in stop replies. */
enum {
    RSP_SIGINT = 2,   /* halted by Ctrl-C */
    RSP_SIGILL = 4,   /* UsageFault: undefined instruction, invalid state */
    RSP_SIGTRAP = 5,  /* breakpoint or step done */
    RSP_SIGBUS = 10,  /* BusFault, SecureFault (access outside the app's memory) */
    RSP_SIGSEGV = 11, /* MemManage fault */
    RSP_SIGKILL = 9,  /* the app was stopped for good (watchdog, restart) */
};

typedef enum {
    RSP_BP_SOFTWARE = 0, /* Z0: patch the instruction (BKPT) */
    RSP_BP_HARDWARE = 1, /* Z1: a comparator if the target has one; a stub may patch anyway */
    RSP_WP_WRITE = 2,    /* Z2: stop after a write to the range (gdb's watch) */
    RSP_WP_READ = 3,     /* Z3: stop after a read (rwatch) */
    RSP_WP_ACCESS = 4,   /* Z4: stop after either (awatch) */
} rsp_bp_type_t;

/*
 * What the engine asks of the target. Every function returns KERR_OK or a kerr_t; the engine
 * maps KERR_RANGE to E0e, KERR_NOMEM to E1c, KERR_INVAL to E16 and anything else to E05.
 * ctx is rsp_config_t.target_ctx. All of them are called only from rsp_input(),
 * rsp_notify_stop() and rsp_connection_lost(), so they run in the caller's context.
 */
typedef struct rsp_target_ops {
    /* Register regno (0..RSP_REG_COUNT-1) of the halted app. */
    kerr_t (*read_reg)(void *ctx, unsigned regno, uint32_t *out_value);
    kerr_t (*write_reg)(void *ctx, unsigned regno, uint32_t value);
    /* len bytes at addr; the target checks the whole range lies in the app's own memory and
     * returns KERR_RANGE otherwise, before touching anything. Reads must show the original
     * code where software breakpoints are planted. */
    kerr_t (*read_mem)(void *ctx, uint32_t addr, uint8_t *out, uint32_t len);
    kerr_t (*write_mem)(void *ctx, uint32_t addr, const uint8_t *data, uint32_t len);
    /* kind is gdb's: 2 for a 16-bit Thumb instruction, 3 or 4 for 32-bit. */
    kerr_t (*insert_bp)(void *ctx, rsp_bp_type_t type, uint32_t addr, uint32_t kind);
    kerr_t (*remove_bp)(void *ctx, rsp_bp_type_t type, uint32_t addr, uint32_t kind);
    /* Let the app run (step=false) or execute one instruction (step=true), delivering signal
     * (0 = none; a stub may ignore it). Returns at once; the stop comes by rsp_notify_stop(). */
    kerr_t (*resume)(void *ctx, bool step, int signal);
    /* Ctrl-C: stop the running app soon; the stub then calls rsp_notify_stop(). */
    void (*halt)(void *ctx);
    /* The GDB signal number for why the app is halted now (for '?' and stop replies). */
    int (*stop_signal)(void *ctx);
    /* Debugger leaves ('D', or the connection is lost): remove every breakpoint, let the app
     * run on normally. */
    void (*detach)(void *ctx);
    /* 'k': the debugger wants the app gone (the stub restarts it); no reply is sent. */
    void (*kill)(void *ctx);
    /* Optional (all three or none; NULL: Z2-Z4 get the empty reply, "not supported").
     * Watch len bytes at addr for type (RSP_WP_*); errors as for breakpoints. */
    kerr_t (*insert_wp)(void *ctx, rsp_bp_type_t type, uint32_t addr, uint32_t len);
    kerr_t (*remove_wp)(void *ctx, rsp_bp_type_t type, uint32_t addr, uint32_t len);
    /* The current stop was a watchpoint: true, with its type and the address to report
     * (within the watched range, so gdb finds its watchpoint). */
    bool (*stop_watch)(void *ctx, rsp_bp_type_t *type, uint32_t *addr);
    /* Optional (NULL: vCont;r not offered). Range stepping: step, and keep stepping while the
     * app stops at an address in [start, end); the stop comes by rsp_notify_stop() as for a
     * step. gdb's `next` and `step` then cost one round trip per line instead of one per
     * instruction. */
    kerr_t (*resume_range)(void *ctx, uint32_t start, uint32_t end);
} rsp_target_ops_t;

/* The transport: deliver len bytes to the debugger (a whole packet or a single ack). */
typedef void (*rsp_send_fn)(void *ctx, const uint8_t *data, size_t len);

typedef struct rsp_config {
    const rsp_target_ops_t *ops;
    void *target_ctx;
    rsp_send_fn send;
    void *send_ctx;
} rsp_config_t;

typedef enum {
    RSP_RX_IDLE = 0, /* between packets: acks, Ctrl-C, noise */
    RSP_RX_DATA,     /* inside $...: payload */
    RSP_RX_ESCAPE,   /* after '}' */
    RSP_RX_RUN,      /* after '*': the repeat count follows */
    RSP_RX_CSUM1,    /* after '#' */
    RSP_RX_CSUM2,
} rsp_rx_state_t;

/* Engine state. Treat as opaque; it is here so callers can place it statically. */
typedef struct rsp {
    rsp_config_t cfg;
    rsp_rx_state_t rx_state;
    uint8_t rx_sum;       /* running checksum of the raw bytes since '$' */
    uint8_t rx_csum_hi;
    bool rx_overflow;     /* payload exceeded RSP_PACKET_MAX: answer E16 */
    size_t rx_len;
    uint8_t rx[RSP_PACKET_MAX];
    uint8_t tx[RSP_PACKET_MAX + 4]; /* framed last reply: '$', payload, '#', checksum */
    size_t tx_len;
    unsigned tx_retries;  /* '-' answered since the reply was sent */
    bool no_ack;          /* QStartNoAckMode accepted */
    bool running;         /* resumed, stop reply not sent yet */
    uint32_t stats_bad_csum; /* packets refused for a checksum mismatch */
} rsp_t;

/* Start a session (fresh connection). Returns KERR_INVAL if a callback is missing. */
kerr_t rsp_init(rsp_t *rsp, const rsp_config_t *cfg);

/* Feed bytes received from the debugger; may call target ops and the transport. */
void rsp_input(rsp_t *rsp, const uint8_t *data, size_t len);

/* The app stopped (breakpoint, step done, fault, halt after Ctrl-C, watchpoint). If a resume was
 * pending, sends the stop reply "T<sig>" with sp/lr/pc expedited ("watch:ADDR;", "rwatch:" or
 * "awatch:" first when ops->stop_watch says so). Otherwise does nothing. */
void rsp_notify_stop(rsp_t *rsp);

/* The app is gone for good (its watchdog, a storm, its exit: the supervisor restarts it). If a
 * resume was pending, sends "X<sig>": gdb shows "Program terminated with signal ..." and reads
 * no registers of a process that no longer exists. Otherwise does nothing. */
void rsp_notify_exit(rsp_t *rsp, int signal);

/* True while the app runs on behalf of the debugger (after c/s, before the stop reply). */
bool rsp_running(const rsp_t *rsp);

/* The transport went away without 'D': detach (breakpoints removed, app runs on). */
void rsp_connection_lost(rsp_t *rsp);

/* The target description sent for qXfer:features:read:target.xml (NUL-terminated). */
const char *rsp_target_xml(void);

#endif /* KEEL_RSP_H */

/*
 * An RSP-aware relay between gdb and the Keel stub that saves round trips (docs/debug.md,
 * "Round trips"). Used by `keel debug` on the cloud path, where every round trip crosses keeld
 * and the broker twice.
 *
 * gdb re-reads the same few instructions and stack words many times per command (about 40
 * packets per `stepi`), and its own memory cache is dropped at every resume. Between two
 * resumes the app is parked and nothing but the debugger changes its memory, so the relay
 * answers a read ('m') from what it read since the last state-changing packet, and fetches
 * whole 64-byte lines (at most RSPCACHE_FETCH_MAX bytes) so that neighbouring reads hit. It also
 * keeps the stub's answers to queries that never change within a session (qfThreadInfo,
 * qsThreadInfo, qC, qAttached, qOffsets, qTStatus) and gives them again. When a stop reply
 * passes (it carries pc and sp), it asks at once for the lines at pc and sp, which gdb reads
 * next: their round trips overlap gdb's own work on the stop. A prefetch asked before an
 * invalidation is dropped when it arrives.
 *
 * Invalidated by every packet that may change the target (anything but m, g, p, ?, H, q and
 * vCont?) and by Ctrl-C. Works only once acks are off (QStartNoAckMode, which gdb asks of the Keel
 * stub): before that every byte passes through unchanged. A request is answered locally only
 * when no reply of the stub is outstanding, so replies never overtake each other; anything this
 * relay does not understand passes through verbatim.
 *
 * Portable, no allocation, no threads (the caller serialises calls); tested on the host
 * (tests/unit/test_rspcache.c).
 */
#ifndef KEEL_RSPCACHE_H
#define KEEL_RSPCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RSPCACHE_LINE 64u
#define RSPCACHE_LINES 32u       /* 2 KiB: a step's code and stack lines */
#define RSPCACHE_FETCH_MAX 256u  /* bytes per widened read */
#define RSPCACHE_PKT_MAX 1200u   /* largest packet parsed (the stub's PacketSize is 1024) */
#define RSPCACHE_PENDING 8u
#define RSPCACHE_MEMO 8u
#define RSPCACHE_MEMO_MAX 32u

typedef void (*rspcache_out_fn)(void *ctx, const uint8_t *data, size_t len);

typedef enum {
    RSPCACHE_PASS = 0,  /* reply goes to gdb as it is */
    RSPCACHE_WIDE,      /* reply to a widened 'm': cache it, answer gdb's own range */
    RSPCACHE_RETRY,     /* reply to the original 'm' after the widened one failed */
    RSPCACHE_MEMO_Q,    /* reply to a query worth keeping */
    RSPCACHE_PREFETCH,  /* the relay's own read after a stop: cached, never shown to gdb */
} rspcache_kind_t;

typedef struct {
    rspcache_kind_t kind;
    uint32_t addr, len;   /* gdb's 'm' */
    uint32_t waddr, wlen; /* what was asked of the stub */
    unsigned memo;        /* memo slot for RSPCACHE_MEMO_Q */
    uint32_t gen;         /* the cache generation it was asked in (stale once invalidated) */
} rspcache_pending_t;

typedef struct {
    uint8_t buf[RSPCACHE_PKT_MAX];
    size_t len;
    int state;           /* 0 idle, 1 in packet, 2/3 checksum digits */
    bool overflow;
} rspcache_rx_t;

typedef struct rspcache {
    rspcache_out_fn to_gdb, to_stub;
    void *gdb_ctx, *stub_ctx;
    rspcache_rx_t from_gdb, from_stub;
    bool no_ack;              /* QStartNoAckMode answered OK: caching may start */
    bool ack_asked;           /* gdb sent QStartNoAckMode, reply pending */
    bool disabled;            /* something unexpected: pure pass-through from now on */
    rspcache_pending_t pending[RSPCACHE_PENDING];
    unsigned npending;
    struct {
        uint32_t addr;        /* line address; valid if present */
        bool present;
        uint8_t data[RSPCACHE_LINE];
    } line[RSPCACHE_LINES];
    unsigned next_victim;
    uint32_t gen;             /* bumped by every invalidation */
    bool held;                /* gdb's read waits for the prefetches in flight */
    uint32_t held_addr, held_len;
    struct {
        char query[RSPCACHE_MEMO_MAX];
        char reply[RSPCACHE_MEMO_MAX];
        bool have;
    } memo[RSPCACHE_MEMO];
    unsigned long hits, misses, memo_hits, forwarded, invalidations, prefetches;
} rspcache_t;

void rspcache_init(rspcache_t *c, rspcache_out_fn to_gdb, void *gdb_ctx, rspcache_out_fn to_stub,
                   void *stub_ctx);

/* Bytes from gdb (any chunking): forwarded to the stub, or answered to gdb. */
void rspcache_from_gdb(rspcache_t *c, const uint8_t *data, size_t len);

/* Bytes from the stub (any chunking): forwarded to gdb, possibly narrowed to what gdb asked. */
void rspcache_from_stub(rspcache_t *c, const uint8_t *data, size_t len);

#endif /* KEEL_RSPCACHE_H */

/*
 * The device's offline log buffer: a bounded queue of log entries (the app's keel_log_write and
 * the microvisor's own events) waiting to reach the fleet service. Pure C, no locking and no
 * hardware: callers serialise (uv_net.c enters a critical section), and the host unit tests
 * drive it directly (tests/net/test_net_logq.c).
 *
 * Delivery (docs/protocol.md, LogBatch + Ack): the oldest entries go out as one batch with a
 * msg_id; they stay queued until the server acks that (boot, msg_id), and a batch resent after a
 * reconnect carries the same entries under the same msg_id, so the server stores each once.
 *
 *   head                                                  head + count
 *    | in flight (sent, not acked) | queued, not yet sent |   free   |
 *
 * When the queue is full, a new entry evicts the oldest entry that is *not* in flight (the
 * in-flight batch must stay byte-identical for its resend) and the drop is counted: the count
 * travels in the next batch (LogBatch.dropped) and in heartbeats, and the app hears of it
 * (KEEL_NOTIFY_LOG_DROPPED).
 */
#ifndef KEEL_MICROVISOR_NET_NET_LOGQ_H
#define KEEL_MICROVISOR_NET_NET_LOGQ_H

#include <stdbool.h>
#include <stdint.h>

#define NET_LOGQ_CAP 32u        /* entries: 32 x 256 B = 8 KiB of secure RAM */
#define NET_LOGQ_TEXT_MAX 240u  /* KEEL_LOG_MAX */
#define NET_LOGQ_BATCH_MAX 8u   /* LogBatch.entries max_count (proto/keel.options) */

typedef struct net_log_entry {
    uint64_t uptime_ms;
    uint8_t level;   /* keel_log_level_t */
    uint8_t source;  /* keel_v1_LogSource */
    uint8_t len;
    char text[NET_LOGQ_TEXT_MAX];
} net_log_entry_t;

typedef struct net_logq {
    net_log_entry_t e[NET_LOGQ_CAP];
    uint32_t head, count;
    uint32_t inflight;       /* entries of the batch in flight (0: none) */
    uint32_t inflight_id;    /* its msg_id */
    uint32_t inflight_drop;  /* the drop count it reports */
    uint32_t drop_pending;   /* dropped since the last batch was formed */
    uint32_t drop_total;     /* dropped since boot */
    uint32_t drop_notify;    /* dropped since the app was last told */
} net_logq_t;

/* Append one entry (text truncated to NET_LOGQ_TEXT_MAX); evicts and counts when full. */
void net_logq_put(net_logq_t *q, uint64_t uptime_ms, uint8_t level, uint8_t source,
                  const char *text, uint32_t len);

/* The i-th queued entry from the oldest (i < count). */
const net_log_entry_t *net_logq_at(const net_logq_t *q, uint32_t i);

/*
 * Mark the oldest n entries (n <= count, n <= NET_LOGQ_BATCH_MAX) as the batch msg_id in
 * flight; its drop count is taken from drop_pending. Only when nothing is in flight.
 */
void net_logq_begin(net_logq_t *q, uint32_t n, uint32_t msg_id);

/* The server stored batch msg_id: free its entries. False when msg_id is not the one in flight. */
bool net_logq_ack(net_logq_t *q, uint32_t msg_id);

#endif /* KEEL_MICROVISOR_NET_NET_LOGQ_H */

/* net_logq: see net_logq.h. */
#include "net_logq.h"

#include <string.h>

static net_log_entry_t *slot(net_logq_t *q, uint32_t i)
{
    return &q->e[(q->head + i) % NET_LOGQ_CAP];
}

const net_log_entry_t *net_logq_at(const net_logq_t *q, uint32_t i)
{
    return &q->e[(q->head + i) % NET_LOGQ_CAP];
}

/* Drop the oldest entry not in flight: the in-flight ones move up one slot over it. */
static void evict(net_logq_t *q)
{
    for (uint32_t i = q->inflight; i > 0u; i--)
        *slot(q, i) = *slot(q, i - 1u);
    q->head = (q->head + 1u) % NET_LOGQ_CAP;
    q->count--;
    q->drop_pending++;
    q->drop_total++;
    q->drop_notify++;
}

void net_logq_put(net_logq_t *q, uint64_t uptime_ms, uint8_t level, uint8_t source,
                  const char *text, uint32_t len)
{
    if (q->count == NET_LOGQ_CAP)
        evict(q);
    net_log_entry_t *e = slot(q, q->count);
    if (len > NET_LOGQ_TEXT_MAX)
        len = NET_LOGQ_TEXT_MAX;
    e->uptime_ms = uptime_ms;
    e->level = level;
    e->source = source;
    e->len = (uint8_t)len;
    memcpy(e->text, text, len);
    q->count++;
}

void net_logq_begin(net_logq_t *q, uint32_t n, uint32_t msg_id)
{
    if (q->inflight != 0u || n == 0u || n > q->count || n > NET_LOGQ_BATCH_MAX)
        return;
    q->inflight = n;
    q->inflight_id = msg_id;
    q->inflight_drop = q->drop_pending;
    q->drop_pending = 0u;
}

bool net_logq_ack(net_logq_t *q, uint32_t msg_id)
{
    if (q->inflight == 0u || msg_id != q->inflight_id)
        return false;
    q->head = (q->head + q->inflight) % NET_LOGQ_CAP;
    q->count -= q->inflight;
    q->inflight = 0u;
    q->inflight_drop = 0u;
    return true;
}

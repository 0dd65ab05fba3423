/*
 * linkmodel: what a device's network link does to its MQTT traffic: round-trip time, loss, a
 * rate limit, and (in fleetsim) outages. Applied per packet and direction: a packet of n bytes
 * is delivered rtt/2 after the direction is free, after (n + TLS record overhead) / rate of
 * transmission; a lost packet (TCP under it) arrives one retransmission timeout later and its
 * bytes cross the air twice. Devices pick one of a few profiles (per device or per group).
 */
#ifndef KEEL_FLEETSIM_LINKMODEL_H
#define KEEL_FLEETSIM_LINKMODEL_H

#include <stdbool.h>
#include <stdint.h>

#define LINK_PROFILES 8u
#define LINK_TLS_OVERHEAD 29u /* TLS 1.2 AES-GCM record: 5 header + 8 nonce + 16 tag */
#define LINK_RTO_MIN_MS 200u  /* Linux's minimum retransmission timeout */

typedef struct link_profile {
    uint32_t rtt_ms;
    uint32_t loss_ppm;   /* packets lost per million */
    uint32_t rate_bps;   /* bytes per second each way; 0: unlimited */
} link_profile_t;

/* "rtt=MS,loss=FRACTION,rate=BYTES_PER_S" (any subset; "none" = all zero). */
bool link_parse(const char *spec, link_profile_t *out);

bool link_active(const link_profile_t *p);

/*
 * The delivery time of a packet of n bytes sent at now in a direction busy until *free_ms
 * (updated). *lost: it was lost once and retransmitted. rng: xorshift32 state.
 */
uint64_t link_deliver(const link_profile_t *p, uint64_t now, uint64_t *free_ms, uint32_t n,
                      uint32_t *rng, bool *lost);

#endif /* KEEL_FLEETSIM_LINKMODEL_H */

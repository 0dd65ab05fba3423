/* linkmodel: see linkmodel.h. */
#include "linkmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool link_parse(const char *spec, link_profile_t *out)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(spec, "none") == 0) {
        return true;
    }
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '='), *end = NULL;
        if (eq == NULL) {
            return false;
        }
        *eq = '\0';
        double v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end != '\0' || v < 0) {
            return false;
        }
        if (strcmp(kv, "rtt") == 0 && v <= 600000) {
            out->rtt_ms = (uint32_t)v;
        } else if (strcmp(kv, "loss") == 0 && v < 1.0) {
            out->loss_ppm = (uint32_t)(v * 1e6);
        } else if (strcmp(kv, "rate") == 0 && v <= 4e9) {
            out->rate_bps = (uint32_t)v;
        } else {
            return false;
        }
    }
    return true;
}

bool link_active(const link_profile_t *p)
{
    return p->rtt_ms != 0 || p->loss_ppm != 0 || p->rate_bps != 0;
}

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

uint64_t link_deliver(const link_profile_t *p, uint64_t now, uint64_t *free_ms, uint32_t n,
                      uint32_t *rng, bool *lost)
{
    uint64_t start = *free_ms > now ? *free_ms : now;
    uint64_t tx = p->rate_bps ? ((uint64_t)n + LINK_TLS_OVERHEAD) * 1000u / p->rate_bps : 0;
    *lost = p->loss_ppm != 0 && next(rng) % 1000000u < p->loss_ppm;
    *free_ms = start + tx * (*lost ? 2u : 1u);
    uint64_t rto = p->rtt_ms * 2u > LINK_RTO_MIN_MS ? p->rtt_ms * 2u : LINK_RTO_MIN_MS;
    return *free_ms + p->rtt_ms / 2u + (*lost ? rto : 0u);
}

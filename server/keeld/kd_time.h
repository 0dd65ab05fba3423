/* keeld's clocks: wall time (what the store and the API show) and monotonic time (intervals). */
#ifndef KEEL_SERVER_KEELD_KD_TIME_H
#define KEEL_SERVER_KEELD_KD_TIME_H

#include <stdint.h>
#include <time.h>

/* Unix time, ms. */
static inline int64_t kd_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic, µs (intervals, lags). */
static inline int64_t kd_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif /* KEEL_SERVER_KEELD_KD_TIME_H */

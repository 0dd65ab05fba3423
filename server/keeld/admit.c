/* keeld download admission: a token bucket for offers, a cap on downloads (admit.h). */
#include "admit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "kd_log.h"
#include "kd_time.h"

#define TICK_MS 200      /* look at least this often (and at once when woken) */
#define LOOK_MAX 1000    /* rows taken per look */

struct admit {
    store_t *store;
    ota_t *ota;
    double rate;             /* offers per second */
    int64_t max_downloads;
    int64_t idle_ms;         /* a download quiet this long no longer holds a slot */
    pthread_t thread;
    atomic_bool stopping;
    atomic_uint_fast64_t offered;
    atomic_int_fast64_t pending, downloading;
};

/* One look: how many may start now, and offer to that many. Returns the offers made. */
static int64_t look(admit_t *a, double *tokens)
{
    store_update_counts_t c;

    if (a->store->ops->updates_counts(a->store, kd_wall_ms() - a->idle_ms, &c) != STORE_OK) {
        return 0;
    }
    atomic_store(&a->pending, c.pending);
    atomic_store(&a->downloading, c.downloading);
    int64_t n = (int64_t)*tokens;
    if (n > a->max_downloads - c.downloading) {
        n = a->max_downloads - c.downloading;
    }
    if (n > LOOK_MAX) {
        n = LOOK_MAX;
    }
    if (n <= 0 || c.pending == 0) {
        return 0;
    }
    json_t *rows = NULL;
    if (a->store->ops->updates_admissible(a->store, (int)n, &rows) != STORE_OK) {
        return 0;
    }
    size_t i;
    json_t *r;
    int64_t done = 0;
    /* One transaction for the look's offers (one commit, not one per device). An offer whose row
     * did not commit stays pending and is offered again: offers are idempotent (P2). */
    bool batched = a->store->ops->batch_begin(a->store) == STORE_OK;
    json_array_foreach(rows, i, r) {
        if (atomic_load(&a->stopping)) {
            break;
        }
        ota_admit(a->ota, json_string_value(json_object_get(r, "device")));
        done++;
    }
    if (batched) {
        a->store->ops->batch_end(a->store, true);
    }
    json_decref(rows);
    *tokens -= (double)done;
    atomic_fetch_add(&a->offered, (uint64_t)done);
    return done;
}

static void *run(void *arg)
{
    admit_t *a = arg;
    double tokens = 0;
    int64_t last = kd_mono_us() / 1000;
    uint64_t seen = ota_admission_gen(a->ota);

    while (!atomic_load(&a->stopping)) {
        int64_t now = kd_mono_us() / 1000;
        /* The bucket refills at the rate and holds at most one second of it (no burst later for
         * time nobody was waiting). */
        tokens += a->rate * (double)(now - last) / 1000.0;
        if (tokens > (a->rate < 1 ? 1 : a->rate)) {
            tokens = a->rate < 1 ? 1 : a->rate;
        }
        last = now;
        look(a, &tokens);
        seen = ota_admission_wait(a->ota, seen, TICK_MS);
    }
    return NULL;
}

admit_t *admit_start(const kd_config_t *cfg, store_t *store, ota_t *ota)
{
    admit_t *a = calloc(1, sizeof(*a));

    if (a == NULL) {
        return NULL;
    }
    a->store = store;
    a->ota = ota;
    a->rate = (double)cfg->offer_rate;
    a->max_downloads = cfg->max_downloads;
    a->idle_ms = cfg->download_idle_s * 1000;
    atomic_init(&a->stopping, false);
    atomic_init(&a->offered, 0);
    atomic_init(&a->pending, 0);
    atomic_init(&a->downloading, 0);
    if (pthread_create(&a->thread, NULL, run, a) != 0) {
        free(a);
        return NULL;
    }
    KD_INFO("download admission: at most %ld offers/s, %ld devices downloading at once",
            cfg->offer_rate, cfg->max_downloads);
    return a;
}

void admit_stop(admit_t *a)
{
    if (a == NULL) {
        return;
    }
    atomic_store(&a->stopping, true);
    ota_admission_kick(a->ota);
    pthread_join(a->thread, NULL);
    free(a);
}

void admit_get_stats(admit_t *a, admit_stats_t *out)
{
    out->offered = atomic_load(&a->offered);
    out->pending = atomic_load(&a->pending);
    out->downloading = atomic_load(&a->downloading);
}

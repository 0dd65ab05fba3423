/* keeld's Prometheus exposition (metrics.h). */
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ingest.h"

static void metric(FILE *f, const char *name, const char *type, const char *help, double v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static double seconds_of_us(int64_t us)
{
    return (double)us / 1e6;
}

/* The store's answer time for a small fleet-wide read (with the ingest batch it may wait for). */
static void store_gauges(FILE *f, store_t *store)
{
    struct timespec t0, t1;
    store_fleet_counts_t c;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    store_rc_t rc = store->ops->fleet_counts(store, &c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double lat = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    metric(f, "keeld_store_read_seconds", "gauge",
           "time this scrape's fleet-count query took (includes waiting for an ingest batch)", lat);
    metric(f, "keeld_store_up", "gauge", "1 when the store answered this scrape's query", rc == STORE_OK);
    if (rc != STORE_OK) {
        return;
    }
    metric(f, "keeld_devices", "gauge", "devices in the registry", (double)c.devices);
    metric(f, "keeld_devices_connected", "gauge", "devices whose presence is online", (double)c.online);
    fprintf(f, "# HELP keeld_deployment_bytes_sent bundle bytes served per deployment (newest %d)\n"
               "# TYPE keeld_deployment_bytes_sent gauge\n", STORE_FLEET_DEPLOYMENTS);
    for (int i = 0; i < c.ndeployments; i++) {
        fprintf(f, "keeld_deployment_bytes_sent{deployment=\"%" PRId64 "\"} %" PRId64 "\n",
                c.deployments[i].id, c.deployments[i].bytes_sent);
    }
    fprintf(f, "# HELP keeld_deployment_devices devices per deployment and phase (newest %d)\n"
               "# TYPE keeld_deployment_devices gauge\n", STORE_FLEET_DEPLOYMENTS);
    for (int i = 0; i < c.ndeployments; i++) {
        static const char *const phase[] = {"pending", "offered", "done", "superseded"};
        for (int p = 0; p < 4; p++) {
            fprintf(f, "keeld_deployment_devices{deployment=\"%" PRId64 "\",phase=\"%s\"} %" PRId64 "\n",
                    c.deployments[i].id, phase[p], c.deployments[i].phase[p]);
        }
    }
}

char *metrics_render(store_t *store, mq_t *mq, ota_t *ota, admit_t *admit, size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mq_health_t h;
    mq_counters_t m;
    ingest_stats_t q;
    admit_stats_t a;
    uint64_t chunks = 0, chunk_bytes = 0, chunk_dups = 0;

    if (f == NULL) {
        return NULL;
    }
    mq_health(mq, &h);
    mq_get_counters(mq, &m, &q);
    ota_counters(ota, &chunks, &chunk_bytes, &chunk_dups);
    admit_get_stats(admit, &a);

    metric(f, "keeld_mqtt_connected", "gauge", "1 while connected to the broker with every subscription", h.connected);
    metric(f, "keeld_mqtt_reconnects_total", "counter", "network-loop restarts after a broker error", h.reconnects);
    metric(f, "keeld_mqtt_messages_received_total", "counter", "MQTT messages from devices", (double)m.msgs_in);
    metric(f, "keeld_mqtt_messages_sent_total", "counter", "MQTT messages keeld published", (double)m.msgs_out);
    metric(f, "keeld_mqtt_received_bytes_total", "counter", "payload bytes from devices", (double)m.bytes_in);
    metric(f, "keeld_mqtt_sent_bytes_total", "counter", "payload bytes keeld published", (double)m.bytes_out);

    metric(f, "keeld_ingest_queue_depth", "gauge", "device messages waiting for the database worker", (double)q.depth);
    metric(f, "keeld_ingest_queue_capacity", "gauge", "--ingest-queue", (double)q.capacity);
    metric(f, "keeld_ingest_queue_oldest_seconds", "gauge", "age of the oldest queued message (queue lag)",
           seconds_of_us(q.oldest_age_us));
    metric(f, "keeld_ingest_last_lag_seconds", "gauge", "queue time of the last message handled",
           seconds_of_us(q.last_lag_us));
    metric(f, "keeld_ingest_messages_total", "counter", "device messages handled by the worker", (double)q.handled);
    metric(f, "keeld_ingest_full_waits_total", "counter",
           "times the queue was full and keeld stopped reading from the broker (back-pressure)", (double)q.full_waits);
    metric(f, "keeld_ingest_full_wait_seconds_total", "counter", "time spent waiting for room in the queue",
           seconds_of_us((int64_t)q.full_wait_us));
    metric(f, "keeld_store_commits_total", "counter", "ingest batches committed (group commits)", (double)m.commits);
    metric(f, "keeld_store_commit_failures_total", "counter", "ingest batches whose commit failed", (double)m.commit_failures);
    metric(f, "keeld_ingest_batches_total", "counter", "ingest batches handled", (double)q.batches);
    metric(f, "keeld_ingest_batch_seconds_total", "counter", "worker time in batches (store latency: divide by batches)",
           seconds_of_us((int64_t)m.batch_us));

    metric(f, "keeld_ota_chunks_served_total", "counter", "UpdateChunks sent", (double)chunks);
    metric(f, "keeld_ota_chunk_bytes_total", "counter", "bundle bytes sent in UpdateChunks", (double)chunk_bytes);
    metric(f, "keeld_ota_fetch_duplicates_total", "counter",
           "UpdateFetches not answered: the chunk was sent after the device asked (already on its way)",
           (double)chunk_dups);
    metric(f, "keeld_admission_offers_total", "counter", "devices given their turn by download admission", (double)a.offered);
    metric(f, "keeld_admission_pending", "gauge", "deployment rows waiting for their turn", (double)a.pending);
    metric(f, "keeld_admission_downloading", "gauge", "devices downloading now (admission slots in use)", (double)a.downloading);

    store_gauges(f, store);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *out_len = len;
    return buf;
}

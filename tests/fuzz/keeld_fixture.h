/*
 * keeld in one process for its fuzz targets: the real store (SQLite, on tmpfs when there is one),
 * OTA, debug relay, MQTT ingest (server/keeld/mqtt.c, with no broker connection: publishes fail
 * and are logged, as when the broker is down) and the REST API listening on 127.0.0.1:<any port>.
 * One API token and one known device ("dev-1", said hello) exist from the start.
 */
#ifndef KEEL_TESTS_FUZZ_KEELD_FIXTURE_H
#define KEEL_TESTS_FUZZ_KEELD_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#define FZ_KEELD_TOKEN "keel_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FZ_KEELD_DEVICE "dev-1"

/* Start keeld once per process (later calls return at once); returns the HTTP port. */
unsigned fz_keeld_start(void);
/* Hand one MQTT message to keeld's ingest, as libmosquitto's callback would. */
void fz_keeld_mqtt(const char *topic, const uint8_t *payload, size_t len);

#endif /* KEEL_TESTS_FUZZ_KEELD_FIXTURE_H */

/*
 * keeld's memory of the chunks it sent: a fetch the device asked again only because keeld's
 * answer was still on its way is not answered twice (protocol.md P3, docs/fleet-service.md
 * "Duplicate fetches").
 *
 * A device re-asks a chunk when no answer came within its timeout (2 s at first). When keeld is
 * slower than that (a burst queued in the ingest queue), the device's first ask and its re-asks
 * all wait in the queue together; answering each would send the same chunk two or three times.
 * The rule: a fetch is a duplicate when keeld sent that chunk (device, deployment, offset,
 * length) after the fetch reached keeld, or up to grace_us before (the answer was in flight in
 * the broker when the device asked again), and on the device's current connection (after its
 * last hello reached keeld: a chunk sent to a connection that dropped may be lost). Anything
 * else is answered, so a chunk that really was lost is sent again at the device's next re-ask.
 *
 * Fixed memory, no allocation per chunk: two direct-mapped tables of 64-bit key hashes. A slot
 * overwritten by another key only forgets (the fetch is answered, as without this memo); a false
 * match needs a 64-bit hash collision. Thread-safe.
 */
#ifndef KEEL_SERVER_KEELD_CHUNKMEMO_H
#define KEEL_SERVER_KEELD_CHUNKMEMO_H

#include <stdbool.h>
#include <stdint.h>

typedef struct chunkmemo chunkmemo_t;

/* slots: rounded up to a power of two (each 16 bytes, per table). NULL when out of memory. */
chunkmemo_t *chunkmemo_new(uint32_t slots, int64_t grace_us);
void chunkmemo_free(chunkmemo_t *m);

/* The device's hello reached keeld at at_us (monotonic µs): it is on a new connection (or, after
 * a delta fallback, fetches another bundle): chunks sent before answer none of its fetches. */
void chunkmemo_hello(chunkmemo_t *m, const char *device, int64_t at_us);

/* Whether a fetch that reached keeld at received_us is answered by a chunk already sent. */
bool chunkmemo_is_duplicate(chunkmemo_t *m, const char *device, uint64_t deployment,
                            uint32_t offset, uint32_t length, int64_t received_us);

/* keeld sent the chunk at sent_us. */
void chunkmemo_sent(chunkmemo_t *m, const char *device, uint64_t deployment, uint32_t offset,
                    uint32_t length, int64_t sent_us);

#endif /* KEEL_SERVER_KEELD_CHUNKMEMO_H */

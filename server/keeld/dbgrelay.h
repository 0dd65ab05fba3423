/*
 * keeld's debug relay (docs/debug.md "Transport", docs/api.md "Debug sessions"): the registry of
 * open debug streams, one per (device, session), each with a bounded queue of the device's
 * Debug messages (debug/up) waiting for the client's server-sent-event stream.
 *
 * keeld never decrypts anything here: frames are sealed end to end between `keel debug` and the
 * microvisor. It only routes by (device, session); the device id comes from the MQTT topic, which
 * the broker's ACL ties to the device's certificate, so a device can never feed another device's
 * session.
 *
 * Threads: dbgrelay_deliver() and dbgrelay_device_offline() run on the MQTT thread, a stream's
 * wait/next on its HTTP connection thread. One mutex guards the registry and every queue; a
 * stream's wake-up is a pipe so its thread can poll the pipe and its HTTP socket together (and so
 * notice a client that went away at once, not at the next keep-alive).
 */
#ifndef KEEL_SERVER_KEELD_DBGRELAY_H
#define KEEL_SERVER_KEELD_DBGRELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/kproto.h"

#define DBGRELAY_STREAMS_MAX 32u /* open debug sessions per keeld */
#define DBGRELAY_QUEUE 64u       /* messages buffered per session before it is ended */

typedef struct dbgrelay dbgrelay_t;
typedef struct dbgrelay_stream dbgrelay_stream_t;

dbgrelay_t *dbgrelay_new(void);
/* Every stream must have been detached. */
void dbgrelay_free(dbgrelay_t *r);

typedef enum dbgrelay_attach_rc {
    DBGRELAY_OK = 0,
    DBGRELAY_BUSY,   /* that (device, session) already has a stream */
    DBGRELAY_FULL,   /* DBGRELAY_STREAMS_MAX streams are open */
    DBGRELAY_NOMEM,
} dbgrelay_attach_rc_t;

/* Register a stream for (device, session); *out is valid until dbgrelay_detach(). */
dbgrelay_attach_rc_t dbgrelay_attach(dbgrelay_t *r, const char *device, uint64_t session,
                                     dbgrelay_stream_t **out);

/*
 * The next message for the stream, waiting up to timeout_ms, and also watching sock_fd (the
 * client's HTTP connection, -1 for none) for a hang-up. Returns:
 *   1  a message (encoded Debug bytes in out, *out_len; cap >= KPROTO_DEBUG_MAX),
 *   0  nothing yet (timeout),
 *  -1  the stream is over: the client hung up, the device closed the session, went offline, or
 *      the queue overflowed. *reason says which (static text).
 * A queued device close is delivered (1) before -1 is reported.
 */
int dbgrelay_next(dbgrelay_stream_t *s, int sock_fd, int timeout_ms, uint8_t *out, size_t cap,
                  size_t *out_len, const char **reason);

/*
 * Unregister and free the stream. Returns true when the device may still think the session open
 * (it did not close it itself and did not go offline): the caller then sends it a DebugClose.
 * *out_device / *out_session (may be NULL) get the stream's identity for that.
 */
bool dbgrelay_detach(dbgrelay_t *r, dbgrelay_stream_t *s, char out_device[KIDENT_ID_MAX + 1],
                     uint64_t *out_session);

/* MQTT thread: a Debug message from device on debug/up. Dropped when no stream of this keeld
 * waits for its session (another keeld instance may hold it). */
void dbgrelay_deliver(dbgrelay_t *r, const char *device, const keel_v1_Debug *d);

/* MQTT thread: the device's presence went offline; every stream of it ends. */
void dbgrelay_device_offline(dbgrelay_t *r, const char *device);

#endif /* KEEL_SERVER_KEELD_DBGRELAY_H */

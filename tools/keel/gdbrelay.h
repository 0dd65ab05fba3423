/*
 * The local gdb relay of `keel device run --gdb-serial PORT` (docs/debug.md, "Round trips"):
 * gdb connects to 127.0.0.1:PORT here; the relay connects to QEMU's UART2 socket on an internal
 * port and passes the bytes through keel/rspcache.h, which answers gdb's repeated memory reads
 * between two resumes without a round trip to the stub. One gdb at a time, one thread.
 */
#ifndef KEEL_TOOLS_GDBRELAY_H
#define KEEL_TOOLS_GDBRELAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct gdbrelay {
    const char *prog;
    int listen_fd;
    uint16_t qemu_port;   /* where QEMU's UART2 listens: give it to qrun */
    volatile int stop;
    pthread_t thread;
    bool running;
} gdbrelay_t;

/* Listen on 127.0.0.1:port and pick QEMU's internal port; start the thread. False (printed) if
 * the port is taken or no thread could start. */
bool gdbrelay_start(gdbrelay_t *r, const char *prog, uint16_t port);

/* Stop the thread, close every socket. */
void gdbrelay_stop(gdbrelay_t *r);

#endif /* KEEL_TOOLS_GDBRELAY_H */

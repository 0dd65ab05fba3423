/* `keel relay PORT`: one guest connection of QEMU's broker forward (see relay.c). */
#ifndef KEEL_TOOLS_KEEL_RELAY_H
#define KEEL_TOOLS_KEEL_RELAY_H

#include <stdint.h>

/* argv: the words after "relay". Returns a CLI_EXIT_* code. */
int relay_main(int argc, char **argv);

/* Connected socket to 127.0.0.1:port (TCP_NODELAY) or to a Unix socket path; -1 and a message
 * "prog: ..." on stderr when it cannot connect (bounded). */
int relay_dial_tcp(const char *prog, uint32_t port);
int relay_dial_unix(const char *prog, const char *path);

/* Copy a_in -> b and b -> a_out until either side closes. */
void relay_join(int a_in, int a_out, int b);

/* In a child just forked for an accepted connection: join it to unix_path (if not NULL) or to
 * 127.0.0.1:tcp_port, then _exit. Dies with its parent. */
__attribute__((noreturn)) void relay_forward(int accepted, const char *unix_path, uint32_t tcp_port);

#endif /* KEEL_TOOLS_KEEL_RELAY_H */

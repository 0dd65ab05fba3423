/* `keel relay PORT`: one guest connection of QEMU's broker forward (see relay.c). */
#ifndef KEEL_TOOLS_KEEL_RELAY_H
#define KEEL_TOOLS_KEEL_RELAY_H

/* argv: the words after "relay". Returns a CLI_EXIT_* code. */
int relay_main(int argc, char **argv);

#endif /* KEEL_TOOLS_KEEL_RELAY_H */

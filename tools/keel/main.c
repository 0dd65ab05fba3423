/* keel: the Keel host CLI. `keel <command> <subcommand> [options]`; see cli.h. */
#include <stdio.h>
#include <string.h>

#include "keel/board.h"

#include "cli.h"
#include "cmd.h"
#include "relay.h"

int main(int argc, char **argv)
{
    /* Line-buffered even into a pipe: tests and tools read device consoles live. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* `keel relay PORT` is run by QEMU, not typed: a bare command outside the noun/verb tree. */
    if (argc >= 2 && strcmp(argv[1], "relay") == 0)
        return relay_main(argc - 2, argv + 2);
    /* --board NAME, anywhere: the board of the devices this command makes, runs or builds for. */
    if (kboard_take_option("keel", &argc, argv) == NULL)
        return CLI_EXIT_USAGE;
    const cli_noun_t nouns[] = {cmd_device, cmd_up,      cmd_down,    cmd_devices, cmd_logs,
                                 cmd_crashes, cmd_crash, cmd_ping, cmd_restart, cmd_reboot,
                                 cmd_token, cmd_channel, cmd_elf, cmd_keys, cmd_bundle,
                                 cmd_deploy, cmd_rollout, cmd_debug};
    return cli_dispatch(nouns, sizeof nouns / sizeof nouns[0], argc, argv);
}

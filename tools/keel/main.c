/* keel: the Keel host CLI. `keel <command> <subcommand> [options]`; see cli.h. */
#include <stdio.h>

#include "cli.h"
#include "cmd.h"

int main(int argc, char **argv)
{
    /* Line-buffered even into a pipe: tests and tools read device consoles live. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const cli_noun_t nouns[] = {cmd_device, cmd_up,      cmd_down,    cmd_devices, cmd_logs,
                                 cmd_crashes, cmd_crash, cmd_ping, cmd_restart, cmd_reboot,
                                 cmd_token};
    return cli_dispatch(nouns, sizeof nouns / sizeof nouns[0], argc, argv);
}

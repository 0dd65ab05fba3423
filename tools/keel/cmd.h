/* keel CLI: the command families (nouns). Each lives in its own cmd_<noun>.c. */
#ifndef KEEL_TOOLS_KEEL_CMD_H
#define KEEL_TOOLS_KEEL_CMD_H

#include "cli.h"

extern const cli_noun_t cmd_device;

#endif /* KEEL_TOOLS_KEEL_CMD_H */

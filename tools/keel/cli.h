/*
 * keel CLI: the subcommand dispatcher and argument helpers shared by every command family.
 *
 * Shape: `keel <noun> <verb> [options]`. A noun is a table of verbs; a verb is a function that
 * parses its own options with getopt_long. A noun can also be a command on its own (`keel devices`,
 * `keel up`): then it has a run function instead of verbs. Every level answers --help on stdout with exit 0.
 * Exit codes are the same for every command: CLI_EXIT_OK, CLI_EXIT_FAIL when the operation
 * failed (message on stderr), CLI_EXIT_USAGE when the command line is wrong (message on stderr
 * plus a hint to --help).
 */
#ifndef KEEL_TOOLS_KEEL_CLI_H
#define KEEL_TOOLS_KEEL_CLI_H

#include <stdint.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/*
 * A verb. prog is the full command for messages ("keel device run"); argv[0] is the verb name,
 * options follow. Returns a CLI_EXIT_* code.
 */
typedef int (*cli_verb_fn)(const char *prog, int argc, char **argv);

typedef struct cli_verb {
    const char *name;
    const char *summary; /* one line for the noun's --help */
    cli_verb_fn run;
} cli_verb_t;

typedef struct cli_noun {
    const char *name;
    const char *summary; /* one line for keel --help */
    const cli_verb_t *verbs;
    unsigned nverbs;
    cli_verb_fn run; /* a command on its own: argv[0] is the noun, no verbs (verbs is NULL) */
} cli_noun_t;

/* Run `keel <noun> <verb> ...` (argv[0] is the program name). Returns a CLI_EXIT_* code. */
int cli_dispatch(const cli_noun_t *nouns, unsigned nnouns, int argc, char **argv);

/* Print "prog: <message>" and the --help hint to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "prog: <message>" to stderr; returns CLI_EXIT_FAIL. */
int cli_fail(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Report getopt_long's verdict on the option it just rejected (c is '?' or ':'), from
 * argv[optind - 1] and optopt. Returns CLI_EXIT_USAGE.
 */
int cli_bad_option(const char *prog, int c, char **argv);

/*
 * Parse a decimal number in [min, max] given to option opt. On a bad value prints a usage error
 * naming the option and the range and returns false.
 */
_Bool cli_parse_u32(const char *prog, const char *opt, const char *s, uint32_t min, uint32_t max,
                    uint32_t *out);

#endif /* KEEL_TOOLS_KEEL_CLI_H */

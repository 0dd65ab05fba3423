/* keel CLI dispatcher: see cli.h. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/board.h"

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

static void print_top_help(FILE *out, const cli_noun_t *nouns, unsigned nnouns)
{
    fprintf(out, "usage: keel <command> <subcommand> [options]\n\n"
                 "Keel host tool: emulated devices, the local fleet stack, and keeld's fleet API.\n\n"
                 "commands:\n");
    for (unsigned i = 0; i < nnouns; i++)
        fprintf(out, "  %-10s %s\n", nouns[i].name, nouns[i].summary);
    fprintf(out, "\nboards (--board NAME, anywhere on the line; the default is marked *):\n");
    unsigned nb = 0;
    const kboard_t *const *boards = kboard_all(&nb);
    for (unsigned i = 0; i < nb; i++)
        fprintf(out, "  %-9s%c %s\n", boards[i]->name, boards[i] == kboard_default() ? '*' : ' ',
                boards[i]->summary);
    fprintf(out, "\nRun 'keel <command> --help' for its subcommands or options.\n"
                 "Exit status: 0 success, 1 the operation failed, 2 usage error.\n");
}

static void print_noun_help(FILE *out, const cli_noun_t *noun)
{
    fprintf(out, "usage: keel %s <subcommand> [options]\n\n%s\n\nsubcommands:\n", noun->name,
            noun->summary);
    for (unsigned i = 0; i < noun->nverbs; i++)
        fprintf(out, "  %-10s %s\n", noun->verbs[i].name, noun->verbs[i].summary);
    fprintf(out, "\nRun 'keel %s <subcommand> --help' for its options.\n", noun->name);
}

static int run_noun(const cli_noun_t *noun, int argc, char **argv)
{
    char prog[96];
    snprintf(prog, sizeof prog, "keel %s", noun->name);
    if (argc < 1) {
        print_noun_help(stderr, noun);
        return CLI_EXIT_USAGE;
    }
    if (is_help(argv[0])) {
        print_noun_help(stdout, noun);
        return CLI_EXIT_OK;
    }
    for (unsigned i = 0; i < noun->nverbs; i++) {
        if (strcmp(argv[0], noun->verbs[i].name) == 0) {
            char verb_prog[128];
            snprintf(verb_prog, sizeof verb_prog, "%s %s", prog, noun->verbs[i].name);
            /* optind = 0 makes glibc's getopt_long start afresh for this argv. */
            optind = 0;
            opterr = 0;
            return noun->verbs[i].run(verb_prog, argc, argv);
        }
    }
    return cli_usage_error(prog, "unknown subcommand '%s'", argv[0]);
}

int cli_dispatch(const cli_noun_t *nouns, unsigned nnouns, int argc, char **argv)
{
    if (argc < 2) {
        print_top_help(stderr, nouns, nnouns);
        return CLI_EXIT_USAGE;
    }
    if (is_help(argv[1])) {
        print_top_help(stdout, nouns, nnouns);
        return CLI_EXIT_OK;
    }
    for (unsigned i = 0; i < nnouns; i++) {
        if (strcmp(argv[1], nouns[i].name) != 0)
            continue;
        if (nouns[i].run != NULL) {
            char prog[96];
            snprintf(prog, sizeof prog, "keel %s", nouns[i].name);
            optind = 0;
            opterr = 0;
            return nouns[i].run(prog, argc - 1, argv + 1);
        }
        return run_noun(&nouns[i], argc - 2, argv + 2);
    }
    return cli_usage_error("keel", "unknown command '%s'", argv[1]);
}

static void vmessage(const char *prog, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(prog, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help'.\n", prog);
    return CLI_EXIT_USAGE;
}

int cli_fail(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(prog, fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

int cli_bad_option(const char *prog, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        return cli_usage_error(prog, "option '%s' needs a value", arg);
    if (optopt != 0)
        return cli_usage_error(prog, "unknown option '-%c'", optopt);
    return cli_usage_error(prog, "unknown or ambiguous option '%s'", arg);
}

bool cli_parse_u32(const char *prog, const char *opt, const char *s, uint32_t min, uint32_t max,
                   uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max) {
        cli_usage_error(prog, "%s wants a whole number from %lu to %lu, not '%s'", opt,
                        (unsigned long)min, (unsigned long)max, s);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

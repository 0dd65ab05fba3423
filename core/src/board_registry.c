/*
 * The host tools' board registry (keel/board.h): every board under firmware/platform/, listed by
 * the build (boards_gen.h, written by cmake/keel_boards.cmake from each board's board.cmake), and
 * the --board option every host tool takes.
 */
#include "keel/board.h"

#include <stdio.h>
#include <string.h>

#include "boards_gen.h" /* KBOARD_EXTERNS, KBOARD_LIST, KBOARD_DEFAULT */

KBOARD_EXTERNS

static const kboard_t *const boards[] = {KBOARD_LIST};
static const kboard_t *selected = &KBOARD_DEFAULT;

const kboard_t *kboard_find(const char *name)
{
    for (size_t i = 0; i < sizeof boards / sizeof boards[0]; i++) {
        if (strcmp(boards[i]->name, name) == 0)
            return boards[i];
    }
    return NULL;
}

const kboard_t *const *kboard_all(unsigned *out_n)
{
    *out_n = (unsigned)(sizeof boards / sizeof boards[0]);
    return boards;
}

const kboard_t *kboard_default(void)
{
    return &KBOARD_DEFAULT;
}

const kboard_t *kboard_host(void)
{
    return selected;
}

const kboard_t *kboard_take_option(const char *prog, int *argc, char **argv)
{
    const char *name = NULL;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "--board") == 0 && i + 1 < *argc) {
            name = argv[++i];
        } else if (strncmp(argv[i], "--board=", 8) == 0) {
            name = argv[i] + 8;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    argv[out] = NULL;
    if (name == NULL)
        return selected;
    const kboard_t *b = kboard_find(name);
    if (b == NULL) {
        fprintf(stderr, "%s: unknown board '%s' (known:", prog, name);
        for (size_t i = 0; i < sizeof boards / sizeof boards[0]; i++)
            fprintf(stderr, " %s", boards[i]->name);
        fprintf(stderr, ")\n");
        return NULL;
    }
    return selected = b;
}

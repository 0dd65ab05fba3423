/* Boards and the bundles they install (devtype.h). */
#include "devtype.h"

#include <stdio.h>
#include <string.h>

#include "layout.h" /* firmware/platform/an505: AN505_DEVICE_TYPE */

/* Every board a hello may name. "sim" is the simulated device (simdev, fleetsim): an AN505 in
 * everything its update engine checks. */
static const struct {
    const char *board;
    uint32_t device_type;
} boards[] = {
    {"an505", AN505_DEVICE_TYPE},
    {"sim", AN505_DEVICE_TYPE},
};

uint32_t devtype_of_board(const char *board)
{
    for (size_t i = 0; board != NULL && i < sizeof(boards) / sizeof(boards[0]); i++) {
        if (strcmp(board, boards[i].board) == 0) {
            return boards[i].device_type;
        }
    }
    return 0;
}

unsigned devtype_refuse(store_t *s, int64_t device_type, const char *kind, const char *target,
                        char *why, size_t cap)
{
    json_t *rows = NULL;

    if (s->ops->target_boards(s, kind, target, &rows) != STORE_OK) {
        snprintf(why, cap, "the database failed (see keeld's log); retry");
        return 503;
    }
    size_t i, len = 0;
    json_t *r;
    int64_t total = 0;
    bool possible = json_array_size(rows) == 0; /* no device: the caller says so */
    char seen[256] = "";
    json_array_foreach(rows, i, r) {
        const char *board = json_string_value(json_object_get(r, "board"));
        int64_t n = json_integer_value(json_object_get(r, "devices"));
        uint32_t t = devtype_of_board(board);
        total += n;
        possible = possible || t == 0 || (int64_t)t == device_type;
        if (len < sizeof(seen)) {
            len += (size_t)snprintf(seen + len, sizeof(seen) - len, "%s%lld %s (0x%x)", len ? ", " : "",
                                    (long long)n, board && board[0] ? board : "?", (unsigned)t);
        }
    }
    json_decref(rows);
    if (possible) {
        return 0;
    }
    snprintf(why, cap, "the bundle is built for device type 0x%llx, which none of the %lld targeted "
                       "devices can install: they are %s; build it with keel bundle build --device-type "
                       "for their board", (unsigned long long)device_type, (long long)total, seen);
    return 422;
}

/* Devices and the bundles they can install (devtype.h). */
#include "devtype.h"

#include <stdio.h>
#include <string.h>

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
        uint32_t t = (uint32_t)json_integer_value(json_object_get(r, "device_type"));
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

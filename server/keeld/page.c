/* Cursor pagination of REST listings (page.h). */
#include "page.h"

json_t *page_next(json_t *rows, int limit, const char *cursor_field)
{
    size_t n = json_array_size(rows);

    if (limit > 0 && n == (size_t)limit) {
        json_t *cur = json_object_get(json_array_get(rows, n - 1), cursor_field);
        return cur ? json_deep_copy(cur) : json_null();
    }
    return json_null();
}

json_t *page_wrap(const char *name, json_t *rows, int limit, const char *cursor_field)
{
    if (rows == NULL) {
        return NULL;
    }
    return json_pack("{s:o, s:o}", name, rows, "next", page_next(rows, limit, cursor_field));
}

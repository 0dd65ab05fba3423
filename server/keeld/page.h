/*
 * Cursor pagination of the REST listings (docs/api.md "Pages"): a listing returns at most
 * `limit` rows in a stable order and "next", the cursor to pass back (as `after`, or `before` for
 * listings that run newest first) for the following page, or null when this page is the last.
 * Cursors are row keys (a device id, a crash id), never offsets, so rows added or removed
 * between two pages neither repeat nor skip others.
 */
#ifndef KEEL_SERVER_KEELD_PAGE_H
#define KEEL_SERVER_KEELD_PAGE_H

#include <jansson.h>

/* The cursor_field of the last row when rows is a full page of limit (limit > 0), else null
 * (a new reference). */
json_t *page_next(json_t *rows, int limit, const char *cursor_field);

/* {"<name>": rows, "next": the cursor_field of the last row when the page is full, else null}.
 * Takes rows (NULL gives NULL). */
json_t *page_wrap(const char *name, json_t *rows, int limit, const char *cursor_field);

#endif /* KEEL_SERVER_KEELD_PAGE_H */

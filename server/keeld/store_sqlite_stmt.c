/*
 * SQLite backend: prepared statements kept for reuse (store_sqlite_priv.h). keeld runs the same
 * few dozen statements for every device message; compiling each again (sqlite3_prepare) was
 * about a quarter of keeld's CPU in a 1,000-device rollout. A statement is found by the address
 * of its SQL text (the literals in the store files) and checked against its text, so SQL built
 * at run time in a reused buffer is never confused with another statement: it is prepared and
 * finalized each time, as before.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "store_sqlite_priv.h"

#define SLOTS 256 /* more than the store's distinct statements; a full table only stops caching */

typedef struct entry {
    sqlite3 *db;
    const char *sql;
    sqlite3_stmt *st;
    bool busy; /* handed out, not put back yet (a statement used again while in use is not shared) */
} entry_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t table[SLOTS];

static size_t slot_of(const sqlite3 *db, const char *sql)
{
    uintptr_t h = ((uintptr_t)sql ^ ((uintptr_t)db >> 4)) * (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 8) % SLOTS;
}

sqlite3_stmt *store_sqlite_stmt_get(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    entry_t *free_slot = NULL;
    size_t i = slot_of(db, sql);

    pthread_mutex_lock(&lock);
    for (size_t n = 0; n < SLOTS; n++, i = (i + 1) % SLOTS) {
        entry_t *e = &table[i];
        if (e->st == NULL) {
            free_slot = e; /* entries are never removed but by a close: the probe ends here */
            break;
        }
        if (e->db == db && e->sql == sql && !e->busy && strcmp(sqlite3_sql(e->st), sql) == 0) {
            e->busy = true;
            pthread_mutex_unlock(&lock);
            return e->st;
        }
    }
    pthread_mutex_unlock(&lock);
    if (free_slot == NULL) {
        return sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK ? st : (sqlite3_finalize(st), NULL);
    }
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    pthread_mutex_lock(&lock);
    if (free_slot->st == NULL) {
        *free_slot = (entry_t){db, sql, st, true};
    }
    pthread_mutex_unlock(&lock); /* slot taken meanwhile: st stays uncached, finalized when put */
    return st;
}

void store_sqlite_stmt_put(sqlite3_stmt *st)
{
    if (st == NULL) {
        return;
    }
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < SLOTS; i++) {
        if (table[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            table[i].busy = false;
            pthread_mutex_unlock(&lock);
            return;
        }
    }
    pthread_mutex_unlock(&lock);
    sqlite3_finalize(st);
}

void store_sqlite_stmt_drop(sqlite3 *db)
{
    pthread_mutex_lock(&lock);
    /* Rebuild the table without db's statements (open addressing: no holes left behind). */
    entry_t keep[SLOTS];
    size_t n = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        if (table[i].st == NULL) {
            continue;
        }
        if (table[i].db == db) {
            sqlite3_finalize(table[i].st);
        } else {
            keep[n++] = table[i];
        }
        table[i] = (entry_t){0};
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = slot_of(keep[k].db, keep[k].sql);
        while (table[i].st != NULL) {
            i = (i + 1) % SLOTS;
        }
        table[i] = keep[k];
    }
    pthread_mutex_unlock(&lock);
}

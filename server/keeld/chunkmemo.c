/* keeld's memory of the chunks it sent (chunkmemo.h). */
#include "chunkmemo.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct slot {
    uint64_t key; /* 0: empty */
    int64_t at_us;
} slot_t;

struct chunkmemo {
    pthread_mutex_t lock;
    uint64_t mask;
    int64_t grace_us;
    slot_t *chunks; /* (device, deployment, offset, length) -> when sent */
    slot_t *hellos; /* device -> when its last hello arrived */
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t device_key(const char *device)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (const char *c = device; *c != '\0'; c++) {
        h = fnv(h, c, 1);
    }
    return h | 1u; /* never 0 (empty) */
}

static uint64_t chunk_key(const char *device, uint64_t deployment, uint32_t offset, uint32_t length)
{
    uint64_t h = device_key(device);

    h = fnv(h, &deployment, sizeof(deployment));
    h = fnv(h, &offset, sizeof(offset));
    h = fnv(h, &length, sizeof(length));
    return h | 1u;
}

/* The slot's time when it holds key, else INT64_MIN (never seen, or forgotten). */
static int64_t lookup(const chunkmemo_t *m, const slot_t *t, uint64_t key)
{
    const slot_t *s = &t[key & m->mask];
    return s->key == key ? s->at_us : INT64_MIN;
}

chunkmemo_t *chunkmemo_new(uint32_t slots, int64_t grace_us)
{
    chunkmemo_t *m = calloc(1, sizeof(*m));
    uint64_t n = 1;

    while (n < slots) {
        n <<= 1;
    }
    if (m == NULL || (m->chunks = calloc(n, sizeof(slot_t))) == NULL ||
        (m->hellos = calloc(n, sizeof(slot_t))) == NULL) {
        if (m != NULL) {
            free(m->chunks);
        }
        free(m);
        return NULL;
    }
    m->mask = n - 1;
    m->grace_us = grace_us;
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void chunkmemo_free(chunkmemo_t *m)
{
    if (m != NULL) {
        pthread_mutex_destroy(&m->lock);
        free(m->chunks);
        free(m->hellos);
        free(m);
    }
}

void chunkmemo_hello(chunkmemo_t *m, const char *device, int64_t at_us)
{
    uint64_t key = device_key(device);

    pthread_mutex_lock(&m->lock);
    m->hellos[key & m->mask] = (slot_t){key, at_us};
    pthread_mutex_unlock(&m->lock);
}

bool chunkmemo_is_duplicate(chunkmemo_t *m, const char *device, uint64_t deployment,
                            uint32_t offset, uint32_t length, int64_t received_us)
{
    uint64_t dk = device_key(device), ck = chunk_key(device, deployment, offset, length);

    pthread_mutex_lock(&m->lock);
    int64_t sent = lookup(m, m->chunks, ck), hello = lookup(m, m->hellos, dk);
    pthread_mutex_unlock(&m->lock);
    return sent != INT64_MIN && sent >= received_us - m->grace_us && sent > hello;
}

void chunkmemo_sent(chunkmemo_t *m, const char *device, uint64_t deployment, uint32_t offset,
                    uint32_t length, int64_t sent_us)
{
    uint64_t ck = chunk_key(device, deployment, offset, length);

    pthread_mutex_lock(&m->lock);
    m->chunks[ck & m->mask] = (slot_t){ck, sent_us};
    pthread_mutex_unlock(&m->lock);
}

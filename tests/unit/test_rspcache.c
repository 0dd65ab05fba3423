/*
 * The round-trip-saving relay (keel/rspcache.h) between a scripted gdb and the real RSP engine
 * (rsp.c) over a memory target. The strongest check is differential: the same packets sent
 * through the relay and straight to a twin engine must give gdb the same replies, byte for byte,
 * while the relay's engine sees fewer packets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/rsp.h"
#include "keel/rspcache.h"
#include "unit_util.h"

#define CODE 0x00200000u
#define CODE_SIZE 0x1000u
#define RAM 0x28200000u
#define RAM_SIZE 0x1000u

typedef struct {
    uint8_t code[CODE_SIZE], ram[RAM_SIZE];
    uint32_t regs[RSP_REG_COUNT];
    unsigned packets; /* packets the engine answered */
} target_t;

static uint8_t *mem(target_t *t, uint32_t a, uint32_t n)
{
    if (a >= CODE && n <= CODE_SIZE && a - CODE <= CODE_SIZE - n)
        return t->code + (a - CODE);
    if (a >= RAM && n <= RAM_SIZE && a - RAM <= RAM_SIZE - n)
        return t->ram + (a - RAM);
    return NULL;
}

static kerr_t t_rreg(void *c, unsigned n, uint32_t *v) { *v = ((target_t *)c)->regs[n]; return KERR_OK; }
static kerr_t t_wreg(void *c, unsigned n, uint32_t v) { ((target_t *)c)->regs[n] = v; return KERR_OK; }
static kerr_t t_rmem(void *c, uint32_t a, uint8_t *o, uint32_t n)
{
    uint8_t *m = mem(c, a, n);
    if (!m)
        return KERR_RANGE;
    memcpy(o, m, n);
    return KERR_OK;
}
static kerr_t t_wmem(void *c, uint32_t a, const uint8_t *d, uint32_t n)
{
    uint8_t *m = mem(c, a, n);
    if (!m)
        return KERR_RANGE;
    memcpy(m, d, n);
    return KERR_OK;
}
static kerr_t t_bp(void *c, rsp_bp_type_t t, uint32_t a, uint32_t k) { (void)c; (void)t; (void)a; (void)k; return KERR_OK; }
static kerr_t t_resume(void *c, bool s, int sig)
{
    target_t *t = c;
    (void)s;
    (void)sig;
    t->ram[0]++; /* the app runs: its memory changes */
    t->regs[RSP_REG_PC] += 2;
    return KERR_OK;
}
static void t_halt(void *c) { (void)c; }
static int t_sig(void *c) { (void)c; return RSP_SIGTRAP; }
static void t_void(void *c) { (void)c; }

static const rsp_target_ops_t ops = {t_rreg, t_wreg, t_rmem, t_wmem, t_bp, t_bp, t_resume,
                                     t_halt, t_sig, t_void, t_void, NULL, NULL, NULL, NULL};

/* One side: an engine, what gdb received, and (for the relayed side) the relay. */
typedef struct {
    target_t t;
    rsp_t rsp;
    rspcache_t cache;
    bool relayed;
    uint8_t to_gdb[1 << 16];
    size_t to_gdb_len;
    bool async;              /* the stub's input waits in q until pump(): replies come late */
    uint8_t q[4096];
    size_t qlen;
} side_t;

static void gdb_recv(void *ctx, const uint8_t *d, size_t n)
{
    side_t *s = ctx;
    assert_true(s->to_gdb_len + n <= sizeof(s->to_gdb));
    memcpy(s->to_gdb + s->to_gdb_len, d, n);
    s->to_gdb_len += n;
}

/* The engine's output: to gdb directly, or through the relay. */
static void engine_send(void *ctx, const uint8_t *d, size_t n)
{
    side_t *s = ctx;
    if (s->relayed)
        rspcache_from_stub(&s->cache, d, n);
    else
        gdb_recv(s, d, n);
}

static void stub_recv(void *ctx, const uint8_t *d, size_t n)
{
    side_t *s = ctx;
    for (size_t i = 0; i < n; i++)
        if (d[i] == '$')
            s->t.packets++;
    if (s->async) {
        assert_true(s->qlen + n <= sizeof(s->q));
        memcpy(s->q + s->qlen, d, n);
        s->qlen += n;
        return;
    }
    rsp_input(&s->rsp, d, n);
}

/* The stub gets what waited for it (its replies may queue more). */
static void pump(side_t *s)
{
    while (s->qlen > 0) {
        uint8_t b[4096];
        size_t n = s->qlen;
        memcpy(b, s->q, n);
        s->qlen = 0;
        rsp_input(&s->rsp, b, n);
    }
}

static void side_init(side_t *s, bool relayed)
{
    memset(s, 0, sizeof(*s));
    s->relayed = relayed;
    for (unsigned i = 0; i < CODE_SIZE; i++)
        s->t.code[i] = (uint8_t)(i * 13u + 7u);
    for (unsigned i = 0; i < RSP_REG_COUNT; i++)
        s->t.regs[i] = 0x1000u * i;
    s->t.regs[RSP_REG_SP] = RAM + 0x800u; /* where the stop reply's prefetches go */
    s->t.regs[RSP_REG_PC] = CODE + 0x35cu;
    rsp_config_t cfg = {&ops, &s->t, engine_send, s};
    assert_int_equal(rsp_init(&s->rsp, &cfg), KERR_OK);
    rspcache_init(&s->cache, gdb_recv, s, stub_recv, s);
}

static void gdb_send(side_t *s, const char *payload)
{
    char frame[1400];
    uint8_t sum = 0;
    for (const char *p = payload; *p; p++)
        sum = (uint8_t)(sum + (uint8_t)*p);
    int n = snprintf(frame, sizeof(frame), "$%s#%02x", payload, sum);
    if (s->relayed)
        rspcache_from_gdb(&s->cache, (const uint8_t *)frame, (size_t)n);
    else
        stub_recv(s, (const uint8_t *)frame, (size_t)n);
}

/* Both sides get the packet; gdb's view must be the same. */
static void both(side_t *a, side_t *b, const char *payload)
{
    gdb_send(a, payload);
    gdb_send(b, payload);
    assert_int_equal(a->to_gdb_len, b->to_gdb_len);
    assert_memory_equal(a->to_gdb, b->to_gdb, a->to_gdb_len);
    a->to_gdb_len = b->to_gdb_len = 0;
}

static void stop(side_t *a, side_t *b)
{
    rsp_notify_stop(&a->rsp);
    rsp_notify_stop(&b->rsp);
    assert_int_equal(a->to_gdb_len, b->to_gdb_len);
    assert_memory_equal(a->to_gdb, b->to_gdb, a->to_gdb_len);
    a->to_gdb_len = b->to_gdb_len = 0;
}

static side_t *A, *B;

static int setup(void **state)
{
    (void)state;
    A = calloc(1, sizeof(*A));
    B = calloc(1, sizeof(*B));
    side_init(A, true);
    side_init(B, false);
    return A && B ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(A);
    free(B);
    return 0;
}

static void test_acks_pass_through(void **state)
{
    (void)state;
    both(A, B, "qSupported:multiprocess+");
    both(A, B, "m200000,4");
    both(A, B, "m200000,4"); /* acks on: nothing cached */
    assert_int_equal(A->t.packets, B->t.packets);
    both(A, B, "QStartNoAckMode");
    assert_true(A->cache.no_ack);
}

static void test_reads_cached_until_a_change(void **state)
{
    (void)state;
    both(A, B, "QStartNoAckMode");
    unsigned a0 = A->t.packets;
    both(A, B, "m20035c,4"); /* a miss: the line 0x200340..0x20037f is fetched */
    both(A, B, "m200358,4");
    both(A, B, "m20035a,2");
    both(A, B, "m20037e,2");
    both(A, B, "g");
    both(A, B, "m20035c,4");
    assert_int_equal(A->t.packets - a0, 2u); /* the line, and 'g' */
    assert_int_equal(A->cache.hits, 4u);
    /* a write changes memory: the next read asks again and sees it */
    both(A, B, "M20035c,2:beef");
    both(A, B, "m20035c,4");
    assert_int_equal(A->t.packets - a0, 4u);
    /* a resume (the app runs, ram[0] changes): everything is asked again; the stop reply's pc
     * and sp lines are fetched at once, before gdb asks (t_resume moves pc to 0x20035e) */
    both(A, B, "m28200000,4");
    both(A, B, "vCont;s:1;c");
    assert_int_equal(A->t.packets - a0, 6u);
    stop(A, B);
    assert_int_equal(A->t.packets - a0, 8u); /* the two prefetches */
    assert_int_equal(A->cache.prefetches, 2u);
    both(A, B, "m20035e,2");   /* pc */
    both(A, B, "m20035a,4");
    both(A, B, "m28200800,40"); /* the stack */
    assert_int_equal(A->t.packets - a0, 8u);
    both(A, B, "m28200000,4"); /* not prefetched: asked */
    assert_int_equal(A->t.packets - a0, 9u);
}

/* A prefetch in flight when gdb reads: the read waits for it instead of asking again; a
 * prefetch answered after an invalidation is not kept. */
static void test_prefetch_races(void **state)
{
    (void)state;
    both(A, B, "QStartNoAckMode");
    unsigned a0 = A->t.packets;
    both(A, B, "vCont;c");
    stop(A, B); /* prefetches go out and are answered at once (the fake stub is synchronous) */
    assert_int_equal(A->t.packets - a0, 3u);
    /* a write between: the lines are dropped, the next read asks again and sees the write */
    both(A, B, "M20035e,2:1234");
    both(A, B, "m20035e,2");
    both(A, B, "m28200800,4");
    assert_int_equal(A->t.packets - a0, 6u);
    /* the stale-generation rule: a prefetch pending across an invalidation is not stored */
    rspcache_t *c = &A->cache;
    c->pending[0].kind = RSPCACHE_PREFETCH;
    c->pending[0].waddr = 0x00200340u;
    c->pending[0].gen = c->gen - 1u;
    c->npending = 1;
    static const char stale[] = "$"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000#00";
    rspcache_from_stub(c, (const uint8_t *)stale, sizeof(stale) - 1u);
    assert_int_equal(c->npending, 0u);
    both(A, B, "m200340,4"); /* not the zeros: the engine's own bytes, asked again */

    /* prefetches still in flight when gdb reads the pc's line: the read is held, not asked
     * again, and answered when the prefetch comes back */
    A->async = true;
    gdb_send(A, "vCont;c");
    gdb_send(B, "vCont;c");
    pump(A);
    stop(A, B);
    unsigned before = A->t.packets;
    gdb_send(A, "m20035e,2");
    gdb_send(B, "m20035e,2");
    assert_int_equal(A->to_gdb_len, 0u); /* held */
    assert_true(A->cache.held);
    pump(A);
    assert_false(A->cache.held);
    assert_int_equal(A->to_gdb_len, B->to_gdb_len);
    assert_memory_equal(A->to_gdb, B->to_gdb, A->to_gdb_len);
    assert_int_equal(A->t.packets, before); /* nothing asked beyond the prefetches */
}

static void test_edges_and_errors(void **state)
{
    (void)state;
    both(A, B, "QStartNoAckMode");
    /* the last bytes of RAM: the line fits; one past it is refused, the refusal is the stub's */
    both(A, B, "m28200ffc,4");
    both(A, B, "m28200ffe,4");
    both(A, B, "m28201000,4");
    both(A, B, "m38000000,4");
    /* a read crossing two lines, and one too long to widen */
    both(A, B, "m20003e,8");
    both(A, B, "m200100,200");
    both(A, B, "m200100,200");
    /* malformed reads pass through to the engine's own answer */
    both(A, B, "m200100");
    both(A, B, "m,4");
    both(A, B, "m200100,0");
    both(A, B, "mzz,4");
}

static void test_memo_queries(void **state)
{
    (void)state;
    both(A, B, "QStartNoAckMode");
    unsigned a0 = A->t.packets;
    for (int i = 0; i < 3; i++) {
        both(A, B, "qfThreadInfo");
        both(A, B, "qsThreadInfo");
        both(A, B, "qAttached");
    }
    assert_int_equal(A->t.packets - a0, 3u);
    both(A, B, "qTStatus"); /* the empty answer ("not supported") is kept too */
    both(A, B, "qTStatus");
    assert_int_equal(A->t.packets - a0, 4u);
}

/* Random packets, both sides: gdb can never tell. */
static void test_differential(void **state)
{
    (void)state;
    both(A, B, "QStartNoAckMode");
    uint32_t seed = 0x5eed1234u;
    char p[64];
    for (int i = 0; i < 20000; i++) {
        uint32_t r = xs32(&seed);
        uint32_t base = (r & 1u) ? CODE : RAM;
        /* a window across the region's end: hits, misses and refusals */
        uint32_t addr = base + CODE_SIZE - 0x140u + xs32(&seed) % 0x180u;
        uint32_t len = 1u + xs32(&seed) % 80u;
        switch ((r >> 1) % 64u) {
        default:
            snprintf(p, sizeof(p), "m%x,%x", addr, len);
            both(A, B, p);
            break;
        case 0:
            snprintf(p, sizeof(p), "M%x,2:%04x", addr, xs32(&seed) & 0xFFFFu);
            both(A, B, p);
            break;
        case 1:
            both(A, B, (r >> 8) & 1u ? "vCont;c" : "s");
            stop(A, B);
            break;
        case 2:
            both(A, B, (r >> 8) & 1u ? "qfThreadInfo" : "g");
            break;
        case 3:
            snprintf(p, sizeof(p), "Z0,%x,2", addr);
            both(A, B, p);
            break;
        }
    }
    assert_memory_equal(A->t.ram, B->t.ram, RAM_SIZE);
    assert_memory_equal(A->t.code, B->t.code, CODE_SIZE);
    print_message("relayed engine saw %u packets, direct %u (hits %lu, misses %lu)\n", A->t.packets,
                  B->t.packets, A->cache.hits, A->cache.misses);
    assert_true(A->t.packets < B->t.packets);
    assert_true(A->cache.hits > 5000u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acks_pass_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_cached_until_a_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edges_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefetch_races, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memo_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_differential, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

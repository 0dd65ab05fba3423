/*
 * Host unit tests of the device's offline log buffer (net_logq): order, batching with acks,
 * resend identity, and the overflow rule (the oldest entry not in flight is dropped and counted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net_logq.h"

static net_logq_t q;

static void put_n(uint32_t from, uint32_t n)
{
    char text[16];
    for (uint32_t i = from; i < from + n; i++) {
        int len = snprintf(text, sizeof(text), "line %u", (unsigned)i);
        net_logq_put(&q, i, 2u, 0u, text, (uint32_t)len);
    }
}

/* Entry i from the oldest carries line number want. */
static void assert_line(uint32_t i, uint32_t want)
{
    char text[16];
    const net_log_entry_t *e = net_logq_at(&q, i);
    int len = snprintf(text, sizeof(text), "line %u", (unsigned)want);
    assert_int_equal(e->len, len);
    assert_memory_equal(e->text, text, (size_t)len);
    assert_int_equal(e->uptime_ms, want);
}

static int reset(void **state)
{
    (void)state;
    memset(&q, 0, sizeof(q));
    return 0;
}

static void test_order_and_ack(void **state)
{
    (void)state;
    put_n(0, 10);
    assert_int_equal(q.count, 10);
    net_logq_begin(&q, 8, 5);
    assert_int_equal(q.inflight, 8);
    net_logq_begin(&q, 2, 6); /* one batch at a time */
    assert_int_equal(q.inflight_id, 5);
    assert_false(net_logq_ack(&q, 4)); /* not the batch in flight: nothing freed */
    assert_int_equal(q.count, 10);
    assert_true(net_logq_ack(&q, 5));
    assert_int_equal(q.count, 2);
    assert_int_equal(q.inflight, 0);
    assert_line(0, 8);
    assert_line(1, 9);
    assert_false(net_logq_ack(&q, 5)); /* a duplicate ack frees nothing more */
    assert_int_equal(q.count, 2);
}

static void test_truncates(void **state)
{
    (void)state;
    char big[NET_LOGQ_TEXT_MAX + 50];
    memset(big, 'x', sizeof(big));
    net_logq_put(&q, 1, 0u, 1u, big, sizeof(big));
    assert_int_equal(net_logq_at(&q, 0)->len, NET_LOGQ_TEXT_MAX);
    assert_int_equal(net_logq_at(&q, 0)->source, 1u);
}

static void test_overflow_spares_inflight(void **state)
{
    (void)state;
    put_n(0, NET_LOGQ_CAP);
    net_logq_begin(&q, 3, 1);
    put_n(NET_LOGQ_CAP, 5); /* 5 over capacity: lines 3..7 (oldest not in flight) go */
    assert_int_equal(q.count, NET_LOGQ_CAP);
    assert_int_equal(q.drop_total, 5);
    assert_int_equal(q.drop_pending, 5);
    assert_int_equal(q.drop_notify, 5);
    assert_line(0, 0); /* the batch in flight is unchanged: a resend is identical */
    assert_line(1, 1);
    assert_line(2, 2);
    assert_line(3, 8);
    assert_line(NET_LOGQ_CAP - 1u, NET_LOGQ_CAP + 4u);
    assert_int_equal(q.inflight_drop, 0); /* its drop count was fixed when it was formed */
    assert_true(net_logq_ack(&q, 1));
    net_logq_begin(&q, 8, 2);
    assert_int_equal(q.inflight_drop, 5); /* the next batch reports the drops before it */
    assert_int_equal(q.drop_pending, 0);
    assert_line(0, 8);
}

static void test_overflow_without_inflight(void **state)
{
    (void)state;
    put_n(0, NET_LOGQ_CAP + 100u);
    assert_int_equal(q.count, NET_LOGQ_CAP);
    assert_int_equal(q.drop_total, 100);
    assert_line(0, 100);
    assert_line(NET_LOGQ_CAP - 1u, NET_LOGQ_CAP + 99u);
}

static void test_begin_bounds(void **state)
{
    (void)state;
    net_logq_begin(&q, 1, 1); /* empty queue */
    assert_int_equal(q.inflight, 0);
    put_n(0, 20);
    net_logq_begin(&q, NET_LOGQ_BATCH_MAX + 1u, 1);
    assert_int_equal(q.inflight, 0);
    net_logq_begin(&q, 0, 1);
    assert_int_equal(q.inflight, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_order_and_ack, reset),
        cmocka_unit_test_setup(test_truncates, reset),
        cmocka_unit_test_setup(test_overflow_spares_inflight, reset),
        cmocka_unit_test_setup(test_overflow_without_inflight, reset),
        cmocka_unit_test_setup(test_begin_bounds, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

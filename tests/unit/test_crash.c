/* Crash report encoding: round trip, golden bytes, every rejection, and the formatter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel/app_image.h"
#include "keel/crash.h"
#include "unit_util.h"

#define HDR_WORDS_END (8u + 4u * KCRASH_NWORDS) /* 140 */

/* Every 32-bit field distinct: word i of the encoding holds 0x1000 + i. */
static kcrash_report_t sample(uint16_t stack_len)
{
    kcrash_report_t r;
    memset(&r, 0, sizeof(r));
    r.reason = 0x1000;
    r.restart_count = 0x1001;
    r.uptime_ms_lo = 0x1002;
    r.uptime_ms_hi = 0x1003;
    r.run_ms = 0x1004;
    r.app_version = 0x1005;
    r.exc_return = 0x1006;
    for (uint32_t i = 0; i < 13; i++) {
        r.r[i] = 0x1007 + i;
    }
    r.sp = 0x1014;
    r.lr = 0x1015;
    r.pc = 0x1016;
    r.xpsr = 0x1017;
    r.msp_ns = 0x1018;
    r.psp_ns = 0x1019;
    r.control_ns = 0x101A;
    r.cfsr = 0x101B;
    r.hfsr = 0x101C;
    r.sfsr = 0x101D;
    r.sfar = 0x101E;
    r.bfar = 0x101F;
    r.mmfar = 0x1020;
    r.stack_addr = 0x28200000u;
    r.stack_len = stack_len;
    for (uint32_t i = 0; i < stack_len; i++) {
        r.stack[i] = (uint8_t)(0xA0 + i);
    }
    return r;
}

static size_t encode(const kcrash_report_t *r, uint8_t *buf)
{
    size_t len = 0;
    assert_int_equal(kcrash_encode(r, buf, KCRASH_ENCODED_MAX, &len), KERR_OK);
    return len;
}

static void test_round_trip(void **state)
{
    (void)state;
    static const uint16_t lens[] = {0, 1, 3, 128, KCRASH_STACK_MAX};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        kcrash_report_t r = sample(lens[i]), out;
        uint8_t buf[KCRASH_ENCODED_MAX + 8];
        size_t len = encode(&r, buf);
        assert_int_equal(len, 152u + lens[i]);
        memset(&out, 0x5A, sizeof(out));
        assert_int_equal(kcrash_decode(buf, len, &out), KERR_OK);
        assert_memory_equal(&out, &r, sizeof(r));
        /* Trailing bytes after the report (a larger record slot) are ignored. */
        memset(buf + len, 0xFF, 8);
        assert_int_equal(kcrash_decode(buf, len + 8, &out), KERR_OK);
        /* The reserved half-word must be 0 (found by fuzz_crash: the CRC alone let any value
         * through, so one report had many encodings). */
        buf[146] = 0x01;
        poke32(buf + len - 4, ref_crc32(buf, len - 4));
        assert_int_equal(kcrash_decode(buf, len, &out), KERR_FORMAT);
    }
}

static void test_golden_bytes(void **state)
{
    (void)state;
    kcrash_report_t r = sample(4);
    memcpy(r.stack, "\xde\xad\xbe\xef", 4);
    uint8_t b[KCRASH_ENCODED_MAX];
    memset(b, 0xEE, sizeof(b));
    size_t len = encode(&r, b);
    assert_int_equal(len, 156u);
    static const uint8_t head[8] = {0x4B, 0x43, 0x52, 0x31, 0x01, 0x00, 0x9C, 0x00};
    assert_memory_equal(b, head, 8);
    for (uint32_t i = 0; i < KCRASH_NWORDS; i++) {
        assert_int_equal(peek32(b + 8 + 4 * i), 0x1000 + i);
    }
    static const uint8_t pc[4] = {0x16, 0x10, 0x00, 0x00}; /* word 22 at offset 96 */
    assert_memory_equal(b + 96, pc, 4);
    static const uint8_t tail[12] = {0x00, 0x00, 0x20, 0x28, 0x04, 0x00, 0x00, 0x00,
                                     0xde, 0xad, 0xbe, 0xef};
    assert_memory_equal(b + HDR_WORDS_END, tail, sizeof(tail));
    assert_int_equal(peek32(b + 152), ref_crc32(b, 152));
    assert_int_equal(b[156], 0xEE); /* nothing written past the report */
}

static void test_encode_errors(void **state)
{
    (void)state;
    kcrash_report_t r = sample(10);
    uint8_t b[KCRASH_ENCODED_MAX];
    size_t len = 7;
    assert_int_equal(kcrash_encode(&r, b, 161, &len), KERR_NOMEM);
    assert_int_equal(len, 7u);
    assert_int_equal(kcrash_encode(&r, b, 162, &len), KERR_OK);
    assert_int_equal(len, 162u);
    r.stack_len = KCRASH_STACK_MAX + 1u;
    assert_int_equal(kcrash_encode(&r, b, sizeof(b), &len), KERR_INVAL);
}

static void test_truncated_at_every_length(void **state)
{
    (void)state;
    kcrash_report_t r = sample(40), out;
    uint8_t b[KCRASH_ENCODED_MAX];
    size_t len = encode(&r, b);
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(kcrash_decode(b, n, &out), KERR_TRUNCATED);
    }
    assert_int_equal(kcrash_decode(b, len, &out), KERR_OK);
    assert_int_equal(kcrash_decode(NULL, 0, &out), KERR_TRUNCATED);
}

static void test_rejections(void **state)
{
    (void)state;
    kcrash_report_t r = sample(16), out;
    uint8_t b[KCRASH_ENCODED_MAX];
    size_t len = encode(&r, b);

    /* Any flipped bit in the words, stack or CRC: KERR_CRC. */
    for (size_t i = 8; i < len; i++) {
        encode(&r, b);
        b[i] ^= 0x10;
        assert_int_equal(kcrash_decode(b, len, &out), KERR_CRC);
    }
    encode(&r, b);
    b[0] ^= 1;
    assert_int_equal(kcrash_decode(b, len, &out), KERR_FORMAT);
    encode(&r, b);
    poke16(b + 4, 2);
    assert_int_equal(kcrash_decode(b, len, &out), KERR_CRASH_VERSION);
    poke16(b + 4, 0xFFFF);
    assert_int_equal(kcrash_decode(b, 8, &out), KERR_CRASH_VERSION);
    poke16(b + 4, 0);
    assert_int_equal(kcrash_decode(b, len, &out), KERR_FORMAT);

    /* Total length out of bounds. */
    encode(&r, b);
    poke16(b + 6, 151);
    assert_int_equal(kcrash_decode(b, len, &out), KERR_FORMAT);
    poke16(b + 6, KCRASH_ENCODED_MAX + 1u);
    assert_int_equal(kcrash_decode(b, sizeof(b), &out), KERR_FORMAT);

    /* stack_len > max, with a CRC that vouches for it. */
    uint8_t big[KCRASH_ENCODED_MAX];
    memset(big, 0, sizeof(big));
    poke32(big, KCRASH_MAGIC);
    poke16(big + 4, 1);
    poke16(big + 6, KCRASH_ENCODED_MAX);
    poke16(big + 144, KCRASH_STACK_MAX + 1u);
    poke32(big + KCRASH_ENCODED_MAX - 4, ref_crc32(big, KCRASH_ENCODED_MAX - 4));
    assert_int_equal(kcrash_decode(big, sizeof(big), &out), KERR_FORMAT);
    /* stack_len disagreeing with the total length. */
    encode(&r, b);
    poke16(b + 144, 15);
    poke32(b + len - 4, ref_crc32(b, len - 4));
    assert_int_equal(kcrash_decode(b, len, &out), KERR_FORMAT);
    /* Control: the same re-sealing with a consistent stack_len decodes. */
    poke16(b + 144, 16);
    poke32(b + len - 4, ref_crc32(b, len - 4));
    assert_int_equal(kcrash_decode(b, len, &out), KERR_OK);
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(kcrash_reason_name(KCRASH_NONE), "none");
    assert_string_equal(kcrash_reason_name(KCRASH_HARDFAULT), "HardFault");
    assert_string_equal(kcrash_reason_name(KCRASH_SECUREFAULT), "SecureFault");
    assert_string_equal(kcrash_reason_name(KCRASH_WATCHDOG), "watchdog");
    assert_string_equal(kcrash_reason_name(KCRASH_BREAKPOINT), "breakpoint");
    assert_string_equal(kcrash_reason_name(KCRASH_REASON_COUNT), "unknown");
    assert_string_equal(kcrash_reason_name(0xFFFFFFFFu), "unknown");
    for (uint32_t i = 0; i < KCRASH_REASON_COUNT; i++) {
        assert_string_not_equal(kcrash_reason_name(i), "unknown");
    }
}

/* Every line of s starts with prefix. */
static void assert_lines_prefixed(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    assert_true(*s != '\0');
    while (*s != '\0') {
        assert_memory_equal(s, prefix, n);
        const char *nl = strchr(s, '\n');
        assert_non_null(nl);
        s = nl + 1;
    }
}

static void assert_contains_all(const char *out, const char *const want[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strstr(out, want[i]) == NULL) {
            fail_msg("missing \"%s\" in:\n%s", want[i], out);
        }
    }
}

static void test_format_secure_fault(void **state)
{
    (void)state;
    kcrash_report_t r;
    memset(&r, 0, sizeof(r));
    r.reason = KCRASH_SECUREFAULT;
    r.restart_count = 2;
    r.uptime_ms_hi = 1;
    r.uptime_ms_lo = 5;
    r.run_ms = 1500;
    r.app_version = kapp_version_pack(1, 4, 2);
    r.pc = 0x00200123u;
    r.lr = 0x00200101u;
    r.sp = 0x2827ffd0u;
    r.xpsr = 0x01000013u;
    r.r[0] = 0xCAFEF00Du;
    r.r[12] = 0x12u;
    r.sfsr = 0x48u; /* AUVIOL | SFARVALID */
    r.sfar = 0x38000000u;
    r.hfsr = 0x40000000u;
    r.stack_addr = 0x2827ffd0u;
    r.stack_len = 20;
    for (int i = 0; i < 20; i++) {
        r.stack[i] = (uint8_t)(0xF0 + i);
    }
    char out[4096];
    size_t n = kcrash_format(&r, "[crash] ", out, sizeof(out));
    assert_int_equal(n, strlen(out));
    assert_lines_prefixed(out, "[crash] ");
    static const char *const want[] = {
        "app stopped: SecureFault (reason 2), app 1.4.2, restarts 2, uptime 4294967301 ms, "
        "ran 1500 ms\n",
        "pc 0x00200123  lr 0x00200101  sp 0x2827ffd0  xpsr 0x01000013\n",
        "in NS exception 19\n",
        "r0 0xcafef00d  r1 0x00000000",
        "r12 0x00000012  exc_return 0x00000000",
        "HFSR: FORCED (0x40000000)\n",
        "SFSR: AUVIOL SFARVALID (0x00000048)\n",
        "SFAR: 0x38000000\n",
        "stack at 0x2827ffd0 (20 bytes):\n",
        "  0x2827ffd0: f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 fa fb fc fd fe ff\n",
        "  0x2827ffe0: 00 01 02 03\n",
    };
    assert_contains_all(out, want, sizeof(want) / sizeof(want[0]));
    assert_null(strstr(out, "CFSR"));  /* zero registers are not printed */
    assert_null(strstr(out, "MMFAR")); /* not valid */
}

static void test_format_every_bit_name(void **state)
{
    (void)state;
    kcrash_report_t r;
    memset(&r, 0, sizeof(r));
    r.reason = KCRASH_EXIT;
    r.r[0] = 3;
    r.cfsr = 0xFFFFFFFFu;
    r.hfsr = 0xFFFFFFFFu;
    r.sfsr = 0xFFu;
    r.mmfar = 0xE000ED34u;
    r.bfar = 0xE000ED38u;
    char out[4096];
    kcrash_format(&r, "", out, sizeof(out));
    static const char *const want[] = {
        "CFSR: IACCVIOL DACCVIOL MUNSTKERR MSTKERR MLSPERR MMARVALID IBUSERR PRECISERR "
        "IMPRECISERR UNSTKERR STKERR LSPERR BFARVALID UNDEFINSTR INVSTATE INVPC NOCP STKOF "
        "UNALIGNED DIVBYZERO (0xffffffff)\n",
        "MMFAR: 0xe000ed34\n",
        "BFAR: 0xe000ed38\n",
        "HFSR: VECTTBL FORCED DEBUGEVT (0xffffffff)\n",
        "SFSR: INVEP INVIS INVER AUVIOL INVTRAN LSPERR SFARVALID LSERR (0x000000ff)\n",
        "exit (reason 7), exit code 3,",
    };
    assert_contains_all(out, want, sizeof(want) / sizeof(want[0]));
    r.r[0] = 0xFFFFFFFFu;
    r.cfsr = 1u << 16;
    kcrash_format(&r, "", out, sizeof(out));
    assert_non_null(strstr(out, "exit code -1,"));
    r.r[0] = 0x80000000u;
    kcrash_format(&r, "", out, sizeof(out));
    assert_non_null(strstr(out, "exit code -2147483648,"));
    assert_non_null(strstr(out, "CFSR: UNDEFINSTR (0x00010000)\n"));
}

static void test_format_truncates(void **state)
{
    (void)state;
    kcrash_report_t r = sample(KCRASH_STACK_MAX);
    char full[8192];
    size_t n = kcrash_format(&r, "> ", full, sizeof(full));
    assert_true(n > 1000);
    char small[100];
    for (size_t cap = 1; cap <= sizeof(small); cap += 33) {
        memset(small, 'x', sizeof(small));
        size_t m = kcrash_format(&r, "> ", small, cap);
        assert_int_equal(m, cap - 1u);
        assert_int_equal(small[m], '\0');
        assert_memory_equal(small, full, m);
    }
    assert_int_equal(kcrash_format(&r, "> ", small, 0), 0u);
    /* A corrupt in-memory stack_len never reads past the stack. */
    r.stack_len = 0xFFFF;
    n = kcrash_format(&r, NULL, full, sizeof(full));
    assert_non_null(strstr(full, "(256 bytes)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_golden_bytes),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_truncated_at_every_length),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_format_secure_fault),
        cmocka_unit_test(test_format_every_bit_name),
        cmocka_unit_test(test_format_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

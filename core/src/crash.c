/* Crash reports: the v1 encoding of crash.h and a console/host formatter. */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "keel/app_image.h"
#include "keel/crash.h"
#include "keel/crc32.h"

#include "le.h"

/* Offsets of the v1 encoding (see crash.h). */
#define OFF_MAGIC 0u
#define OFF_VERSION 4u
#define OFF_TOTAL 6u
#define OFF_WORDS 8u
#define OFF_STACK_ADDR (OFF_WORDS + 4u * KCRASH_NWORDS)
#define OFF_STACK_LEN (OFF_STACK_ADDR + 4u)
#define OFF_STACK (OFF_STACK_LEN + 4u)
#define ENCODED_MIN (OFF_STACK + 4u) /* no stack bytes */

#define R_OFF(i) (offsetof(kcrash_report_t, r) + 4u * (i))

/* The encoded word order: the order of kcrash_report_t. persisted: never reorder. */
static const uint16_t word_off[] = {
    offsetof(kcrash_report_t, reason),       offsetof(kcrash_report_t, restart_count),
    offsetof(kcrash_report_t, uptime_ms_lo), offsetof(kcrash_report_t, uptime_ms_hi),
    offsetof(kcrash_report_t, run_ms),       offsetof(kcrash_report_t, app_version),
    offsetof(kcrash_report_t, exc_return),
    R_OFF(0), R_OFF(1), R_OFF(2), R_OFF(3), R_OFF(4), R_OFF(5), R_OFF(6), R_OFF(7), R_OFF(8),
    R_OFF(9), R_OFF(10), R_OFF(11), R_OFF(12),
    offsetof(kcrash_report_t, sp),           offsetof(kcrash_report_t, lr),
    offsetof(kcrash_report_t, pc),           offsetof(kcrash_report_t, xpsr),
    offsetof(kcrash_report_t, msp_ns),       offsetof(kcrash_report_t, psp_ns),
    offsetof(kcrash_report_t, control_ns),   offsetof(kcrash_report_t, cfsr),
    offsetof(kcrash_report_t, hfsr),         offsetof(kcrash_report_t, sfsr),
    offsetof(kcrash_report_t, sfar),         offsetof(kcrash_report_t, bfar),
    offsetof(kcrash_report_t, mmfar),
};
_Static_assert(sizeof(word_off) / sizeof(word_off[0]) == KCRASH_NWORDS, "word table");

const char *kcrash_reason_name(uint32_t reason)
{
    static const char *const names[KCRASH_REASON_COUNT] = {
        [KCRASH_NONE] = "none",
        [KCRASH_HARDFAULT] = "HardFault",
        [KCRASH_SECUREFAULT] = "SecureFault",
        [KCRASH_BUSFAULT] = "BusFault",
        [KCRASH_USAGEFAULT] = "UsageFault",
        [KCRASH_MEMFAULT] = "MemManage",
        [KCRASH_WATCHDOG] = "watchdog",
        [KCRASH_EXIT] = "exit",
        [KCRASH_RESTART] = "restart",
        [KCRASH_BREAKPOINT] = "breakpoint",
        [KCRASH_IRQ_STORM] = "interrupt storm",
    };
    return reason < KCRASH_REASON_COUNT ? names[reason] : "unknown";
}

kerr_t kcrash_encode(const kcrash_report_t *r, uint8_t *out, size_t cap, size_t *out_len)
{
    if (r->stack_len > KCRASH_STACK_MAX) {
        return KERR_INVAL;
    }
    size_t total = ENCODED_MIN + r->stack_len;
    if (out == NULL || cap < total) {
        return KERR_NOMEM;
    }
    le_put32(out + OFF_MAGIC, KCRASH_MAGIC);
    le_put16(out + OFF_VERSION, KCRASH_VERSION);
    le_put16(out + OFF_TOTAL, (uint16_t)total);
    for (size_t i = 0; i < KCRASH_NWORDS; i++) {
        uint32_t w;
        memcpy(&w, (const uint8_t *)r + word_off[i], sizeof(w));
        le_put32(out + OFF_WORDS + 4u * i, w);
    }
    le_put32(out + OFF_STACK_ADDR, r->stack_addr);
    le_put16(out + OFF_STACK_LEN, r->stack_len);
    le_put16(out + OFF_STACK_LEN + 2u, 0u);
    memcpy(out + OFF_STACK, r->stack, r->stack_len);
    le_put32(out + total - 4u, kcrc32(0, out, total - 4u));
    if (out_len != NULL) {
        *out_len = total;
    }
    return KERR_OK;
}

kerr_t kcrash_decode(const uint8_t *in, size_t len, kcrash_report_t *out)
{
    if (in == NULL || len < OFF_WORDS) {
        return KERR_TRUNCATED;
    }
    if (le_get32(in + OFF_MAGIC) != KCRASH_MAGIC || le_get16(in + OFF_VERSION) == 0u) {
        return KERR_FORMAT;
    }
    if (le_get16(in + OFF_VERSION) > KCRASH_VERSION) {
        return KERR_CRASH_VERSION;
    }
    size_t total = le_get16(in + OFF_TOTAL);
    if (total < ENCODED_MIN || total > KCRASH_ENCODED_MAX) {
        return KERR_FORMAT;
    }
    if (len < total) {
        return KERR_TRUNCATED;
    }
    if (le_get32(in + total - 4u) != kcrc32(0, in, total - 4u)) {
        return KERR_CRC;
    }
    uint16_t stack_len = le_get16(in + OFF_STACK_LEN);
    /* The reserved half-word after stack_len is written as 0: anything else is not a v1 report
     * (found by tests/fuzz/fuzz_crash.c: the same report had 65536 valid encodings). */
    if (stack_len > KCRASH_STACK_MAX || total != ENCODED_MIN + stack_len ||
        le_get16(in + OFF_STACK_LEN + 2u) != 0u) {
        return KERR_FORMAT;
    }

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < KCRASH_NWORDS; i++) {
        uint32_t w = le_get32(in + OFF_WORDS + 4u * i);
        memcpy((uint8_t *)out + word_off[i], &w, sizeof(w));
    }
    out->stack_addr = le_get32(in + OFF_STACK_ADDR);
    out->stack_len = stack_len;
    memcpy(out->stack, in + OFF_STACK, stack_len);
    return KERR_OK;
}

/* ---- formatting: a bounded string builder (no stdio in the core) ---- */

typedef struct sbuf {
    char *out;
    size_t cap;
    size_t len;
} sbuf_t;

static void put_str(sbuf_t *b, const char *s)
{
    while (*s != '\0' && b->len + 1u < b->cap) {
        b->out[b->len++] = *s++;
    }
    b->out[b->len] = '\0';
}

static void put_hex(sbuf_t *b, uint32_t v, unsigned digits)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[9];

    for (unsigned i = 0; i < digits; i++) {
        tmp[i] = hex[(v >> (4u * (digits - 1u - i))) & 0xFu];
    }
    tmp[digits] = '\0';
    put_str(b, tmp);
}

static void put_x32(sbuf_t *b, uint32_t v)
{
    put_str(b, "0x");
    put_hex(b, v, 8u);
}

static void put_dec(sbuf_t *b, uint64_t v)
{
    char tmp[21];
    size_t n = sizeof(tmp) - 1u;

    tmp[n] = '\0';
    do {
        tmp[--n] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    put_str(b, tmp + n);
}

/* "<prefix><name> 0x........" pairs on one line. */
static void put_regs(sbuf_t *b, const char *prefix, const char *const names[],
                     const uint32_t vals[], size_t n)
{
    put_str(b, prefix);
    for (size_t i = 0; i < n; i++) {
        put_str(b, i == 0u ? "" : "  ");
        put_str(b, names[i]);
        put_str(b, " ");
        put_x32(b, vals[i]);
    }
    put_str(b, "\n");
}

typedef struct bit_name {
    uint32_t mask;
    const char *name;
} bit_name_t;

/* Armv8-M fault status bits (CFSR = UFSR << 16 | BFSR << 8 | MMFSR). */
static const bit_name_t cfsr_bits[] = {
    {1u << 0, "IACCVIOL"},   {1u << 1, "DACCVIOL"},    {1u << 3, "MUNSTKERR"},
    {1u << 4, "MSTKERR"},    {1u << 5, "MLSPERR"},     {1u << 7, "MMARVALID"},
    {1u << 8, "IBUSERR"},    {1u << 9, "PRECISERR"},   {1u << 10, "IMPRECISERR"},
    {1u << 11, "UNSTKERR"},  {1u << 12, "STKERR"},     {1u << 13, "LSPERR"},
    {1u << 15, "BFARVALID"}, {1u << 16, "UNDEFINSTR"}, {1u << 17, "INVSTATE"},
    {1u << 18, "INVPC"},     {1u << 19, "NOCP"},       {1u << 20, "STKOF"},
    {1u << 24, "UNALIGNED"}, {1u << 25, "DIVBYZERO"},  {0u, NULL},
};
static const bit_name_t hfsr_bits[] = {
    {1u << 1, "VECTTBL"}, {1u << 30, "FORCED"}, {1u << 31, "DEBUGEVT"}, {0u, NULL},
};
static const bit_name_t sfsr_bits[] = {
    {1u << 0, "INVEP"},   {1u << 1, "INVIS"},  {1u << 2, "INVER"},     {1u << 3, "AUVIOL"},
    {1u << 4, "INVTRAN"}, {1u << 5, "LSPERR"}, {1u << 6, "SFARVALID"}, {1u << 7, "LSERR"},
    {0u, NULL},
};

/* "<prefix>CFSR: UNDEFINSTR DIVBYZERO (0x02010000)", only when some bit is set. */
static void put_status(sbuf_t *b, const char *prefix, const char *reg, uint32_t v,
                       const bit_name_t *bits)
{
    if (v == 0u) {
        return;
    }
    put_str(b, prefix);
    put_str(b, reg);
    put_str(b, ":");
    for (const bit_name_t *bn = bits; bn->name != NULL; bn++) {
        if ((v & bn->mask) != 0u) {
            put_str(b, " ");
            put_str(b, bn->name);
        }
    }
    put_str(b, " (");
    put_x32(b, v);
    put_str(b, ")\n");
}

static void put_addr_if(sbuf_t *b, const char *prefix, const char *reg, bool valid, uint32_t v)
{
    if (valid) {
        put_str(b, prefix);
        put_str(b, reg);
        put_str(b, ": ");
        put_x32(b, v);
        put_str(b, "\n");
    }
}

static void put_stack(sbuf_t *b, const char *prefix, const kcrash_report_t *r)
{
    size_t n = r->stack_len > KCRASH_STACK_MAX ? KCRASH_STACK_MAX : r->stack_len;

    if (n == 0u) {
        return;
    }
    put_str(b, prefix);
    put_str(b, "stack at ");
    put_x32(b, r->stack_addr);
    put_str(b, " (");
    put_dec(b, n);
    put_str(b, " bytes):\n");
    for (size_t i = 0; i < n; i += 16u) {
        put_str(b, prefix);
        put_str(b, "  ");
        put_x32(b, r->stack_addr + (uint32_t)i);
        put_str(b, ":");
        for (size_t j = i; j < i + 16u && j < n; j++) {
            put_str(b, " ");
            put_hex(b, r->stack[j], 2u);
        }
        put_str(b, "\n");
    }
}

size_t kcrash_format(const kcrash_report_t *r, const char *prefix, char *out, size_t cap)
{
    sbuf_t b = {out, cap, 0u};
    char ver[16];

    if (out == NULL || cap == 0u) {
        return 0u;
    }
    if (prefix == NULL) {
        prefix = "";
    }
    out[0] = '\0';
    kapp_version_format(r->app_version, ver, sizeof(ver));

    put_str(&b, prefix);
    put_str(&b, "app stopped: ");
    put_str(&b, kcrash_reason_name(r->reason));
    put_str(&b, " (reason ");
    put_dec(&b, r->reason);
    put_str(&b, ")");
    if (r->reason == KCRASH_EXIT) {
        /* r0 is the int the reset handler returned: show -1, not 4294967295. */
        int32_t code = (int32_t)r->r[0];
        put_str(&b, code < 0 ? ", exit code -" : ", exit code ");
        put_dec(&b, code < 0 ? 0u - r->r[0] : r->r[0]);
    }
    put_str(&b, ", app ");
    put_str(&b, ver);
    put_str(&b, ", restarts ");
    put_dec(&b, r->restart_count);
    put_str(&b, ", uptime ");
    put_dec(&b, (uint64_t)r->uptime_ms_hi << 32 | r->uptime_ms_lo);
    put_str(&b, " ms, ran ");
    put_dec(&b, r->run_ms);
    put_str(&b, " ms\n");

    static const char *const n_pc[] = {"pc", "lr", "sp", "xpsr"};
    put_regs(&b, prefix, n_pc, (const uint32_t[]){r->pc, r->lr, r->sp, r->xpsr}, 4u);
    if ((r->xpsr & 0x1FFu) != 0u) {
        put_str(&b, prefix);
        put_str(&b, "in NS exception ");
        put_dec(&b, r->xpsr & 0x1FFu);
        put_str(&b, "\n");
    }
    static const char *const n_r[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6",
                                      "r7", "r8", "r9", "r10", "r11", "r12"};
    put_regs(&b, prefix, n_r, r->r, 4u);
    put_regs(&b, prefix, n_r + 4, r->r + 4, 4u);
    put_regs(&b, prefix, n_r + 8, r->r + 8, 4u);
    static const char *const n_sys[] = {"r12", "exc_return", "control_ns"};
    put_regs(&b, prefix, n_sys, (const uint32_t[]){r->r[12], r->exc_return, r->control_ns}, 3u);
    static const char *const n_sp[] = {"msp_ns", "psp_ns"};
    put_regs(&b, prefix, n_sp, (const uint32_t[]){r->msp_ns, r->psp_ns}, 2u);

    put_status(&b, prefix, "CFSR", r->cfsr, cfsr_bits);
    put_addr_if(&b, prefix, "MMFAR", (r->cfsr & (1u << 7)) != 0u, r->mmfar);
    put_addr_if(&b, prefix, "BFAR", (r->cfsr & (1u << 15)) != 0u, r->bfar);
    put_status(&b, prefix, "HFSR", r->hfsr, hfsr_bits);
    put_status(&b, prefix, "SFSR", r->sfsr, sfsr_bits);
    put_addr_if(&b, prefix, "SFAR", (r->sfsr & (1u << 6)) != 0u, r->sfar);
    put_stack(&b, prefix, r);
    return b.len;
}

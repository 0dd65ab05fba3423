/*
 * Crash reports (core/src/crash.c): read back from the device's no-init RAM after a reset, sent to
 * keeld in Crash envelopes, decoded again by keeld and `keel crash show`.
 * Input: one selector byte (bit 0: recompute the trailing CRC-32 first, so mutations reach the
 * field checks behind it), then the report bytes. A decoded report must format within its buffer
 * (also a short one: truncation), and re-encode to the very bytes it came from.
 */
#include <stdlib.h>
#include <string.h>

#include "keel/crash.h"
#include "keel/crc32.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t in[KCRASH_ENCODED_MAX + 64], again[KCRASH_ENCODED_MAX];
    static char text[8192], small[40];
    if (size < 1 || size - 1 > sizeof(in)) {
        return 0;
    }
    size_t len = size - 1;
    memcpy(in, data + 1, len);
    if ((data[0] & 1u) && len >= 8) {
        size_t total = (size_t)in[6] | (size_t)in[7] << 8;
        if (total >= 4 && total <= len) {
            uint32_t c = kcrc32(0, in, total - 4);
            for (int i = 0; i < 4; i++) {
                in[total - 4 + i] = (uint8_t)(c >> (8 * i));
            }
        }
    }
    kcrash_report_t r;
    if (kcrash_decode(in, len, &r) != KERR_OK) {
        return 0;
    }
    if (r.stack_len > KCRASH_STACK_MAX) {
        abort();
    }
    size_t n = kcrash_format(&r, "  ", text, sizeof(text));
    if (n >= sizeof(text) || strlen(text) != n) {
        abort();
    }
    (void)kcrash_format(&r, "", small, sizeof(small));
    if (strnlen(small, sizeof(small)) == sizeof(small)) {
        abort(); /* not terminated */
    }
    (void)kcrash_reason_name(r.reason);
    size_t elen = 0;
    if (kcrash_encode(&r, again, sizeof(again), &elen) != KERR_OK || elen > len || memcmp(again, in, elen) != 0) {
        abort(); /* one meaning per report */
    }
    return 0;
}

/*
 * The GDB RSP engine (core/src/rsp.c) fed an arbitrary byte stream, as the debug relay delivers
 * it from a debugger: acks, Ctrl-C, packets with run-length encoding and escapes, bad checksums.
 * The fake target and the reply checks are in fuzz_util.c (fz_rsp_*). The last input byte decides
 * whether the connection is lost at the end (breakpoints must then be gone).
 */
#include <stdlib.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_rsp_reset();
    fz_rsp_feed(data, size);
    if (size > 0 && (data[size - 1] & 1u)) {
        fz_rsp_lost();
    }
    return 0;
}

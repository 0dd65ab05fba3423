/*
 * Bundles, as a device, keeld and the CLI receive them: untrusted bytes.
 *
 * Input: one selector byte, then the bundle bytes.
 *   selector & 15 < 14:   kbdl_decode alone (what keeld and `keel bundle inspect` run on uploads),
 *                         then the payload map of every block it describes;
 *   selector & 15 == 14:  the manifest is re-signed with the fleet key the device trusts, then
 *                         upd_inspect on a simulated device (verify, layer checks, the plan): a
 *                         correctly signed but malformed bundle (a buggy or compromised build host)
 *                         must still be refused cleanly;
 *   selector & 15 == 15:  as 14, then staged: upd_stage_begin and the rest of the input as blocks
 *                         (index byte, then up to one block of data), as the network delivers them.
 * Signing and verifying take milliseconds, so only one input in eight pays for them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "keel/bundle.h"
#include "keel/upd.h"

#define CAP (KBDL_MAX_MANIFEST + KBDL_SIG_ENV_SIZE)

static void decode_only(const uint8_t *in, uint32_t len)
{
    kbdl_manifest_t m;
    if (kbdl_decode(in, len, &m) != KERR_OK) {
        return;
    }
    /* The decoded manifest is trusted by its users from here on: check what they rely on. */
    if (m.manifest_len > len || m.layer_count == 0 || m.layer_count > KBDL_MAX_LAYERS) {
        abort();
    }
    for (uint32_t l = 0; l < m.layer_count; l++) {
        const kbdl_layer_t *ly = &m.layers[l];
        if (ly->block_sha < in || ly->block_sha + (size_t)ly->block_count * 32u > in + m.manifest_len) {
            abort(); /* a hash table outside the signed bytes */
        }
    }
    uint32_t off, plen, inb;
    for (uint32_t i = 0; i <= m.layers[0].block_count; i++) {
        if (kbdl_block_payload(&m, i, &off, &plen, &inb) == KERR_OK &&
            (inb > m.block_size || plen > m.block_size - inb)) {
            abort(); /* a payload that does not fit its block */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[CAP];
    if (size < 1 || size - 1 > CAP) {
        return 0;
    }
    unsigned mode = data[0] & 15u;
    uint32_t len = (uint32_t)(size - 1);
    memcpy(buf, data + 1, len);
    if (mode < 14) {
        decode_only(buf, len);
        return 0;
    }
    uint32_t signed_len = fz_resign(buf, len, CAP);
    if (signed_len == 0) {
        decode_only(buf, len);
        return 0;
    }
    upd_t *u = fz_dev_reset();
    upd_plan_t plan;
    if (upd_inspect(u, buf, signed_len, &plan) != KERR_OK || mode == 14) {
        return 0;
    }
    if (plan.changed > plan.blocks || plan.to_stage > plan.changed) {
        abort();
    }
    if (upd_stage_begin(u, buf, signed_len) != KERR_OK) {
        return 0;
    }
    /* The rest of the input (after the signed bytes) as blocks: idx, 2-byte length, data. */
    const uint8_t *p = data + 1 + signed_len, *end = data + size;
    while (end - p >= 3) {
        uint32_t idx = p[0], n = (uint32_t)p[1] | (uint32_t)p[2] << 8;
        p += 3;
        if (n > (uint32_t)(end - p)) {
            n = (uint32_t)(end - p);
        }
        (void)upd_stage_block(u, idx, p, n);
        p += n;
    }
    (void)upd_stage_finish(u);
    return 0;
}

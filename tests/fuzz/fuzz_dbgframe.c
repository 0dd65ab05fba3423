/*
 * Live debugging's untrusted messages (docs/debug.md "Transport"): a Debug message as keeld's REST
 * API and the debug topics carry it, the session set-up with a peer's key, and frame open with the
 * RSP engine behind it, as the microvisor's net_dbg.c runs them.
 * Input: byte 0 chooses what the rest is:
 *   0: a Debug message (kproto_debug_decode); a frame is opened with the device's end of an
 *      established session (a forged tag must be refused), anything opened goes to the RSP engine;
 *   1: plaintext that the client's end seals (seq 1, 2, ... for each 200-byte piece) and the
 *      device's end opens: every opened frame must equal what was sealed, then it feeds the RSP
 *      engine (the path of an authenticated debugger);
 *   2: a Debug message whose open/accept keys are used as a device and the CLI do: the open
 *      transcript's signature checked against a debug key, and a session started with the
 *      peer's point (a point off the curve must be refused).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "keel/dbgsess.h"
#include "keel/kproto.h"

static fz_dbg_t base; /* established once: key generation is slow */

static void open_frame(dbgsess_t *dev, const keel_v1_DebugFrame *f)
{
    uint8_t plain[DBGSESS_SEALED_MAX];
    size_t n = 0;
    uint32_t before = dev->rx_seq;
    if (dbgsess_open(dev, f->seq, f->sealed.bytes, f->sealed.size, plain, sizeof(plain), &n) == KERR_OK) {
        if (n + DBGSESS_TAG_SIZE != f->sealed.size || f->seq <= before) {
            abort();
        }
        fz_rsp_feed(plain, n);
    } else if (dev->rx_seq != before) {
        abort(); /* nothing changes on failure */
    }
}

static void keys(const keel_v1_Debug *d)
{
    uint8_t h[DBGSESS_HASH_SIZE];
    dbgsess_eph_t mine;
    dbgsess_t s;
    if (d->which_kind == keel_v1_Debug_open_tag) {
        if (dbgsess_open_hash("dev-1", d->kind.open.session, d->kind.open.client_pub, h) == KERR_OK) {
            (void)dbgsess_verify(d->kind.open.client_pub, h, d->kind.open.signature);
        }
        if (dbgsess_keygen(&mine, fz_rng, NULL) == KERR_OK) {
            (void)dbgsess_start(&s, DBGSESS_DEVICE, d->kind.open.session, &mine, d->kind.open.client_pub);
        }
    } else if (d->which_kind == keel_v1_Debug_accept_tag) {
        uint8_t cpub[DBGSESS_PUB_SIZE] = {4};
        if (dbgsess_accept_hash("dev-1", d->kind.accept.session, cpub, d->kind.accept.device_pub, h) == KERR_OK) {
            (void)dbgsess_verify(d->kind.accept.device_pub, h, d->kind.accept.signature);
        }
        if (dbgsess_keygen(&mine, fz_rng, NULL) == KERR_OK) {
            (void)dbgsess_start(&s, DBGSESS_CLIENT, d->kind.accept.session, &mine, d->kind.accept.device_pub);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    static keel_v1_Debug d;
    if (!ready) {
        if (fz_dbg_start(&base) != 0) {
            abort();
        }
        ready = true;
    }
    if (size < 1) {
        return 0;
    }
    fz_dbg_t s = base; /* a fresh session for each input */
    fz_rsp_reset();
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    switch (data[0] % 3u) {
    case 0:
        if (kproto_debug_decode(p, len, &d) == KERR_OK && d.which_kind == keel_v1_Debug_frame_tag) {
            open_frame(&s.device, &d.kind.frame);
        }
        break;
    case 1:
        for (size_t off = 0; off < len;) {
            size_t n = len - off < 200 ? len - off : 200;
            uint8_t sealed[DBGSESS_SEALED_MAX], plain[DBGSESS_SEALED_MAX];
            size_t sn = 0, pn = 0;
            uint32_t seq = 0;
            if (dbgsess_seal(&s.client, p + off, n, sealed, sizeof(sealed), &sn, &seq) != KERR_OK ||
                dbgsess_open(&s.device, seq, sealed, sn, plain, sizeof(plain), &pn) != KERR_OK || pn != n ||
                memcmp(plain, p + off, n) != 0 ||
                dbgsess_open(&s.device, seq, sealed, sn, plain, sizeof(plain), &pn) != KERR_DBG_REPLAY) {
                abort();
            }
            fz_rsp_feed(plain, pn);
            off += n;
        }
        break;
    default:
        if (kproto_debug_decode(p, len, &d) == KERR_OK) {
            keys(&d);
        }
        break;
    }
    return 0;
}

/*
 * The encrypted debug session over MQTT (docs/debug.md "Transport", proto/keel.proto Debug*):
 * the device end of `keel debug`. keeld and the broker relay only ciphertext.
 *
 *   debug/down DebugOpen{session, client_pub, signature}
 *       signature: the debug key of the installed bundle's policy (uv_upd_debug_key) over the
 *       open transcript. No key, a bad signature, a session already open, the serial debug line
 *       in use: DebugAccept{ok = false, detail}.
 *   debug/up   DebugAccept{session, ok, device_pub, signature}
 *       an ephemeral P-256 key; signature by the device's own key (the mutual-TLS key, whose
 *       certificate from the fleet CA names this device) over the accept transcript.
 *   both ways  DebugFrame{session, seq, sealed}: dbgsess_seal/open, strict sequence numbers.
 *       Down: opened RSP bytes go to uv_dbg_input(). Up: the stub's output, coalesced into
 *       frames of up to DBGSESS_PLAIN_MAX bytes; a frame lwIP has no room for stays sealed and
 *       is published again on the next service run (nothing is lost, nothing re-sealed).
 *   either way DebugClose{session, reason}: from the CLI (gdb left, keel debug ended, keeld saw
 *       the CLI's stream end), or from here on 'D'/'k' ("detach"/"kill"), an idle session
 *       (debug-idle-s, default 3660 s: beyond the CLI's own hour) or a lost broker connection.
 * Every end detaches the stub: breakpoints removed, the app runs on (uv_dbg_detach_transport).
 */
#include "net_dbg.h"

#include <stdio.h>
#include <string.h>

#include "keel/dbgsess.h"
#include "keel/kcrypto.h"
#include "net_seed.h"
#include "net_upd.h"
#include "port.h"
#include "uv.h"
#include "uv_dbg.h"
#include "uv_upd.h"

#define IDLE_DEFAULT_S 3660u
#define OUT_CAP 4096u /* stub output waiting for the link: a 'g' and an 'm' reply or two */

typedef struct net_dbg {
    const char *device_id;
    bool have_key;
    uint8_t device_priv[DBGSESS_PRIV_SIZE];
    uint32_t idle_ms;

    bool active;           /* a session is established (DebugAccept ok sent) */
    bool closing;          /* end after the output is flushed */
    char close_reason[32];
    uint64_t session;
    uint8_t client_pub[DBGSESS_PUB_SIZE];
    dbgsess_t sess;
    uint32_t last_rx_ms;
    uint32_t bad_frames;

    /* output: plaintext ring, and one sealed frame lwIP had no room for */
    uint8_t out[OUT_CAP];
    uint32_t out_rd, out_len;
    bool pend;
    uint32_t pend_seq;
    uint16_t pend_len;
    uint8_t pend_sealed[DBGSESS_SEALED_MAX];
    /* One frame's plaintext, sealed or opened: static, not on the 8 KiB handler stack, where
     * on_frame() runs below lwIP's and Mbed TLS's receive path (service context only). */
    uint8_t plain[DBGSESS_PLAIN_MAX];
} net_dbg_t;

static net_dbg_t nd;

static void mqtt_send(void *ctx, const uint8_t *data, size_t len);
static void mqtt_ended(void *ctx, bool kill);
static const uv_dbg_transport_t mqtt_transport = {"mqtt", mqtt_send, mqtt_ended, NULL};

void net_dbg_init(const char *device_id, const uint8_t *key_pem, uint32_t key_len)
{
    nd.device_id = device_id;
    nd.idle_ms = port_arg_u32("debug-idle-s", IDLE_DEFAULT_S) * 1000u;
    if (!key_pem)
        return;
    /* The raw scalar of the device key: dbgsess_sign takes it as the CLI takes the debug key. */
    if (kc_p256_priv_from_key(key_pem, key_len, nd.device_priv) == KC_OK)
        nd.have_key = true;
    else
        uv_log("net: the device key is not a P-256 key: debug sessions will be refused");
}

/* ------------------------------------------------------------------------------------------ */
/* Publishing                                                                                  */

static keel_v1_Debug *debug_begin(pb_size_t kind)
{
    keel_v1_Debug *m = &net_link_env(keel_v1_Envelope_debug_tag)->body.debug;
    m->which_kind = kind;
    return m;
}

static void send_accept_refused(uint64_t session, const char *detail)
{
    keel_v1_DebugAccept *a = &debug_begin(keel_v1_Debug_accept_tag)->kind.accept;
    a->session = session;
    a->ok = false;
    snprintf(a->detail, sizeof(a->detail), "%s", detail);
    (void)net_link_send(KPROTO_T_DEBUG_UP);
    uv_log("net: debug session %08lx refused: %s", (unsigned long)(uint32_t)session, detail);
}

static bool send_close(uint64_t session, const char *reason)
{
    keel_v1_DebugClose *c = &debug_begin(keel_v1_Debug_close_tag)->kind.close;
    c->session = session;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    return net_link_send(KPROTO_T_DEBUG_UP);
}

/* Publish the pending sealed frame; false while lwIP has no room for it. */
static bool publish_pending(void)
{
    keel_v1_DebugFrame *f = &debug_begin(keel_v1_Debug_frame_tag)->kind.frame;
    f->session = nd.session;
    f->seq = nd.pend_seq;
    f->sealed.size = nd.pend_len;
    memcpy(f->sealed.bytes, nd.pend_sealed, nd.pend_len);
    if (!net_link_send(KPROTO_T_DEBUG_UP))
        return false;
    nd.pend = false;
    return true;
}

/* Seal and publish queued output, in order, until it is all out or the link is full. */
static void flush(void)
{
    for (unsigned guard = 0; guard < 8u && nd.active; guard++) {
        if (nd.pend && !publish_pending())
            return;
        if (nd.out_len == 0u)
            return;
        uint8_t *plain = nd.plain;
        uint32_t n = nd.out_len < sizeof(nd.plain) ? nd.out_len : (uint32_t)sizeof(nd.plain);
        for (uint32_t i = 0; i < n; i++)
            plain[i] = nd.out[(nd.out_rd + i) % OUT_CAP];
        size_t sl = 0;
        kerr_t err = dbgsess_seal(&nd.sess, plain, n, nd.pend_sealed, sizeof(nd.pend_sealed), &sl,
                                  &nd.pend_seq);
        if (err != KERR_OK) {
            uv_log("net: debug session: cannot seal a frame (%s): ending it", kerr_str(err));
            nd.out_len = 0u;
            nd.closing = true;
            snprintf(nd.close_reason, sizeof(nd.close_reason), "device cannot seal");
            return;
        }
        nd.out_rd = (nd.out_rd + n) % OUT_CAP;
        nd.out_len -= n;
        nd.pend_len = (uint16_t)sl;
        nd.pend = true;
    }
}

static void mqtt_send(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    if (!nd.active)
        return;
    if (len > OUT_CAP - nd.out_len) {
        /* The link has been full for a long time: the debugger will time out and retry. */
        uv_log("net: debug session: output queue full, %lu bytes dropped", (unsigned long)len);
        return;
    }
    for (size_t i = 0; i < len; i++)
        nd.out[(nd.out_rd + nd.out_len + i) % OUT_CAP] = data[i];
    nd.out_len += (uint32_t)len;
    flush();
}

/* ------------------------------------------------------------------------------------------ */
/* Session                                                                                     */

static void session_end(const char *reason, bool tell_client)
{
    if (!nd.active)
        return;
    nd.active = false;
    nd.closing = false;
    uv_dbg_detach_transport(&mqtt_transport); /* breakpoints removed, the app runs on */
    if (tell_client)
        (void)send_close(nd.session, reason);
    dbgsess_end(&nd.sess);
    nd.out_len = 0u;
    nd.pend = false;
    uv_log("net: debug session %08lx ended (%s); %lu bad frame(s) dropped",
           (unsigned long)(uint32_t)nd.session, reason, (unsigned long)nd.bad_frames);
}

static void mqtt_ended(void *ctx, bool kill)
{
    (void)ctx;
    nd.closing = true; /* after the last reply ('OK' of the 'D') is out */
    snprintf(nd.close_reason, sizeof(nd.close_reason), "%s", kill ? "kill" : "detach");
}

static void on_open(const keel_v1_DebugOpen *o)
{
    if (nd.active) {
        if (o->session == nd.session)
            return; /* a redelivered open: the accept went out already */
        send_accept_refused(o->session, "another debug session is open on this device");
        return;
    }
    uint8_t key[DBGSESS_PUB_SIZE], h[DBGSESS_HASH_SIZE];
    if (!uv_upd_debug_key(key)) {
        send_accept_refused(o->session, "no debug key in the installed bundle");
        return;
    }
    if (dbgsess_open_hash(nd.device_id, o->session, o->client_pub, h) != KERR_OK ||
        dbgsess_verify(key, h, o->signature) != KERR_OK) {
        send_accept_refused(o->session, "not signed by the installed bundle's debug key");
        return;
    }
    if (!nd.have_key) {
        send_accept_refused(o->session, "the device has no key to sign with (provision it)");
        return;
    }
    uint32_t t0 = port_ticks();
    dbgsess_eph_t eph;
    keel_v1_DebugAccept *a = &debug_begin(keel_v1_Debug_accept_tag)->kind.accept;
    a->session = o->session;
    a->ok = true;
    kerr_t err = dbgsess_keygen(&eph, net_seed_random, NULL);
    if (err == KERR_OK)
        err = dbgsess_accept_hash(nd.device_id, o->session, o->client_pub, eph.pub, h);
    if (err == KERR_OK)
        err = dbgsess_sign(nd.device_priv, h, a->signature);
    memcpy(a->device_pub, eph.pub, DBGSESS_PUB_SIZE);
    if (err == KERR_OK)
        err = dbgsess_start(&nd.sess, DBGSESS_DEVICE, o->session, &eph, o->client_pub);
    dbgsess_wipe(&eph, sizeof(eph));
    if (err != KERR_OK) {
        send_accept_refused(o->session, "the device could not make the session keys");
        return;
    }
    if (!uv_dbg_attach(&mqtt_transport)) {
        dbgsess_end(&nd.sess);
        send_accept_refused(o->session, "the debug serial line is in use (boot word dbg-uart)");
        return;
    }
    /* a (the tx envelope) is still intact: the calls above do not publish. */
    if (!net_link_send(KPROTO_T_DEBUG_UP)) {
        uv_dbg_detach_transport(&mqtt_transport);
        dbgsess_end(&nd.sess);
        uv_log("net: debug session %08lx: no room to send the accept", (unsigned long)(uint32_t)o->session);
        return;
    }
    nd.session = o->session;
    memcpy(nd.client_pub, o->client_pub, sizeof(nd.client_pub));
    nd.active = true;
    nd.closing = false;
    nd.out_len = 0u;
    nd.pend = false;
    nd.bad_frames = 0u;
    nd.last_rx_ms = port_ticks();
    uv_log("net: debug session %08lx accepted (keys and signature in %lu ms)",
           (unsigned long)(uint32_t)o->session, (unsigned long)(port_ticks() - t0));
}

static void on_frame(const keel_v1_DebugFrame *f)
{
    uint8_t *plain = nd.plain;
    size_t n = 0;
    if (!nd.active || f->session != nd.session) {
        nd.bad_frames++;
        return;
    }
    kerr_t err = dbgsess_open(&nd.sess, f->seq, f->sealed.bytes, f->sealed.size, plain,
                              sizeof(nd.plain), &n);
    if (err != KERR_OK) {
        /* Altered, replayed or not ours: never reaches the stub. */
        nd.bad_frames++;
        uv_log("net: debug frame %lu dropped: %s", (unsigned long)f->seq, kerr_str(err));
        return;
    }
    nd.last_rx_ms = port_ticks();
    if (!uv_dbg_input(plain, n))
        uv_log("net: debug input queue full: %lu bytes dropped", (unsigned long)n);
}

void net_dbg_message(const keel_v1_Debug *m)
{
    switch (m->which_kind) {
    case keel_v1_Debug_open_tag: on_open(&m->kind.open); break;
    case keel_v1_Debug_frame_tag: on_frame(&m->kind.frame); break;
    case keel_v1_Debug_close_tag:
        if (nd.active && m->kind.close.session == nd.session)
            session_end(m->kind.close.reason[0] ? m->kind.close.reason : "closed by the client", false);
        break;
    default: break; /* an accept is ours to send, never to receive */
    }
}

void net_dbg_poll(uint32_t now, bool link_up)
{
    if (!nd.active)
        return;
    if (!link_up) {
        session_end("connection to the broker lost", false);
        return;
    }
    flush();
    if (nd.closing && nd.out_len == 0u && !nd.pend) {
        session_end(nd.close_reason, true);
        return;
    }
    if (now - nd.last_rx_ms > nd.idle_ms)
        session_end("idle timeout", true);
}

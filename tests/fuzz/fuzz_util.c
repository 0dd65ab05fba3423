/* Helpers of the fuzz targets (fuzz_util.h). */
#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_upd_fixture.h"

static fx_dev_t *dev;
static uint8_t factory[FX_REGION];

upd_t *fz_dev_reset(void)
{
    if (dev == NULL) {
        dev = calloc(1, sizeof(*dev));
        if (dev == NULL) {
            abort();
        }
        fx_image(factory, FX_REGION / 2, 7u);
    }
    /* A fresh device each time: state left by one input must not hide a bug from the next. */
    if (fx_dev_init(dev, factory) != KERR_OK || upd_boot(&dev->upd) != KERR_OK) {
        abort();
    }
    return &dev->upd;
}

uint32_t fz_bundle(uint8_t *out, uint32_t cap, uint32_t content_len, uint32_t seed, uint32_t version,
                   uint32_t counter)
{
    static uint8_t region[FX_REGION];
    if (cap < FX_BUNDLE_MAX || content_len > FX_REGION) {
        return 0;
    }
    fx_image(region, content_len, seed);
    fx_bundle_opts_t o = fx_opts(version, counter, content_len);
    return fx_bundle(region, &o, out);
}

uint32_t fz_resign(uint8_t *buf, uint32_t len, uint32_t cap)
{
    if (len < KBDL_HDR_SIZE) {
        return 0;
    }
    uint32_t mlen = peek32(buf + KBDL_OFF_MANIFEST_LEN);
    if (mlen < KBDL_HDR_SIZE || mlen > len || mlen > cap - KBDL_SIG_ENV_SIZE) {
        return 0;
    }
    return kbdl_sign(buf, mlen, cap, fx_priv_fleet) == KERR_OK ? mlen + KBDL_SIG_ENV_SIZE : 0;
}

int fz_rng(void *ctx, unsigned char *out, size_t len)
{
    static uint32_t s = 0x9E3779B9u;
    for (size_t i = 0; i < len; i++) {
        out[i] = (unsigned char)xs32(&s);
    }
    return 0;
}

int fz_dbg_start(fz_dbg_t *d)
{
    dbgsess_eph_t ec, ed;
    memset(d, 0, sizeof(*d));
    d->session = 0x1122334455667788ull;
    if (dbgsess_keygen(&ec, fz_rng, NULL) != KERR_OK || dbgsess_keygen(&ed, fz_rng, NULL) != KERR_OK) {
        return -1;
    }
    uint8_t pc[DBGSESS_PUB_SIZE], pd[DBGSESS_PUB_SIZE];
    memcpy(pc, ec.pub, sizeof(pc));
    memcpy(pd, ed.pub, sizeof(pd));
    if (dbgsess_start(&d->client, DBGSESS_CLIENT, d->session, &ec, pd) != KERR_OK ||
        dbgsess_start(&d->device, DBGSESS_DEVICE, d->session, &ed, pc) != KERR_OK) {
        return -1;
    }
    return 0;
}

uint8_t *fz_read_file(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    for (size_t r; b != NULL && (r = fread(b + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (nb == NULL) {
                free(b);
                b = NULL;
            }
            b = nb;
        }
    }
    fclose(f);
    *out_len = n;
    return b;
}

const keel_v1_Envelope *fz_envelope(const kproto_topic_t *topics, unsigned n, const uint8_t *data,
                                    size_t size, kproto_topic_t *out_topic)
{
    static keel_v1_Envelope env, again;
    static uint8_t enc[KPROTO_ENVELOPE_MAX], enc2[KPROTO_ENVELOPE_MAX];
    if (size < 2) {
        return NULL;
    }
    /* Topic strings arrive from the broker: parse a prefix of the input as one (any bytes). */
    size_t tlen = data[1] < size - 2 ? data[1] : size - 2;
    char topic[256], dev[KIDENT_ID_MAX + 1], chan[KPROTO_CHANNEL_MAX + 1];
    kproto_topic_t pt;
    memcpy(topic, data + 2, tlen);
    topic[tlen] = '\0';
    if (kproto_topic_parse(topic, dev, &pt, chan) == KERR_OK &&
        (kproto_topic_info(pt) == NULL || strlen(dev) > KIDENT_ID_MAX || kident_check_id(dev) != KERR_OK ||
         strlen(chan) > KPROTO_CHANNEL_MAX)) {
        abort(); /* a parsed topic must name a known topic and a valid device */
    }
    kproto_topic_t t = topics[data[0] % n];
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    if (kproto_decode(t, p, len, &env) != KERR_OK) {
        return NULL;
    }
    size_t elen = 0, elen2 = 0;
    if (kproto_encode(&env, enc, sizeof(enc), &elen) != KERR_OK ||
        kproto_decode(t, enc, elen, &again) != KERR_OK ||
        kproto_encode(&again, enc2, sizeof(enc2), &elen2) != KERR_OK || elen != elen2 ||
        memcmp(enc, enc2, elen) != 0) {
        abort();
    }
    *out_topic = t;
    return &env;
}

/* ---- the RSP engine on a fake target ---------------------------------------------------- */

#define FR_CODE 0x10000000u
#define FR_RAM 0x38000000u
#define FR_SIZE 0x10000u
#define FR_BP 8

static struct {
    rsp_t rsp;
    uint32_t regs[RSP_REG_COUNT];
    uint8_t code[FR_SIZE], ram[FR_SIZE];
    uint32_t bp[FR_BP];
    int nbp;
    bool resumed;
} fr;

static uint8_t *fr_mem(uint32_t a, uint32_t len)
{
    if (a >= FR_CODE && len <= FR_SIZE && a - FR_CODE <= FR_SIZE - len) {
        return fr.code + (a - FR_CODE);
    }
    if (a >= FR_RAM && len <= FR_SIZE && a - FR_RAM <= FR_SIZE - len) {
        return fr.ram + (a - FR_RAM);
    }
    return NULL;
}

static kerr_t fr_read_reg(void *c, unsigned n, uint32_t *v)
{
    if (n >= RSP_REG_COUNT) {
        abort(); /* the engine must check register numbers itself */
    }
    *v = fr.regs[n];
    return KERR_OK;
}

static kerr_t fr_write_reg(void *c, unsigned n, uint32_t v)
{
    if (n >= RSP_REG_COUNT) {
        abort();
    }
    fr.regs[n] = v;
    return KERR_OK;
}

static kerr_t fr_read_mem(void *c, uint32_t a, uint8_t *out, uint32_t len)
{
    uint8_t *m = fr_mem(a, len);
    if (m == NULL) {
        return KERR_RANGE;
    }
    memcpy(out, m, len);
    return KERR_OK;
}

static kerr_t fr_write_mem(void *c, uint32_t a, const uint8_t *d, uint32_t len)
{
    uint8_t *m = fr_mem(a, len);
    if (m == NULL) {
        return KERR_RANGE;
    }
    memcpy(m, d, len);
    return KERR_OK;
}

static kerr_t fr_insert_bp(void *c, rsp_bp_type_t t, uint32_t a, uint32_t k)
{
    if (fr_mem(a, 2) == NULL) {
        return KERR_RANGE;
    }
    if (fr.nbp == FR_BP) {
        return KERR_NOMEM;
    }
    fr.bp[fr.nbp++] = a;
    return KERR_OK;
}

static kerr_t fr_remove_bp(void *c, rsp_bp_type_t t, uint32_t a, uint32_t k)
{
    for (int i = 0; i < fr.nbp; i++) {
        if (fr.bp[i] == a) {
            fr.bp[i] = fr.bp[--fr.nbp];
            return KERR_OK;
        }
    }
    return KERR_INVAL;
}

static kerr_t fr_resume(void *c, bool step, int sig)
{
    fr.resumed = true;
    return KERR_OK;
}

static void fr_halt(void *c) {}
static int fr_stop_signal(void *c) { return RSP_SIGTRAP; }
static void fr_detach(void *c) { fr.nbp = 0; }
static void fr_kill(void *c) {}

static void fr_send(void *ctx, const uint8_t *d, size_t n)
{
    if (n == 1 && (d[0] == '+' || d[0] == '-')) {
        return;
    }
    if (n < 4 || n > RSP_PACKET_MAX + 4 || d[0] != '$' || d[n - 3] != '#') {
        abort(); /* not one whole packet */
    }
    uint8_t sum = 0;
    for (size_t i = 1; i < n - 3; i++) {
        sum = (uint8_t)(sum + d[i]);
    }
    char hex[3];
    snprintf(hex, sizeof(hex), "%02x", sum);
    if (memcmp(hex, d + n - 2, 2) != 0) {
        abort(); /* wrong checksum */
    }
}

static const rsp_target_ops_t fr_ops = {
    .read_reg = fr_read_reg, .write_reg = fr_write_reg, .read_mem = fr_read_mem, .write_mem = fr_write_mem,
    .insert_bp = fr_insert_bp, .remove_bp = fr_remove_bp, .resume = fr_resume, .halt = fr_halt,
    .stop_signal = fr_stop_signal, .detach = fr_detach, .kill = fr_kill,
};

void fz_rsp_reset(void)
{
    static uint8_t code[FR_SIZE];
    static bool code_made;
    if (!code_made) {
        for (size_t i = 0; i < FR_SIZE; i++) {
            code[i] = (uint8_t)(i * 7u);
        }
        code_made = true;
    }
    memset(&fr, 0, sizeof(fr));
    memcpy(fr.code, code, sizeof(code));
    fr.regs[RSP_REG_PC] = FR_CODE + 0x400u;
    fr.regs[RSP_REG_SP] = FR_RAM + FR_SIZE;
    rsp_config_t cfg = {&fr_ops, NULL, fr_send, NULL};
    if (rsp_init(&fr.rsp, &cfg) != KERR_OK) {
        abort();
    }
}

void fz_rsp_feed(const uint8_t *data, size_t len)
{
    /* In transport-sized pieces; after each, a resumed app stops (breakpoint or step done). */
    for (size_t off = 0; off < len;) {
        size_t n = len - off < 61 ? len - off : 61;
        rsp_input(&fr.rsp, data + off, n);
        off += n;
        if (fr.resumed) {
            fr.resumed = false;
            rsp_notify_stop(&fr.rsp);
        }
    }
}

void fz_rsp_lost(void)
{
    rsp_connection_lost(&fr.rsp);
    if (fr.nbp != 0) {
        abort();
    }
}

void fz_bundle_pubkey(uint8_t out[65])
{
    if (kbdl_pubkey(fx_priv_fleet, out) != KERR_OK) {
        abort();
    }
}

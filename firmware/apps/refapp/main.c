/*
 * refapp: the reference app of the delta benchmark (docs/delta.md, scripts/bench-delta.sh).
 *
 * A realistic product image, not a table of random bytes: a "sensor gateway" that filters
 * samples, frames them, seals each record (HKDF-derived key, AES-GCM), signs the digest (ECDSA
 * P-256, deterministic), checks its fleet CA certificate (X.509), opens a TLS 1.2 client
 * session towards a memory transport (so the whole handshake state machine is linked), and
 * checksums a UDP-style frame with lwIP. About 130 KiB of code, most of it Mbed TLS and lwIP,
 * laid out after this file's own functions: a change here moves every library function.
 *
 * The variants of the benchmark (CMakeLists.txt):
 *   REF_PERIOD_MS       one constant (1000 -> 1500)
 *   REF_VERSION         the version string ("1.4.2" -> "1.4.3")
 *   REF_INSERT          a few lines inserted early in .text (in the first function of this file)
 *   REF_NEWFN           a new function (a median filter) called from the main loop
 *   (refapp-opt)        the same source compiled with -O2 instead of -O3
 * The keys are test keys and the RNG is a fixed xorshift: this app measures code, it protects
 * nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mbedtls/base64.h"
#include "mbedtls/cmac.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/pk.h"
#include "mbedtls/ecdh.h"
#include "mbedtls/error.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/gcm.h"
#include "mbedtls/hkdf.h"
#include "mbedtls/md.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"
#include "psa/crypto.h"

#include "lwip/dhcp.h"
#include "lwip/apps/mqtt.h"
#include "lwip/etharp.h"
#include "lwip/inet_chksum.h"
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
#include "netif/ethernet.h"
#include "arch/cc.h"

#include "app_hw.h"
#include "console.h"
#include "keel.h"

#ifndef REF_PERIOD_MS
#define REF_PERIOD_MS 1000u
#endif
#ifndef REF_VERSION
#define REF_VERSION "1.4.2"
#endif
#define REF_WATCHDOG_MS 4000u
#define REF_WINDOW 16u

static const char ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBpjCCAUugAwIBAgIUFijuxKYc/3aSmPcl0cK2RN/t+F4wCgYIKoZIzj0EAwIw\n"
    "KDEXMBUGA1UEAwwOcmVmYXBwIHRlc3QgQ0ExDTALBgNVBAoMBEtlZWwwHhcNMjYx\n"
    "MjA3MjIwMDEzWhcNMzYxMjA0MjIwMDEzWjAoMRcwFQYDVQQDDA5yZWZhcHAgdGVz\n"
    "dCBDQTENMAsGA1UECgwES2VlbDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABLD3\n"
    "+QoJieo3r9EL58y/xoF2L0ognpScyGsRMtHz8e7psigNJZvNz0SufTIeSdaAQNfW\n"
    "AMwtSDSNuFNeiSfrAbGjUzBRMB0GA1UdDgQWBBQaPalUYceFCPmYkX36qOHIJCNb\n"
    "jzAfBgNVHSMEGDAWgBQaPalUYceFCPmYkX36qOHIJCNbjzAPBgNVHRMBAf8EBTAD\n"
    "AQH/MAoGCCqGSM49BAMCA0kAMEYCIQCrv437N2yTCCvTFoQevMH9WbkLSvMf/jPe\n"
    "LzQYBOh8NQIhAImXesJdfBL4lN89yUInWzYDxlwOpuUt22+nFaES0loT\n"
    "-----END CERTIFICATE-----\n"
    ;

static const char sign_key_pem[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIGSZEgW8kT3gAHwKlJG1xzhDrJ5eP8FAtx6tiGc7b7ZYoAoGCCqGSM49\n"
    "AwEHoUQDQgAEsPf5CgmJ6jev0QvnzL/GgXYvSiCelJzIaxEy0fPx7umyKA0lm83P\n"
    "RK59Mh5J1oBA19YAzC1INI24U16JJ+sBsQ==\n"
    "-----END EC PRIVATE KEY-----\n"
    ;

/* Device test key (P-256 scalar) and the peer's public point for ECDH. */
static const uint8_t dev_key[32] = {
    0x6c, 0x1f, 0x3e, 0x59, 0x80, 0x2a, 0x11, 0xd4, 0x93, 0x4b, 0x5e, 0x07, 0xc2, 0x88, 0x1a, 0x3d,
    0x52, 0xee, 0x0b, 0x74, 0x29, 0xc1, 0x66, 0x9f, 0x30, 0x8d, 0x47, 0xb2, 0x15, 0xfa, 0x63, 0x0e,
};
static const uint8_t hkdf_salt[] = "keel refapp record key v1";

typedef struct {
    int32_t window[REF_WINDOW];
    uint32_t fill, next;
    int64_t sum;
} filter_t;

static uint32_t rng_state = 0x2545F491u;
static mqtt_client_t *mqtt;

/* Not a DRBG: the benchmark app needs deterministic code paths, not secrets. */
static int app_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 17;
        rng_state ^= rng_state << 5;
        out[i] = (unsigned char)rng_state;
    }
    return 0;
}

/* The microvisor's Mbed TLS configuration (shared with this app) draws PSA randomness from an
 * external source and lets lwIP's TLS glue yield during a handshake: the app provides both. */
psa_status_t mbedtls_psa_external_get_random(mbedtls_psa_external_random_context_t *context,
                                             uint8_t *output, size_t output_size,
                                             size_t *output_length)
{
    (void)context;
    app_rng(NULL, output, output_size);
    *output_length = output_size;
    return PSA_SUCCESS;
}

void lwip_port_yield(void)
{
}

/* newlib's malloc (Mbed TLS bignums) grows into the linker script's heap. */
extern char __heap_start[], __heap_end[];
void *_sbrk(ptrdiff_t incr);
void *_sbrk(ptrdiff_t incr)
{
    static char *brk = __heap_start;
    if (incr > __heap_end - brk)
        return (void *)-1;
    char *old = brk;
    brk += incr;
    return old;
}

static int32_t filter_push(filter_t *f, int32_t v)
{
#ifdef REF_INSERT
    /* clamp outliers before they enter the window, and say so once */
    static uint32_t clamped;
    if (v > 23500 || v < -23500) {
        v = v > 0 ? 23500 : -23500;
        if (clamped++ == 0)
            console_puts("refapp: clamping outliers\n");
    }
#endif
    if (f->fill == REF_WINDOW)
        f->sum -= f->window[f->next];
    else
        f->fill++;
    f->window[f->next] = v;
    f->sum += v;
    f->next = (f->next + 1u) % REF_WINDOW;
    return (int32_t)(f->sum / (int64_t)f->fill);
}

#ifdef REF_NEWFN
/* Median of the window (insertion sort of a copy): robust against single spikes. */
static __attribute__((noinline)) int32_t filter_median(const filter_t *f)
{
    int32_t s[REF_WINDOW];
    uint32_t n = f->fill;
    for (uint32_t i = 0; i < n; i++) {
        int32_t v = f->window[i];
        uint32_t j = i;
        while (j > 0 && s[j - 1] > v) {
            s[j] = s[j - 1];
            j--;
        }
        s[j] = v;
    }
    return n ? s[n / 2] : 0;
}
#endif

uint32_t sys_now(void);

static int32_t sample(uint32_t t)
{
    uint32_t r;
    app_rng(NULL, (unsigned char *)&r, sizeof(r));
    int32_t tri = (int32_t)(t % 2000u) - 1000;
    return 21000 + (tri < 0 ? -tri : tri) * 3 + (int32_t)(r % 64u) - 32;
}

static void put_hex(const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        console_putc(hex[p[i] >> 4]);
        console_putc(hex[p[i] & 15u]);
    }
}

static int say_err(const char *what, int rc)
{
    if (rc != 0) {
        char buf[160];
        snprintf(buf, sizeof(buf), "refapp: %s failed: -0x%04x\n", what, (unsigned)-rc);
        console_puts(buf);
    }
    return rc;
}

/* The record key: HKDF-SHA256 over the device key and the salt. */
static int record_key(uint8_t key[16])
{
    const mbedtls_md_info_t *sha = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    return mbedtls_hkdf(sha, hkdf_salt, sizeof(hkdf_salt) - 1, dev_key, sizeof(dev_key),
                        (const unsigned char *)"record", 6, key, 16);
}

/* Frame, seal (AES-128-GCM) and sign (ECDSA P-256 over SHA-256) one record. */
static int seal_record(uint32_t seq, int32_t avg, int32_t extra, uint8_t tag_out[16])
{
    char rec[96];
    int n = snprintf(rec, sizeof(rec), "{\"v\":\"%s\",\"seq\":%lu,\"avg\":%ld,\"x\":%ld}",
                     REF_VERSION, (unsigned long)seq, (long)avg, (long)extra);
    uint8_t key[16], iv[12] = { 0 }, ct[96], digest[32];
    int rc = record_key(key);
    if (rc)
        return say_err("hkdf", rc);
    memcpy(iv, &seq, sizeof(seq));
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, 128);
    if (!rc)
        rc = mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, (size_t)n, iv, sizeof(iv), NULL,
                                       0, (const uint8_t *)rec, ct, 16, tag_out);
    mbedtls_gcm_free(&gcm);
    if (rc)
        return say_err("gcm", rc);
    rc = mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), ct, (size_t)n, digest);
    if (rc)
        return say_err("sha256", rc);

    mbedtls_ecp_group grp;
    mbedtls_mpi d, r, s;
    mbedtls_ecp_point q;
    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&d), mbedtls_mpi_init(&r), mbedtls_mpi_init(&s);
    mbedtls_ecp_point_init(&q);
    rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    if (!rc)
        rc = mbedtls_mpi_read_binary(&d, dev_key, sizeof(dev_key));
    if (!rc)
        rc = mbedtls_ecdsa_sign(&grp, &r, &s, &d, digest, sizeof(digest), app_rng, NULL);
    if (!rc)
        rc = mbedtls_ecp_mul(&grp, &q, &d, &grp.G, app_rng, NULL);
    if (!rc)
        rc = mbedtls_ecdsa_verify(&grp, digest, sizeof(digest), &q, &r, &s);
    mbedtls_ecp_point_free(&q);
    mbedtls_mpi_free(&d), mbedtls_mpi_free(&r), mbedtls_mpi_free(&s);
    mbedtls_ecp_group_free(&grp);
    return say_err("ecdsa", rc);
}

/* ECDH with the peer's public key (here: our own, for lack of a peer). */
static int shared_secret(uint8_t out[32])
{
    mbedtls_ecp_group grp;
    mbedtls_mpi d, z;
    mbedtls_ecp_point q;
    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&d), mbedtls_mpi_init(&z);
    mbedtls_ecp_point_init(&q);
    int rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    if (!rc)
        rc = mbedtls_mpi_read_binary(&d, dev_key, sizeof(dev_key));
    if (!rc)
        rc = mbedtls_ecp_mul(&grp, &q, &d, &grp.G, app_rng, NULL);
    if (!rc)
        rc = mbedtls_ecdh_compute_shared(&grp, &z, &q, &d, app_rng, NULL);
    if (!rc)
        rc = mbedtls_mpi_write_binary(&z, out, 32);
    mbedtls_ecp_point_free(&q);
    mbedtls_mpi_free(&d), mbedtls_mpi_free(&z);
    mbedtls_ecp_group_free(&grp);
    return say_err("ecdh", rc);
}

/* The daily report: signed with the PEM key (PK layer), MAC'ed (AES-CMAC), printed in base64. */
static int daily_report(uint32_t seq, int32_t avg)
{
    mbedtls_pk_context pk;
    mbedtls_ctr_drbg_context drbg;
    uint8_t msg[32], hash[32], sig[MBEDTLS_ECDSA_MAX_LEN], mac[16];
    char b64[160];
    size_t sig_len = 0, olen = 0;
    mbedtls_pk_init(&pk);
    mbedtls_ctr_drbg_init(&drbg);
    memset(msg, 0, sizeof(msg));
    memcpy(msg, &seq, 4);
    memcpy(msg + 4, &avg, 4);
    int rc = mbedtls_ctr_drbg_seed(&drbg, app_rng, NULL, (const uint8_t *)"refapp", 6);
    if (!rc)
        rc = mbedtls_pk_parse_key(&pk, (const uint8_t *)sign_key_pem, sizeof(sign_key_pem), NULL, 0,
                                  mbedtls_ctr_drbg_random, &drbg);
    if (!rc)
        rc = mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), msg, sizeof(msg), hash);
    if (!rc)
        rc = mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, sizeof(sig), &sig_len,
                             mbedtls_ctr_drbg_random, &drbg);
    if (!rc)
        rc = mbedtls_cipher_cmac(mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_128_ECB),
                                 dev_key, 128, sig, sig_len, mac);
    if (!rc)
        rc = mbedtls_base64_encode((unsigned char *)b64, sizeof(b64), &olen, mac, sizeof(mac));
    if (!rc) {
        console_puts("refapp: daily report mac ");
        console_puts(b64);
        console_puts("\n");
        if (mqtt && mqtt_client_is_connected(mqtt))
            (void)mqtt_publish(mqtt, "refapp/report", sig, (u16_t)sig_len, 1, 0, NULL, NULL);
    }
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_pk_free(&pk);
    return say_err("report", rc);
}

/* A memory transport: the ClientHello goes into a buffer, nothing ever comes back. */
static uint8_t tls_out[2048];
static size_t tls_out_len;

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    (void)ctx;
    size_t n = sizeof(tls_out) - tls_out_len < len ? sizeof(tls_out) - tls_out_len : len;
    memcpy(tls_out + tls_out_len, buf, n);
    tls_out_len += n;
    return (int)n;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx, (void)buf, (void)len;
    return MBEDTLS_ERR_SSL_WANT_READ;
}

/* Parse the CA, start a TLS client handshake: returns the ClientHello length. */
static int tls_probe(void)
{
    mbedtls_x509_crt ca;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt_init(&ca);
    mbedtls_ssl_config_init(&conf);
    mbedtls_ssl_init(&ssl);
    int rc = mbedtls_x509_crt_parse(&ca, (const unsigned char *)ca_pem, sizeof(ca_pem));
    if (!rc) {
        static char info[640];
        uint32_t flags = 0;
        if (mbedtls_x509_crt_info(info, sizeof(info), "refapp:   ", &ca) > 0) {
            console_puts("refapp: fleet CA\n");
            console_puts(info);
        }
        rc = mbedtls_x509_crt_verify(&ca, &ca, NULL, NULL, &flags, NULL, NULL);
        if (rc) {
            (void)mbedtls_x509_crt_verify_info(info, sizeof(info), "refapp:   ", flags);
            console_puts(info);
        }
    }
    if (!rc)
        rc = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);
    if (!rc) {
        mbedtls_ssl_conf_rng(&conf, app_rng, NULL);
        mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
        rc = mbedtls_ssl_setup(&ssl, &conf);
    }
    if (!rc)
        rc = mbedtls_ssl_set_hostname(&ssl, "gateway.keel.example");
    if (!rc) {
        mbedtls_ssl_set_bio(&ssl, NULL, bio_send, bio_recv, NULL);
        tls_out_len = 0;
        rc = mbedtls_ssl_handshake(&ssl);
        if (rc == MBEDTLS_ERR_SSL_WANT_READ)
            rc = 0;
    }
    mbedtls_ssl_free(&ssl);
    mbedtls_ssl_config_free(&conf);
    mbedtls_x509_crt_free(&ca);
    return rc ? say_err("tls", rc) : (int)tls_out_len;
}

/* A UDP-style frame to the collector, with lwIP's Internet checksum. */
static uint16_t frame_checksum(uint32_t seq, int32_t avg)
{
    ip4_addr_t collector;
    uint8_t frame[32];
    if (!ip4addr_aton("192.0.2.17", &collector))
        return 0;
    memcpy(frame, &collector, 4);
    memcpy(frame + 4, &seq, 4);
    memcpy(frame + 8, &avg, 4);
    memset(frame + 12, 0, sizeof(frame) - 12);
    return inet_chksum(frame, sizeof(frame));
}

/* The uplink: lwIP's stack (NO_SYS) over a capture-only Ethernet interface. Frames lwIP sends
 * are counted, never transmitted: enough to run DHCP, ARP, UDP and an MQTT connect for real. */
static struct netif uplink;
static uint32_t frames_out, bytes_out;

static err_t uplink_output(struct netif *n, struct pbuf *p)
{
    (void)n;
    frames_out++;
    bytes_out += p->tot_len;
    return ERR_OK;
}

static err_t uplink_init(struct netif *n)
{
    static const uint8_t mac[6] = { 0x02, 0x4b, 0x45, 0x45, 0x4c, 0x01 };
    n->name[0] = 'r', n->name[1] = 'f';
    n->mtu = 1500;
    n->hwaddr_len = 6;
    memcpy(n->hwaddr, mac, 6);
    n->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    n->output = etharp_output;
    n->linkoutput = uplink_output;
    return ERR_OK;
}

/* A status service on TCP port 2323: each line received is answered with the counters. */
static err_t status_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    (void)arg;
    if (!p || err != ERR_OK) {
        if (p)
            pbuf_free(p);
        (void)tcp_close(pcb);
        return ERR_OK;
    }
    char line[80];
    int n = snprintf(line, sizeof(line), "refapp %s frames %lu bytes %lu\r\n", REF_VERSION,
                     (unsigned long)frames_out, (unsigned long)bytes_out);
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    if (n > 0 && tcp_sndbuf(pcb) >= (u16_t)n) {
        (void)tcp_write(pcb, line, (u16_t)n, TCP_WRITE_FLAG_COPY);
        (void)tcp_output(pcb);
    }
    return ERR_OK;
}

static err_t status_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    (void)arg;
    if (err != ERR_OK || !pcb)
        return ERR_VAL;
    tcp_recv(pcb, status_recv);
    return ERR_OK;
}

static void status_listen(void)
{
    struct tcp_pcb *pcb = tcp_new();
    if (!pcb)
        return;
    if (tcp_bind(pcb, IP_ADDR_ANY, 2323) != ERR_OK) {
        (void)tcp_close(pcb);
        return;
    }
    struct tcp_pcb *l = tcp_listen(pcb);
    if (l)
        tcp_accept(l, status_accept);
}

static void uplink_start(void)
{
    ip4_addr_t ip, mask, gw, broker;
    IP4_ADDR(&ip, 192, 0, 2, 40);
    IP4_ADDR(&mask, 255, 255, 255, 0);
    IP4_ADDR(&gw, 192, 0, 2, 1);
    IP4_ADDR(&broker, 192, 0, 2, 17);
    lwip_init();
    netif_add(&uplink, &ip, &mask, &gw, NULL, uplink_init, ethernet_input);
    netif_set_default(&uplink);
    netif_set_up(&uplink);
    netif_set_link_up(&uplink);
    (void)dhcp_start(&uplink);
    struct udp_pcb *u = udp_new();
    struct pbuf *p = pbuf_alloc(PBUF_TRANSPORT, 16, PBUF_RAM);
    if (u && p) {
        memset(p->payload, 0x5a, 16);
        (void)udp_sendto(u, p, &broker, 5683);
    }
    if (p)
        pbuf_free(p);
    if (u)
        udp_remove(u);
    status_listen();
    mqtt = mqtt_client_new();
    if (mqtt) {
        struct mqtt_connect_client_info_t ci = { 0 };
        ci.client_id = "refapp";
        ci.keep_alive = 60;
        (void)mqtt_client_connect(mqtt, &broker, 1883, NULL, NULL, &ci);
    }
}

uint32_t lwip_port_rand(void);
uint32_t lwip_port_rand(void)
{
    uint32_t r;
    app_rng(NULL, (unsigned char *)&r, sizeof(r));
    return r;
}

/* lwIP's hooks (arch/cc.h): this app uses lwIP's utilities only, never its stack. */
uint32_t sys_now(void);
uint32_t sys_now(void)
{
    uint64_t us = 0;
    (void)keel_time_get_us(&us);
    return (uint32_t)(us / 1000u);
}

void lwip_port_assert(const char *msg, const char *file, int line)
{
    (void)file, (void)line;
    console_puts("refapp: lwIP assertion: ");
    console_puts(msg);
    console_puts("\n");
    for (;;)
        ; /* the app watchdog restarts us */
}

int main(void)
{
    console_init();
    console_puts("refapp " REF_VERSION ": sensor gateway\n");
    (void)keel_watchdog_start(REF_WATCHDOG_MS);
    uint8_t z[32], tag[16];
    if (shared_secret(z) == 0) {
        console_puts("refapp: session key ");
        put_hex(z, 8);
        console_puts("\n");
    }
    uplink_start();
    int hello = tls_probe();
    if (hello > 0) {
        console_puts("refapp: ClientHello ");
        console_put_dec((uint32_t)hello);
        console_puts(" bytes\n");
    }
    filter_t f = { { 0 }, 0, 0, 0 };
    uint64_t next = 0;
    for (uint32_t seq = 0;; seq++) {
        uint64_t now = 0;
        (void)keel_watchdog_kick();
        do {
            sys_check_timeouts();
            (void)keel_time_get_us(&now);
        } while (now < next);
        next = now + (uint64_t)REF_PERIOD_MS * 1000u;
        int32_t avg = filter_push(&f, sample(seq * REF_PERIOD_MS));
        if (seq % 86400u == 0)
            (void)daily_report(seq, avg);
        int32_t extra = 0;
#ifdef REF_NEWFN
        extra = filter_median(&f);
#endif
        if (seal_record(seq, avg, extra, tag) == 0) {
            console_puts("refapp: record ");
            console_put_dec(seq);
            console_puts(" avg ");
            console_put_int(avg);
            console_puts(" csum ");
            console_put_hex(frame_checksum(seq, avg));
            console_puts(" tag ");
            put_hex(tag, 4);
            console_puts(" frames ");
            console_put_dec(frames_out);
            console_puts("\n");
        }
    }
}

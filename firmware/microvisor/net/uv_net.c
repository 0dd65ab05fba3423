/*
 * Network bring-up and the lwIP NO_SYS port: netif glue over the board's NIC (nic.h), sys_now(),
 * lwip_port_assert(). Randomness (lwip_port_rand) lives in net_seed.c, the MQTT link in
 * net_link.c.
 *
 * Frame path (all in the service, so lwIP sees one thread):
 *
 *   NIC IRQ (0x40): ack, mask RX irq, pend service
 *   service (0x60) -> uv_net_poll(): nic_recv() -> pbuf -> netif.input (ethernet_input)
 *                                    nic_rx_irq_enable(); sys_check_timeouts(); link step
 *   lwIP output -> linkoutput -> copy the pbuf chain into one aligned frame -> nic_send()
 */
#include "uv_net.h"

#include <malloc.h>
#include <string.h>

#include "board.h"
#include "keel/board.h"
#include "nic.h"
#include "lwip/dhcp.h"
#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"
#include "net_rec.h"
#include "net_seed.h"
#include "port.h"
#include "uv.h"

/* The address QEMU's restricted user network forwards to the broker on the host
 * (guestfwd=tcp:10.0.2.100:PORT-cmd:keel relay PORT, see tools/keel/qrun.c). On-link in slirp's
 * /24, which matters: restrict=on gives the guest no router. */
#define NET_BROKER_ADDR LWIP_MAKEU32(10, 0, 2, 100)
#define RX_BUDGET 32u /* frames per service run: bounded, the FIFO holds ~7 anyway */

typedef struct net {
    volatile bool on;
    bool ip_logged;
    struct netif netif;
    uint32_t start_ms;
    uint8_t fleet_buf[NET_FLEET_REC_MAX] __attribute__((aligned(4)));
    net_fleet_t fleet;
    uint8_t device_buf[NET_DEVICE_REC_MAX] __attribute__((aligned(4)));
    net_device_cred_t cred;
    bool have_cred;
    /* CPU use of the network in the service (boot word net-stats=MS: log it every MS) */
    uint32_t stats_period, stats_next;
    uint64_t busy_us, stats_start_us;
    uint32_t polls;
} net_t;

static net_t net;

/*
 * Stack budget: lwIP, TLS and the MQTT client run in the service, on the handler stack (MSP_S,
 * 8 KiB, shared with the tick and the fault handlers). The free part of it is painted at start and
 * the deepest use reported once connected (uv_net_stack_used()), so a change that eats the margin
 * shows in the console and in tests.
 */
extern uint32_t __msp_stack_limit[];
#define STACK_PAINT 0x5AFE57ACu

static void stack_paint(void)
{
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = __msp_stack_limit; (uint32_t)(uintptr_t)p < sp - 64u; p++)
        *p = STACK_PAINT;
}

uint32_t uv_net_stack_used(void)
{
    extern uint32_t __msp_stack_top[];
    uint32_t *p = __msp_stack_limit;
    while (p < __msp_stack_top && *p == STACK_PAINT)
        p++;
    return (uint32_t)((uintptr_t)__msp_stack_top - (uintptr_t)p);
}
/* One frame buffer for both directions: a received frame is copied into a pbuf before lwIP sees
 * it, so whatever lwIP transmits while handling it (an ACK, an ARP reply) may reuse the buffer. */
static uint32_t frame[(NIC_FRAME_MAX + 4u + 3u) / 4u];

u32_t sys_now(void)
{
    return port_ticks();
}

void lwip_port_assert(const char *msg, const char *file, int line)
{
    uv_log("lwIP invariant broken: %s (%s:%d): resetting", msg, file, line);
    uv_reset(UV_RESET_FAULT);
}

static void on_rx_irq(void)
{
    uv_service_pend();
}

static err_t linkoutput(struct netif *nif, struct pbuf *p)
{
    (void)nif;
    if (p->tot_len > NIC_FRAME_MAX)
        return ERR_BUF;
    pbuf_copy_partial(p, frame, p->tot_len, 0);
    return nic_send((const uint8_t *)frame, p->tot_len) ? ERR_OK : ERR_IF;
}

static err_t netif_setup(struct netif *nif)
{
    nif->name[0] = 'e';
    nif->name[1] = '0';
    nif->mtu = 1500;
    nif->hwaddr_len = ETH_HWADDR_LEN;
    nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    nif->output = etharp_output;
    nif->linkoutput = linkoutput;
    return ERR_OK;
}

static void rx_drain(void)
{
    for (uint32_t i = 0; i < RX_BUDGET; i++) {
        int32_t len = nic_recv((uint8_t *)frame, sizeof(frame));
        if (len == 0)
            break;
        if (len < 0)
            continue;
        struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
        if (p == NULL)
            continue; /* out of buffers: dropped, like a full FIFO would */
        pbuf_take(p, frame, (u16_t)len);
        if (net.netif.input(p, &net.netif) != ERR_OK)
            pbuf_free(p);
    }
    nic_rx_irq_enable();
}

static bool load_fleet(kflash_t *fl)
{
    if (kflash_read(fl, kboard_fw.ipart.ident + NET_REC_FLEET_OFF, net.fleet_buf, sizeof(net.fleet_buf)) != KERR_OK)
        return false;
    kerr_t err = net_fleet_rec_decode(net.fleet_buf, sizeof(net.fleet_buf), &net.fleet);
    if (err == KERR_OK)
        return true;
    if (err == KERR_FORMAT)
        uv_log("net: no fleet CA provisioned (keel device run --broker PORT --fleet-ca CA.pem): "
               "network off");
    else
        uv_log("net: the fleet record is damaged (%s): network off", kerr_str(err));
    return false;
}

/* The device's own key and certificate (mutual TLS). Missing is not fatal here: the device
 * still connects, and a broker that requires client certificates (the fleet's does) refuses it. */
static void load_device_cred(kflash_t *fl)
{
    kerr_t err = kflash_read(fl, kboard_fw.ipart.ident + NET_REC_DEVICE_OFF, net.device_buf, sizeof(net.device_buf));
    if (err == KERR_OK)
        err = net_device_rec_decode(net.device_buf, sizeof(net.device_buf), &net.cred);
    net.have_cred = err == KERR_OK;
    if (err == KERR_FORMAT)
        uv_log("net: the device has no certificate (provision it with --fleet-ca-key): connecting "
               "without one");
    else if (err != KERR_OK)
        uv_log("net: the device record is damaged (%s): connecting without a certificate", kerr_str(err));
}

void uv_net_init(void)
{
    uint32_t port = port_arg_u32("broker-port", 0u);
    if (port == 0u)
        return; /* no network configured: nothing starts, nothing is logged (as before) */
    if (port > 65535u) {
        uv_log("net: broker-port=%lu is not a TCP port: network off", (unsigned long)port);
        return;
    }
    net.start_ms = port_ticks();
    stack_paint();
    kerr_t err;
    kflash_t *fl = port_flash_open(PORT_FLASH_INTERNAL, &err);
    if (!fl || !load_fleet(fl) || !net_seed_init(fl, uv_ident.id))
        return;
    load_device_cred(fl);
    uint8_t mac[6];
    if (!nic_init(on_rx_irq, mac)) {
        uv_log("net: no Ethernet controller (%s) answers: network off", kboard_fw.nic ? kboard_fw.nic : "none");
        return;
    }
    lwip_init();
    ip4_addr_t any = {0};
    netif_add(&net.netif, &any, &any, &any, NULL, netif_setup, ethernet_input);
    memcpy(net.netif.hwaddr, mac, sizeof(mac));
    netif_set_default(&net.netif);
    netif_set_up(&net.netif);
    netif_set_link_up(&net.netif);
    net_link_cfg_t cfg = {
        .device_id = uv_ident.id,
        .broker_name = net.fleet.broker_name,
        .ca_pem = net.fleet.ca_pem,
        .ca_len = net.fleet.ca_len,
        .broker_ip = lwip_htonl(NET_BROKER_ADDR),
        .broker_port = (uint16_t)port,
        .key_pem = net.have_cred ? net.cred.key_pem : NULL,
        .key_len = net.have_cred ? net.cred.key_len : 0u,
        .cert_pem = net.have_cred ? net.cred.cert_pem : NULL,
        .cert_len = net.have_cred ? net.cred.cert_len : 0u,
        .allow_tls12 = (net.fleet.flags & NET_FLEET_F_ALLOW_TLS12) != 0u,
    };
    if (!net_link_init(&cfg))
        return;
    uv_net_event(uv_boot_cause == UV_RESET_POWER_ON || uv_boot_cause == UV_RESET_APP_RESTART ? 2u : 1u,
                 "microvisor %s, boot %lu since power-on, reset: %s", UV_VERSION_STR,
                 (unsigned long)uv_ni.boots, uv_reset_name(uv_boot_cause));
    if (dhcp_start(&net.netif) != ERR_OK) {
        uv_log("net: DHCP did not start: network off");
        return;
    }
    uv_log("net: up, mac %02x:%02x:%02x:%02x:%02x:%02x, broker %s port %lu", mac[0], mac[1], mac[2],
           mac[3], mac[4], mac[5], net.fleet.broker_name, (unsigned long)port);
    net.stats_period = port_arg_u32("net-stats", 0u);
    net.stats_next = port_ticks() + net.stats_period;
    net.stats_start_us = port_time_us();
    __asm__ volatile("dmb" ::: "memory");
    net.on = true;
}

/* How much of the CPU the network took since the last report: the app's share is the rest. */
static void stats_report(uint64_t now_us)
{
    uint64_t span = now_us - net.stats_start_us;
    nic_stats_t st = nic_stats();
    uint32_t permille_x10 = span ? (uint32_t)(net.busy_us * 10000u / span) : 0u;
    /* Mbed TLS's bignum/ECP and record buffers come from newlib's heap (keel_mbedtls_config.h). */
    struct mallinfo mi = mallinfo();
    uv_log("net: stats: busy %lu us of %lu ms (%lu.%02lu%%), %lu polls; since boot frames in %lu "
           "out %lu, irqs %lu, TLS heap %lu bytes (in use %lu), handler stack %lu bytes",
           (unsigned long)net.busy_us, (unsigned long)(span / 1000u), (unsigned long)(permille_x10 / 100u),
           (unsigned long)(permille_x10 % 100u), (unsigned long)net.polls, (unsigned long)st.rx_frames,
           (unsigned long)st.tx_frames, (unsigned long)st.irqs, (unsigned long)mi.arena,
           (unsigned long)mi.uordblks, (unsigned long)uv_net_stack_used());
    net.busy_us = 0;
    net.polls = 0;
    net.stats_start_us = now_us;
}

void uv_net_poll(void)
{
    if (!net.on)
        return;
    uint64_t t0 = port_time_us();
    rx_drain();
    sys_check_timeouts();
    bool ip_up = dhcp_supplied_address(&net.netif);
    if (ip_up && !net.ip_logged) {
        net.ip_logged = true;
        uv_log("net: address %s (DHCP) %lu ms after start", ip4addr_ntoa(netif_ip4_addr(&net.netif)),
               (unsigned long)(port_ticks() - net.start_ms));
    }
    net_link_poll(ip_up);
    uint64_t t1 = port_time_us();
    net.busy_us += t1 - t0;
    net.polls++;
    if (net.stats_period && (int32_t)(port_ticks() - net.stats_next) >= 0) {
        net.stats_next = port_ticks() + net.stats_period;
        stats_report(t1);
    }
}

/* lwIP's ALTCP_MBEDTLS_HANDSHAKE_YIELD (lwipopts.h): a TLS handshake gave the CPU back after a
 * long step; the service runs again (watchdog kicked first) and continues it from its timeout. */
void lwip_port_yield(void)
{
    uv_service_pend();
}

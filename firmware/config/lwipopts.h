/*
 * lwIP options for Keel's secure firmware. Every value not set here is lwIP's default from
 * lwip/opt.h. The numbers come from measurements on QEMU's LAN9118 model (docs/porting.md, the NIC).
 *
 * Threading model (why NO_SYS and no SYS_LIGHTWEIGHT_PROT): lwIP runs only in the microvisor's main
 * loop. The LAN9118 interrupt handler acknowledges the device and sets a flag; frames are drained
 * and handed to lwIP from the main loop, so no lwIP function is ever entered from an interrupt and
 * lwIP needs no critical sections. A port that calls lwIP from an ISR must set
 * SYS_LIGHTWEIGHT_PROT 1 and provide sys_arch_protect()/sys_arch_unprotect().
 *
 * TLS (MQTT over altcp_tls with Mbed TLS) is compiled in when KEEL_MBEDTLS_TLS is defined; the
 * CMake option of the same name sets it for both lwIP and Mbed TLS (firmware/third_party.cmake).
 */
#ifndef KEEL_LWIPOPTS_H
#define KEEL_LWIPOPTS_H

/* ---- system ---- */
#define NO_SYS                  1
#define SYS_LIGHTWEIGHT_PROT    0
#define LWIP_NETCONN            0
#define LWIP_SOCKET             0
#define LWIP_STATS              0

/* ---- memory ---- */
#define MEM_ALIGNMENT           4
#define MEM_SIZE                (32 * 1024)
#define PBUF_POOL_SIZE          32
#define PBUF_POOL_BUFSIZE       1536
#define MEMP_NUM_SYS_TIMEOUT    (LWIP_NUM_SYS_TIMEOUT_INTERNAL + 5) /* +1: altcp_tls handshake continuation */

/* ---- IPv4, DHCP, Ethernet ---- */
#define LWIP_IPV4               1
#define LWIP_IPV6               0
#define LWIP_ARP                1
#define LWIP_ETHERNET           1
#define ETH_PAD_SIZE            0
#define LWIP_DHCP               1
/* The lwIP default ARP-probes the offered address first, which costs about 1 s of boot. */
#define DHCP_DOES_ARP_CHECK     0
/* lwIP 2.2 renamed it: address conflict detection (RFC 5227 probes and announcements) would hold
 * the DHCP address back for ~7 s (measured) on a link that slirp owns alone. */
#define LWIP_DHCP_DOES_ACD_CHECK 0

/* ---- TCP ---- */
#define LWIP_TCP                1
#define TCP_MSS                 1460
/* QEMU's LAN9118 drops frames once its ~7-frame RX FIFO is full; a window above 4 segments makes
 * slirp overrun it and throughput collapses 10-400x (measured). */
#define TCP_WND                 (4 * TCP_MSS)
#define TCP_SND_BUF             (4 * TCP_MSS)
#define TCP_SND_QUEUELEN        16

/* ---- MQTT client (apps/mqtt) ---- */
#define MQTT_OUTPUT_RINGBUF_SIZE 2560 /* a full 8-entry log batch fits in one publish */
/* Requests awaiting an answer (SUBACK, PUBACK): lwIP's default of 4 is used up on connect by the
 * subscriptions (cmd, ack, app/down/+, update, ...) plus presence, and the hello after them would be
 * refused; an update download keeps 4 fetches in flight (net_upd.c) next to logs, crash reports,
 * results and status. Each costs a few bytes of the client struct. */
#define MQTT_REQ_MAX_IN_FLIGHT  16

/* ---- TLS through altcp (apps/altcp_tls) ---- */
#if defined(KEEL_MBEDTLS_TLS)
#define LWIP_ALTCP              1
#define LWIP_ALTCP_TLS          1
#define LWIP_ALTCP_TLS_MBEDTLS  1
/* A client requires a valid server certificate chain (lwIP's default, VERIFY_OPTIONAL, never looks
 * at the result: any broker certificate would be accepted). The name is checked too
 * (altcp_tls_config_set_hostname, patches/lwip/0001). */
#define ALTCP_MBEDTLS_AUTHMODE  MBEDTLS_SSL_VERIFY_REQUIRED
/* A handshake step that took 20 ms or more (P-256 work: without MBEDTLS_ECP_NIST_OPTIM each
 * operation runs for tens of ms in QEMU, far more on a loaded host or a slow MCU) returns to the
 * service loop, which kicks the secure watchdog and lets the app run before the next step
 * (patches/lwip/0001). lwip_port_yield() makes the service run again at once. */
#define ALTCP_MBEDTLS_HANDSHAKE_SLICE_MS 20
#define ALTCP_MBEDTLS_HANDSHAKE_YIELD() lwip_port_yield()
#endif

/* ---- sanity check on a value this board depends on ---- */
#if TCP_WND > 4 * TCP_MSS
#error "TCP_WND above 4*TCP_MSS overruns QEMU's LAN9118 RX FIFO (about 7 frames); keep TCP_WND <= 4*TCP_MSS"
#endif

#endif /* KEEL_LWIPOPTS_H */

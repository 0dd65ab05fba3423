/*
 * fleetsim: thousands of simulated Keel devices in one process (see fleetsim.c for the command
 * line). Each device has its own TLS connection and certificate (mqttc.h, simcert.h), runs the
 * real protocol code (keel_proto) and update engine (simdev_upd.h over a copy-on-write flash
 * shared with every other device of the process, flash_cow.h), and sees its own link
 * (linkmodel.h). One thread, one epoll loop, two timer heaps (theap.h: keepalives, served first,
 * and everything else): an idle device costs no
 * CPU between its keepalive pings.
 */
#ifndef KEEL_FLEETSIM_H
#define KEEL_FLEETSIM_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "keel.pb.h"
#include "keel/flash.h"
#include "keel/flash_cow.h"
#include "linkmodel.h"
#include "mqttc.h"
#include "simcert.h"
#include "simdev_upd.h"
#include "theap.h"

#define FS_ID_MAX 32u

typedef enum {
    DEV_WAIT = 0,    /* not connected; reconnects at at_ms */
    DEV_QUEUED,      /* waiting for a connect slot */
    DEV_CONNECTING,  /* TCP, TLS, CONNECT/CONNACK, SUBSCRIBE/SUBACK; gives up at at_ms */
    DEV_ONLINE,      /* subscribed, hello sent */
} dev_phase_t;

/* A packet held by the link model (one FIFO per direction). */
typedef struct lpkt {
    struct lpkt *next;
    uint64_t at;
    uint32_t len;
    uint8_t data[];
} lpkt_t;

/* What an updating device holds beyond an idle one (made at its first update message). */
typedef struct devupd {
    kflash_cow_t icow, qcow;
    kflash_t ifl, qfl;
    uint8_t *used;           /* internal flash program-once bitmap */
    sdu_t *sdu;
} devupd_t;

typedef struct dev_stats {
    uint32_t connects, failures, subscribed;
    uint32_t upd_msgs_rx;        /* offers and chunks received */
    uint64_t upd_payload_rx;     /* their MQTT payload bytes (envelopes) */
    uint64_t chunk_data_rx;      /* chunk data bytes, duplicates included */
    uint64_t payload_tx, payload_rx; /* every PUBLISH payload */
    uint64_t retrans;            /* bytes the link model sent twice */
} dev_stats_t;

typedef struct dev {
    char id[FS_ID_MAX];
    mqttc_t c;
    uint8_t phase;
    uint8_t link;            /* link profile */
    bool broken;             /* a send failed inside a callback: fail once back in the loop */
    uint16_t port;
    uint16_t pid;            /* MQTT packet id */
    uint32_t boot, msg_id;
    uint32_t backoff_ms;
    uint32_t rng;
    uint64_t at_ms;          /* WAIT: reconnect; CONNECTING: give up */
    uint64_t ping_ms;        /* ONLINE: next PINGREQ */
    uint64_t pong_ms;        /* ONLINE: PINGRESP due (0: none outstanding) */
    uint64_t down_until;     /* an outage of its link */
    uint64_t out_free, in_free;
    lpkt_t *q[2], *q_tail[2]; /* link model: 0 out, 1 in */
    simcert_t cert;
    devupd_t *u;
    dev_stats_t st;
} sdev_t;

typedef struct fs_config {
    const char *prefix;
    uint32_t first, count;
    uint16_t ports[16];
    unsigned nports;
    const char *ca, *ca_key, *keys, *install;
    const char *issue, *identities; /* chip-2: identities issued ahead (simcert_save/load) */
    uint16_t keepalive_s;
    unsigned max_connecting;
    link_profile_t links[LINK_PROFILES];
    unsigned nlinks;
    bool verbose;
} fs_config_t;

typedef struct fs {
    fs_config_t cfg;
    int epfd;
    SSL_CTX *ctx;
    theap_t heap;            /* connects, link model, update agents */
    theap_t kheap;           /* keepalives: served first in every turn */
    sdev_t *devs;
    uint32_t n;
    uint32_t *waitq;         /* devices waiting for a connect slot (ring) */
    uint32_t wq_head, wq_len;
    unsigned connecting;
    uint32_t online;
    uint64_t start_ms;
    bool all_online_said;
    /* the factory image every device starts from */
    kflash_cow_base_t ibase, qbase;
    kflash_t ifl_tmpl, qfl_tmpl;
    uint8_t *used_tmpl;
    size_t used_bytes;
    keel_v1_Region app_region; /* the factory app region for the hello */
    uint32_t app_version;
} fs_t;

uint64_t fs_now(void);

/* factory.c: build the factory image (install the bundle, boot the engine), freeze it. */
bool fs_factory(fs_t *fs, char *why, unsigned cap);

/* device.c */
void dev_init(fs_t *fs, sdev_t *d, uint32_t index);
void dev_tick(fs_t *fs, sdev_t *d, uint64_t now);
/* PINGREQ when due, the connection given up when its PINGRESP is late. */
void dev_keepalive(fs_t *fs, sdev_t *d, uint64_t now);
void dev_io(fs_t *fs, sdev_t *d, uint32_t events);
void dev_outage(fs_t *fs, sdev_t *d, uint64_t until);
void dev_connect_slot_free(fs_t *fs);
/* Recompute the device's next due time in the heap. */
void dev_schedule(fs_t *fs, sdev_t *d);
/* Per-device facts for the statistics. */
unsigned dev_installs(const sdev_t *d);
unsigned dev_reinstalls(const sdev_t *d); /* installs of a bundle installed before */
unsigned dev_finals(const sdev_t *d);
void dev_statuses(const sdev_t *d, unsigned *sent, unsigned *acked);
uint32_t dev_min_bytes(const sdev_t *d);

#endif /* KEEL_FLEETSIM_H */

/*
 * fleetsim: thousands of simulated Keel devices in one process, for `keel up --simulated` and
 * the fleet load benchmark (docs/fleetsim.md).
 *
 *   fleetsim --port P[,P...] --ca CA.pem (--ca-key CA.key | --identities FILE) --count N
 *            [--first F] [--prefix dev-]
 *            [--update-key PUB[,PUB]] [--install APP.kb] [--keepalive S] [--max-connecting K]
 *            [--link SPEC]... [--control FIFO] [--dump FILE] [--stats-every MS] [--verbose]
 *            [--board NAME]
 *
 * Devices PREFIX<F>..PREFIX<F+N-1>, each with a fresh P-256 key and a certificate (CN = id) signed
 * by the CA in memory, each on the broker port kproto_broker_index(id) picks (as keeld does)
 * (plain connect() to 127.0.0.1). Every device runs the real update engine over a copy-on-write
 * view of one factory image (--install: the app bundle the factory wrote; --update-key: the
 * fleet keys it trusts) and reconnects with back-off (1 s doubling to 32 s, +-25 %) after any
 * error. --link SPEC ("rtt=MS,loss=FRACTION,rate=BYTES_PER_S", repeatable: device i uses profile
 * i mod the count) is the link model.
 *
 * --identities FILE: the devices' keys and certificates were issued ahead of time by
 *   fleetsim --issue FILE --ca CA.pem --ca-key CA.key --count N [--first F] [--prefix dev-]
 * (which writes FILE and exits), so this process never holds the CA key: `keel up` runs the
 * issuing step itself and the devices in a sandbox that cannot see the stack's secrets.
 *
 * double= counts devices that installed a bundle they had installed before.
 * Output (stdout): "all-online MS" when every device is online the first time, and every
 * --stats-every (default 1000 ms) while something changed, one line of counters:
 *   stats t=SECONDS online= connects= sessions= failures= updating= finals= installs= double= statuses=
 *         acked= upd_payload= chunk_data= min= payload_tx= payload_rx= wire_tx= wire_rx= retrans=
 * --control FIFO takes commands, one a line:
 *   outage FIRST COUNT MS    devices FIRST..FIRST+COUNT-1 (0-based) lose their link for MS
 *   link FIRST COUNT SPEC    they use SPEC from now on (a new profile; at most 8 in all)
 *   stats                    print a stats line now
 *   dump FILE                one CSV line per device into FILE
 *   quit                     stop (as SIGTERM does)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "fleetsim.h"
#include "keel/board.h"
#include "keel/identity.h"

#define TAG_SIGNAL 0xFFFFFFFFu
#define TAG_CONTROL 0xFFFFFFFEu
#define EVENTS_MAX 256
#define FDS_SPARE 64u
#define SLICE_MS 100u

uint64_t fs_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "fleetsim: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

/* ---- statistics ------------------------------------------------------------------------------- */

typedef struct totals {
    uint64_t connects, sessions, failures, updating, finals, installs, doubles, statuses, acked;
    uint64_t upd_payload, chunk_data, min, payload_tx, payload_rx, wire_tx, wire_rx, retrans;
} totals_t;

static totals_t totals(const fs_t *fs)
{
    totals_t t;
    memset(&t, 0, sizeof(t));
    for (uint32_t i = 0; i < fs->n; i++) {
        const sdev_t *d = &fs->devs[i];
        unsigned s, a;
        mqttc_bytes_t b = mqttc_bytes(&d->c);
        t.connects += d->st.connects;
        t.sessions += d->st.subscribed;
        t.failures += d->st.failures;
        t.updating += d->u != NULL;
        t.finals += dev_finals(d);
        t.installs += dev_installs(d);
        t.doubles += dev_reinstalls(d) > 0;
        dev_statuses(d, &s, &a);
        t.statuses += s;
        t.acked += a;
        t.upd_payload += d->st.upd_payload_rx;
        t.chunk_data += d->st.chunk_data_rx;
        t.min += dev_min_bytes(d);
        t.payload_tx += d->st.payload_tx;
        t.payload_rx += d->st.payload_rx;
        t.wire_tx += b.wire_tx;
        t.wire_rx += b.wire_rx;
        t.retrans += d->st.retrans;
    }
    return t;
}

static void print_stats(const fs_t *fs, const totals_t *t)
{
    printf("stats t=%.1f online=%u connects=%llu sessions=%llu failures=%llu updating=%llu finals=%llu "
           "installs=%llu double=%llu statuses=%llu acked=%llu upd_payload=%llu chunk_data=%llu "
           "min=%llu payload_tx=%llu payload_rx=%llu wire_tx=%llu wire_rx=%llu retrans=%llu\n",
           (double)(fs_now() - fs->start_ms) / 1000.0, fs->online,
           (unsigned long long)t->connects, (unsigned long long)t->sessions,
           (unsigned long long)t->failures,
           (unsigned long long)t->updating, (unsigned long long)t->finals,
           (unsigned long long)t->installs, (unsigned long long)t->doubles,
           (unsigned long long)t->statuses, (unsigned long long)t->acked,
           (unsigned long long)t->upd_payload, (unsigned long long)t->chunk_data,
           (unsigned long long)t->min, (unsigned long long)t->payload_tx,
           (unsigned long long)t->payload_rx, (unsigned long long)t->wire_tx,
           (unsigned long long)t->wire_rx, (unsigned long long)t->retrans);
    fflush(stdout);
}

static bool dump(const fs_t *fs, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return false;
    }
    fprintf(f, "id,online,connects,failures,finals,installs,reinstalls,statuses,acked,upd_payload,chunk_data,"
               "min,payload_tx,payload_rx,wire_tx,wire_rx,mqtt_tx,mqtt_rx,retrans\n");
    for (uint32_t i = 0; i < fs->n; i++) {
        const sdev_t *d = &fs->devs[i];
        unsigned s, a;
        mqttc_bytes_t b = mqttc_bytes(&d->c);
        dev_statuses(d, &s, &a);
        fprintf(f, "%s,%d,%u,%u,%u,%u,%u,%u,%u,%llu,%llu,%u,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n",
                d->id, d->phase == DEV_ONLINE, d->st.connects, d->st.failures, dev_finals(d),
                dev_installs(d), dev_reinstalls(d), s, a, (unsigned long long)d->st.upd_payload_rx,
                (unsigned long long)d->st.chunk_data_rx, dev_min_bytes(d),
                (unsigned long long)d->st.payload_tx, (unsigned long long)d->st.payload_rx,
                (unsigned long long)b.wire_tx, (unsigned long long)b.wire_rx,
                (unsigned long long)b.mqtt_tx, (unsigned long long)b.mqtt_rx,
                (unsigned long long)d->st.retrans);
    }
    return fclose(f) == 0;
}

/* ---- control ---------------------------------------------------------------------------------- */

/* One command line; false: stop. */
static bool command(fs_t *fs, char *line)
{
    unsigned long first = 0, count = 0, ms = 0;
    char arg[256];
    uint64_t now = fs_now();

    line[strcspn(line, "\r\n")] = '\0';
    if (sscanf(line, "outage %lu %lu %lu", &first, &count, &ms) == 3) {
        for (uint64_t i = first; i < first + count && i < fs->n; i++) {
            dev_outage(fs, &fs->devs[i], now + ms);
        }
        printf("outage %lu %lu %lu\n", first, count, ms);
    } else if (sscanf(line, "link %lu %lu %255s", &first, &count, arg) == 3) {
        link_profile_t p;
        if (!link_parse(arg, &p) || fs->cfg.nlinks >= LINK_PROFILES) {
            printf("error link '%s': a bad spec, or more than %u profiles\n", arg, LINK_PROFILES);
        } else {
            fs->cfg.links[fs->cfg.nlinks] = p;
            for (uint64_t i = first; i < first + count && i < fs->n; i++) {
                fs->devs[i].link = (uint8_t)fs->cfg.nlinks;
            }
            fs->cfg.nlinks++;
            printf("link %lu %lu %s\n", first, count, arg);
        }
    } else if (strcmp(line, "stats") == 0) {
        totals_t t = totals(fs);
        print_stats(fs, &t);
    } else if (sscanf(line, "dump %255s", arg) == 1) {
        printf("%s %s\n", dump(fs, arg) ? "dumped" : "error dump", arg);
    } else if (strcmp(line, "quit") == 0) {
        return false;
    } else if (line[0] != '\0') {
        printf("error unknown command '%s'\n", line);
    }
    fflush(stdout);
    return true;
}

static bool read_control(fs_t *fs, int fd, char *buf, size_t *len, size_t cap)
{
    for (;;) {
        ssize_t r = read(fd, buf + *len, cap - 1u - *len);
        if (r <= 0) {
            return true; /* EAGAIN (the FIFO is held open for writing by ourselves) */
        }
        *len += (size_t)r;
        buf[*len] = '\0';
        char *nl;
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            bool go = command(fs, buf);
            memmove(buf, nl + 1, *len - (size_t)(nl + 1 - buf) + 1u);
            *len -= (size_t)(nl + 1 - buf);
            if (!go) {
                return false;
            }
        }
        if (*len >= cap - 1u) {
            *len = 0; /* a line too long: dropped */
        }
    }
}

/* ---- set-up ----------------------------------------------------------------------------------- */

static uint16_t port_arg(const char *s)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || v == 0 || v > 65535 || (*end != '\0' && *end != ',')) {
        die("bad port in '%s'", s);
    }
    return (uint16_t)v;
}

static SSL_CTX *tls_context(const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        die("cannot load the CA %s", ca);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Idle connections give their 16 KiB read/write buffers back; partial writes and moving
     * buffers because mqttc's write buffer is compacted between tries. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* one full handshake a connect */
    return ctx;
}

static void options(fs_config_t *c, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    c->prefix = "dev-";
    c->first = 1;
    c->keepalive_s = 20; /* the microvisor's (net_link.c) */
    c->max_connecting = 200;
    for (int a = 1; a < argc; a++) {
        const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (strcmp(o, "--verbose") == 0) {
            c->verbose = true;
            continue;
        }
        if (v == NULL) {
            die("%s needs a value", o);
        }
        a++;
        if (strcmp(o, "--port") == 0) {
            for (const char *p = v; p != NULL && c->nports < 16; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
                c->ports[c->nports++] = port_arg(p);
            }
        } else if (strcmp(o, "--ca") == 0) c->ca = v;
        else if (strcmp(o, "--ca-key") == 0) c->ca_key = v;
        else if (strcmp(o, "--issue") == 0) c->issue = v;
        else if (strcmp(o, "--identities") == 0) c->identities = v;
        else if (strcmp(o, "--update-key") == 0) c->keys = v;
        else if (strcmp(o, "--install") == 0) c->install = v;
        else if (strcmp(o, "--prefix") == 0) c->prefix = v;
        else if (strcmp(o, "--first") == 0) c->first = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(o, "--count") == 0) c->count = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(o, "--keepalive") == 0) c->keepalive_s = (uint16_t)strtoul(v, NULL, 10);
        else if (strcmp(o, "--max-connecting") == 0) c->max_connecting = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(o, "--link") == 0) {
            if (c->nlinks >= LINK_PROFILES || !link_parse(v, &c->links[c->nlinks])) {
                die("bad --link '%s' (rtt=MS,loss=FRACTION,rate=BYTES_PER_S; at most 8)", v);
            }
            c->nlinks++;
        } else if (strcmp(o, "--control") == 0 || strcmp(o, "--dump") == 0 ||
                   strcmp(o, "--stats-every") == 0) {
            /* read in main */
        } else {
            die("unknown option %s", o);
        }
    }
    bool issuing = c->issue != NULL && c->ca_key != NULL && c->identities == NULL;
    bool running = c->issue == NULL && c->nports > 0 && (c->ca_key == NULL) != (c->identities == NULL);
    if ((!issuing && !running) || c->ca == NULL || c->count == 0 ||
        c->keepalive_s == 0 || c->max_connecting == 0) {
        die("%s", "usage: fleetsim --port P[,P...] --ca CA.pem (--ca-key CA.key | --identities "
                  "FILE) --count N "
                  "[--first F] [--prefix dev-] [--update-key PUB] [--install APP.kb] "
                  "[--keepalive S] [--max-connecting K] [--link SPEC]... [--control FIFO] "
                  "[--dump FILE] [--stats-every MS] [--verbose] | fleetsim --issue FILE --ca "
                  "CA.pem --ca-key CA.key --count N [--first F] [--prefix dev-]");
    }
    if (c->nlinks == 0) {
        c->nlinks = 1; /* profile 0: no link model */
    }
}

static const char *opt(int argc, char **argv, const char *name)
{
    for (int a = 1; a + 1 < argc; a++) {
        if (strcmp(argv[a], name) == 0) {
            return argv[a + 1];
        }
    }
    return NULL;
}

/* As many open files as this process may have: every device holds one socket. */
static void open_files(uint32_t devices)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (uint64_t)devices + FDS_SPARE > rl.rlim_cur) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%u devices need %u open files, this process may have %llu: run "
                 "several fleetsim processes (--first/--count)", devices, devices + FDS_SPARE,
                 (unsigned long long)rl.rlim_cur);
        die("%s", msg);
    }
}

/* The devices' ids, in order (one allocation: the array, then the names). */
static char **device_ids(const fs_config_t *c)
{
    char **ids = malloc((size_t)c->count * (sizeof(char *) + FS_ID_MAX));
    if (ids == NULL) {
        die("%s", "out of memory");
    }
    char *names = (char *)(ids + c->count);
    for (uint32_t i = 0; i < c->count; i++) {
        ids[i] = names + (size_t)i * FS_ID_MAX;
        snprintf(ids[i], FS_ID_MAX, "%s%u", c->prefix, c->first + i);
    }
    return ids;
}

/* Every device's key and certificate: issued now from the CA key, or read from --identities. */
static simcert_t *identities(const fs_config_t *c, char **ids, uint64_t serial)
{
    char why[512];
    simcert_t *certs = calloc(c->count, sizeof(*certs));
    if (certs == NULL) {
        die("%s", "out of memory");
    }
    if (c->identities != NULL) {
        if (!simcert_load(c->identities, ids, certs, c->count, why, sizeof(why))) {
            die("%s", why);
        }
        return certs;
    }
    simcert_ca_t ca;
    if (!simcert_ca_load(&ca, c->ca, c->ca_key, why, sizeof(why))) {
        die("%s", why);
    }
    for (uint32_t i = 0; i < c->count; i++) {
        if (!simcert_issue(&ca, ids[i], serial + i, &certs[i])) {
            die("cannot issue the certificate of %s", ids[i]);
        }
    }
    simcert_ca_free(&ca);
    return certs;
}

int main(int argc, char **argv)
{
    static fs_t fs;
    char why[256];
    const char *control = opt(argc, argv, "--control"), *dump_at_exit = opt(argc, argv, "--dump");
    const char *every = opt(argc, argv, "--stats-every");
    uint64_t stats_every = every ? strtoull(every, NULL, 10) : 1000u;

    if (kboard_take_option("fleetsim", &argc, argv) == NULL) { /* --board NAME: the devices' board */
        return 2;
    }
    options(&fs.cfg, argc, argv);
    for (uint32_t i = 0; i < 3; i++) {
        char id[FS_ID_MAX];
        uint32_t k = i == 0 ? fs.cfg.first : fs.cfg.first + fs.cfg.count - 1u;
        snprintf(id, sizeof(id), "%s%u", fs.cfg.prefix, k);
        if (strlen(fs.cfg.prefix) + 10u >= FS_ID_MAX || kident_check_id(id) != KERR_OK) {
            die("'%s' is not a valid device id", id);
        }
    }
    char **ids = device_ids(&fs.cfg);
    uint64_t serial = ((uint64_t)getpid() << 32) ^ fs_now() << 8;
    if (fs.cfg.issue != NULL) {
        simcert_t *certs = identities(&fs.cfg, ids, serial);
        if (!simcert_save(fs.cfg.issue, ids, certs, fs.cfg.count, why, sizeof(why))) {
            die("%s", why);
        }
        for (uint32_t i = 0; i < fs.cfg.count; i++) {
            simcert_free(&certs[i]);
        }
        free(certs);
        free(ids);
        return 0;
    }
    open_files(fs.cfg.count);
    signal(SIGPIPE, SIG_IGN);
    fs.start_ms = fs_now();
    if (!fs_factory(&fs, why, sizeof(why))) {
        die("%s", why);
    }
    simcert_t *certs = identities(&fs.cfg, ids, serial);
    fs.ctx = tls_context(fs.cfg.ca);
    fs.n = fs.cfg.count;
    fs.devs = calloc(fs.n, sizeof(*fs.devs));
    fs.waitq = calloc(fs.n, sizeof(*fs.waitq));
    if (fs.devs == NULL || fs.waitq == NULL || !theap_init(&fs.heap, fs.n) ||
        !theap_init(&fs.kheap, fs.n)) {
        die("%s", "out of memory");
    }
    fs.epfd = epoll_create1(EPOLL_CLOEXEC);
    for (uint32_t i = 0; i < fs.n; i++) {
        sdev_t *d = &fs.devs[i];
        dev_init(&fs, d, i);
        d->cert = certs[i]; /* the device owns it from here (simcert_free at the end) */
        dev_schedule(&fs, d);
    }
    free(certs);
    free(ids);
    printf("ready %u devices %llu ms\n", fs.n, (unsigned long long)(fs_now() - fs.start_ms));
    fflush(stdout);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    struct epoll_event se = {.events = EPOLLIN, .data.u32 = TAG_SIGNAL};
    epoll_ctl(fs.epfd, EPOLL_CTL_ADD, sfd, &se);
    int cfd = -1;
    if (control != NULL) {
        cfd = open(control, O_RDWR | O_NONBLOCK | O_CLOEXEC); /* RDWR: no EOF between writers */
        if (cfd < 0) {
            die("cannot open the control FIFO %s", control);
        }
        struct epoll_event ce = {.events = EPOLLIN, .data.u32 = TAG_CONTROL};
        epoll_ctl(fs.epfd, EPOLL_CTL_ADD, cfd, &ce);
    }
    char cbuf[1024];
    size_t clen = 0;
    uint64_t next_stats = fs_now() + stats_every;
    totals_t last;
    memset(&last, 0, sizeof(last));
    uint32_t last_online = UINT32_MAX;
    bool run = true;
    while (run) {
        uint32_t di = 0;
        uint64_t now = fs_now(), due = theap_peek(&fs.heap, &di);
        uint64_t kdue = theap_peek(&fs.kheap, &di);
        due = kdue < due ? kdue : due;
        uint64_t wake = due < next_stats ? due : next_stats;
        int timeout = wake <= now ? 0 : (int)(wake - now > 60000u ? 60000u : wake - now);
        struct epoll_event ev[EVENTS_MAX];
        int n = epoll_wait(fs.epfd, ev, EVENTS_MAX, timeout);
        /* Keepalives first, all of them: cheap, and what keeps every connection alive while the
         * process is short of CPU (the agents' work waits instead). */
        now = fs_now();
        for (uint32_t k = 0; k < fs.n && theap_peek(&fs.kheap, &di) <= now; k++) {
            dev_keepalive(&fs, &fs.devs[di], now);
        }
        /* Each half of a turn gets SLICE_MS at most, so an update agent's work (hashing a region,
         * staging, applying: milliseconds each on a shared core) never holds back other devices'
         * keepalives for long; unhandled events are reported again (level-triggered). */
        uint64_t slice_end = fs_now() + SLICE_MS;
        for (int i = 0; i < n && fs_now() < slice_end; i++) {
            if (ev[i].data.u32 == TAG_SIGNAL) {
                run = false;
            } else if (ev[i].data.u32 == TAG_CONTROL) {
                run = read_control(&fs, cfd, cbuf, &clen, sizeof(cbuf)) && run;
            } else if (ev[i].data.u32 < fs.n) {
                dev_io(&fs, &fs.devs[ev[i].data.u32], ev[i].events);
            }
        }
        /* Timers: every device whose time has come (bounded per turn so I/O keeps flowing). */
        now = fs_now();
        slice_end = now + SLICE_MS;
        for (unsigned k = 0; k < 4096u && theap_peek(&fs.heap, &di) <= now; k++) {
            dev_tick(&fs, &fs.devs[di], now);
            if ((k & 15u) == 15u && fs_now() >= slice_end) {
                break;
            }
        }
        if (fs.online == fs.n && !fs.all_online_said) {
            fs.all_online_said = true;
            printf("all-online %llu\n", (unsigned long long)(fs_now() - fs.start_ms));
            fflush(stdout);
        }
        if (now >= next_stats) {
            next_stats = now + stats_every;
            totals_t t = totals(&fs);
            if (memcmp(&t, &last, sizeof(t)) != 0 || fs.online != last_online) {
                print_stats(&fs, &t);
                last = t;
                last_online = fs.online;
            }
        }
    }
    totals_t t = totals(&fs);
    print_stats(&fs, &t);
    if (dump_at_exit != NULL && !dump(&fs, dump_at_exit)) {
        fprintf(stderr, "fleetsim: cannot write %s\n", dump_at_exit);
    }
    for (uint32_t i = 0; i < fs.n; i++) {
        sdev_t *d = &fs.devs[i];
        mqttc_close(&d->c, fs.epfd);
        simcert_free(&d->cert);
        if (d->u != NULL) {
            sdu_close(d->u->sdu);
            kflash_cow_free(&d->u->icow);
            kflash_cow_free(&d->u->qcow);
            free(d->u->used);
            free(d->u);
        }
    }
    return 0;
}

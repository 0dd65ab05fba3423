/*
 * rtos: a Keel app with its own preemptive scheduler (kos.c), the shape of an app built on an
 * RTOS. Threads, most urgent first:
 *   wdog     (8) starts the app watchdog and kicks it every 100 ms (the most urgent: nothing the
 *                others do, the benchmark included, may starve it on a slow host)
 *   pong     (7) and bench (6): the context-switch benchmark, blocked until the "bench" command
 *   pi-high (7), pi-mid (5), pi-low (1): the priority-inheritance check, until the "pi" command
 *   notify   (4) blocked on the notification semaphore (given by the notification interrupt);
 *                handles STARTED, updates (applies a staged one once the workers are at a safe
 *                point, confirms a trial once healthy) and prints the rest
 *   monitor  (3) once a second: a stats line (API calls, errors, switches, deferred switches,
 *                mutex waits) on UART0 and, every 5 s, through keel_log_write
 *   worker-a, worker-b (2, round robin) in bursts of 2 ms every 10 ms: keel_time_get_us,
 *                keel_device_id_get and keel_version_get, checking every answer, and a shared
 *                counter pair updated under a mutex (the pair must always be equal)
 *   cmd      (1) once the app is up (2 stats lines), reads commands on UART0: "fault" (a
 *                SecureFault in this thread), "overflow" (this thread's stack overflows its PSPLIM),
 *                "tickfault" (a SecureFault in the SysTick handler, through kos_on_tick), "pi",
 *                "bench" (one line of figures: scripts/bench-apps.sh)
 *   idle     (0) WFI
 * Every thread calls the API; the scheduler never switches out a thread inside a keel_* call
 * (kos.h). tests/qemu/rtos.sh, tests/ota/ota.sh (case rtos) and tests/debug/debug.sh (case rtos)
 * run it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "app_hw.h"
#include "console.h"
#include "keel.h"
#include "kos.h"

#define RTOS_TICK_HZ 1000u
#define RTOS_RING_SLOTS 16u
#define RTOS_WATCHDOG_MS 1000u
#define RTOS_HEALTHY_MS 2000u
#define RTOS_DEFER_MS 1000u
#define RTOS_STACK_WORDS 512u
#define ADDR_S_RAM 0x38000000u /* secure RAM: never the app's */

/* ---- shared state ---------------------------------------------------------------------------- */

static kos_mutex_t console_mx; /* one line at a time on UART0 */
static kos_mutex_t work_mx;    /* the shared pair below; held by notify across an update apply */
static volatile uint32_t pair_a, pair_b;

typedef struct worker {
    const char *name;
    volatile uint32_t calls;
    volatile uint32_t errors;
} worker_t;
static worker_t workers[2] = {{.name = "worker-a"}, {.name = "worker-b"}};
static char device_id[64];

static volatile bool ready; /* the monitor printed its second stats line */

/* ---- notifications ------------------------------------------------------------------------------ */

static keel_notification_t ring[RTOS_RING_SLOTS];
static uint32_t ring_next;
#define RTOS_QUEUE 32u
static keel_notification_t queue[RTOS_QUEUE];
static volatile uint32_t queue_head, queue_tail;
static kos_sem_t notify_sem;

void APP_IRQ_HANDLER(APP_NOTIFY_IRQN)(void)
{
    for (uint32_t n = 0; n < RTOS_RING_SLOTS && ring[ring_next].kind != KEEL_NOTIFY_FREE; n++) {
        keel_notification_t *slot = &ring[ring_next];
        if (queue_head - queue_tail < RTOS_QUEUE) {
            queue[queue_head % RTOS_QUEUE] = *slot;
            queue_head++;
            kos_sem_give(&notify_sem);
        }
        slot->kind = KEEL_NOTIFY_FREE;
        ring_next = (ring_next + 1u) % RTOS_RING_SLOTS;
    }
}

/* ---- console helpers (threads only: they take console_mx) ----------------------------------- */

static void say(const char *a, uint32_t x, const char *b)
{
    kos_mutex_lock(&console_mx);
    console_puts("rtos: ");
    console_puts(a);
    console_put_dec(x);
    console_puts(b);
    console_puts("\n");
    kos_mutex_unlock(&console_mx);
}

static void say_str(const char *a, const char *s, const char *b)
{
    kos_mutex_lock(&console_mx);
    console_puts("rtos: ");
    console_puts(a);
    console_puts(s);
    console_puts(b);
    console_puts("\n");
    kos_mutex_unlock(&console_mx);
}

static const char *stop_name(uint32_t r)
{
    static const char *const names[] = {"power-on", "fault", "watchdog", "exit", "restart", "update",
                                        "rollback"};
    return r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

static uint64_t now_us(void)
{
    uint64_t t = 0;
    (void)keel_time_get_us(&t);
    return t;
}

/* ---- threads -------------------------------------------------------------------------------------- */

static void wdog_thread(void *arg)
{
    (void)arg;
    keel_status_t st = keel_watchdog_start(RTOS_WATCHDOG_MS);
    if (st != KEEL_OK)
        say("keel_watchdog_start failed: status -", (uint32_t)-st, "");
    for (;;) {
        (void)keel_watchdog_kick();
        kos_sleep_ms(100u);
    }
}

static void notify_thread(void *arg)
{
    (void)arg;
    bool on_trial = false, staged = false;
    uint64_t trial_since = 0, staged_at = 0;
    for (;;) {
        /* Blocked until a notification arrives; every 100 ms to look at the update deadlines. */
        (void)kos_sem_take(&notify_sem, 100u);
        while (queue_tail != queue_head) {
            keel_notification_t n = queue[queue_tail % RTOS_QUEUE];
            queue_tail++;
            switch (n.kind) {
            case KEEL_NOTIFY_STARTED:
                kos_mutex_lock(&console_mx);
                console_puts("rtos: notify: STARTED (thread ");
                console_puts(kos_self()->name);
                console_puts("), previous run ended by ");
                console_puts(stop_name(n.arg0));
                console_puts(", restarts ");
                console_put_dec(n.arg1);
                console_puts("\n");
                kos_mutex_unlock(&console_mx);
                break;
            case KEEL_NOTIFY_UPDATE_STAGED:
                kos_mutex_lock(&console_mx);
                console_puts("rtos: update ");
                console_put_version(n.arg0);
                console_puts(" staged; applying it once the workers are at a safe point\n");
                kos_mutex_unlock(&console_mx);
                staged = true;
                staged_at = now_us();
                break;
            case KEEL_NOTIFY_UPDATE_TRIAL:
                say("on trial: confirming within ", n.arg0, " s once healthy");
                on_trial = true;
                trial_since = now_us();
                break;
            case KEEL_NOTIFY_UPDATE_PROGRESS:
                kos_mutex_lock(&console_mx);
                console_puts("rtos: update progress ");
                console_put_dec(n.arg0);
                console_puts(" of ");
                console_put_dec(n.arg1);
                console_puts(" blocks\n");
                kos_mutex_unlock(&console_mx);
                break;
            case KEEL_NOTIFY_WATCHDOG:
                say("notify: WATCHDOG, ms left ", n.arg0, "");
                break;
            default:
                say("notify: kind ", n.kind, "");
                break;
            }
        }
        uint64_t now = now_us();
        if (staged && now - staged_at >= RTOS_DEFER_MS * 1000ull) {
            staged = false;
            kos_mutex_lock(&work_mx); /* the workers finish their update of the pair first */
            say_str("work done: keel_update_apply() from thread ", kos_self()->name, "");
            keel_status_t st = keel_update_apply(); /* does not return when it works */
            kos_mutex_unlock(&work_mx);
            say("keel_update_apply returned -", (uint32_t)-st, "");
        }
        uint32_t errors = workers[0].errors + workers[1].errors;
        if (on_trial && errors == 0u && now - trial_since >= RTOS_HEALTHY_MS * 1000ull) {
            on_trial = false;
            keel_status_t st = keel_update_confirm();
            if (st == KEEL_OK)
                say_str("healthy: keel_update_confirm() ok from thread ", kos_self()->name, "");
            else
                say("keel_update_confirm failed: status -", (uint32_t)-st, "");
        }
    }
}

/* The shared pair, under the work mutex (a function of its own: tests/debug/rtos.sh breaks here). */
__attribute__((noinline)) static void pair_update(worker_t *w, uint64_t *t)
{
    kos_mutex_lock(&work_mx);
    uint32_t a = pair_a;
    pair_a = a + 1u;
    (void)keel_time_get_us(t); /* a window for the other worker to find the mutex held */
    if ((a & 63u) == 0u)
        kos_yield(); /* and now and then a certain one: it must wait for the handoff */
    if (pair_b != a)
        w->errors++;
    pair_b = a + 1u;
    kos_mutex_unlock(&work_mx);
}

static void worker_thread(void *arg)
{
    worker_t *w = arg;
    char id[sizeof device_id];
    uint64_t last = 0;
    for (;;) {
        uint64_t start = now_us(), t = start;
        while (t - start < 2000u) {
            keel_version_t v;
            if (keel_time_get_us(&t) != KEEL_OK || t < last)
                w->errors++;
            last = t;
            if (keel_device_id_get(id, sizeof id) != KEEL_OK || strcmp(id, device_id) != 0)
                w->errors++;
            if (keel_version_get(&v) != KEEL_OK || v.api != KEEL_API_VERSION)
                w->errors++;
            pair_update(w, &t);
            w->calls += 4u;
        }
        kos_sleep_ms(8u);
    }
}

static void monitor_thread(void *arg)
{
    (void)arg;
    static const char log_up[] = "rtos: threads up, calling the API from each";
    (void)keel_log_write(KEEL_LOG_INFO, log_up, sizeof log_up - 1u);
    for (uint32_t sec = 1;; sec++) {
        kos_sleep_ms(1000u);
        kos_stats_t s;
        kos_stats(&s);
        kos_mutex_lock(&console_mx);
        console_puts("rtos: stats ");
        console_put_dec(sec);
        console_puts(" s: calls a=");
        console_put_dec(workers[0].calls);
        console_puts(" b=");
        console_put_dec(workers[1].calls);
        console_puts(" errors=");
        console_put_dec(workers[0].errors + workers[1].errors);
        console_puts(" switches=");
        console_put_dec(s.switches);
        console_puts(" deferred=");
        console_put_dec(s.deferred);
        console_puts(" mutex-waits=");
        console_put_dec(s.mutex_waits);
        console_puts(" ticks=");
        console_put_dec(s.ticks);
        console_puts("\n");
        kos_mutex_unlock(&console_mx);
        if (sec % 5u == 0u) {
            char msg[64] = "rtos: monitor alive, errors ";
            uint32_t e = workers[0].errors + workers[1].errors;
            size_t n = strlen(msg);
            msg[n++] = e == 0u ? '0' : '!';
            (void)keel_log_write(KEEL_LOG_INFO, msg, n);
        }
        if (sec == 2u)
            ready = true;
    }
}

/* ---- the context-switch benchmark ("bench") --------------------------------------------------- */

#define RTOS_BENCH_N 20000u
static kos_sem_t bench_go, bench_done, ping_sem, pong_sem;

static void pong_thread(void *arg)
{
    (void)arg;
    for (;;) {
        (void)kos_sem_take(&ping_sem, KOS_FOREVER);
        kos_sem_give(&pong_sem);
    }
}

/* Nanoseconds per iteration of a loop that took t0..t1 us. */
static uint32_t ns_per(uint64_t t0, uint64_t t1)
{
    return (uint32_t)((t1 - t0) * 1000u / RTOS_BENCH_N);
}

/* Three loops of RTOS_BENCH_N, more urgent than every other thread but pong: a keel_* call
 * (keel_time_get_us, the NSC round trip), a semaphore give+take that switches nothing, and a
 * ping-pong with pong (two context switches per round). */
static void bench_thread(void *arg)
{
    (void)arg;
    for (;;) {
        (void)kos_sem_take(&bench_go, KOS_FOREVER);
        uint64_t t0 = now_us(), t = 0;
        for (uint32_t i = 0; i < RTOS_BENCH_N; i++)
            (void)keel_time_get_us(&t);
        uint64_t t1 = now_us();
        for (uint32_t i = 0; i < RTOS_BENCH_N; i++) {
            kos_sem_give(&pong_sem);
            (void)kos_sem_take(&pong_sem, KOS_FOREVER);
        }
        kos_stats_t s0, s1;
        kos_stats(&s0);
        uint64_t t2 = now_us();
        for (uint32_t i = 0; i < RTOS_BENCH_N; i++) {
            kos_sem_give(&ping_sem); /* pong runs at once, gives back, blocks again */
            (void)kos_sem_take(&pong_sem, KOS_FOREVER);
        }
        uint64_t t3 = now_us();
        kos_stats(&s1);
        kos_mutex_lock(&console_mx);
        console_puts("rtos: bench n=");
        console_put_dec(RTOS_BENCH_N);
        console_puts(" keel-call-ns=");
        console_put_dec(ns_per(t0, t1));
        console_puts(" sem-pair-ns=");
        console_put_dec(ns_per(t1, t2));
        console_puts(" pingpong-ns=");
        console_put_dec(ns_per(t2, t3));
        console_puts(" switches=");
        console_put_dec(s1.switches - s0.switches);
        console_puts("\n");
        kos_mutex_unlock(&console_mx);
        kos_sem_give(&bench_done);
    }
}

/* ---- priority inheritance ("pi") -------------------------------------------------------------------
 * pi-low (1) takes pi_mx, then wakes pi-high (7), which blocks on pi_mx and so lends pi-low its
 * priority, then wakes pi-mid (5). With inheritance pi-low (now 7) finishes and hands pi_mx to
 * pi-high before pi-mid runs at all; without it pi-mid would preempt pi-low and run first (the
 * unbounded priority inversion). No timing is involved: only the order. */
static kos_sem_t pi_go, pi_done, pi_high_go, pi_mid_go;
static kos_mutex_t pi_mx;
static volatile bool pi_mid_ran;
static volatile uint32_t pi_low_prio_held; /* pi-low's priority while pi-high waited */
static volatile int pi_high_saw_mid;       /* -1: not yet, 0/1: whether pi-mid had run */

static void pi_spin_us(uint32_t us)
{
    uint64_t t0 = now_us();
    while (now_us() - t0 < us) {
    }
}

static void pi_low_thread(void *arg)
{
    (void)arg;
    for (;;) {
        (void)kos_sem_take(&pi_go, KOS_FOREVER);
        pi_mid_ran = false;
        pi_high_saw_mid = -1;
        kos_mutex_lock(&pi_mx);
        kos_sem_give(&pi_high_go); /* pi-high runs at once and blocks on pi_mx */
        kos_sem_give(&pi_mid_go);  /* pi-mid is ready: with inheritance it must wait */
        pi_low_prio_held = kos_self()->prio;
        pi_spin_us(2000u);
        kos_mutex_unlock(&pi_mx);
        while (pi_high_saw_mid < 0 || !pi_mid_ran)
            kos_sleep_ms(1u);
        kos_mutex_lock(&console_mx);
        console_puts("rtos: pi: low ran at prio ");
        console_put_dec(pi_low_prio_held);
        console_puts(" while high waited; high got the mutex ");
        console_puts(pi_high_saw_mid ? "after mid ran: INVERSION\n" : "before mid ran: ok\n");
        kos_mutex_unlock(&console_mx);
        kos_sem_give(&pi_done);
    }
}

static void pi_high_thread(void *arg)
{
    (void)arg;
    for (;;) {
        (void)kos_sem_take(&pi_high_go, KOS_FOREVER);
        kos_mutex_lock(&pi_mx);
        pi_high_saw_mid = pi_mid_ran ? 1 : 0;
        kos_mutex_unlock(&pi_mx);
    }
}

static void pi_mid_thread(void *arg)
{
    (void)arg;
    for (;;) {
        (void)kos_sem_take(&pi_mid_go, KOS_FOREVER);
        pi_spin_us(2000u); /* CPU-bound: it would keep pi-low off the CPU */
        pi_mid_ran = true;
    }
}

static kos_thread_t cmd_t;
static volatile bool fault_in_tick; /* "tickfault": the next SysTick faults */

void kos_on_tick(void)
{
    if (fault_in_tick)
        *(volatile uint32_t *)ADDR_S_RAM = 2u; /* SecureFault in the scheduler's SysTick handler */
}

__attribute__((noinline)) static uint32_t overflow(uint32_t depth)
{
    volatile uint32_t pad[32];
    pad[depth % 32u] = depth;
    if (depth > 1000000u) /* never reached: the 2 KiB stack ends far earlier */
        return pad[0];
    return overflow(depth + 1u) + pad[(depth + 1u) % 32u];
}

static void cmd_thread(void *arg)
{
    (void)arg;
    char line[32];
    size_t len = 0;
    while (!ready)
        kos_sleep_ms(50u);
    say_str("cmd: ready for commands in thread ", kos_self()->name, "");
    for (;;) {
        int c = console_getc();
        if (c < 0) {
            kos_sleep_ms(20u);
            continue;
        }
        if (c != '\n' && c != '\r') {
            if (len + 1u < sizeof line)
                line[len++] = (char)c;
            continue;
        }
        line[len] = '\0';
        len = 0;
        if (strcmp(line, "fault") == 0) {
            kos_mutex_lock(&console_mx);
            console_puts("rtos: cmd: faulting in thread cmd, stack ");
            console_put_hex(cmd_t.stack_base);
            console_puts("..");
            console_put_hex(cmd_t.stack_top);
            console_puts("\n");
            kos_mutex_unlock(&console_mx);
            *(volatile uint32_t *)ADDR_S_RAM = 1u; /* SecureFault: the supervisor stops us */
        } else if (strcmp(line, "overflow") == 0) {
            say_str("cmd: overflowing the stack of thread ", kos_self()->name, "");
            say("cmd: overflow returned ", overflow(0u), "");
        } else if (strcmp(line, "tickfault") == 0) {
            say_str("cmd: the next SysTick faults (asked from thread ", kos_self()->name, ")");
            fault_in_tick = true;
        } else if (strcmp(line, "pi") == 0) {
            /* Each check runs in its own threads; the next command waits for its line (a
             * "tickfault" read at once would end the app before the check had printed). */
            kos_sem_give(&pi_go);
            (void)kos_sem_take(&pi_done, KOS_FOREVER);
        } else if (strcmp(line, "bench") == 0) {
            kos_sem_give(&bench_go);
            (void)kos_sem_take(&bench_done, KOS_FOREVER);
        } else if (line[0] != '\0') {
            say_str("cmd: unknown command ", line, "");
        }
    }
}

static void idle(void)
{
    __asm__ volatile("wfi");
}

/* ---- main -------------------------------------------------------------------------------------- */

static kos_thread_t wdog_t, notify_t, monitor_t, worker_a_t, worker_b_t, pong_t, bench_t;
static kos_thread_t pi_low_t, pi_mid_t, pi_high_t;
static uint32_t pi_low_stack[256] __attribute__((aligned(8)));
static uint32_t pi_mid_stack[256] __attribute__((aligned(8)));
static uint32_t pi_high_stack[256] __attribute__((aligned(8)));
static uint32_t pong_stack[256] __attribute__((aligned(8)));
static uint32_t bench_stack[RTOS_STACK_WORDS] __attribute__((aligned(8)));
static uint32_t wdog_stack[RTOS_STACK_WORDS] __attribute__((aligned(8)));
static uint32_t notify_stack[RTOS_STACK_WORDS] __attribute__((aligned(8)));
static uint32_t monitor_stack[RTOS_STACK_WORDS] __attribute__((aligned(8)));
static uint32_t worker_a_stack[RTOS_STACK_WORDS] __attribute__((aligned(8)));
static uint32_t worker_b_stack[RTOS_STACK_WORDS] __attribute__((aligned(8)));
static uint32_t cmd_stack[RTOS_STACK_WORDS] __attribute__((aligned(8)));
static uint32_t idle_stack[128] __attribute__((aligned(8)));

int main(void)
{
    console_init();
    console_puts("rtos: starting\n");
    keel_version_t ver;
    if (keel_version_get(&ver) == KEEL_OK) {
        console_puts("rtos: running app version ");
        console_put_version(ver.app);
        console_puts("\n");
    }
    keel_status_t st = keel_device_id_get(device_id, sizeof device_id);
    if (st != KEEL_OK) {
        console_puts("rtos: keel_device_id_get failed\n");
        return 1;
    }

    kos_thread_create(&wdog_t, "wdog", 8u, wdog_thread, NULL, wdog_stack, RTOS_STACK_WORDS);
    kos_thread_create(&notify_t, "notify", 4u, notify_thread, NULL, notify_stack, RTOS_STACK_WORDS);
    kos_thread_create(&monitor_t, "monitor", 3u, monitor_thread, NULL, monitor_stack, RTOS_STACK_WORDS);
    kos_thread_create(&worker_a_t, "worker-a", 2u, worker_thread, &workers[0], worker_a_stack, RTOS_STACK_WORDS);
    kos_thread_create(&worker_b_t, "worker-b", 2u, worker_thread, &workers[1], worker_b_stack, RTOS_STACK_WORDS);
    kos_thread_create(&cmd_t, "cmd", 1u, cmd_thread, NULL, cmd_stack, RTOS_STACK_WORDS);
    kos_thread_create(&pong_t, "pong", 7u, pong_thread, NULL, pong_stack, sizeof pong_stack / 4u);
    kos_thread_create(&bench_t, "bench", 6u, bench_thread, NULL, bench_stack, RTOS_STACK_WORDS);
    kos_thread_create(&pi_low_t, "pi-low", 1u, pi_low_thread, NULL, pi_low_stack, sizeof pi_low_stack / 4u);
    kos_thread_create(&pi_mid_t, "pi-mid", 5u, pi_mid_thread, NULL, pi_mid_stack, sizeof pi_mid_stack / 4u);
    kos_thread_create(&pi_high_t, "pi-high", 7u, pi_high_thread, NULL, pi_high_stack, sizeof pi_high_stack / 4u);

    /* The ring last: its STARTED notification finds the notify thread ready to be woken. The
     * interrupt stays held (PRIMASK) until the scheduler runs. */
    __asm__ volatile("cpsid i" ::: "memory");
    nvic_enable(APP_NOTIFY_IRQN);
    if ((st = keel_notify_setup(ring, RTOS_RING_SLOTS, APP_NOTIFY_IRQN)) != KEEL_OK) {
        console_puts("rtos: keel_notify_setup failed\n");
        return 1;
    }
    console_puts("rtos: scheduler starting, 12 threads\n");
    kos_start(RTOS_TICK_HZ, idle_stack, sizeof idle_stack / sizeof idle_stack[0], idle);
}

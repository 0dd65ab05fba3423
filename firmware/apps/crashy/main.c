/*
 * crashy: the fault zoo. Asks for a mode on UART0, then misbehaves in that one way so the
 * microvisor's supervision can be watched (and tested: tests/qemu/). Every mode except
 * `badptr`, `reentry` and `none` must end with the microvisor stopping, reporting and restarting
 * the app; after a restart crashy asks again.
 *
 * The app watchdog (300 ms) is started before anything else, so the hangs (`irqoff`,
 * `faultmask`, `isr-hang`) are caught by it whatever state they leave the CPU in; `storm` raises it
 * to 2 s so the microvisor's interrupt-storm detector is what stops it.
 */
#include <stdint.h>
#include <string.h>

#include "app_hw.h"
#include "console.h"
#include "keel.h"

#define CRASHY_WATCHDOG_MS 300u
#define CRASHY_PROMPT_US 3000000u
#define CRASHY_ALIVE_US 500000u
#define CRASHY_REENTRY_US 1000000u
#define CRASHY_REENTRY_HZ 2000u
/* Log on every Nth call only, so the re-entry test does not bury the console in log lines. */
#define CRASHY_REENTRY_LOG_EVERY 8u

/* Addresses the app must never reach (the board's partition: app_hw.h). */
#define ADDR_S_RAM APP_HW_SECURE_RAM
#define ADDR_S_CODE APP_HW_SECURE_CODE
#define ADDR_S_CODE_NOT_NSC APP_HW_SECURE_CODE_NOT_NSC
#define ADDR_NSC APP_HW_NSC
#define ADDR_UART1_NS APP_HW_UART1_NS
#define ADDR_UART1_S APP_HW_UART1_S
#define ADDR_APP_RAM_END APP_HW_APP_RAM_END

/* What the TIMER1 and SVC handlers do: set by the mode before it enables them. */
enum timer_job { TIMER_WAKE, TIMER_HANG, TIMER_FAULT, TIMER_REENTRY };
static volatile enum timer_job timer_job;
static volatile int svc_faults;

static void kick(void)
{
    (void)keel_watchdog_kick();
}

static void say(const char *a, const char *b)
{
    console_puts("crashy: ");
    console_puts(a);
    console_puts(b);
    console_puts("\n");
}

static uint32_t read_word(uint32_t addr)
{
    return *(volatile uint32_t *)addr;
}

/* ---- re-entry: the TIMER1 handler and main call the API at the same time ---------------- */

static volatile uint32_t reentry_irq_calls;
static volatile uint32_t reentry_irq_fails;
static uint64_t reentry_irq_last_us;

static void reentry_tick(void)
{
    uint64_t t = 0;
    uint32_t calls = reentry_irq_calls;

    if (keel_time_get_us(&t) != KEEL_OK || t < reentry_irq_last_us) {
        reentry_irq_fails++;
    }
    reentry_irq_last_us = t;
    calls++;
    if (calls % CRASHY_REENTRY_LOG_EVERY == 0u) {
        if (keel_log_write(KEEL_LOG_DEBUG, "crashy: irq", 11) != KEEL_OK) {
            reentry_irq_fails++;
        }
        calls++;
    }
    if (keel_watchdog_kick() != KEEL_OK) {
        reentry_irq_fails++;
    }
    reentry_irq_calls = calls + 1u;
}

void IRQ4_Handler(void) /* TIMER1 */
{
    TIMER1_INTCLEAR = 1;
    switch (timer_job) {
    case TIMER_HANG:
        for (;;) {
        }
    case TIMER_FAULT:
        (void)read_word(ADDR_S_RAM);
        break;
    case TIMER_REENTRY:
        reentry_tick();
        break;
    case TIMER_WAKE:
        break;
    }
}

void SVC_Handler(void)
{
    if (svc_faults) {
        (void)read_word(ADDR_S_RAM);
    }
}

void IRQ5_Handler(void) /* DUALTIMER line, pended by software in `storm`: re-pends itself */
{
    nvic_pend(DUALTIMER_IRQN);
}

/* ---- modes --------------------------------------------------------------------------------- */

static int mode_none(void)
{
    uint64_t next = 0;
    uint64_t now = 0;

    timer_job = TIMER_WAKE;
    timer1_start_periodic(10000u);
    nvic_enable(TIMER1_IRQN);
    (void)keel_time_get_us(&next);
    for (;;) {
        __asm__ volatile("wfi");
        kick();
        if (keel_time_get_us(&now) == KEEL_OK && now >= next) {
            next = now + CRASHY_ALIVE_US;
            say("alive", "");
        }
    }
    __builtin_unreachable();
}

static int mode_null(void)
{
    console_put_hex(read_word(0));
    return 0;
}

static int mode_secure_ram(void)
{
    *(volatile uint32_t *)ADDR_S_RAM = 0xDEADBEEFu;
    return 0;
}

static int mode_secure_periph(void)
{
    /* The PPC makes UART1 RAZ/WI through its NS alias; the secure alias is secure memory. */
    uint32_t v = read_word(ADDR_UART1_NS + 0x04u);
    console_puts("crashy: UART1 STATE via NS alias reads ");
    console_put_hex(v);
    console_puts(v == 0 ? " (blocked, ok)\n" : " (NOT blocked: FAIL)\n");
    console_put_hex(read_word(ADDR_UART1_S + 0x04u));
    return 0;
}

static int mode_nsc_jump(void)
{
    void (*fn)(void) = (void (*)(void))ADDR_S_CODE_NOT_NSC;
    fn();
    return 0;
}

static int mode_undef(void)
{
    __asm__ volatile("udf #1");
    return 0;
}

static int mode_divzero(void)
{
    volatile int32_t zero = 0;
    volatile int32_t num = 42;
    SCB_CCR |= SCB_CCR_DIV_0_TRP;
    __asm__ volatile("dsb\n isb");
    console_put_int(num / zero);
    return 0;
}

__attribute__((noinline)) static uint32_t recurse(uint32_t depth)
{
    volatile uint32_t pad[16];
    pad[0] = depth;
    if (pad[0] == 0xFFFFFFFFu) {
        return 0;
    }
    return recurse(depth + 1u) + pad[0]; /* not a tail call: every level keeps its frame */
}

static int mode_stack_overflow(void)
{
    return (int)recurse(0);
}

static int mode_irqoff(void)
{
    __asm__ volatile("cpsid i" ::: "memory");
    for (;;) {
    }
    __builtin_unreachable();
}

static int mode_faultmask(void)
{
    __asm__ volatile("cpsid f" ::: "memory");
    for (;;) {
    }
    __builtin_unreachable();
}

static int mode_isr_hang(void)
{
    timer_job = TIMER_HANG;
    timer1_start_periodic(1000u);
    nvic_enable(TIMER1_IRQN);
    for (;;) {
        kick(); /* main would keep the watchdog happy; the hung handler never lets it run */
    }
    __builtin_unreachable();
}

static int mode_storm(void)
{
    /* A longer watchdog than the other modes: the microvisor's storm detector (500 ms of
     * samples) must be what stops this, not the hang detector. */
    (void)keel_watchdog_start(2000u);
    nvic_enable(DUALTIMER_IRQN);
    nvic_pend(DUALTIMER_IRQN);
    for (;;) {
        kick();
    }
    __builtin_unreachable();
}

static int mode_handler_fault(void)
{
    svc_faults = 1;
    __asm__ volatile("svc #0" ::: "memory");
    say("handler-fault: SVC handler returned (FAIL)", "");
    return 0;
}

static int mode_bkpt(void)
{
    __asm__ volatile("bkpt #1");
    return 0;
}

static int mode_exit(void)
{
    return 3;
}

static int mode_restart(void)
{
    keel_status_t st = keel_app_restart();
    console_puts("crashy: keel_app_restart returned ");
    console_put_int(st);
    console_puts(" (FAIL)\n");
    return mode_none();
}

/* -- badptr -- */

struct badptr_run {
    uint32_t calls;
    const char *failed; /* first call that returned an undocumented status */
    keel_status_t failed_status;
};

static void expect(struct badptr_run *run, const char *what, keel_status_t got, keel_status_t want,
                   keel_status_t alt)
{
    run->calls++;
    if (got != want && got != alt && run->failed == NULL) {
        run->failed = what;
        run->failed_status = got;
    }
}

/*
 * Each bad pointer goes to every call that takes one. "past-end" starts 4 bytes before the end
 * of app RAM, so every object passed runs past it.
 */
static void badptr_each(struct badptr_run *run, const char *name, uintptr_t p)
{
    static char what[5][48];
    static const char *const fn[5] = {"version_get", "time_get_us", "device_id_get", "log_write",
                                      "notify_setup"};
    keel_status_t st[5];

    st[0] = keel_version_get((keel_version_t *)p);
    st[1] = keel_time_get_us((uint64_t *)p);
    st[2] = keel_device_id_get((char *)p, 64);
    st[3] = keel_log_write(KEEL_LOG_INFO, (const char *)p, 16);
    st[4] = keel_notify_setup((keel_notification_t *)p, 4, APP_NOTIFY_IRQN);
    for (int i = 0; i < 5; i++) {
        if (run->failed == NULL) {
            what[i][0] = '\0';
            strncat(what[i], fn[i], sizeof what[i] - 1u);
            strncat(what[i], "(", sizeof what[i] - strlen(what[i]) - 1u);
            strncat(what[i], name, sizeof what[i] - strlen(what[i]) - 1u);
            strncat(what[i], ")", sizeof what[i] - strlen(what[i]) - 1u);
        }
        expect(run, what[i], st[i], KEEL_EFAULT, KEEL_EFAULT);
    }
}

static int mode_badptr(void)
{
    struct badptr_run run = {0, NULL, 0};
    static char buf[64];
    static keel_notification_t ring[4];

    badptr_each(&run, "NULL", 0);
    badptr_each(&run, "secure-ram", ADDR_S_RAM);
    badptr_each(&run, "secure-code", ADDR_S_CODE);
    badptr_each(&run, "nsc", ADDR_NSC);
    badptr_each(&run, "past-end", ADDR_APP_RAM_END - 4u);

    /* Ranges that wrap around 2^32: a valid start with a huge length, or a start near the top. */
    expect(&run, "device_id_get(wrap)", keel_device_id_get(buf, (size_t)0xFFFFFFF0u),
           KEEL_EFAULT, KEEL_EFAULT);
    expect(&run, "log_write(wrap)", keel_log_write(KEEL_LOG_INFO, buf, (size_t)0xFFFFFFF0u),
           KEEL_EFAULT, KEEL_EFAULT);
    expect(&run, "version_get(wrap)", keel_version_get((keel_version_t *)0xFFFFFFFCu),
           KEEL_EFAULT, KEEL_EFAULT);
    expect(&run, "time_get_us(wrap)", keel_time_get_us((uint64_t *)0xFFFFFFFCu), KEEL_EFAULT,
           KEEL_EFAULT);
    /* 2^28 slots of 16 bytes is exactly 2^32: out of range, whichever check comes first. */
    expect(&run, "notify_setup(wrap)", keel_notify_setup(ring, 0x10000000u, APP_NOTIFY_IRQN),
           KEEL_EINVAL, KEEL_EFAULT);

    if (run.failed == NULL) {
        console_puts("crashy: badptr ok ");
        console_put_dec(run.calls);
        console_puts(" calls\n");
    } else {
        console_puts("crashy: badptr FAIL ");
        console_puts(run.failed);
        console_puts(" returned ");
        console_put_int(run.failed_status);
        console_puts("\n");
    }
    return mode_none();
}

/* -- reentry -- */

static int mode_reentry(void)
{
    uint64_t start = 0;
    uint64_t now = 0;
    uint64_t last = 0;
    uint32_t calls = 0;
    const char *failed = NULL;

    if (keel_time_get_us(&start) != KEEL_OK) {
        failed = "time_get_us (main)";
    }
    now = start;
    last = start;
    timer_job = TIMER_REENTRY;
    timer1_start_periodic(1000000u / CRASHY_REENTRY_HZ);
    nvic_enable(TIMER1_IRQN);

    while (failed == NULL && now - start < CRASHY_REENTRY_US) {
        if (keel_time_get_us(&now) != KEEL_OK) {
            failed = "time_get_us (main)";
        } else if (now < last) {
            failed = "time went backwards (main)";
            console_puts("crashy: reentry: keel_time_get_us returned ");
            console_put_dec(now);
            console_puts(" after ");
            console_put_dec(last);
            console_puts("\n");
        }
        last = now;
        calls++;
        if (calls % CRASHY_REENTRY_LOG_EVERY == 0u) {
            if (keel_log_write(KEEL_LOG_DEBUG, "crashy: main", 12) != KEEL_OK) {
                failed = "log_write (main)";
            }
            calls++;
        }
        if (keel_watchdog_kick() != KEEL_OK) {
            failed = "watchdog_kick (main)";
        }
        calls++;
    }
    nvic_disable(TIMER1_IRQN);
    TIMER1_CTRL = 0;

    if (failed == NULL && reentry_irq_fails != 0) {
        failed = "a call from the TIMER1 handler";
    }
    if (failed == NULL && reentry_irq_calls < 100u) {
        failed = "TIMER1 handler hardly ran";
    }
    if (failed == NULL) {
        console_puts("crashy: reentry ok ");
        console_put_dec(calls + reentry_irq_calls);
        console_puts(" calls (");
        console_put_dec(reentry_irq_calls);
        console_puts(" from the handler)\n");
    } else {
        say("reentry FAIL ", failed);
    }
    return mode_none();
}

struct mode {
    const char *name;
    int (*run)(void);
};

static const struct mode modes[] = {
    {"none", mode_none},
    {"null", mode_null},
    {"secure-ram", mode_secure_ram},
    {"secure-periph", mode_secure_periph},
    {"nsc-jump", mode_nsc_jump},
    {"undef", mode_undef},
    {"divzero", mode_divzero},
    {"stack-overflow", mode_stack_overflow},
    {"irqoff", mode_irqoff},
    {"faultmask", mode_faultmask},
    {"isr-hang", mode_isr_hang},
    {"storm", mode_storm},
    {"handler-fault", mode_handler_fault},
    {"bkpt", mode_bkpt},
    {"badptr", mode_badptr},
    {"exit", mode_exit},
    {"restart", mode_restart},
    {"reentry", mode_reentry},
};

int main(void)
{
    char line[32];
    const struct mode *mode = &modes[0];
    keel_status_t st;

    console_init();
    if ((st = keel_watchdog_start(CRASHY_WATCHDOG_MS)) != KEEL_OK) {
        console_puts("crashy: keel_watchdog_start failed: ");
        console_put_int(st);
        console_puts("\n");
    }
    console_puts("crashy: mode? \n");
    if (console_read_line(line, sizeof line, CRASHY_PROMPT_US, kick) < 0) {
        say("no mode given in time, using none", "");
    } else {
        mode = NULL;
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
            if (strcmp(line, modes[i].name) == 0) {
                mode = &modes[i];
            }
        }
        if (mode == NULL) {
            console_puts("crashy: unknown mode '");
            console_puts(line);
            console_puts("'; modes:");
            for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
                console_putc(' ');
                console_puts(modes[i].name);
            }
            console_puts("; using none\n");
            mode = &modes[0];
        }
    }
    say("running ", mode->name);
    return mode->run();
}

/*
 * hello-cxx: the same Keel API from C++ (-fno-exceptions -fno-rtti), to show that the app's
 * language and runtime are its own business: the SDK's startup runs the global constructors
 * (.init_array) before main, and runtime.cpp supplies the few runtime hooks this app needs.
 */
#include <stdint.h>

#include "app_hw.h"
#include "console.h"
#include "keel.h"

namespace {

/* A fixed-capacity statistics window: a template instantiated for two sample types below. */
template <typename T, uint32_t N>
class Window {
public:
    void add(T v)
    {
        samples_[count_ % N] = v;
        count_++;
    }
    T max() const
    {
        T m = samples_[0];
        for (uint32_t i = 1; i < filled(); i++) {
            m = samples_[i] > m ? samples_[i] : m;
        }
        return m;
    }
    uint32_t filled() const { return count_ < N ? count_ : N; }

private:
    T samples_[N] = {};
    uint32_t count_ = 0;
};

/* Things the main loop runs once a second, behind an abstract interface. */
class Task {
public:
    virtual void run(uint64_t now_us) = 0;

protected:
    ~Task() = default; /* never deleted through the interface: no operator delete needed */
};

class Ticker : public Task {
public:
    void run(uint64_t now_us) override
    {
        ticks_++;
        if (last_us_ != 0) {
            gaps_ms_.add(static_cast<uint32_t>((now_us - last_us_) / 1000u));
        }
        last_us_ = now_us;
        console_puts("hello-cxx: tick ");
        console_put_dec(ticks_);
        console_puts(" (longest gap ");
        console_put_dec(gaps_ms_.filled() ? gaps_ms_.max() : 0u);
        console_puts(" ms)\n");
    }

private:
    uint64_t ticks_ = 0;
    uint64_t last_us_ = 0;
    Window<uint32_t, 8> gaps_ms_;
};

class WatchdogKicker : public Task {
public:
    void run(uint64_t) override
    {
        if (keel_watchdog_kick() != KEEL_OK) {
            failures_.add(1);
        }
    }

private:
    Window<uint8_t, 4> failures_;
};

/* A global object whose constructor the SDK startup runs before main. */
class Greeter {
public:
    explicit Greeter(const char *name) : name_(name)
    {
        console_init();
        (void)keel_time_get_us(&constructed_us_);
        console_puts(name_);
        console_puts(": global constructor ran before main at ");
        console_put_dec(constructed_us_);
        console_puts(" us\n");
    }
    const char *name() const { return name_; }

private:
    const char *name_;
    uint64_t constructed_us_ = 0;
};

Greeter greeter("hello-cxx");
Ticker ticker;
WatchdogKicker kicker;
Task *const tasks[] = {&kicker, &ticker};

template <typename F>
void for_each_task(F &&fn)
{
    for (Task *t : tasks) {
        fn(*t);
    }
}

void print_identity()
{
    keel_version_t ver;
    char id[64];
    if (keel_version_get(&ver) == KEEL_OK) {
        console_puts(greeter.name());
        console_puts(": keel api ");
        console_put_dec(ver.api);
        console_puts("\n");
    }
    if (keel_device_id_get(id, sizeof id) == KEEL_OK) {
        console_puts(greeter.name());
        console_puts(": device id ");
        console_puts(id);
        console_puts("\n");
    }
    static const char msg[] = "hello-cxx: up and logging from C++";
    (void)keel_log_write(KEEL_LOG_INFO, msg, sizeof msg - 1u);
}

} // namespace

extern "C" void IRQ4_Handler(void) /* TIMER1: wakes the main loop */
{
    TIMER1_INTCLEAR = 1;
}

int main()
{
    console_puts("hello-cxx: main\n");
    print_identity();
    (void)keel_watchdog_start(2000u);
    timer1_start_periodic(10000u);
    nvic_enable(TIMER1_IRQN);

    uint64_t next_us = 0;
    (void)keel_time_get_us(&next_us);
    next_us += 1000000u;
    for (;;) {
        __asm__ volatile("wfi");
        uint64_t now_us = 0;
        (void)keel_watchdog_kick();
        if (keel_time_get_us(&now_us) == KEEL_OK && now_us >= next_us) {
            next_us += 1000000u;
            for_each_task([now_us](Task &t) { t.run(now_us); });
        }
    }
}

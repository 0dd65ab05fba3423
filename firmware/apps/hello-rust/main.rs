//! hello-rust: a Keel app in Rust, on the `keel` crate (firmware/sdk/rust/keel).
//!
//! It logs through the microvisor (versions, device id), registers its notification ring and
//! decodes what arrives (STARTED with the previous run's stop reason), starts and kicks the app
//! watchdog, looks at the update state and checks that a confirm outside a trial is refused,
//! opens channel "rust" and queues a message (and checks a bad name is refused), echoes every
//! message the cloud sends down that channel, then ticks once a second, sleeping in WFI between its
//! own SysTick interrupts. On its first run it restarts itself
//! after tick 2 (`keel::app_restart`); the next run's STARTED says "restart". tests/qemu/rust.sh
//! asserts each of these lines.
#![no_std]
#![no_main]

use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};
use keel::{LogLevel, LogLine, Notification};

const NOTIFY_IRQ: u32 = 70; // an AN505 line with no device (firmware/apps/common/app_hw.h)
const WATCHDOG_MS: u32 = 2000;
const CPU_HZ: u32 = 20_000_000;
const TICK_HZ: u32 = 100;

static RING: keel::NotifyRing<8> = keel::NotifyRing::new();
static SYSTICKS: AtomicU32 = AtomicU32::new(0);

fn reg(addr: u32, value: u32) {
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// The notification line: the main loop pops the ring after each WFI; this only wakes it.
#[no_mangle]
pub extern "C" fn IRQ70_Handler() {}

#[no_mangle]
pub extern "C" fn SysTick_Handler() {
    SYSTICKS.fetch_add(1, Ordering::Relaxed);
}

fn say(line: &mut LogLine) {
    // A log line the microvisor refused has nowhere else to go; count on the test to notice.
    let _ = line.send(LogLevel::Info);
}

/// Every message waiting on `ch` goes back up the same channel, byte for byte.
fn echo(ch: &keel::Channel, line: &mut LogLine) {
    let mut buf = [0u8; keel::CHANNEL_DATA_MAX];
    loop {
        match ch.recv(&mut buf) {
            Ok(Some(n)) => {
                let _ = match ch.send(&buf[..n]) {
                    Ok(seq) => write!(line, "hello-rust: echoed {} bytes as seq {}", n, seq),
                    Err(e) => write!(line, "hello-rust: echo send failed: {}", e.name()),
                };
            }
            Ok(None) => return,
            Err(e) => {
                let _ = write!(line, "hello-rust: channel recv failed: {}", e.name());
                say(line);
                return;
            }
        }
        say(line);
    }
}

#[no_mangle]
pub extern "C" fn main() -> i32 {
    let mut line = LogLine::new();

    match keel::version() {
        Ok(v) => {
            let _ = write!(
                line,
                "hello-rust: microvisor {}.{}.{} api {} app {}.{}.{}",
                v.microvisor.major(),
                v.microvisor.minor(),
                v.microvisor.patch(),
                v.api,
                v.app.major(),
                v.app.minor(),
                v.app.patch()
            );
        }
        Err(e) => {
            let _ = write!(line, "hello-rust: version failed: {}", e.name());
        }
    }
    say(&mut line);
    let mut id = [0u8; keel::DEVICE_ID_CAP];
    match keel::device_id(&mut id) {
        Ok(s) => {
            let _ = write!(line, "hello-rust: device id {}", s);
        }
        Err(e) => {
            let _ = write!(line, "hello-rust: device id failed: {}", e.name());
        }
    }
    say(&mut line);

    // NVIC: clear, then enable the notification line, then register the ring.
    reg(0xE000_E280 + 4 * (NOTIFY_IRQ / 32), 1 << (NOTIFY_IRQ % 32));
    reg(0xE000_E100 + 4 * (NOTIFY_IRQ / 32), 1 << (NOTIFY_IRQ % 32));
    if let Err(e) = RING.setup(NOTIFY_IRQ) {
        let _ = write!(line, "hello-rust: notify setup failed: {}", e.name());
        say(&mut line);
    }
    if let Err(e) = keel::watchdog_start(WATCHDOG_MS) {
        let _ = write!(line, "hello-rust: watchdog failed: {}", e.name());
        say(&mut line);
    }

    // Update control: nothing staged, not on trial.
    match keel::update_status() {
        Ok(s) => {
            let _ = write!(
                line,
                "hello-rust: update state {:?}, installed {}.{}.{}, on trial {}",
                s.state,
                s.installed_version.major(),
                s.installed_version.minor(),
                s.installed_version.patch(),
                s.on_trial
            );
        }
        Err(e) => {
            let _ = write!(line, "hello-rust: update status failed: {}", e.name());
        }
    }
    say(&mut line);
    let _ = write!(line, "hello-rust: update_confirm off trial: {:?}", keel::update_confirm());
    say(&mut line);

    // A channel: a bad name is refused (by the microvisor), a good one queues.
    let _ = write!(line, "hello-rust: open \"a/b\": {:?}", keel::Channel::open("a/b").map(|c| c.handle()));
    say(&mut line);
    let channel = keel::Channel::open("rust");
    match &channel {
        Ok(ch) => match ch.send(b"hello from rust") {
            Ok(seq) => {
                let _ = write!(line, "hello-rust: channel rust open, message queued as seq {}", seq);
            }
            Err(e) => {
                let _ = write!(line, "hello-rust: channel send failed: {}", e.name());
            }
        },
        Err(e) => {
            let _ = write!(line, "hello-rust: channel open failed: {}", e.name());
        }
    }
    say(&mut line);

    // 128-bit division (the SDK's compiler_builtins: 32-bit libgcc has none), on values the
    // compiler cannot fold.
    static N: u128 = u128::MAX - 12345;
    static D: u128 = 0x1_0000_0000_0000_0007;
    static S: i128 = -170_141_183_460_469_231_731_687_303_715_884_105_000;
    // SAFETY: reads of statics, volatile only so the divisions happen at run time.
    let (n, d, s) = unsafe { (core::ptr::read_volatile(&N), core::ptr::read_volatile(&D), core::ptr::read_volatile(&S)) };
    let _ = write!(line, "hello-rust: u128 {} / {} = {} rem {}; i128 {} / 7 = {} rem {}", n, d, n / d, n % d, s, s / 7, s % 7);
    say(&mut line);

    // SysTick (the app's own bank) at TICK_HZ on the core clock wakes the loop.
    reg(0xE000_E014, CPU_HZ / TICK_HZ - 1);
    reg(0xE000_E018, 0);
    reg(0xE000_E010, 0x7);

    let start = keel::time_us().unwrap_or(0);
    let mut ticks: u64 = 0;
    let mut first_run = false;
    loop {
        unsafe { core::arch::asm!("wfi") };
        let _ = keel::watchdog_kick();
        while let Some(n) = RING.pop() {
            match n {
                Notification::Started { reason, restarts } => {
                    first_run = restarts == 0;
                    let _ = write!(
                        line,
                        "hello-rust: notification Started, previous run ended by {}, restarts {}",
                        reason.name(),
                        restarts
                    );
                }
                Notification::ChannelSent { handle, seq } => {
                    let _ = write!(line, "hello-rust: channel {} sent seq {}", handle, seq);
                }
                Notification::ChannelData { handle, waiting } => {
                    let _ = write!(line, "hello-rust: channel {} has {} message(s)", handle, waiting);
                    say(&mut line);
                    if let Ok(ch) = &channel {
                        if ch.handle() == handle {
                            echo(ch, &mut line);
                        }
                    }
                }
                other => {
                    let _ = write!(line, "hello-rust: notification {:?}", other);
                }
            }
            say(&mut line);
        }
        let now = keel::time_us().unwrap_or(0);
        if now.wrapping_sub(start) >= (ticks + 1) * 1_000_000 {
            ticks += 1;
            let _ = write!(line, "hello-rust: tick {} ({} systicks)", ticks, SYSTICKS.load(Ordering::Relaxed));
            say(&mut line);
            if first_run && ticks == 2 {
                let _ = write!(line, "hello-rust: restarting through keel::app_restart");
                say(&mut line);
                let e = keel::app_restart();
                let _ = write!(line, "hello-rust: app_restart returned {}", e.name());
                say(&mut line);
            }
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut line = LogLine::new();
    if let Some(loc) = info.location() {
        let _ = write!(line, "hello-rust: panic at {}:{}", loc.file(), loc.line());
    } else {
        let _ = write!(line, "hello-rust: panic");
    }
    let _ = line.send(LogLevel::Error);
    // An undefined instruction: the microvisor reports the fault and restarts the app.
    unsafe { core::arch::asm!("udf #0xfe", options(noreturn)) }
}

//! `keel`: safe Rust over the Keel microvisor API (`firmware/sdk/include/keel.h`, API v1).
//!
//! `#![no_std]`, no allocation, no dependencies but `core`. Every call returns
//! [`Result`]: `Ok` for `KEEL_OK`, [`Error`] for the closed set of `KEEL_E*` codes. Pointers
//! handed to the microvisor always come from Rust references, so [`Error::Fault`] means a bug in
//! this crate, not in the app.
//!
//! ```ignore
//! static RING: keel::NotifyRing<8> = keel::NotifyRing::new();
//! keel::log(keel::LogLevel::Info, "up")?;
//! RING.setup(70)?;                          // NVIC line 70 (enable it in the NVIC yourself)
//! while let Some(n) = RING.pop() { match n { keel::Notification::Started { reason, .. } => {} _ => {} } }
//! let ch = keel::Channel::open("telemetry")?;
//! let seq = ch.send(b"t=21.5")?;
//! ```
//!
//! Settings, secrets and remote calls (issue 19) come with their C API.
#![cfg_attr(not(test), no_std)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The raw C API (`keel.h`), for what the safe layer does not cover.
pub mod sys {
    /// `keel_version_t`
    #[repr(C)]
    #[derive(Clone, Copy, Default, Debug)]
    pub struct Version {
        pub microvisor: u32,
        pub api: u32,
        pub app: u32,
    }

    /// `keel_notification_t` (`kind` is written last by the microvisor; read it volatile).
    #[repr(C)]
    #[derive(Clone, Copy, Default, Debug)]
    pub struct Notification {
        pub kind: u32,
        pub arg0: u32,
        pub arg1: u32,
        pub time_ms: u32,
    }

    /// `keel_update_status_t`
    #[repr(C)]
    #[derive(Clone, Copy, Default, Debug)]
    pub struct UpdateStatus {
        pub state: u32,
        pub result: u32,
        pub flags: u32,
        pub version: u32,
        pub installed_version: u32,
        pub blocks_needed: u32,
        pub blocks_staged: u32,
        pub seconds_left: u32,
    }

    extern "C" {
        pub fn keel_version_get(out: *mut Version) -> i32;
        pub fn keel_device_id_get(out: *mut u8, cap: usize) -> i32;
        pub fn keel_time_get_us(out_us: *mut u64) -> i32;
        pub fn keel_log_write(level: u32, msg: *const u8, len: usize) -> i32;
        pub fn keel_notify_setup(ring: *mut Notification, slots: u32, irq: u32) -> i32;
        pub fn keel_watchdog_start(timeout_ms: u32) -> i32;
        pub fn keel_watchdog_kick() -> i32;
        pub fn keel_app_restart() -> i32;
        pub fn keel_update_status(out: *mut UpdateStatus) -> i32;
        pub fn keel_update_apply() -> i32;
        pub fn keel_update_confirm() -> i32;
        pub fn keel_channel_open(name: *const u8, out_handle: *mut u32) -> i32;
        pub fn keel_channel_send(handle: u32, data: *const u8, len: usize, out_seq: *mut u32) -> i32;
        pub fn keel_channel_recv(handle: u32, buf: *mut u8, cap: usize, out_len: *mut usize) -> i32;
        pub fn keel_channel_close(handle: u32) -> i32;
    }
}

// ---- status ----------------------------------------------------------------------------------

/// A `KEEL_E*` status. The set is closed; [`Error::Other`] only appears if a newer microvisor
/// broke that promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `KEEL_EINVAL`: an argument is out of its documented range.
    Invalid,
    /// `KEEL_EFAULT`: a pointer is not in the app's memory.
    Fault,
    /// `KEEL_ENOSPC`: an output buffer is too small, or no room (channels).
    NoSpace,
    /// `KEEL_EBUSY`: the resource is in use; try again later.
    Busy,
    /// `KEEL_ESTATE`: not allowed in the current state.
    State,
    /// `KEEL_ENOTSUP`: not supported by this microvisor.
    NotSupported,
    /// `KEEL_EAGAIN`: nothing available now.
    Again,
    /// A code outside the documented set.
    Other(i32),
}

impl Error {
    /// The `keel.h` name of the code, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Error::Invalid => "KEEL_EINVAL",
            Error::Fault => "KEEL_EFAULT",
            Error::NoSpace => "KEEL_ENOSPC",
            Error::Busy => "KEEL_EBUSY",
            Error::State => "KEEL_ESTATE",
            Error::NotSupported => "KEEL_ENOTSUP",
            Error::Again => "KEEL_EAGAIN",
            Error::Other(_) => "unknown status",
        }
    }
}

/// The result of every call.
pub type Result<T> = core::result::Result<T, Error>;

fn check(status: i32) -> Result<()> {
    match status {
        0 => Ok(()),
        -1 => Err(Error::Invalid),
        -2 => Err(Error::Fault),
        -3 => Err(Error::NoSpace),
        -4 => Err(Error::Busy),
        -5 => Err(Error::State),
        -6 => Err(Error::NotSupported),
        -7 => Err(Error::Again),
        other => Err(Error::Other(other)),
    }
}

// ---- version, identity, time ----------------------------------------------------------------

/// `KEEL_API_VERSION` this crate was written against.
pub const API_VERSION: u32 = 1;

/// A packed semantic version (`major << 24 | minor << 16 | patch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Semver(pub u32);

impl Semver {
    pub fn major(self) -> u32 {
        self.0 >> 24
    }
    pub fn minor(self) -> u32 {
        (self.0 >> 16) & 0xFF
    }
    pub fn patch(self) -> u32 {
        self.0 & 0xFFFF
    }
}

/// What `keel_version_get` says.
#[derive(Clone, Copy, Debug)]
pub struct Versions {
    pub microvisor: Semver,
    pub api: u32,
    pub app: Semver,
}

pub fn version() -> Result<Versions> {
    let mut v = sys::Version::default();
    check(unsafe { sys::keel_version_get(&mut v) })?;
    Ok(Versions { microvisor: Semver(v.microvisor), api: v.api, app: Semver(v.app) })
}

/// Room for the longest device id and its NUL.
pub const DEVICE_ID_CAP: usize = 64;

/// The device id, written into `buf`; the returned `&str` borrows it.
pub fn device_id(buf: &mut [u8; DEVICE_ID_CAP]) -> Result<&str> {
    check(unsafe { sys::keel_device_id_get(buf.as_mut_ptr(), buf.len()) })?;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    // The microvisor promises [A-Za-z0-9._-]; anything else is refused rather than trusted.
    core::str::from_utf8(&buf[..len]).map_err(|_| Error::Other(0))
}

/// Microseconds since the device booted (monotonic across app restarts).
pub fn time_us() -> Result<u64> {
    let mut us = 0u64;
    check(unsafe { sys::keel_time_get_us(&mut us) })?;
    Ok(us)
}

// ---- logging ----------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

/// Bytes of one log message; longer ones are truncated by the microvisor.
pub const LOG_MAX: usize = 240;

/// One line in the device log (the microvisor's console and the cloud).
pub fn log(level: LogLevel, msg: &str) -> Result<()> {
    check(unsafe { sys::keel_log_write(level as u32, msg.as_ptr(), msg.len()) })
}

/// A line assembled from pieces without allocation (`core::fmt::Write`), for [`log`].
pub struct LogLine {
    buf: [u8; LOG_MAX],
    len: usize,
}

impl LogLine {
    pub const fn new() -> Self {
        LogLine { buf: [0; LOG_MAX], len: 0 }
    }
    pub fn as_str(&self) -> &str {
        // Only whole &str pieces are appended (cut at a char boundary): always UTF-8.
        unsafe { core::str::from_utf8_unchecked(&self.buf[..self.len]) }
    }
    /// Log the line at `level` and empty it.
    pub fn send(&mut self, level: LogLevel) -> Result<()> {
        let r = log(level, self.as_str());
        self.len = 0;
        r
    }
}

impl Default for LogLine {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Write for LogLine {
    /// Appends what fits; the rest of a too-long line is dropped (as the microvisor would).
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let mut n = s.len().min(LOG_MAX - self.len);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

// ---- watchdog and lifecycle -------------------------------------------------------------------

pub const WATCHDOG_MIN_MS: u32 = 10;
pub const WATCHDOG_MAX_MS: u32 = 600_000;

/// Start (or change) the app watchdog; it cannot be stopped until the app restarts.
pub fn watchdog_start(timeout_ms: u32) -> Result<()> {
    check(unsafe { sys::keel_watchdog_start(timeout_ms) })
}

pub fn watchdog_kick() -> Result<()> {
    check(unsafe { sys::keel_watchdog_kick() })
}

/// Restart the app cleanly now. Returns only if the microvisor refused.
pub fn app_restart() -> Error {
    match check(unsafe { sys::keel_app_restart() }) {
        Ok(()) => Error::Other(0),
        Err(e) => e,
    }
}

// ---- notifications ---------------------------------------------------------------------------

/// Why the previous run ended (`keel_stop_reason_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    None,
    Fault,
    Watchdog,
    Exit,
    Restart,
    Update,
    Rollback,
    Other(u32),
}

impl StopReason {
    fn from_raw(v: u32) -> Self {
        match v {
            0 => StopReason::None,
            1 => StopReason::Fault,
            2 => StopReason::Watchdog,
            3 => StopReason::Exit,
            4 => StopReason::Restart,
            5 => StopReason::Update,
            6 => StopReason::Rollback,
            other => StopReason::Other(other),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            StopReason::None => "power-on",
            StopReason::Fault => "fault",
            StopReason::Watchdog => "watchdog",
            StopReason::Exit => "exit",
            StopReason::Restart => "restart",
            StopReason::Update => "update",
            StopReason::Rollback => "rollback",
            StopReason::Other(_) => "unknown",
        }
    }
}

/// One notification, decoded (`docs/device-api.md` "Notifications").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notification {
    Started { reason: StopReason, restarts: u32 },
    Watchdog { ms_left: u32 },
    LogDropped { count: u32 },
    Dropped { count: u32 },
    UpdateProgress { staged: u32, needed: u32 },
    UpdateStaged { version: Semver, seconds_left: u32 },
    UpdateTrial { seconds_left: u32, version: Semver },
    ChannelData { handle: u32, waiting: u32 },
    ChannelSent { handle: u32, seq: u32 },
    /// A kind this crate does not know (a newer microvisor).
    Other { kind: u32, arg0: u32, arg1: u32 },
}

impl Notification {
    fn decode(kind: u32, a: u32, b: u32) -> Self {
        match kind {
            1 => Notification::Started { reason: StopReason::from_raw(a), restarts: b },
            2 => Notification::Watchdog { ms_left: a },
            3 => Notification::LogDropped { count: a },
            4 => Notification::Dropped { count: a },
            5 => Notification::UpdateProgress { staged: a, needed: b },
            6 => Notification::UpdateStaged { version: Semver(a), seconds_left: b },
            7 => Notification::UpdateTrial { seconds_left: a, version: Semver(b) },
            8 => Notification::ChannelData { handle: a, waiting: b },
            9 => Notification::ChannelSent { handle: a, seq: b },
            _ => Notification::Other { kind, arg0: a, arg1: b },
        }
    }
}

/// The notification ring the microvisor fills: `N` slots in the app's RAM, in a `static` (the
/// microvisor writes it for the rest of the run). Any context may [`pop`](NotifyRing::pop); each
/// notification is taken exactly once.
pub struct NotifyRing<const N: usize> {
    slots: UnsafeCell<[sys::Notification; N]>,
    next: AtomicUsize,
}

// The slots are shared with the microvisor by design: every access is volatile, a slot is
// claimed by an atomic compare-exchange on `next` before it is freed, and the microvisor only
// writes slots whose kind is 0.
unsafe impl<const N: usize> Sync for NotifyRing<N> {}

pub const NOTIFY_MIN_SLOTS: usize = 2;
pub const NOTIFY_MAX_SLOTS: usize = 1024;

impl<const N: usize> NotifyRing<N> {
    pub const fn new() -> Self {
        NotifyRing {
            slots: UnsafeCell::new([sys::Notification { kind: 0, arg0: 0, arg1: 0, time_ms: 0 }; N]),
            next: AtomicUsize::new(0),
        }
    }

    /// Register the ring and the NVIC line the microvisor pends (an app line with no device: the
    /// board's app_hw.h names one, APP_NOTIFY_IRQN). Enable that line in the NVIC and give it a
    /// handler (it may be empty when the main loop pops after each `wfi`).
    pub fn setup(&'static self, irq: u32) -> Result<()> {
        if !(NOTIFY_MIN_SLOTS..=NOTIFY_MAX_SLOTS).contains(&N) {
            return Err(Error::Invalid);
        }
        check(unsafe { sys::keel_notify_setup(self.slots.get() as *mut sys::Notification, N as u32, irq) })
    }

    /// The oldest notification not taken yet, or `None`.
    pub fn pop(&self) -> Option<Notification> {
        let base = self.slots.get() as *mut sys::Notification;
        loop {
            let i = self.next.load(Ordering::Acquire);
            let slot = unsafe { base.add(i % N) };
            let kind = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*slot).kind)) };
            if kind == 0 {
                return None;
            }
            let a = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*slot).arg0)) };
            let b = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*slot).arg1)) };
            if self.next.compare_exchange(i, (i + 1) % N, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*slot).kind), 0) };
                return Some(Notification::decode(kind, a, b));
            }
        }
    }
}

impl<const N: usize> Default for NotifyRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

// ---- updates ------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateState {
    Idle,
    Downloading,
    Downloaded,
    Updating,
    Other(u32),
}

/// `keel_update_status_t`, decoded.
#[derive(Clone, Copy, Debug)]
pub struct UpdateStatus {
    pub state: UpdateState,
    /// LwM2M result of the last update (1 success, 8 update failed, ...).
    pub result: u32,
    /// This app runs on trial and has not confirmed yet.
    pub on_trial: bool,
    pub version: Semver,
    pub installed_version: Semver,
    pub blocks_needed: u32,
    pub blocks_staged: u32,
    pub seconds_left: u32,
}

pub fn update_status() -> Result<UpdateStatus> {
    let mut s = sys::UpdateStatus::default();
    check(unsafe { sys::keel_update_status(&mut s) })?;
    Ok(UpdateStatus {
        state: match s.state {
            0 => UpdateState::Idle,
            1 => UpdateState::Downloading,
            2 => UpdateState::Downloaded,
            3 => UpdateState::Updating,
            other => UpdateState::Other(other),
        },
        result: s.result,
        on_trial: s.flags & 1 != 0,
        version: Semver(s.version),
        installed_version: Semver(s.installed_version),
        blocks_needed: s.blocks_needed,
        blocks_staged: s.blocks_staged,
        seconds_left: s.seconds_left,
    })
}

/// Apply the staged update now. Returns only when it could not ([`Error::State`]: nothing staged).
pub fn update_apply() -> Error {
    match check(unsafe { sys::keel_update_apply() }) {
        Ok(()) => Error::Other(0),
        Err(e) => e,
    }
}

/// This new app works: keep it. [`Error::State`] when not on trial.
pub fn update_confirm() -> Result<()> {
    check(unsafe { sys::keel_update_confirm() })
}

// ---- channels -----------------------------------------------------------------------------------

pub const CHANNEL_NAME_MAX: usize = 32;
pub const CHANNEL_DATA_MAX: usize = 512;
pub const CHANNEL_MAX: usize = 4;

/// An open app channel (`keel/v1/<device>/app/{up,down}/<name>`); closed when dropped.
#[derive(Debug)]
pub struct Channel {
    handle: u32,
}

impl Channel {
    /// Open `name` (1..=32 of `A-Z a-z 0-9 . _ -`, checked by the microvisor).
    pub fn open(name: &str) -> Result<Channel> {
        let mut z = [0u8; CHANNEL_NAME_MAX + 1];
        if name.is_empty() || name.len() > CHANNEL_NAME_MAX || name.as_bytes().contains(&0) {
            return Err(Error::Invalid);
        }
        z[..name.len()].copy_from_slice(name.as_bytes());
        let mut handle = 0u32;
        check(unsafe { sys::keel_channel_open(z.as_ptr(), &mut handle) })?;
        Ok(Channel { handle })
    }

    /// The handle notifications carry ([`Notification::ChannelData`], [`Notification::ChannelSent`]).
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Queue `data` (1..=512 bytes) for the cloud; the sequence number its `ChannelSent` carries.
    pub fn send(&self, data: &[u8]) -> Result<u32> {
        let mut seq = 0u32;
        check(unsafe { sys::keel_channel_send(self.handle, data.as_ptr(), data.len(), &mut seq) })?;
        Ok(seq)
    }

    /// Take the oldest message into `buf`: `Ok(Some(len))`, `Ok(None)` when none waits,
    /// [`Error::NoSpace`] when `buf` is too small (the message stays; a buffer of
    /// [`CHANNEL_DATA_MAX`] always fits).
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        let mut len = 0usize;
        match check(unsafe { sys::keel_channel_recv(self.handle, buf.as_mut_ptr(), buf.len(), &mut len) }) {
            Ok(()) => Ok(Some(len)),
            Err(Error::Again) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Close now, seeing the status (dropping closes too, ignoring it).
    pub fn close(self) -> Result<()> {
        let h = self.handle;
        core::mem::forget(self);
        check(unsafe { sys::keel_channel_close(h) })
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _ = unsafe { sys::keel_channel_close(self.handle) };
    }
}

// Host unit tests (`rustc --test`, tests/unit: unit.rust-keel): the parts that need no microvisor.
#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn status_codes_map_to_errors() {
        assert_eq!(check(0), Ok(()));
        let want = [
            Error::Invalid,
            Error::Fault,
            Error::NoSpace,
            Error::Busy,
            Error::State,
            Error::NotSupported,
            Error::Again,
        ];
        for (i, e) in want.iter().enumerate() {
            assert_eq!(check(-(i as i32) - 1), Err(*e));
        }
        assert_eq!(check(-8), Err(Error::Other(-8)));
        assert_eq!(check(5), Err(Error::Other(5)));
        assert_eq!(Error::State.name(), "KEEL_ESTATE");
    }

    #[test]
    fn notifications_decode() {
        assert_eq!(Notification::decode(1, 5, 2), Notification::Started { reason: StopReason::Update, restarts: 2 });
        assert_eq!(Notification::decode(1, 99, 0), Notification::Started { reason: StopReason::Other(99), restarts: 0 });
        assert_eq!(Notification::decode(7, 20, 0x0101_0000), Notification::UpdateTrial { seconds_left: 20, version: Semver(0x0101_0000) });
        assert_eq!(Notification::decode(9, 3, 17), Notification::ChannelSent { handle: 3, seq: 17 });
        assert_eq!(Notification::decode(42, 1, 2), Notification::Other { kind: 42, arg0: 1, arg1: 2 });
        assert_eq!(Semver(0x0102_0003).minor(), 2);
        assert_eq!(Semver(0x0102_0003).patch(), 3);
    }

    /// What the microvisor does: fill the next free slot, kind last.
    fn post<const N: usize>(ring: &NotifyRing<N>, at: usize, kind: u32, a: u32, b: u32) -> bool {
        let slot = unsafe { (ring.slots.get() as *mut sys::Notification).add(at % N) };
        unsafe {
            if core::ptr::read_volatile(core::ptr::addr_of!((*slot).kind)) != 0 {
                return false; // full: the microvisor would count a drop
            }
            (*slot).arg0 = a;
            (*slot).arg1 = b;
            core::ptr::write_volatile(core::ptr::addr_of_mut!((*slot).kind), kind);
        }
        true
    }

    #[test]
    fn ring_pops_in_order_frees_slots_and_wraps() {
        let ring: NotifyRing<4> = NotifyRing::new();
        assert_eq!(ring.pop(), None);
        for i in 0..4 {
            assert!(post(&ring, i, 8, i as u32, 1));
        }
        assert!(!post(&ring, 4, 8, 4, 1), "a full ring takes nothing more");
        assert_eq!(ring.pop(), Some(Notification::ChannelData { handle: 0, waiting: 1 }));
        assert!(post(&ring, 4, 2, 100, 0), "the popped slot is free again");
        for i in 1..4 {
            assert_eq!(ring.pop(), Some(Notification::ChannelData { handle: i, waiting: 1 }));
        }
        assert_eq!(ring.pop(), Some(Notification::Watchdog { ms_left: 100 }));
        assert_eq!(ring.pop(), None);
    }

    #[test]
    fn ring_two_consumers_take_each_notification_once() {
        static RING: NotifyRing<64> = NotifyRing::new();
        for i in 0..64 {
            assert!(post(&RING, i, 9, 0, i as u32));
        }
        let take = || {
            let mut got = Vec::new();
            while let Some(Notification::ChannelSent { seq, .. }) = RING.pop() {
                got.push(seq);
            }
            got
        };
        let t = std::thread::spawn(take);
        let mut all = take();
        all.extend(t.join().unwrap());
        all.sort();
        assert_eq!(all, (0..64).collect::<Vec<u32>>());
    }

    #[test]
    fn log_line_truncates_at_a_char_boundary() {
        let mut l = LogLine::new();
        for _ in 0..LOG_MAX - 1 {
            l.write_str("a").unwrap();
        }
        l.write_str("é").unwrap(); // 2 bytes: does not fit in the last one
        assert_eq!(l.as_str().len(), LOG_MAX - 1);
        l.write_str("b").unwrap();
        assert_eq!(l.as_str().len(), LOG_MAX);
        write!(l, "{}", 123).unwrap();
        assert_eq!(l.as_str().len(), LOG_MAX);
    }

    // The only entry points the tests below reach; they must refuse before calling them.
    #[no_mangle]
    extern "C" fn keel_channel_open(_name: *const u8, _out: *mut u32) -> i32 {
        panic!("keel_channel_open called for a name the crate must refuse itself")
    }
    #[no_mangle]
    extern "C" fn keel_channel_close(_handle: u32) -> i32 {
        panic!("keel_channel_close called without a channel")
    }

    #[test]
    fn channel_names_refused_before_the_call() {
        assert_eq!(Channel::open("").map(|c| c.handle), Err(Error::Invalid));
        assert_eq!(Channel::open(&"x".repeat(CHANNEL_NAME_MAX + 1)).map(|c| c.handle), Err(Error::Invalid));
        assert_eq!(Channel::open("a\0b").map(|c| c.handle), Err(Error::Invalid));
    }
}

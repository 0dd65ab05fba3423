//! The minimal Keel app of tests/outoftree in Rust, built outside the Keel tree with nothing but
//! the SDK's CMake package (tests/qemu/outoftree.sh). Its own UART0 output, like the C one.
#![no_std]
#![no_main]

fn put(s: &str) {
    for b in s.bytes() {
        let mut spins = 0u32;
        // SAFETY: UART0 belongs to the app (AN505, non-secure alias).
        while unsafe { core::ptr::read_volatile(0x4020_0004 as *const u32) } & 1 != 0 && spins < 1_000_000 {
            spins += 1;
        }
        unsafe { core::ptr::write_volatile(0x4020_0000 as *mut u32, b as u32) };
    }
}

#[no_mangle]
pub extern "C" fn main() -> i32 {
    unsafe {
        core::ptr::write_volatile(0x4020_0010 as *mut u32, 173);
        core::ptr::write_volatile(0x4020_0008 as *mut u32, 3);
    }
    put("outoftree: hello from an app built with rust\n");
    if matches!(keel::version(), Ok(v) if v.api == keel::API_VERSION) {
        put("outoftree: keel api matches\n");
    }
    let _ = keel::log(keel::LogLevel::Info, "outoftree: logging through the SDK");
    loop {
        unsafe { core::arch::asm!("wfi") };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    unsafe { core::arch::asm!("udf #0xfe", options(noreturn)) }
}

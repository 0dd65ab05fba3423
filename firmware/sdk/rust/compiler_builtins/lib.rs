//! compiler_builtins for Keel apps built with Debian's rustc (docs/device-api.md "Apps in Rust").
//!
//! rustc links every `#![no_std]` crate against a crate of this name. The real one is a crates.io
//! crate that Debian's `rust-src` does not ship, and Keel builds without cargo. Most of what
//! compiled Rust calls (`__aeabi_*` division and shifts, soft-float, `memcpy`/`memset`/`memcmp`)
//! comes at link time from the toolchain's libgcc and newlib, which `arm-none-eabi-gcc` links into
//! every Keel app. This crate adds what 32-bit libgcc lacks and Rust code reaches for: 128-bit
//! division (int128.rs). Still missing: conversions between 128-bit integers and floats
//! (`__floatuntidf`, `__fixdfti`, ...): using them fails the link with the symbol's name.
#![no_std]
#![feature(compiler_builtins)]
#![compiler_builtins]
#![no_builtins]
// u128 in extern "C": these are called by LLVM-generated code, which passes 128-bit values the
// same way rustc lowers them here (as the real compiler_builtins does on Arm).
#![allow(improper_ctypes_definitions)]

mod int128;

#[no_mangle]
pub extern "C" fn __udivti3(n: u128, d: u128) -> u128 {
    int128::udivmod(n, d).0
}

#[no_mangle]
pub extern "C" fn __umodti3(n: u128, d: u128) -> u128 {
    int128::udivmod(n, d).1
}

#[no_mangle]
pub extern "C" fn __divti3(a: i128, b: i128) -> i128 {
    int128::idivmod(a, b).0
}

#[no_mangle]
pub extern "C" fn __modti3(a: i128, b: i128) -> i128 {
    int128::idivmod(a, b).1
}

//! compiler_builtins for Keel apps built with Debian's rustc (firmware/sdk/rust/README.md).
//!
//! rustc links every `#![no_std]` crate against a crate of this name. The real one is a crates.io
//! crate that Debian's `rust-src` does not ship, and Keel builds without cargo. This one is
//! empty on purpose: the intrinsics the compiled code calls (`__aeabi_*` division and shifts,
//! soft-float, `memcpy`/`memset`/`memcmp`) come at link time from the toolchain's libgcc and
//! newlib, which `arm-none-eabi-gcc` links into every Keel app. A symbol neither provides fails
//! the link with its name, never silently: 32-bit libgcc lacks the 128-bit division and
//! 128-bit/float conversion helpers (`__udivti3`, `__floatuntidf`, ...), so `u128 / u128` does not
//! link (docs/device-api.md, "Apps in Rust").
#![no_std]
#![feature(compiler_builtins)]
#![compiler_builtins]

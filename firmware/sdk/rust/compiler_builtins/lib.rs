//! compiler_builtins for Keel apps built with Debian's rustc (firmware/sdk/rust/README.md).
//!
//! rustc links every `#![no_std]` crate against a crate of this name. The real one is a crates.io
//! crate that Debian's `rust-src` does not ship, and Keel builds without cargo. This one is
//! empty on purpose: the intrinsics the compiled code calls (`__aeabi_*` division and shifts,
//! soft-float, `memcpy`/`memset`/`memcmp`) come at link time from the toolchain's libgcc and
//! newlib, which `arm-none-eabi-gcc` links into every Keel app. A symbol neither provides fails
//! the link with its name (the SDK links with `--no-undefined` semantics of a static executable),
//! never silently.
#![no_std]
#![feature(compiler_builtins)]
#![compiler_builtins]

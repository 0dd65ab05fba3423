//! 128-bit division for 32-bit Arm, which libgcc does not have (its TI-mode helpers exist only on
//! 64-bit targets): `u128 / u128`, `%`, and the signed forms. LLVM expands 128-bit add, subtract,
//! multiply, shifts and compares inline on Arm, so these use only those. Restoring division, one
//! quotient bit per step, after skipping the dividend's leading zeros: at most 128 steps, no
//! table, no recursion. Unit-tested on the host against the native operators (tests/unit:
//! unit.rust-keel).

/// Quotient and remainder of `n / d`; `d` is never 0 (Rust checks before dividing; C callers
/// dividing by zero get what a hardware divide by zero gives them: a trap).
pub fn udivmod(n: u128, d: u128) -> (u128, u128) {
    if d == 0 {
        trap();
    }
    if d > n {
        return (0, n);
    }
    let mut q: u128 = 0;
    let mut r: u128 = 0;
    let mut i = 128 - n.leading_zeros();
    while i > 0 {
        i -= 1;
        r = (r << 1) | ((n >> i) & 1);
        if r >= d {
            r -= d;
            q |= 1u128 << i;
        }
    }
    (q, r)
}

/// Signed division truncating toward zero, remainder with the dividend's sign (Rust and C).
pub fn idivmod(a: i128, b: i128) -> (i128, i128) {
    let (q, r) = udivmod(a.unsigned_abs(), b.unsigned_abs());
    let q = if (a < 0) != (b < 0) { (q as i128).wrapping_neg() } else { q as i128 };
    let r = if a < 0 { (r as i128).wrapping_neg() } else { r as i128 };
    (q, r)
}

#[cfg(not(test))]
fn trap() -> ! {
    // SAFETY: an undefined instruction: the microvisor reports the fault and restarts the app.
    unsafe { core::arch::asm!("udf #0xfe", options(noreturn)) }
}

#[cfg(test)]
fn trap() -> ! {
    panic!("division by zero")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<u128> {
        let mut v = vec![0, 1, 2, 3, 7, 10, 255, 1 << 31, (1 << 32) - 1, 1 << 32, u64::MAX as u128,
                         1u128 << 64, (1u128 << 64) + 1, u128::MAX / 3, u128::MAX - 1, u128::MAX,
                         1u128 << 127, (1u128 << 127) - 1];
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x >> (x as u32 % 128)); // every magnitude
        }
        v
    }

    #[test]
    fn unsigned_matches_native() {
        let v = values();
        for &n in &v {
            for &d in &v {
                if d != 0 {
                    assert_eq!(udivmod(n, d), (n / d, n % d), "{} / {}", n, d);
                }
            }
        }
    }

    #[test]
    fn signed_matches_native() {
        let v = values();
        for &n in &v {
            for &d in &v {
                for (a, b) in [(n as i128, d as i128), ((n as i128).wrapping_neg(), d as i128),
                               (n as i128, (d as i128).wrapping_neg())] {
                    if b != 0 && !(a == i128::MIN && b == -1) {
                        assert_eq!(idivmod(a, b), (a / b, a % b), "{} / {}", a, b);
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "division by zero")]
    fn zero_divisor_traps() {
        udivmod(1, 0);
    }
}

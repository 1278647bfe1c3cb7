//! INCRBYFLOAT and HINCRBYFLOAT arithmetic, digit for digit as Redis on
//! x86-64 computes it.
//!
//! Redis parses both operands with `strtold`, adds them as C `long double`
//! (the x87 80-bit format: a 64-bit significand, exponents to ±16383) and
//! prints the sum with `%.17Lf`, stripping trailing zeros. Neither f64 nor
//! exact decimal arithmetic reproduces that: `1000000.1 + 0.1` is
//! `1000000.20000000000004547` in Redis, and `0.1 + 0.2` is `0.3`. So this
//! module emulates the format exactly: every parse and sum is computed
//! exactly on big integers, then rounded once to 64 significant bits
//! (ties to even, with x87 denormals), as glibc and the FPU do.
//!
//! Known divergence: Redis built where `long double` is another format
//! (128-bit quad on aarch64 Linux, plain double on macOS arm64) prints
//! different digits for some sums; spillway always answers as x86-64 does.

mod big;

use big::Big;

/// Exponent of the lowest bit of the smallest x87 denormal: 2^-16445.
const MIN_LSB: i64 = -16445;
/// Values at or above 2^16384 overflow to infinity.
const OVERFLOW_EXP: i64 = 16384;
/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer strings are not floats.
const MAX_CHARS: usize = 5 * 1024;
/// Digits after the point in Redis's human-friendly `%.17Lf` format.
const FRACTION_DIGITS: u32 = 17;

/// A C `long double` as x87 hardware holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongDouble {
    /// `(-1)^neg * mant * 2^exp`; zero has `mant == 0`. Its sign is dropped:
    /// Redis prints `-0` as `0`, so it can never be observed.
    Finite {
        neg: bool,
        mant: u64,
        exp: i64,
    },
    Inf {
        neg: bool,
    },
    Nan,
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble::Finite {
        neg: false,
        mant: 0,
        exp: 0,
    };

    pub fn is_finite(&self) -> bool {
        matches!(self, LongDouble::Finite { .. })
    }

    /// The x87 sum: exact, then rounded once.
    pub fn add(self, other: LongDouble) -> LongDouble {
        use LongDouble::{Finite, Inf, Nan};
        match (self, other) {
            (Nan, _) | (_, Nan) => Nan,
            (Inf { neg: a }, Inf { neg: b }) if a != b => Nan,
            (Inf { .. }, _) => self,
            (_, Inf { .. }) => other,
            (
                Finite {
                    neg: na,
                    mant: ma,
                    exp: ea,
                },
                Finite {
                    neg: nb,
                    mant: mb,
                    exp: eb,
                },
            ) => {
                if ma == 0 {
                    return other;
                }
                if mb == 0 {
                    return self;
                }
                let e = ea.min(eb);
                let a = Big::from_u64(ma).shl((ea - e) as u64);
                let b = Big::from_u64(mb).shl((eb - e) as u64);
                if na == nb {
                    round(na, &a.add(&b), e)
                } else if a >= b {
                    round(na, &a.sub(&b), e)
                } else {
                    round(nb, &b.sub(&a), e)
                }
            }
        }
    }

    /// Redis's `ld2string(..., LD_STR_HUMAN)`: `%.17Lf`, trailing zeros and
    /// a trailing point removed, `-0` written `0`.
    pub fn to_human(self) -> String {
        let (neg, mant, exp) = match self {
            LongDouble::Finite { neg, mant, exp } => (neg, mant, exp),
            LongDouble::Inf { neg } => return if neg { "-inf" } else { "inf" }.to_owned(),
            LongDouble::Nan => return "nan".to_owned(),
        };
        let scale = 10u128.pow(FRACTION_DIGITS);
        let (int_part, frac) = if exp >= 0 {
            (Big::from_u64(mant).shl(exp as u64).to_decimal(), 0)
        } else {
            // mant * 10^17 < 2^121, so a shift of 122 or more rounds to 0.
            let q = shift_round(u128::from(mant) * scale, (-exp).min(122) as u32);
            ((q / scale).to_string(), q % scale)
        };
        let mut s = format!("{}{int_part}.{frac:017}", if neg { "-" } else { "" });
        let kept = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(kept);
        if s == "-0" { "0".to_owned() } else { s }
    }
}

/// `a + b` as INCRBYFLOAT stores it; `None` when the sum is NaN or infinite,
/// which Redis refuses to store.
pub fn sum(a: LongDouble, b: LongDouble) -> Option<String> {
    let sum = a.add(b);
    sum.is_finite().then(|| sum.to_human())
}

/// `n / 2^k` rounded to nearest, ties to even (`k` in 1..=127), as glibc's
/// printf rounds the exact binary value.
fn shift_round(n: u128, k: u32) -> u128 {
    let q = n >> k;
    let half = n >> (k - 1) & 1 == 1;
    let sticky = n & ((1u128 << (k - 1)) - 1) != 0;
    if half && (sticky || q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// Rounds the exact value `(-1)^neg * m * 2^exp` to a long double.
fn round(neg: bool, m: &Big, exp: i64) -> LongDouble {
    if m.is_zero() {
        return LongDouble::ZERO;
    }
    let top = exp + m.bit_len() as i64 - 1;
    let mut lsb = (top - 63).max(MIN_LSB);
    let shift = lsb - exp;
    let mant = if shift <= 0 {
        m.shl((-shift) as u64).low_u64()
    } else {
        let shift = shift as u64;
        let q = m.shr(shift).low_u64();
        let half = m.bit(shift - 1);
        let sticky = m.any_below(shift - 1);
        if half && (sticky || q & 1 == 1) {
            q.checked_add(1).unwrap_or_else(|| {
                lsb += 1;
                1 << 63
            })
        } else {
            q
        }
    };
    if mant == 0 {
        return LongDouble::ZERO;
    }
    if lsb + i64::from(64 - mant.leading_zeros()) > OVERFLOW_EXP {
        return LongDouble::Inf { neg };
    }
    LongDouble::Finite {
        neg,
        mant,
        exp: lsb,
    }
}

/// Redis's `string2ld`: the whole string must be a `strtold` number (decimal
/// or `0x` hex, optional exponent, `inf`/`infinity`), not start with a
/// space, not be NaN, and not overflow or underflow to zero (`ERANGE`);
/// denormals are accepted.
pub fn parse(s: &[u8]) -> Option<LongDouble> {
    if s.is_empty() || s.len() >= MAX_CHARS {
        return None;
    }
    let (neg, body) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(LongDouble::Inf { neg });
    }
    let (hex, body) = match body {
        [b'0', b'x' | b'X', rest @ ..] => (true, rest),
        _ => (false, body),
    };
    let radix = if hex { 16 } else { 10 };
    let (m, frac_digits, rest) = digits(body, radix)?;
    let exp = match rest {
        [] => 0,
        [b'e' | b'E', e @ ..] if !hex => exponent(e)?,
        [b'p' | b'P', e @ ..] if hex => exponent(e)?,
        _ => return None,
    };
    if m.is_zero() {
        return Some(LongDouble::ZERO);
    }
    let v = if hex {
        hex_to_ld(neg, &m, exp - 4 * frac_digits)
    } else {
        decimal_to_ld(neg, m, exp - frac_digits)
    };
    match v {
        LongDouble::Finite { mant: 0, .. } | LongDouble::Inf { .. } => None,
        _ => Some(v),
    }
}

/// `m * 2^e2` rounded once.
fn hex_to_ld(neg: bool, m: &Big, e2: i64) -> LongDouble {
    let top = e2 + m.bit_len() as i64;
    if top > OVERFLOW_EXP + 1 {
        LongDouble::Inf { neg }
    } else if top < MIN_LSB - 1 {
        LongDouble::ZERO
    } else {
        round(neg, m, e2)
    }
}

/// `m * 10^e10` rounded once.
fn decimal_to_ld(neg: bool, mut m: Big, e10: i64) -> LongDouble {
    // Far outside the range (max ~1.19e4932, half the least denormal
    // ~1.8e-4951) the answer is known without big powers of ten.
    let log10_low = (m.bit_len() - 1) as f64 * std::f64::consts::LOG10_2 + e10 as f64;
    let log10_high = m.bit_len() as f64 * std::f64::consts::LOG10_2 + e10 as f64;
    if log10_low >= 4934.0 {
        return LongDouble::Inf { neg };
    }
    if log10_high < -4952.0 {
        return LongDouble::ZERO;
    }
    if e10 >= 0 {
        m.mul_pow10(e10 as u32);
        return round(neg, &m, 0);
    }
    let den = Big::pow10((-e10) as u32);
    // Enough quotient bits (67) for the 64 kept, the rounding bit and more;
    // the remainder only matters as a sticky bit below them.
    let s = (67 + den.bit_len() as i64 - m.bit_len() as i64).max(0) as u64;
    let (q, inexact) = m.shl(s).div_sticky(&den);
    let q = q.shl(1).add(&Big::from_u64(u64::from(inexact)));
    round(neg, &q, -(s as i64) - 1)
}

/// Mantissa digits in `radix` around an optional point: the value, how many
/// came after the point, and the rest; `None` without any digit.
fn digits(s: &[u8], radix: u32) -> Option<(Big, i64, &[u8])> {
    let mut m = Big::default();
    let (mut frac, mut any, mut seen_point) = (0i64, false, false);
    let mut i = 0;
    while i < s.len() {
        match (s[i] as char).to_digit(radix) {
            Some(d) => {
                m.mul_add_small(radix, d);
                any = true;
                frac += i64::from(seen_point);
            }
            None if s[i] == b'.' && !seen_point => seen_point = true,
            None => break,
        }
        i += 1;
    }
    any.then_some((m, frac, &s[i..]))
}

/// A decimal exponent with optional sign; saturates far beyond any value
/// that could still be in range.
fn exponent(s: &[u8]) -> Option<i64> {
    let (neg, ds) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if ds.is_empty() || !ds.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = ds
        .iter()
        .fold(0i64, |v, &d| (v * 10 + i64::from(d - b'0')).min(1_000_000));
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests;

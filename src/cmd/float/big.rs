//! Just enough unsigned big-integer arithmetic to parse, add and print x87
//! long doubles exactly: their exponents reach 2^±16445, far past u128.

use std::cmp::Ordering;

/// An unsigned integer as little-endian 32-bit limbs, without high zero limbs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Big(Vec<u32>);

impl Big {
    pub fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    pub fn pow10(k: u32) -> Big {
        let mut b = Big::from_u64(1);
        b.mul_pow10(k);
        b
    }

    pub fn mul_pow10(&mut self, mut k: u32) {
        while k >= 9 {
            self.mul_add_small(1_000_000_000, 0);
            k -= 9;
        }
        self.mul_add_small(10u32.pow(k), 0);
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    pub fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => self.0.len() as u64 * 32 - u64::from(top.leading_zeros()),
        }
    }

    pub fn bit(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        self.0.get(limb).is_some_and(|l| l >> (i % 32) & 1 == 1)
    }

    /// True when any bit below position `i` is set.
    pub fn any_below(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        let whole = limb.min(self.0.len());
        self.0[..whole].iter().any(|&l| l != 0)
            || (limb < self.0.len() && self.0[limb] & ((1u32 << (i % 32)) - 1) != 0)
    }

    /// The low 64 bits.
    pub fn low_u64(&self) -> u64 {
        let lo = u64::from(self.0.first().copied().unwrap_or(0));
        let hi = u64::from(self.0.get(1).copied().unwrap_or(0));
        hi << 32 | lo
    }

    /// `self = self * m + a`.
    pub fn mul_add_small(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    /// Divides in place by `d` (non-zero), returning the remainder.
    pub fn div_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let cur = rem << 32 | u64::from(*limb);
            *limb = (cur / u64::from(d)) as u32;
            rem = cur % u64::from(d);
        }
        self.trim();
        rem as u32
    }

    pub fn shl(&self, n: u64) -> Big {
        if self.is_zero() {
            return Big::default();
        }
        let (limbs, bits) = ((n / 32) as usize, (n % 32) as u32);
        let mut out = vec![0u32; limbs];
        out.reserve(self.0.len() + 1);
        let mut carry = 0u32;
        for &l in &self.0 {
            if bits == 0 {
                out.push(l);
            } else {
                out.push(l << bits | carry);
                carry = l >> (32 - bits);
            }
        }
        out.push(carry);
        let mut b = Big(out);
        b.trim();
        b
    }

    pub fn shr(&self, n: u64) -> Big {
        let limbs = (n / 32) as usize;
        if limbs >= self.0.len() {
            return Big::default();
        }
        let bits = (n % 32) as u32;
        let src = &self.0[limbs..];
        let mut out = Vec::with_capacity(src.len());
        for (i, &l) in src.iter().enumerate() {
            let hi = src.get(i + 1).copied().unwrap_or(0);
            out.push(if bits == 0 {
                l
            } else {
                l >> bits | hi << (32 - bits)
            });
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    pub fn add(&self, other: &Big) -> Big {
        let (long, short) = if self.0.len() >= other.0.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut out = Vec::with_capacity(long.0.len() + 1);
        let mut carry = 0u64;
        for (i, &l) in long.0.iter().enumerate() {
            let v = u64::from(l) + u64::from(short.0.get(i).copied().unwrap_or(0)) + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        out.push(carry as u32);
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self - other`; the caller guarantees `self >= other`.
    pub fn sub(&self, other: &Big) -> Big {
        let mut out = self.clone();
        out.sub_assign(other);
        out
    }

    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = false;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let rhs = other.0.get(i).copied().unwrap_or(0);
            let (v, b1) = limb.overflowing_sub(rhs);
            let (v, b2) = v.overflowing_sub(u32::from(borrow));
            *limb = v;
            borrow = b1 || b2;
        }
        self.trim();
    }

    fn shr1_assign(&mut self) {
        let mut carry = 0u32;
        for limb in self.0.iter_mut().rev() {
            let next = *limb << 31;
            *limb = *limb >> 1 | carry;
            carry = next;
        }
        self.trim();
    }

    /// `(self / d, self % d != 0)` for a quotient known to be small: shift and
    /// subtract, one quotient bit per step.
    pub fn div_sticky(&self, d: &Big) -> (Big, bool) {
        let (nb, db) = (self.bit_len(), d.bit_len());
        if nb < db {
            return (Big::default(), !self.is_zero());
        }
        let mut rem = self.clone();
        let mut shifted = d.shl(nb - db);
        let mut q = Big(vec![0; ((nb - db) / 32 + 1) as usize]);
        for i in (0..=nb - db).rev() {
            if rem >= shifted {
                rem.sub_assign(&shifted);
                q.0[(i / 32) as usize] |= 1 << (i % 32);
            }
            shifted.shr1_assign();
        }
        q.trim();
        (q, !rem.is_zero())
    }

    /// Decimal digits, most significant first ("0" for zero).
    pub fn to_decimal(&self) -> String {
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_small(1_000_000_000));
        }
        let mut s = chunks
            .pop()
            .map_or_else(|| "0".to_owned(), |c| c.to_string());
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

impl PartialOrd for Big {
    fn partial_cmp(&self, other: &Big) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Big {
    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_matches_u128() {
        let a = Big::from_u64(u64::MAX).shl(40);
        let b = Big::from_u64(12_345_678_901);
        let a128 = u128::from(u64::MAX) << 40;
        assert_eq!(a.to_decimal(), a128.to_string());
        assert_eq!(a.add(&b).to_decimal(), (a128 + 12_345_678_901).to_string());
        assert_eq!(a.sub(&b).to_decimal(), (a128 - 12_345_678_901).to_string());
        assert_eq!(a.shr(37).to_decimal(), (a128 >> 37).to_string());
        assert_eq!(a.bit_len(), 104);
        let (q, sticky) = a.div_sticky(&b);
        assert_eq!(q.to_decimal(), (a128 / 12_345_678_901).to_string());
        assert_eq!(sticky, a128 % 12_345_678_901 != 0);
        assert!(a.any_below(41) && !a.any_below(40) && a.bit(40) && !a.bit(39));
        assert_eq!(Big::pow10(20).to_decimal(), format!("1{}", "0".repeat(20)));
        assert_eq!(Big::default().to_decimal(), "0");
    }
}

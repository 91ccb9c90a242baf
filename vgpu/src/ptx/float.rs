//! Floating-point conversions with PTX's rounding modes.
//!
//! It exists because Rust's `as` only rounds to nearest and has no f16 or
//! bf16: `cvt` needs .rn/.rz/.rm/.rp to any float format, integer rounding
//! (.rni/.rzi/.rmi/.rpi) with saturation, `.sat`, `.ftz`, `.relu` and
//! `.satfinite`. Every conversion goes through one exact routine,
//! [`round_bits`]: an exact value (sign, integer magnitude, power of two) to
//! the nearest representable value of a format in the chosen direction.
//! NaN results of conversions are the canonical NaN of the format (all
//! exponent and mantissa bits set, sign clear: 0x7fff for f16 and bf16,
//! 0x7fffffff for f32), as the hardware produces.

/// A rounding direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rnd {
    /// To nearest, ties to even.
    Rn,
    /// Towards zero.
    Rz,
    /// Towards minus infinity.
    Rm,
    /// Towards plus infinity.
    Rp,
}

/// A binary float format: explicit mantissa bits and exponent bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fmt {
    pub mant: u32,
    pub exp: u32,
}

pub const F16: Fmt = Fmt { mant: 10, exp: 5 };
pub const BF16: Fmt = Fmt { mant: 7, exp: 8 };
pub const F32: Fmt = Fmt { mant: 23, exp: 8 };
pub const F64: Fmt = Fmt { mant: 52, exp: 11 };

impl Fmt {
    fn bias(self) -> i32 {
        (1 << (self.exp - 1)) - 1
    }
    fn exp_max_field(self) -> u64 {
        (1u64 << self.exp) - 1
    }
    pub fn canonical_nan(self) -> u64 {
        // All exponent bits and all mantissa bits, sign clear.
        (self.exp_max_field() << self.mant) | ((1u64 << self.mant) - 1)
    }
    pub fn inf(self, neg: bool) -> u64 {
        ((neg as u64) << (self.exp + self.mant)) | (self.exp_max_field() << self.mant)
    }
    pub fn max_finite(self, neg: bool) -> u64 {
        ((neg as u64) << (self.exp + self.mant))
            | ((self.exp_max_field() - 1) << self.mant)
            | ((1u64 << self.mant) - 1)
    }
    pub fn sign_bit(self) -> u64 {
        1u64 << (self.exp + self.mant)
    }
    /// Whether `bits` is a NaN of this format.
    pub fn is_nan(self, bits: u64) -> bool {
        let e = (bits >> self.mant) & self.exp_max_field();
        e == self.exp_max_field() && bits & ((1u64 << self.mant) - 1) != 0
    }
    /// Decodes `bits` of this format to f64 (exact for f16, bf16, f32).
    pub fn to_f64(self, bits: u64) -> f64 {
        if self == F64 {
            return f64::from_bits(bits);
        }
        if self == F32 {
            return f32::from_bits(bits as u32) as f64;
        }
        let neg = bits & self.sign_bit() != 0;
        let e = ((bits >> self.mant) & self.exp_max_field()) as i32;
        let m = bits & ((1u64 << self.mant) - 1);
        let v = if e as u64 == self.exp_max_field() {
            if m != 0 {
                f64::NAN
            } else {
                f64::INFINITY
            }
        } else if e == 0 {
            m as f64 * 2f64.powi(1 - self.bias() - self.mant as i32)
        } else {
            (m | (1u64 << self.mant)) as f64 * 2f64.powi(e - self.bias() - self.mant as i32)
        };
        if neg {
            -v
        } else {
            v
        }
    }
    /// Rounds an f64 to this format (NaN: canonical NaN).
    pub fn encode(self, x: f64, rnd: Rnd) -> u64 {
        if x.is_nan() {
            return self.canonical_nan();
        }
        let neg = x.is_sign_negative();
        if x.is_infinite() {
            return self.inf(neg);
        }
        let b = x.to_bits();
        let e = ((b >> 52) & 0x7ff) as i32;
        let f = b & ((1u64 << 52) - 1);
        let (m, ex) = if e == 0 {
            (f, -1074)
        } else {
            (f | (1u64 << 52), e - 1075)
        };
        round_bits(neg, m, ex, self, rnd)
    }
}

/// Rounds the exact value `(-1)^neg * mag * 2^exp2` to `fmt` in direction
/// `rnd` and returns its bits (overflow per IEEE 754: infinity, or the
/// largest finite value where the direction points towards zero).
pub fn round_bits(neg: bool, mag: u64, exp2: i32, fmt: Fmt, rnd: Rnd) -> u64 {
    let sign = if neg { fmt.sign_bit() } else { 0 };
    if mag == 0 {
        return sign;
    }
    let mbits = fmt.mant as i32;
    let lead = exp2 + 63 - mag.leading_zeros() as i32;
    let min_ulp = 1 - fmt.bias() - mbits;
    let ulp = (lead - mbits).max(min_ulp);
    let shift = ulp - exp2;
    // q: the truncated magnitude in units of 2^ulp; the discarded part
    // compared with half a unit: below, exactly half, above.
    let (mut q, cmp_half, inexact) = if shift <= 0 {
        // Exact: mag << -shift fits (the value has at most mbits+1 bits).
        (mag << (-shift) as u32, std::cmp::Ordering::Less, false)
    } else if shift >= 64 {
        (0u64, std::cmp::Ordering::Less, true)
    } else {
        let q = mag >> shift;
        let rem = mag & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        (q, rem.cmp(&half), rem != 0)
    };
    let up = match rnd {
        Rnd::Rn => {
            cmp_half == std::cmp::Ordering::Greater
                || (cmp_half == std::cmp::Ordering::Equal && q & 1 == 1)
        }
        Rnd::Rz => false,
        Rnd::Rm => neg && inexact,
        Rnd::Rp => !neg && inexact,
    };
    if up {
        q += 1;
    }
    let mut ulp = ulp;
    if q >> (mbits + 1) != 0 {
        q >>= 1;
        ulp += 1;
    }
    if q >> mbits == 0 {
        // Subnormal (or zero after rounding).
        return sign | q;
    }
    let exp_field = (ulp + mbits + fmt.bias()) as i64;
    if exp_field >= fmt.exp_max_field() as i64 {
        let to_inf = match rnd {
            Rnd::Rn => true,
            Rnd::Rz => false,
            Rnd::Rm => neg,
            Rnd::Rp => !neg,
        };
        return if to_inf {
            fmt.inf(neg)
        } else {
            fmt.max_finite(neg)
        };
    }
    sign | ((exp_field as u64) << mbits) | (q & ((1u64 << mbits) - 1))
}

/// An integer to `fmt`, rounded.
pub fn int_to_float(v: i128, fmt: Fmt, rnd: Rnd) -> u64 {
    let neg = v < 0;
    let mag = v.unsigned_abs();
    // |v| < 2^64 for every PTX integer type.
    round_bits(neg, mag as u64, 0, fmt, rnd)
}

/// Rounds to an integral value in direction `rnd` (for .rni/.rzi/.rmi/.rpi).
pub fn round_integral(x: f64, rnd: Rnd) -> f64 {
    match rnd {
        Rnd::Rn => x.round_ties_even(),
        Rnd::Rz => x.trunc(),
        Rnd::Rm => x.floor(),
        Rnd::Rp => x.ceil(),
    }
}

/// Flushes an f32 subnormal to a zero of the same sign (`.ftz`).
#[inline]
pub fn ftz32(x: f32) -> f32 {
    if x.is_subnormal() {
        f32::from_bits(x.to_bits() & 0x8000_0000)
    } else {
        x
    }
}

/// `.sat` for floats: clamps to [0, 1], NaN to 0.
#[inline]
pub fn sat01(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// `.sat` for f32 results.
#[inline]
pub fn sat01_32(x: f32) -> f32 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Canonical-NaN f32 result of an arithmetic instruction.
#[inline]
pub fn canon32(x: f32) -> f32 {
    if x.is_nan() {
        f32::from_bits(0x7fff_ffff)
    } else {
        x
    }
}

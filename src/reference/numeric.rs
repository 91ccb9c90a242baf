//! The narrow number formats of GPU matrix multiplies, as bit patterns.
//!
//! kiln generates every input from the 24-bit values of
//! [`crate::reference::gen::matrix_value`] (exact in f32) and rounds them once
//! to the precision of the product. The host must know the rounded values
//! exactly, to build the f64 reference of an output element, and the CPU
//! backend must produce the same bits a GPU does, to emulate a low-precision
//! product on the simulated devices. These functions are that rounding. The
//! CUDA kernels do the same in `kernels/common.cuh` (`kiln_f32_to_*_bits`);
//! `kernels/test/host_check.cpp` checks both against independent
//! references.
//!
//! Every rounding is to nearest, ties to even, as the GPU conversions
//! (`cvt.rn.*`) do. fp8 e4m3 saturates at its largest finite value, 448, as
//! `cvt.rn.satfinite.e4m3x2.f32` does; e4m3 has no infinity.

/// f32 -> bf16 bits (8 significant bits, f32's exponent range). NaN stays a
/// quiet NaN; values past the largest bf16 round to infinity.
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7fff_ffff > 0x7f80_0000 {
        return ((b >> 16) | 0x0040) as u16;
    }
    let lsb = (b >> 16) & 1;
    (b.wrapping_add(0x7fff + lsb) >> 16) as u16
}

/// The value of bf16 bits.
pub fn bf16_value(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// f32 -> IEEE binary16 bits (11 significant bits, subnormals below 2^-14,
/// infinity from 65520 up).
pub fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = (b >> 16) & 0x8000;
    let ax = b & 0x7fff_ffff;
    if ax >= 0x7f80_0000 {
        let nan = if ax > 0x7f80_0000 { 0x0200 } else { 0 };
        return (sign | 0x7c00 | nan) as u16;
    }
    if ax >= 0x477f_f000 {
        return (sign | 0x7c00) as u16;
    }
    if ax < 0x3880_0000 {
        // Below 2^-14: a subnormal half (unit 2^-24) or zero.
        if ax < 0x3300_0000 {
            return sign as u16;
        }
        let e = ax >> 23;
        let m = (ax & 0x7f_ffff) | 0x80_0000;
        let shift = 126 - e;
        return (sign | round_shift(m, shift)) as u16;
    }
    let r = ax - 0x3800_0000; // exponent bias 127 -> 15
    let lsb = (r >> 13) & 1;
    (sign | ((r + 0xfff + lsb) >> 13)) as u16
}

/// The value of IEEE binary16 bits.
pub fn f16_value(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((bits >> 10) & 0x1f);
    let m = f32::from(bits & 0x3ff);
    sign * match e {
        0 => m * 2f32.powi(-24),
        31 if m == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + m / 1024.0) * 2f32.powi(e - 15),
    }
}

/// f32 -> fp8 e4m3 bits (4 significant bits, exponent bias 7, subnormals
/// below 2^-6 with unit 2^-9, largest finite 448). Saturates: anything of
/// magnitude 448 or more, infinity included, becomes +-448; NaN becomes
/// 0x7f (with the sign).
pub fn e4m3_bits(x: f32) -> u8 {
    let b = x.to_bits();
    let sign = (b >> 24) & 0x80;
    let ax = b & 0x7fff_ffff;
    if ax > 0x7f80_0000 {
        return (sign | 0x7f) as u8;
    }
    if ax >= 0x43e0_0000 {
        return (sign | 0x7e) as u8;
    }
    if ax < 0x3c80_0000 {
        // Below 2^-6: a subnormal (unit 2^-9) or zero. At most 2^-10 rounds
        // to zero (the tie goes to the even zero).
        if ax < 0x3a80_0000 {
            return sign as u8;
        }
        let e = ax >> 23; // 117 ..= 120
        let m = (ax & 0x7f_ffff) | 0x80_0000;
        return (sign | round_shift(m, 141 - e)) as u8;
    }
    let r = ax - 0x3c00_0000; // exponent bias 127 -> 7
    let lsb = (r >> 20) & 1;
    (sign | ((r + 0x7_ffff + lsb) >> 20)) as u8
}

/// The value of fp8 e4m3 bits.
pub fn e4m3_value(bits: u8) -> f32 {
    let sign = if bits & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((bits >> 3) & 0xf);
    let m = f32::from(bits & 0x7);
    sign * match (e, bits & 0x7f) {
        (_, 0x7f) => f32::NAN,
        (0, _) => m * 2f32.powi(-9),
        _ => (1.0 + m / 8.0) * 2f32.powi(e - 7),
    }
}

/// f32 rounded to TF32 (11 significant bits, f32's exponent range), as
/// `cvt.rna.tf32.f32` would but with ties to even. Only the CPU emulation of
/// a TF32 product uses it: a GPU's tensor cores do this rounding (or a
/// truncation) themselves, which the tolerance covers.
pub fn tf32_round(x: f32) -> f32 {
    let b = x.to_bits();
    if b & 0x7f80_0000 == 0x7f80_0000 {
        return x;
    }
    let lsb = (b >> 13) & 1;
    f32::from_bits(b.wrapping_add(0xfff + lsb) & !0x1fff)
}

/// `m >> shift` rounded to nearest, ties to even (1 <= shift <= 31).
fn round_shift(m: u32, shift: u32) -> u32 {
    let q = m >> shift;
    let rem = m & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gen;

    /// Round to nearest even with `bits` significant bits and a smallest
    /// exponent: an independent reference through f64 arithmetic.
    fn reference(x: f32, bits: i32, min_exp: i32) -> f64 {
        let x = f64::from(x);
        if x == 0.0 {
            return x;
        }
        let e = x.abs().log2().floor() as i32;
        let ulp = 2f64.powi(e.max(min_exp) - (bits - 1));
        let q = x / ulp;
        let r = q.round();
        // f64::round breaks ties away from zero; make them go to even.
        let r = if (q - q.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r - q.signum()
        } else {
            r
        };
        r * ulp
    }

    fn samples() -> Vec<f32> {
        let mut xs: Vec<f32> = (0..20_000)
            .map(|i| gen::matrix_value(3, i & 1, i) as f32)
            .collect();
        // Every exponent the formats care about, with random mantissas.
        for i in 0..20_000u64 {
            let r = gen::random_u64(4, 0, i);
            let e = (r % 40) as i32 - 30;
            let m = 1.0 + (r >> 40) as f64 / (1u64 << 24) as f64;
            let s = if r & 1 == 0 { 1.0 } else { -1.0 };
            xs.push((s * m * 2f64.powi(e)) as f32);
        }
        xs
    }

    #[test]
    fn bf16_matches_the_reference() {
        for x in samples() {
            let want = reference(x, 8, -126);
            assert_eq!(f64::from(bf16_value(bf16_bits(x))), want, "{x:e}");
        }
        assert_eq!(bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80); // tie, even
        assert_eq!(bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82); // tie, odd
        assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
    }

    #[test]
    fn f16_matches_the_reference() {
        for x in samples() {
            let want = reference(x, 11, -14);
            assert_eq!(f64::from(f16_value(f16_bits(x))), want, "{x:e}");
        }
        assert_eq!(f16_bits(65504.0), 0x7bff);
        assert_eq!(f16_bits(65520.0), 0x7c00);
        assert_eq!(f16_bits(-0.0), 0x8000);
        assert_eq!(f16_value(1), 2f32.powi(-24));
        assert!(f16_value(f16_bits(f32::NAN)).is_nan());
    }

    #[test]
    fn e4m3_matches_the_reference_and_saturates() {
        for x in samples() {
            let want = reference(x, 4, -6).clamp(-448.0, 448.0);
            assert_eq!(f64::from(e4m3_value(e4m3_bits(x))), want, "{x:e}");
        }
        assert_eq!(e4m3_bits(1.0), 0x38);
        assert_eq!(e4m3_bits(448.0), 0x7e);
        assert_eq!(e4m3_bits(1e9), 0x7e);
        assert_eq!(e4m3_bits(f32::INFINITY), 0x7e);
        assert_eq!(e4m3_bits(-1e9), 0xfe);
        assert_eq!(e4m3_bits(f32::NAN) & 0x7f, 0x7f);
        assert_eq!(e4m3_bits(2f32.powi(-9)), 1);
        assert_eq!(e4m3_bits(2f32.powi(-10)), 0); // tie to the even zero
        assert_eq!(e4m3_bits(1.5 * 2f32.powi(-10)), 1);
        assert_eq!(e4m3_bits(2f32.powi(-6) - 2f32.powi(-12)), 8); // carries to 2^-6
                                                                  // Every code but NaN round-trips.
        for b in 0..=255u8 {
            if b & 0x7f != 0x7f {
                assert_eq!(e4m3_bits(e4m3_value(b)), b, "{b:#x}");
            }
        }
    }

    #[test]
    fn tf32_keeps_eleven_significant_bits() {
        for x in samples() {
            assert_eq!(f64::from(tf32_round(x)), reference(x, 11, -126), "{x:e}");
        }
        assert!(tf32_round(f32::NAN).is_nan());
        assert_eq!(tf32_round(f32::INFINITY), f32::INFINITY);
    }

    /// The wrapping sum of `digest_term(i, e4m3_bits(matrix_value(1, 0, i)))`
    /// over i < 1000: kernels/test/host_check.cpp checks the CUDA rounding
    /// against this value.
    #[test]
    fn e4m3_digest_of_the_first_matrix_values() {
        let h = (0..1000u64)
            .map(|i| {
                let x = gen::matrix_value(1, 0, i) as f32;
                gen::digest_term(i, u64::from(e4m3_bits(x)))
            })
            .fold(0u64, u64::wrapping_add);
        assert_eq!(h, E4M3_DIGEST, "{h:#018x}");
    }

    const E4M3_DIGEST: u64 = 0x1e70_c27f_c781_86cb;
}

//! cuBLASLt's C enums and the element formats.
//!
//! Values from NVIDIA's headers as the cuBLAS documentation lists them
//! (`cublas_api.h`: `cublasStatus_t`, `cublasComputeType_t`,
//! `cublasOperation_t`; `library_types.h`: `cudaDataType_t`; `cublasLt.h`:
//! `cublasLtMatmulDescAttributes_t`, `cublasLtMatrixLayoutAttribute_t`,
//! `cublasLtMatmulPreferenceAttributes_t`, `cublasLtOrder_t`,
//! `cublasLtPointerMode_t`, `cublasLtEpilogue_t`). Every value travels as a
//! C `int`, so an unknown one is refused by number, never undefined.

#![allow(non_camel_case_types)]

use std::ffi::c_int;

/// `cublasStatus_t`.
pub type Status = c_int;

pub const CUBLAS_STATUS_SUCCESS: Status = 0;
pub const CUBLAS_STATUS_NOT_INITIALIZED: Status = 1;
pub const CUBLAS_STATUS_ALLOC_FAILED: Status = 3;
pub const CUBLAS_STATUS_INVALID_VALUE: Status = 7;
pub const CUBLAS_STATUS_ARCH_MISMATCH: Status = 8;
pub const CUBLAS_STATUS_MAPPING_ERROR: Status = 11;
pub const CUBLAS_STATUS_EXECUTION_FAILED: Status = 13;
pub const CUBLAS_STATUS_INTERNAL_ERROR: Status = 14;
pub const CUBLAS_STATUS_NOT_SUPPORTED: Status = 15;
pub const CUBLAS_STATUS_LICENSE_ERROR: Status = 16;

/// The name of a status, as `cublasGetStatusName` gives it.
pub fn status_name(s: Status) -> &'static str {
    match s {
        CUBLAS_STATUS_SUCCESS => "CUBLAS_STATUS_SUCCESS",
        CUBLAS_STATUS_NOT_INITIALIZED => "CUBLAS_STATUS_NOT_INITIALIZED",
        CUBLAS_STATUS_ALLOC_FAILED => "CUBLAS_STATUS_ALLOC_FAILED",
        CUBLAS_STATUS_INVALID_VALUE => "CUBLAS_STATUS_INVALID_VALUE",
        CUBLAS_STATUS_ARCH_MISMATCH => "CUBLAS_STATUS_ARCH_MISMATCH",
        CUBLAS_STATUS_MAPPING_ERROR => "CUBLAS_STATUS_MAPPING_ERROR",
        CUBLAS_STATUS_EXECUTION_FAILED => "CUBLAS_STATUS_EXECUTION_FAILED",
        CUBLAS_STATUS_INTERNAL_ERROR => "CUBLAS_STATUS_INTERNAL_ERROR",
        CUBLAS_STATUS_NOT_SUPPORTED => "CUBLAS_STATUS_NOT_SUPPORTED",
        CUBLAS_STATUS_LICENSE_ERROR => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => "CUBLAS_STATUS_(unknown)",
    }
}

// cudaDataType_t.
pub const CUDA_R_32F: c_int = 0;
pub const CUDA_R_64F: c_int = 1;
pub const CUDA_R_16F: c_int = 2;
pub const CUDA_R_8I: c_int = 3;
pub const CUDA_R_32I: c_int = 10;
pub const CUDA_R_16BF: c_int = 14;
pub const CUDA_R_8F_E4M3: c_int = 28;
pub const CUDA_R_8F_E5M2: c_int = 29;

/// A `cudaDataType_t` by name, for messages.
pub fn data_type_name(t: c_int) -> String {
    match t {
        CUDA_R_32F => "CUDA_R_32F".into(),
        CUDA_R_64F => "CUDA_R_64F".into(),
        CUDA_R_16F => "CUDA_R_16F".into(),
        CUDA_R_8I => "CUDA_R_8I".into(),
        4 => "CUDA_C_32F".into(),
        5 => "CUDA_C_64F".into(),
        6 => "CUDA_C_16F".into(),
        CUDA_R_32I => "CUDA_R_32I".into(),
        CUDA_R_16BF => "CUDA_R_16BF".into(),
        CUDA_R_8F_E4M3 => "CUDA_R_8F_E4M3".into(),
        CUDA_R_8F_E5M2 => "CUDA_R_8F_E5M2".into(),
        other => format!("cudaDataType {other}"),
    }
}

// cublasComputeType_t.
pub const CUBLAS_COMPUTE_16F: c_int = 64;
pub const CUBLAS_COMPUTE_16F_PEDANTIC: c_int = 65;
pub const CUBLAS_COMPUTE_32F: c_int = 68;
pub const CUBLAS_COMPUTE_32F_PEDANTIC: c_int = 69;
pub const CUBLAS_COMPUTE_64F: c_int = 70;
pub const CUBLAS_COMPUTE_64F_PEDANTIC: c_int = 71;
pub const CUBLAS_COMPUTE_32I: c_int = 72;
pub const CUBLAS_COMPUTE_32I_PEDANTIC: c_int = 73;
pub const CUBLAS_COMPUTE_32F_FAST_16F: c_int = 74;
pub const CUBLAS_COMPUTE_32F_FAST_16BF: c_int = 75;
pub const CUBLAS_COMPUTE_32F_FAST_TF32: c_int = 77;

/// A `cublasComputeType_t` by name, for messages.
pub fn compute_name(c: c_int) -> String {
    match c {
        CUBLAS_COMPUTE_16F => "CUBLAS_COMPUTE_16F".into(),
        CUBLAS_COMPUTE_16F_PEDANTIC => "CUBLAS_COMPUTE_16F_PEDANTIC".into(),
        CUBLAS_COMPUTE_32F => "CUBLAS_COMPUTE_32F".into(),
        CUBLAS_COMPUTE_32F_PEDANTIC => "CUBLAS_COMPUTE_32F_PEDANTIC".into(),
        CUBLAS_COMPUTE_64F => "CUBLAS_COMPUTE_64F".into(),
        CUBLAS_COMPUTE_64F_PEDANTIC => "CUBLAS_COMPUTE_64F_PEDANTIC".into(),
        CUBLAS_COMPUTE_32I => "CUBLAS_COMPUTE_32I".into(),
        CUBLAS_COMPUTE_32I_PEDANTIC => "CUBLAS_COMPUTE_32I_PEDANTIC".into(),
        CUBLAS_COMPUTE_32F_FAST_16F => "CUBLAS_COMPUTE_32F_FAST_16F".into(),
        CUBLAS_COMPUTE_32F_FAST_16BF => "CUBLAS_COMPUTE_32F_FAST_16BF".into(),
        CUBLAS_COMPUTE_32F_FAST_TF32 => "CUBLAS_COMPUTE_32F_FAST_TF32".into(),
        other => format!("cublasComputeType {other}"),
    }
}

// cublasOperation_t.
pub const CUBLAS_OP_N: c_int = 0;
pub const CUBLAS_OP_T: c_int = 1;
pub const CUBLAS_OP_C: c_int = 2;

// cublasLtMatmulDescAttributes_t.
pub const CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: c_int = 0;
pub const CUBLASLT_MATMUL_DESC_SCALE_TYPE: c_int = 1;
pub const CUBLASLT_MATMUL_DESC_POINTER_MODE: c_int = 2;
pub const CUBLASLT_MATMUL_DESC_TRANSA: c_int = 3;
pub const CUBLASLT_MATMUL_DESC_TRANSB: c_int = 4;
pub const CUBLASLT_MATMUL_DESC_TRANSC: c_int = 5;
pub const CUBLASLT_MATMUL_DESC_FILL_MODE: c_int = 6;
pub const CUBLASLT_MATMUL_DESC_EPILOGUE: c_int = 7;
pub const CUBLASLT_MATMUL_DESC_A_SCALE_POINTER: c_int = 17;
pub const CUBLASLT_MATMUL_DESC_B_SCALE_POINTER: c_int = 18;
pub const CUBLASLT_MATMUL_DESC_C_SCALE_POINTER: c_int = 19;
pub const CUBLASLT_MATMUL_DESC_D_SCALE_POINTER: c_int = 20;
pub const CUBLASLT_MATMUL_DESC_AMAX_D_POINTER: c_int = 21;
pub const CUBLASLT_MATMUL_DESC_FAST_ACCUM: c_int = 25;

// cublasLtPointerMode_t.
pub const CUBLASLT_POINTER_MODE_HOST: c_int = 0;
pub const CUBLASLT_POINTER_MODE_DEVICE: c_int = 1;

// cublasLtEpilogue_t.
pub const CUBLASLT_EPILOGUE_DEFAULT: u32 = 1;

// cublasLtMatrixLayoutAttribute_t.
pub const CUBLASLT_MATRIX_LAYOUT_TYPE: c_int = 0;
pub const CUBLASLT_MATRIX_LAYOUT_ORDER: c_int = 1;
pub const CUBLASLT_MATRIX_LAYOUT_ROWS: c_int = 2;
pub const CUBLASLT_MATRIX_LAYOUT_COLS: c_int = 3;
pub const CUBLASLT_MATRIX_LAYOUT_LD: c_int = 4;
pub const CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: c_int = 5;
pub const CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: c_int = 6;

// cublasLtOrder_t.
pub const CUBLASLT_ORDER_COL: c_int = 0;

// cublasLtMatmulPreferenceAttributes_t.
pub const CUBLASLT_MATMUL_PREF_SEARCH_MODE: c_int = 0;
pub const CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: c_int = 1;

/// An element format vgpu computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    F32,
    F64,
    F16,
    Bf16,
    /// OCP FP8 E4M3 ("FN"): bias 7, no infinities, S.1111.111 is NaN,
    /// largest finite 448.
    E4m3,
}

impl Ty {
    /// The format of a `cudaDataType_t`, if vgpu implements it.
    pub fn of(t: c_int) -> Option<Ty> {
        match t {
            CUDA_R_32F => Some(Ty::F32),
            CUDA_R_64F => Some(Ty::F64),
            CUDA_R_16F => Some(Ty::F16),
            CUDA_R_16BF => Some(Ty::Bf16),
            CUDA_R_8F_E4M3 => Some(Ty::E4m3),
            _ => None,
        }
    }

    pub fn size(self) -> u64 {
        match self {
            Ty::F64 => 8,
            Ty::F32 => 4,
            Ty::F16 | Ty::Bf16 => 2,
            Ty::E4m3 => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Ty::F32 => "CUDA_R_32F",
            Ty::F64 => "CUDA_R_64F",
            Ty::F16 => "CUDA_R_16F",
            Ty::Bf16 => "CUDA_R_16BF",
            Ty::E4m3 => "CUDA_R_8F_E4M3",
        }
    }

    /// The value of the little-endian element at the start of `b`.
    pub fn decode(self, b: &[u8]) -> f64 {
        match self {
            Ty::F64 => f64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])),
            Ty::F32 => f32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4])) as f64,
            Ty::F16 => f16_to_f64(u16::from_le_bytes([b[0], b[1]])),
            Ty::Bf16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64,
            Ty::E4m3 => e4m3_to_f64(b[0]),
        }
    }

    /// Writes `x` rounded to this format (to nearest, ties to even) as
    /// little-endian bytes at the start of `out`. E4M3 is never an output
    /// here ([`super::matmul::plan`] refuses it).
    pub fn encode(self, x: f64, out: &mut [u8]) {
        match self {
            Ty::F64 => out[..8].copy_from_slice(&x.to_le_bytes()),
            Ty::F32 => out[..4].copy_from_slice(&(x as f32).to_le_bytes()),
            Ty::F16 => out[..2].copy_from_slice(&round_small(x, 10, 5).to_le_bytes()),
            Ty::Bf16 => out[..2].copy_from_slice(&round_small(x, 7, 8).to_le_bytes()),
            Ty::E4m3 => out[0] = 0x7f,
        }
    }
}

/// An IEEE binary16 value.
pub fn f16_to_f64(h: u16) -> f64 {
    let neg = h & 0x8000 != 0;
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f64;
    let v = match e {
        0 => m * 2f64.powi(-24),
        0x1f if m != 0.0 => f64::NAN,
        0x1f => f64::INFINITY,
        _ => (1024.0 + m) * 2f64.powi(e - 25),
    };
    if neg {
        -v
    } else {
        v
    }
}

/// `x` rounded to nearest, ties to even, in the IEEE-style binary format of
/// `mant` explicit mantissa bits and `exp` exponent bits (binary16: 10, 5;
/// bfloat16: 7, 8), as its bits: subnormals kept, overflow to infinity, NaN
/// as the canonical NaN (all exponent and mantissa bits, sign clear).
pub fn round_small(x: f64, mant: u32, exp: u32) -> u16 {
    let all_exp = (1u32 << exp) - 1;
    if x.is_nan() {
        return ((all_exp << mant) | ((1 << mant) - 1)) as u16;
    }
    let sign = if x.is_sign_negative() {
        1u32 << (exp + mant)
    } else {
        0
    };
    let inf = (sign | (all_exp << mant)) as u16;
    let a = x.abs();
    if a == 0.0 {
        return sign as u16;
    }
    if a.is_infinite() {
        return inf;
    }
    let bias = (1i32 << (exp - 1)) - 1;
    let emin = 1 - bias;
    let log2 = |v: f64| ((v.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    // The spacing of representable values around `a`: 2^(e - mant) for a
    // normal result, 2^(emin - mant) for a subnormal one. Dividing by a
    // power of two is exact, so the quotient rounds once.
    let e = log2(a).max(emin);
    let q = 2f64.powi(e - mant as i32);
    let r = (a / q).round_ties_even();
    let v = r * q;
    if v == 0.0 {
        return sign as u16;
    }
    let ev = log2(v);
    if ev > bias {
        return inf;
    }
    let bits = if ev < emin {
        // Subnormal: the field is the multiple of the smallest spacing.
        (v / 2f64.powi(emin - mant as i32)) as u32
    } else {
        let m = (v / 2f64.powi(ev - mant as i32)) as u32 - (1 << mant);
        (((ev + bias) as u32) << mant) | m
    };
    (sign | bits) as u16
}

/// An E4M3 byte's value: sign, 4 exponent bits (bias 7), 3 mantissa bits;
/// exponent 0 is subnormal (m / 8 * 2^-6); S.1111.111 is NaN; there is no
/// infinity, so exponent 15 with any other mantissa is finite (up to 448).
pub fn e4m3_to_f64(b: u8) -> f64 {
    let neg = b & 0x80 != 0;
    let e = ((b >> 3) & 0xf) as i32;
    let m = (b & 0x7) as f64;
    if e == 0xf && b & 0x7 == 0x7 {
        return f64::NAN;
    }
    let v = if e == 0 {
        m / 8.0 * 2f64.powi(-6)
    } else {
        (1.0 + m / 8.0) * 2f64.powi(e - 7)
    };
    if neg {
        -v
    } else {
        v
    }
}

/// An f32 rounded to tf32 (10 explicit mantissa bits), to nearest with ties
/// away from zero, as PTX's `cvt.rna.tf32.f32`; NaN and infinity unchanged.
pub fn tf32(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    f32::from_bits(x.to_bits().wrapping_add(0x1000) & !0x1fff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3_covers_its_range() {
        assert_eq!(e4m3_to_f64(0x00), 0.0);
        assert_eq!(e4m3_to_f64(0x38), 1.0);
        assert_eq!(e4m3_to_f64(0x7e), 448.0);
        assert_eq!(e4m3_to_f64(0xfe), -448.0);
        assert_eq!(e4m3_to_f64(0x01), 2f64.powi(-9));
        assert!(e4m3_to_f64(0x7f).is_nan());
        assert!(e4m3_to_f64(0xff).is_nan());
        assert_eq!(e4m3_to_f64(0x78), 256.0, "exponent 15 is finite");
    }

    #[test]
    fn tf32_rounds_to_ten_bits_ties_away() {
        let one_ulp = 2f32.powi(-10);
        assert_eq!(tf32(1.0 + one_ulp / 2.0), 1.0 + one_ulp, "tie away");
        assert_eq!(tf32(1.0 + one_ulp / 4.0), 1.0);
        assert_eq!(tf32(-(1.0 + one_ulp * 0.75)), -(1.0 + one_ulp));
        assert!(tf32(f32::NAN).is_nan());
        assert_eq!(tf32(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn outputs_round_to_nearest_even() {
        let mut b = [0u8; 2];
        // 1 + 2^-8 is a tie between bf16 1.0 and 1 + 2^-7: even is 1.0.
        Ty::Bf16.encode(1.0 + 2f64.powi(-8), &mut b);
        assert_eq!(u16::from_le_bytes(b), 0x3f80);
        Ty::Bf16.encode(1.0 + 3.0 * 2f64.powi(-8), &mut b);
        assert_eq!(u16::from_le_bytes(b), 0x3f82);
        Ty::F16.encode(1.0 + 2f64.powi(-11), &mut b);
        assert_eq!(u16::from_le_bytes(b), 0x3c00);
        assert_eq!(Ty::F16.decode(&[0x00, 0x3c]), 1.0);
        assert_eq!(round_small(65504.0, 10, 5), 0x7bff);
        assert_eq!(round_small(65520.0, 10, 5), 0x7c00, "tie to even overflows");
        assert_eq!(round_small(2f64.powi(-24), 10, 5), 0x0001);
        assert_eq!(round_small(2f64.powi(-25), 10, 5), 0x0000, "tie to even 0");
        assert_eq!(round_small(1.5 * 2f64.powi(-25), 10, 5), 0x0001);
        assert_eq!(round_small(-2.0, 7, 8), 0xc000);
        assert_eq!(round_small(f64::NAN, 7, 8), 0x7fff);
        assert_eq!(
            round_small(2f64.powi(-14) * (1.0 - 2f64.powi(-12)), 10, 5),
            0x0400
        );
        for h in [0x0001u16, 0x03ff, 0x0400, 0x3555, 0x7bff, 0x8001, 0xc000] {
            assert_eq!(round_small(f16_to_f64(h), 10, 5), h, "{h:#x} round-trips");
        }
        assert_eq!(Ty::Bf16.decode(&[0x80, 0x3f]), 1.0);
    }
}

//! Dense matrix multiply: C = A x B, square, row-major.
//!
//! Counted: 2 n^3 floating-point operations per product (one multiply and one
//! add per inner-product term), reported in GFLOP/s.
//!
//! Verified two ways after the timed iterations:
//! 1. Sampled elements of C against an f64 reference dot product over the same
//!    inputs (the inputs are exact in f32, see [`gen::matrix_value`]). The
//!    tolerance is the classical worst-case bound for a dot product of length
//!    n computed in precision u (Higham, *Accuracy and Stability of Numerical
//!    Algorithms*, 2nd ed., eq. 3.5): |c - c_ref| <= gamma_n * sum_k |a_ik b_kj|
//!    with gamma_n = n u / (1 - n u), doubled to cover the reference's own
//!    rounding. Any summation order or FMA use stays inside it, so a healthy
//!    device is never rejected, while a corrupted element (a flipped exponent
//!    or high mantissa bit, a wrong or missing term) falls far outside.
//! 2. Self-consistency: a device-side checksum of every bit of C after the
//!    last iteration must equal the one after the first. Deterministic
//!    hardware computes the same bits every time; a flip anywhere in C, even a
//!    low mantissa bit the tolerance would allow, changes the checksum.

use crate::device::{Device, MatmulShape, Precision};
use crate::workload::{gen, seconds, Context, Integrity, WorkloadError, WorkloadKind};

/// Number of output elements compared with the f64 reference per precision.
pub const SAMPLES: usize = 48;

/// Input element `A[i][k]` of a product seeded with `seed`.
pub fn a_value(seed: u64, n: usize, i: usize, k: usize) -> f64 {
    gen::matrix_value(seed, 0, (i * n + k) as u64)
}

/// Input element `B[k][j]` of a product seeded with `seed`.
pub fn b_value(seed: u64, n: usize, k: usize, j: usize) -> f64 {
    gen::matrix_value(seed, 1, (k * n + j) as u64)
}

/// The f64 reference of `C[i][j]` and the sum of |a_ik b_kj| that scales its
/// tolerance.
pub fn reference(seed: u64, n: usize, i: usize, j: usize) -> (f64, f64) {
    let mut sum = 0.0;
    let mut abs = 0.0;
    for k in 0..n {
        let p = a_value(seed, n, i, k) * b_value(seed, n, k, j);
        sum += p;
        abs += p.abs();
    }
    (sum, abs)
}

/// The largest error allowed for an element whose terms' magnitudes sum to
/// `abs_sum`: 2 gamma_n abs_sum (see the module documentation).
pub fn tolerance(precision: Precision, n: usize, abs_sum: f64) -> f64 {
    let nu = n as f64 * precision.unit_roundoff();
    let gamma = if nu < 0.5 { nu / (1.0 - nu) } else { 1.0 };
    2.0 * gamma * abs_sum + f64::MIN_POSITIVE
}

/// The output positions checked for a product: the four corners, then
/// positions drawn from the generator.
pub fn sample_positions(seed: u64, n: usize) -> Vec<(usize, usize)> {
    let last = n.saturating_sub(1);
    let mut pos = vec![(0, 0), (0, last), (last, 0), (last, last)];
    let mut k = 0u64;
    while pos.len() < SAMPLES.min(n * n) {
        let r = gen::random_u64(seed, 9, k);
        k += 1;
        let p = ((r % n as u64) as usize, ((r >> 32) % n as u64) as usize);
        if !pos.contains(&p) {
            pos.push(p);
        }
    }
    pos.truncate(SAMPLES.min(n * n));
    pos
}

/// Compares device values at `positions` with the f64 reference.
/// Returns (checked, errors, detail of the first error).
pub fn verify_samples(
    seed: u64,
    n: usize,
    precision: Precision,
    positions: &[(usize, usize)],
    values: &[f64],
) -> (u64, u64, String) {
    let mut errors = 0;
    let mut detail = String::new();
    for (&(i, j), &v) in positions.iter().zip(values) {
        let (r, abs) = reference(seed, n, i, j);
        let tol = tolerance(precision, n, abs);
        if v.is_nan() || (v - r).abs() > tol {
            errors += 1;
            if detail.is_empty() {
                detail = format!("C[{i}][{j}] = {v:e}, reference {r:e}, allowed error {tol:.3e}");
            }
        }
    }
    if values.len() != positions.len() {
        errors += 1;
        detail = format!(
            "device returned {} of {} sampled elements",
            values.len(),
            positions.len()
        );
    }
    (positions.len() as u64, errors, detail)
}

/// Runs and verifies one GEMM per precision.
pub(crate) fn execute(
    device: &mut dyn Device,
    n: usize,
    precisions: &[Precision],
    warmup: u32,
    iterations: u32,
    ctx: &mut Context<'_>,
) -> Result<(), WorkloadError> {
    let simulated = device.info().simulated;
    let flops = 2.0 * (n as f64).powi(3);
    for (pi, &precision) in precisions.iter().enumerate() {
        let name = format!("matmul_{}", precision.name());
        let shape = MatmulShape {
            n,
            precision,
            seed: ctx.seed,
        };
        let mut op = device.matmul(shape)?;
        for _ in 0..warmup {
            ctx.check_stop()?;
            op.run()?;
        }
        let first_sum = op.checksum()?;
        let mut rates = Vec::new();
        for it in 0..iterations {
            ctx.check_stop()?;
            let done = (pi as f64 + f64::from(it) / f64::from(iterations.max(1)))
                / precisions.len() as f64;
            (ctx.progress)(done, &name);
            let t = op.run()?;
            rates.push(flops / seconds(t) / 1e9);
        }
        let last_sum = op.checksum()?;
        let positions = sample_positions(ctx.seed ^ pi as u64, n);
        let values = op.read(&positions)?;
        let (mut checked, mut errors, mut detail) =
            verify_samples(ctx.seed, n, precision, &positions, &values);
        checked += 1;
        if first_sum != last_sum {
            errors += 1;
            if detail.is_empty() {
                detail = format!(
                    "output checksum changed between iterations ({first_sum:#018x} then {last_sum:#018x}) for identical inputs"
                );
            }
        }
        let counted = format!(
            "2*n^3 FLOP per product, n = {n}, {} in and out",
            precision.name()
        );
        ctx.metric(
            WorkloadKind::Matmul,
            &name,
            "GFLOP/s",
            counted,
            &rates,
            simulated,
        );
        ctx.send_integrity(Integrity {
            workload: WorkloadKind::Matmul,
            check: name,
            checked,
            errors,
            detail,
            first_bad_offsets: Vec::new(),
            checksum: Some(format!("{last_sum:016x}")),
            cycle: 0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_product(seed: u64, n: usize, precision: Precision) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut acc32 = 0f32;
                let mut acc64 = 0f64;
                for k in 0..n {
                    let a = a_value(seed, n, i, k);
                    let b = b_value(seed, n, k, j);
                    acc32 += a as f32 * b as f32;
                    acc64 += a * b;
                }
                c[i * n + j] = match precision {
                    Precision::F32 => f64::from(acc32),
                    Precision::F64 => acc64,
                };
            }
        }
        c
    }

    #[test]
    fn a_correct_f32_product_passes() {
        let n = 96;
        let c = exact_product(5, n, Precision::F32);
        let pos = sample_positions(5, n);
        let vals: Vec<f64> = pos.iter().map(|&(i, j)| c[i * n + j]).collect();
        let (checked, errors, detail) = verify_samples(5, n, Precision::F32, &pos, &vals);
        assert_eq!((checked, errors), (SAMPLES as u64, 0), "{detail}");
    }

    #[test]
    fn a_flipped_exponent_bit_is_caught() {
        let n = 64;
        let c = exact_product(3, n, Precision::F32);
        let pos = sample_positions(3, n);
        let mut vals: Vec<f64> = pos.iter().map(|&(i, j)| c[i * n + j]).collect();
        let bad = (vals[7] as f32).to_bits() ^ (1 << 24); // lowest exponent bit
        vals[7] = f64::from(f32::from_bits(bad));
        let (_, errors, detail) = verify_samples(3, n, Precision::F32, &pos, &vals);
        assert_eq!(errors, 1);
        let (i, j) = pos[7];
        assert!(detail.contains(&format!("C[{i}][{j}]")), "{detail}");
    }

    #[test]
    fn a_high_mantissa_flip_is_caught_in_f64() {
        let n = 64;
        let c = exact_product(4, n, Precision::F64);
        let pos = sample_positions(4, n);
        let mut vals: Vec<f64> = pos.iter().map(|&(i, j)| c[i * n + j]).collect();
        vals[0] = f64::from_bits(vals[0].to_bits() ^ (1 << 40));
        let (_, errors, _) = verify_samples(4, n, Precision::F64, &pos, &vals);
        assert_eq!(errors, 1);
    }

    #[test]
    fn nan_and_missing_values_are_errors() {
        let n = 16;
        let pos = sample_positions(1, n);
        let mut vals: Vec<f64> = pos.iter().map(|&(i, j)| reference(1, n, i, j).0).collect();
        vals[2] = f64::NAN;
        assert_eq!(verify_samples(1, n, Precision::F64, &pos, &vals).1, 1);
        vals.pop();
        vals[2] = 0.0;
        assert!(verify_samples(1, n, Precision::F64, &pos, &vals).1 >= 1);
    }

    #[test]
    fn positions_are_distinct_and_in_range() {
        let pos = sample_positions(11, 100);
        assert_eq!(pos.len(), SAMPLES);
        for (k, p) in pos.iter().enumerate() {
            assert!(p.0 < 100 && p.1 < 100);
            assert!(!pos[..k].contains(p));
        }
        assert_eq!(sample_positions(1, 2).len(), 4);
    }

    #[test]
    fn tolerance_grows_with_n_and_shrinks_with_precision() {
        assert!(tolerance(Precision::F32, 2048, 1.0) > tolerance(Precision::F32, 64, 1.0));
        assert!(tolerance(Precision::F64, 2048, 1.0) < tolerance(Precision::F32, 2048, 1.0));
    }
}

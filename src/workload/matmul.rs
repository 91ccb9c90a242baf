//! Dense matrix multiply: C = A x B, square, row-major, in every precision
//! the device has (fp64, fp32, tf32, bf16, fp16, fp8 through the library;
//! bf16 and fp16 through kiln's own mma.sync kernel on GPUs).
//!
//! Counted: 2 n^3 floating-point operations per product (one multiply and one
//! add per inner-product term), reported in TFLOP/s on GPUs and GFLOP/s on
//! CPUs.
//!
//! Verified three ways:
//! 1. Sampled elements of C against an f64 reference dot product over the
//!    same inputs, rounded to the input format exactly as the device's
//!    inputs are ([`Storage::round`]). The tolerance ([`tolerance`]) is the
//!    classical worst-case bound for a dot product of length n accumulated
//!    with unit roundoff u (Higham, *Accuracy and Stability of Numerical
//!    Algorithms*, 2nd ed., eq. 3.5): |c - c_ref| <= gamma_n sum_k |a_ik b_kj|
//!    with gamma_n = n u / (1 - n u), doubled to cover truncating adders and
//!    the reference's own rounding, plus the rounding of the output to its
//!    format and, for TF32, the device's rounding of its inputs. Any
//!    summation order or FMA use stays inside it, so a healthy device is
//!    never rejected, while a corrupted element (a flipped exponent or high
//!    mantissa bit, a wrong or missing term) falls far outside. See
//!    [`ErrorModel`] for each precision's figures.
//! 2. Self-consistency: a device-side checksum of every bit of C after the
//!    last iteration must equal the one after the first. Deterministic
//!    hardware computes the same bits every time; a flip anywhere in C, even a
//!    low mantissa bit the tolerance would allow, changes the checksum.
//! 3. Agreement across devices: the last checksum is recorded
//!    ([`Integrity::checksum`]); the verdict compares it across devices of
//!    the same model, which compute the same product from the same inputs.

use crate::device::{BackendKind, Device, MatmulShape, MatmulVariant, Precision, Storage};
use crate::reference::gen;
use crate::reference::matmul::{a_value, b_value};
use crate::workload::{seconds, Context, Integrity, WorkloadError, WorkloadKind};

/// Number of output elements compared with the f64 reference per variant.
pub const SAMPLES: usize = 48;

/// The f64 reference of `C[i][j]` over inputs rounded to `input`, and the
/// sum of |a_ik b_kj| that scales its tolerance.
pub fn reference(seed: u64, n: usize, input: Storage, i: usize, j: usize) -> (f64, f64) {
    let mut sum = 0.0;
    let mut abs = 0.0;
    for k in 0..n {
        let p = input.round(a_value(seed, n, i, k)) * input.round(b_value(seed, n, k, j));
        sum += p;
        abs += p.abs();
    }
    (sum, abs)
}

/// How much error a healthy device may add to one output element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorModel {
    /// Unit roundoff of each addition into the accumulator.
    pub accumulate: f64,
    /// When the hardware accumulates blocks of this many terms at a lower
    /// precision before adding them into the accumulator (fp8): the block
    /// length and the unit roundoff inside a block.
    pub block: Option<(usize, f64)>,
    /// Relative error of each product from the device rounding its inputs
    /// (TF32 keeps 11 of f32's 24 significant bits, possibly by truncation:
    /// each factor off by less than 2^-10).
    pub inputs: f64,
    /// Format the accumulator is rounded to when C is written, when that
    /// is narrower than the accumulator.
    pub output: Option<Storage>,
}

impl ErrorModel {
    /// The model of a variant.
    ///
    /// - fp64: fp64 accumulation (u = 2^-53).
    /// - fp32, bf16, fp16 and kiln's mma: fp32 accumulation (u = 2^-24);
    ///   bf16 and fp16 products from the library are written as bf16 / fp16.
    /// - tf32: fp32 accumulation, inputs truncated to TF32 (2^-9 per
    ///   product).
    /// - fp8: Hopper's fp8 tensor cores keep about 14 bits in their
    ///   accumulator (DeepSeek-V3 technical report, section 3.3.2); cuBLASLt,
    ///   without fast accumulation (kiln never asks for it), adds their
    ///   partial sums into fp32 every few tensor-core instructions. Modelled
    ///   as blocks of 128 terms at u = 2^-13, added in fp32, written as bf16.
    ///   The sampled check therefore catches gross errors only (NaN, a wrong
    ///   exponent, a garbled kernel); bit-level corruption is the checksums'
    ///   job.
    pub fn of(v: MatmulVariant) -> ErrorModel {
        let f32u = Storage::F32.unit_roundoff();
        let output = match v.output() {
            Storage::Bf16 | Storage::F16 | Storage::E4m3 => Some(v.output()),
            Storage::F32 | Storage::F64 => None,
        };
        match v.precision {
            Precision::Fp64 => ErrorModel {
                accumulate: Storage::F64.unit_roundoff(),
                block: None,
                inputs: 0.0,
                output: None,
            },
            Precision::Fp32 | Precision::Bf16 | Precision::Fp16 => ErrorModel {
                accumulate: f32u,
                block: None,
                inputs: 0.0,
                output,
            },
            Precision::Tf32 => ErrorModel {
                accumulate: f32u,
                block: None,
                inputs: 2f64.powi(-9) + 2f64.powi(-20),
                output,
            },
            Precision::Fp8 => ErrorModel {
                accumulate: f32u,
                block: Some((128, 2f64.powi(-13))),
                inputs: 0.0,
                output,
            },
        }
    }
}

/// gamma_k = k u / (1 - k u), the relative error bound of k additions at
/// unit roundoff u; 1 once k u reaches 1/2 (the bound is then meaningless
/// and only gross errors are caught).
fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    if ku < 0.5 {
        ku / (1.0 - ku)
    } else {
        1.0
    }
}

/// The largest error allowed for an element of a product of length `n` in
/// variant `v`, whose reference is `reference` and whose terms' magnitudes
/// sum to `abs_sum` (see the module documentation and [`ErrorModel`]).
pub fn tolerance(v: MatmulVariant, n: usize, reference: f64, abs_sum: f64) -> f64 {
    let m = ErrorModel::of(v);
    let acc = match m.block {
        Some((len, u_block)) => {
            gamma(len.min(n), u_block) + gamma(n.div_ceil(len) + 1, m.accumulate)
        }
        None => gamma(n, m.accumulate),
    };
    let before_output = 2.0 * (acc + m.inputs) * abs_sum;
    let output = m.output.map_or(0.0, |o| {
        2.0 * (o.unit_roundoff() * (reference.abs() + before_output) + o.underflow())
    });
    before_output + output + f64::MIN_POSITIVE
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
    v: MatmulVariant,
    positions: &[(usize, usize)],
    values: &[f64],
) -> (u64, u64, String) {
    let mut errors = 0;
    let mut detail = String::new();
    for (&(i, j), &x) in positions.iter().zip(values) {
        let (r, abs) = reference(seed, n, v.precision.input(), i, j);
        let tol = tolerance(v, n, r, abs);
        if x.is_nan() || (x - r).abs() > tol {
            errors += 1;
            if detail.is_empty() {
                detail = format!("C[{i}][{j}] = {x:e}, reference {r:e}, allowed error {tol:.3e}");
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

/// The unit matmul rates are reported in on a device: TFLOP/s on GPUs
/// (real or simulated), GFLOP/s on CPUs. Returns (unit, FLOP per unit).
pub fn unit_for(backend: BackendKind) -> (&'static str, f64) {
    match backend {
        BackendKind::Cpu => ("GFLOP/s", 1e9),
        BackendKind::Cuda | BackendKind::Sim => ("TFLOP/s", 1e12),
    }
}

/// Runs and verifies one GEMM per variant. A variant the device cannot run
/// (no cuBLASLt, no fp8 tensor cores) is skipped with a note; the others
/// still run.
pub(crate) fn execute(
    device: &mut dyn Device,
    n: usize,
    variants: &[MatmulVariant],
    warmup: u32,
    iterations: u32,
    ctx: &mut Context<'_>,
) -> Result<(), WorkloadError> {
    let simulated = device.info().simulated;
    let (unit, scale) = unit_for(device.info().backend);
    let flops = 2.0 * (n as f64).powi(3);
    for (pi, &variant) in variants.iter().enumerate() {
        let name = format!("matmul_{}", variant.name());
        let shape = MatmulShape {
            n,
            variant,
            seed: ctx.seed,
        };
        let mut op = match device.matmul(shape) {
            Ok(op) => op,
            Err(e) if e.unsupported => {
                ctx.skipped_for(WorkloadKind::Matmul, e);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for _ in 0..warmup {
            ctx.check_stop()?;
            op.run()?;
        }
        let first_sum = op.checksum()?;
        let mut rates = Vec::new();
        let since = std::time::Instant::now();
        let share = 1.0 / variants.len() as f64;
        let mut it = 0;
        while ctx.keep_timing(it, iterations, since, share) {
            ctx.check_stop()?;
            let done = (pi as f64 + ctx.timed_fraction(it, iterations, since, share))
                / variants.len() as f64;
            (ctx.progress)(done, &name);
            it += 1;
            let t = op.run()?;
            ctx.busy(t);
            rates.push(flops / seconds(t) / scale);
        }
        let last_sum = op.checksum()?;
        let positions = sample_positions(ctx.seed ^ pi as u64, n);
        let values = op.read(&positions)?;
        drop(op);
        let (mut checked, mut errors, mut detail) =
            verify_samples(ctx.seed, n, variant, &positions, &values);
        checked += 1;
        if first_sum != last_sum {
            errors += 1;
            if detail.is_empty() {
                detail = format!(
                    "output checksum changed between iterations ({first_sum:#018x} then {last_sum:#018x}) for identical inputs"
                );
            }
        }
        let counted = format!("2*n^3 FLOP per product, n = {n}, {}", variant.arithmetic());
        ctx.metric(
            WorkloadKind::Matmul,
            &name,
            unit,
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

    /// C as a device following the variant's arithmetic computes it:
    /// rounded inputs, sequential accumulation in f32 (f64 for fp64),
    /// output rounded to the output format.
    fn device_product(seed: u64, n: usize, v: MatmulVariant) -> Vec<f64> {
        let input = v.precision.input();
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut acc32 = 0f32;
                let mut acc64 = 0f64;
                for k in 0..n {
                    let a = input.round(a_value(seed, n, i, k));
                    let b = input.round(b_value(seed, n, k, j));
                    let (a, b) = if v.precision == Precision::Tf32 {
                        // Truncation, the worse of the two TF32 conversions.
                        let t = |x: f64| f64::from(f32::from_bits((x as f32).to_bits() & !0x1fff));
                        (t(a), t(b))
                    } else {
                        (a, b)
                    };
                    acc32 += a as f32 * b as f32;
                    acc64 += a * b;
                }
                let acc = if v.precision == Precision::Fp64 {
                    acc64
                } else {
                    f64::from(acc32)
                };
                c[i * n + j] = v.output().round(acc);
            }
        }
        c
    }

    fn sampled(c: &[f64], n: usize, pos: &[(usize, usize)]) -> Vec<f64> {
        pos.iter().map(|&(i, j)| c[i * n + j]).collect()
    }

    const ALL: [MatmulVariant; 8] = MatmulVariant::GPU;

    #[test]
    fn a_correct_product_passes_in_every_variant() {
        let n = 96;
        for v in ALL {
            let c = device_product(5, n, v);
            let pos = sample_positions(5, n);
            let (checked, errors, detail) = verify_samples(5, n, v, &pos, &sampled(&c, n, &pos));
            assert_eq!((checked, errors), (SAMPLES as u64, 0), "{v:?}: {detail}");
        }
    }

    #[test]
    fn a_flipped_exponent_bit_is_caught_in_every_variant() {
        let n = 64;
        for v in ALL {
            let c = device_product(3, n, v);
            let pos = sample_positions(3, n);
            let mut vals = sampled(&c, n, &pos);
            // The highest exponent bit of the output format's value: an
            // element off by a factor of 2^64 or more (or zeroed to a tiny
            // number) cannot pass.
            let out = v.output();
            let k = (0..vals.len())
                .find(|&k| vals[k].abs() > 1.0)
                .expect("an element above 1");
            let bit = match out {
                Storage::F64 => 62,
                Storage::F32 => 30,
                Storage::Bf16 => 14,
                Storage::F16 => 14,
                Storage::E4m3 => 6,
            };
            vals[k] = out.value(out.bits(vals[k]) ^ (1 << bit));
            let (_, errors, detail) = verify_samples(3, n, v, &pos, &vals);
            assert_eq!(errors, 1, "{v:?}");
            let (i, j) = pos[k];
            assert!(detail.contains(&format!("C[{i}][{j}]")), "{detail}");
        }
    }

    #[test]
    fn a_wrong_term_is_caught_where_the_precision_allows() {
        // One product term a_ik b_kj missing: the error is |a_ik b_kj|, up to
        // 1. The fp32, fp64 and 16-bit bounds are far below that at n = 64.
        let n = 64;
        for v in ALL.into_iter().filter(|v| v.precision != Precision::Fp8) {
            let input = v.precision.input();
            let (i, j) = (0, 0);
            let (r, abs) = reference(9, n, input, i, j);
            let (kmax, term) = (0..n)
                .map(|k| {
                    let t = input.round(a_value(9, n, i, k)) * input.round(b_value(9, n, k, j));
                    (k, t)
                })
                .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
                .expect("n > 0");
            assert!(term.abs() > tolerance(v, n, r, abs), "{v:?} k={kmax}");
        }
    }

    #[test]
    fn nan_and_missing_values_are_errors() {
        let n = 16;
        let v = MatmulVariant::library(Precision::Fp64);
        let pos = sample_positions(1, n);
        let mut vals: Vec<f64> = pos
            .iter()
            .map(|&(i, j)| reference(1, n, Storage::F64, i, j).0)
            .collect();
        vals[2] = f64::NAN;
        assert_eq!(verify_samples(1, n, v, &pos, &vals).1, 1);
        vals.pop();
        vals[2] = 0.0;
        assert!(verify_samples(1, n, v, &pos, &vals).1 >= 1);
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
        let t = |p, n| tolerance(MatmulVariant::library(p), n, 1.0, 1.0);
        assert!(t(Precision::Fp32, 2048) > t(Precision::Fp32, 64));
        assert!(t(Precision::Fp64, 2048) < t(Precision::Fp32, 2048));
        assert!(t(Precision::Fp32, 2048) < t(Precision::Tf32, 2048));
        assert!(t(Precision::Fp32, 2048) < t(Precision::Bf16, 2048));
        assert!(t(Precision::Bf16, 2048) > t(Precision::Fp16, 2048));
        // kiln's kernel writes fp32: no output rounding.
        assert!(
            tolerance(MatmulVariant::mma(Precision::Bf16), 2048, 1.0, 1.0)
                < t(Precision::Bf16, 2048)
        );
        // At GPU sizes the 16-bit bound is still a fraction of a percent of
        // the terms' magnitude, so a missing term or a flipped high bit fails.
        let big = tolerance(MatmulVariant::library(Precision::Bf16), 8192, 0.0, 1.0);
        assert!(big < 2e-3, "{big}");
    }

    #[test]
    fn units_follow_the_backend() {
        assert_eq!(unit_for(BackendKind::Cpu).0, "GFLOP/s");
        assert_eq!(unit_for(BackendKind::Cuda), ("TFLOP/s", 1e12));
        assert_eq!(unit_for(BackendKind::Sim).0, "TFLOP/s");
    }
}

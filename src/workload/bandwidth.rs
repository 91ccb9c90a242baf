//! Memory bandwidth: read, write, copy and triad over three buffers.
//!
//! Counted: bytes read + bytes written per pass, divided by the device time of
//! the pass, in GB/s (10^9 bytes per second). See
//! [`StreamKernel::bytes_per_element`].
//!
//! Verified exactly, without copying buffers to the host: inputs are small
//! integers ([`gen::stream_value`]), so sums are exact in f64 and every
//! result is known in closed form, bit for bit ([`Expected`]).
//! - read: the sum the kernel returned equals the host's sum of `a`, every
//!   iteration;
//! - write: `b` sums to 2 x len, its position-mixed hash is that of len 2s,
//!   and sampled elements are 2;
//! - copy: `a` still hashes to what the host generated, and `c` has the same
//!   sum and hash as `a`;
//! - triad (b = a + 3c after the copy, so b = 4a): `b` sums to 4 x sum(a),
//!   hashes to the hash of 4 a\[i\], and sampled elements equal 4 a\[i\].
//!
//! The hashes matter: a flipped low bit of an element's mantissa changes
//! its value by far less than one unit in the last place of the sum, which
//! absorbs it; only the bits see it (found by the virtual GPU's weak-bit
//! fault, which the sums alone let through).

use crate::device::{Device, StreamBuffer, StreamKernel, StreamOp};
use crate::reference::gen;
use crate::workload::{seconds, Context, WorkloadError, WorkloadKind};

/// Sampled elements read back per check.
pub const SAMPLES: usize = 64;

/// What the buffers hold when every kernel is right, computed on the host
/// in one pass: the sum of `a`, and the position-mixed hashes
/// ([`gen::digest_term`], summed wrapping) of `a`, of the write kernel's
/// `b` (every element 2) and of the triad's `b` (4 a\[i\]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    pub sum_a: f64,
    pub hash_a: u64,
    pub hash_write: u64,
    pub hash_triad: u64,
}

impl Expected {
    pub fn new(seed: u64, len: usize) -> Expected {
        let two = 2f64.to_bits();
        let mut e = Expected {
            sum_a: 0.0,
            hash_a: 0,
            hash_write: 0,
            hash_triad: 0,
        };
        for i in 0..len as u64 {
            let v = gen::stream_value(seed, i);
            e.sum_a += v;
            e.hash_a = e.hash_a.wrapping_add(gen::digest_term(i, v.to_bits()));
            e.hash_write = e.hash_write.wrapping_add(gen::digest_term(i, two));
            e.hash_triad = e
                .hash_triad
                .wrapping_add(gen::digest_term(i, (4.0 * v).to_bits()));
        }
        e
    }
}

/// The indices read back for sampled checks: both ends and generator picks.
pub fn sample_indices(seed: u64, len: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let mut idx = vec![0, len - 1];
    idx.extend((0..SAMPLES as u64).map(|k| (gen::random_u64(seed, 10, k) % len as u64) as usize));
    idx
}

/// Checks the output of `kernel` on the device buffers; returns
/// (checked, errors, detail).
pub fn verify(
    op: &mut dyn StreamOp,
    kernel: StreamKernel,
    seed: u64,
    want: &Expected,
    read_sums: &[f64],
) -> Result<(u64, u64, String), WorkloadError> {
    let sum_a = want.sum_a;
    let len = op.len();
    let idx = sample_indices(seed, len);
    let mut checked = 0u64;
    let mut errors = 0u64;
    let mut detail = String::new();
    let mut fail = |errors: &mut u64, what: String| {
        *errors += 1;
        if detail.is_empty() {
            detail = what;
        }
    };
    match kernel {
        StreamKernel::Read => {
            for (it, &s) in read_sums.iter().enumerate() {
                checked += 1;
                if s != sum_a {
                    fail(
                        &mut errors,
                        format!("iteration {it}: sum of a = {s}, expected {sum_a}"),
                    );
                }
            }
        }
        StreamKernel::Write | StreamKernel::Triad => {
            let (factor, what) = if kernel == StreamKernel::Write {
                (None, "2")
            } else {
                (Some(4.0), "4 x a[i]")
            };
            let d = op.digest(StreamBuffer::B)?;
            let (sum, hash) = match factor {
                None => (2.0 * len as f64, want.hash_write),
                Some(f) => (f * sum_a, want.hash_triad),
            };
            checked += len as u64;
            if d.sum != sum {
                fail(&mut errors, format!("sum of b = {}, expected {sum}", d.sum));
            }
            if d.hash != hash {
                fail(
                    &mut errors,
                    format!(
                        "b differs from {what} in its bits (hash {:#018x}, expected {hash:#018x})",
                        d.hash
                    ),
                );
            }
            let vals = op.read(StreamBuffer::B, &idx)?;
            for (&i, &v) in idx.iter().zip(&vals) {
                let w = match factor {
                    None => 2.0,
                    Some(f) => f * gen::stream_value(seed, i as u64),
                };
                if v != w {
                    fail(&mut errors, format!("b[{i}] = {v}, expected {what} = {w}"));
                }
            }
        }
        StreamKernel::Copy => {
            let a = op.digest(StreamBuffer::A)?;
            let c = op.digest(StreamBuffer::C)?;
            checked += len as u64;
            if a.sum != sum_a {
                fail(
                    &mut errors,
                    format!("source a changed: sum {} instead of {sum_a}", a.sum),
                );
            } else if a.hash != want.hash_a {
                fail(
                    &mut errors,
                    format!(
                        "source a differs from what was generated in its bits (hash {:#018x}, expected {:#018x})",
                        a.hash, want.hash_a
                    ),
                );
            }
            if c != a {
                fail(
                    &mut errors,
                    format!(
                        "copy differs from its source (hash {:#018x} vs {:#018x})",
                        c.hash, a.hash
                    ),
                );
            }
        }
    }
    Ok((checked, errors, detail))
}

/// Runs and verifies the four kernels.
pub(crate) fn execute(
    device: &mut dyn Device,
    elements: usize,
    warmup: u32,
    iterations: u32,
    ctx: &mut Context<'_>,
) -> Result<(), WorkloadError> {
    let simulated = device.info().simulated;
    let seed = ctx.seed;
    let mut op = device.stream(elements, seed)?;
    let len = op.len();
    let want = Expected::new(seed, len);
    for (ki, kernel) in StreamKernel::ALL.into_iter().enumerate() {
        let name = format!("bw_{}", kernel.name());
        let bytes = kernel.bytes_per_element() as f64 * len as f64;
        for _ in 0..warmup {
            ctx.check_stop()?;
            op.run(kernel)?;
        }
        let mut rates = Vec::new();
        let mut read_sums = Vec::new();
        let since = std::time::Instant::now();
        let share = 1.0 / StreamKernel::ALL.len() as f64;
        let mut it = 0;
        while ctx.keep_timing(it, iterations, since, share) {
            ctx.check_stop()?;
            let done = (ki as f64 + ctx.timed_fraction(it, iterations, since, share))
                / StreamKernel::ALL.len() as f64;
            (ctx.progress)(done, &name);
            it += 1;
            let (t, sum) = op.run(kernel)?;
            ctx.busy(t);
            rates.push(bytes / seconds(t) / 1e9);
            if let Some(s) = sum {
                read_sums.push(s);
            }
        }
        if kernel == StreamKernel::Read && read_sums.len() != rates.len() {
            read_sums.push(f64::NAN); // a read kernel that returned no sum is wrong
        }
        let (checked, errors, detail) = verify(op.as_mut(), kernel, seed, &want, &read_sums)?;
        let counted = format!(
            "bytes read + written: {} B per element x {len} elements of f64",
            kernel.bytes_per_element()
        );
        ctx.metric(
            WorkloadKind::Bandwidth,
            &name,
            "GB/s",
            counted,
            &rates,
            simulated,
        );
        ctx.integrity(WorkloadKind::Bandwidth, name, checked, errors, detail);
    }
    Ok(())
}

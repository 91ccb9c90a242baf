//! Memory bandwidth: read, write, copy and triad over three buffers.
//!
//! Counted: bytes read + bytes written per pass, divided by the device time of
//! the pass, in GB/s (10^9 bytes per second). See
//! [`StreamKernel::bytes_per_element`].
//!
//! Verified exactly, without copying buffers to the host: inputs are small
//! integers ([`gen::stream_value`]), so sums are exact in f64 and every
//! result is known in closed form.
//! - read: the sum the kernel returned equals the host's sum of `a`, every
//!   iteration;
//! - write: `b` sums to 2 x len and sampled elements are 2;
//! - copy: `c` has the same sum and position-mixed hash as `a`;
//! - triad (b = a + 3c after the copy, so b = 4a): `b` sums to 4 x sum(a) and
//!   sampled elements equal 4 a\[i\].

use crate::device::{Device, StreamBuffer, StreamKernel, StreamOp};
use crate::reference::gen;
use crate::workload::{seconds, Context, WorkloadError, WorkloadKind};

/// Sampled elements read back per check.
pub const SAMPLES: usize = 64;

/// Host sum of buffer `a` (exact).
pub fn expected_sum_a(seed: u64, len: usize) -> f64 {
    (0..len as u64).map(|i| gen::stream_value(seed, i)).sum()
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
    sum_a: f64,
    read_sums: &[f64],
) -> Result<(u64, u64, String), WorkloadError> {
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
            let want = match factor {
                None => 2.0 * len as f64,
                Some(f) => f * sum_a,
            };
            checked += len as u64;
            if d.sum != want {
                fail(
                    &mut errors,
                    format!("sum of b = {}, expected {want}", d.sum),
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
    let sum_a = expected_sum_a(seed, len);
    for (ki, kernel) in StreamKernel::ALL.into_iter().enumerate() {
        let name = format!("bw_{}", kernel.name());
        let bytes = kernel.bytes_per_element() as f64 * len as f64;
        for _ in 0..warmup {
            ctx.check_stop()?;
            op.run(kernel)?;
        }
        let mut rates = Vec::new();
        let mut read_sums = Vec::new();
        for it in 0..iterations {
            ctx.check_stop()?;
            let done = (ki as f64 + f64::from(it) / f64::from(iterations.max(1))) / 4.0;
            (ctx.progress)(done, &name);
            let (t, sum) = op.run(kernel)?;
            rates.push(bytes / seconds(t) / 1e9);
            if let Some(s) = sum {
                read_sums.push(s);
            }
        }
        if kernel == StreamKernel::Read && read_sums.len() != rates.len() {
            read_sums.push(f64::NAN); // a read kernel that returned no sum is wrong
        }
        let (checked, errors, detail) = verify(op.as_mut(), kernel, seed, sum_a, &read_sums)?;
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

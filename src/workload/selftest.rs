//! `kiln selftest`: every primitive of a device at small sizes, each result
//! compared with the CPU backend's reference implementation. It is the first
//! thing to run on new hardware or a new driver: a backend that disagrees
//! with the reference must not be trusted to judge anything.

use crate::device::cpu::{CpuMemtest, CpuStream};
use crate::device::{
    BackendKind, Device, Direction, MatmulShape, MatmulVariant, StreamBuffer, StreamKernel,
    StreamOp,
};
use crate::reference::hash::{midstate, scan_range, HashJob};
use crate::reference::memtest;
use crate::workload::{bandwidth, hash, matmul};

/// The outcome of one comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What was compared, e.g. "bandwidth copy".
    pub what: String,
    /// True when the device agreed with the reference.
    pub pass: bool,
    /// What was found, in words.
    pub detail: String,
}

fn outcome(what: impl Into<String>, result: Result<String, String>) -> Outcome {
    match result {
        Ok(detail) => Outcome {
            what: what.into(),
            pass: true,
            detail,
        },
        Err(detail) => Outcome {
            what: what.into(),
            pass: false,
            detail,
        },
    }
}

/// Runs every comparison on `device`; never stops at the first failure.
/// `others` are the kiln indices of the other devices found, for the peer
/// copies.
pub fn run(device: &mut dyn Device, seed: u64, others: &[usize]) -> Vec<Outcome> {
    let mut out = Vec::new();
    let variants: &[MatmulVariant] = match device.info().backend {
        BackendKind::Cpu => &MatmulVariant::CPU,
        BackendKind::Cuda | BackendKind::Sim => &MatmulVariant::GPU,
    };
    for &variant in variants {
        // 256: small, and whole tiles of kiln's mma kernel.
        let n = 256;
        let what = format!("matmul {} n={n}", variant.name());
        out.push(outcome(what, matmul_check(device, n, variant, seed)));
    }
    out.push(outcome(
        "bandwidth read/write/copy/triad",
        stream_check(device, seed),
    ));
    out.push(outcome("sha256d scan", hash_check(device, seed)));
    out.push(outcome("memtest patterns", memtest_check(device, seed)));
    if device.info().backend != BackendKind::Cpu {
        out.push(outcome(
            "host transfers h2d/d2h",
            transfer_check(device, seed),
        ));
        if !others.is_empty() {
            out.push(outcome("peer copies", peer_check(device, seed, others)));
        }
    }
    out
}

/// The sizes of the comparisons: odd, so that no buffer is a whole number
/// of any block, and large enough to span many blocks of every kernel.
/// Virtual GPUs (vgpu, an interpreter) get a sixteenth, still thousands of
/// blocks' worth of odd tails.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    copy_words: usize,
    stream_len: usize,
    /// A nonce range that crosses a 2^16 boundary, of odd length.
    nonces: (u32, u32),
    memtest_words: usize,
}

fn sizes(info: &crate::device::DeviceInfo) -> Sizes {
    if info.simulated && info.backend == BackendKind::Cuda {
        Sizes {
            copy_words: (1 << 16) + 3,
            stream_len: (1 << 16) + 3,
            nonces: (65_000, 8_193),
            memtest_words: (1 << 16) + 5,
        }
    } else {
        Sizes {
            copy_words: (1 << 20) + 3,
            stream_len: (1 << 20) + 3,
            nonces: (65_000, 70_001),
            memtest_words: (1 << 18) + 5,
        }
    }
}

fn copy_result(
    what: &str,
    c: &crate::reference::transfer::CopyCheck,
    words: usize,
) -> Result<(), String> {
    if c.errors > 0 || c.checked != words as u64 {
        return Err(format!(
            "{what}: {} of {} words differ from the source (first bad word: {:?})",
            c.errors, c.checked, c.first_bad
        ));
    }
    Ok(())
}

fn transfer_check(device: &mut dyn Device, seed: u64) -> Result<String, String> {
    let words = sizes(device.info()).copy_words;
    let mut op = match device.transfer(words, seed) {
        Ok(op) => op,
        Err(e) if e.unsupported => return Ok(format!("skipped: {}", e.message)),
        Err(e) => return Err(e.to_string()),
    };
    for dir in Direction::ALL {
        op.run(dir).map_err(|e| e.to_string())?;
        copy_result(
            dir.name(),
            &op.check(dir).map_err(|e| e.to_string())?,
            words,
        )?;
    }
    Ok(format!("{words} words each way equal to the source"))
}

fn peer_check(device: &mut dyn Device, seed: u64, others: &[usize]) -> Result<String, String> {
    let words = sizes(device.info()).copy_words;
    let mut op = match device.peer(words, seed, others) {
        Ok(op) => op,
        Err(e) if e.unsupported => return Ok(format!("skipped: {}", e.message)),
        Err(e) => return Err(e.to_string()),
    };
    let (reachable, unreachable) = op.targets();
    for &t in &reachable {
        op.run(t).map_err(|e| e.to_string())?;
        copy_result(
            &format!("copy to device {t}"),
            &op.check(t).map_err(|e| e.to_string())?,
            words,
        )?;
    }
    let mut text = format!(
        "{words} words to each of {} peer(s) equal to the source",
        reachable.len()
    );
    if !unreachable.is_empty() {
        let ids: Vec<String> = unreachable.iter().map(|(t, _)| t.to_string()).collect();
        text.push_str(&format!("; no peer access to {}", ids.join(", ")));
    }
    Ok(text)
}

fn matmul_check(
    device: &mut dyn Device,
    n: usize,
    variant: MatmulVariant,
    seed: u64,
) -> Result<String, String> {
    let mut op = match device.matmul(MatmulShape { n, variant, seed }) {
        Ok(op) => op,
        // Not this device's fault (no cuBLASLt, no fp8 tensor cores): say
        // so, and do not fail the self-test for it.
        Err(e) if e.unsupported => return Ok(format!("skipped: {}", e.message)),
        Err(e) => return Err(e.to_string()),
    };
    op.run().map_err(|e| e.to_string())?;
    let first = op.checksum().map_err(|e| e.to_string())?;
    op.run().map_err(|e| e.to_string())?;
    let second = op.checksum().map_err(|e| e.to_string())?;
    if first != second {
        return Err(format!(
            "output differs between two identical products ({first:#x} vs {second:#x})"
        ));
    }
    // Every element of the first rows and sampled elements elsewhere,
    // against the f64 reference within the precision's bound.
    let mut pos: Vec<(usize, usize)> = (0..n).flat_map(|j| [(0, j), (n - 1, j)]).collect();
    pos.extend(matmul::sample_positions(seed, n));
    let vals = op.read(&pos).map_err(|e| e.to_string())?;
    let (checked, errors, detail) = matmul::verify_samples(seed, n, variant, &pos, &vals);
    if errors > 0 {
        return Err(format!(
            "{errors} of {checked} elements outside the rounding bound: {detail}"
        ));
    }
    Ok(format!(
        "{checked} elements within the rounding bound; deterministic"
    ))
}

fn stream_check(device: &mut dyn Device, seed: u64) -> Result<String, String> {
    let len = sizes(device.info()).stream_len; // an odd tail on purpose
    let mut op = device.stream(len, seed).map_err(|e| e.to_string())?;
    let mut reference = CpuStream::new(len, seed);
    let want = bandwidth::Expected::new(seed, len);
    let sum_a = want.sum_a;
    for kernel in StreamKernel::ALL {
        let (_, sum) = op.run(kernel).map_err(|e| e.to_string())?;
        let ref_sum = reference.pass(kernel);
        if sum != ref_sum {
            return Err(format!(
                "{}: returned {sum:?}, reference {ref_sum:?}",
                kernel.name()
            ));
        }
        for buf in [StreamBuffer::A, StreamBuffer::B, StreamBuffer::C] {
            let d = op.digest(buf).map_err(|e| e.to_string())?;
            let r = reference.digest(buf).map_err(|e| e.to_string())?;
            if d != r {
                return Err(format!(
                    "after {}: buffer {buf:?} digest {:?} differs from the reference {:?}",
                    kernel.name(),
                    d,
                    r
                ));
            }
        }
        let reads = if kernel == StreamKernel::Read {
            vec![sum_a]
        } else {
            Vec::new()
        };
        let (_, errors, detail) = bandwidth::verify(op.as_mut(), kernel, seed, &want, &reads)
            .map_err(|e| e.to_string())?;
        if errors > 0 {
            return Err(format!("{}: {detail}", kernel.name()));
        }
    }
    Ok(format!(
        "{len} elements: sums, digests and samples equal to the reference"
    ))
}

fn hash_check(device: &mut dyn Device, seed: u64) -> Result<String, String> {
    let job = HashJob::from_seed(seed, 8, 1 << 8);
    // A range that crosses a 2^16 boundary, with an odd length.
    let (start, count) = sizes(device.info()).nonces;
    let mut op = device.hasher(&job).map_err(|e| e.to_string())?;
    let (got, _) = op.scan(start, count).map_err(|e| e.to_string())?;
    let want = scan_range(&job, &midstate(&job.header), start, count);
    if got != want {
        return Err(format!(
            "scan of {count} nonces differs from the reference: {} hits vs {}, fold {:08x?} vs {:08x?}",
            got.hit_count, want.hit_count, got.fold, want.fold
        ));
    }
    let c = hash::verify_scan(&job, start, count, &got);
    if c.errors > 0 {
        return Err(c.detail);
    }
    Ok(format!(
        "{count} nonces: hits, fold and {} sampled digests equal to the reference",
        got.samples.len()
    ))
}

fn memtest_check(device: &mut dyn Device, seed: u64) -> Result<String, String> {
    let words = sizes(device.info()).memtest_words;
    let mut op = device.memtest(words).map_err(|e| e.to_string())?;
    let mut reference = CpuMemtest::new(words);
    let steps = memtest::algorithm(&[0, 33, 63], 1, seed);
    for (label, step) in &steps {
        let (got, want) = match *step {
            memtest::Step::Fill(p) => {
                op.fill(p).map_err(|e| e.to_string())?;
                reference.apply(*step, 16);
                continue;
            }
            memtest::Step::Verify(p) => (
                op.verify(p, 16).map_err(|e| e.to_string())?.0,
                reference.apply(*step, 16),
            ),
            memtest::Step::VerifyAndWrite {
                expect,
                next,
                descending,
            } => (
                op.verify_and_write(expect, next, descending, 16)
                    .map_err(|e| e.to_string())?
                    .0,
                reference.apply(*step, 16),
            ),
        };
        if got != want {
            return Err(format!("{label}: device found {got:?}, reference {want:?}"));
        }
    }
    Ok(format!(
        "{} steps over {words} words agree with the reference, no errors",
        steps.len()
    ))
}

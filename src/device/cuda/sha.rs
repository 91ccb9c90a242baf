//! [`HashOp`] on a GPU: `kiln_sha256d_scan` then `kiln_sha256d_collect`,
//! read back and assembled into the [`ScanResult`] that
//! `reference::hash::scan_range` would return for the same range.
//!
//! Layouts (`kernels/README.md`): the job is 16 u32 (midstate, header bytes
//! 64..76 as big-endian words, target, sample interval, zeros); collect's
//! output is 75 u32 (hit count low then high word, the 8-word fold, n, the n
//! smallest hits); sample k's 32 digest bytes are u32 words `8k..8k+8` as laid
//! out in (little-endian) device memory.

use cudarc::driver::CudaSlice;

use crate::device::cuda::gpu::{Func, Gpu, Handle, Timer};
use crate::device::cuda::kernels::{grid, Kernel, BLOCKS_PER_SM, SHA_STEP_NONCES};
use crate::device::{DeviceResult, HashOp, Seconds};
use crate::reference::hash::{self, HashJob, ScanResult, MAX_HITS};

/// u32 words of one block's record in `rec`.
const REC_WORDS: usize = 80;
/// u32 words of collect's output.
const OUT_WORDS: usize = 11 + MAX_HITS;

/// The 16 job words the scan kernel reads.
pub(crate) fn job_words(job: &HashJob) -> [u32; 16] {
    let mid = hash::midstate(&job.header);
    let mut w = [0u32; 16];
    w[..8].copy_from_slice(&mid.state);
    for i in 0..3 {
        let o = 64 + 4 * i;
        let h = &job.header;
        w[8 + i] = u32::from_be_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    }
    w[11] = job.target_zero_bits;
    w[12] = job.sample_every;
    w
}

/// The nonces a scan of `count` from `start` hashes, `[lo, hi)`, clamped at
/// 2^32 like `scan_range`.
pub(crate) fn clamped(start: u32, count: u32) -> (u64, u64) {
    let lo = u64::from(start);
    (lo, (lo + u64::from(count)).min(1 << 32))
}

/// The sampled nonces of `[lo, hi)`: the first multiple of `every` at or
/// above `lo`, and how many multiples lie in the range (0 when `every` is
/// 0).
pub(crate) fn sample_plan(lo: u64, hi: u64, every: u32) -> (u64, usize) {
    if every == 0 {
        return (0, 0);
    }
    let every = u64::from(every);
    let first = lo.div_ceil(every) * every;
    if first >= hi {
        return (first, 0);
    }
    (first, ((hi - 1 - first) / every + 1) as usize)
}

/// The [`ScanResult`] of `nonces` hashed nonces from collect's output `out`
/// and the sample words `samples` (8 per sample, `plan` as
/// [`sample_plan`] gave it for sampling interval `every`). A count of listed
/// hits above what the buffers hold is clamped, never trusted for an index:
/// the shared verification then flags the inconsistency.
pub(crate) fn assemble(
    out: &[u32],
    nonces: u64,
    samples: &[u32],
    plan: (u64, usize),
    every: u32,
) -> ScanResult {
    let word = |i: usize| out.get(i).copied().unwrap_or(0);
    let hit_count = u64::from(word(0)) | (u64::from(word(1)) << 32);
    let mut fold = [0u32; 8];
    for (i, f) in fold.iter_mut().enumerate() {
        *f = word(2 + i);
    }
    let listed = (word(10) as usize)
        .min(MAX_HITS)
        .min(out.len().saturating_sub(11));
    let hits = out
        .get(11..11 + listed)
        .map_or_else(Vec::new, <[u32]>::to_vec);
    let (first, count) = plan;
    let samples = samples
        .chunks_exact(8)
        .take(count)
        .enumerate()
        .map(|(k, words)| {
            let mut d = [0u8; 32];
            for (dst, w) in d.chunks_exact_mut(4).zip(words) {
                dst.copy_from_slice(&w.to_le_bytes());
            }
            // first + k * every < hi <= 2^32: the nonce fits.
            ((first + k as u64 * u64::from(every)) as u32, d)
        })
        .collect();
    ScanResult {
        nonces,
        hit_count,
        hits,
        fold,
        samples,
    }
}

/// A prepared nonce search on a GPU.
pub(crate) struct CudaHashOp {
    h: Handle,
    every: u32,
    job: CudaSlice<u32>,
    rec: CudaSlice<u32>,
    out: CudaSlice<u32>,
    samples: CudaSlice<u32>,
    scan: Func,
    collect: Func,
    timer: Timer,
}

impl CudaHashOp {
    /// Uploads the job and allocates the per-block records.
    pub fn new(gpu: &mut Gpu, job: &HashJob) -> DeviceResult<CudaHashOp> {
        let [scan, collect] = gpu.functions([Kernel::ShaScan, Kernel::ShaCollect])?;
        let h = gpu.h.clone();
        let max_grid = (BLOCKS_PER_SM * h.sms.max(1)) as usize;
        let job_dev = h.upload(&job_words(job), "the hash job")?;
        let rec = h.alloc::<u32>(REC_WORDS * max_grid, "per-block hash records")?;
        let out = h.alloc::<u32>(OUT_WORDS, "the hash result")?;
        let samples = h.alloc::<u32>(8, "sampled digests")?;
        let timer = h.timer()?;
        Ok(CudaHashOp {
            h,
            every: job.sample_every,
            job: job_dev,
            rec,
            out,
            samples,
            scan,
            collect,
            timer,
        })
    }
}

impl HashOp for CudaHashOp {
    fn scan(&mut self, start: u32, count: u32) -> DeviceResult<(ScanResult, Seconds)> {
        let (lo, hi) = clamped(start, count);
        let plan = sample_plan(lo, hi, self.every);
        if plan.1 * 8 > self.samples.len() {
            self.samples = self.h.alloc::<u32>(plan.1 * 8, "sampled digests")?;
        }
        let h = &self.h;
        let g = grid(h.sms, hi - lo, SHA_STEP_NONCES);
        let t = self.timer.time_each(h, &self.scan.kernel.describe(), || {
            h.launch(&self.scan)
                .ptr(&self.job)
                .u32(&start)
                .u32(&count)
                .ptr(&self.rec)
                .ptr(&self.samples)
                .run(g)
        })?;
        h.launch(&self.collect)
            .ptr(&self.rec)
            .u32(&g)
            .ptr(&self.out)
            .run(1)?;
        let what = format!("the result of {}", self.collect.kernel.describe());
        let out = h.download(&self.out, OUT_WORDS, &what)?;
        let samples = if plan.1 == 0 {
            Vec::new()
        } else {
            h.download(&self.samples, plan.1 * 8, "the sampled digests")?
        };
        Ok((assemble(&out, hi - lo, &samples, plan, self.every), t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_words_carry_midstate_tail_target_and_interval() {
        let job = HashJob::from_seed(2024, 12, 1 << 10);
        let w = job_words(&job);
        assert_eq!(w[..8], hash::midstate(&job.header).state);
        assert_eq!(w[8].to_be_bytes(), job.header[64..68]);
        assert_eq!(w[10].to_be_bytes(), job.header[72..76]);
        assert_eq!((w[11], w[12]), (12, 1 << 10));
        assert_eq!(w[13..], [0, 0, 0]);
    }

    #[test]
    fn sample_plan_counts_the_multiples_in_range() {
        assert_eq!(sample_plan(0, 100, 0), (0, 0));
        assert_eq!(sample_plan(0, 100, 10), (0, 10));
        assert_eq!(sample_plan(1, 100, 10), (10, 9));
        assert_eq!(sample_plan(5, 10, 10), (10, 0));
        assert_eq!(sample_plan(10, 11, 10), (10, 1));
        let (lo, hi) = clamped(u32::MAX - 5, 100);
        assert_eq!((lo, hi), (u64::from(u32::MAX) - 5, 1 << 32));
        assert_eq!(sample_plan(lo, hi, 1 << 31), (1 << 32, 0));
        assert_eq!(sample_plan(0, 1 << 32, 1 << 31), (0, 2));
    }

    /// The raw buffers the kernels would write for `r`, laid out by hand from
    /// kernels/README.md.
    fn raw(r: &ScanResult) -> (Vec<u32>, Vec<u32>) {
        let mut out = vec![0xdead_beef_u32; OUT_WORDS];
        out[0] = r.hit_count as u32;
        out[1] = (r.hit_count >> 32) as u32;
        out[2..10].copy_from_slice(&r.fold);
        out[10] = r.hits.len() as u32;
        out[11..11 + r.hits.len()].copy_from_slice(&r.hits);
        let mut samples = Vec::new();
        for (_, d) in &r.samples {
            // Device memory holds the digest bytes in order; a u32 read from
            // little-endian memory is the bytes taken little-endian.
            for b in d.chunks_exact(4) {
                samples.push(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            }
        }
        (out, samples)
    }

    #[test]
    fn assembles_what_scan_range_returns() {
        let job = HashJob::from_seed(77, 4, 1000);
        let mid = hash::midstate(&job.header);
        for (start, count) in [(0u32, 5000u32), (1234, 4321), (u32::MAX - 3000, 10_000)] {
            let want = hash::scan_range(&job, &mid, start, count);
            assert!(want.hit_count > MAX_HITS as u64, "enough hits to truncate");
            let (lo, hi) = clamped(start, count);
            let plan = sample_plan(lo, hi, job.sample_every);
            assert_eq!(plan.1, want.samples.len());
            let (out, samples) = raw(&want);
            let got = assemble(&out, hi - lo, &samples, plan, job.sample_every);
            assert_eq!(got, want, "start {start} count {count}");
        }
    }

    #[test]
    fn a_bad_listed_count_is_clamped_not_trusted() {
        let mut out = vec![0u32; OUT_WORDS];
        out[0] = 3;
        out[10] = 1_000_000;
        let r = assemble(&out, 10, &[], (0, 0), 0);
        assert_eq!(r.hits.len(), MAX_HITS);
        assert_eq!(r.hit_count, 3);
        let short = assemble(&out[..20], 10, &[], (0, 0), 0);
        assert_eq!(short.hits.len(), 9);
        assert!(assemble(&[], 0, &[], (0, 0), 0).hits.is_empty());
    }
}

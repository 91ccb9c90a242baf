//! [`MemtestOp`] on a GPU: a buffer of u64 words and kiln's `kiln_mt_*`
//! kernels.
//!
//! Patterns travel as `(kind, param)` ([`encode`]). A verify (or
//! verify-and-write) launch writes per-block counts and kept bad words;
//! `kiln_mt_collect` merges them into `3 + 3 * keep` words that
//! [`assemble`] turns into the [`MemErrors`] the CPU backend would return:
//! the counts, and the `keep` lowest-index bad words, ascending. As on the
//! CPU (per 1 MiB chunk), the walk order of verify-and-write holds per
//! block's run of the buffer, not across it.

use cudarc::driver::CudaSlice;

use crate::device::cuda::gpu::{Func, Gpu, Handle, Timer};
use crate::device::cuda::kernels::{grid, Kernel, BW_ITEMS_PER_BLOCK, MT_TILE_WORDS};
use crate::device::{DeviceResult, MemtestOp, Seconds};
use crate::reference::memtest::{BadWord, MemErrors, Pattern};

/// Flag of an inverted pattern in `kind`.
const INVERT: u32 = 16;

/// The most bad words one check keeps (its scratch is `3 * grid * keep`
/// words); kiln keeps 16.
pub(crate) const MAX_KEEP: usize = 1 << 16;

/// The `(kind, param)` encoding of `pattern` (kernels/README.md): `Fixed(x)`
/// is (0, x), `Random` (1, seed), `AddressInAddress` (2, 0), the kind ORed
/// with 16 when inverted.
pub(crate) fn encode(pattern: Pattern) -> (u32, u64) {
    let inv = |invert: bool| if invert { INVERT } else { 0 };
    match pattern {
        Pattern::Fixed(x) => (0, x),
        Pattern::Random { seed, invert } => (1 | inv(invert), seed),
        Pattern::AddressInAddress { invert } => (2 | inv(invert), 0),
    }
}

/// The [`MemErrors`] of a check of `words` words from collect's output
/// (`out[0]` bad words, `out[1]` flipped bits, `out[2]` listed, then
/// (index, expected, actual) triples). The listed count is clamped to
/// `keep` and to what `out` holds.
pub(crate) fn assemble(out: &[u64], words: u64, keep: usize) -> MemErrors {
    let word = |i: usize| out.get(i).copied().unwrap_or(0);
    let listed = usize::try_from(word(2))
        .unwrap_or(usize::MAX)
        .min(keep)
        .min(out.len().saturating_sub(3) / 3);
    let first_bad = (0..listed)
        .map(|r| BadWord {
            index: word(3 + 3 * r),
            expected: word(4 + 3 * r),
            actual: word(5 + 3 * r),
        })
        .collect();
    MemErrors {
        checked: words,
        errors: word(0),
        bit_flips: word(1),
        first_bad,
    }
}

/// Scratch of the checks for one `keep`.
struct Scratch {
    keep: usize,
    bad: CudaSlice<u64>,
    out: CudaSlice<u64>,
}

/// A memory-test buffer on a GPU.
pub(crate) struct CudaMemtestOp {
    h: Handle,
    words: usize,
    buf: CudaSlice<u64>,
    /// Blocks of the verify launches.
    grid: u32,
    stats: CudaSlice<u64>,
    scratch: Option<Scratch>,
    fill: Func,
    verify: Func,
    verify_write: Func,
    collect: Func,
    timer: Timer,
}

impl CudaMemtestOp {
    /// Allocates `words` words.
    pub fn new(gpu: &mut Gpu, words: usize) -> DeviceResult<CudaMemtestOp> {
        let [fill, verify, verify_write, collect] = gpu.functions([
            Kernel::MtFill,
            Kernel::MtVerify,
            Kernel::MtVerifyAndWrite,
            Kernel::MtCollect,
        ])?;
        let h = gpu.h.clone();
        let buf = h.alloc::<u64>(words, "the memory-test buffer")?;
        let grid = grid(h.sms, words as u64, MT_TILE_WORDS);
        let stats = h.alloc::<u64>(2 * grid as usize, "memory-test counts")?;
        let timer = h.timer()?;
        Ok(CudaMemtestOp {
            h,
            words,
            buf,
            grid,
            stats,
            scratch: None,
            fill,
            verify,
            verify_write,
            collect,
            timer,
        })
    }

    /// The scratch for `keep`, (re)allocated when `keep` changes.
    fn scratch(&mut self, keep: usize) -> DeviceResult<()> {
        if keep > MAX_KEEP {
            return Err(self.h.failed(
                "checking the memory-test buffer",
                &format!("keep {keep} is above the limit of {MAX_KEEP} bad words"),
            ));
        }
        if self.scratch.as_ref().is_some_and(|s| s.keep == keep) {
            return Ok(());
        }
        self.scratch = None;
        let bad = self
            .h
            .alloc::<u64>(3 * self.grid as usize * keep, "kept bad words")?;
        let out = self.h.alloc::<u64>(3 + 3 * keep, "memory-test result")?;
        self.scratch = Some(Scratch { keep, bad, out });
        Ok(())
    }

    /// Runs one timed check (`verify` or `verify_and_write`, chosen by
    /// `next`), then collects its result.
    fn check(
        &mut self,
        expect: Pattern,
        next: Option<(Pattern, bool)>,
        keep: usize,
    ) -> DeviceResult<(MemErrors, Seconds)> {
        if self.words == 0 {
            return Ok((MemErrors::default(), 0.0));
        }
        self.scratch(keep)?;
        let Some(s) = self.scratch.as_ref() else {
            return Err(self
                .h
                .failed("checking the memory-test buffer", "no scratch"));
        };
        let (h, g, n) = (&self.h, self.grid, self.words as u64);
        let (ek, ep) = encode(expect);
        let keep32 = keep as u32; // keep <= MAX_KEEP
        let (nk, np, desc) = match next {
            Some((p, descending)) => {
                let (k, v) = encode(p);
                (k, v, u32::from(descending))
            }
            None => (0, 0, 0),
        };
        let f = if next.is_some() {
            &self.verify_write
        } else {
            &self.verify
        };
        let t = self.timer.time(h, &f.kernel.describe(), || {
            let mut l = h.launch(f);
            l.ptr(&self.buf).u64(&n).u32(&ek).u64(&ep);
            if next.is_some() {
                l.u32(&nk).u64(&np).u32(&desc);
            }
            l.u32(&keep32).ptr(&self.stats).ptr(&s.bad).run(g)
        })?;
        h.launch(&self.collect)
            .ptr(&self.stats)
            .ptr(&s.bad)
            .u32(&g)
            .u32(&keep32)
            .u32(&desc)
            .ptr(&s.out)
            .run(1)?;
        let what = format!("the result of {}", f.kernel.describe());
        let out = h.download(&s.out, 3 + 3 * keep, &what)?;
        Ok((assemble(&out, n, keep), t))
    }
}

impl MemtestOp for CudaMemtestOp {
    fn words(&self) -> usize {
        self.words
    }

    fn fill(&mut self, pattern: Pattern) -> DeviceResult<Seconds> {
        if self.words == 0 {
            return Ok(0.0);
        }
        let (h, n) = (&self.h, self.words as u64);
        let (kind, param) = encode(pattern);
        let g = grid(h.sms, n, BW_ITEMS_PER_BLOCK);
        self.timer.time_each(h, &self.fill.kernel.describe(), || {
            h.launch(&self.fill)
                .ptr(&self.buf)
                .u64(&n)
                .u32(&kind)
                .u64(&param)
                .run(g)
        })
    }

    fn verify(&mut self, pattern: Pattern, keep: usize) -> DeviceResult<(MemErrors, Seconds)> {
        self.check(pattern, None, keep)
    }

    fn verify_and_write(
        &mut self,
        expect: Pattern,
        next: Pattern,
        descending: bool,
        keep: usize,
    ) -> DeviceResult<(MemErrors, Seconds)> {
        self.check(expect, Some((next, descending)), keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::memtest;

    #[test]
    fn patterns_encode_as_documented() {
        assert_eq!(encode(Pattern::Fixed(0x80)), (0, 0x80));
        assert_eq!(encode(Pattern::Fixed(!0x80)), (0, !0x80));
        let r = |invert| Pattern::Random { seed: 42, invert };
        assert_eq!(encode(r(false)), (1, 42));
        assert_eq!(encode(r(true)), (17, 42));
        let a = |invert| Pattern::AddressInAddress { invert };
        assert_eq!(encode(a(false)), (2, 0));
        assert_eq!(encode(a(true)), (18, 0));
    }

    /// The kernels' pattern word (common.cuh's kiln_pattern_word) for an
    /// encoded pattern, written from kernels/README.md.
    fn kernel_word(kind: u32, param: u64, i: u64) -> u64 {
        let w = match kind & !INVERT {
            0 => param,
            1 => crate::reference::gen::random_u64(param, 11, i),
            _ => i,
        };
        if kind & INVERT != 0 {
            !w
        } else {
            w
        }
    }

    #[test]
    fn encoded_patterns_give_the_same_words_as_the_cpu() {
        for p in [
            Pattern::Fixed(1 << 7),
            Pattern::Fixed(0).inverted(),
            Pattern::Random {
                seed: 5,
                invert: false,
            },
            Pattern::Random {
                seed: 5,
                invert: true,
            },
            Pattern::AddressInAddress { invert: false },
            Pattern::AddressInAddress { invert: true },
        ] {
            let (k, v) = encode(p);
            for i in [0, 1, 77, 1 << 40] {
                assert_eq!(kernel_word(k, v, i), p.word(i), "{} at {i}", p.name());
            }
        }
    }

    /// collect's output for what the CPU reference found.
    fn raw(e: &MemErrors, keep: usize) -> Vec<u64> {
        let mut out = vec![0xdead_beef_u64; 3 + 3 * keep];
        out[0] = e.errors;
        out[1] = e.bit_flips;
        out[2] = e.first_bad.len() as u64;
        for (r, b) in e.first_bad.iter().enumerate() {
            out[3 + 3 * r..6 + 3 * r].copy_from_slice(&[b.index, b.expected, b.actual]);
        }
        out
    }

    #[test]
    fn assembles_what_the_cpu_reference_returns() {
        let p = Pattern::Random {
            seed: 3,
            invert: false,
        };
        let mut buf = vec![0u64; 5000];
        memtest::fill(&mut buf, p);
        for (i, bit) in [(4999, 0), (17, 63), (2500, 5), (18, 1), (3, 9)] {
            buf[i] ^= 1 << bit;
        }
        buf[100] ^= 0b111;
        for keep in [0, 1, 4, 16] {
            let want = memtest::verify(&buf, p, keep);
            assert_eq!(want.errors, 6);
            let got = assemble(&raw(&want, keep), buf.len() as u64, keep);
            assert_eq!(got, want, "keep {keep}");
        }
    }

    #[test]
    fn a_bad_listed_count_is_clamped_not_trusted() {
        let out = [2, 2, 1 << 40, 7, 1, 0, 9, 1, 0];
        let e = assemble(&out, 100, 16);
        assert_eq!(e.first_bad.len(), 2, "no more than out holds");
        assert_eq!(
            assemble(&out, 100, 1).first_bad.len(),
            1,
            "no more than keep"
        );
        assert_eq!(e.first_bad[1].index, 9);
        let empty = assemble(&[], 0, 16);
        assert_eq!(empty, MemErrors::default());
    }
}

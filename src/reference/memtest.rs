//! The pattern engine of kiln's memory test.
//!
//! A GPU or a host whose memory has a weak cell, a stuck bit or a faulty
//! address decoder computes wrong answers silently; ECC hides single-bit
//! faults until they multiply. The memory test writes known patterns to a
//! large buffer of 64-bit words, reads them back and counts every word that
//! differs. This module is the pure part of it: what each pattern word is,
//! how a buffer is filled and checked, and in what order the steps of the
//! algorithm run. The CPU backend runs it on host memory, the simulated GPU
//! backend runs it on small buffers (injecting bit flips between steps), and
//! the CUDA kernel implements the same patterns. Every pattern word is a pure
//! function of (pattern, index), so any backend can produce or check any word
//! without reading another one.
//!
//! What each pattern catches:
//!
//! * **Walking ones** ([`Pattern::Fixed`] with one bit set, every word the
//!   same): a bit stuck at 0 in the lane that is set, a bit stuck at 1 in any
//!   other lane, and a data line shorted to its neighbour. Walking the set
//!   bit over the 64 positions tests every lane in both polarities.
//! * **Moving inversions** (fill `p`; read `p` and write `!p` walking up;
//!   read `!p` and write `p` walking down; read `p`): stuck bits of both
//!   polarities, transition faults (a cell that cannot go 0 -> 1 or
//!   1 -> 0), and coupling faults, where writing one cell disturbs another:
//!   whichever side of the aggressor the victim lies on, one of the two walks
//!   reads the victim after the aggressor was written. Run with all zeros as
//!   `p` it covers every bit in both directions; with a random `p` it also
//!   covers data-dependent (pattern-sensitive) coupling.
//! * **Address in address** (word `i` holds `i`, then `!i`): address decoder
//!   faults. When two addresses reach the same cell, or a write lands on the
//!   wrong word, a pattern that is the same everywhere hides it; a value
//!   unique to each address does not. The inverse sets the high address bits
//!   that the plain pass leaves at 0.
//! * **Random** (a counter-based random word per index): data-dependent
//!   faults in general, with no regular structure for a fault to hide in.
//!
//! Fill and verify split the buffer into chunks of [`CHUNK_WORDS`] words that
//! rayon processes in parallel. Within a chunk the pattern kind is matched
//! once and the words are produced in a tight loop; verification ORs the
//! differences of a whole chunk together and rescans it word by word only
//! when that OR is non-zero, so a clean buffer costs one pass.

use std::collections::VecDeque;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::reference::gen;

/// Generator stream of the words of [`Pattern::Random`].
pub const RANDOM_STREAM: u64 = 11;

/// Generator stream from which [`algorithm`] derives the seeds of its random
/// patterns.
const SEED_STREAM: u64 = 12;

/// Words per parallel chunk (1 MiB). Each chunk is walked in order by one
/// thread; see [`verify_and_write`] for what that means for the global order.
pub const CHUNK_WORDS: usize = 1 << 17;

/// Words per block inside a chunk for [`verify_and_write`]: the differences
/// of one block are kept on the stack (4 KiB) until the block is scanned.
const BLOCK_WORDS: usize = 512;

/// What a memory-test step writes to, or expects in, every word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    /// Every word holds the same value; walking ones uses `Fixed(1 << bit)`.
    Fixed(u64),
    /// Word `i` is `gen::random_u64(seed, RANDOM_STREAM, i)`, inverted
    /// bitwise when `invert` is set.
    Random {
        /// Seed of the generator.
        seed: u64,
        /// Whether every word is bitwise inverted.
        invert: bool,
    },
    /// Word `i` holds its own index `i`, inverted bitwise when `invert` is
    /// set.
    AddressInAddress {
        /// Whether every word is bitwise inverted.
        invert: bool,
    },
}

/// All ones when `invert` is set, else all zeros: XOR it into a word to
/// invert the word conditionally.
#[inline(always)]
fn invert_mask(invert: bool) -> u64 {
    if invert {
        u64::MAX
    } else {
        0
    }
}

impl Pattern {
    /// The word this pattern puts at `index`.
    #[inline]
    pub fn word(self, index: u64) -> u64 {
        match self {
            Pattern::Fixed(x) => x,
            Pattern::Random { seed, invert } => {
                gen::random_u64(seed, RANDOM_STREAM, index) ^ invert_mask(invert)
            }
            Pattern::AddressInAddress { invert } => index ^ invert_mask(invert),
        }
    }

    /// The bitwise complement of this pattern: `Fixed(x)` becomes
    /// `Fixed(!x)`, the others flip `invert`.
    pub fn inverted(self) -> Pattern {
        match self {
            Pattern::Fixed(x) => Pattern::Fixed(!x),
            Pattern::Random { seed, invert } => Pattern::Random {
                seed,
                invert: !invert,
            },
            Pattern::AddressInAddress { invert } => Pattern::AddressInAddress { invert: !invert },
        }
    }

    /// A short human name: "walking-ones bit 5" for a fixed word with one bit
    /// set, "walking-zeros bit 5" for one with one bit clear, "fixed 0x..."
    /// for other fixed words, "random" and "address-in-address", the last two
    /// followed by " inverted" when inverted.
    pub fn name(self) -> String {
        fn suffixed(base: &str, invert: bool) -> String {
            if invert {
                format!("{base} inverted")
            } else {
                base.to_string()
            }
        }
        match self {
            Pattern::Fixed(x) if x.count_ones() == 1 => {
                format!("walking-ones bit {}", x.trailing_zeros())
            }
            Pattern::Fixed(x) if x.count_zeros() == 1 => {
                format!("walking-zeros bit {}", x.trailing_ones())
            }
            Pattern::Fixed(x) => format!("fixed {x:#018x}"),
            Pattern::Random { invert, .. } => suffixed("random", invert),
            Pattern::AddressInAddress { invert } => suffixed("address-in-address", invert),
        }
    }
}

/// Binds `$f` to a closure `Fn(u64) -> u64` that computes the words of
/// `$pattern`, specialised to the pattern's kind, and evaluates `$body` with
/// it. The match on the kind runs once, and `$body` is compiled once per kind
/// with the word computation inlined, so its loops can be vectorised. The
/// closures must agree with [`Pattern::word`] (a test checks it).
macro_rules! with_word_fn {
    ($pattern:expr, $f:ident => $body:expr) => {
        match $pattern {
            Pattern::Fixed(x) => {
                let $f = move |_: u64| x;
                $body
            }
            Pattern::Random { seed, invert } => {
                let mask = invert_mask(invert);
                let $f = move |i: u64| gen::random_u64(seed, RANDOM_STREAM, i) ^ mask;
                $body
            }
            Pattern::AddressInAddress { invert } => {
                let mask = invert_mask(invert);
                let $f = move |i: u64| i ^ mask;
                $body
            }
        }
    };
}

/// A word that did not hold what the pattern put there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadWord {
    /// Index of the word in the buffer.
    pub index: u64,
    /// What the pattern put there.
    pub expected: u64,
    /// What was read back.
    pub actual: u64,
}

/// What one or more checks of a buffer found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemErrors {
    /// Words checked.
    pub checked: u64,
    /// Words that differed from the pattern.
    pub errors: u64,
    /// Differing bits over all bad words (popcount of `expected ^ actual`).
    pub bit_flips: u64,
    /// The bad words with the lowest indices, at most `keep` of them,
    /// ascending by index.
    pub first_bad: Vec<BadWord>,
}

impl MemErrors {
    /// Adds `other` to `self`: counts are summed and `first_bad` keeps the
    /// `keep` lowest-index words of both lists, ascending. When both lists
    /// hold the same index (two checks of the same buffer), the word from
    /// `self` comes first.
    pub fn merge(&mut self, other: MemErrors, keep: usize) {
        self.checked = self.checked.saturating_add(other.checked);
        self.errors = self.errors.saturating_add(other.errors);
        self.bit_flips = self.bit_flips.saturating_add(other.bit_flips);
        let in_order = match (self.first_bad.last(), other.first_bad.first()) {
            (Some(last), Some(first)) => last.index < first.index,
            _ => true,
        };
        self.first_bad.extend(other.first_bad);
        if !in_order {
            // A stable sort of two sorted runs is a linear merge.
            self.first_bad.sort_by_key(|b| b.index);
        }
        self.first_bad.truncate(keep);
    }

    /// Whether no word differed (also true when nothing was checked).
    pub fn is_clean(&self) -> bool {
        self.errors == 0
    }
}

/// Counts bad words of one chunk in the order they are met, keeping the
/// `keep` lowest indices. Words are met in ascending order, or in descending
/// order when `descending` is set.
struct Collector {
    keep: usize,
    descending: bool,
    errors: u64,
    bit_flips: u64,
    /// Ascending walks: ascending indices. Descending walks: descending
    /// indices, so the highest kept word is at the front.
    bad: VecDeque<BadWord>,
}

impl Collector {
    fn new(keep: usize, descending: bool) -> Collector {
        Collector {
            keep,
            descending,
            errors: 0,
            bit_flips: 0,
            bad: VecDeque::new(),
        }
    }

    #[cold]
    #[inline(never)]
    fn note(&mut self, index: u64, expected: u64, actual: u64) {
        self.errors += 1;
        self.bit_flips += u64::from((expected ^ actual).count_ones());
        if self.keep == 0 {
            return;
        }
        let word = BadWord {
            index,
            expected,
            actual,
        };
        if self.bad.len() < self.keep {
            self.bad.push_back(word);
        } else if self.descending {
            // This word is lower than every kept one: drop the highest.
            self.bad.pop_front();
            self.bad.push_back(word);
        }
    }

    fn finish(self, checked: usize) -> MemErrors {
        let mut first_bad = Vec::from(self.bad);
        if self.descending {
            first_bad.reverse();
        }
        MemErrors {
            checked: checked as u64,
            errors: self.errors,
            bit_flips: self.bit_flips,
            first_bad,
        }
    }
}

/// Index of the first word of chunk number `chunk`.
#[inline]
fn chunk_base(chunk: usize) -> u64 {
    chunk as u64 * CHUNK_WORDS as u64
}

/// Merges per-chunk results, in any grouping rayon picks.
fn merged(keep: usize) -> impl Fn(MemErrors, MemErrors) -> MemErrors + Sync + Send {
    move |mut a, b| {
        a.merge(b, keep);
        a
    }
}

#[inline(always)]
fn fill_chunk(chunk: &mut [u64], base: u64, f: impl Fn(u64) -> u64) {
    for (j, w) in chunk.iter_mut().enumerate() {
        *w = f(base + j as u64);
    }
}

#[inline(always)]
fn verify_chunk(chunk: &[u64], base: u64, f: impl Fn(u64) -> u64, keep: usize) -> MemErrors {
    let mut found = Collector::new(keep, false);
    let diff = chunk
        .iter()
        .enumerate()
        .fold(0u64, |acc, (j, &w)| acc | (w ^ f(base + j as u64)));
    if diff != 0 {
        for (j, &actual) in chunk.iter().enumerate() {
            let index = base + j as u64;
            let expected = f(index);
            if actual != expected {
                found.note(index, expected, actual);
            }
        }
    }
    found.finish(chunk.len())
}

/// One block of a moving-inversions walk: each word is read, its difference
/// from `expect` stored in `diffs`, and then `next` written to it, in the
/// direction of the walk. Returns the OR of all differences.
#[inline(always)]
fn verify_and_write_block(
    block: &mut [u64],
    diffs: &mut [u64],
    base: u64,
    expect: impl Fn(u64) -> u64,
    next: impl Fn(u64) -> u64,
    descending: bool,
) -> u64 {
    let mut any = 0u64;
    let mut one = |j: usize, w: &mut u64, d: &mut u64| {
        let index = base + j as u64;
        let diff = *w ^ expect(index);
        *d = diff;
        any |= diff;
        *w = next(index);
    };
    let words = block.iter_mut().zip(diffs.iter_mut()).enumerate();
    if descending {
        words.rev().for_each(|(j, (w, d))| one(j, w, d));
    } else {
        words.for_each(|(j, (w, d))| one(j, w, d));
    }
    any
}

#[inline(always)]
fn verify_and_write_chunk(
    chunk: &mut [u64],
    base: u64,
    expect: impl Fn(u64) -> u64 + Copy,
    next: impl Fn(u64) -> u64 + Copy,
    descending: bool,
    keep: usize,
) -> MemErrors {
    let len = chunk.len();
    let mut found = Collector::new(keep, descending);
    let mut diffs = [0u64; BLOCK_WORDS];
    let mut step = |b: usize, block: &mut [u64]| {
        let block_base = base + (b * BLOCK_WORDS) as u64;
        let diffs = &mut diffs[..block.len()];
        let any = verify_and_write_block(block, diffs, block_base, expect, next, descending);
        if any != 0 {
            // Record in walk order, so the collector keeps the lowest indices.
            let mut note = |j: usize, diff: u64| {
                if diff != 0 {
                    let index = block_base + j as u64;
                    let expected = expect(index);
                    found.note(index, expected, expected ^ diff);
                }
            };
            let seen = diffs.iter().enumerate();
            if descending {
                seen.rev().for_each(|(j, &d)| note(j, d));
            } else {
                seen.for_each(|(j, &d)| note(j, d));
            }
        }
    };
    let blocks = chunk.chunks_mut(BLOCK_WORDS).enumerate();
    if descending {
        blocks.rev().for_each(|(b, block)| step(b, block));
    } else {
        blocks.for_each(|(b, block)| step(b, block));
    }
    found.finish(len)
}

/// Writes `pattern` to every word of `buf`, chunks in parallel.
pub fn fill(buf: &mut [u64], pattern: Pattern) {
    buf.par_chunks_mut(CHUNK_WORDS)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = chunk_base(c);
            with_word_fn!(pattern, f => fill_chunk(chunk, base, f));
        });
}

/// Checks every word of `buf` against `pattern`, chunks in parallel, and
/// keeps the `keep` lowest-index bad words.
pub fn verify(buf: &[u64], pattern: Pattern, keep: usize) -> MemErrors {
    buf.par_chunks(CHUNK_WORDS)
        .enumerate()
        .map(|(c, chunk)| {
            let base = chunk_base(c);
            with_word_fn!(pattern, f => verify_chunk(chunk, base, f, keep))
        })
        .reduce(MemErrors::default, merged(keep))
}

/// Moving inversions step: for each word, checks that it holds
/// `expect.word(i)` and then writes `next.word(i)` to it (also when the check
/// failed), keeping the `keep` lowest-index bad words.
///
/// Within each chunk of [`CHUNK_WORDS`] words the walk goes upward, or
/// downward when `descending` is set; the chunks are processed in parallel,
/// so the order is per chunk, not global: a coupling fault between cells in
/// different chunks is caught only when the threads happen to reach the two
/// cells in the right order. On a host with caches the order is also a
/// logical one: the memory sees whole cache lines, written back later.
pub fn verify_and_write(
    buf: &mut [u64],
    expect: Pattern,
    next: Pattern,
    descending: bool,
    keep: usize,
) -> MemErrors {
    buf.par_chunks_mut(CHUNK_WORDS)
        .enumerate()
        .map(|(c, chunk)| {
            let base = chunk_base(c);
            if next == expect.inverted() {
                // The moving-inversions case: compute each word once.
                with_word_fn!(expect, e => {
                    verify_and_write_chunk(chunk, base, e, move |i| !e(i), descending, keep)
                })
            } else {
                with_word_fn!(expect, e => with_word_fn!(next, n => {
                    verify_and_write_chunk(chunk, base, e, n, descending, keep)
                }))
            }
        })
        .reduce(MemErrors::default, merged(keep))
}

/// One step of a memory-test algorithm, as the shared runner sequences it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Write the pattern to every word.
    Fill(Pattern),
    /// Check every word against the pattern.
    Verify(Pattern),
    /// Check every word against `expect` and write `next` to it, walking
    /// each chunk upward or downward (see [`verify_and_write`]).
    VerifyAndWrite {
        /// What every word should hold.
        expect: Pattern,
        /// What every word gets once checked.
        next: Pattern,
        /// Whether each chunk is walked from its last word down.
        descending: bool,
    },
}

/// The seed of random pattern number `n` of a run with `seed`.
fn derived_seed(seed: u64, n: u64) -> u64 {
    gen::random_u64(seed, SEED_STREAM, n)
}

/// Appends a moving inversions phase over base pattern `p`: fill `p`; verify
/// `p` and write `!p` upward; verify `!p` and write `p` downward; verify `p`.
fn moving_inversions(steps: &mut Vec<(String, Step)>, phase: &str, p: Pattern) {
    let q = p.inverted();
    for step in [
        Step::Fill(p),
        Step::VerifyAndWrite {
            expect: p,
            next: q,
            descending: false,
        },
        Step::VerifyAndWrite {
            expect: q,
            next: p,
            descending: true,
        },
        Step::Verify(p),
    ] {
        steps.push((phase.to_string(), step));
    }
}

/// The full algorithm, as (phase name, step) pairs in the order they run:
///
/// 1. walking ones over `walking_bits` (fill and verify `Fixed(1 << bit)`
///    for each; positions of 64 and above are skipped);
/// 2. moving inversions with all zeros as the base pattern, then with a
///    random base pattern (fill `p`; verify `p` and write `!p` upward;
///    verify `!p` and write `p` downward; verify `p`);
/// 3. address in address (fill and verify it, then its inverse);
/// 4. `random_passes` random patterns (fill and verify each).
///
/// The seeds of the random patterns are derived from `seed`, so a run is
/// reproducible from it.
pub fn algorithm(walking_bits: &[u32], random_passes: u32, seed: u64) -> Vec<(String, Step)> {
    let mut steps = Vec::new();
    for &bit in walking_bits {
        let Some(word) = 1u64.checked_shl(bit) else {
            continue;
        };
        let p = Pattern::Fixed(word);
        steps.push((p.name(), Step::Fill(p)));
        steps.push((p.name(), Step::Verify(p)));
    }
    moving_inversions(&mut steps, "moving-inversions zeros", Pattern::Fixed(0));
    let random = Pattern::Random {
        seed: derived_seed(seed, 0),
        invert: false,
    };
    moving_inversions(&mut steps, "moving-inversions random", random);
    let address = Pattern::AddressInAddress { invert: false };
    for p in [address, address.inverted()] {
        steps.push((p.name(), Step::Fill(p)));
        steps.push((p.name(), Step::Verify(p)));
    }
    for pass in 1..=random_passes {
        let p = Pattern::Random {
            seed: derived_seed(seed, u64::from(pass)),
            invert: false,
        };
        let phase = format!("random pass {pass}");
        steps.push((phase.clone(), Step::Fill(p)));
        steps.push((phase, Step::Verify(p)));
    }
    steps
}

/// Applies one step to a host buffer (used by the CPU backend and by tests),
/// keeping the `keep` lowest-index bad words. A fill checks nothing and
/// returns `MemErrors::default()`.
pub fn apply(buf: &mut [u64], step: Step, keep: usize) -> MemErrors {
    match step {
        Step::Fill(p) => {
            fill(buf, p);
            MemErrors::default()
        }
        Step::Verify(p) => verify(buf, p, keep),
        Step::VerifyAndWrite {
            expect,
            next,
            descending,
        } => verify_and_write(buf, expect, next, descending, keep),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two full chunks and a partial one, so chunk boundaries are crossed.
    const LEN: usize = 2 * CHUNK_WORDS + 777;

    fn patterns() -> Vec<Pattern> {
        vec![
            Pattern::Fixed(0),
            Pattern::Fixed(u64::MAX),
            Pattern::Fixed(1 << 5),
            Pattern::Fixed(0x5555_5555_5555_5555),
            Pattern::Random {
                seed: 7,
                invert: false,
            },
            Pattern::Random {
                seed: 7,
                invert: true,
            },
            Pattern::AddressInAddress { invert: false },
            Pattern::AddressInAddress { invert: true },
        ]
    }

    /// Indices at both ends of each chunk.
    fn edge_indices() -> Vec<usize> {
        vec![0, 1, CHUNK_WORDS - 1, CHUNK_WORDS, 2 * CHUNK_WORDS, LEN - 1]
    }

    #[test]
    fn words_follow_the_definition() {
        let r = Pattern::Random {
            seed: 3,
            invert: false,
        };
        assert_eq!(r.word(9), gen::random_u64(3, 11, 9));
        assert_eq!(r.inverted().word(9), !gen::random_u64(3, 11, 9));
        assert_eq!(Pattern::AddressInAddress { invert: false }.word(42), 42);
        assert_eq!(Pattern::AddressInAddress { invert: true }.word(42), !42);
        assert_eq!(Pattern::Fixed(0xF0).word(1234), 0xF0);
        assert_eq!(Pattern::Fixed(0xF0).inverted(), Pattern::Fixed(!0xF0));
        for p in patterns() {
            assert_eq!(p.inverted().inverted(), p);
            assert_eq!(p.inverted().word(77), !p.word(77));
        }
    }

    #[test]
    fn fill_writes_exactly_the_pattern_words() {
        let mut buf = vec![0u64; LEN];
        for p in patterns() {
            fill(&mut buf, p);
            for i in edge_indices().into_iter().chain([12_345, 200_001]) {
                assert_eq!(buf[i], p.word(i as u64), "{} at {i}", p.name());
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(Pattern::Fixed(1 << 5).name(), "walking-ones bit 5");
        assert_eq!(Pattern::Fixed(!(1 << 63)).name(), "walking-zeros bit 63");
        assert_eq!(Pattern::Fixed(0).name(), "fixed 0x0000000000000000");
        let r = Pattern::Random {
            seed: 1,
            invert: false,
        };
        assert_eq!(r.name(), "random");
        assert_eq!(r.inverted().name(), "random inverted");
        let a = Pattern::AddressInAddress { invert: true };
        assert_eq!(a.name(), "address-in-address inverted");
    }

    #[test]
    fn every_pattern_verifies_clean_after_fill() {
        let mut buf = vec![0u64; LEN];
        for p in patterns() {
            fill(&mut buf, p);
            let e = verify(&buf, p, 8);
            assert!(e.is_clean(), "{}: {e:?}", p.name());
            assert_eq!(e.checked, LEN as u64);
            assert_eq!(e.bit_flips, 0);
            assert!(e.first_bad.is_empty());
        }
    }

    #[test]
    fn a_single_flip_is_caught_exactly_for_every_pattern() {
        let mut buf = vec![0u64; LEN];
        for p in patterns() {
            fill(&mut buf, p);
            for i in edge_indices() {
                buf[i] ^= 1 << 37;
                let e = verify(&buf, p, 4);
                let want = BadWord {
                    index: i as u64,
                    expected: p.word(i as u64),
                    actual: p.word(i as u64) ^ (1 << 37),
                };
                assert_eq!(e.errors, 1, "{} at {i}", p.name());
                assert_eq!(e.bit_flips, 1);
                assert_eq!(e.checked, LEN as u64);
                assert_eq!(e.first_bad, vec![want]);
                buf[i] ^= 1 << 37;
            }
        }
    }

    #[test]
    fn flips_in_different_chunks_are_counted_and_ascending() {
        let p = Pattern::Random {
            seed: 99,
            invert: false,
        };
        let mut buf = vec![0u64; LEN];
        fill(&mut buf, p);
        let (lo, hi) = (100, 2 * CHUNK_WORDS + 5);
        buf[hi] ^= 0b11; // two bits in one word
        buf[lo] ^= 1 << 63;
        let e = verify(&buf, p, 10);
        assert_eq!(e.errors, 2);
        assert_eq!(e.bit_flips, 3);
        let idx: Vec<u64> = e.first_bad.iter().map(|b| b.index).collect();
        assert_eq!(idx, vec![lo as u64, hi as u64]);
    }

    #[test]
    fn keep_limits_first_bad_but_not_the_counts() {
        let p = Pattern::AddressInAddress { invert: false };
        let mut buf = vec![0u64; LEN];
        fill(&mut buf, p);
        let bad = [
            3usize,
            70_000,
            CHUNK_WORDS + 1,
            2 * CHUNK_WORDS + 9,
            LEN - 2,
        ];
        for &i in bad.iter().rev() {
            buf[i] ^= 1;
        }
        for keep in [0, 1, 3, 5, 100] {
            let e = verify(&buf, p, keep);
            assert_eq!(e.errors, bad.len() as u64);
            assert_eq!(e.bit_flips, bad.len() as u64);
            let idx: Vec<u64> = e.first_bad.iter().map(|b| b.index).collect();
            let want: Vec<u64> = bad.iter().take(keep).map(|&i| i as u64).collect();
            assert_eq!(idx, want, "keep {keep}");
        }
    }

    #[test]
    fn verify_and_write_catches_corruption_and_leaves_next() {
        let expect = Pattern::Random {
            seed: 5,
            invert: false,
        };
        let bad = [10usize, 11, CHUNK_WORDS + 600, LEN - 1];
        let nexts = [
            Pattern::AddressInAddress { invert: true },
            expect.inverted(),
        ];
        for (next, descending) in nexts.into_iter().flat_map(|n| [(n, false), (n, true)]) {
            for keep in [0, 2, 10] {
                let mut buf = vec![0u64; LEN];
                fill(&mut buf, expect);
                for &i in &bad {
                    buf[i] ^= 1 << (i % 64);
                }
                let e = verify_and_write(&mut buf, expect, next, descending, keep);
                assert_eq!(e.checked, LEN as u64);
                assert_eq!(e.errors, bad.len() as u64, "descending {descending}");
                assert_eq!(e.bit_flips, bad.len() as u64);
                let want: Vec<BadWord> = bad
                    .iter()
                    .take(keep)
                    .map(|&i| BadWord {
                        index: i as u64,
                        expected: expect.word(i as u64),
                        actual: expect.word(i as u64) ^ (1 << (i % 64)),
                    })
                    .collect();
                assert_eq!(e.first_bad, want, "descending {descending} keep {keep}");
                assert!(verify(&buf, next, 1).is_clean(), "descending {descending}");
            }
        }
    }

    #[test]
    fn verify_and_write_descending_keeps_lowest_within_a_chunk() {
        // Many errors in one chunk: the descending walk meets the highest
        // first but must keep the lowest.
        let p = Pattern::Fixed(0);
        let mut buf = vec![0u64; 3000];
        fill(&mut buf, p);
        for i in (0..3000).step_by(7) {
            buf[i] = 1;
        }
        let e = verify_and_write(&mut buf, p, p.inverted(), true, 5);
        assert_eq!(e.errors, 3000_u64.div_ceil(7));
        let idx: Vec<u64> = e.first_bad.iter().map(|b| b.index).collect();
        assert_eq!(idx, vec![0, 7, 14, 21, 28]);
    }

    /// Runs `steps` through `apply`, calling `after` on the buffer after each
    /// step (to model a faulty cell), and returns the summed errors.
    fn run(
        buf: &mut [u64],
        steps: &[(String, Step)],
        after: impl Fn(&mut [u64]),
    ) -> (MemErrors, Vec<String>) {
        let mut total = MemErrors::default();
        let mut failed = Vec::new();
        for (phase, step) in steps {
            let e = apply(buf, *step, 16);
            if !e.is_clean() && !failed.contains(phase) {
                failed.push(phase.clone());
            }
            total.merge(e, 16);
            after(buf);
        }
        (total, failed)
    }

    #[test]
    fn the_algorithm_is_clean_on_good_memory() {
        let steps = algorithm(&[0, 17, 63, 64, 1000], 2, 1234);
        let walking: Vec<&String> = steps
            .iter()
            .filter(|(n, _)| n.starts_with("walking-ones"))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(walking.len(), 6, "bits 64 and 1000 are skipped");
        assert!(steps.iter().any(|(n, _)| n == "random pass 2"));
        assert!(matches!(steps.first(), Some((_, Step::Fill(_)))));
        let mut buf = vec![0u64; CHUNK_WORDS + 1000];
        let (e, failed) = run(&mut buf, &steps, |_| {});
        assert!(e.is_clean(), "{failed:?}");
        let checks = steps
            .iter()
            .filter(|(_, s)| !matches!(s, Step::Fill(_)))
            .count();
        assert_eq!(e.checked, (checks * buf.len()) as u64);
    }

    #[test]
    fn the_algorithm_finds_stuck_bits() {
        let steps = algorithm(&[0, 9, 40], 1, 77);
        let at = CHUNK_WORDS + 3;
        for stuck_high in [false, true] {
            let mut buf = vec![0u64; CHUNK_WORDS + 1000];
            let (e, failed) = run(&mut buf, &steps, |b| {
                if stuck_high {
                    b[at] |= 1 << 9;
                } else {
                    b[at] &= !(1 << 9);
                }
            });
            assert!(e.errors > 0, "stuck high {stuck_high}");
            assert_eq!(e.errors, e.bit_flips, "one bit per bad word");
            assert!(e.first_bad.iter().all(|b| b.index == at as u64));
            assert!(e
                .first_bad
                .iter()
                .all(|b| (b.expected ^ b.actual) == 1 << 9));
            assert!(failed.iter().any(|p| p.starts_with("moving-inversions")));
            // Walking ones sees a stuck-at-0 only in its own lane, and a
            // stuck-at-1 in every other lane.
            let bit9 = failed.iter().any(|p| p == "walking-ones bit 9");
            let bit0 = failed.iter().any(|p| p == "walking-ones bit 0");
            assert_eq!((bit9, bit0), (!stuck_high, stuck_high));
        }
    }

    #[test]
    fn merge_keeps_the_lowest_indices() {
        let w = |index| BadWord {
            index,
            expected: 0,
            actual: 1,
        };
        let mut a = MemErrors {
            checked: 10,
            errors: 3,
            bit_flips: 4,
            first_bad: vec![w(2), w(8), w(30)],
        };
        let b = MemErrors {
            checked: 5,
            errors: 2,
            bit_flips: 2,
            first_bad: vec![w(1), w(9)],
        };
        a.merge(b.clone(), 3);
        assert_eq!(a.first_bad, vec![w(1), w(2), w(8)]);
        assert_eq!((a.checked, a.errors, a.bit_flips), (15, 5, 6));
        let mut c = MemErrors::default();
        c.merge(b, 0);
        assert!(c.first_bad.is_empty());
        assert_eq!(c.errors, 2);
        assert!(!c.is_clean());
        assert!(MemErrors::default().is_clean());
    }

    #[test]
    fn address_in_address_catches_swapped_words() {
        let mut buf = vec![0u64; LEN];
        let (a, b) = (500, CHUNK_WORDS + 500);
        for p in [
            Pattern::AddressInAddress { invert: false },
            Pattern::AddressInAddress { invert: true },
        ] {
            fill(&mut buf, p);
            buf.swap(a, b);
            let e = verify(&buf, p, 4);
            assert_eq!(e.errors, 2);
            let got: Vec<(u64, u64, u64)> = e
                .first_bad
                .iter()
                .map(|w| (w.index, w.expected, w.actual))
                .collect();
            let (a, b) = (a as u64, b as u64);
            assert_eq!(
                got,
                vec![(a, p.word(a), p.word(b)), (b, p.word(b), p.word(a))]
            );
        }
        // A pattern that is the same everywhere cannot see the swap.
        fill(&mut buf, Pattern::Fixed(0xAAAA));
        buf.swap(a, b);
        assert!(verify(&buf, Pattern::Fixed(0xAAAA), 4).is_clean());
    }

    #[test]
    fn apply_fill_checks_nothing() {
        let mut buf = vec![7u64; 100];
        let e = apply(&mut buf, Step::Fill(Pattern::Fixed(3)), 4);
        assert_eq!(e, MemErrors::default());
        assert!(buf.iter().all(|&w| w == 3));
        assert!(verify(&[], Pattern::Fixed(3), 4).is_clean());
    }
}

//! Double SHA-256 over an 80-byte block header, the scheme Bitcoin mining
//! uses: the job, what a scan of a nonce range computes and reports, and the
//! independent reference digest. The implementations are in `scalar`
//! (portable) and `shani` (the x86-64 SHA extensions); the hashing workload
//! (src/workload/hash.rs) verifies device results against these definitions.
//!
//! The scheme, per nonce (a `u32` written little-endian at header bytes
//! 76..80):
//! - the first 64 header bytes never change, so their compression (the
//!   [`Midstate`]) is done once per job;
//! - compression 1 finishes the first hash: header bytes 64..80 (the nonce
//!   last), the 0x80 padding byte, zeros and the 640-bit message length;
//! - compression 2 is the second hash: the 32-byte first digest, padding and
//!   the 256-bit length, from the standard initial state.
//!
//! That is [`COMPRESSIONS_PER_NONCE`] = 2 compressions per nonce. The hot path
//! is our own SHA-256 in two implementations ([`HashImpl`]), chosen at run
//! time by [`best_impl`]: the x86-64 SHA extensions (SHA-NI) with two
//! independent nonces interleaved where the CPU has them, else a portable
//! scalar one (fully unrolled rounds). Both precompute everything that does
//! not depend on the nonce, allocate nothing per nonce and give bit-identical
//! results. The `sha2` crate serves only as the independent reference that
//! the hashing workload's `verify_scan` checks device results against.
//!
//! What a scan reports ([`ScanResult`]): the number of nonces hashed, the
//! number of "hits" (digests with at least `target_zero_bits` leading zero
//! bits in Bitcoin's display order, see [`leading_zero_bits`]), the smallest
//! [`MAX_HITS`] hit nonces, an XOR fold of every digest (a cheap fingerprint
//! of the whole range that two runs over the same nonces must reproduce), and
//! full digests of every `sample_every`-th nonce. The host verifies a result
//! by recomputing only the hits and the samples, never the whole range.

use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::reference::gen;

mod scalar;
#[cfg(target_arch = "x86_64")]
mod shani;

use scalar::{be_word, block_words, compress, scan_scalar, words_to_bytes, Prepared, IV};

/// Compressions per nonce of the scheme (the second block of the first hash,
/// and the single block of the second hash), for reporting compressions/s.
pub const COMPRESSIONS_PER_NONCE: u64 = 2;

/// Max hits a scan keeps (the smallest nonces); [`ScanResult::hit_count`]
/// keeps counting past it.
pub const MAX_HITS: usize = 64;

/// Generator stream the header bytes are drawn from.
const HEADER_STREAM: u64 = 5;

/// Nonces per rayon task in [`scan_parallel`].
pub(crate) const PARALLEL_CHUNK: u32 = 1 << 16;

/// One nonce search: the header, what counts as a hit, and how often a full
/// digest is sampled for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashJob {
    /// The 80-byte block header; bytes 76..80 are overwritten by each nonce.
    pub header: [u8; 80],
    /// Bits of a digest (in Bitcoin's display order, see
    /// [`leading_zero_bits`]) that must be zero for a nonce to count as a hit.
    /// 0 makes every nonce a hit; above 256 none is.
    pub target_zero_bits: u32,
    /// A scan returns the full digest of every nonce that is a multiple of
    /// this; 0 disables sampling.
    pub sample_every: u32,
}

impl HashJob {
    /// A job whose header bytes 0..76 come from the generator
    /// (`gen::random_u64(seed, 5, i)` for i = 0..10, little-endian bytes, cut
    /// to 76) and whose nonce bytes 76..80 are zero.
    pub fn from_seed(seed: u64, target_zero_bits: u32, sample_every: u32) -> HashJob {
        let mut header = [0u8; 80];
        for (i, chunk) in header[..76].chunks_mut(8).enumerate() {
            let word = gen::random_u64(seed, HEADER_STREAM, i as u64).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        HashJob {
            header,
            target_zero_bits,
            sample_every,
        }
    }

    /// The header with `nonce` written little-endian at bytes 76..80.
    fn header_with_nonce(&self, nonce: u32) -> [u8; 80] {
        let mut h = self.header;
        h[76..].copy_from_slice(&nonce.to_le_bytes());
        h
    }
}

/// What a scan of a nonce range produced. Ranges merge with
/// [`ScanResult::merge`], so any split of a range over threads, chunks or
/// devices gives the same result as one serial scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    /// Nonces hashed.
    pub nonces: u64,
    /// Nonces whose double SHA-256 digest has at least `target_zero_bits`
    /// leading zero bits.
    pub hit_count: u64,
    /// The smallest [`MAX_HITS`] hit nonces, ascending.
    pub hits: Vec<u32>,
    /// XOR over every hashed nonce of the digest's eight big-endian `u32`
    /// words (word i is digest bytes 4i..4i+4).
    pub fold: [u32; 8],
    /// `(nonce, digest)` for every hashed nonce with
    /// `nonce % sample_every == 0`, ascending by nonce.
    pub samples: Vec<(u32, [u8; 32])>,
}

impl ScanResult {
    /// Combines the result of a disjoint range into this one: counts add,
    /// folds XOR, the [`MAX_HITS`] smallest hits are kept and samples stay
    /// sorted. Order does not matter, but merging adjacent ranges in
    /// ascending order is cheapest (a plain append).
    pub fn merge(&mut self, other: ScanResult) {
        self.nonces = self.nonces.saturating_add(other.nonces);
        self.hit_count = self.hit_count.saturating_add(other.hit_count);
        for (f, o) in self.fold.iter_mut().zip(other.fold) {
            *f ^= o;
        }
        self.hits = merge_sorted(std::mem::take(&mut self.hits), other.hits, |&n| n);
        self.hits.truncate(MAX_HITS);
        self.samples = merge_sorted(std::mem::take(&mut self.samples), other.samples, |s| s.0);
    }
}

/// Merges two vectors sorted by `key` into one sorted vector.
fn merge_sorted<T, F: Fn(&T) -> u32>(a: Vec<T>, b: Vec<T>, key: F) -> Vec<T> {
    match (a.last(), b.first()) {
        (None, _) => return b,
        (_, None) => return a,
        (Some(x), Some(y)) if key(x) <= key(y) => {
            let mut a = a;
            a.extend(b);
            return a;
        }
        _ => {}
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => key(x) <= key(y),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_a { a.next() } else { b.next() };
        out.extend(next);
    }
    out
}

/// The 8-word SHA-256 state after compressing the header's first 64 bytes.
/// It does not depend on the nonce, so a scan computes it once; GPU backends
/// upload [`Midstate::state`] instead of the first header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Midstate {
    /// The chaining value after block 1 of the first hash.
    pub state: [u32; 8],
}

/// The midstate of `header`: the standard initial state compressed with
/// header bytes 0..64.
pub fn midstate(header: &[u8; 80]) -> Midstate {
    let mut block = [0u32; 16];
    for (w, b) in block.iter_mut().zip(header[..64].chunks_exact(4)) {
        *w = be_word(b);
    }
    let mut state = IV;
    compress(&mut state, &block);
    Midstate { state }
}

/// Double SHA-256 of the header with `nonce` written little-endian at bytes
/// 76..80 (whatever `header` holds there is ignored), using the midstate: two
/// compressions, the second block of the first hash and the single block of
/// the second hash. The digest is in standard byte order (Bitcoin displays it
/// reversed).
pub fn double_sha256(mid: &Midstate, header: &[u8; 80], nonce: u32) -> [u8; 32] {
    words_to_bytes(&Prepared::new(mid, header).digest(nonce))
}

/// SHA-256 of any message with this module's own implementation (the one the
/// scan uses), for the published test vectors.
pub fn sha256(message: &[u8]) -> [u8; 32] {
    let mut state = IV;
    let mut blocks = message.chunks_exact(64);
    for block in &mut blocks {
        compress(&mut state, &block_words(block));
    }
    // Padding: 0x80, zeros, then the message length in bits as a big-endian
    // u64, filling one block or, when fewer than 9 bytes remain, two.
    let rest = blocks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() < 56 { 64 } else { 128 };
    let bits = (message.len() as u64).wrapping_mul(8);
    tail[tail_len - 8..tail_len].copy_from_slice(&bits.to_be_bytes());
    for block in tail[..tail_len].chunks_exact(64) {
        compress(&mut state, &block_words(block));
    }
    words_to_bytes(&state)
}

/// Leading zero bits of a digest as Bitcoin displays it.
///
/// Convention: Bitcoin prints (and compares against its target) a block hash
/// as a 256-bit little-endian number, i.e. the digest bytes reversed, byte 31
/// first. A valid block hash therefore reads `0000...` and this counts its
/// leading zero bits: the zero bits of byte 31 from its most significant bit,
/// then byte 30, and so on. The genesis block's digest
/// (`000000000019d668...` displayed) has 43. An all-zero digest has 256.
pub fn leading_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for &byte in digest.iter().rev() {
        if byte != 0 {
            return bits + byte.leading_zeros();
        }
        bits += 8;
    }
    bits
}

/// [`leading_zero_bits`] of a digest given as its eight big-endian words.
#[inline(always)]
fn leading_zero_bits_words(words: &[u32; 8]) -> u32 {
    let mut bits = 0;
    for &w in words.iter().rev() {
        // Word w holds digest bytes 4i..4i+4; displayed reversed, its last
        // byte comes first, which is the byte-swapped word read big-endian.
        let shown = w.swap_bytes();
        if shown != 0 {
            return bits + shown.leading_zeros();
        }
        bits += 32;
    }
    bits
}

/// The nonce range a scan of `count` nonces from `start` covers, as `u64`
/// bounds `[start, end)`: `end` is clamped to 2^32, so the range stops after
/// nonce `u32::MAX` instead of wrapping around.
pub(crate) fn clamped_range(start: u32, count: u32) -> (u64, u64) {
    let start = u64::from(start);
    let end = (start + u64::from(count)).min(1 << 32);
    (start, end)
}

/// Which implementation of the per-nonce double SHA-256 a scan runs. Every
/// implementation produces bit-identical [`ScanResult`]s; they differ only in
/// speed and in the CPUs they run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashImpl {
    /// The portable scalar code: fully unrolled rounds, available everywhere.
    Scalar,
    /// The x86-64 SHA extensions (`sha256rnds2`, `sha256msg1`,
    /// `sha256msg2`), several independent nonces interleaved to hide the
    /// round instruction's latency. Needs a CPU with SHA-NI (and SSSE3,
    /// SSE4.1); never available off x86-64.
    ShaNi,
}

impl HashImpl {
    /// Every implementation, fastest-preferred last.
    pub const ALL: [HashImpl; 2] = [HashImpl::Scalar, HashImpl::ShaNi];

    /// Short name for reports: "scalar" or "sha-ni".
    pub fn name(self) -> &'static str {
        match self {
            HashImpl::Scalar => "scalar",
            HashImpl::ShaNi => "sha-ni",
        }
    }

    /// Whether this CPU can run the implementation (detected at run time).
    pub fn is_available(self) -> bool {
        match self {
            HashImpl::Scalar => true,
            HashImpl::ShaNi => sha_ni_detected(),
        }
    }
}

/// Whether the CPU has every feature the SHA-NI path is compiled for.
fn sha_ni_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The fastest implementation this CPU runs, detected once and cached:
/// SHA-NI where available, scalar otherwise. [`scan_range`] and
/// [`scan_parallel`] use it.
pub fn best_impl() -> HashImpl {
    static BEST: OnceLock<HashImpl> = OnceLock::new();
    *BEST.get_or_init(|| {
        if HashImpl::ShaNi.is_available() {
            HashImpl::ShaNi
        } else {
            HashImpl::Scalar
        }
    })
}

/// [`HashImpl::name`] of [`best_impl`], for reports.
pub fn impl_name() -> &'static str {
    best_impl().name()
}

/// Serial scan of nonces `[start, start + count)`, the building block every
/// backend runs per thread or chunk, with [`best_impl`].
///
/// The range never wraps: it is clamped to end after nonce `u32::MAX`, so
/// near the top fewer than `count` nonces are hashed and
/// [`ScanResult::nonces`] says how many. `mid` must be [`midstate`] of
/// `job.header`.
pub fn scan_range(job: &HashJob, mid: &Midstate, start: u32, count: u32) -> ScanResult {
    scan_range_with(best_impl(), job, mid, start, count)
}

/// [`scan_range`] with a chosen implementation; the result is the same for
/// every implementation.
///
/// # Panics
/// If `imp` is not available on this CPU ([`HashImpl::is_available`]).
pub fn scan_range_with(
    imp: HashImpl,
    job: &HashJob,
    mid: &Midstate,
    start: u32,
    count: u32,
) -> ScanResult {
    let (lo, hi) = clamped_range(start, count);
    match imp {
        HashImpl::Scalar => scan_scalar(job, mid, lo, hi),
        HashImpl::ShaNi => scan_sha_ni(job, mid, lo, hi),
    }
}

/// [`scan_range_with`] of the SHA-NI implementation over `[lo, hi)`,
/// hi <= 2^32, after checking that the CPU runs it.
#[cfg(target_arch = "x86_64")]
fn scan_sha_ni(job: &HashJob, mid: &Midstate, lo: u64, hi: u64) -> ScanResult {
    assert!(
        sha_ni_detected(),
        "hash implementation sha-ni is not available on this CPU"
    );
    // SAFETY: `shani::scan` is compiled for sha, sse2, ssse3 and sse4.1 and
    // requires nothing else; the assert above checked at run time that this
    // CPU has all four, so every instruction it executes exists here.
    unsafe { shani::scan(job, mid, lo, hi) }
}

/// Off x86-64 there is no SHA-NI: [`HashImpl::ShaNi`] is never available.
#[cfg(not(target_arch = "x86_64"))]
fn scan_sha_ni(_job: &HashJob, _mid: &Midstate, _lo: u64, _hi: u64) -> ScanResult {
    panic!("hash implementation sha-ni is not available on this CPU")
}

/// The per-nonce bookkeeping of a scan that does not depend on how digests
/// are computed: the hit count and list and the samples. The fold is kept by
/// each implementation in its own registers.
struct Tally {
    target: u32,
    every: u64,
    /// Next sampled nonce (a multiple of `every` at or above the range
    /// start); u64::MAX when sampling is off, which no nonce reaches.
    next_sample: u64,
    hit_count: u64,
    hits: Vec<u32>,
    samples: Vec<(u32, [u8; 32])>,
}

impl Tally {
    fn new(job: &HashJob, lo: u64) -> Tally {
        let every = u64::from(job.sample_every);
        Tally {
            target: job.target_zero_bits,
            every,
            next_sample: if every == 0 {
                u64::MAX
            } else {
                lo.div_ceil(every) * every
            },
            hit_count: 0,
            hits: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// Records nonce `n` (< 2^32) with digest words `d`.
    #[inline(always)]
    fn record(&mut self, n: u64, d: &[u32; 8]) {
        // n < 2^32, so the cast is exact.
        let nonce = n as u32;
        if leading_zero_bits_words(d) >= self.target {
            self.hit_count += 1;
            if self.hits.len() < MAX_HITS {
                self.hits.push(nonce);
            }
        }
        if n == self.next_sample {
            self.samples.push((nonce, words_to_bytes(d)));
            self.next_sample += self.every;
        }
    }

    fn finish(self, lo: u64, hi: u64, fold: [u32; 8]) -> ScanResult {
        ScanResult {
            nonces: hi - lo,
            hit_count: self.hit_count,
            hits: self.hits,
            fold,
            samples: self.samples,
        }
    }
}

/// Parallel scan of `[start, start + count)` (clamped like [`scan_range`]) on
/// the rayon pool with [`best_impl`]: chunks of 64 Ki nonces scanned serially
/// and merged. This is what the CPU backend runs; the result equals
/// [`scan_range`]'s.
pub fn scan_parallel(job: &HashJob, start: u32, count: u32) -> ScanResult {
    scan_parallel_with(best_impl(), job, start, count)
}

/// [`scan_parallel`] with a chosen implementation.
///
/// # Panics
/// If `imp` is not available on this CPU ([`HashImpl::is_available`]).
pub fn scan_parallel_with(imp: HashImpl, job: &HashJob, start: u32, count: u32) -> ScanResult {
    let mid = midstate(&job.header);
    let (lo, hi) = clamped_range(start, count);
    let chunk = u64::from(PARALLEL_CHUNK);
    let chunks = (hi - lo).div_ceil(chunk);
    (0..chunks)
        .into_par_iter()
        .map(|c| {
            let first = lo + c * chunk;
            let len = chunk.min(hi - first);
            // first < hi <= 2^32 and len <= 2^16: both fit.
            scan_range_with(imp, job, &mid, first as u32, len as u32)
        })
        .reduce(ScanResult::default, |mut a, b| {
            a.merge(b);
            a
        })
}

/// Reference double SHA-256 through the `sha2` crate: the full 80-byte header
/// with `nonce` at bytes 76..80, hashed twice, no midstate. Shares no code
/// with the scan's implementation.
pub fn reference_digest(job: &HashJob, nonce: u32) -> [u8; 32] {
    let first = Sha256::digest(job.header_with_nonce(nonce));
    Sha256::digest(first).into()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::scalar::K;
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("valid hex in test"))
            .collect()
    }

    pub(crate) fn hex32(s: &str) -> [u8; 32] {
        hex(s).try_into().expect("32-byte hex in test")
    }

    fn sha2_single(m: &[u8]) -> [u8; 32] {
        Sha256::digest(m).into()
    }

    /// The implementations this CPU runs, each to be tested explicitly. An
    /// unavailable one is skipped with a note, never failed.
    pub(crate) fn impls() -> Vec<HashImpl> {
        HashImpl::ALL
            .into_iter()
            .filter(|&imp| {
                let available = imp.is_available();
                if !available {
                    eprintln!("note: {} not available on this CPU, skipped", imp.name());
                }
                available
            })
            .collect()
    }

    /// The digest of one nonce through `imp`'s scan (sampling every nonce).
    pub(crate) fn scanned_digest(
        imp: HashImpl,
        job: &HashJob,
        mid: &Midstate,
        nonce: u32,
    ) -> [u8; 32] {
        let every = HashJob {
            sample_every: 1,
            ..job.clone()
        };
        let r = scan_range_with(imp, &every, mid, nonce, 1);
        assert_eq!(r.samples.len(), 1, "{}", imp.name());
        assert_eq!(r.samples[0].0, nonce);
        r.samples[0].1
    }

    /// First 64 primes.
    fn primes(n: usize) -> Vec<u64> {
        let mut p = Vec::new();
        let mut k = 2u64;
        while p.len() < n {
            if p.iter().all(|&q| !k.is_multiple_of(q)) {
                p.push(k);
            }
            k += 1;
        }
        p
    }

    /// Largest v with v^power <= x, by bisection in u128.
    fn integer_root(x: u128, power: u32) -> u128 {
        let (mut lo, mut hi) = (0u128, 1u128 << 64);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if mid.checked_pow(power).is_some_and(|m| m <= x) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    #[test]
    fn constants_are_the_fractional_parts_of_prime_roots() {
        let p = primes(64);
        for (i, &prime) in p.iter().enumerate() {
            // floor(cbrt(p) * 2^32) = floor(cbrt(p * 2^96)); keep the low 32 bits.
            let k = integer_root(u128::from(prime) << 96, 3) as u32;
            assert_eq!(K[i], k, "K[{i}]");
        }
        for (i, &prime) in p.iter().take(8).enumerate() {
            let h = integer_root(u128::from(prime) << 64, 2) as u32;
            assert_eq!(IV[i], h, "H0[{i}]");
        }
    }

    #[test]
    fn published_sha256_vectors() {
        let cases: [(&[u8], &str); 4] = [
            (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
            (
                b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
            ),
        ];
        for (message, digest) in cases {
            assert_eq!(
                sha256(message),
                hex32(digest),
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            sha256(&million),
            hex32("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        );
    }

    #[test]
    fn sha256_matches_sha2_at_every_padding_boundary() {
        let data: Vec<u8> = (0..300u64)
            .map(|i| gen::random_u64(11, 0, i) as u8)
            .collect();
        for len in 0..data.len() {
            assert_eq!(
                sha256(&data[..len]),
                sha2_single(&data[..len]),
                "length {len}"
            );
        }
    }

    pub(crate) fn genesis_header() -> [u8; 80] {
        let mut h = Vec::with_capacity(80);
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&[0u8; 32]);
        let mut merkle = hex("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
        merkle.reverse();
        h.extend_from_slice(&merkle);
        h.extend_from_slice(&1_231_006_505u32.to_le_bytes());
        h.extend_from_slice(&0x1d00_ffffu32.to_le_bytes());
        h.extend_from_slice(&2_083_236_893u32.to_le_bytes());
        h.try_into().expect("80-byte header")
    }

    #[test]
    fn leading_zero_bits_convention() {
        let mut d = [0u8; 32];
        assert_eq!(leading_zero_bits(&d), 256);
        d[0] = 1; // displayed last
        assert_eq!(leading_zero_bits(&d), 255);
        d[31] = 0x80; // displayed first
        assert_eq!(leading_zero_bits(&d), 0);
        d[31] = 0;
        d[29] = 0x10;
        assert_eq!(leading_zero_bits(&d), 19);
        // The word form agrees on many digests.
        for i in 0..2000u64 {
            let mut d = [0u8; 32];
            for (j, b) in d.iter_mut().enumerate() {
                let r = gen::random_u64(3, i, j as u64);
                // Mostly zero bytes at the displayed front, so long runs occur.
                *b = if j as u64 + i % 33 >= 32 {
                    0
                } else {
                    (r as u8) >> (r >> 61)
                };
            }
            let mut words = [0u32; 8];
            for (w, c) in words.iter_mut().zip(d.chunks_exact(4)) {
                *w = be_word(c);
            }
            assert_eq!(
                leading_zero_bits_words(&words),
                leading_zero_bits(&d),
                "{d:?}"
            );
        }
    }

    #[test]
    fn double_sha256_matches_reference_on_random_headers() {
        for seed in 0..40u64 {
            let job = HashJob::from_seed(seed, 0, 0);
            let mid = midstate(&job.header);
            for i in 0..50u64 {
                let nonce = gen::random_u64(seed, 99, i) as u32;
                assert_eq!(
                    double_sha256(&mid, &job.header, nonce),
                    reference_digest(&job, nonce),
                    "seed {seed} nonce {nonce}"
                );
            }
            for nonce in [0, 1, 0xff, 0x100, u32::MAX] {
                assert_eq!(
                    double_sha256(&mid, &job.header, nonce),
                    reference_digest(&job, nonce)
                );
            }
        }
    }

    #[test]
    fn every_impl_matches_reference_on_random_headers() {
        for imp in impls() {
            for seed in 0..40u64 {
                let job = HashJob::from_seed(seed, 0, 0);
                let mid = midstate(&job.header);
                for i in 0..20u64 {
                    let nonce = gen::random_u64(seed, 99, i) as u32;
                    assert_eq!(
                        scanned_digest(imp, &job, &mid, nonce),
                        reference_digest(&job, nonce),
                        "{} seed {seed} nonce {nonce}",
                        imp.name()
                    );
                }
                for nonce in [0, 1, 0xff, 0x100, u32::MAX] {
                    assert_eq!(
                        scanned_digest(imp, &job, &mid, nonce),
                        reference_digest(&job, nonce),
                        "{} seed {seed} nonce {nonce}",
                        imp.name()
                    );
                }
                // Short ranges of every length up to a few interleaved
                // steps, from a random start: every sampled digest matches.
                let every = HashJob {
                    sample_every: 1,
                    ..job.clone()
                };
                let start = gen::random_u64(seed, 98, 0) as u32;
                for count in 0..10 {
                    let r = scan_range_with(imp, &every, &mid, start, count);
                    assert_eq!(r.nonces, u64::from(count));
                    assert_eq!(r.samples.len(), count as usize);
                    for &(nonce, d) in &r.samples {
                        assert_eq!(d, reference_digest(&job, nonce), "{}", imp.name());
                    }
                }
            }
        }
    }

    #[test]
    fn implementations_agree_on_2_16_nonces() {
        let available = impls();
        for (seed, target, every) in [(1u64, 8, 1000), (2, 0, 4096), (3, 12, 1), (4, 33, 7)] {
            let job = HashJob::from_seed(seed, target, every);
            let mid = midstate(&job.header);
            let start = 12_345;
            let scalar = scan_range_with(HashImpl::Scalar, &job, &mid, start, 1 << 16);
            assert_eq!(scalar.nonces, 1 << 16);
            assert_ne!(scalar.fold, [0; 8]);
            for &imp in &available {
                let r = scan_range_with(imp, &job, &mid, start, 1 << 16);
                assert_eq!(r.hit_count, scalar.hit_count, "{} seed {seed}", imp.name());
                assert_eq!(r.hits, scalar.hits, "{} seed {seed}", imp.name());
                assert_eq!(r.fold, scalar.fold, "{} seed {seed}", imp.name());
                assert_eq!(r.samples, scalar.samples, "{} seed {seed}", imp.name());
                assert_eq!(r, scalar);
                // Odd lengths and starts leave partial interleaved steps.
                for (s, c) in [
                    (start + 1, 1),
                    (start + 3, 5),
                    (start, 7),
                    (u32::MAX - 2, 9),
                ] {
                    assert_eq!(
                        scan_range_with(imp, &job, &mid, s, c),
                        scan_range_with(HashImpl::Scalar, &job, &mid, s, c),
                        "{} [{s}, +{c})",
                        imp.name()
                    );
                }
            }
        }
    }

    #[test]
    fn best_impl_is_available_and_named() {
        let best = best_impl();
        assert!(best.is_available());
        assert_eq!(impl_name(), best.name());
        assert!(HashImpl::Scalar.is_available());
        // SHA-NI is preferred wherever the CPU has it.
        assert_eq!(best == HashImpl::ShaNi, HashImpl::ShaNi.is_available());
        if !HashImpl::ShaNi.is_available() {
            eprintln!(
                "note: sha-ni not available on this CPU, best is {}",
                best.name()
            );
        }
    }

    #[test]
    fn unavailable_impl_panics_instead_of_running() {
        if HashImpl::ShaNi.is_available() {
            eprintln!("note: sha-ni is available here; nothing to check");
            return;
        }
        let job = HashJob::from_seed(1, 8, 0);
        let mid = midstate(&job.header);
        let r = std::panic::catch_unwind(|| scan_range_with(HashImpl::ShaNi, &job, &mid, 0, 4));
        assert!(r.is_err());
    }

    #[test]
    fn from_seed_is_deterministic_and_leaves_nonce_zero() {
        let a = HashJob::from_seed(7, 16, 1024);
        assert_eq!(a, HashJob::from_seed(7, 16, 1024));
        assert_ne!(a.header, HashJob::from_seed(8, 16, 1024).header);
        assert_eq!(a.header[76..], [0, 0, 0, 0]);
        assert_eq!(a.header[..8], gen::random_u64(7, 5, 0).to_le_bytes());
        assert_eq!(
            a.header[72..76],
            gen::random_u64(7, 5, 9).to_le_bytes()[..4]
        );
    }

    /// The scan recomputed nonce by nonce with the sha2 crate.
    fn brute_force(job: &HashJob, start: u32, count: u32) -> ScanResult {
        let mut r = ScanResult::default();
        for nonce in start..start + count {
            let d = reference_digest(job, nonce);
            r.nonces += 1;
            for (f, c) in r.fold.iter_mut().zip(d.chunks_exact(4)) {
                *f ^= be_word(c);
            }
            if leading_zero_bits(&d) >= job.target_zero_bits {
                r.hit_count += 1;
                if r.hits.len() < MAX_HITS {
                    r.hits.push(nonce);
                }
            }
            if job.sample_every != 0 && nonce % job.sample_every == 0 {
                r.samples.push((nonce, d));
            }
        }
        r
    }

    #[test]
    fn scan_matches_brute_force_reference() {
        let job = HashJob::from_seed(2024, 8, 1000);
        let start = 5;
        let count = 1 << 16;
        let reference = brute_force(&job, start, count);
        assert!(
            reference.hit_count > MAX_HITS as u64,
            "target too strict for the test"
        );
        // A stricter target keeps every hit in the list.
        let strict = HashJob {
            target_zero_bits: 12,
            ..job.clone()
        };
        let strict_reference = brute_force(&strict, start, count);
        for imp in impls() {
            let scanned = scan_range_with(imp, &job, &midstate(&job.header), start, count);
            assert_eq!(scanned, reference, "{}", imp.name());
            assert_eq!(scanned.hits.len(), MAX_HITS);
            assert_eq!(scanned.samples.len(), 65); // 1000, 2000, ..., 65000
            let scanned = scan_range_with(imp, &strict, &midstate(&strict.header), start, count);
            assert_eq!(scanned, strict_reference, "{}", imp.name());
            assert!(scanned.hit_count > 0 && scanned.hit_count < MAX_HITS as u64);
        }
    }

    #[test]
    fn merge_of_halves_equals_whole() {
        let job = HashJob::from_seed(5, 8, 333);
        let mid = midstate(&job.header);
        for imp in impls() {
            let scan = |start, count| scan_range_with(imp, &job, &mid, start, count);
            let whole = scan(100, 40_000);
            let split = 100 + 17_321;
            let left = scan(100, 17_321);
            let right = scan(split, 40_000 - 17_321);
            assert_ne!(left, whole);
            let mut forward = left.clone();
            forward.merge(right.clone());
            assert_eq!(forward, whole, "{}", imp.name());
            // Merging in the other order gives the same result.
            let mut backward = right;
            backward.merge(left);
            assert_eq!(backward, whole, "{}", imp.name());
            // Interleaved pieces too.
            let mut pieces = ScanResult::default();
            for k in [3u32, 0, 2, 1] {
                pieces.merge(scan(100 + k * 10_000, 10_000));
            }
            assert_eq!(pieces, whole, "{}", imp.name());
        }
    }
}

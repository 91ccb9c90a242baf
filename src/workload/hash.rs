//! The hashing workload: a double SHA-256 nonce search over an 80-byte block
//! header, the scheme Bitcoin mining uses.
//!
//! Why it exists: matmul and bandwidth exercise floating point units and the
//! memory system; this workload keeps a device's integer pipelines (32-bit
//! adds, rotates, boolean logic) saturated with a dependency-heavy instruction
//! stream whose every output bit depends on every input bit. A single flipped
//! bit anywhere in the computation changes the digest completely, so silent
//! corruption under load becomes visible.
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
//! [`verify_scan`] checks device results against.
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

use crate::workload::gen;

/// Compressions per nonce of the scheme (the second block of the first hash,
/// and the single block of the second hash), for reporting compressions/s.
pub const COMPRESSIONS_PER_NONCE: u64 = 2;

/// Max hits a scan keeps (the smallest nonces); [`ScanResult::hit_count`]
/// keeps counting past it.
pub const MAX_HITS: usize = 64;

/// Generator stream the header bytes are drawn from.
const HEADER_STREAM: u64 = 5;

/// Nonces per rayon task in [`scan_parallel`].
const PARALLEL_CHUNK: u32 = 1 << 16;

/// SHA-256 initial hash value (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 round constants (FIPS 180-4, 4.2.2).
#[rustfmt::skip]
const K: [u32; 64] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4,
    0xab1c_5ed5, 0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe,
    0x9bdc_06a7, 0xc19b_f174, 0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f,
    0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da, 0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7,
    0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967, 0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc,
    0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85, 0xa2bf_e8a1, 0xa81a_664b,
    0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070, 0x19a4_c116,
    0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
    0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7,
    0xc671_78f2,
];

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
fn clamped_range(start: u32, count: u32) -> (u64, u64) {
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

/// [`scan_range_with`] of the scalar implementation over `[lo, hi)`,
/// hi <= 2^32.
fn scan_scalar(job: &HashJob, mid: &Midstate, lo: u64, hi: u64) -> ScanResult {
    let prepared = Prepared::new(mid, &job.header);
    let mut tally = Tally::new(job, lo);
    let mut fold = [0u32; 8];
    for n in lo..hi {
        // n < hi <= 2^32, so the cast is exact.
        let d = prepared.digest(n as u32);
        for (f, w) in fold.iter_mut().zip(d) {
            *f ^= w;
        }
        tally.record(n, &d);
    }
    tally.finish(lo, hi, fold)
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

/// The outcome of [`verify_scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashCheck {
    /// Digests recomputed with [`reference_digest`].
    pub checked: u64,
    /// Problems found (bad digests, bad hits, missing or extra samples,
    /// inconsistent counts), each counted once.
    pub errors: u64,
    /// Empty when clean; otherwise the first problem, naming the nonce, e.g.
    /// "nonce 131072: digest differs from SHA-256 reference".
    pub detail: String,
}

impl HashCheck {
    /// True when no problem was found.
    pub fn passed(&self) -> bool {
        self.errors == 0
    }

    fn fail(&mut self, detail: impl FnOnce() -> String) {
        self.errors += 1;
        if self.detail.is_empty() {
            self.detail = detail();
        }
    }
}

/// Verifies a device's [`ScanResult`] for `[start, start + count)` (clamped
/// like [`scan_range`]) without rehashing the whole range:
/// 1. the nonce count equals the range length;
/// 2. hits are strictly ascending, inside the range, and there are
///    min(hit_count, [`MAX_HITS`]) of them, with hit_count <= nonces;
/// 3. every reported hit, recomputed with [`reference_digest`], meets the
///    target;
/// 4. the samples are exactly the nonces of the range that are multiples of
///    `sample_every`, ascending, each digest equal to [`reference_digest`];
///    and a sample that is a hit appears in the hit list whenever the list
///    must contain it (it is not full, or the sample lies below its last
///    entry), which catches dropped hits.
///
/// The fold cannot be checked without rehashing the range; callers compare
/// folds between repeated scans instead.
pub fn verify_scan(job: &HashJob, start: u32, count: u32, result: &ScanResult) -> HashCheck {
    let (lo, hi) = clamped_range(start, count);
    let mut check = HashCheck {
        checked: 0,
        errors: 0,
        detail: String::new(),
    };

    if result.nonces != hi - lo {
        check.fail(|| {
            format!(
                "nonce count {} differs from the {} nonces of range [{lo}, {hi})",
                result.nonces,
                hi - lo
            )
        });
    }
    if result.hit_count > result.nonces {
        check.fail(|| {
            format!(
                "hit count {} exceeds the {} nonces hashed",
                result.hit_count, result.nonces
            )
        });
    }
    let expected_hits = result.hit_count.min(MAX_HITS as u64);
    if result.hits.len() as u64 != expected_hits {
        check.fail(|| {
            format!(
                "{} hits listed, expected {expected_hits} for a hit count of {}",
                result.hits.len(),
                result.hit_count
            )
        });
    }

    let mut previous: Option<u32> = None;
    for &nonce in &result.hits {
        if !(lo..hi).contains(&u64::from(nonce)) {
            check.fail(|| format!("nonce {nonce}: reported hit outside range [{lo}, {hi})"));
        } else if previous.is_some_and(|p| nonce <= p) {
            check.fail(|| format!("nonce {nonce}: hits not strictly ascending"));
        } else {
            check.checked += 1;
            let zeros = leading_zero_bits(&reference_digest(job, nonce));
            if zeros < job.target_zero_bits {
                check.fail(|| {
                    format!(
                        "nonce {nonce}: reported hit has {zeros} leading zero bits, target is {}",
                        job.target_zero_bits
                    )
                });
            }
        }
        previous = Some(nonce);
    }

    verify_samples(job, lo, hi, result, &mut check);
    check
}

/// Part 4 of [`verify_scan`]: walks the expected and the reported sample
/// nonces together, both ascending.
fn verify_samples(job: &HashJob, lo: u64, hi: u64, result: &ScanResult, check: &mut HashCheck) {
    let every = u64::from(job.sample_every);
    // The next expected sample nonce, None once past the range.
    let mut expected = if every == 0 {
        None
    } else {
        Some(lo.div_ceil(every) * every).filter(|&n| n < hi)
    };
    let hits_full = result.hits.len() >= MAX_HITS;
    let last_hit = result.hits.last().copied();
    let mut previous: Option<u32> = None;
    for &(nonce, digest) in &result.samples {
        let n = u64::from(nonce);
        // Expected samples below this one were dropped: count them without
        // walking them one by one.
        if let Some(e) = expected.filter(|&e| e < n) {
            let limit = n.min(hi);
            let missing = (limit - e).div_ceil(every);
            check.errors += missing - 1;
            check.fail(|| format!("nonce {e}: sample missing"));
            expected = Some(e + missing * every).filter(|&m| m < hi);
        }
        if previous.is_some_and(|p| nonce <= p) {
            check.fail(|| format!("nonce {nonce}: samples not strictly ascending"));
        } else if expected != Some(n) {
            check.fail(|| format!("nonce {nonce}: unexpected sample"));
        } else {
            check.checked += 1;
            let reference = reference_digest(job, nonce);
            if digest != reference {
                check.fail(|| format!("nonce {nonce}: digest differs from SHA-256 reference"));
            } else if leading_zero_bits(&reference) >= job.target_zero_bits
                && (!hits_full || last_hit.is_some_and(|l| nonce < l))
                && result.hits.binary_search(&nonce).is_err()
            {
                check.fail(|| format!("nonce {nonce}: sampled hit missing from hit list"));
            }
            expected = Some(n + every).filter(|&m| m < hi);
        }
        previous = Some(previous.map_or(nonce, |p| p.max(nonce)));
    }
    if let Some(e) = expected {
        let missing = (hi - e).div_ceil(every);
        check.errors += missing - 1;
        check.fail(|| format!("nonce {e}: sample missing"));
    }
}

// ---------------------------------------------------------------------------
// Own SHA-256.

#[inline(always)]
fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}

#[inline(always)]
fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}

#[inline(always)]
fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

#[inline(always)]
fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// Ch(e, f, g) = (e AND f) XOR (NOT e AND g), in three operations.
#[inline(always)]
fn choose(e: u32, f: u32, g: u32) -> u32 {
    g ^ (e & (f ^ g))
}

/// One round on the working variables `s = [a, b, c, d, e, f, g, h]`, with
/// `kw` = K\[t\] + W\[t\]. `bc` carries b XOR c between rounds: this
/// round's a XOR b is the next round's b XOR c, which saves an operation in
/// Maj. Fully unrolled callers turn the shifts into register renaming.
#[inline(always)]
fn round(s: &mut [u32; 8], bc: &mut u32, kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h
        .wrapping_add(big_sigma1(e))
        .wrapping_add(choose(e, f, g))
        .wrapping_add(kw);
    let ab = a ^ b;
    // Maj(a, b, c) = b XOR ((a XOR b) AND (b XOR c)).
    let t2 = big_sigma0(a).wrapping_add(b ^ (ab & *bc));
    *bc = ab;
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// Message schedule word t >= 16 from the four earlier words it depends on.
#[inline(always)]
fn schedule(w: &[u32; 64], t: usize) -> u32 {
    small_sigma1(w[t - 2])
        .wrapping_add(w[t - 7])
        .wrapping_add(small_sigma0(w[t - 15]))
        .wrapping_add(w[t - 16])
}

/// Rounds with already known schedule words.
macro_rules! rounds {
    ($s:ident, $bc:ident, $w:ident; $($t:literal)+) => {
        $( round(&mut $s, &mut $bc, K[$t].wrapping_add($w[$t])); )+
    };
}

/// Rounds that first expand their schedule word.
macro_rules! expand_rounds {
    ($s:ident, $bc:ident, $w:ident; $($t:literal)+) => {
        $(
            $w[$t] = schedule(&$w, $t);
            round(&mut $s, &mut $bc, K[$t].wrapping_add($w[$t]));
        )+
    };
}

/// The SHA-256 compression function: `state` absorbs one 16-word block.
/// Inlined everywhere so constant block words (padding, lengths) fold away.
#[inline(always)]
fn compress(state: &mut [u32; 8], block: &[u32; 16]) {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    let mut s = *state;
    let mut bc = s[1] ^ s[2];
    rounds!(s, bc, w; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    expand_rounds!(s, bc, w; 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47
        48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
    for (x, y) in state.iter_mut().zip(s) {
        *x = x.wrapping_add(y);
    }
}

/// Everything of a job's per-nonce hash that does not depend on the nonce.
///
/// Block 2 of the first hash is W0..W2 = header bytes 64..76, W3 = the nonce,
/// W4 = 0x80000000, W5..W14 = 0, W15 = 640. Rounds 0..2 use only W0..W2, so
/// their state is precomputed; round 3 adds W3 to two otherwise constant
/// sums; schedule words W16 and W17 are constant and W18, W19 are constants
/// plus a term in W3.
#[derive(Clone, Copy)]
struct Prepared {
    /// The midstate, added back after block 2.
    mid: [u32; 8],
    /// Working variables after round 3 with W3 = 0: the nonce word is added
    /// to `a` and `e`.
    after3: [u32; 8],
    /// W0..W2 (header bytes 64..76, big-endian).
    w012: [u32; 3],
    /// W16 (constant).
    w16: u32,
    /// W17 (constant).
    w17: u32,
    /// W18 - sigma0(W3).
    w18: u32,
    /// W19 - W3.
    w19: u32,
}

impl Prepared {
    fn new(mid: &Midstate, header: &[u8; 80]) -> Prepared {
        const W4: u32 = 0x8000_0000;
        const W15: u32 = 640;
        let w0 = be_word(&header[64..68]);
        let w1 = be_word(&header[68..72]);
        let w2 = be_word(&header[72..76]);
        let mut s = mid.state;
        let mut bc = s[1] ^ s[2];
        round(&mut s, &mut bc, K[0].wrapping_add(w0));
        round(&mut s, &mut bc, K[1].wrapping_add(w1));
        round(&mut s, &mut bc, K[2].wrapping_add(w2));
        // Round 3 with W3 = 0: W3 enters both new a and new e as a plain
        // addend, so it can be added afterwards.
        round(&mut s, &mut bc, K[3]);
        // W16 = s1(W14) + W9 + s0(W1) + W0, with W9 = W14 = 0.
        let w16 = small_sigma0(w1).wrapping_add(w0);
        // W17 = s1(W15) + W10 + s0(W2) + W1, with W10 = 0.
        let w17 = small_sigma1(W15)
            .wrapping_add(small_sigma0(w2))
            .wrapping_add(w1);
        // W18 = s1(W16) + W11 + s0(W3) + W2, with W11 = 0.
        let w18 = small_sigma1(w16).wrapping_add(w2);
        // W19 = s1(W17) + W12 + s0(W4) + W3, with W12 = 0.
        let w19 = small_sigma1(w17).wrapping_add(small_sigma0(W4));
        Prepared {
            mid: mid.state,
            after3: s,
            w012: [w0, w1, w2],
            w16,
            w17,
            w18,
            w19,
        }
    }

    /// Double SHA-256 digest words of the header with `nonce`: compression 1
    /// from round 4 on, then compression 2.
    #[inline(always)]
    fn digest(&self, nonce: u32) -> [u32; 8] {
        // Nonce bytes are little-endian in the header; the schedule reads
        // them big-endian.
        let w3 = nonce.swap_bytes();
        let mut w = [0u32; 64];
        w[0] = self.w012[0];
        w[1] = self.w012[1];
        w[2] = self.w012[2];
        w[3] = w3;
        w[4] = 0x8000_0000;
        w[15] = 640;
        w[16] = self.w16;
        w[17] = self.w17;
        w[18] = self.w18.wrapping_add(small_sigma0(w3));
        w[19] = self.w19.wrapping_add(w3);
        let mut s = self.after3;
        s[0] = s[0].wrapping_add(w3);
        s[4] = s[4].wrapping_add(w3);
        let mut bc = s[1] ^ s[2];
        rounds!(s, bc, w; 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
        expand_rounds!(s, bc, w; 20 21 22 23 24 25 26 27 28 29 30 31
            32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47
            48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
        let mut first = [0u32; 8];
        for ((o, m), x) in first.iter_mut().zip(self.mid).zip(s) {
            *o = m.wrapping_add(x);
        }

        // Second hash: the 32-byte digest, 0x80, zeros, length 256 bits.
        let mut block = [0u32; 16];
        block[..8].copy_from_slice(&first);
        block[8] = 0x8000_0000;
        block[15] = 256;
        let mut state = IV;
        compress(&mut state, &block);
        state
    }
}

/// A big-endian word from exactly four bytes.
#[inline(always)]
fn be_word(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(bytes);
    u32::from_be_bytes(b)
}

/// A 64-byte block as sixteen big-endian words.
fn block_words(block: &[u8]) -> [u32; 16] {
    let mut w = [0u32; 16];
    for (x, b) in w.iter_mut().zip(block.chunks_exact(4)) {
        *x = be_word(b);
    }
    w
}

/// Eight state words as the 32 digest bytes (big-endian words).
#[inline(always)]
fn words_to_bytes(words: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

// ---------------------------------------------------------------------------
// SHA-NI.

/// The double SHA-256 on the x86-64 SHA extensions.
///
/// The SHA instructions keep the eight working variables in two vectors,
/// ABEF (lanes 0..3: F, E, B, A) and CDGH (H, G, D, C); `sha256rnds2` does two
/// rounds, `sha256msg1`/`sha256msg2` expand the message schedule four words
/// at a time. One round instruction's result feeds the next, so a single
/// nonce runs at the instruction's latency; [`shani::LANES`] independent
/// nonces are interleaved step by step so the rounds of one fill the latency
/// of another.
///
/// Per nonce: compression 1 starts from the state after round 3 precomputed
/// by [`Prepared`] (the nonce word enters A and E of that state as a plain
/// addend) and runs rounds 4..63 with constant message words W4..W15;
/// compression 2 runs all 64 rounds with constant W8..W15. That is 62
/// `sha256rnds2` per nonce, for the scheme's 2 compressions.
///
/// Every function here is compiled with the SHA, SSE2, SSSE3 and SSE4.1
/// features; calling [`shani::scan`] needs them at run time, which
/// [`scan_sha_ni`] checks. Measured on an AMD EPYC (Zen, SHA-NI): two lanes
/// run about 1.4x one lane; three or four lanes spill the 16 XMM registers
/// and are no faster.
#[cfg(target_arch = "x86_64")]
mod shani {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_extract_epi32, _mm_set_epi32,
        _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
        _mm_shuffle_epi32, _mm_xor_si128,
    };

    use super::{HashJob, Midstate, Prepared, ScanResult, Tally, IV, K};

    /// Nonces interleaved per step.
    pub(super) const LANES: usize = 2;

    /// A vector with lane i = `w[i]`.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn vec4(w: [u32; 4]) -> __m128i {
        // The casts reinterpret the bits.
        _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
    }

    /// Round constants K\[4j..4j+4\], lane i = K\[4j + i\].
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn k4(j: usize) -> __m128i {
        vec4([K[4 * j], K[4 * j + 1], K[4 * j + 2], K[4 * j + 3]])
    }

    /// Working variables `[a, b, c, d, e, f, g, h]` as (ABEF, CDGH).
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn pack(s: &[u32; 8]) -> [__m128i; 2] {
        let [a, b, c, d, e, f, g, h] = *s;
        [vec4([f, e, b, a]), vec4([h, g, d, c])]
    }

    /// (ABEF, CDGH) back to the words in order: (a, b, c, d) and
    /// (e, f, g, h), lane i = the i-th word.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn unpack(abef: __m128i, cdgh: __m128i) -> [__m128i; 2] {
        // Lanes a, b, e, f.
        let abef_rev = _mm_shuffle_epi32::<0x1B>(abef);
        // Lanes g, h, c, d.
        let ghcd = _mm_shuffle_epi32::<0xB1>(cdgh);
        // Low half from abef_rev, high half from ghcd.
        let abcd = _mm_blend_epi16::<0xF0>(abef_rev, ghcd);
        // High half of abef_rev, then low half of ghcd.
        let efgh = _mm_alignr_epi8::<8>(ghcd, abef_rev);
        [abcd, efgh]
    }

    /// The four lanes of a vector.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn lanes(v: __m128i) -> [u32; 4] {
        // The casts reinterpret the bits.
        [
            _mm_extract_epi32::<0>(v) as u32,
            _mm_extract_epi32::<1>(v) as u32,
            _mm_extract_epi32::<2>(v) as u32,
            _mm_extract_epi32::<3>(v) as u32,
        ]
    }

    /// Digest words 0..8 from the (a..d, e..h) vectors.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn words(d: [__m128i; 2]) -> [u32; 8] {
        let [a, b, c, e] = lanes(d[0]);
        let [f, g, h, i] = lanes(d[1]);
        [a, b, c, e, f, g, h, i]
    }

    /// Four rounds on every lane; `wk[l]` holds W\[t..t+4\] + K\[t..t+4\]
    /// of lane l.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn rounds4(abef: &mut [__m128i; LANES], cdgh: &mut [__m128i; LANES], wk: [__m128i; LANES]) {
        // sha256rnds2(CDGH, ABEF, wk) returns the new ABEF after the two
        // rounds of wk's low lanes; the new CDGH is the old ABEF. So after
        // the first loop `cdgh` holds ABEF and `abef` holds CDGH, and the
        // second loop swaps them back.
        for l in 0..LANES {
            cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk[l]);
        }
        for l in 0..LANES {
            let high = _mm_shuffle_epi32::<0x0E>(wk[l]);
            abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], high);
        }
    }

    /// Schedule words W\[t..t+4\] from the sixteen before them, given as
    /// `w` = (W\[t-16..t-12\], .., W\[t-4..t\]).
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn schedule(w: &[__m128i; 4]) -> __m128i {
        // msg1: W[t-16] + s0(W[t-15]); alignr: W[t-7]; msg2 adds s1(W[t-2]).
        let partial = _mm_add_epi32(
            _mm_sha256msg1_epu32(w[0], w[1]),
            _mm_alignr_epi8::<4>(w[3], w[2]),
        );
        _mm_sha256msg2_epu32(partial, w[3])
    }

    /// Rounds 16..63 on every lane, message words W0..W15 given as four
    /// vectors per lane in `$w` (overwritten). Written out as a macro so that
    /// the twelve steps are unrolled and the schedule stays in registers.
    macro_rules! rounds_16_to_63 {
        ($abef:ident, $cdgh:ident, $w:ident) => {
            rounds_16_to_63!(@steps $abef, $cdgh, $w; 4 5 6 7 8 9 10 11 12 13 14 15)
        };
        (@steps $abef:ident, $cdgh:ident, $w:ident; $($j:literal)+) => {$({
            let mut wk = [_mm_setzero_si128(); LANES];
            for l in 0..LANES {
                let next = schedule(&$w[l]);
                $w[l] = [$w[l][1], $w[l][2], $w[l][3], next];
                wk[l] = _mm_add_epi32(next, k4($j));
            }
            rounds4(&mut $abef, &mut $cdgh, wk);
        })+};
    }

    /// What [`digests`] needs of a job.
    struct ShaNiPrepared {
        /// The midstate as (ABEF, CDGH), added back after compression 1.
        mid: [__m128i; 2],
        /// (ABEF, CDGH) after round 3 with W3 = 0.
        after3: [__m128i; 2],
        /// W0..W2 (header bytes 64..76, big-endian).
        w012: [u32; 3],
    }

    impl ShaNiPrepared {
        #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
        fn new(mid: &Midstate, header: &[u8; 80]) -> ShaNiPrepared {
            let p = Prepared::new(mid, header);
            ShaNiPrepared {
                mid: pack(&p.mid),
                after3: pack(&p.after3),
                w012: p.w012,
            }
        }
    }

    /// Double SHA-256 digests of `nonces`, each as (words 0..4, words 4..8).
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn digests(p: &ShaNiPrepared, nonces: [u32; LANES]) -> [[__m128i; 2]; LANES] {
        let zero = _mm_setzero_si128();
        // Block 2 of the first hash: W4 = 0x80000000, W5..W14 = 0, W15 = 640.
        let pad1 = vec4([0x8000_0000, 0, 0, 0]);
        let len1 = vec4([0, 0, 0, 640]);
        let mut abef = [p.after3[0]; LANES];
        let mut cdgh = [p.after3[1]; LANES];
        let mut w = [[zero; 4]; LANES];
        for l in 0..LANES {
            // Nonce bytes are little-endian in the header; the schedule reads
            // them big-endian.
            let w3 = nonces[l].swap_bytes();
            // W3 is a plain addend of A and E after round 3 (lanes 3 and 1).
            abef[l] = _mm_add_epi32(abef[l], vec4([0, w3, 0, w3]));
            w[l] = [
                vec4([p.w012[0], p.w012[1], p.w012[2], w3]),
                pad1,
                zero,
                len1,
            ];
        }
        rounds4(&mut abef, &mut cdgh, [_mm_add_epi32(pad1, k4(1)); LANES]);
        rounds4(&mut abef, &mut cdgh, [k4(2); LANES]);
        rounds4(&mut abef, &mut cdgh, [_mm_add_epi32(len1, k4(3)); LANES]);
        rounds_16_to_63!(abef, cdgh, w);

        // Second hash: the 32-byte first digest, 0x80, zeros, length 256.
        let pad2 = vec4([0x8000_0000, 0, 0, 0]);
        let len2 = vec4([0, 0, 0, 256]);
        let iv = pack(&IV);
        for l in 0..LANES {
            let first = unpack(
                _mm_add_epi32(abef[l], p.mid[0]),
                _mm_add_epi32(cdgh[l], p.mid[1]),
            );
            w[l] = [first[0], first[1], pad2, len2];
        }
        abef = [iv[0]; LANES];
        cdgh = [iv[1]; LANES];
        let mut wk = [zero; LANES];
        for l in 0..LANES {
            wk[l] = _mm_add_epi32(w[l][0], k4(0));
        }
        rounds4(&mut abef, &mut cdgh, wk);
        for l in 0..LANES {
            wk[l] = _mm_add_epi32(w[l][1], k4(1));
        }
        rounds4(&mut abef, &mut cdgh, wk);
        rounds4(&mut abef, &mut cdgh, [_mm_add_epi32(pad2, k4(2)); LANES]);
        rounds4(&mut abef, &mut cdgh, [_mm_add_epi32(len2, k4(3)); LANES]);
        rounds_16_to_63!(abef, cdgh, w);

        let mut out = [[zero; 2]; LANES];
        for l in 0..LANES {
            out[l] = unpack(_mm_add_epi32(abef[l], iv[0]), _mm_add_epi32(cdgh[l], iv[1]));
        }
        out
    }

    /// Folds digest `d` of nonce `n` into the scan.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn account(
        tally: &mut Tally,
        fold: &mut [__m128i; 2],
        prefilter: u32,
        n: u64,
        d: [__m128i; 2],
    ) {
        fold[0] = _mm_xor_si128(fold[0], d[0]);
        fold[1] = _mm_xor_si128(fold[1], d[1]);
        // Leading zero bits start with word 7 (see leading_zero_bits_words):
        // a hit needs min(target, 32) of them there, so the full digest is
        // only extracted for possible hits and for samples.
        let w7 = _mm_extract_epi32::<3>(d[1]) as u32;
        if w7.swap_bytes().leading_zeros() >= prefilter || n == tally.next_sample {
            tally.record(n, &words(d));
        }
    }

    /// The SHA-NI scan of `[lo, hi)`, hi <= 2^32; same result as the scalar
    /// scan.
    ///
    /// # Safety
    /// The CPU must support SHA, SSE2, SSSE3 and SSE4.1.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn scan(job: &HashJob, mid: &Midstate, lo: u64, hi: u64) -> ScanResult {
        let p = ShaNiPrepared::new(mid, &job.header);
        let mut tally = Tally::new(job, lo);
        let prefilter = job.target_zero_bits.min(32);
        let mut fold = [_mm_setzero_si128(); 2];
        let lanes = LANES as u64;
        let mut n = lo;
        while hi - n >= lanes {
            let mut nonces = [0u32; LANES];
            for (l, x) in nonces.iter_mut().enumerate() {
                // n + l < hi <= 2^32: exact.
                *x = (n + l as u64) as u32;
            }
            let d = digests(&p, nonces);
            for (l, &dl) in d.iter().enumerate() {
                account(&mut tally, &mut fold, prefilter, n + l as u64, dl);
            }
            n += lanes;
        }
        if n < hi {
            // The last partial step: idle lanes repeat the last nonce and are
            // dropped.
            let live = (hi - n) as usize;
            let mut nonces = [0u32; LANES];
            for (l, x) in nonces.iter_mut().enumerate() {
                *x = (n + l.min(live - 1) as u64) as u32;
            }
            let d = digests(&p, nonces);
            for (l, &dl) in d.iter().take(live).enumerate() {
                account(&mut tally, &mut fold, prefilter, n + l as u64, dl);
            }
        }
        tally.finish(lo, hi, words(fold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("valid hex in test"))
            .collect()
    }

    fn hex32(s: &str) -> [u8; 32] {
        hex(s).try_into().expect("32-byte hex in test")
    }

    fn sha2_single(m: &[u8]) -> [u8; 32] {
        Sha256::digest(m).into()
    }

    /// The implementations this CPU runs, each to be tested explicitly. An
    /// unavailable one is skipped with a note, never failed.
    fn impls() -> Vec<HashImpl> {
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
    fn scanned_digest(imp: HashImpl, job: &HashJob, mid: &Midstate, nonce: u32) -> [u8; 32] {
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

    fn genesis_header() -> [u8; 80] {
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
    fn bitcoin_genesis_block_hash() {
        let header = genesis_header();
        let nonce = 2_083_236_893;
        // Start from a header whose nonce bytes are wrong: double_sha256
        // writes the nonce itself.
        let mut zeroed = header;
        zeroed[76..].fill(0);
        let mid = midstate(&zeroed);
        let mut digest = double_sha256(&mid, &zeroed, nonce);
        let job = HashJob {
            header: zeroed,
            target_zero_bits: 40,
            sample_every: 0,
        };
        assert_eq!(digest, reference_digest(&job, nonce));
        assert_eq!(leading_zero_bits(&digest), 43);
        assert!(leading_zero_bits(&digest) >= 40);
        // Nonce 0 of the same header is no block.
        assert!(leading_zero_bits(&double_sha256(&mid, &zeroed, 0)) < 40);
        digest.reverse();
        assert_eq!(
            digest,
            hex32("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f")
        );
        // The whole header through the generic sha256 twice gives the same.
        let mut twice = sha256(&sha256(&header));
        twice.reverse();
        assert_eq!(twice, digest);
        // A one-nonce scan finds it as a hit, with every implementation.
        digest.reverse();
        for imp in impls() {
            let r = scan_range_with(imp, &job, &mid, nonce, 1);
            assert_eq!((r.hit_count, r.hits.clone()), (1, vec![nonce]), "{imp:?}");
            assert!(verify_scan(&job, nonce, 1, &r).passed());
            assert_eq!(scanned_digest(imp, &job, &mid, nonce), digest, "{imp:?}");
            // A range around it finds it and nothing else.
            let r = scan_range_with(imp, &job, &mid, nonce - 2, 5);
            assert_eq!((r.hit_count, r.hits.clone()), (1, vec![nonce]), "{imp:?}");
        }
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
    fn parallel_scan_equals_serial_scan() {
        let job = HashJob::from_seed(77, 8, 4096);
        let start = 1000;
        let count = 3 * PARALLEL_CHUNK + 777;
        let serial = scan_range_with(HashImpl::Scalar, &job, &midstate(&job.header), start, count);
        for imp in impls() {
            assert_eq!(
                scan_parallel_with(imp, &job, start, count),
                serial,
                "{}",
                imp.name()
            );
        }
        let parallel = scan_parallel(&job, start, count);
        assert_eq!(parallel, serial);
        assert_eq!(parallel.nonces, u64::from(count));
        assert!(parallel.hit_count > MAX_HITS as u64);
        assert_eq!(parallel.hits.len(), MAX_HITS);
        assert!(parallel.samples.windows(2).all(|w| w[0].0 < w[1].0));
        assert_ne!(parallel.fold, [0; 8]);
        assert!(verify_scan(&job, start, count, &parallel).passed());
        assert_eq!(scan_parallel(&job, start, 0), ScanResult::default());
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

    #[test]
    fn range_is_clamped_at_the_top_of_the_nonce_space() {
        let job = HashJob::from_seed(9, 0, 2);
        let mid = midstate(&job.header);
        for imp in impls() {
            let r = scan_range_with(imp, &job, &mid, u32::MAX - 5, 100);
            assert_eq!(r.nonces, 6);
            assert_eq!(r.hit_count, 6); // target 0: every nonce is a hit
            assert_eq!(*r.hits.last().expect("six hits"), u32::MAX);
            assert_eq!(r.samples.len(), 3);
            assert_eq!(r, scan_parallel_with(imp, &job, u32::MAX - 5, 100));
            let check = verify_scan(&job, u32::MAX - 5, 100, &r);
            assert!(check.passed(), "{}: {}", imp.name(), check.detail);
            assert_eq!(check.checked, 9);
            // An odd count at the very top.
            let r = scan_range_with(imp, &job, &mid, u32::MAX, 7);
            assert_eq!((r.nonces, r.hits.clone()), (1, vec![u32::MAX]));
            assert!(verify_scan(&job, u32::MAX, 7, &r).passed());
        }
    }

    /// A clean result with samples, hits below MAX_HITS and its check.
    fn clean() -> (HashJob, u32, u32, ScanResult) {
        let job = HashJob::from_seed(31, 12, 512);
        let (start, count) = (3, 1 << 16);
        let r = scan_parallel(&job, start, count);
        assert!(r.hit_count > 2 && r.hit_count < MAX_HITS as u64);
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 0, "{}", check.detail);
        assert_eq!(check.detail, "");
        assert_eq!(check.checked, r.hit_count + r.samples.len() as u64);
        (job, start, count, r)
    }

    #[test]
    fn verify_catches_a_flipped_sample_bit() {
        let (job, start, count, mut r) = clean();
        let nonce = r.samples[7].0;
        r.samples[7].1[13] ^= 0x04;
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 1);
        assert_eq!(
            check.detail,
            format!("nonce {nonce}: digest differs from SHA-256 reference")
        );
    }

    #[test]
    fn verify_catches_a_fake_hit() {
        let (job, start, count, mut r) = clean();
        let fake = (start..start + count)
            .find(|&n| {
                leading_zero_bits(&reference_digest(&job, n)) < job.target_zero_bits
                    && !r.hits.contains(&n)
            })
            .expect("most nonces miss");
        r.hits.push(fake);
        r.hits.sort_unstable();
        r.hit_count += 1;
        let check = verify_scan(&job, start, count, &r);
        assert!(check.errors > 0);
        assert!(
            check.detail.contains(&format!("nonce {fake}:")),
            "{}",
            check.detail
        );
    }

    #[test]
    fn verify_catches_a_dropped_sample() {
        let (job, start, count, mut r) = clean();
        let dropped = r.samples.remove(20).0;
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 1);
        assert_eq!(check.detail, format!("nonce {dropped}: sample missing"));
        // Runs of dropped samples count one error each, in the middle and
        // at the end.
        let (_, _, _, mut r) = clean();
        let first = r.samples[10].0;
        r.samples.drain(10..13);
        r.samples.truncate(r.samples.len() - 2);
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 5);
        assert_eq!(check.detail, format!("nonce {first}: sample missing"));
        // An extra sample is caught too.
        let (_, _, _, mut r) = clean();
        let extra = r.samples[4].0 + 1;
        r.samples.insert(5, (extra, reference_digest(&job, extra)));
        let check = verify_scan(&job, start, count, &r);
        assert!(check.errors > 0);
        assert!(
            check.detail.contains(&format!("nonce {extra}:")),
            "{}",
            check.detail
        );
    }

    #[test]
    fn verify_catches_a_wrong_nonce_count() {
        let (job, start, count, mut r) = clean();
        r.nonces -= 1;
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 1);
        assert!(
            check.detail.contains(&format!("nonce count {}", count - 1)),
            "{}",
            check.detail
        );
        assert!(check
            .detail
            .contains(&format!("[{start}, {})", start + count)));
    }

    #[test]
    fn verify_catches_hit_list_inconsistencies() {
        let (job, start, count, r) = clean();
        // A hit dropped from the list with the count kept.
        let mut dropped = r.clone();
        dropped.hits.remove(1);
        let check = verify_scan(&job, start, count, &dropped);
        assert!(check.errors > 0);
        // A hit outside the range.
        let mut outside = r.clone();
        let beyond = start + count + 10;
        *outside.hits.last_mut().expect("hits") = beyond;
        let check = verify_scan(&job, start, count, &outside);
        assert!(
            check.detail.contains(&format!("nonce {beyond}:")),
            "{}",
            check.detail
        );
        // A hit dropped together with its count is found through a sample
        // when sampling covers it.
        let every = HashJob {
            sample_every: 1,
            ..job.clone()
        };
        let mut full = scan_range(&every, &midstate(&every.header), start, 1 << 14);
        assert!(full.hits.len() > 1);
        let lost2 = full.hits.remove(0);
        full.hit_count -= 1;
        let check = verify_scan(&every, start, 1 << 14, &full);
        assert_eq!(check.errors, 1);
        assert_eq!(
            check.detail,
            format!("nonce {lost2}: sampled hit missing from hit list")
        );
    }
}

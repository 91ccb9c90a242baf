//! The double SHA-256 on the x86-64 SHA extensions.
//!
//! The SHA instructions keep the eight working variables in two vectors,
//! ABEF (lanes 0..3: F, E, B, A) and CDGH (H, G, D, C); `sha256rnds2` does two
//! rounds, `sha256msg1`/`sha256msg2` expand the message schedule four words
//! at a time. One round instruction's result feeds the next, so a single
//! nonce runs at the instruction's latency; [`LANES`] independent nonces are
//! interleaved step by step so the rounds of one fill the latency of another.
//!
//! Per nonce: compression 1 starts from the state after round 3 precomputed
//! by [`Prepared`] (the nonce word enters A and E of that state as a plain
//! addend) and runs rounds 4..63 with constant message words W4..W15;
//! compression 2 runs all 64 rounds with constant W8..W15. That is 62
//! `sha256rnds2` per nonce, for the scheme's 2 compressions.
//!
//! Every function here is compiled with the SHA, SSE2, SSSE3 and SSE4.1
//! features; calling [`scan`] needs them at run time, which
//! [`scan_sha_ni`] checks. Measured on an AMD EPYC (Zen, SHA-NI): two lanes
//! run about 1.4x one lane; three or four lanes spill the 16 XMM registers
//! and are no faster.
//!
//! [`scan_sha_ni`]: super::scan_sha_ni

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_extract_epi32, _mm_set_epi32,
    _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
    _mm_shuffle_epi32, _mm_xor_si128,
};

use super::scalar::{Prepared, IV, K};
use super::{HashJob, Midstate, ScanResult, Tally};

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
fn account(tally: &mut Tally, fold: &mut [__m128i; 2], prefilter: u32, n: u64, d: [__m128i; 2]) {
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

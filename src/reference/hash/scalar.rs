//! kiln's own SHA-256, portable: the compression function with fully
//! unrolled rounds, the per-job precomputation of the nonce-independent part
//! of a double SHA-256 ([`Prepared`]), and the scalar scan. The SHA-NI
//! implementation (`super::shani`) starts from the same [`Prepared`] state.

use super::{HashJob, Midstate, ScanResult, Tally};

/// SHA-256 initial hash value (FIPS 180-4, 5.3.3).
pub(super) const IV: [u32; 8] = [
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
pub(super) const K: [u32; 64] = [
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
pub(super) fn compress(state: &mut [u32; 8], block: &[u32; 16]) {
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
pub(super) struct Prepared {
    /// The midstate, added back after block 2.
    pub(super) mid: [u32; 8],
    /// Working variables after round 3 with W3 = 0: the nonce word is added
    /// to `a` and `e`.
    pub(super) after3: [u32; 8],
    /// W0..W2 (header bytes 64..76, big-endian).
    pub(super) w012: [u32; 3],
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
    pub(super) fn new(mid: &Midstate, header: &[u8; 80]) -> Prepared {
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
    pub(super) fn digest(&self, nonce: u32) -> [u32; 8] {
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
pub(super) fn be_word(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(bytes);
    u32::from_be_bytes(b)
}

/// A 64-byte block as sixteen big-endian words.
pub(super) fn block_words(block: &[u8]) -> [u32; 16] {
    let mut w = [0u32; 16];
    for (x, b) in w.iter_mut().zip(block.chunks_exact(4)) {
        *x = be_word(b);
    }
    w
}

/// Eight state words as the 32 digest bytes (big-endian words).
#[inline(always)]
pub(super) fn words_to_bytes(words: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// [`scan_range_with`] of the scalar implementation over `[lo, hi)`,
/// hi <= 2^32.
///
/// [`scan_range_with`]: super::scan_range_with
pub(super) fn scan_scalar(job: &HashJob, mid: &Midstate, lo: u64, hi: u64) -> ScanResult {
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

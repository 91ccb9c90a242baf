//! The warp-wide matrix instructions: `mma.sync.aligned.m16n8k16` and the
//! data movement of `ldmatrix.sync.aligned.m8n8`.
//!
//! It exists to keep the fragment layouts of the PTX ISA ("Matrix Fragments
//! for mma.m16n8k16 with floating point type", "ldmatrix" figures) in one
//! place, as pure functions over the warp's 32 lanes of registers. With
//! `groupID = lane >> 2` and `tig = lane % 4` (thread in group):
//!
//! - A (16x16, .row), 4 .b32 registers of two halves each, a0..a7 (a0 the
//!   low half of register 0): row = groupID for a0,a1,a4,a5 and groupID+8
//!   for a2,a3,a6,a7; col = tig*2 + (i&1), plus 8 for a4..a7.
//! - B (16x8, .col), 2 registers, b0..b3: row (k) = tig*2 + (i&1), plus 8
//!   for b2,b3; col (n) = groupID.
//! - C and D (16x8 f32), 4 registers c0..c3: row = groupID for c0,c1 and
//!   groupID+8 for c2,c3; col = tig*2 + (i&1).
//!
//! Accumulation model: every product of two f16 (or bf16) values is exact
//! in f64; the 16 products and C are summed in f64 in k order and the sum
//! is rounded once to f32 (round to nearest even). Hardware tensor cores
//! do not round each partial sum as a serial f32 loop would either, but
//! they truncate to a fixed internal precision: results can differ from a
//! real GPU in the last bits of f32. Subnormal f16 inputs are honoured;
//! NaN and infinities propagate as IEEE arithmetic does in f64.

use super::decode::MmaKind;
use super::float::{self, Rnd};

/// Element `h` (0: low half, 1: high) of a .b32 register as f64.
fn half(kind: MmaKind, reg: u64, h: u32) -> f64 {
    let bits = (reg >> (16 * h)) & 0xffff;
    match kind {
        MmaKind::F16 => float::F16.to_f64(bits),
        MmaKind::BF16 => float::BF16.to_f64(bits),
    }
}

/// The matrix element position (row, col) of A element `e` (0..8) of a lane.
pub fn a_pos(lane: usize, e: usize) -> (usize, usize) {
    let g = lane >> 2;
    let t = lane & 3;
    let row = g + 8 * ((e >> 1) & 1);
    let col = t * 2 + (e & 1) + 8 * (e >> 2);
    (row, col)
}

/// (k, n) of B element `e` (0..4) of a lane.
pub fn b_pos(lane: usize, e: usize) -> (usize, usize) {
    let g = lane >> 2;
    let t = lane & 3;
    (t * 2 + (e & 1) + 8 * (e >> 1), g)
}

/// (row, col) of C/D element `e` (0..4) of a lane.
pub fn c_pos(lane: usize, e: usize) -> (usize, usize) {
    let g = lane >> 2;
    let t = lane & 3;
    (g + 8 * (e >> 1), t * 2 + (e & 1))
}

/// D = A*B + C for one warp. `a[r][lane]`, `b[r][lane]`, `c[r][lane]`: the
/// fragment registers; returns `d[r][lane]` as f32 bits.
pub fn mma_m16n8k16(
    kind: MmaKind,
    a: &[[u64; 32]; 4],
    b: &[[u64; 32]; 2],
    c: &[[u64; 32]; 4],
) -> [[u64; 32]; 4] {
    let mut am = [[0f64; 16]; 16];
    let mut bm = [[0f64; 8]; 16];
    let mut cm = [[0f64; 8]; 16];
    for lane in 0..32 {
        for e in 0..8 {
            let (r, k) = a_pos(lane, e);
            am[r][k] = half(kind, a[e >> 1][lane], (e & 1) as u32);
        }
        for e in 0..4 {
            let (k, n) = b_pos(lane, e);
            bm[k][n] = half(kind, b[e >> 1][lane], (e & 1) as u32);
        }
        for (e, creg) in c.iter().enumerate() {
            let (r, n) = c_pos(lane, e);
            cm[r][n] = f32::from_bits(creg[lane] as u32) as f64;
        }
    }
    let mut d = [[0u64; 32]; 4];
    for lane in 0..32 {
        for (e, dreg) in d.iter_mut().enumerate() {
            let (r, n) = c_pos(lane, e);
            let mut s = 0f64;
            for k in 0..16 {
                s += am[r][k] * bm[k][n];
            }
            s += cm[r][n];
            dreg[lane] = float::F32.encode(s, Rnd::Rn);
        }
    }
    d
}

/// ldmatrix .m8n8 .b16: `rows[j][r]` is the 16-byte row r of matrix j;
/// returns the value of destination register j of `lane`.
pub fn ldmatrix_fragment(rows: &[[[u8; 16]; 8]], j: usize, lane: usize, trans: bool) -> u32 {
    let m = &rows[j];
    if !trans {
        let r = lane / 4;
        let c = 4 * (lane % 4);
        u32::from_le_bytes([m[r][c], m[r][c + 1], m[r][c + 2], m[r][c + 3]])
    } else {
        // Element (row, col) of the transposed matrix is element (col, row)
        // of the stored one: this lane gets rows 2*(lane%4) and +1, at
        // column lane/4.
        let col = 2 * (lane / 4);
        let r0 = 2 * (lane % 4);
        let lo = u16::from_le_bytes([m[r0][col], m[r0][col + 1]]);
        let hi = u16::from_le_bytes([m[r0 + 1][col], m[r0 + 1][col + 1]]);
        lo as u32 | (hi as u32) << 16
    }
}

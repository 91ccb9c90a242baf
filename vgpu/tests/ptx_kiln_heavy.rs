//! kiln's memtest, SHA-256d and tensor-core matmul kernels on the
//! interpreter, checked against host computations; prints the interpreter's
//! speed (run with --nocapture).

mod ptx_util;
use ptx_util::*;
use std::time::Instant;

const MEMTEST: &str = include_str!("../../kernels/ptx/memtest.ptx");
const SHA: &str = include_str!("../../kernels/ptx/sha256d.ptx");
const MATMUL: &str = include_str!("../../kernels/ptx/matmul.ptx");

fn pattern(kind: u32, param: u64, i: u64) -> u64 {
    let mask = if kind & 16 != 0 { !0 } else { 0 };
    let w = match kind & 15 {
        1 => random_u64(param, 11, i),
        2 => i,
        _ => param,
    };
    w ^ mask
}

#[test]
fn memtest_fill_verify_collect() {
    let m = module(MEMTEST);
    let words = 16384u64;
    let grid = 4u32;
    let keep = 8u32;
    let mut mem = VecMem::new();
    let buf = mem.alloc(words as usize * 8);
    let stats = mem.alloc(2 * grid as usize * 8);
    let bad = mem.alloc(3 * (grid * keep) as usize * 8);
    let out = mem.alloc((3 + 3 * keep) as usize * 8);
    let t = Instant::now();
    let mut lane_instr = 0u64;
    for (kind, param) in [(1u32, 99u64), (2, 0), (0, 0x5555_5555_5555_5555), (17, 7)] {
        let st = run(
            &m,
            "kiln_mt_fill",
            cfg(grid, 256),
            &[
                Arg::U64(buf),
                Arg::U64(words),
                Arg::U32(kind),
                Arg::U64(param),
            ],
            &mut mem,
        )
        .expect("fill");
        lane_instr += st.int_ops;
        let got = mem.u64s(buf, words as usize);
        for i in 0..words {
            assert_eq!(
                got[i as usize],
                pattern(kind, param, i),
                "kind {kind} word {i}"
            );
        }
        let st = run(
            &m,
            "kiln_mt_verify",
            cfg(grid, 256),
            &[
                Arg::U64(buf),
                Arg::U64(words),
                Arg::U32(kind),
                Arg::U64(param),
                Arg::U32(keep),
                Arg::U64(stats),
                Arg::U64(bad),
            ],
            &mut mem,
        )
        .expect("verify");
        lane_instr += st.int_ops;
        assert!(mem.u64s(stats, 2 * grid as usize).iter().all(|x| *x == 0));
    }
    // Corrupt three words, then verify, collect.
    let (kind, param) = (1u32, 1234u64);
    run(
        &m,
        "kiln_mt_fill",
        cfg(grid, 256),
        &[
            Arg::U64(buf),
            Arg::U64(words),
            Arg::U32(kind),
            Arg::U64(param),
        ],
        &mut mem,
    )
    .expect("fill");
    let corrupt = [(5u64, 0x1u64), (9000, 0xf0), (16383, 1 << 63)];
    let mut flips = 0;
    for (i, x) in corrupt {
        let v = pattern(kind, param, i) ^ x;
        flips += x.count_ones() as u64;
        vgpu::ptx::Memory::write(&mut mem, buf + 8 * i, &v.to_le_bytes()).expect("corrupt");
    }
    for descending in [0u32, 1] {
        run(
            &m,
            "kiln_mt_verify",
            cfg(grid, 256),
            &[
                Arg::U64(buf),
                Arg::U64(words),
                Arg::U32(kind),
                Arg::U64(param),
                Arg::U32(keep),
                Arg::U64(stats),
                Arg::U64(bad),
            ],
            &mut mem,
        )
        .expect("verify");
        let s = mem.u64s(stats, 2 * grid as usize);
        assert_eq!(s.iter().step_by(2).sum::<u64>(), 3);
        assert_eq!(s.iter().skip(1).step_by(2).sum::<u64>(), flips);
        run(
            &m,
            "kiln_mt_collect",
            cfg(1, 64),
            &[
                Arg::U64(stats),
                Arg::U64(bad),
                Arg::U32(grid),
                Arg::U32(keep),
                Arg::U32(0),
                Arg::U64(out),
            ],
            &mut mem,
        )
        .expect("collect");
        let o = mem.u64s(out, 3 + 3 * keep as usize);
        assert_eq!(&o[..3], &[3, flips, 3]);
        for (n, (i, x)) in corrupt.iter().enumerate() {
            let e = pattern(kind, param, *i);
            assert_eq!(&o[3 + 3 * n..6 + 3 * n], &[*i, e, e ^ x]);
        }
        // Moving inversions: verify, write the inverse.
        let st = run(
            &m,
            "kiln_mt_verify_and_write",
            cfg(grid, 256),
            &[
                Arg::U64(buf),
                Arg::U64(words),
                Arg::U32(kind),
                Arg::U64(param),
                Arg::U32(kind | 16),
                Arg::U64(param),
                Arg::U32(descending),
                Arg::U32(keep),
                Arg::U64(stats),
                Arg::U64(bad),
            ],
            &mut mem,
        )
        .expect("verify_and_write");
        lane_instr += st.int_ops;
        let s = mem.u64s(stats, 2 * grid as usize);
        assert_eq!(
            s.iter().step_by(2).sum::<u64>(),
            3,
            "descending {descending}"
        );
        run(
            &m,
            "kiln_mt_collect",
            cfg(1, 64),
            &[
                Arg::U64(stats),
                Arg::U64(bad),
                Arg::U32(grid),
                Arg::U32(keep),
                Arg::U32(descending),
                Arg::U64(out),
            ],
            &mut mem,
        )
        .expect("collect");
        let o = mem.u64s(out, 3 + 3 * keep as usize);
        assert_eq!(&o[..3], &[3, flips, 3]);
        assert_eq!(o[3], 5);
        let got = mem.u64s(buf, words as usize);
        for i in 0..words {
            assert_eq!(
                got[i as usize],
                pattern(kind | 16, param, i),
                "inverted word {i}"
            );
        }
        // Restore the corrupted state for the next round.
        run(
            &m,
            "kiln_mt_fill",
            cfg(grid, 256),
            &[
                Arg::U64(buf),
                Arg::U64(words),
                Arg::U32(kind),
                Arg::U64(param),
            ],
            &mut mem,
        )
        .expect("fill");
        for (i, x) in corrupt {
            let v = pattern(kind, param, i) ^ x;
            vgpu::ptx::Memory::write(&mut mem, buf + 8 * i, &v.to_le_bytes()).expect("corrupt");
        }
    }
    println!(
        "memtest: {lane_instr} integer lane-ops in {:?}",
        t.elapsed()
    );
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

fn compress(state: &mut [u32; 8], block: &[u8]) {
    let mut w = [0u32; 64];
    for i in 0..16 {
        w[i] = u32::from_be_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ]);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let mut h = *state;
    for i in 0..64 {
        let s1 = h[4].rotate_right(6) ^ h[4].rotate_right(11) ^ h[4].rotate_right(25);
        let ch = (h[4] & h[5]) ^ (!h[4] & h[6]);
        let t1 = h[7]
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[i])
            .wrapping_add(w[i]);
        let s0 = h[0].rotate_right(2) ^ h[0].rotate_right(13) ^ h[0].rotate_right(22);
        let maj = (h[0] & h[1]) ^ (h[0] & h[2]) ^ (h[1] & h[2]);
        let t2 = s0.wrapping_add(maj);
        h = [
            t1.wrapping_add(t2),
            h[0],
            h[1],
            h[2],
            h[3].wrapping_add(t1),
            h[4],
            h[5],
            h[6],
        ];
    }
    for i in 0..8 {
        state[i] = state[i].wrapping_add(h[i]);
    }
}

fn sha256(msg: &[u8]) -> [u8; 32] {
    let mut st = IV;
    let mut m = msg.to_vec();
    let bits = (msg.len() as u64) * 8;
    m.push(0x80);
    while m.len() % 64 != 56 {
        m.push(0);
    }
    m.extend_from_slice(&bits.to_be_bytes());
    for b in m.chunks(64) {
        compress(&mut st, b);
    }
    let mut out = [0u8; 32];
    for i in 0..8 {
        out[4 * i..4 * i + 4].copy_from_slice(&st[i].to_be_bytes());
    }
    out
}

#[test]
fn sha256d_scan_and_collect() {
    let m = module(SHA);
    let header: Vec<u8> = (0..80u32)
        .map(|i| (i.wrapping_mul(37) ^ 0x5a) as u8)
        .collect();
    let mut mid = IV;
    compress(&mut mid, &header[..64]);
    let mut job = [0u32; 16];
    job[..8].copy_from_slice(&mid);
    for i in 0..3 {
        job[8 + i] = u32::from_be_bytes(header[64 + 4 * i..68 + 4 * i].try_into().expect("4"));
    }
    job[11] = 0; // every nonce hits
    job[12] = 1; // sample every nonce
    let start = 1000u32;
    let count = 4096u32;
    let grid = 4u32;
    let mut mem = VecMem::new();
    let jb: Vec<u8> = job.iter().flat_map(|x| x.to_le_bytes()).collect();
    let jp = mem.upload(&jb);
    let rec = mem.alloc(80 * 4 * grid as usize);
    let samples = mem.alloc(32 * count as usize);
    let t = Instant::now();
    let st = run(
        &m,
        "kiln_sha256d_scan",
        cfg(grid, 256),
        &[
            Arg::U64(jp),
            Arg::U32(start),
            Arg::U32(count),
            Arg::U64(rec),
            Arg::U64(samples),
        ],
        &mut mem,
    )
    .expect("scan");
    let el = t.elapsed();
    let lane_instr = st.int_ops;
    // 256-thread blocks: every warp is full, and the scan loop is convergent.
    println!(
        "sha256d: about {:.0} M lane-instructions/s ({} warp instructions x 32 lanes in {:?})",
        st.warp_instructions as f64 * 32.0 / el.as_secs_f64() / 1e6,
        st.warp_instructions,
        el
    );
    println!(
        "sha256d: {} warp instructions, {} integer lane-ops in {:?}: {:.1} M integer lane-ops/s",
        st.warp_instructions,
        lane_instr,
        el,
        lane_instr as f64 / el.as_secs_f64() / 1e6
    );
    let s = mem.bytes(samples, 32 * count as usize);
    let mut fold = [0u32; 8];
    for k in 0..count {
        let mut h = header.clone();
        h[76..80].copy_from_slice(&(start + k).to_le_bytes());
        let d = sha256(&sha256(&h));
        assert_eq!(
            &s[32 * k as usize..32 * k as usize + 32],
            &d[..],
            "nonce {}",
            start + k
        );
        for i in 0..8 {
            fold[i] ^= u32::from_be_bytes(d[4 * i..4 * i + 4].try_into().expect("4"));
        }
    }
    let r = mem.u32s(rec, 80 * grid as usize);
    assert_eq!((0..grid as usize).map(|b| r[80 * b]).sum::<u32>(), count);
    let out = mem.alloc(75 * 4);
    run(
        &m,
        "kiln_sha256d_collect",
        cfg(1, 128),
        &[Arg::U64(rec), Arg::U32(grid), Arg::U64(out)],
        &mut mem,
    )
    .expect("collect");
    let o = mem.u32s(out, 75);
    assert_eq!(o[0] as u64 | (o[1] as u64) << 32, count as u64);
    assert_eq!(&o[2..10], &fold[..]);
    assert_eq!(o[10], 64);
    for i in 0..64 {
        assert_eq!(o[11 + i], start + i as u32);
    }
}

fn bf16_to_f64(b: u16) -> f64 {
    f32::from_bits((b as u32) << 16) as f64
}

#[test]
fn mma_matmul_128() {
    let m = module(MATMUL);
    let n = 128usize;
    let mut mem = VecMem::new();
    for (kernel, bf16) in [("kiln_mma_bf16", true), ("kiln_mma_f16", false)] {
        // Small exact values: k/64 with |k| <= 64 are exact in both formats.
        let av: Vec<f64> = (0..n * n)
            .map(|i| ((random_u64(1, 0, i as u64) % 129) as f64 - 64.0) / 64.0)
            .collect();
        let bv: Vec<f64> = (0..n * n)
            .map(|i| ((random_u64(2, 0, i as u64) % 129) as f64 - 64.0) / 64.0)
            .collect();
        let enc = |x: f64| -> u16 {
            if bf16 {
                ((x as f32).to_bits() >> 16) as u16
            } else {
                half_bits(x)
            }
        };
        let a_bits: Vec<u8> = av.iter().flat_map(|x| enc(*x).to_le_bytes()).collect();
        // Bt[j*n + k] = B[k][j]
        let mut bt = vec![0u16; n * n];
        for k in 0..n {
            for j in 0..n {
                bt[j * n + k] = enc(bv[k * n + j]);
            }
        }
        let bt_bits: Vec<u8> = bt.iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = mem.upload(&a_bits);
        let b = mem.upload(&bt_bits);
        let c = mem.alloc(n * n * 4);
        let t = Instant::now();
        let st = run(
            &m,
            kernel,
            cfg(1, 256),
            &[Arg::U64(a), Arg::U64(b), Arg::U64(c), Arg::U32(n as u32)],
            &mut mem,
        )
        .unwrap_or_else(|f| panic!("{kernel}: {f}"));
        println!(
            "{kernel}: {:?}, {} warp instructions, tensor flops {}",
            t.elapsed(),
            st.warp_instructions,
            st.tensor_flops
        );
        assert_eq!(st.tensor_flops, 2 * (n as u64).pow(3));
        let cv = mem.f32s(c, n * n);
        for i in 0..n {
            for j in 0..n {
                let mut s = 0f64;
                for k in 0..n {
                    s += av[i * n + k] * bv[k * n + j];
                }
                // Every partial sum is a multiple of 2^-12 below 2^8: exact.
                assert_eq!(cv[i * n + j] as f64, s, "{kernel} C[{i}][{j}]");
            }
        }
        let _ = bf16_to_f64;
    }
}

/// An f64 that is exactly representable in binary16, to its bits.
fn half_bits(x: f64) -> u16 {
    if x == 0.0 {
        return if x.is_sign_negative() { 0x8000 } else { 0 };
    }
    let sign = if x < 0.0 { 0x8000u16 } else { 0 };
    let a = x.abs();
    let e = a.log2().floor() as i32;
    let m = (a / 2f64.powi(e) * 1024.0).round() as u32 - 1024;
    sign | (((e + 15) as u16) << 10) | m as u16
}

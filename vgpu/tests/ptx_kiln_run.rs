//! kiln's bandwidth, generator and verification kernels run on the
//! interpreter and compute what their CUDA sources say.

mod ptx_util;
use ptx_util::*;

const BANDWIDTH: &str = include_str!("../../kernels/ptx/bandwidth.ptx");
const GEN: &str = include_str!("../../kernels/ptx/gen.ptx");
const VERIFY: &str = include_str!("../../kernels/ptx/verify.ptx");

#[test]
fn gen_stream_then_bandwidth_kernels() {
    let gen = module(GEN);
    let bw = module(BANDWIDTH);
    let n: u64 = (1 << 14) + 1; // odd: the last element is thread 0's
    let mut mem = VecMem::new();
    let a = mem.alloc(n as usize * 8);
    let c = mem.alloc(n as usize * 8);
    let b = mem.alloc(n as usize * 8);
    let seed = 42;
    let st = run(
        &gen,
        "kiln_gen_stream_f64",
        cfg(8, 256),
        &[Arg::U64(a), Arg::U64(n), Arg::U64(seed)],
        &mut mem,
    )
    .expect("gen a");
    assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    run(
        &gen,
        "kiln_gen_stream_f64",
        cfg(8, 256),
        &[Arg::U64(c), Arg::U64(n), Arg::U64(seed + 1)],
        &mut mem,
    )
    .expect("gen c");
    let av = mem.f64s(a, n as usize);
    let cv = mem.f64s(c, n as usize);
    for i in 0..n {
        assert_eq!(av[i as usize], stream_value(seed, i), "a[{i}]");
    }
    // triad
    let st = run(
        &bw,
        "kiln_bw_triad",
        cfg(8, 256),
        &[Arg::U64(a), Arg::U64(c), Arg::U64(b), Arg::U64(n)],
        &mut mem,
    )
    .expect("triad");
    let bv = mem.f64s(b, n as usize);
    for i in 0..n as usize {
        assert_eq!(bv[i], av[i] + 3.0 * cv[i], "b[{i}]");
    }
    assert_eq!(st.global_bytes_read, 2 * 8 * n);
    assert_eq!(st.global_bytes_written, 8 * n);
    assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    // copy
    run(
        &bw,
        "kiln_bw_copy",
        cfg(4, 128),
        &[Arg::U64(a), Arg::U64(b), Arg::U64(n)],
        &mut mem,
    )
    .expect("copy");
    assert_eq!(mem.f64s(b, n as usize), av);
    // write
    run(
        &bw,
        "kiln_bw_write",
        cfg(3, 64),
        &[Arg::U64(b), Arg::U64(n)],
        &mut mem,
    )
    .expect("write");
    assert!(mem.f64s(b, n as usize).iter().all(|x| *x == 2.0));
    // read: per-block partials, then kiln_reduce_f64 in one block
    let grid = 8u32;
    let partial = mem.alloc(grid as usize * 8);
    run(
        &bw,
        "kiln_bw_read",
        cfg(grid, 256),
        &[Arg::U64(a), Arg::U64(n), Arg::U64(partial)],
        &mut mem,
    )
    .expect("read");
    let total: f64 = av.iter().sum();
    let parts = mem.f64s(partial, grid as usize);
    assert_eq!(parts.iter().sum::<f64>(), total);
    let verify = module(VERIFY);
    let out = mem.alloc(8);
    run(
        &verify,
        "kiln_reduce_f64",
        cfg(1, 256),
        &[Arg::U64(partial), Arg::U32(grid), Arg::U64(out)],
        &mut mem,
    )
    .expect("reduce");
    assert_eq!(mem.f64s(out, 1)[0], total);
}

#[test]
fn digest_and_checksums() {
    let verify = module(VERIFY);
    let n = 5000usize;
    let xs: Vec<f64> = (0..n).map(|i| (i % 251) as f64).collect();
    let mut mem = VecMem::new();
    let x = mem.upload_f64(&xs);
    let grid = 5u32;
    let ps = mem.alloc(grid as usize * 8);
    let ph = mem.alloc(grid as usize * 8);
    run(
        &verify,
        "kiln_digest_f64",
        cfg(grid, 128),
        &[Arg::U64(x), Arg::U64(n as u64), Arg::U64(ps), Arg::U64(ph)],
        &mut mem,
    )
    .expect("digest");
    let sum: f64 = mem.f64s(ps, grid as usize).iter().sum();
    let hash = mem
        .u64s(ph, grid as usize)
        .iter()
        .fold(0u64, |a, b| a.wrapping_add(*b));
    assert_eq!(sum, xs.iter().sum::<f64>());
    let want = xs.iter().enumerate().fold(0u64, |h, (i, v)| {
        h.wrapping_add(digest_term(i as u64, v.to_bits()))
    });
    assert_eq!(hash, want);
    // checksum_u64 then reduce_u64
    let p = mem.alloc(grid as usize * 8);
    run(
        &verify,
        "kiln_checksum_u64",
        cfg(grid, 256),
        &[Arg::U64(x), Arg::U64(n as u64), Arg::U64(p)],
        &mut mem,
    )
    .expect("checksum");
    let out = mem.alloc(8);
    run(
        &verify,
        "kiln_reduce_u64",
        cfg(1, 64),
        &[Arg::U64(p), Arg::U32(grid), Arg::U64(out)],
        &mut mem,
    )
    .expect("reduce_u64");
    assert_eq!(mem.u64s(out, 1)[0], want);
    // checksum_u32 over the same bytes as 2n u32 words
    let words: Vec<u32> = mem.u32s(x, 2 * n);
    run(
        &verify,
        "kiln_checksum_u32",
        cfg(grid, 256),
        &[Arg::U64(x), Arg::U64(2 * n as u64 - 1), Arg::U64(p)],
        &mut mem,
    )
    .expect("checksum_u32");
    let h32 = mem
        .u64s(p, grid as usize)
        .iter()
        .fold(0u64, |a, b| a.wrapping_add(*b));
    let want32 = words[..2 * n - 1]
        .iter()
        .enumerate()
        .fold(0u64, |h, (i, v)| {
            h.wrapping_add(digest_term(i as u64, *v as u64))
        });
    assert_eq!(h32, want32);
    // checksum_u16
    let halves: Vec<u16> = mem.u16s(x, 4 * n);
    run(
        &verify,
        "kiln_checksum_u16",
        cfg(grid, 256),
        &[Arg::U64(x), Arg::U64(4 * n as u64 - 3), Arg::U64(p)],
        &mut mem,
    )
    .expect("checksum_u16");
    let h16 = mem
        .u64s(p, grid as usize)
        .iter()
        .fold(0u64, |a, b| a.wrapping_add(*b));
    let want16 = halves[..4 * n - 3]
        .iter()
        .enumerate()
        .fold(0u64, |h, (i, v)| {
            h.wrapping_add(digest_term(i as u64, *v as u64))
        });
    assert_eq!(h16, want16);
}

#[test]
fn gen_matrices() {
    let gen = module(GEN);
    let (rows, cols) = (37u64, 29u64);
    let len = (rows * cols) as usize;
    let mut mem = VecMem::new();
    let o64 = mem.alloc(len * 8);
    let o32 = mem.alloc(len * 4);
    let o16 = mem.alloc(len * 2);
    let ob16 = mem.alloc(len * 2);
    let (seed, stream) = (7u64, 2u64);
    for col_major in [0u32, 1] {
        let args = |o| {
            [
                Arg::U64(o),
                Arg::U64(rows),
                Arg::U64(cols),
                Arg::U64(seed),
                Arg::U64(stream),
                Arg::U32(col_major),
            ]
        };
        run(
            &gen,
            "kiln_gen_matrix_f64",
            cfg(3, 128),
            &args(o64),
            &mut mem,
        )
        .expect("f64");
        run(
            &gen,
            "kiln_gen_matrix_f32",
            cfg(3, 128),
            &args(o32),
            &mut mem,
        )
        .expect("f32");
        run(
            &gen,
            "kiln_gen_matrix_f16",
            cfg(3, 128),
            &args(o16),
            &mut mem,
        )
        .expect("f16");
        run(
            &gen,
            "kiln_gen_matrix_bf16",
            cfg(3, 128),
            &args(ob16),
            &mut mem,
        )
        .expect("bf16");
        let v64 = mem.f64s(o64, len);
        let v32 = mem.f32s(o32, len);
        let v16 = mem.u16s(o16, len);
        let vb16 = mem.u16s(ob16, len);
        for p in 0..len as u64 {
            let idx = if col_major == 0 {
                p
            } else {
                (p % rows) * cols + p / rows
            };
            let k = (random_u64(seed, stream, idx) >> 40) as i64;
            let want = (k - (1 << 23)) as f64 / 8388608.0;
            assert_eq!(v64[p as usize], want, "f64 {p}");
            assert_eq!(v32[p as usize] as f64, want, "f32 {p}");
            assert_eq!(vb16[p as usize], bf16_rne(want as f32), "bf16 {p}");
            assert_eq!(v16[p as usize], f16_rne(want as f32), "f16 {p}");
        }
    }
}

fn bf16_rne(x: f32) -> u16 {
    let b = x.to_bits();
    let r = b + 0x7fff + ((b >> 16) & 1);
    (r >> 16) as u16
}

/// f32 to IEEE half, round to nearest even (finite inputs below 65504).
fn f16_rne(x: f32) -> u16 {
    let sign = if x.is_sign_negative() { 0x8000u16 } else { 0 };
    let a = x.abs() as f64;
    if a == 0.0 {
        return sign;
    }
    // Scale to units of the half's ulp at this magnitude.
    let e = a.log2().floor() as i32;
    let e = e.max(-14);
    let ulp = 2f64.powi(e - 10);
    let q = (a / ulp).round_ties_even();
    let v = q * ulp;
    // Re-encode.
    if v < 2f64.powi(-14) {
        return sign | q as u16;
    }
    let e2 = v.log2().floor() as i32;
    let m = (v / 2f64.powi(e2 - 10)) as u32 - 1024;
    sign | (((e2 + 15) as u16) << 10) | m as u16
}

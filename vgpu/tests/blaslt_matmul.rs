//! vgpu's cuBLASLt, called in-process: each type's product against an
//! independent f64 reference over the rounded inputs, the refusals real
//! cuBLASLt makes (each with its status and one log line), and event timing
//! around a product.
//!
//! All tests share one node of five GPUs (the driver is a process-wide
//! singleton) and one log file. GPU 0: products; GPU 1: refusals; GPU 2:
//! timing (its clocks must be its own); GPU 3: an illegal address, which
//! poisons its context for good; GPU 4: compute capability 8.0 (no fp8).

use std::ffi::c_void;
use std::ptr::{null, null_mut};

use vgpu::blaslt::api::*;
use vgpu::blaslt::types::*;
use vgpu::driver::api::*;
use vgpu::driver::result::*;

use common::H;

mod common;

const TAG: &str = "blaslt";

/// Timing of every GPU: slow enough that a product's device time is larger
/// than the launch latency (4 us by default).
const CONFIG: &str = "[node]\ngpus = 5\n\n[gpu.timing]\nfp64_tflops = 0.025\nfp32_tflops = 0.05\ntensor_tflops = 0.1\n\n[[gpus]]\nordinal = 4\ncompute_capability = [8, 0]\n";

fn init() {
    common::init(TAG, CONFIG);
}

fn log() -> String {
    common::log(TAG)
}

/// Asserts that a log line contains every one of `parts`.
fn logged(parts: &[&str]) {
    let text = log();
    assert!(
        text.lines().any(|l| parts.iter().all(|p| l.contains(p))),
        "no log line with all of {parts:?}:\n{text}"
    );
}

fn ctx(dev: i32) -> H {
    init();
    common::primary(dev)
}

use common::alloc;

fn upload(bytes: &[u8]) -> u64 {
    let p = alloc(bytes.len().max(1));
    let r = unsafe { cuMemcpyHtoD_v2(p, bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(r, CUDA_SUCCESS);
    p
}

fn download(p: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    assert_eq!(
        unsafe { cuMemcpyDtoH_v2(v.as_mut_ptr().cast(), p, len) },
        CUDA_SUCCESS
    );
    v
}

fn handle() -> H {
    let mut h: H = null_mut();
    assert_eq!(unsafe { cublasLtCreate(&mut h) }, CUBLAS_STATUS_SUCCESS);
    h
}

fn layout(ty: i32, rows: u64, cols: u64, ld: i64) -> H {
    let mut l: H = null_mut();
    assert_eq!(
        unsafe { cublasLtMatrixLayoutCreate(&mut l, ty, rows, cols, ld) },
        CUBLAS_STATUS_SUCCESS
    );
    l
}

fn set_i32(desc: H, attr: i32, v: i32) -> Status {
    unsafe { cublasLtMatmulDescSetAttribute(desc, attr, (&v as *const i32).cast(), 4) }
}

fn desc(compute: i32, scale: i32, ta: bool, tb: bool) -> H {
    let mut d: H = null_mut();
    unsafe {
        assert_eq!(
            cublasLtMatmulDescCreate(&mut d, compute, scale),
            CUBLAS_STATUS_SUCCESS
        );
    }
    assert_eq!(set_i32(d, CUBLASLT_MATMUL_DESC_TRANSA, ta as i32), 0);
    assert_eq!(set_i32(d, CUBLASLT_MATMUL_DESC_TRANSB, tb as i32), 0);
    d
}

fn pref(max_ws: u64) -> H {
    let mut p: H = null_mut();
    unsafe {
        assert_eq!(cublasLtMatmulPreferenceCreate(&mut p), 0);
        assert_eq!(
            cublasLtMatmulPreferenceSetAttribute(
                p,
                CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&max_ws as *const u64).cast(),
                8
            ),
            0
        );
    }
    p
}

/// The heuristic's status and first result.
fn heuristic(h: H, d: H, l: [H; 4], p: H) -> (Status, HeuristicResult, i32) {
    let mut r = HeuristicResult {
        algo: [0; 8],
        workspace_size: 0,
        state: -1,
        waves_count: 0.0,
        reserved: [0; 4],
    };
    let mut n = -1;
    let s = unsafe {
        cublasLtMatmulAlgoGetHeuristic(h, d, l[0], l[1], l[2], l[3], p, 1, &mut r, &mut n)
    };
    (s, r, n)
}

// ---- independent decoding and rounding (not vgpu's) ----------------------------

fn bf16(b: u16) -> f64 {
    f32::from_bits((b as u32) << 16) as f64
}

fn f16(b: u16) -> f64 {
    let s = if b & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = ((b >> 10) & 31) as i32;
    let m = (b & 1023) as f64;
    s * if e == 0 {
        m / 1024.0 * 2f64.powi(-14)
    } else {
        (1.0 + m / 1024.0) * 2f64.powi(e - 15)
    }
}

fn e4m3(b: u8) -> f64 {
    let s = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((b >> 3) & 15) as i32;
    let m = (b & 7) as f64;
    s * if e == 0 {
        m / 8.0 * 2f64.powi(-6)
    } else {
        (1.0 + m / 8.0) * 2f64.powi(e - 7)
    }
}

/// tf32 of a normal f32: 10 fraction bits, to nearest, ties away from zero.
fn tf32_ref(x: f64) -> f64 {
    let q = 2f64.powi(x.abs().log2().floor() as i32 - 10);
    x.signum() * ((x.abs() / q) + 0.5).floor() * q
}

/// The spacing of a format with `mant` fraction bits and smallest normal
/// exponent `emin` at |x|.
fn ulp(x: f64, mant: i32, emin: i32) -> f64 {
    let e = if x == 0.0 {
        emin
    } else {
        (x.abs().log2().floor() as i32).max(emin)
    };
    2f64.powi(e - mant)
}

fn ulp_of(ty: i32, x: f64) -> f64 {
    match ty {
        CUDA_R_16BF => ulp(x, 7, -126),
        CUDA_R_16F => ulp(x, 10, -14),
        CUDA_R_32F => ulp(x, 23, -126),
        _ => ulp(x, 52, -1022),
    }
}

/// A tiny deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// A random element of `ty` with magnitude in [1/4, 4), as bytes, and its
/// value.
fn element(ty: i32, r: &mut Rng) -> (Vec<u8>, f64) {
    let x = r.next();
    let sign = x & 1;
    let e = ((x >> 1) % 4) as i64 - 2; // exponent -2 ..= 1
    match ty {
        CUDA_R_16BF => {
            let b = ((sign << 15) | (((127 + e) as u64) << 7) | ((x >> 3) & 0x7f)) as u16;
            (b.to_le_bytes().to_vec(), bf16(b))
        }
        CUDA_R_16F => {
            let b = ((sign << 15) | (((15 + e) as u64) << 10) | ((x >> 3) & 0x3ff)) as u16;
            (b.to_le_bytes().to_vec(), f16(b))
        }
        CUDA_R_8F_E4M3 => {
            let b = ((sign << 7) | (((7 + e) as u64) << 3) | ((x >> 3) & 7)) as u8;
            (vec![b], e4m3(b))
        }
        CUDA_R_32F => {
            let b = ((sign << 31) | (((127 + e) as u64) << 23) | ((x >> 3) & 0x7f_ffff)) as u32;
            (b.to_le_bytes().to_vec(), f32::from_bits(b) as f64)
        }
        _ => {
            let frac = ((x >> 3) << 23) ^ r.next();
            let b = (sign << 63) | (((1023 + e) as u64) << 52) | (frac & ((1 << 52) - 1));
            (b.to_le_bytes().to_vec(), f64::from_bits(b))
        }
    }
}

fn size_of(ty: i32) -> usize {
    match ty {
        CUDA_R_64F => 8,
        CUDA_R_32F => 4,
        CUDA_R_16F | CUDA_R_16BF => 2,
        _ => 1,
    }
}

fn value_of(ty: i32, b: &[u8]) -> f64 {
    match ty {
        CUDA_R_64F => f64::from_le_bytes(b[..8].try_into().unwrap()),
        CUDA_R_32F => f32::from_le_bytes(b[..4].try_into().unwrap()) as f64,
        CUDA_R_16F => f16(u16::from_le_bytes([b[0], b[1]])),
        CUDA_R_16BF => bf16(u16::from_le_bytes([b[0], b[1]])),
        _ => e4m3(b[0]),
    }
}

/// A column-major matrix in host memory: bytes (with ld padding) and values.
struct Matrix {
    ty: i32,
    rows: usize,
    cols: usize,
    ld: usize,
    bytes: Vec<u8>,
    vals: Vec<f64>,
}

impl Matrix {
    fn random(ty: i32, rows: usize, cols: usize, ld: usize, r: &mut Rng) -> Matrix {
        let sz = size_of(ty);
        let mut bytes = vec![0u8; ld * cols * sz];
        let mut vals = vec![0.0; ld * cols];
        for c in 0..cols {
            for i in 0..rows {
                let (b, v) = element(ty, r);
                let at = i + c * ld;
                bytes[at * sz..(at + 1) * sz].copy_from_slice(&b);
                vals[at] = v;
            }
        }
        Matrix {
            ty,
            rows,
            cols,
            ld,
            bytes,
            vals,
        }
    }

    fn at(&self, r: usize, c: usize) -> f64 {
        self.vals[r + c * self.ld]
    }

    fn layout(&self) -> H {
        layout(self.ty, self.rows as u64, self.cols as u64, self.ld as i64)
    }
}

/// One product to check.
struct Case {
    compute: i32,
    scale: i32,
    ab: i32,
    cd: i32,
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    /// Padding of every leading dimension.
    pad: usize,
    alpha: f64,
    beta: f64,
    /// Compute C in D's buffer (kiln's form: C == D).
    in_place: bool,
    /// fp8 scale factors of A and B (None: unset).
    scales: Option<(f32, f32)>,
}

impl Case {
    fn new(compute: i32, ab: i32, cd: i32, ta: bool, tb: bool, n: usize) -> Case {
        Case {
            compute,
            scale: if compute == CUBLAS_COMPUTE_64F {
                CUDA_R_64F
            } else {
                CUDA_R_32F
            },
            ab,
            cd,
            ta,
            tb,
            m: n,
            n,
            k: n,
            pad: 0,
            alpha: 1.0,
            beta: 0.0,
            in_place: true,
            scales: None,
        }
    }
}

/// Runs `case` on the current context and checks every element of D.
/// Returns the largest error in units of the tolerance.
fn check(case: &Case, seed: u64) -> f64 {
    let mut r = Rng(seed);
    let (m, n, k) = (case.m, case.n, case.k);
    let (ar, ac) = if case.ta { (k, m) } else { (m, k) };
    let (br, bc) = if case.tb { (n, k) } else { (k, n) };
    let a = Matrix::random(case.ab, ar, ac, ar + case.pad, &mut r);
    let b = Matrix::random(case.ab, br, bc, br + case.pad, &mut r);
    let c = Matrix::random(case.cd, m, n, m + case.pad, &mut r);
    let (pa, pb, pc) = (upload(&a.bytes), upload(&b.bytes), upload(&c.bytes));
    let pd = if case.in_place {
        pc
    } else {
        alloc(c.bytes.len())
    };
    let lt = handle();
    let d = desc(case.compute, case.scale, case.ta, case.tb);
    let (mut sa, mut sb) = (1.0, 1.0);
    if let Some((x, y)) = case.scales {
        (sa, sb) = (x as f64, y as f64);
        for (attr, v) in [
            (CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, x),
            (CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, y),
        ] {
            let p = upload(&v.to_le_bytes());
            let s =
                unsafe { cublasLtMatmulDescSetAttribute(d, attr, (&p as *const u64).cast(), 8) };
            assert_eq!(s, CUBLAS_STATUS_SUCCESS);
        }
    }
    let l = [a.layout(), b.layout(), c.layout(), c.layout()];
    let p = pref(32 << 20);
    let (s, res, count) = heuristic(lt, d, l, p);
    assert_eq!((s, count, res.state), (CUBLAS_STATUS_SUCCESS, 1, 0));
    let ws_bytes = res.workspace_size;
    let ws = alloc(ws_bytes.max(1));
    let (a32, b32) = (case.alpha as f32, case.beta as f32);
    let (ap, bp): (*const c_void, *const c_void) = if case.scale == CUDA_R_64F {
        (
            (&case.alpha as *const f64).cast(),
            (&case.beta as *const f64).cast(),
        )
    } else {
        ((&a32 as *const f32).cast(), (&b32 as *const f32).cast())
    };
    let st = unsafe {
        cublasLtMatmul(
            lt,
            d,
            ap,
            pa as *const c_void,
            l[0],
            pb as *const c_void,
            l[1],
            bp,
            pc as *const c_void,
            l[2],
            pd as *mut c_void,
            l[3],
            &res.algo,
            ws as *mut c_void,
            ws_bytes,
            null_mut(),
        )
    };
    assert_eq!(st, CUBLAS_STATUS_SUCCESS, "{}", log());
    let out = download(pd, c.bytes.len());
    let sz = size_of(case.cd);
    let tf = case.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    let rnd = |x: f64| if tf { tf32_ref(x) } else { x };
    let mut worst = 0f64;
    for j in 0..n {
        for i in 0..m {
            let (mut sum, mut mag) = (0f64, 0f64);
            for p in 0..k {
                let x = rnd(if case.ta { a.at(p, i) } else { a.at(i, p) });
                let y = rnd(if case.tb { b.at(j, p) } else { b.at(p, j) });
                sum += x * y;
                mag += (x * y).abs();
            }
            let prod = case.alpha * sa * sb * sum;
            let want = prod + case.beta * c.at(i, j);
            let at = (i + j * c.ld) * sz;
            let got = value_of(case.cd, &out[at..at + sz]);
            // D's rounding, the f32 accumulator's (twice: the sum and the
            // epilogue) and the reference's own f64 summation.
            let tol = if case.compute == CUBLAS_COMPUTE_64F {
                2.0 * k as f64 * f64::EPSILON * mag.max(f64::MIN_POSITIVE)
            } else {
                0.5 * ulp_of(case.cd, want)
                    + ulp_of(CUDA_R_32F, prod.abs().max(want.abs()))
                    + 2.0 * k as f64 * f64::EPSILON * mag * case.alpha.abs()
            };
            let err = (got - want).abs();
            assert!(
                err <= tol,
                "D({i}, {j}) = {got}, want {want} (tolerance {tol})"
            );
            worst = worst.max(err / tol);
        }
    }
    unsafe {
        for x in l {
            assert_eq!(cublasLtMatrixLayoutDestroy(x), 0);
        }
        assert_eq!(cublasLtMatmulDescDestroy(d), 0);
        assert_eq!(cublasLtMatmulPreferenceDestroy(p), 0);
        assert_eq!(cublasLtDestroy(lt), 0);
        for q in [pa, pb, pc, ws] {
            assert_eq!(cuMemFree_v2(q), CUDA_SUCCESS);
        }
        if !case.in_place {
            assert_eq!(cuMemFree_v2(pd), CUDA_SUCCESS);
        }
    }
    worst
}

#[test]
fn bf16_products_match_the_reference() {
    ctx(0);
    // kiln's form: square, NN, C == D, beta 0.
    check(
        &Case::new(
            CUBLAS_COMPUTE_32F,
            CUDA_R_16BF,
            CUDA_R_16BF,
            false,
            false,
            128,
        ),
        1,
    );
    // Non-square, TN, padded leading dimensions, f32 out, alpha and beta.
    let mut c = Case::new(CUBLAS_COMPUTE_32F, CUDA_R_16BF, CUDA_R_32F, true, false, 0);
    (c.m, c.n, c.k, c.pad, c.alpha, c.beta, c.in_place) = (48, 40, 56, 8, 2.0, 0.5, false);
    check(&c, 2);
    // kiln's selftest size.
    check(
        &Case::new(
            CUBLAS_COMPUTE_32F,
            CUDA_R_16BF,
            CUDA_R_16BF,
            false,
            false,
            256,
        ),
        3,
    );
}

#[test]
fn fp16_products_match_the_reference() {
    ctx(0);
    let mut c = Case::new(CUBLAS_COMPUTE_32F, CUDA_R_16F, CUDA_R_16F, false, true, 0);
    (c.m, c.n, c.k, c.pad, c.beta) = (64, 32, 96, 3, -1.0);
    check(&c, 4);
    check(
        &Case::new(
            CUBLAS_COMPUTE_32F,
            CUDA_R_16F,
            CUDA_R_16F,
            false,
            false,
            128,
        ),
        5,
    );
}

#[test]
fn tf32_rounds_its_inputs() {
    ctx(0);
    let c = Case::new(
        CUBLAS_COMPUTE_32F_FAST_TF32,
        CUDA_R_32F,
        CUDA_R_32F,
        false,
        false,
        64,
    );
    check(&c, 6);
    // The rounding is real: on these inputs a product of the unrounded
    // values differs from the tf32 one by more than the tolerance.
    let mut r = Rng(6);
    let a = Matrix::random(CUDA_R_32F, 64, 64, 64, &mut r);
    let b = Matrix::random(CUDA_R_32F, 64, 64, 64, &mut r);
    let full: f64 = (0..64).map(|p| a.at(0, p) * b.at(p, 0)).sum();
    let tf: f64 = (0..64)
        .map(|p| tf32_ref(a.at(0, p)) * tf32_ref(b.at(p, 0)))
        .sum();
    assert!((full - tf).abs() > ulp_of(CUDA_R_32F, full) * 4.0);
}

#[test]
fn fp32_and_fp64_products_match_the_reference() {
    ctx(0);
    check(
        &Case::new(CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_32F, true, true, 64),
        7,
    );
    let mut c = Case::new(CUBLAS_COMPUTE_64F, CUDA_R_64F, CUDA_R_64F, false, false, 0);
    (c.m, c.n, c.k, c.pad, c.alpha, c.beta, c.in_place) = (40, 72, 64, 5, 1.5, 0.25, false);
    check(&c, 8);
    check(
        &Case::new(CUBLAS_COMPUTE_64F, CUDA_R_64F, CUDA_R_64F, true, false, 128),
        9,
    );
}

#[test]
fn fp8_tn_products_with_bf16_output_match_the_reference() {
    ctx(0);
    // kiln's form: TN, square, bf16 C == D.
    check(
        &Case::new(
            CUBLAS_COMPUTE_32F,
            CUDA_R_8F_E4M3,
            CUDA_R_16BF,
            true,
            false,
            128,
        ),
        10,
    );
    check(
        &Case::new(
            CUBLAS_COMPUTE_32F,
            CUDA_R_8F_E4M3,
            CUDA_R_16BF,
            true,
            false,
            256,
        ),
        11,
    );
    // Scale factors, f32 output, non-square with 16-byte multiples.
    let mut c = Case::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_8F_E4M3,
        CUDA_R_32F,
        true,
        false,
        0,
    );
    (c.m, c.n, c.k, c.scales, c.beta) = (32, 48, 64, Some((0.5, 4.0)), 1.0);
    check(&c, 12);
}

/// A small product's objects and buffers on the current context: bf16,
/// NN, n x n, unless changed before [`Small::run`].
struct Small {
    lt: H,
    d: H,
    l: [H; 4],
    a: u64,
    b: u64,
    c: u64,
    ws: u64,
    ws_size: usize,
    algo: Option<Algo>,
    stream: H,
    /// alpha and beta are f64 (CUBLAS_COMPUTE_64F).
    f64_scalars: bool,
}

impl Small {
    fn new(compute: i32, ab: i32, cd: i32, ta: bool, tb: bool, n: u64) -> Small {
        let mut r = Rng(99);
        let a = Matrix::random(ab, n as usize, n as usize, n as usize, &mut r);
        let c = Matrix::random(cd, n as usize, n as usize, n as usize, &mut r);
        let scale = if compute == CUBLAS_COMPUTE_64F {
            CUDA_R_64F
        } else {
            CUDA_R_32F
        };
        Small {
            lt: handle(),
            d: desc(compute, scale, ta, tb),
            l: [a.layout(), a.layout(), c.layout(), c.layout()],
            a: upload(&a.bytes),
            b: upload(&a.bytes),
            c: upload(&c.bytes),
            ws: alloc(8 << 20),
            ws_size: 8 << 20,
            algo: None,
            stream: null_mut(),
            f64_scalars: compute == CUBLAS_COMPUTE_64F,
        }
    }

    fn run(&self) -> Status {
        let (one, zero) = (1f64, 0f64);
        let (one32, zero32) = (1f32, 0f32);
        let (al, be): (*const c_void, *const c_void) = if self.f64_scalars {
            ((&one as *const f64).cast(), (&zero as *const f64).cast())
        } else {
            (
                (&one32 as *const f32).cast(),
                (&zero32 as *const f32).cast(),
            )
        };
        unsafe {
            cublasLtMatmul(
                self.lt,
                self.d,
                al,
                self.a as *const c_void,
                self.l[0],
                self.b as *const c_void,
                self.l[1],
                be,
                self.c as *const c_void,
                self.l[2],
                self.c as *mut c_void,
                self.l[3],
                self.algo.as_ref().map_or(null(), |a| a as *const Algo),
                self.ws as *mut c_void,
                self.ws_size,
                self.stream,
            )
        }
    }

    fn heuristic(&mut self, max_ws: u64) -> HeuristicResult {
        let p = pref(max_ws);
        let (s, r, n) = heuristic(self.lt, self.d, self.l, p);
        assert_eq!((s, n), (CUBLAS_STATUS_SUCCESS, 1), "{}", log());
        self.algo = Some(r.algo);
        r
    }
}

#[test]
fn fp8_must_be_tn() {
    ctx(1);
    let mut s = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_8F_E4M3,
        CUDA_R_16BF,
        false,
        false,
        64,
    );
    let (st, _, n) = heuristic(s.lt, s.d, s.l, pref(1 << 30));
    assert_eq!((st, n), (CUBLAS_STATUS_NOT_SUPPORTED, 0));
    assert_eq!(s.run(), CUBLAS_STATUS_NOT_SUPPORTED);
    logged(&[
        "CUBLAS_STATUS_NOT_SUPPORTED",
        "cublasLtMatmul:",
        "needs A transposed and B not (\"TN\")",
    ]);
    // TN is accepted, and the algorithm wants 4 MiB of workspace.
    assert_eq!(set_i32(s.d, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T), 0);
    assert_eq!(s.heuristic(1 << 30).workspace_size, 4 << 20);
    assert_eq!(s.run(), CUBLAS_STATUS_SUCCESS, "{}", log());
}

#[test]
fn fp8_leading_dimensions_are_multiples_of_16_bytes() {
    ctx(1);
    let s = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_8F_E4M3,
        CUDA_R_16BF,
        true,
        false,
        24,
    );
    assert_eq!(s.run(), CUBLAS_STATUS_NOT_SUPPORTED);
    logged(&[
        "CUBLAS_STATUS_NOT_SUPPORTED",
        "matrix A's leading dimension is 24 bytes",
        "multiple of 16 bytes",
    ]);
}

#[test]
fn fp8_needs_compute_capability_8_9() {
    ctx(4);
    let s = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_8F_E4M3,
        CUDA_R_16BF,
        true,
        false,
        32,
    );
    assert_eq!(s.run(), CUBLAS_STATUS_NOT_SUPPORTED);
    logged(&["fp8 needs compute capability 8.9 or newer; this GPU is 8.0"]);
}

#[test]
fn unsupported_type_combinations_are_refused() {
    ctx(1);
    // bf16 inputs with an fp16 output: not in cuBLASLt's table.
    let s = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_16BF,
        CUDA_R_16F,
        false,
        false,
        16,
    );
    assert_eq!(s.run(), CUBLAS_STATUS_NOT_SUPPORTED);
    logged(&[
        "CUBLAS_STATUS_NOT_SUPPORTED",
        "A CUDA_R_16BF, B CUDA_R_16BF, C CUDA_R_16F",
        "not a combination in cuBLASLt's table",
    ]);
    // fp64 compute on f32 data, and an f32 scale type for fp64.
    let s = Small::new(CUBLAS_COMPUTE_64F, CUDA_R_32F, CUDA_R_32F, false, false, 16);
    assert_eq!(s.run(), CUBLAS_STATUS_NOT_SUPPORTED);
    let mut d: H = null_mut();
    unsafe { cublasLtMatmulDescCreate(&mut d, CUBLAS_COMPUTE_64F, CUDA_R_32F) };
    let mut s = Small::new(CUBLAS_COMPUTE_64F, CUDA_R_64F, CUDA_R_64F, false, false, 16);
    s.d = d;
    assert_eq!(s.run(), CUBLAS_STATUS_NOT_SUPPORTED);
    logged(&["CUBLAS_COMPUTE_64F with scale type CUDA_R_32F, A CUDA_R_64F"]);
    // A known compute type vgpu does not implement says so.
    let s = Small::new(
        CUBLAS_COMPUTE_32F_FAST_16BF,
        CUDA_R_32F,
        CUDA_R_32F,
        false,
        false,
        16,
    );
    assert_eq!(s.run(), CUBLAS_STATUS_NOT_SUPPORTED);
    logged(&["CUBLAS_COMPUTE_32F_FAST_16BF is not implemented by vgpu"]);
}

#[test]
fn a_workspace_smaller_than_the_algorithm_asked_for_is_refused() {
    ctx(1);
    let mut s = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_16BF,
        CUDA_R_16BF,
        false,
        false,
        32,
    );
    // The default preference allows no workspace; a cap lowers the ask.
    let p = unsafe {
        let mut p: H = null_mut();
        assert_eq!(cublasLtMatmulPreferenceCreate(&mut p), 0);
        p
    };
    let (st, r, _) = heuristic(s.lt, s.d, s.l, p);
    assert_eq!((st, r.workspace_size), (CUBLAS_STATUS_SUCCESS, 0));
    assert_eq!(s.heuristic(64 << 10).workspace_size, 64 << 10);
    let r = s.heuristic(32 << 20);
    assert_eq!(r.workspace_size, 1 << 20);
    assert_eq!(r.waves_count, 1.0);
    s.ws_size = 512 << 10;
    assert_eq!(s.run(), CUBLAS_STATUS_INVALID_VALUE);
    logged(&[
        "CUBLAS_STATUS_INVALID_VALUE",
        "workspaceSizeInBytes is 524288, the algorithm needs 1048576",
    ]);
    // algo NULL: the library picks, within the workspace given.
    s.algo = None;
    assert_eq!(s.run(), CUBLAS_STATUS_SUCCESS);
    s.ws_size = 0;
    assert_eq!(s.run(), CUBLAS_STATUS_SUCCESS);
    // An algorithm chosen for another type, or forged, is refused.
    let mut other = Small::new(CUBLAS_COMPUTE_64F, CUDA_R_64F, CUDA_R_64F, false, false, 32);
    s.algo = Some(other.heuristic(1 << 30).algo);
    s.ws_size = 8 << 20;
    assert_eq!(s.run(), CUBLAS_STATUS_INVALID_VALUE);
    logged(&["algo was chosen for a fp64 product, this is a bf16 product"]);
    s.algo = Some([1; 8]);
    assert_eq!(s.run(), CUBLAS_STATUS_INVALID_VALUE);
    logged(&["algo was not returned by cublasLtMatmulAlgoGetHeuristic"]);
}

#[test]
fn wrong_and_destroyed_objects_are_refused() {
    ctx(1);
    let s = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_16BF,
        CUDA_R_16BF,
        false,
        false,
        16,
    );
    let mut bad = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_16BF,
        CUDA_R_16BF,
        false,
        false,
        16,
    );
    // A layout where the descriptor belongs.
    bad.d = s.l[0];
    assert_eq!(bad.run(), CUBLAS_STATUS_INVALID_VALUE);
    logged(&[
        "cublasLtMatmul: the matmul descriptor",
        "is not a matmul descriptor",
    ]);
    bad.d = s.d;
    // A destroyed layout.
    let gone = layout(CUDA_R_16BF, 16, 16, 16);
    assert_eq!(unsafe { cublasLtMatrixLayoutDestroy(gone) }, 0);
    bad.l[1] = gone;
    assert_eq!(bad.run(), CUBLAS_STATUS_INVALID_VALUE);
    logged(&["cublasLtMatmul: Bdesc", "was destroyed"]);
    assert_eq!(
        unsafe { cublasLtMatrixLayoutDestroy(gone) },
        CUBLAS_STATUS_INVALID_VALUE
    );
    bad.l[1] = s.l[1];
    // A destroyed handle: not initialised, as the documentation says.
    let h = handle();
    assert_eq!(unsafe { cublasLtDestroy(h) }, 0);
    bad.lt = h;
    assert_eq!(bad.run(), CUBLAS_STATUS_NOT_INITIALIZED);
    logged(&[
        "CUBLAS_STATUS_NOT_INITIALIZED",
        "cublasLtMatmul: the handle",
        "was destroyed",
    ]);
    assert_eq!(unsafe { cublasLtDestroy(h) }, CUBLAS_STATUS_NOT_INITIALIZED);
    bad.lt = s.lt;
    // An attribute of the wrong size; an unknown one.
    let v = 1u64;
    let st = unsafe {
        cublasLtMatmulDescSetAttribute(
            s.d,
            CUBLASLT_MATMUL_DESC_TRANSA,
            (&v as *const u64).cast(),
            8,
        )
    };
    assert_eq!(st, CUBLAS_STATUS_INVALID_VALUE);
    logged(&["CUBLASLT_MATMUL_DESC_TRANSA takes 4 bytes, sizeInBytes is 8"]);
    assert_eq!(set_i32(s.d, 99, 0), CUBLAS_STATUS_NOT_SUPPORTED);
    // Shapes that do not fit.
    bad.l[1] = layout(CUDA_R_16BF, 8, 16, 8);
    assert_eq!(bad.run(), CUBLAS_STATUS_INVALID_VALUE);
    logged(&["the shapes do not fit: op(A) is 16 x 16, op(B) 8 x 16"]);
    // A leading dimension below the rows.
    bad.l[1] = layout(CUDA_R_16BF, 16, 16, 8);
    assert_eq!(bad.run(), CUBLAS_STATUS_INVALID_VALUE);
    logged(&["matrix B (16 x 16) has leading dimension 8"]);
    assert_eq!(s.run(), CUBLAS_STATUS_SUCCESS);
}

#[test]
fn operands_must_be_memory_of_the_streams_gpu() {
    let c0 = ctx(0);
    let mut far = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_16BF,
        CUDA_R_16BF,
        false,
        false,
        16,
    );
    let mut stream0: H = null_mut();
    assert_eq!(unsafe { cuStreamCreate(&mut stream0, 1) }, CUDA_SUCCESS);
    ctx(1);
    let mut s = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_16BF,
        CUDA_R_16BF,
        false,
        false,
        16,
    );
    let a = s.a;
    s.a = far.a;
    assert_eq!(s.run(), CUBLAS_STATUS_INVALID_VALUE);
    logged(&[
        "cublasLtMatmul: matrix A",
        "on GPU 0)",
        "not memory of GPU 1, the stream's GPU",
    ]);
    s.a = a;
    // A stream of another context: the driver names the rule.
    s.stream = stream0;
    assert_eq!(s.run(), CUBLAS_STATUS_INVALID_VALUE);
    logged(&[
        "CUDA_ERROR_INVALID_CONTEXT: cublasLtMatmul: stream",
        "belongs to GPU 0's context",
    ]);
    // Never-written memory is read, and reported.
    s.stream = null_mut();
    s.b = alloc(16 * 16 * 2);
    assert_eq!(s.run(), CUBLAS_STATUS_SUCCESS);
    logged(&[
        "cublasLtMatmul: matrix B reads never-written bytes of allocation",
        "(16 of its 16 columns)",
    ]);
    assert_eq!(unsafe { cuCtxSetCurrent(c0) }, CUDA_SUCCESS);
    far.stream = stream0;
    assert_eq!(far.run(), CUBLAS_STATUS_SUCCESS);
}

#[test]
fn an_operand_past_its_allocation_is_an_illegal_address() {
    ctx(3);
    let mut s = Small::new(
        CUBLAS_COMPUTE_32F,
        CUDA_R_16BF,
        CUDA_R_16BF,
        false,
        false,
        32,
    );
    s.a = alloc(32 * 32 * 2 - 64);
    let mut w = vec![0u8; 32 * 32 * 2 - 64];
    w.fill(0x3f);
    assert_eq!(
        unsafe { cuMemcpyHtoD_v2(s.a, w.as_ptr().cast(), w.len()) },
        CUDA_SUCCESS
    );
    assert_eq!(s.run(), CUBLAS_STATUS_EXECUTION_FAILED);
    logged(&[
        "CUBLAS_STATUS_EXECUTION_FAILED: cublasLtMatmul: matrix A (32 x 32 CUDA_R_16BF, ld 32: 2048 bytes at",
        "run 64 bytes past the end of allocation",
        "CUDA_ERROR_ILLEGAL_ADDRESS",
    ]);
    // The context is poisoned, for the driver and for cuBLASLt.
    assert_eq!(unsafe { cuCtxSynchronize() }, CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_eq!(s.run(), CUBLAS_STATUS_EXECUTION_FAILED);
    logged(&["cublasLtMatmul: the current context is unusable after CUDA_ERROR_ILLEGAL_ADDRESS"]);
}

/// The modelled time of one product: launch latency, then 2 m n k flops at
/// the class's rate.
fn model_ns(flops: f64, tflops: f64) -> f64 {
    flops / (tflops * 1e3)
}

#[test]
fn events_around_a_product_measure_the_model() {
    ctx(2);
    let latency = 4000.0;
    let mut stream: H = null_mut();
    assert_eq!(unsafe { cuStreamCreate(&mut stream, 1) }, CUDA_SUCCESS);
    let (mut e0, mut e1): (H, H) = (null_mut(), null_mut());
    unsafe {
        assert_eq!(cuEventCreate(&mut e0, 0), CUDA_SUCCESS);
        assert_eq!(cuEventCreate(&mut e1, 0), CUDA_SUCCESS);
    }
    let n = 64u64;
    let flops = 2.0 * (n * n * n) as f64;
    for (compute, ab, cd, ta, tflops) in [
        (CUBLAS_COMPUTE_32F, CUDA_R_16BF, CUDA_R_16BF, false, 0.1),
        (CUBLAS_COMPUTE_32F, CUDA_R_16F, CUDA_R_16F, false, 0.1),
        (
            CUBLAS_COMPUTE_32F_FAST_TF32,
            CUDA_R_32F,
            CUDA_R_32F,
            false,
            0.1,
        ),
        (CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_32F, false, 0.05),
        (CUBLAS_COMPUTE_64F, CUDA_R_64F, CUDA_R_64F, false, 0.025),
        (CUBLAS_COMPUTE_32F, CUDA_R_8F_E4M3, CUDA_R_16BF, true, 0.2),
    ] {
        let mut s = Small::new(compute, ab, cd, ta, false, n);
        s.stream = stream;
        s.heuristic(32 << 20);
        unsafe {
            assert_eq!(cuStreamSynchronize(stream), CUDA_SUCCESS);
            assert_eq!(cuEventRecord(e0, stream), CUDA_SUCCESS);
        }
        assert_eq!(s.run(), CUBLAS_STATUS_SUCCESS, "{}", log());
        unsafe { assert_eq!(cuEventRecord(e1, stream), CUDA_SUCCESS) };
        let mut ms = 0f32;
        assert_eq!(unsafe { cuEventElapsedTime(&mut ms, e0, e1) }, CUDA_SUCCESS);
        // An idle stream: the launch gap, then the product.
        let want = (latency + model_ns(flops, tflops)) / 1e6;
        assert!(
            (ms as f64 - want).abs() <= want * 1e-5,
            "{}: {ms} ms, want {want}",
            compute_name(compute)
        );
    }
    // Two products back to back: the second's launch hides behind the
    // first's work.
    let s = Small {
        stream,
        ..Small::new(
            CUBLAS_COMPUTE_32F,
            CUDA_R_16BF,
            CUDA_R_16BF,
            false,
            false,
            n,
        )
    };
    unsafe {
        assert_eq!(cuStreamSynchronize(stream), CUDA_SUCCESS);
        assert_eq!(cuEventRecord(e0, stream), CUDA_SUCCESS);
    }
    assert_eq!(s.run(), CUBLAS_STATUS_SUCCESS);
    assert_eq!(s.run(), CUBLAS_STATUS_SUCCESS);
    unsafe { assert_eq!(cuEventRecord(e1, stream), CUDA_SUCCESS) };
    let mut ms = 0f32;
    assert_eq!(unsafe { cuEventElapsedTime(&mut ms, e0, e1) }, CUDA_SUCCESS);
    let want = (latency + 2.0 * model_ns(flops, 0.1)) / 1e6;
    assert!(
        (ms as f64 - want).abs() <= want * 1e-5,
        "{ms} ms, want {want}"
    );
}

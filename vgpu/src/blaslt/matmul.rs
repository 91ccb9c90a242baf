//! `D = alpha * op(A) op(B) + beta * C`: which problems cuBLASLt accepts,
//! and the product on the CPU over the virtual GPU's memory.
//!
//! Matrices are column-major (CUBLASLT_ORDER_COL): element (r, c) of a
//! `rows x cols` matrix with leading dimension `ld` is at `r + c * ld`
//! elements from its pointer, and `ld >= rows`. op(A) is `m x k`, op(B)
//! `k x n`, C and D `m x n`.

use std::ffi::c_int;

use super::objects::{Layout, MatmulDesc};
use super::types::*;
use super::{refuse, R};
use crate::driver::heap::{Alloc, Heap};
use crate::driver::result::CUDA_ERROR_ILLEGAL_ADDRESS;
use crate::driver::state::State;

/// The kinds of product vgpu computes, one per row of cuBLASLt's table of
/// `cublasLtMatmul` data types that it implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// bf16 A and B, CUBLAS_COMPUTE_32F, bf16 or f32 C and D.
    Bf16 = 1,
    /// fp16 A and B, CUBLAS_COMPUTE_32F, fp16 or f32 C and D.
    F16 = 2,
    /// f32 everywhere, CUBLAS_COMPUTE_32F.
    F32 = 3,
    /// f32 everywhere, CUBLAS_COMPUTE_32F_FAST_TF32: inputs rounded to tf32.
    Tf32 = 4,
    /// f64 everywhere, CUBLAS_COMPUTE_64F.
    F64 = 5,
    /// E4M3 A and B, CUBLAS_COMPUTE_32F, bf16, fp16 or f32 C and D.
    Fp8 = 6,
}

impl Class {
    pub fn from_id(id: u64) -> Option<Class> {
        [
            Class::Bf16,
            Class::F16,
            Class::F32,
            Class::Tf32,
            Class::F64,
            Class::Fp8,
        ]
        .into_iter()
        .find(|c| *c as u64 == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Bf16 => "bf16",
            Class::F16 => "fp16",
            Class::F32 => "fp32",
            Class::Tf32 => "tf32",
            Class::F64 => "fp64",
            Class::Fp8 => "fp8 e4m3",
        }
    }

    /// The workspace the algorithm asks for: 4 MiB for fp8, 1 MiB for the
    /// others (before the preference's cap).
    pub fn workspace(self) -> u64 {
        match self {
            Class::Fp8 => 4 << 20,
            _ => 1 << 20,
        }
    }

    /// Modelled throughput, in TFLOP/s.
    pub fn tflops(self, t: &crate::config::Timing) -> f64 {
        match self {
            Class::F64 => t.fp64_tflops,
            Class::F32 => t.fp32_tflops,
            Class::Bf16 | Class::F16 | Class::Tf32 => t.tensor_tflops,
            Class::Fp8 => 2.0 * t.tensor_tflops,
        }
    }
}

/// One operand: its format and layout.
#[derive(Debug, Clone, Copy)]
pub struct Operand {
    pub ty: Ty,
    pub rows: u64,
    pub cols: u64,
    pub ld: u64,
}

impl Operand {
    /// Bytes from the pointer to the end of the last element (0: none).
    pub fn extent(&self) -> u64 {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        ((self.cols - 1) * self.ld + self.rows) * self.ty.size()
    }

    fn describe(&self) -> String {
        format!(
            "{} x {} {}, ld {}",
            self.rows,
            self.cols,
            self.ty.name(),
            self.ld
        )
    }
}

/// An accepted problem.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub class: Class,
    pub a: Operand,
    pub b: Operand,
    pub c: Operand,
    pub d: Operand,
    pub ta: bool,
    pub tb: bool,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub desc: MatmulDesc,
}

/// The most multiply-adds one call may ask of the CPU.
const MAX_MACS: u64 = 1 << 33;

fn not_implemented<T>(call: &str, what: impl AsRef<str>) -> R<T> {
    refuse(
        CUBLAS_STATUS_NOT_SUPPORTED,
        format!("{call}: {} is not implemented by vgpu", what.as_ref()),
    )
}

fn op(call: &str, which: &str, v: c_int) -> R<bool> {
    match v {
        CUBLAS_OP_N => Ok(false),
        // Conjugate transpose of a real matrix is its transpose.
        CUBLAS_OP_T | CUBLAS_OP_C => Ok(true),
        other => refuse(
            CUBLAS_STATUS_INVALID_VALUE,
            format!("{call}: {which} = {other} is not a cublasOperation_t"),
        ),
    }
}

/// Checks the descriptor and the four layouts against what cuBLASLt
/// accepts on a GPU of compute capability `cc`, and what vgpu implements.
pub fn plan(call: &str, desc: &MatmulDesc, l: [&Layout; 4], cc: [u32; 2]) -> R<Plan> {
    match desc.pointer_mode {
        CUBLASLT_POINTER_MODE_HOST => {}
        CUBLASLT_POINTER_MODE_DEVICE => {
            return not_implemented(
                call,
                "CUBLASLT_POINTER_MODE_DEVICE (alpha and beta on the device)",
            )
        }
        other => return not_implemented(call, format!("pointer mode {other}")),
    }
    let ta = op(call, "CUBLASLT_MATMUL_DESC_TRANSA", desc.transa)?;
    let tb = op(call, "CUBLASLT_MATMUL_DESC_TRANSB", desc.transb)?;
    if desc.transc != CUBLAS_OP_N {
        return refuse(
            CUBLAS_STATUS_NOT_SUPPORTED,
            format!(
                "{call}: CUBLASLT_MATMUL_DESC_TRANSC = {}: cuBLASLt supports only CUBLAS_OP_N for C",
                desc.transc
            ),
        );
    }
    if desc.epilogue != CUBLASLT_EPILOGUE_DEFAULT {
        return not_implemented(call, format!("epilogue {}", desc.epilogue));
    }
    for (p, name) in [
        (desc.c_scale, "CUBLASLT_MATMUL_DESC_C_SCALE_POINTER"),
        (desc.d_scale, "CUBLASLT_MATMUL_DESC_D_SCALE_POINTER"),
        (desc.amax_d, "CUBLASLT_MATMUL_DESC_AMAX_D_POINTER"),
    ] {
        if p != 0 {
            return not_implemented(call, name);
        }
    }
    let names = ["A", "B", "C", "D"];
    let mut tys = [Ty::F32; 4];
    for (i, lay) in l.iter().enumerate() {
        if lay.order != CUBLASLT_ORDER_COL {
            return not_implemented(
                call,
                format!(
                    "matrix {} in memory order {} (only CUBLASLT_ORDER_COL)",
                    names[i], lay.order
                ),
            );
        }
        if lay.batch != 1 {
            return not_implemented(
                call,
                format!("a batch of {} (matrix {})", lay.batch, names[i]),
            );
        }
        if lay.rows > i32::MAX as u64 || lay.cols > i32::MAX as u64 {
            return refuse(
                CUBLAS_STATUS_NOT_SUPPORTED,
                format!(
                    "{call}: matrix {} is {} x {}: cuBLASLt supports only sizes that fit an int32_t",
                    names[i], lay.rows, lay.cols
                ),
            );
        }
        tys[i] = match Ty::of(lay.ty) {
            Some(t) => t,
            None => {
                return not_implemented(
                    call,
                    format!("matrix {} of type {}", names[i], data_type_name(lay.ty)),
                )
            }
        };
    }
    let [ta_ty, tb_ty, tc_ty, td_ty] = tys;
    let combo = format!(
        "{} with scale type {}, A {}, B {}, C {}, D {}",
        compute_name(desc.compute),
        data_type_name(desc.scale),
        ta_ty.name(),
        tb_ty.name(),
        tc_ty.name(),
        td_ty.name()
    );
    if tc_ty != td_ty {
        return refuse(
            CUBLAS_STATUS_NOT_SUPPORTED,
            format!("{call}: {combo}: C and D must have one type (fp8 outputs, where they may differ, are not implemented by vgpu)"),
        );
    }
    use Ty::*;
    let class = match (desc.compute, desc.scale, ta_ty, tb_ty, tc_ty) {
        (CUBLAS_COMPUTE_32F, CUDA_R_32F, Bf16, Bf16, Bf16 | F32) => Class::Bf16,
        (CUBLAS_COMPUTE_32F, CUDA_R_32F, F16, F16, F16 | F32) => Class::F16,
        (CUBLAS_COMPUTE_32F, CUDA_R_32F, F32, F32, F32) => Class::F32,
        (CUBLAS_COMPUTE_32F_FAST_TF32, CUDA_R_32F, F32, F32, F32) => Class::Tf32,
        (CUBLAS_COMPUTE_64F, CUDA_R_64F, F64, F64, F64) => Class::F64,
        (CUBLAS_COMPUTE_32F, CUDA_R_32F, E4m3, E4m3, Bf16 | F16 | F32) => Class::Fp8,
        (
            CUBLAS_COMPUTE_16F
            | CUBLAS_COMPUTE_16F_PEDANTIC
            | CUBLAS_COMPUTE_32F_PEDANTIC
            | CUBLAS_COMPUTE_64F_PEDANTIC
            | CUBLAS_COMPUTE_32I
            | CUBLAS_COMPUTE_32I_PEDANTIC
            | CUBLAS_COMPUTE_32F_FAST_16F
            | CUBLAS_COMPUTE_32F_FAST_16BF,
            ..,
        ) => return not_implemented(call, compute_name(desc.compute)),
        _ => {
            return refuse(
                CUBLAS_STATUS_NOT_SUPPORTED,
                format!("{call}: {combo} is not a combination in cuBLASLt's table of cublasLtMatmul data types"),
            )
        }
    };
    let [la, lb, lc, ld] = l;
    let operand = |lay: &Layout, ty: Ty, name: &str| -> R<Operand> {
        if lay.ld < 1 || (lay.ld as u64) < lay.rows {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!(
                    "{call}: matrix {name} ({} x {}) has leading dimension {}: column-major needs ld >= rows and ld >= 1",
                    lay.rows, lay.cols, lay.ld
                ),
            );
        }
        Ok(Operand {
            ty,
            rows: lay.rows,
            cols: lay.cols,
            ld: lay.ld as u64,
        })
    };
    let (a, b, c, d) = (
        operand(la, ta_ty, "A")?,
        operand(lb, tb_ty, "B")?,
        operand(lc, tc_ty, "C")?,
        operand(ld, td_ty, "D")?,
    );
    let (m, k) = if ta {
        (a.cols, a.rows)
    } else {
        (a.rows, a.cols)
    };
    let (kb, n) = if tb {
        (b.cols, b.rows)
    } else {
        (b.rows, b.cols)
    };
    if kb != k || c.rows != m || c.cols != n || d.rows != m || d.cols != n {
        return refuse(
            CUBLAS_STATUS_INVALID_VALUE,
            format!(
                "{call}: the shapes do not fit: op(A) is {m} x {k}, op(B) {kb} x {n}, C {} x {}, D {} x {} (want m x k, k x n, m x n, m x n)",
                c.rows, c.cols, d.rows, d.cols
            ),
        );
    }
    if m.saturating_mul(n).saturating_mul(k) > MAX_MACS {
        return refuse(
            CUBLAS_STATUS_NOT_SUPPORTED,
            format!("{call}: a {m} x {n} x {k} product is beyond what vgpu computes on the CPU (2^33 multiply-adds)"),
        );
    }
    for (p, name) in [
        (desc.a_scale, "CUBLASLT_MATMUL_DESC_A_SCALE_POINTER"),
        (desc.b_scale, "CUBLASLT_MATMUL_DESC_B_SCALE_POINTER"),
    ] {
        if p != 0 && class != Class::Fp8 {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!(
                    "{call}: {name} is set for a {} product: scale factors apply to fp8 inputs",
                    class.name()
                ),
            );
        }
    }
    if class == Class::Fp8 {
        let ccs = format!("{}.{}", cc[0], cc[1]);
        if (cc[0], cc[1]) < (8, 9) {
            return refuse(
                CUBLAS_STATUS_NOT_SUPPORTED,
                format!("{call}: fp8 needs compute capability 8.9 or newer; this GPU is {ccs}"),
            );
        }
        // Ada, Hopper and Blackwell GeForce want "TN"; Blackwell data
        // centre GPUs (10.x) take every layout.
        let tn_only = cc == [8, 9] || cc[0] == 9 || cc[0] == 12;
        let tn = ta && !tb;
        if tn_only && !tn {
            return refuse(
                CUBLAS_STATUS_NOT_SUPPORTED,
                format!(
                    "{call}: fp8 on compute capability {ccs} needs A transposed and B not (\"TN\"); got TRANSA {} and TRANSB {}",
                    desc.transa, desc.transb
                ),
            );
        }
        for (o, name) in [(&a, "A"), (&b, "B"), (&c, "C"), (&d, "D")] {
            if !(o.ld * o.ty.size()).is_multiple_of(16) {
                return refuse(
                    CUBLAS_STATUS_NOT_SUPPORTED,
                    format!(
                        "{call}: fp8: matrix {name}'s leading dimension is {} bytes ({}); fp8 kernels need a multiple of 16 bytes",
                        o.ld * o.ty.size(),
                        o.describe()
                    ),
                );
            }
        }
    }
    Ok(Plan {
        class,
        a,
        b,
        c,
        d,
        ta,
        tb,
        m,
        n,
        k,
        desc: *desc,
    })
}

/// A matrix in device memory, checked.
pub struct Place {
    pub alloc: Alloc,
    pub off: usize,
}

/// Why a device pointer cannot hold `len` bytes for device `dev`: a
/// refusal (and for an address outside every live allocation, the context
/// is poisoned, as the faulting kernel would leave it).
#[allow(clippy::too_many_arguments)]
pub fn place(
    call: &str,
    s: &mut State,
    heap: &Heap,
    ctx: u64,
    dev: usize,
    ptr: u64,
    len: u64,
    align: u64,
    what: &str,
) -> R<Option<Place>> {
    if len == 0 {
        return Ok(None);
    }
    if ptr == 0 {
        return refuse(
            CUBLAS_STATUS_INVALID_VALUE,
            format!("{call}: {what} is NULL"),
        );
    }
    match heap.range(ptr, len) {
        Err(why) => {
            s.poison(ctx, CUDA_ERROR_ILLEGAL_ADDRESS);
            refuse(
                CUBLAS_STATUS_EXECUTION_FAILED,
                format!(
                    "{call}: {what}: {why}: an illegal address (CUDA_ERROR_ILLEGAL_ADDRESS); GPU {dev}'s context is unusable from now on"
                ),
            )
        }
        Ok((a, _)) if a.device != dev => refuse(
            CUBLAS_STATUS_INVALID_VALUE,
            format!(
                "{call}: {what} is in {}, not memory of GPU {dev}, the stream's GPU (stricter: vgpu's cuBLASLt takes no peer memory)",
                a.describe()
            ),
        ),
        Ok(_) if !ptr.is_multiple_of(align) => refuse(
            CUBLAS_STATUS_INVALID_VALUE,
            format!("{call}: {what} at {ptr:#x} is not aligned to {align} bytes"),
        ),
        Ok((a, off)) => Ok(Some(Place {
            alloc: a.clone(),
            off: off as usize,
        })),
    }
}

/// Reads a stored matrix into `out`: element (row, col) lands at
/// `row * inner + col`, or with `transposed` at `col * inner + row`, after
/// `round`. Logs reads of never-written bytes (once per matrix).
#[allow(clippy::too_many_arguments)]
fn read(
    call: &str,
    what: &str,
    o: &Operand,
    p: &Place,
    transposed: bool,
    inner: usize,
    round: impl Fn(f64) -> f64,
    out: &mut [f64],
) {
    let data = p.alloc.lock();
    let sz = o.ty.size() as usize;
    let (rows, cols, ld) = (o.rows as usize, o.cols as usize, o.ld as usize);
    let mut unwritten = 0;
    for c in 0..cols {
        let base = p.off + c * ld * sz;
        if !data.all_written(base, rows * sz) {
            unwritten += 1;
        }
        let col = &data.bytes[base..base + rows * sz];
        for (r, e) in col.chunks_exact(sz).enumerate() {
            let v = round(o.ty.decode(e));
            if transposed {
                out[c * inner + r] = v;
            } else {
                out[r * inner + c] = v;
            }
        }
    }
    if unwritten > 0 {
        crate::driver::log(&format!(
            "{call}: {what} reads never-written bytes of {} ({unwritten} of its {cols} columns)",
            p.alloc.describe()
        ));
    }
}

/// Where the product reads and writes, all checked.
pub struct Places {
    pub a: Option<Place>,
    pub b: Option<Place>,
    /// None when beta is 0 (C is not read).
    pub c: Option<Place>,
    pub d: Option<Place>,
    pub a_scale: Option<Place>,
    pub b_scale: Option<Place>,
}

/// The scalars, in the scale type.
#[derive(Debug, Clone, Copy)]
pub struct Scalars {
    pub alpha: f64,
    pub beta: f64,
}

fn scale_factor(call: &str, what: &str, p: &Option<Place>) -> f32 {
    match p {
        None => 1.0,
        Some(p) => {
            let d = p.alloc.lock();
            if !d.all_written(p.off, 4) {
                crate::driver::log(&format!(
                    "{call}: {what} reads never-written bytes of {}",
                    p.alloc.describe()
                ));
            }
            f32::from_le_bytes(d.bytes[p.off..p.off + 4].try_into().unwrap_or([0; 4]))
        }
    }
}

/// Computes the product and writes D.
pub fn run(call: &str, plan: &Plan, at: &Places, s: Scalars) {
    let (m, n, k) = (plan.m as usize, plan.n as usize, plan.k as usize);
    let class = plan.class;
    let round: fn(f64) -> f64 = match class {
        Class::Tf32 => |x| tf32(x as f32) as f64,
        _ => |x| x,
    };
    // op(A) row by row and op(B) column by column, k contiguous.
    let mut av = vec![0f64; m * k];
    let mut bv = vec![0f64; n * k];
    if let Some(p) = &at.a {
        // Stored (r, c) = op(A)(i, p): (i, p) = (r, c) untransposed.
        read(call, "matrix A", &plan.a, p, plan.ta, k, round, &mut av);
    }
    if let Some(p) = &at.b {
        // op(B)(p, j) at j * k + p: stored (r, c) = (p, j) untransposed.
        read(call, "matrix B", &plan.b, p, !plan.tb, k, round, &mut bv);
    }
    let mut cv = vec![0f64; m * n];
    if let Some(p) = &at.c {
        // C(i, j) at j * m + i.
        read(call, "matrix C", &plan.c, p, true, m, |x| x, &mut cv);
    }
    let mut dv = vec![0f64; m * n];
    if class == Class::F64 {
        for j in 0..n {
            let bj = &bv[j * k..(j + 1) * k];
            for i in 0..m {
                let ai = &av[i * k..(i + 1) * k];
                let mut acc = 0f64;
                for p in 0..k {
                    acc += ai[p] * bj[p];
                }
                let mut r = s.alpha * acc;
                if s.beta != 0.0 {
                    r += s.beta * cv[j * m + i];
                }
                dv[j * m + i] = r;
            }
        }
    } else {
        let sa = scale_factor(call, "the A scale factor", &at.a_scale);
        let sb = scale_factor(call, "the B scale factor", &at.b_scale);
        let alpha = s.alpha as f32 * sa * sb;
        let beta = s.beta as f32;
        for j in 0..n {
            let bj = &bv[j * k..(j + 1) * k];
            for i in 0..m {
                let ai = &av[i * k..(i + 1) * k];
                let mut acc = 0f64;
                for p in 0..k {
                    acc += ai[p] * bj[p];
                }
                let mut r = alpha * acc as f32;
                if beta != 0.0 {
                    r += beta * cv[j * m + i] as f32;
                }
                dv[j * m + i] = r as f64;
            }
        }
    }
    if let Some(p) = &at.d {
        let mut data = p.alloc.lock();
        let sz = plan.d.ty.size() as usize;
        let ld = plan.d.ld as usize;
        for j in 0..n {
            let base = p.off + j * ld * sz;
            let col = &mut data.bytes[base..base + m * sz];
            for (i, e) in col.chunks_exact_mut(sz).enumerate() {
                plan.d.ty.encode(dv[j * m + i], e);
            }
            data.mark(base, m * sz);
        }
    }
}

//! The exported cuBLASLt functions (signatures from `cublasLt.h`).
//!
//! Each catches any panic (it becomes CUBLAS_STATUS_INTERNAL_ERROR with a
//! log line), checks its pointers and objects, and returns the status the
//! cuBLASLt documentation gives for what went wrong, with one log line.

#![allow(non_snake_case)]
#![allow(clippy::missing_safety_doc)]
#![allow(clippy::too_many_arguments)]

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::matmul::{self, Class, Operand, Places, Scalars};
use super::objects::{objects, Layout, MatmulDesc};
use super::types::*;
use super::{refuse, R};
use crate::driver::log;
use crate::driver::state::{self, current, heap};

type Opaque = *mut c_void;

/// `cublasLtMatmulAlgo_t`: 8 opaque 64-bit words. vgpu's: a marker, the
/// workspace it needs, the kind of product it was chosen for.
pub type Algo = [u64; 8];

/// Word 0 of every algorithm vgpu hands out.
pub const ALGO_MAGIC: u64 = 0x7667_7075_4c74_0001;

/// `cublasLtMatmulHeuristicResult_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HeuristicResult {
    pub algo: Algo,
    pub workspace_size: usize,
    pub state: Status,
    pub waves_count: f32,
    pub reserved: [c_int; 4],
}

fn guard(call: &str, f: impl FnOnce() -> R<()>) -> Status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CUBLAS_STATUS_SUCCESS,
        Ok(Err(s)) => s,
        Err(_) => {
            log(&format!(
                "{call}: internal error (panic in vgpu's cuBLASLt)"
            ));
            CUBLAS_STATUS_INTERNAL_ERROR
        }
    }
}

unsafe fn put<T>(call: &str, p: *mut T, v: T) -> R<()> {
    if p.is_null() {
        return refuse(
            CUBLAS_STATUS_INVALID_VALUE,
            format!("{call}: the output pointer is NULL"),
        );
    }
    p.write(v);
    Ok(())
}

/// An attribute's value from `buf`, which must hold exactly a `T`.
unsafe fn value<T: Copy>(call: &str, name: &str, buf: *const c_void, size: usize) -> R<T> {
    if buf.is_null() {
        return refuse(
            CUBLAS_STATUS_INVALID_VALUE,
            format!("{call}: {name}: buf is NULL"),
        );
    }
    if size != std::mem::size_of::<T>() {
        return refuse(
            CUBLAS_STATUS_INVALID_VALUE,
            format!(
                "{call}: {name} takes {} bytes, sizeInBytes is {size}",
                std::mem::size_of::<T>()
            ),
        );
    }
    Ok(std::ptr::read_unaligned(buf.cast::<T>()))
}

fn not_implemented<T>(call: &str, what: impl AsRef<str>) -> R<T> {
    refuse(
        CUBLAS_STATUS_NOT_SUPPORTED,
        format!("{call}: {} is not implemented by vgpu", what.as_ref()),
    )
}

// ---- the handle -------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cublasLtCreate(handle: *mut Opaque) -> Status {
    let call = "cublasLtCreate";
    guard(call, || {
        if handle.is_null() {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!("{call}: lightHandle is NULL"),
            );
        }
        // cuBLASLt initialises the CUDA runtime, which calls cuInit.
        if let Err(code) = state::init(0) {
            return refuse(
                CUBLAS_STATUS_NOT_INITIALIZED,
                format!(
                    "{call}: the CUDA driver did not initialise ({})",
                    crate::driver::result::name(code)
                ),
            );
        }
        let h = objects().new_handle();
        put(call, handle, h as Opaque)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtDestroy(handle: Opaque) -> Status {
    let call = "cublasLtDestroy";
    guard(call, || {
        if handle.is_null() {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!("{call}: lightHandle is NULL"),
            );
        }
        objects().destroy_handle(handle as u64, call)
    })
}

// ---- matmul descriptors --------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulDescCreate(
    desc: *mut Opaque,
    compute: c_int,
    scale: c_int,
) -> Status {
    let call = "cublasLtMatmulDescCreate";
    guard(call, || {
        if desc.is_null() {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!("{call}: matmulDesc is NULL"),
            );
        }
        let h = objects().new_desc(MatmulDesc {
            compute,
            scale,
            pointer_mode: CUBLASLT_POINTER_MODE_HOST,
            transa: CUBLAS_OP_N,
            transb: CUBLAS_OP_N,
            transc: CUBLAS_OP_N,
            epilogue: CUBLASLT_EPILOGUE_DEFAULT,
            a_scale: 0,
            b_scale: 0,
            c_scale: 0,
            d_scale: 0,
            amax_d: 0,
            fast_accum: 0,
        });
        put(call, desc, h as Opaque)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulDescDestroy(desc: Opaque) -> Status {
    let call = "cublasLtMatmulDescDestroy";
    guard(call, || objects().destroy_desc(desc as u64, call))
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulDescSetAttribute(
    desc: Opaque,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    let call = "cublasLtMatmulDescSetAttribute";
    guard(call, || {
        let mut o = objects();
        let d = o.desc(desc as u64, call)?;
        let pointer = |name: &str| value::<u64>(call, name, buf, size);
        match attr {
            CUBLASLT_MATMUL_DESC_COMPUTE_TYPE => {
                d.compute = value(call, "CUBLASLT_MATMUL_DESC_COMPUTE_TYPE", buf, size)?
            }
            CUBLASLT_MATMUL_DESC_SCALE_TYPE => {
                d.scale = value(call, "CUBLASLT_MATMUL_DESC_SCALE_TYPE", buf, size)?
            }
            CUBLASLT_MATMUL_DESC_POINTER_MODE => {
                d.pointer_mode = value(call, "CUBLASLT_MATMUL_DESC_POINTER_MODE", buf, size)?
            }
            CUBLASLT_MATMUL_DESC_TRANSA => {
                d.transa = value(call, "CUBLASLT_MATMUL_DESC_TRANSA", buf, size)?
            }
            CUBLASLT_MATMUL_DESC_TRANSB => {
                d.transb = value(call, "CUBLASLT_MATMUL_DESC_TRANSB", buf, size)?
            }
            CUBLASLT_MATMUL_DESC_TRANSC => {
                d.transc = value(call, "CUBLASLT_MATMUL_DESC_TRANSC", buf, size)?
            }
            CUBLASLT_MATMUL_DESC_EPILOGUE => {
                d.epilogue = value(call, "CUBLASLT_MATMUL_DESC_EPILOGUE", buf, size)?
            }
            CUBLASLT_MATMUL_DESC_A_SCALE_POINTER => {
                d.a_scale = pointer("CUBLASLT_MATMUL_DESC_A_SCALE_POINTER")?
            }
            CUBLASLT_MATMUL_DESC_B_SCALE_POINTER => {
                d.b_scale = pointer("CUBLASLT_MATMUL_DESC_B_SCALE_POINTER")?
            }
            CUBLASLT_MATMUL_DESC_C_SCALE_POINTER => {
                d.c_scale = pointer("CUBLASLT_MATMUL_DESC_C_SCALE_POINTER")?
            }
            CUBLASLT_MATMUL_DESC_D_SCALE_POINTER => {
                d.d_scale = pointer("CUBLASLT_MATMUL_DESC_D_SCALE_POINTER")?
            }
            CUBLASLT_MATMUL_DESC_AMAX_D_POINTER => {
                d.amax_d = pointer("CUBLASLT_MATMUL_DESC_AMAX_D_POINTER")?
            }
            CUBLASLT_MATMUL_DESC_FAST_ACCUM => {
                // A speed hint: vgpu's accumulation is exact either way.
                d.fast_accum = value(call, "CUBLASLT_MATMUL_DESC_FAST_ACCUM", buf, size)?
            }
            CUBLASLT_MATMUL_DESC_FILL_MODE => {
                return not_implemented(call, "CUBLASLT_MATMUL_DESC_FILL_MODE")
            }
            other => return not_implemented(call, format!("matmul descriptor attribute {other}")),
        }
        Ok(())
    })
}

// ---- matrix layouts ----------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatrixLayoutCreate(
    layout: *mut Opaque,
    ty: c_int,
    rows: u64,
    cols: u64,
    ld: i64,
) -> Status {
    let call = "cublasLtMatrixLayoutCreate";
    guard(call, || {
        if layout.is_null() {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!("{call}: matLayout is NULL"),
            );
        }
        let h = objects().new_layout(Layout {
            ty,
            order: CUBLASLT_ORDER_COL,
            rows,
            cols,
            ld,
            batch: 1,
            batch_stride: 0,
        });
        put(call, layout, h as Opaque)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatrixLayoutDestroy(layout: Opaque) -> Status {
    let call = "cublasLtMatrixLayoutDestroy";
    guard(call, || objects().destroy_layout(layout as u64, call))
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatrixLayoutSetAttribute(
    layout: Opaque,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    let call = "cublasLtMatrixLayoutSetAttribute";
    guard(call, || {
        let mut o = objects();
        let l = o.layout(layout as u64, call, "the matrix layout")?;
        match attr {
            CUBLASLT_MATRIX_LAYOUT_TYPE => {
                l.ty = value::<u32>(call, "CUBLASLT_MATRIX_LAYOUT_TYPE", buf, size)? as c_int
            }
            CUBLASLT_MATRIX_LAYOUT_ORDER => {
                l.order = value(call, "CUBLASLT_MATRIX_LAYOUT_ORDER", buf, size)?
            }
            CUBLASLT_MATRIX_LAYOUT_ROWS => {
                l.rows = value(call, "CUBLASLT_MATRIX_LAYOUT_ROWS", buf, size)?
            }
            CUBLASLT_MATRIX_LAYOUT_COLS => {
                l.cols = value(call, "CUBLASLT_MATRIX_LAYOUT_COLS", buf, size)?
            }
            CUBLASLT_MATRIX_LAYOUT_LD => {
                l.ld = value(call, "CUBLASLT_MATRIX_LAYOUT_LD", buf, size)?
            }
            CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT => {
                l.batch = value(call, "CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT", buf, size)?
            }
            CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET => {
                l.batch_stride = value(
                    call,
                    "CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET",
                    buf,
                    size,
                )?
            }
            other => return not_implemented(call, format!("matrix layout attribute {other}")),
        }
        Ok(())
    })
}

// ---- preferences -------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulPreferenceCreate(pref: *mut Opaque) -> Status {
    let call = "cublasLtMatmulPreferenceCreate";
    guard(call, || {
        if pref.is_null() {
            return refuse(CUBLAS_STATUS_INVALID_VALUE, format!("{call}: pref is NULL"));
        }
        let h = objects().new_pref();
        put(call, pref, h as Opaque)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulPreferenceDestroy(pref: Opaque) -> Status {
    let call = "cublasLtMatmulPreferenceDestroy";
    guard(call, || objects().destroy_pref(pref as u64, call))
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulPreferenceSetAttribute(
    pref: Opaque,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    let call = "cublasLtMatmulPreferenceSetAttribute";
    guard(call, || {
        let mut o = objects();
        let p = o.pref(pref as u64, call)?;
        match attr {
            CUBLASLT_MATMUL_PREF_SEARCH_MODE => {
                let v: u32 = value(call, "CUBLASLT_MATMUL_PREF_SEARCH_MODE", buf, size)?;
                if v != 0 {
                    return not_implemented(
                        call,
                        format!("search mode {v} (only CUBLASLT_SEARCH_BEST_FIT)"),
                    );
                }
                p.search_mode = v;
            }
            CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES => {
                p.max_workspace =
                    value(call, "CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES", buf, size)?
            }
            other => return not_implemented(call, format!("preference attribute {other}")),
        }
        Ok(())
    })
}

// ---- the heuristic and the product -------------------------------------------------

/// The device of the calling thread's current context, and its compute
/// capability.
fn current_device(call: &str) -> R<(usize, [u32; 2])> {
    let s = state::state().or_else(|_| {
        refuse(
            CUBLAS_STATUS_NOT_INITIALIZED,
            format!("{call}: the CUDA driver is not initialised"),
        )
    })?;
    match s.contexts.get(&current()) {
        Some(c) if c.alive => Ok((c.device, s.devices[c.device].config.compute_capability)),
        _ => refuse(
            CUBLAS_STATUS_NOT_INITIALIZED,
            format!("{call}: no live context is current on this thread (cuBLASLt works on the current device)"),
        ),
    }
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulAlgoGetHeuristic(
    handle: Opaque,
    desc: Opaque,
    adesc: Opaque,
    bdesc: Opaque,
    cdesc: Opaque,
    ddesc: Opaque,
    pref: Opaque,
    requested: c_int,
    results: *mut HeuristicResult,
    count: *mut c_int,
) -> Status {
    let call = "cublasLtMatmulAlgoGetHeuristic";
    guard(call, || {
        if !count.is_null() {
            count.write(0);
        }
        let (d, l, p) = {
            let mut o = objects();
            o.handle(handle as u64, call)?;
            let d = *o.desc(desc as u64, call)?;
            let l = [
                *o.layout(adesc as u64, call, "Adesc")?,
                *o.layout(bdesc as u64, call, "Bdesc")?,
                *o.layout(cdesc as u64, call, "Cdesc")?,
                *o.layout(ddesc as u64, call, "Ddesc")?,
            ];
            (d, l, *o.pref(pref as u64, call)?)
        };
        if requested <= 0 {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!("{call}: requestedAlgoCount is {requested}"),
            );
        }
        if results.is_null() || count.is_null() {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!("{call}: heuristicResultsArray or returnAlgoCount is NULL"),
            );
        }
        let (_, cc) = current_device(call)?;
        let plan = matmul::plan(call, &d, [&l[0], &l[1], &l[2], &l[3]], cc)?;
        let ws = plan.class.workspace().min(p.max_workspace);
        results.write(HeuristicResult {
            algo: [ALGO_MAGIC, ws, plan.class as u64, 0, 0, 0, 0, 0],
            workspace_size: ws as usize,
            state: CUBLAS_STATUS_SUCCESS,
            waves_count: 1.0,
            reserved: [0; 4],
        });
        count.write(1);
        Ok(())
    })
}

fn what(name: &str, o: &Operand, ptr: u64) -> String {
    format!(
        "matrix {name} ({} x {} {}, ld {}: {} bytes at {ptr:#x})",
        o.rows,
        o.cols,
        o.ty.name(),
        o.ld,
        o.extent()
    )
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmul(
    handle: Opaque,
    desc: Opaque,
    alpha: *const c_void,
    a: *const c_void,
    adesc: Opaque,
    b: *const c_void,
    bdesc: Opaque,
    beta: *const c_void,
    c: *const c_void,
    cdesc: Opaque,
    d: *mut c_void,
    ddesc: Opaque,
    algo: *const Algo,
    workspace: *mut c_void,
    workspace_size: usize,
    stream: Opaque,
) -> Status {
    let call = "cublasLtMatmul";
    guard(call, || {
        let (dsc, l) = {
            let mut o = objects();
            o.handle(handle as u64, call)?;
            let dsc = *o.desc(desc as u64, call)?;
            let l = [
                *o.layout(adesc as u64, call, "Adesc")?,
                *o.layout(bdesc as u64, call, "Bdesc")?,
                *o.layout(cdesc as u64, call, "Cdesc")?,
                *o.layout(ddesc as u64, call, "Ddesc")?,
            ];
            (dsc, l)
        };
        let mut s = state::state().or_else(|_| {
            refuse(
                CUBLAS_STATUS_NOT_INITIALIZED,
                format!("{call}: the CUDA driver is not initialised"),
            )
        })?;
        if let Some(code) = s.contexts.get(&current()).and_then(|c| c.sticky) {
            return refuse(
                CUBLAS_STATUS_EXECUTION_FAILED,
                format!(
                    "{call}: the current context is unusable after {} (a sticky error)",
                    crate::driver::result::name(code)
                ),
            );
        }
        // The driver logs why a stream is refused.
        let (sid, ctx) = s.stream(stream as u64, call).map_err(|e| {
            use crate::driver::result::*;
            match e {
                CUDA_ERROR_INVALID_HANDLE | CUDA_ERROR_INVALID_CONTEXT => {
                    CUBLAS_STATUS_INVALID_VALUE
                }
                // The GPU fell off the bus, or its context is poisoned.
                _ => CUBLAS_STATUS_EXECUTION_FAILED,
            }
        })?;
        let dev = s.ctx_device(ctx);
        let cc = s.devices[dev].config.compute_capability;
        let plan = matmul::plan(call, &dsc, [&l[0], &l[1], &l[2], &l[3]], cc)?;
        if alpha.is_null() || beta.is_null() {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!("{call}: alpha or beta is NULL"),
            );
        }
        let scalars = if plan.class == Class::F64 {
            Scalars {
                alpha: std::ptr::read_unaligned(alpha.cast::<f64>()),
                beta: std::ptr::read_unaligned(beta.cast::<f64>()),
            }
        } else {
            Scalars {
                alpha: std::ptr::read_unaligned(alpha.cast::<f32>()) as f64,
                beta: std::ptr::read_unaligned(beta.cast::<f32>()) as f64,
            }
        };
        if !algo.is_null() {
            let al = std::ptr::read_unaligned(algo);
            if al[0] != ALGO_MAGIC {
                return refuse(
                    CUBLAS_STATUS_INVALID_VALUE,
                    format!("{call}: algo was not returned by cublasLtMatmulAlgoGetHeuristic"),
                );
            }
            let chosen = Class::from_id(al[2]);
            if chosen != Some(plan.class) {
                return refuse(
                    CUBLAS_STATUS_INVALID_VALUE,
                    format!(
                        "{call}: algo was chosen for a {} product, this is a {} product (stricter: vgpu checks it)",
                        chosen.map_or("unknown", Class::name),
                        plan.class.name()
                    ),
                );
            }
            if (workspace_size as u64) < al[1] {
                return refuse(
                    CUBLAS_STATUS_INVALID_VALUE,
                    format!(
                        "{call}: workspaceSizeInBytes is {workspace_size}, the algorithm needs {} (its heuristic result's workspaceSize)",
                        al[1]
                    ),
                );
            }
        }
        let (pc, pd) = (c as u64, d as u64);
        if pc == pd && plan.c.ld != plan.d.ld {
            return refuse(
                CUBLAS_STATUS_INVALID_VALUE,
                format!(
                    "{call}: in place (C == D) needs Cdesc and Ddesc alike, but ldc is {} and ldd {}",
                    plan.c.ld, plan.d.ld
                ),
            );
        }
        let hp = heap().or(Err(CUBLAS_STATUS_NOT_INITIALIZED))?;
        let fp8 = plan.class == Class::Fp8;
        let align = |o: &Operand| if fp8 { 16 } else { o.ty.size() };
        let mut at = |ptr: u64, len: u64, al: u64, what: &str| {
            matmul::place(call, &mut s, &hp, ctx, dev, ptr, len, al, what)
        };
        if workspace_size > 0 {
            at(workspace as u64, workspace_size as u64, 1, "the workspace")?;
        }
        let places = Places {
            a: at(
                a as u64,
                plan.a.extent(),
                align(&plan.a),
                &what("A", &plan.a, a as u64),
            )?,
            b: at(
                b as u64,
                plan.b.extent(),
                align(&plan.b),
                &what("B", &plan.b, b as u64),
            )?,
            c: if scalars.beta != 0.0 {
                at(pc, plan.c.extent(), align(&plan.c), &what("C", &plan.c, pc))?
            } else {
                None
            },
            d: at(pd, plan.d.extent(), align(&plan.d), &what("D", &plan.d, pd))?,
            a_scale: if dsc.a_scale != 0 {
                at(
                    dsc.a_scale,
                    4,
                    4,
                    "the A scale factor (CUBLASLT_MATMUL_DESC_A_SCALE_POINTER)",
                )?
            } else {
                None
            },
            b_scale: if dsc.b_scale != 0 {
                at(
                    dsc.b_scale,
                    4,
                    4,
                    "the B scale factor (CUBLASLT_MATMUL_DESC_B_SCALE_POINTER)",
                )?
            } else {
                None
            },
        };
        drop(hp);
        if s.hung(sid) {
            // Queued behind a kernel that never finishes: it never runs.
            return Ok(());
        }
        matmul::run(call, &plan, &places, scalars);
        let t = s.timing(dev).clone();
        let flops = 2.0 * plan.m as f64 * plan.n as f64 * plan.k as f64;
        s.enqueue(
            sid,
            t.launch_latency_us * 1e3,
            flops / (plan.class.tflops(&t) * 1e3),
        );
        Ok(())
    })
}

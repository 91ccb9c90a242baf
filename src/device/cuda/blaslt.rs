//! GEMMs through cuBLASLt, loaded at run time by kiln itself: bf16, fp16,
//! tf32, fp32, fp64 and fp8 e4m3, each with the compute type named
//! ([`Types::of`]).
//!
//! Why not cudarc's safe `Matmul<f32>`: it computes with
//! `CUBLAS_COMPUTE_32F_FAST_TF32` (10-bit mantissas), which is not the fp32
//! product kiln measures and would fail the fp32 tolerance. This wrapper asks
//! for exactly the compute type of each variant (`CUBLAS_COMPUTE_32F` for
//! true fp32 and for the 16- and 8-bit inputs, `..._32F_FAST_TF32` for tf32,
//! `CUBLAS_COMPUTE_64F`), picks the algorithm once when the product is
//! prepared, and times only `cublasLtMatmul`.
//!
//! Why kiln opens the library itself (dlopen/dlsym of the eleven functions it
//! calls) rather than through cudarc's `cublaslt` module: cudarc looks only
//! for the sonames of the CUDA version it was built for (12) and panics when
//! a symbol is missing, while kiln's validation nodes run CUDA 13
//! (`libcublasLt.so.13`). The functions used and their structures
//! (`cublasLtMatmulAlgo_t`, the heuristic result) have the same ABI in
//! cuBLASLt 12 and 13; statuses and enums travel as `int`, so a value this
//! code does not know is reported, never undefined behaviour.
//!
//! Where it looks, first found wins: `$KILN_CUBLASLT` (the library file, or a
//! folder holding it), then `libcublasLt.so.13`, `.so.12` and `.so` on the
//! library path, then the usual CUDA install folders and Python wheels
//! (`nvidia/cublas/lib` under system, user, virtualenv and conda
//! site-packages). Without it the f32/f64 GEMMs fail with one line and every
//! other workload still runs.
//!
//! Row-major through a column-major library: a row-major `M x K` matrix is,
//! read column-major, its transpose. So `C = A B` (row-major) is computed as
//! `C^T = B^T A^T` in column-major terms: cuBLASLt's first operand is kiln's
//! B buffer, its second kiln's A buffer, no transposes, and its column-major
//! output is kiln's row-major C ([`ColMajorGemm::for_row_major`], tested on
//! the host below).

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::driver::{CudaSlice, DevicePtr};

use crate::device::cuda::gpu::{Handle, Timer};
use crate::device::{DeviceError, DeviceResult, Precision, Seconds};

/// Workspace given to cuBLASLt: 32 MiB, NVIDIA's recommendation for Hopper.
const WORKSPACE_BYTES: usize = 32 << 20;

/// Library file names, newest first.
const SONAMES: [&str; 3] = ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"];

/// Environment variable naming the cuBLASLt library (a file or a folder).
pub(crate) const ENV: &str = "KILN_CUBLASLT";

// cuBLASLt's C enums and constants (cublasLt.h, library_types.h; the same in
// CUDA 12 and 13).
const CUDA_R_32F: c_int = 0;
const CUDA_R_64F: c_int = 1;
const CUDA_R_16F: c_int = 2;
const CUDA_R_16BF: c_int = 14;
const CUDA_R_8F_E4M3: c_int = 28;
const CUBLAS_COMPUTE_32F: c_int = 68;
const CUBLAS_COMPUTE_64F: c_int = 70;
const CUBLAS_COMPUTE_32F_FAST_TF32: c_int = 77;
const CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: c_int = 1;
const CUBLASLT_MATMUL_DESC_TRANSA: c_int = 3;
const CUBLAS_OP_T: c_int = 1;

/// The cuBLASLt types of one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Types {
    /// `cudaDataType_t` of A and B.
    pub input: c_int,
    /// `cudaDataType_t` of C and D.
    pub output: c_int,
    /// `cublasComputeType_t`.
    pub compute: c_int,
    /// `cudaDataType_t` of alpha and beta.
    pub scale: c_int,
    /// cuBLASLt's first operand is transposed (`CUBLAS_OP_T`): fp8 GEMMs
    /// must be "TN" on Hopper, so kiln hands them B stored column-major.
    pub transpose_first: bool,
    /// For messages: `CUBLAS_COMPUTE_32F`.
    pub compute_name: &'static str,
}

impl Types {
    /// The types of a library variant.
    pub fn of(precision: Precision) -> Types {
        let t = |input, output, compute, scale, compute_name| Types {
            input,
            output,
            compute,
            scale,
            transpose_first: precision == Precision::Fp8,
            compute_name,
        };
        match precision {
            Precision::Fp64 => t(
                CUDA_R_64F,
                CUDA_R_64F,
                CUBLAS_COMPUTE_64F,
                CUDA_R_64F,
                "CUBLAS_COMPUTE_64F",
            ),
            Precision::Fp32 => t(
                CUDA_R_32F,
                CUDA_R_32F,
                CUBLAS_COMPUTE_32F,
                CUDA_R_32F,
                "CUBLAS_COMPUTE_32F",
            ),
            Precision::Tf32 => t(
                CUDA_R_32F,
                CUDA_R_32F,
                CUBLAS_COMPUTE_32F_FAST_TF32,
                CUDA_R_32F,
                "CUBLAS_COMPUTE_32F_FAST_TF32",
            ),
            Precision::Bf16 => t(
                CUDA_R_16BF,
                CUDA_R_16BF,
                CUBLAS_COMPUTE_32F,
                CUDA_R_32F,
                "CUBLAS_COMPUTE_32F",
            ),
            Precision::Fp16 => t(
                CUDA_R_16F,
                CUDA_R_16F,
                CUBLAS_COMPUTE_32F,
                CUDA_R_32F,
                "CUBLAS_COMPUTE_32F",
            ),
            Precision::Fp8 => t(
                CUDA_R_8F_E4M3,
                CUDA_R_16BF,
                CUBLAS_COMPUTE_32F,
                CUDA_R_32F,
                "CUBLAS_COMPUTE_32F",
            ),
        }
    }

    /// The layouts (rows, columns, leading dimension) of cuBLASLt's first
    /// operand, second operand and C/D for the row-major n x n product.
    pub fn layouts(&self, n: u64) -> [(u64, u64, i64); 3] {
        let d = ColMajorGemm::for_row_major(n, n, n);
        let first = if self.transpose_first {
            // Stored k x m (B column-major = B^T's transpose), op T.
            (d.k, d.m, d.k as i64)
        } else {
            (d.m, d.k, d.lda)
        };
        [first, (d.k, d.n, d.ldb), (d.m, d.n, d.ldc)]
    }
}

type Opaque = *mut c_void;

/// `cublasLtMatmulAlgo_t`: 8 opaque u64.
type Algo = [u64; 8];

/// `cublasLtMatmulHeuristicResult_t`.
#[repr(C)]
#[derive(Clone, Copy)]
struct HeuristicResult {
    algo: Algo,
    workspace_size: usize,
    state: c_int,
    waves_count: f32,
    reserved: [c_int; 4],
}

type FnNew = unsafe extern "C" fn(*mut Opaque) -> c_int;
type FnFree = unsafe extern "C" fn(Opaque) -> c_int;
type FnDesc = unsafe extern "C" fn(*mut Opaque, c_int, c_int) -> c_int;
type FnLayout = unsafe extern "C" fn(*mut Opaque, c_int, u64, u64, i64) -> c_int;
type FnPrefSet = unsafe extern "C" fn(Opaque, c_int, *const c_void, usize) -> c_int;
type FnDescSet = unsafe extern "C" fn(Opaque, c_int, *const c_void, usize) -> c_int;
type FnHeuristic = unsafe extern "C" fn(
    Opaque,
    Opaque,
    Opaque,
    Opaque,
    Opaque,
    Opaque,
    Opaque,
    c_int,
    *mut HeuristicResult,
    *mut c_int,
) -> c_int;
type FnMatmul = unsafe extern "C" fn(
    Opaque,
    Opaque,
    *const c_void,
    *const c_void,
    Opaque,
    *const c_void,
    Opaque,
    *const c_void,
    *const c_void,
    Opaque,
    *mut c_void,
    Opaque,
    *const Algo,
    *mut c_void,
    usize,
    *mut c_void,
) -> c_int;

/// The cuBLASLt functions kiln calls (signatures from cublasLt.h).
struct Lib {
    path: String,
    create: FnNew,
    destroy: FnFree,
    desc_create: FnDesc,
    desc_destroy: FnFree,
    desc_set: FnDescSet,
    layout_create: FnLayout,
    layout_destroy: FnFree,
    pref_create: FnNew,
    pref_set: FnPrefSet,
    pref_destroy: FnFree,
    heuristic: FnHeuristic,
    matmul: FnMatmul,
}

// SAFETY: the function pointers are plain addresses in a library that stays
// loaded for the life of the process.
unsafe impl Send for Lib {}
// SAFETY: as above; calling them is what needs care, not sharing them.
unsafe impl Sync for Lib {}

#[cfg_attr(all(target_os = "linux", target_env = "gnu"), link(name = "dl"))]
extern "C" {
    fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlclose(handle: *mut c_void) -> c_int;
}
const RTLD_NOW: c_int = 2;

/// Opens `name` (a path, or a bare name for the library search path) and
/// resolves every function; None when the file or a symbol is missing.
fn open(name: &str) -> Option<Lib> {
    let c = CString::new(name).ok()?;
    // SAFETY: dlopen with a valid NUL-terminated name; the handle is kept
    // open for the life of the process when every symbol resolves, closed
    // otherwise.
    let handle = unsafe { dlopen(c.as_ptr(), RTLD_NOW) };
    if handle.is_null() {
        return None;
    }
    let sym = |s: &str| -> Option<*mut c_void> {
        let cs = CString::new(s).ok()?;
        // SAFETY: a live handle and a NUL-terminated symbol name.
        let p = unsafe { dlsym(handle, cs.as_ptr()) };
        (!p.is_null()).then_some(p)
    };
    macro_rules! f {
        ($ty:ty, $name:literal) => {
            // SAFETY: the symbol is the cuBLASLt function of that name, whose
            // C signature (cublasLt.h) is the field's type.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(sym($name)?) }
        };
    }
    let lib = (|| {
        Some(Lib {
            path: name.to_string(),
            create: f!(FnNew, "cublasLtCreate"),
            destroy: f!(FnFree, "cublasLtDestroy"),
            desc_create: f!(FnDesc, "cublasLtMatmulDescCreate"),
            desc_destroy: f!(FnFree, "cublasLtMatmulDescDestroy"),
            desc_set: f!(FnDescSet, "cublasLtMatmulDescSetAttribute"),
            layout_create: f!(FnLayout, "cublasLtMatrixLayoutCreate"),
            layout_destroy: f!(FnFree, "cublasLtMatrixLayoutDestroy"),
            pref_create: f!(FnNew, "cublasLtMatmulPreferenceCreate"),
            pref_set: f!(FnPrefSet, "cublasLtMatmulPreferenceSetAttribute"),
            pref_destroy: f!(FnFree, "cublasLtMatmulPreferenceDestroy"),
            heuristic: f!(FnHeuristic, "cublasLtMatmulAlgoGetHeuristic"),
            matmul: f!(FnMatmul, "cublasLtMatmul"),
        })
    })();
    if lib.is_none() {
        // SAFETY: the handle came from dlopen above and nothing from it is
        // kept.
        unsafe { dlclose(handle) };
    }
    lib
}

/// Where cuBLASLt was found, or why it was not, in one line (for `kiln
/// list`).
pub(crate) fn status() -> Result<String, String> {
    library().map(|lib| lib.path.clone())
}

/// cuBLASLt, loaded once per process; the error is the one line the GEMMs
/// fail with.
fn library() -> Result<&'static Lib, String> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        let env = std::env::var(ENV).ok();
        candidates(env.as_deref(), &env_dirs())
            .iter()
            .find_map(|c| open(c))
            .ok_or_else(|| {
                format!(
                    "the library GEMMs need cuBLASLt, which was not found (libcublasLt.so.13 or .so.12 \
                     on the library path, or {ENV}=/path/to/libcublasLt.so.N)"
                )
            })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Python prefixes from the environment: `$VIRTUAL_ENV`, `$CONDA_PREFIX`
/// and `$HOME/.local`.
fn env_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["VIRTUAL_ENV", "CONDA_PREFIX"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .collect();
    if let Some(home) = std::env::var_os("HOME") {
        v.push(PathBuf::from(home).join(".local"));
    }
    v
}

/// Names to try, in order: `$KILN_CUBLASLT` (a file, or a folder holding
/// one of [`SONAMES`]), the bare [`SONAMES`] (library path), then the CUDA
/// installations and Python wheels in their usual places (`prefixes` adds
/// Python prefixes such as a virtualenv).
fn candidates(env: Option<&str>, prefixes: &[PathBuf]) -> Vec<String> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(v) = env.map(str::trim).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if p.is_dir() {
            files.extend(SONAMES.iter().map(|s| p.join(s)));
        } else {
            files.push(p);
        }
    }
    let mut out: Vec<String> = files
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    out.extend(SONAMES.iter().map(|s| s.to_string()));
    let mut dirs: Vec<PathBuf> = vec![
        "/usr/local/cuda/lib64".into(),
        "/usr/local/cuda/targets/x86_64-linux/lib".into(),
    ];
    dirs.extend(glob_dirs(Path::new("/usr/local"), "cuda-", "lib64"));
    let mut py_bases: Vec<PathBuf> = ["/usr/lib", "/usr/local/lib", "/opt/conda/lib"]
        .iter()
        .map(PathBuf::from)
        .collect();
    py_bases.extend(prefixes.iter().map(|p| p.join("lib")));
    for base in py_bases {
        for py in glob_dirs(&base, "python3", "") {
            for sub in ["site-packages", "dist-packages"] {
                dirs.push(py.join(sub).join("nvidia/cublas/lib"));
                dirs.push(py.join(sub).join("nvidia/cu13/lib"));
            }
        }
    }
    for d in dirs {
        for s in SONAMES {
            let p = d.join(s);
            if p.is_file() {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// `base/<entry starting with prefix>/sub` for every such entry of `base`,
/// newest (highest sorting) first.
fn glob_dirs(base: &Path, prefix: &str, sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path().join(sub))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.reverse();
    v
}

/// A cuBLAS status as its name (cublas_api.h).
fn status_name(s: c_int) -> String {
    match s {
        0 => "CUBLAS_STATUS_SUCCESS".into(),
        1 => "CUBLAS_STATUS_NOT_INITIALIZED".into(),
        3 => "CUBLAS_STATUS_ALLOC_FAILED".into(),
        7 => "CUBLAS_STATUS_INVALID_VALUE".into(),
        8 => "CUBLAS_STATUS_ARCH_MISMATCH".into(),
        11 => "CUBLAS_STATUS_MAPPING_ERROR".into(),
        13 => "CUBLAS_STATUS_EXECUTION_FAILED".into(),
        14 => "CUBLAS_STATUS_INTERNAL_ERROR".into(),
        15 => "CUBLAS_STATUS_NOT_SUPPORTED".into(),
        16 => "CUBLAS_STATUS_LICENSE_ERROR".into(),
        other => format!("cuBLAS status {other}"),
    }
}

/// Ok for `CUBLAS_STATUS_SUCCESS`, else `"{call}: {status}"`.
fn check(call: &str, s: c_int) -> Result<(), String> {
    if s == 0 {
        Ok(())
    } else {
        Err(format!("{call}: {}", status_name(s)))
    }
}

/// A column-major GEMM `D = op_a x op_b`, m x k times k x n, as cuBLASLt
/// takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColMajorGemm {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub lda: i64,
    pub ldb: i64,
    pub ldc: i64,
    /// True: the first operand is kiln's B buffer and the second its A
    /// buffer.
    pub swap_operands: bool,
}

impl ColMajorGemm {
    /// The column-major call that computes row-major `C (rows x cols) = A
    /// (rows x inner) B (inner x cols)`: `C^T = B^T A^T`, so m = cols,
    /// n = rows, k = inner, with the operands swapped.
    pub fn for_row_major(rows: u64, inner: u64, cols: u64) -> ColMajorGemm {
        ColMajorGemm {
            m: cols,
            n: rows,
            k: inner,
            lda: cols as i64,
            ldb: inner as i64,
            ldc: cols as i64,
            swap_operands: true,
        }
    }
}

/// A prepared cuBLASLt GEMM of square n x n matrices.
pub(crate) struct Gemm {
    lib: &'static Lib,
    h: Handle,
    handle: Opaque,
    desc: Opaque,
    layouts: [Opaque; 3],
    algo: Option<Algo>,
    workspace: Option<CudaSlice<u8>>,
    precision: Precision,
    types: Types,
}

impl Gemm {
    /// Creates the handle, descriptors and workspace and picks the
    /// algorithm for an n x n product in `precision`.
    pub fn new(h: &Handle, n: usize, precision: Precision) -> DeviceResult<Gemm> {
        let lib = library().map_err(|why| {
            DeviceError::unsupported(format!(
                "{}: cuBLASLt not found ({why}); the library GEMMs are skipped, kiln's own mma kernel still runs (set {ENV} to its file or folder)",
                h.label
            ))
            .with_code("library_missing")
        })?;
        let types = Types::of(precision);
        let what = format!(
            "preparing the cuBLASLt {} GEMM ({}, {})",
            precision.name(),
            types.compute_name,
            lib.path
        );
        h.ctx.bind_to_thread().map_err(|e| h.fail(&what, e))?;
        let mut g = Gemm {
            lib,
            h: h.clone(),
            handle: std::ptr::null_mut(),
            desc: std::ptr::null_mut(),
            layouts: [std::ptr::null_mut(); 3],
            algo: None,
            workspace: None,
            precision,
            types,
        };
        if let Some(why) = size_problem(n, precision) {
            return Err(h.failed(&what, &why));
        }
        g.workspace = Some(h.alloc::<u8>(WORKSPACE_BYTES, "the cuBLASLt workspace")?);
        // The GPU's compute capability was checked before (a variant it
        // cannot run is never prepared), so a refusal here (NOT_SUPPORTED,
        // no algorithm) is a failure to report, never a skip: it means
        // kiln asked for something cuBLASLt does not do, or the library is
        // too old for the GPU, and either must be seen.
        g.prepare(n)
            .map_err(|why| h.library_failed(&what, &why))
            .map(|()| g)
    }

    fn prepare(&mut self, n: usize) -> Result<(), String> {
        let lib = self.lib;
        let t = self.types;
        // SAFETY: each call gets pointers to live locals or fields of the
        // types cublasLt.h declares; every object created is stored in `self`
        // at once, so Drop destroys it whatever fails later.
        unsafe {
            check("cublasLtCreate", (lib.create)(&mut self.handle))?;
            check(
                "cublasLtMatmulDescCreate",
                (lib.desc_create)(&mut self.desc, t.compute, t.scale),
            )?;
            if t.transpose_first {
                let op: c_int = CUBLAS_OP_T;
                check(
                    "cublasLtMatmulDescSetAttribute(TRANSA)",
                    (lib.desc_set)(
                        self.desc,
                        CUBLASLT_MATMUL_DESC_TRANSA,
                        (&op) as *const c_int as *const c_void,
                        std::mem::size_of::<c_int>(),
                    ),
                )?;
            }
            let types = [t.input, t.input, t.output];
            for (slot, (rows, cols, ld)) in t.layouts(n as u64).into_iter().enumerate() {
                check(
                    "cublasLtMatrixLayoutCreate",
                    (lib.layout_create)(&mut self.layouts[slot], types[slot], rows, cols, ld),
                )?;
            }
            let mut pref: Opaque = std::ptr::null_mut();
            check(
                "cublasLtMatmulPreferenceCreate",
                (lib.pref_create)(&mut pref),
            )?;
            let ws = WORKSPACE_BYTES;
            let mut result = HeuristicResult {
                algo: [0; 8],
                workspace_size: 0,
                state: 0,
                waves_count: 0.0,
                reserved: [0; 4],
            };
            let mut found: c_int = 0;
            let picked = check(
                "cublasLtMatmulPreferenceSetAttribute",
                (lib.pref_set)(
                    pref,
                    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                    (&ws) as *const usize as *const c_void,
                    std::mem::size_of::<usize>(),
                ),
            )
            .and_then(|()| {
                check(
                    "cublasLtMatmulAlgoGetHeuristic",
                    (lib.heuristic)(
                        self.handle,
                        self.desc,
                        self.layouts[0],
                        self.layouts[1],
                        self.layouts[2],
                        self.layouts[2],
                        pref,
                        1,
                        &mut result,
                        &mut found,
                    ),
                )
            });
            (lib.pref_destroy)(pref);
            picked?;
            if found < 1 {
                return Err(format!(
                    "cuBLASLt has no algorithm for a {n} x {n} {} product on this GPU",
                    self.precision.name()
                ));
            }
            check("the chosen algorithm", result.state)?;
            if result.workspace_size > WORKSPACE_BYTES {
                return Err(format!(
                    "the chosen algorithm wants {} bytes of workspace",
                    result.workspace_size
                ));
            }
            self.algo = Some(result.algo);
        }
        Ok(())
    }

    /// Runs `C = A x B` (row-major; see the module documentation) and
    /// returns the device time of `cublasLtMatmul` alone.
    pub fn run(
        &self,
        timer: &Timer,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        c: &CudaSlice<u8>,
    ) -> DeviceResult<Seconds> {
        let h = &self.h;
        h.check()?;
        let what = format!(
            "cublasLtMatmul ({}, {})",
            self.precision.name(),
            self.types.compute_name
        );
        let (Some(algo), Some(ws)) = (self.algo.as_ref(), self.workspace.as_ref()) else {
            return Err(h.failed(&what, "the GEMM was not prepared"));
        };
        h.ctx.bind_to_thread().map_err(|e| h.fail(&what, e))?;
        let stream = &h.stream;
        let (pa, _ra) = a.device_ptr(stream);
        let (pb, _rb) = b.device_ptr(stream);
        let (pc, _rc) = c.device_ptr(stream);
        let (pw, _rw) = ws.device_ptr(stream);
        // kiln's B is cuBLASLt's first operand, kiln's A its second.
        let (first, second) = (pb, pa);
        let (one32, zero32, one64, zero64) = (1f32, 0f32, 1f64, 0f64);
        let (alpha, beta): (*const c_void, *const c_void) = if self.types.scale == CUDA_R_64F {
            (
                (&one64) as *const f64 as *const c_void,
                (&zero64) as *const f64 as *const c_void,
            )
        } else {
            (
                (&one32) as *const f32 as *const c_void,
                (&zero32) as *const f32 as *const c_void,
            )
        };
        timer.time_each(h, &what, || {
            // SAFETY: handle, descriptor, layouts and algorithm were created
            // for this n and precision and are alive; a, b and c hold n*n
            // elements of the input and output types (CudaMatmul allocates
            // them from the same variant), the
            // workspace WORKSPACE_BYTES, all on this context, which is
            // current; alpha and beta point to live scalars of the scale
            // type; the stream belongs to this context.
            let s = unsafe {
                (self.lib.matmul)(
                    self.handle,
                    self.desc,
                    alpha,
                    first as *const c_void,
                    self.layouts[0],
                    second as *const c_void,
                    self.layouts[1],
                    beta,
                    pc as *const c_void,
                    self.layouts[2],
                    pc as *mut c_void,
                    self.layouts[2],
                    algo as *const Algo,
                    pw as *mut c_void,
                    WORKSPACE_BYTES,
                    stream.cu_stream() as *mut c_void,
                )
            };
            check("cublasLtMatmul", s).map_err(|why| h.library_failed(&what, &why))
        })
    }
}

/// Why cuBLASLt cannot take an `n` x `n` product in `precision`: fp8
/// operands need leading dimensions of a multiple of 16 bytes (cuBLASLt's
/// documentation of cublasLtMatmul: "for FP8, lda, ldb, ldc, ldd must be
/// multiples of 16"), which for one-byte elements is `n`.
pub fn size_problem(n: usize, precision: Precision) -> Option<String> {
    (precision == Precision::Fp8 && !n.is_multiple_of(16)).then(|| {
        format!("an fp8 product needs n to be a multiple of 16 (its leading dimensions in bytes), n is {n}")
    })
}

impl Drop for Gemm {
    fn drop(&mut self) {
        let _ = self.h.ctx.bind_to_thread();
        // SAFETY: each object was created by this Gemm and is destroyed once;
        // null ones were never created. Failures are ignored: nothing more
        // can be done about them while dropping.
        unsafe {
            for l in self.layouts {
                if !l.is_null() {
                    (self.lib.layout_destroy)(l);
                }
            }
            if !self.desc.is_null() {
                (self.lib.desc_destroy)(self.desc);
            }
            if !self.handle.is_null() {
                (self.lib.destroy)(self.handle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference column-major GEMM: D (m x n, ld ldc) = A (m x k, ld lda) x
    /// B (k x n, ld ldb).
    fn col_major_gemm(g: &ColMajorGemm, a: &[f64], b: &[f64]) -> Vec<f64> {
        let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
        let (lda, ldb, ldc) = (g.lda as usize, g.ldb as usize, g.ldc as usize);
        let mut d = vec![0.0; ldc * n];
        for j in 0..n {
            for i in 0..m {
                d[i + j * ldc] = (0..k).map(|p| a[i + p * lda] * b[p + j * ldb]).sum();
            }
        }
        d
    }

    #[test]
    fn row_major_product_through_a_column_major_call() {
        // A: 2 x 3, B: 3 x 4, both row-major, small integers (exact).
        let (rows, inner, cols) = (2usize, 3usize, 4usize);
        let a: Vec<f64> = (0..rows * inner).map(|x| x as f64 - 2.0).collect();
        let b: Vec<f64> = (0..inner * cols).map(|x| (x * 7 % 5) as f64).collect();
        let g = ColMajorGemm::for_row_major(rows as u64, inner as u64, cols as u64);
        assert!(g.swap_operands);
        let (first, second) = (&b, &a); // kiln's B first, A second
        let d = col_major_gemm(&g, first, second);
        for i in 0..rows {
            for j in 0..cols {
                let want: f64 = (0..inner).map(|k| a[i * inner + k] * b[k * cols + j]).sum();
                assert_eq!(d[i * cols + j], want, "C[{i}][{j}] read row-major");
            }
        }
        let sq = ColMajorGemm::for_row_major(8, 8, 8);
        assert_eq!(
            (sq.m, sq.n, sq.k, sq.lda, sq.ldb, sq.ldc),
            (8, 8, 8, 8, 8, 8)
        );
    }

    #[test]
    fn library_candidates_start_with_the_environment() {
        let c = candidates(Some("/opt/x/libcublasLt.so.12"), &[]);
        assert_eq!(c[0], "/opt/x/libcublasLt.so.12");
        assert_eq!(c[1..4], SONAMES, "then the library path, newest first");
        let dir = std::env::temp_dir();
        let in_dir = candidates(dir.to_str(), &[]);
        assert_eq!(in_dir[0], dir.join(SONAMES[0]).to_string_lossy());
        assert_eq!(candidates(Some("  "), &[])[..3], SONAMES);
        assert!(open("/nonexistent/libcublasLt.so.12").is_none());
        assert!(
            open("libc.so.6").is_none(),
            "a library without cuBLASLt's symbols"
        );
    }

    #[test]
    fn every_precision_has_its_compute_type() {
        let t = Types::of(Precision::Fp32);
        assert_eq!(
            (t.input, t.compute, t.scale),
            (CUDA_R_32F, CUBLAS_COMPUTE_32F, CUDA_R_32F)
        );
        assert_eq!(
            Types::of(Precision::Tf32).compute,
            CUBLAS_COMPUTE_32F_FAST_TF32
        );
        assert_eq!(Types::of(Precision::Fp64).scale, CUDA_R_64F);
        let bf = Types::of(Precision::Bf16);
        assert_eq!(
            (bf.input, bf.output, bf.scale),
            (CUDA_R_16BF, CUDA_R_16BF, CUDA_R_32F)
        );
        let f8 = Types::of(Precision::Fp8);
        assert_eq!((f8.input, f8.output), (CUDA_R_8F_E4M3, CUDA_R_16BF));
        assert!(f8.transpose_first);
        for p in [
            Precision::Fp64,
            Precision::Fp32,
            Precision::Tf32,
            Precision::Bf16,
            Precision::Fp16,
        ] {
            assert!(!Types::of(p).transpose_first, "{p:?}");
        }
        // The output types match what kiln's verification reads back.
        use crate::device::{MatmulVariant, Storage};
        for p in [Precision::Bf16, Precision::Fp8] {
            assert_eq!(MatmulVariant::library(p).output(), Storage::Bf16);
        }
        assert_eq!(
            MatmulVariant::library(Precision::Fp16).output(),
            Storage::F16
        );
    }

    #[test]
    fn the_fp8_layout_reads_b_stored_column_major() {
        // cuBLASLt's first operand with op T: stored k x m, ld k. Element
        // (kk, j) of the stored matrix is at kk + j*k: Bt[j*n + kk], i.e.
        // B[kk][j], which op T presents as row j, column kk of B^T.
        let n = 4u64;
        let [first, second, c] = Types::of(Precision::Fp8).layouts(n);
        assert_eq!(first, (n, n, n as i64));
        assert_eq!(second, (n, n, n as i64));
        assert_eq!(c, (n, n, n as i64));
        // With a non-square row-major view the transposed layout differs.
        let plain = Types::of(Precision::Bf16).layouts(8);
        assert_eq!(plain[0], (8, 8, 8));
        // Emulate: D = op_T(first) x second in column-major terms and read
        // D row-major: it must be A x B.
        let n = n as usize;
        let a: Vec<f64> = (0..n * n).map(|x| (x % 7) as f64 - 3.0).collect();
        let b: Vec<f64> = (0..n * n).map(|x| (x * 5 % 9) as f64).collect();
        let bt: Vec<f64> = (0..n * n).map(|p| b[(p % n) * n + p / n]).collect();
        for i in 0..n {
            for j in 0..n {
                // D(m = j, n = i) = sum_kk opT(first)(j, kk) * second(kk, i)
                //                 = sum_kk first_stored(kk, j) * second(kk, i)
                let d: f64 = (0..n).map(|kk| bt[kk + j * n] * a[kk + i * n]).sum();
                let want: f64 = (0..n).map(|kk| a[i * n + kk] * b[kk * n + j]).sum();
                assert_eq!(d, want, "C[{i}][{j}]");
            }
        }
    }

    #[test]
    fn statuses_have_names() {
        assert_eq!(check("x", 0), Ok(()));
        assert_eq!(
            check("cublasLtMatmul", 15).unwrap_err(),
            "cublasLtMatmul: CUBLAS_STATUS_NOT_SUPPORTED"
        );
        assert_eq!(status_name(99), "cuBLAS status 99");
    }

    #[test]
    fn fp8_products_need_n_a_multiple_of_16() {
        assert_eq!(size_problem(128, Precision::Fp8), None);
        let why = size_problem(100, Precision::Fp8).expect("refused");
        assert!(
            why.contains("multiple of 16") && why.contains("100"),
            "{why}"
        );
        assert_eq!(size_problem(100, Precision::Bf16), None);
    }

    #[test]
    fn heuristic_result_has_the_c_layout() {
        // cublasLtMatmulHeuristicResult_t: 64-byte algo, size_t, int, float,
        // int[4].
        assert_eq!(std::mem::size_of::<HeuristicResult>(), 96);
        assert_eq!(std::mem::offset_of!(HeuristicResult, workspace_size), 64);
        assert_eq!(std::mem::offset_of!(HeuristicResult, state), 72);
    }
}

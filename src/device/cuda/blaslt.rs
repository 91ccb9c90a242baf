//! f32 and f64 GEMM through cuBLASLt, loaded at run time.
//!
//! Why not cudarc's safe `Matmul<f32>`: it computes with
//! `CUBLAS_COMPUTE_32F_FAST_TF32` (10-bit mantissas), which is not the fp32
//! product kiln measures and would fail the fp32 tolerance. This wrapper asks
//! for `CUBLAS_COMPUTE_32F` (true fp32) and `CUBLAS_COMPUTE_64F`, picks the
//! algorithm once when the product is prepared, and times only
//! `cublasLtMatmul`.
//!
//! Finding the library: cudarc opens `libcublasLt.so` or `libcublasLt.so.12`
//! (the CUDA 12 ABI its bindings are for) from the library path. When
//! `KILN_CUBLASLT` names a file (or a folder holding `libcublasLt.so.12`),
//! kiln opens that file first with `RTLD_GLOBAL`, so that cudarc's open by
//! name finds it already loaded (the loader matches the file's soname). It
//! also looks in the usual CUDA 12 folders and PyTorch's `nvidia-cublas-cu12`
//! wheel. When none is found the f32/f64 GEMMs fail with one line saying so;
//! every other workload still runs.
//!
//! Row-major through a column-major library: a row-major `M x K` matrix is,
//! read column-major, its transpose. So `C = A B` (row-major) is computed as
//! `C^T = B^T A^T` in column-major terms: cuBLASLt's first operand is kiln's
//! B buffer, its second kiln's A buffer, no transposes, and its column-major
//! output is kiln's row-major C ([`ColMajorGemm::for_row_major`], tested on
//! the host below).

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys;
use cudarc::driver::{CudaSlice, DevicePtr};

use crate::device::cuda::gpu::{Handle, Timer};
use crate::device::{DeviceError, DeviceResult, Precision, Seconds};

/// Workspace given to cuBLASLt: 32 MiB, NVIDIA's recommendation for Hopper.
const WORKSPACE_BYTES: usize = 32 << 20;

/// The soname whose ABI cudarc's `cuda-12080` bindings match.
const SONAME: &str = "libcublasLt.so.12";

/// Environment variable naming the cuBLASLt library (a file or a folder).
pub(crate) const ENV: &str = "KILN_CUBLASLT";

/// Whether cuBLASLt can be loaded, decided once per process; the error is
/// the one line the GEMMs fail with.
pub(crate) fn available() -> Result<(), String> {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let env = std::env::var(ENV).ok();
            for path in candidates(env.as_deref()) {
                if path.is_file() && preload(&path) {
                    break;
                }
            }
            // SAFETY: only opens and closes candidate libraries by name.
            if unsafe { sys::is_culib_present() } {
                Ok(())
            } else {
                Err(format!(
                    "f32/f64 GEMM needs cuBLASLt, which was not found ({SONAME} or libcublasLt.so \
                     on the library path, or {ENV}=/path/to/{SONAME})"
                ))
            }
        })
        .clone()
}

/// Files to try before the library path, in order: `$KILN_CUBLASLT` (a
/// file, or a folder holding [`SONAME`]), then the CUDA 12 installations
/// and Python wheels in their usual places.
fn candidates(env: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(v) = env.map(str::trim).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if p.is_dir() {
            out.push(p.join(SONAME));
        } else {
            out.push(p);
        }
    }
    let mut dirs: Vec<PathBuf> = vec![
        "/usr/local/cuda/lib64".into(),
        "/usr/local/cuda/targets/x86_64-linux/lib".into(),
    ];
    dirs.extend(glob_dirs("/usr/local", "cuda-12", "lib64"));
    for base in ["/usr/lib", "/usr/local/lib", "/opt/conda/lib"] {
        for py in glob_dirs(base, "python3", "") {
            for sub in ["site-packages", "dist-packages"] {
                dirs.push(py.join(sub).join("nvidia/cublas/lib"));
            }
        }
    }
    out.extend(dirs.into_iter().map(|d| d.join(SONAME)));
    out
}

/// `base/<name starting with prefix>/sub` for every such entry of `base`,
/// sorted (so the newest version comes last).
fn glob_dirs(base: &str, prefix: &str, sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path().join(sub))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(target_os = "linux")]
fn preload(path: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    extern "C" {
        fn dlopen(filename: *const std::ffi::c_char, flag: std::ffi::c_int) -> *mut c_void;
    }
    const RTLD_NOW: std::ffi::c_int = 2;
    const RTLD_GLOBAL: std::ffi::c_int = 0x100;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: dlopen with a valid NUL-terminated path; the handle is kept
    // open for the life of the process on purpose (cudarc uses the library
    // from then on).
    !unsafe { dlopen(c.as_ptr(), RTLD_NOW | RTLD_GLOBAL) }.is_null()
}

#[cfg(not(target_os = "linux"))]
fn preload(_path: &Path) -> bool {
    false
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
    h: Handle,
    handle: sys::cublasLtHandle_t,
    desc: sys::cublasLtMatmulDesc_t,
    layouts: [sys::cublasLtMatrixLayout_t; 3],
    algo: Option<sys::cublasLtMatmulAlgo_t>,
    workspace: Option<CudaSlice<u8>>,
    precision: Precision,
}

fn status(e: lt::CublasError) -> String {
    format!("{:?}", e.0)
}

impl Gemm {
    /// Creates the handle, descriptors and workspace and picks the
    /// algorithm for an n x n product in `precision`.
    pub fn new(h: &Handle, n: usize, precision: Precision) -> DeviceResult<Gemm> {
        available().map_err(|why| DeviceError::failed(format!("{}: {why}", h.label)))?;
        let what = format!("preparing the cuBLASLt {} GEMM", precision.name());
        let fail = |why: String| h.failed(&what, &why);
        h.ctx.bind_to_thread().map_err(|e| h.fail(&what, e))?;
        let (data, compute) = match precision {
            Precision::F32 => (
                sys::cudaDataType_t::CUDA_R_32F,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
            Precision::F64 => (
                sys::cudaDataType_t::CUDA_R_64F,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_64F,
            ),
        };
        let mut g = Gemm {
            h: h.clone(),
            handle: std::ptr::null_mut(),
            desc: std::ptr::null_mut(),
            layouts: [std::ptr::null_mut(); 3],
            algo: None,
            workspace: None,
            precision,
        };
        g.handle =
            lt::create_handle().map_err(|e| fail(format!("cublasLtCreate: {}", status(e))))?;
        // The scale type (alpha, beta) is the data type for both precisions.
        g.desc = lt::create_matmul_desc(compute, data)
            .map_err(|e| fail(format!("cublasLtMatmulDescCreate: {}", status(e))))?;
        let dims = ColMajorGemm::for_row_major(n as u64, n as u64, n as u64);
        for (slot, (rows, cols, ld)) in [
            (dims.m, dims.k, dims.lda),
            (dims.k, dims.n, dims.ldb),
            (dims.m, dims.n, dims.ldc),
        ]
        .into_iter()
        .enumerate()
        {
            g.layouts[slot] = lt::create_matrix_layout(data, rows, cols, ld)
                .map_err(|e| fail(format!("cublasLtMatrixLayoutCreate: {}", status(e))))?;
        }
        g.workspace = Some(h.alloc::<u8>(WORKSPACE_BYTES, "the cuBLASLt workspace")?);
        let pref =
            lt::create_matmul_pref().map_err(|e| fail(format!("preference: {}", status(e))))?;
        let ws = WORKSPACE_BYTES;
        // SAFETY: `pref` is a live preference; the attribute is a usize read
        // from a live local of that size.
        let picked = unsafe {
            lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&ws) as *const usize as *const c_void,
                std::mem::size_of::<usize>(),
            )
            .and_then(|()| {
                lt::get_matmul_algo_heuristic(
                    g.handle,
                    g.desc,
                    g.layouts[0],
                    g.layouts[1],
                    g.layouts[2],
                    g.layouts[2],
                    pref,
                )
            })
        };
        // SAFETY: `pref` was created above and is not used after this.
        let _ = unsafe { lt::destroy_matmul_pref(pref) };
        let heuristic = picked.map_err(|e| {
            fail(format!(
                "no cuBLASLt algorithm for a {n} x {n} {} product: {}",
                precision.name(),
                status(e)
            ))
        })?;
        g.algo = Some(heuristic.algo);
        Ok(g)
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
        let what = format!("cublasLtMatmul ({})", self.precision.name());
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
        let (alpha, beta): (*const c_void, *const c_void) = match self.precision {
            Precision::F32 => (
                (&one32) as *const f32 as *const c_void,
                (&zero32) as *const f32 as *const c_void,
            ),
            Precision::F64 => (
                (&one64) as *const f64 as *const c_void,
                (&zero64) as *const f64 as *const c_void,
            ),
        };
        timer.time(h, &what, || {
            // SAFETY: handle, descriptor, layouts and algorithm were created
            // for this n and precision and are alive; a, b and c hold n*n
            // elements of the precision (CudaMatmul allocates them so), the
            // workspace WORKSPACE_BYTES, all on this context; alpha and beta
            // point to live scalars of the scale type.
            unsafe {
                lt::matmul(
                    self.handle,
                    self.desc,
                    alpha,
                    beta,
                    first as *const c_void,
                    self.layouts[0],
                    second as *const c_void,
                    self.layouts[1],
                    pc as *const c_void,
                    self.layouts[2],
                    pc as *mut c_void,
                    self.layouts[2],
                    algo as *const sys::cublasLtMatmulAlgo_t,
                    pw as *mut c_void,
                    WORKSPACE_BYTES,
                    stream.cu_stream() as sys::cudaStream_t,
                )
            }
            .map_err(|e| h.failed(&what, &status(e)))
        })
    }
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
                    let _ = lt::destroy_matrix_layout(l);
                }
            }
            if !self.desc.is_null() {
                let _ = lt::destroy_matmul_desc(self.desc);
            }
            if !self.handle.is_null() {
                let _ = lt::destroy_handle(self.handle);
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
        let c = candidates(Some("/opt/x/libcublasLt.so.12"));
        assert_eq!(c[0], PathBuf::from("/opt/x/libcublasLt.so.12"));
        assert!(c.iter().skip(1).all(|p| p.ends_with(SONAME)));
        let dir = std::env::temp_dir();
        assert_eq!(
            candidates(dir.to_str())[0],
            dir.join(SONAME),
            "a folder names the soname inside it"
        );
        assert!(candidates(Some("  ")).iter().all(|p| p.ends_with(SONAME)));
        assert!(!preload(Path::new("/nonexistent/libcublasLt.so.12")));
    }
}

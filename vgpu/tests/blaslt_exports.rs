//! The built library, installed as `libcublasLt.so.12`, exports the
//! cuBLASLt functions a program resolves with dlsym; every one vgpu does
//! not implement answers CUBLAS_STATUS_NOT_SUPPORTED and logs its name.

use std::path::PathBuf;

/// The cdylib cargo built beside this test binary.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let deps = exe.parent().expect("deps folder");
    [deps.join("libvgpu.so"), deps.join("../libvgpu.so")]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libvgpu.so not built beside {}", deps.display()))
}

/// The functions implemented (the ones a GEMM needs).
const IMPLEMENTED: &[&str] = &[
    "cublasLtCreate",
    "cublasLtDestroy",
    "cublasLtMatmulDescCreate",
    "cublasLtMatmulDescDestroy",
    "cublasLtMatmulDescSetAttribute",
    "cublasLtMatrixLayoutCreate",
    "cublasLtMatrixLayoutDestroy",
    "cublasLtMatrixLayoutSetAttribute",
    "cublasLtMatmulPreferenceCreate",
    "cublasLtMatmulPreferenceDestroy",
    "cublasLtMatmulPreferenceSetAttribute",
    "cublasLtMatmulAlgoGetHeuristic",
    "cublasLtMatmul",
];

#[test]
fn every_cublaslt_function_is_exported() {
    // SAFETY: loading runs no initialiser of ours (vgpu has none).
    let lib = unsafe { libloading::Library::new(library()) }.expect("dlopen libvgpu.so");
    let names = IMPLEMENTED.iter().chain(vgpu::blaslt::unsupported::NAMES);
    let missing: Vec<&&str> = names
        .filter(|n| {
            // SAFETY: only the address is looked up, nothing is called.
            unsafe { lib.get::<unsafe extern "C" fn()>(n.as_bytes()) }.is_err()
        })
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
    for n in IMPLEMENTED {
        assert!(
            !vgpu::blaslt::unsupported::NAMES.contains(n),
            "{n} is implemented"
        );
    }
}

#[test]
fn unimplemented_functions_say_so() {
    let log = std::env::temp_dir().join(format!("vgpu-blaslt-exports-{}.log", std::process::id()));
    std::env::set_var("VGPU_LOG", &log);
    let s = vgpu::blaslt::unsupported::cublasLtMatmulAlgoInit();
    assert_eq!(s, vgpu::blaslt::types::CUBLAS_STATUS_NOT_SUPPORTED);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("cublasLtMatmulAlgoInit: not implemented by vgpu's cuBLASLt (CUBLAS_STATUS_NOT_SUPPORTED)"),
        "{text}"
    );
}

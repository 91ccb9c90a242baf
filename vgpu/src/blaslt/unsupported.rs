//! Every other status-returning cuBLASLt entry point: each logs its name and
//! returns CUBLAS_STATUS_NOT_SUPPORTED, never a silent success.
//!
//! The functions take no parameters: in the C calling conventions of x86-64
//! and AArch64 the caller owns the arguments, so a callee that ignores them
//! is called correctly with any signature. Functions that return something
//! other than a `cublasStatus_t` (`cublasLtGetVersion`,
//! `cublasLtGetStatusName`, ...) are not exported: a caller would read this
//! status as a version or a pointer.

use super::types::{Status, CUBLAS_STATUS_NOT_SUPPORTED};

fn unsupported(name: &str) -> Status {
    crate::driver::log(&format!(
        "{name}: not implemented by vgpu's cuBLASLt (CUBLAS_STATUS_NOT_SUPPORTED)"
    ));
    CUBLAS_STATUS_NOT_SUPPORTED
}

macro_rules! unsupported {
    ($($name:ident),* $(,)?) => {
        $(
            #[no_mangle]
            #[allow(non_snake_case)]
            pub extern "C" fn $name() -> Status {
                unsupported(stringify!($name))
            }
        )*
        /// The names of the functions defined here.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

unsupported!(
    cublasLtGetProperty,
    cublasLtHeuristicsCacheGetCapacity,
    cublasLtHeuristicsCacheSetCapacity,
    cublasLtLoggerForceDisable,
    cublasLtLoggerOpenFile,
    cublasLtLoggerSetCallback,
    cublasLtLoggerSetFile,
    cublasLtLoggerSetLevel,
    cublasLtLoggerSetMask,
    cublasLtMatmulAlgoCapGetAttribute,
    cublasLtMatmulAlgoCheck,
    cublasLtMatmulAlgoConfigGetAttribute,
    cublasLtMatmulAlgoConfigSetAttribute,
    cublasLtMatmulAlgoGetIds,
    cublasLtMatmulAlgoInit,
    cublasLtMatmulDescGetAttribute,
    cublasLtMatmulDescInit_internal,
    cublasLtMatmulPreferenceGetAttribute,
    cublasLtMatmulPreferenceInit_internal,
    cublasLtMatrixLayoutGetAttribute,
    cublasLtMatrixLayoutInit_internal,
    cublasLtMatrixTransform,
    cublasLtMatrixTransformDescCreate,
    cublasLtMatrixTransformDescDestroy,
    cublasLtMatrixTransformDescGetAttribute,
    cublasLtMatrixTransformDescInit_internal,
    cublasLtMatrixTransformDescSetAttribute,
);

//! cuBLASLt on the virtual node: installed as `libcublasLt.so.12` (the same
//! library file), matrix multiplies computed on the CPU with each type's
//! rounding, on the caller's stream in modelled time.
//!
//! Written from NVIDIA's cuBLASLt documentation (the cuBLAS library guide,
//! `cublasLt.h`, `library_types.h`), never from a caller's code:
//!
//! - [`types`]: the C enums (statuses, `cudaDataType_t`,
//!   `cublasComputeType_t`, the attribute numbers) and the element formats
//!   with their rounding.
//! - [`objects`]: handles, matmul descriptors, matrix layouts and
//!   preferences: opaque pointers this library owns, checked on every use.
//! - [`matmul`]: which problems cuBLASLt accepts ([`matmul::plan`]) and the
//!   product itself, reading and writing the virtual GPU's memory.
//! - [`api`]: the exported `extern "C"` functions.
//! - [`unsupported`]: every other status-returning cuBLASLt entry point,
//!   answering CUBLAS_STATUS_NOT_SUPPORTED with its name in the log.
//!
//! Arithmetic ("more exact than hardware"): each dot product is summed in
//! f64 from the rounded inputs. For the f32 compute types (bf16, fp16, fp8,
//! tf32 and fp32 inputs) the sum is rounded once to f32, the accumulator
//! type, and `alpha * acc + beta * C` is evaluated in f32; for
//! CUBLAS_COMPUTE_64F the sum stays f64. The result is rounded to D's type
//! to nearest, ties to even. Tensor cores and split-K kernels round
//! differently (truncated partial sums, other orders), so the last bits of
//! an f32 result can differ from hardware; callers' bounds must cover both.
//! tf32 inputs are rounded to 10 mantissa bits to nearest, ties away from
//! zero (PTX's `cvt.rna.tf32.f32`).
//!
//! Stricter than cuBLASLt (each refusal is one log line naming the rule):
//! operands must be memory of the stream's own GPU (no peer memory), an
//! algorithm must come from [`api::cublasLtMatmulAlgoGetHeuristic`] for
//! the same kind of product, and an operand that runs outside its
//! allocation is an illegal address that poisons the context, as the
//! faulting kernel would on hardware.

pub mod api;
pub mod matmul;
pub mod objects;
pub mod types;
pub mod unsupported;

use types::{status_name, Status};

/// `Result` of this library: the error is a `cublasStatus_t`.
pub type R<T> = Result<T, Status>;

/// Logs `why` (prefixed by the status's name) and returns `status`.
pub fn refuse<T>(status: Status, why: impl AsRef<str>) -> R<T> {
    crate::driver::log(&format!("{}: {}", status_name(status), why.as_ref()));
    Err(status)
}

//! What each workload computes, as pure definitions: the inputs and how they
//! are rounded, the memory-test patterns, SHA-256 and the reference math, the
//! expected values, and the job and result types that backends and workloads
//! exchange.
//!
//! - [`gen`]: the counter-based generator every input comes from;
//! - [`numeric`]: the narrow number formats (bf16, fp16, tf32, fp8 e4m3) as
//!   bit patterns, rounded as the GPUs round;
//! - [`matmul`]: the elements of a product's inputs;
//! - [`memtest`]: the memory-test patterns, fill and check, the algorithm's
//!   steps, the errors found;
//! - [`hash`]: the double SHA-256 job, the scan and its result, kiln's own
//!   SHA-256 (scalar and SHA-NI) and the independent reference digest;
//! - [`transfer`]: the source pattern of every copy, its checksum and the
//!   check of copied words;
//! - [`WorkloadKind`]: the workload families.
//!
//! Layer: the bottom, beside `stats` and `error`. It imports nothing of kiln
//! outside itself, so the backends (`src/device`) and the workloads
//! (`src/workload`) both build on it and neither needs the other's
//! definitions: a backend executes what is defined here, a workload times
//! it and verifies the results against it (tests/layers.rs checks the
//! layers; README's Layout lists them).

pub mod gen;
pub mod hash;
pub mod matmul;
pub mod memtest;
pub mod numeric;
pub mod transfer;

use serde::{Deserialize, Serialize};

/// The workload families, in the order a run executes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Dense matrix multiply (GEMM).
    Matmul,
    /// Memory bandwidth: read, write, copy, triad.
    Bandwidth,
    /// Double SHA-256 nonce search.
    Hash,
    /// Memory pattern test.
    Memtest,
    /// Host/device copies through pinned memory and peer-to-peer copies.
    Transfer,
    /// Power pulses: a GEMM switched between full load and idle a few
    /// times a second, to stress the board's power delivery.
    Pulse,
}

impl WorkloadKind {
    /// Every family, in run order.
    pub const ALL: [WorkloadKind; 6] = [
        WorkloadKind::Matmul,
        WorkloadKind::Bandwidth,
        WorkloadKind::Hash,
        WorkloadKind::Memtest,
        WorkloadKind::Transfer,
        WorkloadKind::Pulse,
    ];

    /// The lowercase name used in files and on screen.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Matmul => "matmul",
            WorkloadKind::Bandwidth => "bandwidth",
            WorkloadKind::Hash => "hash",
            WorkloadKind::Memtest => "memtest",
            WorkloadKind::Transfer => "transfer",
            WorkloadKind::Pulse => "pulse",
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

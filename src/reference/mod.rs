//! What each workload computes, as pure definitions: the bottom layer.

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
}

impl WorkloadKind {
    /// Every family, in run order.
    pub const ALL: [WorkloadKind; 5] = [
        WorkloadKind::Matmul,
        WorkloadKind::Bandwidth,
        WorkloadKind::Hash,
        WorkloadKind::Memtest,
        WorkloadKind::Transfer,
    ];

    /// The lowercase name used in files and on screen.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Matmul => "matmul",
            WorkloadKind::Bandwidth => "bandwidth",
            WorkloadKind::Hash => "hash",
            WorkloadKind::Memtest => "memtest",
            WorkloadKind::Transfer => "transfer",
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

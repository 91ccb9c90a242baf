//! Per-model baselines: what a healthy GPU of one model measures.
//!
//! Integrity checks say whether a device computes *correctly*; a baseline
//! says whether it computes *fast enough* and stays within its telemetry
//! limits. A GPU that runs hot, throttles, or has a weak memory stack still
//! returns correct results, only slower: without a reference figure per
//! model, a burn-in cannot tell it from a healthy one. A baseline gives, per
//! metric, the value a healthy device of the model is expected to reach and
//! the floor below which it is rejected, a tolerance for the comparison with
//! the other devices of the same node, and the telemetry limits (temperature,
//! throttle reasons, ECC, XID, row remapping, PCIe link).
//!
//! Baselines are TOML files, one per model (see `baselines/README.md` for
//! the format). The files shipped in `baselines/` are compiled into the
//! binary ([`builtin`]), so a single `kiln` binary carries them; a site can
//! load its own ([`load`]) or derive one from runs of known-good nodes
//! ([`record`]).
//!
//! Every error in a baseline file names the file, the line and the full
//! dotted key, as `FILE: line L: KEY: WHAT`, so that a typo is found without
//! reading the parser. The file is read from the TOML parser's spanned
//! document tree, which keeps the byte position of every key and value, and
//! checked against the schema by hand: that gives the exact position and key
//! of every problem, including unknown keys and wrong types.
//!
//! The parts, each in its own file: [`parse`](parse()) and [`load`] read and
//! check a baseline file against the schema (parse.rs, with the shipped
//! files and the metrics kiln measures); [`find`] matches a device to a
//! baseline (matching.rs); [`record`] derives a baseline from runs of
//! known-good nodes (record.rs). This file holds the types they share.

use std::collections::BTreeMap;

mod matching;
mod parse;
mod record;

pub use matching::find;
pub use parse::{builtin, convert, load, parse, MEASURED};
pub use record::{record, record_from, record_judged, RecordDevice, RecordRun, MIN_RECORD_DEVICES};

/// NVML clock event (throttle) reason names a baseline may tolerate
/// (defined with the telemetry that reports them).
pub use crate::telemetry::THROTTLE_REASONS;

/// The throttle reasons tolerated when `[limits]` does not list any: the
/// ones a healthy GPU under full load shows (idle between phases, clocks set
/// by the administrator, the software power cap, clocks synchronised with
/// other GPUs, display clock settings). Any thermal or hardware slowdown, or
/// a power brake, rejects.
pub const DEFAULT_TOLERATED: [&str; 5] = [
    "gpu_idle",
    "applications_clocks_setting",
    "sw_power_cap",
    "sync_boost",
    "display_clock_setting",
];

/// The peer tolerance of a baseline that does not set one: a device may sit
/// at most 5 % below the median of its peers on the same node.
pub const DEFAULT_PEER_TOLERANCE: f64 = 0.05;

/// What a healthy device measures on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricBaseline {
    /// Unit of `expected` and `floor`; must equal the measured metric's unit
    /// for the two to be compared (e.g. "TFLOP/s", "GB/s", "MH/s").
    pub unit: String,
    /// The value a healthy device typically reaches.
    pub expected: f64,
    /// The acceptance floor: a device measuring below it is rejected.
    pub floor: f64,
    /// Overrides the model's peer tolerance for this metric.
    pub peer_tolerance: Option<f64>,
}

/// Telemetry limits of a model, checked over the whole run.
///
/// `Limits::default()` is the strictest set (no throttle reason tolerated,
/// no allowance); a baseline file whose `[limits]` is absent, or omits
/// `tolerated_throttle`, gets [`Limits::standard`]'s values instead.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Limits {
    /// Highest GPU temperature allowed during the run, in degrees C.
    pub max_gpu_temp_c: Option<f64>,
    /// Highest memory temperature allowed during the run (HBM), degrees C.
    pub max_mem_temp_c: Option<f64>,
    /// Throttle reasons (names from [`THROTTLE_REASONS`]) that may be seen
    /// during the run; any other one rejects.
    pub tolerated_throttle: Vec<String>,
    /// New uncorrectable ECC errors allowed during the run.
    pub max_ecc_uncorrectable: u64,
    /// XID events allowed during the run.
    pub max_xid: u64,
    /// Rows pending remapping allowed.
    pub max_remapped_rows_pending: u64,
    /// Failed row remappings allowed.
    pub max_remapped_rows_failed: u64,
    /// Expected PCIe link generation.
    pub pcie_gen: Option<u32>,
    /// Expected PCIe link width (lanes).
    pub pcie_width: Option<u32>,
    /// NVLinks that must be active (18 on an H100 or H200 SXM); None: the
    /// model has no NVLink to judge (PCIe cards, whose bridges are
    /// optional).
    pub nvlink_links: Option<u32>,
    /// NVLink CRC errors per second (all links) tolerated; replay and
    /// recovery errors are never tolerated. None: [`DEFAULT_NVLINK_CRC_PER_S`].
    pub max_nvlink_crc_per_s: Option<f64>,
    /// Fraction of its enforced power limit a GPU must draw at least once
    /// during matmul (`power_low`). None: [`DEFAULT_MIN_POWER_FRACTION`].
    pub min_power_fraction: Option<f64>,
    /// The model is part of a multi-node NVLink system (e.g. GB200 NVL72):
    /// its fabric must report a cluster UUID and a clique id. False (the
    /// default) for single-node NVSwitch boards (HGX H100/H200), which
    /// report zeros there.
    pub multinode_nvlink: bool,
}

/// The power a GPU must reach under matmul when a baseline does not say,
/// as a fraction of its enforced limit: DCGM's targeted-power test asks
/// for 75 % of its target. A GPU that cannot draw power under the densest
/// load will not deliver its FLOPs under real load either.
pub const DEFAULT_MIN_POWER_FRACTION: f64 = 0.75;

/// NVLink CRC errors per second tolerated when a baseline does not say: a
/// healthy link sees the odd CRC error, which the link layer retries; a
/// sustained rate is a failing cable or connector.
pub const DEFAULT_NVLINK_CRC_PER_S: f64 = 100.0;

impl Limits {
    /// The limits of a baseline that does not state them: the
    /// [`DEFAULT_TOLERATED`] throttle reasons, no ECC, XID or row-remapping
    /// allowance, no temperature or PCIe expectation.
    pub fn standard() -> Limits {
        Limits {
            tolerated_throttle: DEFAULT_TOLERATED.iter().map(|s| s.to_string()).collect(),
            ..Limits::default()
        }
    }
}

/// What a healthy GPU of one model measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// Where it came from: a file path, or `builtin:NAME.toml` for a shipped
    /// file.
    pub source: String,
    /// The model, as the driver names it (e.g. "NVIDIA H100 80GB HBM3").
    pub model: String,
    /// A device matches when its name contains any of these,
    /// case-insensitively. Defaults to `[model]` when the file has no
    /// `match`.
    pub match_names: Vec<String>,
    /// PCI device ids of the model; a device that reports its id is matched
    /// by id first.
    pub pci_device_ids: Vec<u16>,
    /// Largest fraction a device may sit below the median of its peers.
    pub peer_tolerance: f64,
    /// Per metric name (e.g. `matmul_bf16`): expected value and floor.
    pub metrics: BTreeMap<String, MetricBaseline>,
    /// Telemetry limits.
    pub limits: Limits,
}

impl Baseline {
    /// The peer tolerance of `metric`: its own when the file sets one, else
    /// the model's.
    pub fn peer_tolerance_for(&self, metric: &str) -> f64 {
        self.metrics
            .get(metric)
            .and_then(|m| m.peer_tolerance)
            .unwrap_or(self.peer_tolerance)
    }
}

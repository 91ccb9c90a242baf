//! kiln: a GPU compute benchmarking and burn-in harness.
//!
//! Data flows one way, and each module imports only from the modules upstream
//! of it:
//!
//! `cli` (raw arguments) -> `plan` (validated jobs) -> `device` + `workload`
//! (what runs, and how it is checked) -> `run` (all devices in parallel, the
//! journal) -> `results` (a run rebuilt from its journal) -> `verdict`
//! (accept / reject) -> `output` (json, csv, the summary table).
//!
//! `stats`, `telemetry` and `error` are leaves that every stage may use.

pub mod cli;
pub mod commands;
pub mod device;
pub mod error;
pub mod output;
pub mod plan;
pub mod reference;
pub mod results;
pub mod run;
pub mod stats;
pub mod telemetry;
pub mod verdict;
pub mod workload;

/// The version of kiln, as written into every result file.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! kiln: a GPU compute benchmarking and burn-in harness.
//!
//! Data flows one way, and the modules are layered along it: each imports
//! only from the layers below its own, never from its own layer's other
//! modules or from above. From the bottom up:
//!
//! 1. `reference` (what each workload computes: inputs, patterns, SHA-256,
//!    expected values, job and result types), `stats`, `error`;
//! 2. `telemetry` (sensors, beside the devices that own them);
//! 3. `device` (the backends: they execute, never judge);
//! 4. `workload` (what runs, how big, and how each result is checked);
//! 5. `cli` (raw arguments);
//! 6. `plan` (validated jobs);
//! 7. `run` (all devices in parallel, the journal);
//! 8. `results` (a run rebuilt from its journal);
//! 9. `verdict` (accept / reject);
//! 10. `output` (json, csv, charts, report.pdf, the summary table), and
//!     beside it `history` (every GPU's runs by serial, in SQLite);
//! 11. `commands` (the subcommands, wiring them together).
//!
//! tests/layers.rs checks every `crate::` path of src/ against this order;
//! README's Layout section lists the same layers.

pub mod cli;
pub mod commands;
pub mod device;
pub mod error;
pub mod history;
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

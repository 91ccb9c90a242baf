//! Command-line arguments, as typed by the user (clap derive).
//!
//! Nothing here touches a device or a file: [`crate::plan`] validates these
//! raw values into a plan.
//!
//! Layer: above `workload`, whose types the flags take (and `device`'s, the
//! layers below); below `plan`, which validates them. It must not import `plan`
//! or any layer above (tests/layers.rs checks it).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::device::BackendChoice;
use crate::workload::Profile;

const EXIT_CODES: &str = "\
Exit codes:
  0  every tested device was accepted
  1  at least one device was rejected
  2  bad usage or bad input (flag, device index, file, output folder)
  3  no usable device, or a driver/library failure
  4  the run was interrupted or is incomplete (and nothing was rejected)
  5  a device could not be tested because of the node's state (busy in
     another process, fabric manager down), and nothing was rejected";

/// kiln: benchmark, verify and accept or reject every GPU of a node.
///
/// kiln runs matrix multiply, memory bandwidth, SHA-256 hashing and memory
/// test workloads on every device in parallel, checks every result for silent
/// corruption, and says accept or reject per device, with reasons, in
/// results.json, results.csv and a summary table. With no GPU it tests the
/// CPU; `--backend sim` simulates a node of GPUs for demos and tests.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kiln's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the devices kiln would test.
    #[command(after_help = EXIT_CODES)]
    List(ListArgs),
    /// Run the workloads on every selected device, in parallel, and judge each.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Rebuild results.json, results.csv, the charts, report.pdf and the
    /// summary of runs from their journals (also of a run that was killed
    /// halfway); with --fleet-out, one PDF summary across them.
    #[command(after_help = EXIT_CODES)]
    Report(ReportArgs),
    /// Run every primitive of every device at small sizes and compare each
    /// result with the CPU reference implementation. Exit 0 only if all agree.
    #[command(after_help = EXIT_CODES)]
    Selftest(SelftestArgs),
    /// Check a baseline file, or derive one from runs of known-good nodes.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// A passive health check in seconds, for scheduler prologs: reads each
    /// GPU's identity and sensors once (ECC, remapped rows, XIDs, PCIe,
    /// NVLink and its wiring, the NVSwitch fabric, temperature, clock event
    /// reasons, persistence and MIG modes) and the XIDs of the kernel log
    /// since boot, and runs no workload.
    #[command(after_help = CHECK_EXIT_CODES)]
    Check(CheckArgs),
}

/// `kiln check`'s exit codes: the Nagios plugin convention that Slurm
/// health-check scripts and monitoring read.
pub const CHECK_EXIT_CODES: &str = "\
Exit codes (Nagios convention):
  0  OK: nothing found
  1  WARNING: worth a look, the node may run jobs (e.g. NVLink replays since boot, an application XID, persistence mode off)
  2  CRITICAL: do not schedule jobs here (a GPU missing, uncorrectable ECC, pending row remap, a serious XID, a link down, a GPU held back at idle, MIG on, the NVSwitch fabric unhealthy or its manager down, NVLinks mis-wired)
  3  UNKNOWN: the check could not run (no driver, no device, bad arguments)

Examples:
  Slurm prolog:   kiln check --expect-gpus 8 || scontrol update node=$(hostname -s) state=drain reason=kiln-check
  Kubernetes:     an init container running `kiln check --expect-gpus 8 --json` (non-zero keeps the pod from starting)";

/// Arguments of `kiln check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub backend: BackendArgs,

    /// How many GPUs the node must have; fewer is CRITICAL, more a WARNING.
    #[arg(long, value_name = "N")]
    pub expect_gpus: Option<usize>,

    /// Inject a fault into a simulated GPU (with --backend sim), as for
    /// `kiln run`, to see what the check reports.
    #[arg(long, value_name = "DEVICE:FAULT")]
    pub inject: Vec<String>,

    /// Hold every device to this baseline file instead of the shipped one
    /// that matches its model (temperature limit, NVLinks, PCIe width).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Print the result as JSON instead of lines of text.
    #[arg(long)]
    pub json: bool,

    /// Read XIDs from this kernel log (saved `dmesg` or `journalctl -k`
    /// output) instead of this node's (/dev/kmsg, else journalctl -k -b;
    /// not read for simulated GPUs). A log that cannot be read is a note,
    /// never a failure.
    #[arg(long, value_name = "FILE")]
    pub kernel_log: Option<PathBuf>,
}

/// `kiln baseline ...`.
#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Validate a baseline file: every problem is reported with its line and
    /// key. Exit 0 when valid, 2 otherwise.
    Check {
        /// The baseline TOML file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Derive a baseline from runs of known-good nodes: the median of each
    /// metric over every matching device that its run accepted (rejected,
    /// incomplete and untested devices are left out and named; at least 3
    /// accepted devices, else exit 2), Tukey outliers discarded first, with
    /// floors from a documented rule.
    Record {
        /// Run folders (the --out of `kiln run`).
        #[arg(value_name = "DIR", required = true)]
        dirs: Vec<PathBuf>,
        /// The GPU model: accepted devices whose name contains it are used.
        #[arg(long, value_name = "NAME")]
        model: String,
        /// Where to write the baseline; must not exist yet.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Which devices exist: shared by `list` and `run`.
#[derive(Debug, Args, Clone)]
pub struct BackendArgs {
    /// Which backend drives the devices: `auto` is CUDA when a GPU is usable,
    /// else the CPU.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// Number of simulated GPUs (with --backend sim), 1 to 64.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub sim_gpus: usize,
}

/// Arguments of `kiln list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub backend: BackendArgs,

    /// Print the devices as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `kiln run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub backend: BackendArgs,

    /// How much work: `quick` takes about a minute on a 2-core CPU,
    /// `standard` a few minutes, `burnin` cycles the standard workloads for
    /// --duration.
    #[arg(long, value_enum, default_value_t = Profile::Quick)]
    pub profile: Profile,

    /// How long a burn-in runs, e.g. 30m, 8h, 90s (only with --profile
    /// burnin; default 30m; at most 30 days). Every started cycle
    /// finishes.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub duration: Option<String>,

    /// Comma-separated device indices to test, as printed by `kiln list`
    /// (default: all).
    #[arg(long, value_name = "LIST")]
    pub devices: Option<String>,

    /// Comma-separated workloads to run: matmul, bandwidth, hash, memtest,
    /// transfer (default: all; the CPU backend leaves transfer out, having
    /// no host-device link).
    #[arg(long, value_name = "LIST")]
    pub workloads: Option<String>,

    /// Folder for the results; must not already hold a run
    /// (default: reports/<host>-<UTC timestamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Inject a fault into a simulated GPU (with --backend sim), repeatable:
    /// DEVICE:FAULT[@START], FAULT one of sdc, membit, hashbit, copybit,
    /// xferbit, slow=F, throttle=thermal|power|hw, hot=T, ecc=N, xid=N, pcie=GEN:WIDTH,
    /// hang=WORKLOAD, lost=SECONDS, nvlinkdown=N, nvlinkerr=PER_S,
    /// fabric=unhealthy|degraded|fm_down (fm_down: the node's fabric manager, on
    /// every GPU), nvlinkwire=LINK (that NVLink on the wrong NVSwitch),
    /// persistence=off, mig=on; START delays it, e.g. 2:membit@90s.
    #[arg(long, value_name = "DEVICE:FAULT")]
    pub inject: Vec<String>,

    /// Hold every device to this baseline file instead of the shipped one
    /// that matches its model.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Who runs the test, for the report's sign-off block.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,

    /// Asset or rack tag of the node, for the report.
    #[arg(long, value_name = "TAG")]
    pub asset: Option<String>,

    /// Telemetry samples per second and device, 0.1 to 10.
    #[arg(long, value_name = "HZ", default_value_t = 1.0)]
    pub sample_rate: f64,

    /// Seed of every workload input and of the simulated noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Arguments of `kiln selftest`.
#[derive(Debug, Args)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub backend: BackendArgs,

    /// Seed of the inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Arguments of `kiln report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run folders (the --out of `kiln run`), each holding journal.jsonl;
    /// each gets its results, charts and report.pdf rebuilt.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    /// Also write one PDF summary across these runs: one line per node and
    /// GPU.
    #[arg(long, value_name = "FILE.pdf")]
    pub fleet_out: Option<PathBuf>,

    /// Judge against this baseline file instead of the shipped one that
    /// matches each device's model.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
}

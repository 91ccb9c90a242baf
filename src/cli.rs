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
     another process, fabric manager down, MIG mode, a library missing, the
     NVIDIA driver missing or failing: driver_missing, driver_failed), and
     nothing was rejected";

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
    /// The history database: every run of every GPU in one SQLite file,
    /// keyed by GPU serial and UUID (`kiln db ingest DIR...`).
    #[command(subcommand)]
    Db(DbCommand),
    /// One GPU's figures and verdicts across every ingested run, oldest
    /// first, with each figure's change (percent) against the GPU's first
    /// accepted run: a GPU that has degraded since intake shows here.
    #[command(after_help = HISTORY_HELP)]
    History(HistoryArgs),
    /// Judge racks against each other: load the runs of many nodes (one
    /// `kiln run` folder per node, or folders holding them), judge each node
    /// as `kiln report` does, then flag the nodes whose figures sit
    /// materially below the fleet's (fleet_outlier) even when every GPU
    /// passed its own node's checks. Writes fleet.json, fleet.csv and
    /// fleet.pdf; the run folders are only read.
    #[command(after_help = FLEET_EXIT_CODES)]
    Fleet(FleetArgs),
}

/// Where the history database is, and `kiln db ingest`'s exit codes.
pub const DB_INGEST_HELP: &str = "\
Database: --db PATH, else $KILN_DB, else kiln.db in the current folder; the
first ingest creates it. Each run is stored in its own transaction: a run is
in the database whole or not at all, even if kiln is killed; ingesting it
again completes what was cut off and leaves the rest unchanged.

Exit codes:
  0  every DIR was ingested, or was already (\"already ingested\": nothing changed)
  2  bad input: a DIR that is not a run folder, a database that is not kiln's,
     damaged or newer than this kiln, a path kiln cannot write; the runs
     ingested before the error stay in the database

Example:
  kiln run --out runs/node17-intake && kiln db ingest runs/node17-intake
  kiln db ingest runs/*/ --db /shared/kiln.db";

/// `kiln history`'s help: the database and the exit codes.
pub const HISTORY_HELP: &str = "\
Database: --db PATH, else $KILN_DB, else kiln.db in the current folder.
The serials of a node's GPUs are in results.json (\"serial\") and `kiln list`.

Exit codes:
  0  the history was shown
  2  no GPU with that serial or UUID in the database, no database, or a
     database that is not kiln's, damaged or newer than this kiln

Example:
  kiln history 1654923012345 --db /shared/kiln.db --json";

/// `kiln db ...`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Store run folders in the history database: each run (id, host, start
    /// time, profile, kiln version, backend), each device (index, model,
    /// serial, UUID, verdict and reason codes, judged as `kiln report`
    /// judges it) and every metric (name, value, unit).
    #[command(after_help = DB_INGEST_HELP)]
    Ingest(DbIngestArgs),
}

/// The history database's file: shared by `db`, `history` and `baseline
/// record --from-db`.
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// The history database file (default: $KILN_DB, else kiln.db in the
    /// current folder).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

/// Arguments of `kiln db ingest`.
#[derive(Debug, Args)]
pub struct DbIngestArgs {
    /// Run folders (the --out of `kiln run`), each holding journal.jsonl.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    #[command(flatten)]
    pub db: DbArgs,

    /// Judge every device against this baseline file instead of the shipped
    /// one that matches its model (as `kiln report --baseline`): give the
    /// one the runs were judged against. A run whose results.json holds
    /// other verdicts than kiln's judgement now is refused.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
}

/// Arguments of `kiln history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The GPU's serial number (results.json's "serial"), or its UUID.
    #[arg(value_name = "SERIAL")]
    pub serial: String,

    #[command(flatten)]
    pub db: DbArgs,

    /// Print the history as JSON (every run, its verdict and reasons, every
    /// figure with its unit and change_pct) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `kiln fleet`'s exit codes.
pub const FLEET_EXIT_CODES: &str = "\
Exit codes:
  0  every node accepted (every GPU accepted by its own run) and none flagged by the fleet rule
  1  at least one node rejected (a GPU rejected by its own run) or flagged (fleet_outlier)
  2  bad input: no run folder found, an unreadable journal (its folder is named), a bad --out
  4  nothing rejected or flagged, but a run is incomplete
  5  nothing rejected or flagged, but a GPU could not be tested because of its node's state

Fleet rule (fleet_outlier): per GPU model and metric, each node's median against the median
of the other nodes' medians; flagged when at least 4 % under it and at least 3 robust
standard deviations (1.4826 x MAD of the other nodes) under it. Needs at least 3 nodes of the
model, else it is reported as not applied.

Examples:
  kiln fleet /shared/kiln/job-1234 --out /shared/kiln/fleet-1234 \\
    --prometheus /var/lib/node_exporter/textfile/kiln_fleet.prom
  kiln fleet reports/node01-* reports/node02-* reports/node03-*";

/// Arguments of `kiln fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Run folders (the --out of `kiln run`, one per node), or folders that
    /// hold run folders one level down (e.g. a Slurm job's shared results
    /// folder). When a node has several runs, its latest is judged and the
    /// others are named as superseded.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    /// Folder for fleet.json, fleet.csv and fleet.pdf (created if needed;
    /// an earlier fleet summary there is replaced)
    /// (default: reports/fleet-<UTC timestamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Judge every node against this baseline file instead of the shipped
    /// one that matches each device's model.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Also write the figures, verdicts and node flags of every node in
    /// Prometheus' text format, for node_exporter's textfile collector
    /// (written to a temporary file in the same folder, then renamed).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

/// `kiln check`'s exit codes: the Nagios plugin convention that Slurm
/// health-check scripts and monitoring read.
pub const CHECK_EXIT_CODES: &str = "\
Exit codes (Nagios convention):
  0  OK: nothing found
  1  WARNING: worth a look, the node may run jobs (e.g. NVLink replays since boot, an application XID, persistence mode off)
  2  CRITICAL: do not schedule jobs here (a GPU missing, a GPU's driver missing or failing, uncorrectable ECC, pending row remap, a serious XID, a link down, a GPU held back at idle, MIG on, the NVSwitch fabric unhealthy or its manager down, NVLinks mis-wired)
  3  UNKNOWN: the check could not run (no device: no driver and no NVIDIA GPU on the PCI bus; bad arguments)

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
    /// floors from a documented rule. From run folders, or with --from-db
    /// from every run in the history database, by the same rule.
    Record {
        /// Run folders (the --out of `kiln run`); not with --from-db.
        #[arg(
            value_name = "DIR",
            required_unless_present = "from_db",
            conflicts_with = "from_db"
        )]
        dirs: Vec<PathBuf>,
        /// The GPU model: accepted devices whose name contains it are used.
        #[arg(long, value_name = "NAME")]
        model: String,
        /// Where to write the baseline; must not exist yet.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Derive it from every run in the history database (`kiln db
        /// ingest`) instead of run folders, each device with the verdict
        /// stored for it.
        #[arg(long)]
        from_db: bool,
        /// The history database (with --from-db; default: $KILN_DB, else
        /// kiln.db in the current folder).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
}

/// Which devices exist: shared by `list` and `run`.
#[derive(Debug, Args, Clone)]
pub struct BackendArgs {
    /// Which backend drives the devices: `auto` is CUDA when the node has
    /// NVIDIA GPUs (usable or not), else the CPU.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// Number of simulated GPUs (with --backend sim), 1 to 64.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub sim_gpus: usize,

    /// The node's name in results.json, the reports, `kiln fleet` and the
    /// Prometheus `node` label (default: the host name). Printable, no
    /// slash or backslash, at most 253 characters. With --backend sim it
    /// also seeds the simulated GPUs' serials and UUIDs: each node its own,
    /// the same on every run.
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
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
    /// transfer, pulse (default: all, except pulse in the quick profile;
    /// the CPU backend leaves transfer out, having no host-device link).
    /// pulse switches a GEMM between full load and idle 2.5 times a second
    /// (60 s in standard, 20 s per burn-in cycle) to stress power delivery.
    #[arg(long, value_name = "LIST")]
    pub workloads: Option<String>,

    /// Folder for the results; must not already hold a run
    /// (default: reports/<host>-<UTC timestamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Inject a fault into a simulated GPU (with --backend sim), repeatable:
    /// DEVICE:FAULT[@START], FAULT one of sdc, membit, hashbit, copybit,
    /// xferbit, slow=F, throttle=thermal|power|hw, hot=T, ecc=N, xid=N, pcie=GEN:WIDTH,
    /// hang=WORKLOAD, lost=SECONDS, nvlinkdown=N, nvlinkerr=PER_S, powerlow=F,
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

    /// Also write the run's figures and verdicts in Prometheus' text
    /// format, for node_exporter's textfile collector, e.g.
    /// /var/lib/node_exporter/textfile/kiln.prom (written to a temporary
    /// file in the same folder, then renamed). A run that cannot start
    /// still writes its exit code there.
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
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

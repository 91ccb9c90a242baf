//! The subcommands, wired from the stages: each one validates, runs and
//! renders, and returns the exit code. `main` only maps errors to codes.
//!
//! Layer: the top: it may import every layer below, and only the binary
//! (`main.rs`, through `kiln::`) uses it (tests/layers.rs checks the layers;
//! README's Layout lists them).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cli::{
    BaselineCommand, CheckArgs, FleetArgs, ListArgs, ReportArgs, RunArgs, SelftestArgs,
};
use crate::cli::{DbCommand, HistoryArgs};
use crate::device;
use crate::error::{ExitCode, KilnError, Result};
use crate::history;
use crate::output;
use crate::plan::{self, Plan};
use crate::results::{self, RunResults};
use crate::run;
use crate::verdict::{self, baseline, baseline::Baseline, BaselineChoice};

/// This node's host name.
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// `kiln list`.
pub fn list(args: &ListArgs) -> Result<ExitCode> {
    let mut sim = plan::sim_options(args.backend.sim_gpus, 1)?;
    sim.node = plan::node_name(args.backend.node_name.as_deref(), &host_name())?;
    let found = device::discover(args.backend.backend, &sim)?;
    let infos: Vec<_> = found.devices.iter().map(|d| d.info().clone()).collect();
    let sensors: Vec<Vec<String>> = found.devices.iter().map(|d| d.sensor_inventory()).collect();
    if args.json {
        let devices: Vec<serde_json::Value> = infos
            .iter()
            .zip(&sensors)
            .map(|(i, s)| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["sensors"] = serde_json::json!(s);
                v
            })
            .collect();
        let cublaslt =
            (found.backend == device::BackendKind::Cuda).then(device::cuda::cublaslt_status);
        let doc = serde_json::json!({
            "node": sim.node,
            "backend": found.backend,
            "note": found.note,
            "cublaslt": cublaslt,
            "devices": devices,
        });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| KilnError::output("standard output", e))?;
        println!("{text}");
    } else {
        if let Some(n) = &found.note {
            eprintln!("kiln: {n}");
        }
        print!("{}", output::summary::devices(&infos));
        for (i, s) in infos.iter().zip(&sensors) {
            if !s.is_empty() && (i.backend != device::BackendKind::Sim || i.index == 0) {
                println!("sensors of device {}: {}", i.index, s.join("; "));
            }
        }
        if found.backend == device::BackendKind::Cuda {
            println!("{}", device::cuda::cublaslt_status());
        }
    }
    Ok(ExitCode::Accepted)
}

/// `kiln check`: the Nagios status of the node (0 OK, 1 WARNING,
/// 2 CRITICAL, 3 UNKNOWN), printed as lines or JSON. Whatever stops the
/// check itself (bad input, no device) is UNKNOWN; NVIDIA GPUs on the PCI
/// bus without a usable driver are CRITICAL (`driver_missing`,
/// `driver_failed`).
pub fn check(args: &CheckArgs) -> i32 {
    use verdict::health::{self, Status};
    type Found = (
        Vec<Box<dyn device::Device>>,
        Option<Baseline>,
        Option<String>,
    );
    let found = (|| -> Result<Found> {
        let baseline = args.baseline.as_deref().map(baseline::load).transpose()?;
        let mut sim = plan::sim_with_faults(&args.backend, 1, &args.inject)?;
        sim.node = plan::node_name(args.backend.node_name.as_deref(), &host_name())?;
        let found = device::discover(args.backend.backend, &sim)?;
        Ok((found.devices, baseline, found.note))
    })();
    let (mut devices, forced, note) = match found {
        Ok(x) => x,
        Err(e) => {
            // An NVSwitch node whose fabric manager is down answers cuInit
            // with CUDA_ERROR_SYSTEM_NOT_READY: NVML still says why, and
            // that is CRITICAL, not UNKNOWN.
            let down = matches!(
                args.backend.backend,
                device::BackendChoice::Cuda | device::BackendChoice::Auto
            )
            .then(crate::telemetry::nvml::fabric_states)
            .and_then(Result::ok)
            .and_then(|states| health::manager_down(&states));
            if let Some(finding) = down {
                let mut h = health::Health {
                    status: Status::Ok,
                    devices: 0,
                    expected_devices: args.expect_gpus,
                    findings: Vec::new(),
                    notes: vec![format!("CUDA: {e}")],
                };
                h.extend(vec![finding]);
                return print_health(&h, args.json);
            }
            println!("UNKNOWN: kiln check could not run: {e}");
            return Status::Unknown.code();
        }
    };
    let shipped = baseline::builtin();
    // A simulated GPU's injected faults count from the start of a "run":
    // the check is that start.
    let now = std::time::Instant::now();
    let seen_parts: Vec<(device::DeviceInfo, Option<crate::telemetry::Sample>)> = devices
        .iter_mut()
        .map(|d| {
            d.run_started(now);
            (d.info().clone(), d.sensor().map(|s| s.sample(0.0)))
        })
        .collect();
    let seen: Vec<health::Seen<'_>> = seen_parts
        .iter()
        .map(|(info, sample)| health::Seen {
            info,
            sample: sample.clone(),
            baseline: forced
                .as_ref()
                .or_else(|| baseline::find(&shipped, &info.name, info.pci_device_id)),
        })
        .collect();
    // GPUs the PCI bus shows and CUDA cannot use (all of them when the
    // driver is missing or fails; the ones it did not bring up when it
    // works for the others): CRITICAL, each with why.
    let unusable: Vec<(&device::DeviceInfo, &str, String)> = devices
        .iter()
        .zip(&seen_parts)
        .filter_map(|(d, (info, _))| {
            let e = d.untestable()?;
            Some((
                info,
                e.node_state.or(e.code).unwrap_or("driver_failed"),
                e.message,
            ))
        })
        .collect();
    let usable: Vec<health::Seen<'_>> = seen
        .iter()
        .filter(|s| !unusable.iter().any(|(i, _, _)| i.index == s.info.index))
        .cloned()
        .collect();
    let mut h = if unusable.is_empty() {
        health::assess(&seen, args.expect_gpus)
    } else if !usable.is_empty() {
        // Some GPUs work: their checks, the others' findings, and the
        // count of all of them against --expect-gpus.
        let mut h = health::assess(&usable, None);
        let others = health::untestable(&unusable, None);
        h.devices = seen.len();
        h.expected_devices = args.expect_gpus;
        h.extend(
            health::count_finding(seen.len(), args.expect_gpus)
                .into_iter()
                .chain(others.findings)
                .collect(),
        );
        h.notes.extend(note);
        h
    } else {
        let mut h = health::untestable(&unusable, args.expect_gpus);
        // cuInit said the fabric manager is down: NVML's one finding for
        // the node says it better than one per GPU, when NVML answers.
        if unusable
            .iter()
            .any(|(_, code, _)| *code == "fabric_manager_down")
        {
            if let Some(node) = crate::telemetry::nvml::fabric_states()
                .ok()
                .and_then(|states| health::manager_down(&states))
            {
                let rest: Vec<health::Finding> = std::mem::take(&mut h.findings)
                    .into_iter()
                    .filter(|f| f.code != "fabric_manager_down")
                    .chain(std::iter::once(node))
                    .collect();
                h.extend(rest);
            }
        }
        h.notes.extend(note);
        h
    };
    let simulated = seen_parts
        .iter()
        .all(|(i, _)| i.backend == device::BackendKind::Sim);
    match &args.kernel_log {
        Some(path) => match crate::telemetry::kernel_log::read_file(path) {
            Ok(xids) => h.add_kernel_log(&seen, Ok((xids, path.display().to_string()))),
            Err(e) => {
                println!("UNKNOWN: kiln check could not run: {e}");
                return Status::Unknown.code();
            }
        },
        None if simulated => {}
        None => h.add_kernel_log(
            &seen,
            crate::telemetry::kernel_log::read_system().map(|(x, at)| (x, at.to_string())),
        ),
    }
    print_health(&h, args.json)
}

/// Prints a health check as lines or JSON; its exit code.
fn print_health(h: &verdict::health::Health, json: bool) -> i32 {
    use verdict::health::Status;
    if json {
        match serde_json::to_string_pretty(&h) {
            Ok(t) => println!("{t}"),
            Err(e) => {
                println!("UNKNOWN: kiln check could not write JSON: {e}");
                return Status::Unknown.code();
            }
        }
    } else {
        let worst = h.findings.iter().filter(|f| f.status == h.status).count();
        println!(
            "{}: {} GPU(s){}, {}",
            h.status.word(),
            h.devices,
            h.expected_devices
                .map_or(String::new(), |n| format!(" ({n} expected)")),
            match h.findings.len() {
                0 => "nothing found".to_string(),
                n => format!("{n} finding(s), {worst} {}", h.status.word().to_lowercase()),
            }
        );
        for f in &h.findings {
            println!(
                "{} {} {}: {} [{}: {}]",
                f.status.word(),
                f.device.map_or("node".to_string(), |d| format!("dev {d}")),
                f.code,
                f.detail,
                f.remedy.name(),
                f.remedy.advice()
            );
        }
        for n in &h.notes {
            println!("note: {n}");
        }
    }
    h.status.code()
}

/// `kiln run`. With --prometheus, a run that cannot start still writes
/// its exit code there (the figures of a previous run must not stand).
pub fn run(args: &RunArgs, stop: Arc<AtomicBool>) -> Result<ExitCode> {
    let outcome = run_judged(args, stop);
    if let (Err(e), Some(path)) = (&outcome, &args.prometheus) {
        let node = plan::node_name(args.backend.node_name.as_deref(), &host_name())
            .unwrap_or_else(|_| host_name());
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let bytes = output::prometheus::failed_run(&node, e.exit_code(), now);
        if let Err(w) = output::write_prometheus(path, &bytes) {
            eprintln!("kiln: {w}");
        }
    }
    outcome
}

/// Checks a --prometheus FILE before any work: its folder must exist.
fn check_prometheus_path(path: &std::path::Path) -> Result<()> {
    if path.is_dir() {
        return Err(KilnError::Usage(format!(
            "--prometheus {}: a folder; expected a file name in it, e.g. {}/kiln.prom",
            path.display(),
            path.display()
        )));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(KilnError::Usage(format!(
            "--prometheus {}: the folder {} does not exist (node_exporter's --collector.textfile.directory must exist before kiln writes there)",
            path.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// `kiln run`, up to its judgement and outputs.
fn run_judged(args: &RunArgs, stop: Arc<AtomicBool>) -> Result<ExitCode> {
    if let Some(p) = &args.prometheus {
        check_prometheus_path(p)?;
    }
    let host = plan::node_name(args.backend.node_name.as_deref(), &host_name())?;
    let mut plan = Plan::from_args(args, &host, SystemTime::now())?;
    // Read a --baseline file before any device is touched.
    let baseline = args.baseline.as_deref().map(baseline::load).transpose()?;
    let found = device::discover(plan.backend, &plan.sim)?;
    let backend = found.backend;
    if backend == device::BackendKind::Cpu && args.workloads.is_none() {
        // The CPU has no host-device link and no peers: by default its run
        // leaves the transfer workload out rather than skip it with a note.
        plan.workloads
            .retain(|w| *w != crate::workload::WorkloadKind::Transfer);
    }
    let mut notes = Vec::new();
    if let Some(n) = &found.note {
        eprintln!("kiln: {n}");
        notes.push(n.clone());
    }
    let devices = run::select(&plan, found)?;
    if backend == device::BackendKind::Cpu {
        if let Some(d) = devices.first() {
            let absent: Vec<String> = d
                .sensor_inventory()
                .into_iter()
                .filter(|s| s.contains("absent") && !s.starts_with("ECC"))
                .collect();
            if !absent.is_empty() {
                notes.push(format!("host sensors: {}", absent.join("; ")));
            }
        }
    }
    let journal = run::prepare_out(&plan)?;
    eprintln!(
        "kiln: {} profile on {} {} device(s); results in {}",
        plan.profile,
        devices.len(),
        backend,
        plan.out.display()
    );
    let about = run::About {
        backend,
        host,
        notes,
        quiet: false,
        operator: args.operator.clone(),
        asset: args.asset.clone(),
        driver: (backend == device::BackendKind::Cuda)
            .then(|| {
                crate::telemetry::nvml::open()
                    .ok()
                    .and_then(|n| n.sys_driver_version().ok())
            })
            .flatten(),
        cuda: (backend == device::BackendKind::Cuda)
            .then(device::cuda::driver_cuda_version)
            .flatten(),
    };
    let dir = run::execute(&plan, journal, devices, about, stop)?;
    let run = results::load(&dir)?;
    let (code, judgement) = finish_judged(&run, &dir, baseline.as_ref())?;
    if let Some(p) = &args.prometheus {
        output::write_prometheus(p, &output::prometheus::run(&run, &judgement, code))?;
        println!("prometheus: {}", p.display());
    }
    Ok(code)
}

/// `kiln report DIR...`.
pub fn report(args: &ReportArgs) -> Result<ExitCode> {
    for dir in &args.dirs {
        crate::results::check_folder(dir)?;
    }
    let baseline = args.baseline.as_deref().map(baseline::load).transpose()?;
    // Read every journal before writing anything.
    let runs = args
        .dirs
        .iter()
        .map(|d| results::load(d))
        .collect::<Result<Vec<_>>>()?;
    let mut judged = Vec::new();
    let mut code = ExitCode::Accepted;
    for (run, dir) in runs.iter().zip(&args.dirs) {
        let (c, judgement) = finish_judged(run, dir, baseline.as_ref())?;
        code = match (code, c) {
            (ExitCode::Rejected, _) | (_, ExitCode::Rejected) => ExitCode::Rejected,
            (ExitCode::Incomplete, _) | (_, ExitCode::Incomplete) => ExitCode::Incomplete,
            (c, _) => c,
        };
        judged.push(judgement);
    }
    if let Some(out) = &args.fleet_out {
        let nodes: Vec<_> = runs.iter().zip(&judged).collect();
        output::write_fleet(out, &nodes)?;
        println!("fleet summary: {}", out.display());
    }
    Ok(code)
}

/// Judges a run, writes its outputs and prints the summary; hands back
/// the exit code and the judgement.
fn finish_judged(
    run: &RunResults,
    dir: &std::path::Path,
    forced: Option<&Baseline>,
) -> Result<(ExitCode, verdict::Judgement)> {
    let shipped = baseline::builtin();
    let choice = match forced {
        Some(b) => BaselineChoice::Force(b),
        None => BaselineChoice::Match(&shipped),
    };
    let judgement = verdict::judge(run, choice);
    output::write_all(dir, run, &judgement)?;
    let notes = output::json::notes(run, &judgement);
    print!(
        "{}",
        output::summary::render(run, &judgement.verdicts, &notes)
    );
    println!("results: {}", dir.display());
    Ok((verdict::exit_code(run, &judgement.verdicts), judgement))
}

/// `kiln baseline check|record`.
pub fn baseline(cmd: &BaselineCommand) -> Result<ExitCode> {
    match cmd {
        BaselineCommand::Check { file } => {
            let b = baseline::load(file)?;
            println!(
                "{}: valid baseline for {} ({} metrics; matches names {:?}{})",
                file.display(),
                b.model,
                b.metrics.len(),
                b.match_names,
                if b.pci_device_ids.is_empty() {
                    String::new()
                } else {
                    let ids: Vec<String> = b
                        .pci_device_ids
                        .iter()
                        .map(|i| format!("{i:#06x}"))
                        .collect();
                    format!(" and PCI ids {}", ids.join(", "))
                }
            );
            Ok(ExitCode::Accepted)
        }
        BaselineCommand::Record {
            dirs,
            model,
            out,
            from_db,
            db,
        } => {
            if out.exists() {
                return Err(KilnError::Usage(format!(
                    "--out {}: the file exists already; kiln does not overwrite a baseline",
                    out.display()
                )));
            }
            if *from_db {
                return baseline_from_db(db.as_deref(), model, out);
            }
            if db.is_some() {
                return Err(KilnError::Usage(
                    "--db names the history database of --from-db: add --from-db (and no DIR), or leave --db out".into(),
                ));
            }
            let runs = dirs
                .iter()
                .map(|d| results::load(d))
                .collect::<Result<Vec<_>>>()?;
            let text = baseline::record(&runs, model)?;
            // Never write a file kiln itself could not read back.
            baseline::parse(&out.display().to_string(), &text)?;
            std::fs::write(out, &text).map_err(|e| KilnError::output(out, e))?;
            println!(
                "{}: baseline for {model} from {} run(s)",
                out.display(),
                runs.len()
            );
            Ok(ExitCode::Accepted)
        }
    }
}

/// `kiln selftest`.
pub fn selftest(args: &SelftestArgs) -> Result<ExitCode> {
    let mut sim = plan::sim_options(args.backend.sim_gpus, args.seed)?;
    sim.node = plan::node_name(args.backend.node_name.as_deref(), &host_name())?;
    let found = device::discover(args.backend.backend, &sim)?;
    if let Some(n) = &found.note {
        eprintln!("kiln: {n}");
    }
    let mut all_pass = true;
    let mut untested = 0;
    let indices: Vec<usize> = found.devices.iter().map(|d| d.info().index).collect();
    for mut dev in found.devices {
        let info = dev.info().clone();
        println!("device {} ({}, {}):", info.index, info.name, found.backend);
        // A GPU whose driver is missing or failing has nothing to compare:
        // it could not be tested, which is not a disagreement.
        if let Some(e) = dev.untestable() {
            untested += 1;
            println!(
                "  {:<4} could not test ({}, a node problem, not the GPU's): {}",
                "--",
                e.node_state.unwrap_or("driver_failed"),
                e.message
            );
            continue;
        }
        let others: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| i != info.index)
            .collect();
        for o in crate::workload::selftest::run(dev.as_mut(), args.seed, &others) {
            all_pass &= o.pass;
            println!(
                "  {:<4} {:<32} {}",
                if o.pass { "ok" } else { "FAIL" },
                o.what,
                o.detail
            );
        }
    }
    println!(
        "selftest: {}",
        if !all_pass {
            "DISAGREEMENT: do not trust this backend's results"
        } else if untested > 0 {
            "could not test: fix the node's NVIDIA driver and run again"
        } else {
            "every device agrees with the CPU reference"
        }
    );
    Ok(if !all_pass {
        ExitCode::Rejected
    } else if untested > 0 {
        ExitCode::Untested
    } else {
        ExitCode::Accepted
    })
}

/// `kiln baseline record --from-db`: the rule of `baseline record DIR...`
/// over every run of the history database.
fn baseline_from_db(
    db: Option<&std::path::Path>,
    model: &str,
    out: &std::path::Path,
) -> Result<ExitCode> {
    let path = history::db_path(db);
    let db = history::open(&path, history::Access::Existing)?;
    let runs = history::record_runs(&db)?;
    let text = baseline::record_from(&runs, model)?;
    // Never write a file kiln itself could not read back.
    baseline::parse(&out.display().to_string(), &text)?;
    std::fs::write(out, &text).map_err(|e| KilnError::output(out, e))?;
    println!(
        "{}: baseline for {model} from the history database {} ({} run(s))",
        out.display(),
        path.display(),
        runs.len()
    );
    Ok(ExitCode::Accepted)
}

/// `kiln db ingest DIR...`: every folder checked first, then each run in
/// its own transaction, in the order given.
pub fn db(cmd: &DbCommand) -> Result<ExitCode> {
    match cmd {
        DbCommand::Ingest(args) => {
            for dir in &args.dirs {
                history::check_run_folder(dir)?;
            }
            let forced = args.baseline.as_deref().map(baseline::load).transpose()?;
            let path = history::db_path(args.db.db.as_deref());
            let mut db = history::open(&path, history::Access::Create)?;
            if db.opened_at_version != 0 && db.opened_at_version != history::SCHEMA_VERSION {
                eprintln!(
                    "kiln: {}: migrated from schema version {} to {}",
                    path.display(),
                    db.opened_at_version,
                    history::SCHEMA_VERSION
                );
            }
            for dir in &args.dirs {
                let short = |id: &str| id.chars().take(12).collect::<String>();
                match history::ingest(&mut db, dir, forced.as_ref())? {
                    history::Ingested::New {
                        run_id,
                        devices,
                        metrics,
                    } => println!(
                        "{}: ingested run {} ({devices} device(s), {metrics} metric(s))",
                        dir.display(),
                        short(&run_id)
                    ),
                    history::Ingested::Updated {
                        run_id,
                        devices,
                        metrics,
                    } => println!(
                        "{}: updated run {} ({devices} device(s), {metrics} metric(s)): its journal grew since it was ingested",
                        dir.display(),
                        short(&run_id)
                    ),
                    history::Ingested::Already { run_id } => println!(
                        "{}: already ingested (run {}): nothing changed",
                        dir.display(),
                        short(&run_id)
                    ),
                }
            }
            let t = history::totals(&db)?;
            println!(
                "history database {}: {} run(s), {} device record(s) of {} serial(s), {} metric(s)",
                path.display(),
                t.runs,
                t.devices,
                t.serials,
                t.metrics
            );
            Ok(ExitCode::Accepted)
        }
    }
}

/// `kiln history SERIAL`.
pub fn history(args: &HistoryArgs) -> Result<ExitCode> {
    let path = history::db_path(args.db.db.as_deref());
    let db = history::open(&path, history::Access::Existing)?;
    let h = history::gpu_history(&db, &args.serial)?;
    if args.json {
        let text = serde_json::to_string_pretty(&h)
            .map_err(|e| KilnError::output("standard output", e))?;
        println!("{text}");
    } else {
        print!("{}", history::render(&h));
    }
    Ok(ExitCode::Accepted)
}

/// The run folders named by `kiln fleet`'s arguments: each folder that
/// holds a journal, else the folders directly inside it that do, in name
/// order. A folder with neither is an error that names it.
fn fleet_runs(dirs: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    let journal = crate::run::journal::FILE_NAME;
    let mut found: Vec<std::path::PathBuf> = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(KilnError::input(
                dir,
                if dir.exists() {
                    "not a folder; expected the folder of a kiln run (its --out) or a folder of run folders"
                } else {
                    "does not exist; expected the folder of a kiln run (its --out) or a folder of run folders"
                },
            ));
        }
        let mut here = Vec::new();
        if dir.join(journal).exists() {
            here.push(dir.clone());
        } else {
            let entries =
                std::fs::read_dir(dir).map_err(|e| KilnError::input(dir, e.to_string()))?;
            for e in entries {
                let e = e.map_err(|e| KilnError::input(dir, e.to_string()))?;
                let p = e.path();
                if p.is_dir() && p.join(journal).exists() {
                    here.push(p);
                }
            }
            here.sort();
        }
        if here.is_empty() {
            return Err(KilnError::input(
                dir,
                format!("no kiln run found: neither it nor a folder directly inside it holds {journal}; expected the folder of a kiln run (its --out) or a folder of run folders"),
            ));
        }
        for p in here {
            if !found.contains(&p) {
                found.push(p);
            }
        }
    }
    Ok(found)
}

/// `kiln fleet DIR...`: every node judged by its own run's rules, then
/// against the fleet; fleet.json, fleet.csv, fleet.pdf (and the Prometheus
/// textfile) written. The run folders are only read.
pub fn fleet(args: &FleetArgs) -> Result<ExitCode> {
    use crate::verdict::fleet as rule;
    if let Some(p) = &args.prometheus {
        check_prometheus_path(p)?;
    }
    let dirs = fleet_runs(&args.dirs)?;
    let forced = args.baseline.as_deref().map(baseline::load).transpose()?;
    // Read every journal before writing anything.
    let runs = dirs
        .iter()
        .map(|d| results::load(d))
        .collect::<Result<Vec<_>>>()?;
    let shipped = baseline::builtin();
    let choice = match &forced {
        Some(b) => BaselineChoice::Force(b),
        None => BaselineChoice::Match(&shipped),
    };
    let judgements: Vec<verdict::Judgement> =
        runs.iter().map(|r| verdict::judge(r, choice)).collect();
    let sources: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let nodes: Vec<rule::Node<'_>> = runs
        .iter()
        .zip(&judgements)
        .zip(&sources)
        .map(|((run, judgement), source)| rule::Node {
            name: &run.header.host,
            source,
            run,
            judgement,
        })
        .collect();
    let judged = rule::judge(&nodes);
    let kept: Vec<&rule::Node<'_>> = nodes
        .iter()
        .filter(|n| judged.nodes.iter().any(|v| v.source == n.source))
        .collect();
    let now = SystemTime::now();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| plan::default_out("fleet", now));
    let pairs: Vec<_> = kept.iter().map(|n| (n.run, n.judgement)).collect();
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    output::write_fleet_dir(&out, &pairs, &judged, &stamp)?;
    if let Some(p) = &args.prometheus {
        let with_codes: Vec<_> = kept
            .iter()
            .map(|n| {
                (
                    n.run,
                    n.judgement,
                    verdict::exit_code(n.run, &n.judgement.verdicts),
                )
            })
            .collect();
        let unix = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        output::write_prometheus(p, &output::prometheus::fleet(&with_codes, &judged, unix))?;
    }
    print!("{}", output::fleet::summary(&judged));
    println!(
        "fleet: {} (fleet.json, fleet.csv, fleet.pdf)",
        out.display()
    );
    if let Some(p) = &args.prometheus {
        println!("prometheus: {}", p.display());
    }
    Ok(judged.exit_code())
}

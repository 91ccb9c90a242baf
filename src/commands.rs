//! The subcommands, wired from the stages: each one validates, runs and
//! renders, and returns the exit code. `main` only maps errors to codes.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cli::{BaselineCommand, ListArgs, ReportArgs, RunArgs};
use crate::device;
use crate::error::{ExitCode, KilnError, Result};
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
    let sim = plan::sim_options(args.backend.sim_gpus, 1)?;
    let found = device::discover(args.backend.backend, &sim)?;
    let infos: Vec<_> = found.devices.iter().map(|d| d.info().clone()).collect();
    if args.json {
        let doc = serde_json::json!({
            "backend": found.backend,
            "note": found.note,
            "devices": infos,
        });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| KilnError::output("standard output", e))?;
        println!("{text}");
    } else {
        if let Some(n) = &found.note {
            eprintln!("kiln: {n}");
        }
        print!("{}", output::summary::devices(&infos));
    }
    Ok(ExitCode::Accepted)
}

/// `kiln run`.
pub fn run(args: &RunArgs, stop: Arc<AtomicBool>) -> Result<ExitCode> {
    let host = host_name();
    let plan = Plan::from_args(args, &host, SystemTime::now())?;
    // Read a --baseline file before any device is touched.
    let baseline = args.baseline.as_deref().map(baseline::load).transpose()?;
    let found = device::discover(plan.backend, &plan.sim)?;
    let backend = found.backend;
    let mut notes = Vec::new();
    if let Some(n) = &found.note {
        eprintln!("kiln: {n}");
        notes.push(n.clone());
    }
    let devices = run::select(&plan, found)?;
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
    };
    let dir = run::execute(&plan, journal, devices, about, stop)?;
    finish(&results::load(&dir)?, &dir, baseline.as_ref())
}

/// `kiln report DIR`.
pub fn report(args: &ReportArgs) -> Result<ExitCode> {
    if !args.dir.is_dir() {
        return Err(KilnError::input(
            &args.dir,
            "not a folder; expected the folder of a kiln run (the --out of `kiln run`)",
        ));
    }
    let baseline = args.baseline.as_deref().map(baseline::load).transpose()?;
    let run = results::load(&args.dir)?;
    finish(&run, &args.dir, baseline.as_ref())
}

/// Judges a run, writes its outputs and prints the summary.
fn finish(run: &RunResults, dir: &std::path::Path, forced: Option<&Baseline>) -> Result<ExitCode> {
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
    Ok(verdict::exit_code(run, &judgement.verdicts))
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
        BaselineCommand::Record { dirs, model, out } => {
            if out.exists() {
                return Err(KilnError::Usage(format!(
                    "--out {}: the file exists already; kiln does not overwrite a baseline",
                    out.display()
                )));
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

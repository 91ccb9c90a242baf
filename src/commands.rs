//! The subcommands, wired from the stages: each one validates, runs and
//! renders, and returns the exit code. `main` only maps errors to codes.

use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use crate::cli::{ListArgs, ReportArgs, RunArgs};
use crate::device::{self, SimOptions};
use crate::error::{ExitCode, KilnError, Result};
use crate::output;
use crate::plan::{self, Plan};
use crate::results::{self, RunResults};
use crate::run;
use crate::verdict;

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
pub fn run(args: &RunArgs, stop: &AtomicBool) -> Result<ExitCode> {
    let host = host_name();
    let plan = Plan::from_args(args, &host, SystemTime::now())?;
    let sim = SimOptions {
        gpus: plan.sim.gpus,
        seed: plan.seed,
    };
    let found = device::discover(plan.backend, &sim)?;
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
    };
    let dir = run::execute(&plan, journal, devices, about, stop)?;
    finish(&results::load(&dir)?, &dir)
}

/// `kiln report DIR`.
pub fn report(args: &ReportArgs) -> Result<ExitCode> {
    if !args.dir.is_dir() {
        return Err(KilnError::input(
            &args.dir,
            "not a folder; expected the folder of a kiln run (the --out of `kiln run`)",
        ));
    }
    let run = results::load(&args.dir)?;
    finish(&run, &args.dir)
}

/// Judges a run, writes its outputs and prints the summary.
fn finish(run: &RunResults, dir: &std::path::Path) -> Result<ExitCode> {
    let verdicts = verdict::judge(run);
    output::write_all(dir, run, &verdicts)?;
    let notes = output::json::notes(run);
    print!("{}", output::summary::render(run, &verdicts, &notes));
    println!("results: {}", dir.display());
    Ok(verdict::exit_code(run, &verdicts))
}

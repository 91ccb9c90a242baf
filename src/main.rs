//! The `kiln` binary: parse arguments, run the subcommand, exit with the code
//! it decided. Exit codes are documented in `kiln --help` and README.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use kiln::cli::{Cli, Command};
use kiln::commands;
use kiln::error::ExitCode;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // `kiln check` speaks the Nagios convention: a check that could
            // not run (bad arguments) is UNKNOWN, 3; help is OK, 0.
            if std::env::args().nth(1).as_deref() == Some("check") {
                let _ = e.print();
                std::process::exit(if e.use_stderr() { 3 } else { 0 });
            }
            e.exit()
        }
    };

    // First Ctrl-C, SIGTERM or SIGHUP (Slurm's time limit, systemd, a
    // Kubernetes eviction, `timeout`): finish cleanly after the current step
    // (journal, every output marked stopped early, exit 4). A second signal:
    // leave now; every finished measurement is already in the journal.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(ExitCode::Incomplete.code());
        }
        eprintln!(
            "\nkiln: stopping after the current step (a second Ctrl-C, SIGTERM or SIGHUP quits now)"
        );
    });
    let outcome = match &cli.command {
        Command::List(a) => commands::list(a),
        Command::Run(a) => commands::run(a, stop),
        Command::Report(a) => commands::report(a),
        Command::Baseline(b) => commands::baseline(b),
        Command::Selftest(a) => commands::selftest(a),
        Command::Db(c) => commands::db(c),
        Command::History(a) => commands::history(a),
        Command::Fleet(a) => commands::fleet(a),
        // Its own codes (Nagios), errors included.
        Command::Check(a) => std::process::exit(commands::check(a)),
    };
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code.code());
}

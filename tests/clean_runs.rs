//! A healthy node is never rejected: clean simulated runs with 100 different
//! seeds (so 100 different noise draws per device) give zero false
//! rejections under the shipped baseline and the peer rule.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use kiln::device::{self, BackendChoice, SimOptions};
use kiln::plan::Plan;
use kiln::results;
use kiln::run::{self, About};
use kiln::verdict::{self, baseline, BaselineChoice, Decision};
use kiln::workload::{Profile, WorkloadKind};

fn clean_run(seed: u64, gpus: usize) -> Vec<(Decision, Vec<String>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = SimOptions {
        gpus,
        seed,
        faults: Vec::new(),
        pace: std::time::Duration::ZERO,
    };
    let plan = Plan {
        profile: Profile::Quick,
        duration: None,
        backend: BackendChoice::Sim,
        sim: sim.clone(),
        devices: None,
        workloads: WorkloadKind::ALL.to_vec(),
        out: dir.path().to_path_buf(),
        seed,
        sample_interval: std::time::Duration::from_secs(1),
    };
    let found = device::discover(BackendChoice::Sim, &sim).expect("sim devices");
    let devices = run::select(&plan, found).expect("all devices");
    let journal = run::prepare_out(&plan).expect("out folder");
    let about = About {
        backend: device::BackendKind::Sim,
        host: "test".into(),
        notes: Vec::new(),
        quiet: true,
        operator: None,
        asset: None,
        driver: None,
        cuda: None,
    };
    run::execute(
        &plan,
        journal,
        devices,
        about,
        Arc::new(AtomicBool::new(false)),
    )
    .expect("run");
    let results = results::load(dir.path()).expect("results");
    let shipped = baseline::builtin();
    let j = verdict::judge(&results, BaselineChoice::Match(&shipped));
    j.verdicts
        .into_iter()
        .map(|v| {
            let failed = v
                .checks
                .iter()
                .filter(|c| !c.pass)
                .map(|c| c.detail.clone())
                .collect();
            (v.decision, failed)
        })
        .collect()
}

#[test]
fn one_hundred_clean_runs_reject_nothing() {
    for seed in 0..100 {
        for (i, (decision, failed)) in clean_run(seed, 8).into_iter().enumerate() {
            assert_eq!(
                decision,
                Decision::Accept,
                "seed {seed}, device {i}: {failed:?}"
            );
        }
    }
}

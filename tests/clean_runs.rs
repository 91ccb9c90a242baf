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

/// A simulated GPU that does every workload right and is gone when the run
/// checks it after its last workload (it fell off the bus while waiting for
/// the end of the run).
struct LostAtTheEnd(Box<dyn device::Device>);

impl device::Device for LostAtTheEnd {
    fn info(&self) -> &device::DeviceInfo {
        self.0.info()
    }
    fn matmul(
        &mut self,
        shape: device::MatmulShape,
    ) -> device::DeviceResult<Box<dyn device::MatmulOp + '_>> {
        self.0.matmul(shape)
    }
    fn stream(
        &mut self,
        len: usize,
        seed: u64,
    ) -> device::DeviceResult<Box<dyn device::StreamOp + '_>> {
        self.0.stream(len, seed)
    }
    fn hasher(
        &mut self,
        job: &kiln::reference::hash::HashJob,
    ) -> device::DeviceResult<Box<dyn device::HashOp + '_>> {
        self.0.hasher(job)
    }
    fn memtest(&mut self, words: usize) -> device::DeviceResult<Box<dyn device::MemtestOp + '_>> {
        self.0.memtest(words)
    }
    fn transfer(
        &mut self,
        words: usize,
        seed: u64,
    ) -> device::DeviceResult<Box<dyn device::TransferOp + '_>> {
        self.0.transfer(words, seed)
    }
    fn peer(
        &mut self,
        words: usize,
        seed: u64,
        peers: &[usize],
    ) -> device::DeviceResult<Box<dyn device::PeerOp + '_>> {
        self.0.peer(words, seed, peers)
    }
    fn run_started(&mut self, at: std::time::Instant) {
        self.0.run_started(at)
    }
    fn health(&mut self) -> device::DeviceResult<()> {
        Err(device::DeviceError::lost(
            "GPU 2 fell off the bus after its last workload",
        ))
    }
}

#[test]
fn a_device_lost_after_its_last_workload_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let results = run_sim(dir.path(), 3, 4, |found| {
        let lost = found.devices.remove(2);
        found.devices.insert(2, Box::new(LostAtTheEnd(lost)));
    });
    // Every workload of device 2 finished and verified...
    assert!(results.devices[2].finished_all(&WorkloadKind::ALL, 1));
    let shipped = baseline::builtin();
    let j = verdict::judge(&results, BaselineChoice::Match(&shipped));
    let got: Vec<(Decision, Vec<String>)> = j
        .verdicts
        .iter()
        .map(|v| (v.decision, v.reasons.clone()))
        .collect();
    // ... and it is rejected all the same; the others are accepted.
    assert_eq!(got[2], (Decision::Reject, vec!["device_lost".to_string()]));
    for i in [0, 1, 3] {
        assert_eq!(got[i].0, Decision::Accept, "device {i}: {:?}", got[i]);
    }
    let detail = &j.verdicts[2]
        .checks
        .iter()
        .find(|c| !c.pass)
        .expect("a failed check")
        .detail;
    assert!(detail.contains("end-of-cycle check"), "{detail}");
}

/// A quick run of `gpus` simulated GPUs in `dir`, with `adjust` applied to
/// the devices found before they run.
fn run_sim(
    dir: &std::path::Path,
    seed: u64,
    gpus: usize,
    adjust: impl FnOnce(&mut device::Discovery),
) -> results::RunResults {
    let sim = SimOptions {
        gpus,
        seed,
        faults: Vec::new(),
        pace: std::time::Duration::ZERO,
        node: String::new(),
    };
    let plan = Plan {
        profile: Profile::Quick,
        duration: None,
        backend: BackendChoice::Sim,
        sim: sim.clone(),
        devices: None,
        workloads: WorkloadKind::ALL.to_vec(),
        out: dir.to_path_buf(),
        seed,
        sample_interval: std::time::Duration::from_secs(1),
    };
    let mut found = device::discover(BackendChoice::Sim, &sim).expect("sim devices");
    adjust(&mut found);
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
    results::load(dir).expect("results")
}

fn clean_run(seed: u64, gpus: usize) -> Vec<(Decision, Vec<String>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let results = run_sim(dir.path(), seed, gpus, |_| {});
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

//! One workload alone, outside the runner: no journal, no telemetry thread,
//! no phase gate. scripts/compare-cpu.sh runs it interleaved with the same
//! workload inside `kiln run` to measure what the harness adds.
//! Usage: cargo run --release --example overhead -- [matmul|bandwidth|hash]

use std::sync::atomic::AtomicBool;

use kiln::device::cpu::CpuDevice;
use kiln::device::Device;
use kiln::workload::{self, Context, Profile, Record, WorkloadKind, WorkloadSpec};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "matmul".into());
    let Some(kind) = WorkloadKind::ALL.into_iter().find(|k| k.name() == which) else {
        eprintln!(
            "overhead: unknown workload {which:?}; expected matmul, bandwidth, hash or memtest"
        );
        std::process::exit(2);
    };
    let mut dev = CpuDevice::new(0);
    let spec = WorkloadSpec::for_device(kind, Profile::Quick, dev.info());
    let stop = AtomicBool::new(false);
    let mut metrics = Vec::new();
    let mut sink = |r: Record| {
        if let Record::Metric(m) = r {
            metrics.push(m);
        }
    };
    let mut progress = |_: f64, _: &str| {};
    let mut ctx = Context {
        stop: &stop,
        sink: &mut sink,
        progress: &mut progress,
        cycle: 0,
        seed: 1,
        busy_s: 0.0,
        sustain_s: 0.0,
    };
    if let Err(e) = workload::execute(&mut dev, &spec, &mut ctx) {
        eprintln!("overhead: {e}");
        std::process::exit(1);
    }
    for m in metrics {
        println!("{} {} {}", m.name, m.value, m.cv);
    }
}

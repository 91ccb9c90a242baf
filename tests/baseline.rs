//! Per-model baselines as the rest of kiln uses them: the shipped files,
//! finding the baseline of a device, loading a file, and recording a
//! baseline from runs of known-good nodes.

use kiln::results::{self, RunResults};
use kiln::run::journal::{Event, Journal};
use kiln::verdict::baseline::{self, Baseline};
use serde_json::json;

fn model_of<'a>(all: &'a [Baseline], name: &str, pci: Option<u16>) -> Option<&'a str> {
    baseline::find(all, name, pci).map(|b| b.source.as_str())
}

#[test]
fn every_shipped_baseline_is_built_in() {
    let all = baseline::builtin();
    assert_eq!(all.len(), 7);
    for b in &all {
        assert!(b.source.starts_with("builtin:"), "{}", b.source);
        for (m, mb) in &b.metrics {
            assert!(mb.floor < mb.expected, "{}: {m}", b.source);
            assert!(!mb.unit.is_empty(), "{}: {m}", b.source);
        }
    }
}

#[test]
fn find_picks_the_model_by_name() {
    let all = baseline::builtin();
    let cases = [
        ("NVIDIA H100 80GB HBM3", Some("builtin:h100-sxm-80gb.toml")),
        ("NVIDIA H200", Some("builtin:h200-141gb.toml")),
        ("NVIDIA A100-SXM4-80GB", Some("builtin:a100-sxm-80gb.toml")),
        ("NVIDIA L40S", Some("builtin:l40s.toml")),
        ("NVIDIA GeForce RTX 4090", Some("builtin:rtx-4090.toml")),
        ("Simulated H100 80GB HBM3", Some("builtin:sim-h100.toml")),
        ("vgpu Virtual Hopper", Some("builtin:vgpu-hopper.toml")),
        ("nvidia h100 80gb hbm3", Some("builtin:h100-sxm-80gb.toml")),
        ("AMD EPYC 9654 96-Core Processor", None),
        ("NVIDIA H100 PCIe", None),
        ("NVIDIA A100-SXM4-40GB", None),
        ("NVIDIA L40", None),
    ];
    for (name, want) in cases {
        assert_eq!(model_of(&all, name, None), want, "{name}");
    }
}

#[test]
fn the_simulated_gpu_gets_its_own_baseline_whatever_the_order() {
    let mut all = baseline::builtin();
    all.reverse();
    assert_eq!(
        model_of(&all, "Simulated H100 80GB HBM3", None),
        Some("builtin:sim-h100.toml")
    );
    let h100: Vec<Baseline> = all
        .iter()
        .filter(|b| !b.model.starts_with("Simulated"))
        .cloned()
        .collect();
    // Without the sim file, the name alone would match the H100's.
    assert_eq!(
        model_of(&h100, "Simulated H100 80GB HBM3", None),
        Some("builtin:h100-sxm-80gb.toml")
    );
}

#[test]
fn a_pci_device_id_wins_over_the_name() {
    let all = baseline::builtin();
    assert_eq!(
        model_of(&all, "NVIDIA GeForce RTX 4090", Some(0x2330)),
        Some("builtin:h100-sxm-80gb.toml")
    );
    assert_eq!(
        model_of(&all, "some renamed board", Some(0x26b9)),
        Some("builtin:l40s.toml")
    );
    assert_eq!(
        model_of(&all, "NVIDIA H200", Some(0x2335)),
        Some("builtin:h200-141gb.toml")
    );
    // An id no baseline lists falls back to the name.
    assert_eq!(
        model_of(&all, "NVIDIA A100-SXM4-80GB", Some(0xffff)),
        Some("builtin:a100-sxm-80gb.toml")
    );
    assert_eq!(model_of(&all, "AMD EPYC", Some(0x1234)), None);
    let h100 = baseline::find(&all, "NVIDIA H100 80GB HBM3", None).expect("h100");
    assert!(h100.matches("anything", Some(0x2330)));
    assert!(h100.matches("NVIDIA H100 80GB HBM3", Some(0x2684)));
    assert!(!h100.matches("NVIDIA GeForce RTX 4090", Some(0x2684)));
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nope.toml");
    let e = baseline::load(&path).expect_err("missing file");
    assert_eq!(
        e.to_string(),
        format!("{}: no such baseline file", path.display())
    );
    assert_eq!(e.exit_code(), kiln::error::ExitCode::Usage);
}

#[test]
fn a_file_is_loaded_and_its_errors_name_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[model]\nname = \"NVIDIA X\"\n\n[metrics.bw_copy]\nunit = \"GB/s\"\nexpected = 100\nfloor = 90\n",
    )
    .expect("write");
    let b = baseline::load(&good).expect("loads");
    assert_eq!(b.source, good.display().to_string());
    assert_eq!(b.metrics["bw_copy"].floor, 90.0);

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[model]\nname = \"NVIDIA X\"\n\n[metrics.bw_copy]\nunit = \"GB/s\"\nexpected = 100\nfloor = \"90\"\n",
    )
    .expect("write");
    let e = baseline::load(&bad).expect_err("bad floor");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 7: metrics.bw_copy.floor: expected a number, found a string",
            bad.display()
        )
    );

    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).expect("write");
    let e = baseline::load(&binary).expect_err("not text");
    assert_eq!(
        e.to_string(),
        format!("{}: not a baseline file: not UTF-8 text", binary.display())
    );
}

/// A finished run on `host` of `values.len()` devices named `name`; device
/// `d` measured `bw_copy` = `values[d]` GB/s once, and `matmul_fp32` in two
/// burn-in cycles, `values[d] x 10` and `values[d] x 10 + 2` GFLOP/s.
fn run(host: &str, name: &str, values: &[f64]) -> RunResults {
    let devices: Vec<_> = (0..values.len())
        .map(|i| {
            json!({
                "index": i, "name": name, "uuid": null, "serial": null,
                "pci_bus_id": null, "pci_device_id": null, "memory_bytes": 80u64 << 30,
                "compute_units": 132, "backend": "cuda", "simulated": false
            })
        })
        .collect();
    let mut events = vec![json!({
        "event": "start", "journal_version": 1, "kiln_version": "0.1.0", "host": host,
        "started_at": "2025-01-01T00:00:00Z", "profile": "burnin", "backend": "cuda",
        "seed": 1, "duration_s": 60.0, "workloads": ["bandwidth", "matmul"],
        "devices": devices, "notes": []
    })];
    let metric = |device: usize, name: &str, unit: &str, value: f64, cycle: u32| {
        json!({
            "event": "metric", "device": device,
            "metric": {
                "workload": if name == "bw_copy" { "bandwidth" } else { "matmul" },
                "name": name, "value": value, "unit": unit, "median": value,
                "p05": value, "p95": value, "cv": 0.0, "iterations": 5,
                "counted": "test", "simulated": false, "cycle": cycle
            }
        })
    };
    for (d, &v) in values.iter().enumerate() {
        events.push(metric(d, "bw_copy", "GB/s", v, 0));
        events.push(metric(d, "matmul_fp32", "GFLOP/s", v * 20.0, 0));
        events.push(metric(d, "matmul_fp32", "GFLOP/s", v * 20.0 + 2.0, 1));
        // A peer-matrix entry: a position in this node, never a baseline.
        events.push(metric(d, "p2p_gpu0", "GB/s", v / 10.0, 0));
        for cycle in 0..2 {
            for workload in ["bandwidth", "matmul"] {
                events.push(json!({
                    "event": "workload_done", "device": d, "workload": workload, "cycle": cycle
                }));
            }
        }
    }
    events.push(json!({
        "event": "end", "finished_at": "2025-01-01T01:00:00Z", "interrupted": false, "cycles": 2
    }));
    let events: Vec<Event> = events
        .into_iter()
        .map(|e| serde_json::from_value(e).expect("valid event"))
        .collect();
    results::from_journal(Journal {
        events,
        torn_tail: false,
        damaged: Vec::new(),
    })
    .expect("run")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[test]
fn record_discards_the_outlier_and_parses_back() {
    let good = [3001.5, 3010.25, 2990.0, 3005.0, 2995.5, 3020.0, 2985.75];
    let mut values = good.to_vec();
    values.insert(3, 1500.0); // device 3 is the outlier
    let runs = vec![
        run("node-a", "NVIDIA H100 80GB HBM3", &values),
        run("node-b", "Intel Xeon", &[5000.0]),
    ];
    let text = baseline::record(&runs, "h100 80gb").expect("records");
    let b = baseline::parse("recorded.toml", &text).expect("parses back");
    assert_eq!(b.model, "NVIDIA H100 80GB HBM3");
    // The half-speed device is rejected by its own run (slower than its
    // peers), so it never reaches the statistics.
    assert!(
        text.contains("Left out, not accepted by their run: 1 device(s): device 3 of node-a: reject (below_baseline, peer_outlier)"),
        "{text}"
    );
    assert_eq!(b.match_names, vec!["h100 80gb".to_string()]);
    assert!(b.matches("NVIDIA H100 80GB HBM3", None));

    let copy = &b.metrics["bw_copy"];
    assert_eq!(copy.unit, "GB/s");
    assert_eq!(copy.expected, median(good.to_vec()));
    // 90 % of expected to 4 significant digits, under 0.98 x the minimum.
    assert_eq!(copy.floor, 2701.0);
    assert!(copy.floor <= 0.98 * 2985.75);
    assert!(!text.contains("1500"), "{text}");

    // matmul_fp32: one value per device, the median over its two cycles.
    let f32s: Vec<f64> = good.iter().map(|v| v * 20.0 + 1.0).collect();
    let mm = &b.metrics["matmul_fp32"];
    assert_eq!(mm.unit, "GFLOP/s");
    assert_eq!(mm.expected, median(f32s));
    assert!(!text.contains("Intel"), "{text}");
    assert!(!b.metrics.contains_key("p2p_gpu0"), "{text}");
    assert!(text.contains("1 run(s)"), "{text}");
    assert!(text.contains("7 accepted device(s)"), "{text}");
    assert!(text.contains("Tukey"), "{text}");
    assert_eq!(b.limits, kiln::verdict::baseline::Limits::standard());
}

#[test]
fn record_caps_the_floor_under_the_slowest_kept_device() {
    // A wide but outlier-free spread: 90 % of the median would sit above
    // the slowest device, so the floor drops to 0.98 x its value.
    // Fences: Q1 93.75, Q3 106.25, IQR 12.5: [75, 125] keeps all eight.
    // Two devices per run: too few for the peer rule, so every device is
    // accepted by its run and the spread reaches the statistics.
    let values = [100.0, 90.0, 120.0, 80.0, 105.0, 95.0, 110.0, 100.0];
    let runs: Vec<_> = values
        .chunks(2)
        .enumerate()
        .map(|(i, v)| run(&format!("n{i}"), "GPU Z", v))
        .collect();
    let text = baseline::record(&runs, "GPU Z").expect("records");
    let b = baseline::parse("r.toml", &text).expect("parses back");
    let copy = &b.metrics["bw_copy"];
    assert_eq!(copy.expected, 100.0);
    assert_eq!(copy.floor, 78.4); // 0.98 x 80, not 90 % of 100
    assert!(text.contains("none discarded"), "{text}");
}

#[test]
fn record_uses_every_run() {
    let runs = vec![
        run("a", "GPU Z", &[10.0, 11.0]),
        run("b", "GPU Z", &[12.0, 13.0]),
    ];
    let text = baseline::record(&runs, "gpu z").expect("records");
    let b = baseline::parse("r.toml", &text).expect("parses back");
    assert_eq!(b.metrics["bw_copy"].expected, 11.5);
    assert!(text.contains("2 run(s)"), "{text}");
    assert!(text.contains("4 accepted device(s)"), "{text}");
}

#[test]
fn record_says_when_nothing_matches() {
    let runs = vec![run("a", "GPU Z", &[10.0])];
    let e = baseline::record(&runs, "H100").expect_err("no match");
    assert_eq!(
        e.to_string(),
        "no device of the 1 run(s) given is named like \"H100\"; device names seen: GPU Z"
    );
    let e = baseline::record(&[], "H100").expect_err("no runs");
    assert!(e.to_string().contains("device names seen: none"), "{e}");
    let e = baseline::record(&runs, "  ").expect_err("empty model");
    assert!(e.to_string().contains("must not be empty"), "{e}");
    let mut one = run("a", "GPU Z", &[1.0, 1.0, 1.0]);
    for d in &mut one.devices {
        d.metrics.clear();
    }
    let e = baseline::record(&[one], "GPU Z").expect_err("no metric");
    assert_eq!(
        e.to_string(),
        "the 3 device(s) named like \"GPU Z\" have no finished measurement to record"
    );
}

/// A run of `values` whose devices `bad` corrupted their output (an
/// integrity failure: rejected) and `cut` never finished the matmul
/// (incomplete).
fn run_with_faults(host: &str, values: &[f64], bad: &[usize], cut: &[usize]) -> RunResults {
    let mut r = run(host, "GPU Z", values);
    for d in &mut r.devices {
        let i = d.info.index;
        if bad.contains(&i) {
            d.integrity.push(
                serde_json::from_value(json!({
                    "workload": "matmul", "check": "matmul_fp32", "checked": 100,
                    "errors": 3, "detail": "3 wrong elements", "cycle": 0
                }))
                .expect("integrity"),
            );
        }
        if cut.contains(&i) {
            d.done
                .retain(|(w, _)| *w != kiln::workload::WorkloadKind::Matmul);
        }
    }
    r
}

#[test]
fn record_learns_only_from_accepted_devices() {
    // Device 1 of node-a (corrupt, at a high figure) would pull the
    // expected value up; device 1 of node-b never finished its matmul. Only
    // the accepted devices count.
    let values = [100.0, 140.0, 101.0, 99.0, 100.2, 100.5];
    let runs = vec![
        run_with_faults("node-a", &values[..3], &[1], &[]),
        run_with_faults("node-b", &values[3..], &[], &[1]),
    ];
    let text = baseline::record(&runs, "GPU Z").expect("records");
    let b = baseline::parse("r.toml", &text).expect("parses back");
    assert_eq!(
        b.metrics["bw_copy"].expected,
        median(vec![100.0, 101.0, 99.0, 100.5])
    );
    assert!(text.contains("4 accepted device(s)"), "{text}");
    assert!(text.contains("of 2 run(s) with such devices"), "{text}");
    assert!(
        text.contains("Left out, not accepted by their run: 2 device(s): device 1 of node-a: reject (sdc_matmul); device 1 of node-b: incomplete"),
        "{text}"
    );
}

#[test]
fn record_refuses_with_too_few_accepted_devices() {
    let runs = vec![run_with_faults("node-a", &[100.0, 101.0, 99.0], &[0], &[])];
    let e = baseline::record(&runs, "GPU Z").expect_err("two accepted");
    assert_eq!(e.exit_code(), kiln::error::ExitCode::Usage);
    assert_eq!(
        e.to_string(),
        "only 2 accepted device(s) named like \"GPU Z\" in the 1 run(s) given, and a baseline needs at least 3; left out: device 0 of node-a: reject (sdc_matmul)"
    );
}

/// The models `kiln` names from a PCI device id alone (a GPU on the bus
/// whose driver is missing) are the shipped baselines' models and ids.
#[test]
fn the_pci_name_table_agrees_with_the_shipped_baselines() {
    let all = baseline::builtin();
    for (id, name) in kiln::telemetry::pci::MODELS {
        let b = baseline::find(&all, "", Some(*id))
            .unwrap_or_else(|| panic!("no baseline has {id:#06x}"));
        assert_eq!(b.model, *name, "{id:#06x}");
    }
    for b in all.iter().filter(|b| b.model.starts_with("NVIDIA ")) {
        for id in &b.pci_device_ids {
            assert_eq!(
                kiln::telemetry::pci::model_name(*id),
                Some(b.model.as_str()),
                "{}",
                b.source
            );
        }
    }
}

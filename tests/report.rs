//! The acceptance report as a reader gets it: report.pdf and the charts of
//! simulated runs of 1, 8 and 16 GPUs, with and without faults. The PDF's
//! text is extracted with a pure-Rust reader (pdf-extract) and must carry,
//! on page 1, every device's serial, verdict and reason codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::output::{charts, pdf};
use kiln::verdict::{self, baseline, BaselineChoice};

fn kiln(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("kiln runs")
}

/// A simulated quick run into `dir/name`; returns its folder.
fn sim_run(dir: &Path, name: &str, gpus: usize, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let n = gpus.to_string();
    let mut args = vec![
        "run",
        "--backend",
        "sim",
        "--sim-gpus",
        &n,
        "--profile",
        "quick",
        "--out",
        out.to_str().unwrap(),
        "--operator",
        "Test Operator",
        "--asset",
        "RACK-T-01",
    ];
    args.extend_from_slice(extra);
    let o = kiln(&args);
    let code = o.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "kiln run {args:?} exited {code:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn pages(pdf: &Path) -> Vec<String> {
    let bytes = std::fs::read(pdf).expect("report.pdf exists");
    assert!(
        bytes.starts_with(b"%PDF-"),
        "{} is not a PDF",
        pdf.display()
    );
    pdf_extract::extract_text_from_mem_by_pages(&bytes).expect("the PDF's text extracts")
}

fn results(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap()
}

/// Every device's serial, verdict and reason codes are on page 1; the
/// SIMULATED mark is on every page.
fn check_report(dir: &Path) {
    let text = pages(&dir.join("report.pdf"));
    let doc = results(dir);
    let first = &text[0];
    assert!(first.contains("GPU acceptance report"), "{first}");
    assert!(first.contains("Test Operator") && first.contains("RACK-T-01"));
    for (i, page) in text.iter().enumerate() {
        assert!(
            page.contains("SIMULATED"),
            "page {} of {} has no SIMULATED mark",
            i + 1,
            dir.display()
        );
    }
    let devices = doc["devices"].as_array().unwrap();
    for d in devices {
        let serial = d["serial"].as_str().unwrap();
        assert!(first.contains(serial), "page 1 lacks device {serial}");
        let word = d["verdict"].as_str().unwrap().to_uppercase();
        assert!(first.contains(&word), "page 1 lacks {word}");
        for r in d["reasons"].as_array().unwrap() {
            let r = r.as_str().unwrap();
            assert!(first.contains(r), "page 1 lacks reason {r} of {serial}");
        }
    }
    for word in ["ACCEPT", "REJECT", "INCOMPLETE"] {
        let want = devices
            .iter()
            .filter(|d| d["verdict"].as_str().unwrap().to_uppercase() == word)
            .count();
        // The legend under the table names each word once more.
        let seen = first.matches(word).count().saturating_sub(1);
        assert!(seen >= want, "{word}: {seen} on page 1, {want} devices");
    }
    let all = text.concat();
    for part in ["Results per workload", "Failure details", "Sign-off"] {
        assert!(all.contains(part), "the report lacks {part}");
    }
    // Every metric has a chart in both formats (the peer matrix, p2p_gpuJ,
    // is a table instead), and telemetry ones exist.
    let chart_dir = dir.join("charts");
    let metrics: std::collections::BTreeSet<&str> = devices
        .iter()
        .flat_map(|d| d["metrics"].as_array().unwrap())
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    if metrics.iter().any(|m| m.starts_with("p2p_gpu")) {
        assert!(
            all.contains("Peer-to-peer bandwidth"),
            "the report lacks the peer matrix"
        );
    }
    for m in metrics.into_iter().filter(|m| !m.starts_with("p2p_gpu")) {
        for ext in ["png", "svg"] {
            let f = chart_dir.join(format!("metric-{m}.{ext}"));
            assert!(f.is_file(), "{} is missing", f.display());
        }
    }
    for q in ["temperature", "power", "sm_clock", "throttle"] {
        assert!(chart_dir.join(format!("telemetry-{q}.png")).is_file());
        assert!(chart_dir.join(format!("telemetry-{q}.svg")).is_file());
    }
}

#[test]
fn reports_of_1_8_and_16_gpus_with_and_without_faults_name_every_verdict_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = [
        sim_run(tmp.path(), "one", 1, &[]),
        sim_run(tmp.path(), "one-bad", 1, &["--inject", "0:membit"]),
        sim_run(tmp.path(), "eight", 8, &[]),
        sim_run(
            tmp.path(),
            "eight-bad",
            8,
            &["--inject", "2:slow=0.85", "--inject", "5:membit"],
        ),
        sim_run(tmp.path(), "sixteen", 16, &[]),
        sim_run(
            tmp.path(),
            "sixteen-bad",
            16,
            &[
                "--inject",
                "3:throttle=thermal",
                "--inject",
                "7:xid=79",
                "--inject",
                "9:sdc",
                "--inject",
                "12:lost=0.1",
                "--inject",
                "14:pcie=4:8",
            ],
        ),
    ];
    for dir in &runs {
        check_report(dir);
    }
    let bad = results(&runs[3]);
    assert_eq!(bad["devices"][5]["verdict"], "reject");
    let failures = pages(&runs[3].join("report.pdf")).concat();
    assert!(failures.contains("first corrupted addresses"));
    let text16 = pages(&runs[5].join("report.pdf")).concat();
    assert!(text16.contains("XID 79"), "{text16}");
    assert!(text16.contains("throttled from"));
}

#[test]
fn kiln_report_rebuilds_the_pdf_and_charts_and_writes_a_fleet_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let a = sim_run(tmp.path(), "a", 2, &[]);
    let b = sim_run(tmp.path(), "b", 4, &["--inject", "1:sdc"]);
    std::fs::remove_file(a.join("report.pdf")).unwrap();
    std::fs::remove_dir_all(a.join("charts")).unwrap();
    let fleet = tmp.path().join("fleet.pdf");
    let o = kiln(&[
        "report",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--fleet-out",
        fleet.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "a device of b is rejected");
    assert!(a.join("report.pdf").is_file());
    assert!(a.join("charts/metric-matmul_bf16.svg").is_file());
    check_report(&a);
    check_report(&b);
    let text = pages(&fleet).concat();
    assert!(text.contains("Fleet acceptance summary"));
    for dir in [&a, &b] {
        for d in results(dir)["devices"].as_array().unwrap() {
            assert!(text.contains(d["serial"].as_str().unwrap()));
        }
    }
    assert!(text.contains("sdc_matmul"));
    assert!(text.contains("6 GPU(s): 5 accepted, 1 rejected"), "{text}");
}

#[test]
fn odd_runs_still_make_a_report_no_devices_no_metrics_nan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sim_run(tmp.path(), "r", 3, &["--inject", "1:slow=0.8"]);
    let mut run = kiln::results::load(&dir).unwrap();
    let shipped = baseline::builtin();
    let mut variants = Vec::new();
    // NaN and infinite figures.
    let mut nan = run.clone();
    for d in &mut nan.devices {
        for (i, m) in d.metrics.iter_mut().enumerate() {
            m.value = if i % 2 == 0 { f64::NAN } else { f64::INFINITY };
        }
        for s in &mut d.telemetry {
            s.gpu_temp_c = Some(f64::NAN);
            s.t_s = f64::NAN;
        }
    }
    variants.push(nan);
    // A run killed before any measurement, and one with no device at all.
    let mut bare = run.clone();
    bare.finished_at = None;
    for d in &mut bare.devices {
        d.metrics.clear();
        d.integrity.clear();
        d.telemetry.clear();
        d.done.clear();
    }
    variants.push(bare);
    run.devices.clear();
    variants.push(run);
    for r in &variants {
        let j = verdict::judge(r, BaselineChoice::Match(&shipped));
        let c = charts::render(r, &j).expect("charts render");
        let bytes = pdf::render(r, &j, &c);
        let text = pdf_extract::extract_text_from_mem(&bytes).expect("the PDF reads back");
        assert!(text.contains("GPU acceptance report"));
        if r.finished_at.is_none() {
            assert!(text.contains("INCOMPLETE RUN"));
        }
    }
}

//! Burn-in: late faults are caught with their time to fault, telemetry is
//! sampled at the chosen rate, and Ctrl-C ends a burn-in cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.stdin(Stdio::null());
    c
}

fn json(dir: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn late_faults_are_caught_with_their_time_to_fault() {
    let d = tempfile::tempdir().expect("tmp");
    let out = d.path().to_str().expect("utf-8");
    let o = kiln()
        .args([
            "run",
            "--backend",
            "sim",
            "--sim-gpus",
            "4",
            "--profile",
            "burnin",
            "--duration",
            "24s",
            "--sample-rate",
            "2",
            "--inject",
            "1:throttle=thermal@6s",
            "--inject",
            "3:membit@12s",
            "--out",
            out,
        ])
        .output()
        .expect("kiln runs");
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{log}");
    let v = json(d.path());
    assert!(v["cycles"].as_u64() >= Some(3), "{}", v["cycles"]);
    for (dev, verdict) in [(0, "accept"), (1, "reject"), (2, "accept"), (3, "reject")] {
        assert_eq!(v["devices"][dev]["verdict"], verdict, "device {dev}");
    }
    assert_eq!(v["devices"][1]["reasons"][0], "thermal_throttle");
    assert_eq!(v["devices"][3]["reasons"][0], "memtest_errors");
    let ttf = |dev: usize| {
        v["devices"][dev]["time_to_fault_s"]
            .as_f64()
            .expect("time to fault")
    };
    assert!((6.0..8.0).contains(&ttf(1)), "throttle seen at {}", ttf(1));
    assert!((12.0..19.0).contains(&ttf(3)), "membit seen at {}", ttf(3));
    assert!(v["devices"][0]["time_to_fault_s"].is_null());
    // The error appeared only after some clean cycles.
    assert!(v["devices"][3]["burnin"]["first_error_cycle"].as_u64() > Some(1));
    // Telemetry: every device, at about 2 samples per second, plus one
    // reading as each of its workload phases ends.
    let csv = std::fs::read_to_string(d.path().join("telemetry.csv")).expect("telemetry.csv");
    for dev in 0..4 {
        let rows = csv
            .lines()
            .skip(1)
            .filter(|l| l.split(',').nth(2) == Some(&dev.to_string()))
            .count();
        let phases = v["devices"][dev]["phases"].as_array().map_or(0, Vec::len);
        assert!(phases > 0, "device {dev}: no phase");
        let periodic = rows.saturating_sub(phases);
        assert!(
            (40..=60).contains(&periodic),
            "device {dev}: {rows} rows ({phases} at phase ends) in 24 s at 2 Hz"
        );
    }
    // Per-phase telemetry summaries are in results.json.
    let phases = v["devices"][1]["phases"].as_array().expect("phases");
    assert!(phases
        .iter()
        .any(|p| p["throttled_s"]["sw_thermal_slowdown"].as_f64() > Some(0.0)));
}

#[test]
fn ctrl_c_ends_a_burn_in_with_a_complete_report_marked_stopped() {
    let d = tempfile::tempdir().expect("tmp");
    let out = d.path().to_str().expect("utf-8").to_string();
    let mut child = kiln()
        .args([
            "run",
            "--backend",
            "sim",
            "--sim-gpus",
            "2",
            "--profile",
            "burnin",
            "--duration",
            "1h",
            "--out",
            &out,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kiln starts");
    let journal = d.path().join("journal.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .contains("workload_done")
    {
        assert!(Instant::now() < deadline, "nothing finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(4));
    let v = json(d.path());
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["complete"], false);
    let notes = v["notes"].to_string();
    assert!(notes.contains("stopped early"), "{notes}");
    assert!(v["devices"][0]["metrics"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));
}

#[test]
fn sample_rate_is_bounded() {
    let o = kiln()
        .args(["run", "--backend", "sim", "--sample-rate", "50"])
        .output()
        .expect("kiln runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("--sample-rate 50: expected samples per second from 0.1 to 10"));
}

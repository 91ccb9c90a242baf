//! Fault injection: every fault class the sim backend can inject is caught,
//! through detection (never by the injector telling the verdict), and a
//! clean node is never rejected.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kiln starts")
}

fn sim(dir: &Path, extra: &[&str]) -> (i32, Value, String) {
    let out = dir.to_str().expect("utf-8");
    let mut args = vec![
        "run",
        "--backend",
        "sim",
        "--profile",
        "quick",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    let o = kiln(&args);
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (
        o.status.code().unwrap_or(-1),
        v,
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn reasons(v: &Value, dev: usize) -> Vec<String> {
    v["devices"][dev]["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_rejected_for(v: &Value, dev: usize, code: &str) {
    assert_eq!(
        v["devices"][dev]["verdict"], "reject",
        "device {dev}: {}",
        v["devices"][dev]
    );
    let r = reasons(v, dev);
    assert!(
        r.iter().any(|x| x == code),
        "device {dev}: expected {code} in {r:?}"
    );
}

fn assert_clean(v: &Value, dev: usize) {
    let d = &v["devices"][dev];
    assert_eq!(d["verdict"], "accept", "device {dev}: {d}");
    for c in d["checks"].as_array().expect("checks") {
        assert_eq!(c["pass"], true, "device {dev}: {c}");
    }
}

#[test]
fn the_seven_fault_node_rejects_exactly_the_faulty_devices() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--inject",
            "1:sdc",
            "--inject",
            "2:slow=0.85",
            "--inject",
            "3:throttle=thermal",
            "--inject",
            "4:hang=matmul",
            "--inject",
            "5:ecc=1",
            "--inject",
            "6:membit",
            "--inject",
            "7:hashbit",
        ],
    );
    assert_eq!(code, 1, "{log}");
    assert_clean(&v, 0);
    assert_rejected_for(&v, 1, "sdc_matmul");
    assert_rejected_for(&v, 2, "below_baseline");
    assert_rejected_for(&v, 2, "peer_outlier");
    assert_rejected_for(&v, 3, "thermal_throttle");
    assert_rejected_for(&v, 4, "hang");
    assert_rejected_for(&v, 5, "ecc_uncorrectable");
    assert_rejected_for(&v, 6, "memtest_errors");
    assert_rejected_for(&v, 7, "hash_mismatch");
    // Faults are specific: no device picks up another's reason.
    assert_eq!(reasons(&v, 1), vec!["sdc_matmul"]);
    assert_eq!(reasons(&v, 3), vec!["thermal_throttle"]);
    // An uncorrectable error leaves a row remapping pending, as on an A100
    // or later (and as the virtual GPU's NVML reports it).
    assert_eq!(reasons(&v, 5), vec!["ecc_uncorrectable", "row_remap"]);
    assert_eq!(reasons(&v, 6), vec!["memtest_errors"]);
    assert_eq!(reasons(&v, 7), vec!["hash_mismatch"]);
    // Every finished measurement of every device is kept; the hung device
    // kept nothing of matmul but the others ran everything.
    for dev in [0, 1, 2, 3, 5, 6, 7] {
        assert_eq!(
            v["devices"][dev]["metrics"].as_array().map(Vec::len),
            // 8 matmul variants, 4 bandwidth, sha256d, memtest, h2d, d2h,
            // p2p, p2p_nvlink and p2p_gpuJ to each of the 7 other devices.
            Some(25),
            "device {dev}"
        );
    }
    assert!(v["devices"][4]["hangs"][0]["workload"] == "matmul");
    assert!(log.contains("REJECT"));
}

#[test]
fn the_other_fault_classes_are_caught_too() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--sim-gpus",
            "7",
            "--inject",
            "1:copybit",
            "--inject",
            "2:throttle=power",
            "--inject",
            "3:hot=96",
            "--inject",
            "4:xid=79",
            "--inject",
            "5:pcie=4:16",
            "--inject",
            "6:lost=0",
        ],
    );
    assert_eq!(code, 1, "{log}");
    assert_clean(&v, 0);
    assert_rejected_for(&v, 1, "copy_mismatch");
    assert_rejected_for(&v, 2, "power_throttle");
    assert_rejected_for(&v, 3, "over_temperature");
    assert_rejected_for(&v, 4, "xid");
    assert_rejected_for(&v, 5, "pcie_degraded");
    assert_rejected_for(&v, 6, "device_lost");
    let detail = v["devices"][4]["checks"].to_string();
    assert!(detail.contains("XID 79"), "{detail}");
}

#[test]
fn a_corrupted_transfer_is_caught_in_every_direction() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--sim-gpus",
            "4",
            "--inject",
            "2:xferbit",
            "--workloads",
            "transfer",
        ],
    );
    assert_eq!(code, 1, "{log}");
    for dev in [0, 1, 3] {
        assert_clean(&v, dev);
    }
    assert_rejected_for(&v, 2, "transfer_mismatch");
    assert_eq!(reasons(&v, 2), vec!["transfer_mismatch"]);
    let integrity = v["devices"][2]["integrity"].as_array().expect("integrity");
    for check in ["h2d", "d2h", "p2p"] {
        let r = integrity
            .iter()
            .find(|i| i["check"] == check)
            .unwrap_or_else(|| panic!("{check} checked"));
        assert!(r["errors"].as_u64() >= Some(1), "{check}: {r}");
    }
    // The detail says where: the flipped word is in the middle of the copy.
    let h2d = integrity.iter().find(|i| i["check"] == "h2d").expect("h2d");
    assert!(
        h2d["detail"]
            .as_str()
            .unwrap_or("")
            .contains("byte offset 0x10000"),
        "{h2d}"
    );
}

#[test]
fn a_degraded_pcie_link_also_shows_in_host_transfers() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--sim-gpus",
            "4",
            "--inject",
            "1:pcie=4:16",
            "--workloads",
            "transfer",
        ],
    );
    assert_eq!(code, 1, "{log}");
    assert_rejected_for(&v, 1, "pcie_degraded");
    assert_rejected_for(&v, 1, "below_baseline");
    let h2d = |dev: usize| {
        v["devices"][dev]["metrics"]
            .as_array()
            .and_then(|m| m.iter().find(|x| x["name"] == "h2d"))
            .and_then(|x| x["value"].as_f64())
            .expect("h2d measured")
    };
    // Gen4 carries half of Gen5.
    let ratio = h2d(1) / h2d(0);
    assert!((0.45..0.55).contains(&ratio), "h2d ratio {ratio}");
    assert_clean(&v, 0);
}

#[test]
fn peer_copies_follow_the_selected_devices() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--sim-gpus",
            "8",
            "--devices",
            "1,3,6",
            "--workloads",
            "transfer",
        ],
    );
    assert_eq!(code, 0, "{log}");
    let devs = v["devices"].as_array().expect("devices");
    assert_eq!(devs.len(), 3);
    for (k, want) in [
        (0usize, ["p2p_gpu3", "p2p_gpu6"]),
        (1, ["p2p_gpu1", "p2p_gpu6"]),
        (2, ["p2p_gpu1", "p2p_gpu3"]),
    ] {
        let names: Vec<&str> = devs[k]["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .filter(|n| n.starts_with("p2p_gpu"))
            .collect();
        let mut names = names;
        names.sort_unstable();
        assert_eq!(names, want, "device {}", devs[k]["index"]);
    }
}

#[test]
fn a_late_fault_only_rejects_when_it_has_happened() {
    // The membit fault starts after an hour: this quick run never sees it.
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(d.path(), &["--sim-gpus", "3", "--inject", "1:membit@1h"]);
    assert_eq!(code, 0, "{log}");
    assert_clean(&v, 1);
}

#[test]
fn malformed_injections_are_usage_errors() {
    for (arg, needle) in [
        ("1", "no device index"),
        ("x:sdc", "\"x\" is not a device index"),
        ("1:melt", "unknown fault \"melt\""),
        ("1:slow=2", "at most 1"),
        ("1:slow=fast", "not a number"),
        ("1:throttle=cold", "expected thermal, power or hw"),
        ("1:pcie=9", "GEN:WIDTH"),
        (
            "1:hang=fft",
            "expected matmul, bandwidth, hash, memtest, transfer or pulse",
        ),
        ("1:ecc=-1", "not a whole number"),
        ("1:sdc=3", "takes no value"),
        ("1:membit@soon", "not a duration"),
        ("9:sdc", "there is no simulated GPU 9"),
        ("1:fabric=broken", "expected unhealthy, degraded or fm_down"),
        ("1:nvlinkwire=18", "expected a link from 0 to 17"),
        ("1:mig=off", "mig=off: expected on"),
        ("1:persistence=on", "persistence=on: expected off"),
        ("1:pulse=melt", "pulse=melt: expected lost, error or sdc"),
        ("1:pulse", "pulse needs a value"),
    ] {
        let o = kiln(&[
            "run",
            "--backend",
            "sim",
            "--inject",
            arg,
            "--out",
            "/tmp/kiln-never",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{arg}: {err}");
        assert!(err.contains(needle), "{arg}: expected {needle:?} in {err}");
        assert!(err.contains("--inject"), "{err}");
    }
    let o = kiln(&["run", "--backend", "cpu", "--inject", "1:sdc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("only be injected into simulated GPUs"));
}

#[test]
fn a_gpu_that_cannot_draw_its_power_under_matmul_is_rejected_power_low() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--sim-gpus",
            "4",
            "--inject",
            "2:powerlow=0.6",
            "--workloads",
            "matmul,hash",
        ],
    );
    assert_eq!(code, 1, "{log}");
    for dev in [0, 1, 3] {
        assert_clean(&v, dev);
        let check = v["devices"][dev]["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["metric"] == "power_under_load")
            .expect("every GPU's power is judged under matmul")
            .clone();
        assert_eq!(check["pass"], true, "{check}");
    }
    assert_eq!(reasons(&v, 2), vec!["power_low"], "{log}");
    assert_eq!(v["devices"][2]["remedy"], "check_cabling_or_reseat");
    assert!(
        log.contains("drew at most 420 W under matmul, 60 % of its enforced limit of 700 W"),
        "{log}"
    );
    // Each phase records the power reached and the clocks held.
    let phases = v["devices"][2]["phases"].as_array().expect("phases");
    let matmul = phases
        .iter()
        .find(|p| p["workload"] == "matmul")
        .expect("matmul phase");
    assert_eq!(matmul["power_w"]["max"], 420.0, "{matmul}");
    assert_eq!(matmul["power_limit_w"], 700.0, "{matmul}");
    assert!(
        matmul["sm_clock_mhz"]["median"].as_f64().is_some(),
        "{matmul}"
    );
}

#[test]
fn a_bad_power_fraction_is_refused_with_what_was_expected() {
    let d = tempfile::tempdir().expect("temp");
    let (code, _, log) = sim(d.path(), &["--inject", "1:powerlow=1.5"]);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("powerlow=1.5: expected the fraction"), "{log}");
}

#[test]
fn fabric_and_wiring_faults_reject_and_a_gpu_in_mig_mode_is_untested() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--sim-gpus",
            "6",
            "--workloads",
            "hash",
            "--inject",
            "1:fabric=unhealthy",
            "--inject",
            "2:fabric=degraded",
            "--inject",
            "3:nvlinkwire=4",
            "--inject",
            "4:mig=on",
        ],
    );
    assert_eq!(code, 1, "{log}");
    assert_clean(&v, 0);
    assert_clean(&v, 5);
    assert_eq!(reasons(&v, 1), ["fabric_unhealthy"]);
    assert_eq!(v["devices"][1]["remedy"], "reset_gpu");
    assert_eq!(reasons(&v, 2), ["fabric_unhealthy"]);
    assert_eq!(v["devices"][2]["remedy"], "check_cabling_or_reseat");
    assert_eq!(reasons(&v, 3), ["nvlink_wiring"]);
    let wiring = v["devices"][3]["diagnosis"].as_str().unwrap_or_default();
    assert!(
        wiring.contains("NVSwitch 00000000:06:00.0 is reached over 6 links (1, 4, 5, 9, 13, 17) where its 5 Simulated H100 80GB HBM3 peers have 5"),
        "{wiring}"
    );
    assert_eq!(
        v["devices"][4]["verdict"], "untested",
        "{}",
        v["devices"][4]
    );
    assert_eq!(reasons(&v, 4), ["mig_enabled"]);
    // The fabric and the wiring are in results.json: the fabric in every
    // sample, the endpoints once (they did not change).
    let t = &v["devices"][0]["telemetry"];
    assert_eq!(t[0]["fabric"]["state"], "completed", "{t}");
    assert_eq!(
        t[0]["fabric"]["cluster_uuid"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(t[0]["nvlink_remote"].as_array().map(Vec::len), Some(18));
    assert_eq!(t[0]["nvlink_remote"][0]["remote"], "nvswitch");
    let later = t.as_array().map_or(0, |a| {
        a.iter()
            .skip(1)
            .filter(|s| s.get("nvlink_remote").is_some())
            .count()
    });
    assert_eq!(later, 0, "{t}");
}

#[test]
fn the_fabric_manager_down_is_the_nodes_and_multinode_nvlink_needs_a_cluster() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--sim-gpus",
            "3",
            "--workloads",
            "hash",
            "--inject",
            "0:fabric=fm_down",
        ],
    );
    assert_eq!(code, 5, "{log}");
    for dev in 0..3 {
        assert_eq!(
            v["devices"][dev]["verdict"], "untested",
            "{}",
            v["devices"][dev]
        );
        assert_eq!(reasons(&v, dev), ["fabric_manager_down"]);
        assert_eq!(v["devices"][dev]["remedy"], "fix_node_software");
    }
    // The same healthy single-node fabric (zero cluster UUID, clique 0) is
    // rejected only where the baseline says the model is multi-node NVLink.
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/baselines/sim-h100.toml"
    ))
    .expect("baseline");
    let multi = d.path().join("multinode.toml");
    std::fs::write(
        &multi,
        base.replace("[limits]\n", "[limits]\nmultinode_nvlink = true\n"),
    )
    .expect("write");
    let d2 = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d2.path(),
        &[
            "--sim-gpus",
            "3",
            "--workloads",
            "hash",
            "--baseline",
            multi.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 1, "{log}");
    for dev in 0..3 {
        assert_eq!(
            reasons(&v, dev),
            ["fabric_unhealthy"],
            "{}",
            v["devices"][dev]
        );
    }
    let detail = v["devices"][0]["checks"].to_string();
    assert!(
        detail.contains("no cluster UUID (all zeros) on a multi-node NVLink system"),
        "{detail}"
    );
    let d3 = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(d3.path(), &["--sim-gpus", "3", "--workloads", "hash"]);
    assert_eq!(code, 0, "{log}");
    for dev in 0..3 {
        assert_clean(&v, dev);
    }
}

/// The power pulses: a GPU whose power delivery fails only under load
/// steps (lost, a failed launch, a wrong result) is rejected, each for its
/// reason; the healthy ones pulse, are checked and accepted.
#[test]
fn failures_under_power_pulses_reject_and_healthy_gpus_pass_them() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--sim-gpus",
            "5",
            "--workloads",
            "matmul,pulse",
            "--inject",
            "1:pulse=lost",
            "--inject",
            "2:pulse=error",
            "--inject",
            "3:pulse=sdc",
        ],
    );
    assert_eq!(code, 1, "{log}");
    for dev in [0, 4] {
        assert_clean(&v, dev);
        let d = &v["devices"][dev];
        let pulse = d["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["workload"] == "pulse")
            .unwrap_or_else(|| panic!("device {dev}: no pulse figure: {d}"));
        assert_eq!(pulse["name"], "pulse_bf16");
        assert_eq!(pulse["unit"], "TFLOP/s");
        assert_eq!(pulse["iterations"], 10, "one rate per burst");
        let counted = pulse["counted"].as_str().unwrap_or("");
        assert!(counted.contains("10 bursts"), "{counted}");
        let check = d["integrity"]
            .as_array()
            .expect("integrity")
            .iter()
            .find(|i| i["check"] == "pulse_bf16")
            .expect("the pulses are verified");
        assert_eq!(check["errors"], 0);
        assert!(check["checked"].as_u64() > Some(10));
    }
    assert_rejected_for(&v, 1, "device_lost");
    assert_rejected_for(&v, 2, "device_error");
    assert_rejected_for(&v, 3, "sdc_pulse");
    // Steady load was unaffected: their matmul passed.
    for dev in 1..=3 {
        let r = reasons(&v, dev);
        assert!(!r.iter().any(|x| x == "sdc_matmul"), "device {dev}: {r:?}");
    }
    let d3 = v["devices"][3].to_string();
    assert!(d3.contains("idle-to-load step"), "{d3}");
    assert_eq!(v["devices"][3]["remedy"], "check_cabling_or_reseat");
    let d2 = v["devices"][2]["checks"].to_string();
    assert!(d2.contains("load step 3 of the power pulses"), "{d2}");
}

/// `quick` leaves the minute of pulses out unless asked; `standard` runs
/// them by default.
#[test]
fn standard_runs_the_pulses_and_quick_only_when_asked() {
    let d = tempfile::tempdir().expect("temp");
    let out = d.path().join("q");
    let o = kiln(&[
        "run",
        "--backend",
        "sim",
        "--sim-gpus",
        "3",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(out.join("results.json")).expect("results");
    assert!(
        !text.contains("pulse_bf16"),
        "quick has no pulses by default"
    );
    let out = d.path().join("s");
    let o = kiln(&[
        "run",
        "--backend",
        "sim",
        "--sim-gpus",
        "3",
        "--profile",
        "standard",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let text = std::fs::read_to_string(out.join("results.json")).expect("results");
    assert_eq!(o.status.code(), Some(0), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    for dev in 0..3 {
        assert_clean(&v, dev);
        assert!(
            v["devices"][dev]["metrics"]
                .as_array()
                .expect("metrics")
                .iter()
                .any(|m| m["name"] == "pulse_bf16"),
            "device {dev}"
        );
    }
}

/// Peer copies are judged by the link that carries them: a GPU whose every
/// NVLink is down copies to its peers over PCIe, which an all-NVLink model
/// rejects (`p2p_over_pcie`, beside `nvlink_down`); the healthy GPUs' NVLink
/// copies clear the NVLink floor.
#[test]
fn peer_copies_over_pcie_on_an_nvlink_model_reject_and_nvlink_ones_pass() {
    let d = tempfile::tempdir().expect("temp");
    let (code, v, log) = sim(
        d.path(),
        &[
            "--sim-gpus",
            "4",
            "--workloads",
            "transfer",
            "--inject",
            "2:nvlinkdown=18",
        ],
    );
    assert_eq!(code, 1, "{log}");
    for dev in [0, 1, 3] {
        assert_clean(&v, dev);
        let floor = v["devices"][dev]["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["rule"] == "absolute" && c["metric"] == "p2p_nvlink")
            .cloned()
            .unwrap_or_else(|| panic!("device {dev}: the NVLink floor is judged"));
        assert_eq!(floor["pass"], true, "{floor}");
        let text = v["devices"][dev]["metrics"].to_string();
        assert!(!text.contains("p2p_pcie"), "device {dev}: {text}");
    }
    assert_rejected_for(&v, 2, "p2p_over_pcie");
    assert_rejected_for(&v, 2, "nvlink_down");
    let metrics = v["devices"][2]["metrics"].as_array().expect("metrics");
    let pcie = metrics
        .iter()
        .find(|m| m["name"] == "p2p_pcie")
        .expect("the PCIe copies are measured");
    assert!(pcie["value"].as_f64() < Some(100.0), "{pcie}");
    let to0 = metrics
        .iter()
        .find(|m| m["name"] == "p2p_gpu0")
        .expect("p2p_gpu0");
    assert!(
        to0["counted"].as_str().unwrap_or("").contains("over PCIe"),
        "{to0}"
    );
    assert_eq!(v["devices"][2]["remedy"], "check_cabling_or_reseat");
}

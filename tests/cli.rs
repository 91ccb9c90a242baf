//! The `kiln` binary as a user and a script see it: exit codes, files,
//! messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// kiln as a user runs it, on a node whose PCI bus shows no NVIDIA GPU
/// (an empty `KILN_SYSFS_PCI`), whatever the test machine has.
fn kiln(args: &[&str]) -> Output {
    kiln_on(args, Path::new("/nonexistent/kiln-test-sysfs"))
}

/// kiln on a node whose PCI functions are the folders of `sysfs`.
fn kiln_on(args: &[&str], sysfs: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_SYSFS_PCI", sysfs)
        .stdin(Stdio::null())
        .output()
        .expect("kiln starts")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("file exists");
    serde_json::from_str(&text).expect("valid JSON")
}

/// Asserts a usage error: exit 2, one `kiln: error:` line mentioning
/// `needle`, no panic.
fn assert_usage_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(code(o), 2, "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
}

fn sim_run(dir: &Path, extra: &[&str]) -> Output {
    let out = dir.to_str().expect("utf-8 path");
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
    kiln(&args)
}

mod list {
    use super::*;

    #[test]
    fn cpu_backend_shows_the_cpu() {
        let o = kiln(&["list", "--backend", "cpu"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains("IDX"), "{text}");
        assert!(
            text.lines().nth(1).is_some_and(|l| l.contains("cpu")),
            "{text}"
        );
    }

    #[test]
    fn auto_without_a_gpu_shows_the_cpu_and_says_why() {
        let o = kiln(&["list"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stdout(&o).contains("cpu"));
        assert!(
            stderr(&o).contains("testing the CPU instead"),
            "{}",
            stderr(&o)
        );
    }

    #[test]
    fn sim_json_is_machine_readable() {
        let o = kiln(&["list", "--backend", "sim", "--json"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
        assert_eq!(v["backend"], "sim");
        let devs = v["devices"].as_array().expect("devices array");
        assert_eq!(devs.len(), 8);
        for (i, d) in devs.iter().enumerate() {
            assert_eq!(d["index"], i);
            assert_eq!(d["simulated"], true);
            assert!(d["uuid"].as_str().is_some_and(|u| u.starts_with("GPU-")));
            assert!(d["serial"].is_string() && d["pci_bus_id"].is_string());
            assert!(d["memory_bytes"].as_u64().is_some_and(|m| m > 0));
        }
        let uuids: std::collections::HashSet<_> =
            devs.iter().map(|d| d["uuid"].to_string()).collect();
        assert_eq!(uuids.len(), 8, "uuids are distinct");
    }

    #[test]
    fn sim_gpu_count_is_respected() {
        let o = kiln(&["list", "--backend", "sim", "--sim-gpus", "3", "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(v["devices"].as_array().map(Vec::len), Some(3));
    }
}

mod run {
    use super::*;

    #[test]
    fn sim_quick_accepts_eight_devices_with_every_workload() {
        let d = tmp();
        let o = sim_run(d.path(), &[]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["complete"], true);
        assert_eq!(v["simulated"], true);
        assert_eq!(v["summary"]["accepted"], 8);
        for key in [
            "kiln_version",
            "host",
            "started_at",
            "finished_at",
            "profile",
            "backend",
        ] {
            assert!(v[key].is_string(), "{key} missing");
        }
        let devs = v["devices"].as_array().expect("devices");
        assert_eq!(devs.len(), 8);
        for dev in devs {
            assert_eq!(dev["verdict"], "accept");
            assert_eq!(dev["reasons"].as_array().map(Vec::len), Some(0));
            let workloads: std::collections::HashSet<_> = dev["metrics"]
                .as_array()
                .expect("metrics")
                .iter()
                .map(|m| m["workload"].as_str().unwrap_or("").to_string())
                .collect();
            for w in ["matmul", "bandwidth", "hash", "memtest", "transfer"] {
                assert!(workloads.contains(w), "{w} missing");
            }
            for m in dev["metrics"].as_array().expect("metrics") {
                assert_eq!(m["simulated"], true);
                for k in ["value", "median", "p05", "p95", "cv"] {
                    assert!(m[k].is_number(), "{k}");
                }
                assert!(m["unit"].is_string() && m["iterations"].as_u64() >= Some(1));
            }
            for i in dev["integrity"].as_array().expect("integrity") {
                assert!(i["checked"].as_u64() > Some(0));
                assert_eq!(i["errors"], 0);
            }
        }
        let csv = std::fs::read_to_string(d.path().join("results.csv")).expect("csv");
        assert!(csv.starts_with("device,name,uuid"));
        assert_eq!(
            csv.lines().count(),
            1 + 8 * 25,
            "one row per device x metric (8 matmul variants, 4 bandwidth, sha256d, memtest, h2d, d2h, p2p, p2p_nvlink and p2p_gpuJ to each of the 7 peers)"
        );
        assert!(d.path().join("journal.jsonl").is_file());
        let out = stdout(&o);
        assert!(out.contains("8 accepted, 0 rejected"), "{out}");
        assert!(out.contains("SIMULATED"), "{out}");
    }

    #[test]
    fn device_subset_is_tested_alone() {
        let d = tmp();
        let o = sim_run(d.path(), &["--devices", "2,5"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        let idx: Vec<_> = v["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d["index"].as_u64())
            .collect();
        assert_eq!(idx, vec![Some(2), Some(5)]);
    }

    #[test]
    fn same_seed_same_figures() {
        let (a, b) = (tmp(), tmp());
        sim_run(a.path(), &["--sim-gpus", "2", "--seed", "9"]);
        sim_run(b.path(), &["--sim-gpus", "2", "--seed", "9"]);
        let va = read_json(&a.path().join("results.json"));
        let vb = read_json(&b.path().join("results.json"));
        assert_eq!(va["devices"][1]["metrics"], vb["devices"][1]["metrics"]);
    }

    #[test]
    fn cpu_quick_measures_and_verifies_every_workload() {
        let d = tmp();
        let out = d.path().to_str().expect("utf-8");
        let o = kiln(&[
            "run",
            "--backend",
            "cpu",
            "--profile",
            "quick",
            "--out",
            out,
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        let dev = &v["devices"][0];
        assert_eq!(dev["backend"], "cpu");
        assert_eq!(dev["simulated"], false);
        let names: Vec<&str> = dev["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        for n in [
            "matmul_fp32",
            "matmul_fp64",
            "bw_read",
            "bw_write",
            "bw_copy",
            "bw_triad",
            "sha256d",
            "memtest",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        let checked: Vec<&str> = dev["integrity"]
            .as_array()
            .expect("integrity")
            .iter()
            .filter(|i| i["checked"].as_u64() > Some(0) && i["errors"] == 0)
            .filter_map(|i| i["workload"].as_str())
            .collect();
        for w in ["matmul", "bandwidth", "hash", "memtest"] {
            assert!(checked.contains(&w), "{w} not verified");
        }
    }
}

mod exit_codes {
    use super::*;

    #[test]
    fn cuda_without_a_gpu_is_code_3_in_one_line() {
        let o = kiln(&["run", "--backend", "cuda", "--out", "/tmp/never-used"]);
        assert_eq!(code(&o), 3);
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("CUDA backend unavailable"), "{err}");
        assert!(!Path::new("/tmp/never-used/journal.jsonl").exists());
    }

    #[test]
    fn a_rejected_device_is_code_1() {
        let d = tmp();
        assert_eq!(code(&sim_run(d.path(), &["--sim-gpus", "2"])), 0);
        // Corrupt the journal as a faulty device would have: device 1's copy
        // check found an error.
        let path = d.path().join("journal.jsonl");
        let text = std::fs::read_to_string(&path).expect("journal");
        let mut done = false;
        let edited: Vec<String> = text
            .lines()
            .map(|l| {
                if !done
                    && l.contains("\"integrity\"")
                    && l.contains("\"device\":1")
                    && l.contains("bw_copy")
                {
                    done = true;
                    l.replace("\"errors\":0", "\"errors\":3")
                        .replace("\"detail\":\"\"", "\"detail\":\"copy differs\"")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(done, "found device 1's copy check");
        std::fs::write(&path, edited.join("\n") + "\n").expect("write");
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        assert_eq!(v["devices"][0]["verdict"], "accept");
        assert_eq!(v["devices"][1]["verdict"], "reject");
        assert_eq!(v["devices"][1]["reasons"][0], "copy_mismatch");
        assert!(stdout(&o).contains("REJECT"));
    }

    #[test]
    fn a_run_killed_halfway_keeps_its_measurements_and_reports_code_4() {
        let d = tmp();
        let out = d.path().to_str().expect("utf-8").to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args([
                "run",
                "--backend",
                "cpu",
                "--profile",
                "quick",
                "--out",
                &out,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kiln starts");
        let journal = d.path().join("journal.jsonl");
        let deadline = Instant::now() + Duration::from_secs(120);
        // Wait until the first workload has finished, then kill -9.
        loop {
            let text = std::fs::read_to_string(&journal).unwrap_or_default();
            if text.contains("workload_done") {
                break;
            }
            assert!(Instant::now() < deadline, "no workload finished in time");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let o = kiln(&["report", &out]);
        assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        assert_eq!(v["complete"], false);
        assert_eq!(v["devices"][0]["verdict"], "incomplete");
        let metrics = v["devices"][0]["metrics"].as_array().expect("metrics");
        assert!(
            metrics.iter().any(|m| m["name"] == "matmul_fp32"),
            "finished measurement kept"
        );
        assert!(stdout(&o).contains("INCOMPLETE"));
    }

    #[test]
    fn report_of_a_journal_without_its_end_is_code_4() {
        let d = tmp();
        assert_eq!(code(&sim_run(d.path(), &["--sim-gpus", "2"])), 0);
        let path = d.path().join("journal.jsonl");
        let text = std::fs::read_to_string(&path).expect("journal");
        let lines: Vec<&str> = text.lines().collect();
        // Drop the end event and tear the last remaining line in half.
        let keep = &lines[..lines.len() - 1];
        let mut cut = keep.join("\n");
        let torn = cut.len() - 10;
        cut.truncate(torn);
        std::fs::write(&path, cut).expect("write");
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        assert_eq!(code(&o), 4, "{}", stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        assert_eq!(v["complete"], false);
        let notes = v["notes"].to_string();
        assert!(notes.contains("cut off"), "{notes}");
    }
}

mod bad_input {
    use super::*;

    #[test]
    fn unknown_flag() {
        let o = kiln(&["run", "--frobnicate"]);
        assert_eq!(code(&o), 2);
        assert!(stderr(&o).contains("--frobnicate"));
    }

    #[test]
    fn bad_profile_lists_the_choices() {
        let o = kiln(&["run", "--profile", "fast"]);
        assert_eq!(code(&o), 2);
        let err = stderr(&o);
        assert!(err.contains("quick") && err.contains("burnin"), "{err}");
    }

    #[test]
    fn unknown_device_index() {
        let d = tmp();
        let o = sim_run(d.path(), &["--sim-gpus", "4", "--devices", "1,9"]);
        assert_usage_error(
            &o,
            "there is no device 9; the sim backend has devices 0 to 3",
        );
        assert!(!d.path().join("journal.jsonl").exists(), "nothing ran");
    }

    #[test]
    fn malformed_device_list() {
        let o = kiln(&["run", "--backend", "sim", "--devices", "0,two"]);
        assert_usage_error(&o, "\"two\" is not a device index");
    }

    #[test]
    fn duration_without_burnin() {
        let o = kiln(&["run", "--backend", "sim", "--duration", "5m"]);
        assert_usage_error(&o, "--duration applies to --profile burnin only");
    }

    #[test]
    fn malformed_duration() {
        let o = kiln(&[
            "run",
            "--backend",
            "sim",
            "--profile",
            "burnin",
            "--duration",
            "soon",
        ]);
        assert_usage_error(&o, "--duration \"soon\"");
    }

    #[test]
    fn unknown_workload() {
        let o = kiln(&["run", "--backend", "sim", "--workloads", "matmul,fft"]);
        assert_usage_error(&o, "unknown workload \"fft\"");
    }

    #[test]
    fn too_many_sim_gpus() {
        let o = kiln(&["list", "--backend", "sim", "--sim-gpus", "500"]);
        assert_usage_error(&o, "--sim-gpus 500");
    }

    #[test]
    fn unwritable_out() {
        let d = tmp();
        let file = d.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        let out: PathBuf = file.join("sub");
        let o = sim_run(&out, &[]);
        assert_usage_error(&o, "cannot write");
        assert!(stderr(&o).contains("a-file"));
    }

    #[test]
    fn out_that_already_holds_a_run() {
        let d = tmp();
        assert_eq!(code(&sim_run(d.path(), &["--sim-gpus", "1"])), 0);
        let o = sim_run(d.path(), &["--sim-gpus", "1"]);
        assert_usage_error(&o, "already holds a run");
    }

    #[test]
    fn report_of_a_missing_folder() {
        let o = kiln(&["report", "/nonexistent/run"]);
        assert_usage_error(&o, "/nonexistent/run: does not exist");
    }

    #[test]
    fn report_of_a_folder_without_a_journal() {
        let d = tmp();
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        assert_usage_error(&o, "journal.jsonl is missing");
    }

    #[test]
    fn report_of_a_malformed_journal_names_the_line_and_goes_on() {
        let d = tmp();
        assert_eq!(code(&sim_run(d.path(), &["--sim-gpus", "1"])), 0);
        let path = d.path().join("journal.jsonl");
        let text = std::fs::read_to_string(&path).expect("journal");
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[2] = "{\"event\":\"metric\",\"device\":\"zero\"}".into();
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        // One bad line never costs the whole run: it is named, skipped, and
        // the device it may belong to is incomplete.
        assert_eq!(code(&o), 4, "{}", stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        assert!(
            v["notes"]
                .to_string()
                .contains("journal damaged: line 3 unreadable"),
            "{}",
            v["notes"]
        );
    }

    #[test]
    fn report_of_something_else_entirely() {
        let d = tmp();
        std::fs::write(d.path().join("journal.jsonl"), "hello\n").expect("write");
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        assert_usage_error(&o, "line 1");
    }
}

mod help {
    use super::*;

    #[test]
    fn help_documents_exit_codes_and_every_flag() {
        let o = kiln(&["run", "--help"]);
        assert_eq!(code(&o), 0);
        let text = stdout(&o);
        for flag in [
            "--profile",
            "--duration",
            "--backend",
            "--devices",
            "--out",
            "--sim-gpus",
            "--workloads",
            "--seed",
        ] {
            assert!(text.contains(flag), "{flag} missing");
        }
        assert!(text.contains("Exit codes:") && text.contains("4  the run was interrupted"));
    }
}

mod selftest {
    use super::*;

    #[test]
    fn sim_devices_agree_with_the_cpu_reference() {
        let o = kiln(&["selftest", "--backend", "sim", "--sim-gpus", "2"]);
        assert_eq!(code(&o), 0, "{}", stdout(&o));
        let text = stdout(&o);
        // Per device: 8 matmul variants, bandwidth, sha256d, memtest, host
        // transfers, peer copies.
        assert_eq!(text.matches("  ok ").count(), 2 * 13, "{text}");
        assert!(text.contains("every device agrees"));
    }

    #[test]
    fn cuda_without_a_driver_is_code_3() {
        let o = kiln(&["selftest", "--backend", "cuda"]);
        assert_eq!(code(&o), 3);
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    }
}

mod skipped {
    use super::*;

    #[test]
    fn a_workload_that_cannot_run_here_is_skipped_with_a_note_not_rejected() {
        // As on a node without cuBLASLt: device 1's matmul was skipped.
        let d = tmp();
        assert_eq!(code(&sim_run(d.path(), &["--sim-gpus", "3"])), 0);
        let path = d.path().join("journal.jsonl");
        let text = std::fs::read_to_string(&path).expect("journal");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !(l.contains("\"device\":1") && l.contains("matmul")))
            .map(String::from)
            .collect();
        let end = lines.pop().expect("end line");
        lines.push(
            r#"{"event":"skipped","device":1,"workload":"matmul","cycle":0,"reason":"cuBLASLt not found"}"#
                .into(),
        );
        lines.push(end);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        assert_eq!(v["devices"][1]["verdict"], "accept");
        assert!(v["notes"]
            .to_string()
            .contains("matmul skipped on device 1: cuBLASLt not found"));
    }

    #[test]
    fn one_precision_that_cannot_run_is_skipped_and_the_others_are_judged() {
        // As on an A100 (no fp8): a partial skip leaves the workload to finish
        // by itself; the other precisions are still measured and judged.
        let d = tmp();
        assert_eq!(code(&sim_run(d.path(), &["--sim-gpus", "3"])), 0);
        let path = d.path().join("journal.jsonl");
        let text = std::fs::read_to_string(&path).expect("journal");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !(l.contains("\"device\":2") && l.contains("matmul_fp8")))
            .map(String::from)
            .collect();
        let end = lines.pop().expect("end line");
        lines.push(
            r#"{"event":"skipped","device":2,"workload":"matmul","cycle":0,"reason":"GPU 2: the fp8 matmul needs compute capability 8.9 or later; this GPU has 8.0","partial":true}"#
                .into(),
        );
        lines.push(end);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        assert_eq!(v["devices"][2]["verdict"], "accept");
        assert_eq!(v["complete"], true);
        let names: Vec<&str> = v["devices"][2]["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        assert!(names.contains(&"matmul_bf16") && !names.contains(&"matmul_fp8"));
        assert!(v["notes"].to_string().contains("compute capability 8.9"));
    }

    #[test]
    fn transfers_on_a_cpu_are_left_out_or_skipped_with_a_note() {
        let d = tmp();
        let out = d.path().join("t");
        let o = kiln(&[
            "run",
            "--backend",
            "cpu",
            "--workloads",
            "transfer",
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(
            stdout(&o).contains("transfer skipped on device 0"),
            "{}",
            stdout(&o)
        );
        let v = read_json(&out.join("results.json"));
        assert_eq!(v["devices"][0]["verdict"], "accept");
    }
}

mod cross_device {
    use super::*;

    #[test]
    fn a_device_that_computes_a_different_product_than_its_peers_is_rejected() {
        // A fault that gives the same wrong answer every time passes the
        // device's own self-consistency check; only its peers expose it.
        let d = tmp();
        assert_eq!(code(&sim_run(d.path(), &["--sim-gpus", "4"])), 0);
        let path = d.path().join("journal.jsonl");
        let text = std::fs::read_to_string(&path).expect("journal");
        let mut done = false;
        let edited: Vec<String> = text
            .lines()
            .map(|l| {
                if !done && l.contains("\"device\":2") && l.contains("\"check\":\"matmul_fp32\"") {
                    done = true;
                    let at = l.find("\"checksum\":\"").expect("checksum recorded") + 12;
                    format!("{}deadbeefdeadbeef{}", &l[..at], &l[at + 16..])
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(done);
        std::fs::write(&path, edited.join("\n") + "\n").expect("write");
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        assert_eq!(code(&o), 1, "{}", stdout(&o));
        let v = read_json(&d.path().join("results.json"));
        assert_eq!(v["devices"][2]["reasons"][0], "sdc_matmul");
        let checks = v["devices"][2]["checks"].to_string();
        assert!(
            checks.contains("which 3 of 4 devices computed from the same inputs"),
            "{checks}"
        );
        for dev in [0, 1, 3] {
            assert_eq!(v["devices"][dev]["verdict"], "accept");
        }
    }
}

mod baseline_record {
    use super::*;

    /// The issue's case: a 4-GPU run with one GPU at 80 % speed and one that
    /// corrupts its matmul output. Recording from it learns from the two
    /// healthy GPUs only, which is too few: exit 2, saying why.
    #[test]
    fn a_run_with_two_bad_gpus_of_four_is_too_few_to_record_from() {
        let dir = tmp();
        let run = dir.path().join("run");
        let o = sim_run(
            &run,
            &[
                "--sim-gpus",
                "4",
                "--inject",
                "1:slow=0.80",
                "--inject",
                "2:sdc",
            ],
        );
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let out = dir.path().join("b.toml");
        let o = kiln(&[
            "baseline",
            "record",
            run.to_str().expect("utf-8"),
            "--model",
            "Simulated H100",
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert_usage_error(
            &o,
            "only 2 accepted device(s) named like \"Simulated H100\"",
        );
        let err = stderr(&o);
        assert!(
            err.contains("device 1 of ") && err.contains("device 2 of "),
            "{err}"
        );
        assert!(err.contains("reject (sdc_matmul"), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn recording_from_clean_runs_names_what_it_used() {
        let dir = tmp();
        let run = dir.path().join("run");
        let o = sim_run(&run, &["--sim-gpus", "4"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let out = dir.path().join("b.toml");
        let o = kiln(&[
            "baseline",
            "record",
            run.to_str().expect("utf-8"),
            "--model",
            "Simulated H100",
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let text = std::fs::read_to_string(&out).expect("baseline written");
        assert!(text.contains("4 accepted device(s)"), "{text}");
        assert!(text.contains("Left out: none"), "{text}");
    }
}

mod signals {
    use super::*;

    /// Starts a simulated burn-in (a second per workload) and waits for its
    /// first finished workload.
    fn burnin(out: &str) -> std::process::Child {
        let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args([
                "run",
                "--backend",
                "sim",
                "--sim-gpus",
                "2",
                "--profile",
                "burnin",
                "--duration",
                "10m",
                "--out",
                out,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kiln starts");
        let journal = Path::new(out).join("journal.jsonl");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .contains("workload_done")
        {
            assert!(Instant::now() < deadline, "no workload finished in time");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn send(child: &std::process::Child, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(ok.success());
    }

    fn wait(child: std::process::Child, limit: Duration) -> Output {
        let start = Instant::now();
        let o = child.wait_with_output().expect("kiln ends");
        assert!(start.elapsed() < limit, "took {:?}", start.elapsed());
        o
    }

    #[test]
    fn sigterm_and_sighup_stop_cleanly_with_complete_outputs_and_code_4() {
        for signal in ["-TERM", "-HUP", "-INT"] {
            let d = tmp();
            let out = d.path().to_str().expect("utf-8").to_string();
            let child = burnin(&out);
            send(&child, signal);
            let o = wait(child, Duration::from_secs(30));
            assert_eq!(code(&o), 4, "{signal}: {}", stderr(&o));
            assert!(
                stderr(&o).contains("stopping after the current step"),
                "{signal}"
            );
            let v = read_json(&d.path().join("results.json"));
            assert_eq!(v["interrupted"], true, "{signal}");
            assert_eq!(v["complete"], false, "{signal}");
            for f in ["results.csv", "report.pdf", "telemetry.csv"] {
                assert!(d.path().join(f).exists(), "{signal}: {f}");
            }
        }
    }

    #[test]
    fn a_second_signal_quits_at_once() {
        let d = tmp();
        let out = d.path().to_str().expect("utf-8").to_string();
        let child = burnin(&out);
        send(&child, "-TERM");
        std::thread::sleep(Duration::from_millis(100));
        send(&child, "-TERM");
        let o = wait(child, Duration::from_secs(10));
        assert_eq!(code(&o), 4, "{}", stderr(&o));
        // The journal holds what finished.
        let text = std::fs::read_to_string(d.path().join("journal.jsonl")).expect("journal");
        assert!(text.contains("workload_done"));
    }
}

mod exact_values {
    use super::*;

    /// The raw number text after each `"key":` in `text`, in order, for the
    /// metric fields: compares what was written, not what a parser makes
    /// of it.
    fn numbers(text: &str) -> Vec<(String, String)> {
        let keys = ["value", "median", "p05", "p95", "cv"];
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let mut out = Vec::new();
        let mut rest = compact.as_str();
        while let Some(i) = rest.find("\":") {
            let key_start = rest[..i].rfind('"').map_or(0, |j| j + 1);
            let key = &rest[key_start..i];
            let after = &rest[i + 2..];
            if keys.contains(&key) {
                let end = after
                    .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                    .unwrap_or(after.len());
                if end > 0 {
                    out.push((key.to_string(), after[..end].to_string()));
                }
            }
            rest = after;
        }
        out
    }

    #[test]
    fn results_json_carries_the_journal_values_bit_for_bit() {
        let d = tmp();
        let o = sim_run(d.path(), &["--sim-gpus", "4", "--seed", "17"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let journal = std::fs::read_to_string(d.path().join("journal.jsonl")).expect("journal");
        assert_eq!(
            read_json(&d.path().join("results.json"))["devices"]
                .as_array()
                .map(Vec::len),
            Some(4)
        );
        for dev in 0..4u64 {
            // The journal's metric events of this device, in order.
            let from_journal: Vec<(String, String)> = journal
                .lines()
                .filter(|l| {
                    l.contains("\"event\":\"metric\"") && l.contains(&format!("\"device\":{dev},"))
                })
                .flat_map(numbers)
                .collect();
            // results.json itself, as written (not re-serialised): the
            // device's metrics array in the file's text.
            let file = std::fs::read_to_string(d.path().join("results.json")).expect("results");
            let start = file
                .match_indices("\"metrics\"")
                .nth(dev as usize)
                .map(|(i, _)| i)
                .expect("metrics of the device");
            let end = start
                + file[start..]
                    .find("\"integrity\"")
                    .expect("integrity after metrics");
            let from_results = numbers(&file[start..end]);
            assert!(from_journal.len() > 20, "{}", from_journal.len());
            assert_eq!(from_journal, from_results, "device {dev}");
        }
    }
}

mod bounded_input {
    use super::*;

    #[test]
    fn durations_are_bounded_and_negative_ones_name_the_flag() {
        let d = tmp();
        let out = d.path().join("r");
        let out = out.to_str().expect("utf-8");
        let o = kiln(&[
            "run",
            "--backend",
            "sim",
            "--profile",
            "burnin",
            "--duration",
            "-5m",
            "--out",
            out,
        ]);
        assert_usage_error(&o, "--duration \"-5m\": a duration cannot be negative");
        let o = kiln(&[
            "run",
            "--backend",
            "sim",
            "--profile",
            "burnin",
            "--duration",
            "31days",
            "--out",
            out,
        ]);
        assert_usage_error(&o, "longer than the most kiln accepts, 30 days");
        assert!(
            !d.path().join("r").exists(),
            "nothing is created for a refused run"
        );
    }

    #[test]
    fn a_fault_for_an_unselected_device_is_an_error() {
        let d = tmp();
        let o = sim_run(
            d.path(),
            &["--sim-gpus", "4", "--devices", "0,1", "--inject", "3:sdc"],
        );
        assert_usage_error(
            &o,
            "--inject \"3:sdc\": device 3 is not among --devices 0,1",
        );
    }

    #[test]
    fn report_on_a_missing_path_says_it_does_not_exist() {
        let d = tmp();
        let missing = d.path().join("nope");
        let o = kiln(&["report", missing.to_str().expect("utf-8")]);
        assert_usage_error(&o, "nope: does not exist");
    }

    #[test]
    fn out_on_an_existing_file_says_what_is_there() {
        let d = tmp();
        let f = d.path().join("afile");
        std::fs::write(&f, "12345").expect("file");
        let o = sim_run(&f, &[]);
        assert_usage_error(&o, "a file is there (5 bytes), not a folder");
        assert_eq!(std::fs::read_to_string(&f).expect("file"), "12345");
    }
}

mod baseline_units {
    use super::*;

    const WRONG_UNIT: &str = "[model]\nname = \"Simulated H100 80GB HBM3\"\n\n[metrics.bw_copy]\nunit = \"MB/s\"\nexpected = 3000.0\nfloor = 2700.0\n";

    #[test]
    fn a_unit_kiln_does_not_measure_in_is_refused_by_check_and_run() {
        let d = tmp();
        let f = d.path().join("b.toml");
        std::fs::write(&f, WRONG_UNIT).expect("file");
        let o = kiln(&["baseline", "check", f.to_str().expect("utf-8")]);
        assert_usage_error(
            &o,
            "b.toml: line 5: metrics.bw_copy.unit: \"MB/s\": kiln measures bw_copy in GB/s",
        );
        let out = d.path().join("run");
        let o = sim_run(&out, &["--baseline", f.to_str().expect("utf-8")]);
        assert_usage_error(&o, "kiln measures bw_copy in GB/s");
        assert!(!out.exists(), "refused before anything ran");
    }

    #[test]
    fn a_floor_for_a_figure_not_measured_is_skipped_never_passed() {
        // The file has a floor for matmul_fp8, which the CPU never measures.
        let d = tmp();
        let f = d.path().join("b.toml");
        std::fs::write(
            &f,
            "[model]\nname = \"any CPU\"\n\n[metrics.matmul_fp8]\nunit = \"GFLOP/s\"\nexpected = 10.0\nfloor = 9.0\n\n[metrics.bw_copy]\nunit = \"GB/s\"\nexpected = 0.001\nfloor = 0.0009\n",
        )
        .expect("file");
        let out = d.path().join("run");
        let o = kiln(&[
            "run",
            "--backend",
            "cpu",
            "--workloads",
            "matmul,bandwidth",
            "--out",
            out.to_str().expect("utf-8"),
            "--baseline",
            f.to_str().expect("utf-8"),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(
            stdout(&o).contains(
                "1 check(s) skipped, not compared (not counted as passed): matmul_fp8 on device 0"
            ),
            "{}",
            stdout(&o)
        );
        let v = read_json(&out.join("results.json"));
        assert_eq!(v["summary"]["skipped_checks"], 1);
        let checks = v["devices"][0]["checks"].as_array().expect("checks");
        let fp8 = checks
            .iter()
            .find(|c| c["metric"] == "matmul_fp8")
            .expect("a check for the floor");
        assert_eq!(fp8["skipped"], true);
        assert!(fp8["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("skipped: matmul_fp8 was not measured"));
    }
}

mod damaged_journal {
    use super::*;

    /// A finished 4-GPU sim run's journal lines.
    fn clean_journal(dir: &Path) -> Vec<String> {
        let o = sim_run(dir, &["--sim-gpus", "4"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        std::fs::read_to_string(dir.join("journal.jsonl"))
            .expect("journal")
            .lines()
            .map(String::from)
            .collect()
    }

    fn rewrite(dir: &Path, lines: &[String]) {
        std::fs::write(dir.join("journal.jsonl"), lines.join("\n") + "\n").expect("journal");
    }

    #[test]
    fn a_last_line_cut_after_a_nested_object_is_a_torn_tail() {
        let d = tmp();
        let mut lines = clean_journal(d.path());
        // End the file with a metric event cut right after its nested
        // "metric" object: the text ends in '}', yet is not a whole event.
        let last = lines
            .iter()
            .rposition(|l| l.contains("\"metric\":{"))
            .expect("a metric event");
        lines.truncate(last + 1);
        assert_eq!(lines[last].pop(), Some('}'));
        assert!(lines[last].ends_with('}'));
        assert!(serde_json::from_str::<Value>(&lines[last]).is_err());
        rewrite(d.path(), &lines);
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        assert_eq!(code(&o), 4, "{}", stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        assert!(
            v["notes"].to_string().contains("last line was cut off"),
            "{}",
            v["notes"]
        );
    }

    #[test]
    fn a_garbled_line_inside_is_reported_skipped_and_its_device_incomplete() {
        let d = tmp();
        let mut lines = clean_journal(d.path());
        // Garble one metric line of device 2 in the middle of the file.
        let i = lines
            .iter()
            .position(|l| l.contains("\"event\":\"metric\"") && l.contains("\"device\":2,"))
            .expect("a metric of device 2");
        lines[i] = lines[i].replace("\"value\":", "\"value\":#!");
        rewrite(d.path(), &lines);
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        let note = format!("journal damaged: line {} unreadable", i + 1);
        assert!(v["notes"].to_string().contains(&note), "{}", v["notes"]);
        let verdicts: Vec<&str> = v["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d["verdict"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(verdicts, ["accept", "accept", "incomplete", "accept"]);
        // Page 1 of the report says so.
        let text = pdf_extract::extract_text(d.path().join("report.pdf")).expect("pdf text");
        assert!(text.contains("journal damaged"), "{text}");
    }

    #[test]
    fn a_rejected_device_stays_rejected_despite_damage() {
        let d = tmp();
        let o = sim_run(d.path(), &["--sim-gpus", "4", "--inject", "1:sdc"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let mut lines: Vec<String> = std::fs::read_to_string(d.path().join("journal.jsonl"))
            .expect("journal")
            .lines()
            .map(String::from)
            .collect();
        let i = lines
            .iter()
            .position(|l| l.contains("\"event\":\"metric\"") && l.contains("\"device\":1,"))
            .expect("a metric of device 1");
        lines[i] = "{garbage".into();
        rewrite(d.path(), &lines);
        let o = kiln(&["report", d.path().to_str().expect("utf-8")]);
        let v = read_json(&d.path().join("results.json"));
        // A line with no device named may be anyone's: every device not
        // rejected becomes incomplete; device 1 stays rejected.
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert_eq!(v["devices"][1]["verdict"], "reject");
        assert_eq!(v["devices"][0]["verdict"], "incomplete");
    }
}

mod small_things {
    use super::*;

    #[test]
    fn a_single_device_run_says_the_peer_comparison_was_skipped() {
        let d = tmp();
        let o = sim_run(d.path(), &["--sim-gpus", "1"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        assert!(
            v["notes"]
                .to_string()
                .contains("peer comparison skipped for Simulated H100 80GB HBM3: 1 device(s) of that model in this run, 3 needed"),
            "{}",
            v["notes"]
        );
    }

    #[test]
    fn an_early_loss_is_timed_below_the_second() {
        let d = tmp();
        let o = sim_run(d.path(), &["--sim-gpus", "3", "--inject", "1:lost=0.01"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let v = read_json(&d.path().join("results.json"));
        let detail = v["devices"][1]["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["reason"] == "device_lost")
            .map(|c| c["detail"].to_string())
            .expect("a device_lost check");
        assert!(
            detail.contains("fell off the bus 0.01 s into the run"),
            "{detail}"
        );
    }
}

// ---- kiln check: the passive health check, Nagios exit codes -------------

fn check(args: &[&str]) -> (i32, String) {
    let mut all = vec!["check", "--backend", "sim", "--sim-gpus", "4"];
    all.extend_from_slice(args);
    let o = kiln(&all);
    (code(&o), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn kiln_check_says_ok_for_a_clean_node_and_critical_for_a_missing_gpu() {
    let (c, out) = check(&["--expect-gpus", "4"]);
    assert_eq!(c, 0, "{out}");
    assert!(
        out.starts_with("OK: 4 GPU(s) (4 expected), nothing found"),
        "{out}"
    );
    let (c, out) = check(&["--expect-gpus", "8"]);
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("CRITICAL node gpu_missing: 4 GPU(s) found, 8 expected"),
        "{out}"
    );
    // More GPUs than expected is worth a look, not a drain.
    assert_eq!(check(&["--expect-gpus", "2"]).0, 1);
}

#[test]
fn kiln_check_finds_each_idle_fault_with_its_code_status_and_remedy() {
    for (inject, status, code, line) in [
        (
            "1:ecc=1",
            2,
            "ecc_uncorrectable",
            "CRITICAL dev 1 ecc_uncorrectable",
        ),
        (
            "1:xid=79",
            2,
            "xid",
            "XID 79: GPU has fallen off the bus [reboot_node",
        ),
        ("1:xid=13", 1, "xid", "WARNING dev 1 xid: XID 13"),
        (
            "1:pcie=5:8",
            2,
            "pcie_degraded",
            "PCIe link x8, expected x16",
        ),
        (
            "1:nvlinkdown=3",
            2,
            "nvlink_down",
            "15 of 18 NVLinks active",
        ),
        (
            "1:hot=96",
            2,
            "over_temperature",
            "96 C at idle, limit 87 C",
        ),
        (
            "1:throttle=power",
            2,
            "power_throttle",
            "hw_power_brake_slowdown",
        ),
        (
            "1:fabric=unhealthy",
            2,
            "fabric_unhealthy",
            "CRITICAL dev 1 fabric_unhealthy: fabric registered, but route unhealthy (health mask 0x19a) [reset_gpu",
        ),
        (
            "1:fabric=degraded",
            2,
            "fabric_unhealthy",
            "but bandwidth degraded (health mask 0x1a9) [check_cabling_or_reseat",
        ),
        (
            "1:nvlinkwire=2",
            2,
            "nvlink_wiring",
            "CRITICAL dev 1 nvlink_wiring: NVSwitch 00000000:08:00.0 is reached over 5 links (2, 3, 7, 11, 15) where its 3 Simulated H100 80GB HBM3 peers have 4",
        ),
        (
            "1:persistence=off",
            1,
            "persistence_off",
            "enable it with nvidia-smi -pm 1, or run nvidia-persistenced [fix_node_software",
        ),
        (
            "1:mig=on",
            2,
            "mig_enabled",
            "CRITICAL dev 1 mig_enabled: MIG mode on",
        ),
    ] {
        let (c, out) = check(&["--inject", inject]);
        assert_eq!(c, status, "{inject}: {out}");
        assert!(out.contains(line), "{inject}: {line:?} not in\n{out}");
        // The other devices are not named.
        for d in ["dev 0", "dev 2", "dev 3"] {
            assert!(!out.contains(d), "{inject}: {out}");
        }
        let o = kiln(&[
            "check",
            "--backend",
            "sim",
            "--sim-gpus",
            "4",
            "--inject",
            inject,
            "--json",
        ]);
        let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
        assert_eq!(v["findings"][0]["code"], code, "{v}");
        assert_eq!(v["findings"][0]["device"], 1, "{v}");
        assert!(v["findings"][0]["remedy"].is_string(), "{v}");
    }
}

#[test]
fn kiln_check_says_the_fabric_manager_is_down_once_for_the_node_in_under_two_seconds() {
    let t = std::time::Instant::now();
    let o = kiln(&[
        "check",
        "--backend",
        "sim",
        "--sim-gpus",
        "8",
        "--expect-gpus",
        "8",
        "--inject",
        "3:fabric=fm_down",
    ]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    let out = stdout(&o);
    assert_eq!(code(&o), 2, "{out}");
    assert!(
        out.starts_with("CRITICAL: 8 GPU(s) (8 expected), 1 finding(s)"),
        "{out}"
    );
    assert!(
        out.contains("CRITICAL node fabric_manager_down: 8 GPU(s) not registered with the NVSwitch fabric (fabric registration not started")
            && out.contains("systemctl start nvidia-fabricmanager"),
        "{out}"
    );
}

#[test]
fn kiln_check_maps_kernel_log_xids_to_their_gpus() {
    let d = tmp();
    let log = d.path().join("dmesg.txt");
    std::fs::write(
        &log,
        "[    5.100000] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  570.124.06\n\
         [  812.000001] NVRM: Xid (PCI:0000:2a:00): 13, pid=4242, name=python3, Graphics Exception: ESR 0x405840\n\
         [  812.000002] NVRM: Xid (PCI:0000:2a:00): 13, pid=4243, name=python3, Graphics Exception: ESR 0x405840\n\
         [ 9000.000000] NVRM: Xid (PCI:0000:3a:00): 79, pid=1, name=python3, GPU has fallen off the bus.\n\
         [ 9001.000000] NVRM: Xid (PCI:0000:99:00): 48, pid=7, name=a.out, DBE (0x1,0x2)\n",
    )
    .expect("log");
    let path = log.to_str().expect("utf-8");
    let (c, out) = check(&["--kernel-log", path]);
    assert_eq!(c, 2, "{out}");
    for line in [
        "WARNING dev 1 xid: XID 13 logged 2 time(s) since boot (kernel log): graphics engine exception",
        "last: pid=4243, name=python3, Graphics Exception: ESR 0x405840 [rerun",
        "CRITICAL dev 2 xid: XID 79 logged 1 time(s) since boot (kernel log): GPU has fallen off the bus",
        "CRITICAL node xid: XID 48 logged 1 time(s) since boot on 00000000:99:00.0, a GPU the check does not see",
        "note: kernel log read (",
        "): 4 XID line(s) since boot",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    let o = kiln(&[
        "check",
        "--backend",
        "sim",
        "--sim-gpus",
        "4",
        "--kernel-log",
        path,
        "--json",
    ]);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(3), "{v}");
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap_or_default()
            .contains("4 XID line(s)"),
        "{v}"
    );
    // A clean log: nothing found. A log file that is not there is bad
    // input: UNKNOWN, naming it.
    let clean = d.path().join("clean.txt");
    std::fs::write(&clean, "NVRM: loading NVIDIA UNIX x86_64 Kernel Module\n").expect("log");
    assert_eq!(
        check(&["--kernel-log", clean.to_str().expect("utf-8")]).0,
        0
    );
    let (c, out) = check(&["--kernel-log", "/nonexistent/kern.log"]);
    assert_eq!(c, 3, "{out}");
    assert!(
        out.contains("--kernel-log /nonexistent/kern.log: cannot read it"),
        "{out}"
    );
}

#[test]
fn kiln_check_is_unknown_when_it_cannot_run() {
    // No driver here: the CUDA backend is not there to ask.
    let o = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["check", "--backend", "cuda"])
        .env("LD_LIBRARY_PATH", "/nonexistent")
        .env("KILN_SYSFS_PCI", "/nonexistent")
        .output()
        .expect("run kiln");
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("UNKNOWN: kiln check could not run"),
        "{}",
        stdout(&o)
    );
    // Bad arguments are UNKNOWN too, never CRITICAL (2).
    assert_eq!(code(&kiln(&["check", "--no-such-flag"])), 3);
    assert_eq!(check(&["--inject", "9:ecc=1"]).0, 3);
    assert_eq!(code(&kiln(&["check", "--help"])), 0);
}

/// A node whose NVIDIA driver is missing: the PCI bus (a fake sysfs tree)
/// shows two GPUs, an H100 3D controller with no driver bound and an H200
/// VGA controller bound to vfio-pci, beside an NVSwitch (a bridge, not a
/// GPU) and another vendor's VGA controller; there is no libcuda here.
mod no_driver {
    use super::*;

    fn function(root: &Path, name: &str, ids: [&str; 3], driver: Option<&str>) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("function folder");
        for (file, value) in ["vendor", "device", "class"].into_iter().zip(ids) {
            std::fs::write(dir.join(file), format!("{value}\n")).expect("sysfs file");
        }
        if let Some(d) = driver {
            std::os::unix::fs::symlink(format!("../../../bus/pci/drivers/{d}"), dir.join("driver"))
                .expect("driver link");
        }
    }

    /// The fake tree, in `d`.
    fn gpu_node(d: &Path) -> PathBuf {
        let root = d.join("sysfs");
        function(
            &root,
            "0000:18:00.0",
            ["0x10de", "0x2330", "0x030200"],
            None,
        );
        function(
            &root,
            "0000:3b:00.0",
            ["0x10de", "0x2335", "0x030000"],
            Some("vfio-pci"),
        );
        function(
            &root,
            "0000:07:00.0",
            ["0x10de", "0x22a3", "0x068000"],
            Some("nvidia"),
        );
        function(
            &root,
            "0000:02:00.0",
            ["0x1a03", "0x2000", "0x030000"],
            Some("ast"),
        );
        root
    }

    /// An empty tree: a node with no NVIDIA GPU.
    fn cpu_node(d: &Path) -> PathBuf {
        let root = d.join("empty");
        std::fs::create_dir_all(&root).expect("empty sysfs");
        root
    }

    /// True where this machine has a CUDA driver: the tests below are about
    /// a node without one.
    fn libcuda_here() -> bool {
        let here = kiln::device::cuda::driver_cuda_version().is_some();
        if here {
            eprintln!("skipped: this machine has libcuda");
        }
        here
    }

    fn run_on(d: &Path, sysfs: &Path, backend: &str, extra: &[&str]) -> (Output, PathBuf) {
        let out = d.join(format!("out-{backend}"));
        let mut args = vec![
            "run",
            "--backend",
            backend,
            "--profile",
            "quick",
            "--out",
            out.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        (kiln_on(&args, sysfs), out)
    }

    #[test]
    fn a_run_says_could_not_test_per_gpu_and_exits_5() {
        if libcuda_here() {
            return;
        }
        let d = tmp();
        let sysfs = gpu_node(d.path());
        for backend in ["cuda", "auto"] {
            let (o, out) = run_on(d.path(), &sysfs, backend, &[]);
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert_eq!(code(&o), 5, "{backend}: {all}");
            let v = read_json(&out.join("results.json"));
            assert_eq!(v["backend"], "cuda", "{backend}");
            let devs = v["devices"].as_array().expect("devices");
            assert_eq!(
                devs.len(),
                2,
                "{backend}: NVSwitch and the other VGA are no GPUs"
            );
            for (i, (bus, id, name, says)) in [
                (
                    "00000000:18:00.0",
                    0x2330,
                    "NVIDIA H100 80GB HBM3",
                    "no kernel driver is bound",
                ),
                (
                    "00000000:3b:00.0",
                    0x2335,
                    "NVIDIA H200",
                    "bound to vfio-pci",
                ),
            ]
            .into_iter()
            .enumerate()
            {
                let dev = &devs[i];
                assert_eq!(dev["index"], i);
                assert_eq!(dev["pci_bus_id"], bus);
                assert_eq!(dev["pci_device_id"], id);
                assert_eq!(dev["name"], name);
                assert_eq!(dev["memory_bytes"], 0);
                assert!(dev["uuid"].is_null() && dev["serial"].is_null());
                assert_eq!(dev["verdict"], "untested", "{backend}: {dev}");
                assert_eq!(dev["reasons"], serde_json::json!(["driver_missing"]));
                assert_eq!(dev["remedy"], "fix_node_software");
                let failure = dev["failures"][0]["message"].as_str().unwrap_or_default();
                assert!(
                    failure.contains(says) && failure.contains("nvidia-smi"),
                    "{failure}"
                );
                assert_eq!(dev["failures"][0]["node_state"], "driver_missing");
            }
            assert!(
                stdout(&o).contains(
                    "2 could not be tested because of the node's state (not a GPU fault)"
                ),
                "{all}"
            );
            let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
            assert_eq!(csv.matches(",untested,driver_missing,").count(), 2, "{csv}");
            let pdf = pdf_extract::extract_text(out.join("report.pdf")).expect("pdf text");
            assert!(
                pdf.contains("2 GPU(s) could not be tested: the node's state, not the GPUs"),
                "{pdf}"
            );
            assert!(
                pdf.contains("UNTESTED") && pdf.contains("driver_missing"),
                "{pdf}"
            );
            // Nothing ran, so no floor is listed as unmeasured and no load
            // is reported.
            assert!(!stdout(&o).contains("skipped, not compared"), "{all}");
            assert!(!stdout(&o).contains("duty cycle"), "{all}");
            let notes = v["notes"].to_string();
            assert!(notes.contains("libcuda.so not found"), "{notes}");
            if backend == "auto" {
                assert!(notes.contains("not testing the CPU instead"), "{notes}");
            }
        }
    }

    #[test]
    fn a_node_without_nvidia_gpus_keeps_the_cpu_fallback_and_exit_3() {
        if libcuda_here() {
            return;
        }
        let d = tmp();
        let sysfs = cpu_node(d.path());
        let (o, out) = run_on(d.path(), &sysfs, "auto", &["--workloads", "hash"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v = read_json(&out.join("results.json"));
        assert_eq!(v["backend"], "cpu");
        assert!(
            stderr(&o).contains("testing the CPU instead"),
            "{}",
            stderr(&o)
        );
        let (o, out) = run_on(d.path(), &sysfs, "cuda", &[]);
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("the PCI bus shows no NVIDIA GPU"),
            "{}",
            stderr(&o)
        );
        assert!(!out.join("results.json").exists());
    }

    #[test]
    fn kiln_check_is_critical_per_gpu_and_unknown_without_gpus() {
        if libcuda_here() {
            return;
        }
        let d = tmp();
        let sysfs = gpu_node(d.path());
        let log = d.path().join("kern.log");
        std::fs::write(&log, "").expect("empty kernel log");
        let log = log.to_str().expect("utf-8 path");
        let o = kiln_on(&["check", "--kernel-log", log], &sysfs);
        let out = stdout(&o);
        assert_eq!(code(&o), 2, "{out}{}", stderr(&o));
        assert!(
            out.starts_with("CRITICAL: 2 GPU(s), 2 finding(s), 2 critical"),
            "{out}"
        );
        assert!(
            out.contains("CRITICAL dev 0 driver_missing: could not check (driver_missing, a node problem, not the GPU's): 00000000:18:00.0: no kernel driver is bound")
                && out.contains("CRITICAL dev 1 driver_missing: could not check (driver_missing, a node problem, not the GPU's): 00000000:3b:00.0: the GPU is bound to vfio-pci")
                && out.contains("[fix_node_software:"),
            "{out}"
        );
        let o = kiln_on(
            &[
                "check",
                "--backend",
                "cuda",
                "--json",
                "--expect-gpus",
                "8",
                "--kernel-log",
                log,
            ],
            &sysfs,
        );
        assert_eq!(code(&o), 2, "{}", stdout(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
        let found: Vec<(Value, Value, Value)> = v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| (f["device"].clone(), f["code"].clone(), f["remedy"].clone()))
            .collect();
        assert_eq!(
            found,
            [
                (Value::Null, "gpu_missing".into(), "reboot_node".into()),
                (
                    0.into(),
                    "driver_missing".into(),
                    "fix_node_software".into()
                ),
                (
                    1.into(),
                    "driver_missing".into(),
                    "fix_node_software".into()
                ),
            ],
            "{v}"
        );
        assert_eq!(
            (v["status"].clone(), v["devices"].clone()),
            ("critical".into(), 2.into())
        );
        // No NVIDIA GPU on the bus: the CUDA check cannot run.
        let o = kiln_on(&["check", "--backend", "cuda"], &cpu_node(d.path()));
        assert_eq!(code(&o), 3, "{}", stdout(&o));
        assert!(
            stdout(&o).starts_with("UNKNOWN: kiln check could not run"),
            "{}",
            stdout(&o)
        );
    }

    #[test]
    fn selftest_could_not_test_is_exit_5_not_a_disagreement() {
        if libcuda_here() {
            return;
        }
        let d = tmp();
        let o = kiln_on(&["selftest", "--backend", "cuda"], &gpu_node(d.path()));
        let out = stdout(&o);
        assert_eq!(code(&o), 5, "{out}");
        assert_eq!(
            out.matches("could not test (driver_missing").count(),
            2,
            "{out}"
        );
        assert!(!out.contains("DISAGREEMENT"), "{out}");
    }
}

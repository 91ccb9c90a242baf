//! kiln's real CUDA path, kernels and all, on the virtual GPU (`vgpu/`).
//!
//! Each test installs vgpu's library under the driver's file names
//! (`libcuda.so.1`, `libcuda.so`) in a temporary folder, puts that folder on
//! `LD_LIBRARY_PATH` and runs the kiln binary: kiln loads it exactly as it
//! loads NVIDIA's driver. The node is described by a `VGPU_CONFIG` file, and
//! vgpu's diagnostics are collected in a `VGPU_LOG` file that each test
//! reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// vgpu's cdylib, built by cargo beside this test binary (kiln's
/// dev-dependency on `vgpu`), or where `VGPU_LIB` says.
fn vgpu_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("VGPU_LIB") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps folder");
    for candidate in [deps.join("libvgpu.so"), deps.join("../libvgpu.so")] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "libvgpu.so not found beside {}: build it with `cargo build -p vgpu` or set VGPU_LIB",
        deps.display()
    );
}

/// A virtual node: the library folder, the config and the log.
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    /// A node of `gpus` default virtual GPUs and the `extra` TOML.
    fn new(gpus: usize, extra: &str) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let lib = dir.path().join("lib");
        std::fs::create_dir(&lib).expect("lib folder");
        // One library: the driver, NVML and cuBLASLt.
        for name in [
            "libcuda.so.1",
            "libcuda.so",
            "libnvidia-ml.so.1",
            "libcublasLt.so.12",
        ] {
            std::os::unix::fs::symlink(vgpu_lib(), lib.join(name)).expect("symlink");
        }
        std::fs::write(
            dir.path().join("vgpu.toml"),
            format!("[node]\ngpus = {gpus}\n{extra}"),
        )
        .expect("config");
        Node { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// kiln with the node's driver, and nothing of a real GPU stack: its
    /// PCI bus (`KILN_SYSFS_PCI`, the node's `sysfs` folder, absent unless
    /// a test makes it) shows no real GPU.
    fn kiln(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.args(args)
            .env("KILN_SYSFS_PCI", self.path("sysfs"))
            .env("LD_LIBRARY_PATH", self.path("lib"))
            .env("VGPU_CONFIG", self.path("vgpu.toml"))
            .env("VGPU_LOG", self.path("vgpu.log"))
            .env_remove("KILN_CUBLASLT")
            .env_remove("KILN_PTX_DIR")
            .env_remove("CUDA_VISIBLE_DEVICES")
            .env_remove("NVIDIA_VISIBLE_DEVICES");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run kiln")
    }

    /// What vgpu logged.
    fn log(&self) -> String {
        std::fs::read_to_string(self.path("vgpu.log")).unwrap_or_default()
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `kiln selftest --backend cuda` passes every primitive on `gpus` virtual
/// GPUs, and vgpu saw nothing wrong.
fn selftest_passes(gpus: usize) {
    let node = Node::new(gpus, "");
    let o = node.kiln(&["selftest", "--backend", "cuda"], &[]);
    let all = text(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{all}\n--- vgpu log\n{}",
        node.log()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    for what in [
        "matmul bf16",
        "matmul fp16",
        "matmul tf32",
        "matmul fp8",
        "matmul fp32",
        "matmul fp64",
        "matmul mma_bf16",
        "matmul mma_fp16",
        "bandwidth",
        "sha256d",
        "memtest",
        "host transfers",
        "peer copies",
    ] {
        assert!(
            out.contains(what),
            "selftest does not mention {what:?}\n{all}"
        );
    }
    assert!(!out.contains("FAIL"), "{all}");
    // Every library GEMM ran and was checked: none was skipped.
    assert!(!out.contains("skipped"), "{all}");
    // vgpu's log holds only what it must say: no violation of any rule.
    let log = node.log();
    for bad in ["CUDA_ERROR", "race", "never-written", "not implemented"] {
        assert!(!log.contains(bad), "vgpu reported {bad:?}:\n{log}");
    }
}

#[test]
fn selftest_passes_on_two_virtual_gpus() {
    selftest_passes(2);
}

#[test]
fn selftest_passes_on_four_virtual_gpus() {
    selftest_passes(4);
}

#[test]
fn a_quick_run_accepts_every_virtual_gpu_and_marks_its_figures_simulated() {
    for gpus in [2, 4] {
        let node = Node::new(gpus, "");
        let out = node.path("out");
        let o = node.kiln(
            &[
                "run",
                "--backend",
                "cuda",
                "--profile",
                "quick",
                "--out",
                out.to_str().expect("utf-8 path"),
            ],
            &[],
        );
        let all = text(&o);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{all}\n--- vgpu log\n{}",
            node.log()
        );
        for f in [
            "journal.jsonl",
            "results.json",
            "results.csv",
            "telemetry.csv",
            "report.pdf",
        ] {
            assert!(out.join(f).exists(), "{f} missing\n{all}");
        }
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("json"))
                .expect("results.json parses");
        assert_eq!(json["simulated"], Value::Bool(true), "{json:#}");
        let devices = json["devices"].as_array().expect("devices");
        assert_eq!(devices.len(), gpus);
        for d in devices {
            assert_eq!(d["verdict"], "accept", "{d:#}");
            assert_eq!(d["backend"], "cuda", "{d:#}");
            assert_eq!(d["simulated"], Value::Bool(true), "{d:#}");
            assert_eq!(d["name"], "vgpu Virtual Hopper", "{d:#}");
            assert!(
                d["baseline"].to_string().contains("vgpu-hopper.toml"),
                "the virtual model's baseline was not used: {}",
                d["baseline"]
            );
        }
    }
}

/// A copy of kiln's matmul.ptx with one mma fragment register moved: in the
/// file's first mma.sync (in the bf16 kernel), A's registers a0a1 and a2a3
/// swapped, which feeds rows 0-7 of A's tile where rows 8-15 belong.
fn broken_matmul_ptx(dir: &Path) {
    let src = include_str!("../kernels/ptx/matmul.ptx");
    let mut out = String::new();
    let mut done = false;
    for line in src.lines() {
        if !done && line.contains("mma.sync.aligned.m16n8k16") {
            // `{%f..}, {%rA0, %rA1, %rA2, %rA3}, {..}, {..}`
            let open = line.find("}, {").expect("A operand") + 4;
            let close = open + line[open..].find('}').expect("end of A");
            let regs: Vec<&str> = line[open..close].split(", ").collect();
            assert_eq!(regs.len(), 4, "{line}");
            let swapped = format!("{}, {}, {}, {}", regs[1], regs[0], regs[2], regs[3]);
            out.push_str(&line[..open]);
            out.push_str(&swapped);
            out.push_str(&line[close..]);
            done = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(done, "no mma instruction in matmul.ptx");
    for m in ["gen", "bandwidth", "verify", "memtest", "sha256d"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("kernels/ptx/{m}.ptx"));
        std::fs::copy(&p, dir.join(format!("{m}.ptx"))).expect("copy ptx");
    }
    std::fs::write(dir.join("matmul.ptx"), out).expect("write ptx");
}

#[test]
fn a_matmul_ptx_with_one_fragment_register_moved_fails_selftest() {
    let node = Node::new(1, "");
    let ptx = node.path("ptx");
    std::fs::create_dir(&ptx).expect("ptx dir");
    broken_matmul_ptx(&ptx);
    let o = node.kiln(
        &["selftest", "--backend", "cuda"],
        &[("KILN_PTX_DIR", &ptx)],
    );
    let all = text(&o);
    assert_ne!(o.status.code(), Some(0), "{all}");
    let out = String::from_utf8_lossy(&o.stdout);
    let failing: Vec<&str> = out.lines().filter(|l| l.contains("FAIL")).collect();
    // The first mma of the file is in the bf16 kernel: that one fails, with
    // elements outside the rounding bound; the fp16 kernel and everything
    // not built from matmul.ptx still pass.
    assert_eq!(failing.len(), 1, "{all}");
    assert!(
        failing[0].contains("mma_bf16") && failing[0].contains("outside the rounding bound"),
        "{all}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("ok") && l.contains("mma_fp16")),
        "{all}"
    );
}

#[test]
fn kiln_list_shows_the_virtual_gpus_with_their_identity() {
    let node = Node::new(
        4,
        "[[gpus]]\nordinal = 2\npci_bus_id = \"00000000:c1:00.0\"\n",
    );
    let o = node.kiln(&["list", "--backend", "cuda"], &[]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches("vgpu Virtual Hopper").count(), 4, "{all}");
    assert!(out.contains("00000000:c1:00.0"), "{all}");
    assert!(
        out.contains("GPU-76677075-0000-0000-a000-000000000002"),
        "{all}"
    );
    // As on a real node with its libraries: NVML and cuBLASLt found.
    let err = String::from_utf8_lossy(&o.stderr);
    let both = format!("{out}{err}");
    assert_eq!(both.matches("sensors of device").count(), 4, "{all}");
    assert!(both.contains("NVML: temperature, power, clocks"), "{all}");
    assert!(both.contains("cuBLASLt: libcublasLt.so.12"), "{all}");
}

#[test]
fn a_virtual_gpu_fifteen_percent_slow_is_rejected_and_its_peers_accepted() {
    // Every cost of GPU 2's timing model / 0.85: it does 85 % of the work
    // of the others in the same time.
    let slow = "[[gpus]]\nordinal = 2\n[gpus.timing]\n\
        launch_latency_us = 4.70588\nhbm_gbps = 2847.5\nfp32_tflops = 56.95\n\
        fp64_tflops = 28.9\ntensor_tflops = 840.65\nint_tops = 28.475\n\
        pcie_gbps = 46.75\npeer_gbps = 382.5\ncopy_latency_us = 2.35294\n";
    let node = Node::new(4, slow);
    let out = node.path("out");
    let o = node.kiln(
        &[
            "run",
            "--backend",
            "cuda",
            // The short workloads (matmul's product is launch-bound here).
            "--workloads",
            "bandwidth,hash,transfer",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    let all = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{all}\n--- vgpu log\n{}",
        node.log()
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("json"))
            .expect("results.json parses");
    let verdicts: Vec<&str> = json["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["verdict"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(verdicts, ["accept", "accept", "reject", "accept"], "{all}");
    let reasons = json["devices"][2]["reasons"].to_string();
    assert!(
        reasons.contains("below_baseline") && reasons.contains("peer_outlier"),
        "{reasons}"
    );
}

/// The limits of scripts/gpu-validate.sh: every step that can take time runs
/// under `timeout`, and the limits add up to at most 8 minutes, so the one
/// command on the device machine (10 minutes at most) always finishes.
#[test]
fn the_validation_script_caps_every_step_within_eight_minutes() {
    let script = include_str!("../scripts/gpu-validate.sh");
    let mut total = 0u32;
    for line in script.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = words.iter().position(|w| *w == "timeout") {
            // `timeout [--kill-after=5] N` or the step helper's `"$limit"`.
            let n = words[i + 1..]
                .iter()
                .find(|w| !w.starts_with("--"))
                .copied()
                .unwrap_or("");
            if n != "\"$limit\"" {
                total += n
                    .parse::<u32>()
                    .unwrap_or_else(|_| panic!("timeout without a number: {line}"));
            }
        } else if words.first() == Some(&"step") {
            total += words[2]
                .parse::<u32>()
                .unwrap_or_else(|_| panic!("step without a limit: {line}"));
        } else {
            for program in ["\"$kiln\"", "\"$bench\"", "python3", "nvidia-smi"] {
                assert!(
                    words.first().is_none_or(|w| *w != program),
                    "runs without a time limit: {line}"
                );
            }
        }
    }
    assert!(total <= 480, "the limits add up to {total} s");
    assert!(total >= 300, "{total} s: the steps were not all counted");
}

/// scripts/gpu-validate.sh end to end on virtual GPUs (no torch here): each
/// step's output is in its own file, and kiln's table is printed before the
/// torch step.
#[test]
fn the_validation_script_runs_on_virtual_gpus_and_keeps_each_step() {
    let node = Node::new(2, "");
    let out = node.path("validation");
    let o = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu-validate.sh"))
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .env("OUT", &out)
        .env("LD_LIBRARY_PATH", node.path("lib"))
        .env("VGPU_CONFIG", node.path("vgpu.toml"))
        .env("VGPU_LOG", node.path("vgpu.log"))
        .env(
            "PATH",
            format!(
                "/nonexistent-gpu-tools:{}",
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("bash");
    let all = text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    for f in [
        "list.txt",
        "selftest.txt",
        "quick.txt",
        "summary-kiln.txt",
        "torch.txt",
        "summary.txt",
        "quick/results.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing\n{all}");
    }
    let selftest = std::fs::read_to_string(out.join("selftest.txt")).expect("selftest.txt");
    assert!(
        selftest.contains("every device agrees with the CPU reference"),
        "{selftest}"
    );
    let kiln_table = std::fs::read_to_string(out.join("summary-kiln.txt")).expect("summary");
    assert!(
        kiln_table.contains("bw_copy") && kiln_table.contains("ACCEPT"),
        "{kiln_table}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let table_at = stdout.find("kiln's figures").expect("kiln's table");
    let torch_at = stdout.find("== torch").expect("torch step");
    assert!(table_at < torch_at, "{all}");
    assert!(stdout.contains("selftest exit 0, run exit 0"), "{all}");
}

/// Runs a quick run of `workloads` on `node`, returning its exit code,
/// results.json and everything printed.
fn quick_run(node: &Node, workloads: &str) -> (Option<i32>, Value, String) {
    let out = node.path("out");
    let o = node.kiln(
        &[
            "run",
            "--backend",
            "cuda",
            "--workloads",
            workloads,
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    let all = format!("{}\n--- vgpu log\n{}", text(&o), node.log());
    let json = std::fs::read_to_string(out.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (o.status.code(), json, all)
}

fn verdicts(json: &Value) -> Vec<(u64, String)> {
    json["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        d["index"].as_u64().unwrap_or(99),
                        d["verdict"].as_str().unwrap_or("?").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_gpu_busy_in_another_process_could_not_be_tested_and_is_not_rejected() {
    // Before: CUDA_ERROR_DEVICE_UNAVAILABLE was taken for a lost device, a
    // hardware reject for what is a node state.
    let node = Node::new(4, "[[gpus]]\nordinal = 1\nfaults = { busy = true }\n");
    let (code, json, all) = quick_run(&node, "matmul,transfer");
    assert_eq!(code, Some(5), "{all}");
    let v = verdicts(&json);
    assert_eq!(
        v,
        [
            (0, "accept".into()),
            (1, "untested".into()),
            (2, "accept".into()),
            (3, "accept".into())
        ],
        "{all}"
    );
    assert_eq!(
        json["devices"][1]["reasons"],
        serde_json::json!(["gpu_busy"]),
        "{all}"
    );
    assert_eq!(json["summary"]["untested"], 1, "{all}");
    assert!(all.contains("another process owns this GPU"), "{all}");
    assert!(
        all.contains("1 could not be tested because of the node's state"),
        "{all}"
    );
    // Its peers skip it with the reason, and are judged on the rest.
    assert!(
        json["notes"]
            .to_string()
            .contains("p2p to device 1 skipped"),
        "{all}"
    );
}

#[test]
fn a_gpu_in_mig_mode_could_not_be_tested_and_the_others_are() {
    // Before: two MIG instances on one bus id made the identity table fail
    // and the whole CUDA backend unavailable; then the GPU was left out of
    // the run with only a note, exit 0, as if the node were fully tested.
    let node = Node::new(3, "[[gpus]]\nordinal = 1\nfaults = { mig_instances = 2 }\n");
    let (code, json, all) = quick_run(&node, "matmul,transfer");
    assert_eq!(code, Some(5), "{all}");
    // CUDA ordinals: 0 the first GPU, 1 and 2 the MIG instances, 3 the last:
    // the GPU in MIG mode is one device, under its first instance's ordinal.
    assert_eq!(v_indices(&json), [0, 1, 3], "{all}");
    assert_eq!(
        verdicts(&json)
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>(),
        ["accept", "untested", "accept"],
        "{all}"
    );
    assert_eq!(
        json["devices"][1]["reasons"],
        serde_json::json!(["mig_enabled"]),
        "{all}"
    );
    assert_eq!(json["devices"][1]["remedy"], "fix_node_software", "{all}");
    let notes = json["notes"].to_string();
    assert!(
        notes.contains("the GPU at 00000000:42:00.0 is in MIG mode (CUDA devices 1, 2")
            && notes.contains("kiln tests whole GPUs"),
        "{notes}"
    );
}

fn v_indices(json: &Value) -> Vec<u64> {
    verdicts(json).into_iter().map(|(i, _)| i).collect()
}

#[test]
fn fabric_manager_down_is_one_line_and_exit_3_never_a_cpu_run() {
    // The node's PCI bus shows no GPU (no sysfs folder): nothing to report
    // per GPU, so one line and exit 3.
    let node = Node::new(4, "nvswitch = true\nfabric_manager = false\n");
    for backend in ["cuda", "auto"] {
        let out = node.path(&format!("out-{backend}"));
        let o = node.kiln(
            &[
                "run",
                "--backend",
                backend,
                "--out",
                out.to_str().expect("utf-8 path"),
            ],
            &[],
        );
        let all = text(&o);
        assert_eq!(o.status.code(), Some(3), "{backend}: {all}");
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("fabric manager"))
            .collect();
        assert_eq!(lines.len(), 1, "{backend}: {all}");
        assert!(
            lines[0].contains("CUDA_ERROR_SYSTEM_NOT_READY"),
            "{backend}: {all}"
        );
        assert!(
            !out.join("results.json").exists(),
            "{backend}: a run was made: {all}"
        );
    }
}

/// The same node as the PCI bus shows it: four NVIDIA GPUs bound to the
/// nvidia driver. cuInit still refuses, so each GPU could not be tested
/// (fabric_manager_down, exit 5) and `kiln check` names the fabric manager
/// once for the node.
#[test]
fn fabric_manager_down_with_its_gpus_on_the_pci_bus_is_could_not_test() {
    let node = Node::new(4, "nvswitch = true\nfabric_manager = false\n");
    pci_gpus(
        &node,
        &[
            (0x41, "nvidia"),
            (0x42, "nvidia"),
            (0x43, "nvidia"),
            (0x44, "nvidia"),
        ],
    );
    for backend in ["cuda", "auto"] {
        let out = node.path(&format!("out-{backend}"));
        let o = node.kiln(
            &[
                "run",
                "--backend",
                backend,
                "--profile",
                "quick",
                "--out",
                out.to_str().expect("utf-8 path"),
            ],
            &[],
        );
        let all = text(&o);
        assert_eq!(o.status.code(), Some(5), "{backend}: {all}");
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("results.json")).expect("results.json"),
        )
        .expect("json");
        let devices = json["devices"].as_array().expect("devices");
        assert_eq!(devices.len(), 4, "{backend}: {all}");
        for d in devices {
            assert_eq!(d["verdict"], "untested", "{backend}: {d}");
            assert_eq!(d["reasons"], serde_json::json!(["fabric_manager_down"]));
            assert_eq!(d["remedy"], "fix_node_software");
            let why = d["failures"][0]["message"].as_str().unwrap_or_default();
            assert!(
                why.contains("CUDA_ERROR_SYSTEM_NOT_READY")
                    && why.contains("systemctl start nvidia-fabricmanager"),
                "{why}"
            );
        }
    }
    let quiet = node.path("quiet.txt");
    std::fs::write(&quiet, "").expect("log");
    let o = node.kiln(
        &[
            "check",
            "--backend",
            "cuda",
            "--kernel-log",
            quiet.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    let all = text(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(
        all.contains(
            "CRITICAL node fabric_manager_down: 4 GPU(s) not registered with the NVSwitch fabric"
        ),
        "{all}"
    );
    assert!(!all.contains("dev 0 fabric_manager_down"), "{all}");
}

/// The body of [`a_short_kernel_is_timed_without_the_launch_gap`], run in a
/// child process that has the virtual driver on its library path.
fn short_kernel_child() {
    use kiln::device::{Device, StreamKernel};
    let mut devices = kiln::device::cuda::probe()
        .unwrap_or_else(|e| panic!("no virtual GPU: {e}"))
        .devices;
    let dev: &mut dyn Device = devices[0].as_mut();
    assert!(
        !dev.info().simulated,
        "the test GPU must time as hardware does"
    );
    let len = 1usize << 14;
    let mut op = dev.stream(len, 7).expect("bandwidth buffers");
    // The model: 131072 bytes at 4.369 GB/s take 30.0 us on the device; the
    // host needs 4 us to queue each launch.
    let model_s = (len * 8) as f64 / 4.369e9;
    for kernel in [StreamKernel::Read, StreamKernel::Write] {
        let (t, _) = op.run(kernel).expect("kernel");
        let ratio = model_s / t;
        // One launch per event pair measures 30 + 4 us: 88 % of the rate.
        assert!(
            (0.99..=1.001).contains(&ratio),
            "{kernel:?}: timed {t:e} s for {model_s:e} s of work: {:.1} % of the rate",
            ratio * 100.0
        );
    }
}

#[test]
fn a_short_kernel_is_timed_without_the_launch_gap() {
    if std::env::var_os("KILN_VGPU_CHILD").is_some() {
        return short_kernel_child();
    }
    // A GPU kiln times as hardware (not named as a virtual one), with
    // kernels of about 30 us, as the quick profile's on an H200.
    let node = Node::new(
        1,
        "[gpu]\nname = \"Test GPU T30\"\npci_device_id = 0x1234\n[gpu.timing]\nhbm_gbps = 4.369\n",
    );
    let o = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_short_kernel_is_timed_without_the_launch_gap",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KILN_VGPU_CHILD", "1")
        .env("LD_LIBRARY_PATH", node.path("lib"))
        .env("VGPU_CONFIG", node.path("vgpu.toml"))
        .env("VGPU_LOG", node.path("vgpu.log"))
        .output()
        .expect("child test");
    let all = text(&o);
    assert!(o.status.success(), "{all}\n--- vgpu log\n{}", node.log());
    assert!(all.contains("1 passed"), "{all}");
}

#[test]
fn a_gpu_lost_from_nvml_is_rejected_by_its_xid_79() {
    // NVML loses GPU 1 one second in: every NVML call on it fails, and the
    // XID 79 that says why waits in the event set kiln registered at the
    // start. Before: a sample of a GPU NVML no longer finds returned early
    // and never read that event.
    let node = Node::new(4, "[[gpus]]\nordinal = 1\nfaults = { lost_at_s = 1.0 }\n");
    let (code, json, all) = quick_run(&node, "matmul");
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(
        verdicts(&json)
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>(),
        ["accept", "reject", "accept", "accept"],
        "{all}"
    );
    assert!(
        json["devices"][1]["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "xid")),
        "{all}"
    );
    assert!(all.contains("XID 79"), "{all}");
}

// ---- Each fault class of a dying GPU, on GPU 1 of four ---------------------
//
// The fault acts where hardware acts: in the driver calls (an error at the
// next synchronisation, a stream that never completes, a bit stored
// flipped, a slower link) and in NVML (counters, XID events, clock event
// reasons). The same fault injected into the sim backend gives the same
// reason code.

/// What every output of a run is.
const OUTPUTS: [&str; 5] = [
    "journal.jsonl",
    "results.json",
    "results.csv",
    "telemetry.csv",
    "report.pdf",
];

fn reasons_of(json: &Value, dev: usize) -> Vec<String> {
    json["devices"][dev]["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// One fault class: `faults` (a TOML inline table) on virtual GPU 1 of four,
/// run with `args`; the same fault as `inject` on simulated GPU 1 of four.
struct FaultCase<'a> {
    faults: &'a str,
    args: &'a [&'a str],
    /// The reason code README's table gives the fault.
    code: &'a str,
    /// The sim backend's `--inject` for the same fault.
    inject: Option<&'a str>,
    /// Where kiln's time to fault must fall, in seconds into the run.
    time_to_fault: Option<(f64, f64)>,
}

impl FaultCase<'_> {
    /// Runs it on both backends and checks every promise: exit 1, GPU 1
    /// rejected with the code (and its time to fault), the other three
    /// accepted, every output written, and the sim's codes for the same
    /// fault among the virtual GPU's.
    fn check(&self) -> Vec<String> {
        let node = Node::new(
            4,
            &format!("[[gpus]]\nordinal = 1\nfaults = {}\n", self.faults),
        );
        let out = node.path("out");
        let mut args = vec!["run", "--backend", "cuda", "--out"];
        args.push(out.to_str().expect("utf-8 path"));
        args.extend_from_slice(self.args);
        let o = node.kiln(&args, &[]);
        let all = format!("{}\n--- vgpu log\n{}", text(&o), node.log());
        assert_eq!(o.status.code(), Some(1), "{}: {all}", self.faults);
        for f in OUTPUTS {
            assert!(out.join(f).exists(), "{f} missing\n{all}");
        }
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("json"))
                .expect("results.json parses");
        assert_eq!(
            verdicts(&json)
                .into_iter()
                .map(|(_, v)| v)
                .collect::<Vec<_>>(),
            ["accept", "reject", "accept", "accept"],
            "{}: {all}",
            self.faults
        );
        let got = reasons_of(&json, 1);
        assert!(
            got.iter().any(|r| r == self.code),
            "{}: rejected for {got:?}, not {}\n{all}",
            self.faults,
            self.code
        );
        if let Some((lo, hi)) = self.time_to_fault {
            let t = json["devices"][1]["time_to_fault_s"].as_f64();
            assert!(
                t.is_some_and(|t| (lo..=hi).contains(&t)),
                "{}: time to fault {t:?}, expected {lo} to {hi} s\n{all}",
                self.faults
            );
        }
        if let Some(inject) = self.inject {
            let dir = tempfile::tempdir().expect("temp dir");
            let sim_out = dir.path().join("out");
            let mut args = vec!["run", "--backend", "sim", "--sim-gpus", "4", "--inject"];
            args.push(inject);
            args.push("--out");
            args.push(sim_out.to_str().expect("utf-8 path"));
            args.extend_from_slice(self.args);
            let o = Command::new(env!("CARGO_BIN_EXE_kiln"))
                .args(&args)
                .output()
                .expect("run kiln");
            let sim: Value = serde_json::from_str(
                &std::fs::read_to_string(sim_out.join("results.json")).unwrap_or_default(),
            )
            .unwrap_or(Value::Null);
            let sim_codes = reasons_of(&sim, 1);
            assert!(
                sim_codes.iter().any(|r| r == self.code),
                "sim {inject}: {sim_codes:?}, not {}\n{}",
                self.code,
                text(&o)
            );
            for c in &sim_codes {
                assert!(
                    got.contains(c),
                    "sim {inject} gives {c}, the virtual GPU with {} does not: {got:?}",
                    self.faults
                );
            }
        }
        got
    }
}

#[test]
fn a_weak_memory_bit_is_caught_by_memtest_bandwidth_and_matmul() {
    // A physical byte low in the GPU's memory, which the first buffers of
    // each workload occupy (allocation is first fit).
    for (workloads, offset, code, inject) in [
        ("memtest", "0x8000", "memtest_errors", "1:membit"),
        ("bandwidth", "0x8000", "copy_mismatch", "1:copybit"),
        ("matmul", "0x10000", "sdc_matmul", "1:sdc"),
    ] {
        FaultCase {
            faults: &format!("{{ bitflip = {{ offset = {offset}, bit = 3 }} }}"),
            args: &["--workloads", workloads],
            code,
            inject: Some(inject),
            time_to_fault: None,
        }
        .check();
    }
}

#[test]
fn a_kernel_that_never_finishes_is_rejected_by_the_watchdog_and_the_others_finish() {
    FaultCase {
        faults: "{ hang_at_s = 0.0 }",
        args: &["--workloads", "hash"],
        code: "hang",
        inject: Some("1:hang=hash"),
        time_to_fault: Some((15.0, 60.0)),
    }
    .check();
}

#[test]
fn a_gpu_off_the_bus_is_lost_with_xid_79_and_its_time() {
    let got = FaultCase {
        faults: "{ lost_at_s = 3.0 }",
        args: &["--workloads", "matmul"],
        code: "device_lost",
        inject: Some("1:lost=0"),
        time_to_fault: Some((0.5, 6.0)),
    }
    .check();
    assert!(got.contains(&"xid".to_string()), "{got:?}");
    // The CUDA error and NVML's loss are one finding, not also a generic
    // driver error.
    assert!(!got.contains(&"device_error".to_string()), "{got:?}");
}

#[test]
fn an_uncorrectable_ecc_error_rejects_at_the_next_synchronisation() {
    let got = FaultCase {
        faults: "{ ecc_uncorrectable_at_s = 3.0 }",
        args: &["--workloads", "matmul"],
        code: "ecc_uncorrectable",
        inject: Some("1:ecc=1"),
        time_to_fault: Some((0.5, 6.0)),
    }
    .check();
    // Before: the driver's CUDA_ERROR_ECC_UNCORRECTABLE was reported as
    // device_lost, sending a technician after a GPU off the bus.
    assert!(!got.contains(&"device_lost".to_string()), "{got:?}");
    assert!(got.contains(&"row_remap".to_string()), "{got:?}");
}

#[test]
fn xid_events_reject_and_those_that_kill_the_work_fail_it() {
    for (xid, also) in [(63, None), (48, Some("ecc_uncorrectable")), (13, None)] {
        let inject = format!("1:xid={xid}");
        let got = FaultCase {
            faults: &format!("{{ xid = {xid}, xid_at_s = 2.0 }}"),
            args: &["--workloads", "matmul"],
            code: "xid",
            inject: Some(&inject),
            time_to_fault: None,
        }
        .check();
        if let Some(a) = also {
            assert!(got.iter().any(|r| r == a), "XID {xid}: {got:?}");
        }
    }
}

#[test]
fn clocks_held_low_are_rejected_for_their_reason() {
    for (reason, code, inject) in [
        ("thermal", "thermal_throttle", Some("1:throttle=thermal")),
        ("power_brake", "power_throttle", Some("1:throttle=power")),
        ("hw_slowdown", "hw_slowdown", Some("1:throttle=hw")),
    ] {
        FaultCase {
            faults: &format!("{{ clocks_low = 0.5, clocks_low_reason = \"{reason}\" }}"),
            // Short, and sampled often enough to see the load.
            args: &["--workloads", "bandwidth", "--sample-rate", "10"],
            code,
            inject,
            time_to_fault: None,
        }
        .check();
    }
}

#[test]
fn a_pcie_link_trained_below_its_maximum_is_rejected() {
    let got = FaultCase {
        faults: "{ pcie_gen = 3 }",
        args: &["--workloads", "transfer"],
        code: "pcie_degraded",
        inject: Some("1:pcie=3:16"),
        time_to_fault: None,
    }
    .check();
    // The slow link shows in the host transfers too.
    assert!(got.contains(&"below_baseline".to_string()), "{got:?}");
}

#[test]
fn a_burn_in_of_a_minute_catches_a_fault_at_30_s_with_its_time() {
    let got = FaultCase {
        faults: "{ ecc_uncorrectable_at_s = 30.0 }",
        args: &[
            "--profile",
            "burnin",
            "--duration",
            "60s",
            "--workloads",
            "bandwidth,memtest,matmul",
        ],
        code: "ecc_uncorrectable",
        inject: None,
        time_to_fault: Some((27.0, 40.0)),
    }
    .check();
    assert!(!got.contains(&"device_lost".to_string()), "{got:?}");
}

#[test]
fn nvlinks_down_or_erroring_are_rejected() {
    FaultCase {
        faults: "{ nvlink_down = [0, 1, 2, 3, 4, 5] }",
        args: &["--workloads", "transfer"],
        code: "nvlink_down",
        inject: Some("1:nvlinkdown=6"),
        time_to_fault: None,
    }
    .check();
    FaultCase {
        faults: "{ nvlink_errors_per_s = 5.0 }",
        args: &["--workloads", "matmul", "--sample-rate", "10"],
        code: "nvlink_errors",
        inject: Some("1:nvlinkerr=50"),
        time_to_fault: None,
    }
    .check();
}

#[test]
fn kiln_check_reads_a_dying_gpu_through_nvml_in_seconds() {
    let node = Node::new(
        4,
        "[[gpus]]\nordinal = 2\nfaults = { ecc_uncorrectable_at_s = 0.0, nvlink_down = [3] }\n",
    );
    let o = node.kiln(&["check", "--backend", "cuda", "--expect-gpus", "4"], &[]);
    let all = format!("{}\n--- vgpu log\n{}", text(&o), node.log());
    assert_eq!(o.status.code(), Some(2), "{all}");
    let out = String::from_utf8_lossy(&o.stdout);
    for line in [
        "CRITICAL: 4 GPU(s) (4 expected), 3 finding(s)",
        "CRITICAL dev 2 ecc_uncorrectable",
        "CRITICAL dev 2 row_remap",
        "CRITICAL dev 2 nvlink_down: 17 of 18 NVLinks active",
    ] {
        assert!(out.contains(line), "{line:?} missing\n{all}");
    }
    // A clean virtual node is OK.
    let clean = Node::new(4, "");
    let o = clean.kiln(&["check", "--backend", "cuda", "--expect-gpus", "4"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_node_without_cublaslt_could_not_test_its_gpus_in_full_and_rejects_none() {
    let node = Node::new(2, "");
    std::fs::remove_file(node.path("lib/libcublasLt.so.12")).expect("unlink cuBLASLt");
    let out = node.path("out");
    let o = node.kiln(
        &[
            "run",
            "--backend",
            "cuda",
            "--workloads",
            "matmul",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    let all = format!("{}\n--- vgpu log\n{}", text(&o), node.log());
    assert_eq!(o.status.code(), Some(5), "{all}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("json"))
            .expect("results.json parses");
    for dev in 0..2 {
        let d = &json["devices"][dev];
        assert_eq!(d["verdict"], "untested", "{all}");
        assert_eq!(reasons_of(&json, dev), ["library_missing"], "{all}");
        assert_eq!(d["remedy"], "fix_node_software", "{all}");
        // kiln's own mma kernel needs no library: it still ran and passed.
        let names: Vec<&str> = d["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        assert!(names.contains(&"matmul_mma_bf16"), "{names:?}");
        assert!(!names.contains(&"matmul_bf16"), "{names:?}");
    }
}

#[test]
fn kiln_check_reads_the_fabric_the_wiring_the_modes_and_the_kernel_log_through_nvml() {
    // An HGX-like node: four GPUs on NVSwitches. GPU 1's fabric reports an
    // unhealthy route, GPU 2 has a link on the wrong switch, GPU 3 runs
    // without persistence mode; the kernel log holds an XID 13 of GPU 0
    // (bus 0x41) from before the check.
    let node = Node::new(
        4,
        "nvswitch = true\n\
         [[gpus]]\nordinal = 1\nfaults = { fabric_unhealthy = \"route_unhealthy\" }\n\
         [[gpus]]\nordinal = 2\nfaults = { nvlink_miswired = [6] }\n\
         [[gpus]]\nordinal = 3\nfaults = { persistence_off = true }\n",
    );
    let log = node.path("dmesg.txt");
    std::fs::write(
        &log,
        "[  812.000001] NVRM: Xid (PCI:0000:41:00): 13, pid=4242, name=python3, Graphics Exception\n",
    )
    .expect("log");
    let log = log.to_str().expect("utf-8 path");
    let args = [
        "check",
        "--backend",
        "cuda",
        "--expect-gpus",
        "4",
        "--kernel-log",
        log,
    ];
    let o = node.kiln(&args, &[]);
    let all = format!("{}\n--- vgpu log\n{}", text(&o), node.log());
    assert_eq!(o.status.code(), Some(2), "{all}");
    let out = String::from_utf8_lossy(&o.stdout);
    for line in [
        "CRITICAL: 4 GPU(s) (4 expected), 4 finding(s), 2 critical",
        "CRITICAL dev 1 fabric_unhealthy: fabric registered, but route unhealthy",
        // Link 6 belongs on switch 6 mod 4 = 2 (bus 0x07); seated on 0x08.
        "CRITICAL dev 2 nvlink_wiring: NVSwitch 00000000:08:00.0 is reached over 5 links (3, 6, 7, 11, 15) where its 3 vgpu Virtual Hopper peers have 4",
        "WARNING dev 3 persistence_off",
        "WARNING dev 0 xid: XID 13 logged 1 time(s) since boot (kernel log)",
    ] {
        assert!(out.contains(line), "{line:?} missing\n{all}");
    }
    // The same NVSwitch node, healthy: OK (its zero cluster UUID and
    // clique 0 are a single-node board's).
    let quiet = node.path("quiet.txt");
    std::fs::write(&quiet, "").expect("log");
    let args = [
        "check",
        "--backend",
        "cuda",
        "--expect-gpus",
        "4",
        "--kernel-log",
        quiet.to_str().expect("utf-8 path"),
    ];
    let clean = Node::new(4, "nvswitch = true\n");
    let o = clean.kiln(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The fabric manager down: CUDA refuses to start, NVML says why, and
    // the node is CRITICAL (not UNKNOWN: the check did find the problem).
    let down = Node::new(4, "nvswitch = true\nfabric_manager = false\n");
    let o = down.kiln(&args, &[]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(
        all.contains("CRITICAL node fabric_manager_down: 4 GPU(s) not registered with the NVSwitch fabric (00000000:41:00.0: fabric registration not started")
            && all.contains("note: CUDA: CUDA backend unavailable: cuInit failed"),
        "{all}"
    );
}

/// The power pulses run through the real CUDA path: a GPU that falls off
/// the bus while they run is rejected, the others pulse clean.
#[test]
fn a_gpu_lost_under_the_power_pulses_is_rejected_and_its_peers_pulse_clean() {
    let got = FaultCase {
        faults: "{ lost_at_s = 0.2 }",
        args: &["--workloads", "pulse"],
        code: "device_lost",
        inject: Some("1:pulse=lost"),
        time_to_fault: Some((0.1, 5.0)),
    }
    .check();
    assert!(got.contains(&"xid".to_string()), "{got:?}");
}

/// A node whose driver works for some GPUs: the PCI bus also shows one the
/// nvidia driver did not bring up (lost: rejected) and one bound to
/// vfio-pci (could not test). Neither is left out quietly; the working
/// GPUs are tested as usual, and the check says CRITICAL for both.
#[test]
fn gpus_on_the_pci_bus_that_cuda_does_not_list_are_devices_of_the_run() {
    let node = Node::new(2, "");
    pci_gpus(
        &node,
        &[
            (0x41, "nvidia"),
            (0x42, "nvidia"),
            (0x43, "nvidia"),
            (0x44, "vfio-pci"),
        ],
    );
    let (code, json, all) = quick_run(&node, "hash,transfer");
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(
        verdicts(&json),
        [
            (0, "accept".to_string()),
            (1, "accept".to_string()),
            (2, "reject".to_string()),
            (3, "untested".to_string()),
        ],
        "{all}"
    );
    assert!(
        reasons_of(&json, 2).contains(&"device_lost".to_string()),
        "{all}"
    );
    assert_eq!(json["devices"][2]["pci_bus_id"], "00000000:43:00.0");
    assert_eq!(json["devices"][2]["remedy"], "reboot_node");
    assert_eq!(reasons_of(&json, 3), ["driver_missing"], "{all}");
    assert!(json["devices"][3].to_string().contains("vfio-pci"), "{all}");
    // The working GPUs copied to each other only.
    let names: Vec<&str> = json["devices"][0]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(names.contains(&"p2p_gpu1"), "{names:?}");
    // NVML's P2P status says the peers are on NVLink: the NVLink floor.
    assert!(names.contains(&"p2p_nvlink"), "{names:?}");
    assert!(!names.contains(&"p2p_pcie"), "{names:?}");
    assert!(
        !names.iter().any(|n| *n == "p2p_gpu2" || *n == "p2p_gpu3"),
        "{names:?}"
    );
    let o = node.kiln(&["check", "--backend", "cuda", "--expect-gpus", "4"], &[]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    for line in [
        "4 GPU(s) (4 expected)",
        "CRITICAL dev 2 device_lost",
        "CRITICAL dev 3 driver_missing",
    ] {
        assert!(out.contains(line), "{line:?} missing\n{}", text(&o));
    }
}

/// H100s on the node's PCI bus (its `sysfs` folder), at bus `bus` bound to
/// `driver`.
fn pci_gpus(node: &Node, gpus: &[(u8, &str)]) {
    let sysfs = node.path("sysfs");
    for (bus, driver) in gpus {
        let dir = sysfs.join(format!("0000:{bus:02x}:00.0"));
        std::fs::create_dir_all(&dir).expect("function folder");
        for (file, value) in [
            ("vendor", "0x10de"),
            ("device", "0x2330"),
            ("class", "0x030200"),
        ] {
            std::fs::write(dir.join(file), format!("{value}\n")).expect("sysfs file");
        }
        std::os::unix::fs::symlink(
            format!("../../../bus/pci/drivers/{driver}"),
            dir.join("driver"),
        )
        .expect("driver link");
    }
}

/// The driver is installed and bound, but cuInit fails (here: the virtual
/// driver's configuration is broken, CUDA_ERROR_NOT_INITIALIZED): every GPU
/// of the PCI bus could not be tested, `driver_failed`, never a reject and
/// never a CPU run; `kiln check` says CRITICAL for each.
#[test]
fn a_driver_whose_cuinit_fails_leaves_its_gpus_untested_driver_failed() {
    let node = Node::new(2, "");
    std::fs::write(node.path("vgpu.toml"), "[node]\ngpus = 0\n").expect("broken config");
    pci_gpus(&node, &[(0x41, "nvidia"), (0x42, "nvidia")]);
    for backend in ["cuda", "auto"] {
        let out = node.path(&format!("out-{backend}"));
        let o = node.kiln(
            &[
                "run",
                "--backend",
                backend,
                "--workloads",
                "hash",
                "--out",
                out.to_str().expect("utf-8 path"),
            ],
            &[],
        );
        let all = format!("{}\n--- vgpu log\n{}", text(&o), node.log());
        assert_eq!(o.status.code(), Some(5), "{backend}: {all}");
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("results.json")).expect("results.json"),
        )
        .expect("json");
        assert_eq!(json["backend"], "cuda", "{backend}: never the CPU: {all}");
        for dev in 0..2 {
            assert_eq!(json["devices"][dev]["verdict"], "untested", "{all}");
            assert_eq!(reasons_of(&json, dev), ["driver_failed"], "{all}");
            assert_eq!(json["devices"][dev]["remedy"], "fix_node_software");
            let why = json["devices"][dev]["failures"][0]["message"]
                .as_str()
                .unwrap_or_default();
            assert!(why.contains("cuInit"), "{why}");
        }
    }
    let o = node.kiln(&["check", "--backend", "cuda"], &[]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(out.contains("CRITICAL dev 0 driver_failed"), "{}", text(&o));
    assert!(out.contains("CRITICAL dev 1 driver_failed"), "{}", text(&o));
}

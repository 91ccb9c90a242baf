//! The node's NVIDIA GPUs as the kernel's PCI bus lists them, with or
//! without a working driver: what says "this is a GPU node" when CUDA and
//! NVML cannot.
//!
//! Every folder of `/sys/bus/pci/devices` is one PCI function, named by its
//! address (`0000:18:00.0`), with its `vendor`, `device` and `class` as hex
//! text and a `driver` link to the kernel driver bound to it, if any. A GPU
//! is vendor 0x10de (NVIDIA) with a display-controller class: 0x0300xx
//! (VGA-compatible) or 0x0302xx (3D controller, every data-centre GPU).
//! NVSwitches (0x0680xx, bridges) and the GPUs' audio functions (0x0403xx)
//! are not GPUs.
//!
//! `KILN_SYSFS_PCI=DIR` reads DIR instead of `/sys/bus/pci/devices`: a hook
//! for tests and diagnosis (a saved or hand-made tree), not a setting.
//!
//! Layer: part of `telemetry` (it reads files only, no driver).

use std::path::{Path, PathBuf};

/// Where the kernel lists the PCI functions.
pub const SYSFS_PCI: &str = "/sys/bus/pci/devices";

/// The variable that names another folder to read instead (tests and
/// diagnosis).
pub const SYSFS_PCI_ENV: &str = "KILN_SYSFS_PCI";

/// NVIDIA's PCI vendor id.
pub const NVIDIA_VENDOR: u16 = 0x10de;

/// The kernel driver CUDA needs.
pub const NVIDIA_DRIVER: &str = "nvidia";

/// One NVIDIA GPU on the PCI bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciGpu {
    /// NVML's form of its address: 8 hex digits of domain,
    /// `00000000:18:00.0`, lowercase.
    pub bus_id: String,
    /// Its PCI device id (0x2330 for an H100 SXM5).
    pub device_id: u16,
    /// Its PCI class code (0x030200 for a 3D controller).
    pub class: u32,
    /// The kernel driver bound to it (`nvidia`, `vfio-pci`, `nouveau`), or
    /// None when none is.
    pub driver: Option<String>,
}

impl PciGpu {
    /// `NVIDIA H100 80GB HBM3` for a model kiln knows by its device id,
    /// else `NVIDIA GPU [10de:1db5] (a model kiln does not know)`.
    pub fn name(&self) -> String {
        match model_name(self.device_id) {
            Some(name) => name.to_string(),
            None => format!(
                "NVIDIA GPU [{NVIDIA_VENDOR:04x}:{:04x}] (a model kiln does not know)",
                self.device_id
            ),
        }
    }

    /// True when the nvidia kernel driver is bound to it.
    pub fn nvidia_bound(&self) -> bool {
        self.driver.as_deref() == Some(NVIDIA_DRIVER)
    }
}

/// The models kiln's shipped baselines know, by PCI device id, named as the
/// driver names them (tests/baseline.rs checks the table against the
/// baselines).
pub const MODELS: &[(u16, &str)] = &[
    (0x20b2, "NVIDIA A100-SXM4-80GB"),
    (0x2330, "NVIDIA H100 80GB HBM3"),
    (0x2335, "NVIDIA H200"),
    (0x2684, "NVIDIA GeForce RTX 4090"),
    (0x26b9, "NVIDIA L40S"),
];

/// The driver's name of the model with PCI device id `id`, when kiln knows it.
pub fn model_name(id: u16) -> Option<&'static str> {
    MODELS.iter().find(|(d, _)| *d == id).map(|(_, n)| *n)
}

/// True for a display controller: VGA-compatible (0x0300xx) or 3D
/// (0x0302xx).
pub fn is_gpu_class(class: u32) -> bool {
    matches!(class >> 8, 0x0300 | 0x0302)
}

/// The folder kiln reads: `$KILN_SYSFS_PCI` when set and not empty, else
/// [`SYSFS_PCI`].
pub fn root() -> PathBuf {
    match std::env::var_os(SYSFS_PCI_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(SYSFS_PCI),
    }
}

/// This node's NVIDIA GPUs, in bus order ([`read`] of [`root`]).
pub fn nvidia_gpus() -> Vec<PciGpu> {
    read(&root())
}

/// The NVIDIA GPUs listed under `root`, in bus order. A folder that cannot
/// be read, or a function whose files are missing or malformed, lists
/// nothing: there is no GPU to speak of where the kernel shows none.
pub fn read(root: &Path) -> Vec<PciGpu> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut gpus: Vec<PciGpu> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| function(&e.path(), &e.file_name().to_string_lossy()))
        .collect();
    gpus.sort_by(|a, b| a.bus_id.cmp(&b.bus_id));
    gpus
}

/// The GPU at `dir` (a function's folder named `name`), if it is one.
fn function(dir: &Path, name: &str) -> Option<PciGpu> {
    let bus_id = bus_id(name)?;
    let vendor = hex_file(&dir.join("vendor"))?;
    if vendor != u32::from(NVIDIA_VENDOR) {
        return None;
    }
    let class = hex_file(&dir.join("class"))?;
    if !is_gpu_class(class) {
        return None;
    }
    let device_id = u16::try_from(hex_file(&dir.join("device"))?).ok()?;
    let driver = std::fs::read_link(dir.join("driver"))
        .ok()
        .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty());
    Some(PciGpu {
        bus_id,
        device_id,
        class,
        driver,
    })
}

/// A sysfs function name (`0000:18:00.0`, the domain may have more digits)
/// in NVML's form, `00000000:18:00.0`; None when it is not an address.
pub fn bus_id(name: &str) -> Option<String> {
    let (domain, rest) = name.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (slot, function) = rest.split_once('.')?;
    let hex = |s: &str, max: usize| -> Option<u32> {
        if s.is_empty() || s.len() > max || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    };
    let (domain, bus, slot, function) = (
        hex(domain, 8)?,
        hex(bus, 2)?,
        hex(slot, 2)?,
        hex(function, 1)?,
    );
    if slot > 0x1f || function > 7 {
        return None;
    }
    Some(format!("{domain:08x}:{bus:02x}:{slot:02x}.{function}"))
}

/// A sysfs hex value file (`0x10de\n`).
fn hex_file(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes one PCI function under `root`, bound to `driver` if given.
    fn function(
        root: &Path,
        name: &str,
        vendor: &str,
        device: &str,
        class: &str,
        driver: Option<&str>,
    ) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("function folder");
        for (file, value) in [("vendor", vendor), ("device", device), ("class", class)] {
            std::fs::write(dir.join(file), format!("{value}\n")).expect("sysfs file");
        }
        if let Some(d) = driver {
            std::os::unix::fs::symlink(format!("../../../bus/pci/drivers/{d}"), dir.join("driver"))
                .expect("driver link");
        }
    }

    #[test]
    fn only_nvidia_display_controllers_are_gpus() {
        let t = tempfile::tempdir().expect("temp dir");
        let root = t.path();
        function(root, "0000:18:00.0", "0x10de", "0x2330", "0x030200", None);
        function(
            root,
            "0000:05:00.0",
            "0x10de",
            "0x2684",
            "0x030000",
            Some("vfio-pci"),
        );
        // An NVSwitch (a bridge), a GPU's audio function, another vendor's
        // VGA controller and its 3D controller.
        function(
            root,
            "0000:07:00.0",
            "0x10de",
            "0x22a3",
            "0x068000",
            Some("nvidia"),
        );
        function(root, "0000:05:00.1", "0x10de", "0x22ba", "0x040300", None);
        function(
            root,
            "0000:02:00.0",
            "0x1a03",
            "0x2000",
            "0x030000",
            Some("ast"),
        );
        function(root, "0000:03:00.0", "0x1002", "0x740f", "0x038000", None);
        // Not a function: ignored.
        std::fs::create_dir_all(root.join("not-an-address")).expect("folder");
        let gpus = read(root);
        assert_eq!(
            gpus,
            vec![
                PciGpu {
                    bus_id: "00000000:05:00.0".into(),
                    device_id: 0x2684,
                    class: 0x030000,
                    driver: Some("vfio-pci".into()),
                },
                PciGpu {
                    bus_id: "00000000:18:00.0".into(),
                    device_id: 0x2330,
                    class: 0x030200,
                    driver: None,
                },
            ]
        );
        assert!(!gpus[0].nvidia_bound() && !gpus[1].nvidia_bound());
    }

    #[test]
    fn the_driver_is_the_links_last_component() {
        let t = tempfile::tempdir().expect("temp dir");
        function(
            t.path(),
            "0000:3b:00.0",
            "0x10de",
            "0x2335",
            "0x030200",
            Some("nvidia"),
        );
        let gpus = read(t.path());
        assert_eq!(gpus.len(), 1);
        assert_eq!(gpus[0].driver.as_deref(), Some("nvidia"));
        assert!(gpus[0].nvidia_bound());
        assert_eq!(gpus[0].name(), "NVIDIA H200");
    }

    #[test]
    fn bus_ids_take_nvmls_form() {
        assert_eq!(bus_id("0000:18:00.0").as_deref(), Some("00000000:18:00.0"));
        assert_eq!(bus_id("0000:AB:1f.7").as_deref(), Some("00000000:ab:1f.7"));
        // VMD domains have more than 4 digits.
        assert_eq!(bus_id("10000:01:00.0").as_deref(), Some("00010000:01:00.0"));
        for bad in [
            "",
            "0000:18:00",
            "0000:18.0",
            "zz:18:00.0",
            "0000:18:00.8",
            "0000:180:00.0",
        ] {
            assert_eq!(bus_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn malformed_or_missing_files_list_nothing() {
        let t = tempfile::tempdir().expect("temp dir");
        function(
            t.path(),
            "0000:18:00.0",
            "0x10de",
            "not hex",
            "0x030200",
            None,
        );
        function(
            t.path(),
            "0000:19:00.0",
            "0x10de",
            "0x12345",
            "0x030200",
            None,
        );
        std::fs::create_dir_all(t.path().join("0000:1a:00.0")).expect("empty function");
        assert_eq!(read(t.path()), Vec::new());
        assert_eq!(read(&t.path().join("nonexistent")), Vec::new());
    }

    #[test]
    fn unknown_models_say_so() {
        let gpu = |device_id| PciGpu {
            bus_id: "00000000:18:00.0".into(),
            device_id,
            class: 0x030200,
            driver: None,
        };
        assert_eq!(gpu(0x2330).name(), "NVIDIA H100 80GB HBM3");
        assert_eq!(
            gpu(0x1db5).name(),
            "NVIDIA GPU [10de:1db5] (a model kiln does not know)"
        );
        assert!(is_gpu_class(0x030000) && is_gpu_class(0x030200) && is_gpu_class(0x0302ff));
        assert!(!is_gpu_class(0x068000) && !is_gpu_class(0x038000) && !is_gpu_class(0x040300));
    }
}

//! The virtual node: how many GPUs, what each one is, and its timing model.
//!
//! Read once, at `cuInit`, from the TOML file named by `VGPU_CONFIG`; with
//! no variable, a default node of two virtual Hopper-class GPUs. A file that
//! does not parse makes `cuInit` fail (CUDA_ERROR_NOT_INITIALIZED) with one
//! log line naming the file and the problem, never a default in its place.
//!
//! ```toml
//! [node]
//! gpus = 4                       # copies of [gpu] (default 2)
//!
//! [gpu]                          # every GPU unless overridden below
//! name = "vgpu Virtual Hopper"
//! pci_device_id = 0x7e01         # NVML's device id (0x10de vendor)
//! sms = 8
//! memory_mib = 4096
//! compute_capability = [9, 0]
//!
//! [gpu.timing]
//! launch_latency_us = 4.0
//! hbm_gbps = 3350.0
//!
//! [[gpus]]                       # optional per-GPU overrides, by ordinal
//! ordinal = 1
//! pci_bus_id = "00000000:42:00.0"
//! faults = { xid = 79, xid_at_s = 5.0 }
//! ```
//!
//! Faults (`faults = { ... }`, all optional; times are seconds of host wall
//! time since the node started, [`crate::clock::fault_time_s`]):
//!
//! | key | what the node shows |
//! |---|---|
//! | `busy` | another process owns the GPU (compute mode EXCLUSIVE_PROCESS) |
//! | `mig_instances` | MIG mode on, with this many instances (0: off) |
//! | `ecc_uncorrectable_at_s` | one uncorrectable ECC error at that time: counters step up, a row remapping pending |
//! | `ecc_correctable_per_s` | correctable ECC errors at this rate |
//! | `xid`, `xid_at_s` | an XID error of that number, delivered as an NVML event |
//! | `clocks_low`, `clocks_low_reason` | the SM clock under load at this factor (< 1) of its boost clock, for that reason |
//! | `pcie_gen`, `pcie_width` | the PCIe link trained below its maximum (Gen5, x16) |
//! | `nvlink_down` | these NVLinks (0 to 17) inactive |
//! | `nvlink_errors_per_s` | NVLink replay, recovery and CRC errors at this rate on every active link |
//! | `lost_at_s` | the GPU falls off the bus (NVML_ERROR_GPU_IS_LOST, XID 79) |
//! | `persistence_off` | persistence mode disabled (on by default, as on a managed node) |
//! | `fabric_unhealthy` | with `[node] nvswitch = true`: the fabric's health mask reports this problem (`route_unhealthy`, `route_recovery`, `access_timeout_recovery`, `incorrect_configuration`) |
//! | `nvlink_miswired` | with `[node] nvswitch = true`: these NVLinks (0 to 17) end on the next NVSwitch instead of their own |
//! | `hang_at_s`, `hang_kernel` | the first kernel launched at or after that time (whose name contains `hang_kernel`) never finishes |
//! | `bitflip = { offset, bit, nth_write, at_s, once }` | a weak bit in device memory: writes to it store the bit flipped |
//!
//! The driver acts on them too (see [`crate::driver::faults`]): a lost GPU
//! fails the call in flight with CUDA_ERROR_LAUNCH_FAILED and every call
//! after it; an uncorrectable ECC error (or XID 48, 94, 95) surfaces as
//! CUDA_ERROR_ECC_UNCORRECTABLE at the next synchronisation; low clocks,
//! a slow PCIe link and NVLinks down scale the timing model.

use std::path::Path;

use serde::Deserialize;

/// The default model's name. kiln recognises the virtual GPU by it (and by
/// [`DEFAULT_PCI_DEVICE_ID`]).
pub const DEFAULT_NAME: &str = "vgpu Virtual Hopper";

/// The default model's PCI device id: not one NVIDIA has assigned to a
/// product.
pub const DEFAULT_PCI_DEVICE_ID: u16 = 0x7e01;

/// The most GPUs one virtual node may have.
pub const MAX_GPUS: usize = 64;

/// The timing model of one GPU: every launch costs `launch_latency_us` plus
/// the larger of its bytes over `hbm_gbps` and its work over the matching
/// throughput; copies cost their bytes over the link.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    /// Fixed cost of every kernel launch, in microseconds.
    pub launch_latency_us: f64,
    /// Device memory bandwidth, GB/s (bytes read + written).
    pub hbm_gbps: f64,
    /// fp32 (non-tensor) throughput, TFLOP/s.
    pub fp32_tflops: f64,
    /// fp64 (non-tensor) throughput, TFLOP/s.
    pub fp64_tflops: f64,
    /// Tensor-core (mma) throughput for bf16/fp16 with fp32 accumulate,
    /// TFLOP/s.
    pub tensor_tflops: f64,
    /// Integer and logic instructions, tera-operations per second.
    pub int_tops: f64,
    /// Host link, GB/s one way, for pinned host memory.
    pub pcie_gbps: f64,
    /// Pageable host memory goes through a staging buffer: this fraction of
    /// `pcie_gbps`.
    pub pageable_factor: f64,
    /// Peer link (NVLink), GB/s one way.
    pub peer_gbps: f64,
    /// Fixed cost of every copy or memset, in microseconds.
    pub copy_latency_us: f64,
}

impl Default for Timing {
    /// H100 SXM5-like figures (NVIDIA's datasheet: 3.35 TB/s HBM3, 67 TFLOP/s
    /// fp32, 34 fp64, 989 dense bf16 tensor; PCIe Gen5 x16 about 55 GB/s in
    /// practice; NVLink 4 about 450 GB/s one way).
    fn default() -> Timing {
        Timing {
            launch_latency_us: 4.0,
            hbm_gbps: 3350.0,
            fp32_tflops: 67.0,
            fp64_tflops: 34.0,
            tensor_tflops: 989.0,
            int_tops: 33.5,
            pcie_gbps: 55.0,
            pageable_factor: 0.5,
            peer_gbps: 450.0,
            copy_latency_us: 2.0,
        }
    }
}

/// One virtual GPU as its driver reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gpu {
    pub name: String,
    pub pci_device_id: u16,
    /// `DDDDDDDD:BB:DD.F`; empty: derived from the ordinal.
    pub pci_bus_id: String,
    /// 16 bytes as 32 hex digits; empty: derived from the ordinal.
    pub uuid: String,
    pub sms: u32,
    pub memory_mib: u64,
    pub compute_capability: [u32; 2],
    /// Whether this GPU can reach every other GPU of the node directly.
    pub peer_access: bool,
    pub timing: Timing,
    /// Node states and faults of this GPU.
    pub faults: Faults,
    /// Set by [`Config::cuda_devices`] on the devices that are MIG
    /// instances of a GPU (never read from the file).
    #[serde(skip)]
    pub mig_instance: bool,
}

/// What is wrong with a GPU, or with the node around it, acting where a real
/// node acts.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Another process owns the GPU (compute mode EXCLUSIVE_PROCESS):
    /// creating a context fails with CUDA_ERROR_DEVICE_UNAVAILABLE.
    pub busy: bool,
    /// MIG mode on, with this many GPU instances (0: MIG off). CUDA then
    /// sees each instance as a device of its own, named `<name> MIG
    /// <slice>`, all on the GPU's PCI bus id.
    pub mig_instances: u32,
    /// One uncorrectable (double-bit) ECC error in device memory at this
    /// time: NVML's uncorrected counters (volatile and aggregate) step from 0
    /// to 1, one row remapping is pending (nvmlDeviceGetRemappedRows: one
    /// uncorrectable row, pending) and an nvmlEventTypeDoubleBitEccError
    /// event is delivered.
    pub ecc_uncorrectable_at_s: Option<f64>,
    /// Correctable (single-bit) ECC errors per second since the node
    /// started: NVML's corrected counters (default 0).
    pub ecc_correctable_per_s: f64,
    /// An XID error of this number (1 to 999) at `xid_at_s`, delivered to
    /// NVML event sets registered for nvmlEventTypeXidCriticalError.
    pub xid: Option<u32>,
    /// When `xid` happens (default 0: as the node starts).
    pub xid_at_s: f64,
    /// Under load the SM clock runs at this factor (0 < f < 1) of its boost
    /// clock, and NVML reports `clocks_low_reason` among the clock event
    /// reasons. The hardware slowdowns (`hw_slowdown`, `thermal`,
    /// `power_brake`) reduce clocks "by a factor of 2 or more" (nvml.h), so
    /// they need a factor of 0.5 or less.
    pub clocks_low: Option<f64>,
    /// Why the clocks are low (required with `clocks_low`).
    pub clocks_low_reason: Option<ClockReason>,
    /// The PCIe generation the link trained at (1 to 5; default 5, the
    /// maximum). An idle GPU's link may run slower still (see NVML).
    pub pcie_gen: Option<u32>,
    /// The PCIe width the link trained at (1, 2, 4, 8 or 16; default 16).
    pub pcie_width: Option<u32>,
    /// NVLinks (0 to 17) that are down (nvmlDeviceGetNvLinkState: disabled).
    pub nvlink_down: Vec<u32>,
    /// NVLink errors per second on every active link, for each of the DL
    /// replay, recovery, CRC flit and CRC data counters (default 0).
    pub nvlink_errors_per_s: f64,
    /// The GPU falls off the bus at this time: every NVML call on it returns
    /// NVML_ERROR_GPU_IS_LOST and an XID 79 event is delivered.
    pub lost_at_s: Option<f64>,
    /// Persistence mode disabled (a managed node enables it; default on).
    pub persistence_off: bool,
    /// On an NVSwitch node: the GPU's fabric health mask reports this
    /// problem (and its health summary UNHEALTHY), with the registration
    /// completed.
    pub fabric_unhealthy: Option<FabricProblem>,
    /// On an NVSwitch node: these NVLinks (0 to 17) are seated on the next
    /// NVSwitch instead of their own (nvmlDeviceGetNvLinkRemotePciInfo
    /// reports it), as a mis-seated baseboard or cable leaves them.
    pub nvlink_miswired: Vec<u32>,
    /// The first kernel launched at or after this time never finishes: its
    /// launch succeeds, its stream never completes (cuStreamSynchronize and
    /// cuCtxSynchronize block, cuStreamQuery answers CUDA_ERROR_NOT_READY),
    /// and nothing queued behind it runs.
    pub hang_at_s: Option<f64>,
    /// With `hang_at_s`: only a kernel whose `.entry` name contains this
    /// text hangs (default: any kernel).
    pub hang_kernel: Option<String>,
    /// A weak bit in device memory.
    pub bitflip: Option<BitFlip>,
}

/// A weak bit in a GPU's memory, which ECC does not catch: a write to its
/// byte stores that bit inverted. The byte is a physical one: whichever
/// allocation covers it at the time is hit (the driver places allocations
/// in physical memory first fit, reusing freed memory, as a real one does).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitFlip {
    /// The byte, as an offset into the GPU's memory (0 to its size - 1).
    pub offset: u64,
    /// Which bit of it (0 to 7; default 0).
    #[serde(default)]
    pub bit: u8,
    /// The first write to the byte that is stored flipped is the Nth (default
    /// 1: every write from the first).
    #[serde(default = "first")]
    pub nth_write: u64,
    /// Writes before this time (seconds since the node started) are stored
    /// correctly (default 0).
    #[serde(default)]
    pub at_s: f64,
    /// Only one write is stored flipped, a transient upset (default false:
    /// every write from then on, a weak cell).
    #[serde(default)]
    pub once: bool,
}

fn first() -> u64 {
    1
}

/// What an unhealthy NVSwitch fabric reports (nvml.h
/// `NVML_GPU_FABRIC_HEALTH_MASK_*`): the field set to its TRUE value (1),
/// or for `incorrect_configuration` to INSUFFICIENT_NVLINKS (5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FabricProblem {
    RouteRecovery,
    RouteUnhealthy,
    AccessTimeoutRecovery,
    IncorrectConfiguration,
}

/// Why a GPU's clocks are low: the clock event reason NVML reports
/// (nvml.h's `nvmlClocksEventReason*` / `nvmlClocksThrottleReason*` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockReason {
    /// Software power capping: SW_POWER_CAP (0x4).
    SwPowerCap,
    /// Software thermal slowdown: SW_THERMAL_SLOWDOWN (0x20).
    SwThermal,
    /// Hardware slowdown: HW_SLOWDOWN (0x8).
    HwSlowdown,
    /// Hardware thermal slowdown: HW_THERMAL_SLOWDOWN (0x40) with
    /// HW_SLOWDOWN (0x8), which nvml.h says indicates a temperature too high.
    Thermal,
    /// External power brake: HW_POWER_BRAKE_SLOWDOWN (0x80) with
    /// HW_SLOWDOWN (0x8), which nvml.h says indicates a power brake.
    PowerBrake,
    /// Board limit (0x200), a reason newer than nvml-wrapper 0.13's names.
    BoardLimit,
    /// Reliability (0x400), likewise unnamed by nvml-wrapper 0.13.
    Reliability,
}

impl ClockReason {
    /// The reason's bits in NVML's clock event reason mask.
    pub fn bits(self) -> u64 {
        match self {
            ClockReason::SwPowerCap => 0x4,
            ClockReason::SwThermal => 0x20,
            ClockReason::HwSlowdown => 0x8,
            ClockReason::Thermal => 0x40 | 0x8,
            ClockReason::PowerBrake => 0x80 | 0x8,
            ClockReason::BoardLimit => 0x200,
            ClockReason::Reliability => 0x400,
        }
    }

    /// Whether it is a hardware slowdown (clocks halved or worse).
    pub fn is_hardware(self) -> bool {
        matches!(
            self,
            ClockReason::HwSlowdown | ClockReason::Thermal | ClockReason::PowerBrake
        )
    }
}

impl Default for Gpu {
    fn default() -> Gpu {
        Gpu {
            name: DEFAULT_NAME.into(),
            pci_device_id: DEFAULT_PCI_DEVICE_ID,
            pci_bus_id: String::new(),
            uuid: String::new(),
            sms: 8,
            memory_mib: 4096,
            compute_capability: [9, 0],
            peer_access: true,
            timing: Timing::default(),
            faults: Faults::default(),
            mig_instance: false,
        }
    }
}

/// A per-GPU override: the fields given replace those of `[gpu]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct GpuOverride {
    ordinal: usize,
    name: Option<String>,
    pci_device_id: Option<u16>,
    pci_bus_id: Option<String>,
    uuid: Option<String>,
    sms: Option<u32>,
    memory_mib: Option<u64>,
    compute_capability: Option<[u32; 2]>,
    peer_access: Option<bool>,
    timing: Option<Timing>,
    faults: Option<Faults>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Node {
    gpus: Option<usize>,
    nvswitch: bool,
    fabric_manager: bool,
}

impl Default for Node {
    fn default() -> Node {
        Node {
            gpus: None,
            nvswitch: false,
            fabric_manager: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct File {
    node: Node,
    gpu: Gpu,
    gpus: Vec<GpuOverride>,
}

/// The whole virtual node.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub gpus: Vec<Gpu>,
    /// GPUs joined by NVSwitches (HGX): CUDA needs the fabric manager.
    pub nvswitch: bool,
    /// Whether the fabric manager runs (only matters with `nvswitch`):
    /// without it cuInit fails with CUDA_ERROR_SYSTEM_NOT_READY.
    pub fabric_manager: bool,
}

impl Default for Config {
    /// Two default GPUs.
    fn default() -> Config {
        Config::from_toml("").unwrap_or(Config {
            gpus: Vec::new(),
            nvswitch: false,
            fabric_manager: true,
        })
    }
}

impl Config {
    /// The devices CUDA enumerates: one per GPU, or one per MIG instance of
    /// a GPU in MIG mode (a slice of its SMs and memory, named after the
    /// MIG profile, on the same PCI bus id, with a UUID of its own).
    pub fn cuda_devices(&self) -> Vec<Gpu> {
        let mut out = Vec::new();
        for g in &self.gpus {
            let k = g.faults.mig_instances;
            if k == 0 {
                out.push(g.clone());
                continue;
            }
            for i in 0..k {
                let mut m = g.clone();
                let mem_gb = (g.memory_mib / u64::from(k)).div_ceil(1024);
                m.name = format!("{} MIG {}g.{}gb", g.name, (g.sms / k).max(1), mem_gb);
                m.sms = (g.sms / k).max(1);
                m.memory_mib = g.memory_mib / u64::from(k);
                // The instance's UUID: the GPU's with its last byte replaced.
                m.uuid = format!("{}{:02x}", &g.uuid[..30], 0x80 + i);
                m.faults.mig_instances = 0;
                m.mig_instance = true;
                out.push(m);
            }
        }
        out
    }
}

impl Config {
    /// The node described by `VGPU_CONFIG`, or the default node.
    ///
    /// Reading it starts the node: [`crate::clock`] counts fault times from
    /// the first read (the first cuInit or nvmlInit).
    pub fn from_env() -> Result<Config, String> {
        crate::clock::start();
        match std::env::var_os("VGPU_CONFIG") {
            Some(path) if !path.is_empty() => Config::load(Path::new(&path)),
            _ => Ok(Config::default()),
        }
    }

    /// The node described by the file at `path`.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("VGPU_CONFIG {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("VGPU_CONFIG {}: {e}", path.display()))
    }

    /// The node described by a TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let count = file.node.gpus.unwrap_or(2);
        if count == 0 || count > MAX_GPUS {
            return Err(format!(
                "[node] gpus = {count}: expected 1 to {MAX_GPUS} GPUs"
            ));
        }
        let mut gpus = vec![file.gpu.clone(); count];
        for o in file.gpus {
            let g = gpus.get_mut(o.ordinal).ok_or_else(|| {
                format!(
                    "[[gpus]] ordinal = {}: the node has GPUs 0 to {}",
                    o.ordinal,
                    count - 1
                )
            })?;
            macro_rules! set {
                ($($f:ident),*) => { $(if let Some(v) = o.$f { g.$f = v; })* };
            }
            set!(
                name,
                pci_device_id,
                pci_bus_id,
                uuid,
                sms,
                memory_mib,
                compute_capability,
                peer_access,
                timing,
                faults
            );
        }
        for (i, g) in gpus.iter_mut().enumerate() {
            if g.pci_bus_id.is_empty() {
                // Bus numbers 0x41, 0x42, ... as on a 2-socket HGX board.
                g.pci_bus_id = format!("00000000:{:02x}:00.0", 0x41 + i);
            }
            if g.uuid.is_empty() {
                g.uuid = format!("7667707500000000a000{:012x}", i);
            }
            check_gpu(i, g)?;
        }
        let mut buses: Vec<&str> = gpus.iter().map(|g| g.pci_bus_id.as_str()).collect();
        buses.sort_unstable();
        if let Some(w) = buses.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("two GPUs have PCI bus id {}", w[0]));
        }
        if !file.node.nvswitch {
            if let Some((i, _)) = gpus.iter().enumerate().find(|(_, g)| {
                g.faults.fabric_unhealthy.is_some() || !g.faults.nvlink_miswired.is_empty()
            }) {
                return Err(format!(
                    "GPU {i}: faults.fabric_unhealthy and faults.nvlink_miswired need an NVSwitch fabric ([node] nvswitch = true)"
                ));
            }
        }
        Ok(Config {
            gpus,
            nvswitch: file.node.nvswitch,
            fabric_manager: file.node.fabric_manager,
        })
    }
}

/// A GPU's values, checked: what a driver could never report is refused.
fn check_gpu(i: usize, g: &Gpu) -> Result<(), String> {
    let bad = |what: String| Err(format!("GPU {i}: {what}"));
    if g.name.is_empty() || g.name.len() > 255 {
        return bad(format!("name {:?}: expected 1 to 255 bytes", g.name));
    }
    if parse_bus_id(&g.pci_bus_id).is_none() {
        return bad(format!(
            "pci_bus_id {:?}: expected DDDDDDDD:BB:DD.F in hex",
            g.pci_bus_id
        ));
    }
    if parse_uuid(&g.uuid).is_none() {
        return bad(format!("uuid {:?}: expected 32 hex digits", g.uuid));
    }
    if g.sms == 0 || g.sms > 1024 {
        return bad(format!("sms = {}: expected 1 to 1024", g.sms));
    }
    if g.memory_mib < 64 || g.memory_mib > 1 << 20 {
        return bad(format!(
            "memory_mib = {}: expected 64 to 1048576",
            g.memory_mib
        ));
    }
    if g.faults.mig_instances > 7 || (g.faults.mig_instances > 0 && g.sms < g.faults.mig_instances)
    {
        return bad(format!(
            "faults.mig_instances = {}: expected 0 (MIG off) to 7, and no more than the SMs",
            g.faults.mig_instances
        ));
    }
    check_faults(&g.faults).map_err(|e| format!("GPU {i}: faults.{e}"))?;
    if let Some(b) = &g.faults.bitflip {
        if b.offset >= g.memory_mib << 20 {
            return bad(format!(
                "faults.bitflip.offset = {:#x}: past the end of the GPU's {} MiB",
                b.offset, g.memory_mib
            ));
        }
    }
    let [major, minor] = g.compute_capability;
    if !(5..=12).contains(&major) || minor > 9 {
        return bad(format!("compute_capability = [{major}, {minor}]"));
    }
    let t = &g.timing;
    for (name, v) in [
        ("launch_latency_us", t.launch_latency_us),
        ("copy_latency_us", t.copy_latency_us),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return bad(format!("timing.{name} = {v}: expected a number >= 0"));
        }
    }
    for (name, v) in [
        ("hbm_gbps", t.hbm_gbps),
        ("fp32_tflops", t.fp32_tflops),
        ("fp64_tflops", t.fp64_tflops),
        ("tensor_tflops", t.tensor_tflops),
        ("int_tops", t.int_tops),
        ("pcie_gbps", t.pcie_gbps),
        ("peer_gbps", t.peer_gbps),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return bad(format!("timing.{name} = {v}: expected a number > 0"));
        }
    }
    if !(t.pageable_factor > 0.0 && t.pageable_factor <= 1.0) {
        return bad(format!(
            "timing.pageable_factor = {}: expected (0, 1]",
            t.pageable_factor
        ));
    }
    Ok(())
}

/// The NVML-visible faults of a GPU, checked.
fn check_faults(f: &Faults) -> Result<(), String> {
    let time = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(format!("{name} = {v}: expected seconds >= 0"))
        }
    };
    if let Some(t) = f.ecc_uncorrectable_at_s {
        time("ecc_uncorrectable_at_s", t)?;
    }
    if let Some(t) = f.lost_at_s {
        time("lost_at_s", t)?;
    }
    time("xid_at_s", f.xid_at_s)?;
    for (name, v) in [
        ("ecc_correctable_per_s", f.ecc_correctable_per_s),
        ("nvlink_errors_per_s", f.nvlink_errors_per_s),
    ] {
        if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
            return Err(format!("{name} = {v}: expected 0 to 1e6 per second"));
        }
    }
    match f.xid {
        Some(x) if !(1..=999).contains(&x) => {
            return Err(format!("xid = {x}: expected an XID number 1 to 999"))
        }
        None if f.xid_at_s != 0.0 => return Err("xid_at_s without xid".into()),
        _ => {}
    }
    match (f.clocks_low, f.clocks_low_reason) {
        (Some(c), _) if !(c > 0.0 && c < 1.0) => {
            return Err(format!("clocks_low = {c}: expected a factor in (0, 1)"))
        }
        (Some(_), None) => {
            return Err("clocks_low needs clocks_low_reason (sw_power_cap, sw_thermal, hw_slowdown, thermal, power_brake, board_limit or reliability)".into())
        }
        (None, Some(_)) => return Err("clocks_low_reason without clocks_low".into()),
        (Some(c), Some(r)) if r.is_hardware() && c > 0.5 => {
            return Err(format!(
                "clocks_low = {c} with clocks_low_reason {r:?}: a hardware slowdown reduces clocks by a factor of 2 or more (nvml.h), expected <= 0.5"
            ))
        }
        _ => {}
    }
    if let Some(g) = f.pcie_gen {
        if !(1..=5).contains(&g) {
            return Err(format!("pcie_gen = {g}: expected 1 to 5"));
        }
    }
    if let Some(w) = f.pcie_width {
        if ![1, 2, 4, 8, 16].contains(&w) {
            return Err(format!("pcie_width = {w}: expected 1, 2, 4, 8 or 16"));
        }
    }
    if let Some(l) = f.nvlink_down.iter().find(|l| **l >= 18) {
        return Err(format!("nvlink_down: link {l}: expected links 0 to 17"));
    }
    if let Some(l) = f.nvlink_miswired.iter().find(|l| **l >= 18) {
        return Err(format!("nvlink_miswired: link {l}: expected links 0 to 17"));
    }
    match (f.hang_at_s, &f.hang_kernel) {
        (Some(t), _) => time("hang_at_s", t)?,
        (None, Some(_)) => return Err("hang_kernel without hang_at_s".into()),
        (None, None) => {}
    }
    if let Some(b) = &f.bitflip {
        time("bitflip.at_s", b.at_s)?;
        if b.bit > 7 {
            return Err(format!("bitflip.bit = {}: expected 0 to 7", b.bit));
        }
        if b.nth_write == 0 {
            return Err("bitflip.nth_write = 0: writes count from 1".into());
        }
    }
    Ok(())
}

/// (domain, bus, device, function) of `DDDDDDDD:BB:DD.F`.
pub fn parse_bus_id(s: &str) -> Option<(u32, u32, u32, u32)> {
    let (domain, rest) = s.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let hex = |t: &str, max: u32| u32::from_str_radix(t, 16).ok().filter(|v| *v <= max);
    Some((
        hex(domain, u32::MAX)?,
        hex(bus, 0xff)?,
        hex(dev, 0x1f)?,
        hex(func, 7)?,
    ))
}

/// The 16 bytes of a UUID written as 32 hex digits (dashes allowed).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_node_has_two_hopper_class_gpus() {
        let c = Config::default();
        assert_eq!(c.gpus.len(), 2);
        assert_eq!(c.gpus[0].name, DEFAULT_NAME);
        assert_eq!(c.gpus[0].compute_capability, [9, 0]);
        assert_eq!(c.gpus[0].pci_bus_id, "00000000:41:00.0");
        assert_eq!(c.gpus[1].pci_bus_id, "00000000:42:00.0");
        assert_ne!(c.gpus[0].uuid, c.gpus[1].uuid);
    }

    #[test]
    fn overrides_apply_by_ordinal() {
        let c = Config::from_toml(
            "[node]\ngpus = 4\n[gpu]\nsms = 4\n[[gpus]]\nordinal = 2\nsms = 16\nname = \"other\"\n",
        )
        .unwrap();
        assert_eq!(c.gpus.len(), 4);
        assert_eq!(
            c.gpus.iter().map(|g| g.sms).collect::<Vec<_>>(),
            [4, 4, 16, 4]
        );
        assert_eq!(c.gpus[2].name, "other");
    }

    #[test]
    fn a_gpu_in_mig_mode_is_several_cuda_devices_on_one_bus() {
        let c = Config::from_toml(
            "[node]\ngpus = 2\n[[gpus]]\nordinal = 1\nfaults = { mig_instances = 2 }\n",
        )
        .unwrap();
        let d = c.cuda_devices();
        assert_eq!(d.len(), 3);
        assert_eq!(d[1].name, "vgpu Virtual Hopper MIG 4g.2gb");
        assert_eq!(d[1].pci_bus_id, d[2].pci_bus_id);
        assert_ne!(d[1].uuid, d[2].uuid);
        assert!(parse_uuid(&d[2].uuid).is_some());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, want) in [
            ("[node]\ngpus = 0\n", "expected 1 to 64"),
            ("[gpu]\nsms = 0\n", "sms = 0"),
            ("[gpu]\nsmz = 3\n", "unknown field"),
            ("[[gpus]]\nordinal = 5\n", "ordinal = 5"),
            ("[gpu]\npci_bus_id = \"nope\"\n", "pci_bus_id"),
            ("[gpu]\npci_bus_id = \"00000000:41:00.0\"\n", "two GPUs"),
            ("[gpu.timing]\nhbm_gbps = -1.0\n", "hbm_gbps"),
            ("[gpu]\nfaults = { xid = 0 }\n", "faults.xid = 0"),
            (
                "[gpu]\nfaults = { clocks_low = 0.8 }\n",
                "needs clocks_low_reason",
            ),
            (
                "[gpu]\nfaults = { clocks_low = 0.8, clocks_low_reason = \"power_brake\" }\n",
                "factor of 2",
            ),
            (
                "[gpu]\nfaults = { clocks_low = 0.4, clocks_low_reason = \"brownout\" }\n",
                "unknown variant",
            ),
            ("[gpu]\nfaults = { pcie_width = 3 }\n", "pcie_width"),
            ("[gpu]\nfaults = { nvlink_down = [18] }\n", "nvlink_down"),
            (
                "[node]\nnvswitch = true\n[gpu]\nfaults = { nvlink_miswired = [18] }\n",
                "nvlink_miswired",
            ),
            (
                "[gpu]\nfaults = { fabric_unhealthy = \"route_unhealthy\" }\n",
                "need an NVSwitch fabric",
            ),
            ("[gpu]\nfaults = { lost_at_s = -1.0 }\n", "lost_at_s"),
            (
                "[gpu]\nfaults = { hang_kernel = \"sha\" }\n",
                "hang_kernel without hang_at_s",
            ),
            (
                "[gpu]\nfaults = { bitflip = { offset = 0x100000000 } }\n",
                "past the end",
            ),
            (
                "[gpu]\nfaults = { bitflip = { offset = 64, bit = 8 } }\n",
                "bitflip.bit = 8",
            ),
            (
                "[gpu]\nfaults = { bitflip = { offset = 64, nth_write = 0 } }\n",
                "nth_write = 0",
            ),
        ] {
            let e = Config::from_toml(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}

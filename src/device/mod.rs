//! The one device abstraction every backend implements.
//!
//! A backend only *executes*: it owns device memory and runs one iteration of
//! a workload primitive when asked. Everything else (sizes, warm-up,
//! repetition, timing statistics and verification) lives in the workload
//! layer above (`src/workload`), shared by every backend, so that a backend
//! stays thin and a new one cannot forget to check its results.
//!
//! Each primitive is prepared once ([`Device::matmul`], [`Device::stream`],
//! [`Device::hasher`], [`Device::memtest`]), which allocates and fills the
//! inputs on the device from a seed, and then run many times. Inputs come from
//! the counter-based generator in [`crate::reference::gen`], so the host can
//! recompute any input element for verification without reading it back.
//!
//! Layer: above `reference`, `stats`, `error` and `telemetry`, the only modules
//! it may import: the inputs, patterns, expected values and job and result
//! types a backend shares with the workloads are in [`crate::reference`], below
//! both. It must not import `workload` or any layer above (tests/layers.rs
//! checks it).

pub mod cpu;
pub mod cuda;
pub mod sim;

use serde::{Deserialize, Serialize};

use crate::reference::hash::{HashJob, ScanResult};
use crate::reference::memtest::{MemErrors, Pattern};
use crate::reference::transfer::CopyCheck;

/// Which backend a device belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// NVIDIA GPUs through the CUDA driver (loaded at run time).
    Cuda,
    /// The host CPU, all cores, through rayon.
    Cpu,
    /// Simulated GPUs with a stated performance model, for tests and demos.
    Sim,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Cuda => "cuda",
            BackendKind::Cpu => "cpu",
            BackendKind::Sim => "sim",
        })
    }
}

/// Who a device is: what `kiln list` prints and every result file carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Index in kiln's device list (what `--devices` selects).
    pub index: usize,
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3" or the CPU model.
    pub name: String,
    /// Stable unique id where the backend has one (GPU UUID).
    pub uuid: Option<String>,
    /// Board serial number where the backend has one.
    pub serial: Option<String>,
    /// PCI bus id (domain:bus:device.function) where the device has one.
    pub pci_bus_id: Option<String>,
    /// PCI device id (e.g. 0x2330 for an H100 SXM5) where the device has one;
    /// it picks the baseline before the name does.
    #[serde(default)]
    pub pci_device_id: Option<u16>,
    /// Memory kiln may use on this device, in bytes.
    pub memory_bytes: u64,
    /// Number of parallel execution units (CPU threads, GPU SMs).
    pub compute_units: u32,
    /// The backend that drives it.
    pub backend: BackendKind,
    /// True for devices of the `sim` backend: their performance figures come
    /// from a model, not from hardware.
    pub simulated: bool,
}

/// A failure of the device or its driver while running a workload.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DeviceError {
    /// What the device or driver said.
    pub message: String,
    /// True when the device is gone (fell off the bus, lost by the driver):
    /// nothing more can run on it.
    pub lost: bool,
    /// True when the workload cannot run on this node for a reason that is
    /// not the device's fault (e.g. cuBLASLt is not installed): the workload
    /// is skipped with a note, and the device is judged on the rest.
    pub unsupported: bool,
    /// Set when the device cannot be tested because of the node's state,
    /// not because of the device (another process owns it, the fabric
    /// manager is down): the reason code. Its verdict is "could not test",
    /// never a reject.
    pub node_state: Option<&'static str>,
    /// The reason code, when the error says more than "lost" or "failed":
    /// `ecc_uncorrectable` when the driver reports an uncorrectable ECC
    /// error, `device_error` for a kernel fault that leaves the context
    /// unusable while the GPU is still there.
    pub code: Option<&'static str>,
}

impl DeviceError {
    /// The same error, with reason code `code`.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// A failure the device may survive.
    pub fn failed(message: impl Into<String>) -> Self {
        DeviceError {
            message: message.into(),
            lost: false,
            unsupported: false,
            node_state: None,
            code: None,
        }
    }

    /// The device cannot be tested because of the node's state (reason
    /// `code`, e.g. `gpu_busy`); nothing more is tried on it.
    pub fn node_state(code: &'static str, message: impl Into<String>) -> Self {
        DeviceError {
            message: message.into(),
            lost: false,
            unsupported: false,
            node_state: Some(code),
            code: None,
        }
    }

    /// The workload cannot run here (a library is missing); skip it.
    pub fn unsupported(message: impl Into<String>) -> Self {
        DeviceError {
            message: message.into(),
            lost: false,
            unsupported: true,
            node_state: None,
            code: None,
        }
    }

    /// The device is gone.
    pub fn lost(message: impl Into<String>) -> Self {
        DeviceError {
            message: message.into(),
            lost: true,
            unsupported: false,
            node_state: None,
            code: None,
        }
    }
}

/// Device time of an operation, in seconds. A plain f64 rather than a
/// `Duration`: simulated devices model times far below a nanosecond.
pub type Seconds = f64;

/// Result of a device operation.
pub type DeviceResult<T> = Result<T, DeviceError>;

/// The number format of a matrix multiply's inputs, as the metric names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE binary64 in, accumulate and out.
    Fp64,
    /// IEEE binary32 in, accumulate and out: true fp32, not TF32.
    Fp32,
    /// binary32 in and out, multiplied as TF32 (11 significant bits) on
    /// tensor cores, accumulated in fp32.
    Tf32,
    /// bfloat16 in, fp32 accumulate.
    Bf16,
    /// IEEE binary16 in, fp32 accumulate.
    Fp16,
    /// fp8 e4m3 in, fp32 accumulate, on GPUs that have fp8 tensor cores
    /// (compute capability 8.9 and later).
    Fp8,
}

impl Precision {
    /// Short lowercase name used in metric names ("fp32", "bf16").
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp64 => "fp64",
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Fp8 => "fp8",
        }
    }

    /// How the inputs are stored.
    pub fn input(self) -> Storage {
        match self {
            Precision::Fp64 => Storage::F64,
            Precision::Fp32 | Precision::Tf32 => Storage::F32,
            Precision::Bf16 => Storage::Bf16,
            Precision::Fp16 => Storage::F16,
            Precision::Fp8 => Storage::E4m3,
        }
    }
}

/// How one matrix element is stored in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    F64,
    F32,
    Bf16,
    F16,
    E4m3,
}

impl Storage {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Storage::F64 => 8,
            Storage::F32 => 4,
            Storage::Bf16 | Storage::F16 => 2,
            Storage::E4m3 => 1,
        }
    }

    /// Lowercase name ("bf16", "fp8 e4m3").
    pub fn name(self) -> &'static str {
        match self {
            Storage::F64 => "fp64",
            Storage::F32 => "fp32",
            Storage::Bf16 => "bf16",
            Storage::F16 => "fp16",
            Storage::E4m3 => "fp8 e4m3",
        }
    }

    /// The bits of `x` rounded to this format (to nearest even), zero-extended
    /// to u64: what a device-side checksum hashes.
    pub fn bits(self, x: f64) -> u64 {
        use crate::reference::numeric as nm;
        match self {
            Storage::F64 => x.to_bits(),
            Storage::F32 => u64::from((x as f32).to_bits()),
            Storage::Bf16 => u64::from(nm::bf16_bits(x as f32)),
            Storage::F16 => u64::from(nm::f16_bits(x as f32)),
            Storage::E4m3 => u64::from(nm::e4m3_bits(x as f32)),
        }
    }

    /// The value of stored bits.
    pub fn value(self, bits: u64) -> f64 {
        use crate::reference::numeric as nm;
        match self {
            Storage::F64 => f64::from_bits(bits),
            Storage::F32 => f64::from(f32::from_bits(bits as u32)),
            Storage::Bf16 => f64::from(nm::bf16_value(bits as u16)),
            Storage::F16 => f64::from(nm::f16_value(bits as u16)),
            Storage::E4m3 => f64::from(nm::e4m3_value(bits as u8)),
        }
    }

    /// `x` rounded to this format.
    pub fn round(self, x: f64) -> f64 {
        self.value(self.bits(x))
    }

    /// Unit roundoff: the largest relative error of rounding to nearest.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            Storage::F64 => f64::EPSILON / 2.0,
            Storage::F32 => f64::from(f32::EPSILON) / 2.0,
            Storage::Bf16 => 2f64.powi(-8),
            Storage::F16 => 2f64.powi(-11),
            Storage::E4m3 => 2f64.powi(-4),
        }
    }

    /// Largest absolute rounding error near zero (half the subnormal
    /// spacing), where the relative bound does not hold.
    pub fn underflow(self) -> f64 {
        match self {
            Storage::F64 => f64::MIN_POSITIVE,
            Storage::F32 => 2f64.powi(-150),
            Storage::Bf16 => 2f64.powi(-134),
            Storage::F16 => 2f64.powi(-25),
            Storage::E4m3 => 2f64.powi(-10),
        }
    }
}

/// Who computes a product: the vendor's library or kiln's own kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// cuBLASLt on a GPU (matrixmultiply on the CPU).
    Library,
    /// kiln's own tensor-core kernel (mma.sync, bf16/fp16 in, fp32
    /// accumulate and out): the matmul that runs where cuBLAS is missing.
    Mma,
}

/// One matrix multiply kiln measures: a precision and who computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MatmulVariant {
    /// Input format.
    pub precision: Precision,
    /// Library or kiln's kernel.
    pub engine: Engine,
}

impl MatmulVariant {
    /// A product by the library.
    pub const fn library(precision: Precision) -> Self {
        MatmulVariant {
            precision,
            engine: Engine::Library,
        }
    }

    /// A product by kiln's mma.sync kernel.
    pub const fn mma(precision: Precision) -> Self {
        MatmulVariant {
            precision,
            engine: Engine::Mma,
        }
    }

    /// Every variant a GPU runs, in run order (a GPU without fp8 tensor
    /// cores skips fp8 with a note).
    pub const GPU: [MatmulVariant; 8] = [
        MatmulVariant::library(Precision::Bf16),
        MatmulVariant::library(Precision::Fp16),
        MatmulVariant::library(Precision::Tf32),
        MatmulVariant::library(Precision::Fp8),
        MatmulVariant::library(Precision::Fp32),
        MatmulVariant::library(Precision::Fp64),
        MatmulVariant::mma(Precision::Bf16),
        MatmulVariant::mma(Precision::Fp16),
    ];

    /// The variants a CPU runs: the IEEE formats it has hardware for.
    pub const CPU: [MatmulVariant; 2] = [
        MatmulVariant::library(Precision::Fp32),
        MatmulVariant::library(Precision::Fp64),
    ];

    /// Name used in metric names: `fp32`, `bf16`, `mma_bf16`.
    pub fn name(self) -> String {
        match self.engine {
            Engine::Library => self.precision.name().to_string(),
            Engine::Mma => format!("mma_{}", self.precision.name()),
        }
    }

    /// True when the engine can compute this precision (kiln's kernel does
    /// bf16 and fp16 only).
    pub fn is_valid(self) -> bool {
        self.engine == Engine::Library
            || matches!(self.precision, Precision::Bf16 | Precision::Fp16)
    }

    /// How the output C is stored: what cuBLASLt is asked for (bf16 for bf16
    /// and fp8 inputs, as frameworks do; fp16 for fp16), fp32 from kiln's
    /// kernel.
    pub fn output(self) -> Storage {
        match (self.engine, self.precision) {
            (Engine::Mma, _) => Storage::F32,
            (_, Precision::Fp64) => Storage::F64,
            (_, Precision::Fp32 | Precision::Tf32) => Storage::F32,
            (_, Precision::Bf16 | Precision::Fp8) => Storage::Bf16,
            (_, Precision::Fp16) => Storage::F16,
        }
    }

    /// The arithmetic, in words, for the metric's "counted" line.
    pub fn arithmetic(self) -> String {
        let acc = match self.precision {
            Precision::Fp64 => "fp64",
            Precision::Tf32 => "tf32 multiply, fp32",
            _ => "fp32",
        };
        let who = match self.engine {
            Engine::Library => "library",
            Engine::Mma => "kiln mma.sync kernel",
        };
        format!(
            "{} in, {acc} accumulate, {} out ({who})",
            self.precision.input().name(),
            self.output().name()
        )
    }
}

/// A square matrix multiply C = A x B, inputs generated from `seed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatmulShape {
    /// Rows and columns of every matrix.
    pub n: usize,
    /// Formats and engine.
    pub variant: MatmulVariant,
    /// Seed of the input generator.
    pub seed: u64,
}

/// A prepared matrix multiply: inputs are on the device.
///
/// A and B are row-major, `A[i][k] = gen::matrix_value(seed, 0, i*n+k)` and
/// `B[k][j] = gen::matrix_value(seed, 1, k*n+j)`, rounded once to the input
/// format (to nearest even). C is in the variant's output format.
pub trait MatmulOp {
    /// Runs one product C = A x B and returns the time the device took.
    fn run(&mut self) -> DeviceResult<Seconds>;
    /// Reads the elements `C[i][j]` at the given (row, column) positions.
    fn read(&mut self, positions: &[(usize, usize)]) -> DeviceResult<Vec<f64>>;
    /// A hash of every bit of C, computed on the device, so that outputs can be
    /// compared across iterations and devices without copying them.
    fn checksum(&mut self) -> DeviceResult<u64>;
}

/// The four bandwidth kernels, over three buffers a, b and c of `len` f64
/// elements. Bytes are counted as read + written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKernel {
    /// `sum(a)`: reads a (8 bytes per element).
    Read,
    /// `b[i] = 2.0`: writes b (8 bytes per element).
    Write,
    /// `c[i] = a[i]`: reads a, writes c (16 bytes per element).
    Copy,
    /// `b[i] = a[i] + 3.0 * c[i]`: reads a and c, writes b (24 bytes per element).
    Triad,
}

impl StreamKernel {
    /// All kernels, in the order the workload runs them (each one's output
    /// feeds the next one's verification).
    pub const ALL: [StreamKernel; 4] = [
        StreamKernel::Read,
        StreamKernel::Write,
        StreamKernel::Copy,
        StreamKernel::Triad,
    ];

    /// Lowercase name used in metric names.
    pub fn name(self) -> &'static str {
        match self {
            StreamKernel::Read => "read",
            StreamKernel::Write => "write",
            StreamKernel::Copy => "copy",
            StreamKernel::Triad => "triad",
        }
    }

    /// Bytes moved per element, counting bytes read + bytes written.
    pub fn bytes_per_element(self) -> u64 {
        match self {
            StreamKernel::Read | StreamKernel::Write => 8,
            StreamKernel::Copy => 16,
            StreamKernel::Triad => 24,
        }
    }
}

/// One of the three bandwidth buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamBuffer {
    A,
    B,
    C,
}

/// Sum and position-mixed hash of a buffer, computed on the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BufferDigest {
    /// Sum of all elements. Elements are small integers, so it is exact.
    pub sum: f64,
    /// `reference::gen::digest_term`, summed, of every element's bits with its index.
    pub hash: u64,
}

/// Prepared bandwidth buffers: `a[i] = gen::stream_value(seed, i)`, b and c
/// zero.
pub trait StreamOp {
    /// Elements per buffer.
    fn len(&self) -> usize;
    /// True when the buffers are empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Runs one pass of `kernel`; returns the device time and, for
    /// [`StreamKernel::Read`], the sum it computed.
    fn run(&mut self, kernel: StreamKernel) -> DeviceResult<(Seconds, Option<f64>)>;
    /// Digest of a whole buffer.
    fn digest(&mut self, buffer: StreamBuffer) -> DeviceResult<BufferDigest>;
    /// Reads the elements at `indices` of a buffer.
    fn read(&mut self, buffer: StreamBuffer, indices: &[usize]) -> DeviceResult<Vec<f64>>;
}

/// A prepared double SHA-256 nonce search.
pub trait HashOp {
    /// Hashes nonces `start .. start + count` and returns what was found and
    /// the device time.
    fn scan(&mut self, start: u32, count: u32) -> DeviceResult<(ScanResult, Seconds)>;
}

/// A prepared memory-test buffer of 64-bit words.
pub trait MemtestOp {
    /// Words in the buffer.
    fn words(&self) -> usize;
    /// Writes `pattern` to every word.
    fn fill(&mut self, pattern: Pattern) -> DeviceResult<Seconds>;
    /// Checks every word against `pattern`; keeps the first `keep` bad words.
    fn verify(&mut self, pattern: Pattern, keep: usize) -> DeviceResult<(MemErrors, Seconds)>;
    /// Moving inversions step: checks each word against `expect` and then
    /// writes `next` to it, walking the buffer upward or downward.
    fn verify_and_write(
        &mut self,
        expect: Pattern,
        next: Pattern,
        descending: bool,
        keep: usize,
    ) -> DeviceResult<(MemErrors, Seconds)>;
}

/// Which way a host/device copy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Pinned host memory to device memory.
    HostToDevice,
    /// Device memory to pinned host memory.
    DeviceToHost,
}

impl Direction {
    /// Both directions, in run order.
    pub const ALL: [Direction; 2] = [Direction::HostToDevice, Direction::DeviceToHost];

    /// Metric name: `h2d` or `d2h`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::HostToDevice => "h2d",
            Direction::DeviceToHost => "d2h",
        }
    }
}

/// Prepared host/device copies of `words` 64-bit words each way.
///
/// The host-to-device source is pinned host memory holding
/// `reference::transfer::word(seed, H2D_STREAM, i)`; the device-to-host
/// source is device memory holding `word(seed, D2H_STREAM, i)`.
pub trait TransferOp {
    /// Words per copy.
    fn words(&self) -> usize;
    /// One copy of every word in `dir`; returns the device time.
    fn run(&mut self, dir: Direction) -> DeviceResult<Seconds>;
    /// Checks the destination of the last copy in `dir` against the source
    /// pattern.
    fn check(&mut self, dir: Direction) -> DeviceResult<CopyCheck>;
}

/// What carries the copies between two devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerLink {
    /// NVLink, directly or through NVSwitches (NVML's P2P status over
    /// NVLink is OK for the pair).
    Nvlink,
    /// PCIe peer-to-peer (direct access, but not over NVLink).
    Pcie,
    /// Not known (no NVML to ask).
    Unknown,
}

impl PeerLink {
    /// The name in metric names (`p2p_nvlink`, `p2p_pcie`) and on screen.
    pub fn name(self) -> &'static str {
        match self {
            PeerLink::Nvlink => "nvlink",
            PeerLink::Pcie => "pcie",
            PeerLink::Unknown => "unknown link",
        }
    }
}

/// Prepared copies from this device to its peers, `words` 64-bit words
/// each, source `reference::transfer::word(seed, P2P_STREAM, i)`.
pub trait PeerOp {
    /// The peers this device can copy to directly (kiln indices), and for
    /// each peer it cannot, why.
    fn targets(&self) -> (Vec<usize>, Vec<(usize, String)>);
    /// One copy to `target`; returns the device time.
    fn run(&mut self, target: usize) -> DeviceResult<Seconds>;
    /// Checks what the last copy left on `target`.
    fn check(&mut self, target: usize) -> DeviceResult<CopyCheck>;
    /// What carries the copies to `target`, one of [`PeerOp::targets`].
    fn link(&self, target: usize) -> PeerLink {
        let _ = target;
        PeerLink::Unknown
    }
}

/// A device kiln can test. One per GPU; the whole host for the CPU backend.
///
/// Every method may be called from the device's own runner thread only.
pub trait Device: Send {
    /// Identity of the device.
    fn info(&self) -> &DeviceInfo;
    /// Allocates and fills the inputs of a matrix multiply.
    fn matmul(&mut self, shape: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>>;
    /// Allocates and fills the inputs of the power-pulse GEMM, which the
    /// pulse workload runs in bursts with idle gaps between them. The
    /// default is [`Device::matmul`]; the simulated backend tells the
    /// phases apart (its pulse faults act here only).
    fn pulse(&mut self, shape: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>> {
        self.matmul(shape)
    }
    /// Allocates the three bandwidth buffers of `len` f64 elements.
    fn stream(&mut self, len: usize, seed: u64) -> DeviceResult<Box<dyn StreamOp + '_>>;
    /// Prepares a double SHA-256 nonce search.
    fn hasher(&mut self, job: &HashJob) -> DeviceResult<Box<dyn HashOp + '_>>;
    /// Allocates a memory-test buffer of `words` 64-bit words.
    fn memtest(&mut self, words: usize) -> DeviceResult<Box<dyn MemtestOp + '_>>;
    /// Bytes the memory test may take now: the device's free memory less a
    /// safety margin. `None` where the workload's own size stands (CPU,
    /// sim).
    fn memtest_capacity(&mut self) -> Option<u64> {
        None
    }
    /// Allocates pinned host memory and device memory for host/device
    /// copies of `words` 64-bit words. Devices without a host link (the CPU)
    /// answer [`DeviceError::unsupported`].
    fn transfer(&mut self, words: usize, seed: u64) -> DeviceResult<Box<dyn TransferOp + '_>> {
        let _ = (words, seed);
        Err(DeviceError::unsupported(format!(
            "{} has no host-device link to measure",
            self.info().name
        )))
    }
    /// Prepares copies of `words` words to each of `peers` (kiln indices of
    /// the other devices in the run). Devices without peer links answer
    /// [`DeviceError::unsupported`].
    fn peer(
        &mut self,
        words: usize,
        seed: u64,
        peers: &[usize],
    ) -> DeviceResult<Box<dyn PeerOp + '_>> {
        let _ = (words, seed, peers);
        Err(DeviceError::unsupported(format!(
            "{} has no peer devices to copy to",
            self.info().name
        )))
    }
    /// The run starts now: the instant every time of the run (the journal's
    /// `at_s`, a simulated fault's `@START`) counts from.
    fn run_started(&mut self, _at: std::time::Instant) {}

    /// Whether the device is still there and answering, checked at the end
    /// of the run and of every burn-in cycle, after its last workload: a
    /// device lost or failing then must not be accepted. The default has
    /// nothing to check.
    fn health(&mut self) -> DeviceResult<()> {
        Ok(())
    }

    /// Set when the device cannot be tested at all: an NVIDIA GPU whose
    /// driver is missing or fails (a node state), or one the working
    /// driver did not bring up (lost): the error every operation answers.
    /// `kiln check` reports it, `kiln selftest` skips the device, and no
    /// peer copies to it.
    fn untestable(&self) -> Option<DeviceError> {
        None
    }

    /// The device's sensors, when it has any.
    fn sensor(&self) -> Option<std::sync::Arc<dyn crate::telemetry::Sensor>> {
        None
    }
    /// Which sensors exist and which are absent, in words.
    fn sensor_inventory(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Which backend the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// CUDA when a GPU is usable; NVIDIA GPUs on the PCI bus that CUDA
    /// cannot use are "could not test" (exit 5); the CPU only on a node with
    /// no NVIDIA GPU.
    Auto,
    /// NVIDIA GPUs through CUDA (those it cannot use: "could not test");
    /// fails (exit 3) on a node with no NVIDIA GPU.
    Cuda,
    /// The host CPU.
    Cpu,
    /// Simulated GPUs (see --sim-gpus).
    Sim,
}

/// Options of the simulated backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimOptions {
    /// Number of simulated GPUs.
    pub gpus: usize,
    /// Seed of the performance noise model.
    pub seed: u64,
    /// Faults to inject (`--inject`).
    pub faults: Vec<sim::Injection>,
    /// Wall time each simulated workload takes at least (burn-in).
    pub pace: std::time::Duration,
    /// The node the GPUs belong to (`--node-name`, by default the host
    /// name): it seeds their serials and UUIDs, so simulated nodes differ
    /// as real ones do. Empty: kiln's original identities.
    pub node: String,
}

/// The devices found for a backend choice, with a note when `auto` fell back.
pub struct Discovery {
    /// The backend that was picked.
    pub backend: BackendKind,
    /// Every device of that backend, in index order.
    pub devices: Vec<Box<dyn Device>>,
    /// Why `auto` did not pick CUDA, when it did not; or which GPUs were
    /// left out (MIG mode).
    pub note: Option<String>,
}

/// Finds the devices of a backend.
///
/// `auto` picks CUDA when a GPU is usable and otherwise the CPU, saying why in
/// [`Discovery::note`]; but a node whose PCI bus shows NVIDIA GPUs that CUDA
/// cannot use (driver missing or failing) is a GPU node: its GPUs are the
/// devices, each untestable ([`cuda::unusable`]), never its CPU. Asking for
/// CUDA explicitly when no GPU is there at all is an error (exit code 3).
pub fn discover(choice: BackendChoice, sim: &SimOptions) -> crate::error::Result<Discovery> {
    match choice {
        BackendChoice::Cpu => Ok(Discovery {
            backend: BackendKind::Cpu,
            devices: vec![Box::new(cpu::CpuDevice::new(0))],
            note: None,
        }),
        BackendChoice::Sim => Ok(Discovery {
            backend: BackendKind::Sim,
            devices: sim::devices(sim)
                .into_iter()
                .map(|d| Box::new(d) as Box<dyn Device>)
                .collect(),
            note: None,
        }),
        BackendChoice::Cuda => match cuda::probe() {
            Ok(cuda::Probed { devices, note, .. }) => Ok(Discovery {
                backend: BackendKind::Cuda,
                devices,
                note,
            }),
            Err(why) => {
                let nvml = match crate::telemetry::nvml::open() {
                    Ok(_) => "NVML is available".to_string(),
                    Err(e) => e.split(';').next().unwrap_or(&e).to_string(),
                };
                Err(crate::error::KilnError::NoDevice(format!(
                    "CUDA backend unavailable: {why}; {nvml}; {}",
                    on_the_bus()
                )))
            }
        },
        BackendChoice::Auto => match cuda::probe() {
            Ok(cuda::Probed {
                devices,
                note,
                unusable,
            }) if !devices.is_empty() => Ok(Discovery {
                backend: BackendKind::Cuda,
                devices,
                note: match unusable {
                    // Say why auto did not test the CPU instead.
                    Some(_) => note.map(|n| {
                        format!("{n}; not testing the CPU instead: the PCI bus shows NVIDIA GPUs, so this is a GPU node")
                    }),
                    None => note,
                },
            }),
            // A GPU node whose state stops the test (fabric manager down,
            // every GPU in MIG mode) is not a CPU node: testing its CPU
            // instead would report a pass for a node that cannot run GPU
            // work.
            Err(why) if why.node_state.is_some() => Err(crate::error::KilnError::NoDevice(
                format!("CUDA backend unavailable: {why}"),
            )),
            Ok(_) => Ok(Discovery {
                backend: BackendKind::Cpu,
                devices: vec![Box::new(cpu::CpuDevice::new(0))],
                note: Some("no CUDA GPU found; testing the CPU instead".into()),
            }),
            Err(why) => Ok(Discovery {
                backend: BackendKind::Cpu,
                devices: vec![Box::new(cpu::CpuDevice::new(0))],
                note: Some(format!(
                    "CUDA unavailable ({why}) and {}; testing the CPU instead",
                    on_the_bus()
                )),
            }),
        },
    }
}

/// What the PCI bus shows when CUDA found nothing to test: no NVIDIA GPU,
/// or GPUs that `CUDA_VISIBLE_DEVICES` hides.
fn on_the_bus() -> String {
    match crate::telemetry::pci::nvidia_gpus().len() {
        0 => "the PCI bus shows no NVIDIA GPU".into(),
        n => format!("the PCI bus shows {n} NVIDIA GPU(s), which CUDA_VISIBLE_DEVICES hides"),
    }
}

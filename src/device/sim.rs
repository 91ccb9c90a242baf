//! The simulated backend: N GPUs that exist only in software.
//!
//! It exists to test the multi-GPU pipeline, the verdicts and the reports on
//! any machine, and to demo kiln. Every verification runs for real: each op
//! computes its workload with the CPU backend's code on small data, so that a
//! corrupted output is caught by the same checks as on hardware. Only the
//! *time* is modelled, and every figure it yields is marked `simulated`.
//!
//! The performance model: time = work / (nominal rate x device factor x
//! noise), where the nominal rates are those of an H100 SXM5 80GB (see
//! [`NOMINAL`]), the device factor is a fixed per-device offset within
//! +-1 % (silicon and cooling differ between boards), and the noise is drawn
//! per iteration from a seeded approximately normal distribution with a
//! standard deviation of 0.5 %. The same `--seed` gives the same figures.

use crate::device::cpu::{CpuMatmul, CpuMemtest, CpuStream};
use crate::device::{
    BackendKind, BufferDigest, Device, DeviceInfo, DeviceResult, HashOp, MatmulOp, MatmulShape,
    MemtestOp, Precision, Seconds, SimOptions, StreamBuffer, StreamKernel, StreamOp,
};
use crate::workload::gen;
use crate::workload::hash::{self, HashJob, ScanResult};
use crate::workload::memtest::{MemErrors, Pattern};

/// Nominal rates of a simulated GPU, each with where the figure comes from.
#[derive(Debug, Clone, Copy)]
pub struct Nominal {
    /// FP32 GEMM, GFLOP/s. H100 SXM5 datasheet: 67 TFLOP/s FP32 peak; SIMT
    /// SGEMM reaches about 75 % of it.
    pub matmul_f32: f64,
    /// FP64 GEMM, GFLOP/s. Datasheet: 67 TFLOP/s FP64 tensor core peak; about
    /// 80 % of it in DGEMM.
    pub matmul_f64: f64,
    /// HBM3 read, GB/s. Datasheet 3.35 TB/s; about 95 % reachable.
    pub bw_read: f64,
    /// HBM3 write, GB/s (about 90 % of 3.35 TB/s).
    pub bw_write: f64,
    /// HBM3 copy, bytes read + written, GB/s (about 90 %).
    pub bw_copy: f64,
    /// HBM3 triad, bytes read + written, GB/s (about 91 %).
    pub bw_triad: f64,
    /// Double SHA-256 nonces, MH/s: about 10 G SHA-256 compressions/s.
    pub sha256d: f64,
    /// Memory test pattern traffic, GB/s (about half of copy bandwidth).
    pub memtest: f64,
}

/// The model of every simulated GPU: an H100 SXM5 80GB HBM3.
pub const NOMINAL: Nominal = Nominal {
    matmul_f32: 51_000.0,
    matmul_f64: 53_000.0,
    bw_read: 3_200.0,
    bw_write: 3_000.0,
    bw_copy: 3_000.0,
    bw_triad: 3_050.0,
    sha256d: 5_000.0,
    memtest: 1_500.0,
};

/// PCI bus ids of the eight GPUs of an HGX H100 board, in order.
const HGX_BUS: [u8; 8] = [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb];

/// The simulated GPUs for `opts`.
pub fn devices(opts: &SimOptions) -> Vec<SimDevice> {
    (0..opts.gpus)
        .map(|i| SimDevice::new(i, opts.seed))
        .collect()
}

/// One simulated GPU.
pub struct SimDevice {
    info: DeviceInfo,
    model: Model,
}

/// Seeded timing model of one device.
#[derive(Debug, Clone)]
struct Model {
    seed: u64,
    counter: u64,
    device_factor: f64,
}

impl Model {
    fn uniform(&mut self) -> f64 {
        self.counter += 1;
        (gen::random_u64(self.seed, 21, self.counter) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Device time of `work` units at `nominal` units per second.
    fn time(&mut self, work: f64, nominal: f64) -> Seconds {
        // Irwin-Hall: the sum of 12 uniforms minus 6 has mean 0 and sd 1.
        let z: f64 = (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0;
        let rate = nominal * self.device_factor * (1.0 + 0.005 * z);
        work / rate.max(1e-9)
    }
}

impl SimDevice {
    /// Simulated GPU `index`; `seed` drives its noise.
    pub fn new(index: usize, seed: u64) -> Self {
        let id = gen::random_u64(0x5151, 1, index as u64);
        let id2 = gen::random_u64(0x5151, 2, index as u64);
        let uuid = format!(
            "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            id >> 32,
            (id >> 16) & 0xffff,
            id & 0xffff,
            id2 >> 48,
            id2 & 0xffff_ffff_ffff
        );
        let bus = HGX_BUS.get(index).map_or_else(
            || format!("00000001:{:02x}:00.0", index),
            |b| format!("00000000:{b:02x}:00.0"),
        );
        let mut model = Model {
            seed: gen::mix64(seed ^ (index as u64).wrapping_mul(gen::GOLDEN)),
            counter: 0,
            device_factor: 1.0,
        };
        model.device_factor = 1.0 + 0.02 * (model.uniform() - 0.5);
        SimDevice {
            info: DeviceInfo {
                index,
                name: "Simulated H100 80GB HBM3".into(),
                uuid: Some(uuid),
                serial: Some(format!("SIM{:010}", id2 % 10_000_000_000)),
                pci_bus_id: Some(bus),
                memory_bytes: 80 << 30,
                compute_units: 132,
                backend: BackendKind::Sim,
                simulated: true,
            },
            model,
        }
    }
}

impl Device for SimDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn matmul(&mut self, shape: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>> {
        let nominal = match shape.precision {
            Precision::F32 => NOMINAL.matmul_f32,
            Precision::F64 => NOMINAL.matmul_f64,
        };
        Ok(Box::new(SimMatmul {
            inner: CpuMatmul::new(shape),
            model: &mut self.model,
            nominal_gflops: nominal,
        }))
    }

    fn stream(&mut self, len: usize, seed: u64) -> DeviceResult<Box<dyn StreamOp + '_>> {
        Ok(Box::new(SimStream {
            inner: CpuStream::new(len, seed),
            model: &mut self.model,
        }))
    }

    fn hasher(&mut self, job: &HashJob) -> DeviceResult<Box<dyn HashOp + '_>> {
        Ok(Box::new(SimHash {
            job: job.clone(),
            mid: hash::midstate(&job.header),
            model: &mut self.model,
        }))
    }

    fn memtest(&mut self, words: usize) -> DeviceResult<Box<dyn MemtestOp + '_>> {
        Ok(Box::new(SimMemtest {
            inner: CpuMemtest::new(words),
            model: &mut self.model,
        }))
    }
}

struct SimMatmul<'a> {
    inner: CpuMatmul,
    model: &'a mut Model,
    nominal_gflops: f64,
}

impl MatmulOp for SimMatmul<'_> {
    fn run(&mut self) -> DeviceResult<Seconds> {
        self.inner.compute();
        let flops = 2.0 * (self.inner.n() as f64).powi(3);
        Ok(self.model.time(flops, self.nominal_gflops * 1e9))
    }

    fn read(&mut self, positions: &[(usize, usize)]) -> DeviceResult<Vec<f64>> {
        self.inner.read(positions)
    }

    fn checksum(&mut self) -> DeviceResult<u64> {
        self.inner.checksum()
    }
}

struct SimStream<'a> {
    inner: CpuStream,
    model: &'a mut Model,
}

impl StreamOp for SimStream<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn run(&mut self, kernel: StreamKernel) -> DeviceResult<(Seconds, Option<f64>)> {
        let sum = self.inner.pass(kernel);
        let nominal = match kernel {
            StreamKernel::Read => NOMINAL.bw_read,
            StreamKernel::Write => NOMINAL.bw_write,
            StreamKernel::Copy => NOMINAL.bw_copy,
            StreamKernel::Triad => NOMINAL.bw_triad,
        };
        let bytes = kernel.bytes_per_element() as f64 * self.inner.len() as f64;
        Ok((self.model.time(bytes, nominal * 1e9), sum))
    }

    fn digest(&mut self, buffer: StreamBuffer) -> DeviceResult<BufferDigest> {
        self.inner.digest(buffer)
    }

    fn read(&mut self, buffer: StreamBuffer, indices: &[usize]) -> DeviceResult<Vec<f64>> {
        StreamOp::read(&mut self.inner, buffer, indices)
    }
}

struct SimHash<'a> {
    job: HashJob,
    mid: hash::Midstate,
    model: &'a mut Model,
}

impl HashOp for SimHash<'_> {
    fn scan(&mut self, start: u32, count: u32) -> DeviceResult<(ScanResult, Seconds)> {
        let r = hash::scan_range(&self.job, &self.mid, start, count);
        let t = self.model.time(r.nonces as f64, NOMINAL.sha256d * 1e6);
        Ok((r, t))
    }
}

struct SimMemtest<'a> {
    inner: CpuMemtest,
    model: &'a mut Model,
}

impl SimMemtest<'_> {
    fn time(&mut self, passes: f64) -> Seconds {
        let bytes = passes * self.inner.words() as f64 * 8.0;
        self.model.time(bytes, NOMINAL.memtest * 1e9)
    }
}

impl MemtestOp for SimMemtest<'_> {
    fn words(&self) -> usize {
        self.inner.words()
    }

    fn fill(&mut self, pattern: Pattern) -> DeviceResult<Seconds> {
        self.inner.fill(pattern)?;
        Ok(self.time(1.0))
    }

    fn verify(&mut self, pattern: Pattern, keep: usize) -> DeviceResult<(MemErrors, Seconds)> {
        let (e, _) = self.inner.verify(pattern, keep)?;
        Ok((e, self.time(1.0)))
    }

    fn verify_and_write(
        &mut self,
        expect: Pattern,
        next: Pattern,
        descending: bool,
        keep: usize,
    ) -> DeviceResult<(MemErrors, Seconds)> {
        let (e, _) = self
            .inner
            .verify_and_write(expect, next, descending, keep)?;
        Ok((e, self.time(2.0)))
    }
}

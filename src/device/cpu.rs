//! The CPU backend: the whole host as one device, every core through rayon.
//!
//! It is kiln's reference implementation and the default when no GPU is
//! usable. The op types are public so that the simulated backend can reuse
//! them on small data and so that tests can corrupt an output and prove the
//! shared verification catches it.

use std::time::Instant;

use rayon::prelude::*;

use crate::device::{
    BackendKind, BufferDigest, Device, DeviceInfo, DeviceResult, HashOp, MatmulOp, MatmulShape,
    MatmulVariant, MemtestOp, Precision, Seconds, StreamBuffer, StreamKernel, StreamOp,
};
use crate::reference::hash::{self, HashJob, ScanResult};
use crate::reference::matmul::{a_value, b_value};
use crate::reference::memtest::{self, MemErrors, Pattern};
use crate::reference::{gen, numeric};

/// Elements per rayon task in the bandwidth kernels (512 KiB of f64).
const CHUNK: usize = 1 << 16;

/// The host CPU.
pub struct CpuDevice {
    info: DeviceInfo,
    sensor: std::sync::Arc<crate::telemetry::host::HostSensor>,
}

impl CpuDevice {
    /// The host CPU as device `index`.
    pub fn new(index: usize) -> Self {
        let name = cpu_model_name().unwrap_or_else(|| "unknown CPU".to_string());
        CpuDevice {
            info: DeviceInfo {
                index,
                name,
                uuid: None,
                serial: None,
                pci_bus_id: None,
                pci_device_id: None,
                memory_bytes: host_memory_bytes().unwrap_or(0),
                compute_units: rayon::current_num_threads() as u32,
                backend: BackendKind::Cpu,
                simulated: false,
            },
            sensor: std::sync::Arc::new(crate::telemetry::host::HostSensor::new()),
        }
    }
}

fn cpu_model_name() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Memory the host has available now (MemAvailable), in bytes.
fn host_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Device for CpuDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn matmul(&mut self, shape: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>> {
        if !MatmulVariant::CPU.contains(&shape.variant) {
            return Err(crate::device::DeviceError::unsupported(format!(
                "the CPU has no {} matmul hardware (it runs fp32 and fp64)",
                shape.variant.name()
            )));
        }
        Ok(Box::new(CpuMatmul::new(shape)))
    }

    fn stream(&mut self, len: usize, seed: u64) -> DeviceResult<Box<dyn StreamOp + '_>> {
        Ok(Box::new(CpuStream::new(len, seed)))
    }

    fn hasher(&mut self, job: &HashJob) -> DeviceResult<Box<dyn HashOp + '_>> {
        Ok(Box::new(CpuHash { job: job.clone() }))
    }

    fn memtest(&mut self, words: usize) -> DeviceResult<Box<dyn MemtestOp + '_>> {
        Ok(Box::new(CpuMemtest::new(words)))
    }

    fn sensor(&self) -> Option<std::sync::Arc<dyn crate::telemetry::Sensor>> {
        Some(self.sensor.clone())
    }

    fn sensor_inventory(&self) -> Vec<String> {
        self.sensor.inventory()
    }
}

enum Matrices {
    F32 {
        a: Vec<f32>,
        b: Vec<f32>,
        c: Vec<f32>,
    },
    F64 {
        a: Vec<f64>,
        b: Vec<f64>,
        c: Vec<f64>,
    },
}

/// Rows of C per parallel block: an even share per thread, at least one
/// row (and at least 1 so that chunks are never empty).
pub fn row_block(n: usize, threads: usize) -> usize {
    n.div_ceil(threads.max(1)).max(1)
}

/// Runs `gemm(rows, a, b, c)` on each block of `rows` rows of C (n x n,
/// row-major) in parallel, with the matching rows of A and all of B.
fn by_row_blocks<T: Send + Sync>(
    a: &[T],
    b: &[T],
    c: &mut [T],
    n: usize,
    rows: usize,
    gemm: impl Fn(usize, *const T, *const T, *mut T) + Sync,
) {
    c.par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(p, block)| {
            let r = block.len() / n;
            let a = &a[p * rows * n..];
            debug_assert!(a.len() >= r * n && b.len() >= n * n);
            gemm(r, a.as_ptr(), b.as_ptr(), block.as_mut_ptr());
        });
}

/// A matrix multiply on the host, through the `matrixmultiply` crate.
///
/// fp64 and fp32 are native. The narrow formats a CPU has no hardware for
/// (tf32, bf16, fp16, fp8, and kiln's mma kernel) are emulated, for the
/// simulated GPUs and for tests: inputs rounded to the format (all exact in
/// f32), an fp32 product, and the output rounded to the variant's output
/// format when it is read or checksummed, which gives the bits a GPU
/// writes.
pub struct CpuMatmul {
    n: usize,
    variant: MatmulVariant,
    m: Matrices,
}

fn generate<T: Send>(n: usize, f: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    (0..n * n)
        .into_par_iter()
        .map(|x| f(x / n, x % n))
        .collect()
}

impl CpuMatmul {
    /// Allocates and fills A and B from the shape's seed; C starts at zero.
    pub fn new(shape: MatmulShape) -> Self {
        let MatmulShape { n, seed, variant } = shape;
        let m = match variant.precision {
            Precision::Fp64 => Matrices::F64 {
                a: generate(n, |i, k| a_value(seed, n, i, k)),
                b: generate(n, |k, j| b_value(seed, n, k, j)),
                c: vec![0.0; n * n],
            },
            p => {
                let input = p.input();
                let round = move |x: f64| -> f32 {
                    let x = input.round(x) as f32;
                    if p == Precision::Tf32 {
                        numeric::tf32_round(x)
                    } else {
                        x
                    }
                };
                Matrices::F32 {
                    a: generate(n, |i, k| round(a_value(seed, n, i, k))),
                    b: generate(n, |k, j| round(b_value(seed, n, k, j))),
                    c: vec![0.0; n * n],
                }
            }
        };
        CpuMatmul { n, variant, m }
    }
    /// Runs the product and returns the wall time it took.
    pub fn compute(&mut self) -> Seconds {
        let n = self.n;
        let start = Instant::now();
        if n == 0 {
            return start.elapsed().as_secs_f64();
        }
        // One block of rows of C per rayon thread, each a single-threaded
        // matrixmultiply call over those rows of A and all of B: on the
        // 2-vCPU reference VM this beat matrixmultiply's own threading by
        // about 8 % (scripts/compare-cpu.sh, BENCHMARKS.md).
        let rows = row_block(n, rayon::current_num_threads());
        match &mut self.m {
            // SAFETY (both): each call gets r rows of A from the block's first
            // row on, all n*n of B and the block's r*n elements of C, all
            // row-major with row stride n and column stride 1, as passed.
            Matrices::F32 { a, b, c } => by_row_blocks(a, b, c, n, rows, |r, a, b, c| unsafe {
                matrixmultiply::sgemm(
                    r, n, n, 1.0, a, n as isize, 1, b, n as isize, 1, 0.0, c, n as isize, 1,
                )
            }),
            Matrices::F64 { a, b, c } => by_row_blocks(a, b, c, n, rows, |r, a, b, c| unsafe {
                matrixmultiply::dgemm(
                    r, n, n, 1.0, a, n as isize, 1, b, n as isize, 1, 0.0, c, n as isize, 1,
                )
            }),
        }
        start.elapsed().as_secs_f64()
    }

    /// Flips bit `bit` of output element `index` (fault injection and tests).
    pub fn flip_output_bit(&mut self, index: usize, bit: u32) {
        match &mut self.m {
            Matrices::F32 { c, .. } => {
                if let Some(x) = c.get_mut(index) {
                    *x = f32::from_bits(x.to_bits() ^ (1 << (bit % 32)));
                }
            }
            Matrices::F64 { c, .. } => {
                if let Some(x) = c.get_mut(index) {
                    *x = f64::from_bits(x.to_bits() ^ (1 << (bit % 64)));
                }
            }
        }
    }

    /// Matrix size.
    pub fn n(&self) -> usize {
        self.n
    }
}

impl MatmulOp for CpuMatmul {
    fn run(&mut self) -> DeviceResult<Seconds> {
        Ok(self.compute())
    }

    fn read(&mut self, positions: &[(usize, usize)]) -> DeviceResult<Vec<f64>> {
        let n = self.n;
        let out = self.variant.output();
        let get = |(i, j): (usize, usize)| -> f64 {
            let k = i.checked_mul(n).and_then(|x| x.checked_add(j));
            match &self.m {
                Matrices::F32 { c, .. } => k
                    .and_then(|k| c.get(k))
                    .map_or(f64::NAN, |&x| out.round(f64::from(x))),
                Matrices::F64 { c, .. } => k.and_then(|k| c.get(k)).copied().unwrap_or(f64::NAN),
            }
        };
        Ok(positions.iter().map(|&p| get(p)).collect())
    }

    fn checksum(&mut self) -> DeviceResult<u64> {
        let out = self.variant.output();
        Ok(match &self.m {
            Matrices::F32 { c, .. } => c
                .par_iter()
                .enumerate()
                .map(|(i, &x)| gen::digest_term(i as u64, out.bits(f64::from(x))))
                .reduce(|| 0, u64::wrapping_add),
            Matrices::F64 { c, .. } => c
                .par_iter()
                .enumerate()
                .map(|(i, x)| gen::digest_term(i as u64, x.to_bits()))
                .reduce(|| 0, u64::wrapping_add),
        })
    }
}

/// The three bandwidth buffers on the host.
pub struct CpuStream {
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
}

impl CpuStream {
    /// Allocates the buffers, touching every page: a from the generator, b and
    /// c zero.
    pub fn new(len: usize, seed: u64) -> Self {
        let mut a = vec![0.0; len];
        a.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, ch)| {
            let base = (ci * CHUNK) as u64;
            for (k, x) in ch.iter_mut().enumerate() {
                *x = gen::stream_value(seed, base + k as u64);
            }
        });
        let mut b = vec![0.0; len];
        let mut c = vec![0.0; len];
        b.par_chunks_mut(CHUNK).for_each(|ch| ch.fill(0.0));
        c.par_chunks_mut(CHUNK).for_each(|ch| ch.fill(0.0));
        CpuStream { a, b, c }
    }

    /// One buffer, for fault injection and tests.
    pub fn buffer_mut(&mut self, which: StreamBuffer) -> &mut [f64] {
        match which {
            StreamBuffer::A => &mut self.a,
            StreamBuffer::B => &mut self.b,
            StreamBuffer::C => &mut self.c,
        }
    }

    fn buffer(&self, which: StreamBuffer) -> &[f64] {
        match which {
            StreamBuffer::A => &self.a,
            StreamBuffer::B => &self.b,
            StreamBuffer::C => &self.c,
        }
    }

    /// Runs one kernel pass; returns the sum for `Read`.
    pub fn pass(&mut self, kernel: StreamKernel) -> Option<f64> {
        match kernel {
            StreamKernel::Read => Some(
                self.a
                    .par_chunks(CHUNK)
                    .map(|ch| ch.iter().sum::<f64>())
                    .sum(),
            ),
            StreamKernel::Write => {
                self.b.par_chunks_mut(CHUNK).for_each(|ch| ch.fill(2.0));
                None
            }
            StreamKernel::Copy => {
                self.c
                    .par_chunks_mut(CHUNK)
                    .zip(self.a.par_chunks(CHUNK))
                    .for_each(|(c, a)| c.copy_from_slice(a));
                None
            }
            StreamKernel::Triad => {
                self.b
                    .par_chunks_mut(CHUNK)
                    .zip(self.a.par_chunks(CHUNK).zip(self.c.par_chunks(CHUNK)))
                    .for_each(|(b, (a, c))| {
                        for ((b, a), c) in b.iter_mut().zip(a).zip(c) {
                            *b = a + 3.0 * c;
                        }
                    });
                None
            }
        }
    }
}

impl StreamOp for CpuStream {
    fn len(&self) -> usize {
        self.a.len()
    }

    fn run(&mut self, kernel: StreamKernel) -> DeviceResult<(Seconds, Option<f64>)> {
        let start = Instant::now();
        let sum = self.pass(kernel);
        Ok((start.elapsed().as_secs_f64(), sum))
    }

    fn digest(&mut self, buffer: StreamBuffer) -> DeviceResult<BufferDigest> {
        let buf = self.buffer(buffer);
        let (sum, hash) = buf
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(ci, ch)| {
                let base = (ci * CHUNK) as u64;
                let mut h = 0u64;
                let mut s = 0.0;
                for (k, x) in ch.iter().enumerate() {
                    s += x;
                    h = h.wrapping_add(gen::digest_term(base + k as u64, x.to_bits()));
                }
                (s, h)
            })
            .reduce(|| (0.0, 0), |x, y| (x.0 + y.0, x.1.wrapping_add(y.1)));
        Ok(BufferDigest { sum, hash })
    }

    fn read(&mut self, buffer: StreamBuffer, indices: &[usize]) -> DeviceResult<Vec<f64>> {
        let buf = self.buffer(buffer);
        Ok(indices
            .iter()
            .map(|&i| buf.get(i).copied().unwrap_or(f64::NAN))
            .collect())
    }
}

/// Double SHA-256 nonce search on every core.
pub struct CpuHash {
    job: HashJob,
}

impl CpuHash {
    /// A search over `job`'s header.
    pub fn new(job: HashJob) -> Self {
        CpuHash { job }
    }
}

impl HashOp for CpuHash {
    fn scan(&mut self, start: u32, count: u32) -> DeviceResult<(ScanResult, Seconds)> {
        let t = Instant::now();
        let r = hash::scan_parallel(&self.job, start, count);
        Ok((r, t.elapsed().as_secs_f64()))
    }
}

/// A memory-test buffer in host memory.
pub struct CpuMemtest {
    buf: Vec<u64>,
}

impl CpuMemtest {
    /// Allocates `words` 64-bit words.
    pub fn new(words: usize) -> Self {
        CpuMemtest {
            buf: vec![0; words],
        }
    }

    /// Flips bit `bit` of word `index` (fault injection and tests).
    pub fn flip_bit(&mut self, index: usize, bit: u32) {
        if let Some(w) = self.buf.get_mut(index) {
            *w ^= 1 << (bit % 64);
        }
    }

    /// Applies one step of the algorithm to the buffer.
    pub fn apply(&mut self, step: memtest::Step, keep: usize) -> MemErrors {
        memtest::apply(&mut self.buf, step, keep)
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Seconds) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

impl MemtestOp for CpuMemtest {
    fn words(&self) -> usize {
        self.buf.len()
    }

    fn fill(&mut self, pattern: Pattern) -> DeviceResult<Seconds> {
        Ok(timed(|| memtest::fill(&mut self.buf, pattern)).1)
    }

    fn verify(&mut self, pattern: Pattern, keep: usize) -> DeviceResult<(MemErrors, Seconds)> {
        Ok(timed(|| memtest::verify(&self.buf, pattern, keep)))
    }

    fn verify_and_write(
        &mut self,
        expect: Pattern,
        next: Pattern,
        descending: bool,
        keep: usize,
    ) -> DeviceResult<(MemErrors, Seconds)> {
        Ok(timed(|| {
            memtest::verify_and_write(&mut self.buf, expect, next, descending, keep)
        }))
    }
}

//! Each workload's own verification catches a corrupted output: a device
//! that flips one bit of its result is caught by the shared driver, through
//! the same code path `kiln run` uses.

use std::sync::atomic::AtomicBool;

use kiln::device::cpu::{CpuDevice, CpuMatmul, CpuMemtest, CpuStream};
use kiln::device::{
    BufferDigest, Device, DeviceInfo, DeviceResult, HashOp, MatmulOp, MatmulShape, MatmulVariant,
    MemtestOp, Seconds, StreamBuffer, StreamKernel, StreamOp,
};
use kiln::reference::hash::{HashJob, ScanResult};
use kiln::reference::memtest::{MemErrors, Pattern};
use kiln::workload::{self, Context, Integrity, Profile, Record, WorkloadKind, WorkloadSpec};

/// Which output a [`Faulty`] device corrupts.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Flip a bit of C after the last product.
    MatmulOutput {
        bit: u32,
    },
    /// Flip a bit of buffer c after every copy.
    CopyOutput,
    /// Flip a bit of b after every triad.
    TriadOutput,
    /// Flip the lowest mantissa bit of b after every write, and of the
    /// triad's b: changes far below what an f64 sum can see.
    LowBitOutput,
    /// Flip bit 3 of an element of a before the first kernel: the input
    /// itself is corrupt, as a weak memory cell leaves it.
    LowBitInput,
    /// Return a read sum off by one.
    ReadSum,
    /// Flip a bit of a sampled digest.
    HashSample,
    /// Flip a bit of the buffer after every fill.
    MemBit,
}

/// A CPU device that corrupts one kind of output.
struct Faulty {
    inner: CpuDevice,
    fault: Fault,
}

struct FMatmul {
    op: CpuMatmul,
    fault: Fault,
    runs: u32,
}

impl MatmulOp for FMatmul {
    fn run(&mut self) -> DeviceResult<Seconds> {
        let t = self.op.compute();
        self.runs += 1;
        // Corrupt only from the third product on: the first checksum is clean.
        if let Fault::MatmulOutput { bit } = self.fault {
            if self.runs >= 3 {
                self.op.flip_output_bit(5, bit);
            }
        }
        Ok(t)
    }
    fn read(&mut self, p: &[(usize, usize)]) -> DeviceResult<Vec<f64>> {
        self.op.read(p)
    }
    fn checksum(&mut self) -> DeviceResult<u64> {
        self.op.checksum()
    }
}

struct FStream {
    op: CpuStream,
    fault: Fault,
}

impl StreamOp for FStream {
    fn len(&self) -> usize {
        self.op.len()
    }
    fn run(&mut self, k: StreamKernel) -> DeviceResult<(Seconds, Option<f64>)> {
        let (t, sum) = self.op.run(k)?;
        match (self.fault, k) {
            (Fault::CopyOutput, StreamKernel::Copy) => {
                let c = self.op.buffer_mut(StreamBuffer::C);
                c[77] = f64::from_bits(c[77].to_bits() ^ 1);
            }
            (Fault::TriadOutput, StreamKernel::Triad) => {
                let b = self.op.buffer_mut(StreamBuffer::B);
                b[3] = f64::from_bits(b[3].to_bits() ^ (1 << 52));
            }
            (Fault::ReadSum, StreamKernel::Read) => return Ok((t, sum.map(|s| s + 1.0))),
            (Fault::LowBitOutput, StreamKernel::Write | StreamKernel::Triad) => {
                let b = self.op.buffer_mut(StreamBuffer::B);
                b[449] = f64::from_bits(b[449].to_bits() ^ 1);
            }
            _ => {}
        }
        Ok((t, sum))
    }
    fn digest(&mut self, b: StreamBuffer) -> DeviceResult<BufferDigest> {
        self.op.digest(b)
    }
    fn read(&mut self, b: StreamBuffer, i: &[usize]) -> DeviceResult<Vec<f64>> {
        StreamOp::read(&mut self.op, b, i)
    }
}

struct FHash {
    job: HashJob,
}

impl HashOp for FHash {
    fn scan(&mut self, start: u32, count: u32) -> DeviceResult<(ScanResult, Seconds)> {
        let mut r = kiln::reference::hash::scan_parallel(&self.job, start, count);
        if let Some(s) = r.samples.get_mut(1) {
            s.1[31] ^= 0x01;
        }
        Ok((r, 1.0))
    }
}

struct FMem {
    op: CpuMemtest,
    fault: Fault,
}

impl MemtestOp for FMem {
    fn words(&self) -> usize {
        self.op.words()
    }
    fn fill(&mut self, p: Pattern) -> DeviceResult<Seconds> {
        let t = self.op.fill(p)?;
        if self.fault == Fault::MemBit {
            self.op.flip_bit(1000, 13);
        }
        Ok(t)
    }
    fn verify(&mut self, p: Pattern, keep: usize) -> DeviceResult<(MemErrors, Seconds)> {
        self.op.verify(p, keep)
    }
    fn verify_and_write(
        &mut self,
        e: Pattern,
        n: Pattern,
        d: bool,
        keep: usize,
    ) -> DeviceResult<(MemErrors, Seconds)> {
        self.op.verify_and_write(e, n, d, keep)
    }
}

impl Device for Faulty {
    fn info(&self) -> &DeviceInfo {
        self.inner.info()
    }
    fn matmul(&mut self, shape: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>> {
        Ok(Box::new(FMatmul {
            op: CpuMatmul::new(shape),
            fault: self.fault,
            runs: 0,
        }))
    }
    fn stream(&mut self, len: usize, seed: u64) -> DeviceResult<Box<dyn StreamOp + '_>> {
        let mut op = CpuStream::new(len, seed);
        if self.fault == Fault::LowBitInput {
            let a = op.buffer_mut(StreamBuffer::A);
            a[448] = f64::from_bits(a[448].to_bits() ^ (1 << 3));
        }
        Ok(Box::new(FStream {
            op,
            fault: self.fault,
        }))
    }
    fn hasher(&mut self, job: &HashJob) -> DeviceResult<Box<dyn HashOp + '_>> {
        if self.fault == Fault::HashSample {
            Ok(Box::new(FHash { job: job.clone() }))
        } else {
            self.inner.hasher(job)
        }
    }
    fn memtest(&mut self, words: usize) -> DeviceResult<Box<dyn MemtestOp + '_>> {
        Ok(Box::new(FMem {
            op: CpuMemtest::new(words),
            fault: self.fault,
        }))
    }
}

/// Small sizes: the ones simulated devices use.
fn small(kind: WorkloadKind) -> WorkloadSpec {
    let mut info = CpuDevice::new(0).info().clone();
    info.simulated = true;
    WorkloadSpec::for_device(kind, Profile::Quick, &info)
}

/// Runs `kind` on a device with `fault` and returns its integrity records.
fn integrity(kind: WorkloadKind, fault: Fault) -> Vec<Integrity> {
    let mut dev = Faulty {
        inner: CpuDevice::new(0),
        fault,
    };
    let stop = AtomicBool::new(false);
    let mut records = Vec::new();
    let mut sink = |r: Record| records.push(r);
    let mut progress = |_: f64, _: &str| {};
    let mut ctx = Context {
        stop: &stop,
        sink: &mut sink,
        progress: &mut progress,
        cycle: 0,
        seed: 42,
        busy_s: 0.0,
        sustain_s: 0.0,
    };
    workload::execute(&mut dev, &small(kind), &mut ctx).expect("workload runs");
    records
        .into_iter()
        .filter_map(|r| match r {
            Record::Integrity(i) => Some(i),
            Record::Metric(_) | Record::Skipped { .. } => None,
        })
        .collect()
}

fn errors_of(records: &[Integrity], check: &str) -> u64 {
    records
        .iter()
        .filter(|i| i.check == check)
        .map(|i| i.errors)
        .sum()
}

#[test]
fn clean_device_passes_every_check() {
    // Transfers need a host-device link, which this CPU-based device lacks;
    // tests/faults.rs proves their verification on simulated GPUs.
    for kind in WorkloadKind::ALL
        .into_iter()
        .filter(|k| *k != WorkloadKind::Transfer)
    {
        let recs = integrity(kind, Fault::None);
        assert!(!recs.is_empty(), "{kind}: no integrity record");
        for r in &recs {
            assert!(r.checked > 0, "{kind}/{}: nothing checked", r.check);
            assert_eq!(r.errors, 0, "{kind}/{}: {}", r.check, r.detail);
        }
    }
}

#[test]
fn matmul_catches_a_low_mantissa_flip_through_the_checksum() {
    // Bit 0 of an f32 is below any tolerance: only self-consistency sees it.
    let recs = integrity(WorkloadKind::Matmul, Fault::MatmulOutput { bit: 0 });
    assert!(errors_of(&recs, "matmul_fp32") >= 1);
    let r = recs
        .iter()
        .find(|r| r.check == "matmul_fp32")
        .expect("fp32 record");
    assert!(r.detail.contains("checksum changed"), "{}", r.detail);
}

#[test]
fn matmul_catches_an_exponent_flip_against_the_reference() {
    // Element 5 is C[0][5]; it is not always sampled, but the checksum is.
    let recs = integrity(WorkloadKind::Matmul, Fault::MatmulOutput { bit: 30 });
    // Every variant: fp64, fp32, tf32, the 16-bit outputs (bit 30 of the
    // fp32 accumulator is an exponent bit that survives rounding to bf16 or
    // fp16), fp8 and kiln's mma kernel.
    for v in MatmulVariant::GPU {
        let name = format!("matmul_{}", v.name());
        assert!(errors_of(&recs, &name) >= 1, "{name}");
    }
    assert_eq!(recs.len(), MatmulVariant::GPU.len());
}

#[test]
fn bandwidth_catches_a_corrupted_copy() {
    let recs = integrity(WorkloadKind::Bandwidth, Fault::CopyOutput);
    assert_eq!(errors_of(&recs, "bw_copy"), 1);
    assert_eq!(errors_of(&recs, "bw_read"), 0);
}

#[test]
fn bandwidth_catches_a_corrupted_triad() {
    let recs = integrity(WorkloadKind::Bandwidth, Fault::TriadOutput);
    assert!(errors_of(&recs, "bw_triad") >= 1);
    let r = recs
        .iter()
        .find(|r| r.check == "bw_triad")
        .expect("triad record");
    assert!(r.detail.contains("b"), "{}", r.detail);
}

/// Found by the virtual GPU's weak bit: a flipped low mantissa bit changes
/// an element by far less than the sums' last place, and a corrupt input is
/// copied faithfully, so sums and copy-versus-source let it through; the
/// bit-exact hashes against the host's closed form do not.
#[test]
fn bandwidth_catches_a_low_bit_flipped_in_an_output_or_in_its_input() {
    let recs = integrity(WorkloadKind::Bandwidth, Fault::LowBitOutput);
    assert!(errors_of(&recs, "bw_write") >= 1);
    assert!(errors_of(&recs, "bw_triad") >= 1);
    let recs = integrity(WorkloadKind::Bandwidth, Fault::LowBitInput);
    assert!(errors_of(&recs, "bw_copy") >= 1);
    let r = recs
        .iter()
        .find(|r| r.check == "bw_copy")
        .expect("copy record");
    assert!(r.detail.contains("source a differs"), "{}", r.detail);
}

#[test]
fn bandwidth_catches_a_wrong_read_sum() {
    let recs = integrity(WorkloadKind::Bandwidth, Fault::ReadSum);
    assert!(errors_of(&recs, "bw_read") >= 1);
}

#[test]
fn hash_catches_a_flipped_digest_bit() {
    let recs = integrity(WorkloadKind::Hash, Fault::HashSample);
    assert!(errors_of(&recs, "sha256d") >= 1);
}

#[test]
fn memtest_catches_a_flipped_bit_and_keeps_its_address() {
    let recs = integrity(WorkloadKind::Memtest, Fault::MemBit);
    let r = recs
        .iter()
        .find(|r| r.check == "memtest")
        .expect("memtest record");
    assert!(r.errors >= 1, "{}", r.detail);
    assert_eq!(r.first_bad_offsets.first(), Some(&(1000 * 8)));
    assert!(r.detail.contains("0x1f40"), "{}", r.detail);
}

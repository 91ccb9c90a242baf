//! Power pulses: one GEMM switched between full load and idle a few times a
//! second, so that the board's power delivery steps from idle to its limit
//! and back again and again (as DCGM's pulse test does). A weak power stage,
//! a loose cable or a marginal supply fails there first: the GPU drops off
//! the bus, a launch fails, or a result comes out wrong after a load step.
//!
//! Each pulse is a burst of back-to-back products of the same inputs lasting
//! at least the burst length (one product when it is 0), then an idle gap
//! with nothing queued on the device.
//!
//! Counted: 2 n^3 FLOP per product over the device-timed seconds of the
//! burst's products (idle excluded), one rate per burst; the figure is the
//! median over bursts (`pulse_<variant>`, TFLOP/s on GPUs, GFLOP/s on CPUs).
//!
//! Verified: the first burst's output is sampled against the f64 reference
//! ([`matmul::verify_samples`]), and every later burst's device-side
//! checksum of every output bit must equal the first one's: the inputs never
//! change, so any difference is a wrong result after a load step
//! (`sdc_pulse`). The last checksum is recorded, so that devices of the same
//! model must also agree with each other. A device error or a lost device
//! during the phase fails it as in any workload.

use std::time::{Duration, Instant};

use crate::device::{Device, DeviceError, MatmulOp, MatmulShape, MatmulVariant, Precision};
use crate::workload::matmul::{sample_positions, unit_for, verify_samples};
use crate::workload::{seconds, Context, Integrity, WorkloadError, WorkloadKind};

/// The GEMMs a pulse runs, the first one the device has: bf16 through the
/// library draws the most power on tensor-core GPUs; kiln's own mma kernel
/// when the library is missing; fp32 on CPUs.
pub const VARIANTS: [MatmulVariant; 3] = [
    MatmulVariant::library(Precision::Bf16),
    MatmulVariant::mma(Precision::Bf16),
    MatmulVariant::library(Precision::Fp32),
];

/// The longest slice of an idle gap between two checks for Ctrl-C.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Runs `pulses` bursts of at least `on` each, with `off` of idle after
/// every burst but the last, on the first of `variants` the device can run.
pub(crate) fn execute(
    device: &mut dyn Device,
    n: usize,
    variants: &[MatmulVariant],
    on: Duration,
    off: Duration,
    pulses: u32,
    ctx: &mut Context<'_>,
) -> Result<(), WorkloadError> {
    let backend = device.info().backend;
    let simulated = device.info().simulated;
    let mut refused: Vec<DeviceError> = Vec::new();
    for &variant in variants {
        let shape = MatmulShape {
            n,
            variant,
            seed: ctx.seed,
        };
        let op = match device.pulse(shape) {
            Ok(op) => op,
            Err(e) if e.unsupported => {
                refused.push(e);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let plan = Bursts {
            n,
            variant,
            on,
            off,
            pulses,
        };
        return plan.run(op, backend, simulated, &refused, ctx);
    }
    // No GEMM at all (not possible on kiln's backends, which all have one
    // of the variants): said, with the first refusal's node state, if any.
    match refused.into_iter().next() {
        Some(e) => ctx.skipped_for(WorkloadKind::Pulse, e),
        None => ctx.skipped(WorkloadKind::Pulse, "no GEMM variant to pulse".into()),
    }
    Ok(())
}

/// One pulse phase's shape.
struct Bursts {
    n: usize,
    variant: MatmulVariant,
    on: Duration,
    off: Duration,
    pulses: u32,
}

impl Bursts {
    fn run(
        &self,
        mut op: Box<dyn MatmulOp + '_>,
        backend: crate::device::BackendKind,
        simulated: bool,
        refused: &[DeviceError],
        ctx: &mut Context<'_>,
    ) -> Result<(), WorkloadError> {
        let (unit, scale) = unit_for(backend);
        let n = self.n;
        let flops = 2.0 * (n as f64).powi(3);
        let name = format!("pulse_{}", self.variant.name());
        let mut rates = Vec::new();
        let mut first: Option<u64> = None;
        let mut last = 0u64;
        let (mut checked, mut errors, mut detail) = (0u64, 0u64, String::new());
        let mut products = 0u64;
        for p in 0..self.pulses {
            ctx.check_stop()?;
            (ctx.progress)(f64::from(p) / f64::from(self.pulses.max(1)), &name);
            let start = Instant::now();
            let mut busy = 0.0;
            let mut count = 0u32;
            loop {
                let t = op.run()?;
                busy += seconds(t);
                count += 1;
                if start.elapsed() >= self.on {
                    break;
                }
            }
            products += u64::from(count);
            ctx.busy(busy);
            rates.push(flops * f64::from(count) / busy / scale);
            let sum = op.checksum()?;
            checked += 1;
            match first {
                None => {
                    first = Some(sum);
                    let positions = sample_positions(ctx.seed ^ 0x9e37, n);
                    let values = op.read(&positions)?;
                    let (c, e, d) = verify_samples(ctx.seed, n, self.variant, &positions, &values);
                    checked += c;
                    errors += e;
                    if !d.is_empty() {
                        detail = format!("pulse 1: {d}");
                    }
                }
                Some(f) if f != sum => {
                    errors += 1;
                    if detail.is_empty() {
                        detail = format!(
                            "pulse {} of {}: output checksum {sum:#018x}, the first pulse's {f:#018x}, for identical inputs after an idle-to-load step",
                            p + 1,
                            self.pulses
                        );
                    }
                }
                Some(_) => {}
            }
            last = sum;
            if p + 1 < self.pulses {
                idle(self.off, ctx)?;
            }
        }
        let fallback = refused
            .first()
            .map(|e| {
                format!(
                    "; {} (first choice refused: {})",
                    self.variant.name(),
                    e.message
                )
            })
            .unwrap_or_default();
        let counted = format!(
            "2*n^3 FLOP per product over device-timed seconds of each burst (idle excluded), n = {n}, {}; {} bursts of at least {} ms with {} ms idle between, {products} products{fallback}",
            self.variant.arithmetic(),
            self.pulses,
            self.on.as_millis(),
            self.off.as_millis()
        );
        ctx.metric(WorkloadKind::Pulse, &name, unit, counted, &rates, simulated);
        ctx.send_integrity(Integrity {
            workload: WorkloadKind::Pulse,
            check: name,
            checked,
            errors,
            detail,
            first_bad_offsets: Vec::new(),
            checksum: first.map(|_| format!("{last:016x}")),
            cycle: 0,
        });
        Ok(())
    }
}

/// Leaves the device idle for `off`, checking for Ctrl-C in between.
fn idle(off: Duration, ctx: &Context<'_>) -> Result<(), WorkloadError> {
    let until = Instant::now() + off;
    loop {
        ctx.check_stop()?;
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(STOP_POLL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::cpu::CpuDevice;
    use crate::workload::Record;
    use std::sync::atomic::AtomicBool;

    fn run(device: &mut dyn Device, pulses: u32) -> (Result<(), WorkloadError>, Vec<Record>) {
        let stop = AtomicBool::new(false);
        let mut records = Vec::new();
        let mut sink = |r: Record| records.push(r);
        let mut progress = |_: f64, _: &str| {};
        let mut ctx = Context {
            stop: &stop,
            sink: &mut sink,
            progress: &mut progress,
            cycle: 0,
            seed: 7,
            busy_s: 0.0,
            sustain_s: 0.0,
        };
        let r = execute(
            device,
            32,
            &VARIANTS,
            Duration::from_millis(2),
            Duration::from_millis(1),
            pulses,
            &mut ctx,
        );
        assert!(ctx.busy_s > 0.0, "bursts count as device-busy time");
        (r, records)
    }

    #[test]
    fn a_cpu_pulses_fp32_and_every_burst_agrees() {
        let mut cpu = CpuDevice::new(0);
        let (r, records) = run(&mut cpu, 4);
        assert!(r.is_ok());
        let metric = records.iter().find_map(|r| match r {
            Record::Metric(m) => Some(m.clone()),
            _ => None,
        });
        let m = metric.expect("a pulse figure");
        assert_eq!(m.name, "pulse_fp32");
        assert_eq!(m.workload, WorkloadKind::Pulse);
        assert_eq!(m.iterations, 4, "one rate per burst");
        assert!(m.counted.contains("first choice refused"), "{}", m.counted);
        let check = records.iter().find_map(|r| match r {
            Record::Integrity(i) => Some(i.clone()),
            _ => None,
        });
        let check = check.expect("a pulse check");
        assert_eq!(check.errors, 0, "{}", check.detail);
        // Four checksums and the sampled elements of the first burst.
        assert_eq!(check.checked, 4 + crate::workload::matmul::SAMPLES as u64);
        assert!(check.checksum.is_some());
        assert!(
            !records.iter().any(|r| matches!(r, Record::Skipped { .. })),
            "a fallback variant is no skip"
        );
    }

    /// A CPU whose product changes after the first idle gap.
    struct Drifting(CpuDevice);

    struct DriftOp<'a> {
        inner: Box<dyn MatmulOp + 'a>,
        sums: u32,
    }

    impl MatmulOp for DriftOp<'_> {
        fn run(&mut self) -> crate::device::DeviceResult<crate::device::Seconds> {
            self.inner.run()
        }
        fn read(&mut self, p: &[(usize, usize)]) -> crate::device::DeviceResult<Vec<f64>> {
            self.inner.read(p)
        }
        fn checksum(&mut self) -> crate::device::DeviceResult<u64> {
            self.sums += 1;
            let c = self.inner.checksum()?;
            Ok(if self.sums > 2 { c ^ 1 } else { c })
        }
    }

    impl Device for Drifting {
        fn info(&self) -> &crate::device::DeviceInfo {
            self.0.info()
        }
        fn matmul(
            &mut self,
            s: MatmulShape,
        ) -> crate::device::DeviceResult<Box<dyn MatmulOp + '_>> {
            Ok(Box::new(DriftOp {
                inner: self.0.matmul(s)?,
                sums: 0,
            }))
        }
        fn stream(
            &mut self,
            l: usize,
            s: u64,
        ) -> crate::device::DeviceResult<Box<dyn crate::device::StreamOp + '_>> {
            self.0.stream(l, s)
        }
        fn hasher(
            &mut self,
            j: &crate::reference::hash::HashJob,
        ) -> crate::device::DeviceResult<Box<dyn crate::device::HashOp + '_>> {
            self.0.hasher(j)
        }
        fn memtest(
            &mut self,
            w: usize,
        ) -> crate::device::DeviceResult<Box<dyn crate::device::MemtestOp + '_>> {
            self.0.memtest(w)
        }
    }

    #[test]
    fn a_result_that_changes_after_a_load_step_is_an_error() {
        let mut dev = Drifting(CpuDevice::new(0));
        let (r, records) = run(&mut dev, 6);
        assert!(r.is_ok());
        let check = records
            .iter()
            .find_map(|r| match r {
                Record::Integrity(i) => Some(i.clone()),
                _ => None,
            })
            .expect("a pulse check");
        assert!(check.errors >= 1);
        assert!(
            check.detail.starts_with("pulse 3 of 6: output checksum"),
            "{}",
            check.detail
        );
        assert!(
            check.detail.contains("idle-to-load step"),
            "{}",
            check.detail
        );
    }
}

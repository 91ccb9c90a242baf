//! kiln's workloads as criterion benchmarks, on the CPU backend, and on GPU 0
//! when a GPU is usable (`cuda/matmul`: every precision at n = 8192,
//! `cuda/bandwidth`, `cuda/transfer`; otherwise one line says so and they
//! are skipped).
//!
//! Throughput is labelled honestly: matmul counts 2 n^3 floating-point
//! operations as "elements" (criterion prints elem/s: read FLOP/s), bandwidth
//! counts bytes read + written, hashing counts double SHA-256 nonces, the
//! memory test counts bytes written + read. Every timed call runs the same
//! device primitive `kiln run` runs; outputs are verified once per group, so
//! a fast wrong answer cannot pass.
//!
//! `cargo bench` runs them fully; `cargo bench -- --test` runs each once (CI).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln::device::cpu::{CpuMatmul, CpuMemtest, CpuStream};
use kiln::device::{Direction, MatmulOp, MatmulShape, MatmulVariant, MemtestOp, StreamKernel};
use kiln::reference::{hash, memtest};
use kiln::workload::hash::verify_scan;
use kiln::workload::{bandwidth, matmul};

fn matmul_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu/matmul");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for variant in MatmulVariant::CPU {
        for n in [512usize, 1024] {
            let shape = MatmulShape {
                n,
                variant,
                seed: 7,
            };
            let mut op = CpuMatmul::new(shape);
            op.compute();
            let pos = matmul::sample_positions(7, n);
            let vals = op.read(&pos).expect("cpu read");
            let (_, errors, detail) = matmul::verify_samples(7, n, variant, &pos, &vals);
            assert_eq!(errors, 0, "{detail}");
            g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
            g.bench_function(BenchmarkId::new(variant.name(), n), |b| {
                b.iter(|| black_box(op.compute()))
            });
        }
    }
    g.finish();
}

fn bandwidth_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu/bandwidth");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let len = 16 << 20; // 128 MiB per buffer: 4x a 32 MiB last-level cache
    let mut op = CpuStream::new(len, 3);
    let want = bandwidth::Expected::new(3, len);
    for kernel in StreamKernel::ALL {
        let first = op.pass(kernel);
        let sums: Vec<f64> = first.into_iter().collect();
        let (_, errors, detail) =
            bandwidth::verify(&mut op, kernel, 3, &want, &sums).expect("verify");
        assert_eq!(errors, 0, "{detail}");
        g.throughput(Throughput::Bytes(kernel.bytes_per_element() * len as u64));
        g.bench_function(kernel.name(), |b| b.iter(|| black_box(op.pass(kernel))));
    }
    g.finish();
}

fn hash_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu/sha256d");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    let job = hash::HashJob::from_seed(11, 16, 1 << 14);
    let nonces = 1u32 << 20;
    let r = hash::scan_parallel(&job, 0, nonces);
    let check = verify_scan(&job, 0, nonces, &r);
    assert_eq!(check.errors, 0, "{}", check.detail);
    g.throughput(Throughput::Elements(u64::from(nonces)));
    g.bench_function("all_cores", |b| {
        b.iter(|| black_box(hash::scan_parallel(&job, 0, nonces)))
    });
    let mid = hash::midstate(&job.header);
    g.throughput(Throughput::Elements(1 << 18));
    g.bench_function("one_core", |b| {
        b.iter(|| black_box(hash::scan_range(&job, &mid, 0, 1 << 18)))
    });
    g.finish();
}

fn memtest_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu/memtest");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let words = 16 << 20; // 128 MiB
    let mut op = CpuMemtest::new(words);
    for (name, pattern) in [
        ("fixed", memtest::Pattern::Fixed(0x5555_5555_5555_5555)),
        (
            "random",
            memtest::Pattern::Random {
                seed: 5,
                invert: false,
            },
        ),
    ] {
        op.fill(pattern).expect("fill");
        let (e, _) = op.verify(pattern, 4).expect("verify");
        assert!(e.is_clean());
        g.throughput(Throughput::Bytes(2 * 8 * words as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                op.fill(pattern).expect("fill");
                black_box(op.verify(pattern, 4).expect("verify"))
            })
        });
    }
    g.finish();
}

fn cuda_benches(c: &mut Criterion) {
    let devices = match kiln::device::cuda::probe().map(|p| p.devices) {
        Ok(d) if !d.is_empty() => d,
        Ok(_) => {
            println!("cuda benches skipped: no CUDA GPU found");
            return;
        }
        Err(why) => {
            println!("cuda benches skipped: {why}");
            return;
        }
    };
    let mut devices = devices;
    let Some(dev) = devices.first_mut() else {
        return;
    };
    let index = dev.info().index;
    // Every matmul variant at n = 8192 on GPU 0, verified once before it
    // is timed: 2 n^3 FLOP per product, device time from CUDA events.
    let mut g = c.benchmark_group("cuda/matmul");
    g.sample_size(10);
    let n = 8192;
    for variant in MatmulVariant::GPU {
        let shape = MatmulShape {
            n,
            variant,
            seed: 7,
        };
        let mut op = match dev.matmul(shape) {
            Ok(op) => op,
            Err(e) => {
                println!("cuda/matmul/{} skipped: {e}", variant.name());
                continue;
            }
        };
        let pos = matmul::sample_positions(7, n);
        let checked = op
            .run()
            .and_then(|_| op.read(&pos))
            .map(|vals| matmul::verify_samples(7, n, variant, &pos, &vals));
        match checked {
            Ok((_, 0, _)) => {}
            Ok((_, _, detail)) => panic!("cuda/matmul/{}: wrong product: {detail}", variant.name()),
            Err(e) => panic!("cuda/matmul/{}: {e}", variant.name()),
        }
        g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        g.bench_function(BenchmarkId::new(variant.name(), index), |b| {
            b.iter_custom(|iters| device_time(iters, || op.run()))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("cuda/bandwidth");
    g.sample_size(20);
    let len = 1 << 28; // 2 GiB per buffer
    match dev.stream(len, 3) {
        Err(e) => println!("cuda/bandwidth skipped on GPU {index}: {e}"),
        Ok(mut op) => {
            for kernel in StreamKernel::ALL {
                g.throughput(Throughput::Bytes(kernel.bytes_per_element() * len as u64));
                g.bench_function(BenchmarkId::new(kernel.name(), index), |b| {
                    b.iter_custom(|iters| device_time(iters, || op.run(kernel).map(|(t, _)| t)))
                });
            }
        }
    }
    g.finish();

    // Host/device copies through pinned memory, 256 MiB one way each.
    let mut g = c.benchmark_group("cuda/transfer");
    g.sample_size(20);
    let words = 32 << 20;
    match dev.transfer(words, 3) {
        Err(e) => println!("cuda/transfer skipped on GPU {index}: {e}"),
        Ok(mut op) => {
            for dir in Direction::ALL {
                g.throughput(Throughput::Bytes(8 * words as u64));
                g.bench_function(BenchmarkId::new(dir.name(), index), |b| {
                    b.iter_custom(|iters| device_time(iters, || op.run(dir)))
                });
                let check = op.check(dir).expect("transfer check");
                assert_eq!(
                    check.errors,
                    0,
                    "cuda/transfer/{}: corrupted copy",
                    dir.name()
                );
            }
        }
    }
    g.finish();
}

/// Device time of `iters` runs of `f`, summed (CUDA events); a device
/// error stops the bench with its message.
fn device_time(
    iters: u64,
    mut f: impl FnMut() -> Result<f64, kiln::device::DeviceError>,
) -> Duration {
    let mut total = 0.0;
    for _ in 0..iters {
        match f() {
            Ok(t) => total += t,
            Err(e) => panic!("device error: {e}"),
        }
    }
    Duration::from_secs_f64(total.max(0.0))
}

criterion_group!(
    benches,
    matmul_benches,
    bandwidth_benches,
    hash_benches,
    memtest_benches,
    cuda_benches
);
criterion_main!(benches);

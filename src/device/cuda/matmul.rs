//! [`MatmulOp`] on a GPU: inputs generated on the device, the product by
//! cuBLASLt ([`super::blaslt`]), the checksum and sampled reads by kiln's
//! verify kernels.
//!
//! A and B are generated row-major by `kiln_gen_matrix_f32/f64` with the
//! CPU backend's values (`A[i][k] = matrix_value(seed, 0, i*n+k)`,
//! `B[k][j] = matrix_value(seed, 1, k*n+j)`, exact in f32); C is row-major.
//! The checksum is `CpuMatmul::checksum`'s: the wrapping sum over i of
//! `digest_term(i, bits of C[i])`, f32 bits zero-extended, so GPU and CPU
//! outputs compare bit for bit.

use cudarc::driver::CudaSlice;

use crate::device::cuda::blaslt::Gemm;
use crate::device::cuda::gpu::{Func, Gpu, Handle, Timer};
use crate::device::cuda::kernels::{grid, Kernel, BLOCK};
use crate::device::{DeviceResult, MatmulOp, MatmulShape, Precision, Seconds};

/// Flat indices `i*n + j` of `positions` in an n x n row-major matrix, as
/// the CPU backend computes them (`c.get(i*n + j)`); an index that
/// overflows becomes `u64::MAX`, which the gather reads as out of range.
pub(crate) fn flat_indices(n: usize, positions: &[(usize, usize)]) -> Vec<u64> {
    positions
        .iter()
        .map(|&(i, j)| {
            i.checked_mul(n)
                .and_then(|x| x.checked_add(j))
                .map_or(u64::MAX, |x| x as u64)
        })
        .collect()
}

/// Element bits as read by a gather, widened to f64: f32 bits in the low 32
/// bits for [`Precision::F32`], f64 bits otherwise.
pub(crate) fn bits_to_f64(precision: Precision, bits: u64) -> f64 {
    match precision {
        Precision::F32 => f64::from(f32::from_bits(bits as u32)),
        Precision::F64 => f64::from_bits(bits),
    }
}

/// A prepared GEMM on a GPU.
pub(crate) struct CudaMatmul {
    h: Handle,
    n: usize,
    precision: Precision,
    /// A, B and C as raw bytes: n*n elements of 4 or 8 bytes.
    a: CudaSlice<u8>,
    b: CudaSlice<u8>,
    c: CudaSlice<u8>,
    gemm: Gemm,
    checksum: Func,
    gather: Func,
    partial: CudaSlice<u64>,
    grid: u32,
    timer: Timer,
}

impl CudaMatmul {
    /// Allocates A, B and C, generates A and B and prepares the GEMM.
    pub fn new(gpu: &mut Gpu, shape: MatmulShape) -> DeviceResult<CudaMatmul> {
        let MatmulShape { n, precision, seed } = shape;
        let (gen_k, sum_k, gather_k, width) = match precision {
            Precision::F32 => (
                Kernel::GenMatrixF32,
                Kernel::ChecksumU32,
                Kernel::GatherU32,
                4,
            ),
            Precision::F64 => (
                Kernel::GenMatrixF64,
                Kernel::ChecksumU64,
                Kernel::GatherU64,
                8,
            ),
        };
        let [gen, checksum, gather] = gpu.functions([gen_k, sum_k, gather_k])?;
        let h = gpu.h.clone();
        let elems = n.saturating_mul(n);
        let bytes = elems.saturating_mul(width);
        let what = |m: &str| format!("matrix {m} ({n} x {n} {})", precision.name());
        let a = h.alloc::<u8>(bytes, &what("A"))?;
        let b = h.alloc::<u8>(bytes, &what("B"))?;
        let c = h.alloc::<u8>(bytes, &what("C"))?;
        let grid = grid(h.sms, elems as u64, 4 * u64::from(BLOCK));
        let (rows, row_major) = (n as u64, 0u32);
        for (buf, stream) in [(&a, 0u64), (&b, 1u64)] {
            h.launch(&gen)
                .ptr(buf)
                .u64(&rows)
                .u64(&rows)
                .u64(&seed)
                .u64(&stream)
                .u32(&row_major)
                .run(grid)?;
        }
        h.sync(&format!(
            "generating the inputs with {}",
            gen.kernel.describe()
        ))?;
        let gemm = Gemm::new(&h, n, precision)?;
        let partial = h.alloc::<u64>(grid as usize, "checksum partials")?;
        let timer = h.timer()?;
        Ok(CudaMatmul {
            h,
            n,
            precision,
            a,
            b,
            c,
            gemm,
            checksum,
            gather,
            partial,
            grid,
            timer,
        })
    }
}

impl MatmulOp for CudaMatmul {
    fn run(&mut self) -> DeviceResult<Seconds> {
        self.gemm.run(&self.timer, &self.a, &self.b, &self.c)
    }

    fn read(&mut self, positions: &[(usize, usize)]) -> DeviceResult<Vec<f64>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let h = &self.h;
        let what = format!(
            "sampled elements of C with {}",
            self.gather.kernel.describe()
        );
        let count = u32::try_from(positions.len())
            .map_err(|_| h.failed(&what, "too many positions for one gather"))?;
        let idx = h.upload(&flat_indices(self.n, positions), "sample positions")?;
        let len = (self.n as u64).saturating_mul(self.n as u64);
        let grid = grid(h.sms, u64::from(count), u64::from(BLOCK));
        let bits: Vec<u64> = match self.precision {
            Precision::F32 => {
                let out = h.alloc::<u32>(positions.len(), "gathered elements")?;
                let fill = f32::NAN.to_bits();
                h.launch(&self.gather)
                    .ptr(&self.c)
                    .u64(&len)
                    .ptr(&idx)
                    .u32(&count)
                    .ptr(&out)
                    .u32(&fill)
                    .run(grid)?;
                h.download(&out, positions.len(), &what)?
                    .into_iter()
                    .map(u64::from)
                    .collect()
            }
            Precision::F64 => {
                let out = h.alloc::<u64>(positions.len(), "gathered elements")?;
                let fill = f64::NAN.to_bits();
                h.launch(&self.gather)
                    .ptr(&self.c)
                    .u64(&len)
                    .ptr(&idx)
                    .u32(&count)
                    .ptr(&out)
                    .u64(&fill)
                    .run(grid)?;
                h.download(&out, positions.len(), &what)?
            }
        };
        Ok(bits
            .into_iter()
            .map(|b| bits_to_f64(self.precision, b))
            .collect())
    }

    fn checksum(&mut self) -> DeviceResult<u64> {
        let h = &self.h;
        let len = (self.n as u64).saturating_mul(self.n as u64);
        h.launch(&self.checksum)
            .ptr(&self.c)
            .u64(&len)
            .ptr(&self.partial)
            .run(self.grid)?;
        let parts = h.download(
            &self.partial,
            self.grid as usize,
            &format!("the partials of {}", self.checksum.kernel.describe()),
        )?;
        Ok(wrapping_total(&parts))
    }
}

/// Wrapping sum of per-block u64 partials (hash sums are order-free).
pub(crate) fn wrapping_total(parts: &[u64]) -> u64 {
    parts.iter().fold(0u64, |s, &x| s.wrapping_add(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::gen;

    #[test]
    fn flat_indices_mirror_the_cpu_backend() {
        let n = 4;
        assert_eq!(
            flat_indices(n, &[(0, 0), (1, 2), (3, 3), (0, 5), (4, 0)]),
            [0, 6, 15, 5, 16]
        );
        assert_eq!(flat_indices(n, &[(usize::MAX, 2)]), [u64::MAX]);
    }

    #[test]
    fn gathered_bits_widen_like_the_cpu_read() {
        let x = 0.375f32;
        assert_eq!(bits_to_f64(Precision::F32, u64::from(x.to_bits())), 0.375);
        assert!(bits_to_f64(Precision::F32, u64::from(f32::NAN.to_bits())).is_nan());
        assert!(bits_to_f64(Precision::F64, f64::NAN.to_bits()).is_nan());
        assert_eq!(bits_to_f64(Precision::F64, (-2.5f64).to_bits()), -2.5);
    }

    #[test]
    fn checksum_partials_add_up_to_the_cpu_definition() {
        // CpuMatmul::checksum over a fake f32 C, split into uneven "blocks".
        let c: Vec<f32> = (0..1000).map(|i| (i as f32).sin()).collect();
        let want = c
            .iter()
            .enumerate()
            .map(|(i, x)| gen::digest_term(i as u64, u64::from(x.to_bits())))
            .fold(0u64, u64::wrapping_add);
        let parts: Vec<u64> = c
            .chunks(137)
            .enumerate()
            .map(|(b, ch)| {
                ch.iter()
                    .enumerate()
                    .map(|(k, x)| gen::digest_term((b * 137 + k) as u64, u64::from(x.to_bits())))
                    .fold(0u64, u64::wrapping_add)
            })
            .collect();
        assert_eq!(wrapping_total(&parts), want);
    }
}

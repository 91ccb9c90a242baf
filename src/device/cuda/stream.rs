//! [`StreamOp`] on a GPU: three f64 buffers and kiln's bandwidth kernels.
//!
//! `a` is generated on the device (`kiln_gen_stream_f64`, the CPU backend's
//! values), `b` and `c` are zeroed (`kiln_fill_u64`). Each pass times the
//! bandwidth kernel alone with CUDA events; the read kernel's per-block sums
//! and the digest kernel's partials are added on the host in block order
//! (every value is an integer, so the f64 sums are exact in any order).

use cudarc::driver::CudaSlice;

use crate::device::cuda::gpu::{Func, Gpu, Handle, Timer};
use crate::device::cuda::kernels::{grid, Kernel, BLOCK, BW_ITEMS_PER_BLOCK};
use crate::device::cuda::matmul::wrapping_total;
use crate::device::{BufferDigest, DeviceResult, Seconds, StreamBuffer, StreamKernel, StreamOp};

/// Sum of per-block f64 partials, in block order.
pub(crate) fn sum_partials(parts: &[f64]) -> f64 {
    parts.iter().sum()
}

/// The [`BufferDigest`] of a buffer from `kiln_digest_f64`'s partials.
pub(crate) fn digest_from_partials(sums: &[f64], hashes: &[u64]) -> BufferDigest {
    BufferDigest {
        sum: sum_partials(sums),
        hash: wrapping_total(hashes),
    }
}

/// The bandwidth buffers of one GPU.
pub(crate) struct CudaStreamOp {
    h: Handle,
    len: usize,
    a: CudaSlice<f64>,
    b: CudaSlice<f64>,
    c: CudaSlice<f64>,
    partial_sum: CudaSlice<f64>,
    partial_hash: CudaSlice<u64>,
    grid: u32,
    read: Func,
    write: Func,
    copy: Func,
    triad: Func,
    digest: Func,
    gather: Func,
    timer: Timer,
}

impl CudaStreamOp {
    /// Allocates and fills the three buffers of `len` elements.
    pub fn new(gpu: &mut Gpu, len: usize, seed: u64) -> DeviceResult<CudaStreamOp> {
        let [gen, fill, read, write, copy, triad, digest, gather] = gpu.functions([
            Kernel::GenStreamF64,
            Kernel::FillU64,
            Kernel::BwRead,
            Kernel::BwWrite,
            Kernel::BwCopy,
            Kernel::BwTriad,
            Kernel::DigestF64,
            Kernel::GatherU64,
        ])?;
        let h = gpu.h.clone();
        let a = h.alloc::<f64>(len, "bandwidth buffer a")?;
        let b = h.alloc::<f64>(len, "bandwidth buffer b")?;
        let c = h.alloc::<f64>(len, "bandwidth buffer c")?;
        let grid = grid(h.sms, len as u64, BW_ITEMS_PER_BLOCK);
        let partial_sum = h.alloc::<f64>(grid as usize, "bandwidth partial sums")?;
        let partial_hash = h.alloc::<u64>(grid as usize, "bandwidth partial hashes")?;
        let n = len as u64;
        h.launch(&gen).ptr(&a).u64(&n).u64(&seed).run(grid)?;
        let zero = 0u64;
        for buf in [&b, &c] {
            h.launch(&fill).ptr(buf).u64(&n).u64(&zero).run(grid)?;
        }
        h.sync("generating the bandwidth buffers")?;
        let timer = h.timer()?;
        Ok(CudaStreamOp {
            h,
            len,
            a,
            b,
            c,
            partial_sum,
            partial_hash,
            grid,
            read,
            write,
            copy,
            triad,
            digest,
            gather,
            timer,
        })
    }

    fn buffer(&self, which: StreamBuffer) -> &CudaSlice<f64> {
        match which {
            StreamBuffer::A => &self.a,
            StreamBuffer::B => &self.b,
            StreamBuffer::C => &self.c,
        }
    }
}

impl StreamOp for CudaStreamOp {
    fn len(&self) -> usize {
        self.len
    }

    fn run(&mut self, kernel: StreamKernel) -> DeviceResult<(Seconds, Option<f64>)> {
        let (h, n, g) = (&self.h, self.len as u64, self.grid);
        let f = match kernel {
            StreamKernel::Read => &self.read,
            StreamKernel::Write => &self.write,
            StreamKernel::Copy => &self.copy,
            StreamKernel::Triad => &self.triad,
        };
        let t = self.timer.time_each(h, &f.kernel.describe(), || {
            let mut l = h.launch(f);
            match kernel {
                StreamKernel::Read => l.ptr(&self.a).u64(&n).ptr(&self.partial_sum),
                StreamKernel::Write => l.ptr(&self.b).u64(&n),
                StreamKernel::Copy => l.ptr(&self.a).ptr(&self.c).u64(&n),
                StreamKernel::Triad => l.ptr(&self.a).ptr(&self.c).ptr(&self.b).u64(&n),
            }
            .run(g)
        })?;
        let sum = if kernel == StreamKernel::Read {
            let parts = h.download(
                &self.partial_sum,
                g as usize,
                &format!("the partial sums of {}", f.kernel.describe()),
            )?;
            Some(sum_partials(&parts))
        } else {
            None
        };
        Ok((t, sum))
    }

    fn digest(&mut self, buffer: StreamBuffer) -> DeviceResult<BufferDigest> {
        let (h, n, g) = (&self.h, self.len as u64, self.grid);
        h.launch(&self.digest)
            .ptr(self.buffer(buffer))
            .u64(&n)
            .ptr(&self.partial_sum)
            .ptr(&self.partial_hash)
            .run(g)?;
        let what = format!("the partials of {}", self.digest.kernel.describe());
        let sums = h.download(&self.partial_sum, g as usize, &what)?;
        let hashes = h.download(&self.partial_hash, g as usize, &what)?;
        Ok(digest_from_partials(&sums, &hashes))
    }

    fn read(&mut self, buffer: StreamBuffer, indices: &[usize]) -> DeviceResult<Vec<f64>> {
        if indices.is_empty() {
            return Ok(Vec::new());
        }
        let h = &self.h;
        let what = format!("sampled elements with {}", self.gather.kernel.describe());
        let count = u32::try_from(indices.len())
            .map_err(|_| h.failed(&what, "too many indices for one gather"))?;
        let idx: Vec<u64> = indices.iter().map(|&i| i as u64).collect();
        let idx = h.upload(&idx, "sample indices")?;
        let out = h.alloc::<u64>(indices.len(), "gathered elements")?;
        let (n, fill) = (self.len as u64, f64::NAN.to_bits());
        h.launch(&self.gather)
            .ptr(self.buffer(buffer))
            .u64(&n)
            .ptr(&idx)
            .u32(&count)
            .ptr(&out)
            .u64(&fill)
            .run(grid(h.sms, u64::from(count), u64::from(BLOCK)))?;
        let bits = h.download(&out, indices.len(), &what)?;
        Ok(bits.into_iter().map(f64::from_bits).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gen;

    #[test]
    fn digest_partials_reproduce_the_cpu_digest() {
        // What CpuStream::digest computes for a, from per-block partials as
        // kiln_digest_f64 writes them (any split of the buffer).
        let a: Vec<f64> = (0..10_001).map(|i| gen::stream_value(9, i)).collect();
        let cpu_sum: f64 = a.iter().sum();
        let cpu_hash = a
            .iter()
            .enumerate()
            .map(|(i, x)| gen::digest_term(i as u64, x.to_bits()))
            .fold(0u64, u64::wrapping_add);
        let blocks = 7;
        let per = a.len().div_ceil(blocks);
        let (mut sums, mut hashes) = (vec![0.0; blocks], vec![0u64; blocks]);
        for (i, x) in a.iter().enumerate() {
            sums[i / per] += x;
            hashes[i / per] = hashes[i / per].wrapping_add(gen::digest_term(i as u64, x.to_bits()));
        }
        let d = digest_from_partials(&sums, &hashes);
        assert_eq!(d.sum, cpu_sum);
        assert_eq!(d.hash, cpu_hash);
        assert_eq!(sum_partials(&[]), 0.0);
    }
}

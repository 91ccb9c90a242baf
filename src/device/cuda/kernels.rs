//! kiln's CUDA kernels as the host sees them: the embedded PTX modules, each
//! kernel's entry name, module and parameter widths, and the launch shapes.
//!
//! The PTX is generated from `kernels/*.cu` and committed (see
//! `kernels/README.md`); the driver JIT-compiles it for the GPU it finds, so
//! a node needs only the NVIDIA driver (r535 or later: PTX ISA 8.2). The
//! parameter table is checked against the PTX in the tests below and against
//! every launch at run time ([`crate::device::cuda::gpu::Launch`]), so a
//! scalar of the wrong width is an error, never undefined behaviour.

/// One PTX file of `kernels/ptx/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Module {
    Gen,
    Bandwidth,
    Verify,
    Memtest,
    Sha256d,
    Matmul,
}

impl Module {
    /// Every module.
    pub const ALL: [Module; 6] = [
        Module::Gen,
        Module::Bandwidth,
        Module::Verify,
        Module::Memtest,
        Module::Sha256d,
        Module::Matmul,
    ];

    /// Position in [`Module::ALL`] (the device's module cache slot).
    pub fn slot(self) -> usize {
        self as usize
    }

    /// File name under `kernels/ptx/`, for messages.
    pub fn file(self) -> &'static str {
        match self {
            Module::Gen => "gen.ptx",
            Module::Bandwidth => "bandwidth.ptx",
            Module::Verify => "verify.ptx",
            Module::Memtest => "memtest.ptx",
            Module::Sha256d => "sha256d.ptx",
            Module::Matmul => "matmul.ptx",
        }
    }

    /// The PTX text to load: the file of the same name under
    /// `$KILN_PTX_DIR` when that is set (to try a changed kernel, or a
    /// deliberately broken one, without rebuilding kiln), else the embedded
    /// text. Err names the file that could not be read.
    pub fn source(self) -> Result<std::borrow::Cow<'static, str>, String> {
        match std::env::var_os("KILN_PTX_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => {
                let path = std::path::Path::new(&dir).join(self.file());
                std::fs::read_to_string(&path)
                    .map(std::borrow::Cow::Owned)
                    .map_err(|e| format!("KILN_PTX_DIR: cannot read {}: {e}", path.display()))
            }
            None => Ok(std::borrow::Cow::Borrowed(self.ptx())),
        }
    }

    /// The embedded PTX text.
    pub fn ptx(self) -> &'static str {
        match self {
            Module::Gen => include_str!("../../../kernels/ptx/gen.ptx"),
            Module::Bandwidth => include_str!("../../../kernels/ptx/bandwidth.ptx"),
            Module::Verify => include_str!("../../../kernels/ptx/verify.ptx"),
            Module::Memtest => include_str!("../../../kernels/ptx/memtest.ptx"),
            Module::Sha256d => include_str!("../../../kernels/ptx/sha256d.ptx"),
            Module::Matmul => include_str!("../../../kernels/ptx/matmul.ptx"),
        }
    }
}

/// A kernel the host launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    GenMatrixF64,
    GenMatrixF32,
    GenMatrixBf16,
    GenMatrixF16,
    GenMatrixE4m3,
    GenStreamF64,
    FillU64,
    BwRead,
    BwWrite,
    BwCopy,
    BwTriad,
    DigestF64,
    ChecksumU64,
    ChecksumU32,
    ChecksumU16,
    GatherU64,
    GatherU32,
    GatherU16,
    MtFill,
    MtVerify,
    MtVerifyAndWrite,
    MtCollect,
    ShaScan,
    ShaCollect,
    MmaBf16,
    MmaF16,
}

/// Width in bytes of a pointer parameter.
const P: u8 = 8;

impl Kernel {
    /// Every kernel.
    #[cfg(test)]
    pub const ALL: [Kernel; 26] = [
        Kernel::GenMatrixF64,
        Kernel::GenMatrixF32,
        Kernel::GenMatrixBf16,
        Kernel::GenMatrixF16,
        Kernel::GenMatrixE4m3,
        Kernel::GenStreamF64,
        Kernel::FillU64,
        Kernel::BwRead,
        Kernel::BwWrite,
        Kernel::BwCopy,
        Kernel::BwTriad,
        Kernel::DigestF64,
        Kernel::ChecksumU64,
        Kernel::ChecksumU32,
        Kernel::ChecksumU16,
        Kernel::GatherU64,
        Kernel::GatherU32,
        Kernel::GatherU16,
        Kernel::MtFill,
        Kernel::MtVerify,
        Kernel::MtVerifyAndWrite,
        Kernel::MtCollect,
        Kernel::ShaScan,
        Kernel::ShaCollect,
        Kernel::MmaBf16,
        Kernel::MmaF16,
    ];

    /// The PTX entry name (`extern "C"` function name).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::GenMatrixF64 => "kiln_gen_matrix_f64",
            Kernel::GenMatrixF32 => "kiln_gen_matrix_f32",
            Kernel::GenMatrixBf16 => "kiln_gen_matrix_bf16",
            Kernel::GenMatrixF16 => "kiln_gen_matrix_f16",
            Kernel::GenMatrixE4m3 => "kiln_gen_matrix_e4m3",
            Kernel::GenStreamF64 => "kiln_gen_stream_f64",
            Kernel::FillU64 => "kiln_fill_u64",
            Kernel::BwRead => "kiln_bw_read",
            Kernel::BwWrite => "kiln_bw_write",
            Kernel::BwCopy => "kiln_bw_copy",
            Kernel::BwTriad => "kiln_bw_triad",
            Kernel::DigestF64 => "kiln_digest_f64",
            Kernel::ChecksumU64 => "kiln_checksum_u64",
            Kernel::ChecksumU32 => "kiln_checksum_u32",
            Kernel::ChecksumU16 => "kiln_checksum_u16",
            Kernel::GatherU64 => "kiln_gather_u64",
            Kernel::GatherU32 => "kiln_gather_u32",
            Kernel::GatherU16 => "kiln_gather_u16",
            Kernel::MtFill => "kiln_mt_fill",
            Kernel::MtVerify => "kiln_mt_verify",
            Kernel::MtVerifyAndWrite => "kiln_mt_verify_and_write",
            Kernel::MtCollect => "kiln_mt_collect",
            Kernel::ShaScan => "kiln_sha256d_scan",
            Kernel::ShaCollect => "kiln_sha256d_collect",
            Kernel::MmaBf16 => "kiln_mma_bf16",
            Kernel::MmaF16 => "kiln_mma_f16",
        }
    }

    /// The module that holds it.
    pub fn module(self) -> Module {
        match self {
            Kernel::GenMatrixF64
            | Kernel::GenMatrixF32
            | Kernel::GenMatrixBf16
            | Kernel::GenMatrixF16
            | Kernel::GenMatrixE4m3
            | Kernel::GenStreamF64
            | Kernel::FillU64 => Module::Gen,
            Kernel::BwRead | Kernel::BwWrite | Kernel::BwCopy | Kernel::BwTriad => {
                Module::Bandwidth
            }
            Kernel::DigestF64
            | Kernel::ChecksumU64
            | Kernel::ChecksumU32
            | Kernel::ChecksumU16
            | Kernel::GatherU64
            | Kernel::GatherU32
            | Kernel::GatherU16 => Module::Verify,
            Kernel::MtFill | Kernel::MtVerify | Kernel::MtVerifyAndWrite | Kernel::MtCollect => {
                Module::Memtest
            }
            Kernel::ShaScan | Kernel::ShaCollect => Module::Sha256d,
            Kernel::MmaBf16 | Kernel::MmaF16 => Module::Matmul,
        }
    }

    /// Byte width of each parameter, in order (`kernels/README.md`): 8 for
    /// a pointer, a `u64` or a `double`, 4 for a `u32`, 2 for a `u16`.
    pub fn params(self) -> &'static [u8] {
        match self {
            // (out, rows, cols, seed, stream, col_major)
            Kernel::GenMatrixF64
            | Kernel::GenMatrixF32
            | Kernel::GenMatrixBf16
            | Kernel::GenMatrixF16
            | Kernel::GenMatrixE4m3 => &[P, 8, 8, 8, 8, 4],
            // (out, len, seed) / (out, len, value)
            Kernel::GenStreamF64 | Kernel::FillU64 => &[P, 8, 8],
            // (a, len, partial)
            Kernel::BwRead => &[P, 8, P],
            // (b, len)
            Kernel::BwWrite => &[P, 8],
            // (a, c, len)
            Kernel::BwCopy => &[P, P, 8],
            // (a, c, b, len)
            Kernel::BwTriad => &[P, P, P, 8],
            // (x, len, partial_sum, partial_hash)
            Kernel::DigestF64 => &[P, 8, P, P],
            // (x, len, partial)
            Kernel::ChecksumU64 | Kernel::ChecksumU32 | Kernel::ChecksumU16 => &[P, 8, P],
            // (src, len, idx, count, out, fill)
            Kernel::GatherU64 => &[P, 8, P, 4, P, 8],
            Kernel::GatherU32 => &[P, 8, P, 4, P, 4],
            Kernel::GatherU16 => &[P, 8, P, 4, P, 2],
            // (buf, words, kind, param)
            Kernel::MtFill => &[P, 8, 4, 8],
            // (buf, words, kind, param, keep, stats, bad)
            Kernel::MtVerify => &[P, 8, 4, 8, 4, P, P],
            // (buf, words, expect_kind, expect_param, next_kind, next_param,
            //  descending, keep, stats, bad)
            Kernel::MtVerifyAndWrite => &[P, 8, 4, 8, 4, 8, 4, 4, P, P],
            // (stats, bad, blocks, keep, descending, out)
            Kernel::MtCollect => &[P, P, 4, 4, 4, P],
            // (job, start, count, rec, samples)
            Kernel::ShaScan => &[P, 4, 4, P, P],
            // (rec, blocks, out)
            Kernel::ShaCollect => &[P, 4, P],
            // (A, Bt, C, n)
            Kernel::MmaBf16 | Kernel::MmaF16 => &[P, P, P, 4],
        }
    }

    /// `"kiln_bw_copy (bandwidth.ptx)"`, for messages.
    pub fn describe(self) -> String {
        format!("{} ({})", self.name(), self.module().file())
    }
}

/// Threads per block of every launch (a multiple of 32, within every
/// kernel's maximum: 256 is the documented right choice for all of them).
pub(crate) const BLOCK: u32 = 256;

/// Blocks per multiprocessor of a full grid: enough to saturate the GPU (the
/// kernels are grid-stride, their tails even out).
pub(crate) const BLOCKS_PER_SM: u32 = 8;

/// Work items one block takes per step of the bandwidth kernels (16-byte
/// vectors of two f64, four in flight per thread).
pub(crate) const BW_ITEMS_PER_BLOCK: u64 = 2 * 4 * BLOCK as u64;

/// Words of one memtest tile (`8 * blockDim.x`): a verify block's unit.
pub(crate) const MT_TILE_WORDS: u64 = 8 * BLOCK as u64;

/// Threads per block of kiln's mma kernel (8 warps).
pub(crate) const MMA_THREADS: u32 = 256;

/// Output tile edge of one mma block: n must be a multiple of it.
pub(crate) const MMA_TILE: usize = 128;

/// Nonces of one scan step (`4 * blockDim.x`): a scan block's unit.
pub(crate) const SHA_STEP_NONCES: u64 = 4 * BLOCK as u64;

/// Grid size for `items` work items taken `per_block` at a time by each
/// block: a full grid ([`BLOCKS_PER_SM`] per SM) or fewer blocks when there is
/// not enough work for it, and never 0 (a launch of 0 blocks is an error).
pub(crate) fn grid(sms: u32, items: u64, per_block: u64) -> u32 {
    let full = u64::from(BLOCKS_PER_SM) * u64::from(sms.max(1));
    let needed = items.div_ceil(per_block.max(1)).max(1);
    // full <= 8 * u32::MAX, needed clamped to it: fits in u32 after min with
    // the CUDA limit of 2^31 - 1 blocks.
    full.min(needed).min((1 << 31) - 1) as u32
}

/// A 1-D launch of `grid` blocks of [`BLOCK`] threads, no dynamic shared
/// memory.
pub(crate) fn config(grid: u32) -> cudarc::driver::LaunchConfig {
    cudarc::driver::LaunchConfig {
        grid_dim: (grid.max(1), 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter widths of entry `name` as the PTX declares them.
    fn ptx_params(ptx: &str, name: &str) -> Option<Vec<u8>> {
        let start = ptx.find(&format!(".entry {name}("))?;
        let rest = &ptx[start..];
        let end = rest.find(')')?;
        Some(
            rest[..end]
                .lines()
                .filter_map(|l| l.trim().strip_prefix(".param ."))
                .map(|l| {
                    let ty = l.split_whitespace().next().unwrap_or("");
                    let bits: u32 = ty[1..].parse().expect("a sized PTX type");
                    (bits / 8) as u8
                })
                .collect(),
        )
    }

    #[test]
    fn every_kernel_exists_in_its_module_with_the_parameters_the_host_passes() {
        for k in Kernel::ALL {
            let ptx = k.module().ptx();
            let params = ptx_params(ptx, k.name())
                .unwrap_or_else(|| panic!("{} not found in {}", k.name(), k.module().file()));
            assert_eq!(params, k.params(), "{}", k.describe());
        }
    }

    #[test]
    fn modules_are_the_documented_ptx_target() {
        for m in Module::ALL {
            let ptx = m.ptx();
            assert!(ptx.contains(".version 8.2"), "{}", m.file());
            assert!(ptx.contains(".target sm_80"), "{}", m.file());
            assert!(ptx.contains(".address_size 64"), "{}", m.file());
            assert!(!ptx.contains('\0'), "{}", m.file());
            assert_eq!(Module::ALL[m.slot()], m);
        }
    }

    #[test]
    fn grid_is_full_for_big_work_small_for_small_and_never_zero() {
        assert_eq!(grid(132, 1 << 30, BW_ITEMS_PER_BLOCK), 8 * 132);
        assert_eq!(grid(132, 5000, 2048), 3);
        assert_eq!(grid(132, 0, 2048), 1);
        assert_eq!(grid(0, 1 << 30, 2048), 8);
        assert_eq!(grid(132, 1, 0), 1);
        assert_eq!(grid(u32::MAX, u64::MAX, 1), (1 << 31) - 1);
        let c = config(0);
        assert_eq!((c.grid_dim, c.block_dim), ((1, 1, 1), (BLOCK, 1, 1)));
    }
}

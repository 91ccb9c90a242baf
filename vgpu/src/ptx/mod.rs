//! PTX: parsing a module's text, and executing its kernels.
//!
//! This is the interface the driver (`crate::driver`) uses. It is fixed;
//! the implementation lives in the submodules: `lexer` (text to tokens),
//! `parse` (tokens to a syntax tree, register scopes), `decode` (syntax tree
//! to the compact instruction form, once, at [`Module::parse`]), `exec`
//! (the warp engine: divergence, barriers, memory), `shared` (shared memory
//! and its race detector), `mma` (matrix fragments), `float` (rounding).
//!
//! Generic addresses: shared memory is seen at [`SHARED_WINDOW`] + offset
//! and local memory at [`LOCAL_WINDOW`] + offset (4 GiB each); every other
//! generic address is global and goes to [`Memory`]. The driver must not
//! hand out device pointers inside these windows.

use std::fmt;

mod decode;
mod exec;
mod float;
mod lexer;
mod mma;
mod parse;
mod shared;

pub use shared::{LOCAL_WINDOW, SHARED_WINDOW};

/// An error in a PTX text: the 1-based line of the text and what is wrong
/// there. `Display`: `line 12: unknown instruction 'foo.b32'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtxError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for PtxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for PtxError {}

/// One parameter of a `.entry`, as its signature declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    /// Bytes (`.u64` 8, `.u32` 4, `.b8 x[24]` 24, ...).
    pub size: usize,
    pub align: usize,
}

/// What the driver needs to know of a kernel before launching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelInfo {
    pub name: String,
    /// 1-based line of the `.entry` directive.
    pub line: usize,
    pub params: Vec<ParamInfo>,
    /// `.maxntid`, when declared (missing dimensions are 1).
    pub maxntid: Option<[u32; 3]>,
    /// `.reqntid`, when declared.
    pub reqntid: Option<[u32; 3]>,
    /// Bytes of `.shared` declared (statically) by the kernel and the
    /// module-level `.shared` variables it uses.
    pub static_shared_bytes: u64,
    /// Bytes of `.local` per thread.
    pub local_bytes: u64,
}

/// A module-scope `.global` (or `.const`) variable: the driver allocates it
/// in device memory at load time and passes its address to [`launch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalVar {
    pub name: String,
    pub size: usize,
    pub align: usize,
    /// The initial bytes, `size` long (zeros where no initialiser).
    pub init: Vec<u8>,
}

/// A parsed and decoded module.
pub struct Module {
    imp: ModuleImpl,
}

/// The decoded module: per kernel its interface and decoded code.
struct ModuleImpl {
    infos: Vec<KernelInfo>,
    kernels: Vec<decode::Kernel>,
    globals: Vec<GlobalVar>,
}

impl Module {
    /// Parses and decodes a PTX text. Fails with the line of the first
    /// problem: a syntax error, an unknown instruction or type (named), an
    /// undeclared register or label, an unsupported `.version`/`.target`.
    pub fn parse(text: &str) -> Result<Module, PtxError> {
        let ast = parse::parse(text)?;
        let mut globals = Vec::new();
        let mut gidx = Vec::with_capacity(ast.vars.len());
        for v in &ast.vars {
            match v.space {
                parse::Space::Global | parse::Space::Const => {
                    if v.is_extern {
                        return Err(PtxError {
                            line: v.line as usize,
                            message: format!("extern variable '{}' is not supported", v.name),
                        });
                    }
                    gidx.push(Some(globals.len() as u32));
                    globals.push(GlobalVar {
                        name: v.name.clone(),
                        size: v.size as usize,
                        align: v.align as usize,
                        init: v.init.clone(),
                    });
                }
                _ => gidx.push(None),
            }
        }
        let mut infos = Vec::new();
        let mut kernels = Vec::new();
        for f in &ast.funcs {
            if infos.iter().any(|k: &KernelInfo| k.name == f.name) {
                return Err(PtxError {
                    line: f.line as usize,
                    message: format!("kernel '{}' defined twice", f.name),
                });
            }
            let mut k = decode::decode_kernel(f, &ast.vars, &gidx)?;
            k.files = ast.files.clone();
            infos.push(KernelInfo {
                name: f.name.clone(),
                line: f.line as usize,
                params: f
                    .params
                    .iter()
                    .map(|p| ParamInfo {
                        name: p.name.clone(),
                        size: p.size as usize,
                        align: p.align as usize,
                    })
                    .collect(),
                maxntid: f.maxntid,
                reqntid: f.reqntid,
                static_shared_bytes: k.static_shared,
                local_bytes: k.local_bytes,
            });
            kernels.push(k);
        }
        Ok(Module {
            imp: ModuleImpl {
                infos,
                kernels,
                globals,
            },
        })
    }

    /// Every `.entry` of the module, in text order.
    pub fn kernels(&self) -> &[KernelInfo] {
        &self.imp.infos
    }

    /// The `.entry` called `name`.
    pub fn kernel(&self, name: &str) -> Option<&KernelInfo> {
        self.kernels().iter().find(|k| k.name == name)
    }

    /// Module-scope variables in global (or const) memory, in text order.
    pub fn globals(&self) -> &[GlobalVar] {
        &self.imp.globals
    }
}

/// Grid and block of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared_bytes: u32,
}

/// Whether the bytes a global read returned had all been written before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Every byte read was written (by a copy, a memset or a kernel).
    Written,
    /// At least one byte read was never written.
    NeverWritten,
}

/// Global (device) memory as the interpreter sees it. Addresses are the
/// driver's device pointers (one virtual address space for all devices).
/// Each call covers one access of one thread (1, 2, 4, 8 or 16 bytes; the
/// interpreter checks alignment before calling).
pub trait Memory {
    /// Reads `out.len()` bytes at `addr`. `Err` says why the access is
    /// illegal in words that name the allocation, e.g. "8 bytes past the end
    /// of allocation 0x7f0000100000 (4096 bytes)" or "freed allocation ...".
    fn read(&mut self, addr: u64, out: &mut [u8]) -> Result<Init, String>;
    /// Writes `data` at `addr`; `Err` as for [`Memory::read`].
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), String>;
}

/// Why a launch failed. The driver maps each to a `CUresult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Launch refused before running: wrong parameter count or sizes,
    /// block larger than `.maxntid`/`.reqntid` or 1024 threads, a zero
    /// dimension (CUDA_ERROR_INVALID_VALUE).
    InvalidValue,
    /// Shared memory (static + dynamic) over 48 KiB, or more than the
    /// model allows (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES).
    OutOfResources,
    /// An access outside every live allocation or outside a `.shared` /
    /// `.local` window (CUDA_ERROR_ILLEGAL_ADDRESS).
    IllegalAddress,
    /// An access not aligned to its size (CUDA_ERROR_MISALIGNED_ADDRESS).
    MisalignedAddress,
    /// A shared-memory data race (reported as CUDA_ERROR_LAUNCH_FAILED).
    SharedRace,
    /// Undefined behaviour the ISA names: a `.sync` instruction whose
    /// member mask names lanes that are not executing it, a `bra.uni` that
    /// diverges, a barrier that cannot complete, `trap`
    /// (CUDA_ERROR_ILLEGAL_INSTRUCTION or LAUNCH_FAILED).
    IllegalInstruction,
}

/// A failed launch: what kind, and one line naming the kernel, the PTX line,
/// block and thread, and (for memory) the address and allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub message: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a completed launch did, for the timing model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchStats {
    /// Bytes of global memory read (loads, `cp.async` sources).
    pub global_bytes_read: u64,
    /// Bytes of global memory written.
    pub global_bytes_written: u64,
    /// Floating-point operations outside tensor cores: an `fma` counts 2,
    /// `add`/`mul`/`sub` 1, per thread.
    pub fp32_flops: u64,
    pub fp64_flops: u64,
    /// `mma` operations: 2*M*N*K per warp-level instruction.
    pub tensor_flops: u64,
    /// Integer and logic instructions executed, per thread.
    pub int_ops: u64,
    /// Instructions issued, per warp.
    pub warp_instructions: u64,
    /// One line per kind of problem that does not fail a launch, e.g. a read
    /// of never-written global memory (the first such read is named, with
    /// a count of the others).
    pub warnings: Vec<String>,
}

/// Runs `kernel` of `module` over the grid, lanes of each warp together.
///
/// - `params`: one byte string per `.param` of the `.entry`, each exactly
///   the declared size (checked: `FaultKind::InvalidValue`).
/// - `globals`: the device address of each of [`Module::globals`], in the
///   same order.
///
/// Blocks run one after another; within a block, warps run until a barrier
/// or exit. On a fault nothing more runs and the writes done so far stay.
pub fn launch(
    module: &Module,
    kernel: &str,
    cfg: &LaunchConfig,
    params: &[Vec<u8>],
    globals: &[u64],
    mem: &mut dyn Memory,
) -> Result<LaunchStats, Fault> {
    let invalid = |message: String| Fault {
        kind: FaultKind::InvalidValue,
        message,
    };
    let Some(idx) = module.imp.infos.iter().position(|k| k.name == kernel) else {
        return Err(invalid(format!("no kernel named '{kernel}' in the module")));
    };
    let info = &module.imp.infos[idx];
    let k = &module.imp.kernels[idx];
    if params.len() != info.params.len() {
        return Err(invalid(format!(
            "{kernel}: {} parameters given, the kernel takes {}",
            params.len(),
            info.params.len()
        )));
    }
    for (i, (p, given)) in info.params.iter().zip(params).enumerate() {
        if given.len() != p.size {
            return Err(invalid(format!(
                "{kernel}: parameter {i} ('{}') is {} bytes, {} given",
                p.name,
                p.size,
                given.len()
            )));
        }
    }
    if globals.len() != module.imp.globals.len() {
        return Err(invalid(format!(
            "{kernel}: {} global addresses given, the module has {} globals",
            globals.len(),
            module.imp.globals.len()
        )));
    }
    let (g, b) = (cfg.grid, cfg.block);
    if g.contains(&0) || b.contains(&0) {
        return Err(invalid(format!(
            "{kernel}: zero dimension in grid ({},{},{}) or block ({},{},{})",
            g[0], g[1], g[2], b[0], b[1], b[2]
        )));
    }
    let threads = b[0] as u64 * b[1] as u64 * b[2] as u64;
    if threads > 1024 || b[0] > 1024 || b[1] > 1024 || b[2] > 64 {
        return Err(invalid(format!(
            "{kernel}: block ({},{},{}) is {threads} threads, beyond the limit of 1024 (x, y <= 1024, z <= 64)",
            b[0], b[1], b[2]
        )));
    }
    if g[1] > 65535 || g[2] > 65535 {
        return Err(invalid(format!(
            "{kernel}: grid ({},{},{}) beyond 65535 in y or z",
            g[0], g[1], g[2]
        )));
    }
    if let Some(m) = info.maxntid {
        let max = m[0] as u64 * m[1] as u64 * m[2] as u64;
        if threads > max {
            return Err(invalid(format!(
                "{kernel}: block ({},{},{}) is {threads} threads, beyond .maxntid {},{},{}",
                b[0], b[1], b[2], m[0], m[1], m[2]
            )));
        }
    }
    if let Some(r) = info.reqntid {
        if r != b {
            return Err(invalid(format!(
                "{kernel}: block ({},{},{}) differs from .reqntid {},{},{}",
                b[0], b[1], b[2], r[0], r[1], r[2]
            )));
        }
    }
    let smem = info.static_shared_bytes + cfg.dynamic_shared_bytes as u64;
    if smem > 49152 {
        return Err(Fault {
            kind: FaultKind::OutOfResources,
            message: format!(
                "{kernel}: {} bytes of static and {} of dynamic shared memory, over the 49152-byte limit",
                info.static_shared_bytes, cfg.dynamic_shared_bytes
            ),
        });
    }
    let mut pbuf = vec![0u8; k.param_bytes as usize];
    for (off, p) in k.param_offsets.iter().zip(params) {
        pbuf[*off as usize..*off as usize + p.len()].copy_from_slice(p);
    }
    let mut run = exec::Run::new(k, mem, pbuf, globals, g, b, cfg.dynamic_shared_bytes as u64);
    run.run()?;
    Ok(run.stats)
}

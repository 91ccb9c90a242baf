//! Decoding: the syntax tree of a kernel to the compact instruction form the
//! warp engine runs.
//!
//! It exists so that `launch` never looks at text: every opcode, modifier
//! and type is resolved here once, every operand becomes a register index
//! (immediates, symbol addresses and special registers such as `%tid.x`
//! become read-only *constant registers* filled when a warp starts), branch
//! targets become instruction indices, and symbols become offsets in their
//! state space. Whatever the ISA does not allow, or this interpreter does
//! not implement, fails here with a `PtxError` naming it and its line.

use std::collections::HashMap;

use super::float::Rnd;
use super::lexer::FloatLit;
use super::parse::{AddrBase, Function, Opnd, RawInst, Space, Ty, VarDecl};
use super::PtxError;

/// No register (optional operands).
pub const NO_REG: u32 = u32::MAX;

/// Integer width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum W {
    W16,
    W32,
    W64,
}

impl W {
    pub fn of(ty: Ty) -> Option<W> {
        match ty.size() {
            2 => Some(W::W16),
            4 => Some(W::W32),
            8 => Some(W::W64),
            _ => None,
        }
    }
    pub fn bits(self) -> u32 {
        match self {
            W::W16 => 16,
            W::W32 => 32,
            W::W64 => 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IBin {
    Add,
    Sub,
    MulLo,
    MulHiU,
    MulHiS,
    DivU,
    DivS,
    RemU,
    RemS,
    MinU,
    MinS,
    MaxU,
    MaxS,
    And,
    Or,
    Xor,
    Shl,
    ShrU,
    ShrS,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IUn {
    Not,
    Neg,
    Abs,
    Popc,
    Clz,
    Brev,
    NotPred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FOp {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FUn {
    Neg,
    Abs,
    Sqrt,
    Rcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

/// How setp compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpTy {
    U(W),
    S(W),
    F32,
    F64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemSpace {
    Global,
    Shared,
    Local,
    Param,
    Const,
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteMode {
    Ballot,
    All,
    Any,
    Uni,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedOp {
    And,
    Or,
    Popc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmaKind {
    F16,
    BF16,
}

/// A conversion, decoded.
#[derive(Debug, Clone, Copy)]
pub struct CvtInfo {
    pub dt: Ty,
    pub at: Ty,
    /// Float rounding (.rn...) or integer rounding (.rni...).
    pub rnd: Option<Rnd>,
    pub int_rnd: bool,
    pub sat: bool,
    pub ftz: bool,
    pub relu: bool,
    pub satfinite: bool,
}

#[derive(Debug, Clone)]
pub struct MmaOp {
    pub kind: MmaKind,
    pub d: [u32; 4],
    pub a: [u32; 4],
    pub b: [u32; 2],
    pub c: [u32; 4],
}

/// An address: register (or none) plus a constant offset.
#[derive(Debug, Clone, Copy)]
pub struct Addr {
    pub base: u32,
    /// The base register is 32 bits wide (use its low 32 bits).
    pub base32: bool,
    pub off: i64,
}

#[derive(Debug, Clone)]
pub enum Op {
    IBin {
        op: IBin,
        w: W,
        d: u32,
        a: u32,
        b: u32,
    },
    MulWide {
        signed: bool,
        w: W,
        d: u32,
        a: u32,
        b: u32,
    },
    /// mad.lo / mad.wide / mad.hi: d = (a*b) part + c.
    Mad {
        signed: bool,
        w: W,
        part: u8,
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    IUn {
        op: IUn,
        w: W,
        d: u32,
        a: u32,
    },
    Shf {
        left: bool,
        clamp: bool,
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    Bfi {
        w: W,
        d: u32,
        a: u32,
        b: u32,
        c: u32,
        e: u32,
    },
    Bfe {
        w: W,
        signed: bool,
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    Prmt {
        mode: u8,
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    F32Bin {
        op: FOp,
        ftz: bool,
        sat: bool,
        d: u32,
        a: u32,
        b: u32,
    },
    F64Bin {
        op: FOp,
        d: u32,
        a: u32,
        b: u32,
    },
    F32Fma {
        ftz: bool,
        sat: bool,
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    F64Fma {
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    F32Un {
        op: FUn,
        ftz: bool,
        d: u32,
        a: u32,
    },
    F64Un {
        op: FUn,
        d: u32,
        a: u32,
    },
    Cvt {
        info: CvtInfo,
        d: u32,
        a: u32,
    },
    /// cvt to .f16x2/.bf16x2 of two f32: d = {cvt(a) high, cvt(b) low}.
    CvtPack {
        bf16: bool,
        rnd: Rnd,
        relu: bool,
        satfinite: bool,
        d: u32,
        a: u32,
        b: u32,
    },
    Setp {
        cmp: Cmp,
        ty: CmpTy,
        d: u32,
        d2: u32,
        a: u32,
        b: u32,
        comb: Option<BoolOp>,
        c: u32,
        c_neg: bool,
    },
    Selp {
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    Mov {
        d: u32,
        a: u32,
    },
    /// `mov.bN d, {a, b, ...}`: parts of `bits` each, part 0 lowest.
    Pack {
        bits: u32,
        n: u32,
        d: u32,
        parts: [u32; 4],
    },
    Unpack {
        bits: u32,
        n: u32,
        a: u32,
        parts: [u32; 4],
    },
    Clock {
        d: u32,
        w64: bool,
    },
    /// cvta: to_generic adds the window of `space`, otherwise subtracts it.
    Cvta {
        to_generic: bool,
        space: MemSpace,
        w64: bool,
        d: u32,
        a: u32,
    },
    Ld {
        space: MemSpace,
        /// Bytes of one element.
        size: u32,
        /// Sign-extend the loaded element (ld.sN).
        signed: bool,
        n: u32,
        d: [u32; 4],
        addr: Addr,
    },
    St {
        space: MemSpace,
        size: u32,
        n: u32,
        s: [u32; 4],
        addr: Addr,
    },
    Bra {
        target: u32,
        uni: bool,
    },
    Exit,
    Bar {
        id: u32,
        count: u32,
        /// bar.red: the operator, destination, source predicate, negated.
        red: Option<(RedOp, u32, u32, bool)>,
        arrive: bool,
    },
    Shfl {
        mode: ShflMode,
        d: u32,
        p: u32,
        a: u32,
        b: u32,
        c: u32,
        mask: u32,
    },
    Vote {
        mode: VoteMode,
        d: u32,
        a: u32,
        neg: bool,
        mask: u32,
    },
    ActiveMask {
        d: u32,
    },
    Ldmatrix {
        num: u32,
        trans: bool,
        generic: bool,
        d: [u32; 4],
        addr: Addr,
    },
    Mma(Box<MmaOp>),
    CpAsync {
        size: u32,
        src_size: u32,
        ignore_src: u32,
        ignore_neg: bool,
        dst: Addr,
        src: Addr,
    },
    CpCommit,
    CpWait {
        n: u32,
        all: bool,
    },
    Trap,
    Nop,
}

/// One decoded instruction.
#[derive(Debug, Clone)]
pub struct Inst {
    pub op: Op,
    /// Guard predicate register, or NO_REG.
    pub guard: u32,
    pub guard_neg: bool,
}

/// A special register, per lane, warp or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    LaneId,
    WarpId,
    NWarpId,
    SmId,
    NSmId,
    GridId,
    LaneMaskEq,
    LaneMaskLt,
    LaneMaskLe,
    LaneMaskGt,
    LaneMaskGe,
    DynSmem,
    TotalSmem,
}

/// The value of a constant register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConstVal {
    Bits(u64),
    /// The device address of module global `idx` plus `off`.
    GlobalAddr(u32, i64),
    Special(Special),
}

/// A kernel, decoded.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub name: String,
    pub code: Vec<Inst>,
    /// Per instruction: PTX line, `.loc` (file, line), opcode text.
    pub lines: Vec<u32>,
    pub locs: Vec<(u32, u32)>,
    pub opcodes: Vec<String>,
    /// Registers declared, then constant registers.
    pub nregs: u32,
    pub consts: Vec<(u32, ConstVal)>,
    pub param_offsets: Vec<u64>,
    pub param_bytes: u64,
    pub static_shared: u64,
    pub dyn_shared_align: u64,
    pub local_bytes: u64,
    /// `.file` names by index.
    pub files: HashMap<u32, String>,
}

fn err<T>(line: u32, message: impl Into<String>) -> Result<T, PtxError> {
    Err(PtxError {
        line: line as usize,
        message: message.into(),
    })
}

#[derive(Debug, Clone, Copy)]
enum Sym {
    Param(u64),
    Shared(u64),
    Local(u64),
    Global(u32),
}

struct Dc<'a> {
    f: &'a Function,
    syms: HashMap<String, Sym>,
    const_map: HashMap<ConstVal, u32>,
    consts: Vec<(u32, ConstVal)>,
    next_reg: u32,
    line: u32,
    opcode: &'a str,
    sink: u32,
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a.max(1)) * a.max(1)
}

/// Decodes kernel `f` of a module whose module-scope variables are `mvars`
/// (`gidx[i]`: index of `mvars[i]` in the module's globals, for .global and
/// .const).
pub fn decode_kernel(
    f: &Function,
    mvars: &[VarDecl],
    gidx: &[Option<u32>],
) -> Result<Kernel, PtxError> {
    let mut syms: HashMap<String, Sym> = HashMap::new();
    // Params.
    let mut off = 0u64;
    let mut param_offsets = Vec::new();
    for p in &f.params {
        off = align_up(off, p.align as u64);
        param_offsets.push(off);
        syms.insert(p.name.clone(), Sym::Param(off));
        off += p.size;
    }
    let param_bytes = off;
    // Which module-scope shared variables the kernel names.
    let mut used: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for i in &f.insts {
        for o in &i.ops {
            collect_names(o, &mut used);
        }
    }
    // Shared layout: the kernel's own, then the module's it uses, then the
    // dynamic (extern) arrays at the aligned end.
    let mut sh = 0u64;
    let mut externs: Vec<&VarDecl> = Vec::new();
    let mut local = 0u64;
    for v in &f.vars {
        match v.space {
            Space::Shared if v.is_extern || v.size == 0 => externs.push(v),
            Space::Shared => {
                sh = align_up(sh, v.align as u64);
                syms.insert(v.name.clone(), Sym::Shared(sh));
                sh += v.size;
            }
            Space::Local => {
                local = align_up(local, v.align as u64);
                syms.insert(v.name.clone(), Sym::Local(local));
                local += v.size;
            }
            _ => return err(v.line, "only .shared and .local variables inside a kernel"),
        }
    }
    for (i, v) in mvars.iter().enumerate() {
        match v.space {
            Space::Shared => {
                if !used.contains(v.name.as_str()) || syms.contains_key(&v.name) {
                    continue;
                }
                if v.is_extern || v.size == 0 {
                    externs.push(v);
                } else {
                    sh = align_up(sh, v.align as u64);
                    syms.insert(v.name.clone(), Sym::Shared(sh));
                    sh += v.size;
                }
            }
            Space::Global | Space::Const => {
                if let Some(g) = gidx[i] {
                    syms.entry(v.name.clone()).or_insert(Sym::Global(g));
                }
            }
            _ => {}
        }
    }
    let mut dyn_align = 16u64;
    for v in &externs {
        dyn_align = dyn_align.max(v.align as u64);
    }
    let dyn_base = align_up(sh, dyn_align);
    for v in &externs {
        syms.insert(v.name.clone(), Sym::Shared(dyn_base));
    }
    let nreg_decl = f.regs.len() as u32;
    if nreg_decl > 1 << 16 {
        return err(f.line, format!("kernel '{}' declares {nreg_decl} registers, more than the 65536 this interpreter allows", f.name));
    }
    let mut dc = Dc {
        f,
        syms,
        const_map: HashMap::new(),
        consts: Vec::new(),
        next_reg: nreg_decl + 1,
        line: f.line,
        opcode: "",
        sink: nreg_decl,
    };
    let mut code = Vec::with_capacity(f.insts.len());
    let mut lines = Vec::with_capacity(f.insts.len());
    let mut locs = Vec::with_capacity(f.insts.len());
    let mut opcodes = Vec::with_capacity(f.insts.len());
    for ri in &f.insts {
        dc.line = ri.line;
        dc.opcode = &ri.opcode;
        let op = dc.inst(ri)?;
        let (guard, guard_neg) = match ri.guard {
            Some((r, neg)) => {
                if f.regs[r as usize].ty != Ty::Pred {
                    return err(ri.line, "guard is not a predicate register");
                }
                (r, neg)
            }
            None => (NO_REG, false),
        };
        code.push(Inst {
            op,
            guard,
            guard_neg,
        });
        lines.push(ri.line);
        locs.push(ri.loc);
        opcodes.push(ri.opcode.clone());
    }
    // A kernel that runs off its end exits.
    code.push(Inst {
        op: Op::Exit,
        guard: NO_REG,
        guard_neg: false,
    });
    lines.push(lines.last().copied().unwrap_or(f.line));
    locs.push((0, 0));
    opcodes.push("ret".into());
    Ok(Kernel {
        name: f.name.clone(),
        code,
        lines,
        locs,
        opcodes,
        nregs: dc.next_reg,
        consts: dc.consts,
        param_offsets,
        param_bytes,
        static_shared: sh,
        dyn_shared_align: dyn_align,
        local_bytes: local,
        files: HashMap::new(),
    })
}

fn collect_names<'a>(o: &'a Opnd, out: &mut std::collections::HashSet<&'a str>) {
    match o {
        Opnd::Name(n) => {
            out.insert(n.as_str());
        }
        Opnd::Addr(AddrBase::Name(n), _) => {
            out.insert(n.as_str());
        }
        Opnd::Vec(v) => v.iter().for_each(|x| collect_names(x, out)),
        Opnd::Pair(a, b) => {
            collect_names(a, out);
            collect_names(b, out);
        }
        Opnd::Not(a) => collect_names(a, out),
        _ => {}
    }
}

fn special(name: &str) -> Option<Special> {
    let dim = |s: &str| match s {
        "x" => Some(0u8),
        "y" => Some(1),
        "z" => Some(2),
        _ => None,
    };
    if let Some((base, d)) = name.rsplit_once('.') {
        let d = dim(d)?;
        return Some(match base {
            "%tid" => Special::Tid(d),
            "%ntid" => Special::Ntid(d),
            "%ctaid" => Special::Ctaid(d),
            "%nctaid" => Special::Nctaid(d),
            _ => return None,
        });
    }
    Some(match name {
        "%laneid" => Special::LaneId,
        "%warpid" => Special::WarpId,
        "%nwarpid" => Special::NWarpId,
        "%smid" => Special::SmId,
        "%nsmid" => Special::NSmId,
        "%gridid" => Special::GridId,
        "%lanemask_eq" => Special::LaneMaskEq,
        "%lanemask_lt" => Special::LaneMaskLt,
        "%lanemask_le" => Special::LaneMaskLe,
        "%lanemask_gt" => Special::LaneMaskGt,
        "%lanemask_ge" => Special::LaneMaskGe,
        "%dynamic_smem_size" => Special::DynSmem,
        "%total_smem_size" => Special::TotalSmem,
        _ => return None,
    })
}

/// The modifiers of an opcode, consumed as decoding recognises them.
struct Mods<'a> {
    list: Vec<&'a str>,
    full: &'a str,
    line: u32,
}

impl<'a> Mods<'a> {
    fn new(full: &'a str, line: u32) -> (&'a str, Mods<'a>) {
        let mut it = full.split('.');
        let base = it.next().unwrap_or("");
        let list = it
            .map(|m| m.strip_suffix("::cta").unwrap_or(m))
            .collect::<Vec<_>>();
        (base, Mods { list, full, line })
    }
    fn take(&mut self, m: &str) -> bool {
        if let Some(i) = self.list.iter().position(|x| *x == m) {
            self.list.remove(i);
            true
        } else {
            false
        }
    }
    fn take_any(&mut self, ms: &[&'a str]) -> Option<&'a str> {
        let i = self.list.iter().position(|x| ms.contains(x))?;
        Some(self.list.remove(i))
    }
    /// Removes and returns the first modifier that is a type.
    fn ty(&mut self) -> Option<Ty> {
        let i = self.list.iter().position(|x| Ty::from_name(x).is_some())?;
        Ty::from_name(self.list.remove(i))
    }
    fn need_ty(&mut self) -> Result<Ty, PtxError> {
        match self.ty() {
            Some(t) => Ok(t),
            None => err(
                self.line,
                format!("unknown instruction '{}' (no type)", self.full),
            ),
        }
    }
    fn done(&self) -> Result<(), PtxError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            self.unknown()
        }
    }
    fn unknown<T>(&self) -> Result<T, PtxError> {
        err(self.line, format!("unknown instruction '{}'", self.full))
    }
}

/// The rounding modifier, if any: float (.rn...) or integer (.rni...).
fn take_rnd(m: &mut Mods<'_>) -> (Option<Rnd>, bool) {
    match m.take_any(&["rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi"]) {
        Some("rn") => (Some(Rnd::Rn), false),
        Some("rz") => (Some(Rnd::Rz), false),
        Some("rm") => (Some(Rnd::Rm), false),
        Some("rp") => (Some(Rnd::Rp), false),
        Some("rni") => (Some(Rnd::Rn), true),
        Some("rzi") => (Some(Rnd::Rz), true),
        Some("rmi") => (Some(Rnd::Rm), true),
        Some("rpi") => (Some(Rnd::Rp), true),
        _ => (None, false),
    }
}

/// How a register operand's declared type must relate to the instruction's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Same size (any of b/u/s/f of that size).
    Exact,
    /// At least as wide (ld/st/cvt).
    Wider,
}

impl<'a> Dc<'a> {
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, PtxError> {
        err(self.line, msg)
    }

    fn konst(&mut self, v: ConstVal) -> u32 {
        if let Some(&r) = self.const_map.get(&v) {
            return r;
        }
        let r = self.next_reg;
        self.next_reg += 1;
        self.const_map.insert(v, r);
        self.consts.push((r, v));
        r
    }

    fn check_reg(&self, r: u32, ty: Ty, fit: Fit) -> Result<u32, PtxError> {
        let rt = self.f.regs[r as usize].ty;
        let ok = if ty == Ty::Pred || rt == Ty::Pred {
            ty == rt
        } else {
            match fit {
                Fit::Exact => rt.size() == ty.size(),
                Fit::Wider => rt.size() >= ty.size() || (ty.size() == 1 && rt.size() >= 1),
            }
        };
        if ok {
            Ok(r)
        } else {
            self.err(format!(
                "operand of '{}' has type .{}, the instruction needs .{}",
                self.opcode,
                rt.name(),
                ty.name()
            ))
        }
    }

    /// A source operand of type `ty`: register, immediate, special register
    /// or a symbol's address.
    fn src_fit(&mut self, o: &Opnd, ty: Ty, fit: Fit) -> Result<u32, PtxError> {
        match o {
            Opnd::Reg(r) => self.check_reg(*r, ty, fit),
            Opnd::Int(v) => {
                let bits = match ty {
                    Ty::F32 => (*v as i64 as f32).to_bits() as u64,
                    Ty::F64 => (*v as i64 as f64).to_bits(),
                    Ty::Pred => (*v != 0) as u64,
                    _ => *v,
                };
                Ok(self.konst(ConstVal::Bits(mask_ty(bits, ty))))
            }
            Opnd::Float(f) => {
                let bits = match (ty, *f) {
                    (Ty::F32, FloatLit::F32Bits(b)) => b as u64,
                    (Ty::F32, FloatLit::F64Bits(b)) => (f64::from_bits(b) as f32).to_bits() as u64,
                    (Ty::F32, FloatLit::Decimal(d)) => (d as f32).to_bits() as u64,
                    (Ty::F64, FloatLit::F32Bits(b)) => (f32::from_bits(b) as f64).to_bits(),
                    (Ty::F64, FloatLit::F64Bits(b)) => b,
                    (Ty::F64, FloatLit::Decimal(d)) => d.to_bits(),
                    // Bit types take the literal's bits as written.
                    (_, FloatLit::F32Bits(b)) if ty.size() == 4 => b as u64,
                    (_, FloatLit::F64Bits(b)) if ty.size() == 8 => b,
                    _ => {
                        return self.err(format!("float literal not allowed in '{}'", self.opcode))
                    }
                };
                Ok(self.konst(ConstVal::Bits(bits)))
            }
            Opnd::Name(n) => {
                if let Some(s) = special(n) {
                    return Ok(self.konst(ConstVal::Special(s)));
                }
                if n.starts_with("%clock") || n == "%globaltimer" {
                    return self.err(format!("'{n}' can only be read by mov"));
                }
                match self.syms.get(n.as_str()).copied() {
                    Some(Sym::Param(o)) | Some(Sym::Shared(o)) | Some(Sym::Local(o)) => {
                        Ok(self.konst(ConstVal::Bits(o)))
                    }
                    Some(Sym::Global(g)) => Ok(self.konst(ConstVal::GlobalAddr(g, 0))),
                    None => {
                        if n.starts_with('%') {
                            self.err(format!("undeclared register '{n}'"))
                        } else {
                            self.err(format!("unknown symbol '{n}'"))
                        }
                    }
                }
            }
            _ => self.err(format!("bad operand for '{}'", self.opcode)),
        }
    }

    fn src(&mut self, o: &Opnd, ty: Ty) -> Result<u32, PtxError> {
        self.src_fit(o, ty, Fit::Exact)
    }

    fn dst_fit(&mut self, o: &Opnd, ty: Ty, fit: Fit) -> Result<u32, PtxError> {
        match o {
            Opnd::Reg(r) => self.check_reg(*r, ty, fit),
            Opnd::Name(n) if n == "_" => Ok(self.sink),
            Opnd::Name(n) if n.starts_with('%') => self.err(format!("undeclared register '{n}'")),
            _ => self.err(format!(
                "destination of '{}' is not a register",
                self.opcode
            )),
        }
    }

    fn dst(&mut self, o: &Opnd, ty: Ty) -> Result<u32, PtxError> {
        self.dst_fit(o, ty, Fit::Exact)
    }

    fn nops(&self, ops: &[Opnd], n: usize) -> Result<(), PtxError> {
        if ops.len() == n {
            Ok(())
        } else {
            self.err(format!(
                "'{}' takes {} operands, found {}",
                self.opcode,
                n,
                ops.len()
            ))
        }
    }

    /// An address operand `[...]` in `space` (or a bare symbol for
    /// cp.async-like operands).
    fn addr(&mut self, o: &Opnd, space: MemSpace) -> Result<Addr, PtxError> {
        let Opnd::Addr(base, off) = o else {
            return self.err(format!("'{}' needs an address operand [..]", self.opcode));
        };
        match base {
            AddrBase::None => Ok(Addr {
                base: NO_REG,
                base32: false,
                off: *off,
            }),
            AddrBase::Reg(r) => {
                let rt = self.f.regs[*r as usize].ty;
                if rt.size() != 4 && rt.size() != 8
                    || rt == Ty::Pred
                    || rt.is_float() && rt.size() == 4
                {
                    return self.err("address register must be 32 or 64 bits");
                }
                Ok(Addr {
                    base: *r,
                    base32: rt.size() == 4,
                    off: *off,
                })
            }
            AddrBase::Name(n) => {
                let Some(s) = self.syms.get(n.as_str()).copied() else {
                    if n.starts_with('%') {
                        return self.err(format!("undeclared register '{n}'"));
                    }
                    return self.err(format!("unknown symbol '{n}'"));
                };
                let ok = matches!(
                    (s, space),
                    (Sym::Param(_), MemSpace::Param)
                        | (Sym::Shared(_), MemSpace::Shared)
                        | (Sym::Local(_), MemSpace::Local)
                        | (
                            Sym::Global(_),
                            MemSpace::Global | MemSpace::Const | MemSpace::Generic
                        )
                );
                if !ok {
                    return self.err(format!(
                        "symbol '{n}' is not in the state space of '{}'",
                        self.opcode
                    ));
                }
                Ok(match s {
                    Sym::Param(o) | Sym::Shared(o) | Sym::Local(o) => Addr {
                        base: NO_REG,
                        base32: false,
                        off: o as i64 + off,
                    },
                    Sym::Global(g) => Addr {
                        base: self.konst(ConstVal::GlobalAddr(g, 0)),
                        base32: false,
                        off: *off,
                    },
                })
            }
        }
    }

    fn label(&self, o: &Opnd) -> Result<u32, PtxError> {
        match o {
            Opnd::Name(n) => match self.f.labels.get(n.as_str()) {
                Some(&(i, _)) => Ok(i),
                None => self.err(format!("unknown label '{n}'")),
            },
            _ => self.err("branch target is not a label"),
        }
    }

    fn vec_regs(
        &mut self,
        o: &Opnd,
        ty: Ty,
        fit: Fit,
        dst: bool,
    ) -> Result<(u32, [u32; 4]), PtxError> {
        let items: Vec<&Opnd> = match o {
            Opnd::Vec(v) => v.iter().collect(),
            other => vec![other],
        };
        if items.is_empty() || items.len() > 4 {
            return self.err("vector of 1 to 4 registers expected");
        }
        let mut r = [NO_REG; 4];
        for (i, it) in items.iter().enumerate() {
            r[i] = if dst {
                self.dst_fit(it, ty, fit)?
            } else {
                self.src_fit(it, ty, fit)?
            };
        }
        Ok((items.len() as u32, r))
    }

    fn inst(&mut self, ri: &RawInst) -> Result<Op, PtxError> {
        let ops = &ri.ops[..];
        let (base, mut m) = Mods::new(&ri.opcode, ri.line);
        let op = match base {
            "add" | "sub" | "mul" | "div" | "rem" | "min" | "max" | "and" | "or" | "xor"
            | "shl" | "shr" => self.binary(base, &mut m, ops)?,
            "mad" | "fma" => self.mad(base, &mut m, ops)?,
            "not" | "neg" | "abs" | "popc" | "clz" | "brev" | "sqrt" | "rcp" => {
                self.unary(base, &mut m, ops)?
            }
            "shf" => {
                let left = match m.take_any(&["l", "r"]) {
                    Some("l") => true,
                    Some(_) => false,
                    None => return m.unknown(),
                };
                let clamp = match m.take_any(&["wrap", "clamp"]) {
                    Some("clamp") => true,
                    Some(_) => false,
                    None => return m.unknown(),
                };
                if m.ty() != Some(Ty::B32) {
                    return m.unknown();
                }
                m.done()?;
                self.nops(ops, 4)?;
                Op::Shf {
                    left,
                    clamp,
                    d: self.dst(&ops[0], Ty::B32)?,
                    a: self.src(&ops[1], Ty::B32)?,
                    b: self.src(&ops[2], Ty::B32)?,
                    c: self.src(&ops[3], Ty::U32)?,
                }
            }
            "bfi" => {
                let ty = m.need_ty()?;
                let w = match ty {
                    Ty::B32 => W::W32,
                    Ty::B64 => W::W64,
                    _ => return m.unknown(),
                };
                m.done()?;
                self.nops(ops, 5)?;
                Op::Bfi {
                    w,
                    d: self.dst(&ops[0], ty)?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    c: self.src(&ops[3], Ty::U32)?,
                    e: self.src(&ops[4], Ty::U32)?,
                }
            }
            "bfe" => {
                let ty = m.need_ty()?;
                let (w, signed) = match ty {
                    Ty::U32 => (W::W32, false),
                    Ty::S32 => (W::W32, true),
                    Ty::U64 => (W::W64, false),
                    Ty::S64 => (W::W64, true),
                    _ => return m.unknown(),
                };
                m.done()?;
                self.nops(ops, 4)?;
                Op::Bfe {
                    w,
                    signed,
                    d: self.dst(&ops[0], ty)?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], Ty::U32)?,
                    c: self.src(&ops[3], Ty::U32)?,
                }
            }
            "prmt" => {
                if m.ty() != Some(Ty::B32) {
                    return m.unknown();
                }
                let mode = match m.take_any(&["f4e", "b4e", "rc8", "ecl", "ecr", "rc16"]) {
                    None => 0,
                    Some("f4e") => 1,
                    Some("b4e") => 2,
                    Some("rc8") => 3,
                    Some("ecl") => 4,
                    Some("ecr") => 5,
                    Some(_) => 6,
                };
                m.done()?;
                self.nops(ops, 4)?;
                Op::Prmt {
                    mode,
                    d: self.dst(&ops[0], Ty::B32)?,
                    a: self.src(&ops[1], Ty::B32)?,
                    b: self.src(&ops[2], Ty::B32)?,
                    c: self.src(&ops[3], Ty::B32)?,
                }
            }
            "mov" => self.mov(&mut m, ops)?,
            "cvt" => self.cvt(&mut m, ops)?,
            "cvta" => {
                let to = m.take("to");
                let space = match m.take_any(&["global", "shared", "local", "param", "const"]) {
                    Some("global") => MemSpace::Global,
                    Some("shared") => MemSpace::Shared,
                    Some("local") => MemSpace::Local,
                    Some("param") => MemSpace::Param,
                    Some(_) => MemSpace::Const,
                    None => return m.unknown(),
                };
                let ty = m.need_ty()?;
                if ty != Ty::U32 && ty != Ty::U64 {
                    return m.unknown();
                }
                m.done()?;
                self.nops(ops, 2)?;
                if matches!(space, MemSpace::Param | MemSpace::Const) {
                    return self.err(format!("'{}' is not supported", ri.opcode));
                }
                let d = self.dst(&ops[0], ty)?;
                let a = self.src(&ops[1], ty)?;
                Op::Cvta {
                    to_generic: !to,
                    space,
                    w64: ty == Ty::U64,
                    d,
                    a,
                }
            }
            "setp" => self.setp(&mut m, ops)?,
            "selp" => {
                let ty = m.need_ty()?;
                if ty == Ty::Pred || ty.size() < 2 {
                    return m.unknown();
                }
                m.done()?;
                self.nops(ops, 4)?;
                Op::Selp {
                    d: self.dst(&ops[0], ty)?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    c: self.src(&ops[3], Ty::Pred)?,
                }
            }
            "ld" | "st" => self.ldst(base == "ld", &mut m, ops)?,
            "bra" => {
                let uni = m.take("uni");
                m.done()?;
                self.nops(ops, 1)?;
                Op::Bra {
                    target: self.label(&ops[0])?,
                    uni,
                }
            }
            "ret" | "exit" => {
                m.take("uni");
                m.done()?;
                self.nops(ops, 0)?;
                Op::Exit
            }
            "trap" => {
                m.done()?;
                Op::Trap
            }
            "bar" | "barrier" => self.bar(base, &mut m, ops)?,
            "shfl" => {
                if !m.take("sync") {
                    return self.err(format!(
                        "unknown instruction '{}' (only shfl.sync is supported)",
                        ri.opcode
                    ));
                }
                let mode = match m.take_any(&["up", "down", "bfly", "idx"]) {
                    Some("up") => ShflMode::Up,
                    Some("down") => ShflMode::Down,
                    Some("bfly") => ShflMode::Bfly,
                    Some(_) => ShflMode::Idx,
                    None => return m.unknown(),
                };
                if m.ty() != Some(Ty::B32) {
                    return m.unknown();
                }
                m.done()?;
                self.nops(ops, 5)?;
                let (d, p) = match &ops[0] {
                    Opnd::Pair(a, b) => (self.dst(a, Ty::B32)?, self.dst(b, Ty::Pred)?),
                    o => (self.dst(o, Ty::B32)?, NO_REG),
                };
                Op::Shfl {
                    mode,
                    d,
                    p,
                    a: self.src(&ops[1], Ty::B32)?,
                    b: self.src(&ops[2], Ty::B32)?,
                    c: self.src(&ops[3], Ty::B32)?,
                    mask: self.src(&ops[4], Ty::B32)?,
                }
            }
            "vote" => {
                if !m.take("sync") {
                    return self.err(format!(
                        "unknown instruction '{}' (only vote.sync is supported)",
                        ri.opcode
                    ));
                }
                let mode = match m.take_any(&["ballot", "all", "any", "uni"]) {
                    Some("ballot") => VoteMode::Ballot,
                    Some("all") => VoteMode::All,
                    Some("any") => VoteMode::Any,
                    Some(_) => VoteMode::Uni,
                    None => return m.unknown(),
                };
                let ty = m.need_ty()?;
                let want = if mode == VoteMode::Ballot {
                    Ty::B32
                } else {
                    Ty::Pred
                };
                if ty != want {
                    return m.unknown();
                }
                m.done()?;
                self.nops(ops, 3)?;
                let d = self.dst(&ops[0], want)?;
                let (a, neg) = match &ops[1] {
                    Opnd::Not(x) => (self.src(x, Ty::Pred)?, true),
                    x => (self.src(x, Ty::Pred)?, false),
                };
                Op::Vote {
                    mode,
                    d,
                    a,
                    neg,
                    mask: self.src(&ops[2], Ty::B32)?,
                }
            }
            "activemask" => {
                if m.ty() != Some(Ty::B32) {
                    return m.unknown();
                }
                m.done()?;
                self.nops(ops, 1)?;
                Op::ActiveMask {
                    d: self.dst(&ops[0], Ty::B32)?,
                }
            }
            "ldmatrix" => {
                if !(m.take("sync") && m.take("aligned") && m.take("m8n8")) {
                    return m.unknown();
                }
                let num = match m.take_any(&["x1", "x2", "x4"]) {
                    Some("x1") => 1,
                    Some("x2") => 2,
                    Some(_) => 4,
                    None => return m.unknown(),
                };
                let trans = m.take("trans");
                let generic = !m.take("shared");
                if m.ty() != Some(Ty::B16) {
                    return m.unknown();
                }
                m.done()?;
                self.nops(ops, 2)?;
                let (n, d) = self.vec_regs(&ops[0], Ty::B32, Fit::Exact, true)?;
                if n != num {
                    return self.err(format!(
                        "ldmatrix .x{num} needs {num} destination registers"
                    ));
                }
                let addr = self.addr(
                    &ops[1],
                    if generic {
                        MemSpace::Generic
                    } else {
                        MemSpace::Shared
                    },
                )?;
                Op::Ldmatrix {
                    num,
                    trans,
                    generic,
                    d,
                    addr,
                }
            }
            "mma" => {
                if !(m.take("sync")
                    && m.take("aligned")
                    && m.take("m16n8k16")
                    && m.take("row")
                    && m.take("col"))
                {
                    return m.unknown();
                }
                let dt = m.need_ty()?;
                let at = m.need_ty()?;
                let bt = m.need_ty()?;
                let ct = m.need_ty()?;
                m.done()?;
                let kind = match (dt, at, bt, ct) {
                    (Ty::F32, Ty::F16, Ty::F16, Ty::F32) => MmaKind::F16,
                    (Ty::F32, Ty::BF16, Ty::BF16, Ty::F32) => MmaKind::BF16,
                    _ => return m.unknown(),
                };
                self.nops(ops, 4)?;
                let (nd, d) = self.vec_regs(&ops[0], Ty::F32, Fit::Exact, true)?;
                let (na, a) = self.vec_regs(&ops[1], Ty::B32, Fit::Exact, false)?;
                let (nb, b) = self.vec_regs(&ops[2], Ty::B32, Fit::Exact, false)?;
                let (nc, c) = self.vec_regs(&ops[3], Ty::F32, Fit::Exact, false)?;
                if (nd, na, nb, nc) != (4, 4, 2, 4) {
                    return self.err("mma.m16n8k16 takes {4 f32}, {4 b32}, {2 b32}, {4 f32}");
                }
                Op::Mma(Box::new(MmaOp {
                    kind,
                    d,
                    a,
                    b: [b[0], b[1]],
                    c,
                }))
            }
            "cp" => self.cp(&mut m, ops)?,
            "membar" | "fence" => {
                // Ordering only: the interpreter is sequential within a block.
                m.list.retain(|x| {
                    !matches!(
                        *x,
                        "cta" | "gl" | "sys" | "gpu" | "sc" | "acq_rel" | "proxy" | "async"
                    )
                });
                m.done()?;
                Op::Nop
            }
            _ => return m.unknown(),
        };
        Ok(op)
    }

    fn binary(&mut self, base: &str, m: &mut Mods<'_>, ops: &[Opnd]) -> Result<Op, PtxError> {
        let ty = m.need_ty()?;
        self.nops(ops, 3)?;
        if ty.is_float() {
            let (rnd, irnd) = take_rnd(m);
            if irnd || rnd.is_some_and(|r| r != Rnd::Rn) {
                return self.err(format!(
                    "unsupported rounding in '{}' (only .rn)",
                    self.opcode
                ));
            }
            let ftz = m.take("ftz");
            let sat = m.take("sat");
            let approx = m.take("approx") || m.take("full");
            let op = match base {
                "add" => FOp::Add,
                "sub" => FOp::Sub,
                "mul" => FOp::Mul,
                "div" => {
                    if rnd.is_none() && !approx {
                        return self.err("div.f32/f64 needs .rn, .approx or .full");
                    }
                    FOp::Div
                }
                "min" => FOp::Min,
                "max" => FOp::Max,
                _ => return m.unknown(),
            };
            m.take("NaN");
            m.done()?;
            return match ty {
                Ty::F32 => Ok(Op::F32Bin {
                    op,
                    ftz,
                    sat,
                    d: self.dst(&ops[0], ty)?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                }),
                Ty::F64 if !ftz && !sat => Ok(Op::F64Bin {
                    op,
                    d: self.dst(&ops[0], ty)?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                }),
                _ => m.unknown(),
            };
        }
        if ty == Ty::Pred {
            let _op = match base {
                "and" => IBin::And,
                "or" => IBin::Or,
                "xor" => IBin::Xor,
                _ => return m.unknown(),
            };
            m.done()?;
            return Ok(Op::IBin {
                op: _op,
                w: W::W64,
                d: self.dst(&ops[0], ty)?,
                a: self.src(&ops[1], ty)?,
                b: self.src(&ops[2], ty)?,
            });
        }
        let Some(w) = W::of(ty) else {
            return m.unknown();
        };
        let signed = ty.is_signed();
        let bits_only = matches!(base, "and" | "or" | "xor" | "shl");
        if bits_only && !ty.is_bits() {
            return m.unknown();
        }
        if !bits_only && base != "shr" && ty.is_bits() && !matches!(base, "add" | "sub") {
            return m.unknown();
        }
        if base == "mul" {
            let part = m.take_any(&["lo", "hi", "wide"]);
            m.done()?;
            match part {
                Some("wide") => {
                    if w == W::W64 {
                        return m.unknown();
                    }
                    let wt = if w == W::W16 { Ty::B32 } else { Ty::B64 };
                    return Ok(Op::MulWide {
                        signed,
                        w,
                        d: self.dst(&ops[0], wt)?,
                        a: self.src(&ops[1], ty)?,
                        b: self.src(&ops[2], ty)?,
                    });
                }
                Some("hi") => {
                    return Ok(Op::IBin {
                        op: if signed { IBin::MulHiS } else { IBin::MulHiU },
                        w,
                        d: self.dst(&ops[0], ty)?,
                        a: self.src(&ops[1], ty)?,
                        b: self.src(&ops[2], ty)?,
                    })
                }
                Some(_) => {}
                None => return m.unknown(),
            }
            return Ok(Op::IBin {
                op: IBin::MulLo,
                w,
                d: self.dst(&ops[0], ty)?,
                a: self.src(&ops[1], ty)?,
                b: self.src(&ops[2], ty)?,
            });
        }
        m.done()?;
        let op = match base {
            "add" => IBin::Add,
            "sub" => IBin::Sub,
            "div" => {
                if signed {
                    IBin::DivS
                } else {
                    IBin::DivU
                }
            }
            "rem" => {
                if signed {
                    IBin::RemS
                } else {
                    IBin::RemU
                }
            }
            "min" => {
                if signed {
                    IBin::MinS
                } else {
                    IBin::MinU
                }
            }
            "max" => {
                if signed {
                    IBin::MaxS
                } else {
                    IBin::MaxU
                }
            }
            "and" => IBin::And,
            "or" => IBin::Or,
            "xor" => IBin::Xor,
            "shl" => IBin::Shl,
            "shr" => {
                if signed {
                    IBin::ShrS
                } else {
                    IBin::ShrU
                }
            }
            _ => return m.unknown(),
        };
        let bty = if matches!(op, IBin::Shl | IBin::ShrS | IBin::ShrU) {
            Ty::U32
        } else {
            ty
        };
        Ok(Op::IBin {
            op,
            w,
            d: self.dst(&ops[0], ty)?,
            a: self.src(&ops[1], ty)?,
            b: self.src(&ops[2], bty)?,
        })
    }

    fn mad(&mut self, base: &str, m: &mut Mods<'_>, ops: &[Opnd]) -> Result<Op, PtxError> {
        let ty = m.need_ty()?;
        self.nops(ops, 4)?;
        if ty.is_float() {
            let (rnd, irnd) = take_rnd(m);
            if irnd || rnd != Some(Rnd::Rn) {
                return self.err(format!(
                    "'{}' needs .rn (other roundings unsupported)",
                    self.opcode
                ));
            }
            let ftz = m.take("ftz");
            let sat = m.take("sat");
            m.done()?;
            return match ty {
                Ty::F32 => Ok(Op::F32Fma {
                    ftz,
                    sat,
                    d: self.dst(&ops[0], ty)?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    c: self.src(&ops[3], ty)?,
                }),
                Ty::F64 if !ftz && !sat => Ok(Op::F64Fma {
                    d: self.dst(&ops[0], ty)?,
                    a: self.src(&ops[1], ty)?,
                    b: self.src(&ops[2], ty)?,
                    c: self.src(&ops[3], ty)?,
                }),
                _ => m.unknown(),
            };
        }
        if base == "fma" || !(ty.is_signed() || ty.is_unsigned()) {
            return m.unknown();
        }
        let Some(w) = W::of(ty) else {
            return m.unknown();
        };
        let part = match m.take_any(&["lo", "hi", "wide"]) {
            Some("lo") => 0,
            Some("hi") => 1,
            Some(_) => 2,
            None => return m.unknown(),
        };
        m.done()?;
        let wide_ty = match w {
            W::W16 => Ty::B32,
            W::W32 => Ty::B64,
            W::W64 => return m.unknown(),
        };
        let (dt, ct) = if part == 2 {
            (wide_ty, wide_ty)
        } else {
            (ty, ty)
        };
        if part == 2 && w == W::W64 {
            return m.unknown();
        }
        Ok(Op::Mad {
            signed: ty.is_signed(),
            w,
            part,
            d: self.dst(&ops[0], dt)?,
            a: self.src(&ops[1], ty)?,
            b: self.src(&ops[2], ty)?,
            c: self.src(&ops[3], ct)?,
        })
    }

    fn unary(&mut self, base: &str, m: &mut Mods<'_>, ops: &[Opnd]) -> Result<Op, PtxError> {
        let ty = m.need_ty()?;
        self.nops(ops, 2)?;
        if ty.is_float() {
            let (rnd, irnd) = take_rnd(m);
            let ftz = m.take("ftz");
            let op = match base {
                "neg" => FUn::Neg,
                "abs" => FUn::Abs,
                "sqrt" | "rcp" => {
                    if irnd || rnd != Some(Rnd::Rn) {
                        return self.err(format!(
                            "unknown instruction '{}' (only the .rn forms of sqrt/rcp)",
                            self.opcode
                        ));
                    }
                    if base == "sqrt" {
                        FUn::Sqrt
                    } else {
                        FUn::Rcp
                    }
                }
                _ => return m.unknown(),
            };
            if matches!(op, FUn::Neg | FUn::Abs) && rnd.is_some() {
                return m.unknown();
            }
            m.done()?;
            return match ty {
                Ty::F32 => Ok(Op::F32Un {
                    op,
                    ftz,
                    d: self.dst(&ops[0], ty)?,
                    a: self.src(&ops[1], ty)?,
                }),
                Ty::F64 if !ftz => Ok(Op::F64Un {
                    op,
                    d: self.dst(&ops[0], ty)?,
                    a: self.src(&ops[1], ty)?,
                }),
                _ => m.unknown(),
            };
        }
        m.done()?;
        if ty == Ty::Pred {
            if base != "not" {
                return m.unknown();
            }
            return Ok(Op::IUn {
                op: IUn::NotPred,
                w: W::W64,
                d: self.dst(&ops[0], ty)?,
                a: self.src(&ops[1], ty)?,
            });
        }
        let Some(w) = W::of(ty) else {
            return m.unknown();
        };
        let (op, dty) = match base {
            "not" if ty.is_bits() => (IUn::Not, ty),
            "neg" if ty.is_signed() => (IUn::Neg, ty),
            "abs" if ty.is_signed() => (IUn::Abs, ty),
            "popc" if ty.is_bits() && w != W::W16 => (IUn::Popc, Ty::U32),
            "clz" if ty.is_bits() && w != W::W16 => (IUn::Clz, Ty::U32),
            "brev" if ty.is_bits() && w != W::W16 => (IUn::Brev, ty),
            _ => return m.unknown(),
        };
        Ok(Op::IUn {
            op,
            w,
            d: self.dst(&ops[0], dty)?,
            a: self.src(&ops[1], ty)?,
        })
    }

    fn mov(&mut self, m: &mut Mods<'_>, ops: &[Opnd]) -> Result<Op, PtxError> {
        let ty = m.need_ty()?;
        m.done()?;
        self.nops(ops, 2)?;
        if let Opnd::Vec(parts) = &ops[0] {
            return self.pack(ty, parts, &ops[1], false);
        }
        if let Opnd::Vec(parts) = &ops[1] {
            return self.pack(ty, parts, &ops[0], true);
        }
        if let Opnd::Name(n) = &ops[1] {
            if n == "%clock" || n == "%clock64" || n == "%globaltimer" {
                let w64 = n != "%clock";
                if (ty.size() == 8) != w64 {
                    return self.err(format!(
                        "'{n}' needs a {}-bit mov",
                        if w64 { 64 } else { 32 }
                    ));
                }
                return Ok(Op::Clock {
                    d: self.dst(&ops[0], ty)?,
                    w64,
                });
            }
        }
        let d = self.dst(&ops[0], ty)?;
        let a = self.src(&ops[1], ty)?;
        Ok(Op::Mov { d, a })
    }

    fn pack(&mut self, ty: Ty, parts: &[Opnd], whole: &Opnd, pack: bool) -> Result<Op, PtxError> {
        let n = parts.len() as u32;
        if !(ty.is_bits() && (n == 2 || n == 4)) || !(ty.size() * 8).is_multiple_of(n) {
            return self.err(format!("bad vector operand for '{}'", self.opcode));
        }
        let bits = ty.size() * 8 / n;
        let pty = match bits {
            8 => Ty::B8,
            16 => Ty::B16,
            32 => Ty::B32,
            _ => return self.err(format!("bad vector operand for '{}'", self.opcode)),
        };
        let mut regs = [NO_REG; 4];
        for (i, p) in parts.iter().enumerate() {
            regs[i] = if pack {
                self.src_fit(p, pty, Fit::Wider)?
            } else {
                self.dst_fit(p, pty, Fit::Wider)?
            };
        }
        if pack {
            Ok(Op::Pack {
                bits,
                n,
                d: self.dst(whole, ty)?,
                parts: regs,
            })
        } else {
            Ok(Op::Unpack {
                bits,
                n,
                a: self.src(whole, ty)?,
                parts: regs,
            })
        }
    }

    fn cvt(&mut self, m: &mut Mods<'_>, ops: &[Opnd]) -> Result<Op, PtxError> {
        let (rnd, int_rnd) = take_rnd(m);
        let ftz = m.take("ftz");
        let sat = m.take("sat");
        let relu = m.take("relu");
        let satfinite = m.take("satfinite");
        let dt = m.need_ty()?;
        let at = m.need_ty()?;
        m.done()?;
        if dt == Ty::Pred || at == Ty::Pred || dt.is_bits() || at.is_bits() {
            return m.unknown();
        }
        if matches!(dt, Ty::F16x2 | Ty::BF16x2) {
            if at != Ty::F32 || int_rnd || sat || ftz {
                return m.unknown();
            }
            let Some(rnd) = rnd else {
                return self.err(format!("'{}' needs a rounding modifier", self.opcode));
            };
            if !matches!(rnd, Rnd::Rn | Rnd::Rz) {
                return m.unknown();
            }
            self.nops(ops, 3)?;
            return Ok(Op::CvtPack {
                bf16: dt == Ty::BF16x2,
                rnd,
                relu,
                satfinite,
                d: self.dst(&ops[0], Ty::B32)?,
                a: self.src(&ops[1], Ty::F32)?,
                b: self.src(&ops[2], Ty::F32)?,
            });
        }
        if matches!(at, Ty::F16x2 | Ty::BF16x2) {
            return m.unknown();
        }
        self.nops(ops, 2)?;
        let fsize = |t: Ty| if t.is_float() { t.size() } else { 0 };
        // Which rounding the ISA requires or allows.
        let need: &str = if dt.is_float() && at.is_float() {
            if fsize(dt) < fsize(at)
                || (dt == Ty::BF16 && at == Ty::F16)
                || (dt == Ty::F16 && at == Ty::BF16)
            {
                "float"
            } else if fsize(dt) == fsize(at) {
                "int-optional"
            } else {
                "none"
            }
        } else if dt.is_float() {
            "float"
        } else if at.is_float() {
            "int"
        } else {
            "none"
        };
        let ok = match need {
            "float" => rnd.is_some() && !int_rnd,
            "int" => rnd.is_some() && int_rnd,
            "int-optional" => rnd.is_none() || int_rnd,
            _ => rnd.is_none(),
        };
        if !ok {
            return self.err(format!(
                "'{}': rounding modifier missing or not allowed for .{}.{}",
                self.opcode,
                dt.name(),
                at.name()
            ));
        }
        if (relu || satfinite) && !matches!(dt, Ty::F16 | Ty::BF16) {
            return m.unknown();
        }
        let d = self.dst_fit(&ops[0], dt, Fit::Wider)?;
        let a = self.src_fit(&ops[1], at, Fit::Wider)?;
        Ok(Op::Cvt {
            info: CvtInfo {
                dt,
                at,
                rnd,
                int_rnd,
                sat,
                ftz,
                relu,
                satfinite,
            },
            d,
            a,
        })
    }

    fn setp(&mut self, m: &mut Mods<'_>, ops: &[Opnd]) -> Result<Op, PtxError> {
        let cmps = [
            "eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs", "equ", "neu", "ltu", "leu",
            "gtu", "geu", "num", "nan",
        ];
        let Some(c) = m.take_any(&cmps) else {
            return m.unknown();
        };
        let comb = match m.take_any(&["and", "or", "xor"]) {
            Some("and") => Some(BoolOp::And),
            Some("or") => Some(BoolOp::Or),
            Some("xor") => Some(BoolOp::Xor),
            _ => None,
        };
        let ftz = m.take("ftz");
        let ty = m.need_ty()?;
        m.done()?;
        let cty = match ty {
            Ty::F32 => CmpTy::F32,
            Ty::F64 => CmpTy::F64,
            t if t.is_signed() => CmpTy::S(W::of(t).ok_or_else(|| self.bad())?),
            t if t.is_unsigned() || t.is_bits() => CmpTy::U(W::of(t).ok_or_else(|| self.bad())?),
            _ => return m.unknown(),
        };
        let _ = ftz;
        let is_f = matches!(cty, CmpTy::F32 | CmpTy::F64);
        let cmp = match c {
            "eq" => Cmp::Eq,
            "ne" => Cmp::Ne,
            "lt" => Cmp::Lt,
            "le" => Cmp::Le,
            "gt" => Cmp::Gt,
            "ge" => Cmp::Ge,
            "lo" | "ls" | "hi" | "hs" if !is_f => {
                if matches!(cty, CmpTy::S(_)) {
                    return m.unknown();
                }
                match c {
                    "lo" => Cmp::Lt,
                    "ls" => Cmp::Le,
                    "hi" => Cmp::Gt,
                    _ => Cmp::Ge,
                }
            }
            "equ" if is_f => Cmp::Equ,
            "neu" if is_f => Cmp::Neu,
            "ltu" if is_f => Cmp::Ltu,
            "leu" if is_f => Cmp::Leu,
            "gtu" if is_f => Cmp::Gtu,
            "geu" if is_f => Cmp::Geu,
            "num" if is_f => Cmp::Num,
            "nan" if is_f => Cmp::Nan,
            _ => return m.unknown(),
        };
        if ty.is_bits() && !matches!(cmp, Cmp::Eq | Cmp::Ne) {
            return m.unknown();
        }
        let n = if comb.is_some() { 4 } else { 3 };
        self.nops(ops, n)?;
        let (d, d2) = match &ops[0] {
            Opnd::Pair(a, b) => (self.dst(a, Ty::Pred)?, self.dst(b, Ty::Pred)?),
            o => (self.dst(o, Ty::Pred)?, NO_REG),
        };
        let a = self.src(&ops[1], ty)?;
        let b = self.src(&ops[2], ty)?;
        let (c, c_neg) = if comb.is_some() {
            match &ops[3] {
                Opnd::Not(x) => (self.src(x, Ty::Pred)?, true),
                x => (self.src(x, Ty::Pred)?, false),
            }
        } else {
            (NO_REG, false)
        };
        Ok(Op::Setp {
            cmp,
            ty: cty,
            d,
            d2,
            a,
            b,
            comb,
            c,
            c_neg,
        })
    }

    fn bad(&self) -> PtxError {
        PtxError {
            line: self.line as usize,
            message: format!("unknown instruction '{}'", self.opcode),
        }
    }

    fn ldst(&mut self, ld: bool, m: &mut Mods<'_>, ops: &[Opnd]) -> Result<Op, PtxError> {
        let space = match m.take_any(&["global", "shared", "local", "param", "const"]) {
            Some("global") => MemSpace::Global,
            Some("shared") => MemSpace::Shared,
            Some("local") => MemSpace::Local,
            Some("param") => MemSpace::Param,
            Some("const") => MemSpace::Const,
            _ => MemSpace::Generic,
        };
        if !ld && matches!(space, MemSpace::Param | MemSpace::Const) {
            return m.unknown();
        }
        let nc = m.take("nc");
        if nc && (!ld || space != MemSpace::Global) {
            return m.unknown();
        }
        m.take_any(&["ca", "cg", "cs", "lu", "cv", "wb", "wt"]);
        m.take_any(&["weak", "volatile", "relaxed"]);
        m.take_any(&["cta", "gpu", "sys"]);
        m.list
            .retain(|x| !x.starts_with("L1::") && !x.starts_with("L2::"));
        let n = match m.take_any(&["v2", "v4"]) {
            Some("v2") => 2,
            Some(_) => 4,
            None => 1,
        };
        let ty = m.need_ty()?;
        m.done()?;
        if ty == Ty::Pred || ty.size() > 8 {
            return m.unknown();
        }
        self.nops(ops, 2)?;
        let size = ty.size();
        if ld {
            let (vn, d) = self.vec_regs(&ops[0], ty, Fit::Wider, true)?;
            if vn != n {
                return self.err(format!(
                    "'{}' needs {} destination registers",
                    self.opcode, n
                ));
            }
            let addr = self.addr(&ops[1], space)?;
            Ok(Op::Ld {
                space,
                size,
                signed: ty.is_signed(),
                n,
                d,
                addr,
            })
        } else {
            let addr = self.addr(&ops[0], space)?;
            let (vn, s) = self.vec_regs(&ops[1], ty, Fit::Wider, false)?;
            if vn != n {
                return self.err(format!("'{}' needs {} source registers", self.opcode, n));
            }
            Ok(Op::St {
                space,
                size,
                n,
                s,
                addr,
            })
        }
    }

    fn bar(&mut self, base: &str, m: &mut Mods<'_>, ops: &[Opnd]) -> Result<Op, PtxError> {
        m.take("cta");
        let (sync, arrive, red) = match m.take_any(&["sync", "arrive", "red"]) {
            Some("sync") => (true, false, false),
            Some("arrive") => (false, true, false),
            Some("red") => (false, false, true),
            _ => {
                if base == "barrier" && m.list.is_empty() {
                    (true, false, false)
                } else {
                    return m.unknown();
                }
            }
        };
        let _ = sync;
        m.take("aligned");
        if red {
            let rop = match m.take_any(&["and", "or", "popc"]) {
                Some("and") => RedOp::And,
                Some("or") => RedOp::Or,
                Some(_) => RedOp::Popc,
                None => return m.unknown(),
            };
            let ty = m.need_ty()?;
            m.take("aligned");
            m.done()?;
            let want = if rop == RedOp::Popc {
                Ty::U32
            } else {
                Ty::Pred
            };
            if ty != want {
                return m.unknown();
            }
            if ops.len() != 3 && ops.len() != 4 {
                return self.err(format!("'{}' takes 3 or 4 operands", self.opcode));
            }
            let d = self.dst(&ops[0], want)?;
            let id = self.src(&ops[1], Ty::U32)?;
            let count = if ops.len() == 4 {
                self.src(&ops[2], Ty::U32)?
            } else {
                NO_REG
            };
            let (p, neg) = match &ops[ops.len() - 1] {
                Opnd::Not(x) => (self.src(x, Ty::Pred)?, true),
                x => (self.src(x, Ty::Pred)?, false),
            };
            return Ok(Op::Bar {
                id,
                count,
                red: Some((rop, d, p, neg)),
                arrive: false,
            });
        }
        m.done()?;
        if ops.is_empty() || ops.len() > 2 {
            return self.err(format!("'{}' takes 1 or 2 operands", self.opcode));
        }
        if arrive && ops.len() != 2 {
            return self.err("bar.arrive needs a thread count");
        }
        let id = self.src(&ops[0], Ty::U32)?;
        let count = if ops.len() == 2 {
            self.src(&ops[1], Ty::U32)?
        } else {
            NO_REG
        };
        Ok(Op::Bar {
            id,
            count,
            red: None,
            arrive,
        })
    }

    fn cp(&mut self, m: &mut Mods<'_>, ops: &[Opnd]) -> Result<Op, PtxError> {
        if !m.take("async") {
            return m.unknown();
        }
        if m.take("commit_group") {
            m.done()?;
            self.nops(ops, 0)?;
            return Ok(Op::CpCommit);
        }
        if m.take("wait_group") {
            m.done()?;
            self.nops(ops, 1)?;
            let Opnd::Int(n) = ops[0] else {
                return self.err("cp.async.wait_group needs an integer constant");
            };
            return Ok(Op::CpWait {
                n: n.min(u32::MAX as u64) as u32,
                all: false,
            });
        }
        if m.take("wait_all") {
            m.done()?;
            self.nops(ops, 0)?;
            return Ok(Op::CpWait { n: 0, all: true });
        }
        let cg = match m.take_any(&["ca", "cg"]) {
            Some("cg") => true,
            Some(_) => false,
            None => return m.unknown(),
        };
        if !(m.take("shared") && m.take("global")) {
            return m.unknown();
        }
        m.list
            .retain(|x| !matches!(*x, "L2::64B" | "L2::128B" | "L2::256B"));
        m.done()?;
        if ops.len() < 3 || ops.len() > 4 {
            return self.err("cp.async takes [dst], [src], cp-size{, src-size | ignore-src}");
        }
        let dst = self.addr(&ops[0], MemSpace::Shared)?;
        let src = self.addr(&ops[1], MemSpace::Global)?;
        let Opnd::Int(size) = ops[2] else {
            return self.err("cp.async cp-size must be an integer constant");
        };
        if !(size == 4 || size == 8 || size == 16) || (cg && size != 16) {
            return self.err(format!("cp.async cp-size {size} not allowed here"));
        }
        let (mut src_size, mut ignore_src, mut ignore_neg) = (NO_REG, NO_REG, false);
        if ops.len() == 4 {
            match &ops[3] {
                Opnd::Reg(r) if self.f.regs[*r as usize].ty == Ty::Pred => ignore_src = *r,
                Opnd::Not(x) => {
                    ignore_src = self.src(x, Ty::Pred)?;
                    ignore_neg = true;
                }
                o => src_size = self.src(o, Ty::U32)?,
            }
        }
        Ok(Op::CpAsync {
            size: size as u32,
            src_size,
            ignore_src,
            ignore_neg,
            dst,
            src,
        })
    }
}

/// Keeps the bits of `ty`'s size.
pub fn mask_ty(v: u64, ty: Ty) -> u64 {
    match ty.size() {
        1 => v & 0xff,
        2 => v & 0xffff,
        4 => v & 0xffff_ffff,
        _ => v,
    }
}

//! The warp engine: runs a decoded kernel over a grid, the lanes of a warp
//! together.
//!
//! It exists to give the interpreter one execution model, documented here:
//!
//! - **Registers** are per warp, `[register][lane]` of u64 bit patterns
//!   (predicates 0/1), so that one instruction is a loop over 32 adjacent
//!   values. A value of an N-bit type lives in the low N bits; readers use
//!   only the bits of their type.
//! - **Divergence**: each lane has its own PC. The warp runs the group of
//!   live, non-waiting lanes at the *minimum* PC; the group runs ahead while
//!   it stays below the PC of every other lane, and merges with lanes it
//!   reaches. Structured code (if/else, loops) therefore reconverges at its
//!   immediate post-dominator without a reconvergence stack.
//! - **Barriers** (`bar.sync`/`barrier.sync`/`bar.red`, ids 0..15): a
//!   thread that arrives waits; a barrier without a thread count completes
//!   when every *non-exited* thread of the CTA has arrived (PTX ISA,
//!   barrier: "wait for all non-exited threads"), so threads that exited
//!   early do not hold the others; with a count it completes when that
//!   many threads have arrived. If no thread can run and no barrier can
//!   complete, the launch fails (IllegalInstruction) naming the barriers.
//! - **Warp-synchronous instructions** (`shfl.sync`, `vote.sync`): the
//!   member mask must name exactly the lanes executing the instruction
//!   together; `.aligned` ones (`mma`, `ldmatrix`) need all 32 lanes. Else
//!   IllegalInstruction naming the missing lanes.
//! - **Blocks** run one after another; warps of a block run until they
//!   wait at a barrier or exit.
//! - **Memory**: global memory only through [`Memory`]; alignment is
//!   checked first (MisalignedAddress). Shared memory and race detection:
//!   see `shared.rs` (state-space offsets from 0; generic window). Local
//!   memory: a per-thread buffer, window `LOCAL_WINDOW`. `cp.async` reads
//!   global memory when issued and writes shared memory when its group is
//!   retired by `cp.async.wait_group`/`wait_all` (or at block end).
//! - `%clock`/`%clock64`: the number of warp instructions issued so far in
//!   the launch (deterministic).

use super::decode::*;
use super::float::{self, Fmt, Rnd};
use super::mma;
use super::parse::Ty;
use super::shared::{Shared, LOCAL_WINDOW, SHARED_WINDOW, WINDOW_SIZE};
use super::{Fault, FaultKind, Init, LaunchStats, Memory};

const FULL: u32 = u32::MAX;

/// The state of one warp.
pub struct Warp {
    pub regs: Vec<u64>,
    pcs: [u32; 32],
    /// Lanes that exist and have not exited.
    live: u32,
    /// Lanes waiting at a barrier.
    waiting: u32,
    wait_bar: [u8; 32],
}

impl Warp {
    pub fn new(nregs: u32) -> Warp {
        Warp {
            regs: vec![0; nregs as usize * 32],
            pcs: [0; 32],
            live: 0,
            waiting: 0,
            wait_bar: [0; 32],
        }
    }
}

#[derive(Default)]
struct BarState {
    arrived: u32,
    /// Thread count of the barrier (0: all non-exited threads).
    count: u32,
    line_pc: u32,
    red: Option<RedOp>,
    all: bool,
    any: bool,
    popc: u32,
    /// (warp, lane, destination register) of bar.red.
    dests: Vec<(u32, u32, u32)>,
}

struct CpEntry {
    tid: u32,
    /// 0: not yet committed.
    group: u32,
    dst: u64,
    len: u32,
    pc: u32,
    data: [u8; 16],
}

/// One launch in progress.
pub struct Run<'a> {
    pub k: &'a Kernel,
    pub mem: &'a mut dyn Memory,
    pub stats: LaunchStats,
    pub params: Vec<u8>,
    pub globals: &'a [u64],
    pub grid: [u32; 3],
    pub bdim: [u32; 3],
    pub nthreads: u32,
    pub block: [u32; 3],
    pub dyn_smem: u64,
    pub shared: Shared,
    pub local: Vec<u8>,
    nw_count: u64,
    nw_first: Option<String>,
    bars: Vec<BarState>,
    live_threads: u32,
    cp: Vec<CpEntry>,
    cp_groups: Vec<u32>,
}

#[inline(always)]
fn sx(v: u64, bits: u32) -> i64 {
    ((v << (64 - bits)) as i64) >> (64 - bits)
}

#[inline(always)]
fn mk(v: u64, bits: u32) -> u64 {
    if bits >= 64 {
        v
    } else {
        v & ((1u64 << bits) - 1)
    }
}

#[inline(always)]
fn map1(regs: &mut [u64], mask: u32, d: u32, a: u32, f: impl Fn(u64) -> u64) {
    let (d, a) = (d as usize * 32, a as usize * 32);
    if mask == FULL {
        let mut av = [0u64; 32];
        av.copy_from_slice(&regs[a..a + 32]);
        for (o, x) in regs[d..d + 32].iter_mut().zip(av.iter()) {
            *o = f(*x);
        }
    } else {
        let mut m = mask;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            regs[d + l] = f(regs[a + l]);
        }
    }
}

#[inline(always)]
fn map2(regs: &mut [u64], mask: u32, d: u32, a: u32, b: u32, f: impl Fn(u64, u64) -> u64) {
    let (d, a, b) = (d as usize * 32, a as usize * 32, b as usize * 32);
    if mask == FULL {
        let mut av = [0u64; 32];
        let mut bv = [0u64; 32];
        av.copy_from_slice(&regs[a..a + 32]);
        bv.copy_from_slice(&regs[b..b + 32]);
        for ((o, x), y) in regs[d..d + 32].iter_mut().zip(av.iter()).zip(bv.iter()) {
            *o = f(*x, *y);
        }
    } else {
        let mut m = mask;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            regs[d + l] = f(regs[a + l], regs[b + l]);
        }
    }
}

#[inline(always)]
fn map3(
    regs: &mut [u64],
    mask: u32,
    d: u32,
    a: u32,
    b: u32,
    c: u32,
    f: impl Fn(u64, u64, u64) -> u64,
) {
    let (d, a, b, c) = (
        d as usize * 32,
        a as usize * 32,
        b as usize * 32,
        c as usize * 32,
    );
    if mask == FULL {
        let mut av = [0u64; 32];
        let mut bv = [0u64; 32];
        let mut cv = [0u64; 32];
        av.copy_from_slice(&regs[a..a + 32]);
        bv.copy_from_slice(&regs[b..b + 32]);
        cv.copy_from_slice(&regs[c..c + 32]);
        for l in 0..32 {
            regs[d + l] = f(av[l], bv[l], cv[l]);
        }
    } else {
        let mut m = mask;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            regs[d + l] = f(regs[a + l], regs[b + l], regs[c + l]);
        }
    }
}

fn ibin<const B: u32>(op: IBin, regs: &mut [u64], mask: u32, d: u32, a: u32, b: u32) {
    let m = |v: u64| mk(v, B);
    let s = |v: u64| sx(v, B);
    match op {
        IBin::Add => map2(regs, mask, d, a, b, |x, y| m(x.wrapping_add(y))),
        IBin::Sub => map2(regs, mask, d, a, b, |x, y| m(x.wrapping_sub(y))),
        IBin::MulLo => map2(regs, mask, d, a, b, |x, y| m(x.wrapping_mul(y))),
        IBin::MulHiU => map2(regs, mask, d, a, b, |x, y| {
            m(((m(x) as u128 * m(y) as u128) >> B) as u64)
        }),
        IBin::MulHiS => map2(regs, mask, d, a, b, |x, y| {
            m(((s(x) as i128 * s(y) as i128) >> B) as u64)
        }),
        IBin::DivU => map2(regs, mask, d, a, b, |x, y| {
            m(x).checked_div(m(y)).unwrap_or(m(u64::MAX))
        }),
        IBin::DivS => map2(regs, mask, d, a, b, |x, y| {
            let (x, y) = (s(x), s(y));
            if y == 0 {
                m(u64::MAX)
            } else {
                m(x.wrapping_div(y) as u64)
            }
        }),
        IBin::RemU => map2(regs, mask, d, a, b, |x, y| {
            m(x).checked_rem(m(y)).unwrap_or(m(x))
        }),
        IBin::RemS => map2(regs, mask, d, a, b, |x, y| {
            let (x, y) = (s(x), s(y));
            if y == 0 {
                m(x as u64)
            } else {
                m(x.wrapping_rem(y) as u64)
            }
        }),
        IBin::MinU => map2(regs, mask, d, a, b, |x, y| m(x).min(m(y))),
        IBin::MaxU => map2(regs, mask, d, a, b, |x, y| m(x).max(m(y))),
        IBin::MinS => map2(regs, mask, d, a, b, |x, y| m(s(x).min(s(y)) as u64)),
        IBin::MaxS => map2(regs, mask, d, a, b, |x, y| m(s(x).max(s(y)) as u64)),
        IBin::And => map2(regs, mask, d, a, b, |x, y| x & y),
        IBin::Or => map2(regs, mask, d, a, b, |x, y| x | y),
        IBin::Xor => map2(regs, mask, d, a, b, |x, y| m(x ^ y)),
        IBin::Shl => map2(regs, mask, d, a, b, |x, y| {
            let y = y as u32;
            if y >= B {
                0
            } else {
                m(x << y)
            }
        }),
        IBin::ShrU => map2(regs, mask, d, a, b, |x, y| {
            let y = y as u32;
            if y >= B {
                0
            } else {
                m(x) >> y
            }
        }),
        IBin::ShrS => map2(regs, mask, d, a, b, |x, y| {
            let y = (y as u32).min(B - 1);
            m((s(x) >> y) as u64)
        }),
    }
}

fn iun<const B: u32>(op: IUn, regs: &mut [u64], mask: u32, d: u32, a: u32) {
    let m = |v: u64| mk(v, B);
    match op {
        IUn::Not => map1(regs, mask, d, a, |x| m(!x)),
        IUn::Neg => map1(regs, mask, d, a, |x| m(x.wrapping_neg())),
        IUn::Abs => map1(regs, mask, d, a, |x| m(sx(x, B).wrapping_abs() as u64)),
        IUn::Popc => map1(regs, mask, d, a, |x| m(x).count_ones() as u64),
        IUn::Clz => map1(regs, mask, d, a, |x| {
            (m(x).leading_zeros() - (64 - B)) as u64
        }),
        IUn::Brev => map1(regs, mask, d, a, |x| m(x).reverse_bits() >> (64 - B)),
        IUn::NotPred => map1(regs, mask, d, a, |x| (x & 1) ^ 1),
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn setp_run(
    regs: &mut [u64],
    mask: u32,
    d: u32,
    d2: u32,
    a: u32,
    b: u32,
    comb: Option<BoolOp>,
    c: u32,
    c_neg: bool,
    f: impl Fn(u64, u64) -> bool,
) {
    let (du, au, bu) = (d as usize * 32, a as usize * 32, b as usize * 32);
    let mut m = mask;
    while m != 0 {
        let l = m.trailing_zeros() as usize;
        m &= m - 1;
        let r = f(regs[au + l], regs[bu + l]);
        let (p, q) = match comb {
            None => (r, !r),
            Some(op) => {
                let cv = (regs[c as usize * 32 + l] & 1 != 0) ^ c_neg;
                match op {
                    BoolOp::And => (r && cv, !r && cv),
                    BoolOp::Or => (r || cv, !r || cv),
                    BoolOp::Xor => (r ^ cv, !r ^ cv),
                }
            }
        };
        regs[du + l] = p as u64;
        if d2 != NO_REG {
            regs[d2 as usize * 32 + l] = q as u64;
        }
    }
}

fn fcmp(cmp: Cmp, x: f64, y: f64) -> bool {
    let nan = x.is_nan() || y.is_nan();
    match cmp {
        Cmp::Eq => !nan && x == y,
        Cmp::Ne => !nan && x != y,
        Cmp::Lt => !nan && x < y,
        Cmp::Le => !nan && x <= y,
        Cmp::Gt => !nan && x > y,
        Cmp::Ge => !nan && x >= y,
        Cmp::Equ => nan || x == y,
        Cmp::Neu => nan || x != y,
        Cmp::Ltu => nan || x < y,
        Cmp::Leu => nan || x <= y,
        Cmp::Gtu => nan || x > y,
        Cmp::Geu => nan || x >= y,
        Cmp::Num => !nan,
        Cmp::Nan => nan,
    }
}

macro_rules! icmp_dispatch {
    ($cmp:expr, $conv:expr, $run:ident) => {{
        let cv = $conv;
        match $cmp {
            Cmp::Eq => $run!(move |x, y| cv(x) == cv(y)),
            Cmp::Ne => $run!(move |x, y| cv(x) != cv(y)),
            Cmp::Lt => $run!(move |x, y| cv(x) < cv(y)),
            Cmp::Le => $run!(move |x, y| cv(x) <= cv(y)),
            Cmp::Gt => $run!(move |x, y| cv(x) > cv(y)),
            Cmp::Ge => $run!(move |x, y| cv(x) >= cv(y)),
            _ => $run!(|_, _| false),
        }
    }};
}

fn fmt_of(t: Ty) -> Option<Fmt> {
    match t {
        Ty::F16 => Some(float::F16),
        Ty::BF16 => Some(float::BF16),
        Ty::F32 => Some(float::F32),
        Ty::F64 => Some(float::F64),
        _ => None,
    }
}

fn int_range(t: Ty) -> (i128, i128) {
    let bits = t.size() * 8;
    if t.is_signed() {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

/// One conversion (the general path of `cvt`).
pub fn cvt_one(ci: &CvtInfo, x: u64) -> u64 {
    let dt = ci.dt;
    let at = ci.at;
    let dbits = dt.size() * 8;
    match (fmt_of(at), fmt_of(dt)) {
        (None, None) => {
            let abits = at.size() * 8;
            let v: i128 = if at.is_signed() {
                sx(x, abits) as i128
            } else {
                mk(x, abits) as i128
            };
            if ci.sat {
                let (lo, hi) = int_range(dt);
                mk(v.clamp(lo, hi) as u64, dbits)
            } else {
                mk(v as u64, dbits)
            }
        }
        (None, Some(df)) => {
            let abits = at.size() * 8;
            let v: i128 = if at.is_signed() {
                sx(x, abits) as i128
            } else {
                mk(x, abits) as i128
            };
            let r = float::int_to_float(v, df, ci.rnd.unwrap_or(Rnd::Rn));
            finish_float(ci, df, r)
        }
        (Some(af), None) => {
            let mut f = af.to_f64(x);
            if ci.ftz && at == Ty::F32 && (f as f32).is_subnormal() {
                f = 0.0;
            }
            if f.is_nan() {
                return 0;
            }
            let r = float::round_integral(f, ci.rnd.unwrap_or(Rnd::Rz));
            let (lo, hi) = int_range(dt);
            let v = (r as i128).clamp(lo, hi);
            mk(v as u64, dbits)
        }
        (Some(af), Some(df)) => {
            let mut f = af.to_f64(x);
            if ci.ftz && at == Ty::F32 && (f as f32).is_subnormal() {
                f = if f.is_sign_negative() { -0.0 } else { 0.0 };
            }
            if ci.int_rnd {
                f = float::round_integral(f, ci.rnd.unwrap_or(Rnd::Rn));
            }
            let r = df.encode(
                f,
                if ci.int_rnd {
                    Rnd::Rn
                } else {
                    ci.rnd.unwrap_or(Rnd::Rn)
                },
            );
            finish_float(ci, df, r)
        }
    }
}

fn finish_float(ci: &CvtInfo, df: Fmt, mut r: u64) -> u64 {
    if df.is_nan(r) {
        return df.canonical_nan();
    }
    if ci.relu && r & df.sign_bit() != 0 {
        r = 0;
    }
    if ci.satfinite {
        let mag = r & !df.sign_bit();
        if mag == df.inf(false) {
            r = df.max_finite(r & df.sign_bit() != 0);
        }
    }
    if ci.sat {
        let v = float::sat01(df.to_f64(r));
        r = df.encode(v, Rnd::Rn);
    }
    if ci.ftz && df == float::F32 && f32::from_bits(r as u32).is_subnormal() {
        r &= df.sign_bit();
    }
    r
}

fn prmt(mode: u8, a: u32, b: u32, c: u32) -> u32 {
    let tmp = ((b as u64) << 32) | a as u64;
    let byte = |i: u32| ((tmp >> (8 * (i & 7))) & 0xff) as u32;
    let mut d = 0u32;
    if mode == 0 {
        for i in 0..4 {
            let sel = (c >> (4 * i)) & 0xf;
            let mut v = byte(sel & 7);
            if sel & 8 != 0 {
                v = if v & 0x80 != 0 { 0xff } else { 0 };
            }
            d |= v << (8 * i);
        }
        return d;
    }
    let s = c & 3;
    for i in 0..4u32 {
        let idx = match mode {
            1 => s + i,
            2 => s.wrapping_sub(i) & 7,
            3 => s,
            4 => i.max(s),
            5 => i.min(s),
            _ => {
                if s & 1 == 0 {
                    i & 1
                } else {
                    2 + (i & 1)
                }
            }
        };
        d |= byte(idx) << (8 * i);
    }
    d
}

fn lane_ranges(mask: u32) -> String {
    let mut out = Vec::new();
    let mut l = 0;
    while l < 32 {
        if mask >> l & 1 == 1 {
            let s = l;
            while l + 1 < 32 && mask >> (l + 1) & 1 == 1 {
                l += 1;
            }
            out.push(if s == l {
                format!("{s}")
            } else {
                format!("{s}-{l}")
            });
        }
        l += 1;
    }
    out.join(",")
}

impl<'a> Run<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        k: &'a Kernel,
        mem: &'a mut dyn Memory,
        params: Vec<u8>,
        globals: &'a [u64],
        grid: [u32; 3],
        bdim: [u32; 3],
        dyn_smem: u64,
    ) -> Run<'a> {
        let nthreads = bdim[0] * bdim[1] * bdim[2];
        Run {
            k,
            mem,
            stats: LaunchStats::default(),
            params,
            globals,
            grid,
            bdim,
            nthreads,
            block: [0; 3],
            dyn_smem,
            shared: Shared::new(),
            local: Vec::new(),
            nw_count: 0,
            nw_first: None,
            bars: (0..16).map(|_| BarState::default()).collect(),
            live_threads: 0,
            cp: Vec::new(),
            cp_groups: vec![0; nthreads as usize],
        }
    }

    fn coords(&self, tid: u32) -> [u32; 3] {
        let bx = self.bdim[0];
        let by = self.bdim[1];
        [tid % bx, (tid / bx) % by, tid / (bx * by)]
    }

    /// One line naming the kernel, PTX line, source line, block and thread.
    fn msg(&self, pc: u32, tid: Option<u32>, what: &str) -> String {
        let k = self.k;
        let pcu = (pc as usize).min(k.lines.len().saturating_sub(1));
        let line = k.lines.get(pcu).copied().unwrap_or(0);
        let loc = match k.locs.get(pcu) {
            Some(&(f, l)) if l > 0 => match k.files.get(&f) {
                Some(name) => format!(" ({name}:{l})"),
                None => format!(" (file {f}:{l})"),
            },
            _ => String::new(),
        };
        let op = k.opcodes.get(pcu).map(|s| s.as_str()).unwrap_or("?");
        let b = self.block;
        let th = match tid {
            Some(t) => {
                let c = self.coords(t);
                format!(" thread ({},{},{})", c[0], c[1], c[2])
            }
            None => String::new(),
        };
        format!(
            "{}: line {}{} '{}', block ({},{},{}){}: {}",
            k.name, line, loc, op, b[0], b[1], b[2], th, what
        )
    }

    fn fault(&self, kind: FaultKind, pc: u32, tid: Option<u32>, what: &str) -> Fault {
        Fault {
            kind,
            message: self.msg(pc, tid, what),
        }
    }

    fn fill_consts(&self, w: &mut Warp, wi: u32) {
        let nwarps = self.nthreads.div_ceil(32);
        for &(r, v) in &self.k.consts {
            let base = r as usize * 32;
            for lane in 0..32u32 {
                let tid = wi * 32 + lane;
                let val = match v {
                    ConstVal::Bits(b) => b,
                    ConstVal::GlobalAddr(g, off) => self
                        .globals
                        .get(g as usize)
                        .copied()
                        .unwrap_or(0)
                        .wrapping_add(off as u64),
                    ConstVal::Special(s) => match s {
                        Special::Tid(d) => self.coords(tid)[d as usize] as u64,
                        Special::Ntid(d) => self.bdim[d as usize] as u64,
                        Special::Ctaid(d) => self.block[d as usize] as u64,
                        Special::Nctaid(d) => self.grid[d as usize] as u64,
                        Special::LaneId => lane as u64,
                        Special::WarpId => wi as u64,
                        Special::NWarpId => nwarps as u64,
                        Special::SmId | Special::GridId => 0,
                        Special::NSmId => 1,
                        Special::LaneMaskEq => 1u64 << lane,
                        Special::LaneMaskLt => (1u64 << lane) - 1,
                        Special::LaneMaskLe => (1u64 << (lane + 1)) - 1,
                        Special::LaneMaskGt => mk(!((1u64 << (lane + 1)) - 1), 32),
                        Special::LaneMaskGe => mk(!((1u64 << lane) - 1), 32),
                        Special::DynSmem => self.dyn_smem,
                        Special::TotalSmem => self.shared.size(),
                    },
                };
                w.regs[base + lane as usize] = val;
            }
        }
    }

    /// Runs every block of the grid.
    pub fn run(&mut self) -> Result<(), Fault> {
        let nwarps = self.nthreads.div_ceil(32);
        let mut warps: Vec<Warp> = (0..nwarps).map(|_| Warp::new(self.k.nregs)).collect();
        let al = self.k.dyn_shared_align.max(1);
        let smem = if self.dyn_smem == 0 {
            self.k.static_shared
        } else {
            self.k.static_shared.div_ceil(al) * al + self.dyn_smem
        };
        let lb = self.k.local_bytes as usize;
        for bz in 0..self.grid[2] {
            for by in 0..self.grid[1] {
                for bx in 0..self.grid[0] {
                    self.block = [bx, by, bz];
                    self.shared.reset(smem as usize);
                    if lb > 0 {
                        self.local.clear();
                        self.local.resize(lb * self.nthreads as usize, 0);
                    }
                    for g in self.cp_groups.iter_mut() {
                        *g = 0;
                    }
                    self.live_threads = self.nthreads;
                    for (wi, w) in warps.iter_mut().enumerate() {
                        let n = (self.nthreads - wi as u32 * 32).min(32);
                        w.live = if n == 32 { FULL } else { (1u32 << n) - 1 };
                        w.waiting = 0;
                        w.pcs = [0; 32];
                        self.fill_consts(w, wi as u32);
                    }
                    self.run_block(&mut warps)?;
                }
            }
        }
        if let Some(first) = self.nw_first.take() {
            let more = self.nw_count - 1;
            self.stats.warnings.push(if more > 0 {
                format!("{first}; and {more} more reads of never-written memory")
            } else {
                first
            });
        }
        Ok(())
    }

    fn run_block(&mut self, warps: &mut [Warp]) -> Result<(), Fault> {
        loop {
            let mut any = false;
            for wi in 0..warps.len() {
                if warps[wi].live & !warps[wi].waiting != 0 {
                    any = true;
                    self.run_warp(&mut warps[wi], wi as u32)?;
                    self.try_release(warps);
                }
            }
            if self.live_threads == 0 {
                break;
            }
            if !any && !self.try_release(warps) {
                return Err(self.deadlock(warps));
            }
        }
        // Copies never waited for land at the end of the block.
        self.complete_cp(None, &[0; 32], 0)?;
        for b in self.bars.iter_mut() {
            b.arrived = 0;
            b.dests.clear();
        }
        Ok(())
    }

    fn deadlock(&self, warps: &[Warp]) -> Fault {
        let mut parts = Vec::new();
        let mut first_pc = 0;
        let mut first_tid = None;
        for (id, b) in self.bars.iter().enumerate() {
            if b.arrived > 0 {
                let line = self.k.lines.get(b.line_pc as usize).copied().unwrap_or(0);
                let need = if b.count > 0 {
                    b.count
                } else {
                    self.live_threads
                };
                parts.push(format!(
                    "{} threads wait at barrier {} (line {}, which needs {})",
                    b.arrived, id, line, need
                ));
                if first_tid.is_none() {
                    first_pc = b.line_pc;
                    for (wi, w) in warps.iter().enumerate() {
                        if w.waiting != 0 {
                            first_tid = Some(wi as u32 * 32 + w.waiting.trailing_zeros());
                            break;
                        }
                    }
                }
            }
        }
        self.fault(
            FaultKind::IllegalInstruction,
            first_pc,
            first_tid,
            &format!(
                "barrier cannot complete: {}; the block has {} non-exited threads",
                parts.join("; "),
                self.live_threads
            ),
        )
    }

    /// Completes every barrier that can complete; whether any did.
    fn try_release(&mut self, warps: &mut [Warp]) -> bool {
        let mut released = false;
        for id in 0..16 {
            let b = &self.bars[id];
            if b.arrived == 0 {
                continue;
            }
            let need = if b.count > 0 {
                b.count
            } else {
                self.live_threads
            };
            if b.arrived < need {
                continue;
            }
            let b = &mut self.bars[id];
            let val = match b.red {
                Some(RedOp::And) => b.all as u64,
                Some(RedOp::Or) => b.any as u64,
                Some(RedOp::Popc) => b.popc as u64,
                None => 0,
            };
            for &(wi, lane, reg) in &b.dests {
                warps[wi as usize].regs[reg as usize * 32 + lane as usize] = val;
            }
            b.dests.clear();
            b.arrived = 0;
            b.count = 0;
            b.red = None;
            for w in warps.iter_mut() {
                let mut m = w.waiting;
                while m != 0 {
                    let l = m.trailing_zeros();
                    m &= m - 1;
                    if w.wait_bar[l as usize] as usize == id {
                        w.waiting &= !(1 << l);
                    }
                }
            }
            self.shared.barrier();
            released = true;
        }
        released
    }

    fn addr_of(regs: &[u64], a: &Addr, lane: usize) -> u64 {
        let base = if a.base == NO_REG {
            0
        } else {
            let v = regs[a.base as usize * 32 + lane];
            if a.base32 {
                v & 0xffff_ffff
            } else {
                v
            }
        };
        base.wrapping_add(a.off as u64)
    }

    fn note_never_written(&mut self, pc: u32, tid: u32, addr: u64, len: usize) {
        self.nw_count += 1;
        if self.nw_first.is_none() {
            self.nw_first = Some(self.msg(
                pc,
                Some(tid),
                &format!("read of never-written global memory at {addr:#x} ({len} bytes)"),
            ));
        }
    }

    fn global_read(&mut self, pc: u32, tid: u32, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let mut off = 0;
        while off < buf.len() {
            let n = (buf.len() - off).min(16);
            let a = addr.wrapping_add(off as u64);
            match self.mem.read(a, &mut buf[off..off + n]) {
                Ok(Init::Written) => {}
                Ok(Init::NeverWritten) => self.note_never_written(pc, tid, a, n),
                Err(why) => {
                    return Err(self.fault(
                        FaultKind::IllegalAddress,
                        pc,
                        Some(tid),
                        &format!("illegal address {a:#x} ({n} bytes read): {why}"),
                    ))
                }
            }
            off += n;
        }
        self.stats.global_bytes_read += buf.len() as u64;
        Ok(())
    }

    fn global_write(&mut self, pc: u32, tid: u32, addr: u64, data: &[u8]) -> Result<(), Fault> {
        let mut off = 0;
        while off < data.len() {
            let n = (data.len() - off).min(16);
            let a = addr.wrapping_add(off as u64);
            if let Err(why) = self.mem.write(a, &data[off..off + n]) {
                return Err(self.fault(
                    FaultKind::IllegalAddress,
                    pc,
                    Some(tid),
                    &format!("illegal address {a:#x} ({n} bytes written): {why}"),
                ));
            }
            off += n;
        }
        self.stats.global_bytes_written += data.len() as u64;
        Ok(())
    }

    fn race(&self, pc: u32, tid: u32, write: bool, r: super::shared::Race) -> Fault {
        let oc = self.coords(r.other_tid);
        let me = self.coords(tid);
        let oline = self
            .k
            .lines
            .get(r.other_line as usize)
            .copied()
            .unwrap_or(0);
        self.fault(
            FaultKind::SharedRace,
            pc,
            Some(tid),
            &format!(
                "shared-memory race at shared offset {:#x}: thread ({},{},{}) {} it after thread ({},{},{}) {} it at line {}, with no barrier between",
                r.offset,
                me[0],
                me[1],
                me[2],
                if write { "writes" } else { "reads" },
                oc[0],
                oc[1],
                oc[2],
                if r.other_was_write { "wrote" } else { "read" },
                oline
            ),
        )
    }

    fn shared_read(&mut self, pc: u32, tid: u32, off: u64, buf: &mut [u8]) -> Result<(), Fault> {
        if !self.shared.in_bounds(off, buf.len() as u64) {
            return Err(self.fault(
                FaultKind::IllegalAddress,
                pc,
                Some(tid),
                &format!(
                    "shared address {:#x} ({} bytes) outside the block's {} bytes of shared memory",
                    off,
                    buf.len(),
                    self.shared.size()
                ),
            ));
        }
        self.shared
            .read(off, buf, tid, pc)
            .map_err(|r| self.race(pc, tid, false, r))
    }

    fn shared_write(&mut self, pc: u32, tid: u32, off: u64, data: &[u8]) -> Result<(), Fault> {
        if !self.shared.in_bounds(off, data.len() as u64) {
            return Err(self.fault(
                FaultKind::IllegalAddress,
                pc,
                Some(tid),
                &format!(
                    "shared address {:#x} ({} bytes) outside the block's {} bytes of shared memory",
                    off,
                    data.len(),
                    self.shared.size()
                ),
            ));
        }
        self.shared
            .write(off, data, tid, pc)
            .map_err(|r| self.race(pc, tid, true, r))
    }

    fn local_range(&self, pc: u32, tid: u32, off: u64, len: usize) -> Result<usize, Fault> {
        let lb = self.k.local_bytes;
        if off.checked_add(len as u64).is_none_or(|e| e > lb) {
            return Err(self.fault(
                FaultKind::IllegalAddress,
                pc,
                Some(tid),
                &format!("local address {off:#x} ({len} bytes) outside the thread's {lb} bytes of local memory"),
            ));
        }
        Ok(tid as usize * lb as usize + off as usize)
    }

    fn misaligned(&self, pc: u32, tid: u32, space: &str, addr: u64, len: usize) -> Fault {
        self.fault(
            FaultKind::MisalignedAddress,
            pc,
            Some(tid),
            &format!("misaligned {space} address {addr:#x} for a {len}-byte access"),
        )
    }

    fn load(
        &mut self,
        space: MemSpace,
        pc: u32,
        tid: u32,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), Fault> {
        let len = buf.len();
        if !addr.is_multiple_of(len as u64) {
            let s = match space {
                MemSpace::Shared => "shared",
                MemSpace::Local => "local",
                MemSpace::Param => "param",
                _ => "global",
            };
            return Err(self.misaligned(pc, tid, s, addr, len));
        }
        match space {
            MemSpace::Global | MemSpace::Const => self.global_read(pc, tid, addr, buf),
            MemSpace::Shared => self.shared_read(pc, tid, addr, buf),
            MemSpace::Local => {
                let o = self.local_range(pc, tid, addr, len)?;
                buf.copy_from_slice(&self.local[o..o + len]);
                Ok(())
            }
            MemSpace::Param => {
                if addr
                    .checked_add(len as u64)
                    .is_none_or(|e| e > self.params.len() as u64)
                {
                    return Err(self.fault(
                        FaultKind::IllegalAddress,
                        pc,
                        Some(tid),
                        &format!("param address {addr:#x} ({len} bytes) outside the kernel's {} bytes of parameters", self.params.len()),
                    ));
                }
                buf.copy_from_slice(&self.params[addr as usize..addr as usize + len]);
                Ok(())
            }
            MemSpace::Generic => {
                if addr.wrapping_sub(SHARED_WINDOW) < WINDOW_SIZE {
                    self.shared_read(pc, tid, addr - SHARED_WINDOW, buf)
                } else if addr.wrapping_sub(LOCAL_WINDOW) < WINDOW_SIZE {
                    let o = self.local_range(pc, tid, addr - LOCAL_WINDOW, len)?;
                    buf.copy_from_slice(&self.local[o..o + len]);
                    Ok(())
                } else {
                    self.global_read(pc, tid, addr, buf)
                }
            }
        }
    }

    fn store(
        &mut self,
        space: MemSpace,
        pc: u32,
        tid: u32,
        addr: u64,
        data: &[u8],
    ) -> Result<(), Fault> {
        let len = data.len();
        if !addr.is_multiple_of(len as u64) {
            let s = match space {
                MemSpace::Shared => "shared",
                MemSpace::Local => "local",
                _ => "global",
            };
            return Err(self.misaligned(pc, tid, s, addr, len));
        }
        match space {
            MemSpace::Global | MemSpace::Const | MemSpace::Param => {
                self.global_write(pc, tid, addr, data)
            }
            MemSpace::Shared => self.shared_write(pc, tid, addr, data),
            MemSpace::Local => {
                let o = self.local_range(pc, tid, addr, len)?;
                self.local[o..o + len].copy_from_slice(data);
                Ok(())
            }
            MemSpace::Generic => {
                if addr.wrapping_sub(SHARED_WINDOW) < WINDOW_SIZE {
                    self.shared_write(pc, tid, addr - SHARED_WINDOW, data)
                } else if addr.wrapping_sub(LOCAL_WINDOW) < WINDOW_SIZE {
                    let o = self.local_range(pc, tid, addr - LOCAL_WINDOW, len)?;
                    self.local[o..o + len].copy_from_slice(data);
                    Ok(())
                } else {
                    self.global_write(pc, tid, addr, data)
                }
            }
        }
    }

    /// The member-mask rule of `.sync` instructions: every executing lane's
    /// mask must equal the set of executing lanes.
    fn check_members(
        &self,
        w: &Warp,
        wi: u32,
        pc: u32,
        exec: u32,
        mreg: u32,
        what: &str,
    ) -> Result<(), Fault> {
        let mut m = exec;
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            let mask = w.regs[mreg as usize * 32 + l] as u32;
            if mask != exec {
                let tid = wi * 32 + l as u32;
                let line = self.k.lines.get(pc as usize).copied().unwrap_or(0);
                let missing = mask & !exec;
                let text = if missing != 0 {
                    format!(
                        "membermask {mask:#010x} names lanes {}, which are not executing {what} at line {line}",
                        lane_ranges(missing)
                    )
                } else {
                    format!(
                        "lanes {} execute {what} at line {line} but are not in membermask {mask:#010x}",
                        lane_ranges(exec & !mask)
                    )
                };
                return Err(self.fault(FaultKind::IllegalInstruction, pc, Some(tid), &text));
            }
        }
        Ok(())
    }

    fn check_aligned(&self, wi: u32, pc: u32, exec: u32, what: &str) -> Result<(), Fault> {
        if exec != FULL {
            let line = self.k.lines.get(pc as usize).copied().unwrap_or(0);
            let first = if exec != 0 { exec.trailing_zeros() } else { 0 };
            return Err(self.fault(
                FaultKind::IllegalInstruction,
                pc,
                Some(wi * 32 + first),
                &format!(
                    "{what} is .aligned and needs all 32 lanes of the warp, but lanes {} are not executing it at line {line}",
                    lane_ranges(!exec)
                ),
            ));
        }
        Ok(())
    }

    /// Retires cp.async copies: of the threads of warp `wi` whose lane
    /// threshold is given (copies with group <= threshold; u32::MAX: all),
    /// or of every thread when `wi` is None.
    fn complete_cp(&mut self, wi: Option<u32>, thr: &[u32; 32], exec: u32) -> Result<(), Fault> {
        if self.cp.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(&mut self.cp);
        let mut keep = Vec::with_capacity(entries.len());
        let mut result = Ok(());
        for e in entries {
            let done = result.is_ok()
                && match wi {
                    None => true,
                    Some(w) => {
                        let lane = e.tid.wrapping_sub(w * 32);
                        lane < 32
                            && exec >> lane & 1 == 1
                            && e.group != 0
                            && e.group <= thr[lane as usize]
                    }
                };
            if done {
                if let Err(f) = self.shared_write(e.pc, e.tid, e.dst, &e.data[..e.len as usize]) {
                    result = Err(f);
                }
            } else {
                keep.push(e);
            }
        }
        self.cp = keep;
        result
    }

    #[inline(never)]
    fn run_warp(&mut self, w: &mut Warp, wi: u32) -> Result<(), Fault> {
        let k = self.k;
        let code = &k.code[..];
        loop {
            let runnable = w.live & !w.waiting;
            if runnable == 0 {
                return Ok(());
            }
            // The group at the minimum PC.
            let mut pc = u32::MAX;
            let mut m = runnable;
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                pc = pc.min(w.pcs[l]);
            }
            let mut mask = 0u32;
            let mut next_other = u32::MAX;
            let mut m = runnable;
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                if w.pcs[l] == pc {
                    mask |= 1 << l;
                } else {
                    next_other = next_other.min(w.pcs[l]);
                }
            }
            // Run the group while it stays below every other lane.
            while pc < next_other && mask != 0 {
                let inst = &code[pc as usize];
                let exec = if inst.guard == NO_REG {
                    mask
                } else {
                    let g = &w.regs[inst.guard as usize * 32..inst.guard as usize * 32 + 32];
                    let mut e = 0u32;
                    for (l, v) in g.iter().enumerate() {
                        e |= ((*v as u32) & 1) << l;
                    }
                    if inst.guard_neg {
                        e = !e;
                    }
                    e & mask
                };
                self.stats.warp_instructions += 1;
                let n = exec.count_ones() as u64;
                let regs = &mut w.regs[..];
                match &inst.op {
                    Op::IBin { op, w: wd, d, a, b } => {
                        self.stats.int_ops += n;
                        match wd {
                            W::W32 => ibin::<32>(*op, regs, exec, *d, *a, *b),
                            W::W64 => ibin::<64>(*op, regs, exec, *d, *a, *b),
                            W::W16 => ibin::<16>(*op, regs, exec, *d, *a, *b),
                        }
                    }
                    Op::IUn { op, w: wd, d, a } => {
                        self.stats.int_ops += n;
                        match wd {
                            W::W32 => iun::<32>(*op, regs, exec, *d, *a),
                            W::W64 => iun::<64>(*op, regs, exec, *d, *a),
                            W::W16 => iun::<16>(*op, regs, exec, *d, *a),
                        }
                    }
                    Op::MulWide {
                        signed,
                        w: wd,
                        d,
                        a,
                        b,
                    } => {
                        self.stats.int_ops += n;
                        let bits = wd.bits();
                        if *signed {
                            map2(regs, exec, *d, *a, *b, |x, y| {
                                mk((sx(x, bits) * sx(y, bits)) as u64, 2 * bits)
                            })
                        } else {
                            map2(regs, exec, *d, *a, *b, |x, y| mk(x, bits) * mk(y, bits))
                        }
                    }
                    Op::Mad {
                        signed,
                        w: wd,
                        part,
                        d,
                        a,
                        b,
                        c,
                    } => {
                        self.stats.int_ops += n;
                        let bits = wd.bits();
                        let (signed, part) = (*signed, *part);
                        map3(regs, exec, *d, *a, *b, *c, |x, y, z| {
                            let p: i128 = if signed {
                                sx(x, bits) as i128 * sx(y, bits) as i128
                            } else {
                                mk(x, bits) as i128 * mk(y, bits) as i128
                            };
                            match part {
                                0 => mk((p as u64).wrapping_add(z), bits),
                                1 => mk(((p >> bits) as u64).wrapping_add(z), bits),
                                _ => mk((p as u64).wrapping_add(z), 2 * bits),
                            }
                        })
                    }
                    Op::Shf {
                        left,
                        clamp,
                        d,
                        a,
                        b,
                        c,
                    } => {
                        self.stats.int_ops += n;
                        let (left, clamp) = (*left, *clamp);
                        map3(regs, exec, *d, *a, *b, *c, |x, y, z| {
                            let z = z as u32;
                            let s = if clamp { z.min(32) } else { z & 31 };
                            let v = (mk(y, 32) << 32) | mk(x, 32);
                            if left {
                                mk((v << s) >> 32, 32)
                            } else {
                                mk(v >> s, 32)
                            }
                        })
                    }
                    Op::Bfi {
                        w: wd,
                        d,
                        a,
                        b,
                        c,
                        e,
                    } => {
                        self.stats.int_ops += n;
                        let bits = wd.bits();
                        let (d, a, b, c, e) = (
                            *d as usize,
                            *a as usize,
                            *b as usize,
                            *c as usize,
                            *e as usize,
                        );
                        let mut m = exec;
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let pos = (regs[c * 32 + l] & 0xff) as u32;
                            let len = (regs[e * 32 + l] & 0xff) as u32;
                            let mut f = mk(regs[b * 32 + l], bits);
                            if pos < bits && len > 0 {
                                let len = len.min(bits - pos);
                                let fm = mk(u64::MAX, len) << pos;
                                f = (f & !fm) | ((regs[a * 32 + l] << pos) & fm);
                            }
                            regs[d * 32 + l] = mk(f, bits);
                        }
                    }
                    Op::Bfe {
                        w: wd,
                        signed,
                        d,
                        a,
                        b,
                        c,
                    } => {
                        self.stats.int_ops += n;
                        let bits = wd.bits();
                        let signed = *signed;
                        map3(regs, exec, *d, *a, *b, *c, |x, p, l| {
                            let pos = (p & 0xff) as u32;
                            let len = (l & 0xff) as u32;
                            let x = mk(x, bits);
                            let sbit = if !signed || len == 0 {
                                0
                            } else {
                                (x >> (pos + len - 1).min(bits - 1)) & 1
                            };
                            let mut r = 0u64;
                            for i in 0..bits {
                                let bit = if i < len && pos + i < bits {
                                    (x >> (pos + i)) & 1
                                } else {
                                    sbit
                                };
                                r |= bit << i;
                            }
                            r
                        })
                    }
                    Op::Prmt { mode, d, a, b, c } => {
                        self.stats.int_ops += n;
                        let mode = *mode;
                        map3(regs, exec, *d, *a, *b, *c, |x, y, z| {
                            prmt(mode, x as u32, y as u32, z as u32) as u64
                        })
                    }
                    Op::F32Bin {
                        op,
                        ftz,
                        sat,
                        d,
                        a,
                        b,
                    } => {
                        let (op, ftz, sat) = (*op, *ftz, *sat);
                        if matches!(op, FOp::Add | FOp::Sub | FOp::Mul) {
                            self.stats.fp32_flops += n;
                        }
                        let f = |v: u64| f32::from_bits(v as u32);
                        if !ftz && !sat && op == FOp::Add {
                            map2(regs, exec, *d, *a, *b, |x, y| {
                                float::canon32(f(x) + f(y)).to_bits() as u64
                            })
                        } else if !ftz && !sat && op == FOp::Mul {
                            map2(regs, exec, *d, *a, *b, |x, y| {
                                float::canon32(f(x) * f(y)).to_bits() as u64
                            })
                        } else {
                            map2(regs, exec, *d, *a, *b, |x, y| {
                                let (mut x, mut y) = (f(x), f(y));
                                if ftz {
                                    x = float::ftz32(x);
                                    y = float::ftz32(y);
                                }
                                let mut r = match op {
                                    FOp::Add => x + y,
                                    FOp::Sub => x - y,
                                    FOp::Mul => x * y,
                                    FOp::Div => x / y,
                                    FOp::Min => fmin32(x, y),
                                    FOp::Max => fmax32(x, y),
                                };
                                if ftz {
                                    r = float::ftz32(r);
                                }
                                if sat {
                                    r = float::sat01_32(r);
                                }
                                float::canon32(r).to_bits() as u64
                            })
                        }
                    }
                    Op::F64Bin { op, d, a, b } => {
                        let op = *op;
                        if matches!(op, FOp::Add | FOp::Sub | FOp::Mul) {
                            self.stats.fp64_flops += n;
                        }
                        let f = f64::from_bits;
                        match op {
                            FOp::Add => {
                                map2(regs, exec, *d, *a, *b, |x, y| (f(x) + f(y)).to_bits())
                            }
                            FOp::Sub => {
                                map2(regs, exec, *d, *a, *b, |x, y| (f(x) - f(y)).to_bits())
                            }
                            FOp::Mul => {
                                map2(regs, exec, *d, *a, *b, |x, y| (f(x) * f(y)).to_bits())
                            }
                            FOp::Div => {
                                map2(regs, exec, *d, *a, *b, |x, y| (f(x) / f(y)).to_bits())
                            }
                            FOp::Min => {
                                map2(regs, exec, *d, *a, *b, |x, y| fmin64(f(x), f(y)).to_bits())
                            }
                            FOp::Max => {
                                map2(regs, exec, *d, *a, *b, |x, y| fmax64(f(x), f(y)).to_bits())
                            }
                        }
                    }
                    Op::F32Fma {
                        ftz,
                        sat,
                        d,
                        a,
                        b,
                        c,
                    } => {
                        self.stats.fp32_flops += 2 * n;
                        let (ftz, sat) = (*ftz, *sat);
                        let f = |v: u64| f32::from_bits(v as u32);
                        map3(regs, exec, *d, *a, *b, *c, |x, y, z| {
                            let (mut x, mut y, mut z) = (f(x), f(y), f(z));
                            if ftz {
                                x = float::ftz32(x);
                                y = float::ftz32(y);
                                z = float::ftz32(z);
                            }
                            let mut r = x.mul_add(y, z);
                            if ftz {
                                r = float::ftz32(r);
                            }
                            if sat {
                                r = float::sat01_32(r);
                            }
                            float::canon32(r).to_bits() as u64
                        })
                    }
                    Op::F64Fma { d, a, b, c } => {
                        self.stats.fp64_flops += 2 * n;
                        let f = f64::from_bits;
                        map3(regs, exec, *d, *a, *b, *c, |x, y, z| {
                            f(x).mul_add(f(y), f(z)).to_bits()
                        })
                    }
                    Op::F32Un { op, ftz, d, a } => {
                        let (op, ftz) = (*op, *ftz);
                        map1(regs, exec, *d, *a, |x| {
                            let mut v = f32::from_bits(x as u32);
                            if ftz {
                                v = float::ftz32(v);
                            }
                            let r = match op {
                                FUn::Neg => -v,
                                FUn::Abs => v.abs(),
                                FUn::Sqrt => float::canon32(v.sqrt()),
                                FUn::Rcp => float::canon32(1.0 / v),
                            };
                            let r = if ftz { float::ftz32(r) } else { r };
                            r.to_bits() as u64
                        })
                    }
                    Op::F64Un { op, d, a } => {
                        let op = *op;
                        map1(regs, exec, *d, *a, |x| {
                            let v = f64::from_bits(x);
                            match op {
                                FUn::Neg => -v,
                                FUn::Abs => v.abs(),
                                FUn::Sqrt => v.sqrt(),
                                FUn::Rcp => 1.0 / v,
                            }
                            .to_bits()
                        })
                    }
                    Op::Cvt { info, d, a } => {
                        let info = *info;
                        let int_int = !info.dt.is_float() && !info.at.is_float() && !info.sat;
                        if int_int {
                            let abits = info.at.size() * 8;
                            let dbits = info.dt.size() * 8;
                            if info.at.is_signed() {
                                map1(regs, exec, *d, *a, |x| mk(sx(x, abits) as u64, dbits))
                            } else {
                                map1(regs, exec, *d, *a, |x| mk(mk(x, abits), dbits))
                            }
                        } else {
                            map1(regs, exec, *d, *a, |x| cvt_one(&info, x))
                        }
                    }
                    Op::CvtPack {
                        bf16,
                        rnd,
                        relu,
                        satfinite,
                        d,
                        a,
                        b,
                    } => {
                        let info = CvtInfo {
                            dt: if *bf16 { Ty::BF16 } else { Ty::F16 },
                            at: Ty::F32,
                            rnd: Some(*rnd),
                            int_rnd: false,
                            sat: false,
                            ftz: false,
                            relu: *relu,
                            satfinite: *satfinite,
                        };
                        map2(regs, exec, *d, *a, *b, |x, y| {
                            (cvt_one(&info, x) << 16) | cvt_one(&info, y)
                        })
                    }
                    Op::Setp {
                        cmp,
                        ty,
                        d,
                        d2,
                        a,
                        b,
                        comb,
                        c,
                        c_neg,
                    } => {
                        let (d, d2, a, b, comb, c, c_neg) = (*d, *d2, *a, *b, *comb, *c, *c_neg);
                        macro_rules! sp {
                            ($f:expr) => {
                                setp_run(regs, exec, d, d2, a, b, comb, c, c_neg, $f)
                            };
                        }
                        match *ty {
                            CmpTy::U(wd) => {
                                self.stats.int_ops += n;
                                let bits = wd.bits();
                                icmp_dispatch!(*cmp, move |v: u64| mk(v, bits), sp)
                            }
                            CmpTy::S(wd) => {
                                self.stats.int_ops += n;
                                let bits = wd.bits();
                                icmp_dispatch!(*cmp, move |v: u64| sx(v, bits), sp)
                            }
                            CmpTy::F32 => {
                                let cmp = *cmp;
                                sp!(|x, y| {
                                    fcmp(
                                        cmp,
                                        f32::from_bits(x as u32) as f64,
                                        f32::from_bits(y as u32) as f64,
                                    )
                                })
                            }
                            CmpTy::F64 => {
                                let cmp = *cmp;
                                sp!(|x, y| fcmp(cmp, f64::from_bits(x), f64::from_bits(y)))
                            }
                        }
                    }
                    Op::Selp { d, a, b, c } => {
                        map3(
                            regs,
                            exec,
                            *d,
                            *a,
                            *b,
                            *c,
                            |x, y, p| if p & 1 != 0 { x } else { y },
                        )
                    }
                    Op::Mov { d, a } => map1(regs, exec, *d, *a, |x| x),
                    Op::Pack {
                        bits,
                        n: cnt,
                        d,
                        parts,
                    } => {
                        let (bits, cnt) = (*bits, *cnt as usize);
                        let mut m = exec;
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let mut v = 0u64;
                            for (i, p) in parts.iter().take(cnt).enumerate() {
                                v |= mk(regs[*p as usize * 32 + l], bits) << (i as u32 * bits);
                            }
                            regs[*d as usize * 32 + l] = v;
                        }
                    }
                    Op::Unpack {
                        bits,
                        n: cnt,
                        a,
                        parts,
                    } => {
                        let (bits, cnt) = (*bits, *cnt as usize);
                        let mut m = exec;
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let v = regs[*a as usize * 32 + l];
                            for (i, p) in parts.iter().take(cnt).enumerate() {
                                regs[*p as usize * 32 + l] = mk(v >> (i as u32 * bits), bits);
                            }
                        }
                    }
                    Op::Clock { d, w64 } => {
                        let t = self.stats.warp_instructions;
                        let v = if *w64 { t } else { mk(t, 32) };
                        let mut m = exec;
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            regs[*d as usize * 32 + l] = v;
                        }
                    }
                    Op::Cvta {
                        to_generic,
                        space,
                        w64,
                        d,
                        a,
                    } => {
                        let win = match space {
                            MemSpace::Shared => SHARED_WINDOW,
                            MemSpace::Local => LOCAL_WINDOW,
                            _ => 0,
                        };
                        let bits = if *w64 { 64 } else { 32 };
                        if *to_generic {
                            map1(regs, exec, *d, *a, |x| mk(x.wrapping_add(win), bits))
                        } else {
                            map1(regs, exec, *d, *a, |x| mk(x.wrapping_sub(win), bits))
                        }
                    }
                    Op::Ld {
                        space,
                        size,
                        signed,
                        n: cnt,
                        d,
                        addr,
                    } => {
                        let (size, cnt) = (*size as usize, *cnt as usize);
                        let total = size * cnt;
                        let mut m = exec;
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let tid = wi * 32 + l as u32;
                            let ad = Self::addr_of(&w.regs, addr, l);
                            let mut buf = [0u8; 32];
                            self.load(*space, pc, tid, ad, &mut buf[..total])?;
                            for (i, dr) in d.iter().take(cnt).enumerate() {
                                let mut b8 = [0u8; 8];
                                b8[..size].copy_from_slice(&buf[i * size..(i + 1) * size]);
                                let v = u64::from_le_bytes(b8);
                                w.regs[*dr as usize * 32 + l] = if *signed {
                                    sx(v, size as u32 * 8) as u64
                                } else {
                                    v
                                };
                            }
                        }
                    }
                    Op::St {
                        space,
                        size,
                        n: cnt,
                        s,
                        addr,
                    } => {
                        let (size, cnt) = (*size as usize, *cnt as usize);
                        let total = size * cnt;
                        let mut m = exec;
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let tid = wi * 32 + l as u32;
                            let ad = Self::addr_of(&w.regs, addr, l);
                            let mut buf = [0u8; 32];
                            for (i, sr) in s.iter().take(cnt).enumerate() {
                                let v = w.regs[*sr as usize * 32 + l];
                                buf[i * size..(i + 1) * size]
                                    .copy_from_slice(&v.to_le_bytes()[..size]);
                            }
                            self.store(*space, pc, tid, ad, &buf[..total])?;
                        }
                    }
                    Op::Bra { target, uni } => {
                        if *uni && exec != 0 && exec != mask {
                            let l = exec.trailing_zeros();
                            return Err(self.fault(
                                FaultKind::IllegalInstruction,
                                pc,
                                Some(wi * 32 + l),
                                &format!(
                                    "bra.uni diverges: lanes {} branch, lanes {} do not",
                                    lane_ranges(exec),
                                    lane_ranges(mask & !exec)
                                ),
                            ));
                        }
                        if exec == mask {
                            pc = *target;
                        } else if exec == 0 {
                            pc += 1;
                        } else {
                            let mut m = mask;
                            while m != 0 {
                                let l = m.trailing_zeros() as usize;
                                m &= m - 1;
                                w.pcs[l] = if exec >> l & 1 == 1 { *target } else { pc + 1 };
                            }
                            mask = 0;
                            break;
                        }
                        continue;
                    }
                    Op::Exit => {
                        if exec != 0 {
                            w.live &= !exec;
                            self.live_threads -= n as u32;
                            mask &= !exec;
                        }
                        pc += 1;
                        continue;
                    }
                    Op::Trap => {
                        if exec != 0 {
                            return Err(self.fault(
                                FaultKind::IllegalInstruction,
                                pc,
                                Some(wi * 32 + exec.trailing_zeros()),
                                "trap",
                            ));
                        }
                    }
                    Op::Nop => {}
                    Op::Bar {
                        id,
                        count,
                        red,
                        arrive,
                    } => {
                        if exec != 0 {
                            let l0 = exec.trailing_zeros() as usize;
                            let idv = w.regs[*id as usize * 32 + l0];
                            let cnt = if *count == NO_REG {
                                0
                            } else {
                                w.regs[*count as usize * 32 + l0]
                            };
                            if idv > 15 {
                                return Err(self.fault(
                                    FaultKind::IllegalInstruction,
                                    pc,
                                    Some(wi * 32 + l0 as u32),
                                    &format!("barrier id {idv} out of range 0..15"),
                                ));
                            }
                            if *count != NO_REG
                                && (cnt == 0
                                    || !cnt.is_multiple_of(32)
                                    || cnt > self.nthreads.div_ceil(32) as u64 * 32)
                            {
                                return Err(self.fault(
                                    FaultKind::IllegalInstruction,
                                    pc,
                                    Some(wi * 32 + l0 as u32),
                                    &format!("barrier thread count {cnt} is not a positive multiple of 32 within the block"),
                                ));
                            }
                            let b = &mut self.bars[idv as usize];
                            if b.arrived > 0 && b.count != cnt as u32 {
                                let bc = b.count;
                                return Err(self.fault(
                                    FaultKind::IllegalInstruction,
                                    pc,
                                    Some(wi * 32 + l0 as u32),
                                    &format!("barrier {idv} used with thread counts {bc} and {cnt} at once"),
                                ));
                            }
                            if b.arrived == 0 {
                                b.count = cnt as u32;
                                b.line_pc = pc;
                                b.all = true;
                                b.any = false;
                                b.popc = 0;
                                b.red = red.map(|r| r.0);
                            }
                            b.arrived += n as u32;
                            if let Some((_, dreg, preg, neg)) = red {
                                let mut m = exec;
                                while m != 0 {
                                    let l = m.trailing_zeros() as usize;
                                    m &= m - 1;
                                    let p = (w.regs[*preg as usize * 32 + l] & 1 != 0) ^ neg;
                                    b.all &= p;
                                    b.any |= p;
                                    b.popc += p as u32;
                                    b.dests.push((wi, l as u32, *dreg));
                                }
                            }
                            if !*arrive {
                                w.waiting |= exec;
                                let mut m = exec;
                                while m != 0 {
                                    let l = m.trailing_zeros() as usize;
                                    m &= m - 1;
                                    w.wait_bar[l] = idv as u8;
                                }
                            }
                        }
                        // Lanes that wait resume after the barrier.
                        pc += 1;
                        if !*arrive && exec != 0 {
                            let mut m = exec;
                            while m != 0 {
                                let l = m.trailing_zeros() as usize;
                                m &= m - 1;
                                w.pcs[l] = pc;
                            }
                            mask &= !exec;
                            if mask == 0 {
                                break;
                            }
                        }
                        continue;
                    }
                    Op::Shfl {
                        mode,
                        d,
                        p,
                        a,
                        b,
                        c,
                        mask: mreg,
                    } => {
                        if exec != 0 {
                            self.check_members(w, wi, pc, exec, *mreg, "shfl.sync")?;
                            let mut src = [0u64; 32];
                            src.copy_from_slice(&w.regs[*a as usize * 32..*a as usize * 32 + 32]);
                            let mut m = exec;
                            while m != 0 {
                                let l = m.trailing_zeros() as usize;
                                m &= m - 1;
                                let lane = l as i32;
                                let bval = (w.regs[*b as usize * 32 + l] & 31) as i32;
                                let cv = w.regs[*c as usize * 32 + l] as u32;
                                let cval = (cv & 31) as i32;
                                let segmask = ((cv >> 8) & 31) as i32;
                                let max_lane = (lane & segmask) | (cval & !segmask);
                                let min_lane = lane & segmask;
                                let (j, pval) = match mode {
                                    ShflMode::Up => {
                                        let j = lane - bval;
                                        (j, j >= max_lane)
                                    }
                                    ShflMode::Down => {
                                        let j = lane + bval;
                                        (j, j <= max_lane)
                                    }
                                    ShflMode::Bfly => {
                                        let j = lane ^ bval;
                                        (j, j <= max_lane)
                                    }
                                    ShflMode::Idx => {
                                        let j = min_lane | (bval & !segmask);
                                        (j, j <= max_lane)
                                    }
                                };
                                let j = if pval { j } else { lane };
                                if !(0..32).contains(&j) || exec >> j & 1 == 0 {
                                    let line = k.lines.get(pc as usize).copied().unwrap_or(0);
                                    return Err(self.fault(
                                        FaultKind::IllegalInstruction,
                                        pc,
                                        Some(wi * 32 + l as u32),
                                        &format!("shfl.sync at line {line} reads lane {j}, which is not executing it"),
                                    ));
                                }
                                w.regs[*d as usize * 32 + l] = mk(src[j as usize], 32);
                                if *p != NO_REG {
                                    w.regs[*p as usize * 32 + l] = pval as u64;
                                }
                            }
                        }
                    }
                    Op::Vote {
                        mode,
                        d,
                        a,
                        neg,
                        mask: mreg,
                    } => {
                        if exec != 0 {
                            self.check_members(w, wi, pc, exec, *mreg, "vote.sync")?;
                            let mut ballot = 0u32;
                            let mut m = exec;
                            while m != 0 {
                                let l = m.trailing_zeros() as usize;
                                m &= m - 1;
                                if (w.regs[*a as usize * 32 + l] & 1 != 0) ^ neg {
                                    ballot |= 1 << l;
                                }
                            }
                            let v = match mode {
                                VoteMode::Ballot => ballot as u64,
                                VoteMode::All => (ballot == exec) as u64,
                                VoteMode::Any => (ballot != 0) as u64,
                                VoteMode::Uni => (ballot == exec || ballot == 0) as u64,
                            };
                            let mut m = exec;
                            while m != 0 {
                                let l = m.trailing_zeros() as usize;
                                m &= m - 1;
                                w.regs[*d as usize * 32 + l] = v;
                            }
                        }
                    }
                    Op::ActiveMask { d } => {
                        let mut m = exec;
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            regs[*d as usize * 32 + l] = mask as u64;
                        }
                    }
                    Op::Ldmatrix {
                        num,
                        trans,
                        generic,
                        d,
                        addr,
                    } => {
                        self.check_aligned(wi, pc, exec, "ldmatrix")?;
                        let num = *num as usize;
                        let mut rows = [[[0u8; 16]; 8]; 4];
                        for (j, mat) in rows.iter_mut().enumerate().take(num) {
                            for (r, row) in mat.iter_mut().enumerate() {
                                let l = j * 8 + r;
                                let tid = wi * 32 + l as u32;
                                let mut ad = Self::addr_of(&w.regs, addr, l);
                                if *generic {
                                    if ad.wrapping_sub(SHARED_WINDOW) >= WINDOW_SIZE {
                                        return Err(self.fault(
                                            FaultKind::IllegalAddress,
                                            pc,
                                            Some(tid),
                                            &format!("ldmatrix generic address {ad:#x} is not in shared memory"),
                                        ));
                                    }
                                    ad -= SHARED_WINDOW;
                                }
                                if !ad.is_multiple_of(16) {
                                    return Err(self.misaligned(pc, tid, "shared", ad, 16));
                                }
                                self.shared_read(pc, tid, ad, row)?;
                            }
                        }
                        for l in 0..32 {
                            for (j, dr) in d.iter().take(num).enumerate() {
                                w.regs[*dr as usize * 32 + l] =
                                    mma::ldmatrix_fragment(&rows, j, l, *trans) as u64;
                            }
                        }
                    }
                    Op::Mma(mo) => {
                        self.check_aligned(wi, pc, exec, "mma.sync")?;
                        self.stats.tensor_flops += 2 * 16 * 8 * 16;
                        let mut a = [[0u64; 32]; 4];
                        let mut b = [[0u64; 32]; 2];
                        let mut c = [[0u64; 32]; 4];
                        for (dst, r) in a.iter_mut().zip(mo.a.iter()) {
                            dst.copy_from_slice(&regs[*r as usize * 32..*r as usize * 32 + 32]);
                        }
                        for (dst, r) in c.iter_mut().zip(mo.c.iter()) {
                            dst.copy_from_slice(&regs[*r as usize * 32..*r as usize * 32 + 32]);
                        }
                        for (dst, r) in b.iter_mut().zip(mo.b.iter()) {
                            dst.copy_from_slice(&regs[*r as usize * 32..*r as usize * 32 + 32]);
                        }
                        let dv = mma::mma_m16n8k16(mo.kind, &a, &b, &c);
                        for (v, r) in dv.iter().zip(mo.d.iter()) {
                            regs[*r as usize * 32..*r as usize * 32 + 32].copy_from_slice(v);
                        }
                    }
                    Op::CpAsync {
                        size,
                        src_size,
                        ignore_src,
                        ignore_neg,
                        dst,
                        src,
                    } => {
                        let size = *size as usize;
                        let mut m = exec;
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let tid = wi * 32 + l as u32;
                            let da = Self::addr_of(&w.regs, dst, l);
                            let sa = Self::addr_of(&w.regs, src, l);
                            if !da.is_multiple_of(size as u64) {
                                return Err(self.misaligned(pc, tid, "shared", da, size));
                            }
                            if !sa.is_multiple_of(size as u64) {
                                return Err(self.misaligned(pc, tid, "global", sa, size));
                            }
                            if !self.shared.in_bounds(da, size as u64) {
                                return Err(self.fault(
                                    FaultKind::IllegalAddress,
                                    pc,
                                    Some(tid),
                                    &format!("cp.async destination shared address {da:#x} ({size} bytes) outside the block's {} bytes of shared memory", self.shared.size()),
                                ));
                            }
                            let mut n = size;
                            if *src_size != NO_REG {
                                n = (w.regs[*src_size as usize * 32 + l] as u32 as usize).min(size);
                            }
                            if *ignore_src != NO_REG
                                && (w.regs[*ignore_src as usize * 32 + l] & 1 != 0) ^ ignore_neg
                            {
                                n = 0;
                            }
                            let mut data = [0u8; 16];
                            if n == size {
                                self.global_read(pc, tid, sa, &mut data[..n])?;
                            } else {
                                for i in 0..n {
                                    self.global_read(pc, tid, sa + i as u64, &mut data[i..i + 1])?;
                                }
                            }
                            self.cp.push(CpEntry {
                                tid,
                                group: 0,
                                dst: da,
                                len: size as u32,
                                pc,
                                data,
                            });
                        }
                    }
                    Op::CpCommit => {
                        let mut m = exec;
                        while m != 0 {
                            let l = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let tid = wi * 32 + l as u32;
                            self.commit_cp(tid);
                        }
                    }
                    Op::CpWait { n: keep, all } => {
                        if exec != 0 {
                            let mut thr = [0u32; 32];
                            let mut m = exec;
                            while m != 0 {
                                let l = m.trailing_zeros() as usize;
                                m &= m - 1;
                                let tid = wi * 32 + l as u32;
                                if *all {
                                    self.commit_cp(tid);
                                }
                                thr[l] = self.cp_groups[tid as usize].saturating_sub(*keep);
                            }
                            self.complete_cp(Some(wi), &thr, exec)?;
                        }
                    }
                }
                pc += 1;
            }
            let mut m = mask;
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                w.pcs[l] = pc;
            }
        }
    }

    fn commit_cp(&mut self, tid: u32) {
        let has = self.cp.iter().any(|e| e.tid == tid && e.group == 0);
        let g = &mut self.cp_groups[tid as usize];
        *g += 1;
        let g = *g;
        if has {
            for e in self.cp.iter_mut() {
                if e.tid == tid && e.group == 0 {
                    e.group = g;
                }
            }
        }
    }
}

fn fmin32(x: f32, y: f32) -> f32 {
    if x.is_nan() && y.is_nan() {
        f32::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() {
            x
        } else {
            y
        }
    } else {
        x.min(y)
    }
}

fn fmax32(x: f32, y: f32) -> f32 {
    if x.is_nan() && y.is_nan() {
        f32::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() {
            y
        } else {
            x
        }
    } else {
        x.max(y)
    }
}

fn fmin64(x: f64, y: f64) -> f64 {
    if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() {
            x
        } else {
            y
        }
    } else {
        x.min(y)
    }
}

fn fmax64(x: f64, y: f64) -> f64 {
    if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() {
            y
        } else {
            x
        }
    } else {
        x.max(y)
    }
}

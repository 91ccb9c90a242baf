//! The virtual node's state and the rules of the driver API.
//!
//! Everything the exported functions do is here, in safe Rust, returning
//! `Result<T, CUresult>`; every refusal writes one log line that names the
//! rule. What is stricter than a real driver is marked "Stricter:".
//!
//! Execution model: work is executed when it is queued (a kernel runs inside
//! cuLaunchKernel, a copy inside cuMemcpy*Async), so every stream is always
//! complete. Time is modelled, never host wall time: each context keeps a
//! host clock (when the host queues its next operation) and each stream a
//! device clock (when its queued work ends).
//!
//! - Queueing a launch costs the host `launch_latency_us` (a copy or memset
//!   `copy_latency_us`); the work starts when both the host has queued it
//!   and the stream's earlier work has ended, and runs for its modelled
//!   time (bytes over the link or memory bandwidth, work over throughput).
//!   So back-to-back launches overlap the host's latency with the device's
//!   work, as on hardware, while a launch onto an idle stream leaves a gap.
//! - An event records when the stream reaches it: the later of the two
//!   clocks. An event pair around one short launch therefore measures the
//!   launch gap too, as it does on a real GPU.
//! - Synchronising (a stream, an event, the context, a blocking copy) brings
//!   the host clock up to the device's.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::faults;
use super::heap::{Alloc, Heap, Kind, Snapshot};
use super::log;
use super::result::*;
use crate::config::{Config, Gpu};
use crate::ptx;

/// A handle's type, kept in its low bits so that a stream passed where an
/// event is expected is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Context = 1,
    Stream = 2,
    Event = 3,
    Module = 4,
    Function = 5,
    Pool = 6,
}

const HANDLE_BASE: u64 = 0x5647_5000_0000;

/// The opaque pointer value of handle `id` of type `tag`.
pub fn handle(tag: Tag, id: u64) -> u64 {
    HANDLE_BASE | (id << 4) | tag as u64
}

/// The id inside a handle of type `tag`, if it is one.
pub fn unhandle(tag: Tag, h: u64) -> Option<u64> {
    (h & !0xffff_ffff_ffff == 0 && h & HANDLE_BASE == HANDLE_BASE && h & 0xf == tag as u64)
        .then_some((h & 0x0fff_ffff) >> 4)
        .filter(|id| *id != 0)
}

/// A context.
#[derive(Debug)]
pub struct Ctx {
    pub device: usize,
    /// Modelled host time of this context's next queued operation, in ns.
    pub host_ns: f64,
    pub alive: bool,
    /// The error that poisoned the context (sticky: every later call on it
    /// returns it).
    pub sticky: Option<CUresult>,
    /// Devices whose plain memory this context's device may access.
    pub peers: HashSet<usize>,
    pub default_stream: u64,
}

#[derive(Debug)]
pub struct Stream {
    pub ctx: u64,
    pub alive: bool,
    /// Modelled device time of the end of the last operation, in ns.
    pub clock_ns: f64,
    /// A kernel on it never finishes (faults.hang_at_s): nothing queued
    /// behind it runs, and waiting for it never returns.
    pub hung: bool,
}

#[derive(Debug)]
pub struct Event {
    pub ctx: u64,
    pub alive: bool,
    pub timing: bool,
    /// The stream clock when last recorded.
    pub recorded: Option<f64>,
    /// Last recorded behind a kernel that never finishes: never reached.
    pub never: bool,
}

pub struct Module {
    pub ctx: u64,
    pub alive: bool,
    pub module: Arc<ptx::Module>,
    pub globals: Vec<u64>,
}

#[derive(Debug)]
pub struct Function {
    pub module: u64,
    pub name: String,
}

/// One virtual GPU.
#[derive(Debug)]
pub struct DeviceState {
    pub config: Gpu,
    /// The primary context and its reference count.
    pub primary: Option<(u64, u32)>,
    /// Devices granted access to this device's default pool.
    pub pool_access: HashSet<usize>,
    /// The timing model as its faults leave it ([`faults::effective_timing`]).
    pub timing: crate::config::Timing,
    /// Which of its one-time faults have happened.
    pub happened: faults::Happened,
}

/// The whole node.
pub struct State {
    pub devices: Vec<DeviceState>,
    pub contexts: HashMap<u64, Ctx>,
    pub streams: HashMap<u64, Stream>,
    pub events: HashMap<u64, Event>,
    pub modules: HashMap<u64, Module>,
    pub functions: HashMap<u64, Function>,
    /// Pinned host allocations: start -> size.
    pub host: HashMap<usize, usize>,
    next_id: u64,
}

/// What cuInit found: the node, or why there is none.
static NODE: OnceLock<Result<Mutex<State>, String>> = OnceLock::new();

/// Device memory, apart from the state so that kernels run without holding
/// the state's lock.
static HEAP: OnceLock<Mutex<Heap>> = OnceLock::new();

thread_local! {
    /// The calling thread's current context (its handle id).
    static CURRENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

pub type R<T> = Result<T, CUresult>;

/// Logs `why` and returns `code`.
pub fn refuse<T>(code: CUresult, why: impl AsRef<str>) -> R<T> {
    log(&format!("{}: {}", name(code), why.as_ref()));
    Err(code)
}

/// Why cuInit fails on an NVSwitch node whose fabric manager is down.
const FABRIC_MANAGER_DOWN: &str =
    "the node has NVSwitches ([node] nvswitch = true) and its fabric manager is not running (fabric_manager = false)";

/// cuInit: reads the configuration once.
pub fn init(flags: u32) -> R<()> {
    if flags != 0 {
        return refuse(
            CUDA_ERROR_INVALID_VALUE,
            format!("cuInit: Flags must be 0, got {flags}"),
        );
    }
    let node = NODE.get_or_init(|| {
        Config::from_env()
            .and_then(|c| {
                if c.nvswitch && !c.fabric_manager {
                    return Err(FABRIC_MANAGER_DOWN.into());
                }
                Ok(c)
            })
            .map(|c| {
                let gpus = c.cuda_devices();
                faults::install(&gpus);
                let _ = HEAP.set(Mutex::new(Heap::new(
                    gpus.iter().map(|g| g.memory_mib << 20).collect(),
                )));
                Mutex::new(State {
                    devices: gpus
                        .into_iter()
                        .map(|g| DeviceState {
                            timing: faults::effective_timing(&g),
                            config: g,
                            primary: None,
                            pool_access: HashSet::new(),
                            happened: faults::Happened::default(),
                        })
                        .collect(),
                    contexts: HashMap::new(),
                    streams: HashMap::new(),
                    events: HashMap::new(),
                    modules: HashMap::new(),
                    functions: HashMap::new(),
                    host: HashMap::new(),
                    next_id: 1,
                })
            })
    });
    match node {
        Ok(_) => Ok(()),
        Err(e) if e == FABRIC_MANAGER_DOWN => {
            refuse(CUDA_ERROR_SYSTEM_NOT_READY, format!("cuInit: {e}"))
        }
        Err(e) => refuse(CUDA_ERROR_NOT_INITIALIZED, format!("cuInit: {e}")),
    }
}

/// The state, once cuInit succeeded.
pub fn state() -> R<MutexGuard<'static, State>> {
    match NODE.get() {
        Some(Ok(m)) => Ok(m.lock().unwrap_or_else(|p| p.into_inner())),
        Some(Err(_)) => Err(CUDA_ERROR_NOT_INITIALIZED),
        None => refuse(CUDA_ERROR_NOT_INITIALIZED, "a driver call before cuInit"),
    }
}

/// The heap (exists once cuInit succeeded).
pub fn heap() -> R<MutexGuard<'static, Heap>> {
    HEAP.get()
        .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
        .ok_or(CUDA_ERROR_NOT_INITIALIZED)
}

pub fn current() -> u64 {
    CURRENT.with(|c| c.get())
}

pub fn set_current(id: u64) {
    CURRENT.with(|c| c.set(id))
}

impl State {
    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Device `ordinal`, checked.
    pub fn device(&self, ordinal: i32) -> R<&DeviceState> {
        usize::try_from(ordinal)
            .ok()
            .and_then(|d| self.devices.get(d))
            .map_or_else(
                || {
                    refuse(
                        CUDA_ERROR_INVALID_DEVICE,
                        format!(
                            "device {ordinal}: the node has devices 0 to {}",
                            self.devices.len().saturating_sub(1)
                        ),
                    )
                },
                Ok,
            )
    }

    /// The calling thread's current context: alive, not poisoned.
    pub fn current_ctx(&self, call: &str) -> R<u64> {
        let id = current();
        if id == 0 {
            return refuse(
                CUDA_ERROR_INVALID_CONTEXT,
                format!("{call}: no context is current on this thread"),
            );
        }
        self.live_ctx(id, call)
    }

    /// Context `id`: alive and not poisoned.
    pub fn live_ctx(&self, id: u64, call: &str) -> R<u64> {
        match self.contexts.get(&id) {
            None => refuse(
                CUDA_ERROR_INVALID_CONTEXT,
                format!("{call}: not a context handle"),
            ),
            Some(c) if !c.alive => refuse(
                CUDA_ERROR_CONTEXT_IS_DESTROYED,
                format!(
                    "{call}: the context of GPU {} was destroyed (its primary context released)",
                    c.device
                ),
            ),
            Some(c) => match c.sticky {
                Some(code) => Err(code),
                None if self.lost(c.device, call) => Err(CUDA_ERROR_LAUNCH_FAILED),
                None => Ok(id),
            },
        }
    }

    pub fn ctx_device(&self, ctx: u64) -> usize {
        self.contexts.get(&ctx).map_or(0, |c| c.device)
    }

    /// cuDevicePrimaryCtxRetain.
    pub fn retain_primary(&mut self, ordinal: i32) -> R<u64> {
        self.device(ordinal)?;
        if self.lost(ordinal as usize, "cuDevicePrimaryCtxRetain") {
            return Err(CUDA_ERROR_LAUNCH_FAILED);
        }
        let d = &self.devices[ordinal as usize];
        if let Some((id, n)) = d.primary {
            let d = ordinal as usize;
            self.devices[d].primary = Some((id, n + 1));
            return Ok(id);
        }
        let d = ordinal as usize;
        if self.devices[d].config.faults.busy {
            return refuse(
                CUDA_ERROR_DEVICE_UNAVAILABLE,
                format!(
                    "cuDevicePrimaryCtxRetain: GPU {d} is in use by another process (compute mode EXCLUSIVE_PROCESS; faults.busy)"
                ),
            );
        }
        let ctx = self.id();
        let stream = self.id();
        self.streams.insert(
            stream,
            Stream {
                ctx,
                alive: true,
                clock_ns: 0.0,
                hung: false,
            },
        );
        self.contexts.insert(
            ctx,
            Ctx {
                device: d,
                host_ns: 0.0,
                alive: true,
                sticky: None,
                peers: HashSet::new(),
                default_stream: stream,
            },
        );
        self.devices[d].primary = Some((ctx, 1));
        Ok(ctx)
    }

    /// cuDevicePrimaryCtxRelease: the last release destroys the context and
    /// everything made in it.
    pub fn release_primary(&mut self, ordinal: i32) -> R<()> {
        let d = self.device(ordinal)?;
        let Some((id, n)) = d.primary else {
            return refuse(
                CUDA_ERROR_INVALID_CONTEXT,
                format!("cuDevicePrimaryCtxRelease: GPU {ordinal} has no retained primary context"),
            );
        };
        let d = ordinal as usize;
        if n > 1 {
            self.devices[d].primary = Some((id, n - 1));
            return Ok(());
        }
        self.devices[d].primary = None;
        if let Some(c) = self.contexts.get_mut(&id) {
            c.alive = false;
        }
        for s in self.streams.values_mut().filter(|s| s.ctx == id) {
            s.alive = false;
        }
        for e in self.events.values_mut().filter(|e| e.ctx == id) {
            e.alive = false;
        }
        for m in self.modules.values_mut().filter(|m| m.ctx == id) {
            m.alive = false;
        }
        self.devices[d].pool_access.clear();
        for c in self.contexts.values_mut() {
            c.peers.remove(&d);
        }
        let mut heap = heap()?;
        for base in heap.of_context(id) {
            let _ = heap.free(base, "the context's destruction");
        }
        if current() == id {
            // The handle stays current but is dead: later calls say so.
        }
        Ok(())
    }

    /// Stream handle `h` (0, 1 or 2: the current context's default stream),
    /// which must belong to the current context. Returns (stream, ctx).
    pub fn stream(&self, h: u64, call: &str) -> R<(u64, u64)> {
        let cur = self.current_ctx(call)?;
        if h <= 2 {
            return Ok((self.contexts[&cur].default_stream, cur));
        }
        let Some(id) = unhandle(Tag::Stream, h) else {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: {h:#x} is not a stream handle"),
            );
        };
        let Some(s) = self.streams.get(&id) else {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: unknown stream {h:#x}"),
            );
        };
        if !s.alive {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: stream {h:#x} was destroyed"),
            );
        }
        if s.ctx != cur {
            // Stricter: a real driver may accept some such calls.
            return refuse(
                CUDA_ERROR_INVALID_CONTEXT,
                format!(
                    "{call}: stream {h:#x} belongs to GPU {}'s context, but GPU {}'s context is current",
                    self.ctx_device(s.ctx),
                    self.ctx_device(cur)
                ),
            );
        }
        self.live_ctx(s.ctx, call)?;
        Ok((id, s.ctx))
    }

    pub fn create_stream(&mut self, call: &str) -> R<u64> {
        let ctx = self.current_ctx(call)?;
        let id = self.id();
        self.streams.insert(
            id,
            Stream {
                ctx,
                alive: true,
                clock_ns: 0.0,
                hung: false,
            },
        );
        Ok(handle(Tag::Stream, id))
    }

    pub fn destroy_stream(&mut self, h: u64) -> R<()> {
        if h <= 2 {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                "cuStreamDestroy: the default stream cannot be destroyed",
            );
        }
        let (id, _) = self.stream(h, "cuStreamDestroy")?;
        if let Some(s) = self.streams.get_mut(&id) {
            s.alive = false;
        }
        Ok(())
    }

    /// Event handle `h`: alive, and of the current context when
    /// `same_ctx`.
    pub fn event(&self, h: u64, call: &str) -> R<u64> {
        let Some(id) = unhandle(Tag::Event, h) else {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: {h:#x} is not an event handle"),
            );
        };
        match self.events.get(&id) {
            Some(e) if e.alive => Ok(id),
            Some(_) => refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: event {h:#x} was destroyed"),
            ),
            None => refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: unknown event {h:#x}"),
            ),
        }
    }

    pub fn create_event(&mut self, flags: u32) -> R<u64> {
        let ctx = self.current_ctx("cuEventCreate")?;
        if flags & !0x7 != 0 {
            return refuse(
                CUDA_ERROR_INVALID_VALUE,
                format!("cuEventCreate: unknown flags {flags:#x}"),
            );
        }
        let id = self.id();
        self.events.insert(
            id,
            Event {
                ctx,
                alive: true,
                timing: flags & 0x2 == 0,
                recorded: None,
                never: false,
            },
        );
        Ok(handle(Tag::Event, id))
    }

    pub fn record_event(&mut self, ev: u64, stream: u64) -> R<()> {
        let e = self.event(ev, "cuEventRecord")?;
        let (s, ctx) = self.stream(stream, "cuEventRecord")?;
        if self.events[&e].ctx != ctx {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!(
                    "cuEventRecord: event of GPU {}'s context recorded on a stream of GPU {}'s",
                    self.ctx_device(self.events[&e].ctx),
                    self.ctx_device(ctx)
                ),
            );
        }
        let host = self.contexts.get(&ctx).map_or(0.0, |c| c.host_ns);
        let t = self.streams[&s].clock_ns.max(host);
        let hung = self.streams[&s].hung;
        if let Some(st) = self.streams.get_mut(&s) {
            st.clock_ns = t;
        }
        if let Some(e) = self.events.get_mut(&e) {
            e.recorded = (!hung).then_some(t);
            e.never = hung;
        }
        Ok(())
    }

    /// cuEventElapsedTime, in ms of modelled device time.
    pub fn elapsed(&self, start: u64, end: u64) -> R<f32> {
        let call = "cuEventElapsedTime";
        let (a, b) = (self.event(start, call)?, self.event(end, call)?);
        let (a, b) = (&self.events[&a], &self.events[&b]);
        self.live_ctx(a.ctx, call)?;
        self.live_ctx(b.ctx, call)?;
        if !a.timing || !b.timing {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: an event was created with CU_EVENT_DISABLE_TIMING"),
            );
        }
        if a.ctx != b.ctx {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: the two events belong to different contexts"),
            );
        }
        if a.never || b.never {
            // Behind a kernel that never finishes: not reached (yet).
            return Err(CUDA_ERROR_NOT_READY);
        }
        match (a.recorded, b.recorded) {
            (Some(x), Some(y)) => Ok(((y - x) / 1e6) as f32),
            _ => refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: an event was never recorded"),
            ),
        }
    }

    /// Queues work on stream `s`: the host spends `host_ns` queueing it,
    /// then it runs for `device_ns` once the stream's earlier work is done.
    pub fn enqueue(&mut self, s: u64, host_ns: f64, device_ns: f64) {
        let Some(ctx) = self.streams.get(&s).map(|st| st.ctx) else {
            return;
        };
        let host = match self.contexts.get_mut(&ctx) {
            Some(c) => {
                c.host_ns += host_ns;
                c.host_ns
            }
            None => return,
        };
        if let Some(st) = self.streams.get_mut(&s) {
            st.clock_ns = st.clock_ns.max(host) + device_ns;
        }
    }

    /// The host waits for stream `s`: its context's host clock catches up
    /// with the stream's device clock.
    pub fn wait_stream(&mut self, s: u64) {
        let Some((ctx, t)) = self.streams.get(&s).map(|st| (st.ctx, st.clock_ns)) else {
            return;
        };
        if let Some(c) = self.contexts.get_mut(&ctx) {
            c.host_ns = c.host_ns.max(t);
        }
    }

    /// The host waits for every stream of context `ctx`.
    pub fn wait_context(&mut self, ctx: u64) {
        let ends: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, st)| st.ctx == ctx)
            .map(|(id, _)| *id)
            .collect();
        for s in ends {
            self.wait_stream(s);
        }
    }

    /// Marks context `ctx` poisoned by `code`.
    pub fn poison(&mut self, ctx: u64, code: CUresult) {
        if let Some(c) = self.contexts.get_mut(&ctx) {
            c.sticky.get_or_insert(code);
        }
    }

    /// Why device `d` may not touch allocation `a` (None: it may).
    pub fn access_problem(&self, d: usize, a: &Alloc) -> Option<String> {
        if a.device == d {
            return None;
        }
        match a.kind {
            Kind::ModuleGlobal => Some(format!("{} belongs to another GPU's module", a.describe())),
            Kind::Plain => {
                let enabled = self
                    .devices
                    .get(d)
                    .and_then(|dev| dev.primary)
                    .and_then(|(ctx, _)| self.contexts.get(&ctx))
                    .is_some_and(|c| c.peers.contains(&a.device));
                (!enabled).then(|| {
                    format!(
                        "{} is GPU {}'s memory and GPU {d} has not enabled peer access to it (cuCtxEnablePeerAccess)",
                        a.describe(),
                        a.device
                    )
                })
            }
            Kind::Pool => {
                let granted = self
                    .devices
                    .get(a.device)
                    .is_some_and(|dev| dev.pool_access.contains(&d));
                (!granted).then(|| {
                    format!(
                        "{} is stream-ordered pool memory of GPU {} and GPU {d} was not granted access with cuMemPoolSetAccess (peer access does not cover pools; a real driver may take a slow path here)",
                        a.describe(),
                        a.device
                    )
                })
            }
        }
    }

    /// GPU `d`'s timing model, as its faults leave it.
    pub fn timing(&self, d: usize) -> &crate::config::Timing {
        &self.devices[d].timing
    }

    /// Whether stream `s` is stuck behind a kernel that never finishes.
    pub fn hung(&self, s: u64) -> bool {
        self.streams.get(&s).is_some_and(|st| st.hung)
    }

    /// Whether any stream of context `ctx` is.
    pub fn ctx_hung(&self, ctx: u64) -> bool {
        self.streams.values().any(|st| st.ctx == ctx && st.hung)
    }

    pub fn is_pinned(&self, ptr: usize, len: usize) -> bool {
        self.host
            .iter()
            .any(|(start, size)| ptr >= *start && ptr + len <= start + size)
    }

    pub fn new_module(&mut self, ctx: u64, module: Arc<ptx::Module>, globals: Vec<u64>) -> u64 {
        let id = self.id();
        self.modules.insert(
            id,
            Module {
                ctx,
                alive: true,
                module,
                globals,
            },
        );
        handle(Tag::Module, id)
    }

    pub fn module(&self, h: u64, call: &str) -> R<u64> {
        let Some(id) = unhandle(Tag::Module, h) else {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: {h:#x} is not a module handle"),
            );
        };
        match self.modules.get(&id) {
            Some(m) if m.alive => Ok(id),
            Some(_) => refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: module {h:#x} was unloaded"),
            ),
            None => refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: unknown module {h:#x}"),
            ),
        }
    }

    pub fn new_function(&mut self, module: u64, name: String) -> u64 {
        let id = self.id();
        self.functions.insert(id, Function { module, name });
        handle(Tag::Function, id)
    }

    /// Function handle `h`: (function id, module id), its module loaded.
    pub fn function(&self, h: u64, call: &str) -> R<(u64, u64)> {
        let Some(id) = unhandle(Tag::Function, h) else {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: {h:#x} is not a function handle"),
            );
        };
        let Some(f) = self.functions.get(&id) else {
            return refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: unknown function {h:#x}"),
            );
        };
        match self.modules.get(&f.module) {
            Some(m) if m.alive => Ok((id, f.module)),
            _ => refuse(
                CUDA_ERROR_INVALID_HANDLE,
                format!("{call}: function {} of an unloaded module", f.name),
            ),
        }
    }

    pub fn pool_handle(&self, d: usize) -> u64 {
        handle(Tag::Pool, d as u64 + 1)
    }

    pub fn pool_device(&self, h: u64, call: &str) -> R<usize> {
        match unhandle(Tag::Pool, h).map(|id| id as usize - 1) {
            Some(d) if d < self.devices.len() => Ok(d),
            _ => refuse(
                CUDA_ERROR_INVALID_VALUE,
                format!("{call}: {h:#x} is not a memory pool handle"),
            ),
        }
    }
}

/// The memory a launch on device `d` sees, with the problems it reports.
pub struct LaunchMemory {
    pub snapshot: Snapshot,
    pub device: usize,
}

impl ptx::Memory for LaunchMemory {
    fn read(&mut self, addr: u64, out: &mut [u8]) -> Result<ptx::Init, String> {
        let len = out.len() as u64;
        match self.snapshot.find(addr, len) {
            Some((_, _, Some(why))) => Err(why.to_string()),
            Some((a, off, None)) => {
                let d = a.lock();
                let off = off as usize;
                out.copy_from_slice(&d.bytes[off..off + out.len()]);
                Ok(if d.all_written(off, out.len()) {
                    ptx::Init::Written
                } else {
                    ptx::Init::NeverWritten
                })
            }
            None => Err(miss(addr, len)),
        }
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), String> {
        let len = data.len() as u64;
        match self.snapshot.find(addr, len) {
            Some((_, _, Some(why))) => Err(why.to_string()),
            Some((a, off, None)) => {
                let mut d = a.lock();
                let off = off as usize;
                d.bytes[off..off + data.len()].copy_from_slice(data);
                d.mark(off, data.len());
                Ok(())
            }
            None => Err(miss(addr, len)),
        }
    }
}

/// Why `len` bytes at `addr` are in no live allocation, in the heap's words.
fn miss(addr: u64, len: u64) -> String {
    match heap() {
        Ok(h) => match h.range(addr, len) {
            Err(why) => why,
            Ok((a, _)) => format!(
                "{addr:#x} is in {}, allocated after the launch",
                a.describe()
            ),
        },
        Err(_) => format!("{addr:#x} is not in any allocation"),
    }
}

// --- for NVML
impl State {
    /// The node's state if cuInit has succeeded, or None (without a log
    /// line: NVML runs with or without the driver).
    pub(crate) fn for_nvml() -> Option<MutexGuard<'static, State>> {
        match NODE.get() {
            Some(Ok(m)) => Some(m.lock().unwrap_or_else(|p| p.into_inner())),
            _ => None,
        }
    }

    /// Modelled device activity per PCI bus id: the sum, over every stream
    /// ever created on the devices at that bus id (a GPU and its MIG
    /// instances), of the stream's device clock in ns. Stream clocks only
    /// move forward, so the sum grows exactly when work is queued on the
    /// GPU (or an event is recorded on an idle stream).
    pub(crate) fn device_activity_ns(&self) -> HashMap<String, f64> {
        let mut out: HashMap<String, f64> = HashMap::new();
        for s in self.streams.values() {
            let Some(c) = self.contexts.get(&s.ctx) else {
                continue;
            };
            if let Some(d) = self.devices.get(c.device) {
                *out.entry(d.config.pci_bus_id.to_ascii_lowercase())
                    .or_default() += s.clock_ns;
            }
        }
        out
    }
}

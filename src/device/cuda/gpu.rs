//! One GPU's context, stream and loaded kernels, and how CUDA errors become
//! [`DeviceError`]s.
//!
//! Error mapping: every failure names the device (`GPU 3
//! (00000000:5d:00.0)`), what was being done (which kernel of which PTX
//! file) and the driver's error name and text. Errors after which the
//! context cannot run anything more ([`is_fatal`]: a kernel that faulted,
//! an uncorrectable ECC error, a device that fell off the bus) are
//! [`DeviceError::lost`], and every later call on the device fails at once
//! with the first such message; all others (out of memory, a PTX the driver
//! rejects, a bad argument) are [`DeviceError::failed`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::result::DriverError;
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr,
    LaunchArgs, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;

use crate::device::cuda::kernels::{Kernel, Module};
use crate::device::{DeviceError, DeviceResult, Seconds};

/// Driver errors after which the context is unusable or the device gone.
///
/// Sticky kernel faults (illegal address, illegal or misaligned
/// instruction, hardware stack error, failed launch, assert, timeout) poison
/// the context for the life of the process; `ECC_UNCORRECTABLE`,
/// `NVLINK_UNCORRECTABLE`, `NO_DEVICE`, `DEINITIALIZED` and `UNKNOWN` (what
/// the driver answers when a GPU fell off the bus) mean the hardware itself
/// is not there to use. `DEVICE_UNAVAILABLE` and `SYSTEM_NOT_READY` are not
/// here: they are node states ([`node_state`]).
pub(crate) fn is_fatal(error_name: &str) -> bool {
    matches!(
        error_name,
        "CUDA_ERROR_ILLEGAL_ADDRESS"
            | "CUDA_ERROR_LAUNCH_FAILED"
            | "CUDA_ERROR_LAUNCH_TIMEOUT"
            | "CUDA_ERROR_HARDWARE_STACK_ERROR"
            | "CUDA_ERROR_ILLEGAL_INSTRUCTION"
            | "CUDA_ERROR_MISALIGNED_ADDRESS"
            | "CUDA_ERROR_INVALID_ADDRESS_SPACE"
            | "CUDA_ERROR_INVALID_PC"
            | "CUDA_ERROR_ASSERT"
            | "CUDA_ERROR_ECC_UNCORRECTABLE"
            | "CUDA_ERROR_NVLINK_UNCORRECTABLE"
            | "CUDA_ERROR_NO_DEVICE"
            | "CUDA_ERROR_DEINITIALIZED"
            | "CUDA_ERROR_CONTEXT_IS_DESTROYED"
            | "CUDA_ERROR_UNKNOWN"
    )
}

/// The reason code of a fatal driver error when it is not `device_lost`:
/// an uncorrectable ECC error says what broke (`ecc_uncorrectable`, the
/// code NVML's counters give the same fault), and a kernel fault on a GPU
/// that is still there (an illegal address or instruction, a hardware
/// stack error, an assert) is `device_error`: the context is unusable, the
/// GPU has not left the bus. What a GPU off the bus answers
/// (LAUNCH_FAILED, NO_DEVICE, UNKNOWN, ...) stays `device_lost`.
pub(crate) fn fatal_code(error_name: &str) -> Option<&'static str> {
    match error_name {
        "CUDA_ERROR_ECC_UNCORRECTABLE" => Some("ecc_uncorrectable"),
        "CUDA_ERROR_ILLEGAL_ADDRESS"
        | "CUDA_ERROR_HARDWARE_STACK_ERROR"
        | "CUDA_ERROR_ILLEGAL_INSTRUCTION"
        | "CUDA_ERROR_MISALIGNED_ADDRESS"
        | "CUDA_ERROR_INVALID_ADDRESS_SPACE"
        | "CUDA_ERROR_INVALID_PC"
        | "CUDA_ERROR_ASSERT" => Some("device_error"),
        _ => None,
    }
}

/// Driver errors that say the node, not the GPU, stops the test: the reason
/// code and what to do about it.
///
/// - `CUDA_ERROR_DEVICE_UNAVAILABLE`: another process owns the GPU (compute
///   mode EXCLUSIVE_PROCESS or PROHIBITED).
/// - `CUDA_ERROR_SYSTEM_NOT_READY` (802): on an NVSwitch node, the fabric
///   manager is not running.
pub(crate) fn node_state(error_name: &str) -> Option<(&'static str, &'static str)> {
    match error_name {
        "CUDA_ERROR_DEVICE_UNAVAILABLE" => Some((
            "gpu_busy",
            "another process owns this GPU (compute mode EXCLUSIVE_PROCESS or PROHIBITED): stop it, or set the compute mode to DEFAULT with nvidia-smi -c DEFAULT",
        )),
        "CUDA_ERROR_SYSTEM_NOT_READY" => Some((
            "fabric_manager_down",
            "the NVIDIA fabric manager is not running on this NVSwitch node: start it (systemctl start nvidia-fabricmanager) and run again",
        )),
        _ => None,
    }
}

/// The [`DeviceError`] for driver error `e` while doing `what` on `label`,
/// without touching any device state: a node state, a loss or a failure.
pub(crate) fn classify(label: &str, what: &str, e: DriverError) -> DeviceError {
    let name = error_name(e);
    let msg = message(label, what, &describe(e));
    if let Some((code, todo)) = node_state(&name) {
        DeviceError::node_state(code, format!("{msg}: {todo}"))
    } else if is_fatal(&name) {
        let e = DeviceError::lost(msg);
        match fatal_code(&name) {
            Some(code) => e.with_code(code),
            None => e,
        }
    } else {
        DeviceError::failed(msg)
    }
}

/// The driver's name of an error, e.g. `CUDA_ERROR_OUT_OF_MEMORY` (from the
/// enum, so it needs no driver call).
pub(crate) fn error_name(e: DriverError) -> String {
    format!("{:?}", e.0)
}

/// `CUDA_ERROR_X (the driver's text)`, or the name alone when the driver has
/// no text for it.
pub(crate) fn describe(e: DriverError) -> String {
    let name = error_name(e);
    match e.error_string() {
        Ok(text) => join_error(&name, Some(&text.to_string_lossy())),
        Err(_) => join_error(&name, None),
    }
}

/// `name (text)`, or `name` when the text is missing or empty.
fn join_error(name: &str, text: Option<&str>) -> String {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => format!("{name} ({t})"),
        None => name.to_string(),
    }
}

/// `"{label}: {what} failed: {error}"`.
pub(crate) fn message(label: &str, what: &str, error: &str) -> String {
    format!("{label}: {what} failed: {error}")
}

/// The message and reason code of the error that lost a device.
type LostBy = (String, Option<&'static str>);

/// What every op of one GPU shares: cheap to clone.
#[derive(Clone)]
pub(crate) struct Handle {
    /// `GPU 3 (00000000:5d:00.0)`.
    pub label: Arc<str>,
    /// Streaming multiprocessors, for grid sizes.
    pub sms: u32,
    /// A virtual GPU (vgpu): timed windows repeat their work at most
    /// [`VIRTUAL_MAX_REPEATS`] times, as its kernels run in an interpreter.
    pub virtual_gpu: bool,
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    /// The message and reason code of the error that lost the device, once
    /// one did.
    lost: Arc<Mutex<Option<LostBy>>>,
    lost_flag: Arc<AtomicBool>,
}

impl Handle {
    /// Fails at once when an earlier error lost the device.
    pub fn check(&self) -> DeviceResult<()> {
        if self.lost_flag.load(Ordering::Relaxed) {
            let (first, code) = self
                .lost
                .lock()
                .ok()
                .and_then(|m| m.clone())
                .unwrap_or_default();
            let e = DeviceError::lost(format!(
                "{}: unusable after an earlier error: {first}",
                self.label
            ));
            return Err(match code {
                Some(c) => e.with_code(c),
                None => e,
            });
        }
        Ok(())
    }

    /// The [`DeviceError`] for driver error `e` while doing `what`; marks the
    /// device lost when `e` is fatal.
    pub fn fail(&self, what: &str, e: DriverError) -> DeviceError {
        let err = classify(&self.label, what, e);
        if err.lost {
            if let Ok(mut m) = self.lost.lock() {
                m.get_or_insert_with(|| (err.message.clone(), err.code));
            }
            self.lost_flag.store(true, Ordering::Relaxed);
        }
        err
    }

    /// A failure that is not a driver error.
    pub fn failed(&self, what: &str, why: &str) -> DeviceError {
        DeviceError::failed(message(&self.label, what, why))
    }

    /// A library call (cuBLASLt) failed with `why`. A library reports a
    /// dead context or a GPU off the bus only as its own failure
    /// (CUBLAS_STATUS_EXECUTION_FAILED): the driver is asked, by waiting for
    /// the stream, and when it names a fatal error that is the error, so
    /// that the device is lost (never a plain failure to retry on).
    pub fn library_failed(&self, what: &str, why: &str) -> DeviceError {
        match self
            .stream
            .synchronize()
            .and_then(|()| self.ctx.check_err())
        {
            Err(e) => self.fail(&format!("{what} ({why}; then the driver said)"), e),
            Ok(()) => self.failed(what, why),
        }
    }

    /// A zeroed device buffer of `len` elements (at least one, so that an
    /// empty workload still has a valid pointer).
    pub fn alloc<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
        what: &str,
    ) -> DeviceResult<CudaSlice<T>> {
        self.check()?;
        let bytes = len.max(1).saturating_mul(std::mem::size_of::<T>());
        self.stream
            .alloc_zeros::<T>(len.max(1))
            .map_err(|e| self.fail(&format!("allocating {bytes} bytes for {what}"), e))
    }

    /// Copies `data` to a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, data: &[T], what: &str) -> DeviceResult<CudaSlice<T>> {
        self.check()?;
        self.stream
            .clone_htod(data)
            .map_err(|e| self.fail(&format!("uploading {what}"), e))
    }

    /// Copies the first `len` elements of `src` to the host, waiting for
    /// every launch before it (so their errors surface here, named `what`).
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        src: &CudaSlice<T>,
        len: usize,
        what: &str,
    ) -> DeviceResult<Vec<T>> {
        self.check()?;
        let what = format!("reading back {what}");
        let view = src
            .try_slice(..len)
            .ok_or_else(|| self.failed(&what, "read past the end of the buffer"))?;
        let v = self
            .stream
            .clone_dtoh(&view)
            .map_err(|e| self.fail(&what, e))?;
        self.sync(&what)?;
        Ok(v)
    }

    /// Waits for everything queued on the stream.
    pub fn sync(&self, what: &str) -> DeviceResult<()> {
        self.stream
            .synchronize()
            .and_then(|()| self.ctx.check_err())
            .map_err(|e| self.fail(what, e))
    }

    /// A launch of `f`: push the arguments, then [`Launch::run`].
    pub fn launch<'a>(&'a self, f: &'a Func) -> Launch<'a> {
        Launch {
            args: self.stream.launch_builder(&f.func),
            widths: Vec::with_capacity(f.kernel.params().len()),
            kernel: f.kernel,
            handle: self,
        }
    }

    /// Two events with timing enabled, for [`Timer::time`].
    pub fn timer(&self) -> DeviceResult<Timer> {
        self.check()?;
        let ev = || {
            self.ctx
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| self.fail("creating a timing event", e))
        };
        Ok(Timer {
            start: ev()?,
            end: ev()?,
            repeats: std::cell::Cell::new(0),
            max_repeats: if self.virtual_gpu {
                VIRTUAL_MAX_REPEATS
            } else {
                MAX_REPEATS
            },
        })
    }
}

/// A loaded kernel.
pub(crate) struct Func {
    func: CudaFunction,
    pub kernel: Kernel,
}

/// Arguments of one launch, checked against the kernel's parameter widths
/// before it runs.
pub(crate) struct Launch<'a> {
    args: LaunchArgs<'a>,
    widths: Vec<u8>,
    kernel: Kernel,
    handle: &'a Handle,
}

impl<'a> Launch<'a> {
    /// A device pointer (`T*` or `const T*`).
    pub fn ptr<T>(&mut self, buf: &'a CudaSlice<T>) -> &mut Self {
        self.args.arg(buf);
        self.widths.push(8);
        self
    }

    /// A `u64` (`unsigned long long`).
    pub fn u64(&mut self, v: &'a u64) -> &mut Self {
        self.args.arg(v);
        self.widths.push(8);
        self
    }

    /// A scalar of `T`'s width (a gather's fill word: u16, u32 or u64).
    pub fn word<T: DeviceRepr>(&mut self, v: &'a T) -> &mut Self {
        self.args.arg(v);
        self.widths.push(std::mem::size_of::<T>() as u8);
        self
    }

    /// A `u32` (`unsigned int`).
    pub fn u32(&mut self, v: &'a u32) -> &mut Self {
        self.args.arg(v);
        self.widths.push(4);
        self
    }

    /// Queues the kernel on the stream with `grid` blocks of
    /// [`crate::device::cuda::kernels::BLOCK`] threads.
    pub fn run(&mut self, grid: u32) -> DeviceResult<()> {
        self.run_with(crate::device::cuda::kernels::config(grid))
    }

    /// Queues the kernel with an explicit launch shape.
    pub fn run_with(&mut self, cfg: LaunchConfig) -> DeviceResult<()> {
        let what = format!("launching {}", self.kernel.describe());
        if self.widths != self.kernel.params() {
            return Err(self.handle.failed(
                &what,
                &format!(
                    "internal error: the host passed parameters of {:?} bytes, the kernel takes {:?}",
                    self.widths,
                    self.kernel.params()
                ),
            ));
        }
        self.handle.check()?;
        // SAFETY: the parameter count and widths match the kernel's PTX
        // signature (checked above, and the table against the PTX in the
        // kernels tests); every pointer is a live allocation of this context
        // of the length the scalar arguments describe (each op sizes its
        // buffers from the same values it passes); kernels read and write
        // only within those lengths (kernels/README.md).
        unsafe { self.args.launch(cfg) }
            .map(|_| ())
            .map_err(|e| self.handle.fail(&what, e))
    }
}

/// The least device time one timed window should hold: a window under it
/// counts the few microseconds between the start event and the first
/// launch (the host building and queueing the launch while the GPU idles)
/// as part of the work, which is 10 to 20 % of a 30 us kernel.
pub(crate) const MIN_WINDOW_S: f64 = 1e-3;

/// The most launches one window repeats to reach [`MIN_WINDOW_S`].
pub(crate) const MAX_REPEATS: u32 = 256;

/// The same on a virtual GPU, whose launches run in an interpreter (its
/// figures are a model's, so a short window costs them nothing real).
pub(crate) const VIRTUAL_MAX_REPEATS: u32 = 4;

/// How many times a window repeats work whose single launch took `one_s`
/// (gap included): enough for [`MIN_WINDOW_S`], at most `max`.
pub(crate) fn repeats_for(one_s: f64, max: u32) -> u32 {
    if one_s.is_nan() || one_s <= 0.0 {
        return max;
    }
    ((MIN_WINDOW_S / one_s).ceil() as u32).clamp(1, max)
}

/// Start and end events around the timed launches.
pub(crate) struct Timer {
    start: CudaEvent,
    end: CudaEvent,
    /// Launches per window for [`Timer::time_each`], once calibrated.
    repeats: std::cell::Cell<u32>,
    max_repeats: u32,
}

impl Timer {
    /// The device time of one `launch`, from a window that repeats it until
    /// the window holds at least [`MIN_WINDOW_S`] of work (so the gap
    /// before the first launch is a small part of it): the window's time
    /// over the launches in it. The first call calibrates the count with
    /// one launch timed alone (that launch doubles as a warm-up).
    ///
    /// `launch` must be idempotent: each repetition does the same work on
    /// the same buffers.
    pub fn time_each(
        &self,
        h: &Handle,
        what: &str,
        mut launch: impl FnMut() -> DeviceResult<()>,
    ) -> DeviceResult<Seconds> {
        if self.repeats.get() == 0 {
            let one = self.time(h, what, &mut launch)?;
            self.repeats.set(repeats_for(one, self.max_repeats));
        }
        let n = self.repeats.get();
        let t = self.time(h, what, || {
            for _ in 0..n {
                launch()?;
            }
            Ok(())
        })?;
        Ok(t / f64::from(n))
    }

    /// Records the start event, queues `launches`, records the end event and
    /// waits for it: the device time of the launches alone, in seconds.
    pub fn time(
        &self,
        h: &Handle,
        what: &str,
        launches: impl FnOnce() -> DeviceResult<()>,
    ) -> DeviceResult<Seconds> {
        self.start
            .record(&h.stream)
            .map_err(|e| h.fail(&format!("starting the timer of {what}"), e))?;
        launches()?;
        self.end
            .record(&h.stream)
            .map_err(|e| h.fail(&format!("stopping the timer of {what}"), e))?;
        let ms = self
            .start
            .elapsed_ms(&self.end)
            .map_err(|e| h.fail(&format!("running {what}"), e))?;
        Ok(f64::from(ms) / 1e3)
    }
}

/// A GPU in use: its handle and the modules loaded so far.
pub(crate) struct Gpu {
    pub h: Handle,
    modules: [Option<Arc<CudaModule>>; Module::ALL.len()],
}

impl Gpu {
    /// Retains the primary context of `ordinal` and creates the one stream
    /// every op of this device runs on.
    pub fn open(ordinal: usize, label: &str, sms: u32, virtual_gpu: bool) -> DeviceResult<Gpu> {
        let err = |what: &str, e: DriverError| classify(label, what, e);
        let ctx = CudaContext::new(ordinal).map_err(|e| err("creating the CUDA context", e))?;
        // SAFETY: kiln queues all work of a device on the single stream made
        // below, in program order, so cudarc's per-buffer events (which order
        // buffers used across several streams) have nothing to order; every
        // buffer is allocated after this call.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| err("creating a CUDA stream", e))?;
        Ok(Gpu {
            h: Handle {
                label: label.into(),
                sms,
                virtual_gpu,
                ctx,
                stream,
                lost: Arc::new(Mutex::new(None)),
                lost_flag: Arc::new(AtomicBool::new(false)),
            },
            modules: Default::default(),
        })
    }

    /// Kernel `k`, loading (JIT-compiling) its module on first use.
    pub fn function(&mut self, k: Kernel) -> DeviceResult<Func> {
        self.h.check()?;
        let m = k.module();
        let what = format!("loading kernel {} from {}", k.name(), m.file());
        let module = match &self.modules[m.slot()] {
            Some(module) => module.clone(),
            None => {
                let text = m.source().map_err(|why| self.h.failed(&what, &why))?;
                let module = self
                    .h
                    .ctx
                    .load_module(Ptx::from_src(text))
                    .map_err(|e| self.h.fail(&what, e))?;
                self.modules[m.slot()] = Some(module.clone());
                module
            }
        };
        let func = module
            .load_function(k.name())
            .map_err(|e| self.h.fail(&what, e))?;
        Ok(Func { func, kernel: k })
    }

    /// Several kernels at once.
    pub fn functions<const N: usize>(&mut self, ks: [Kernel; N]) -> DeviceResult<[Func; N]> {
        let mut out = Vec::with_capacity(N);
        for k in ks {
            out.push(self.function(k)?);
        }
        out.try_into()
            .map_err(|_| self.h.failed("loading kernels", "internal error"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_launches_are_repeated_to_a_millisecond() {
        // A 30 us kernel (plus gap): 29 launches of 34 us.
        assert_eq!(repeats_for(34e-6, MAX_REPEATS), 30);
        assert_eq!(repeats_for(2e-3, MAX_REPEATS), 1);
        assert_eq!(repeats_for(1e-9, MAX_REPEATS), MAX_REPEATS);
        assert_eq!(repeats_for(4e-6, VIRTUAL_MAX_REPEATS), 4);
        assert_eq!(repeats_for(0.0, 7), 7);
        assert_eq!(repeats_for(f64::NAN, 7), 7);
    }

    #[test]
    fn fatal_errors_are_the_ones_that_poison_the_context() {
        for fatal in [
            "CUDA_ERROR_ILLEGAL_ADDRESS",
            "CUDA_ERROR_LAUNCH_FAILED",
            "CUDA_ERROR_ECC_UNCORRECTABLE",
            "CUDA_ERROR_NO_DEVICE",
            "CUDA_ERROR_UNKNOWN",
        ] {
            assert!(is_fatal(fatal), "{fatal}");
        }
        for benign in [
            "CUDA_ERROR_OUT_OF_MEMORY",
            "CUDA_ERROR_INVALID_VALUE",
            "CUDA_ERROR_INVALID_PTX",
            "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
            "CUDA_ERROR_NOT_FOUND",
        ] {
            assert!(!is_fatal(benign), "{benign}");
        }
    }

    #[test]
    fn error_names_come_from_the_enum_without_the_driver() {
        use cudarc::driver::sys::CUresult;
        let e = DriverError(CUresult::CUDA_ERROR_ILLEGAL_ADDRESS);
        assert_eq!(error_name(e), "CUDA_ERROR_ILLEGAL_ADDRESS");
        assert!(is_fatal(&error_name(e)));
        assert!(!is_fatal(&error_name(DriverError(
            CUresult::CUDA_ERROR_OUT_OF_MEMORY
        ))));
    }

    #[test]
    fn messages_name_device_kernel_and_error_on_one_line() {
        let m = message(
            "GPU 3 (00000000:5d:00.0)",
            &format!("loading kernel {} from {}", "kiln_bw_copy", "bandwidth.ptx"),
            &join_error(
                "CUDA_ERROR_INVALID_PTX",
                Some("a PTX JIT compilation failed"),
            ),
        );
        assert_eq!(
            m,
            "GPU 3 (00000000:5d:00.0): loading kernel kiln_bw_copy from bandwidth.ptx failed: \
             CUDA_ERROR_INVALID_PTX (a PTX JIT compilation failed)"
        );
        assert!(!m.contains('\n'));
        assert_eq!(join_error("CUDA_ERROR_X", Some("  ")), "CUDA_ERROR_X");
        assert_eq!(join_error("CUDA_ERROR_X", None), "CUDA_ERROR_X");
    }
}

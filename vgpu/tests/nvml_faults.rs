//! Each fault of the configuration shows where NVML shows it: ECC counters
//! and remapped rows, clock event reasons (with a bit nvml-wrapper 0.13 does
//! not name), the PCIe link, NVLink state and error counters, the fabric,
//! XID events through event sets after their time, and a GPU that falls off
//! the bus.
//!
//! One node for the binary (NVML is a process-wide singleton), on an
//! NVSwitch board, its fault clock started by the first nvmlInit:
//!
//! - GPU 0: an uncorrectable ECC error at 0.5 s, XID 13 at 0.7 s, 10
//!   correctable errors a second;
//! - GPU 1: clocks at half for an external power brake, PCIe Gen3 x8, an
//!   unhealthy fabric route and NVLink 6 seated on the wrong NVSwitch;
//! - GPU 2: clocks at 0.8 for the board limit (0x200), NVLinks 2 and 5
//!   down, 100 NVLink errors a second;
//! - GPU 3: falls off the bus at 1.0 s.

use std::ffi::{c_uint, CStr};
use std::ptr::null_mut;
use std::sync::Once;
use std::time::{Duration, Instant};

use vgpu::clock::fault_time_s;
use vgpu::driver::api as cu;
use vgpu::nvml::api::*;
use vgpu::nvml::result::*;

fn log_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("vgpu-nvml-faults-{}.log", std::process::id()))
}

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("VGPU_LOG", log_path());
        let config = log_path().with_extension("toml");
        std::fs::write(
            &config,
            "[node]\ngpus = 4\nnvswitch = true\n\
             [[gpus]]\nordinal = 0\nfaults = { ecc_uncorrectable_at_s = 0.5, xid = 13, xid_at_s = 0.7, ecc_correctable_per_s = 10.0 }\n\
             [[gpus]]\nordinal = 1\nfaults = { clocks_low = 0.5, clocks_low_reason = \"power_brake\", pcie_gen = 3, pcie_width = 8, fabric_unhealthy = \"route_unhealthy\", nvlink_miswired = [6] }\n\
             [[gpus]]\nordinal = 2\nfaults = { clocks_low = 0.8, clocks_low_reason = \"board_limit\", nvlink_down = [2, 5], nvlink_errors_per_s = 100.0 }\n\
             [[gpus]]\nordinal = 3\nfaults = { lost_at_s = 1.0 }\n",
        )
        .expect("config");
        std::env::set_var("VGPU_CONFIG", config);
        // Start the clock here, so that every test can register for the
        // events before they happen.
        assert_eq!(unsafe { nvmlInit_v2() }, NVML_SUCCESS);
    });
    assert_eq!(unsafe { nvmlInit_v2() }, NVML_SUCCESS);
}

fn log() -> String {
    std::fs::read_to_string(log_path()).unwrap_or_default()
}

fn handle(i: u32) -> nvmlDevice_t {
    let mut d: nvmlDevice_t = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByIndex_v2(i, &mut d) },
        NVML_SUCCESS
    );
    d
}

fn uint(f: impl FnOnce(*mut c_uint) -> nvmlReturn_t) -> c_uint {
    let mut v: c_uint = 0;
    assert_eq!(f(&mut v), NVML_SUCCESS);
    v
}

fn u64_of(f: impl FnOnce(*mut u64) -> nvmlReturn_t) -> u64 {
    let mut v = 0u64;
    assert_eq!(f(&mut v), NVML_SUCCESS);
    v
}

fn ecc(d: nvmlDevice_t, error: c_uint, counter: c_uint) -> u64 {
    u64_of(|v| unsafe { nvmlDeviceGetTotalEccErrors(d, error, counter, v) })
}

fn rows(d: nvmlDevice_t) -> [c_uint; 4] {
    let mut r = [0; 4];
    let [a, b, c, e] = &mut r;
    assert_eq!(
        unsafe { nvmlDeviceGetRemappedRows(d, a, b, c, e) },
        NVML_SUCCESS
    );
    r
}

fn new_set(d: nvmlDevice_t, types: u64) -> nvmlEventSet_t {
    let mut set: nvmlEventSet_t = null_mut();
    unsafe {
        assert_eq!(nvmlEventSetCreate(&mut set), NVML_SUCCESS);
        assert_eq!(nvmlDeviceRegisterEvents(d, types, set), NVML_SUCCESS);
    }
    set
}

fn wait(set: nvmlEventSet_t, ms: u32) -> Result<nvmlEventData_t, nvmlReturn_t> {
    let mut data: nvmlEventData_t = unsafe { std::mem::zeroed() };
    match unsafe { nvmlEventSetWait_v2(set, &mut data, ms) } {
        NVML_SUCCESS => Ok(data),
        e => Err(e),
    }
}

fn field(d: nvmlDevice_t, id: c_uint, scope: c_uint) -> (nvmlReturn_t, u64) {
    let mut f: nvmlFieldValue_t = unsafe { std::mem::zeroed() };
    f.fieldId = id;
    f.scopeId = scope;
    assert_eq!(
        unsafe { nvmlDeviceGetFieldValues(d, 1, &mut f) },
        NVML_SUCCESS
    );
    let v = unsafe {
        if f.valueType == 1 {
            u64::from(f.value.uiVal)
        } else {
            f.value.ullVal
        }
    };
    (f.nvmlReturn, v)
}

#[test]
fn an_uncorrectable_ecc_error_and_an_xid_arrive_at_their_time() {
    init();
    let d = handle(0);
    let set = new_set(d, 0x2 | 0x8);
    if fault_time_s() < 0.4 {
        assert_eq!(ecc(d, 1, 0), 0);
        assert_eq!(rows(d), [0, 0, 0, 0]);
    }
    let ecc_event = wait(set, 3000).expect("the ECC event");
    assert!(fault_time_s() >= 0.5);
    assert_eq!(ecc_event.eventType, 0x2, "nvmlEventTypeDoubleBitEccError");
    assert_eq!(ecc_event.device, d);
    let xid = wait(set, 3000).expect("the XID event");
    assert!(fault_time_s() >= 0.7);
    assert_eq!((xid.eventType, xid.eventData), (0x8, 13));
    assert_eq!(xid.gpuInstanceId, u32::MAX);
    // Nothing more: the wait times out, on time.
    let t = Instant::now();
    assert_eq!(wait(set, 200).unwrap_err(), NVML_ERROR_TIMEOUT);
    assert!(t.elapsed() >= Duration::from_millis(190));
    assert!(t.elapsed() < Duration::from_millis(900));
    // Counters: volatile and aggregate stepped up, one row remapping pending.
    for counter in [0, 1] {
        assert_eq!(ecc(d, 1, counter), 1);
        assert!(ecc(d, 0, counter) >= 7, "10 corrected a second");
    }
    assert_eq!(rows(d), [0, 1, 1, 0]);
    assert_eq!(
        field(d, 4, 0),
        (NVML_SUCCESS, 1),
        "NVML_FI_DEV_ECC_DBE_VOL_TOTAL"
    );
    assert_eq!(
        field(d, 144, 0),
        (NVML_SUCCESS, 1),
        "NVML_FI_DEV_REMAPPED_PENDING"
    );
    let mut c = 0u64;
    assert_eq!(
        unsafe { nvmlDeviceGetMemoryErrorCounter(d, 1, 0, 2, &mut c) },
        NVML_SUCCESS
    );
    assert_eq!(c, 1, "in device memory");
    // A set registered after the events never sees them.
    let late = new_set(d, 0x2 | 0x8);
    assert_eq!(wait(late, 100).unwrap_err(), NVML_ERROR_TIMEOUT);
    // The other GPUs are clean.
    assert_eq!(ecc(handle(1), 1, 0), 0);
    assert_eq!(rows(handle(1)), [0, 0, 0, 0]);
    unsafe {
        assert_eq!(nvmlEventSetFree(set), NVML_SUCCESS);
        assert_eq!(nvmlEventSetFree(late), NVML_SUCCESS);
    }
}

#[test]
fn a_gpu_that_falls_off_the_bus_is_lost_after_an_xid_79() {
    init();
    let d = handle(3);
    let set = new_set(d, 0x8);
    let e = wait(set, 3000).expect("XID 79");
    assert!(fault_time_s() >= 1.0);
    assert_eq!((e.eventType, e.eventData), (0x8, 79));
    assert_eq!(e.device, d);
    let mut t = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetTemperature(d, 0, &mut t) },
        NVML_ERROR_GPU_IS_LOST
    );
    let mut h = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByIndex_v2(3, &mut h) },
        NVML_ERROR_GPU_IS_LOST
    );
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByPciBusId_v2(c"00000000:44:00.0".as_ptr(), &mut h) },
        NVML_ERROR_GPU_IS_LOST
    );
    assert_eq!(wait(set, 100).unwrap_err(), NVML_ERROR_GPU_IS_LOST);
    assert!(log().contains("fell off the bus"));
    // Still counted: NVML enumerates it, and the others answer.
    assert_eq!(uint(|v| unsafe { nvmlDeviceGetCount_v2(v) }), 4);
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetTemperature(handle(2), 0, v) }),
        32
    );
}

fn reasons(d: nvmlDevice_t) -> u64 {
    u64_of(|v| unsafe { nvmlDeviceGetCurrentClocksEventReasons(d, v) })
}

#[test]
fn low_clocks_show_their_reasons_and_the_pcie_link_its_training() {
    init();
    assert_eq!(unsafe { cu::cuInit(0) }, 0);
    let brake = handle(1);
    let board = handle(2);
    // Idle: GPU_IDLE with the fault's reasons.
    assert_eq!(
        reasons(brake),
        0x1 | 0x80 | 0x8,
        "HW_POWER_BRAKE + HW_SLOWDOWN"
    );
    assert_eq!(
        reasons(board),
        0x1 | 0x200,
        "board limit: no name in nvml-wrapper"
    );
    let mut old = 0u64;
    assert_eq!(
        unsafe { nvmlDeviceGetCurrentClocksThrottleReasons(board, &mut old) },
        NVML_SUCCESS
    );
    assert_eq!(old, 0x1 | 0x200, "the deprecated call keeps every bit");
    // Load GPU 1 (CUDA device 1: the configuration's order is the PCI order).
    let mut ctx = null_mut();
    let mut p = 0u64;
    unsafe {
        assert_eq!(cu::cuDevicePrimaryCtxRetain(&mut ctx, 1), 0);
        assert_eq!(cu::cuCtxSetCurrent(ctx), 0);
        assert_eq!(cu::cuMemAlloc_v2(&mut p, 4096), 0);
        assert_eq!(cu::cuMemsetD8_v2(p, 1, 4096), 0);
    }
    assert_eq!(reasons(brake), 0x80 | 0x8);
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetClockInfo(brake, 1, v) }),
        990
    );
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetMaxClockInfo(brake, 1, v) }),
        1980
    );
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetClockInfo(brake, 2, v) }),
        2619
    );
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetCurrPcieLinkGeneration(brake, v) }),
        3
    );
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetCurrPcieLinkWidth(brake, v) }),
        8
    );
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetMaxPcieLinkGeneration(brake, v) }),
        5
    );
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetMaxPcieLinkWidth(brake, v) }),
        16
    );
    // A healthy GPU's modes.
    let d = handle(0);
    assert_eq!(uint(|v| unsafe { nvmlDeviceGetComputeMode(d, v) }), 0);
    assert_eq!(uint(|v| unsafe { nvmlDeviceGetPersistenceMode(d, v) }), 1);
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetCurrPcieLinkWidth(d, v) }),
        16
    );
}

#[test]
fn nvlink_state_counters_and_the_fabric() {
    init();
    let d = handle(2);
    let state = |link| uint(|v| unsafe { nvmlDeviceGetNvLinkState(d, link, v) });
    assert_eq!(state(0), 1);
    assert_eq!(state(2), 0);
    assert_eq!(state(5), 0);
    assert_eq!(state(17), 1);
    let mut v = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetNvLinkState(d, 18, &mut v) },
        NVML_ERROR_INVALID_ARGUMENT
    );
    std::thread::sleep(Duration::from_millis(100));
    let now = fault_time_s();
    for counter in 0..4 {
        let up = u64_of(|v| unsafe { nvmlDeviceGetNvLinkErrorCounter(d, 0, counter, v) });
        assert!(up >= (100.0 * now) as u64, "counter {counter}: {up}");
        let down = u64_of(|v| unsafe { nvmlDeviceGetNvLinkErrorCounter(d, 2, counter, v) });
        assert_eq!(down, 0);
        let healthy =
            u64_of(|v| unsafe { nvmlDeviceGetNvLinkErrorCounter(handle(0), 0, counter, v) });
        assert_eq!(healthy, 0);
    }
    let mut c = 0u64;
    assert_eq!(
        unsafe { nvmlDeviceGetNvLinkErrorCounter(d, 0, 5, &mut c) },
        NVML_ERROR_INVALID_ARGUMENT
    );
    assert_eq!(
        field(d, 165, 2).1,
        0,
        "NVML_FI_DEV_NVLINK_GET_STATE of link 2"
    );
    assert_eq!(field(d, 91, 0).1, 18, "NVML_FI_DEV_NVLINK_LINK_COUNT");
    assert!(field(d, 52, 0).1 >= 16 * 10, "replay errors, all links");
    // The far end of a link is an NVSwitch.
    let mut p: nvmlPciInfo_t = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { nvmlDeviceGetNvLinkRemotePciInfo_v2(d, 0, &mut p) },
        NVML_SUCCESS
    );
    assert_eq!(p.pciDeviceId, (0x22a3 << 16) | 0x10de);
    // Fabric: registered; degraded bandwidth on GPU 2 only.
    let mut f: nvmlGpuFabricInfo_v3_t = unsafe { std::mem::zeroed() };
    f.version = GPU_FABRIC_INFO_V3;
    assert_eq!(
        unsafe { nvmlDeviceGetGpuFabricInfoV(d, &mut f) },
        NVML_SUCCESS
    );
    assert_eq!(f.state, 3, "NVML_GPU_FABRIC_STATE_COMPLETED");
    assert_eq!(f.status, NVML_SUCCESS);
    // nvml.h: each field is (mask >> SHIFT) & WIDTH, DEGRADED_BW at 0, 0x3.
    assert_eq!(f.healthMask & 0x3, 1, "DEGRADED_BW_TRUE");
    assert_eq!(f.healthSummary, 3, "LIMITED_CAPACITY");
    f.version = GPU_FABRIC_INFO_V3;
    assert_eq!(
        unsafe { nvmlDeviceGetGpuFabricInfoV(handle(0), &mut f) },
        NVML_SUCCESS
    );
    assert_eq!((f.healthMask & 0x3, f.healthSummary), (2, 1));
    // GPU 1: the route unhealthy (ROUTE_UNHEALTHY at shift 4, TRUE 1), the
    // rest at their healthy values, the summary UNHEALTHY.
    f.version = GPU_FABRIC_INFO_V3;
    assert_eq!(
        unsafe { nvmlDeviceGetGpuFabricInfoV(handle(1), &mut f) },
        NVML_SUCCESS
    );
    assert_eq!((f.state, f.healthSummary), (3, 2));
    assert_eq!(
        [0, 2, 4, 6].map(|shift| (f.healthMask >> shift) & 0x3),
        [2, 2, 1, 2]
    );
    assert_eq!((f.healthMask >> 8) & 0xf, 1, "INCORRECT_CONFIGURATION_NONE");
    // Link 6 ends on NVSwitch 6 mod 4 (bus 0x07) on GPU 0, on the next
    // one (0x08) on GPU 1; either way the far end is a switch.
    let remote_bus = |g: u32, link: u32| {
        let mut p: nvmlPciInfo_t = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { nvmlDeviceGetNvLinkRemotePciInfo_v2(handle(g), link, &mut p) },
            NVML_SUCCESS
        );
        p.bus
    };
    assert_eq!(
        (remote_bus(0, 6), remote_bus(1, 6), remote_bus(1, 5)),
        (0x07, 0x08, 0x06)
    );
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetNvLinkRemoteDeviceType(handle(1), 6, v) }),
        2,
        "NVML_NVLINK_DEVICE_TYPE_SWITCH"
    );
    f.version = 1;
    assert_eq!(
        unsafe { nvmlDeviceGetGpuFabricInfoV(d, &mut f) },
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH
    );
    let mut old: nvmlGpuFabricInfo_t = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { nvmlDeviceGetGpuFabricInfo(d, &mut old) },
        NVML_SUCCESS
    );
    assert_eq!(old.state, 3);
}

#[test]
fn error_strings_name_the_codes() {
    init();
    let s = unsafe { CStr::from_ptr(nvmlErrorString(NVML_ERROR_TIMEOUT)) };
    assert_eq!(s.to_str().unwrap(), "Timeout");
}

#[test]
fn peers_on_the_nvswitch_fabric_are_nvlink_peers_and_never_pcie_ones() {
    init();
    let status = |a: u32, b: u32, index: c_uint| {
        let mut v: c_uint = 99;
        let rc = unsafe { nvmlDeviceGetP2PStatus(handle(a), handle(b), index, &mut v) };
        (rc, v)
    };
    // NVLINK (2), READ (0), ATOMICS (3): OK, GPU 2's two links down or not.
    for index in [0, 1, 2, 3] {
        assert_eq!(status(0, 2, index), (NVML_SUCCESS, 0), "index {index}");
        assert_eq!(status(2, 1, index), (NVML_SUCCESS, 0), "index {index}");
    }
    // PCI (4): no PCIe peer path is modelled.
    assert_eq!(status(0, 1, 4), (NVML_SUCCESS, 5));
    // Strict: a GPU is not its own peer; UNKNOWN (5) is no capability.
    assert_eq!(status(1, 1, 2).0, NVML_ERROR_INVALID_ARGUMENT);
    assert_eq!(status(0, 1, 5).0, NVML_ERROR_INVALID_ARGUMENT);
    assert!(log().contains("a GPU is not its own peer"), "{}", log());
}

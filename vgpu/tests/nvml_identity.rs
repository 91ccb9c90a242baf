//! NVML's view of the node, called in-process through the exported C
//! functions: identity consistent with the driver, NVML order = PCI order
//! (MIG instances are not NVML devices), and sensors that follow the load.
//!
//! All tests of this binary share one node (NVML and the driver are
//! process-wide singletons) and one log file. The node: four GPUs, GPU 0
//! moved to bus 0xc1 (so NVML's order differs from the configuration's),
//! GPU 2 in MIG mode with two instances (so CUDA sees five devices).

use std::ffi::{c_char, c_uint, c_void, CStr};
use std::ptr::null_mut;
use std::sync::Once;

use vgpu::driver::api as cu;
use vgpu::nvml::api::*;
use vgpu::nvml::result::*;

fn log_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("vgpu-nvml-identity-{}.log", std::process::id()))
}

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("VGPU_LOG", log_path());
        let config = log_path().with_extension("toml");
        std::fs::write(
            &config,
            "[node]\ngpus = 4\n\
             [[gpus]]\nordinal = 0\npci_bus_id = \"00000000:c1:00.0\"\n\
             [[gpus]]\nordinal = 2\nfaults = { mig_instances = 2 }\n",
        )
        .expect("config");
        std::env::set_var("VGPU_CONFIG", config);
    });
    assert_eq!(unsafe { nvmlInit_v2() }, NVML_SUCCESS);
    assert_eq!(unsafe { cu::cuInit(0) }, 0);
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

fn string(f: impl FnOnce(*mut c_char, c_uint) -> nvmlReturn_t) -> String {
    let mut buf = [0 as c_char; 96];
    assert_eq!(f(buf.as_mut_ptr(), buf.len() as c_uint), NVML_SUCCESS);
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn uint(f: impl FnOnce(*mut c_uint) -> nvmlReturn_t) -> c_uint {
    let mut v: c_uint = 0;
    assert_eq!(f(&mut v), NVML_SUCCESS);
    v
}

fn pci(d: nvmlDevice_t) -> nvmlPciInfo_t {
    let mut p: nvmlPciInfo_t = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { nvmlDeviceGetPciInfo_v3(d, &mut p) }, NVML_SUCCESS);
    p
}

fn c_str(b: &[c_char]) -> String {
    unsafe { CStr::from_ptr(b.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The driver's bus id and UUID of every CUDA device.
fn cuda_devices() -> Vec<(String, [u8; 16])> {
    let mut n = 0;
    assert_eq!(unsafe { cu::cuDeviceGetCount(&mut n) }, 0);
    (0..n)
        .map(|d| {
            let mut bus = [0 as c_char; 32];
            let mut uuid = [0u8; 16];
            unsafe {
                assert_eq!(cu::cuDeviceGetPCIBusId(bus.as_mut_ptr(), 32, d), 0);
                assert_eq!(cu::cuDeviceGetUuid(&mut uuid, d), 0);
            }
            (c_str(&bus), uuid)
        })
        .collect()
}

fn uuid_bytes(s: &str) -> [u8; 16] {
    let hex: String = s
        .trim_start_matches("GPU-")
        .chars()
        .filter(|c| *c != '-')
        .collect();
    assert_eq!(hex.len(), 32, "{s}");
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn nvml_enumerates_physical_gpus_in_pci_order_with_the_drivers_identity() {
    init();
    let count = uint(|p| unsafe { nvmlDeviceGetCount_v2(p) });
    assert_eq!(count, 4, "MIG instances are not NVML devices");
    let cuda = cuda_devices();
    assert_eq!(cuda.len(), 5);
    let mut buses = Vec::new();
    for i in 0..count {
        let d = handle(i);
        let p = pci(d);
        let bus = c_str(&p.busId);
        assert_eq!(bus.len(), 16, "{bus}");
        assert!(bus.starts_with("00000000:"), "{bus}");
        assert_eq!(c_str(&p.busIdLegacy), format!("0000:{}", &bus[9..]));
        assert_eq!(p.pciDeviceId, (0x7e01 << 16) | 0x10de);
        assert_eq!(p.bus, u32::from_str_radix(&bus[9..11], 16).unwrap());
        assert_eq!(uint(|v| unsafe { nvmlDeviceGetIndex(d, v) }), i);
        // The handle by bus id, in NVML's form and in CUDA's 4-digit form.
        for form in [bus.clone(), bus[4..].to_string(), bus.to_ascii_lowercase()] {
            let mut h: nvmlDevice_t = null_mut();
            let c = std::ffi::CString::new(form.clone()).unwrap();
            assert_eq!(
                unsafe { nvmlDeviceGetHandleByPciBusId_v2(c.as_ptr(), &mut h) },
                NVML_SUCCESS,
                "{form}"
            );
            assert_eq!(h, d, "{form}");
        }
        let uuid = string(|b, n| unsafe { nvmlDeviceGetUUID(d, b, n) });
        assert!(uuid.starts_with("GPU-") && uuid.len() == 40, "{uuid}");
        let (mut mig, mut pending) = (9, 9);
        assert_eq!(
            unsafe { nvmlDeviceGetMigMode(d, &mut mig, &mut pending) },
            NVML_SUCCESS
        );
        assert_eq!(pending, mig, "nothing pending");
        let instances: Vec<_> = cuda.iter().filter(|c| c.0 == bus).collect();
        if mig == 1 {
            assert_eq!(instances.len(), 2, "two MIG instances on {bus}");
            assert!(instances.iter().all(|c| c.1 != uuid_bytes(&uuid)));
        } else {
            assert_eq!(instances.len(), 1, "{bus}");
            assert_eq!(instances[0].1, uuid_bytes(&uuid), "cuDeviceGetUuid's bytes");
        }
        let name = string(|b, n| unsafe { nvmlDeviceGetName(d, b, n) });
        assert_eq!(name, "vgpu Virtual Hopper");
        let serial = string(|b, n| unsafe { nvmlDeviceGetSerial(d, b, n) });
        assert!(!serial.is_empty());
        buses.push(bus);
    }
    assert_eq!(
        buses,
        [
            "00000000:42:00.0",
            "00000000:43:00.0",
            "00000000:44:00.0",
            "00000000:C1:00.0"
        ],
        "PCI bus order, not the configuration's"
    );
    let mut serials: Vec<String> = (0..count)
        .map(|i| string(|b, n| unsafe { nvmlDeviceGetSerial(handle(i), b, n) }))
        .collect();
    serials.dedup();
    assert_eq!(serials.len(), 4);
    // MIG mode: utilisation and remapped rows are not reported.
    let mut u = nvmlUtilization_t::default();
    assert_eq!(
        unsafe { nvmlDeviceGetUtilizationRates(handle(1), &mut u) },
        NVML_ERROR_NOT_SUPPORTED
    );
    assert!(log().contains("MIG mode"));
}

#[test]
fn lookups_and_buffers_are_checked() {
    init();
    let mut h: nvmlDevice_t = null_mut();
    let missing = c"00000000:99:00.0";
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByPciBusId_v2(missing.as_ptr(), &mut h) },
        NVML_ERROR_NOT_FOUND
    );
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByPciBusId_v2(c"nope".as_ptr(), &mut h) },
        NVML_ERROR_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByIndex_v2(4, &mut h) },
        NVML_ERROR_INVALID_ARGUMENT
    );
    let mut small = [0 as c_char; 8];
    assert_eq!(
        unsafe { nvmlDeviceGetUUID(handle(0), small.as_mut_ptr(), 8) },
        NVML_ERROR_INSUFFICIENT_SIZE
    );
    let mut t = 0;
    let bogus = 0x1234usize as *mut c_void;
    assert_eq!(
        unsafe { nvmlDeviceGetTemperature(bogus, 0, &mut t) },
        NVML_ERROR_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { nvmlDeviceGetTemperature(handle(0), 1, &mut t) },
        NVML_ERROR_INVALID_ARGUMENT
    );
    let uuid = string(|b, n| unsafe { nvmlDeviceGetUUID(handle(2), b, n) });
    let c = std::ffi::CString::new(uuid).unwrap();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByUUID(c.as_ptr(), &mut h) },
        NVML_SUCCESS
    );
    assert_eq!(h, handle(2));
    let version = string(|b, n| unsafe { nvmlSystemGetDriverVersion(b, n) });
    assert!(version.starts_with("570."), "{version}");
    let text = unsafe { CStr::from_ptr(nvmlErrorString(NVML_ERROR_GPU_IS_LOST)) };
    assert_eq!(text.to_str().unwrap(), "GPU is lost");
    // Unimplemented entry points say so.
    assert_eq!(
        vgpu::nvml::unsupported::nvmlDeviceGetFanSpeed(),
        NVML_ERROR_NOT_SUPPORTED
    );
    assert!(log().contains("nvmlDeviceGetFanSpeed: not implemented"));
    // Balanced init and shutdown keep NVML up for the other tests.
    unsafe {
        assert_eq!(nvmlInitWithFlags(0), NVML_SUCCESS);
        assert_eq!(nvmlShutdown(), NVML_SUCCESS);
        assert_eq!(nvmlInitWithFlags(8), NVML_ERROR_INVALID_ARGUMENT);
    }
}

#[test]
fn an_event_wait_with_nothing_to_deliver_times_out_on_time() {
    init();
    let mut set: nvmlEventSet_t = null_mut();
    unsafe {
        assert_eq!(nvmlEventSetCreate(&mut set), NVML_SUCCESS);
        assert_eq!(nvmlDeviceRegisterEvents(handle(0), 0x8, set), NVML_SUCCESS);
        assert_eq!(
            nvmlDeviceRegisterEvents(handle(0), 0x4, set),
            NVML_ERROR_NOT_SUPPORTED,
            "P-state events are not modelled"
        );
        let mut data: nvmlEventData_t = std::mem::zeroed();
        let t = std::time::Instant::now();
        assert_eq!(nvmlEventSetWait_v2(set, &mut data, 0), NVML_ERROR_TIMEOUT);
        assert_eq!(nvmlEventSetWait_v2(set, &mut data, 150), NVML_ERROR_TIMEOUT);
        let waited = t.elapsed().as_secs_f64();
        assert!((0.14..1.0).contains(&waited), "{waited}");
        assert_eq!(nvmlEventSetFree(set), NVML_SUCCESS);
        assert_eq!(
            nvmlEventSetWait_v2(set, &mut data, 0),
            NVML_ERROR_INVALID_ARGUMENT
        );
    }
}

fn reasons(d: nvmlDevice_t) -> u64 {
    let mut r = 0u64;
    assert_eq!(
        unsafe { nvmlDeviceGetCurrentClocksEventReasons(d, &mut r) },
        NVML_SUCCESS
    );
    let mut old = 0u64;
    assert_eq!(
        unsafe { nvmlDeviceGetCurrentClocksThrottleReasons(d, &mut old) },
        NVML_SUCCESS
    );
    assert_eq!(r, old);
    r
}

#[test]
fn sensors_rise_under_load_and_rest_when_idle() {
    init();
    // CUDA device 0 is configuration GPU 0: NVML's last (bus 0xc1). NVML's
    // GPU 0 (bus 0x42) stays idle.
    let busy = handle(3);
    let idle = handle(0);
    let temp = |d| uint(|v| unsafe { nvmlDeviceGetTemperature(d, 0, v) });
    let power = |d| uint(|v| unsafe { nvmlDeviceGetPowerUsage(d, v) });
    let sm = |d| uint(|v| unsafe { nvmlDeviceGetClockInfo(d, 1, v) });
    let gen = |d| uint(|v| unsafe { nvmlDeviceGetCurrPcieLinkGeneration(d, v) });
    assert!(temp(busy) <= 34, "{}", temp(busy));
    assert!(power(busy) < 100_000);
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetEnforcedPowerLimit(busy, v) }),
        700_000
    );
    let mut ctx = null_mut();
    let mut p = 0u64;
    unsafe {
        assert_eq!(cu::cuDevicePrimaryCtxRetain(&mut ctx, 0), 0);
        assert_eq!(cu::cuCtxSetCurrent(ctx), 0);
        assert_eq!(cu::cuMemAlloc_v2(&mut p, 1 << 20), 0);
    }
    let start = std::time::Instant::now();
    while start.elapsed().as_secs_f64() < 2.5 {
        assert_eq!(unsafe { cu::cuMemsetD8_v2(p, 7, 1 << 20) }, 0);
        let _ = temp(busy);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let hot = temp(busy);
    assert!((45..=68).contains(&hot), "after 2.5 s of load: {hot} C");
    assert!(power(busy) > 400_000, "{} mW", power(busy));
    assert_eq!(sm(busy), 1980);
    assert_eq!(reasons(busy), 0, "no reason while busy at full clocks");
    assert_eq!(gen(busy), 5);
    let mut u = nvmlUtilization_t::default();
    assert_eq!(
        unsafe { nvmlDeviceGetUtilizationRates(busy, &mut u) },
        NVML_SUCCESS
    );
    assert_eq!(u.gpu, 100);
    // Memory temperature through field values.
    let mut f: nvmlFieldValue_t = unsafe { std::mem::zeroed() };
    f.fieldId = 82;
    assert_eq!(
        unsafe { nvmlDeviceGetFieldValues(busy, 1, &mut f) },
        NVML_SUCCESS
    );
    assert_eq!(f.nvmlReturn, NVML_SUCCESS);
    assert!(unsafe { f.value.uiVal } > 35);
    // The untouched GPU idles.
    assert_eq!(temp(idle), 32);
    assert_eq!(sm(idle), 345);
    assert_eq!(reasons(idle), 0x1, "GPU_IDLE");
    assert_eq!(gen(idle), 1, "an idle link runs slower");
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetMaxPcieLinkGeneration(idle, v) }),
        5
    );
    assert_eq!(
        uint(|v| unsafe { nvmlDeviceGetCurrPcieLinkWidth(idle, v) }),
        16
    );
    // After the load stops, the GPU cools.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(temp(busy) < hot, "{} then {}", hot, temp(busy));
    assert_eq!(reasons(busy), 0x1);
    assert!(power(busy) < 150_000, "{} mW", power(busy));
}

//! The driver API's rules, called in-process on a node of four virtual
//! GPUs: each refusal returns its CUresult and logs one line that names the
//! rule.
//!
//! All tests of this binary share one node (the driver is a process-wide
//! singleton, as libcuda is) and one log file; each looks for its own lines
//! in the log. A fault poisons its context for good, so the tests that
//! cause one have a GPU of their own: GPU 2 (illegal address) and GPU 3
//! (shared-memory race).

use std::ffi::{c_void, CString};
use std::ptr::null_mut;

use vgpu::driver::api::*;
use vgpu::driver::result::*;

mod common;
use common::{alloc, H};

const TAG: &str = "driver";

fn log() -> String {
    common::log(TAG)
}

/// cuInit once, on a node of four GPUs.
fn init() {
    common::init(TAG, "[node]\ngpus = 4\n");
}

/// The primary context of `dev`, current on this thread.
fn ctx(dev: i32) -> H {
    init();
    common::primary(dev)
}

fn load(ptx: &str) -> Result<H, CUresult> {
    let text = CString::new(ptx).expect("no NUL");
    let mut m: H = null_mut();
    match unsafe { cuModuleLoadData(&mut m, text.as_ptr().cast()) } {
        CUDA_SUCCESS => Ok(m),
        e => Err(e),
    }
}

fn function(m: H, name: &str) -> H {
    let n = CString::new(name).expect("name");
    let mut f: H = null_mut();
    assert_eq!(
        unsafe { cuModuleGetFunction(&mut f, m, n.as_ptr()) },
        CUDA_SUCCESS
    );
    f
}

/// Launches `f` with one pointer parameter and a `u32`.
fn launch(f: H, grid: u32, block: u32, p: u64, n: u32) -> CUresult {
    let mut p = p;
    let mut n = n;
    let mut args: [*mut c_void; 2] = [(&mut p as *mut u64).cast(), (&mut n as *mut u32).cast()];
    unsafe {
        cuLaunchKernel(
            f,
            grid,
            1,
            1,
            block,
            1,
            1,
            0,
            null_mut(),
            args.as_mut_ptr(),
            null_mut(),
        )
    }
}

const HEAD: &str = ".version 8.2\n.target sm_80\n.address_size 64\n";

/// `out[tid] = tid` for every thread of the block: with one thread more
/// than `n` elements, the last store is one element past the buffer.
const STORE: &str = r#"
.visible .entry store_tid(.param .u64 out, .param .u32 n)
{
    .reg .b32 %r<4>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r1;
    ret;
}
"#;

#[test]
fn devices_report_the_configured_identity() {
    init();
    let mut n = 0;
    assert_eq!(unsafe { cuDeviceGetCount(&mut n) }, CUDA_SUCCESS);
    assert_eq!(n, 4);
    let mut name = [0i8; 64];
    assert_eq!(
        unsafe { cuDeviceGetName(name.as_mut_ptr(), 64, 1) },
        CUDA_SUCCESS
    );
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    assert_eq!(name.to_str().unwrap(), vgpu::config::DEFAULT_NAME);
    let mut v = 0;
    assert_eq!(unsafe { cuDeviceGetAttribute(&mut v, 33, 1) }, CUDA_SUCCESS);
    assert_eq!(v, 0x42, "PCI bus of GPU 1");
    assert_eq!(unsafe { cuDeviceGetAttribute(&mut v, 75, 0) }, CUDA_SUCCESS);
    assert_eq!(v, 9);
    assert_eq!(unsafe { cuDeviceGet(&mut v, 4) }, CUDA_ERROR_INVALID_DEVICE);
}

#[test]
fn a_call_without_a_current_context_is_refused() {
    init();
    // A fresh thread has no current context.
    let code = std::thread::spawn(|| {
        let mut p = 0u64;
        unsafe { cuMemAlloc_v2(&mut p, 64) }
    })
    .join()
    .unwrap();
    assert_eq!(code, CUDA_ERROR_INVALID_CONTEXT);
    assert!(log().contains("cuMemAlloc_v2: no context is current on this thread"));
}

#[test]
fn copies_round_trip_and_double_frees_are_caught() {
    ctx(0);
    let p = alloc(4096);
    let src: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    let mut back = vec![0u8; 4096];
    unsafe {
        assert_eq!(cuMemcpyHtoD_v2(p, src.as_ptr().cast(), 4096), CUDA_SUCCESS);
        assert_eq!(
            cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), p, 4096),
            CUDA_SUCCESS
        );
    }
    assert_eq!(src, back);
    // One byte past the end.
    let code = unsafe { cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), p + 1, 4096) };
    assert_eq!(code, CUDA_ERROR_INVALID_VALUE);
    assert!(log().contains("run 1 bytes past the end of allocation"));
    assert_eq!(unsafe { cuMemFree_v2(p) }, CUDA_SUCCESS);
    assert_eq!(unsafe { cuMemFree_v2(p) }, CUDA_ERROR_INVALID_VALUE);
    assert!(log().contains(&format!("double free: allocation {p:#x}")));
    let code = unsafe { cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), p, 16) };
    assert_eq!(code, CUDA_ERROR_INVALID_VALUE);
    assert!(log().contains("(use after free)"));
}

#[test]
fn a_stream_of_another_context_is_refused() {
    ctx(1);
    let mut s: H = null_mut();
    assert_eq!(unsafe { cuStreamCreate(&mut s, 1) }, CUDA_SUCCESS);
    ctx(0);
    let code = unsafe { cuStreamSynchronize(s) };
    assert_eq!(code, CUDA_ERROR_INVALID_CONTEXT);
    assert!(log().contains("belongs to GPU 1's context, but GPU 0's context is current"));
    // An event passed as a stream is not a stream.
    let mut e: H = null_mut();
    assert_eq!(unsafe { cuEventCreate(&mut e, 0) }, CUDA_SUCCESS);
    assert_eq!(unsafe { cuStreamSynchronize(e) }, CUDA_ERROR_INVALID_HANDLE);
}

#[test]
fn pool_memory_needs_pool_access_for_a_peer_copy() {
    let c1 = ctx(1);
    let mut remote = 0u64;
    assert_eq!(
        unsafe { cuMemAllocAsync(&mut remote, 1024, null_mut()) },
        CUDA_SUCCESS
    );
    let c0 = ctx(0);
    let local = alloc(1024);
    assert_eq!(unsafe { cuMemsetD8_v2(local, 5, 1024) }, CUDA_SUCCESS);
    let code = unsafe { cuMemcpyPeerAsync(remote, c1, local, c0, 1024, null_mut()) };
    assert_eq!(code, CUDA_ERROR_PEER_ACCESS_NOT_ENABLED);
    assert!(log().contains("cuMemPoolSetAccess"));
    // Peer access does not cover pools; pool access does.
    let e = unsafe { cuCtxEnablePeerAccess(c1, 0) };
    assert!(e == CUDA_SUCCESS || e == CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED);
    let code = unsafe { cuMemcpyPeerAsync(remote, c1, local, c0, 1024, null_mut()) };
    assert_eq!(code, CUDA_ERROR_PEER_ACCESS_NOT_ENABLED);
    let mut pool: H = null_mut();
    assert_eq!(
        unsafe { cuDeviceGetDefaultMemPool(&mut pool, 1) },
        CUDA_SUCCESS
    );
    #[repr(C)]
    struct Desc(i32, i32, i32);
    let d = Desc(1, 0, 3);
    assert_eq!(
        unsafe { cuMemPoolSetAccess(pool, (&d as *const Desc).cast(), 1) },
        CUDA_SUCCESS
    );
    let code = unsafe { cuMemcpyPeerAsync(remote, c1, local, c0, 1024, null_mut()) };
    assert_eq!(code, CUDA_SUCCESS);
}

#[test]
fn events_measure_modelled_time() {
    ctx(0);
    let (mut a, mut b): (H, H) = (null_mut(), null_mut());
    unsafe {
        assert_eq!(cuEventCreate(&mut a, 0), CUDA_SUCCESS);
        assert_eq!(cuEventCreate(&mut b, 0), CUDA_SUCCESS);
    }
    let mut s: H = null_mut();
    assert_eq!(unsafe { cuStreamCreate(&mut s, 1) }, CUDA_SUCCESS);
    let p = alloc(55_000_000);
    let host = vec![1u8; 55_000_000];
    let mut ms = 0f32;
    unsafe {
        assert_eq!(cuEventElapsedTime(&mut ms, a, b), CUDA_ERROR_INVALID_HANDLE);
        assert_eq!(cuEventRecord(a, s), CUDA_SUCCESS);
        assert_eq!(
            cuMemcpyHtoDAsync_v2(p, host.as_ptr().cast(), 55_000_000, s),
            CUDA_SUCCESS
        );
        assert_eq!(cuEventRecord(b, s), CUDA_SUCCESS);
        assert_eq!(cuEventElapsedTime(&mut ms, a, b), CUDA_SUCCESS);
    }
    // 55 MB of pageable memory at half of 55 GB/s, plus 2 us: 2.002 ms.
    assert!((ms - 2.002).abs() < 1e-3, "{ms}");
    assert_eq!(unsafe { cuMemFree_v2(p) }, CUDA_SUCCESS);
}

#[test]
fn unimplemented_functions_say_so() {
    init();
    let code = vgpu::driver::unsupported::cuGraphLaunch();
    assert_eq!(code, CUDA_ERROR_NOT_SUPPORTED);
    assert!(log().contains("cuGraphLaunch: not implemented by the virtual GPU"));
}

#[test]
fn a_kernel_storing_one_element_past_its_buffer_is_an_illegal_address() {
    ctx(2);
    let m = load(&format!("{HEAD}{STORE}")).expect("loads");
    let f = function(m, "store_tid");
    let p = alloc(32 * 4);
    assert_eq!(launch(f, 1, 32, p, 32), CUDA_SUCCESS);
    let mut back = [0u32; 32];
    unsafe {
        assert_eq!(
            cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), p, 128),
            CUDA_SUCCESS
        );
    }
    assert_eq!(back.to_vec(), (0..32).collect::<Vec<u32>>());
    assert_eq!(launch(f, 1, 33, p, 32), CUDA_ERROR_ILLEGAL_ADDRESS);
    let l = log();
    let line = l
        .lines()
        .find(|l| l.contains("CUDA_ERROR_ILLEGAL_ADDRESS") && l.contains("store_tid"))
        .unwrap_or_else(|| panic!("no log line:\n{l}"));
    for part in [
        "thread (32",
        "0 bytes past the end of allocation",
        &format!("{:#x}", p + 128),
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
    // The context is unusable afterwards, as on hardware.
    assert_eq!(unsafe { cuCtxSynchronize() }, CUDA_ERROR_ILLEGAL_ADDRESS);
    let mut q = 0u64;
    assert_eq!(
        unsafe { cuMemAlloc_v2(&mut q, 8) },
        CUDA_ERROR_ILLEGAL_ADDRESS
    );
}

#[test]
fn a_wrong_parameter_size_is_refused() {
    ctx(0);
    let m = load(&format!("{HEAD}{STORE}")).expect("loads");
    let f = function(m, "store_tid");
    // The packed buffer of `extra`: a u32 where the signature has a u64.
    let mut buf = [0u8; 8];
    let mut size: usize = 8;
    let mut extra: [*mut c_void; 5] = [
        std::ptr::without_provenance_mut::<c_void>(1), // CU_LAUNCH_PARAM_BUFFER_POINTER
        buf.as_mut_ptr().cast(),
        std::ptr::without_provenance_mut::<c_void>(2), // CU_LAUNCH_PARAM_BUFFER_SIZE
        (&mut size as *mut usize).cast(),
        null_mut(),
    ];
    let code = unsafe {
        cuLaunchKernel(
            f,
            1,
            1,
            1,
            1,
            1,
            1,
            0,
            null_mut(),
            null_mut(),
            extra.as_mut_ptr(),
        )
    };
    assert_eq!(code, CUDA_ERROR_INVALID_VALUE);
    assert!(
        log().contains("store_tid: the parameter buffer is 8 bytes, the .entry signature (2 parameters: out 8B, n 4B) takes 12"),
        "{}",
        log()
    );
}

#[test]
fn a_block_larger_than_the_limit_is_refused() {
    ctx(0);
    let m = load(&format!("{HEAD}{STORE}")).expect("loads");
    let f = function(m, "store_tid");
    let p = alloc(4096 * 4);
    assert_eq!(launch(f, 1, 1025, p, 4096), CUDA_ERROR_INVALID_VALUE);
}

#[test]
fn a_shared_memory_race_fails_the_launch_and_a_barrier_fixes_it() {
    let race = r#"
.visible .entry neighbours(.param .u64 out, .param .u32 n)
{
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    .shared .align 4 .b8 buf[256];
    mov.u32 %r1, %tid.x;
    shl.b32 %r2, %r1, 2;
    mov.u32 %r3, buf;
    add.s32 %r4, %r3, %r2;
    st.shared.u32 [%r4], %r1;
    BARRIER
    add.s32 %r5, %r1, 1;
    and.b32 %r5, %r5, 63;
    shl.b32 %r5, %r5, 2;
    add.s32 %r5, %r3, %r5;
    ld.shared.u32 %r6, [%r5];
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r6;
    ret;
}
"#;
    ctx(0);
    let p = alloc(64 * 4);
    let good = load(&format!(
        "{HEAD}{}",
        race.replace("BARRIER", "bar.sync 0;")
            .replace("neighbours", "neighbours_synced")
    ))
    .expect("loads");
    assert_eq!(
        launch(function(good, "neighbours_synced"), 1, 64, p, 64),
        CUDA_SUCCESS
    );
    let mut back = [0u32; 64];
    unsafe {
        assert_eq!(
            cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), p, 256),
            CUDA_SUCCESS
        );
    }
    assert_eq!(
        back.to_vec(),
        (0..64).map(|i| (i + 1) % 64).collect::<Vec<u32>>()
    );
    // The same without the barrier races.
    ctx(3);
    let p = alloc(64 * 4);
    let bad = load(&format!("{HEAD}{}", race.replace("BARRIER", "")));
    let bad = bad.expect("loads");
    let code = launch(function(bad, "neighbours"), 1, 64, p, 64);
    assert_eq!(code, CUDA_ERROR_LAUNCH_FAILED);
    let l = log();
    assert!(l.contains("shared-memory race"), "{l}");
}

#[test]
fn an_unknown_instruction_fails_the_load_naming_it_and_its_line() {
    ctx(0);
    let text = format!(
        "{HEAD}{}",
        STORE.replace("    ret;", "    tanh.approx.f32 %r1, %r1;\n    ret;")
    );
    let line = text
        .lines()
        .position(|l| l.contains("tanh"))
        .expect("inserted")
        + 1;
    assert_eq!(load(&text).err(), Some(CUDA_ERROR_INVALID_PTX));
    let l = log();
    assert!(
        l.lines().any(|x| x.contains("CUDA_ERROR_INVALID_PTX")
            && x.contains(&format!("line {line}"))
            && x.contains("tanh.approx.f32")),
        "{l}"
    );
}

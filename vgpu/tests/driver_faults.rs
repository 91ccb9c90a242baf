//! What a dying GPU's faults do to the driver calls, called in-process on
//! one node of six virtual GPUs, each with a fault of its own:
//!
//! | GPU | fault |
//! |---|---|
//! | 0 | none |
//! | 1 | off the bus at 3 s |
//! | 2 | an uncorrectable ECC error at 0 s |
//! | 3 | a kernel named `spin...` that never finishes |
//! | 4 | a weak bit at physical byte 0x44, from its 2nd write |
//! | 5 | clocks at 0.5 (thermal), PCIe Gen3 x8 |
//! | 6 | one upset of physical byte 0x10, bit 0, at 2 s or later |

use std::ffi::{c_void, CString};
use std::ptr::null_mut;
use std::time::Duration;

use vgpu::driver::api::*;
use vgpu::driver::result::*;

mod common;
use common::{alloc, H};

const TAG: &str = "faults";

const NODE: &str = r#"
[node]
gpus = 7
[[gpus]]
ordinal = 1
faults = { lost_at_s = 3.0 }
[[gpus]]
ordinal = 2
faults = { ecc_uncorrectable_at_s = 0.0 }
[[gpus]]
ordinal = 3
faults = { hang_at_s = 0.0, hang_kernel = "spin" }
[[gpus]]
ordinal = 4
faults = { bitflip = { offset = 0x44, bit = 2, nth_write = 2 } }
[[gpus]]
ordinal = 5
faults = { clocks_low = 0.5, clocks_low_reason = "thermal", pcie_gen = 3, pcie_width = 8 }
[[gpus]]
ordinal = 6
faults = { bitflip = { offset = 0x10, at_s = 2.0, once = true } }
"#;

fn log() -> String {
    common::log(TAG)
}

fn ctx(dev: i32) -> H {
    common::init(TAG, NODE);
    common::primary(dev)
}

fn put(p: u64, data: &[u8]) -> CUresult {
    unsafe { cuMemcpyHtoD_v2(p, data.as_ptr().cast(), data.len()) }
}

fn get(p: u64, n: usize) -> (CUresult, Vec<u8>) {
    let mut v = vec![0u8; n];
    let r = unsafe { cuMemcpyDtoH_v2(v.as_mut_ptr().cast(), p, n) };
    (r, v)
}

/// `out[tid] = tid`, as `NAME`.
fn store_tid(name: &str) -> String {
    format!(
        r#".visible .entry {name}(.param .u64 out)
{{
    .reg .b32 %r<4>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r1;
    ret;
}}
"#
    )
}

/// The module: `store_tid`, and the same under GPU 3's hanging name,
/// `spin_forever`.
fn ptx() -> String {
    format!(
        ".version 8.2\n.target sm_80\n.address_size 64\n{}{}",
        store_tid("store_tid"),
        store_tid("spin_forever")
    )
}

fn kernel(name: &str) -> H {
    let text = CString::new(ptx()).expect("no NUL");
    let mut m: H = null_mut();
    assert_eq!(
        unsafe { cuModuleLoadData(&mut m, text.as_ptr().cast()) },
        CUDA_SUCCESS
    );
    let n = CString::new(name).expect("name");
    let mut f: H = null_mut();
    assert_eq!(
        unsafe { cuModuleGetFunction(&mut f, m, n.as_ptr()) },
        CUDA_SUCCESS
    );
    f
}

fn launch(f: H, stream: H, p: u64) -> CUresult {
    let mut p = p;
    let mut args: [*mut c_void; 1] = [(&mut p as *mut u64).cast()];
    unsafe {
        cuLaunchKernel(
            f,
            1,
            1,
            1,
            32,
            1,
            1,
            0,
            stream,
            args.as_mut_ptr(),
            null_mut(),
        )
    }
}

#[test]
fn a_gpu_off_the_bus_fails_the_call_in_flight_and_every_later_one() {
    ctx(1);
    let p = alloc(256);
    assert_eq!(put(p, &[7u8; 256]), CUDA_SUCCESS);
    let f = kernel("store_tid");
    assert_eq!(launch(f, null_mut(), p), CUDA_SUCCESS);
    // Before the fault's time (counted from cuInit) the GPU works; wait
    // past it.
    assert!(vgpu::clock::fault_time_s() < 3.0, "the test started late");
    while vgpu::clock::fault_time_s() < 3.05 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(launch(f, null_mut(), p), CUDA_ERROR_LAUNCH_FAILED);
    assert_eq!(get(p, 256).0, CUDA_ERROR_LAUNCH_FAILED);
    assert_eq!(unsafe { cuCtxSynchronize() }, CUDA_ERROR_LAUNCH_FAILED);
    let mut q = 0u64;
    assert_eq!(
        unsafe { cuMemAlloc_v2(&mut q, 8) },
        CUDA_ERROR_LAUNCH_FAILED
    );
    let l = log();
    assert!(
        l.contains("GPU 1 fell off the bus at 3.0 s"),
        "no log line:\n{l}"
    );
    // The other GPUs carry on.
    ctx(0);
    let p = alloc(64);
    assert_eq!(put(p, &[1u8; 64]), CUDA_SUCCESS);
    assert_eq!(get(p, 64), (CUDA_SUCCESS, vec![1u8; 64]));
}

#[test]
fn an_uncorrectable_ecc_error_surfaces_at_the_next_synchronisation() {
    ctx(2);
    let p = alloc(128);
    let mut s: H = null_mut();
    assert_eq!(unsafe { cuStreamCreate(&mut s, 1) }, CUDA_SUCCESS);
    let f = kernel("store_tid");
    // Queueing still works; the error comes with the next wait.
    assert_eq!(launch(f, s, p), CUDA_SUCCESS);
    assert_eq!(
        unsafe { cuStreamSynchronize(s) },
        CUDA_ERROR_ECC_UNCORRECTABLE
    );
    // Sticky: every later call on the GPU fails with it.
    assert_eq!(launch(f, s, p), CUDA_ERROR_ECC_UNCORRECTABLE);
    assert_eq!(unsafe { cuCtxSynchronize() }, CUDA_ERROR_ECC_UNCORRECTABLE);
    assert!(log().contains("uncorrectable ECC error in device memory"));
}

#[test]
fn a_kernel_that_never_finishes_blocks_its_stream_and_only_its_stream() {
    let c = ctx(3) as usize;
    let p = alloc(128);
    let (mut s, mut other): (H, H) = (null_mut(), null_mut());
    let (mut a, mut b): (H, H) = (null_mut(), null_mut());
    unsafe {
        assert_eq!(cuStreamCreate(&mut s, 1), CUDA_SUCCESS);
        assert_eq!(cuStreamCreate(&mut other, 1), CUDA_SUCCESS);
        assert_eq!(cuEventCreate(&mut a, 0), CUDA_SUCCESS);
        assert_eq!(cuEventCreate(&mut b, 0), CUDA_SUCCESS);
    }
    // Another kernel runs as usual.
    let ok = kernel("store_tid");
    assert_eq!(launch(ok, other, p), CUDA_SUCCESS);
    assert_eq!(unsafe { cuStreamSynchronize(other) }, CUDA_SUCCESS);
    // The hanging one is queued fine, and its stream never completes.
    let spin = kernel("spin_forever");
    unsafe {
        assert_eq!(cuEventRecord(a, s), CUDA_SUCCESS);
        assert_eq!(launch(spin, s, p), CUDA_SUCCESS);
        assert_eq!(cuEventRecord(b, s), CUDA_SUCCESS);
        assert_eq!(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
        assert_eq!(cuEventQuery(b), CUDA_ERROR_NOT_READY);
        let mut ms = 0f32;
        assert_eq!(cuEventElapsedTime(&mut ms, a, b), CUDA_ERROR_NOT_READY);
    }
    // A thread that waits for it never returns; the node carries on.
    let sp = s as usize;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        assert_eq!(unsafe { cuCtxSetCurrent(c as H) }, CUDA_SUCCESS);
        let r = unsafe { cuStreamSynchronize(sp as H) };
        let _ = tx.send(r);
    });
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
    ctx(0);
    let q = alloc(16);
    assert_eq!(put(q, &[3u8; 16]), CUDA_SUCCESS);
    assert_eq!(get(q, 16), (CUDA_SUCCESS, vec![3u8; 16]));
    assert!(log().contains("spin_forever launched at"));
}

#[test]
fn a_weak_bit_flips_what_is_written_over_it_from_its_nth_write() {
    ctx(4);
    // The first allocation sits at physical byte 0: byte 0x104 is in it.
    let p = alloc(1024);
    let data: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(put(p, &data), CUDA_SUCCESS);
    assert_eq!(
        get(p, 1024),
        (CUDA_SUCCESS, data.clone()),
        "1st write: intact"
    );
    assert_eq!(put(p, &data), CUDA_SUCCESS);
    let (r, back) = get(p, 1024);
    assert_eq!(r, CUDA_SUCCESS);
    let diff: Vec<(usize, u8)> = (0..1024)
        .filter(|i| back[*i] != data[*i])
        .map(|i| (i, back[i] ^ data[i]))
        .collect();
    assert_eq!(diff, [(0x44, 1 << 2)], "2nd write: bit 2 of byte 0x44");
    // Freed and allocated again: new address, the same physical bytes.
    assert_eq!(unsafe { cuMemFree_v2(p) }, CUDA_SUCCESS);
    let q = alloc(1024);
    assert_ne!(q, p);
    // A kernel's store is hit too: word 17 holds byte 0x44.
    assert_eq!(launch(kernel("store_tid"), null_mut(), q), CUDA_SUCCESS);
    let (_, back) = get(q, 128);
    let word = |i: usize| {
        u32::from_le_bytes([
            back[4 * i],
            back[4 * i + 1],
            back[4 * i + 2],
            back[4 * i + 3],
        ])
    };
    assert_eq!(word(17), 17 ^ (1 << 2));
    assert_eq!(word(3), 3);
    assert!(log().contains("bit 2 of physical byte 0x44"));
}

#[test]
fn low_clocks_and_a_slow_link_slow_the_model_down() {
    ctx(5);
    let (mut a, mut b): (H, H) = (null_mut(), null_mut());
    let mut s: H = null_mut();
    unsafe {
        assert_eq!(cuEventCreate(&mut a, 0), CUDA_SUCCESS);
        assert_eq!(cuEventCreate(&mut b, 0), CUDA_SUCCESS);
        assert_eq!(cuStreamCreate(&mut s, 1), CUDA_SUCCESS);
    }
    let p = alloc(55_000_000);
    let host = vec![1u8; 55_000_000];
    let mut ms = 0f32;
    unsafe {
        assert_eq!(cuEventRecord(a, s), CUDA_SUCCESS);
        assert_eq!(
            cuMemcpyHtoDAsync_v2(p, host.as_ptr().cast(), 55_000_000, s),
            CUDA_SUCCESS
        );
        assert_eq!(cuEventRecord(b, s), CUDA_SUCCESS);
        assert_eq!(cuEventElapsedTime(&mut ms, a, b), CUDA_SUCCESS);
    }
    // Pageable memory at half of 55 GB/s x (Gen3 / Gen5 lane rate) x 8/16:
    // 2 ms / (0.985 / 3.938 / 2) = 15.99 ms, plus 2 us.
    let want = 2.0 / (0.985 / 3.938 / 2.0) + 0.002;
    assert!(
        (f64::from(ms) - want).abs() < 0.01,
        "{ms} ms, expected {want}"
    );
}

#[test]
fn a_one_time_upset_at_its_time_flips_one_write_only() {
    ctx(6);
    let p = alloc(64);
    let data = [0u8; 64];
    // Before its time: every write intact.
    assert!(vgpu::clock::fault_time_s() < 2.0, "the test started late");
    assert_eq!(put(p, &data), CUDA_SUCCESS);
    assert_eq!(get(p, 64), (CUDA_SUCCESS, data.to_vec()));
    while vgpu::clock::fault_time_s() < 2.05 {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The first write after it: bit 0 of byte 0x10 stored flipped.
    assert_eq!(put(p, &data), CUDA_SUCCESS);
    let (_, back) = get(p, 64);
    let mut want = data.to_vec();
    want[0x10] = 1;
    assert_eq!(back, want);
    // `once`: the next write is intact again.
    assert_eq!(put(p, &data), CUDA_SUCCESS);
    assert_eq!(get(p, 64), (CUDA_SUCCESS, data.to_vec()));
}

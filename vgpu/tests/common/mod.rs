//! What every in-process test of the driver needs: one node per test
//! binary (the driver is a process-wide singleton, as libcuda is), its log,
//! and a context or an allocation in one call.

#![allow(dead_code)]

use std::ffi::c_void;
use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::Once;

use vgpu::driver::api::*;
use vgpu::driver::result::*;

pub type H = *mut c_void;

/// This binary's log file: `vgpu-<tag>-test-<pid>.log` in the temp folder.
pub fn log_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vgpu-{tag}-test-{}.log", std::process::id()))
}

/// cuInit once, on the node `config` (TOML), logging to [`log_path`].
pub fn init(tag: &str, config: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Set before any thread reads them: the first call of any test.
        std::env::set_var("VGPU_LOG", log_path(tag));
        let file = log_path(tag).with_extension("toml");
        std::fs::write(&file, config).expect("config");
        std::env::set_var("VGPU_CONFIG", file);
    });
    assert_eq!(unsafe { cuInit(0) }, CUDA_SUCCESS);
}

/// What the driver logged so far.
pub fn log(tag: &str) -> String {
    std::fs::read_to_string(log_path(tag)).unwrap_or_default()
}

/// The primary context of `dev`, current on this thread (after `init`).
pub fn primary(dev: i32) -> H {
    let mut c: H = null_mut();
    unsafe {
        assert_eq!(cuDevicePrimaryCtxRetain(&mut c, dev), CUDA_SUCCESS);
        assert_eq!(cuCtxSetCurrent(c), CUDA_SUCCESS);
    }
    c
}

/// `bytes` of device memory in the current context.
pub fn alloc(bytes: usize) -> u64 {
    let mut p = 0u64;
    assert_eq!(unsafe { cuMemAlloc_v2(&mut p, bytes) }, CUDA_SUCCESS);
    p
}

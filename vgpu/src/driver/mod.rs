//! The CUDA driver API, as a C ABI, over the virtual node.
//!
//! - [`result`]: `CUresult` codes and their names and texts, from NVIDIA's
//!   driver API reference (`cuda.h`).
//! - [`state`]: the node's state (devices, contexts, streams, events,
//!   modules, memory) and every rule the driver enforces; pure Rust.
//! - [`api`]: the exported `extern "C"` functions, thin wrappers that catch
//!   panics (a panic must never unwind into the caller), translate pointers
//!   and call [`state`].
//! - [`faults`]: what the configured faults of a GPU do to the calls.
//! - [`unsupported`]: every other driver entry point cudarc can load, each
//!   returning CUDA_ERROR_NOT_SUPPORTED and logging its name.
//!
//! Diagnostics go to the file named by `VGPU_LOG` (appended), or to stderr,
//! one line each, prefixed `vgpu: `.

pub mod api;
pub mod faults;
pub mod heap;
pub mod result;
pub mod state;
pub mod unsupported;

use std::io::Write;
use std::sync::Mutex;

/// Writes one diagnostic line.
pub fn log(line: &str) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock();
    let text = format!("vgpu: {line}\n");
    match std::env::var_os("VGPU_LOG").filter(|p| !p.is_empty()) {
        Some(path) => {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(text.as_bytes());
            }
        }
        None => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}

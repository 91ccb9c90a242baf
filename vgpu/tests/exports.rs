//! The built library exports every driver function cudarc 0.19 can load
//! (the names in `cudarc-driver-symbols.txt`, taken from cudarc's
//! `driver::sys`): cudarc resolves each symbol when it is first called and
//! panics on a missing one, so a missing export would crash the program
//! instead of returning CUDA_ERROR_NOT_SUPPORTED.

use std::path::PathBuf;

/// The cdylib cargo built beside this test binary.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let deps = exe.parent().expect("deps folder");
    [deps.join("libvgpu.so"), deps.join("../libvgpu.so")]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libvgpu.so not built beside {}", deps.display()))
}

#[test]
fn every_symbol_cudarc_can_load_is_exported() {
    let names = include_str!("cudarc-driver-symbols.txt");
    // SAFETY: loading runs no initialiser of ours (vgpu has none).
    let lib = unsafe { libloading::Library::new(library()) }.expect("dlopen libvgpu.so");
    let missing: Vec<&str> = names
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .filter(|n| {
            // SAFETY: only the address is looked up, nothing is called.
            unsafe { lib.get::<unsafe extern "C" fn()>(n.as_bytes()) }.is_err()
        })
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
    assert!(names.lines().count() > 400);
}

#[test]
fn implemented_and_unsupported_names_do_not_overlap() {
    let names = include_str!("cudarc-driver-symbols.txt");
    for n in vgpu::driver::unsupported::NAMES {
        assert!(names.contains(n), "{n} is not a cudarc name");
    }
    for must in [
        "cuInit",
        "cuLaunchKernel",
        "cuMemcpyPeerAsync",
        "cuMemPoolSetAccess",
    ] {
        assert!(
            !vgpu::driver::unsupported::NAMES.contains(&must),
            "{must} must be implemented"
        );
    }
}

//! vgpu: a virtual NVIDIA GPU for machines without one.
//!
//! Built as `libvgpu.so` and installed under the driver's file names
//! (`libcuda.so.1`, `libcuda.so`), it is a CUDA driver: programs that load
//! libcuda at run time (kiln, through cudarc) use it as they would use
//! NVIDIA's. Kernels run in a PTX interpreter ([`ptx`]); the node is
//! described by a TOML file ([`config`]); the driver ([`driver`]) is
//! stricter than a real one: what hardware might tolerate, it refuses with a
//! log line that names the rule.
//!
//! vgpu is a model written from NVIDIA's documentation (the PTX ISA and the
//! CUDA driver API reference). It depends on nothing of kiln.

pub mod blaslt;
pub mod clock;
pub mod config;
pub mod driver;
pub mod nvml;
pub mod ptx;

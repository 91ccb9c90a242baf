//! The CUDA backend seam.
//!
//! kiln will drive NVIDIA GPUs through cudarc with dynamic loading, so one
//! binary works on every node whether or not CUDA is installed. Until that
//! backend lands, [`probe`] reports it unavailable: `--backend auto` falls
//! back to the CPU and `--backend cuda` exits with code 3.

use crate::device::Device;

/// The CUDA devices of this node, or why there are none.
pub fn probe() -> Result<Vec<Box<dyn Device>>, String> {
    Err("not available yet in this build of kiln (the CUDA backend is not implemented)".into())
}

//! The node's one clock for faults.
//!
//! Fault times in the configuration (`xid_at_s`, `lost_at_s`, ...) count
//! seconds of host wall time from when the node started: the first cuInit or
//! nvmlInit of the process, whichever came first (both read the
//! configuration through [`crate::config::Config::from_env`], which starts
//! the clock). The driver's and NVML's halves of a fault read the same
//! clock, so a GPU lost at 5 s is lost to both at once.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Starts the clock (only the first call has an effect).
pub fn start() {
    START.get_or_init(Instant::now);
}

/// Seconds since the node started; 0 before it has.
pub fn fault_time_s() -> f64 {
    START.get().map_or(0.0, |t| t.elapsed().as_secs_f64())
}

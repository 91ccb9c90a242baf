//! Shared memory of one block, with a data-race detector.
//!
//! It exists because shared memory is where CUDA kernels race, and a
//! virtual GPU that runs blocks one warp at a time would otherwise hide
//! every missing `__syncthreads()`. The detector is stricter than hardware,
//! in the spirit of Miri's vector clocks but simplified to CTA barriers: the
//! block's history is cut into epochs by completed barriers, and each byte
//! remembers its last writer and up to two distinct readers of the current
//! epoch. Within one epoch:
//!
//! - a write by thread T after a write or a read by another thread U,
//! - a read by T after a write by another thread U,
//!
//! is a race. A thread never races with itself; lanes of one warp are
//! different threads (the memory model needs `__syncwarp`, and `shfl` is
//! not a memory operation). Granularity is the byte, so threads that write
//! neighbouring bytes of a word do not race.
//!
//! Addresses: the `.shared` state space is the byte offset in the block's
//! buffer (static variables first, in declaration order, then the dynamic
//! `extern` array). Generic addresses of shared memory (from `cvta.shared`)
//! are [`SHARED_WINDOW`] + offset; `cvta.to.shared` subtracts it.

/// Base of the generic window of shared memory (4 GiB).
pub const SHARED_WINDOW: u64 = 0xfe00_0000_0000_0000;
/// Base of the generic window of local memory (4 GiB).
pub const LOCAL_WINDOW: u64 = 0xfd00_0000_0000_0000;
/// Size of each window.
pub const WINDOW_SIZE: u64 = 1 << 32;

const NONE: u16 = u16::MAX;

#[derive(Clone, Copy)]
struct Shadow {
    w_epoch: u32,
    w_line: u32,
    r_epoch: u32,
    r_line1: u32,
    r_line2: u32,
    w_tid: u16,
    r_tid1: u16,
    r_tid2: u16,
}

const EMPTY: Shadow = Shadow {
    w_epoch: 0,
    w_line: 0,
    r_epoch: 0,
    r_line1: 0,
    r_line2: 0,
    w_tid: NONE,
    r_tid1: NONE,
    r_tid2: NONE,
};

/// A detected race: the other access, and the first byte in conflict.
#[derive(Debug, Clone, Copy)]
pub struct Race {
    pub offset: u64,
    pub other_tid: u32,
    pub other_line: u32,
    pub other_was_write: bool,
}

pub struct Shared {
    pub data: Vec<u8>,
    shadow: Vec<Shadow>,
    epoch: u32,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            data: Vec::new(),
            shadow: Vec::new(),
            epoch: 1,
        }
    }

    /// Starts a block with `size` bytes of zeroed shared memory.
    pub fn reset(&mut self, size: usize) {
        self.data.clear();
        self.data.resize(size, 0);
        if self.shadow.len() < size {
            self.shadow.resize(size, EMPTY);
        }
        self.barrier();
    }

    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// A CTA barrier completed: every access before it happens before
    /// every access after it.
    pub fn barrier(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            for s in self.shadow.iter_mut() {
                *s = EMPTY;
            }
            self.epoch = 1;
        }
    }

    /// Whether `[off, off+len)` lies in the buffer.
    #[inline]
    pub fn in_bounds(&self, off: u64, len: u64) -> bool {
        off.checked_add(len)
            .is_some_and(|e| e <= self.data.len() as u64)
    }

    /// Records a read by `tid` of `[off, off+len)` (in bounds) and copies
    /// it to `out`.
    pub fn read(&mut self, off: u64, out: &mut [u8], tid: u32, line: u32) -> Result<(), Race> {
        let o = off as usize;
        let t = tid as u16;
        let ep = self.epoch;
        for (i, s) in self.shadow[o..o + out.len()].iter_mut().enumerate() {
            if s.w_epoch == ep && s.w_tid != t {
                return Err(Race {
                    offset: off + i as u64,
                    other_tid: s.w_tid as u32,
                    other_line: s.w_line,
                    other_was_write: true,
                });
            }
            if s.r_epoch != ep {
                s.r_epoch = ep;
                s.r_tid1 = t;
                s.r_line1 = line;
                s.r_tid2 = NONE;
            } else if s.r_tid1 != t && s.r_tid2 == NONE {
                s.r_tid2 = t;
                s.r_line2 = line;
            }
        }
        out.copy_from_slice(&self.data[o..o + out.len()]);
        Ok(())
    }

    /// Records a write by `tid` of `data` at `off` (in bounds) and stores it.
    pub fn write(&mut self, off: u64, data: &[u8], tid: u32, line: u32) -> Result<(), Race> {
        let o = off as usize;
        let t = tid as u16;
        let ep = self.epoch;
        for (i, s) in self.shadow[o..o + data.len()].iter_mut().enumerate() {
            if s.w_epoch == ep && s.w_tid != t {
                return Err(Race {
                    offset: off + i as u64,
                    other_tid: s.w_tid as u32,
                    other_line: s.w_line,
                    other_was_write: true,
                });
            }
            if s.r_epoch == ep {
                if s.r_tid1 != t {
                    return Err(Race {
                        offset: off + i as u64,
                        other_tid: s.r_tid1 as u32,
                        other_line: s.r_line1,
                        other_was_write: false,
                    });
                }
                if s.r_tid2 != NONE {
                    return Err(Race {
                        offset: off + i as u64,
                        other_tid: s.r_tid2 as u32,
                        other_line: s.r_line2,
                        other_was_write: false,
                    });
                }
            }
            s.w_epoch = ep;
            s.w_tid = t;
            s.w_line = line;
        }
        self.data[o..o + data.len()].copy_from_slice(data);
        Ok(())
    }
}

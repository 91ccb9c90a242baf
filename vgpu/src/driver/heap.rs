//! Device memory: every allocation of every virtual GPU in one virtual
//! address space (as unified addressing gives a real node), with what the
//! checks need to know of each byte.
//!
//! - Addresses are never reused: each device hands out addresses from its
//!   own range upwards, so a pointer into freed memory always finds the
//!   freed allocation and is reported as a use after free, never as a hit in
//!   a newer allocation.
//! - Each byte has a "written" bit: a read of memory that no copy, memset or
//!   kernel wrote is reported.
//! - The bytes of each allocation sit behind their own lock, so kernels on
//!   different devices run at the same time; the table of allocations is
//!   read once per launch (a [`Snapshot`]).
//! - Each allocation also has a place in its device's physical memory,
//!   first fit, where freed memory is reused (as on a real GPU): a weak
//!   bit of the memory ([`super::faults`]) hits whichever allocation holds
//!   its byte at the time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where device `d`'s addresses start: 1 TiB apart, above 4 GiB, so that no
/// small integer is ever a valid pointer.
pub fn device_base(d: usize) -> u64 {
    0x7f00_0000_0000u64 + ((d as u64) << 40)
}

/// Alignment of every allocation (cuMemAlloc guarantees 256 bytes).
pub const ALIGN: u64 = 256;

/// How an allocation was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// cuMemAlloc: reachable by peers once peer access is enabled.
    Plain,
    /// cuMemAllocAsync from the device's default pool: reachable by another
    /// device only after cuMemPoolSetAccess grants it.
    Pool,
    /// A module's `.global` variable.
    ModuleGlobal,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Plain => "cuMemAlloc",
            Kind::Pool => "cuMemAllocAsync (pool)",
            Kind::ModuleGlobal => "module global",
        }
    }
}

/// The bytes of one allocation and their written bits.
#[derive(Debug)]
pub struct Data {
    pub bytes: Vec<u8>,
    /// One bit per byte.
    pub written: Vec<u64>,
    pub freed: bool,
    /// The device, and where the bytes start in its physical memory (None:
    /// placed nowhere, e.g. the memory is too fragmented for a first fit).
    pub device: usize,
    pub phys: Option<u64>,
}

impl Data {
    fn new(size: usize, device: usize, phys: Option<u64>) -> Data {
        Data {
            bytes: vec![0; size],
            written: vec![0; size.div_ceil(64)],
            freed: false,
            device,
            phys,
        }
    }

    /// Marks `[off, off+len)` written: every store (a kernel's, a copy's,
    /// a memset's) ends here, where the device's weak bit, if it has one
    /// in that range, is applied.
    pub fn mark(&mut self, off: usize, len: usize) {
        self.mark_bits(off, len);
        super::faults::stored(self, off, len);
    }

    fn mark_bits(&mut self, off: usize, len: usize) {
        let mut i = off;
        let end = off + len;
        while i < end {
            if i.is_multiple_of(64) && end - i >= 64 {
                self.written[i / 64] = u64::MAX;
                i += 64;
            } else {
                self.written[i / 64] |= 1 << (i % 64);
                i += 1;
            }
        }
    }

    /// Whether every byte of `[off, off+len)` was written.
    pub fn all_written(&self, off: usize, len: usize) -> bool {
        let mut i = off;
        let end = off + len;
        while i < end {
            if i.is_multiple_of(64) && end - i >= 64 {
                if self.written[i / 64] != u64::MAX {
                    return false;
                }
                i += 64;
            } else {
                if self.written[i / 64] & (1 << (i % 64)) == 0 {
                    return false;
                }
                i += 1;
            }
        }
        true
    }
}

/// One allocation.
#[derive(Debug, Clone)]
pub struct Alloc {
    pub base: u64,
    pub size: u64,
    pub device: usize,
    /// The context that made it (its handle id).
    pub ctx: u64,
    pub kind: Kind,
    pub data: Arc<Mutex<Data>>,
    /// How it was freed, once it was: "cuMemFree_v2", ...
    pub freed_by: Option<&'static str>,
}

impl Alloc {
    pub fn end(&self) -> u64 {
        self.base + self.size
    }

    /// `allocation 0x7f0000000100 (4096 bytes, cuMemAlloc on GPU 0)`.
    pub fn describe(&self) -> String {
        format!(
            "allocation {:#x} ({} bytes, {} on GPU {})",
            self.base,
            self.size,
            self.kind.describe(),
            self.device
        )
    }

    /// The data, locked (a poisoned lock still holds valid bytes).
    pub fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every allocation ever made.
#[derive(Debug, Default)]
pub struct Heap {
    allocs: BTreeMap<u64, Alloc>,
    next: Vec<u64>,
    used: Vec<u64>,
    /// Per device: its memory's size, and the physical ranges in use
    /// (start -> length).
    capacity: Vec<u64>,
    placed: Vec<BTreeMap<u64, u64>>,
}

/// Where an address falls.
pub enum Lookup<'a> {
    /// Inside a live allocation, at this offset.
    Live(&'a Alloc, u64),
    /// Inside an allocation that was freed.
    Freed(&'a Alloc),
    /// Past the end of the nearest allocation below it, by this many bytes.
    PastEnd(&'a Alloc, u64),
    /// Nowhere near any allocation.
    Nowhere,
}

impl Heap {
    /// The heap of devices with these memory sizes (bytes).
    pub fn new(capacity: Vec<u64>) -> Heap {
        let devices = capacity.len();
        Heap {
            allocs: BTreeMap::new(),
            next: (0..devices).map(device_base).collect(),
            used: vec![0; devices],
            capacity,
            placed: vec![BTreeMap::new(); devices],
        }
    }

    /// The lowest physical offset of device `d` with `span` free bytes.
    fn place(&mut self, d: usize, span: u64) -> Option<u64> {
        let cap = *self.capacity.get(d)?;
        let placed = self.placed.get_mut(d)?;
        let mut at = 0u64;
        for (start, len) in placed.iter() {
            if start - at >= span {
                break;
            }
            at = start + len;
        }
        (at + span <= cap).then(|| {
            placed.insert(at, span);
            at
        })
    }

    /// Bytes in live allocations on device `d`.
    pub fn used(&self, d: usize) -> u64 {
        self.used.get(d).copied().unwrap_or(0)
    }

    /// A new allocation of `size` bytes (at least 1 byte of address space;
    /// a 0-byte allocation is legal and has no bytes to touch).
    pub fn alloc(&mut self, device: usize, ctx: u64, size: u64, kind: Kind) -> Alloc {
        let base = self.next[device];
        let span = size.max(1).div_ceil(ALIGN) * ALIGN;
        // A guard gap of one alignment unit between allocations, so that one
        // byte past the end is never the start of the next allocation.
        self.next[device] = base + span + ALIGN;
        self.used[device] += size;
        let phys = self.place(device, span);
        let a = Alloc {
            base,
            size,
            device,
            ctx,
            kind,
            data: Arc::new(Mutex::new(Data::new(size as usize, device, phys))),
            freed_by: None,
        };
        self.allocs.insert(base, a.clone());
        a
    }

    /// Where `addr` falls.
    pub fn lookup(&self, addr: u64) -> Lookup<'_> {
        match self.allocs.range(..=addr).next_back() {
            Some((_, a)) if a.freed_by.is_some() && addr < a.end().max(a.base + 1) => {
                Lookup::Freed(a)
            }
            Some((_, a)) if addr < a.end() => Lookup::Live(a, addr - a.base),
            Some((_, a)) if addr - a.end() < 1 << 20 => Lookup::PastEnd(a, addr - a.end()),
            _ => Lookup::Nowhere,
        }
    }

    /// The live allocation that starts exactly at `base`.
    pub fn get(&self, base: u64) -> Option<&Alloc> {
        self.allocs.get(&base).filter(|a| a.freed_by.is_none())
    }

    /// Frees the allocation at `base`: `Err` names why it cannot be freed
    /// (not the start of an allocation, or freed already).
    pub fn free(&mut self, base: u64, by: &'static str) -> Result<Alloc, String> {
        match self.allocs.get_mut(&base) {
            Some(a) if a.freed_by.is_some() => Err(format!(
                "double free: {} was already freed by {}",
                a.describe(),
                a.freed_by.unwrap_or("?")
            )),
            Some(a) => {
                a.freed_by = Some(by);
                {
                    let mut d = a.lock();
                    d.freed = true;
                    d.bytes = Vec::new();
                    d.written = Vec::new();
                    if let Some(p) = d.phys.take() {
                        if let Some(placed) = self.placed.get_mut(a.device) {
                            placed.remove(&p);
                        }
                    }
                }
                self.used[a.device] = self.used[a.device].saturating_sub(a.size);
                Ok(a.clone())
            }
            None => Err(match self.lookup(base) {
                Lookup::Live(a, off) => format!(
                    "{base:#x} is {off} bytes into {}, not its start",
                    a.describe()
                ),
                _ => format!("{base:#x} is not the start of any allocation"),
            }),
        }
    }

    /// Every live allocation, for a launch's [`Snapshot`].
    pub fn live(&self) -> impl Iterator<Item = &Alloc> {
        self.allocs.values().filter(|a| a.freed_by.is_none())
    }

    /// The live allocations made in context `ctx`.
    pub fn of_context(&self, ctx: u64) -> Vec<u64> {
        self.live()
            .filter(|a| a.ctx == ctx)
            .map(|a| a.base)
            .collect()
    }

    /// `addr .. addr+len` as one live allocation and an offset in it, or why
    /// not.
    pub fn range(&self, addr: u64, len: u64) -> Result<(&Alloc, u64), String> {
        match self.lookup(addr) {
            Lookup::Live(a, off) => {
                if off + len <= a.size {
                    Ok((a, off))
                } else {
                    Err(format!(
                        "{len} bytes at {addr:#x} run {} bytes past the end of {}",
                        off + len - a.size,
                        a.describe()
                    ))
                }
            }
            Lookup::Freed(a) => Err(format!(
                "{addr:#x} is in {}, freed by {} (use after free)",
                a.describe(),
                a.freed_by.unwrap_or("?")
            )),
            Lookup::PastEnd(a, by) => Err(format!(
                "{addr:#x} is {by} bytes past the end of {}",
                a.describe()
            )),
            Lookup::Nowhere => Err(format!("{addr:#x} is not in any allocation")),
        }
    }
}

/// The allocations one launch may touch, sorted by address.
pub struct Snapshot {
    /// (base, end, allocation, whether this device may access it, why not).
    entries: Vec<(u64, u64, Alloc, Option<String>)>,
    last: usize,
}

impl Snapshot {
    /// `allowed(a)`: `None` when the launching device may touch `a`, or
    /// why it may not.
    pub fn new(heap: &Heap, allowed: impl Fn(&Alloc) -> Option<String>) -> Snapshot {
        let entries = heap
            .live()
            .map(|a| (a.base, a.end(), a.clone(), allowed(a)))
            .collect();
        Snapshot { entries, last: 0 }
    }

    /// The entry holding `[addr, addr+len)`.
    pub fn find(&mut self, addr: u64, len: u64) -> Option<(&Alloc, u64, Option<&str>)> {
        let hit = |e: &(u64, u64, Alloc, Option<String>)| addr >= e.0 && addr + len <= e.1;
        let i = if self.entries.get(self.last).is_some_and(hit) {
            self.last
        } else {
            let i = self
                .entries
                .partition_point(|e| e.0 <= addr)
                .checked_sub(1)?;
            if !hit(&self.entries[i]) {
                return None;
            }
            self.last = i;
            i
        };
        let e = &self.entries[i];
        Some((&e.2, addr - e.0, e.3.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_never_reused_and_frees_are_checked() {
        let mut h = Heap::new(vec![1 << 20; 2]);
        let a = h.alloc(0, 1, 100, Kind::Plain);
        assert_eq!(a.base, device_base(0));
        let b = h.alloc(0, 1, 8, Kind::Pool);
        assert!(b.base >= a.base + 256 + ALIGN);
        assert!(matches!(h.lookup(a.base + 99), Lookup::Live(_, 99)));
        assert!(matches!(h.lookup(a.base + 100), Lookup::PastEnd(_, 0)));
        h.free(a.base, "cuMemFree_v2").unwrap();
        assert!(matches!(h.lookup(a.base + 5), Lookup::Freed(_)));
        let e = h.free(a.base, "cuMemFree_v2").unwrap_err();
        assert!(e.starts_with("double free"), "{e}");
        let e = h.free(b.base + 4, "cuMemFree_v2").unwrap_err();
        assert!(e.contains("not its start"), "{e}");
        let c = h.alloc(0, 1, 100, Kind::Plain);
        assert!(c.base > b.base);
        assert!(h
            .range(c.base + 90, 16)
            .unwrap_err()
            .contains("6 bytes past the end"));
    }

    #[test]
    fn physical_memory_is_reused_first_fit() {
        let mut h = Heap::new(vec![8192; 1]);
        let phys = |a: &Alloc| a.lock().phys;
        let a = h.alloc(0, 1, 1000, Kind::Plain);
        let b = h.alloc(0, 1, 3000, Kind::Plain);
        assert_eq!(phys(&a), Some(0));
        assert_eq!(phys(&b), Some(1024));
        h.free(a.base, "cuMemFree_v2").unwrap();
        // A new allocation gets a new address but the freed physical bytes.
        let c = h.alloc(0, 1, 512, Kind::Plain);
        assert!(c.base > b.base);
        assert_eq!(phys(&c), Some(0));
        // No room left for 5000 bytes in one piece: placed nowhere.
        let d = h.alloc(0, 1, 5000, Kind::Plain);
        assert_eq!(phys(&d), None);
    }

    #[test]
    fn written_bits_cover_partial_words() {
        let mut d = Data::new(200, 0, None);
        assert!(!d.all_written(0, 1));
        d.mark(3, 130);
        assert!(d.all_written(3, 130));
        assert!(!d.all_written(2, 2));
        assert!(!d.all_written(130, 4));
        d.mark(0, 200);
        assert!(d.all_written(0, 200));
    }
}

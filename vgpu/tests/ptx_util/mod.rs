//! Test helpers: a Vec-backed device memory, and launching a kernel of a
//! PTX text with typed arguments.
#![allow(dead_code)]

use std::collections::BTreeMap;

use vgpu::ptx::{launch, Fault, Init, LaunchConfig, LaunchStats, Memory, Module};

struct Alloc {
    data: Vec<u8>,
    written: Vec<bool>,
}

/// Allocations at 0x7f00_0000_0000 upwards, 64 KiB apart at least.
#[derive(Default)]
pub struct VecMem {
    allocs: BTreeMap<u64, Alloc>,
    next: u64,
}

impl VecMem {
    pub fn new() -> VecMem {
        VecMem {
            allocs: BTreeMap::new(),
            next: 0x7f00_0000_0000,
        }
    }

    pub fn alloc(&mut self, size: usize) -> u64 {
        let base = self.next;
        self.next += (size as u64).div_ceil(0x10000).max(1) * 0x10000 + 0x10000;
        self.allocs.insert(
            base,
            Alloc {
                data: vec![0; size],
                written: vec![false; size],
            },
        );
        base
    }

    pub fn upload(&mut self, bytes: &[u8]) -> u64 {
        let a = self.alloc(bytes.len());
        self.write(a, bytes).expect("upload");
        a
    }

    pub fn upload_u64(&mut self, v: &[u64]) -> u64 {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.upload(&b)
    }

    pub fn upload_f64(&mut self, v: &[f64]) -> u64 {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.upload(&b)
    }

    pub fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let a = &self.allocs[&addr];
        a.data[..len].to_vec()
    }

    pub fn u64s(&self, addr: u64, n: usize) -> Vec<u64> {
        self.bytes(addr, n * 8)
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect()
    }

    pub fn u32s(&self, addr: u64, n: usize) -> Vec<u32> {
        self.bytes(addr, n * 4)
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect()
    }

    pub fn u16s(&self, addr: u64, n: usize) -> Vec<u16> {
        self.bytes(addr, n * 2)
            .chunks(2)
            .map(|c| u16::from_le_bytes(c.try_into().expect("2")))
            .collect()
    }

    pub fn f64s(&self, addr: u64, n: usize) -> Vec<f64> {
        self.u64s(addr, n).into_iter().map(f64::from_bits).collect()
    }

    pub fn f32s(&self, addr: u64, n: usize) -> Vec<f32> {
        self.u32s(addr, n).into_iter().map(f32::from_bits).collect()
    }

    fn find(&mut self, addr: u64, len: usize) -> Result<(&mut Alloc, usize), String> {
        let Some((&base, a)) = self.allocs.range_mut(..=addr).next_back() else {
            return Err(format!("{addr:#x} is below every allocation"));
        };
        let off = (addr - base) as usize;
        let size = a.data.len();
        if off + len > size {
            return Err(format!(
                "{} bytes past the end of allocation {base:#x} ({size} bytes)",
                off + len - size
            ));
        }
        Ok((a, off))
    }
}

impl Memory for VecMem {
    fn read(&mut self, addr: u64, out: &mut [u8]) -> Result<Init, String> {
        let (a, off) = self.find(addr, out.len())?;
        out.copy_from_slice(&a.data[off..off + out.len()]);
        Ok(if a.written[off..off + out.len()].iter().all(|w| *w) {
            Init::Written
        } else {
            Init::NeverWritten
        })
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), String> {
        let (a, off) = self.find(addr, data.len())?;
        a.data[off..off + data.len()].copy_from_slice(data);
        a.written[off..off + data.len()]
            .iter_mut()
            .for_each(|w| *w = true);
        Ok(())
    }
}

/// A kernel argument.
#[derive(Clone, Copy)]
pub enum Arg {
    U64(u64),
    U32(u32),
    U16(u16),
}

impl Arg {
    fn bytes(self) -> Vec<u8> {
        match self {
            Arg::U64(v) => v.to_le_bytes().to_vec(),
            Arg::U32(v) => v.to_le_bytes().to_vec(),
            Arg::U16(v) => v.to_le_bytes().to_vec(),
        }
    }
}

pub fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        dynamic_shared_bytes: 0,
    }
}

/// Launches `kernel`, allocating the module's globals first.
pub fn run(
    m: &Module,
    kernel: &str,
    c: LaunchConfig,
    args: &[Arg],
    mem: &mut VecMem,
) -> Result<LaunchStats, Fault> {
    let globals: Vec<u64> = m
        .globals()
        .iter()
        .map(|g| {
            let a = mem.alloc(g.size.max(1));
            if g.size > 0 {
                mem.write(a, &g.init).expect("global init");
            }
            a
        })
        .collect();
    let params: Vec<Vec<u8>> = args.iter().map(|a| a.bytes()).collect();
    launch(m, kernel, &c, &params, &globals, mem)
}

/// Parses a PTX text, panicking with the error.
pub fn module(text: &str) -> Module {
    Module::parse(text).unwrap_or_else(|e| panic!("parse: {e}"))
}

pub const GOLDEN: u64 = 0x9E3779B97F4A7C15;
pub const STREAM_MUL: u64 = 0xD1B54A32D192ED03;

pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

pub fn random_u64(seed: u64, stream: u64, index: u64) -> u64 {
    mix64(seed ^ stream.wrapping_mul(STREAM_MUL) ^ index.wrapping_mul(GOLDEN))
}

pub fn stream_value(seed: u64, i: u64) -> f64 {
    (random_u64(seed, 3, i) >> 56) as u32 as f64
}

pub fn digest_term(index: u64, bits: u64) -> u64 {
    mix64(bits ^ index.wrapping_mul(GOLDEN))
}

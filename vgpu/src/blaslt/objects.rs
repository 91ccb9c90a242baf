//! The objects cuBLASLt hands out: handles, matmul descriptors, matrix
//! layouts and preferences.
//!
//! Each is an opaque pointer value this library owns, tagged with its kind
//! in the low bits (as the driver's handles are, from another range), so a
//! layout passed where a descriptor is expected is caught; a destroyed
//! object stays known, so a use after destroy is reported as such.

use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::types::*;
use super::{refuse, R};

/// An object's kind, in its handle's low bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Handle = 1,
    MatmulDesc = 2,
    Layout = 3,
    Preference = 4,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Handle => "cuBLASLt handle",
            Kind::MatmulDesc => "matmul descriptor",
            Kind::Layout => "matrix layout",
            Kind::Preference => "matmul preference",
        }
    }
}

/// "LT" above the driver's range of handles.
const BASE: u64 = 0x4c54_0000_0000;

fn handle(kind: Kind, id: u64) -> u64 {
    BASE | (id << 4) | kind as u64
}

fn unhandle(kind: Kind, h: u64) -> Option<u64> {
    (h & !0xffff_ffff_ffff == 0 && h & 0xffff_0000_0000 == BASE && h & 0xf == kind as u64)
        .then_some((h & 0xffff_ffff) >> 4)
        .filter(|id| *id != 0)
}

/// A matmul descriptor's attributes (`cublasLtMatmulDescAttributes_t`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatmulDesc {
    pub compute: c_int,
    pub scale: c_int,
    pub pointer_mode: c_int,
    pub transa: c_int,
    pub transb: c_int,
    pub transc: c_int,
    pub epilogue: u32,
    /// Device pointers to the f32 scale factors of A and B (0: 1.0).
    pub a_scale: u64,
    pub b_scale: u64,
    pub c_scale: u64,
    pub d_scale: u64,
    pub amax_d: u64,
    pub fast_accum: i8,
}

/// A matrix layout (`cublasLtMatrixLayoutAttribute_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub ty: c_int,
    pub order: c_int,
    pub rows: u64,
    pub cols: u64,
    pub ld: i64,
    pub batch: c_int,
    pub batch_stride: i64,
}

/// A matmul preference (`cublasLtMatmulPreferenceAttributes_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preference {
    pub search_mode: u32,
    /// CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES; 0 by default, as documented.
    pub max_workspace: u64,
}

/// Every object ever made; `None` once destroyed.
#[derive(Default)]
pub struct Objects {
    next: u64,
    handles: HashMap<u64, Option<()>>,
    descs: HashMap<u64, Option<MatmulDesc>>,
    layouts: HashMap<u64, Option<Layout>>,
    prefs: HashMap<u64, Option<Preference>>,
}

/// The objects, locked.
pub fn objects() -> MutexGuard<'static, Objects> {
    static OBJECTS: OnceLock<Mutex<Objects>> = OnceLock::new();
    OBJECTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Looks `h` up in `table`: Ok(id) when it is a live object of `kind`.
fn find<T>(
    table: &HashMap<u64, Option<T>>,
    kind: Kind,
    h: u64,
    call: &str,
    what: &str,
    status: Status,
) -> R<u64> {
    let Some(id) = unhandle(kind, h) else {
        return refuse(
            status,
            if h == 0 {
                format!("{call}: {what} is NULL")
            } else {
                format!("{call}: {what} {h:#x} is not a {}", kind.what())
            },
        );
    };
    match table.get(&id) {
        Some(Some(_)) => Ok(id),
        Some(None) => refuse(
            status,
            format!(
                "{call}: {what} {h:#x} was destroyed ({} used after its destroy)",
                kind.what()
            ),
        ),
        None => refuse(status, format!("{call}: unknown {} {h:#x}", kind.what())),
    }
}

impl Objects {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub fn new_handle(&mut self) -> u64 {
        let id = self.id();
        self.handles.insert(id, Some(()));
        handle(Kind::Handle, id)
    }

    /// A live handle (CUBLAS_STATUS_NOT_INITIALIZED otherwise, as the
    /// documentation says of a handle that was not initialised).
    pub fn handle(&self, h: u64, call: &str) -> R<()> {
        find(
            &self.handles,
            Kind::Handle,
            h,
            call,
            "the handle",
            CUBLAS_STATUS_NOT_INITIALIZED,
        )
        .map(|_| ())
    }

    pub fn destroy_handle(&mut self, h: u64, call: &str) -> R<()> {
        let id = find(
            &self.handles,
            Kind::Handle,
            h,
            call,
            "the handle",
            CUBLAS_STATUS_NOT_INITIALIZED,
        )?;
        self.handles.insert(id, None);
        Ok(())
    }

    pub fn new_desc(&mut self, d: MatmulDesc) -> u64 {
        let id = self.id();
        self.descs.insert(id, Some(d));
        handle(Kind::MatmulDesc, id)
    }

    pub fn desc(&mut self, h: u64, call: &str) -> R<&mut MatmulDesc> {
        let id = find(
            &self.descs,
            Kind::MatmulDesc,
            h,
            call,
            "the matmul descriptor",
            CUBLAS_STATUS_INVALID_VALUE,
        )?;
        self.descs
            .get_mut(&id)
            .and_then(Option::as_mut)
            .ok_or(CUBLAS_STATUS_INTERNAL_ERROR)
    }

    pub fn destroy_desc(&mut self, h: u64, call: &str) -> R<()> {
        let id = find(
            &self.descs,
            Kind::MatmulDesc,
            h,
            call,
            "the matmul descriptor",
            CUBLAS_STATUS_INVALID_VALUE,
        )?;
        self.descs.insert(id, None);
        Ok(())
    }

    pub fn new_layout(&mut self, l: Layout) -> u64 {
        let id = self.id();
        self.layouts.insert(id, Some(l));
        handle(Kind::Layout, id)
    }

    /// Layout `h`; `what` names it in messages ("Adesc").
    pub fn layout(&mut self, h: u64, call: &str, what: &str) -> R<&mut Layout> {
        let id = find(
            &self.layouts,
            Kind::Layout,
            h,
            call,
            what,
            CUBLAS_STATUS_INVALID_VALUE,
        )?;
        self.layouts
            .get_mut(&id)
            .and_then(Option::as_mut)
            .ok_or(CUBLAS_STATUS_INTERNAL_ERROR)
    }

    pub fn destroy_layout(&mut self, h: u64, call: &str) -> R<()> {
        let id = find(
            &self.layouts,
            Kind::Layout,
            h,
            call,
            "the matrix layout",
            CUBLAS_STATUS_INVALID_VALUE,
        )?;
        self.layouts.insert(id, None);
        Ok(())
    }

    pub fn new_pref(&mut self) -> u64 {
        let id = self.id();
        self.prefs.insert(
            id,
            Some(Preference {
                search_mode: 0,
                max_workspace: 0,
            }),
        );
        handle(Kind::Preference, id)
    }

    pub fn pref(&mut self, h: u64, call: &str) -> R<&mut Preference> {
        let id = find(
            &self.prefs,
            Kind::Preference,
            h,
            call,
            "the preference",
            CUBLAS_STATUS_INVALID_VALUE,
        )?;
        self.prefs
            .get_mut(&id)
            .and_then(Option::as_mut)
            .ok_or(CUBLAS_STATUS_INTERNAL_ERROR)
    }

    pub fn destroy_pref(&mut self, h: u64, call: &str) -> R<()> {
        let id = find(
            &self.prefs,
            Kind::Preference,
            h,
            call,
            "the preference",
            CUBLAS_STATUS_INVALID_VALUE,
        )?;
        self.prefs.insert(id, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_carry_their_kind() {
        let h = handle(Kind::Layout, 5);
        assert_eq!(unhandle(Kind::Layout, h), Some(5));
        assert_eq!(unhandle(Kind::MatmulDesc, h), None);
        assert_eq!(unhandle(Kind::Layout, 0), None);
        // A driver handle (0x5647_5000_0000 | ...) is none of ours.
        assert_eq!(unhandle(Kind::Handle, 0x5647_5000_0011), None);
    }
}

//! Who each CUDA device is: its ordinal, PCI bus id and UUID.
//!
//! kiln's device index ([`crate::device::DeviceInfo::index`]) is the CUDA
//! ordinal *as this process sees it*: after `CUDA_VISIBLE_DEVICES` has
//! hidden and reordered devices, and in the order `CUDA_DEVICE_ORDER` picks
//! (the driver's default, `FASTEST_FIRST`, need not be the PCI order that
//! nvidia-smi numbers by; set `CUDA_DEVICE_ORDER=PCI_BUS_ID` to make the two
//! agree). An ordinal alone is therefore ambiguous across processes, so every
//! result also carries the PCI bus id and the UUID, both read from the driver
//! for that very ordinal: with `CUDA_VISIBLE_DEVICES=5,2` device 0 is the
//! board at physical slot 5 and says so. The [`IdentityTable`] holds the
//! three together and answers lookups by any of them (what NVML, which
//! numbers devices its own way, joins on).
//!
//! Everything here is pure: it is fed what the driver reported and unit
//! tested on fake nodes.

/// The PCI device id of vgpu's virtual model (vgpu/README.md): not one
/// NVIDIA has assigned to a product.
pub const VIRTUAL_PCI_DEVICE_ID: u16 = 0x7e01;

/// How the names of vgpu's virtual models begin (`vgpu Virtual Hopper`).
pub const VIRTUAL_NAME_PREFIX: &str = "vgpu ";

/// Whether a CUDA device is a virtual GPU (kiln's `vgpu/`, a PTX
/// interpreter behind the driver API) rather than hardware: by the PCI
/// device id NVML reports, or, without NVML, by the name the driver gives.
/// Its figures come from a timing model, so they are marked simulated and
/// its workloads are sized for an interpreter.
pub fn is_virtual(name: &str, pci_device_id: Option<u16>) -> bool {
    pci_device_id == Some(VIRTUAL_PCI_DEVICE_ID) || name.starts_with(VIRTUAL_NAME_PREFIX)
}

/// The CUDA ordinals that are MIG instances rather than whole GPUs, and one
/// line naming each GPU in MIG mode, from `(ordinal, name, bus id)` as the
/// driver reported them.
///
/// With MIG mode on, CUDA enumerates a GPU's instances as devices of their
/// own, named `<model> MIG <profile>` and all on the GPU's PCI bus id, so
/// they would make the identity table ambiguous. kiln tests whole GPUs:
/// such a GPU is one device that cannot be tested (`mig_enabled`, verdict
/// untested), the rest are tested, and the line says so.
pub fn mig_instances(devices: &[(usize, String, String)]) -> (Vec<usize>, Option<String>) {
    let mut buses: Vec<&str> = Vec::new();
    for (_, name, bus) in devices {
        let shared = devices.iter().filter(|(_, _, b)| b == bus).count() > 1;
        if (shared || name.contains(" MIG ")) && !buses.contains(&bus.as_str()) {
            buses.push(bus);
        }
    }
    let mut ordinals = Vec::new();
    let mut parts = Vec::new();
    for bus in &buses {
        let here: Vec<&(usize, String, String)> =
            devices.iter().filter(|(_, _, b)| b == bus).collect();
        ordinals.extend(here.iter().map(|d| d.0));
        let list: Vec<String> = here.iter().map(|d| d.0.to_string()).collect();
        parts.push(format!(
            "the GPU at {bus} is in MIG mode (CUDA devices {}: {})",
            list.join(", "),
            here[0].1
        ));
    }
    let note = (!parts.is_empty()).then(|| {
        format!(
            "{}; kiln tests whole GPUs, so {} not tested (mig_enabled): disable MIG (nvidia-smi -i <gpu> -mig 0) to test {}",
            parts.join("; "),
            if parts.len() == 1 { "it is" } else { "they are" },
            if parts.len() == 1 { "it" } else { "them" }
        )
    });
    (ordinals, note)
}

/// One device as the driver reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// CUDA ordinal in this process.
    pub ordinal: usize,
    /// PCI bus id, as [`format_bus_id`] writes it.
    pub bus_id: String,
    /// UUID, as [`format_uuid`] writes it.
    pub uuid: String,
}

/// Formats the 16 bytes of `cuDeviceGetUuid` the way nvidia-smi prints a GPU
/// UUID: `GPU-` then 8-4-4-4-12 lowercase hex digits, bytes in order.
pub fn format_uuid(bytes: [u8; 16]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        hex[0..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..16].concat()
    )
}

/// Formats a PCI location as `dddddddd:bb:dd.0`: an 8-digit domain as
/// nvidia-smi prints it, in lowercase like lspci and the sim backend (CUDA
/// exposes no function number; a GPU is function 0).
pub fn format_bus_id(domain: u32, bus: u32, device: u32) -> String {
    format!("{domain:08x}:{bus:02x}:{device:02x}.0")
}

/// Parses a PCI bus id written by nvidia-smi (`00000000:5D:00.0`), lspci or
/// sysfs (`0000:5d:00.0`) or without a domain (`5d:00.0`, domain 0), in any
/// case, into [`format_bus_id`]'s form. None when it is not one.
pub fn normalize_bus_id(text: &str) -> Option<String> {
    let text = text.trim();
    let (rest, function) = text.rsplit_once('.')?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (domain, bus, device) = match parts.as_slice() {
        [d, b, s] => (*d, *b, *s),
        [b, s] => ("0", *b, *s),
        _ => return None,
    };
    let hex = |s: &str, max_digits: usize| {
        if s.is_empty() || s.len() > max_digits {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    };
    let (domain, bus, device) = (hex(domain, 8)?, hex(bus, 2)?, hex(device, 2)?);
    if function.len() != 1 || !function.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{domain:08x}:{bus:02x}:{device:02x}.{}",
        function.to_ascii_lowercase()
    ))
}

/// Canonical form of a UUID for comparison: lowercase, with the `GPU-`
/// prefix whether or not it was given.
fn normalize_uuid(text: &str) -> String {
    let t = text.trim().to_ascii_lowercase();
    match t.strip_prefix("gpu-") {
        Some(rest) => format!("GPU-{rest}"),
        None => format!("GPU-{t}"),
    }
}

/// The devices of this process, one row per ordinal, each with its bus id
/// and UUID. Built from what the driver reports for each ordinal, so it is
/// right under any `CUDA_VISIBLE_DEVICES` subset or order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityTable {
    rows: Vec<Identity>,
}

impl IdentityTable {
    /// A table of `rows`, sorted by ordinal. Fails when an ordinal, a bus id
    /// or a UUID appears twice (two ordinals on one board would make every
    /// per-device verdict ambiguous).
    pub fn new(mut rows: Vec<Identity>) -> Result<IdentityTable, String> {
        rows.sort_by_key(|r| r.ordinal);
        for (k, r) in rows.iter().enumerate() {
            for s in &rows[..k] {
                if s.ordinal == r.ordinal {
                    return Err(format!("CUDA ordinal {} reported twice", r.ordinal));
                }
                if normalize_bus_id(&s.bus_id) == normalize_bus_id(&r.bus_id) {
                    return Err(format!(
                        "CUDA ordinals {} and {} report the same PCI bus id {}",
                        s.ordinal, r.ordinal, r.bus_id
                    ));
                }
                if normalize_uuid(&s.uuid) == normalize_uuid(&r.uuid) {
                    return Err(format!(
                        "CUDA ordinals {} and {} report the same UUID {}",
                        s.ordinal, r.ordinal, r.uuid
                    ));
                }
            }
        }
        Ok(IdentityTable { rows })
    }

    /// Every device, by ordinal.
    pub fn rows(&self) -> &[Identity] {
        &self.rows
    }

    /// The device with CUDA ordinal `ordinal`.
    pub fn by_ordinal(&self, ordinal: usize) -> Option<&Identity> {
        self.rows.iter().find(|r| r.ordinal == ordinal)
    }

    /// The device at PCI bus id `bus_id`, in any of the forms
    /// [`normalize_bus_id`] accepts.
    pub fn by_bus_id(&self, bus_id: &str) -> Option<&Identity> {
        let want = normalize_bus_id(bus_id)?;
        self.rows
            .iter()
            .find(|r| normalize_bus_id(&r.bus_id).as_deref() == Some(want.as_str()))
    }

    /// The device with UUID `uuid`, with or without the `GPU-` prefix, in any
    /// case.
    pub fn by_uuid(&self, uuid: &str) -> Option<&Identity> {
        let want = normalize_uuid(uuid);
        self.rows.iter().find(|r| normalize_uuid(&r.uuid) == want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mig_instances_are_left_out_and_named() {
        let d = |o: usize, name: &str, bus: &str| (o, name.to_string(), bus.to_string());
        let devs = [
            d(0, "NVIDIA H100 80GB HBM3", "00000000:19:00.0"),
            d(1, "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "00000000:3b:00.0"),
            d(2, "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "00000000:3b:00.0"),
            d(3, "NVIDIA H100 80GB HBM3", "00000000:4c:00.0"),
        ];
        let (mig, note) = mig_instances(&devs);
        assert_eq!(mig, [1, 2]);
        assert_eq!(
            note.unwrap(),
            "the GPU at 00000000:3b:00.0 is in MIG mode (CUDA devices 1, 2: NVIDIA H100 80GB HBM3 MIG 3g.40gb); \
             kiln tests whole GPUs, so it is not tested (mig_enabled): disable MIG (nvidia-smi -i <gpu> -mig 0) to test it"
        );
        // One instance alone is still known by its name.
        let (mig, _) = mig_instances(&[d(
            0,
            "NVIDIA A100-SXM4-80GB MIG 7g.80gb",
            "00000000:07:00.0",
        )]);
        assert_eq!(mig, [0]);
        let (mig, note) = mig_instances(&devs[..1]);
        assert!(mig.is_empty() && note.is_none());
    }

    #[test]
    fn the_virtual_gpu_is_known_by_its_pci_id_or_its_name() {
        assert!(is_virtual("vgpu Virtual Hopper", None));
        assert!(is_virtual("Anything", Some(0x7e01)));
        assert!(!is_virtual("NVIDIA H100 80GB HBM3", Some(0x2330)));
        assert!(!is_virtual("NVIDIA H100 80GB HBM3", None));
        // A real GPU whose name merely contains the word is not virtual.
        assert!(!is_virtual("NVIDIA vgpu H100", Some(0x2330)));
    }

    /// A physical board of a fake HGX node: (PCI bus, uuid bytes).
    fn node() -> Vec<(String, String)> {
        [0x18u32, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb]
            .iter()
            .enumerate()
            .map(|(k, &bus)| {
                let mut b = [0u8; 16];
                for (i, x) in b.iter_mut().enumerate() {
                    *x = (k as u8).wrapping_mul(37).wrapping_add(i as u8 * 11);
                }
                (format_bus_id(0, bus, 0), format_uuid(b))
            })
            .collect()
    }

    /// What the driver reports under `CUDA_VISIBLE_DEVICES=visible`: the
    /// listed physical devices (indices or UUID prefixes), renumbered from 0
    /// in the order given, stopping at the first entry that names none.
    fn driver_view(node: &[(String, String)], visible: &str) -> Vec<Identity> {
        let mut out = Vec::new();
        for entry in visible.split(',') {
            let e = entry.trim();
            let found = match e.parse::<usize>() {
                Ok(i) => node.get(i),
                Err(_) => node.iter().find(|(_, u)| u.starts_with(e)),
            };
            let Some((bus, uuid)) = found else { break };
            out.push(Identity {
                ordinal: out.len(),
                bus_id: bus.clone(),
                uuid: uuid.clone(),
            });
        }
        out
    }

    #[test]
    fn uuid_is_formatted_like_nvidia_smi() {
        let b = [
            0x4c, 0x0a, 0x2f, 0x41, 0x9e, 0x58, 0x1d, 0xb2, 0x07, 0x5e, 0xe1, 0x3a, 0xf0, 0x99,
            0x00, 0xff,
        ];
        assert_eq!(format_uuid(b), "GPU-4c0a2f41-9e58-1db2-075e-e13af09900ff");
        assert_eq!(
            format_uuid([0; 16]),
            "GPU-00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn bus_id_has_an_eight_digit_domain() {
        assert_eq!(format_bus_id(0, 0x18, 0), "00000000:18:00.0");
        assert_eq!(format_bus_id(1, 0xdb, 0x1f), "00000001:db:1f.0");
    }

    #[test]
    fn bus_ids_normalize_from_every_tool() {
        let want = Some("00000000:5d:00.0".to_string());
        assert_eq!(normalize_bus_id("00000000:5D:00.0"), want); // nvidia-smi
        assert_eq!(normalize_bus_id("0000:5d:00.0"), want); // lspci -D, sysfs
        assert_eq!(normalize_bus_id("5d:00.0"), want); // lspci
        assert_eq!(normalize_bus_id(" 00000000:5d:00.0 "), want);
        for bad in [
            "",
            "5d",
            "5d:00",
            "zz:00.0",
            "0:5d:00.x",
            "000000000:5d:00.0",
        ] {
            assert_eq!(normalize_bus_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn all_devices_map_ordinal_bus_and_uuid_both_ways() {
        let n = node();
        let t = IdentityTable::new(driver_view(&n, "0,1,2,3,4,5,6,7")).unwrap();
        for (k, (bus, uuid)) in n.iter().enumerate() {
            let r = t.by_ordinal(k).unwrap();
            assert_eq!((&r.bus_id, &r.uuid), (bus, uuid));
            assert_eq!(t.by_bus_id(bus).unwrap().ordinal, k);
            assert_eq!(t.by_uuid(uuid).unwrap().ordinal, k);
        }
    }

    #[test]
    fn a_reordered_subset_keeps_each_board_its_own_identity() {
        let n = node();
        let t = IdentityTable::new(driver_view(&n, "5,2")).unwrap();
        assert_eq!(t.rows().len(), 2);
        // Ordinal 0 is the physical board 5, ordinal 1 the board 2.
        assert_eq!(t.by_ordinal(0).unwrap().bus_id, "00000000:ab:00.0");
        assert_eq!(t.by_ordinal(1).unwrap().bus_id, "00000000:3a:00.0");
        assert_eq!(t.by_uuid(&n[5].1).unwrap().ordinal, 0);
        assert_eq!(t.by_bus_id("0000:3A:00.0").unwrap().ordinal, 1);
        // Boards that are hidden are not found, by any key.
        assert!(t.by_bus_id(&n[0].0).is_none());
        assert!(t.by_uuid(&n[0].1).is_none());
        assert!(t.by_ordinal(2).is_none());
    }

    #[test]
    fn uuid_entries_and_invalid_entries_behave_like_the_driver() {
        let n = node();
        let prefix = &n[7].1[..12]; // "GPU-xxxxxxxx"
        let t = IdentityTable::new(driver_view(&n, &format!("{prefix},3,99,1"))).unwrap();
        // The driver stops at the first invalid entry (99): device 1 is hidden.
        assert_eq!(t.rows().len(), 2);
        assert_eq!(t.by_ordinal(0).unwrap().uuid, n[7].1);
        assert_eq!(t.by_ordinal(1).unwrap().uuid, n[3].1);
        let bare = n[3].1.trim_start_matches("GPU-").to_ascii_uppercase();
        assert_eq!(t.by_uuid(&bare).unwrap().ordinal, 1);
    }

    #[test]
    fn duplicates_are_rejected_and_rows_sorted() {
        let n = node();
        let mut rows = driver_view(&n, "0,1,2");
        rows.reverse();
        let t = IdentityTable::new(rows.clone()).unwrap();
        let ords: Vec<usize> = t.rows().iter().map(|r| r.ordinal).collect();
        assert_eq!(ords, [0, 1, 2]);
        let mut dup_bus = rows.clone();
        dup_bus[0].bus_id = "0000:18:00.0".into(); // the same board as ordinal 0
        assert!(IdentityTable::new(dup_bus)
            .unwrap_err()
            .contains("same PCI bus id"));
        let mut dup_uuid = rows.clone();
        dup_uuid[0].uuid = rows[1].uuid.to_ascii_uppercase();
        assert!(IdentityTable::new(dup_uuid)
            .unwrap_err()
            .contains("same UUID"));
        let mut dup_ord = rows;
        dup_ord[0].ordinal = 1;
        assert!(IdentityTable::new(dup_ord)
            .unwrap_err()
            .contains("reported twice"));
    }
}

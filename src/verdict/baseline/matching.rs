//! Matching a device to a baseline: by PCI device id first, else by the
//! longest match name its name contains.

use super::Baseline;

impl Baseline {
    /// True when a device of this name (and PCI device id, when it reports
    /// one) is of this model: its id is one of [`Baseline::pci_device_ids`],
    /// or its name contains one of [`Baseline::match_names`]
    /// (case-insensitive).
    pub fn matches(&self, device_name: &str, pci_device_id: Option<u16>) -> bool {
        pci_device_id.is_some_and(|id| self.pci_device_ids.contains(&id))
            || self.name_match_len(device_name).is_some()
    }

    /// Length of the longest match name contained in `device_name`, if any.
    fn name_match_len(&self, device_name: &str) -> Option<usize> {
        let name = device_name.to_lowercase();
        self.match_names
            .iter()
            .map(|m| m.to_lowercase())
            .filter(|m| !m.is_empty() && name.contains(m.as_str()))
            .map(|m| m.len())
            .max()
    }
}

/// The baseline for a device among `baselines`, if any.
///
/// A device that reports its PCI device id gets the first baseline listing
/// that id. Otherwise (or when none lists it) the device is matched by name:
/// the baseline with the longest match name contained in the device name
/// wins, so that "Simulated H100 80GB HBM3" picks the simulated model's
/// baseline rather than the H100's; equal lengths go to the earlier one.
pub fn find<'a>(
    baselines: &'a [Baseline],
    device_name: &str,
    pci_device_id: Option<u16>,
) -> Option<&'a Baseline> {
    if let Some(id) = pci_device_id {
        if let Some(b) = baselines.iter().find(|b| b.pci_device_ids.contains(&id)) {
            return Some(b);
        }
    }
    let mut best: Option<(usize, &Baseline)> = None;
    for b in baselines {
        if let Some(len) = b.name_match_len(device_name) {
            if best.is_none_or(|(l, _)| len > l) {
                best = Some((len, b));
            }
        }
    }
    best.map(|(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::baseline::parse;

    #[test]
    fn matching_is_case_insensitive_and_prefers_ids() {
        let b = parse(
            "f.toml",
            "[model]\nname = \"A\"\nmatch = [\"H100 80GB\"]\npci_device_ids = [\"0x2330\"]\n",
        )
        .expect("parses");
        assert!(b.matches("NVIDIA h100 80gb HBM3", None));
        assert!(b.matches("other", Some(0x2330)));
        assert!(!b.matches("other", Some(0x2331)));
        assert!(!b.matches("NVIDIA H100 PCIe", None));
    }

    #[test]
    fn the_longest_name_match_wins_and_ties_go_to_the_first() {
        let b = |name: &str, m: &str| {
            parse(
                name,
                &format!("[model]\nname = \"{name}\"\nmatch = [\"{m}\"]\n"),
            )
            .expect("parses")
        };
        let list = [
            b("short", "H100"),
            b("long", "Sim H100"),
            b("tie", "im H100 "),
        ];
        assert_eq!(
            find(&list, "Sim H100 X", None).map(|b| b.model.as_str()),
            Some("long")
        );
        let list = [b("first", "GPU A"), b("second", "PU A1")];
        assert_eq!(
            find(&list, "GPU A1", None).map(|b| b.model.as_str()),
            Some("first")
        );
        let list = [b("second", "PU A1"), b("first", "GPU A")];
        assert_eq!(
            find(&list, "GPU A1", None).map(|b| b.model.as_str()),
            Some("second")
        );
        assert_eq!(find(&list, "GPU B", None), None);
    }
}

//! The NVLink fabric rules: the GPU's registration with the NVSwitch fabric
//! and the fabric's health (`fabric_unhealthy`, or `fabric_manager_down`
//! when the fabric manager has not registered it, a node state), and where
//! its NVLinks end (`nvlink_wiring`).
//!
//! **Fabric.** A GPU whose fabric info NVML answers must be registered
//! (state completed), with a successful probe and a clear health mask
//! (no degraded bandwidth, no route recovery or unhealthy route, no access
//! timeout recovery, no incorrect configuration: each field decoded per
//! nvml.h, [`crate::telemetry::fabric`]). A cluster UUID and a clique id
//! are required only where the baseline says the model is multi-node
//! NVLink (`multinode_nvlink = true`, e.g. GB200 NVL72): a single-node HGX
//! H100/H200 board reports zeros there and is healthy.
//!
//! **Wiring.** On a node whose GPUs reach NVSwitches, every active link of
//! every GPU must end on an NVSwitch, and no GPU may reach a switch over
//! more links than its same-model peers do (the upper median of their
//! counts, at least 3 GPUs): a link seated on the wrong switch, or one
//! that reaches a switch its peers do not, is mis-wiring. Fewer links is
//! not (that is `nvlink_down`'s). On a node without NVSwitches, every
//! link must end on another GPU of this node. Only active links count.
//!
//! Layer: part of `verdict`; pure, no I/O.

use std::collections::BTreeMap;

use super::baseline::Baseline;
use super::Check;
use crate::results::{DeviceRun, RunResults};
use crate::telemetry::fabric::{FabricFinding, LinkEnd, REMOTE_GPU, REMOTE_NVSWITCH};

/// Whether the device's baseline says its model is multi-node NVLink.
fn multinode(base: Option<&Baseline>) -> bool {
    base.is_some_and(|b| b.limits.multinode_nvlink)
}

/// Appends the fabric checks of `dev` (none when it reported no fabric).
pub fn checks(dev: &DeviceRun, base: Option<&Baseline>, checks: &mut Vec<Check>) {
    let readings: Vec<(f64, FabricFinding, String)> = dev
        .telemetry
        .iter()
        .filter_map(|s| {
            let f = s.fabric.as_ref()?;
            Some((s.t_s, f.finding(multinode(base)), f.summary()))
        })
        .collect();
    let Some((_, _, last)) = readings.last() else {
        return;
    };
    let n = readings.len();
    let down: Vec<&(f64, FabricFinding, String)> = readings
        .iter()
        .filter(|r| matches!(r.1, FabricFinding::ManagerDown(_)))
        .collect();
    if let Some((t, FabricFinding::ManagerDown(why), _)) = down.first() {
        checks.push(
            Check::new(
                "node",
                "fabric_state",
                down.len() as f64,
                0.0,
                false,
                "fabric_manager_down",
                format!(
                    "could not test (fabric_manager_down, a node problem, not the GPU's): {why}, in {} of {n} samples, first at {}",
                    down.len(),
                    super::secs(*t)
                ),
            )
            .at(Some(*t)),
        );
    }
    let bad: Vec<&(f64, FabricFinding, String)> = readings
        .iter()
        .filter(|r| matches!(r.1, FabricFinding::Unhealthy(_)))
        .collect();
    if let Some((t, FabricFinding::Unhealthy(why), _)) = bad.first() {
        checks.push(
            Check::new(
                "telemetry",
                "fabric_health",
                bad.len() as f64,
                0.0,
                false,
                "fabric_unhealthy",
                format!(
                    "{why}, in {} of {n} samples, first at {}",
                    bad.len(),
                    super::secs(*t)
                ),
            )
            .at(Some(*t)),
        );
    } else if down.is_empty() {
        checks.push(Check::new(
            "telemetry",
            "fabric_health",
            0.0,
            0.0,
            true,
            "",
            format!("registered and healthy in {n} samples ({last})"),
        ));
    }
}

/// One GPU's NVLinks, for the wiring rule.
#[derive(Debug, Clone)]
pub struct Wired<'a> {
    /// kiln's device index.
    pub index: usize,
    /// Its model (peers are compared within a model).
    pub model: &'a str,
    /// Its own PCI bus id, NVML form.
    pub bus: Option<String>,
    /// Where each active link ends.
    pub ends: &'a [LinkEnd],
}

impl<'a> Wired<'a> {
    /// The links of the device `info` that end at `ends`.
    pub fn of(info: &'a crate::device::DeviceInfo, ends: &'a [LinkEnd]) -> Self {
        Wired {
            index: info.index,
            model: &info.name,
            bus: info
                .pci_bus_id
                .as_deref()
                .map(crate::telemetry::nvml::normalize_bus_id),
            ends,
        }
    }
}

/// A GPU's links per NVSwitch: switch bus id -> the links that end there.
fn per_switch(ends: &[LinkEnd]) -> BTreeMap<&str, Vec<u32>> {
    let mut m: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for e in ends.iter().filter(|e| e.remote == REMOTE_NVSWITCH) {
        m.entry(e.remote_bus.as_str()).or_default().push(e.link);
    }
    m
}

fn links(ls: &[u32]) -> String {
    let v: Vec<String> = ls.iter().map(u32::to_string).collect();
    v.join(", ")
}

/// The GPUs that are mis-wired, each with what is wrong (which link, where
/// it goes, what was expected). GPUs not listed passed.
pub fn miswired(devs: &[Wired<'_>]) -> Vec<(usize, String)> {
    let switched = devs
        .iter()
        .any(|d| d.ends.iter().any(|e| e.remote == REMOTE_NVSWITCH));
    let mut problems: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for d in devs {
        for e in d.ends {
            let what = if switched {
                (e.remote != REMOTE_NVSWITCH).then(|| {
                    format!(
                        "link {} ends on {} ({}), not on an NVSwitch as every link of this NVSwitch node must",
                        e.link,
                        e.remote_bus,
                        if e.remote == REMOTE_GPU { "a GPU" } else { "not an NVSwitch" }
                    )
                })
            } else if d.bus.as_deref() == Some(e.remote_bus.as_str()) {
                Some(format!(
                    "link {} loops back to the GPU itself ({})",
                    e.link, e.remote_bus
                ))
            } else {
                (e.remote != REMOTE_GPU).then(|| {
                    format!(
                        "link {} ends on {}, which is not a GPU of this node (a node without NVSwitches joins GPUs to GPUs)",
                        e.link, e.remote_bus
                    )
                })
            };
            if let Some(w) = what {
                problems.entry(d.index).or_default().push(w);
            }
        }
    }
    if switched {
        let mut models: BTreeMap<&str, Vec<&Wired<'_>>> = BTreeMap::new();
        for d in devs {
            models.entry(d.model).or_default().push(d);
        }
        for group in models
            .values()
            .filter(|g| g.len() >= super::peers::MIN_PEERS)
        {
            let maps: Vec<BTreeMap<&str, Vec<u32>>> =
                group.iter().map(|d| per_switch(d.ends)).collect();
            let mut switches: Vec<&str> = maps.iter().flat_map(|m| m.keys().copied()).collect();
            switches.sort_unstable();
            switches.dedup();
            // The upper median: GPUs with links down lower a switch's
            // count, and must not make their healthy peers look over.
            let expected: BTreeMap<&str, usize> = switches
                .iter()
                .map(|s| {
                    let mut c: Vec<usize> =
                        maps.iter().map(|m| m.get(s).map_or(0, Vec::len)).collect();
                    c.sort_unstable();
                    (*s, c[c.len() / 2])
                })
                .collect();
            let peers = group.len() - 1;
            for (d, m) in group.iter().zip(&maps) {
                let over: Vec<String> = m
                    .iter()
                    .filter(|(s, l)| l.len() > expected[*s])
                    .map(|(s, l)| match expected[*s] {
                        0 => format!(
                            "links {} end on NVSwitch {s}, which none of its {peers} {} peers reach",
                            links(l),
                            d.model
                        ),
                        k => format!(
                            "NVSwitch {s} is reached over {} links ({}) where its {peers} {} peers have {k}",
                            l.len(),
                            links(l),
                            d.model
                        ),
                    })
                    .collect();
                if over.is_empty() {
                    continue;
                }
                let short: Vec<String> = expected
                    .iter()
                    .filter(|(s, k)| m.get(*s).map_or(0, Vec::len) < **k)
                    .map(|(s, k)| format!("{s} over {} (peers {k})", m.get(s).map_or(0, Vec::len)))
                    .collect();
                let mut w = over.join("; ");
                if !short.is_empty() {
                    w.push_str(&format!(", and NVSwitch {}", short.join(", ")));
                }
                w.push_str(": a link seated on the wrong NVSwitch (mis-seated board or cable)");
                problems.entry(d.index).or_default().push(w);
            }
        }
    }
    problems
        .into_iter()
        .map(|(i, p)| (i, p.join("; ")))
        .collect()
}

/// A device's NVLink endpoints as the run first journaled them.
pub fn first_ends(dev: &DeviceRun) -> Option<&[LinkEnd]> {
    dev.telemetry
        .iter()
        .find_map(|s| s.nvlink_remote.as_deref())
}

/// Per switch, `5/5/4/4`: the link counts of one GPU, for the passed check.
fn counts(ends: &[LinkEnd]) -> String {
    let m = per_switch(ends);
    if m.is_empty() {
        return String::new();
    }
    let c: Vec<String> = m.values().map(|l| l.len().to_string()).collect();
    format!(", {} link(s) per NVSwitch", c.join("/"))
}

/// The wiring check of every device of `run` that reported its NVLink
/// endpoints, into `out` (one list per device, in device order).
pub fn wiring_checks(run: &RunResults, out: &mut [Vec<Check>]) {
    let wired: Vec<Wired<'_>> = run
        .devices
        .iter()
        .filter_map(|d| Some(Wired::of(&d.info, first_ends(d)?)))
        .collect();
    let bad = miswired(&wired);
    for (k, d) in run.devices.iter().enumerate() {
        let Some(w) = wired.iter().find(|w| w.index == d.info.index) else {
            continue;
        };
        let Some(slot) = out.get_mut(k) else {
            continue;
        };
        let wrong = bad.iter().find(|(i, _)| *i == d.info.index);
        slot.push(Check::new(
            "telemetry",
            "nvlink_wiring",
            f64::from(u8::from(wrong.is_some())),
            0.0,
            wrong.is_none(),
            "nvlink_wiring",
            match wrong {
                Some((_, why)) => why.clone(),
                None => format!(
                    "{} active NVLink(s), each where its peers' end{}",
                    w.ends.len(),
                    counts(w.ends)
                ),
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::fabric::REMOTE_UNKNOWN;

    const SW: [&str; 4] = [
        "00000000:05:00.0",
        "00000000:06:00.0",
        "00000000:07:00.0",
        "00000000:08:00.0",
    ];

    fn hgx(moved: Option<(u32, usize)>, down: u32) -> Vec<LinkEnd> {
        (0..18 - down)
            .map(|l| LinkEnd {
                link: l,
                remote_bus: SW[match moved {
                    Some((m, to)) if m == l => to,
                    _ => (l % 4) as usize,
                }]
                .into(),
                remote: REMOTE_NVSWITCH.into(),
            })
            .collect()
    }

    fn node(ends: &[Vec<LinkEnd>]) -> Vec<(usize, String)> {
        let wired: Vec<Wired<'_>> = ends
            .iter()
            .enumerate()
            .map(|(i, e)| Wired {
                index: i,
                model: "H100",
                bus: Some(format!("00000000:{:02x}:00.0", 0x18 + i)),
                ends: e,
            })
            .collect();
        miswired(&wired)
    }

    #[test]
    fn a_healthy_hgx_board_and_one_with_links_down_are_not_miswired() {
        assert!(node(&vec![hgx(None, 0); 8]).is_empty());
        // Links down lower counts on some GPUs: that is nvlink_down's, and
        // must not make the healthy ones look over.
        let mut e = vec![hgx(None, 0); 4];
        e[0] = hgx(None, 3);
        e[1] = hgx(None, 3);
        assert!(node(&e).is_empty());
    }

    #[test]
    fn a_link_on_the_wrong_switch_is_caught_and_named() {
        let mut e = vec![hgx(None, 0); 8];
        e[5] = hgx(Some((3, 0)), 0);
        let bad = node(&e);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, 5);
        assert!(
            bad[0].1.contains("NVSwitch 00000000:05:00.0 is reached over 6 links (0, 3, 4, 8, 12, 16) where its 7 H100 peers have 5"),
            "{}",
            bad[0].1
        );
        assert!(
            bad[0].1.contains("00000000:08:00.0 over 3 (peers 4)"),
            "{}",
            bad[0].1
        );
    }

    #[test]
    fn on_a_switch_node_a_link_to_a_gpu_is_miswired_and_without_switches_it_is_the_rule() {
        let mut e = vec![hgx(None, 0); 8];
        e[2][7] = LinkEnd {
            link: 7,
            remote_bus: "00000000:2a:00.0".into(),
            remote: REMOTE_GPU.into(),
        };
        let bad = node(&e);
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0]
                .1
                .starts_with("link 7 ends on 00000000:2a:00.0 (a GPU), not on an NVSwitch"),
            "{}",
            bad[0].1
        );
        // Two GPUs bridged to each other: fine; a link to something else,
        // or to itself, is not.
        let pair = |other: &str, kind: &str| LinkEnd {
            link: 0,
            remote_bus: other.into(),
            remote: kind.into(),
        };
        let ok = vec![
            vec![pair("00000000:19:00.0", REMOTE_GPU)],
            vec![pair("00000000:18:00.0", REMOTE_GPU)],
        ];
        assert!(node(&ok).is_empty());
        let bad = node(&[
            vec![pair("00000000:18:00.0", REMOTE_GPU)],
            vec![pair("00000000:00:00.0", REMOTE_UNKNOWN)],
        ]);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].1.contains("loops back"), "{}", bad[0].1);
        assert!(bad[1].1.contains("not a GPU of this node"), "{}", bad[1].1);
    }
}

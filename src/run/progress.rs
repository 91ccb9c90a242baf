//! Progress on the terminal: a bar per device when stderr is a terminal,
//! plain log lines otherwise (CI logs, pipes, `nohup`).

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::device::DeviceInfo;
use crate::workload::{Metric, WorkloadKind};

/// Steps of a bar per workload.
const STEPS: u64 = 1000;

/// Shows how far each device is.
pub enum Progress {
    /// Bars on a terminal.
    Bars {
        _multi: MultiProgress,
        bars: Vec<ProgressBar>,
        workloads: usize,
    },
    /// One line per event on stderr.
    Lines { labels: Vec<String> },
    /// Nothing at all.
    Silent,
}

impl Progress {
    /// Bars when stderr is a terminal, else log lines.
    pub fn new(devices: &[DeviceInfo], workloads: usize) -> Self {
        let labels: Vec<String> = devices
            .iter()
            .map(|d| format!("dev {} ({})", d.index, d.name))
            .collect();
        if !std::io::stderr().is_terminal() {
            return Progress::Lines { labels };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let style = ProgressStyle::with_template(
            "{prefix:<32!} [{bar:28.cyan/blue}] {percent:>3}% {elapsed:>4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = labels
            .iter()
            .map(|l| {
                let b = multi.add(ProgressBar::new(STEPS * workloads.max(1) as u64));
                b.set_style(style.clone());
                b.set_prefix(l.clone());
                b
            })
            .collect();
        Progress::Bars {
            _multi: multi,
            bars,
            workloads,
        }
    }

    /// Device `slot` is `fraction` through workload number `step` of the
    /// cycle, doing `label`.
    pub fn update(&self, slot: usize, cycle: u32, step: usize, fraction: f64, label: &str) {
        if let Progress::Bars { bars, .. } = self {
            if let Some(b) = bars.get(slot) {
                let pos = step as u64 * STEPS + (fraction.clamp(0.0, 1.0) * STEPS as f64) as u64;
                b.set_position(pos);
                if cycle > 0 {
                    b.set_message(format!("cycle {} {label}", cycle + 1));
                } else {
                    b.set_message(label.to_string());
                }
            }
        }
    }

    /// A workload of device `slot` started.
    pub fn started(&self, slot: usize, cycle: u32, workload: WorkloadKind) {
        if let Progress::Lines { labels } = self {
            let c = if cycle > 0 {
                format!(" (cycle {})", cycle + 1)
            } else {
                String::new()
            };
            eprintln!("kiln: {}: {workload} started{c}", label(labels, slot));
        }
    }

    /// A measurement of device `slot` finished.
    pub fn metric(&self, slot: usize, m: &Metric) {
        let line = format!(
            "{} = {:.2} {} (cv {:.1} %, {} iterations)",
            m.name,
            m.value,
            m.unit,
            m.cv * 100.0,
            m.iterations
        );
        match self {
            Progress::Lines { labels } => eprintln!("kiln: {}: {line}", label(labels, slot)),
            Progress::Bars { bars, .. } => {
                if let Some(b) = bars.get(slot) {
                    b.println(format!("{}: {line}", b.prefix().trim_end()));
                }
            }
            Progress::Silent => {}
        }
    }

    /// A message about device `slot` that the user must see.
    pub fn warn(&self, slot: usize, message: &str) {
        match self {
            Progress::Bars { bars, .. } => {
                if let Some(b) = bars.get(slot) {
                    b.println(format!("kiln: {message}"));
                }
            }
            Progress::Lines { labels } => eprintln!("kiln: {}: {message}", label(labels, slot)),
            Progress::Silent => {}
        }
    }

    /// Device `slot` has finished a cycle.
    pub fn cycle_done(&self, slot: usize) {
        if let Progress::Bars {
            bars, workloads, ..
        } = self
        {
            if let Some(b) = bars.get(slot) {
                b.set_position(STEPS * *workloads as u64);
            }
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Progress::Bars { bars, .. } = self {
            for b in bars {
                b.finish_and_clear();
            }
        }
    }
}

fn label(labels: &[String], slot: usize) -> &str {
    labels.get(slot).map_or("device", String::as_str)
}

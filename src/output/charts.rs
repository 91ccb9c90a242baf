//! Charts of a judged run, each as PNG and SVG bytes (no I/O here).
//!
//! - one chart per metric: a bar per device, with the baseline floor and the
//!   peer median drawn over the bars, and failed devices in red;
//! - when the devices reported telemetry: temperature, power and SM clock
//!   over time (a line per device), and a timeline of throttled periods per
//!   device.
//!
//! Drawn with plotters through its `ab_glyph` text path and the bundled DejaVu
//! Sans (no fontconfig, the same pixels on every machine). The same drawing
//! code feeds both backends. [`metric_tables`] is shared with the PDF, so the
//! tables and the bars always show the same figures.

use std::collections::BTreeMap;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{KilnError, Result};
use crate::results::RunResults;
use crate::stats;
use crate::telemetry::Sample;
use crate::verdict::{self, peers, Judgement};

/// DejaVu Sans, the font of every chart and of the PDF.
pub const FONT_REGULAR: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");
/// DejaVu Sans Bold.
pub const FONT_BOLD: &[u8] = include_bytes!("../../fonts/DejaVuSans-Bold.ttf");

/// The family name the bundled font is registered under. SVG viewers fall
/// back to their own sans-serif font for it.
const FAMILY: &str = "sans-serif";

/// The PNG files are drawn at this multiple of the SVG size, so that they
/// stay sharp when embedded in the PDF and printed.
const PNG_SCALE: f64 = 2.0;

/// One chart in both formats.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem under `charts/`, e.g. `metric-bw_copy`.
    pub name: String,
    /// What the chart shows, in words.
    pub title: String,
    /// PNG bytes (8-bit RGB, not interlaced).
    pub png: Vec<u8>,
    /// SVG text.
    pub svg: String,
    /// Size of the PNG in pixels.
    pub png_size: (u32, u32),
}

/// One device's figure for one metric, with what it was held to.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricCell {
    /// Device index.
    pub device: usize,
    /// The value (median over burn-in cycles), when measured.
    pub value: Option<f64>,
    /// The baseline floor it was held to, when a baseline matched.
    pub floor: Option<f64>,
    /// The median of the device's same-model peers, when there are enough.
    pub peer_median: Option<f64>,
    /// True when the absolute or the peer check of this metric failed.
    pub fail: bool,
}

/// Every device's figure for one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricTable {
    /// Workload name (`matmul`, `bandwidth`, ...).
    pub workload: String,
    /// Metric name, e.g. `bw_copy`.
    pub name: String,
    /// Unit of every figure of the table.
    pub unit: String,
    /// One cell per device of the run, in device order.
    pub cells: Vec<MetricCell>,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The figures of every metric of the run, by workload then metric name.
pub fn metric_tables(run: &RunResults, judgement: &Judgement) -> Vec<MetricTable> {
    // (workload order, name) -> (workload, unit)
    let mut names: BTreeMap<(u8, String), (String, String)> = BTreeMap::new();
    for d in &run.devices {
        for m in &d.metrics {
            names
                .entry((m.workload as u8, m.name.clone()))
                .or_insert_with(|| (m.workload.name().to_string(), m.unit.clone()));
        }
    }
    let values: Vec<_> = run.devices.iter().map(verdict::device_values).collect();
    names
        .into_iter()
        .map(|((_, name), (workload, unit))| {
            let value_of = |slot: usize| {
                values[slot]
                    .get(&name)
                    .filter(|(_, u)| *u == unit)
                    .and_then(|(v, _)| finite(*v))
            };
            let cells = run
                .devices
                .iter()
                .enumerate()
                .map(|(slot, d)| {
                    let checks = judgement
                        .verdicts
                        .get(slot)
                        .map(|v| v.checks.as_slice())
                        .unwrap_or_default();
                    let of_metric = |c: &&crate::verdict::Check| {
                        (c.rule == "absolute" || c.rule == "peers") && c.metric == name && !c.warn
                    };
                    let floor = checks
                        .iter()
                        .filter(of_metric)
                        .find(|c| c.rule == "absolute")
                        .and_then(|c| finite(c.threshold));
                    let fail = checks.iter().filter(of_metric).any(|c| !c.pass);
                    // The peer median over the same-model devices, as the
                    // peer rule computes it.
                    let group: Vec<f64> = run
                        .devices
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.info.name == d.info.name)
                        .filter_map(|(s, _)| value_of(s))
                        .collect();
                    let peer_median = if group.len() >= peers::MIN_PEERS {
                        stats::median(&group)
                    } else {
                        None
                    };
                    MetricCell {
                        device: d.info.index,
                        value: value_of(slot),
                        floor,
                        peer_median,
                        fail,
                    }
                })
                .collect();
            MetricTable {
                workload,
                name,
                unit,
                cells,
            }
        })
        .collect()
}

/// A throttle reason that means the clocks were held back by a limit (not an
/// idle GPU or a clock setting).
pub fn is_throttle(reason: &str) -> bool {
    !matches!(
        reason,
        "gpu_idle" | "applications_clocks_setting" | "sync_boost" | "display_clock_setting"
    )
}

/// A period during which a device was throttled, from the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttled {
    /// Seconds since the start of the run.
    pub from_s: f64,
    /// Seconds since the start of the run.
    pub to_s: f64,
    /// The throttle reasons seen in the period.
    pub reasons: Vec<String>,
}

/// Throttled periods of one device: a sample that reports a throttle reason
/// covers the time until the next sample (the last one, as long as the
/// interval before it, or one second when it is alone).
pub fn throttled_periods(samples: &[Sample]) -> Vec<Throttled> {
    let mut out: Vec<Throttled> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let reasons: Vec<String> = s
            .throttle
            .iter()
            .filter(|r| is_throttle(r))
            .cloned()
            .collect();
        if reasons.is_empty() || !s.t_s.is_finite() {
            continue;
        }
        let before = i
            .checked_sub(1)
            .map(|p| s.t_s - samples[p].t_s)
            .filter(|d| d.is_finite() && *d > 0.0)
            .unwrap_or(1.0);
        let to = samples
            .get(i + 1)
            .map(|n| n.t_s)
            .filter(|t| t.is_finite() && *t > s.t_s)
            .unwrap_or(s.t_s + before);
        match out.last_mut() {
            Some(last) if (last.to_s - s.t_s).abs() < 1e-9 => {
                last.to_s = to;
                for r in reasons {
                    if !last.reasons.contains(&r) {
                        last.reasons.push(r);
                    }
                }
            }
            _ => out.push(Throttled {
                from_s: s.t_s,
                to_s: to,
                reasons,
            }),
        }
    }
    out
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled files are valid fonts; a failure would only leave the
        // charts without text, which the tests would catch.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_REGULAR);
        let _ = plotters::style::register_font(FAMILY, FontStyle::Bold, FONT_BOLD);
    });
}

/// Sixteen colours that stay apart from each other (Tableau 20, paired
/// shades interleaved).
const PALETTE: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
];

const PASS_BAR: RGBColor = RGBColor(76, 120, 168);
const FAIL_BAR: RGBColor = RGBColor(214, 39, 40);
const FLOOR_LINE: RGBColor = RGBColor(20, 20, 20);
const MEDIAN_LINE: RGBColor = RGBColor(245, 133, 24);
const SHADE: RGBColor = RGBColor(255, 200, 120);
const GRID: RGBColor = RGBColor(225, 225, 225);

/// What one chart draws: enough to draw it at any scale on any backend.
enum Spec<'a> {
    Metric(&'a MetricTable),
    Telemetry {
        quantity: &'a str,
        unit: &'a str,
        /// (device index, points)
        lines: Vec<(usize, Vec<(f64, f64)>)>,
        /// Time span of the run's samples.
        span: (f64, f64),
    },
    Throttle {
        /// (device index, throttled periods)
        rows: Vec<(usize, Vec<Throttled>)>,
        span: (f64, f64),
    },
}

/// A short figure for labels: no more digits than it needs.
pub fn short(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1e5 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// An axis tick label, with as many decimals as the axis' `range` needs.
fn tick(v: f64, range: f64) -> String {
    if range >= 20.0 {
        format!("{v:.0}")
    } else if range >= 2.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

type DrawResult<E> = std::result::Result<(), DrawingAreaErrorKind<E>>;

fn font(size: f64, s: f64) -> TextStyle<'static> {
    (FAMILY, size * s).into_font().into()
}

/// A legend strip: coloured marks and words, left to right, wrapping.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[(RGBColor, bool, String)],
    s: f64,
) -> DrawResult<DB::ErrorType> {
    let (w, _) = area.dim_in_pixel();
    let style = font(13.0, s);
    let mut x = (60.0 * s) as i32;
    let mut y = (6.0 * s) as i32;
    let row = (20.0 * s) as i32;
    for (color, is_line, label) in items {
        let tw = area
            .estimate_text_size(label, &style)
            .map(|d| d.0)
            .unwrap_or(100) as i32;
        let item_w = (28.0 * s) as i32 + tw + (18.0 * s) as i32;
        if x + item_w > w as i32 && x > (60.0 * s) as i32 {
            x = (60.0 * s) as i32;
            y += row;
        }
        let mid = y + row / 2;
        if *is_line {
            area.draw(&PathElement::new(
                vec![(x, mid), (x + (22.0 * s) as i32, mid)],
                color.stroke_width((3.0 * s) as u32),
            ))?;
        } else {
            area.draw(&Rectangle::new(
                [
                    (x, mid - (6.0 * s) as i32),
                    (x + (22.0 * s) as i32, mid + (6.0 * s) as i32),
                ],
                color.filled(),
            ))?;
        }
        area.draw(&Text::new(
            label.clone(),
            (x + (28.0 * s) as i32, mid),
            style.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += item_w;
    }
    Ok(())
}

/// Rows of legend needed for `n` device entries.
fn legend_rows(n: usize) -> u32 {
    (n as u32).div_ceil(8).max(1)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    spec: &Spec<'_>,
    title: &str,
    s: f64,
) -> DrawResult<DB::ErrorType> {
    root.fill(&WHITE)?;
    let (_, h) = root.dim_in_pixel();
    let legend_h = match spec {
        Spec::Metric(_) => 34.0 * s,
        Spec::Telemetry { lines, .. } => (14.0 + 20.0 * f64::from(legend_rows(lines.len()))) * s,
        Spec::Throttle { .. } => 34.0 * s,
    };
    let (top, bottom) = root.split_vertically(h as i32 - legend_h as i32);
    let caption = font(19.0, s);
    let labels = font(13.0, s);
    match spec {
        Spec::Metric(t) => {
            let n = t.cells.len().max(1);
            let top_value = t
                .cells
                .iter()
                .flat_map(|c| [c.value, c.floor, c.peer_median])
                .flatten()
                .fold(0.0f64, f64::max);
            let y_max = if top_value > 0.0 {
                top_value * 1.15
            } else {
                1.0
            };
            // Few GPUs: keep the bars as wide as with four.
            let pad = (4usize.saturating_sub(n)) as f64 / 2.0;
            let mut chart = ChartBuilder::on(&top)
                .caption(title, caption)
                .margin((12.0 * s) as i32)
                .x_label_area_size((44.0 * s) as i32)
                .y_label_area_size((80.0 * s) as i32)
                .build_cartesian_2d(-pad..n as f64 + pad, 0f64..y_max)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(8)
                .light_line_style(WHITE)
                .bold_line_style(GRID)
                .y_desc(t.unit.clone())
                .x_desc("GPU (device index)")
                .label_style(labels.clone())
                .axis_desc_style(labels.clone())
                .y_label_formatter(&|v| tick(*v, y_max))
                .draw()?;
            chart.draw_series(t.cells.iter().enumerate().filter_map(|(i, c)| {
                let v = c.value?;
                let color = if c.fail { FAIL_BAR } else { PASS_BAR };
                Some(Rectangle::new(
                    [(i as f64 + 0.18, 0.0), (i as f64 + 0.82, v)],
                    color.filled(),
                ))
            }))?;
            for (pick, color, width) in [(0usize, FLOOR_LINE, 2.5), (1usize, MEDIAN_LINE, 2.5)] {
                chart.draw_series(t.cells.iter().enumerate().filter_map(|(i, c)| {
                    let y = if pick == 0 { c.floor } else { c.peer_median }?;
                    Some(PathElement::new(
                        vec![(i as f64, y), (i as f64 + 1.0, y)],
                        color.stroke_width((width * s) as u32),
                    ))
                }))?;
            }
            // Device labels under the bars, and the value over each bar
            // while there is room for it.
            let small = font(if n > 8 { 11.0 } else { 12.0 }, s);
            for (i, c) in t.cells.iter().enumerate() {
                let (x, y0) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
                top.draw(&Text::new(
                    c.device.to_string(),
                    (x, y0 + (6.0 * s) as i32),
                    labels.pos(Pos::new(HPos::Center, VPos::Top)),
                ))?;
                match c.value {
                    Some(v) if n <= 8 && v > 0.0 => {
                        // Halfway up the bar, clear of the floor and median
                        // lines near its top.
                        let (_, y) = chart.backend_coord(&(i as f64 + 0.5, v));
                        if y0 - y > (40.0 * s) as i32 {
                            top.draw(&Text::new(
                                short(v),
                                (x, (y + y0) / 2),
                                small
                                    .color(&WHITE)
                                    .pos(Pos::new(HPos::Center, VPos::Center)),
                            ))?;
                        }
                    }
                    None => {
                        top.draw(&Text::new(
                            "no value",
                            (x, y0 - (4.0 * s) as i32),
                            small.pos(Pos::new(HPos::Center, VPos::Bottom)),
                        ))?;
                    }
                    _ => {}
                }
            }
            let mut items = vec![
                (PASS_BAR, false, "passed".to_string()),
                (FAIL_BAR, false, "failed".to_string()),
            ];
            if t.cells.iter().any(|c| c.floor.is_some()) {
                items.push((FLOOR_LINE, true, "baseline floor".into()));
            }
            if t.cells.iter().any(|c| c.peer_median.is_some()) {
                items.push((MEDIAN_LINE, true, "peer median".into()));
            }
            legend(&bottom, &items, s)?;
        }
        Spec::Telemetry {
            quantity,
            unit,
            lines,
            span,
        } => {
            let (lo, hi) = lines
                .iter()
                .flat_map(|(_, p)| p.iter().map(|q| q.1))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
            let (lo, hi) = if lo.is_finite() && hi.is_finite() {
                let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.02).max(1.0);
                ((lo - pad).max(0.0), hi + pad)
            } else {
                (0.0, 1.0)
            };
            let mut chart = ChartBuilder::on(&top)
                .caption(title, caption)
                .margin((12.0 * s) as i32)
                .x_label_area_size((44.0 * s) as i32)
                .y_label_area_size((80.0 * s) as i32)
                .build_cartesian_2d(span.0..span.1, lo..hi)?;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .bold_line_style(GRID)
                .y_desc(format!("{quantity} ({unit})"))
                .x_desc("time since the start of the run (s)")
                .label_style(labels.clone())
                .axis_desc_style(labels.clone())
                .x_label_formatter(&|v| tick(*v, span.1 - span.0))
                .y_label_formatter(&|v| tick(*v, hi - lo))
                .draw()?;
            for (slot, (_, points)) in lines.iter().enumerate() {
                let color = PALETTE[slot % PALETTE.len()];
                chart.draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width((2.0 * s) as u32),
                ))?;
            }
            let items: Vec<_> = lines
                .iter()
                .enumerate()
                .map(|(slot, (dev, _))| (PALETTE[slot % PALETTE.len()], true, format!("GPU {dev}")))
                .collect();
            legend(&bottom, &items, s)?;
        }
        Spec::Throttle { rows, span } => {
            let n = rows.len().max(1);
            let end = rows
                .iter()
                .flat_map(|(_, p)| p.iter().map(|p| p.to_s))
                .fold(span.1, f64::max);
            let span = &(span.0, end);
            // Keep a one-sample period visible.
            let min_w = (span.1 - span.0) * 0.004;
            let mut chart = ChartBuilder::on(&top)
                .caption(title, caption)
                .margin((12.0 * s) as i32)
                .x_label_area_size((44.0 * s) as i32)
                .y_label_area_size((80.0 * s) as i32)
                .build_cartesian_2d(span.0..span.1, 0f64..n as f64)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(0)
                .light_line_style(WHITE)
                .bold_line_style(GRID)
                .y_desc("GPU (device index)")
                .x_desc("time since the start of the run (s)")
                .label_style(labels.clone())
                .axis_desc_style(labels.clone())
                .x_label_formatter(&|v| tick(*v, span.1 - span.0))
                .draw()?;
            let row_font = font(if n > 8 { 11.0 } else { 13.0 }, s);
            for (slot, (dev, periods)) in rows.iter().enumerate() {
                // The first device on top.
                let y = (n - 1 - slot) as f64;
                chart.draw_series(periods.iter().map(|p| {
                    Rectangle::new(
                        [
                            (p.from_s, y + 0.15),
                            (p.to_s.max(p.from_s + min_w), y + 0.85),
                        ],
                        SHADE.filled(),
                    )
                }))?;
                let (x, yy) = chart.backend_coord(&(span.0, y + 0.5));
                top.draw(&Text::new(
                    dev.to_string(),
                    (x - (8.0 * s) as i32, yy),
                    row_font.pos(Pos::new(HPos::Right, VPos::Center)),
                ))?;
            }
            legend(
                &bottom,
                &[(
                    SHADE,
                    false,
                    "throttled (clock held back by a limit)".into(),
                )],
                s,
            )?;
        }
    }
    Ok(())
}

fn render_one(name: String, title: String, spec: &Spec<'_>, size: (u32, u32)) -> Result<Chart> {
    let err = |e: String| KilnError::output(format!("charts/{name}"), e);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root, spec, &title, 1.0).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let px = (
        (f64::from(size.0) * PNG_SCALE) as u32,
        (f64::from(size.1) * PNG_SCALE) as u32,
    );
    let mut rgb = vec![255u8; px.0 as usize * px.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, px).into_drawing_area();
        draw(&root, spec, &title, PNG_SCALE).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let mut png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png, px.0, px.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| err(e.to_string()))?;
        w.write_image_data(&rgb).map_err(|e| err(e.to_string()))?;
        w.finish().map_err(|e| err(e.to_string()))?;
    }
    Ok(Chart {
        name,
        title,
        png,
        svg,
        png_size: px,
    })
}

/// File-name-safe form of a metric name.
fn stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Size of every chart in SVG pixels (the PNG is [`PNG_SCALE`] times larger).
pub const SIZE: (u32, u32) = (900, 360);

/// Every chart of the run.
pub fn render(run: &RunResults, judgement: &Judgement) -> Result<Vec<Chart>> {
    register_fonts();
    let mut charts = Vec::new();
    for t in metric_tables(run, judgement) {
        // The peer matrix (p2p_gpuJ) is a table in the report; its chart
        // is `p2p`, each device's slowest peer.
        if t.cells.iter().all(|c| c.value.is_none()) || t.name.starts_with("p2p_gpu") {
            continue;
        }
        let title = format!("{} per GPU ({}), {}", t.name, t.unit, t.workload);
        charts.push(render_one(
            format!("metric-{}", stem(&t.name)),
            title,
            &Spec::Metric(&t),
            SIZE,
        )?);
    }
    let with_samples: Vec<_> = run
        .devices
        .iter()
        .filter(|d| d.telemetry.iter().any(|s| s.t_s.is_finite()))
        .collect();
    if with_samples.is_empty() {
        return Ok(charts);
    }
    let times = with_samples
        .iter()
        .flat_map(|d| d.telemetry.iter().map(|s| s.t_s))
        .filter(|t| t.is_finite());
    let (t0, t1) = times.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), t| {
        (a.min(t), b.max(t))
    });
    let span = (t0.min(0.0), if t1 > t0 { t1 } else { t0 + 1.0 });
    type Pick = fn(&Sample) -> Option<f64>;
    let quantities: [(&str, &str, &str, Pick); 3] = [
        ("temperature", "GPU temperature", "°C", |s| s.gpu_temp_c),
        ("power", "power draw", "W", |s| s.power_w),
        ("sm_clock", "SM clock", "MHz", |s| s.sm_clock_mhz),
    ];
    for (file, quantity, unit, pick) in quantities {
        let lines: Vec<(usize, Vec<(f64, f64)>)> = with_samples
            .iter()
            .map(|d| {
                let pts = d
                    .telemetry
                    .iter()
                    .filter_map(|s| Some((finite(s.t_s)?, finite(pick(s)?)?)))
                    .collect();
                (d.info.index, pts)
            })
            .collect();
        if lines.iter().all(|(_, p)| p.is_empty()) {
            continue;
        }
        charts.push(render_one(
            format!("telemetry-{file}"),
            format!("{quantity} over time per GPU ({unit})"),
            &Spec::Telemetry {
                quantity,
                unit,
                lines,
                span,
            },
            SIZE,
        )?);
    }
    let rows: Vec<(usize, Vec<Throttled>)> = with_samples
        .iter()
        .map(|d| (d.info.index, throttled_periods(&d.telemetry)))
        .collect();
    let any = rows.iter().any(|(_, p)| !p.is_empty());
    charts.push(render_one(
        "telemetry-throttle".into(),
        if any {
            "throttled periods per GPU (s)".into()
        } else {
            "throttled periods per GPU (s): none".into()
        },
        &Spec::Throttle { rows, span },
        SIZE,
    )?);
    Ok(charts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, throttle: &[&str]) -> Sample {
        Sample {
            t_s,
            throttle: throttle.iter().map(|s| s.to_string()).collect(),
            ..Sample::default()
        }
    }

    #[test]
    fn throttled_periods_merge_and_ignore_an_idle_gpu() {
        let s = [
            sample(0.0, &["gpu_idle"]),
            sample(1.0, &["sw_thermal_slowdown"]),
            sample(2.0, &["hw_power_brake_slowdown"]),
            sample(3.0, &[]),
            sample(4.0, &["sw_power_cap"]),
        ];
        let p = throttled_periods(&s);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].from_s, p[0].to_s), (1.0, 3.0));
        assert_eq!(
            p[0].reasons,
            ["sw_thermal_slowdown", "hw_power_brake_slowdown"]
        );
        // The last sample lasts as long as the interval before it.
        assert_eq!((p[1].from_s, p[1].to_s), (4.0, 5.0));
        assert!(throttled_periods(&[sample(f64::NAN, &["hw_slowdown"])]).is_empty());
    }

    #[test]
    fn tick_labels_keep_the_digits_the_range_needs() {
        assert_eq!(tick(50000.0, 60000.0), "50000");
        assert_eq!(tick(0.25, 0.5), "0.25");
        assert_eq!(short(f64::NAN), "-");
    }
}

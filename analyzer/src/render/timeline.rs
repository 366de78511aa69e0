//! Pressure curves: stacked panels over one time axis, drawn with plotters' SVG backend.
//!
//! The input is the timeline view ([`TimelineView`]: plain [`Panel`]s of [`Line`]s), so the same
//! renderer draws one profile's timeline and the overlaid curves of a comparison report.

pub use super::units::{human_bytes, human_count, human_nanos};
use super::RenderError;
/// The view types, kept at their old paths: [`crate::analysis::views`].
pub use crate::analysis::views::timeline::{Line, Panel, Unit};
use crate::analysis::views::{TimelineColumns, TimelineView};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::fmt::Write as _;
use std::io::Write;

/// Default chart width in pixels. Default: 1000.
pub const DEFAULT_WIDTH_PX: u32 = 1000;
/// Height of one panel in pixels. Default: 220.
pub const PANEL_HEIGHT_PX: u32 = 220;

/// How a timeline is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartOptions {
    /// Chart width in pixels. Default: [`DEFAULT_WIDTH_PX`].
    pub width_px: u32,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            width_px: DEFAULT_WIDTH_PX,
        }
    }
}

/// How the series are written as CSV (nothing to choose yet: one `t_sec` column, then one
/// column per series).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvOptions {}

fn err<E: std::fmt::Display>(e: E) -> RenderError {
    RenderError::Chart(e.to_string())
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Height of a panel's legend strip, above its plot (legends never cover data).
const LEGEND_PX: u32 = 24;

/// A scale for an axis: values are divided by `div` before plotting, so plotters' decimal
/// 1-2-5 ticks land on round numbers of the unit (`2 MiB, 4 MiB`, not `4.8 / 9.5 MiB`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AxisScale {
    /// Divisor applied to values.
    pub div: f64,
    /// Unit name after the number (`"MiB"`, `"ms"`), may be empty.
    pub suffix: &'static str,
}

impl AxisScale {
    /// The scale for values up to `max` of `unit`.
    pub fn for_values(unit: Unit, max: f64) -> AxisScale {
        let pick = |steps: &[(f64, &'static str)]| {
            let mut best = steps[0];
            for &(div, suffix) in steps {
                if max >= div {
                    best = (div, suffix);
                }
            }
            AxisScale {
                div: best.0,
                suffix: best.1,
            }
        };
        const K: f64 = 1024.0;
        match unit {
            Unit::Bytes => pick(&[
                (1.0, "B"),
                (K, "KiB"),
                (K * K, "MiB"),
                (K * K * K, "GiB"),
                (K * K * K * K, "TiB"),
            ]),
            Unit::BytesPerSec => pick(&[
                (1.0, "B/s"),
                (K, "KiB/s"),
                (K * K, "MiB/s"),
                (K * K * K, "GiB/s"),
            ]),
            Unit::Nanos => pick(&[(1.0, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s")]),
            Unit::PerSec => pick(&[(1.0, "/s"), (1e3, "k/s"), (1e6, "M/s"), (1e9, "G/s")]),
            Unit::Count => pick(&[(1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G")]),
            Unit::Percent => AxisScale {
                div: 1.0,
                suffix: "%",
            },
        }
    }

    /// The scale of a time axis running to `t_max_sec`: µs, ms, s or min so labels stay short
    /// and distinct on runs of any length.
    pub fn for_time(t_max_sec: f64) -> AxisScale {
        let (div, suffix) = if t_max_sec < 0.002 {
            (1e-6, "µs")
        } else if t_max_sec < 2.0 {
            (1e-3, "ms")
        } else if t_max_sec < 600.0 {
            (1.0, "s")
        } else {
            (60.0, "min")
        };
        AxisScale { div, suffix }
    }

    /// A tick label: the scaled value with as few decimals as it needs, then the unit.
    pub fn label(&self, scaled: f64) -> String {
        let mut n = format!("{scaled:.3}");
        while n.contains('.') && (n.ends_with('0') || n.ends_with('.')) {
            n.pop();
        }
        if n == "-0" || n == "0" {
            return "0".into();
        }
        match self.suffix {
            "" => n,
            s if s.starts_with('/') || s == "%" || s.starts_with('k') && s.len() > 1 => {
                format!("{n}{s}")
            }
            s => format!("{n} {s}"),
        }
    }
}

/// Splits a series at its gaps: a point whose value is not finite (NaN) marks a sample that had
/// no value (an interval with no timed allocator call), drawn as a gap, not a ramp.
pub fn segments(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points
        .split(|p| !p.1.is_finite())
        .filter(|s| !s.is_empty())
        .collect()
}

fn has_data(p: &Panel) -> bool {
    p.lines
        .iter()
        .flat_map(|l| l.points.iter())
        .any(|pt| pt.1.is_finite() && pt.1 != 0.0)
}

/// Writes the view's panels stacked over one shared time axis as SVG.
///
/// Panels without data (no points, or only zeros: a PSI panel with no pressure) are left out;
/// with none left, the placeholder says "no timeline samples".
pub fn write<W: Write>(v: &TimelineView, o: &ChartOptions, mut out: W) -> Result<(), RenderError> {
    if !v.panels.iter().any(has_data) {
        return super::placeholder::write_empty_svg(
            out,
            &v.title,
            None,
            "no timeline samples in this profile",
        );
    }
    out.write_all(render_svg(&v.title, &v.panels, o.width_px)?.as_bytes())?;
    Ok(())
}

/// The SVG text of `panels` (at least one with data) under `title`.
fn render_svg(title: &str, panels: &[Panel], width_px: u32) -> Result<String, RenderError> {
    let drawn: Vec<&Panel> = panels.iter().filter(|p| has_data(p)).collect();
    let t_max = drawn
        .iter()
        .flat_map(|p| p.lines.iter())
        .flat_map(|l| l.points.iter().filter(|pt| pt.1.is_finite()).map(|pt| pt.0))
        .fold(0.0f64, f64::max)
        .max(1e-6);
    let rows = drawn.len().max(1) as u32;
    let height = 40 + rows * PANEL_HEIGHT_PX;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width_px, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root
            .titled(title, ("sans-serif", 20).into_font())
            .map_err(err)?;
        let areas = root.split_evenly((rows as usize, 1));
        let last = drawn.len().saturating_sub(1);
        for (i, (area, panel)) in areas.iter().zip(&drawn).enumerate() {
            draw_panel(area, panel, t_max, i == last)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// An estimate of a sans-serif text's width (the SVG backend has no font metrics without
/// fontconfig): 0.58 em per character.
fn text_width_px(s: &str, size_px: u32) -> i32 {
    (s.chars().count() as f64 * size_px as f64 * 0.58).ceil() as i32
}

/// Draws the legend strip: the panel's title, then one swatch and label per line, left to right.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    colors: &[(String, RGBColor, bool)],
) -> Result<(), RenderError>
where
    DB::ErrorType: 'static,
{
    let title_font = ("sans-serif", 14).into_font().style(FontStyle::Bold);
    let font = ("sans-serif", 12).into_font();
    let mut x = 88i32;
    area.draw(&Text::new(panel.title.as_str(), (x, 5), title_font.clone()))
        .map_err(err)?;
    x += text_width_px(&panel.title, 14) + 22;
    for (label, color, faint) in colors {
        let style = if *faint {
            color.mix(0.55).stroke_width(1)
        } else {
            color.stroke_width(2)
        };
        area.draw(&PathElement::new(vec![(x, 12), (x + 18, 12)], style))
            .map_err(err)?;
        x += 24;
        area.draw(&Text::new(label.as_str(), (x, 6), font.clone()))
            .map_err(err)?;
        x += text_width_px(label, 12) + 16;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    t_max: f64,
    time_labels: bool,
) -> Result<(), RenderError>
where
    DB::ErrorType: 'static,
{
    let (legend_area, plot_area) = area.split_vertically(LEGEND_PX);
    let mut y_max = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if let Some((_, r)) = &panel.reference {
        y_max = y_max.max(*r);
    }
    let unit = panel.unit;
    let ys = AxisScale::for_values(unit, y_max);
    let xs = AxisScale::for_time(t_max);
    let y_top = if y_max <= 0.0 {
        1.0
    } else {
        y_max * 1.08 / ys.div
    };
    let x_end = t_max / xs.div;
    let mut chart = ChartBuilder::on(&plot_area)
        .margin_left(8)
        .margin_right(16)
        .margin_top(4)
        .x_label_area_size(if time_labels { 30 } else { 6 })
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_end, 0f64..y_top)
        .map_err(err)?;
    let y_fmt = |v: &f64| ys.label(*v);
    let x_fmt = |v: &f64| {
        if time_labels {
            xs.label(*v)
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .y_labels(5)
        .x_labels(10)
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.07))
        .draw()
        .map_err(err)?;
    // The maximum of an interval is drawn faint and first, so a p99 beside it stays visible.
    let mut legend: Vec<(String, RGBColor, bool)> = Vec::new();
    let visible: Vec<&Line> = panel
        .lines
        .iter()
        .filter(|l| l.points.iter().any(|p| p.1.is_finite()))
        .collect();
    let mut order: Vec<usize> = (0..visible.len()).collect();
    order.sort_by_key(|&i| visible[i].label != "max");
    for i in order {
        let line = visible[i];
        let color = PALETTE[i % PALETTE.len()];
        let faint = line.label == "max";
        let style = if faint {
            color.mix(0.5).stroke_width(1)
        } else {
            color.stroke_width(2)
        };
        for seg in segments(&line.points) {
            chart
                .draw_series(LineSeries::new(
                    seg.iter().map(|&(t, v)| (t / xs.div, v / ys.div)),
                    style,
                ))
                .map_err(err)?;
            if let [(t, v)] = seg {
                // A lone value between two gaps: a dot, not nothing.
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (t / xs.div, v / ys.div),
                        2,
                        style.filled(),
                    )))
                    .map_err(err)?;
            }
        }
        legend.push((line.label.clone(), color, faint));
    }
    legend.sort_by_key(|(l, ..)| {
        visible
            .iter()
            .position(|v| &v.label == l)
            .unwrap_or(usize::MAX)
    });
    if let Some((label, value)) = &panel.reference {
        let style = BLACK.mix(0.6).stroke_width(1);
        let y = *value / ys.div;
        chart
            .draw_series(LineSeries::new(vec![(0.0, y), (x_end, y)], style))
            .map_err(err)?;
        let text = format!("{label} {}", unit.format(*value));
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (x_end * 0.995, y),
                ("sans-serif", 12)
                    .into_font()
                    .color(&BLACK.mix(0.75))
                    .pos(Pos::new(HPos::Right, VPos::Bottom)),
            )))
            .map_err(err)?;
    }
    draw_legend(&legend_area, panel, &legend)?;
    Ok(())
}

/// Writes named series as CSV: a `t_sec` column, then one column per series (empty where a series
/// has no value at that time). Rows are the union of all sample times.
pub fn write_csv<W: Write>(
    v: &TimelineColumns,
    _o: &CsvOptions,
    mut out: W,
) -> Result<(), RenderError> {
    out.write_all(csv(v).as_bytes())?;
    Ok(())
}

/// [`write_csv`] into a string.
pub fn csv(v: &TimelineColumns) -> String {
    let columns = &v.columns;
    let mut times: Vec<f64> = columns
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let mut out = String::from("t_sec");
    for (name, _) in columns {
        out.push(',');
        out.push_str(name);
    }
    out.push('\n');
    let mut idx = vec![0usize; columns.len()];
    for t in times {
        let _ = write!(out, "{t:.6}");
        for (c, (_, pts)) in columns.iter().enumerate() {
            out.push(',');
            while idx[c] < pts.len() && pts[idx[c]].0 < t {
                idx[c] += 1;
            }
            if let Some(&(pt, v)) = pts.get(idx[c]) {
                if pt == t {
                    let _ = write!(out, "{v}");
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(title: &str, n: usize) -> Panel {
        Panel {
            title: title.into(),
            unit: Unit::Bytes,
            lines: vec![
                Line {
                    label: "live heap".into(),
                    points: (0..n)
                        .map(|i| (i as f64 * 0.01, i as f64 * 4096.0))
                        .collect(),
                },
                Line {
                    label: "RSS".into(),
                    points: (0..n)
                        .map(|i| (i as f64 * 0.01, 1e6 + i as f64 * 5000.0))
                        .collect(),
                },
            ],
            reference: Some(("limit".into(), 2e6)),
        }
    }

    #[test]
    fn draws_labelled_panels() {
        let svg = render_svg(
            "pressure <test>",
            &[panel("heap", 200), panel("empty", 0)],
            800,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("live heap"));
        assert!(svg.contains("RSS"));
        assert!(svg.contains("limit"));
        assert!(svg.contains("&lt;test&gt;"), "title must be escaped");
        assert!(
            !svg.contains("empty"),
            "a panel without points is not drawn"
        );
        assert!(svg.contains("MiB") || svg.contains("KiB"));
    }

    #[test]
    fn ticks_fall_on_round_binary_units_and_short_runs_read_in_ms() {
        let ys = AxisScale::for_values(Unit::Bytes, 10.0 * 1024.0 * 1024.0);
        assert_eq!(ys.suffix, "MiB");
        assert_eq!(ys.label(5.0), "5 MiB");
        assert_eq!(ys.label(2.5), "2.5 MiB");
        assert_eq!(ys.label(0.0), "0");
        let xs = AxisScale::for_time(1.5);
        assert_eq!((xs.div, xs.suffix), (1e-3, "ms"));
        assert_eq!(xs.label(200.0), "200 ms");
        assert_eq!(AxisScale::for_time(30.0).label(12.5), "12.5 s");
        assert_eq!(
            AxisScale::for_values(Unit::PerSec, 4000.0).label(2.0),
            "2k/s"
        );
        // A short run no longer repeats "0.1 0.1 0.1": 10 ticks over 0.15 s are distinct.
        let svg = render_svg("t", &[panel("heap", 15)], 800).unwrap();
        for tick in ["\n20 ms\n", "\n40 ms\n", "\n100 ms\n"] {
            assert!(svg.contains(tick), "no tick {tick:?}");
        }
        assert!(svg.contains(" KiB\n") || svg.contains(" MiB\n"));
        assert!(!svg.contains("4.8 MiB") && !svg.contains("9.5 MiB"));
    }

    #[test]
    fn gaps_split_lines_and_zero_panels_are_left_out() {
        let pts = vec![
            (0.0, 1.0),
            (0.01, 1.0),
            (0.02, 1.0),
            (0.03, f64::NAN),
            (0.04, f64::NAN),
            (0.05, 1.0),
            (0.06, 1.0),
        ];
        let segs = segments(&pts);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].len(), 3);
        assert_eq!(segs[1].len(), 2);
        // Irregular sampling (a delayed sampler) is not a gap.
        let late = vec![(0.0, 1.0), (0.01, 1.0), (0.2, 1.0), (0.21, 1.0)];
        assert_eq!(segments(&late).len(), 1);
        let psi = Panel {
            title: "Memory pressure stall".into(),
            unit: Unit::Percent,
            lines: vec![Line {
                label: "some".into(),
                points: vec![(0.0, 0.0), (1.0, 0.0)],
            }],
            reference: None,
        };
        let svg = render_svg("t", &[panel("heap", 20), psi], 800).unwrap();
        assert!(!svg.contains("Memory pressure stall"));
    }

    #[test]
    fn the_limit_line_is_labelled() {
        let svg = render_svg("t", &[panel("heap", 20)], 800).unwrap();
        assert!(svg.contains("limit 1.9 MiB"), "{svg}");
    }

    #[test]
    fn no_samples_still_renders() {
        let view = TimelineView {
            title: "t".into(),
            panels: Vec::new(),
        };
        let mut svg = Vec::new();
        write(&view, &ChartOptions { width_px: 600 }, &mut svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("no timeline samples"));
    }

    #[test]
    fn csv_joins_series_on_time() {
        let csv = csv(&TimelineColumns {
            columns: vec![
                ("a", vec![(0.0, 1.0), (1.0, 2.0)]),
                ("b", vec![(1.0, 5.0), (2.0, 6.0)]),
            ],
        });
        assert_eq!(csv, "t_sec,a,b\n0.000000,1,\n1.000000,2,5\n2.000000,,6\n");
    }

    #[test]
    fn units_read_well() {
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(12.0), "12 B");
        assert_eq!(human_nanos(3100.0), "3.1µs");
        assert_eq!(human_count(1.2e6), "1.2M");
        assert_eq!(Unit::Percent.format(41.2), "41%");
        assert_eq!(Unit::Percent.format(0.4), "0.4%");
    }
}

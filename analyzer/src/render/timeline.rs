//! Pressure curves: stacked panels over one time axis, drawn with plotters' SVG backend.
//!
//! The input is plain data ([`Panel`]s of [`Line`]s), so the same renderer draws one profile's
//! timeline and the overlaid curves of a comparison report.

pub use super::units::{human_bytes, human_count, human_nanos};
use plotters::prelude::*;
use std::fmt::Write as _;

/// Default chart width in pixels. Default: 1000.
pub const DEFAULT_WIDTH_PX: u32 = 1000;
/// Height of one panel in pixels. Default: 220.
pub const PANEL_HEIGHT_PX: u32 = 220;

/// What a panel's y axis measures; decides the tick labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes (KiB/MiB/GiB labels).
    Bytes,
    /// Bytes per second.
    BytesPerSec,
    /// Nanoseconds (ns/µs/ms labels).
    Nanos,
    /// Events per second.
    PerSec,
    /// Percent.
    Percent,
    /// A plain count.
    Count,
}

impl Unit {
    /// Formats a value of this unit for a tick label.
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Bytes => human_bytes(v),
            Unit::BytesPerSec => format!("{}/s", human_bytes(v)),
            Unit::Nanos => human_nanos(v),
            Unit::PerSec => format!("{}/s", human_count(v)),
            Unit::Percent if v.abs() >= 10.0 || v.fract() == 0.0 => format!("{v:.0}%"),
            Unit::Percent => format!("{v:.1}%"),
            Unit::Count => human_count(v),
        }
    }
}

/// One curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// `(seconds since start, value)` in time order.
    pub points: Vec<(f64, f64)>,
}

/// One panel: lines sharing a y axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Panel title.
    pub title: String,
    /// Unit of the y axis.
    pub unit: Unit,
    /// Curves; empty lines are skipped, and a panel with no points is not drawn.
    pub lines: Vec<Line>,
    /// Optional horizontal reference line (e.g. the memory limit), with its label.
    pub reference: Option<(String, f64)>,
}

/// Failure to draw a chart.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

fn err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError(e.to_string())
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

/// Draws `panels` stacked over one shared time axis and returns the SVG text.
///
/// Panels without any point are left out; with none left, a single panel says "no samples".
pub fn render_svg(title: &str, panels: &[Panel], width_px: u32) -> Result<String, ChartError> {
    let drawn: Vec<&Panel> = panels
        .iter()
        .filter(|p| p.lines.iter().any(|l| !l.points.is_empty()))
        .collect();
    let t_max = drawn
        .iter()
        .flat_map(|p| p.lines.iter())
        .flat_map(|l| l.points.iter().map(|pt| pt.0))
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let rows = drawn.len().max(1) as u32;
    let height = 40 + rows * PANEL_HEIGHT_PX;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width_px, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root
            .titled(title, ("sans-serif", 20).into_font())
            .map_err(err)?;
        if drawn.is_empty() {
            root.draw(&Text::new(
                "no timeline samples in this profile",
                (20, 20),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(err)?;
        }
        let areas = root.split_evenly((rows as usize, 1));
        for (area, panel) in areas.iter().zip(&drawn) {
            draw_panel(area, panel, t_max)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    t_max: f64,
) -> Result<(), ChartError>
where
    DB::ErrorType: 'static,
{
    let mut y_max = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if let Some((_, r)) = &panel.reference {
        y_max = y_max.max(*r);
    }
    let y_max = if y_max <= 0.0 { 1.0 } else { y_max * 1.08 };
    let unit = panel.unit;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 15).into_font())
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| unit.format(*v))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for (i, line) in panel
        .lines
        .iter()
        .filter(|l| !l.points.is_empty())
        .enumerate()
    {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(line.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    if let Some((label, value)) = &panel.reference {
        let style = BLACK.mix(0.6).stroke_width(1);
        chart
            .draw_series(LineSeries::new(vec![(0.0, *value), (t_max, *value)], style))
            .map_err(err)?
            .label(format!("{label} ({})", unit.format(*value)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Writes named series as CSV: a `t_sec` column, then one column per series (empty where a series
/// has no value at that time). Rows are the union of all sample times.
pub fn write_csv(columns: &[(&str, Vec<(f64, f64)>)]) -> String {
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
    fn no_samples_still_renders() {
        let svg = render_svg("t", &[], 600).unwrap();
        assert!(svg.contains("no timeline samples"));
    }

    #[test]
    fn csv_joins_series_on_time() {
        let csv = write_csv(&[
            ("a", vec![(0.0, 1.0), (1.0, 2.0)]),
            ("b", vec![(1.0, 5.0), (2.0, 6.0)]),
        ]);
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

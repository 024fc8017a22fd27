//! `drill --report FILE`: what the clients saw, as pictures. Three charts over the seconds
//! around the fault — requests per second (successful and failed), latency p50/p95/p99 of the
//! requests sent each second, and failed requests per second by kind — each with the fault,
//! the recovery and the verification marked. `FILE.svg` is the charts stacked under a header;
//! `FILE.html` (or `.htm`) a self-contained page: the verdict, the key figures, the charts
//! inline, the budgets and the timeline. Drawn by plotters' SVG backend, which writes text as
//! `<text>` for the viewer to lay out: no font is read or embedded.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{gap_text, rel, title};
use super::series::{self, Bin, Marker};
use super::stats::secs;
use super::Report;

/// What `--report FILE` writes, by FILE's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Html,
}

impl Format {
    /// The format `path` asks for; a usage error naming the flag for any other extension.
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("html" | "htm") => Ok(Format::Html),
            _ => bail!(
                "--report {}: a drill report is an .html (or .htm) page or an .svg picture\n  fix: end the file name in .html or .svg",
                path.display()
            ),
        }
    }
}

/// The report file's content.
pub fn render(r: &Report, format: Format) -> Result<String> {
    match format {
        Format::Svg => svg(r),
        Format::Html => html(r),
    }
}

/// Writes the report file atomically (a reader never sees half of it).
pub fn write(path: &Path, format: Format, r: &Report) -> Result<()> {
    let content = render(r, format)?;
    crate::fsutil::write_all_atomically(&[(path.to_path_buf(), content)], 0o644)
}

const WIDTH: u32 = 1000;
const CHART_HEIGHT: u32 = 310;
/// The column right of each chart with its legend: series, then markers.
const LEGEND_WIDTH: u32 = 250;
const FONT: &str = "sans-serif";
/// Longest legend entry (a failure kind can be a long transport error); the page lists them
/// in full.
const LEGEND_CHARS: usize = 28;

const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const GREY: RGBColor = RGBColor(127, 127, 127);
const INK: RGBColor = RGBColor(34, 34, 34);
const MARGIN_LEFT: u32 = 8;
const MARGIN_RIGHT: u32 = 16;
/// The y axis's labels and description, left of the plot.
const Y_LABELS: u32 = 64;
/// The height of a row of marker labels above a plot.
const LABEL_ROW: u32 = 18;
/// Behind a note on a chart.
const HALO: RGBAColor = RGBAColor(255, 255, 255, 0.85);
/// Failure kinds, most frequent first; the rest are drawn together in grey.
const KIND_COLORS: [RGBColor; 5] = [
    RED,
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line of a chart: its legend name and its pieces (a latency line breaks over a second
/// in which no request was sent).
struct Line {
    name: String,
    color: RGBColor,
    pieces: Vec<Vec<(f64, f64)>>,
}

/// What one chart shows.
struct Chart {
    /// The HTML page's id for it.
    id: &'static str,
    title: String,
    y_desc: String,
    lines: Vec<Line>,
    y: Axis,
    /// Shown in the plot when there is nothing to draw (`no failed request`).
    empty_note: Option<&'static str>,
}

enum Axis {
    Linear(f64),
    /// Logarithmic, from..to (ms).
    Log(f64, f64),
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A bin as a flat step from its start to its end: the picture shows what each bin holds.
fn steps(bins: &[Bin], value: impl Fn(&Bin) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = vec![];
    let mut current: Vec<(f64, f64)> = vec![];
    for b in bins {
        match value(b) {
            Some(v) => {
                current.push((seconds(b.from_ms), v));
                current.push((seconds(b.to_ms), v));
            }
            None if !current.is_empty() => pieces.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn max_of(lines: &[Line]) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.pieces.iter().flatten())
        .map(|p| p.1)
        .fold(0.0, f64::max)
}

/// A linear axis from 0 with some room above the highest value.
fn linear(lines: &[Line]) -> Axis {
    Axis::Linear((max_of(lines) * 1.15).max(1.0))
}

fn requests(bins: &[Bin]) -> Chart {
    let lines = vec![
        Line {
            name: "ok (successful answers)".into(),
            color: GREEN,
            pieces: steps(bins, |b| Some(b.ok_per_s())),
        },
        Line {
            name: "failed (all kinds)".into(),
            color: RED,
            pieces: steps(bins, |b| Some(b.failed_per_s())),
        },
    ];
    Chart {
        id: "chart-requests",
        title: "Requests per second".into(),
        y_desc: "requests/s".into(),
        y: linear(&lines),
        lines,
        empty_note: None,
    }
}

/// Latency on a log axis when the seconds around the fault span more than a decade (a few ms
/// normally, seconds while nginx retries or a client times out): on a linear axis the normal
/// seconds would lie flat on zero.
fn latency(bins: &[Bin]) -> Chart {
    let pick = |f: fn(&series::Percentiles) -> u64| {
        move |b: &Bin| b.latency.as_ref().map(|l| f(l).max(1) as f64)
    };
    let lines = vec![
        Line {
            name: "p50".into(),
            color: BLUE,
            pieces: steps(bins, pick(|l| l.p50_ms)),
        },
        Line {
            name: "p95".into(),
            color: ORANGE,
            pieces: steps(bins, pick(|l| l.p95_ms)),
        },
        Line {
            name: "p99".into(),
            color: PURPLE,
            pieces: steps(bins, pick(|l| l.p99_ms)),
        },
    ];
    let values = || {
        lines
            .iter()
            .flat_map(|l| l.pieces.iter().flatten())
            .map(|p| p.1)
    };
    let low = values().fold(f64::INFINITY, f64::min);
    let high = values().fold(1.0, f64::max);
    let log = low.is_finite() && high / low >= 10.0;
    Chart {
        id: "chart-latency",
        title: "Latency of the requests sent each second".into(),
        y_desc: if log {
            "ms (log scale)".into()
        } else {
            "ms".into()
        },
        y: if log {
            // Whole decades, so the ticks read 1, 10, 100 …
            Axis::Log(
                10f64.powf(low.log10().floor()),
                10f64.powf(high.log10().ceil()),
            )
        } else {
            linear(&lines)
        },
        lines,
        empty_note: None,
    }
}

/// Kinds most frequent first; beyond the palette, the rest as one grey line.
fn failures(bins: &[Bin]) -> Chart {
    let mut totals: std::collections::BTreeMap<&str, u64> = Default::default();
    for b in bins {
        for (kind, n) in &b.failed {
            *totals.entry(kind).or_insert(0) += n;
        }
    }
    let mut kinds: Vec<(&str, u64)> = totals.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown = kinds.len().min(KIND_COLORS.len());
    let (named, rest) = kinds.split_at(shown);
    let mut lines: Vec<Line> = named
        .iter()
        .zip(KIND_COLORS)
        .map(|((kind, _), color)| Line {
            name: kind.to_string(),
            color,
            pieces: steps(bins, |b| Some(b.kind_per_s(kind))),
        })
        .collect();
    if !rest.is_empty() {
        lines.push(Line {
            name: format!("{} other kinds", rest.len()),
            color: GREY,
            pieces: steps(bins, |b| {
                Some(rest.iter().map(|(k, _)| b.kind_per_s(k)).sum())
            }),
        });
    }
    Chart {
        id: "chart-failures",
        title: "Failed requests per second, by kind".into(),
        y_desc: "failed/s".into(),
        y: linear(&lines),
        empty_note: lines.is_empty().then_some("no failed request"),
        lines,
    }
}

fn charts(r: &Report) -> [Chart; 3] {
    [requests(&r.series), latency(&r.series), failures(&r.series)]
}

/// The seconds shown: the whole load, and every marker (verification may come after the load
/// stopped).
fn x_range(bins: &[Bin], markers: &[Marker]) -> Range<f64> {
    let from = bins.first().map_or(-1.0, |b| seconds(b.from_ms));
    let to = bins.last().map_or(1.0, |b| seconds(b.to_ms));
    let last_marker = markers.iter().map(|m| seconds(m.at_ms)).fold(to, f64::max);
    let to = if last_marker > to {
        last_marker + 0.5
    } else {
        to
    };
    from.min(0.0)..to.max(from + 1.0)
}

/// `-2`, `0`, `+5`, `+0.5`: seconds from the fault.
fn tick(x: &f64) -> String {
    let x = if x.abs() < 1e-9 { 0.0 } else { *x };
    if x == 0.0 {
        "0".into()
    } else if (x - x.round()).abs() < 1e-6 {
        format!("{x:+.0}")
    } else {
        format!("{x:+.1}")
    }
}

fn ms_tick(y: &f64) -> String {
    if *y >= 1000.0 && (y / 1000.0).fract() == 0.0 {
        format!("{} s", y / 1000.0)
    } else if y.fract() == 0.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.1}")
    }
}

fn count_tick(y: &f64) -> String {
    if y.fract() == 0.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.1}")
    }
}

fn marker_style(label: &str) -> (ShapeStyle, u32, u32) {
    // (style, dash, gap): fault solid, recovered dashed, verified dotted.
    match label {
        "fault" => (INK.stroke_width(2), 0, 0),
        "recovered" => (INK.stroke_width(2), 8, 4),
        _ => (INK.stroke_width(2), 2, 3),
    }
}

/// Where each marker's label goes (its pixel span): right of its line, unless that would
/// cross another marker's line or leave the plot while the left side would not. `lines` are
/// each marker's line position and label width.
fn label_spans(lines: &[(i32, i32)], plot: Range<i32>) -> Vec<(i32, i32)> {
    let crosses = |from: i32, to: i32, own: i32| {
        lines
            .iter()
            .any(|&(px, _)| px != own && (from - 4..=to + 4).contains(&px))
    };
    lines
        .iter()
        .map(|&(px, w)| {
            let right = (px + 4, px + 4 + w);
            let left = (px - 4 - w, px - 4);
            let right_fits = right.1 <= plot.end && !crosses(right.0, right.1, px);
            let left_fits = left.0 >= plot.start && !crosses(left.0, left.1, px);
            if right_fits || (!left_fits && right.1 <= plot.end) {
                right
            } else {
                left
            }
        })
        .collect()
}

/// The row each marker's label goes in, so that labels close together do not overlap:
/// `spans` are the labels' pixel spans (from, to), in the markers' order.
fn label_rows(spans: &[(i32, i32)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans[i].0);
    let mut row_ends: Vec<i32> = vec![];
    let mut rows = vec![0; spans.len()];
    for i in order {
        let (from, to) = spans[i];
        let row = match row_ends.iter().position(|&end| end + 6 <= from) {
            Some(r) => r,
            None => {
                row_ends.push(i32::MIN);
                row_ends.len() - 1
            }
        };
        row_ends[row] = to;
        rows[i] = row;
    }
    rows
}

/// The pixel width `text` takes in bold at plotters' font `size` (the SVG's font-size is
/// size / 1.24; a sans-serif character is about 0.62 em wide): an estimate, as the viewer
/// lays the text out.
fn text_width(text: &str, size: u32) -> i32 {
    (text.chars().count() as f64 * size as f64 / 1.24 * 0.62).ceil() as i32
}

/// `text` in lines of at most `width` characters, broken between words, at most `lines` of
/// them (the last one shortened when the text goes on).
fn wrap(text: &str, width: usize, lines: usize) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    let mut current = String::new();
    for word in text.split_whitespace() {
        let len = current.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    if out.len() > lines {
        let rest = out.split_off(lines - 1).join(" ");
        out.push(rest);
    }
    out.into_iter().map(|l| shorten(&l, width)).collect()
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

fn drawing<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the report: {e}")
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws one chart (plot and legend column) on `area`.
fn draw_chart(area: &Area, chart: &Chart, x: Range<f64>, markers: &[Marker]) -> Result<()> {
    let (plot, legend) = area.split_horizontally(WIDTH - LEGEND_WIDTH);
    match chart.y {
        Axis::Linear(top) => plot_on(&plot, chart, x, 0.0..top, count_tick, markers)?,
        Axis::Log(from, to) => plot_on(&plot, chart, x, (from..to).log_scale(), ms_tick, markers)?,
    }
    draw_legend(&legend, chart, markers)
}

fn plot_on<Y>(
    area: &Area,
    chart: &Chart,
    x: Range<f64>,
    y: Y,
    y_tick: fn(&f64) -> String,
    markers: &[Marker],
) -> Result<()>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    // The title, then the rows of marker labels above the plot (never on the data): where
    // each label goes is known before the plot is, from the x axis's pixel span.
    let (width, _) = area.dim_in_pixel();
    let left = area.get_base_pixel().0;
    let plot = left + (MARGIN_LEFT + Y_LABELS) as i32..left + (width - MARGIN_RIGHT) as i32;
    let to_px = |ms: i64| {
        let share = (seconds(ms) - x.start) / (x.end - x.start).max(f64::EPSILON);
        plot.start + (share * (plot.end - plot.start) as f64).round() as i32
    };
    let size = 15;
    let lines: Vec<(i32, i32)> = markers
        .iter()
        .map(|m| (to_px(m.at_ms), text_width(m.label, size)))
        .collect();
    let spans = label_spans(&lines, plot);
    let rows = label_rows(&spans);
    let rows_above = rows.iter().max().map_or(1, |r| r + 1) as u32;
    area.draw(&Text::new(
        chart.title.as_str(),
        ((width / 2) as i32, 6),
        (FONT, 22)
            .into_font()
            .style(FontStyle::Bold)
            .color(&INK)
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(drawing)?;
    let mut c = ChartBuilder::on(area)
        .margin_top(30 + LABEL_ROW * rows_above)
        .margin_left(MARGIN_LEFT)
        .margin_right(MARGIN_RIGHT)
        .margin_bottom(4)
        .x_label_area_size(40)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(x, y)
        .map_err(drawing)?;
    c.configure_mesh()
        .x_desc("seconds from the fault")
        .y_desc(chart.y_desc.as_str())
        .x_label_formatter(&tick)
        .y_label_formatter(&y_tick)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(drawing)?;
    // The highest percentile first, so a lower one lying on it stays visible.
    for line in chart.lines.iter().rev() {
        for piece in &line.pieces {
            c.draw_series(LineSeries::new(
                piece.iter().copied(),
                line.color.stroke_width(2),
            ))
            .map_err(drawing)?;
        }
    }
    let ys = c.y_range();
    if let Some(note) = chart.empty_note {
        let (xr, yr) = c.plotting_area().get_pixel_range();
        let base = area.get_base_pixel();
        let middle = (
            (xr.start + xr.end) / 2 - base.0,
            (yr.start + yr.end) / 2 - base.1,
        );
        let half = text_width(note, 16) / 2 + 6;
        area.draw(&Rectangle::new(
            [
                (middle.0 - half, middle.1 - 11),
                (middle.0 + half, middle.1 + 11),
            ],
            HALO.filled(),
        ))
        .map_err(drawing)?;
        area.draw(&Text::new(
            note,
            middle,
            (FONT, 16)
                .into_font()
                .color(&GREY)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(drawing)?;
    }
    // The markers: a vertical line each, its label above the plot beside the line (left of it
    // near the right edge), in rows where labels would overlap, the line led up to its row.
    for ((m, row), (from, _)) in markers.iter().zip(rows).zip(&spans) {
        let at = seconds(m.at_ms);
        let (style, dash, gap) = marker_style(m.label);
        let ends = vec![(at, ys.start), (at, ys.end)];
        if dash == 0 {
            c.draw_series(std::iter::once(PathElement::new(ends, style)))
                .map_err(drawing)?;
        } else {
            c.draw_series(std::iter::once(DashedPathElement::new(
                ends, dash, gap, style,
            )))
            .map_err(drawing)?;
        }
        let px = c.backend_coord(&(at, ys.end)).0;
        // The label's top, in pixels above the plot's top edge.
        let dy = -((LABEL_ROW * (row as u32 + 1)) as i32);
        c.draw_series(std::iter::once(
            EmptyElement::at((at, ys.end))
                + PathElement::new(vec![(0, 0), (0, dy + 2)], INK.stroke_width(1))
                + Text::new(
                    m.label,
                    (from - px, dy),
                    (FONT, size)
                        .into_font()
                        .style(FontStyle::Bold)
                        .color(&INK)
                        .pos(Pos::new(HPos::Left, VPos::Top)),
                ),
        ))
        .map_err(drawing)?;
    }
    Ok(())
}

fn draw_legend(area: &Area, chart: &Chart, markers: &[Marker]) -> Result<()> {
    let font = (FONT, 15).into_font().color(&INK);
    let mut y = 44;
    let swatch = |y: i32| vec![(8, y), (34, y)];
    for line in &chart.lines {
        area.draw(&PathElement::new(swatch(y), line.color.stroke_width(3)))
            .map_err(drawing)?;
        for text in wrap(&line.name, LEGEND_CHARS, 2) {
            area.draw(&Text::new(
                text,
                (42, y),
                font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(drawing)?;
            y += 17;
        }
        y += 3;
    }
    y += 8;
    for m in markers {
        let (style, dash, gap) = marker_style(m.label);
        if dash == 0 {
            area.draw(&PathElement::new(swatch(y), style))
                .map_err(drawing)?;
        } else {
            area.draw(&DashedPathElement::new(swatch(y), dash, gap, style))
                .map_err(drawing)?;
        }
        area.draw(&Text::new(
            format!("{} {}", m.label, rel_s(m.at_ms)),
            (42, y),
            font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(drawing)?;
        y += 20;
    }
    Ok(())
}

/// A marker's time: `+6.20 s`.
fn rel_s(at_ms: i64) -> String {
    if at_ms < 0 {
        format!("-{}", secs(at_ms.unsigned_abs()))
    } else {
        format!("+{}", secs(at_ms as u64))
    }
}

/// The verdict in one line.
fn verdict(r: &Report) -> String {
    if r.interrupted {
        return "Interrupted (Ctrl-C): the figures are incomplete.".into();
    }
    if r.passed {
        return "Passed: every budget held.".into();
    }
    let n = r.budgets.iter().filter(|b| !b.passed).count();
    format!(
        "Failed: {n} budget{} exceeded.",
        if n == 1 { "" } else { "s" }
    )
}

fn headline(r: &Report) -> String {
    format!(
        "{} — {}",
        title(r),
        verdict(r)
            .trim_end_matches('.')
            .split(':')
            .next()
            .unwrap_or_default()
    )
}

fn figures_lines(r: &Report) -> [String; 2] {
    [
        format!(
            "{} requests ({:.1}/s) from {} clients + 1 session client · {} failed · longest gap (any client) {}",
            r.load.requests,
            r.load.requests_per_second,
            r.load.clients,
            r.failures.total,
            secs(r.longest_gap.ms),
        ),
        format!(
            "latency p50 {} ms · p90 {} ms · p99 {} ms · max {} ms",
            r.latency.p50_ms, r.latency.p90_ms, r.latency.p99_ms, r.latency.max_ms
        ),
    ]
}

/// One SVG: a header (what was drilled, the verdict, the figures, what each marker means),
/// then the three charts.
pub fn svg(r: &Report) -> Result<String> {
    let markers = series::markers(r);
    let header_lines = 4 + markers.len() as u32;
    let header = 28 + 20 * header_lines;
    let height = header + 3 * CHART_HEIGHT;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (top, rest) = root.split_vertically(header);
        let mut y = 14;
        let mut line = |text: String, size: u32, bold: bool| -> Result<()> {
            let style = if bold {
                FontStyle::Bold
            } else {
                FontStyle::Normal
            };
            let font = (FONT, size).into_font().style(style).color(&INK);
            top.draw(&Text::new(
                text,
                (16, y),
                font.pos(Pos::new(HPos::Left, VPos::Top)),
            ))
            .map_err(drawing)?;
            y += if size > 16 { 30 } else { 20 };
            Ok(())
        };
        line(headline(r), 24, true)?;
        line(
            shorten(&format!("{} via {}", r.project, r.url), 140),
            16,
            false,
        )?;
        for text in figures_lines(r) {
            line(text, 16, false)?;
        }
        for m in &markers {
            line(
                shorten(
                    &format!("{} {}: {}", m.label, rel_s(m.at_ms), m.meaning),
                    150,
                ),
                16,
                false,
            )?;
        }
        let x = x_range(&r.series, &markers);
        let areas = rest.split_evenly((3, 1));
        for (area, chart) in areas.iter().zip(charts(r)) {
            draw_chart(area, &chart, x.clone(), &markers)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

/// One chart as its own SVG (for the page).
fn chart_svg(chart: &Chart, x: Range<f64>, markers: &[Marker]) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, CHART_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        draw_chart(&root, chart, x, markers)?;
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

fn esc(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '&' => s.push_str("&amp;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
    }
    s
}

const STYLE: &str =
    "body{font-family:sans-serif;margin:24px auto;max-width:1040px;color:#222;padding:0 12px}\
h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;margin-top:28px}\
.verdict{font-size:18px;font-weight:bold;padding:8px 12px;border-radius:4px}\
.passed{background:#e6f4ea;color:#1e6b34}.failed{background:#fdecea;color:#a51d1d}\
table{border-collapse:collapse}td,th{text-align:left;padding:3px 12px 3px 0;vertical-align:top}\
th{font-weight:normal;color:#555}.pass{color:#1e6b34}.fail{color:#a51d1d;font-weight:bold}\
figure{margin:16px 0}figure svg{max-width:100%;height:auto}code{font-size:13px}";

/// A self-contained page: the verdict and key figures, the charts inline, the budgets, the
/// timeline and the notes. No script, stylesheet or font from elsewhere.
pub fn html(r: &Report) -> Result<String> {
    let markers = series::markers(r);
    let x = x_range(&r.series, &markers);
    let f = r.fault_at_ms;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&headline(r))
    );
    let _ = writeln!(o, "<h1>{}</h1>", esc(title(r)));
    let _ = writeln!(
        o,
        "<p>Project <code>{}</code> via <code>{}</code></p>",
        esc(&r.project),
        esc(&r.url)
    );
    let _ = writeln!(
        o,
        "<p id=\"verdict\" class=\"verdict {}\">{}</p>",
        if r.passed && !r.interrupted {
            "passed"
        } else {
            "failed"
        },
        esc(&verdict(r))
    );

    let _ = writeln!(o, "<table id=\"budgets\">");
    for b in &r.budgets {
        let _ = writeln!(
            o,
            "<tr><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>budget {}</td></tr>",
            if b.passed { "pass" } else { "fail" },
            if b.passed { "✓ PASS" } else { "✗ FAIL" },
            esc(&b.name),
            esc(&b.measured),
            esc(&b.budget)
        );
    }
    let _ = writeln!(o, "</table>");

    let _ = writeln!(o, "<h2>What the clients saw</h2>\n<table id=\"figures\">");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(o, "<tr><th>{}</th><td>{value}</td></tr>", esc(name));
    };
    row("fault", esc(&r.fault));
    row(
        "load",
        esc(&format!(
            "{} keep-alive clients (GET {}) + 1 session client, {}",
            r.load.clients,
            r.load.paths.join(", "),
            secs(r.load.duration_ms)
        )),
    );
    row(
        "requests",
        esc(&format!(
            "{} sent ({:.1}/s), {} succeeded",
            r.load.requests, r.load.requests_per_second, r.load.succeeded
        )),
    );
    let mut failed = esc(&r.failures.total.to_string());
    for (kind, n) in &r.failures.by_kind {
        let _ = write!(failed, "<br>{} × {}", n, esc(kind));
    }
    row("failed requests", failed);
    row(
        "latency",
        esc(&format!(
            "p50 {} ms · p90 {} ms · p99 {} ms · max {} ms",
            r.latency.p50_ms, r.latency.p90_ms, r.latency.p99_ms, r.latency.max_ms
        )),
    );
    row("longest gap, any client", esc(&gap_text(&r.longest_gap, f)));
    row(
        "longest gap, worst client",
        esc(&gap_text(&r.worst_client_gap(), f)),
    );
    row(
        "longest gap, session client",
        esc(&gap_text(&r.session.longest_gap, f)),
    );
    // The fault is the first row; here when the clients were served again, and verified.
    for m in markers.iter().filter(|m| m.label != "fault") {
        row(m.label, esc(&format!("{} — {}", rel_s(m.at_ms), m.meaning)));
    }
    row(
        "time to full health",
        esc(&r
            .recovery
            .time_to_full_health_ms
            .map_or_else(|| "not reached".into(), secs)),
    );
    let _ = writeln!(o, "</table>");

    for chart in charts(r) {
        let _ = writeln!(
            o,
            "<figure id=\"{}\" class=\"chart\">\n{}</figure>",
            chart.id,
            chart_svg(&chart, x.clone(), &markers)?
        );
    }

    let _ = writeln!(
        o,
        "<h2>Timeline (relative to the fault)</h2>\n<table id=\"timeline\">"
    );
    for e in &r.timeline {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&rel(e.at_ms, f)),
            esc(&e.what)
        );
    }
    let _ = writeln!(o, "</table>");
    if !r.notes.is_empty() {
        let _ = writeln!(o, "<h2>Notes</h2>\n<ul id=\"notes\">");
        for n in &r.notes {
            let _ = writeln!(o, "<li>{}</li>", esc(n));
        }
        let _ = writeln!(o, "</ul>");
    }
    let _ = writeln!(o, "</body>\n</html>");
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn the_extension_picks_the_format_and_anything_else_names_the_flag() {
        assert_eq!(Format::of(Path::new("out/drill.svg")).unwrap(), Format::Svg);
        assert_eq!(Format::of(Path::new("drill.HTML")).unwrap(), Format::Html);
        assert_eq!(Format::of(Path::new("drill.htm")).unwrap(), Format::Html);
        for bad in ["drill.pdf", "drill", "drill.svg.txt"] {
            let e = Format::of(Path::new(bad)).unwrap_err().to_string();
            assert!(e.contains("--report") && e.contains(bad), "{e}");
            assert!(e.contains(".html") && e.contains(".svg"), "{e}");
        }
    }

    #[test]
    fn labels_close_together_go_in_rows_of_their_own() {
        assert_eq!(label_rows(&[(0, 50), (100, 150)]), [0, 0]);
        assert_eq!(label_rows(&[(0, 50), (40, 90), (50, 110)]), [0, 1, 2]);
        // A row is reused once the label before has ended.
        assert_eq!(label_rows(&[(0, 50), (30, 80), (60, 90)]), [0, 1, 0]);
        // Rows are decided left to right whatever the markers' order.
        assert_eq!(label_rows(&[(60, 90), (0, 50), (30, 80)]), [0, 0, 1]);
        assert!(label_rows(&[]).is_empty());
    }

    #[test]
    fn a_label_goes_left_of_its_line_when_the_right_would_cross_a_line_or_leave_the_plot() {
        let plot = 0..1000;
        // Far apart: both right of their lines.
        assert_eq!(
            label_spans(&[(100, 50), (500, 50)], plot.clone()),
            [(104, 154), (504, 554)]
        );
        // The second line within the first label: the first label goes left.
        assert_eq!(
            label_spans(&[(500, 80), (530, 60)], plot.clone()),
            [(416, 496), (534, 594)]
        );
        // At the right edge: left.
        assert_eq!(label_spans(&[(980, 60)], plot.clone()), [(916, 976)]);
        // Crowded on both sides: right, and the rows keep the labels apart.
        assert_eq!(
            label_spans(&[(20, 80), (50, 60)], plot),
            [(24, 104), (54, 114)]
        );
    }

    #[test]
    fn a_long_legend_entry_wraps_between_words_onto_two_lines_at_most() {
        assert_eq!(wrap("p95", 28, 2), ["p95"]);
        assert_eq!(
            wrap(
                "transport: cannot connect (Connection refused (os error 111))",
                28,
                2
            ),
            ["transport: cannot connect", "(Connection refused (os err…"]
        );
        assert_eq!(wrap("", 28, 2), [""]);
        assert_eq!(wrap("abcdefghij", 4, 2), ["abc…"]);
    }

    #[test]
    fn ticks_read_as_seconds_from_the_fault() {
        assert_eq!(tick(&0.0), "0");
        assert_eq!(tick(&-0.0), "0");
        assert_eq!(tick(&-2.0), "-2");
        assert_eq!(tick(&5.0), "+5");
        assert_eq!(tick(&0.5), "+0.5");
        assert_eq!(ms_tick(&1000.0), "1 s");
        assert_eq!(ms_tick(&100.0), "100");
    }

    #[test]
    fn the_svg_report_of_a_drill() {
        insta::assert_snapshot!("nginx.svg", svg(&fixture::report()).unwrap());
    }

    #[test]
    fn the_html_report_of_a_drill() {
        insta::assert_snapshot!("nginx.html", html(&fixture::report()).unwrap());
    }

    /// Every `<text>` of an SVG, parsed as the XML it is.
    fn svg_texts(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or_default().trim().to_string())
            .collect()
    }

    #[test]
    fn the_svg_is_xml_with_every_series_and_marker_on_every_chart() {
        let texts = svg_texts(&svg(&fixture::report()).unwrap());
        for t in [
            "Requests per second",
            "ok (successful answers)",
            "failed (all kinds)",
            "p50",
            "p95",
            "p99",
            "HTTP 502",
            "transport: cannot connect",
            "(Connection refused)",
        ] {
            assert!(texts.iter().any(|x| x == t), "{t:?} in {texts:?}");
        }
        for marker in ["fault", "recovered", "verified"] {
            let on_charts = texts.iter().filter(|x| *x == marker).count();
            assert_eq!(on_charts, 3, "{marker}: {texts:?}");
        }
    }

    #[test]
    fn the_page_parses_cleanly_and_escapes_what_it_shows() {
        let page = scraper::Html::parse_document(&html(&fixture::report()).unwrap());
        assert!(page.errors.is_empty(), "{:?}", page.errors);
        let one = |css: &str| {
            let sel = scraper::Selector::parse(css).unwrap();
            page.select(&sel)
                .next()
                .map(|e| e.text().collect::<String>())
        };
        assert_eq!(
            one("#verdict").as_deref(),
            Some("Failed: 1 budget exceeded.")
        );
        assert!(one("#chart-latency svg").is_some_and(|t| t.contains("p99")));
        assert_eq!(
            one("#notes li").as_deref(),
            Some("a note with <markup> & \"quotes\"")
        );
    }

    #[test]
    fn html_escapes_what_it_shows() {
        assert_eq!(esc("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}

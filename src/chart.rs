//! The house style of every chart the workspace draws (`teardown sim
//! --plot`, the sweep's, `teardown plan --plot` and loadgen's `--plot`): one
//! font, one palette and one colour per state, one grid and legend, and each
//! chart drawn once as PNG and once as SVG.
//!
//! Text in PNGs is drawn with the committed DejaVu Sans (ab_glyph), so a plot
//! looks the same on a machine without system fonts; SVGs name `sans-serif` and
//! keep their text as text.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context;
use plotters::chart::{MeshStyle, SeriesLabelStyle};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use teardown_engine::state::State;

/// Size of every chart, in pixels (SVG user units).
pub(crate) const SIZE: (u32, u32) = (1200, 700);

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the committed font as `sans-serif` once per process; plotters'
/// ab_glyph backend has no other font. Every plot of the workspace calls it.
pub fn register_font() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| "assets/DejaVuSans.ttf is not a usable font".to_string())
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Tableau 10: distinct, colour-blind-friendlier than the primaries.
pub const PALETTE: [RGBColor; 10] = [
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
];

/// One colour per state, the same in every chart so that a reader learns them once.
pub(crate) fn state_colour(st: State) -> RGBColor {
    match st {
        State::TimeWait => PALETTE[0],
        State::FinWait1 => PALETTE[1],
        State::CloseWait => PALETTE[2],
        State::LastAck => PALETTE[3],
        State::Closing => PALETTE[4],
        State::FinWait2 => PALETTE[5],
        State::SynReceived => PALETTE[6],
        State::Established => PALETTE[7],
        State::SynSent => PALETTE[8],
        State::Closed => PALETTE[9],
    }
}

/// `12345678` as `12,345,678`, for axis labels of populations.
pub(crate) fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    if v.abs() < 1.0 && v != 0.0 {
        // Two significant digits, trailing zeros dropped: 0.056, 0.5, 0.001.
        let decimals = (1 - v.abs().log10().floor() as i32).max(1) as usize;
        let s = format!("{v:.decimals$}");
        return s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The house style of a chart's grid and axis text; each chart adds its own
/// axis descriptions and label formats.
pub(crate) fn house_mesh<'m, 'a, 'b, X, Y, XT, YT, DB>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
    DB: DrawingBackend,
{
    mesh.axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 15))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
}

/// The house style of a chart's legend, at `position`.
pub(crate) fn house_legend<'m, 'a, 'b, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    legend: &'m mut SeriesLabelStyle<'a, 'b, DB, CT>,
    position: SeriesLabelPosition,
) -> &'m mut SeriesLabelStyle<'a, 'b, DB, CT> {
    legend
        .position(position)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
}

/// A chart that can be drawn on any backend (a closure cannot be generic).
pub(crate) trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static;
}

/// Draws the same chart into `<stem>.png` and `<stem>.svg`.
pub(crate) fn both(dir: &Path, stem: &str, chart: &impl Chart) -> anyhow::Result<Vec<PathBuf>> {
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        chart.draw(&root)?;
        root.present()
            .with_context(|| format!("writing {}", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        chart.draw(&root)?;
        root.present()
            .with_context(|| format!("writing {}", svg.display()))?;
    }
    Ok(vec![png, svg])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(131_072.0), "131,072");
        assert_eq!(thousands(-1_234_567.0), "-1,234,567");
        assert_eq!(thousands(0.055_833_333_333_333_33), "0.056");
        assert_eq!(thousands(0.5), "0.5");
        assert_eq!(thousands(0.25), "0.25");
        assert_eq!(thousands(0.001), "0.001");
        assert_eq!(thousands(-0.183_333), "-0.18");
    }
}

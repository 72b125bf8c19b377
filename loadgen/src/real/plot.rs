//! `--plot DIR`: a `--kernel-target` run over time, from the report's per-second
//! `series`: connections started and completed per second, TIME-WAIT by side,
//! and errors and retransmitted segments per second, stacked in one chart
//! (`loadgen.png` and `loadgen.svg`).
//!
//! The style is `teardown sim --plot`'s (src/sim/plot.rs): the committed DejaVu
//! Sans for PNG text, Tableau 10 colours, light grid lines. Its helpers are
//! private to the root crate, so the few lines needed are repeated here.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;
use teardown::chart::{register_font, PALETTE};

const SIZE: (u32, u32) = (1200, 1000);

/// Tableau 10's first colours, as `teardown sim --plot` uses them.
const BLUE: RGBColor = PALETTE[0];
const ORANGE: RGBColor = PALETTE[1];
const GREEN: RGBColor = PALETTE[2];
const RED: RGBColor = PALETTE[3];
const PURPLE: RGBColor = PALETTE[4];

/// One line of a panel: its label, colour, a JSON pointer into a series point,
/// and whether the value is a count over the point's interval (drawn per second:
/// the last interval is cut short by the end of the run).
type Line = (&'static str, RGBColor, &'static str, bool);

const PANELS: [(&str, &[Line]); 3] = [
    (
        "connections per second",
        &[
            ("started", BLUE, "/started", true),
            ("completed", GREEN, "/completed", true),
        ],
    ),
    (
        "TIME-WAIT sockets",
        &[
            (
                "server side (local = target)",
                BLUE,
                "/time_wait/server",
                false,
            ),
            (
                "client side (remote = target)",
                ORANGE,
                "/time_wait/client",
                false,
            ),
            ("other", PURPLE, "/time_wait/other", false),
        ],
    ),
    (
        "per second",
        &[
            ("errors", RED, "/errors", true),
            ("RetransSegs", PURPLE, "/snmp/RetransSegs", true),
        ],
    ),
];

/// Draws the report's series into `dir/loadgen.{png,svg}` (the directory is
/// created if missing) and returns the paths written.
pub fn draw(dir: &Path, report: &Value) -> anyhow::Result<Vec<PathBuf>> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let series = report["series"].as_array().cloned().unwrap_or_default();
    let title = format!(
        "loadgen against {}: {} connections, {} completed",
        report["target"].as_str().unwrap_or("?"),
        report["connections"],
        report["completed"]
    );
    let png = dir.join("loadgen.png");
    let svg = dir.join("loadgen.svg");
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        panels(&root, &title, &series)?;
        root.present()
            .with_context(|| format!("writing {}", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        panels(&root, &title, &series)?;
        root.present()
            .with_context(|| format!("writing {}", svg.display()))?;
    }
    Ok(vec![png, svg])
}

fn panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[Value],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let t_max = series
        .iter()
        .filter_map(|p| p["t_secs"].as_f64())
        .fold(1.0, f64::max);
    for (area, (desc, lines)) in root.split_evenly((3, 1)).iter().zip(PANELS) {
        let points: Vec<Vec<(f64, f64)>> = lines
            .iter()
            .map(|(_, _, ptr, count)| {
                series
                    .iter()
                    .filter_map(|p| {
                        let v = p.pointer(ptr)?.as_f64()?;
                        let secs = p["secs"].as_f64().filter(|s| *s > 0.0 && *count);
                        Some((p["t_secs"].as_f64()?, secs.map_or(v, |s| v / s)))
                    })
                    .collect()
            })
            .collect();
        let y_max = points.iter().flatten().map(|p| p.1).fold(10.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..t_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc(desc)
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 14))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(210, 210, 210))
            .draw()?;
        for ((label, colour, _, _), pts) in lines.iter().zip(points) {
            let colour = *colour;
            let peak = pts.iter().map(|p| p.1).fold(0.0, f64::max);
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))?
                .label(format!("{label} (peak {peak:.0})"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(4))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(160, 160, 160))
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn draws_png_and_svg_from_a_series() {
        let dir = tempfile::tempdir().unwrap();
        let point = |t: f64, tw: u64| {
            json!({"t_secs": t, "secs": 0.5, "started": 10, "completed": 9, "errors": 1,
                   "time_wait": {"server": tw, "client": 0, "other": 2},
                   "snmp": {"RetransSegs": 3}})
        };
        let report = json!({"target": "127.0.0.1:80", "connections": 20, "completed": 18,
                            "series": [point(1.0, 5), point(2.0, 12)]});
        let paths = draw(&dir.path().join("plots"), &report).unwrap();
        assert_eq!(paths.len(), 2);
        let svg = std::fs::read_to_string(&paths[1]).unwrap();
        assert!(
            svg.contains("server side (local = target) (peak 12)"),
            "{svg}"
        );
        // Counts over half-second intervals are drawn per second.
        assert!(svg.contains("started (peak 20)"), "{svg}");
        assert!(std::fs::metadata(&paths[0]).unwrap().len() > 1000);
    }
}

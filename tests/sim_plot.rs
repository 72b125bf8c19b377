//! `teardown sim --plot DIR` writes readable PNG and SVG charts.

use teardown::sim::{self, SimArgs, SimConfig};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Width and height from the IHDR chunk, which must come first.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], &PNG_SIGNATURE, "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR", "PNG without a leading IHDR");
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    (w, h)
}

#[test]
fn sim_plot_writes_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("plots");
    let args = SimArgs {
        connections: 20_000,
        loss: 0.02,
        shards: 4,
        threads: Some(2),
        quiet: true,
        plot: Some(out.clone()),
        ..SimArgs::default()
    };
    let cfg = SimConfig::from_args(&args).expect("valid flags");
    let report = sim::run(&cfg, false);
    sim::plot::plot(&report, &out).expect("plots written");

    for stem in ["states", "states_clients", "latency_cdf"] {
        let png = std::fs::read(out.join(format!("{stem}.png"))).expect("png exists");
        assert!(png.len() > 20_000, "{stem}.png is only {} bytes", png.len());
        assert_eq!(png_size(&png), (1200, 700), "{stem}.png size");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).expect("svg exists");
        assert!(svg.len() > 5_000, "{stem}.svg is only {} bytes", svg.len());
        assert!(
            svg.starts_with("<svg"),
            "{stem}.svg does not start with <svg"
        );
        assert!(
            svg.contains("20,000 connections, loss 2%"),
            "{stem}.svg lacks the workload title"
        );
        assert!(svg.contains("seed 1"), "{stem}.svg lacks the seed");
    }
    let states = std::fs::read_to_string(out.join("states.svg")).expect("svg");
    for label in ["TIME-WAIT", "FIN-WAIT-1", "simulated time (s)"] {
        assert!(states.contains(label), "states.svg lacks {label}");
    }
    let cdf = std::fs::read_to_string(out.join("latency_cdf.svg")).expect("svg");
    for label in ["active closer", "passive closer", "ms, log scale"] {
        assert!(cdf.contains(label), "latency_cdf.svg lacks {label}");
    }
}

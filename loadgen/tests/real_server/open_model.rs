//! The open model: connections started on a schedule, raw requests.

use crate::common::n;
use crate::servers::{have_nginx, Server};
use crate::{loadgen, no_errors, sockstat, time_wait_sides};

/// The open model: `--rate` with `--duration` starts exactly rate × duration
/// connections, each on its schedule; raw bytes are a workload too.
#[test]
fn open_model_runs_on_schedule_with_raw_requests() {
    if !have_nginx() {
        return;
    }
    let nginx = Server::nginx("0");
    let plots = tempfile::tempdir().unwrap();
    let r = loadgen(
        nginx.addr,
        &[
            "--request",
            "raw:GET / HTTP/1.0\\r\\n\\r\\n",
            "--rate",
            "500",
            "--duration",
            "400ms",
            "--plot",
            plots.path().to_str().unwrap(),
        ],
    );
    for file in ["loadgen.png", "loadgen.svg"] {
        assert!(plots.path().join(file).is_file(), "{file}");
    }
    no_errors(&r);
    assert_eq!(r["config"]["model"], "open");
    assert_eq!(n(&r, "/connections"), 200, "{r:#}");
    assert_eq!(n(&r, "/completed"), 200, "{r:#}");
    assert_eq!(n(&r, "/closed_by/server_fin"), 200, "{r:#}");
    // A few may be one entry: see keepalive_0_means_the_server_closes_and_keeps_time_wait.
    let (server, client) = time_wait_sides(nginx.addr);
    assert!(
        (180..=200).contains(&server) && client == 0,
        "TIME-WAIT by side: {server} server, {client} client; {}",
        sockstat()
    );
}

//! `loadgen`: the client side of a `teardown serve` stress run.
//!
//! In the default mode the clients are played by the same engine as the server,
//! one host per worker thread, over the service's UDP wire format. `--kernel`
//! runs the same open/close workload over real kernel TCP sockets instead, and
//! `--kernel --kernel-target ADDR` churns any listening TCP server (see [`real`]).
//!
//! Accounting: a connection is accounted for when the client's host reports it
//! CLOSED (any reason) or the client vanished on purpose (`--runaway-client`),
//! and settled when accounted for or in TIME-WAIT on the client: its teardown
//! is over and TIME-WAIT ends by itself, as on the server. The run ends when
//! every opened connection is settled *and* the server's metrics show no
//! connection outside TIME-WAIT (every server entry reached CLOSED or
//! TIME-WAIT), or when `--timeout` passes. `leaked` is the connections not
//! settled on the client plus the server's entries outside TIME-WAIT at the
//! end; those left in the clients' TIME-WAIT are `client_time_wait_at_end`.

mod args;
pub mod attack;
mod clients;
pub mod kernel;
pub mod merge;
pub mod model;
pub mod real;
mod report;
mod said;
mod server;
pub mod sock;
pub mod spawn;
mod summary;
pub mod tail;
pub mod workers;

use std::time::Instant;

pub use args::{Args, ModelArg};
pub use report::{PerSecond, Report};
pub use summary::summary;

/// How many a schedule at `rate` per second has due once `since` has passed,
/// counting the one due at once. The float-to-int cast saturates, and so does
/// the sum: any rate, however absurd, means "as fast as possible".
fn due_at_rate(since: Instant, rate: f64) -> u64 {
    ((since.elapsed().as_secs_f64() * rate) as u64).saturating_add(1)
}

/// Runs the whole stress test.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    args.validate()?;
    let spawned = if args.spawn_server {
        Some(spawn::Spawned::start(args)?)
    } else {
        None
    };
    let result = if args.kernel_target.is_some() || args.netns {
        real::run(args)
    } else if args.kernel {
        let target = spawned
            .as_ref()
            .and_then(|s| s.kernel)
            .unwrap_or(kernel::DEFAULT_TARGET);
        kernel::run(args, target)
    } else {
        clients::run(args, spawned.as_ref())
    };
    let mut report = result?;
    if let Some(s) = spawned {
        let server = s.stop()?;
        report.json["server_report"] = server;
    }
    if let Some(path) = &args.json {
        teardown::service::net::write_atomically(path, &serde_json::to_vec_pretty(&report.json)?)?;
    }
    Ok(report)
}

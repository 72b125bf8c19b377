//! `teardown serve`'s flags, and the checks they pass before anything is bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{parse_duration, Usage};
use teardown_engine::config::{Config, Profile};

/// Which side closes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum CloseMode {
    /// The server closes right after the handshake (a close-heavy server: TIME-WAIT
    /// lands on the server).
    #[default]
    Server,
    /// The server waits for the client's FIN, then closes.
    Client,
}

/// `teardown serve` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// UDP address of worker 0; worker i listens on the same IP at port + i.
    #[arg(long, default_value = "127.0.0.1:7171")]
    pub listen: SocketAddr,
    /// Worker threads, each with its own socket and host shard (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Engine time = real elapsed time / F; 0.01 makes TIME-WAIT's 60 s pass in 0.6 s.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Which side closes first.
    #[arg(long, value_enum, default_value_t = CloseMode::Server)]
    pub close: CloseMode,
    /// With `--close server`: engine time to hold a connection before closing it
    /// (`--kernel-listen` connections too, for hold × time-scale of real time).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub hold: Duration,
    /// With `--close server`: keep up to N connections ESTABLISHED (over all
    /// workers); each one established past N closes the oldest, as a server
    /// out of connection slots closes its oldest idle ones (nginx's
    /// `ngx_drain_connections`). `POST /release` closes the rest.
    #[arg(long)]
    pub keep: Option<usize>,
    /// HTTP address serving `GET /metrics` (Prometheus text format).
    #[arg(long, default_value = "127.0.0.1:9171")]
    pub metrics: SocketAddr,
    /// Write the final report here (atomically) on SIGINT/SIGTERM.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also accept real kernel TCP connections here and close them first.
    #[arg(long)]
    pub kernel_listen: Option<SocketAddr>,
    /// Permit binding addresses other than loopback.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Timer and limit profile of the server host.
    #[arg(long, default_value_t = Profile::Linux)]
    pub profile: Profile,
    /// Most TIME-WAIT entries (`tcp_max_tw_buckets`), over all workers.
    #[arg(long)]
    pub max_tw_buckets: Option<usize>,
    /// Most orphans (`tcp_max_orphans`), over all workers: a close() past it
    /// resets (TCPAbortOnMemory).
    #[arg(long)]
    pub max_orphans: Option<usize>,
    /// Run this many server processes, each with its own descriptor table,
    /// sharing the `--kernel-listen` port with SO_REUSEPORT (see `service::procs`).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Run as a child of `--processes` in parent PID: SO_REUSEPORT on the
    /// kernel listener, and a stop when the parent dies.
    #[arg(long, hide = true)]
    pub process_of: Option<u32>,
    /// Stop (as on SIGTERM) when process PID, which started this server,
    /// dies: what `loadgen --spawn-server` passes.
    #[arg(long, hide = true)]
    pub parent: Option<u32>,
}

impl Default for ServeArgs {
    fn default() -> ServeArgs {
        ServeArgs {
            listen: "127.0.0.1:7171".parse().expect("literal address"),
            threads: None,
            time_scale: 1.0,
            close: CloseMode::Server,
            hold: Duration::ZERO,
            keep: None,
            metrics: "127.0.0.1:9171".parse().expect("literal address"),
            json: None,
            kernel_listen: None,
            allow_non_loopback: false,
            profile: Profile::Linux,
            max_tw_buckets: None,
            max_orphans: None,
            processes: 1,
            process_of: None,
            parent: None,
        }
    }
}

/// The `--time-scale` range, for the service and loadgen alike: down to
/// 10,000× compression, where one real microsecond (the clock's resolution
/// here) is already ten of the engine's 1 ms ticks, up to 1000× slower.
pub fn check_time_scale(scale: f64) -> Result<(), Usage> {
    crate::cli::ensure((1e-4..=1000.0).contains(&scale), || {
        format!("--time-scale must be in [0.0001, 1000], got {scale}")
    })
}

/// Checks the flags before anything is bound.
pub fn validate(args: &ServeArgs) -> Result<(), Usage> {
    let loopback = |a: &SocketAddr| a.ip().is_loopback();
    let mut addrs = vec![args.listen, args.metrics];
    addrs.extend(args.kernel_listen);
    for a in &addrs {
        crate::cli::ensure(args.allow_non_loopback || loopback(a), || {
            format!("refusing to bind non-loopback address {a} (pass --allow-non-loopback)")
        })?;
    }
    check_time_scale(args.time_scale)?;
    crate::cli::ensure(args.processes >= 1, || {
        "--processes must be at least 1".into()
    })?;
    crate::cli::ensure(
        args.processes == 1 || args.kernel_listen.is_some_and(|a| a.port() != 0),
        || "--processes needs --kernel-listen with a port other than 0 (they share it)".into(),
    )?;
    crate::cli::ensure(args.threads != Some(0), || {
        "--threads must be at least 1".into()
    })?;
    crate::cli::ensure(
        args.keep.is_none() || args.close == CloseMode::Server,
        || "--keep needs --close server (the server closes what it keeps)".into(),
    )?;
    let threads = worker_count(args);
    crate::cli::ensure(args.listen.port() as usize + threads <= 65_536, || {
        format!(
            "{threads} workers do not fit above port {}",
            args.listen.port()
        )
    })?;
    Ok(())
}

pub(super) fn worker_count(args: &ServeArgs) -> usize {
    args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// The server host configuration of one shard.
pub(super) fn host_config(args: &ServeArgs, workers: usize) -> Config {
    let mut cfg = Config::profile(args.profile);
    if let Some(n) = args.max_tw_buckets {
        cfg.max_tw_buckets = n;
    }
    if let Some(n) = args.max_orphans {
        cfg.max_orphans = n;
    }
    // The limits are host-wide; each shard holds its share.
    cfg.share_host_limits(workers);
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_loopback() {
        let args = ServeArgs {
            listen: "0.0.0.0:7171".parse().unwrap(),
            ..ServeArgs::default()
        };
        assert!(validate(&args).is_err());
        let ok = ServeArgs {
            allow_non_loopback: true,
            ..args
        };
        assert!(validate(&ok).is_ok());
        let scale = ServeArgs {
            time_scale: 0.0,
            ..ServeArgs::default()
        };
        assert!(validate(&scale).is_err());
        let keep_but_client_closes = ServeArgs {
            keep: Some(10),
            close: CloseMode::Client,
            ..ServeArgs::default()
        };
        assert!(validate(&keep_but_client_closes).is_err());
    }
}

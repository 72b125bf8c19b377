//! The kernel's own counters, read from a live Linux host (or one of its network
//! namespaces) or from a recording of the same files.
//!
//! Each reader has a pure `parse` over the file's text (or the netlink dump's
//! bytes) so that recorded fixtures and a live host go through the same code;
//! the live readers take the per-namespace files from `/proc/thread-self/net`,
//! which is the calling thread's namespace after `netns::enter` (plain
//! `/proc/net` follows the thread-group leader's instead).
//!
//! Names are the kernel's: `TcpExt`/`TW`, `TCP`/`inuse`, `tw_sock_TCP`,
//! `tcp_max_tw_buckets`.

#[cfg(target_os = "linux")]
pub mod diag;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod netstat;
pub mod slabinfo;
pub mod sockstat;
pub mod state;
pub mod sysctl;

use std::path::{Path, PathBuf};

/// Per-namespace proc files of the calling thread (`proc_net` of its netns).
pub const PROC_NET: &str = "/proc/thread-self/net";

/// A failure to read or parse one of the kernel's files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path; the I/O error is its source (anyhow's `{:#}` prints both).
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {msg}")]
    Parse { what: String, msg: String },
    #[error("sock_diag: {0}")]
    Netlink(String),
}

impl Error {
    pub(crate) fn parse(what: &str, msg: impl Into<String>) -> Error {
        Error::Parse {
            what: what.to_string(),
            msg: msg.into(),
        }
    }
}

/// Reads a whole file, naming it in the error.
pub fn read(path: impl AsRef<Path>) -> Result<String, Error> {
    let path = path.as_ref();
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

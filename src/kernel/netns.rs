//! Reading inside a named network namespace (`ip netns add NAME`).
//!
//! setns(2) with `CLONE_NEWNET` moves only the calling thread, so the readings
//! run on a thread of their own that joins the namespace and ends with it; the
//! rest of the process stays where it was. From that thread
//! `/proc/thread-self/net/*`, new netlink sockets and `/proc/sys/net` are the
//! namespace's (`net_ctl_header_lookup` picks the sysctl set by the current
//! task's namespace).

use std::fs::File;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};

use super::Error;

/// Where `ip netns` keeps its namespaces' bind mounts.
pub const RUN_DIR: &str = "/var/run/netns";

/// The bind mount of namespace `name`, refusing names that are not one path
/// component.
pub fn path(name: &str) -> Result<PathBuf, Error> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::parse(
            "netns",
            format!("'{name}' is not a namespace name"),
        ));
    }
    Ok(PathBuf::from(RUN_DIR).join(name))
}

/// Runs `f` on a thread inside namespace `name` (or the current one for
/// `None`) and returns what it returns.
pub fn run_in<T: Send>(name: Option<&str>, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
    let Some(name) = name else {
        return Ok(f());
    };
    let path = path(name)?;
    let ns = File::open(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Io {
                path: path.clone(),
                source: e.into(),
            })?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_path_component() {
        assert_eq!(path("blue").unwrap(), PathBuf::from("/var/run/netns/blue"));
        for bad in ["", ".", "..", "a/b", "../etc"] {
            assert!(path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_namespace_is_an_error_naming_it() {
        let e = run_in(Some("teardown-no-such-ns"), || ()).unwrap_err();
        assert!(
            e.to_string().contains("/var/run/netns/teardown-no-such-ns"),
            "{e}"
        );
    }
}

//! `/proc/slabinfo` (version 2.x): the slab caches' object counts and sizes
//! (`cache_show` in mm/slab_common.c). Root-only on most hosts, and the whole
//! host's (slabs are not per network namespace).
//!
//! A row is `name active_objs num_objs objsize objperslab pagesperslab : tunables
//! ... : slabdata ...`; only the first four fields are used here. `objsize` is
//! the slab stride (`tw_sock_TCP` is a 248-byte struct in a 256-byte slot).

use std::collections::BTreeMap;
use std::path::Path;

use super::Error;

/// The path, readable by root only on most hosts.
pub const PATH: &str = "/proc/slabinfo";

/// The caches that hold TCP's sockets: TIME-WAIT and orphaned FIN-WAIT-2
/// mini-sockets, full sockets, and SYN-RECEIVED request sockets.
pub const TCP_CACHES: [&str; 3] = ["tw_sock_TCP", "TCP", "request_sock_TCP"];

/// The IPv6 sockets' own caches, the same three kinds. Their sockets are in
/// sockstat's `tw` and in sock_diag's states as well, so a whole host's TCP
/// memory is both sets.
pub const TCP6_CACHES: [&str; 3] = ["tw_sock_TCPv6", "TCPv6", "request_sock_TCPv6"];

/// One cache's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cache {
    pub active_objs: u64,
    pub num_objs: u64,
    /// Bytes per object slot.
    pub objsize: u64,
}

impl Cache {
    /// Bytes held by the objects in use (saturating: the counts may come
    /// from a damaged recording, `observe --replay`).
    pub fn active_bytes(&self) -> u64 {
        self.active_objs.saturating_mul(self.objsize)
    }
}

/// The caches of one slabinfo file by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slabinfo {
    caches: BTreeMap<String, Cache>,
}

impl Slabinfo {
    /// Parses the file: its version line, its `#` header and one row per cache.
    pub fn parse(text: &str) -> Result<Slabinfo, Error> {
        let mut s = Slabinfo::default();
        let mut lines = text.lines();
        match lines.next() {
            None => return Ok(s),
            Some(v) if v.starts_with("slabinfo - version: 2.") => {}
            Some(v) => return Err(Error::parse(PATH, format!("unknown version line '{v}'"))),
        }
        for line in lines.filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let f: Vec<&str> = line.split_whitespace().take(4).collect();
            let num = |i: usize| -> Result<u64, Error> {
                f.get(i)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::parse(PATH, format!("bad row '{line}'")))
            };
            let cache = Cache {
                active_objs: num(1)?,
                num_objs: num(2)?,
                objsize: num(3)?,
            };
            s.caches.insert(f[0].to_string(), cache);
        }
        Ok(s)
    }

    /// Reads [`PATH`] (or a recording of it).
    pub fn read(path: &Path) -> Result<Slabinfo, Error> {
        Slabinfo::parse(&super::read(path)?)
    }

    /// One cache, `None` when this kernel has no such cache (or merged it into
    /// another under a different name).
    pub fn get(&self, name: &str) -> Option<Cache> {
        self.caches.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "slabinfo - version: 2.1\n\
        # name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ...\n\
        tw_sock_TCP 32 48 256 16 1 : tunables 0 0 0 : slabdata 3 3 0\n\
        TCP 26 26 2368 13 8 : tunables 0 0 0 : slabdata 2 2 0\n";

    #[test]
    fn rows_by_name() {
        let s = Slabinfo::parse(TEXT).unwrap();
        let tw = s.get("tw_sock_TCP").unwrap();
        assert_eq!((tw.active_objs, tw.num_objs, tw.objsize), (32, 48, 256));
        assert_eq!(tw.active_bytes(), 32 * 256);
        assert_eq!(s.get("TCP").unwrap().objsize, 2368);
        assert_eq!(s.get("request_sock_TCP"), None);
        assert_eq!(Slabinfo::parse("").unwrap(), Slabinfo::default());
    }

    #[test]
    fn bad_rows_and_versions_are_errors() {
        assert!(Slabinfo::parse("slabinfo - version: 1.1\n").is_err());
        assert!(Slabinfo::parse("slabinfo - version: 2.1\nTCP x 1 2\n").is_err());
        assert!(Slabinfo::parse("slabinfo - version: 2.1\nTCP 1 1\n").is_err());
    }
}

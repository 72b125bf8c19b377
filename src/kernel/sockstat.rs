//! `/proc/net/sockstat` and `sockstat6`: socket counts and memory per protocol
//! (`sockstat_seq_show` in net/ipv4/proc.c, `sockstat6_seq_show` in net/ipv6/proc.c).
//!
//! Each line is `PROTO: key value key value ...`. Scope differs by field: `TCP
//! inuse` and `tw` are per network namespace (`tw` is the namespace's
//! `tcp_death_row.tw_refcount - 1`, the number `tcp_max_tw_buckets` caps), while
//! `orphan`, `alloc` and `mem` (pages) are the whole host's.

use std::collections::BTreeMap;
use std::path::Path;

use super::Error;

/// The fields of sockstat and sockstat6 by protocol (`sockets`, `TCP`, `TCP6`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sockstat {
    protos: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Sockstat {
    /// Parses one sockstat file; `what` names it in errors.
    pub fn parse(what: &str, text: &str) -> Result<Sockstat, Error> {
        let mut s = Sockstat::default();
        s.add(what, text)?;
        Ok(s)
    }

    /// Adds the lines of another file (sockstat6 after sockstat).
    pub fn add(&mut self, what: &str, text: &str) -> Result<(), Error> {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (proto, rest) = line
                .split_once(':')
                .ok_or_else(|| Error::parse(what, format!("line without 'PROTO:': '{line}'")))?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            if !words.len().is_multiple_of(2) {
                return Err(Error::parse(what, format!("{proto}: odd number of words")));
            }
            let slot = self.protos.entry(proto.trim().to_string()).or_default();
            for kv in words.chunks(2) {
                let v = kv[1].parse::<u64>().map_err(|_| {
                    Error::parse(
                        what,
                        format!("{proto} {}: '{}' is not a number", kv[0], kv[1]),
                    )
                })?;
                slot.insert(kv[0].to_string(), v);
            }
        }
        Ok(())
    }

    /// Reads `sockstat` and, when IPv6 is there, `sockstat6` from a proc net directory.
    pub fn read(proc_net: &Path) -> Result<Sockstat, Error> {
        let path = proc_net.join("sockstat");
        let mut s = Sockstat::parse(&path.display().to_string(), &super::read(&path)?)?;
        let v6 = proc_net.join("sockstat6");
        if let Ok(text) = std::fs::read_to_string(&v6) {
            s.add(&v6.display().to_string(), &text)?;
        }
        Ok(s)
    }

    /// One field, such as (`TCP`, `tw`).
    pub fn get(&self, proto: &str, key: &str) -> Option<u64> {
        self.protos.get(proto)?.get(key).copied()
    }

    /// Bytes of TCP's memory accounting (`TCP mem` is in pages; saturating,
    /// as the count may come from a damaged recording).
    pub fn tcp_mem_bytes(&self) -> Option<u64> {
        Some(self.get("TCP", "mem")?.saturating_mul(page_size()))
    }
}

/// The page size that `TCP mem` counts in.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 on an unknown name.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_by_protocol() {
        let mut s = Sockstat::parse(
            "sockstat",
            "sockets: used 13\nTCP: inuse 1 orphan 2 tw 3 alloc 4 mem 55\nUDP: inuse 0 mem 0\n",
        )
        .unwrap();
        s.add("sockstat6", "TCP6: inuse 7\nUDP6: inuse 0\n")
            .unwrap();
        assert_eq!(s.get("sockets", "used"), Some(13));
        assert_eq!(s.get("TCP", "tw"), Some(3));
        assert_eq!(s.get("TCP6", "inuse"), Some(7));
        assert_eq!(s.get("TCP", "nope"), None);
        assert_eq!(s.tcp_mem_bytes(), Some(55 * page_size()));
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two() && page_size() >= 4096);
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in ["TCP: inuse\n", "TCP: inuse x\n", "TCP inuse 1\n"] {
            assert!(Sockstat::parse("sockstat", bad).is_err(), "{bad}");
        }
    }
}

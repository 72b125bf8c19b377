//! The SNMP-style counters of `/proc/net/netstat` (`TcpExt`, `IpExt`, ...) and
//! `/proc/net/snmp` (`Tcp`, `Ip`, ...), under the kernel's own names.
//!
//! Both files are pairs of lines, `Group: name name ...` then `Group: value value
//! ...` (`netstat_seq_show` / `snmp_seq_show` in net/ipv4/proc.c), so a counter
//! is addressed as (`TcpExt`, `TW`). A kernel that adds counters adds columns;
//! this parser keeps whatever is there.

use std::collections::BTreeMap;
use std::path::Path;

use super::Error;

/// Counters by group and name. The values are the kernel's `unsigned long`
/// MIBs, except a few signed fields such as `Tcp MaxConn` (-1: no limit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    groups: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Counters {
    /// Parses one file of header/value line pairs; `what` names it in errors.
    pub fn parse(what: &str, text: &str) -> Result<Counters, Error> {
        let mut c = Counters::default();
        c.add(what, text)?;
        Ok(c)
    }

    /// Adds the groups of another file of the same format (netstat + snmp).
    pub fn add(&mut self, what: &str, text: &str) -> Result<(), Error> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        while let Some(header) = lines.next() {
            let (group, names) = split_group(what, header)?;
            let Some(values) = lines.next() else {
                return Err(Error::parse(
                    what,
                    format!("{group}: header without values"),
                ));
            };
            let (vgroup, values) = split_group(what, values)?;
            if vgroup != group {
                return Err(Error::parse(
                    what,
                    format!("{group}: header followed by {vgroup}'s values"),
                ));
            }
            let names: Vec<&str> = names.split_whitespace().collect();
            let values: Vec<&str> = values.split_whitespace().collect();
            if names.len() != values.len() {
                return Err(Error::parse(
                    what,
                    format!("{group}: {} names but {} values", names.len(), values.len()),
                ));
            }
            let slot = self.groups.entry(group.to_string()).or_default();
            for (name, value) in names.into_iter().zip(values) {
                let v = value.parse::<i64>().map_err(|_| {
                    Error::parse(what, format!("{group} {name}: '{value}' is not a number"))
                })?;
                slot.insert(name.to_string(), v);
            }
        }
        Ok(())
    }

    /// Reads `netstat` and `snmp` from a proc net directory ([`super::PROC_NET`]).
    pub fn read(proc_net: &Path) -> Result<Counters, Error> {
        let mut c = Counters::default();
        for file in ["netstat", "snmp"] {
            let path = proc_net.join(file);
            c.add(&path.display().to_string(), &super::read(&path)?)?;
        }
        Ok(c)
    }

    /// One counter, `None` when this kernel does not have it.
    pub fn get(&self, group: &str, name: &str) -> Option<i64> {
        self.groups.get(group)?.get(name).copied()
    }

    /// How much a counter grew since `earlier`; 0 when either lacks it. The
    /// MIBs only grow, so a negative difference (a namespace recreated between
    /// samples) reads as 0.
    pub fn delta(&self, earlier: &Counters, group: &str, name: &str) -> u64 {
        match (self.get(group, name), earlier.get(group, name)) {
            (Some(now), Some(then)) => now.saturating_sub(then).max(0) as u64,
            _ => 0,
        }
    }

    /// The names of one group, sorted.
    pub fn names<'a>(&'a self, group: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.groups
            .get(group)
            .into_iter()
            .flat_map(|g| g.keys().map(String::as_str))
    }
}

fn split_group<'a>(what: &str, line: &'a str) -> Result<(&'a str, &'a str), Error> {
    line.split_once(':')
        .map(|(g, rest)| (g.trim(), rest))
        .ok_or_else(|| Error::parse(what, format!("line without 'Group:': '{line}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT: &str = "TcpExt: SyncookiesSent TW TWKilled TCPTimeWaitOverflow\n\
                           TcpExt: 0 738088 0 12\n\
                           IpExt: InNoRoutes InOctets\n\
                           IpExt: 0 123456789012\n";

    #[test]
    fn pairs_of_lines_by_name() {
        let c = Counters::parse("netstat", NETSTAT).unwrap();
        assert_eq!(c.get("TcpExt", "TW"), Some(738_088));
        assert_eq!(c.get("TcpExt", "TCPTimeWaitOverflow"), Some(12));
        assert_eq!(c.get("IpExt", "InOctets"), Some(123_456_789_012));
        assert_eq!(c.get("TcpExt", "TWRecycled"), None);
        assert_eq!(
            c.names("IpExt").collect::<Vec<_>>(),
            ["InNoRoutes", "InOctets"]
        );
    }

    #[test]
    fn snmp_adds_its_groups_and_keeps_signed_fields() {
        let mut c = Counters::parse("netstat", NETSTAT).unwrap();
        c.add(
            "snmp",
            "Tcp: RtoAlgorithm MaxConn ActiveOpens\nTcp: 1 -1 13\n",
        )
        .unwrap();
        assert_eq!(c.get("Tcp", "MaxConn"), Some(-1));
        assert_eq!(c.get("Tcp", "ActiveOpens"), Some(13));
        assert_eq!(c.get("TcpExt", "TW"), Some(738_088));
    }

    #[test]
    fn deltas_never_go_negative() {
        let a = Counters::parse("a", "TcpExt: TW\nTcpExt: 10\n").unwrap();
        let b = Counters::parse("b", "TcpExt: TW\nTcpExt: 25\n").unwrap();
        assert_eq!(b.delta(&a, "TcpExt", "TW"), 15);
        assert_eq!(a.delta(&b, "TcpExt", "TW"), 0);
        assert_eq!(b.delta(&a, "TcpExt", "Nope"), 0);
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        for bad in [
            "TcpExt: TW TWKilled\nTcpExt: 1\n",
            "TcpExt: TW\n",
            "TcpExt: TW\nIpExt: 1\n",
            "TcpExt: TW\nTcpExt: many\n",
            "no colon here\n",
        ] {
            let e = Counters::parse("netstat", bad).unwrap_err();
            assert!(e.to_string().starts_with("netstat: "), "{e}");
        }
    }
}

//! The sysctls the model uses, from `/proc/sys/net/ipv4` (Documentation/
//! networking/ip-sysctl.rst). All but `tcp_max_orphans` are per network
//! namespace: opened from a thread inside one, `/proc/sys/net` shows that
//! namespace's values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Error;

/// The live directory (the calling thread's namespace).
pub const DIR: &str = "/proc/sys/net/ipv4";

/// The sysctls the model uses, under their own names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctls {
    /// Cap on TIME-WAIT plus orphaned FIN-WAIT-2 mini-sockets; past it a close
    /// skips TIME-WAIT and counts `TCPTimeWaitOverflow` (`tcp_time_wait`).
    pub tcp_max_tw_buckets: u64,
    /// Seconds an orphaned FIN-WAIT-2 lasts.
    pub tcp_fin_timeout: u64,
    /// The ephemeral ports connect() picks from, inclusive.
    pub ip_local_port_range: PortRange,
    /// 0 off, 1 on, 2 loopback only: connect() may reuse a TIME-WAIT 4-tuple
    /// (`tcp_twsk_unique`), which needs timestamps.
    pub tcp_tw_reuse: u8,
    pub tcp_timestamps: u8,
    /// FIN retransmissions of an orphan before it is dropped (0 means 8).
    pub tcp_orphan_retries: u8,
    /// 1: an RST does not end TIME-WAIT (RFC 1337).
    pub tcp_rfc1337: u8,
    /// Cap on orphans (sockets closed by their application that still hold a
    /// full socket); past it a close() resets (`TCPAbortOnMemory`). Host-wide,
    /// not per namespace: only the initial namespace has the file, so `None`
    /// read from any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_max_orphans: Option<u64>,
    /// SYN retransmissions of a connect() before it fails, plus
    /// `tcp_syn_linear_timeouts` since 6.5 (`tcp_write_timeout`). `None` in
    /// observations made before it was read, as are the three below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_syn_retries: Option<u8>,
    /// SYN retransmissions on the initial RTO before it doubles
    /// (`tcp_retransmit_timer`). Linux >= 6.5: `None` before, where the RTO
    /// doubles from the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_syn_linear_timeouts: Option<u8>,
    /// SYN-ACK retransmissions before a SYN-RECEIVED request socket is
    /// dropped (`reqsk_timer_handler`): lowered against SYN floods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_synack_retries: Option<u8>,
    /// How long a connection's data retransmissions go on before it is
    /// dropped: the time this many doublings from 200 ms take
    /// (`tcp_write_timeout`, `tcp_model_timeout`; 924.6 s at 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_retries2: Option<u8>,
}

/// `ip_local_port_range`: `low high`, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "[u16; 2]", try_from = "[u16; 2]")]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl From<PortRange> for [u16; 2] {
    fn from(r: PortRange) -> [u16; 2] {
        [r.low, r.high]
    }
}

impl TryFrom<[u16; 2]> for PortRange {
    type Error = String;

    fn try_from([low, high]: [u16; 2]) -> Result<PortRange, String> {
        if low > high {
            return Err(format!("ip_local_port_range: low {low} above high {high}"));
        }
        Ok(PortRange { low, high })
    }
}

impl PortRange {
    /// Ports in the range.
    pub fn size(&self) -> u32 {
        u32::from(self.high) - u32::from(self.low) + 1
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

impl Sysctls {
    /// Reads the sysctls from `dir`: [`DIR`], or a copy of it.
    pub fn read(dir: &Path) -> Result<Sysctls, Error> {
        Sysctls::parse(&read_files(dir)?)
    }

    /// Parses the files' contents by file name ([`read_files`], or a recording).
    pub fn parse(files: &BTreeMap<String, String>) -> Result<Sysctls, Error> {
        let get = |name: &str| {
            files
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| Error::parse(name, "missing"))
        };
        Ok(Sysctls {
            tcp_max_tw_buckets: number(get("tcp_max_tw_buckets")?, "tcp_max_tw_buckets")?,
            tcp_fin_timeout: number(get("tcp_fin_timeout")?, "tcp_fin_timeout")?,
            ip_local_port_range: port_range(get("ip_local_port_range")?)?,
            tcp_tw_reuse: number(get("tcp_tw_reuse")?, "tcp_tw_reuse")?,
            tcp_timestamps: number(get("tcp_timestamps")?, "tcp_timestamps")?,
            tcp_orphan_retries: number(get("tcp_orphan_retries")?, "tcp_orphan_retries")?,
            tcp_rfc1337: number(get("tcp_rfc1337")?, "tcp_rfc1337")?,
            tcp_max_orphans: optional(files, "tcp_max_orphans")?,
            tcp_syn_retries: optional(files, "tcp_syn_retries")?,
            tcp_syn_linear_timeouts: optional(files, "tcp_syn_linear_timeouts")?,
            tcp_synack_retries: optional(files, "tcp_synack_retries")?,
            tcp_retries2: optional(files, "tcp_retries2")?,
        })
    }

    /// The file names under [`DIR`] that [`Sysctls::read`] opens.
    pub const NAMES: [&'static str; 7] = [
        "tcp_max_tw_buckets",
        "tcp_fin_timeout",
        "ip_local_port_range",
        "tcp_tw_reuse",
        "tcp_timestamps",
        "tcp_orphan_retries",
        "tcp_rfc1337",
    ];

    /// Host-wide sysctls, read where the namespace shows them.
    pub const HOST_WIDE: [&'static str; 1] = ["tcp_max_orphans"];

    /// Per-namespace sysctls read where they are: `tcp_syn_linear_timeouts`
    /// is missing before Linux 6.5, and recordings made before these were
    /// read have none of them.
    pub const OPTIONAL: [&'static str; 4] = [
        "tcp_syn_retries",
        "tcp_syn_linear_timeouts",
        "tcp_synack_retries",
        "tcp_retries2",
    ];
}

/// The contents of [`Sysctls::NAMES`] under `dir`, by name, and of those of
/// [`Sysctls::HOST_WIDE`] and [`Sysctls::OPTIONAL`] that are there.
pub fn read_files(dir: &Path) -> Result<BTreeMap<String, String>, Error> {
    let mut files: BTreeMap<String, String> = Sysctls::NAMES
        .iter()
        .map(|name| Ok((name.to_string(), super::read(dir.join(name))?)))
        .collect::<Result<_, Error>>()?;
    for name in Sysctls::HOST_WIDE.iter().chain(&Sysctls::OPTIONAL) {
        let path = dir.join(name);
        if path.exists() {
            files.insert(name.to_string(), super::read(path)?);
        }
    }
    Ok(files)
}

/// `name` parsed when `files` has it.
fn optional<T: std::str::FromStr>(
    files: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<T>, Error> {
    files.get(name).map(|t| number(t, name)).transpose()
}

fn number<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, Error> {
    text.trim()
        .parse()
        .map_err(|_| Error::parse(name, format!("'{}' is not a number in range", text.trim())))
}

/// Parses `low<TAB>high`.
pub fn port_range(text: &str) -> Result<PortRange, Error> {
    const NAME: &str = "ip_local_port_range";
    let mut f = text.split_whitespace();
    let (Some(low), Some(high), None) = (f.next(), f.next(), f.next()) else {
        return Err(Error::parse(
            NAME,
            format!("'{}' is not 'low high'", text.trim()),
        ));
    };
    let r = PortRange {
        low: number(low, NAME)?,
        high: number(high, NAME)?,
    };
    if r.low > r.high {
        return Err(Error::parse(
            NAME,
            format!("low {} above high {}", r.low, r.high),
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        let r = port_range("32768\t60999\n").unwrap();
        assert_eq!((r.low, r.high, r.size()), (32768, 60999, 28_232));
        assert!(r.contains(32768) && r.contains(60999) && !r.contains(61000));
        assert_eq!(serde_json::to_string(&r).unwrap(), "[32768,60999]");
        assert_eq!(
            serde_json::from_str::<PortRange>("[32768,60999]").unwrap(),
            r
        );
        assert!(serde_json::from_str::<PortRange>("[9,8]").is_err());
        for bad in ["", "1", "1 2 3", "9 8", "1 70000", "a b"] {
            assert!(port_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_a_directory_and_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let values = ["4096", "60", "32768 60999", "2", "1", "0", "0"];
        for (name, v) in Sysctls::NAMES.iter().zip(values) {
            std::fs::write(dir.path().join(name), format!("{v}\n")).unwrap();
        }
        let s = Sysctls::read(dir.path()).unwrap();
        assert_eq!(s.tcp_max_tw_buckets, 4096);
        assert_eq!(s.tcp_tw_reuse, 2);
        assert_eq!(s.ip_local_port_range.size(), 28_232);
        // The host-wide one is read where it is there (the initial namespace).
        assert_eq!(s.tcp_max_orphans, None);
        std::fs::write(dir.path().join("tcp_max_orphans"), "65536\n").unwrap();
        assert_eq!(
            Sysctls::read(dir.path()).unwrap().tcp_max_orphans,
            Some(65_536)
        );
        std::fs::write(dir.path().join("tcp_max_orphans"), "many\n").unwrap();
        let e = Sysctls::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tcp_max_orphans"), "{e}");
        std::fs::remove_file(dir.path().join("tcp_rfc1337")).unwrap();
        let e = Sysctls::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tcp_rfc1337"), "{e}");
    }

    /// The retry sysctls are read where they are: a recording made before
    /// they were read has none, a kernel before 6.5 no linear timeouts.
    #[test]
    fn reads_the_retry_sysctls_where_present() {
        let dir = tempfile::tempdir().unwrap();
        let values = ["4096", "60", "32768 60999", "2", "1", "0", "0"];
        for (name, v) in Sysctls::NAMES.iter().zip(values) {
            std::fs::write(dir.path().join(name), format!("{v}\n")).unwrap();
        }
        let s = Sysctls::read(dir.path()).unwrap();
        let retries = |s: &Sysctls| {
            [
                s.tcp_syn_retries,
                s.tcp_syn_linear_timeouts,
                s.tcp_synack_retries,
                s.tcp_retries2,
            ]
        };
        assert_eq!(retries(&s), [None; 4]);
        let json = serde_json::to_string(&s).unwrap();
        for name in Sysctls::OPTIONAL {
            assert!(!json.contains(name), "{json}");
        }
        for (name, v) in Sysctls::OPTIONAL.iter().zip(["3", "12", "2", "8"]) {
            std::fs::write(dir.path().join(name), format!("{v}\n")).unwrap();
        }
        let s = Sysctls::read(dir.path()).unwrap();
        assert_eq!(retries(&s), [Some(3), Some(12), Some(2), Some(8)]);
        let back: Sysctls = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        std::fs::remove_file(dir.path().join("tcp_syn_linear_timeouts")).unwrap();
        let s = Sysctls::read(dir.path()).unwrap();
        assert_eq!(retries(&s), [Some(3), None, Some(2), Some(8)]);
        // Present but not a u8: an error naming the file.
        std::fs::write(dir.path().join("tcp_synack_retries"), "256\n").unwrap();
        let e = Sysctls::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tcp_synack_retries"), "{e}");
    }
}

//! The raw readings of one observation, as the kernel gave them: two reads of
//! the counters `interval` apart, then the files and the socket dump of "now".
//! A recording can be saved to a directory and loaded back, so recorded
//! fixtures and a live host go through the same parsing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::kernel::{self, diag, slabinfo, sysctl, Error, PROC_NET};

/// `netstat` and `snmp` at one instant.
#[derive(Clone, Debug)]
pub struct RawCounters {
    pub netstat: String,
    pub snmp: String,
}

/// Everything read once, after the second counter read.
#[derive(Clone, Debug)]
pub struct RawNow {
    pub sockstat: String,
    pub sockstat6: Option<String>,
    /// `None` when /proc/slabinfo is not readable (not root).
    pub slabinfo: Option<String>,
    /// File name under /proc/sys/net/ipv4 → contents.
    pub sysctl: BTreeMap<String, String>,
    /// The sock_diag response bytes ([`diag::dump_raw`]).
    pub diag: Vec<u8>,
}

/// One observation's raw readings.
#[derive(Clone, Debug)]
pub struct Recording {
    pub before: RawCounters,
    pub after: RawCounters,
    /// Time between the two counter reads, as measured.
    pub interval: Duration,
    pub now: RawNow,
}

impl RawCounters {
    fn read(proc_net: &Path) -> Result<RawCounters, Error> {
        Ok(RawCounters {
            netstat: kernel::read(proc_net.join("netstat"))?,
            snmp: kernel::read(proc_net.join("snmp"))?,
        })
    }
}

impl Recording {
    /// Reads the calling thread's namespace: the counters, `interval` later the
    /// counters again and the rest. `progress` is told when the first counters
    /// are in (the interval starts) and before the second read.
    pub fn read_live(interval: Duration, progress: impl Fn(&str)) -> Result<Recording, Error> {
        let proc_net = Path::new(PROC_NET);
        let before = RawCounters::read(proc_net)?;
        let start = Instant::now();
        progress(&format!("first sample taken; the second in {interval:?}"));
        std::thread::sleep(interval);
        progress("taking the second sample");
        let after = RawCounters::read(proc_net)?;
        let interval = start.elapsed();
        let sysctl = sysctl::read_files(Path::new(sysctl::DIR))?;
        let now = RawNow {
            sockstat: kernel::read(proc_net.join("sockstat"))?,
            sockstat6: std::fs::read_to_string(proc_net.join("sockstat6")).ok(),
            slabinfo: std::fs::read_to_string(slabinfo::PATH).ok(),
            sysctl,
            diag: diag::dump_raw()?,
        };
        Ok(Recording {
            before,
            after,
            interval,
            now,
        })
    }

    /// Writes the recording under `dir` (created): `before/`, `after/`,
    /// `interval_secs`, `sockstat`, `sockstat6`, `slabinfo`, `sysctl/`, `diag.bin`.
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let write = |rel: &str, bytes: &[u8]| {
            let path = dir.join(rel);
            let made = match path.parent() {
                Some(p) => std::fs::create_dir_all(p),
                None => Ok(()),
            };
            made.and_then(|()| std::fs::write(&path, bytes))
                .map_err(|source| Error::Io { path, source })
        };
        for (sub, c) in [("before", &self.before), ("after", &self.after)] {
            write(&format!("{sub}/netstat"), c.netstat.as_bytes())?;
            write(&format!("{sub}/snmp"), c.snmp.as_bytes())?;
        }
        write(
            "interval_secs",
            format!("{}\n", self.interval.as_secs_f64()).as_bytes(),
        )?;
        write("sockstat", self.now.sockstat.as_bytes())?;
        if let Some(t) = &self.now.sockstat6 {
            write("sockstat6", t.as_bytes())?;
        }
        if let Some(t) = &self.now.slabinfo {
            write("slabinfo", t.as_bytes())?;
        }
        for (name, text) in &self.now.sysctl {
            write(&format!("sysctl/{name}"), text.as_bytes())?;
        }
        write("diag.bin", &self.now.diag)
    }

    /// Loads a recording written by [`Recording::save`].
    pub fn load(dir: &Path) -> Result<Recording, Error> {
        let text = |rel: &str| kernel::read(dir.join(rel));
        let counters = |sub: &str| -> Result<RawCounters, Error> {
            Ok(RawCounters {
                netstat: text(&format!("{sub}/netstat"))?,
                snmp: text(&format!("{sub}/snmp"))?,
            })
        };
        // Rates divide by it: a microsecond at least (what a live sample can
        // be apart), and a span a Duration holds.
        let interval = text("interval_secs")?
            .trim()
            .parse()
            .ok()
            .and_then(|s: f64| Duration::try_from_secs_f64(s).ok())
            .filter(|d| *d >= Duration::from_micros(1))
            .ok_or_else(|| {
                Error::parse(
                    "interval_secs",
                    "not a number of seconds from a microsecond up",
                )
            })?;
        let sysctl = sysctl::read_files(&dir.join("sysctl"))?;
        let diag_path = dir.join("diag.bin");
        Ok(Recording {
            before: counters("before")?,
            after: counters("after")?,
            interval,
            now: RawNow {
                sockstat: text("sockstat")?,
                sockstat6: text("sockstat6").ok(),
                slabinfo: text("slabinfo").ok(),
                sysctl,
                diag: std::fs::read(&diag_path).map_err(|source| Error::Io {
                    path: diag_path,
                    source,
                })?,
            },
        })
    }
}

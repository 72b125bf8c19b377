//! `--shard I/N`: one of N loadgen processes (a Kubernetes Indexed Job's
//! completion index I, see deploy/) doing the I-th share of one workload, so
//! that `loadgen merge` of the N reports is the whole run.
//!
//! Shares are contiguous and cover everything exactly once: of C connections
//! shard I takes C/N, plus one when I < C mod N; the rate is R/N; of a source
//! address or port range, the I-th contiguous slice (which needs at least N
//! addresses or ports). `--concurrency` is each shard's own.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Shard `index` of `count`, 0-based as Kubernetes' completion index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("'{s}' is not I/N with 0 <= I < N");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's part of `total` items.
    pub fn count_of(self, total: u64) -> u64 {
        let n = u64::from(self.count);
        total / n + u64::from(u64::from(self.index) < total % n)
    }

    /// This shard's part of a rate.
    pub fn rate_of(self, rate: f64) -> f64 {
        rate / f64::from(self.count)
    }

    /// The I-th contiguous slice of `lo..=hi` (sizes differing by at most one).
    fn slice(self, lo: u64, hi: u64) -> Result<(u64, u64), String> {
        let len = hi - lo + 1;
        let n = u64::from(self.count);
        if len < n {
            return Err(format!("{len} values cannot be split into {n} shards"));
        }
        let i = u64::from(self.index);
        let start = lo + i * (len / n) + i.min(len % n);
        Ok((start, start + self.count_of(len) - 1))
    }

    /// This shard's slice of a source address range.
    pub fn ips_of(self, (lo, hi): (Ipv4Addr, Ipv4Addr)) -> Result<(Ipv4Addr, Ipv4Addr), String> {
        let (a, b) = self
            .slice(u32::from(lo).into(), u32::from(hi).into())
            .map_err(|e| format!("--source-ips {lo}-{hi}: {e}"))?;
        Ok((Ipv4Addr::from(a as u32), Ipv4Addr::from(b as u32)))
    }

    /// This shard's slice of a source port range.
    pub fn ports_of(self, (lo, hi): (u16, u16)) -> Result<(u16, u16), String> {
        let (a, b) = self
            .slice(lo.into(), hi.into())
            .map_err(|e| format!("--source-ports {lo}-{hi}: {e}"))?;
        Ok((a as u16, b as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(n: u32) -> impl Iterator<Item = Shard> {
        (0..n).map(move |index| Shard { index, count: n })
    }

    #[test]
    fn parses_zero_based() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 1, count: 4 }.to_string(), "1/4");
    }

    #[test]
    fn counts_cover_the_total_exactly_once() {
        for total in [0, 1, 7, 300, 1001] {
            for n in 1..=5 {
                assert_eq!(all(n).map(|s| s.count_of(total)).sum::<u64>(), total);
            }
        }
        assert_eq!(Shard { index: 0, count: 3 }.count_of(10), 4);
        assert_eq!(Shard { index: 2, count: 3 }.count_of(10), 3);
    }

    #[test]
    fn slices_are_contiguous_and_disjoint() {
        for n in 1..=7u32 {
            let mut next = 40_000u16;
            for s in all(n) {
                let (a, b) = s.ports_of((40_000, 40_099)).unwrap();
                assert_eq!(a, next);
                assert!(b >= a);
                next = b + 1;
            }
            assert_eq!(next, 40_100);
        }
        let s = Shard { index: 1, count: 2 };
        let ips = s.ips_of(("127.0.0.2".parse().unwrap(), "127.0.0.5".parse().unwrap()));
        assert_eq!(
            ips,
            Ok(("127.0.0.4".parse().unwrap(), "127.0.0.5".parse().unwrap()))
        );
        let e = Shard { index: 0, count: 3 }.ports_of((1, 2)).unwrap_err();
        assert!(e.contains("cannot be split into 3"), "{e}");
    }
}

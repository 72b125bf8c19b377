//! Which addresses a lab may take: a /30 for its veth pair from a private
//! pool, and client addresses, none of them covered by an address or route
//! the host already has.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use anyhow::Context;

use super::ip;

/// The /30s come from 10.200.0.0/16 (RFC 1918), one a run, skipping any that
/// an address or route of the host already covers.
const POOL: u32 = 0x0ac8_0000;
const POOL_SLOTS: u32 = 1 << 14;

/// `a.b.c.d/len` as (network, mask); `None` for anything else (`default`, IPv6).
fn prefix(s: &str) -> Option<(u32, u32)> {
    let (addr, len) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(addr) & mask, mask))
}

/// Whether the /30 at `net` overlaps any of the host's IPv4 prefixes.
fn taken(net: u32, prefixes: &[(u32, u32)]) -> bool {
    prefixes.iter().any(|&(p, mask)| {
        let common = mask & 0xffff_fffc;
        p & common == net & common
    })
}

/// The IPv4 prefixes of `ip -o -4 addr` lines (`2: eth0 inet 192.0.2.2/24
/// ...`) or `ip -4 route` lines (the prefix first, or after a route type such
/// as `local` or `broadcast`; `default` is no prefix).
fn host_prefixes(text: &str) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.iter().position(|w| *w == "inet") {
                Some(i) => words.get(i + 1).and_then(|w| prefix(w)),
                None => words.iter().take(2).find_map(|w| prefix(w)),
            }
        })
        .collect()
}

/// Held while a run picks addresses and adds them to the host: finding them
/// free and `ip addr add` are two steps, and two runs starting together
/// (their pids 256 apart, say) could both find the same ones free. A file
/// lock, shared by every loadgen on the machine, and let go however the run
/// ends.
pub(super) fn lock() -> anyhow::Result<std::fs::File> {
    let path = std::env::temp_dir().join("loadgen-netns-addresses.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// A free /30 for this run: slots are tried from one derived from the pid and
/// a counter, so that parallel runs and tests start apart.
pub(super) fn free_slash30() -> anyhow::Result<u32> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let prefixes = host_prefixes_now()?;
    let start = std::process::id().wrapping_mul(64) + NEXT.fetch_add(1, Relaxed);
    (0..POOL_SLOTS)
        .map(|i| POOL + ((start + i) % POOL_SLOTS) * 4)
        .find(|net| !taken(*net, &prefixes))
        .context("no free /30 left in 10.200.0.0/16")
}

/// The host's IPv4 prefixes now: its addresses and every table's routes.
pub(super) fn host_prefixes_now() -> anyhow::Result<Vec<(u32, u32)>> {
    let mut prefixes = host_prefixes(&ip(&["-o", "-4", "addr", "show"])?);
    prefixes.extend(host_prefixes(&ip(&[
        "-4", "route", "show", "table", "all",
    ])?));
    Ok(prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second taker waits for the first to let go.
    #[test]
    fn the_address_lock_is_taken_one_at_a_time() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let first = lock().unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&released);
        let second = std::thread::spawn(move || {
            let _second = lock().unwrap();
            seen.load(Relaxed)
        });
        // Time for the second to block (it cannot get the lock meanwhile).
        std::thread::sleep(std::time::Duration::from_millis(100));
        released.store(true, Relaxed);
        drop(first);
        assert!(second.join().unwrap(), "taken while the first held it");
    }

    #[test]
    fn prefixes_and_overlaps() {
        assert_eq!(prefix("10.200.0.4/30"), Some((0x0ac8_0004, 0xffff_fffc)));
        assert_eq!(prefix("10.0.0.0/8"), Some((0x0a00_0000, 0xff00_0000)));
        assert_eq!(prefix("192.0.2.2"), Some((0xc000_0202, u32::MAX)));
        assert_eq!(prefix("default"), None);
        assert_eq!(prefix("10.0.0.0/33"), None);
        let host = [prefix("10.0.0.0/8").unwrap()];
        assert!(taken(POOL, &host));
        let host = [
            prefix("10.200.0.6/32").unwrap(),
            prefix("192.0.2.0/24").unwrap(),
        ];
        assert!(taken(POOL + 4, &host));
        assert!(!taken(POOL + 8, &host));
    }

    #[test]
    fn host_prefixes_from_addr_and_route_lines() {
        let addr = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                    2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n";
        assert_eq!(
            host_prefixes(addr),
            [
                prefix("127.0.0.0/8").unwrap(),
                prefix("192.0.2.0/24").unwrap()
            ]
        );
        let routes = "default via 192.0.2.1 dev eth0\n\
                      10.200.0.4/30 dev lg1v0 proto kernel scope link src 10.200.0.5\n\
                      local 10.9.0.1 dev x table local proto kernel scope host\n\
                      broadcast 192.0.2.255 dev eth0 table local\n";
        let got = host_prefixes(routes);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(taken(POOL + 4, &got));
        assert!(taken(0x0a09_0000, &got));
    }
}

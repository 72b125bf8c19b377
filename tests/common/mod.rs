//! Helpers the integration tests share.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};

use teardown_engine::{Flags, Host, Segment, Time, Tuple};

/// The template of a segment sent on `t` (sender's view): no flags, seq and ack
/// 0, no payload, a full window, no timestamp option. A test writes only what differs, by struct
/// update, as smoltcp's tests build theirs from `SEND_TEMPL` / `RECV_TEMPL`:
/// `Segment { flags: Flags::SYN, seq: 1000, ..sent_on(c) }`.
pub const fn sent_on(t: Tuple) -> Segment {
    Segment {
        src_ip: t.local_ip,
        dst_ip: t.remote_ip,
        src_port: t.local_port,
        dst_port: t.remote_port,
        seq: 0,
        ack: 0,
        len: 0,
        wnd: 65_535,
        flags: Flags::NONE,
        ts: None,
    }
}

/// The peer at `c` (its own view) opens a connection to listening `host`, its
/// handshake fed by hand from ISN 1000. Returns the peer's template for what
/// it sends next: an ACK at seq 1001 acknowledging the SYN-ACK.
pub fn open_from(host: &mut Host, now: Time, c: Tuple) -> Segment {
    let syn = Segment {
        flags: Flags::SYN,
        seq: 1000,
        ..sent_on(c)
    };
    host.handle(now, &syn);
    let synack = host.transmits().next().expect("SYN-ACK");
    let ack = Segment {
        flags: Flags::ACK,
        seq: 1001,
        ack: synack.seq + 1,
        ..syn
    };
    host.handle(now, &ack);
    ack
}

/// The `.pkt` files of a folder of the repository, sorted.
pub fn pkt_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pkt"))
        .collect();
    files.sort();
    files
}

/// Whether to run a test's kernel side: yes when the kernel backend is
/// available; a skip only when asked for (TEARDOWN_KERNEL_TESTS=skip), so
/// that a machine without root or /dev/net/tun fails saying why.
#[cfg(target_os = "linux")]
pub fn kernel_available() -> bool {
    match teardown::script::kernel::available() {
        Ok(()) => true,
        Err(e) if std::env::var("TEARDOWN_KERNEL_TESTS").as_deref() == Ok("skip") => {
            eprintln!("kernel side skipped (TEARDOWN_KERNEL_TESTS=skip): {e}");
            false
        }
        Err(e) => panic!(
            "cannot run scripts against the kernel: {e}. Run as root with /dev/net/tun, \
             or set TEARDOWN_KERNEL_TESTS=skip"
        ),
    }
}

/// Prints which scripts had to run a second time because the runner fell
/// behind (see `script::run_files`), so that a loaded machine shows.
pub fn print_retries(files: &[PathBuf], results: &[teardown::script::FileResult]) {
    for (path, r) in files.iter().zip(results) {
        let notices = r.outcome.iter().flat_map(|o| &o.notices);
        for n in notices.filter(|n| n.starts_with(teardown::script::RETRIED)) {
            eprintln!("{}: {n}", path.display());
        }
    }
}

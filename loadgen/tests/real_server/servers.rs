//! The real servers the tests run (nginx, haproxy), each on a loopback address
//! of its own, and whether they are installed.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use crate::{common, sockets};

/// A real server of this test's own (nginx or haproxy) in the foreground on a
/// loopback address of its own, its config and logs in `dir`; killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddrV4,
    dir: tempfile::TempDir,
}

/// A loopback address per test, so that `ss` sees only this test's sockets.
pub(crate) fn next_ip() -> Ipv4Addr {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    Ipv4Addr::new(
        127,
        77,
        (std::process::id() % 250) as u8,
        NEXT.fetch_add(1, Relaxed),
    )
}

/// Whether `program` is installed; when it is not, the test is skipped, unless
/// the environment variable `require` says it must run.
fn available(program: &str, require: &str, package: &str) -> bool {
    let found = common::installed(program, "-v");
    if !found {
        assert!(
            std::env::var_os(require).is_none(),
            "{program} is required (apt-get install {package})"
        );
        eprintln!("{program} not installed: skipped (apt-get install {package})");
    }
    found
}

pub(crate) fn have_nginx() -> bool {
    available("nginx", "TEARDOWN_REQUIRE_NGINX", "nginx-light")
}

pub(crate) fn have_haproxy() -> bool {
    available("haproxy", "TEARDOWN_REQUIRE_HAPROXY", "haproxy")
}

impl Server {
    /// nginx answering `GET /` with 6 bytes, and `keepalive_timeout` as given.
    pub(crate) fn nginx(keepalive_timeout: &str) -> Server {
        let (dir, addr) = Server::place();
        let nginx = Command::new("nginx");
        let child = common::nginx(nginx, dir.path(), &addr.to_string(), keepalive_timeout)
            .spawn()
            .unwrap();
        Server { child, addr, dir }.listening("nginx")
    }

    /// haproxy in `mode tcp` forwarding to `upstream`; `-db` keeps it in the
    /// foreground.
    pub(crate) fn haproxy(upstream: SocketAddrV4) -> Server {
        let (dir, addr) = Server::place();
        let conf = format!(
            "global\n maxconn 4096\ndefaults\n mode tcp\n timeout connect 5s\n\
             timeout client 30s\n timeout server 30s\n\
             frontend f\n bind {addr}\n default_backend b\n\
             backend b\n server s1 {upstream}\n"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server { child, addr, dir }.listening("haproxy")
    }

    /// A temporary directory, and a port free on a fresh loopback address (the
    /// server binds it right after).
    fn place() -> (tempfile::TempDir, SocketAddrV4) {
        let ip = next_ip();
        let port = TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        (tempfile::tempdir().unwrap(), SocketAddrV4::new(ip, port))
    }

    /// Waits until `ss` lists the listener (a probe connection would leave a
    /// TIME-WAIT of its own behind).
    fn listening(mut self, name: &str) -> Server {
        for _ in 0..500 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{name} exited with {status}: {}", self.log());
            }
            if !sockets("listening", "src", self.addr).is_empty() {
                return self;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{name} did not listen on {}: {}", self.addr, self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

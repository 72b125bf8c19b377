//! System calls: made on the stack, their results held against the script's,
//! and connect()/accept()/close() followed to know the connection under test.

use super::{secs, Recorded, Runner};
use crate::script::parse::{Call, Expr, Syscall};
use crate::script::stack::{
    fail, int_arg, sockaddr_in, CallResult, Failure, Stack, ACTIVE, LOCAL_IP,
};
use teardown_engine::tuple::Tuple;

impl<S: Stack> Runner<'_, S> {
    /// After connect() on `fd`: its connection is the one under test. The
    /// port is the script's when it bound to it, else the one the stack
    /// chose (packetdrill reads it the same way). A connect() that failed
    /// (EADDRNOTAVAIL) leaves the connection under test as it was. Another
    /// 4-tuple is another connection, whose first SYN fixes its ISNs and
    /// its TSval offset afresh (packetdrill maps each socket by itself; Linux
    /// 6.18 and the engine key the TS offset by the 4-tuple); the same
    /// 4-tuple again (a TIME-WAIT taken over) keeps them.
    fn follow(&mut self, fd: i64) {
        let port = self.stack.local_port(fd).filter(|p| *p != 0);
        let tuple = Tuple {
            local_port: port.unwrap_or(ACTIVE.local_port),
            ..ACTIVE
        };
        if tuple != self.tuple {
            self.local_isn = None;
            self.remote_isn = None;
            self.ts_offset = None;
            self.ts_sent.clear();
        }
        self.tuple = tuple;
    }

    /// getsockname() on a connected descriptor, not in packetdrill: the
    /// address must be the script's `{sa_family=AF_INET,
    /// sin_port=htons(P), sin_addr=inet_addr("A")}`, so that a script can
    /// say which port bind(0) or connect() chose.
    fn getsockname(&mut self, line: usize, c: &Syscall) -> Result<CallResult, Failure> {
        let fd = int_arg(line, c, 0)?;
        let want = sockaddr_in(c.args.get(1)).ok_or_else(|| {
            fail(
                line,
                "getsockname(): expected {sa_family=AF_INET, sin_port=htons(P), \
                 sin_addr=inet_addr(\"A\")}",
            )
        })?;
        let port = self
            .stack
            .local_port(fd)
            .filter(|_| self.connected.contains(&fd))
            .ok_or_else(|| {
                fail(
                    line,
                    format!(
                        "getsockname({fd}): supported after connect() or accept() on it only \
                         (the engine takes a bound port at connect())"
                    ),
                )
            })?;
        let got = (LOCAL_IP, port);
        if got != want {
            let show =
                |(ip, port): ([u8; 4], u16)| format!("{}:{port}", std::net::Ipv4Addr::from(ip));
            return Err(fail(
                line,
                format!(
                    "getsockname({fd}): the local address is {}, but the script expected {}",
                    show(got),
                    show(want)
                ),
            ));
        }
        Ok(Ok(0))
    }

    pub(super) fn syscall(&mut self, line: usize, c: &Syscall) -> Result<(), Failure> {
        let now = self.now();
        let got = match c.call {
            Call::Getsockname => self.getsockname(line, c)?,
            _ => self.stack.call(line, c)?,
        };
        let opened = got.is_ok() || matches!(&got, Err(e) if e == "EINPROGRESS");
        let fd = match c.args.first() {
            Some(Expr::Int(fd)) => Some(*fd),
            _ => None,
        };
        match (c.call, fd, &got) {
            (Call::Connect, Some(fd), _) if opened => {
                self.connected.insert(fd);
                self.follow(fd);
            }
            (Call::Accept, _, Ok(new)) => {
                self.connected.insert(*new);
            }
            (Call::Close, Some(fd), _) => {
                self.connected.remove(&fd);
            }
            _ => {}
        }
        self.advance(self.now(), false);
        if self.opts.verbose {
            let ret = match &got {
                Ok(v) => v.to_string(),
                Err(e) => format!("-1 {e}"),
            };
            let args: Vec<String> = c.args.iter().map(|a| a.to_string()).collect();
            println!(
                "{:>10}   {}({}) = {ret}",
                secs(now),
                c.name,
                args.join(", ")
            );
        }
        if let Some(Some(Recorded::Event { result, .. })) =
            self.record.as_deref_mut().map(|log| log.last_mut())
        {
            *result = Some(match &got {
                Ok(v) => v.to_string(),
                Err(e) => format!("-1 {e}"),
            });
            return Ok(());
        }
        // As packetdrill: the value must match, and so must the errno when
        // the script names one.
        let ok = match &got {
            Ok(v) => c.ret == *v,
            Err(e) => c.ret == -1 && c.errno.as_ref().is_none_or(|want| want == e),
        };
        if ok {
            return Ok(());
        }
        let got = match got {
            Ok(v) => v.to_string(),
            Err(e) => format!("-1 ({e})"),
        };
        let want = match &c.errno {
            Some(e) => format!("{} ({e})", c.ret),
            None => c.ret.to_string(),
        };
        Err(fail(
            line,
            format!(
                "{}() returned {got}, but the script expected {want}",
                c.name
            ),
        ))
    }
}

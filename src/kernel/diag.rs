//! A dump of the TCP sockets through sock_diag (`NETLINK_SOCK_DIAG`,
//! `inet_diag_dump` in net/ipv4/inet_diag.c), the interface `ss` uses: every
//! socket's state and 4-tuple, TIME-WAIT and request sockets included, and for
//! full sockets `struct tcp_info` (`INET_DIAG_INFO`).
//!
//! [`dump_raw`] returns the kernel's response bytes as they came, so that a dump
//! can be recorded and parsed later by [`parse`], the same code as a live one.

use std::net::SocketAddr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{
    nlas::Nla, ExtensionFlags, InetRequest, SocketId, StateFlags,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};

use super::state::TcpState;
use super::Error;

/// Offset of `tcpi_rtt` (microseconds) in `struct tcp_info` (include/uapi/linux/
/// tcp.h): 8 bytes of `u8` fields, then 15 `u32`s. The UAPI only appends, so
/// the offset holds on every kernel; read by hand because the crate's typed
/// `TcpInfo` (`rich_nlas`) wants the whole 4.19+ struct and would fail the dump
/// on an older kernel's shorter one.
const TCPI_RTT: usize = 68;

/// `sizeof(struct nlmsghdr)`: no message is shorter.
const NLMSG_HDRLEN: usize = 16;

/// One socket of the dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagSocket {
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `tcpi_rtt`, the smoothed RTT in microseconds; full sockets only.
    pub rtt_us: Option<u32>,
}

/// The TCP sockets of the calling thread's network namespace, IPv4 then IPv6.
pub fn dump() -> Result<Vec<DiagSocket>, Error> {
    parse(&dump_raw()?)
}

/// The TIME-WAIT sockets alone, without `tcp_info`: the kernel filters by
/// state (`idiag_states`), so a host with many live connections sends only
/// its TIME-WAIT (loadgen reads this once a second during a run).
pub fn dump_time_wait() -> Result<Vec<DiagSocket>, Error> {
    parse(&dump_raw_with(
        StateFlags::TIME_WAIT,
        ExtensionFlags::empty(),
    )?)
}

/// The kernel's response datagrams to an IPv4 and an IPv6 dump request, concatenated.
pub fn dump_raw() -> Result<Vec<u8>, Error> {
    dump_raw_with(StateFlags::all(), ExtensionFlags::INFO)
}

fn dump_raw_with(states: StateFlags, extensions: ExtensionFlags) -> Result<Vec<u8>, Error> {
    let io = |what: &str, e: std::io::Error| Error::Netlink(format!("{what}: {e}"));
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(|e| io("socket", e))?;
    socket.bind_auto().map_err(|e| io("bind", e))?;
    let mut out = Vec::new();
    for family in [AF_INET, AF_INET6] {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut id = if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        id.cookie = [0xff; 8]; // INET_DIAG_NOCOOKIE: match any socket
        let mut request = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: extensions.clone(),
                states: states.clone(),
                socket_id: id,
            })
            .into(),
        );
        request.finalize();
        let mut buf = vec![0; request.buffer_len()];
        request.serialize(&mut buf);
        socket
            .send_to(&buf, &netlink_sys::SocketAddr::new(0, 0), 0)
            .map_err(|e| io("send", e))?;
        loop {
            let (datagram, _) = socket.recv_from_full().map_err(|e| io("recv", e))?;
            let done = messages(&datagram)?.iter().any(|m| {
                matches!(
                    m.payload,
                    NetlinkPayload::Done(_) | NetlinkPayload::Error(_)
                )
            });
            out.extend_from_slice(&datagram);
            if done || datagram.is_empty() {
                break;
            }
        }
    }
    Ok(out)
}

/// Parses response bytes from [`dump_raw`] (live or recorded). Sockets in a
/// state this code does not know are left out; a netlink error is an error.
pub fn parse(bytes: &[u8]) -> Result<Vec<DiagSocket>, Error> {
    let mut sockets = Vec::new();
    for message in messages(bytes)? {
        match message.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                let Some(state) = TcpState::from_kernel(r.header.state) else {
                    continue;
                };
                let id = &r.header.socket_id;
                let rtt_us = r.nlas.iter().find_map(|nla| match nla {
                    Nla::TcpInfo(info) => info
                        .get(TCPI_RTT..TCPI_RTT + 4)
                        .and_then(|b| b.try_into().ok())
                        .map(u32::from_ne_bytes),
                    _ => None,
                });
                sockets.push(DiagSocket {
                    state,
                    local: SocketAddr::new(id.source_address, id.source_port),
                    remote: SocketAddr::new(id.destination_address, id.destination_port),
                    rtt_us,
                });
            }
            NetlinkPayload::Error(e) if e.code.is_some() => {
                return Err(Error::Netlink(e.to_io().to_string()));
            }
            _ => {}
        }
    }
    Ok(sockets)
}

/// Splits bytes into netlink messages (each `nlmsg_len` long, 4-byte aligned).
fn messages(mut bytes: &[u8]) -> Result<Vec<NetlinkMessage<SockDiagMessage>>, Error> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let m = NetlinkMessage::<SockDiagMessage>::deserialize(bytes)
            .map_err(|e| Error::Netlink(format!("bad message: {e}")))?;
        let len = m.header.length as usize;
        if len < NLMSG_HDRLEN || len > bytes.len() {
            return Err(Error::Netlink(format!("bad message length {len}")));
        }
        bytes = &bytes[len.next_multiple_of(4).min(bytes.len())..];
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use teardown_engine::state::State;

    #[test]
    fn the_time_wait_dump_has_time_wait_sockets_only() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let client = c.local_addr().unwrap();
        // The client closes first, then the server: the client's end waits.
        drop(c);
        drop(s);
        let mut tw = Vec::new();
        for _ in 0..500 {
            tw = dump_time_wait().unwrap();
            if tw.iter().any(|s| s.local == client) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(tw.iter().any(|s| s.local == client), "{tw:?}");
        assert!(tw
            .iter()
            .all(|s| s.state == TcpState::Conn(State::TimeWait)));
        assert!(tw.iter().all(|s| s.rtt_us.is_none()));
        // The full dump has the listener; this one does not.
        let listener = l.local_addr().unwrap();
        assert!(dump().unwrap().iter().any(|s| s.local == listener));
        assert!(!tw.iter().any(|s| s.local == listener));
    }
}

//! The `tcp_usec_ts` route feature (Linux >= 6.7): TCP connections over a
//! route that has it take their TSval from `tcp_clock_us` instead of
//! `tcp_clock_ms` (`dst_tcp_usec_ts`, read in `tcp_connect_init` and
//! `tcp_conn_request`). This is how the kernel stack runs a script's
//! `--tcp_ts_tick_usecs=1`. iproute2 knows the feature only from 6.7 on, so
//! the runner sends the one rtnetlink message itself.

use std::io;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

// linux/netlink.h and linux/rtnetlink.h
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const RTAX_FEATURES: u16 = 12;
const RTAX_FEATURE_TCP_USEC_TS: u32 = 1 << 4;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;

/// Replaces the kernel's route to `peer` (the host route a point-to-point
/// address made: `peer dev oif proto kernel scope link src local`) with the
/// same route carrying `features tcp_usec_ts`, in the calling thread's
/// network namespace.
pub fn set_usec_ts(peer: [u8; 4], oif: u32, local: [u8; 4]) -> io::Result<()> {
    let msg = new_route(peer, oif, local);
    let sock = socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let kernel = NetlinkAddr::new(0, 0);
    socket::sendto(sock.as_raw_fd(), &msg, &kernel, MsgFlags::empty())?;
    let mut buf = [0u8; 1024];
    let n = socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    ack_error(&buf[..n]).map_err(io::Error::from)
}

/// RTM_NEWROUTE (create or replace) of `peer/32 dev oif proto kernel scope
/// link src local`, table main, with RTAX_FEATURES = tcp_usec_ts.
fn new_route(peer: [u8; 4], oif: u32, local: [u8; 4]) -> Vec<u8> {
    let attr = |out: &mut Vec<u8>, kind: u16, data: &[u8]| {
        let len = 4 + data.len();
        out.extend_from_slice(&(len as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    };
    let mut metrics = Vec::new();
    attr(
        &mut metrics,
        RTAX_FEATURES,
        &RTAX_FEATURE_TCP_USEC_TS.to_ne_bytes(),
    );
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
    // type, flags (u32).
    let mut body = vec![
        libc::AF_INET as u8,
        32,
        0,
        0,
        libc::RT_TABLE_MAIN,
        libc::RTPROT_KERNEL,
        libc::RT_SCOPE_LINK,
        libc::RTN_UNICAST,
    ];
    body.extend_from_slice(&0u32.to_ne_bytes());
    attr(&mut body, libc::RTA_DST, &peer);
    attr(&mut body, libc::RTA_OIF, &oif.to_ne_bytes());
    attr(&mut body, libc::RTA_PREFSRC, &local);
    attr(&mut body, libc::RTA_METRICS, &metrics);
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_NEWROUTE.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    msg.extend_from_slice(&body);
    msg
}

/// The kernel's answer to a request with NLM_F_ACK: an NLMSG_ERROR whose
/// error is 0 on success, else a negative errno.
fn ack_error(reply: &[u8]) -> Result<(), Errno> {
    let field = |at: usize| reply.get(at..at + 4).map(|b| [b[0], b[1], b[2], b[3]]);
    let kind = reply.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    match (kind, field(NLMSG_HDRLEN).map(i32::from_ne_bytes)) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(e)) => Err(Errno::from_raw(-e)),
        _ => Err(Errno::EPROTO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_aligned_and_carries_the_feature() {
        let m = new_route([192, 0, 2, 1], 7, [192, 168, 0, 1]);
        assert_eq!(m.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize,
            m.len()
        );
        // nlmsghdr 16 + rtmsg 12 + dst 8 + oif 8 + prefsrc 8 + metrics (4 + 8).
        assert_eq!(m.len(), 64);
        let tail = &m[m.len() - 8..];
        assert_eq!(u16::from_ne_bytes([tail[2], tail[3]]), RTAX_FEATURES);
        assert_eq!(
            u32::from_ne_bytes([tail[4], tail[5], tail[6], tail[7]]),
            RTAX_FEATURE_TCP_USEC_TS
        );
    }

    #[test]
    fn an_ack_says_success_or_the_errno() {
        let reply = |e: i32| {
            let mut r = vec![0u8; 20];
            r[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            r[16..20].copy_from_slice(&e.to_ne_bytes());
            r
        };
        assert_eq!(ack_error(&reply(0)), Ok(()));
        assert_eq!(ack_error(&reply(-22)), Err(Errno::EINVAL));
        assert_eq!(ack_error(&[0; 3]), Err(Errno::EPROTO));
    }
}

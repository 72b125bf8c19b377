//! The `tcp_usec_ts` route feature (Linux >= 6.7): TCP connections over a
//! route that has it take their TSval from `tcp_clock_us` instead of
//! `tcp_clock_ms` (`dst_tcp_usec_ts`, read in `tcp_connect_init` and
//! `tcp_conn_request`). This is how the kernel stack runs a script's
//! `--tcp_ts_tick_usecs=1`. iproute2 knows the feature only from 6.7 on, so
//! the runner sends the one rtnetlink message itself.

use std::io;
use std::net::Ipv4Addr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// `RTAX_FEATURE_TCP_USEC_TS` in linux/rtnetlink.h.
const RTAX_FEATURE_TCP_USEC_TS: u32 = 1 << 4;

/// Replaces the kernel's route to `peer` (the host route a point-to-point
/// address made: `peer dev oif proto kernel scope link src local`) with the
/// same route carrying `features tcp_usec_ts`, in the calling thread's
/// network namespace.
pub fn set_usec_ts(peer: [u8; 4], oif: u32, local: [u8; 4]) -> io::Result<()> {
    let msg = new_route(peer, oif, local);
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.send_to(&buf, &SocketAddr::new(0, 0), 0)?;
    let (reply, _) = sock.recv_from_full()?;
    acked(&reply)
}

/// RTM_NEWROUTE (create or replace) of `peer/32 dev oif proto kernel scope
/// link src local`, table main, with RTAX_FEATURES = tcp_usec_ts.
fn new_route(peer: [u8; 4], oif: u32, local: [u8; 4]) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut route = RouteMessage::default();
    route.header = RouteHeader {
        address_family: AddressFamily::Inet,
        destination_prefix_length: 32,
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Kernel,
        scope: RouteScope::Link,
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    route.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::from(peer))),
        RouteAttribute::Oif(oif),
        RouteAttribute::PrefSource(RouteAddress::Inet(Ipv4Addr::from(local))),
        RouteAttribute::Metrics(vec![RouteMetric::Features(RTAX_FEATURE_TCP_USEC_TS)]),
    ];
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(header, RouteNetlinkMessage::NewRoute(route).into());
    msg.finalize();
    msg
}

/// The kernel's answer to a request with NLM_F_ACK: an error message whose
/// code is empty on success, else the errno.
fn acked(reply: &[u8]) -> io::Result<()> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(reply)
        .map_err(|e| bad(format!("rtnetlink reply: {e}")))?;
    match msg.payload {
        NetlinkPayload::Error(e) if e.code.is_none() => Ok(()),
        NetlinkPayload::Error(e) => Err(e.to_io()),
        other => Err(bad(format!("rtnetlink reply is not an ack: {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::ErrorMessage;

    /// The message a kernel reads: `ip monitor` would show `192.0.2.1 dev 7
    /// proto kernel scope link src 192.168.0.1 features tcp_usec_ts`.
    #[test]
    fn the_message_carries_the_route_and_the_feature() {
        let m = new_route([192, 0, 2, 1], 7, [192, 168, 0, 1]);
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        // nlmsghdr 16 + rtmsg 12 + dst 8 + oif 8 + prefsrc 8 + metrics (4 + 8).
        assert_eq!(buf.len(), 64);
        assert_eq!(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]), 64);
        let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) = back.payload else {
            panic!("not RTM_NEWROUTE: {back:?}");
        };
        assert_eq!(r.header.destination_prefix_length, 32);
        assert_eq!(r.header.scope, RouteScope::Link);
        assert!(r.attributes.contains(&RouteAttribute::Oif(7)));
        assert!(r
            .attributes
            .contains(&RouteAttribute::Metrics(vec![RouteMetric::Features(
                RTAX_FEATURE_TCP_USEC_TS
            )])));
    }

    #[test]
    fn an_ack_says_success_or_the_errno() {
        let reply = |code: i32| {
            let mut e = ErrorMessage::default();
            e.code = std::num::NonZeroI32::new(code);
            let mut m = NetlinkMessage::<RouteNetlinkMessage>::new(
                NetlinkHeader::default(),
                NetlinkPayload::Error(e),
            );
            m.finalize();
            let mut buf = vec![0; m.buffer_len()];
            m.serialize(&mut buf);
            buf
        };
        assert!(acked(&reply(0)).is_ok());
        let err = acked(&reply(-22)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(
            acked(&[0; 3]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}

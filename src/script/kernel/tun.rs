//! The tun device the script's peer lives behind: its interface set up
//! (192.168.0.1 point-to-point to 192.0.2.1), and the TCP segments the local
//! host sends through it parsed back.

use std::io;
use std::os::fd::AsRawFd;

use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};

use crate::script::stack::{LOCAL_IP, REMOTE_IP};
use teardown_engine::segment::{Flags, Segment, Ts};

/// The tun device's name inside each script's namespace.
pub(super) const TUN_NAME: &str = "tun0";

/// A TCP segment from 192.168.0.1 to the script's peer, or None for anything
/// else the namespace sends (IPv6 router solicitations, say).
pub(super) fn parse_outbound(pkt: &[u8]) -> Option<Segment> {
    let sliced = SlicedPacket::from_ip(pkt).ok()?;
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) = (sliced.net, sliced.transport)
    else {
        return None;
    };
    let h = ip.header();
    if h.source() != LOCAL_IP || h.destination() != REMOTE_IP {
        return None;
    }
    let mut flags = Flags::NONE;
    for (set, f) in [
        (tcp.fin(), Flags::FIN),
        (tcp.syn(), Flags::SYN),
        (tcp.rst(), Flags::RST),
        (tcp.psh(), Flags::PSH),
        (tcp.ack(), Flags::ACK),
    ] {
        if set {
            flags = flags | f;
        }
    }
    let ts = tcp.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::Timestamp(val, ecr)) => Some(Ts { val, ecr }),
        _ => None,
    });
    Some(Segment {
        ts,
        src_ip: u32::from_be_bytes(LOCAL_IP),
        dst_ip: u32::from_be_bytes(REMOTE_IP),
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        len: tcp.payload().len() as u32,
        wnd: tcp.window_size(),
        flags,
    })
}

/// An `ifreq` naming `name`, everything else zero.
pub(super) fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data (a name array and a union of integers
    // and sockaddrs), for which all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr
}

fn sockaddr(ip: [u8; 4]) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes, and sockaddr_in is
    // how an AF_INET address is written into an ifreq's sockaddr.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// 192.168.0.1 point-to-point to 192.0.2.1 on the tun device, and up: the
/// kernel adds the host route to the peer itself.
pub(super) fn configure_interface() -> io::Result<()> {
    let ctl = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    let set = |req: libc::c_ulong, what: &str, fill: &dyn Fn(&mut libc::ifreq)| {
        let mut ifr = ifreq(TUN_NAME);
        fill(&mut ifr);
        // SAFETY: the SIOCSIF* requests read one `ifreq`; `ifr` is a valid,
        // initialised ifreq that lives across the call.
        if unsafe { libc::ioctl(ctl.as_raw_fd(), req as _, &mut ifr) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("{what} on {TUN_NAME}: {e}"),
            ));
        }
        Ok(())
    };
    set(libc::SIOCSIFADDR, "SIOCSIFADDR", &|r| {
        r.ifr_ifru.ifru_addr = sockaddr(LOCAL_IP)
    })?;
    set(libc::SIOCSIFDSTADDR, "SIOCSIFDSTADDR", &|r| {
        r.ifr_ifru.ifru_dstaddr = sockaddr(REMOTE_IP)
    })?;
    set(libc::SIOCSIFFLAGS, "SIOCSIFFLAGS", &|r| {
        r.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::stack::{EPHEMERAL_PORT, SCRIPT_PORT};

    #[test]
    fn ifreq_holds_the_name_and_the_address() {
        let mut r = ifreq(TUN_NAME);
        assert_eq!(
            r.ifr_name[..4],
            [b't', b'u', b'n', b'0'].map(|b| b as libc::c_char)
        );
        assert_eq!(r.ifr_name[4], 0);
        r.ifr_ifru.ifru_addr = sockaddr([192, 0, 2, 1]);
        // SAFETY: the union's sockaddr member was the one just written.
        let sa = unsafe { r.ifr_ifru.ifru_addr };
        assert_eq!(sa.sa_family, libc::AF_INET as libc::sa_family_t);
        // sin_port (2 bytes) then the address in network order.
        let addr: Vec<u8> = sa.sa_data[2..6].iter().map(|&b| b as u8).collect();
        assert_eq!(addr, [192, 0, 2, 1]);
    }

    #[test]
    fn only_tcp_from_the_local_host_to_the_peer_is_kept() {
        let seg = Segment {
            src_ip: u32::from_be_bytes(LOCAL_IP),
            dst_ip: u32::from_be_bytes(REMOTE_IP),
            src_port: SCRIPT_PORT,
            dst_port: EPHEMERAL_PORT,
            seq: 7,
            ack: 9,
            len: 3,
            wnd: 1000,
            flags: Flags::FIN | Flags::ACK | Flags::PSH,
            ts: Some(Ts { val: 1, ecr: 2 }),
        };
        let mut pkt = Vec::new();
        crate::pcap::encode_with_options(&seg, &[], &mut pkt).unwrap();
        assert_eq!(parse_outbound(&pkt), Some(seg));
        let back = Segment {
            src_ip: seg.dst_ip,
            dst_ip: seg.src_ip,
            ..seg
        };
        crate::pcap::encode_with_options(&back, &[], &mut pkt).unwrap();
        assert_eq!(parse_outbound(&pkt), None);
        assert_eq!(parse_outbound(&[0x60, 0, 0, 0]), None);
    }
}

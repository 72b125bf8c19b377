//! pcap export: the engine's segments as real IPv4/TCP packets that Wireshark,
//! tshark and tcpdump read.
//!
//! Each [`Segment`] becomes an IPv4 header and a TCP header (20 bytes, plus
//! `nop,nop,TS val X ecr Y` when the segment carries timestamps) with correct
//! checksums, followed by `len` zero bytes of
//! payload so that lengths, sequence arithmetic and checksums are what a capture
//! of the modelled exchange would show. The link type is `LINKTYPE_RAW` (101):
//! packets start at the IP header. Timestamps are the driver's simulated
//! [`Time`], taken as time since the Unix epoch.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use etherparse::{PacketBuilder, TcpOptionElement};
use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::{DataLink, TsResolution};

use teardown_engine::segment::Segment;
use teardown_engine::time::Time;

/// IPv4 time to live written in every packet (Linux's default `ip_default_ttl`).
const TTL: u8 = 64;

/// Largest payload one IPv4 packet can carry after the two 20-byte headers.
pub const MAX_PAYLOAD: u32 = 65_535 - 40;

/// Writes segments to a pcap stream.
pub struct PcapWriter<W: Write> {
    out: pcap_file::pcap::PcapWriter<W>,
    /// Scratch for one packet, reused so that writing allocates nothing per segment.
    buf: Vec<u8>,
    /// Added to every timestamp (lets several runs share one file).
    offset: Duration,
    packets: u64,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the pcap file header.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = File::create(path.as_ref())?;
        PcapWriter::new(BufWriter::new(file))
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the pcap file header to `w`.
    pub fn new(w: W) -> io::Result<Self> {
        let header = PcapHeader {
            datalink: DataLink::RAW,
            ts_resolution: TsResolution::MicroSecond,
            ..PcapHeader::default()
        };
        let out = pcap_file::pcap::PcapWriter::with_header(w, header).map_err(pcap_error)?;
        Ok(PcapWriter {
            out,
            buf: Vec::with_capacity(64),
            offset: Duration::ZERO,
            packets: 0,
        })
    }

    /// Shifts the timestamps of the packets written from now on by `offset`.
    pub fn set_offset(&mut self, offset: Duration) {
        self.offset = offset;
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Writes `seg` as sent or received at `t`.
    pub fn write(&mut self, t: Time, seg: &Segment) -> io::Result<()> {
        encode(seg, &mut self.buf)?;
        let ts = Duration::from_micros(t.as_micros()) + self.offset;
        let packet = PcapPacket::new(ts, self.buf.len() as u32, &self.buf);
        self.out.write_packet(&packet).map_err(pcap_error)?;
        self.packets += 1;
        Ok(())
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        let mut w = self.out.into_writer();
        w.flush()?;
        Ok(w)
    }
}

/// Encodes `seg` as an IPv4 packet (header, TCP header, zero payload) into `buf`,
/// replacing its contents. Checksums are computed by etherparse.
pub fn encode(seg: &Segment, buf: &mut Vec<u8>) -> io::Result<()> {
    encode_with_options(seg, &[], buf)
}

/// [`encode`], with TCP options (a SYN's MSS, for a real kernel to read). The
/// segment's timestamps are added as `nop,nop,TS` unless `options` has them.
pub fn encode_with_options(
    seg: &Segment,
    options: &[TcpOptionElement],
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    if seg.len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a {}-byte segment does not fit one IPv4 packet", seg.len),
        ));
    }
    let mut tcp = PacketBuilder::ipv4(seg.src_ip.to_be_bytes(), seg.dst_ip.to_be_bytes(), TTL).tcp(
        seg.src_port,
        seg.dst_port,
        seg.seq,
        seg.wnd,
    );
    let f = seg.flags;
    if f.syn() {
        tcp = tcp.syn();
    }
    if f.fin() {
        tcp = tcp.fin();
    }
    if f.rst() {
        tcp = tcp.rst();
    }
    if f.contains(teardown_engine::segment::Flags::PSH) {
        tcp = tcp.psh();
    }
    if f.ack() {
        tcp = tcp.ack(seg.ack);
    }
    let has_ts = options
        .iter()
        .any(|o| matches!(o, TcpOptionElement::Timestamp(..)));
    let ts_only;
    let with_ts;
    let options = match seg.ts {
        Some(ts) if !has_ts => {
            let ts = [
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(ts.val, ts.ecr),
            ];
            if options.is_empty() {
                ts_only = ts;
                &ts_only[..]
            } else {
                with_ts = [options, &ts[..]].concat();
                &with_ts[..]
            }
        }
        _ => options,
    };
    if !options.is_empty() {
        tcp = tcp
            .options(options)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    }
    const ZEROS: [u8; 1460] = [0; 1460];
    let len = seg.len as usize;
    buf.clear();
    if len <= ZEROS.len() {
        tcp.write(buf, &ZEROS[..len])
    } else {
        tcp.write(buf, &vec![0; len])
    }
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

fn pcap_error(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teardown_engine::segment::Flags;
    use teardown_engine::tuple::Tuple;

    #[test]
    fn encodes_headers_and_payload_length() {
        let t = Tuple::new([192, 168, 0, 1], 8080, [192, 0, 2, 1], 40_000);
        let seg = Segment::new(&t, Flags::ACK | Flags::PSH, 7, 9, 100, 1000);
        let mut buf = Vec::new();
        encode(&seg, &mut buf).unwrap();
        assert_eq!(buf.len(), 140);
        let p = etherparse::SlicedPacket::from_ip(&buf).unwrap();
        match p.transport {
            Some(etherparse::TransportSlice::Tcp(tcp)) => {
                assert_eq!(tcp.sequence_number(), 7);
                assert_eq!(tcp.acknowledgment_number(), 9);
                assert!(tcp.psh() && tcp.ack() && !tcp.syn());
            }
            _ => panic!("not TCP"),
        }
        let big = Segment {
            len: MAX_PAYLOAD + 1,
            ..seg
        };
        assert!(encode(&big, &mut buf).is_err());
    }

    #[test]
    fn timestamps_become_a_real_option() {
        let t = Tuple::new([192, 168, 0, 1], 8080, [192, 0, 2, 1], 40_000);
        let mut seg = Segment::new(&t, Flags::ACK, 7, 9, 0, 1000);
        seg.ts = Some(teardown_engine::segment::Ts { val: 5, ecr: 6 });
        let mut buf = Vec::new();
        encode(&seg, &mut buf).unwrap();
        assert_eq!(buf.len(), 20 + 32);
        let p = etherparse::SlicedPacket::from_ip(&buf).unwrap();
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("not TCP");
        };
        let opts: Vec<_> = tcp.options_iterator().map(|o| o.unwrap()).collect();
        assert_eq!(
            opts,
            [
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(5, 6)
            ]
        );
    }
}

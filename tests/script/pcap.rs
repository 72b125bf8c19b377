//! The pcap export: every segment with valid checksums, and tshark decodes it.

use std::path::Path;
use std::process::Command;

use etherparse::{SlicedPacket, TransportSlice};
use teardown::script::{self, Direction, Options};

#[test]
fn pcap_holds_every_segment_with_valid_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("out.pcap");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/normal-close-active.pkt");
    let r = script::run_file(&path, &Options::default());
    assert!(r.passed(), "{:?}", r.error);
    let outcome = r.outcome.unwrap();
    let n = script::write_pcap(&pcap, [&outcome]).unwrap();
    assert_eq!(n as usize, outcome.trace.len());

    let file = std::fs::File::open(&pcap).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    assert_eq!(reader.header().datalink, pcap_file::DataLink::RAW);
    let mut i = 0;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap();
        let tr = &outcome.trace[i];
        assert_eq!(pkt.timestamp.as_micros() as u64, tr.t.as_micros());
        let sliced = SlicedPacket::from_ip(&pkt.data).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net else {
            panic!("not IPv4")
        };
        let iph = ip.header().to_header();
        assert_eq!(
            iph.header_checksum,
            iph.calc_header_checksum(),
            "IP checksum"
        );
        assert_eq!(iph.source, tr.seg.src_ip.to_be_bytes());
        let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
            panic!("not TCP")
        };
        let th = tcp.to_header();
        assert_eq!(
            th.checksum,
            th.calc_checksum_ipv4(&iph, tcp.payload()).unwrap(),
            "TCP checksum"
        );
        let s = tr.seg;
        assert_eq!(
            (th.syn, th.fin, th.rst, th.ack),
            (s.flags.syn(), s.flags.fin(), s.flags.rst(), s.flags.ack())
        );
        assert_eq!(th.sequence_number, s.seq);
        if s.flags.ack() {
            assert_eq!(th.acknowledgment_number, s.ack);
        }
        assert_eq!(tcp.payload().len() as u32, s.len);
        assert_eq!(
            (th.source_port, th.destination_port),
            (s.src_port, s.dst_port)
        );
        i += 1;
    }
    assert_eq!(i, outcome.trace.len());
    // Both directions are there: the handshake's SYN in, SYN-ACK out.
    assert_eq!(outcome.trace[0].dir, Direction::Inbound);
    assert_eq!(outcome.trace[1].dir, Direction::Outbound);
}

#[test]
fn tshark_decodes_the_pcap() {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("notice: tshark is not installed; skipping the tshark decode test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("out.pcap");
    let status = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(["script", "--pcap"])
        .arg(&pcap)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/data-after-close.pkt"))
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ])
        .args([
            "-T",
            "fields",
            "-e",
            "tcp.flags.str",
            "-e",
            "tcp.checksum.status",
            "-e",
            "ip.checksum.status",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 8, "{text}");
    for r in &rows {
        // checksum status 1 = good.
        assert_eq!((r[1], r[2]), ("1", "1"), "{text}");
    }
    assert!(
        rows[0][0].contains('S') && rows.iter().any(|r| r[0].contains('R')),
        "{text}"
    );
}

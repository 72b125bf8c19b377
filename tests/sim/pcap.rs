//! The pcap capture decodes.

use std::process::Command;

#[test]
fn pcap_capture_decodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sim.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args([
            "sim",
            "--connections",
            "2000",
            "--shards",
            "2",
            "--quiet",
            "--pcap-sample",
            "3",
            "--pcap",
        ])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let bytes = std::fs::read(&path).expect("pcap written");
    let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).expect("pcap header");
    let mut flags = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.expect("packet");
        let ip = etherparse::SlicedPacket::from_ip(&pkt.data).expect("IPv4/TCP");
        if let Some(etherparse::TransportSlice::Tcp(tcp)) = ip.transport {
            flags.push((tcp.syn(), tcp.fin(), tcp.rst()));
        }
    }
    // Three connections, each at least SYN, request and FIN in; SYN-ACK,
    // response with FIN and the final ACK out; SYNs and FINs both ways.
    assert!(flags.len() >= 3 * 6, "{} packets", flags.len());
    assert!(flags.iter().filter(|f| f.0).count() >= 6);
    assert!(flags.iter().filter(|f| f.1).count() >= 6);
    assert!(flags[0].0, "the capture starts with a SYN");
}

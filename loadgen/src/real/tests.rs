//! Tests of `--source-ips` and the source address and port of each connection.

use super::*;

#[test]
fn source_ranges_parse_and_rotate() {
    let r = parse_source_ips("127.0.0.2-127.0.0.4").unwrap();
    let got: Vec<_> = (0..4)
        .map(|i| source(Some(r), None, i).0.unwrap())
        .collect();
    assert_eq!(got[0], Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(got[2], Ipv4Addr::new(127, 0, 0, 4));
    assert_eq!(got[3], got[0]);
    let nine = Ipv4Addr::new(127, 0, 0, 9);
    assert_eq!(parse_source_ips("127.0.0.9"), Ok((nine, nine)));
    assert!(parse_source_ips("127.0.0.4-127.0.0.2").is_err());
    assert!(parse_source_ips("x-y").is_err());
    assert_eq!(source(None, None, 5), (None, None));
}

#[test]
fn every_address_gets_a_port_before_the_next_port() {
    let ips = parse_source_ips("127.0.0.2-127.0.0.3").ok();
    let got: Vec<_> = (0..6)
        .map(|i| {
            let (ip, port) = source(ips, Some((5000, 5001)), i);
            (ip.unwrap().octets()[3], port.unwrap())
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, 5000),
            (3, 5000),
            (2, 5001),
            (3, 5001),
            (2, 5000),
            (3, 5000)
        ]
    );
    assert_eq!(source(None, Some((7, 9)), 4), (None, Some(8)));
}

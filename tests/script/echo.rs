//! An inbound TSecr that echoes a TSval the host sent goes in as exactly
//! that TSval, however the later ones drifted from the script's.

use teardown::script::{self, parse, Options};
use teardown_engine::Segment;

use super::probe::Probe;

/// The data segment's TSval is written a tick later than the host sends
/// it (within the tolerance), as a busy machine's millisecond clock can
/// read; the last ACK echoes the SYN-ACK's. Shifted by the latest offset,
/// that echo went in a tick before any TSval the host sent, which Linux
/// ≥ 6.15 refuses in SYN-RECEIVED (a CI run's `accept() would block`).
#[test]
fn an_echo_of_an_earlier_tsval_is_that_tsval() {
    let src = "\
--tcp_ts_tick_usecs=1000
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1460,nop,nop,TS val 100 ecr 0>
+0  > S. 0:0(0) ack 1 <mss 1460,nop,nop,TS val 1000 ecr 100>
+.1 < . 1:1(0) ack 1 win 65535 <nop,nop,TS val 200 ecr 1000>
+0  accept(3, ..., ...) = 4
+0  write(4, ..., 10) = 10
+0  > P. 1:11(10) ack 1 <nop,nop,TS val 1101 ecr 200>
+0  < . 1:1(0) ack 11 win 65535 <nop,nop,TS val 300 ecr 1000>
";
    let mut stack = Probe::new();
    let o = script::run_on(&mut stack, &parse(src).unwrap(), &Options::default());
    assert!(o.failure.is_none(), "{:?}", o.failure);
    let ts = |s: &Segment| s.ts.expect("timestamps on");
    let syn_ack = ts(&stack.sent[0]).val;
    assert_eq!(
        ts(&stack.sent[1]).val,
        syn_ack + 100,
        "the data a tick before the script's"
    );
    let echoes: Vec<u32> = stack.injected.iter().map(|s| ts(s).ecr).collect();
    assert_eq!(echoes, [0, syn_ack, syn_ack]);
}

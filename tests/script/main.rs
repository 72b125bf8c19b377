//! `teardown script`: the corpus in tests/scripts must pass, wrong scripts
//! must fail naming the line, malformed ones must give a parse error with line and column, and the
//! pcap export must decode.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod corpus;
mod echo;
mod late;
mod malformed;
mod options;
mod pcap;
mod probe;
mod timing;
mod wrong;

use teardown::script::{parse, run, Options};

/// A listening socket's handshake, which `run_str` puts before its body.
pub(crate) const HANDSHAKE: &str = "\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1460>
+0  > S. 0:0(0) ack 1 <...>
+.1 < . 1:1(0) ack 1 win 65535
+0  accept(3, ..., ...) = 4
";

/// Runs `body` after [`HANDSHAKE`] on the engine; Err is its failure, as `t.pkt:LINE: ...`.
pub(crate) fn run_str(body: &str) -> Result<(), String> {
    let src = format!("{HANDSHAKE}{body}");
    let script = parse(&src).map_err(|e| e.to_string())?;
    let out = run(&script, &Options::default());
    match out.failure {
        Some(f) => Err(format!("t.pkt:{f}")),
        None => Ok(()),
    }
}

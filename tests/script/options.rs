//! Script options the engine follows: `--tcp_ts_tick_usecs` (the clock of the
//! local TSvals) and `--bind_port=0` with getsockname().

use std::path::Path;

use teardown::script::{parse, run, Options};

/// Runs `src` (a whole script) on the engine; Err is its failure.
fn run_src(src: &str) -> Result<(), String> {
    let s = parse(src).map_err(|e| e.to_string())?;
    match run(&s, &Options::default()).failure {
        Some(f) => Err(f.to_string()),
        None => Ok(()),
    }
}

#[test]
fn the_engine_runs_the_scripts_ts_tick() {
    // ts-usec-tick.pkt at other ticks: the local host's TSvals divided by the
    // tick. Its FIN retransmission is timed by the RTO, from the RTT the TS
    // echo gave, so the tick must reach that too.
    let usec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/ts-usec-tick.pkt"),
    )
    .unwrap();
    let local_tsvals = ["1000000", "1350000", "1650000", "1750000"];
    let at_tick = |tick: u64, divisor: u64| {
        local_tsvals.iter().fold(
            usec.replace(
                "--tcp_ts_tick_usecs=1\n",
                &format!("--tcp_ts_tick_usecs={tick}\n"),
            ),
            |s, v| {
                let scaled = v.parse::<u64>().unwrap() / divisor;
                s.replace(&format!("val {v} "), &format!("val {scaled} "))
                    .replace(&format!("ecr {v}>"), &format!("ecr {scaled}>"))
            },
        )
    };
    for tick in [1, 10, 1000] {
        run_src(&at_tick(tick, tick)).unwrap_or_else(|e| panic!("tick {tick}: {e}"));
    }
    // Millisecond TSvals on a 10 us clock: the FIN is 35000 ticks after the
    // SYN-ACK (TSval 1000), not 350.
    let err = run_src(&at_tick(10, 1000)).unwrap_err();
    assert!(
        err.contains("bad outbound TCP timestamp value: expected: 1350 vs actual: 36000"),
        "{err}"
    );
}

#[test]
fn bind_port_zero_and_getsockname() {
    let head = "--bind_port=0\n\
                0 `sysctl -q net.ipv4.ip_local_port_range=\"40000 40001\"`\n\
                +0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n";
    let addr = |port: u16| {
        format!(
            "{{sa_family=AF_INET, sin_port=htons({port}), sin_addr=inet_addr(\"192.168.0.1\")}}"
        )
    };
    // getsockname() before connect(): the engine has not taken the port yet.
    let err = run_src(&format!(
        "{head}+0 bind(3, ..., ...) = 0\n+0 getsockname(3, {}, [16]) = 0\n",
        addr(40001)
    ))
    .unwrap_err();
    assert!(err.contains("after connect() or accept()"), "{err}");
    // listen() on port 0 would listen where the peer does not send.
    let err = run_src(&format!(
        "{head}+0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n"
    ))
    .unwrap_err();
    assert!(
        err.contains("listen() on a socket bound to port 0"),
        "{err}"
    );
    // A second bind() of one socket: EINVAL, as Linux's inet_bind.
    run_src(&format!(
        "{head}+0 bind(3, ..., ...) = 0\n+0 bind(3, ..., ...) = -1 EINVAL (Invalid argument)\n"
    ))
    .unwrap();
    // With IP_BIND_ADDRESS_NO_PORT the socket has no port yet: bind() again.
    run_src(&format!(
        "{head}+0 setsockopt(3, SOL_IP, IP_BIND_ADDRESS_NO_PORT, [1], 4) = 0\n\
         +0 bind(3, ..., ...) = 0\n+0 bind(3, ..., ...) = 0\n"
    ))
    .unwrap();
    // Two sockets bound to port 0 and not yet connected hold both ports.
    run_src(&format!(
        "{head}+0 bind(3, ..., ...) = 0\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4\n\
         +0 bind(4, ..., ...) = 0\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 5\n\
         +0 bind(5, ..., ...) = -1 EADDRINUSE (Address already in use)\n"
    ))
    .unwrap();
    let err = run_src(&format!(
        "{head}+0 connect(3, ..., ...) = -1 EINPROGRESS\n+0 > S 0:0(0) <...>\n\
         +0 getsockname(3, {{sa_family=AF_INET}}, [16]) = 0\n"
    ))
    .unwrap_err();
    assert!(
        err.contains("expected {sa_family=AF_INET, sin_port="),
        "{err}"
    );
}

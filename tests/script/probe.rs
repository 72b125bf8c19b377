//! The engine behind the runner, as a test sees it: it can fall behind the
//! script's schedule, and it keeps every segment it sent and every one
//! injected into it.

use teardown::script;
use teardown_engine::time::Time;
use teardown_engine::Segment;

/// The engine on a runner that may not keep the script's schedule: it wakes
/// `lag` after every time it asks for (a machine too busy), and its clock
/// moves on by `inject_lag` while it writes a packet (a runner descheduled
/// mid-write).
pub(crate) struct Probe {
    inner: script::engine::EngineStack,
    lag: std::time::Duration,
    inject_lag: std::time::Duration,
    /// What the engine sent during an injection's lag, for the next look.
    held: Vec<(Time, Segment)>,
    /// Every segment the engine sent, in order.
    pub(crate) sent: Vec<Segment>,
    /// Every segment injected into the engine, in order.
    pub(crate) injected: Vec<Segment>,
}

impl Probe {
    /// The engine on a runner that keeps the schedule.
    pub(crate) fn new() -> Probe {
        Probe::lagging(0, 0)
    }

    pub(crate) fn lagging(lag_ms: u64, inject_lag_ms: u64) -> Probe {
        Probe {
            inner: script::engine::EngineStack::new(),
            lag: std::time::Duration::from_millis(lag_ms),
            inject_lag: std::time::Duration::from_millis(inject_lag_ms),
            held: Vec::new(),
            sent: Vec::new(),
            injected: Vec::new(),
        }
    }
}

impl script::Stack for Probe {
    fn now(&self) -> Time {
        self.inner.now()
    }
    fn advance(&mut self, until: Time, stop_on_packet: bool, sent: &mut Vec<(Time, Segment)>) {
        let from = sent.len();
        sent.append(&mut self.held);
        self.inner.advance(until + self.lag, stop_on_packet, sent);
        self.sent.extend(sent[from..].iter().map(|&(_, s)| s));
    }
    fn inject(&mut self, seg: &Segment, o: &script::parse::TcpOptions) -> Result<(), String> {
        self.injected.push(*seg);
        self.inner.inject(seg, o)?;
        if !self.inject_lag.is_zero() {
            let until = self.inner.now() + self.inject_lag;
            self.inner.advance(until, false, &mut self.held);
        }
        Ok(())
    }
    fn call(
        &mut self,
        line: usize,
        c: &script::parse::Syscall,
    ) -> Result<script::CallResult, script::Failure> {
        self.inner.call(line, c)
    }
    fn late_search(&self) -> std::time::Duration {
        self.inner.late_search()
    }
    fn local_port(&self, fd: i64) -> Option<u16> {
        self.inner.local_port(fd)
    }
    fn setup(&mut self, s: &script::stack::Setup) -> Result<(), String> {
        self.inner.setup(s)
    }
    fn sysctl(&mut self, line: usize, s: &script::sysctl::Sysctl) -> Result<(), script::Failure> {
        self.inner.sysctl(line, s)
    }
    fn take_notices(&mut self) -> Vec<String> {
        self.inner.take_notices()
    }
}

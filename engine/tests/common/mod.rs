//! Helpers shared by the integration tests.

use teardown_engine::{CloseReason, Event, Host, State};

/// The connections the host closed since last asked, as (remote port, the
/// state they left, why).
pub fn closed(host: &mut Host) -> Vec<(u16, State, CloseReason)> {
    host.events()
        .filter_map(|e| match e {
            Event::Closed {
                tuple,
                from,
                reason,
                ..
            } => Some((tuple.remote_port, from, reason)),
            _ => None,
        })
        .collect()
}

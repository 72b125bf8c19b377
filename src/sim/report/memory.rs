//! `memory.*`: engine bytes per entry, read from the merged population samples.

use teardown_engine::state::State;

use super::super::series::Sample;
use super::{Memory, MEASURED_SHARE};

/// Memory per entry from the merged samples: among the samples where the state
/// holds at least half its peak population, at the one where its share of the
/// host's entries is highest, that host's measured engine bytes over its entries.
pub(super) fn memory(sum: &[Sample], client_side: bool) -> Memory {
    fn side(x: &Sample, client_side: bool) -> (&[u32; State::COUNT], u32, i64) {
        if client_side {
            (&x.client, x.client.iter().sum(), x.client_bytes)
        } else {
            (&x.server, x.server.iter().sum(), x.server_bytes)
        }
    }
    let at = |st: State| -> (f64, f64, u64) {
        // Only moments when the state holds at least half its peak: a sample with
        // three TIME-WAIT entries left in a drained table says nothing per entry.
        let peak = sum
            .iter()
            .map(|x| side(x, client_side).0[st as usize])
            .max()
            .unwrap_or(0);
        let mut best: Option<(f64, u64, i64)> = None;
        for x in sum {
            let (pop, entries, bytes) = side(x, client_side);
            if entries == 0 || pop[st as usize] == 0 || pop[st as usize] * 2 < peak {
                continue;
            }
            let share = pop[st as usize] as f64 / entries as f64;
            let better = match best {
                None => true,
                Some((s, e, _)) => {
                    share > s + 1e-9 || ((share - s).abs() <= 1e-9 && entries as u64 > e)
                }
            };
            if better {
                best = Some((share, entries as u64, bytes));
            }
        }
        match best {
            Some((share, entries, bytes)) => (bytes as f64 / entries as f64, share, entries),
            None => (0.0, 0.0, 0),
        }
    };
    let (tw_b, tw_s, tw_n) = at(State::TimeWait);
    let (es_b, es_s, es_n) = at(State::Established);
    Memory {
        bytes_per_time_wait: (tw_s >= MEASURED_SHARE).then_some(tw_b),
        time_wait_share: tw_s,
        time_wait_entries: tw_n,
        bytes_per_established: (es_s >= MEASURED_SHARE).then_some(es_b),
        established_share: es_s,
        established_entries: es_n,
        side: if client_side { "clients" } else { "server" },
        peak_engine_bytes: sum
            .iter()
            .map(|x| x.server_bytes + x.client_bytes)
            .max()
            .unwrap_or(0),
        peak_heap_bytes: 0,
    }
}

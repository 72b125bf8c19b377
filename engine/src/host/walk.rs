//! The port walk of `__inet_hash_connect` and `inet_csk_find_open_port`:
//! from an offset, every second port of the range, then the other parity.

use super::Host;
use crate::ports::Taken;

impl Host {
    /// The walk both searches share: the port at `low + offset` and every
    /// second one after it (wrapping within the even-sized range), then, when
    /// `other` is given and the range has more than one port, the same from
    /// that offset (the other parity). `try_port` says what a port gives, or
    /// None to go on. Ok carries it, the port's index within its pass (the
    /// `i` of `__inet_hash_connect`) and the ports probed; Err the ports probed.
    ///
    /// `skip`: the address's [`Taken`] ports, for a walk whose `try_port`
    /// refuses each of them (a connect to the first destination). On an
    /// even range they are passed by the word, and counted as probed, as
    /// one by one: the same port, `i` and count.
    pub(super) fn walk_ports<T>(
        &self,
        offset: u32,
        other: Option<u32>,
        skip: Option<&Taken>,
        mut try_port: impl FnMut(&Self, u16) -> Option<T>,
    ) -> Result<(T, u32, u32), u32> {
        let remaining = self.ports.even_remaining();
        let low = u32::from(self.ports.low());
        // Exclusive: [32768, 61000[.
        let high = low + self.ports.range_len();
        // An odd range wraps onto the next port but one (and a range of one
        // port has one pass of one): not a circle of each parity's ports,
        // so walked one by one. An even range is all of `remaining`.
        let skip = skip.filter(|_| self.ports.range_len().is_multiple_of(2));
        let mut probed = 0;
        for offset in std::iter::once(offset).chain(other.filter(|_| remaining > 1)) {
            if let Some(taken) = skip {
                // Only connect()'s walks skip; their offsets are within
                // the range (bind(0)'s may be 1 of a one-port range).
                debug_assert!(offset < remaining);
                // Step k of the pass is the port at offset
                // `(offset + 2k) % remaining`: position `(offset / 2 + k) %
                // npos` of the offset's parity ([`Taken::next_clear`]).
                let (parity, npos, pos0) = (offset & 1, remaining / 2, offset / 2);
                let mut k = 0;
                loop {
                    k = taken.next_clear(parity as usize, npos as usize, pos0 as usize, k);
                    // At most `npos`, a u32.
                    let step = k as u32;
                    if step == npos {
                        break;
                    }
                    let port = low + 2 * ((pos0 + step) % npos) + parity;
                    if let Some(found) = try_port(self, port as u16) {
                        return Ok((found, 2 * step, probed + step + 1));
                    }
                    k += 1;
                }
                probed += npos;
                continue;
            }
            let mut port = low + offset;
            for i in (0..remaining).step_by(2) {
                if port >= high {
                    port -= remaining;
                }
                probed += 1;
                if let Some(found) = try_port(self, port as u16) {
                    return Ok((found, i, probed));
                }
                port += 2;
            }
        }
        Err(probed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Ports;
    use crate::tuple::Tuple;
    use crate::Config;
    use proptest::prelude::*;

    const LOCAL: [u8; 4] = [10, 0, 0, 2];

    proptest! {
        /// Over any holds on a small range (bound ports, entries to the
        /// first destination and to another, listeners), from any start of
        /// either parity, the walk that passes the taken ports by the word
        /// ends where the one-by-one walk does: same port, `i` and count,
        /// or the same count when every port is refused.
        #[test]
        fn skipping_by_the_word_walks_as_port_by_port(
            len in 1u16..400,
            holds in prop::collection::vec(0u8..8, 400),
            listeners in prop::collection::vec(0u16..400, 0..3),
            offset in 0u32..400,
        ) {
            let low = 40_000;
            let mut h = Host::new(Config {
                ip_local_port_range: (low, low + len - 1),
                ..Config::default()
            });
            for l in listeners.iter().filter(|&&l| l < len) {
                h.listen(low + l);
            }
            let on = |port, remote| Tuple::new(LOCAL, port, remote, 80);
            // The first acquire names the first destination.
            h.ports.acquire(&on(low, [10, 0, 0, 1]), false);
            for (i, &hold) in holds.iter().take(len as usize).enumerate() {
                let port = low + i as u16;
                if hold & 1 != 0 && i > 0 {
                    h.ports.acquire(&on(port, [10, 0, 0, 1]), false);
                }
                if hold & 2 != 0 {
                    h.ports.acquire(&on(port, [10, 0, 0, 9]), hold & 4 != 0);
                }
            }
            let at = h.ports.local_at(u32::from_be_bytes(LOCAL)).expect("used");
            let (buckets, taken) = (h.ports.buckets_at(at), h.ports.taken_at(at));
            let refused = |h: &Host, port: u16| {
                let bucket = buckets[usize::from(port - low)];
                let no = h.is_listening(port)
                    || Ports::is_bound(bucket)
                    || Ports::holds_first_dest(bucket);
                (!no).then_some(port)
            };
            let remaining = h.ports.even_remaining();
            let offset = offset % remaining;
            let other = Some(offset + 1).filter(|o| o & 1 == 1);
            prop_assert_eq!(
                h.walk_ports(offset, other, Some(taken), refused),
                h.walk_ports(offset, other, None, refused)
            );
        }
    }
}

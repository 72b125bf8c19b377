//! teardown-engine: the sans-IO core of teardown.
//!
//! [`Host`] is one host's TCP connection table through connection teardown:
//! RFC 9293's close state machine with Linux's timer rules over a sharded
//! hashbrown table ([`table`]) with compact TIME-WAIT entries, and a
//! hierarchical timer wheel ([`wheel`]). The crate depends on nothing that does
//! I/O: it reads no clock, socket or random source. Drivers (the simulator,
//! the UDP service, the script runner, in the `teardown` crate) pass time and
//! segments in and take segments and events out.

pub mod config;
mod conn;
pub mod driver;
mod endpoint;
pub mod host;
mod index;
mod ports;
mod push;
mod rare;
pub mod segment;
pub mod seq;
mod slab;
pub mod state;
pub mod table;
pub mod time;
mod timewait;
pub mod tuple;
pub mod wheel;

pub use config::{Config, Profile, TwOverflow};
pub use driver::Advance;
pub use host::{CloseReason, Error, Event, Host, Role, Stats};
pub use ports::{BindMode, Connected};
pub use segment::{Flags, Segment, Ts};
pub use seq::Seq;
pub use state::State;
pub use time::Time;
pub use tuple::{shard_of, Tuple};

//! teardown: one host's TCP connection table through connection teardown,
//! at the scale of millions of connections.
//!
//! The engine ([`Host`]) is sans-IO: the RFC 9293 close state machine with
//! Linux's timer rules over a sharded hashbrown table ([`table`]) with compact
//! TIME-WAIT entries ([`timewait`]) and a hierarchical timer wheel ([`wheel`]).
//! Drivers pass time and segments in and take segments and events out.

pub mod alloc;
pub mod cli;
pub mod compare;
pub mod config;
mod conn;
pub mod fuzzing;
pub mod host;
pub mod link;
pub mod pcap;
pub mod plan;
pub mod script;
pub mod segment;
pub mod service;
pub mod sim;
mod slab;
pub mod state;
pub mod table;
pub mod time;
mod timewait;
pub mod tuple;
pub mod wheel;
pub mod wire;

pub use config::{Config, Profile, TwOverflow};
pub use host::{CloseReason, Error, Event, Host, Role, Stats};
pub use segment::{Flags, Segment};
pub use state::State;
pub use time::Time;
pub use tuple::{shard_of, Tuple};

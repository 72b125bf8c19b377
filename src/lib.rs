//! teardown: one host's TCP connection table through connection teardown,
//! at the scale of millions of connections.
//!
//! The engine is its own crate, [`teardown_engine`] (sans-IO: no clock, socket
//! or random source). This crate holds its drivers and what they share: the
//! deterministic simulator ([`sim`]), the mio service over UDP ([`service`]),
//! the script runner held against the kernel ([`script`]), the capacity
//! planner ([`plan`]), the criterion comparison ([`compare`]) and the wire,
//! link and pcap formats the drivers speak.

pub mod alloc;
pub mod chart;
pub mod cli;
pub mod compare;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod kernel;
pub mod link;
#[cfg(target_os = "linux")]
pub mod observe;
pub mod pcap;
pub mod plan;
pub mod script;
pub mod service;
pub mod sim;
pub mod wire;

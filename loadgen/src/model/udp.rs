//! The worker's side of the service's UDP wire: datagrams in (through the
//! link's loss toward the client, then the host as one burst), segments out
//! (through the loss toward the server, packed per server worker).

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::UdpSocket;
use teardown::service::route;
use teardown::wire::{self, Encoder};
use teardown_engine::driver::handle_burst;
use teardown_engine::Segment;

use super::app::fin_went_through;
use super::{Outcome, Worker};

impl Worker {
    /// One datagram from the server: its segments reach the host as one burst,
    /// then the application and the output run on what they changed.
    pub(super) fn on_datagram(&mut self, n: usize) {
        self.out.datagrams_received += 1;
        self.at = Instant::now();
        let now = self.plan.clock.at(self.at);
        let Ok(records) = wire::decode(&self.rx[..n]) else {
            self.out.malformed += 1;
            return;
        };
        for seg in records {
            if let Some(a) = &mut self.attacker {
                // Replies to the attacker's made-up tuples reach the attacker only.
                if a.intercept(&seg) {
                    continue;
                }
            }
            if self.plan.loss_to_client.drops(&mut self.rng, &seg) {
                self.out.dropped_to_client += 1;
                continue;
            }
            if !self.vanished.is_empty() && self.vanished.contains(&seg.receiver_tuple()) {
                self.out.to_vanished += 1;
                continue;
            }
            if let Some(a) = &mut self.attacker {
                // The attacker sees the state each segment meets.
                a.observe(&seg, self.host.state(&seg.receiver_tuple()));
                self.host.handle(now, &seg);
            } else {
                self.burst.push(seg);
            }
        }
        handle_burst(&mut self.host, now, &self.burst);
        self.burst.clear();
        self.vanish_acked(now);
        self.app(now);
        self.send(false);
    }

    /// Applies the link's loss toward the server, then packs each segment for the
    /// server worker that owns its tuple.
    pub(super) fn send(&mut self, all: bool) {
        let n = self.plan.server_workers;
        for seg in self.host.transmits() {
            if self.plan.loss_to_server.drops(&mut self.rng, &seg) {
                self.out.dropped_to_server += 1;
                continue;
            }
            if seg.flags.fin() && self.plan.tracks_fins() {
                fin_went_through(&self.plan, &mut self.fins_through, &seg.sender_tuple());
            }
            pack(
                &seg,
                n,
                &mut self.encoders,
                &self.socket,
                self.plan.server,
                &mut self.out,
            );
        }
        if all {
            for (w, enc) in self.encoders.iter_mut().enumerate() {
                if !enc.is_empty() {
                    send_datagram(&self.socket, self.plan.server, w, enc, &mut self.out);
                }
            }
        }
    }
}

/// Packs one segment for the server worker that owns its tuple; sends the
/// datagram once full.
pub(super) fn pack(
    seg: &Segment,
    workers: usize,
    encoders: &mut [Encoder],
    socket: &UdpSocket,
    server: SocketAddr,
    out: &mut Outcome,
) {
    let w = if workers == 1 {
        0
    } else {
        route(&seg.receiver_tuple(), workers)
    };
    let enc = &mut encoders[w];
    enc.push(seg);
    if enc.is_full() {
        send_datagram(socket, server, w, enc, out);
    }
}

fn send_datagram(
    socket: &UdpSocket,
    base: SocketAddr,
    worker: usize,
    enc: &mut Encoder,
    out: &mut Outcome,
) {
    let mut to = base;
    to.set_port(base.port() + worker as u16);
    match socket.send_to(enc.datagram(), to) {
        Ok(_) => out.datagrams_sent += 1,
        Err(_) => out.send_failures += enc.len() as u64,
    }
    enc.clear();
}

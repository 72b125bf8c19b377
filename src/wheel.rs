//! TEMPORARY stand-in (not committed): BTreeMap-backed, same API as the real wheel.
use std::collections::BTreeMap;
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey(u32);
pub struct Wheel<T> { map: BTreeMap<(u64, u32), T>, dl: Vec<u64>, next: u32, elapsed: u64 }
impl<T: Copy> Default for Wheel<T> { fn default() -> Self { Self::new() } }
impl<T: Copy> Wheel<T> {
    pub fn new() -> Self { Wheel { map: BTreeMap::new(), dl: Vec::new(), next: 0, elapsed: 0 } }
    pub fn elapsed(&self) -> u64 { self.elapsed }
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey { let k = self.next; self.next += 1; self.dl.push(deadline); self.map.insert((deadline, k), value); TimerKey(k) }
    pub fn remove(&mut self, key: TimerKey) -> T { let d = self.dl[key.0 as usize]; self.map.remove(&(d, key.0)).expect("live") }
    pub fn next_deadline(&self) -> Option<u64> { self.map.keys().next().map(|k| k.0.max(self.elapsed)) }
    pub fn poll(&mut self, now: u64) -> Option<(u64, T)> { let k = *self.map.keys().next()?; if k.0 > now { self.elapsed = self.elapsed.max(now); return None; } let v = self.map.remove(&k)?; Some((k.0, v)) }
    pub fn len(&self) -> usize { self.map.len() }
    pub fn is_empty(&self) -> bool { self.map.is_empty() }
    pub fn heap_bytes(&self) -> usize { 0 }
}

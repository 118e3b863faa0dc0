//! The race checker: happens-before by vector clocks, decided at enqueue.
//!
//! Actors are the host (actor 0) and every stream. Each actor has a vector
//! clock. Enqueuing an operation on a stream joins the host's clock into the
//! stream's (whatever the host saw complete is ordered before it) and ticks
//! the stream's own entry: the operation's stamp. An event record snapshots
//! the stream's clock; a stream wait joins that snapshot into the waiting
//! stream; a host synchronisation (stream, event, context, or a successful
//! event query) joins it into the host's clock.
//!
//! Every operation declares the byte ranges it reads and writes. An earlier
//! access by another actor that overlaps, where at least one writes, and
//! whose stamp the new operation's clock does not cover, is a race: the
//! process stops naming both operations. Because clocks are decided when
//! operations are enqueued, a missing wait is found whether or not the
//! operations happened to overlap in time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use crate::device::Access;

/// An actor: 0 is the host, every stream has its own.
pub type Actor = usize;
/// The host's actor id.
pub const HOST: Actor = 0;

/// A vector clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VClock(Vec<u64>);

impl VClock {
    /// The entry of actor `a`.
    pub fn get(&self, a: Actor) -> u64 {
        self.0.get(a).copied().unwrap_or(0)
    }
    /// Increments actor `a`'s entry and returns it.
    pub fn tick(&mut self, a: Actor) -> u64 {
        if self.0.len() <= a {
            self.0.resize(a + 1, 0);
        }
        self.0[a] += 1;
        self.0[a]
    }
    /// Entry-wise maximum with `o`.
    pub fn join(&mut self, o: &VClock) {
        if self.0.len() < o.0.len() {
            self.0.resize(o.0.len(), 0);
        }
        for (x, y) in self.0.iter_mut().zip(&o.0) {
            *x = (*x).max(*y);
        }
    }
    /// Whether the operation of `actor` with `stamp` happened before this
    /// clock.
    pub fn covers(&self, actor: Actor, stamp: u64) -> bool {
        self.get(actor) >= stamp
    }
}

#[derive(Debug, Clone)]
struct Record {
    actor: Actor,
    stamp: u64,
    op: String,
    ptr: u64,
    len: u64,
    write: bool,
    what: &'static str,
}

#[derive(Default)]
struct State {
    host: VClock,
    clocks: HashMap<Actor, VClock>,
    names: HashMap<Actor, String>,
    /// Access records per allocation (start, id): a new allocation at a
    /// reused address has a new id, so it never meets a freed one's records.
    records: BTreeMap<(u64, u64), Vec<Record>>,
    next_actor: Actor,
}

fn state() -> &'static Mutex<State> {
    static S: OnceLock<Mutex<State>> = OnceLock::new();
    S.get_or_init(|| {
        Mutex::new(State {
            next_actor: 1,
            ..Default::default()
        })
    })
}

/// A new actor (a stream) named `name`; it starts from the host's clock.
pub fn new_actor(name: String) -> Actor {
    let mut s = state().lock().unwrap();
    let a = s.next_actor;
    s.next_actor += 1;
    let vc = s.host.clone();
    s.clocks.insert(a, vc);
    s.names.insert(a, name);
    a
}

/// A destroyed stream's clock stays (its records may still matter) but is
/// no longer a reason to keep records alive.
pub fn retire_actor(a: Actor) {
    let mut s = state().lock().unwrap();
    s.clocks.remove(&a);
}

fn actor_name(s: &State, a: Actor) -> String {
    if a == HOST {
        "the host".into()
    } else {
        s.names
            .get(&a)
            .cloned()
            .unwrap_or_else(|| format!("stream {a}"))
    }
}

fn check_and_record(
    s: &mut State,
    actor: Actor,
    vc: &VClock,
    stamp: u64,
    op: &str,
    accesses: &[Access],
) {
    let enabled = crate::env::race_check();
    for a in accesses.iter().filter(|a| a.len > 0) {
        let Some((start, _, id)) = crate::device::find(a.ptr, a.len) else {
            continue; // check_range reports it
        };
        let key = (start, id);
        let list = s.records.entry(key).or_default();
        if enabled {
            for r in list.iter() {
                let overlap = r.ptr < a.ptr + a.len && a.ptr < r.ptr + r.len;
                if overlap
                    && (r.write || a.write)
                    && r.actor != actor
                    && !vc.covers(r.actor, r.stamp)
                {
                    let (r, op) = (r.clone(), op.to_string());
                    let first = actor_name(s, r.actor);
                    let second = actor_name(s, actor);
                    crate::fatal(&format!(
                        "race: {op} on {second} {} {} [{:#x}, {:#x}) while {} on {first} {} {} [{:#x}, {:#x}), with no event wait or synchronisation ordering them",
                        if a.write { "writes" } else { "reads" },
                        a.what,
                        a.ptr,
                        a.ptr + a.len,
                        r.op,
                        if r.write { "writes" } else { "reads" },
                        r.what,
                        r.ptr,
                        r.ptr + r.len
                    ));
                }
            }
        }
        list.push(Record {
            actor,
            stamp,
            op: op.to_string(),
            ptr: a.ptr,
            len: a.len,
            write: a.write,
            what: a.what,
        });
        if list.len() > 256 {
            prune(s, key);
        }
    }
}

/// Drops the records every actor has already seen: no future operation can
/// race with them.
fn prune(s: &mut State, key: (u64, u64)) {
    let host = s.host.clone();
    let clocks: Vec<VClock> = s.clocks.values().cloned().collect();
    if let Some(list) = s.records.get_mut(&key) {
        list.retain(|r| {
            !(host.covers(r.actor, r.stamp) && clocks.iter().all(|c| c.covers(r.actor, r.stamp)))
        });
        // Past this, keep the newest: an unbounded history would make every
        // check slower than the operation it guards.
        if list.len() > 4096 {
            let cut = list.len() - 4096;
            list.drain(..cut);
        }
    }
}

/// An operation enqueued on stream `actor`: joins the host's clock, ticks,
/// checks and records its accesses.
pub fn enqueue(actor: Actor, op: &str, accesses: &[Access]) {
    let mut s = state().lock().unwrap();
    let host = s.host.clone();
    let mut vc = s.clocks.remove(&actor).unwrap_or_default();
    vc.join(&host);
    let stamp = vc.tick(actor);
    check_and_record(&mut s, actor, &vc, stamp, op, accesses);
    s.clocks.insert(actor, vc);
}

/// A synchronous host operation (a blocking copy or memset).
pub fn host_access(op: &str, accesses: &[Access]) {
    let mut s = state().lock().unwrap();
    let mut vc = std::mem::take(&mut s.host);
    let stamp = vc.tick(HOST);
    check_and_record(&mut s, HOST, &vc, stamp, op, accesses);
    s.host = vc;
}

/// The clock an event recorded on `actor` now carries.
pub fn snapshot(actor: Actor) -> VClock {
    let mut s = state().lock().unwrap();
    let host = s.host.clone();
    let vc = s.clocks.entry(actor).or_default();
    vc.join(&host);
    vc.clone()
}

/// Stream `actor` waits for an event carrying `vc`.
pub fn stream_waits(actor: Actor, vc: &VClock) {
    let mut s = state().lock().unwrap();
    s.clocks.entry(actor).or_default().join(vc);
}

/// The host saw everything `vc` covers complete.
pub fn host_waits(vc: &VClock) {
    let mut s = state().lock().unwrap();
    s.host.join(vc);
}

/// Drops the records of the allocation(s) that started at `ptr` (freed):
/// they can no longer race, and their memory is returned.
pub fn forget(ptr: u64) {
    let mut s = state().lock().unwrap();
    s.records.retain(|(start, _), _| *start != ptr);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_join_and_cover() {
        let mut a = VClock::default();
        let mut b = VClock::default();
        assert_eq!(a.tick(1), 1);
        assert_eq!(b.tick(2), 1);
        assert!(!b.covers(1, 1));
        b.join(&a);
        assert!(b.covers(1, 1));
        assert!(!b.covers(1, 2));
        assert_eq!(b.get(2), 1);
    }
}

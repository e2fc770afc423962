//! How members reach each other: the [`Transport`] trait, and
//! [`LocalNetwork`], an in-process network for clusters in one process that
//! can drop, delay, duplicate and partition messages (seeded, so a run
//! repeats).

use etcdkit_fs::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use raft::eraftpb::Message;

use crate::OutgoingSnapshot;

/// Sends raft messages to peers. Delivery may fail silently: raft retries.
pub trait Transport: Send + Sync {
    fn send(&self, msgs: Vec<Message>);

    /// Sends a snapshot and its db. The default carries the db inline in
    /// the message (members in one process); a network transport streams
    /// it ([`OutgoingSnapshot::write_db`]).
    fn send_snapshot(&self, s: OutgoingSnapshot) {
        match s.into_inline() {
            Ok(m) => self.send(vec![m]),
            // Raft sends another snapshot when this one is not answered.
            Err(e) => tracing::warn!(target: "raft", "snapshot not sent: {e}"),
        }
    }

    /// The membership changed (or is first known): peers to reach, and the
    /// IDs removed for good (whose traffic is refused).
    fn update_members(&self, _members: &[etcdkit_proto::membership::Member], _removed: &BTreeSet<u64>) {}
}

/// A transport for a single-member cluster: there is no one to send to.
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, _msgs: Vec<Message>) {}
}

/// Where a member receives messages.
pub type Inbox = Arc<dyn Fn(Message) + Send + Sync>;

/// Faults a [`LocalNetwork`] injects, as probabilities per message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    /// Held back and delivered after later messages (reordering).
    pub delay: f64,
}

struct Inner {
    inboxes: BTreeMap<u64, Inbox>,
    /// Pairs (from, to) that cannot talk.
    cut: BTreeSet<(u64, u64)>,
    faults: Faults,
    rng: Rng,
    delayed: Vec<Message>,
}

/// An in-process network: each member registers an inbox; messages go
/// through the fault injector.
#[derive(Clone)]
pub struct LocalNetwork {
    inner: Arc<Mutex<Inner>>,
}

impl LocalNetwork {
    pub fn new(seed: u64) -> LocalNetwork {
        LocalNetwork {
            inner: Arc::new(Mutex::new(Inner {
                inboxes: BTreeMap::new(),
                cut: BTreeSet::new(),
                faults: Faults::default(),
                rng: Rng::new(seed),
                delayed: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects member `id`'s inbox.
    pub fn register(&self, id: u64, inbox: Inbox) {
        self.lock().inboxes.insert(id, inbox);
    }

    pub fn unregister(&self, id: u64) {
        self.lock().inboxes.remove(&id);
    }

    pub fn set_faults(&self, f: Faults) {
        self.lock().faults = f;
    }

    /// Splits the members into groups that cannot reach each other.
    pub fn partition(&self, groups: &[&[u64]]) {
        let mut g = self.lock();
        g.cut.clear();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for x in a.iter() {
                        for y in b.iter() {
                            g.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
    }

    /// Isolates one member from every other.
    pub fn isolate(&self, id: u64) {
        let mut g = self.lock();
        let others: Vec<u64> = g.inboxes.keys().copied().filter(|&o| o != id).collect();
        for o in others {
            g.cut.insert((id, o));
            g.cut.insert((o, id));
        }
    }

    pub fn heal(&self) {
        self.lock().cut.clear();
    }
}

impl Transport for LocalNetwork {
    fn send(&self, msgs: Vec<Message>) {
        let mut g = self.lock();
        let mut out = Vec::with_capacity(msgs.len());
        let faults = g.faults;
        for m in msgs {
            if g.cut.contains(&(m.from, m.to)) || g.rng.unit() < faults.drop {
                continue;
            }
            if g.rng.unit() < faults.delay {
                g.delayed.push(m);
                continue;
            }
            if g.rng.unit() < faults.duplicate {
                out.push(m.clone());
            }
            out.push(m);
        }
        // Delayed messages go out after this batch, in random order.
        if !g.delayed.is_empty() && g.rng.unit() < 0.5 {
            let mut d = std::mem::take(&mut g.delayed);
            while !d.is_empty() {
                let i = g.rng.below(d.len() as u64) as usize;
                out.push(d.swap_remove(i));
            }
        }
        for m in out {
            if g.cut.contains(&(m.from, m.to)) {
                continue;
            }
            if let Some(inbox) = g.inboxes.get(&m.to) {
                inbox(m);
            }
        }
    }
}

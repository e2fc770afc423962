//! Deterministic cluster tests: 3 and 5 [`Member`]s driven by hand over a
//! simulated network with a seeded generator — message loss, duplication
//! and reordering, partitions, crashes (the store's batch lost) and restarts
//! from disk, raft snapshots to members that fell behind.
//!
//! Clients put unique values and read keys (linearizable, ReadIndex) on
//! random members. After each run:
//! - the history is checked for linearizability: etcd's revisions give the
//!   order (writes at their revision, reads at their header revision); it
//!   must respect real time, every read must return the latest write at or
//!   below its revision, and no read may miss a write acknowledged before it
//!   started;
//! - every surviving member, healed, holds the same keys, with every
//!   acknowledged write present (or overwritten by a later one).
//!
//! `SIM_SEEDS=N` sets the number of seeded runs per cluster size (default
//! 24 for 3 members and 12 for 5; 1,000 seeds, `SIM_SEEDS=1000`, are run by hand).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use etcdkit_fs::Rng;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, PutRequest, RangeRequest};
use etcdkit_raft_node::{Config, Error, Member, Response};
use raft::eraftpb::Message;

#[derive(Clone, Debug)]
enum OpKind {
    Put { key: u8, value: u64 },
    Get { key: u8 },
}

#[derive(Clone, Debug)]
enum Outcome {
    /// Not answered (yet, or ever: the member crashed, the proposal was lost).
    Unknown,
    Failed,
    /// A put's revision.
    Put {
        rev: i64,
    },
    /// A read: store revision, and the value with its mod revision.
    Get {
        rev: i64,
        found: Option<(u64, i64)>,
    },
}

#[derive(Clone, Debug)]
struct Op {
    kind: OpKind,
    invoked: u64,
    completed: u64,
    outcome: Outcome,
}

struct Sim {
    rng: Rng,
    cfgs: Vec<Config>,
    members: Vec<Option<Member>>,
    ids: Vec<u64>,
    in_flight: Vec<Message>,
    cut: BTreeSet<(u64, u64)>,
    now: u64,
    ops: Vec<Op>,
    /// Proposals and reads waiting for an answer: (member index, id) → op.
    waiting: HashMap<(usize, u64), usize>,
    next_value: u64,
    next_ctx: u64,
    _tmp: tempfile::TempDir,
}

fn scratch() -> tempfile::TempDir {
    // tmpfs makes fsync free; the runs exercise logic, not the disk.
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() }
}

impl Sim {
    fn new(n: usize, seed: u64) -> Sim {
        let tmp = scratch();
        let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let cluster: Vec<String> =
            names.iter().enumerate().map(|(i, nm)| format!("{nm}=http://127.0.0.1:{}", 7000 + i)).collect();
        let cluster = cluster.join(",");
        let mut cfgs = Vec::new();
        let mut members = Vec::new();
        let mut ids = Vec::new();
        for nm in &names {
            let mut c = Config::new(nm, tmp.path().join(format!("{nm}.etcd")));
            c.initial_cluster = cluster.clone();
            c.initial_cluster_token = format!("sim-{seed}");
            c.election_jitter = false;
            c.election_ticks = 10;
            c.snapshot_count = 25;
            c.catch_up_entries = 5;
            let m = Member::open(c.clone()).unwrap();
            ids.push(m.id());
            members.push(Some(m));
            cfgs.push(c);
        }
        Sim {
            rng: Rng::new(seed),
            cfgs,
            members,
            ids,
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            now: 0,
            ops: Vec::new(),
            waiting: HashMap::new(),
            next_value: 1,
            next_ctx: 1,
            _tmp: tmp,
        }
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.ids.iter().position(|&x| x == id)
    }

    /// Runs `process` on member `i`, routes its messages, records answers.
    fn process(&mut self, i: usize) {
        let Some(m) = self.members[i].as_mut() else { return };
        let out = m.process().unwrap_or_else(|e| panic!("member {i}: {e}"));
        self.in_flight.extend(out.messages);
        for s in out.snapshots {
            let to = s.message.to;
            self.in_flight.push(s.into_inline().expect("snapshot db"));
            m.report_snapshot(to, true);
        }
        for (id, r) in out.applied {
            if let Some(op) = self.waiting.remove(&(i, id)) {
                self.ops[op].completed = self.now;
                self.ops[op].outcome = match r {
                    Ok(Response::Put(p)) => Outcome::Put { rev: p.rev },
                    _ => Outcome::Failed,
                };
            }
        }
        for ctx in out.reads {
            let ctx = u64::from_be_bytes(ctx.try_into().unwrap());
            if let Some(op) = self.waiting.remove(&(i, ctx)) {
                let OpKind::Get { key } = self.ops[op].kind else { unreachable!() };
                let m = self.members[i].as_ref().unwrap();
                let r = m.store().range(&RangeRequest { key: vec![key], ..Default::default() }).unwrap();
                let found =
                    r.kvs.first().map(|kv| (u64::from_be_bytes(kv.value[..8].try_into().unwrap()), kv.mod_revision));
                self.ops[op].completed = self.now;
                self.ops[op].outcome = Outcome::Get { rev: r.rev, found };
            }
        }
    }

    fn deliver(&mut self, drop_p: f64, dup_p: f64) {
        let mut msgs = std::mem::take(&mut self.in_flight);
        // Reorder: deliver a random subset now, keep the rest for later.
        let mut later = Vec::new();
        while !msgs.is_empty() {
            let k = self.rng.below(msgs.len() as u64) as usize;
            let m = msgs.swap_remove(k);
            if self.rng.unit() < 0.2 {
                later.push(m);
                continue;
            }
            if self.rng.unit() < drop_p || self.cut.contains(&(m.from, m.to)) {
                continue;
            }
            let Some(to) = self.index_of(m.to) else { continue };
            let copies = if self.rng.unit() < dup_p { 2 } else { 1 };
            for _ in 0..copies {
                if let Some(member) = self.members[to].as_mut() {
                    member.step(m.clone()).unwrap();
                }
            }
            self.process(to);
        }
        self.in_flight.extend(later);
    }

    fn client_op(&mut self) {
        let i = self.rng.below(self.members.len() as u64) as usize;
        if self.members[i].is_none() {
            return;
        }
        let key = self.rng.below(3) as u8;
        let invoked = self.now;
        if self.rng.unit() < 0.6 {
            let value = self.next_value;
            self.next_value += 1;
            let mut v = value.to_be_bytes().to_vec();
            v.extend_from_slice(b"-payload");
            let req = InternalRaftRequest {
                put: Some(PutRequest { key: vec![key], value: v, ..Default::default() }),
                ..Default::default()
            };
            let op = self.ops.len();
            let outcome = match self.members[i].as_mut().unwrap().propose(req) {
                Ok(id) => {
                    self.waiting.insert((i, id), op);
                    Outcome::Unknown
                }
                Err(Error::NoLeader) | Err(Error::TooManyRequests { .. }) => Outcome::Failed,
                Err(e) => panic!("propose: {e}"),
            };
            self.ops.push(Op { kind: OpKind::Put { key, value }, invoked, completed: u64::MAX, outcome });
        } else {
            let ctx = self.next_ctx;
            self.next_ctx += 1;
            self.members[i].as_mut().unwrap().read_index(ctx.to_be_bytes().to_vec());
            self.waiting.insert((i, ctx), self.ops.len());
            self.ops.push(Op { kind: OpKind::Get { key }, invoked, completed: u64::MAX, outcome: Outcome::Unknown });
        }
        self.process(i);
    }

    fn crash(&mut self, i: usize) {
        if let Some(m) = self.members[i].take() {
            m.crash();
            self.waiting.retain(|(mi, _), _| *mi != i);
            // Its connections die with it: nothing in flight reaches the next incarnation.
            let id = self.ids[i];
            self.in_flight.retain(|m| m.to != id);
        }
    }

    fn restart(&mut self, i: usize) {
        if self.members[i].is_none() {
            self.members[i] = Some(Member::open(self.cfgs[i].clone()).unwrap_or_else(|e| panic!("restart {i}: {e}")));
        }
    }

    fn partition_random(&mut self) {
        self.cut.clear();
        let n = self.ids.len();
        let side: Vec<bool> = (0..n).map(|_| self.rng.unit() < 0.5).collect();
        for a in 0..n {
            for b in 0..n {
                if side[a] != side[b] {
                    self.cut.insert((self.ids[a], self.ids[b]));
                }
            }
        }
    }

    fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| m.as_ref().is_some_and(|m| m.is_leader()))
    }

    /// One step of the world.
    fn step(&mut self, faults: bool) {
        self.now += 1;
        for i in 0..self.members.len() {
            if self.members[i].is_some() && self.rng.unit() < 0.7 {
                self.members[i].as_mut().unwrap().tick();
                self.process(i);
            }
        }
        let (drop_p, dup_p) = if faults { (0.05, 0.03) } else { (0.0, 0.0) };
        self.deliver(drop_p, dup_p);
        for _ in 0..self.rng.below(3) {
            self.client_op();
        }
        if !faults {
            return;
        }
        let r = self.rng.unit();
        if r < 0.01 {
            self.partition_random();
        } else if r < 0.03 {
            self.cut.clear();
        } else if r < 0.04 {
            // Crash the leader, or anyone.
            let i = self.leader().unwrap_or_else(|| self.rng.below(self.members.len() as u64) as usize);
            let alive = self.members.iter().filter(|m| m.is_some()).count();
            if alive > self.members.len() / 2 + 1 || self.rng.unit() < 0.3 {
                self.crash(i);
            }
        } else if r < 0.07 {
            for i in 0..self.members.len() {
                if self.members[i].is_none() {
                    self.restart(i);
                    break;
                }
            }
        }
    }

    /// Heals everything and runs until every member has applied all it knows.
    fn settle(&mut self) {
        self.cut.clear();
        for i in 0..self.members.len() {
            self.restart(i);
        }
        let mut quiet = 0;
        for _ in 0..3000 {
            self.now += 1;
            for i in 0..self.members.len() {
                self.members[i].as_mut().unwrap().tick();
                self.process(i);
            }
            self.deliver(0.0, 0.0);
            quiet = if self.settled() { quiet + 1 } else { 0 };
            if quiet == 30 {
                return;
            }
        }
        let state: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                let m = m.as_ref().unwrap();
                format!(
                    "{:x}: leader {:x} term {} commit {} applied {} is_leader {}",
                    m.id(),
                    m.leader(),
                    m.term(),
                    m.commit_index(),
                    m.applied_index(),
                    m.is_leader()
                )
            })
            .collect();
        panic!("cluster did not settle: {state:#?}, {} messages in flight", self.in_flight.len());
    }

    fn settled(&self) -> bool {
        let ms: Vec<&Member> = self.members.iter().map(|m| m.as_ref().unwrap()).collect();
        let Some(l) = ms.iter().find(|m| m.is_leader()) else { return false };
        let c = l.commit_index();
        ms.iter().all(|m| m.applied_index() == c && m.leader() == l.id())
    }

    fn contents(&self, i: usize) -> BTreeMap<u8, (u64, i64)> {
        let m = self.members[i].as_ref().unwrap();
        let r = m.store().range(&RangeRequest { key: vec![0], range_end: vec![0xff], ..Default::default() }).unwrap();
        r.kvs
            .iter()
            .map(|kv| (kv.key[0], (u64::from_be_bytes(kv.value[..8].try_into().unwrap()), kv.mod_revision)))
            .collect()
    }
}

/// The revision-ordered linearizability check (see the module docs).
fn check_linearizable(ops: &[Op]) -> Result<(), String> {
    // Writes by value, and revision → write for every acknowledged put.
    let mut by_value: HashMap<u64, &Op> = HashMap::new();
    let mut at_rev: BTreeMap<i64, &Op> = BTreeMap::new();
    for op in ops {
        if let OpKind::Put { value, .. } = op.kind {
            by_value.insert(value, op);
            if let Outcome::Put { rev } = op.outcome
                && let Some(prev) = at_rev.insert(rev, op)
            {
                return Err(format!("two puts at revision {rev}: {prev:?} and {op:?}"));
            }
        }
    }
    // Real-time order of acknowledged writes.
    let acked: Vec<(&Op, i64)> =
        ops.iter().filter_map(|o| if let Outcome::Put { rev } = o.outcome { Some((o, rev)) } else { None }).collect();
    for (a, ra) in &acked {
        for (b, rb) in &acked {
            if a.completed < b.invoked && ra >= rb {
                return Err(format!("put {a:?} finished before {b:?} began but has revision {ra} >= {rb}"));
            }
        }
    }
    // Reads.
    for op in ops {
        let (OpKind::Get { key }, Outcome::Get { rev, found }) = (&op.kind, &op.outcome) else { continue };
        // No acknowledged write finished before the read began may be above its view.
        for (w, wr) in &acked {
            if w.completed < op.invoked && wr > rev {
                return Err(format!("stale read {op:?}: missed {w:?} at revision {wr}"));
            }
        }
        // The latest acknowledged write to the key at or below the read's revision.
        let latest_acked = acked
            .iter()
            .filter(|(w, wr)| matches!(w.kind, OpKind::Put { key: k, .. } if k == *key) && wr <= rev)
            .map(|(_, wr)| *wr)
            .max();
        match found {
            None => {
                if let Some(wr) = latest_acked {
                    return Err(format!("read {op:?} found nothing but a put at revision {wr} precedes it"));
                }
            }
            Some((value, mod_rev)) => {
                let Some(w) = by_value.get(value) else { return Err(format!("read {op:?} saw a value never written")) };
                if !matches!(w.kind, OpKind::Put { key: k, .. } if k == *key) {
                    return Err(format!("read {op:?} saw another key's value"));
                }
                if w.invoked > op.completed {
                    return Err(format!("read {op:?} saw a write invoked after it finished: {w:?}"));
                }
                if let Outcome::Put { rev: wr } = w.outcome
                    && wr != *mod_rev
                {
                    return Err(format!("read {op:?}: value's revision {mod_rev} differs from its put's {wr}"));
                }
                if mod_rev > rev {
                    return Err(format!("read {op:?}: value newer than the read's revision"));
                }
                if let Some(wr) = latest_acked
                    && wr > *mod_rev
                {
                    return Err(format!("read {op:?} returned revision {mod_rev} but a put at {wr} is newer"));
                }
            }
        }
    }
    Ok(())
}

fn run(n: usize, seed: u64, steps: u64) {
    let mut sim = Sim::new(n, seed);
    for _ in 0..steps {
        sim.step(true);
    }
    sim.settle();
    // Let reads and proposals still waiting finish.
    for _ in 0..50 {
        sim.step(false);
    }
    sim.settle();
    if let Err(e) = check_linearizable(&sim.ops) {
        panic!("seed {seed} ({n} members): {e}");
    }
    let first = sim.contents(0);
    for i in 1..n {
        assert_eq!(sim.contents(i), first, "seed {seed}: member {i} differs from member 0");
    }
    // Every acknowledged put is there, or a later put to its key.
    for op in &sim.ops {
        if let (OpKind::Put { key, .. }, Outcome::Put { rev }) = (&op.kind, &op.outcome) {
            let (_, have) = first.get(key).unwrap_or_else(|| panic!("seed {seed}: key {key} lost"));
            assert!(*have >= *rev, "seed {seed}: put at {rev} to key {key} lost (have {have})");
        }
    }
    let acked = sim.ops.iter().filter(|o| matches!(o.outcome, Outcome::Put { .. })).count();
    assert!(acked > 0, "seed {seed}: no write was acknowledged");
    // Every member's store is consistent with its applied index.
    for m in sim.members.iter().flatten() {
        assert_eq!(m.store().consistent_index(), m.applied_index(), "seed {seed}");
    }
}

fn seeds(default: u64) -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[test]
fn three_members_under_faults() {
    for seed in 0..seeds(24) {
        run(3, seed, 400);
    }
}

#[test]
fn five_members_under_faults() {
    for seed in 0..seeds(12) {
        run(5, 10_000 + seed, 400);
    }
}

#[test]
fn the_checker_catches_a_stale_read() {
    let put = Op { kind: OpKind::Put { key: 1, value: 7 }, invoked: 1, completed: 2, outcome: Outcome::Put { rev: 5 } };
    let stale =
        Op { kind: OpKind::Get { key: 1 }, invoked: 3, completed: 4, outcome: Outcome::Get { rev: 4, found: None } };
    assert!(check_linearizable(&[put.clone(), stale]).is_err());
    let ok = Op {
        kind: OpKind::Get { key: 1 },
        invoked: 3,
        completed: 4,
        outcome: Outcome::Get { rev: 5, found: Some((7, 5)) },
    };
    assert!(check_linearizable(&[put.clone(), ok]).is_ok());
    let lost =
        Op { kind: OpKind::Get { key: 1 }, invoked: 3, completed: 4, outcome: Outcome::Get { rev: 6, found: None } };
    assert!(check_linearizable(&[put, lost]).is_err());
}

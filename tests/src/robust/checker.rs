//! The linearizability checker: Wing & Gong's search with Lowe's cache, as
//! porcupine (and so etcd's robustness tests) implement it.
//!
//! A history is a set of operations, each with the time its client called
//! it, the time the answer came back and what came back. It is
//! linearizable if the operations can be put in one order that respects real
//! time (an operation that returned before another was called comes first)
//! and in which the model (`model.rs`), fed the requests in that order,
//! gives every recorded answer.
//!
//! The search walks a list of call and return events in time order. At a
//! call it tries to linearize that operation now: if the model accepts the
//! recorded answer from the current state and the pair (set of linearized
//! operations, state) was not seen before, the operation is taken out of the
//! list and the search starts over from the list's head; otherwise it moves
//! on. Reaching a return event means the operation returning there had to be
//! linearized already: the search backtracks, undoing the last choice. The
//! history is linearizable when the list empties, and not when a backtrack
//! finds nothing left to undo.
//!
//! Unknown outcomes (a write whose client timed out or lost its connection)
//! never return: they may take effect at any time after their call, or never.
//! The model state is therefore a set of states (etcd's robustness model
//! does the same): such a write leaves both the states it was applied to and
//! those it was not. When the event log proves the write happened, it carries
//! the revision it got, and only the applied states that reach that revision
//! survive.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::model::{Request, Response, State};

/// What a client got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer (or an error that says the request did nothing).
    Ok(Response),
    /// No answer: the request may or may not have taken effect. `revision`
    /// is the revision the event log shows it took, when it did.
    Unknown { revision: Option<i64> },
}

/// One operation of a history.
#[derive(Clone, Debug)]
pub struct Operation {
    pub client: usize,
    /// Nanoseconds since the history began.
    pub call: u64,
    /// `u64::MAX` when the outcome is unknown.
    pub ret: u64,
    pub req: Request,
    pub out: Outcome,
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order exists. `stuck` are the operations (indices) that could not
    /// be placed after the longest linearizable prefix found, which had
    /// `prefix` operations.
    Violation {
        prefix: usize,
        stuck: Vec<usize>,
    },
    /// The search ran out of time (counted apart, never as a pass).
    Timeout,
}

/// A set of model states, sorted and without duplicates.
type States = Vec<State>;

/// The states `op` can lead to from `states`, empty if none gives its answer.
fn step(states: &States, op: &Operation) -> States {
    let mut next: States = Vec::new();
    for s in states {
        match &op.out {
            Outcome::Ok(want) => {
                let (t, got) = s.step(&op.req);
                if got == *want {
                    next.push(t);
                }
            }
            Outcome::Unknown { revision: Some(r) } => {
                let (t, _) = s.step(&op.req);
                if t.revision == *r && t.revision != s.revision {
                    next.push(t);
                }
            }
            Outcome::Unknown { revision: None } => {
                next.push(s.clone());
                next.push(s.step(&op.req).0);
            }
        }
    }
    next.sort();
    next.dedup();
    next
}

/// A fixed-size set of operation indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

const NIL: usize = usize::MAX;

/// Checks `ops` from `init` within `budget`.
pub fn check(init: &State, ops: &[Operation], budget: Duration) -> Verdict {
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    let deadline = Instant::now() + budget;
    // Events: node 0 is the head; node 1 + 2i is op i's call, 2 + 2i its return.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, true, i));
        events.push((op.ret, false, i));
    }
    // Time order; at equal times calls first (the more permissive order).
    events.sort_by_key(|&(t, call, i)| (t, !call, i));
    let node = |call: bool, i: usize| if call { 1 + 2 * i } else { 2 + 2 * i };
    let mut next = vec![NIL; 2 * n + 1];
    let mut prev = vec![NIL; 2 * n + 1];
    let mut last = 0;
    for &(_, call, i) in &events {
        let id = node(call, i);
        next[last] = id;
        prev[id] = last;
        last = id;
    }
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, id: usize| {
        let (p, nx) = (prev[id], next[id]);
        next[p] = nx;
        if nx != NIL {
            prev[nx] = p;
        }
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, id: usize| {
        let (p, nx) = (prev[id], next[id]);
        next[p] = id;
        if nx != NIL {
            prev[nx] = id;
        }
    };
    let mut state: States = vec![init.clone()];
    let mut linearized = Bits::new(n);
    let mut done = 0usize;
    let mut cache: HashSet<(Bits, States)> = HashSet::new();
    let mut calls: Vec<(usize, States)> = Vec::new();
    let mut best = (0usize, linearized.clone());
    let mut entry = next[0];
    let mut steps = 0u64;
    while next[0] != NIL {
        steps += 1;
        if steps.is_multiple_of(4096) && Instant::now() > deadline {
            return Verdict::Timeout;
        }
        let id = entry;
        let i = (id - 1) / 2;
        if id % 2 == 1 {
            let stepped = step(&state, &ops[i]);
            if !stepped.is_empty() {
                let mut lin = linearized.clone();
                lin.set(i);
                let key = (lin, stepped);
                if !cache.contains(&key) {
                    cache.insert(key.clone());
                    let (lin, stepped) = key;
                    calls.push((id, std::mem::replace(&mut state, stepped)));
                    linearized = lin;
                    done += 1;
                    if done > best.0 {
                        best = (done, linearized.clone());
                    }
                    lift(&mut next, &mut prev, id);
                    lift(&mut next, &mut prev, id + 1);
                    entry = next[0];
                    continue;
                }
            }
            entry = next[id];
        } else {
            // Op i's return: it had to be linearized by now.
            let Some((call_id, before)) = calls.pop() else {
                let mut stuck: Vec<usize> = (0..n).filter(|j| !best.1.has(*j)).collect();
                stuck.sort_by_key(|&j| ops[j].call);
                stuck.truncate(8);
                return Verdict::Violation { prefix: best.0, stuck };
            };
            state = before;
            let j = (call_id - 1) / 2;
            linearized.clear(j);
            done -= 1;
            unlift(&mut next, &mut prev, call_id + 1);
            unlift(&mut next, &mut prev, call_id);
            entry = next[call_id];
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::super::model::{Compare, KeyValue, RangeRequest, RangeResponse, TxnOp};
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
    fn put(client: usize, call: u64, ret: u64, v: &str, rev: i64) -> Operation {
        Operation {
            client,
            call,
            ret,
            req: Request::Put { key: b("k"), value: b(v), lease: 0 },
            out: Outcome::Ok(Response::Put { revision: rev }),
        }
    }
    fn get(client: usize, call: u64, ret: u64, v: Option<(&str, i64)>, rev: i64) -> Operation {
        let kvs: Vec<KeyValue> = v
            .map(|(v, m)| KeyValue {
                key: b("k"),
                value: b(v),
                create_revision: 2,
                mod_revision: m,
                version: m - 1,
                lease: 0,
            })
            .into_iter()
            .collect();
        let count = kvs.len() as i64;
        Operation {
            client,
            call,
            ret,
            req: Request::Range(RangeRequest { key: b("k"), end: vec![], limit: 0 }),
            out: Outcome::Ok(Response::Range { r: RangeResponse { kvs, count, more: false }, revision: rev }),
        }
    }
    const S: Duration = Duration::from_secs(10);

    #[test]
    fn concurrent_writes_may_order_either_way() {
        let init = State::new(1, 0, vec![]);
        // Two overlapping puts; a read after both sees the one that got revision 3.
        let h = vec![put(0, 0, 10, "a", 3), put(1, 1, 9, "b", 2), get(2, 11, 12, Some(("a", 3)), 3)];
        assert_eq!(check(&init, &h, S), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_is_a_violation() {
        let init = State::new(1, 0, vec![]);
        // The put returned before the read began, yet the read misses it.
        let h = vec![put(0, 0, 5, "a", 2), get(1, 6, 7, None, 1)];
        assert!(matches!(check(&init, &h, S), Verdict::Violation { .. }));
        // Overlapping, the same read is fine.
        let h = vec![put(0, 0, 5, "a", 2), get(1, 4, 7, None, 1)];
        assert_eq!(check(&init, &h, S), Verdict::Linearizable);
    }

    #[test]
    fn a_lost_acknowledged_write_is_a_violation() {
        let init = State::new(1, 0, vec![]);
        let h = vec![put(0, 0, 5, "a", 2), put(0, 6, 8, "b", 3), get(1, 9, 10, Some(("a", 2)), 2)];
        assert!(matches!(check(&init, &h, S), Verdict::Violation { .. }));
    }

    #[test]
    fn unknown_writes_may_or_may_not_happen() {
        let init = State::new(1, 0, vec![]);
        let mut lost = put(0, 0, u64::MAX, "a", 0);
        lost.out = Outcome::Unknown { revision: None };
        // Seen later, or never seen: both fine.
        let seen = vec![lost.clone(), get(1, 20, 21, Some(("a", 2)), 2)];
        assert_eq!(check(&init, &seen, S), Verdict::Linearizable);
        let unseen = vec![lost.clone(), get(1, 20, 21, None, 1), get(1, 22, 23, Some(("a", 2)), 2)];
        assert_eq!(check(&init, &unseen, S), Verdict::Linearizable);
        // But not seen, then unseen again.
        let flicker = vec![lost, get(1, 20, 21, Some(("a", 2)), 2), get(1, 22, 23, None, 1)];
        assert!(matches!(check(&init, &flicker, S), Verdict::Violation { .. }));
    }

    #[test]
    fn two_cas_on_one_revision_cannot_both_succeed() {
        let init = State::new(
            2,
            0,
            vec![KeyValue { key: b("k"), value: b("0"), create_revision: 2, mod_revision: 2, version: 1, lease: 0 }],
        );
        let cas = |c, v: &str, rev| Operation {
            client: c,
            call: 0,
            ret: 10,
            req: Request::Txn {
                compare: vec![Compare::ModRevision(b("k"), 2)],
                success: vec![TxnOp::Put { key: b("k"), value: b(v) }],
                failure: vec![],
            },
            out: Outcome::Ok(Response::Txn {
                succeeded: true,
                results: vec![super::super::model::TxnResult::Put],
                revision: rev,
            }),
        };
        assert!(matches!(check(&init, &[cas(0, "a", 3), cas(1, "b", 4)], S), Verdict::Violation { .. }));
        assert_eq!(check(&init, &[cas(0, "a", 3)], S), Verdict::Linearizable);
    }
}

//! A defragmentation whose copy runs while the store goes on writing
//! (`defrag.rs`): whatever the writes between its steps (puts, deletes,
//! leases, compactions), the defragmented file holds exactly what a store
//! that never defragmented holds, byte for byte in every bucket.

use etcdkit_mvcc::{MvccError, Store, StoreOptions};
use etcdkit_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use etcdkit_storage::Options;

fn open(path: &std::path::Path, batch_limit: usize) -> Store {
    let o = StoreOptions { db: Options { no_sync: true, ..Default::default() }, batch_limit, ..Default::default() };
    Store::open(path, o).unwrap()
}

/// Two stores: the one that defragments, and the one it must end equal to.
struct Pair {
    dir: tempfile::TempDir,
    a: Store,
    b: Store,
}

impl Pair {
    fn new(batch_limit: usize) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let a = open(&dir.path().join("a.db"), batch_limit);
        let b = open(&dir.path().join("b.db"), batch_limit);
        Pair { dir, a, b }
    }

    /// Steps `from..to` of the mix.
    fn steps(&mut self, from: u64, to: u64) {
        for n in from..to {
            self.step(n);
        }
    }

    fn tmp(&self) -> std::path::PathBuf {
        self.dir.path().join("a.db.tmp")
    }

    /// Applies the `n`th step of a fixed mix of writes to both stores.
    fn step(&mut self, n: u64) {
        for s in [&mut self.a, &mut self.b] {
            let key = format!("k{:03}", n * 7 % 250).into_bytes();
            match n % 10 {
                0..=5 => {
                    let value = format!("{n:0>300}").into_bytes();
                    let lease = if n.is_multiple_of(4) { 1000 + (n / 40) as i64 % 5 } else { 0 };
                    let lease = if s.lease(lease).is_some() { lease } else { 0 };
                    s.put(&PutRequest { key, value, lease, ..Default::default() }).unwrap();
                }
                6 | 7 => {
                    s.delete_range(&DeleteRangeRequest { key, ..Default::default() }).unwrap();
                }
                8 => {
                    let id = 1000 + (n / 40) as i64 % 5;
                    if s.lease(id).is_some() {
                        s.lease_revoke(id).unwrap();
                    } else {
                        s.lease_grant(id, 60).unwrap();
                    }
                }
                _ => {
                    if n % 30 == 9 {
                        let rev = s.rev() - 20;
                        if rev > s.compact_rev() {
                            s.compact(rev).unwrap();
                        }
                    }
                }
            }
        }
    }

    /// Both stores hold the same: every bucket's bytes (`hash`), the
    /// history a compaction keeps (`hash_kv`), revisions, keys, leases.
    fn assert_same(&mut self) {
        assert_eq!(self.a.rev(), self.b.rev());
        assert_eq!(self.a.compact_rev(), self.b.compact_rev());
        assert_eq!(self.a.hash().unwrap(), self.b.hash().unwrap(), "every bucket, byte for byte");
        assert_eq!(self.a.hash_kv(0).unwrap(), self.b.hash_kv(0).unwrap());
        let all = RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() };
        assert_eq!(self.a.range(&all).unwrap(), self.b.range(&all).unwrap());
        let ids = |s: &Store| s.leases().map(|l| (l.id, l.keys.clone())).collect::<Vec<_>>();
        assert_eq!(ids(&self.a), ids(&self.b));
        let tx = self.a.db().begin().unwrap();
        let problems = etcdkit_storage::check::check(&tx);
        assert!(problems.is_empty(), "the defragmented file: {problems:?}");
    }

    /// Closes the defragmenting store (committing its batch) and opens its
    /// file again.
    fn reopen_a(&mut self, batch_limit: usize) {
        let stand_in = open(&self.dir.path().join("stand-in.db"), 1);
        drop(std::mem::replace(&mut self.a, stand_in));
        self.a = open(&self.dir.path().join("a.db"), batch_limit);
    }
}

/// The copy runs on a thread while this one writes to the store, with
/// compactions in between (held back, then done on the new file); the
/// result equals the store that never defragmented, before and after a
/// reopen.
#[test]
fn a_copy_beside_writes_ends_equal_to_a_store_that_never_defragmented() {
    for batch_limit in [1, 10_000] {
        let mut p = Pair::new(batch_limit);
        p.steps(0, 3000);
        let copy = p.a.defrag_begin(&p.tmp()).unwrap();
        let copying = std::thread::spawn(move || copy.run(&mut |_| {}));
        let mut n = 3000;
        while !copying.is_finished() || n < 3300 {
            p.step(n);
            n += 1;
        }
        let copied = copying.join().unwrap().unwrap();
        for _ in 0..50 {
            p.step(n);
            n += 1;
        }
        // (The sizes are not compared: the writes beside the copy, as many
        // as a slow machine lets in, all land in the new file's last step.
        // `defragment_keeps_the_keyspace_and_the_watchers` checks the
        // shrinking.)
        p.a.defrag_finish(copied).unwrap();
        assert!(!p.tmp().exists());
        p.assert_same();
        for _ in 0..200 {
            p.step(n);
            n += 1;
        }
        p.assert_same();
        p.reopen_a(batch_limit);
        p.assert_same();
    }
}

/// A cancelled copy leaves the store as it was, and runs the compaction it
/// held back on the old file; only one defragmentation runs at a time.
#[test]
fn a_cancelled_copy_runs_the_held_compaction_on_the_old_file() {
    let mut p = Pair::new(1);
    p.steps(0, 1200);
    let copy = p.a.defrag_begin(&p.tmp()).unwrap();
    assert!(matches!(p.a.defrag_begin(&p.tmp()), Err(MvccError::DefragRunning)));
    p.steps(1200, 1300);
    copy.canceller().store(true, std::sync::atomic::Ordering::Relaxed);
    let err = copy.run(&mut |_| {}).err().expect("cancelled");
    assert!(matches!(err, MvccError::Storage(etcdkit_storage::Error::Cancelled(_))), "{err}");
    p.a.defrag_abandon().unwrap();
    p.assert_same();
    // The next one begins, and removes the partial copy first.
    assert!(p.tmp().exists());
    p.a.defragment(&p.tmp()).unwrap();
    p.assert_same();
}

/// A store closed while its compaction is held back (a crash or a stop
/// mid-defragmentation) finishes that compaction when it is opened again.
#[test]
fn a_held_compaction_is_finished_on_open() {
    let mut p = Pair::new(1);
    p.steps(0, 1000);
    let copy = p.a.defrag_begin(&p.tmp()).unwrap();
    p.steps(1000, 1060);
    drop(copy);
    p.reopen_a(1);
    p.assert_same();
}

/// A copy finished on a store that no longer has the copied file (a raft
/// snapshot replaced the store) is refused, and the store is untouched.
#[test]
fn a_copy_of_another_file_is_refused() {
    let mut p = Pair::new(1);
    p.steps(0, 100);
    let copied = p.a.defrag_begin(&p.tmp()).unwrap().run(&mut |_| {}).unwrap();
    assert!(matches!(p.b.defrag_finish(copied), Err(MvccError::DefragStale)));
    p.a.defrag_abandon().unwrap();
    p.assert_same();
}

//! Watchers: every change in range from the start revision, in order,
//! exactly once — also when the watcher is slow (its channel full), which
//! never blocks writes; filters, prev_kv, cancel, progress, compaction.

use etcdkit_mvcc::{MvccError, Store, StoreOptions, WatchRequest, WatchResponse};
use etcdkit_proto::etcdserverpb::{DeleteRangeRequest, PutRequest};
use etcdkit_storage::Options;
use proptest::prelude::*;

fn store(batch_limit: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let o = StoreOptions { db: Options { no_sync: true, ..Default::default() }, batch_limit, ..Default::default() };
    let s = Store::open(dir.path().join("db"), o).unwrap();
    (dir, s)
}

fn put(s: &mut Store, k: &str, v: &str) -> i64 {
    s.put(&PutRequest { key: k.into(), value: v.into(), ..Default::default() }).unwrap().rev
}

fn del(s: &mut Store, k: &str) -> i64 {
    s.delete_range(&DeleteRangeRequest { key: k.into(), ..Default::default() }).unwrap().rev
}

/// (revision, key, delete) of every event received so far.
fn drain(rx: &std::sync::mpsc::Receiver<WatchResponse>, out: &mut Vec<(i64, Vec<u8>, bool)>) {
    while let Ok(r) = rx.try_recv() {
        for e in r.events {
            out.push((e.kv.mod_revision, e.kv.key.to_vec(), e.delete));
        }
    }
}

#[test]
fn history_then_live_with_filters_prev_kv_and_cancel() {
    let (_d, mut s) = store(1);
    put(&mut s, "a", "1");
    put(&mut s, "b", "1");
    let r3 = put(&mut s, "a", "2");
    let (id, rx) = s
        .watch(WatchRequest {
            key: b"a".to_vec(),
            start_revision: 2,
            prev_kv: true,
            capacity: 16,
            ..Default::default()
        })
        .unwrap();
    let (_nd, rx_nodel) = s
        .watch(WatchRequest {
            key: b"".to_vec(),
            range_end: vec![0],
            no_delete: true,
            capacity: 16,
            ..Default::default()
        })
        .unwrap();
    let r4 = del(&mut s, "a");
    put(&mut s, "c", "1");
    let first = rx.recv().unwrap();
    assert_eq!(first.events.len(), 2, "history: a@2, a@{r3}");
    assert_eq!(first.events[1].prev_kv.as_ref().unwrap().value[..], b"1"[..]);
    let live = rx.recv().unwrap();
    assert!(live.events[0].delete && live.events[0].kv.mod_revision == r4);
    assert_eq!(live.events[0].prev_kv.as_ref().unwrap().value[..], b"2"[..]);
    let got: Vec<_> = rx_nodel.try_iter().flat_map(|r| r.events).map(|e| e.kv.key).collect();
    assert_eq!(got, vec![b"c".to_vec()], "no_delete filters the delete of a");
    assert!(s.cancel_watch(id));
    put(&mut s, "a", "3");
    assert!(rx.try_recv().is_err());
    s.progress();
    let p = rx_nodel.try_iter().last().unwrap();
    assert!(p.events.is_empty() || p.events.iter().any(|e| e.kv.key[..] == b"a"[..]));
    assert!(!s.cancel_watch(id));
}

#[test]
fn compaction_cancels_a_watcher_behind_it() {
    let (_d, mut s) = store(1);
    for i in 0..5 {
        put(&mut s, "k", &i.to_string());
    }
    let (_id, rx) =
        s.watch(WatchRequest { key: b"k".to_vec(), start_revision: 2, capacity: 1, ..Default::default() }).unwrap();
    // The history fills the channel; later writes leave the watcher behind.
    for i in 0..5 {
        put(&mut s, "k", &format!("x{i}"));
    }
    s.compact(8).unwrap();
    let mut got = Vec::new();
    drain(&rx, &mut got);
    s.sync_watchers();
    let last: Vec<_> = rx.try_iter().collect();
    assert!(last.iter().any(|r| r.canceled && r.compact_revision == 8), "{last:?}");
    assert!(matches!(
        s.watch(WatchRequest { key: b"k".to_vec(), start_revision: 3, ..Default::default() }),
        Err(MvccError::Compacted { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// A slow watcher (capacity 1, drained now and then) gets exactly the
    /// changes in its range from its start, in order, while writes never wait.
    #[test]
    fn slow_watchers_miss_nothing(ops in proptest::collection::vec((0u8..6, any::<bool>(), any::<bool>()), 1..80),
                                 start in 0i64..10, batch in prop_oneof![Just(1usize), Just(7)]) {
        let (_d, mut s) = store(batch);
        for i in 0..5 {
            put(&mut s, &format!("k{i}"), "init");
        }
        let start = if start == 0 { 0 } else { start.min(s.rev()) };
        let (_id, rx) = s.watch(WatchRequest { key: b"k".to_vec(), range_end: b"k4".to_vec(), start_revision: start, capacity: 1, ..Default::default() }).unwrap();
        let begin = if start == 0 { s.rev() + 1 } else { start };
        let mut want: Vec<(i64, Vec<u8>, bool)> = Vec::new();
        let mut got = Vec::new();
        // What the store already holds from `begin`, in range.
        for e in s.events(etcdkit_mvcc::KeyRange::Span(b"k", b"k4"), begin, false).unwrap() {
            want.push((e.kv.mod_revision, e.kv.key.to_vec(), e.delete));
        }
        for (k, is_del, read) in ops {
            let key = format!("k{k}");
            let before = s.rev();
            let rev = if is_del { del(&mut s, &key) } else { put(&mut s, &key, "v") };
            if rev != before && key.as_str() < "k4" {
                want.push((rev, key.into_bytes(), is_del));
            }
            if read {
                drain(&rx, &mut got);
                s.sync_watchers();
            }
        }
        for _ in 0..200 {
            drain(&rx, &mut got);
            s.sync_watchers();
        }
        drain(&rx, &mut got);
        prop_assert_eq!(got, want);
    }
}

/// A defragmentation swaps the file under the store: the keyspace, the
/// hash and the running watchers carry on, and the file shrinks.
#[test]
fn defragment_keeps_the_keyspace_and_the_watchers() {
    let (dir, mut s) = store(1);
    for i in 0..400 {
        put(&mut s, &format!("k{}", i % 40), &"v".repeat(500));
    }
    s.compact(s.rev()).unwrap();
    let (_, rx) = s.watch(WatchRequest { key: b"w".to_vec(), capacity: 8, ..Default::default() }).unwrap();
    let hash = s.hash_kv(0).unwrap();
    let (before, after) = s.defragment(&dir.path().join("db.tmp")).unwrap();
    assert!(after < before, "{after} >= {before}");
    assert_eq!(s.hash_kv(0).unwrap(), hash);
    assert!(!dir.path().join("db.tmp").exists());
    let rev = put(&mut s, "w", "after");
    let mut got = Vec::new();
    drain(&rx, &mut got);
    assert_eq!(got, vec![(rev, b"w".to_vec(), false)]);
    drop(s);
    let s = Store::open(dir.path().join("db"), StoreOptions::default()).unwrap();
    assert_eq!(s.rev(), rev);
}

/// A stream's progress request is answered (watch ID -1, the current
/// revision) only once its watchers have been sent every event up to that
/// revision: never ahead of an event still to come (etcd #15220).
#[test]
fn progress_all_waits_for_a_watcher_behind() {
    let (_d, mut s) = store(1);
    for i in 0..6 {
        put(&mut s, "k", &i.to_string());
    }
    // From revision 2 with room for one response: the history (one
    // response) fills it and the live writes leave the watcher behind.
    let req = WatchRequest { key: b"k".to_vec(), start_revision: 2, capacity: 1, ..Default::default() };
    let (id, rx) = s.watch(req).unwrap();
    let top = put(&mut s, "k", "late");
    s.progress_all(vec![id]);
    let mut seen = Vec::new();
    let mut last_event = 0;
    // Drain and sync until the watcher has caught up and the answer came.
    for _ in 0..10 {
        while let Ok(r) = rx.try_recv() {
            if r.watch_id == -1 {
                assert!(r.events.is_empty());
                assert!(r.revision >= last_event, "progress at {} behind an event at {last_event}", r.revision);
                seen.push(r.revision);
            }
            if let Some(e) = r.events.last() {
                assert!(seen.is_empty(), "an event at {} after a progress answer at {seen:?}", e.kv.mod_revision);
                last_event = e.kv.mod_revision;
            }
        }
        s.sync_watchers();
    }
    assert_eq!(last_event, top);
    assert_eq!(seen, vec![top], "exactly one answer, at the current revision");
}

/// A watcher far behind catches up in steps of at most 1,000 revisions
/// (etcd's `watchBatchMaxRevs`), each event once and in order; watchers of
/// one range behind from one revision share each read and all get it all.
#[test]
fn watchers_far_behind_catch_up_in_steps_of_a_thousand_revisions() {
    let (_d, mut s) = store(1000);
    for i in 0..2_500 {
        put(&mut s, &format!("k{}", i % 7), "v");
    }
    put(&mut s, "other", "v");
    let last = s.rev();
    let watch = |s: &mut Store, no_put| {
        s.watch(WatchRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            start_revision: 2,
            no_put,
            capacity: 1,
            ..Default::default()
        })
        .unwrap()
        .1
    };
    let (a, b, filtered) = (watch(&mut s, false), watch(&mut s, false), watch(&mut s, true));
    let mut seen = [Vec::new(), Vec::new()];
    let mut responses = 0;
    for _ in 0..10 {
        for (rx, seen) in [&a, &b].into_iter().zip(seen.iter_mut()) {
            while let Ok(r) = rx.try_recv() {
                responses += 1;
                let revs: Vec<i64> = r.events.iter().map(|e| e.kv.mod_revision).collect();
                assert!(
                    revs.last().unwrap() - revs[0] < 1_000,
                    "one step spans {}..={}",
                    revs[0],
                    revs.last().unwrap()
                );
                seen.extend(revs);
            }
        }
        s.sync_watchers();
    }
    let want: Vec<i64> = (2..last).collect();
    assert_eq!(seen[0], want);
    assert_eq!(seen[1], want);
    assert!(responses >= 6, "2,499 revisions in {responses} responses");
    // Only deletions wanted: nothing to send, and it is synced at the end.
    assert!(filtered.try_recv().is_err());
    let r = del(&mut s, "k1");
    assert_eq!(filtered.try_recv().unwrap().events[0].kv.mod_revision, r);
}

/// A sink that says it has no room is not offered a catch-up, and gets its
/// history once it has room again.
#[test]
fn a_full_sink_is_not_read_for_until_it_has_room() {
    use etcdkit_mvcc::{Offer, WatchSink};
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(bool, usize, Vec<i64>)>>);
    impl WatchSink for Sink {
        fn offer(&self, r: WatchResponse) -> Offer {
            let mut g = self.0.lock().unwrap();
            g.1 += 1;
            g.2.extend(r.events.iter().map(|e| e.kv.mod_revision));
            Offer::Sent
        }
        fn has_room(&self) -> bool {
            self.0.lock().unwrap().0
        }
    }
    let (_d, mut s) = store(1);
    for _ in 0..5 {
        put(&mut s, "a", "v");
    }
    let sink = Sink::default();
    let req = WatchRequest { key: b"a".to_vec(), start_revision: 2, capacity: 1, ..Default::default() };
    s.watch_to(req, Box::new(sink.clone())).unwrap();
    s.sync_watchers();
    assert_eq!(sink.0.lock().unwrap().1, 0);
    sink.0.lock().unwrap().0 = true;
    s.sync_watchers();
    let g = sink.0.lock().unwrap();
    assert_eq!((g.1, g.2.clone()), (1, vec![2, 3, 4, 5, 6]));
}

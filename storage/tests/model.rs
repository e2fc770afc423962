//! Property tests against a `BTreeMap` model, with reopen after commit and
//! rollback; and a reader that keeps a stable view while a writer commits,
//! grows the file and frees pages.

use std::collections::BTreeMap;

use etcdkit_storage::{Db, FreelistType, Options, check};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put(u16, u16, u8),
    Delete(u16),
    DeleteRange(u16, u16),
    Commit,
    Rollback,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u16..600, 0u16..3000, any::<u8>()).prop_map(|(k, n, b)| Op::Put(k, n, b)),
        4 => (0u16..600).prop_map(Op::Delete),
        1 => (0u16..600, 1u16..300).prop_map(|(a, n)| Op::DeleteRange(a, n)),
        2 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => Just(Op::Reopen),
    ]
}

fn key(k: u16) -> Vec<u8> {
    format!("key-{k:05}").into_bytes()
}

fn value(n: u16, b: u8) -> Vec<u8> {
    // Mostly small values, sometimes several pages (overflow).
    let len = if n > 2900 { n as usize * 7 } else { n as usize % 120 };
    vec![b; len]
}

fn assert_matches(db: &Db, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let tx = db.begin().unwrap();
    let problems = check::check(&tx);
    assert!(problems.is_empty(), "check: {problems:?}");
    let Some(b) = tx.bucket(b"b").unwrap() else {
        assert!(model.is_empty());
        return;
    };
    let got: Vec<(Vec<u8>, Vec<u8>)> =
        b.iter().map(|e| e.map(|(k, v)| (k.to_vec(), v.unwrap().to_vec())).unwrap()).collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "contents differ");
    // Slices into the map stay right after its pages leave the RSS (they
    // are read back from the file).
    let held: Vec<(&[u8], &[u8])> = b.iter().map(|e| e.map(|(k, v)| (k, v.unwrap())).unwrap()).collect();
    db.release_pages();
    assert!(held.iter().map(|&(k, v)| (k.to_vec(), v.to_vec())).eq(want.iter().cloned()), "after release_pages");
    for (k, v) in model.iter().take(50) {
        assert_eq!(b.get(k).unwrap(), Some(&v[..]));
    }
    // Reverse iteration and seeks agree too.
    let mut c = b.cursor();
    let mut rev = Vec::new();
    let mut e = c.last().unwrap();
    while let Some((k, _)) = e {
        rev.push(k.to_vec());
        e = c.prev().unwrap();
    }
    rev.reverse();
    assert_eq!(rev, model.keys().cloned().collect::<Vec<_>>());
    let probe = key(300);
    let want_seek = model.range(probe.clone()..).next().map(|(k, _)| k.clone());
    assert_eq!(b.cursor().seek(&probe).unwrap().map(|(k, _)| k.to_vec()), want_seek);
}

fn run(ops: Vec<Op>, fl: FreelistType, nosync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let opts = Options { freelist_type: fl, no_freelist_sync: nosync, no_sync: true, ..Default::default() };
    let mut db = Db::open(&path, opts.clone()).unwrap();
    let mut committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut model = committed.clone();
    let mut tx = db.begin_rw().unwrap();
    for op in ops {
        let t = &mut tx;
        match op {
            Op::Put(k, n, b) => {
                let v = value(n, b);
                t.create_bucket_if_not_exists(b"b").unwrap().put(&key(k), &v).unwrap();
                model.insert(key(k), v);
            }
            Op::Delete(k) => {
                if let Some(mut b) = t.bucket(b"b").unwrap() {
                    b.delete(&key(k)).unwrap();
                    assert_eq!(b.get(&key(k)).unwrap(), None);
                }
                model.remove(&key(k));
            }
            Op::DeleteRange(a, n) => {
                if let Some(mut b) = t.bucket(b"b").unwrap() {
                    for k in a..a.saturating_add(n) {
                        b.delete(&key(k)).unwrap();
                    }
                }
                for k in a..a.saturating_add(n) {
                    model.remove(&key(k));
                }
            }
            Op::Commit => {
                tx.commit().unwrap();
                committed = model.clone();
                assert_matches(&db, &committed);
                tx = db.begin_rw().unwrap();
            }
            Op::Rollback => {
                tx.rollback();
                model = committed.clone();
                assert_matches(&db, &committed);
                tx = db.begin_rw().unwrap();
            }
            Op::Reopen => {
                tx.commit().unwrap();
                committed = model.clone();
                drop(db);
                db = Db::open(&path, opts.clone()).unwrap();
                assert_matches(&db, &committed);
                tx = db.begin_rw().unwrap();
            }
        }
    }
    tx.commit().unwrap();
    drop(db);
    let db = Db::open(&path, Options { read_only: true, ..Default::default() }).unwrap();
    assert_matches(&db, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn btreemap_model_array(ops in proptest::collection::vec(op(), 1..400), nosync in any::<bool>()) {
        run(ops, FreelistType::Array, nosync);
    }

    #[test]
    fn btreemap_model_hashmap(ops in proptest::collection::vec(op(), 1..400), nosync in any::<bool>()) {
        run(ops, FreelistType::Hashmap, nosync);
    }
}

#[test]
fn reader_keeps_a_stable_view_while_the_writer_commits() {
    reader_keeps_a_stable_view(true);
}

/// With fdatasync on, large commits write finished pages before the rest of
/// the tree is spilled: the held view must not see them either.
#[test]
fn reader_keeps_a_stable_view_while_synced_commits_write_pages_early() {
    reader_keeps_a_stable_view(false);
}

fn reader_keeps_a_stable_view(no_sync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("r.db"), Options { no_sync, ..Default::default() }).unwrap();
    let val = |i: u32, generation: u8| vec![generation; 50 + (i as usize % 700)];
    db.update(|tx| {
        let mut b = tx.create_bucket(b"b")?;
        for i in 0..2000u32 {
            b.put(&i.to_be_bytes(), &val(i, 1))?;
        }
        Ok(())
    })
    .unwrap();
    let size_before = db.begin().unwrap().size();

    let reader = db.begin().unwrap();
    let rb = reader.bucket(b"b").unwrap().unwrap();
    // Hold slices into the map across the writer's commits.
    let held: Vec<&[u8]> = (0..2000u32).map(|i| rb.get(&i.to_be_bytes()).unwrap().unwrap()).collect();

    for round in 0..20u32 {
        db.update(|tx| {
            let mut b = tx.bucket(b"b")?.unwrap();
            for i in 0..2000u32 {
                if (i + round) % 3 == 0 {
                    b.delete(&i.to_be_bytes())?;
                } else {
                    b.put(&i.to_be_bytes(), &val(i, 2 + round as u8))?;
                }
            }
            // Grow well past the initial mapping.
            for j in 0..300u32 {
                b.put(&(1_000_000 + round * 1000 + j).to_be_bytes(), &[7u8; 3000])?;
            }
            Ok(())
        })
        .unwrap();
    }
    assert!(db.begin().unwrap().size() > 8 * size_before);
    for (i, v) in held.iter().enumerate() {
        assert_eq!(*v, &val(i as u32, 1)[..], "held slice {i} changed");
    }
    let n = rb.iter().count();
    assert_eq!(n, 2000, "the reader's view changed");
    assert!(check::check(&reader).is_empty());
    drop(reader);

    // With the reader gone, its pages are reused: the data stops growing (the
    // high-water mark; a synced file also runs zeroed space ahead of it).
    let hwm = || db.begin().unwrap().size();
    let len = hwm();
    for _ in 0..5 {
        db.update(|tx| {
            let mut b = tx.bucket(b"b")?.unwrap();
            for i in 0..2000u32 {
                b.put(&i.to_be_bytes(), &val(i, 99))?;
            }
            Ok(())
        })
        .unwrap();
    }
    assert!(hwm() <= len + 64 * 4096, "high-water mark {} grew from {len}", hwm());
    let tx = db.begin().unwrap();
    assert_eq!(tx.bucket(b"b").unwrap().unwrap().get(&5u32.to_be_bytes()).unwrap(), Some(&val(5, 99)[..]));
}

/// Synced commits of thousands of random puts and deletes (hundreds of dirty
/// pages each, so written in early batches) read back exactly, before and
/// after a reopen, with a reader pinning an older state part of the time.
#[test]
fn large_synced_commits_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let opts = Options { no_sync: false, no_freelist_sync: false, ..Default::default() };
    let mut db = Db::open(&path, opts.clone()).unwrap();
    let mut model = BTreeMap::new();
    let mut r = etcdkit_fs::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut rnd = move || r.next_u64();
    for round in 0..6u32 {
        let pinned = (round % 2 == 1).then(|| db.begin().unwrap());
        let before: Option<usize> = pinned.as_ref().map(|t| t.bucket(b"b").unwrap().map_or(0, |b| b.iter().count()));
        let mut tx = db.begin_rw().unwrap();
        let mut b = tx.create_bucket_if_not_exists(b"b").unwrap();
        for _ in 0..4000 {
            let k = (rnd() % 30_000).to_be_bytes().to_vec();
            let v = vec![round as u8; 20 + (rnd() % 300) as usize];
            b.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        for _ in 0..1000 {
            let k = (rnd() % 30_000).to_be_bytes().to_vec();
            b.delete(&k).unwrap();
            model.remove(&k);
        }
        tx.commit().unwrap();
        if let (Some(t), Some(n)) = (&pinned, before) {
            assert_eq!(t.bucket(b"b").unwrap().map_or(0, |b| b.iter().count()), n, "pinned view changed");
            assert!(check::check(t).is_empty());
        }
        drop(pinned);
        assert_matches(&db, &model);
        if round % 3 == 2 {
            drop(db);
            db = Db::open(&path, opts.clone()).unwrap();
            assert_matches(&db, &model);
        }
    }
}

#[test]
fn readers_on_other_threads_see_committed_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db"), Options { no_sync: true, ..Default::default() }).unwrap();
    db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..200 {
                    let tx = db.begin().unwrap();
                    let b = tx.bucket(b"b").unwrap().unwrap();
                    // Every committed state holds keys 0..n with value n.
                    let n = b.iter().count() as u32;
                    for i in 0..n {
                        assert_eq!(b.get(&i.to_be_bytes()).unwrap(), Some(&n.to_be_bytes()[..]));
                    }
                }
            });
        }
        for n in 1..=300u32 {
            db.update(|tx| {
                let mut b = tx.bucket(b"b")?.unwrap();
                for i in 0..n {
                    b.put(&i.to_be_bytes(), &n.to_be_bytes())?;
                }
                Ok(())
            })
            .unwrap();
        }
    });
}

#[test]
fn errors_are_typed() {
    use etcdkit_storage::Error;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("e.db"), Options::default()).unwrap();
    let mut tx = db.begin_rw().unwrap();
    assert!(matches!(tx.create_bucket(b""), Err(Error::BucketNameRequired)));
    let mut b = tx.create_bucket(b"b").unwrap();
    assert!(matches!(b.put(b"", b"v"), Err(Error::KeyRequired)));
    assert!(matches!(b.put(&vec![1u8; 32769], b"v"), Err(Error::KeyTooLarge(32769))));
    b.put(b"k", b"v").unwrap();
    assert!(matches!(b.create_bucket(b"k"), Err(Error::IncompatibleValue(..))));
    b.create_bucket(b"sub").unwrap();
    assert!(matches!(b.put(b"sub", b"v"), Err(Error::IncompatibleValue(..))));
    assert!(matches!(b.delete(b"sub"), Err(Error::IncompatibleValue(..))));
    assert!(matches!(b.create_bucket(b"sub"), Err(Error::BucketExists(_))));
    assert!(matches!(b.delete_bucket(b"nope"), Err(Error::BucketNotFound(_))));
    assert_eq!(b.next_sequence().unwrap(), 1);
    tx.commit().unwrap();
    drop(db);
    let ro = Db::open(dir.path().join("e.db"), Options { read_only: true, ..Default::default() }).unwrap();
    assert!(matches!(ro.begin_rw(), Err(Error::ReadOnly)));
    assert_eq!(ro.begin().unwrap().bucket(b"b").unwrap().unwrap().sequence(), 1);
}

/// A file written without syncs (a defragmentation's copy), then synced and
/// switched to synced commits, keeps every page: the next commits append
/// past what the unsynced ones wrote, and zeroing ahead of the file's end
/// starts at its end, not where the file ended when it was opened.
#[test]
fn commits_after_no_sync_is_turned_off_keep_the_unsynced_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.db");
    let mut db = Db::open(&path, Options { no_sync: true, ..Default::default() }).unwrap();
    let mut model = BTreeMap::new();
    let mut put_batch = |db: &Db, first: u32| {
        db.update(|tx| {
            let mut b = tx.create_bucket_if_not_exists(b"b")?;
            b.set_fill_percent(1.0);
            for i in first..first + 2000 {
                let (k, v) = (i.to_be_bytes().to_vec(), vec![(i % 251) as u8; 1000]);
                b.put(&k, &v)?;
                model.insert(k, v);
            }
            Ok(())
        })
        .unwrap();
    };
    for n in 0..3 {
        put_batch(&db, n * 2000);
    }
    db.sync().unwrap();
    db.set_no_sync(false).unwrap();
    assert!(!db.options().no_sync);
    for n in 3..5 {
        put_batch(&db, n * 2000);
    }
    assert_matches(&db, &model);
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    assert_matches(&db, &model);
}

//! `save` of a database that a writer keeps committing to: every snapshot is
//! one committed state, whole. The writer puts key `i` and deletes key
//! `i - WINDOW` in commit `i`, so freed pages are reused while the copy runs;
//! a consistent copy holds exactly the keys of one window `[j - WINDOW, j]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use etcdkit_snapshot::{save, verify_trailer};
use etcdkit_storage::{Db, Options, check};

const WINDOW: u64 = 40;

#[test]
fn snapshots_taken_while_a_writer_commits_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path().join("live.db"), Options { no_sync: true, ..Default::default() }).unwrap());
    db.update(|tx| tx.create_bucket(b"b").map(drop)).unwrap();
    let value = vec![7u8; 3000];
    // A base of data so that every copy spans many chunks of pages.
    db.update(|tx| {
        let mut b = tx.create_bucket(b"base")?;
        (0..3000u32).try_for_each(|i| b.put(&i.to_be_bytes(), &value))
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop, value) = (db.clone(), stop.clone(), value.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                db.update(|tx| {
                    let mut b = tx.bucket(b"b")?.expect("bucket");
                    b.put(&i.to_be_bytes(), &value)?;
                    if i > WINDOW { b.delete(&(i - WINDOW - 1).to_be_bytes()) } else { Ok(()) }
                })
                .unwrap();
            }
            i
        })
    };
    let mut windows = Vec::new();
    for n in 0..8 {
        let path = dir.path().join(format!("snap-{n}.db"));
        save(&db, &path).unwrap();
        assert!(verify_trailer(&etcdkit_fs::RealFs, &path).unwrap(), "snapshot {n}: sha256 trailer");
        let copy = Db::open(&path, Options { read_only: true, ..Default::default() }).unwrap();
        let tx = copy.begin().unwrap();
        let problems = check::check(&tx);
        assert!(problems.is_empty(), "snapshot {n}: {problems:?}");
        assert_eq!(tx.bucket(b"base").unwrap().unwrap().iter().count(), 3000);
        let keys: Vec<u64> = tx
            .bucket(b"b")
            .unwrap()
            .unwrap()
            .iter()
            .map(|e| {
                let (k, v) = e.unwrap();
                assert_eq!(v, Some(&value[..]), "snapshot {n}: a value");
                u64::from_be_bytes(k.try_into().unwrap())
            })
            .collect();
        if let (Some(&lo), Some(&hi)) = (keys.first(), keys.last()) {
            assert_eq!(keys, (lo..=hi).collect::<Vec<_>>(), "snapshot {n}: keys not one committed window");
            assert!(hi <= WINDOW + 1 || hi - lo == WINDOW, "snapshot {n}: window {lo}..={hi}");
            windows.push(hi);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let commits = writer.join().unwrap();
    assert!(commits > WINDOW, "the writer committed while the snapshots were taken ({commits})");
    assert!(windows.windows(2).all(|w| w[0] <= w[1]), "later snapshots see later states: {windows:?}");
}

//! Torn writes, corruption and random save/cut/reopen sequences.

use etcdkit_proto::raftpb::{Entry, HardState};
use etcdkit_proto::walpb::Snapshot;
use etcdkit_wal::{Error, Wal, read_all, read_segments, repair};
use proptest::prelude::*;

fn entry(index: u64, term: u64, size: usize) -> Entry {
    Entry { r#type: 0, term, index, data: Some(vec![(index % 251) as u8; size]) }
}

/// A WAL with `n` entries in one segment, shrunk to its used bytes.
fn small_wal(dir: &std::path::Path, n: u64) -> Vec<u8> {
    let mut w = Wal::create(dir, b"metadata", &Default::default()).unwrap();
    for i in 1..=n {
        w.save(&HardState { term: 1, vote: 1, commit: i }, &[entry(i, 1, (i * 37 % 300) as usize)]).unwrap();
    }
    w.close().unwrap();
    let (segs, _) = read_segments(&etcdkit_fs::RealFs, dir).unwrap();
    let seg = &segs[0];
    let bytes = std::fs::read(&seg.path).unwrap()[..seg.records_end as usize].to_vec();
    std::fs::write(&seg.path, &bytes).unwrap();
    bytes
}

/// [`small_wal`] in `<tmp>/wal`: the temp dir, the segment's bytes, the segment.
fn small_wal_segment(n: u64) -> (tempfile::TempDir, Vec<u8>, etcdkit_wal::Segment) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let full = small_wal(&dir, n);
    let (mut segs, _) = read_segments(&etcdkit_fs::RealFs, &dir).unwrap();
    (tmp, full, segs.remove(0))
}

#[test]
fn torn_tails_read_as_the_valid_prefix_and_repair() {
    let (tmp, full, segment) = small_wal_segment(40);
    let dir = tmp.path().join("wal");
    let (seg, frames) = (segment.path, segment.frames);
    // Every record boundary, and points inside each record.
    let mut cuts = Vec::new();
    for f in &frames {
        let end = f.offset + 8 + f.len + f.pad;
        cuts.extend([f.offset, f.offset + 3, f.offset + 8, f.offset + 8 + f.len / 2, end - 1]);
    }
    for cut in cuts {
        for zero in [false, true] {
            // etcd treats a record with an all-zero sector as torn.
            let (cut, b) = etcdkit_testkit::crash::tear(&full, cut, zero);
            std::fs::write(&seg, &b).unwrap();
            // Entries whose records end at or before the cut survive.
            let survive = frames.iter().filter(|f| f.record.r#type == 2 && f.offset + 8 + f.len + f.pad <= cut).count();
            let r = read_all(&etcdkit_fs::RealFs, &dir, Snapshot::default()).unwrap();
            assert_eq!(r.entries.len(), survive, "cut {cut} zero {zero}");
            for (i, e) in r.entries.iter().enumerate() {
                assert_eq!(*e, entry(i as u64 + 1, 1, ((i as u64 + 1) * 37 % 300) as usize));
            }
            let _ = repair(&etcdkit_fs::RealFs, &dir).unwrap();
            let (w, r2) = Wal::open(&dir, Snapshot::default(), &Default::default()).expect("opens after repair");
            assert_eq!(r2.entries.len(), survive);
            drop(w);
            let _ = std::fs::remove_file(dir.join(format!("{}.broken", seg.file_name().unwrap().to_string_lossy())));
        }
    }
}

#[test]
fn a_torn_tail_is_repaired_and_writing_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let full = small_wal(&dir, 10);
    let (segs, _) = read_segments(&etcdkit_fs::RealFs, &dir).unwrap();
    let last = segs[0].frames.last().unwrap().clone();
    let mut b = full.clone();
    b.truncate((last.offset + 12) as usize);
    std::fs::write(&segs[0].path, &b).unwrap();
    assert!(matches!(Wal::open(&dir, Snapshot::default(), &Default::default()), Err(Error::UnexpectedEof { .. })));
    assert!(repair(&etcdkit_fs::RealFs, &dir).unwrap());
    assert!(dir.join(format!("{}.broken", segs[0].name)).exists());
    let (mut w, r) = Wal::open(&dir, Snapshot::default(), &Default::default()).unwrap();
    let n = r.entries.len() as u64;
    w.save(&HardState { term: 2, vote: 1, commit: n + 1 }, &[entry(n + 1, 2, 10)]).unwrap();
    w.close().unwrap();
    let r = read_all(&etcdkit_fs::RealFs, &dir, Snapshot::default()).unwrap();
    assert_eq!(r.entries.last().unwrap().index, n + 1);
    assert_eq!(r.state.term, 2);
}

#[test]
fn bit_flips_give_typed_errors_or_a_valid_prefix() {
    let (tmp, full, segment) = small_wal_segment(30);
    let dir = tmp.path().join("wal");
    let seg = segment.path;
    for off in (0..full.len()).step_by(7) {
        for bit in [0u8, 3, 7] {
            let mut b = full.clone();
            b[off] ^= 1 << bit;
            std::fs::write(&seg, &b).unwrap();
            match read_all(&etcdkit_fs::RealFs, &dir, Snapshot::default()) {
                Ok(r) => {
                    // Whatever is returned is an exact prefix of what was written.
                    for (i, e) in r.entries.iter().enumerate() {
                        assert_eq!(
                            *e,
                            entry(i as u64 + 1, 1, ((i as u64 + 1) * 37 % 300) as usize),
                            "flip {off}:{bit}"
                        );
                    }
                }
                Err(
                    Error::CrcMismatch { .. }
                    | Error::UnexpectedEof { .. }
                    | Error::Corrupt { .. }
                    | Error::EntryTooLarge { .. }
                    | Error::UnexpectedType { .. }
                    | Error::MetadataConflict
                    | Error::SliceOutOfRange { .. }
                    | Error::SnapshotMismatch { .. },
                ) => {}
                Err(e) => panic!("flip at {off} bit {bit}: unexpected error {e}"),
            }
            let _ = repair(&etcdkit_fs::RealFs, &dir);
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Save(u8, u16),
    Snapshot,
    Reopen,
    Conflict(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1u8..5, 0u16..2000).prop_map(|(n, s)| Op::Save(n, s)),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Reopen),
        1 => (1u8..4).prop_map(Op::Conflict),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Random saves (cutting small segments), snapshot records, reopens and
    /// log rewrites read back exactly.
    #[test]
    fn random_save_cut_reopen_reads_back(ops in proptest::collection::vec(op(), 1..60)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let mut w = Wal::create(&dir, b"md", &etcdkit_wal::Options { segment_size: 4096, ..Default::default() }).unwrap();
        let mut model: Vec<Entry> = Vec::new();
        let mut term = 1;
        // Entries up to `commit` are committed: never rewritten.
        let mut commit = 0u64;
        for op in ops {
            match op {
                Op::Save(n, size) => {
                    let mut ents = Vec::new();
                    for _ in 0..n {
                        let e = entry(model.len() as u64 + 1, term, size as usize);
                        model.push(e.clone());
                        ents.push(e);
                    }
                    // The previous entries became committed.
                    commit = commit.max(model.len() as u64 - n as u64);
                    let st = HardState { term, vote: 1, commit };
                    w.save(&st, &ents).unwrap();
                }
                Op::Snapshot => {
                    if commit == 0 {
                        continue;
                    }
                    let s = Snapshot::at(commit, model[commit as usize - 1].term);
                    w.save_snapshot(s).unwrap();
                }
                Op::Reopen => {
                    w.close().unwrap();
                    let opts = etcdkit_wal::Options { segment_size: 4096, ..Default::default() };
                    let (nw, r) = Wal::open(&dir, Snapshot::default(), &opts).unwrap();
                    prop_assert_eq!(&r.entries, &model);
                    w = nw;
                }
                Op::Conflict(k) => {
                    // A new leader rewrites up to k uncommitted entries with a higher term.
                    term += 1;
                    let keep = model.len().saturating_sub(k as usize).max(commit as usize);
                    model.truncate(keep);
                    let e = entry(keep as u64 + 1, term, 5);
                    model.push(e.clone());
                    w.save(&HardState { term, vote: 2, commit }, &[e]).unwrap();
                }
            }
        }
        w.close().unwrap();
        let r = read_all(&etcdkit_fs::RealFs, &dir, Snapshot::default()).unwrap();
        prop_assert_eq!(&r.entries, &model);
        prop_assert!(!r.torn);
    }
}

#[test]
fn cuts_name_segments_by_first_index_and_release_locks_as_etcd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::create(&dir, b"md", &etcdkit_wal::Options { segment_size: 2048, ..Default::default() }).unwrap();
    for i in 1..=60u64 {
        w.save(&HardState { term: 1, vote: 1, commit: i }, &[entry(i, 1, 200)]).unwrap();
    }
    let held = w.held_segments();
    assert!(held.len() > 4, "cut into {} segments", held.len());
    // Each segment after the first is named after the index it starts with.
    let names: Vec<(u64, u64)> = held
        .iter()
        .map(|p| etcdkit_wal::names::parse_wal_name(&p.file_name().unwrap().to_string_lossy()).unwrap())
        .collect();
    for (i, (seq, _)) in names.iter().enumerate() {
        assert_eq!(*seq, i as u64);
    }
    // Release up to the index starting segment 3: segments 0 and 1 are let go,
    // segment 2 (which may hold the index just before) is kept.
    let idx = names[3].1;
    w.release_lock_to(idx);
    let left = w.held_segments();
    assert_eq!(left.len(), held.len() - 2);
    assert_eq!(left[0], held[2]);
    // An index past every segment keeps only the tail.
    w.release_lock_to(u64::MAX);
    assert_eq!(w.held_segments(), vec![held.last().unwrap().clone()]);
    w.close().unwrap();
    let r = read_all(&etcdkit_fs::RealFs, &dir, Snapshot::default()).unwrap();
    assert_eq!(r.entries.len(), 60);
    assert_eq!(r.state.commit, 60);
    // Reading from a snapshot in the middle starts at the right segment.
    let r = read_all(&etcdkit_fs::RealFs, &dir, Snapshot::at(30, 1)).unwrap();
    assert_eq!(r.entries.first().unwrap().index, 31);
    assert!(!r.snapshot_found);
}

#[test]
fn a_wal_open_for_writing_is_locked_against_a_second_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let w = Wal::create(&dir, b"md", &Default::default()).unwrap();
    // OFD locks conflict between open file descriptions, even in one process.
    assert!(matches!(Wal::open(&dir, Snapshot::default(), &Default::default()), Err(Error::Locked(_))));
    drop(w);
    let (w2, _) = Wal::open(&dir, Snapshot::default(), &Default::default()).unwrap();
    assert!(matches!(Wal::open(&dir, Snapshot::default(), &Default::default()), Err(Error::Locked(_))));
    // Readers take no lock.
    assert!(read_all(&etcdkit_fs::RealFs, &dir, Snapshot::default()).is_ok());
    drop(w2);
}

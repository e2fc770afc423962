//! Acceptance (WAL): etcdkit reads real etcd WALs exactly as etcd's own `wal`
//! package does, re-encodes every record byte for byte, writes a WAL that is
//! byte-identical to etcd's restore output, and real etcd boots on it.

use std::path::Path;

use etcdkit_proto::Message;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, Metadata, Request};
use etcdkit_proto::raftpb::{ConfChange, ConfState, Entry, EntryType, HardState};
use etcdkit_proto::walpb::Snapshot;
use etcdkit_tests::{
    FIXTURE_VERSIONS, assert_serves_fixture, etcd_for, etcdkit_ok, extract_datadir, extract_restored, fixture_sets,
    fixture_text, is_35, json_lines, set_kind, start_etcd,
};
use etcdkit_wal::record::{ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE, encode_frame};
use etcdkit_wal::{Wal, read_all, read_segments};

/// `etcdkit wal dump DIR -w json`, one object per record.
fn dump_json(dir: &Path) -> Vec<serde_json::Value> {
    json_lines(&etcdkit_ok(&["wal", "dump", dir.to_str().unwrap(), "-w", "json"]))
}

#[test]
fn wal_dump_equals_etcds_reader() {
    for set in fixture_sets() {
        let tmp = tempfile::tempdir().unwrap();
        for (dir, reference) in [
            (extract_datadir(&set, tmp.path()), "wal.jsonl"),
            (extract_restored(&set, tmp.path()), "restored-wal.jsonl"),
        ] {
            let (Some(dir), Some(want)) = (dir, fixture_text(&set, reference)) else { continue };
            let got = dump_json(&dir.join("member/wal"));
            let want = json_lines(&want);
            assert_eq!(got.len(), want.len(), "{set} {reference}: line count");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "{set} {reference}: line {}", i + 1);
            }
        }
    }
}

#[test]
fn every_record_re_encodes_to_the_original_bytes() {
    let mut records = 0;
    for set in fixture_sets() {
        let tmp = tempfile::tempdir().unwrap();
        for dir in [extract_datadir(&set, tmp.path()), extract_restored(&set, tmp.path())].into_iter().flatten() {
            let (segs, torn) = read_segments(&etcdkit_fs::RealFs, &dir.join("member/wal")).unwrap();
            assert!(!torn);
            for s in segs {
                let bytes = std::fs::read(&s.path).unwrap();
                for f in &s.frames {
                    let mut out = Vec::new();
                    encode_frame(&f.record, &mut out);
                    let orig = &bytes[f.offset as usize..(f.offset + 8 + f.len + f.pad) as usize];
                    assert!(out == orig, "{set} {} offset {}: frame differs", s.name, f.offset);
                    let data = f.record.data.as_deref().unwrap_or(&[]);
                    let again = match f.record.r#type {
                        ENTRY_TYPE => {
                            let e = Entry::decode(data).unwrap();
                            let inner = e.data.as_deref().unwrap_or(&[]);
                            if e.r#type == EntryType::EntryConfChange as i32 {
                                assert_eq!(ConfChange::decode(inner).unwrap().encode_to_vec(), inner);
                            } else if !inner.is_empty() {
                                // As etcd applies it: an InternalRaftRequest, else a bare v2 Request.
                                match InternalRaftRequest::decode(inner) {
                                    Ok(r) => assert_eq!(r.encode_to_vec(), inner, "{set}: InternalRaftRequest"),
                                    Err(_) => {
                                        let v2 = Request::decode(inner).unwrap();
                                        assert_eq!(v2.encode_to_vec(), inner, "{set}: v2 Request");
                                    }
                                }
                            }
                            e.encode_to_vec()
                        }
                        STATE_TYPE => HardState::decode(data).unwrap().encode_to_vec(),
                        SNAPSHOT_TYPE => Snapshot::decode(data).unwrap().encode_to_vec(),
                        METADATA_TYPE => Metadata::decode(data).unwrap().encode_to_vec(),
                        _ => data.to_vec(),
                    };
                    assert!(again == data, "{set} {} offset {}: record data differs", s.name, f.offset);
                    records += 1;
                }
            }
        }
    }
    assert!(records > 1000, "only {records} records checked");
}

/// Writes the restore-style WAL of `restored` again with etcdkit: it must be
/// byte-identical to the one etcdctl wrote.
fn rewrite_restored_wal(restored: &Path) -> std::path::PathBuf {
    let wal_dir = restored.join("member/wal");
    let r = read_all(&etcdkit_fs::RealFs, &wal_dir, Snapshot::at(0, 0)).unwrap();
    let snaps = etcdkit_wal::valid_snapshot_entries(&etcdkit_fs::RealFs, &wal_dir).unwrap();
    let ours = restored.join("member/wal.etcdkit");
    let mut w = Wal::create(&ours, &r.metadata, &Default::default()).unwrap();
    w.save(&r.state, &r.entries).unwrap();
    for s in snaps.iter().filter(|s| s.index > 0) {
        w.save_snapshot(s.clone()).unwrap();
    }
    w.close().unwrap();
    ours
}

#[test]
fn restore_style_wal_written_by_etcdkit_is_byte_identical() {
    for set in fixture_sets() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(restored) = extract_restored(&set, tmp.path()) else { continue };
        let ours = rewrite_restored_wal(&restored);
        let theirs = restored.join("member/wal");
        let names = etcdkit_wal::names::read_wal_names(&etcdkit_fs::RealFs, &theirs).unwrap();
        assert_eq!(etcdkit_wal::names::read_wal_names(&etcdkit_fs::RealFs, &ours).unwrap(), names);
        for n in names {
            let a = std::fs::read(ours.join(&n)).unwrap();
            let b = std::fs::read(theirs.join(&n)).unwrap();
            assert_eq!(a.len(), b.len(), "{set} {n}: size");
            assert!(a == b, "{set} {n}: bytes differ");
        }
    }
}

/// A restore-style WAL built from scratch (metadata, one ConfChangeAddNode with
/// the member's JSON, hard state, snapshot record) equals etcdctl's bytes. Only
/// the member and cluster IDs are taken from the fixture (their derivation
/// belongs to the snapshot restore).
#[test]
fn restore_wal_built_from_scratch_is_byte_identical() {
    use etcdkit_proto::membership::Member;
    use etcdkit_proto::raftpb::ConfChangeType;
    for set in fixture_sets() {
        let args = fixture_text(&set, "restore-args.txt").unwrap_or_default();
        let arg = |name: &str| {
            args.split_once(&format!("--{name} ")).map(|(_, r)| r.split_whitespace().next().unwrap().to_string())
        };
        let (Some(name), Some(peer)) = (arg("name"), arg("initial-advertise-peer-urls")) else { continue };
        let tmp = tempfile::tempdir().unwrap();
        let Some(restored) = extract_restored(&set, tmp.path()) else { continue };
        let theirs = restored.join("member/wal");
        let md =
            Metadata::decode(read_all(&etcdkit_fs::RealFs, &theirs, Snapshot::default()).unwrap().metadata.as_slice())
                .unwrap();

        let member = Member { id: md.node_id, peer_urls: vec![peer], name, ..Default::default() };
        let cc = ConfChange {
            id: 0,
            r#type: ConfChangeType::ConfChangeAddNode as i32,
            node_id: member.id,
            context: Some(member.to_json()),
        };
        let entry =
            Entry { r#type: EntryType::EntryConfChange as i32, term: 1, index: 1, data: Some(cc.encode_to_vec()) };
        let ours = tmp.path().join("ours");
        let mut w = Wal::create(&ours, &md.encode_to_vec(), &Default::default()).unwrap();
        w.save(&HardState { term: 1, vote: member.id, commit: 1 }, &[entry]).unwrap();
        // etcd 3.5 records the conf state with the snapshot position.
        let cs = is_35(&set).then(|| ConfState { voters: vec![member.id], ..Default::default() });
        w.save_snapshot(Snapshot { conf_state: cs, ..Snapshot::at(1, 1) }).unwrap();
        w.close().unwrap();
        let n = etcdkit_wal::names::wal_name(0, 0);
        let (a, b) = (std::fs::read(ours.join(&n)).unwrap(), std::fs::read(theirs.join(&n)).unwrap());
        assert!(a == b, "{set}: a from-scratch restore WAL differs from etcdctl's");
    }
}

#[test]
fn real_etcd_boots_on_a_wal_written_by_etcdkit() {
    let mut booted = 0;
    for (i, set) in fixture_sets().into_iter().enumerate() {
        let Some((etcd, ctl)) = etcd_for(&set) else { return };
        // One member, no auth: etcd can serve it alone without credentials.
        let args = fixture_text(&set, "restore-args.txt").unwrap_or_default();
        let cluster = args.split_once("--initial-cluster ").map(|(_, r)| r.split(' ').next().unwrap_or(""));
        if set_kind(&set) == "auth" || cluster.is_none_or(|c| c.contains(',')) {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let Some(restored) = extract_restored(&set, tmp.path()) else { continue };
        let ours = rewrite_restored_wal(&restored);
        let wal = restored.join("member/wal");
        std::fs::remove_dir_all(&wal).unwrap();
        std::fs::rename(&ours, &wal).unwrap();

        let (client, peer) = (24479 + 2 * i as u16, 24480 + 2 * i as u16);
        let etcd = start_etcd(&etcd, "n1", &restored, client, peer, None);
        assert_serves_fixture(&etcd, &ctl, &set, "on our WAL");
        // etcd holds its WAL segments locked (OFD locks): a second writer is refused.
        assert!(
            matches!(Wal::open(&wal, Snapshot::default(), &Default::default()), Err(etcdkit_wal::Error::Locked(_))),
            "{set}: opened a WAL that a running etcd holds"
        );
        booted += 1;
    }
    assert!(booted >= 1);
}

/// Entries a reader should return from the entry records that end at or before
/// `cut` (raft rewrites applied by index).
fn expected_before(frames: &[etcdkit_wal::record::Frame], cut: u64) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for f in frames.iter().filter(|f| f.offset + 8 + f.len + f.pad <= cut && f.record.r#type == ENTRY_TYPE) {
        let e = Entry::decode(f.record.data.as_deref().unwrap()).unwrap();
        out.truncate(e.index as usize - 1);
        out.push(e);
    }
    out
}

/// `Wal::open`, tried again for up to 2 s while the segment is locked: a
/// process another test of this binary spawns shares this one's open files
/// from its fork until its exec, and an OFD lock lives as long as any copy.
fn open_settled(wal: &std::path::Path) -> Result<(Wal, etcdkit_wal::ReadAll), etcdkit_wal::Error> {
    let start = std::time::Instant::now();
    loop {
        match Wal::open(wal, Snapshot::default(), &Default::default()) {
            Err(e) if e.to_string().contains("locked") && start.elapsed() < std::time::Duration::from_secs(2) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

#[test]
fn torn_fixture_wals_read_their_valid_prefix_and_repair() {
    use etcdkit_wal::{Error, repair};
    let mut cases = 0;
    for set in FIXTURE_VERSIONS.iter().flat_map(|v| ["small", "leases", "cluster3"].map(|k| format!("{v}/{k}"))) {
        let tmp = tempfile::tempdir().unwrap();
        let Some(dir) = extract_datadir(&set, tmp.path()) else { continue };
        let wal = dir.join("member/wal");
        let (segs, _) = read_segments(&etcdkit_fs::RealFs, &wal).unwrap();
        assert_eq!(segs.len(), 1, "{set}: one segment");
        let seg = &segs[0];
        let full = std::fs::read(&seg.path).unwrap()[..seg.records_end as usize].to_vec();
        let mut cuts: Vec<u64> = Vec::new();
        for f in &seg.frames {
            cuts.extend([f.offset, f.offset + 5, f.offset + 8 + f.len / 2]);
        }
        cuts.push(seg.records_end);
        for cut in cuts {
            for zero in [false, true] {
                let (cut, b) = etcdkit_testkit::crash::tear(&full, cut, zero);
                std::fs::write(&seg.path, &b).unwrap();
                let want = expected_before(&seg.frames, cut);
                let r = read_all(&etcdkit_fs::RealFs, &wal, Snapshot::default()).unwrap();
                assert!(r.entries == want, "{set}: cut {cut} zero {zero}: not the valid prefix");
                repair(&etcdkit_fs::RealFs, &wal).unwrap();
                match open_settled(&wal) {
                    Ok((_, r)) => assert!(r.entries == want, "{set}: cut {cut}: entries lost by repair"),
                    // A cut before the metadata record leaves no WAL to open for writing.
                    Err(e) => assert!(cut < 64, "{set}: cut {cut}: open after repair failed: {e}"),
                }
                for e in std::fs::read_dir(&wal).unwrap().flatten() {
                    if e.file_name().to_string_lossy().ends_with(".broken") {
                        std::fs::remove_file(e.path()).unwrap();
                    }
                }
                cases += 1;
            }
        }
        // Bit flips: a typed error, or entries consistent with what was written.
        let all = expected_before(&seg.frames, seg.records_end);
        for off in (0..full.len()).step_by(13) {
            let mut b = full.clone();
            b[off] ^= 0x10;
            std::fs::write(&seg.path, &b).unwrap();
            match read_all(&etcdkit_fs::RealFs, &wal, Snapshot::default()) {
                Ok(r) => assert!(r.entries.iter().all(|e| all.contains(e)), "{set}: flip at {off}: invented entry"),
                Err(Error::Io { .. }) => panic!("{set}: flip at {off}: I/O error"),
                Err(_) => {}
            }
            cases += 1;
        }
        std::fs::write(&seg.path, &full).unwrap();
    }
    assert!(cases > 1000, "only {cases} cases");
}

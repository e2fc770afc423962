//! `snapshot verify`, `inspect`, `diff` and raft `.snap` files, on real etcd files.

use std::path::Path;

use etcdkit_fs::RealFs;
use etcdkit_schema::snap;
use etcdkit_snapshot::inspect::{Change, KeySpace, diff};
use etcdkit_snapshot::status;
use etcdkit_snapshot::verify::{Trailer, verify};
use etcdkit_storage::{Db, Options};
use etcdkit_tests::{
    etcd_binaries, extract_datadir, fixture, fixture_datadirs, fixture_sets, fixture_text, json_lines, start_etcd,
};

#[test]
fn inspect_equals_etcds_decoder() {
    let mut n = 0;
    for set in fixture_sets() {
        let Some(want) = fixture_text(&set, "decoded.jsonl") else { continue };
        let mut out = Vec::new();
        etcdkit_snapshot::inspect::inspect(&etcdkit_fs::real(), &fixture(&set, "snapshot.db").unwrap(), &mut out)
            .unwrap();
        let got = String::from_utf8(out).unwrap();
        assert_eq!(json_lines(&got), json_lines(&want), "{set}");
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn every_fixture_verifies_with_etcdctls_numbers() {
    for set in fixture_sets() {
        let f = fixture(&set, "snapshot.db").unwrap();
        let r = verify(&etcdkit_fs::real(), &f, &mut |_, _| {}).unwrap();
        assert!(r.ok(), "{set}: {:?} {:?}", r.structure, r.schema);
        assert_eq!(r.trailer, Trailer::Ok);
        assert_eq!(r.status, status(&etcdkit_fs::real(), &f).unwrap(), "{set}");
        let st: serde_json::Value = serde_json::from_str(&fixture_text(&set, "status.json").unwrap()).unwrap();
        assert_eq!(st["hash"].as_u64(), Some(r.status.hash as u64));
        assert!(r.consistent_index.is_some() && r.members >= 1, "{set}");
        let kvs: serde_json::Value = serde_json::from_str(&fixture_text(&set, "kvs.json").unwrap()).unwrap();
        assert_eq!(r.live_keys as usize, kvs["kvs"].as_array().unwrap().len(), "{set}: live keys");
        // The data dir's raw db: no trailer, same content.
        let tmp = tempfile::tempdir().unwrap();
        if let Some(dir) = extract_datadir(&set, tmp.path()) {
            let r = verify(&etcdkit_fs::real(), &dir.join("member/snap/db"), &mut |_, _| {}).unwrap();
            assert!(r.ok() && r.trailer == Trailer::Absent, "{set}: datadir db");
        }
    }
}

fn raw_copy(set: &str, dst: &Path) {
    let b = std::fs::read(fixture(set, "snapshot.db").unwrap()).unwrap();
    std::fs::write(dst, &b[..b.len() - 32]).unwrap();
}

#[test]
fn verify_finds_schema_damage_and_a_wrong_trailer() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("db");
    raw_copy("etcd-3.4/small", &p);
    {
        let db = Db::open(&p, Options::default()).unwrap();
        let mut tx = db.begin_rw().unwrap();
        let mut kb = tx.bucket(b"key").unwrap().unwrap();
        kb.put(b"not-a-revision", b"x").unwrap();
        // A put whose mod_revision disagrees with its key, and one past the end
        // that does not continue its key's versions.
        let kv = |m: i64, c: i64, v: i64| {
            use etcdkit_proto::Message;
            etcdkit_proto::mvccpb::KeyValue {
                key: b"/etcdkit/x".to_vec().into(),
                create_revision: c,
                mod_revision: m,
                version: v,
                value: b"v".to_vec().into(),
                lease: 0,
            }
            .encode_to_vec()
        };
        let rev = |m: i64| etcdkit_schema::Revision::new(m, 0).key_bytes();
        kb.put(&rev(1_000_000), &kv(1_000_000, 1_000_000, 1)).unwrap();
        kb.put(&rev(1_000_001), &kv(999, 1_000_000, 5)).unwrap();
        let mut meta = tx.bucket(b"meta").unwrap().unwrap();
        meta.put(b"consistent_index", b"short").unwrap();
        meta.put(b"term", b"\x00\x02").unwrap();
        meta.put(b"confState", b"{\"voters\":[1]").unwrap();
        tx.commit().unwrap();
    }
    let r = verify(&etcdkit_fs::real(), &p, &mut |_, _| {}).unwrap();
    assert!(!r.ok());
    assert!(r.structure.is_empty());
    assert!(r.schema_count >= 4, "{:?}", r.schema);
    let all = r.schema.join("\n");
    for want in [
        "is not a revision",
        "mod_revision 999",
        "does not follow",
        "consistent_index has 5 bytes",
        "term has 2 bytes",
        "confState is not",
    ] {
        assert!(all.contains(want), "{want}: {all}");
    }
    // A trailer that does not match.
    let mut b = std::fs::read(fixture("etcd-3.4/small", "snapshot.db").unwrap()).unwrap();
    let n = b.len();
    b[n - 5] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let r = verify(&etcdkit_fs::real(), &p, &mut |_, _| {}).unwrap();
    assert!(matches!(r.trailer, Trailer::Mismatch { .. }) && !r.ok());
    // Not bbolt at all: an error.
    std::fs::write(&p, vec![1u8; 8224]).unwrap();
    assert!(verify(&etcdkit_fs::real(), &p, &mut |_, _| {}).is_err());
}

#[test]
fn snap_files_of_real_data_dirs() {
    let mut seen = 0;
    for (_, set, _tmp, dir) in fixture_datadirs() {
        let snap_dir = dir.join("member/snap");
        let names = snap::snap_names(&RealFs, &snap_dir).unwrap();
        if names.is_empty() {
            assert!(matches!(snap::load_newest(&RealFs, &snap_dir, None), Err(etcdkit_schema::Error::NoSnapshot(_))));
            continue;
        }
        for name in &names {
            let p = snap_dir.join(name);
            let bytes = std::fs::read(&p).unwrap();
            let s = snap::decode(&p, &bytes).unwrap();
            assert_eq!(snap::snap_name(s.metadata.term, s.metadata.index), *name);
            assert_eq!(snap::encode(&s), bytes, "{set}/{name}: re-encodes byte for byte");
            let v2: serde_json::Value = serde_json::from_slice(s.data.as_deref().unwrap()).unwrap();
            assert!(v2.get("Root").is_some());
            seen += 1;
        }
        let walsnaps = etcdkit_wal::valid_snapshot_entries(&etcdkit_fs::RealFs, &dir.join("member/wal")).unwrap();
        let (p, s) = snap::load_newest(&RealFs, &snap_dir, Some(&walsnaps)).unwrap();
        assert_eq!(p.file_name().unwrap().to_str().unwrap(), names[0]);
        assert!(walsnaps.iter().any(|w| w.index == s.metadata.index && w.term == s.metadata.term));
    }
    assert!(seen > 0, "no fixture data dir has .snap files");
}

#[test]
fn diff_of_a_snapshot_with_itself_is_empty() {
    for set in fixture_sets() {
        let k = KeySpace::load(&etcdkit_fs::real(), &fixture(&set, "snapshot.db").unwrap()).unwrap();
        assert!(diff(&k, &k).is_empty());
    }
}

#[test]
fn diff_lists_exactly_the_changes_of_a_real_workload() {
    let Some((etcd, ctl)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let p = start_etcd(&etcd, "d1", &tmp.path().join("d1.etcd"), 25500, 25501, None);
    let ctl_ok = |args: &[&str]| p.ctl_retry(&ctl, args);
    for i in 0..20 {
        ctl_ok(&["put", &format!("/d/k{i:02}"), &format!("v{i}")]);
    }
    ctl_ok(&["put", "/d/upd", "old"]);
    ctl_ok(&["put", "/d/same", "same"]);
    ctl_ok(&["put", "/d/del", "gone soon"]);
    let a = tmp.path().join("a.db");
    ctl_ok(&["snapshot", "save", a.to_str().unwrap()]);
    ctl_ok(&["put", "/d/new", "fresh"]);
    ctl_ok(&["put", "/d/upd", "new"]);
    ctl_ok(&["put", "/d/same", "same"]);
    ctl_ok(&["del", "/d/del"]);
    ctl_ok(&["put", "/d/tmp", "x"]);
    ctl_ok(&["del", "/d/tmp"]);
    let b = tmp.path().join("b.db");
    ctl_ok(&["snapshot", "save", b.to_str().unwrap()]);
    drop(p);

    let (ka, kb) = (KeySpace::load(&etcdkit_fs::real(), &a).unwrap(), KeySpace::load(&etcdkit_fs::real(), &b).unwrap());
    let d = diff(&ka, &kb);
    let summary: Vec<String> = d
        .iter()
        .map(|c| match c {
            Change::Added { key, new } => format!("+{} {}", String::from_utf8_lossy(key), new.version),
            Change::Changed { key, old, new } => {
                format!("~{} {}->{}", String::from_utf8_lossy(key), old.version, new.version)
            }
            Change::Deleted { key, deleted_at, .. } => {
                format!("-{} {}", String::from_utf8_lossy(key), deleted_at.is_some())
            }
        })
        .collect();
    assert_eq!(summary, ["-/d/del true", "+/d/new 1", "~/d/upd 1->2"]);
    if let Change::Deleted { deleted_at: Some(r), .. } = &d[0] {
        assert!(*r > ka.revision && *r <= kb.revision);
    }
    assert_eq!(diff(&kb, &ka).len(), 3);
    // The CLI prints the same three lines.
    let text = etcdkit_tests::etcdkit_ok(&["snapshot", "diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.starts_with("- \"/d/del\""), "{text}");
}

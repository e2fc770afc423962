//! Acceptance: real etcd 3.4 starts on a fixture data dir whose `member/snap/db`
//! was replaced by `etcdkit bolt compact` of it, and serves exactly the
//! fixture's keys (`etcdctl get "" --prefix -w json` equals `kvs.json`'s kvs).

use std::path::Path;

use etcdkit_schema::bucket::{AUTH, MEMBERS, auth};
use etcdkit_storage::{Db, Options};
use etcdkit_tests::{assert_serves_fixture, compact_db, etcd_for, fixture_datadirs, start_etcd};

/// Whether etcd can serve this data dir alone without credentials: one member, auth off.
fn single_member_without_auth(db: &Path) -> bool {
    let db = Db::open(db, Options { read_only: true, ..Default::default() }).unwrap();
    let tx = db.begin().unwrap();
    let members = tx.bucket(MEMBERS).unwrap().map(|b| b.iter().count()).unwrap_or(0);
    let auth_on = tx.bucket(AUTH).unwrap().is_some_and(|b| b.get(auth::ENABLED).unwrap() == Some(&[1u8][..]));
    members == 1 && !auth_on
}

#[test]
fn real_etcd_serves_a_compacted_fixture_db() {
    let mut served = 0;
    for (i, set, tmp, dir) in fixture_datadirs() {
        let Some((etcd, ctl)) = etcd_for(&set) else { return };
        let db = dir.join("member/snap/db");
        if !single_member_without_auth(&db) {
            continue;
        }
        let compacted = tmp.path().join("compacted.db");
        compact_db(&db, &compacted);
        std::fs::rename(&compacted, &db).unwrap();

        let (client, peer) = (24379 + 2 * i as u16, 24380 + 2 * i as u16);
        let etcd = start_etcd(&etcd, "n1", &dir, client, peer, None);
        assert_serves_fixture(&etcd, &ctl, &set, "on the compacted db");
        served += 1;
    }
    assert!(served >= 1, "no fixture set could be served");
}

//! Generated etcd 3.4 databases of any size, for the snapshot benchmarks:
//! etcd's ten buckets, a `key` bucket of MVCC revisions written the way etcd
//! writes them (sequential 17-byte revision keys, fill percent 0.9, batches
//! of 10,000 changes per bbolt transaction), Kubernetes-like keys with
//! creates, updates (most of the writes) and deletes (tombstones), values of
//! 200 B – 2 KB, and `meta/consistent_index`. Real etcdctl reads these files.

use std::path::Path;

use etcdkit_proto::Message;
use etcdkit_proto::membership::Member;
use etcdkit_proto::mvccpb::KeyValue;
use etcdkit_schema::bucket::{self, AUTH, CLUSTER, KEY, META, auth, cluster, meta};
use etcdkit_schema::{Revision, members};
use etcdkit_storage::{Db, Options};

use crate::Rng;

struct KeyState {
    name: Vec<u8>,
    create: i64,
    version: i64,
}

fn rev_key(main: i64, tomb: bool) -> Vec<u8> {
    Revision::new(main, 0).to_key(tomb)
}

/// Writes a new etcd db at `path` (which must not exist) of at least
/// `target_bytes`; returns (revisions written, file size).
pub fn generate(path: &Path, target_bytes: u64, seed: u64) -> (i64, u64) {
    let db = Db::open(path, Options { no_sync: true, ..Default::default() }).expect("create db");
    let mut tx = db.begin_rw().expect("begin");
    for b in bucket::ALL {
        tx.create_bucket_if_not_exists(b).expect("bucket");
    }
    tx.bucket(AUTH).unwrap().unwrap().put(auth::REVISION, &1u64.to_be_bytes()).unwrap();
    tx.bucket(CLUSTER).unwrap().unwrap().put(cluster::CLUSTER_VERSION, b"3.4.0").unwrap();
    let m = Member {
        id: 0x8e9e05c52164694d,
        peer_urls: vec!["http://127.0.0.1:2380".into()],
        name: "default".into(),
        client_urls: vec!["http://127.0.0.1:2379".into()],
        ..Default::default()
    };
    members::put(&mut tx, &m).unwrap();
    tx.commit().expect("commit");

    let mut rng = Rng::new(seed);
    let kinds = ["pods", "configmaps", "secrets", "events", "deployments", "services", "minions", "leases"];
    let mut live: Vec<KeyState> = Vec::new();
    let mut rev = 1i64;
    let mut size = 0;
    let mut value = Vec::new();
    while size < target_bytes {
        let mut tx = db.begin_rw().expect("begin");
        {
            let mut kb = tx.bucket(KEY).unwrap().unwrap();
            kb.set_fill_percent(bucket::KEY_FILL_PERCENT);
            for _ in 0..10_000 {
                rev += 1;
                let dice = rng.next_u64() % 100;
                if dice < 8 && live.len() > 100 {
                    // Delete: a tombstone carrying only the key.
                    let i = (rng.next_u64() % live.len() as u64) as usize;
                    let k = live.swap_remove(i);
                    let kv = KeyValue { key: k.name.into(), ..Default::default() };
                    kb.put(&rev_key(rev, true), &kv.encode_to_vec()).unwrap();
                    continue;
                }
                let i = if dice < 30 || live.is_empty() {
                    let kind = kinds[(rng.next_u64() % kinds.len() as u64) as usize];
                    let name = format!("/registry/{kind}/ns-{}/obj-{:016x}", rng.next_u64() % 50, rng.next_u64());
                    live.push(KeyState { name: name.into_bytes(), create: rev, version: 0 });
                    live.len() - 1
                } else {
                    (rng.next_u64() % live.len() as u64) as usize
                };
                let k = &mut live[i];
                k.version += 1;
                let len = 200 + (rng.next_u64() % 1800) as usize;
                value.clear();
                while value.len() < len {
                    let r = rng.next_u64();
                    value.extend(
                        r.to_le_bytes()
                            .iter()
                            .map(|b| b"abcdefghijklmnopqrstuvwxyz0123456789{}:,\" "[(*b % 42) as usize]),
                    );
                }
                value.truncate(len);
                let kv = KeyValue {
                    key: k.name.clone().into(),
                    create_revision: k.create,
                    mod_revision: rev,
                    version: k.version,
                    value: value.clone().into(),
                    lease: 0,
                };
                kb.put(&rev_key(rev, false), &kv.encode_to_vec()).unwrap();
            }
        }
        tx.bucket(META).unwrap().unwrap().put(meta::CONSISTENT_INDEX, &(rev as u64).to_be_bytes()).unwrap();
        tx.commit().expect("commit");
        size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    drop(db);
    // etcd's files are exactly pgid × page size after a clean close.
    let db = Db::open(path, Options { read_only: true, ..Default::default() }).unwrap();
    let s = db.begin().unwrap().size();
    (rev, s)
}

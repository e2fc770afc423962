//! The Rust peers of the page-store benchmark (`--features peers`), each with
//! its durable defaults, behind [`crate::pagestore::Engine`].
//!
//! The one `unsafe` of the benchmarks is here: heed's API makes opening an
//! LMDB environment `unsafe` (LMDB cannot guard against the same file being
//! opened twice in one process); the unsafe audit (`tests/tests/unsafe_audit.rs`)
//! allows this file for it.
use std::path::Path;

use bbolt_rs::{BucketApi, BucketRwApi, CursorApi, DbApi, DbRwAPI, TxApi, TxRwApi, TxRwRefApi};

/// bbolt-rs (a Rust port of bbolt; writes bbolt's format).
pub struct BboltRs(bbolt_rs::Bolt);

impl BboltRs {
    pub fn open(dir: &Path) -> BboltRs {
        let mut db = bbolt_rs::Bolt::open(dir.join("bench.db")).expect("open bbolt-rs");
        db.update(|mut tx| tx.create_bucket_if_not_exists(b"bench").map(drop)).expect("create bucket");
        BboltRs(db)
    }
}

impl crate::pagestore::Engine for BboltRs {
    fn put_tx(&self, keys: &[[u8; 8]]) {
        let mut db = self.0.clone();
        let mut tx = db.begin_rw().expect("begin");
        {
            let mut b = tx.bucket_mut(b"bench").expect("bucket exists");
            for k in keys {
                b.put(k, crate::pagestore::VALUE).expect("put");
            }
        }
        tx.commit().expect("commit");
    }
    fn get_count(&self, probes: &[[u8; 8]]) -> usize {
        let tx = self.0.begin().expect("begin");
        let b = tx.bucket(b"bench").expect("bucket exists");
        probes.iter().filter(|k| b.get(k).is_some()).count()
    }
    fn scan(&self) -> usize {
        let tx = self.0.begin().expect("begin");
        let b = tx.bucket(b"bench").expect("bucket exists");
        let mut c = b.cursor();
        let mut n = 0;
        let mut e = c.first();
        while e.is_some() {
            n += 1;
            e = c.next();
        }
        n
    }
    fn prefix_count(&self, prefixes: &[[u8; 7]]) -> usize {
        let tx = self.0.begin().expect("begin");
        let b = tx.bucket(b"bench").expect("bucket exists");
        let mut c = b.cursor();
        let mut n = 0;
        for p in prefixes {
            let mut e = c.seek(p);
            while let Some((k, _)) = e {
                if !k.starts_with(p) {
                    break;
                }
                n += 1;
                e = c.next();
            }
        }
        n
    }
    fn group_put(&self, key: [u8; 8]) {
        let mut db = self.0.clone();
        db.batch(move |tx| {
            let mut b = tx.bucket_mut(b"bench").expect("bucket exists");
            b.put(key, crate::pagestore::VALUE)
        })
        .expect("batch");
    }
}

/// heed: LMDB (mdb.master), durable commits (no `NO_SYNC`).
pub struct Heed {
    env: heed::Env,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
}

impl Heed {
    pub fn open(dir: &Path) -> Heed {
        let mut o = heed::EnvOpenOptions::new();
        o.map_size(4 << 30).max_dbs(1);
        #[allow(unsafe_code)]
        // SAFETY: LMDB's requirement is that the file is not opened twice
        // in one process nor modified by anything else while mapped: the
        // directory is this run's own fresh temporary directory.
        let env = unsafe { o.open(dir) }.expect("open heed env");
        let mut w = env.write_txn().expect("begin");
        let db = env.create_database(&mut w, Some("bench")).expect("create db");
        w.commit().expect("commit");
        Heed { env, db }
    }
}

impl crate::pagestore::Engine for Heed {
    fn put_tx(&self, keys: &[[u8; 8]]) {
        let mut w = self.env.write_txn().expect("begin");
        for k in keys {
            self.db.put(&mut w, k, &crate::pagestore::VALUE).expect("put");
        }
        w.commit().expect("commit");
    }
    fn get_count(&self, probes: &[[u8; 8]]) -> usize {
        let r = self.env.read_txn().expect("begin");
        probes.iter().filter(|k| self.db.get(&r, &k[..]).expect("get").is_some()).count()
    }
    fn scan(&self) -> usize {
        let r = self.env.read_txn().expect("begin");
        self.db.iter(&r).expect("iter").filter(Result::is_ok).count()
    }
    fn prefix_count(&self, prefixes: &[[u8; 7]]) -> usize {
        let r = self.env.read_txn().expect("begin");
        prefixes.iter().map(|p| self.db.prefix_iter(&r, &p[..]).expect("prefix").filter(Result::is_ok).count()).sum()
    }
    fn group_put(&self, key: [u8; 8]) {
        self.put_tx(&[key]);
    }
}

const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

/// redb, durable commits (`Durability::Immediate`, its default).
pub struct Redb(redb::Database);

impl Redb {
    pub fn open(dir: &Path) -> Redb {
        let db = redb::Database::create(dir.join("bench.redb")).expect("open redb");
        let w = db.begin_write().expect("begin");
        w.open_table(TABLE).expect("create table");
        w.commit().expect("commit");
        Redb(db)
    }
}

impl crate::pagestore::Engine for Redb {
    fn put_tx(&self, keys: &[[u8; 8]]) {
        let w = self.0.begin_write().expect("begin");
        {
            let mut t = w.open_table(TABLE).expect("table");
            for k in keys {
                t.insert(&k[..], &crate::pagestore::VALUE[..]).expect("insert");
            }
        }
        w.commit().expect("commit");
    }
    fn get_count(&self, probes: &[[u8; 8]]) -> usize {
        use redb::ReadableDatabase;
        let r = self.0.begin_read().expect("begin");
        let t = r.open_table(TABLE).expect("table");
        probes.iter().filter(|k| t.get(&k[..]).expect("get").is_some()).count()
    }
    fn scan(&self) -> usize {
        use redb::{ReadableDatabase, ReadableTable};
        let r = self.0.begin_read().expect("begin");
        let t = r.open_table(TABLE).expect("table");
        t.iter().expect("iter").filter(Result::is_ok).count()
    }
    fn prefix_count(&self, prefixes: &[[u8; 7]]) -> usize {
        use redb::ReadableDatabase;
        let r = self.0.begin_read().expect("begin");
        let t = r.open_table(TABLE).expect("table");
        let mut n = 0;
        for p in prefixes {
            for e in t.range(&p[..]..).expect("range") {
                let (k, _) = e.expect("next");
                if !k.value().starts_with(p) {
                    break;
                }
                n += 1;
            }
        }
        n
    }
    fn group_put(&self, key: [u8; 8]) {
        self.put_tx(&[key]);
    }
}

//! A raft snapshot's db on its way between members, streamed rather than
//! held in memory. etcd does the same: its leader pipes a read transaction
//! into the snapshot request (`etcdserver/snapshot_merge.go`), its
//! follower writes the body to a temporary file and renames it
//! (`etcdserver/api/snap/db.go`, `SaveDBFrom`).
//!
//! - **Leader.** A `MsgSnapshot` leaves the member as an
//!   [`OutgoingSnapshot`]: the message (its data the v2 store JSON) and a
//!   handle on the db. The transport writes the db where it goes (a socket)
//!   on its own thread, from a read transaction begun then. The member's
//!   thread never copies the db and the process never holds it whole.
//! - **Follower.** [`SnapshotReceiver::begin`] gives a [`SnapshotSink`] that
//!   writes the arriving bytes to a temporary file
//!   ([`DataDir::receiving_db`]). [`SnapshotSink::finish`] syncs it, checks
//!   that it is a sound etcd db, and only then names it
//!   [`DataDir::received_db`], where installing the snapshot finds it. The
//!   transport then delivers the message packed as
//!   [`SnapshotData::Received`]. A sink dropped unfinished removes its file.
//! - Members in one process ([`crate::LocalNetwork`]) carry the db inline
//!   ([`OutgoingSnapshot::into_inline`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use etcdkit_fs::{File, Fs, Open};
use etcdkit_schema::DataDir;
use etcdkit_storage::Db;

use crate::convert::{SnapshotData, pack_snapshot};
use crate::{Config, Error, Result, eraftpb};

/// What a snapshot's sender is told once it is sent (true) or failed (false).
pub type SnapshotReport = Box<dyn FnOnce(bool) + Send>;

/// A `MsgSnapshot` for a peer and the db it describes (module docs). The
/// transport says how it went with [`OutgoingSnapshot::report`]; dropped
/// unreported, it reports a failure, so raft never waits for it forever.
pub struct OutgoingSnapshot {
    /// The message; its snapshot's data is the v2 store JSON.
    pub message: eraftpb::Message,
    /// Weak: a snapshot waiting in a queue keeps neither the file nor its
    /// lock (a closed member's db is gone, and the send with it).
    db: Weak<Db>,
    on_report: Option<SnapshotReport>,
}

impl OutgoingSnapshot {
    pub(crate) fn new(message: eraftpb::Message, db: &Arc<Db>) -> OutgoingSnapshot {
        OutgoingSnapshot { message, db: Arc::downgrade(db), on_report: None }
    }

    /// Who hears the report (the node, for raft: [`crate::Member::report_snapshot`]).
    pub fn on_report(&mut self, f: SnapshotReport) {
        self.on_report = Some(f);
    }

    /// The snapshot reached the peer (`true`) or did not.
    pub fn report(&mut self, delivered: bool) {
        if let Some(f) = self.on_report.take() {
            f(delivered);
        }
    }

    /// Writes the db to `w` from a read transaction begun now; the bytes
    /// written. The member committed before it made the message, so the
    /// transaction holds every entry up to the message's index, and maybe
    /// later ones: each commit records its consistent index, so the
    /// receiver applies exactly the entries the db lacks (etcd's rule).
    pub fn write_db(&self, w: &mut dyn Write) -> Result<u64> {
        let index = self.message.get_snapshot().get_metadata().index;
        let db = self.db.upgrade().ok_or(Error::BadSnapshot { index, what: "the member's db was closed".into() })?;
        let tx = db.begin()?;
        Ok(tx.write_to(w)?)
    }

    /// The message with the db inline, for transports within one process:
    /// reported delivered (as a message is once sent; if the network loses
    /// it, raft asks again).
    pub fn into_inline(mut self) -> Result<eraftpb::Message> {
        let mut db = Vec::new();
        self.write_db(&mut db)?;
        let mut m = std::mem::take(&mut self.message);
        let snapshot = m.mut_snapshot();
        snapshot.data = pack_snapshot(&snapshot.data, &db).into();
        self.report(true);
        Ok(m)
    }
}

impl Drop for OutgoingSnapshot {
    fn drop(&mut self) {
        self.report(false);
    }
}

/// Where a member's received snapshot dbs go (module docs).
#[derive(Clone)]
pub struct SnapshotReceiver {
    fs: Arc<dyn Fs>,
    layout: DataDir,
    seq: Arc<AtomicU64>,
}

impl SnapshotReceiver {
    pub fn new(cfg: &Config) -> SnapshotReceiver {
        SnapshotReceiver { fs: cfg.fs().clone(), layout: cfg.layout(), seq: Arc::default() }
    }

    /// A sink for the db of the leader's snapshot at `index`.
    pub fn begin(&self, index: u64) -> Result<SnapshotSink> {
        let tmp = self.layout.receiving_db(self.seq.fetch_add(1, Relaxed));
        let file = self.fs.open(&tmp, Open::Truncate { mode: 0o600 }).map_err(Error::io("create", &tmp))?;
        Ok(SnapshotSink {
            fs: self.fs.clone(),
            file,
            tmp,
            dst: self.layout.received_db(index),
            index,
            written: 0,
            buf: Vec::with_capacity(SnapshotSink::CHUNK),
            finished: false,
        })
    }
}

/// A received db being written (module docs).
pub struct SnapshotSink {
    fs: Arc<dyn Fs>,
    file: Box<dyn File>,
    tmp: PathBuf,
    dst: PathBuf,
    index: u64,
    written: u64,
    buf: Vec<u8>,
    finished: bool,
}

impl SnapshotSink {
    /// Bytes gathered before a write to the file: a caller that hands over
    /// pieces at least this large has them written as they are, uncopied.
    pub const CHUNK: usize = 1 << 20;

    /// Appends the next bytes of the db.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buf.is_empty() && bytes.len() >= Self::CHUNK {
            return self.write_out(bytes);
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= Self::CHUNK { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let r = self.write_out(&buf);
        self.buf = buf;
        self.buf.clear();
        r
    }

    /// Writes `bytes` at the end of the file and starts their write-back:
    /// the disk works while the rest arrives, and the sync at the end
    /// (`finish`) is left with the last pieces only, not the whole db.
    fn write_out(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all_at(bytes, self.written).map_err(Error::io("write", &self.tmp))?;
        self.file.start_writeback(self.written, bytes.len() as u64).map_err(Error::io("write back", &self.tmp))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Syncs and checks the db, then gives it the name installing the
    /// snapshot looks for; its size. A db that is not sound is refused
    /// (and removed): installing it would replace the member's own.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        self.file.sync_all().map_err(Error::io("fsync", &self.tmp))?;
        check_snapshot_file(&self.fs, &self.tmp).map_err(|what| Error::BadSnapshot { index: self.index, what })?;
        // Another copy of the same snapshot may have landed first: either
        // is sound, keep the one there (installing may be reading it).
        if !self.fs.exists(&self.dst) {
            self.fs.rename(&self.tmp, &self.dst).map_err(Error::io("rename", &self.tmp))?;
            crate::bootstrap::sync_dir(&*self.fs, etcdkit_fs::parent(&self.dst))?;
            self.finished = true;
        }
        Ok(self.written)
    }
}

impl Drop for SnapshotSink {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.fs.remove_file(&self.tmp);
        }
    }
}

/// Whether a snapshot's db is fit to install: it opens, its pages check,
/// and it has etcd's `key` and `meta` buckets.
pub(crate) fn check_snapshot_file(fs: &Arc<dyn Fs>, path: &Path) -> std::result::Result<(), String> {
    let opts = etcdkit_storage::Options { fs: fs.clone(), read_only: true, ..Default::default() };
    let d = Db::open(path, opts).map_err(|e| format!("the snapshot's db does not open: {e}"))?;
    let tx = d.begin().map_err(|e| e.to_string())?;
    let problems = etcdkit_storage::check::check(&tx);
    if let Some(p) = problems.first() {
        return Err(format!("the snapshot's db is damaged: {p}"));
    }
    for b in [etcdkit_schema::bucket::KEY, etcdkit_schema::bucket::META] {
        if tx.bucket(b).ok().flatten().is_none() {
            return Err(format!("the snapshot's db lacks the {:?} bucket", String::from_utf8_lossy(b)));
        }
    }
    Ok(())
}

/// [`check_snapshot_file`] for a db carried inline.
pub(crate) fn check_snapshot_bytes(db: &[u8]) -> std::result::Result<(), String> {
    let fs: Arc<dyn Fs> = Arc::new(etcdkit_fs::SimFs::new());
    let path = Path::new("/snapshot.db");
    let f = fs.open(path, Open::Create { mode: 0o600 }).map_err(|e| e.to_string())?;
    f.write_all_at(db, 0).map_err(|e| e.to_string())?;
    drop(f);
    check_snapshot_file(&fs, path)
}

/// Whether the db of the snapshot `data` describes is at hand and sound:
/// checked now if inline, when it was received otherwise.
pub(crate) fn check_snapshot(
    fs: &dyn Fs,
    layout: &DataDir,
    index: u64,
    data: &[u8],
) -> std::result::Result<(), String> {
    match crate::convert::unpack_snapshot(data) {
        Some(SnapshotData::Inline { db, .. }) => check_snapshot_bytes(db),
        Some(SnapshotData::Received { .. }) if fs.exists(&layout.received_db(index)) => Ok(()),
        Some(SnapshotData::Received { .. }) => Err("its db was not received".into()),
        None => Err("the snapshot is not a v2 store and a db".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{pack_received_snapshot, unpack_snapshot};
    use etcdkit_mvcc::Store;

    /// A config on a temporary dir whose snap dir exists, and a store's db
    /// with one key (an etcd db: `key` and `meta` buckets).
    fn setup() -> (tempfile::TempDir, Config, Vec<u8>) {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = Config::new("n1", tmp.path().join("n1.etcd"));
        std::fs::create_dir_all(cfg.layout().snap()).unwrap();
        let path = tmp.path().join("source.db");
        let mut store = Store::open(&path, Default::default()).unwrap();
        store
            .put(&etcdkit_proto::etcdserverpb::PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .unwrap();
        store.commit().unwrap();
        let mut m = eraftpb::Message::default();
        m.mut_snapshot().mut_metadata().index = 9;
        m.mut_snapshot().data = b"{}".to_vec().into();
        let out = OutgoingSnapshot::new(m, &store.db_shared());
        let mut db = Vec::new();
        assert_eq!(out.write_db(&mut db).unwrap(), db.len() as u64);
        drop(store);
        // The member's db is gone: a queued snapshot no longer reaches it.
        assert!(matches!(out.write_db(&mut Vec::new()), Err(Error::BadSnapshot { index: 9, .. })));
        (tmp, cfg, db)
    }

    #[test]
    fn a_snapshot_is_reported_once_and_failed_if_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("db"), Default::default()).unwrap();
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let snapshot = |heard: &Arc<std::sync::Mutex<Vec<bool>>>| {
            let mut s = OutgoingSnapshot::new(eraftpb::Message::default(), &store.db_shared());
            let h = heard.clone();
            s.on_report(Box::new(move |ok| h.lock().unwrap().push(ok)));
            s
        };
        drop(snapshot(&heard));
        let mut sent = snapshot(&heard);
        sent.report(true);
        drop(sent);
        snapshot(&heard).into_inline().unwrap();
        assert_eq!(*heard.lock().unwrap(), vec![false, true, true]);
    }

    fn snap_files(cfg: &Config) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(cfg.layout().snap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Pieces of any size, the buffered and the direct path (a piece of at
    /// least a chunk on an empty buffer) mixed, make the same file.
    #[test]
    fn a_received_db_is_the_same_whatever_its_pieces() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = Config::new("n1", tmp.path().join("n1.etcd"));
        std::fs::create_dir_all(cfg.layout().snap()).unwrap();
        let mut store = Store::open(tmp.path().join("source.db"), Default::default()).unwrap();
        for i in 0..400u32 {
            let put = etcdkit_proto::etcdserverpb::PutRequest {
                key: format!("k{i}").into_bytes(),
                value: vec![i as u8; 10_000],
                ..Default::default()
            };
            store.put(&put).unwrap();
        }
        store.commit().unwrap();
        let mut db = Vec::new();
        OutgoingSnapshot::new(eraftpb::Message::default(), &store.db_shared()).write_db(&mut db).unwrap();
        let chunk = SnapshotSink::CHUNK;
        assert!(db.len() > 3 * chunk, "{} bytes", db.len());
        let receiver = SnapshotReceiver::new(&cfg);
        let cuts = [3000, 3000 + chunk + 17, 3000 + 2 * chunk + 17, 3000 + 3 * chunk + 17, db.len()];
        let mut sink = receiver.begin(9).unwrap();
        let mut from = 0;
        for to in cuts {
            sink.write(&db[from..to]).unwrap();
            from = to;
        }
        assert_eq!(sink.finish().unwrap(), db.len() as u64);
        assert_eq!(std::fs::read(cfg.layout().received_db(9)).unwrap(), db);
    }

    #[test]
    fn a_received_db_is_named_only_once_whole_and_sound() {
        let (_tmp, cfg, db) = setup();
        let receiver = SnapshotReceiver::new(&cfg);
        let layout = cfg.layout();
        let fs = cfg.fs().clone();

        // Arriving in pieces: invisible under its final name until finished.
        let mut sink = receiver.begin(9).unwrap();
        for piece in db.chunks(3000) {
            sink.write(piece).unwrap();
        }
        assert_eq!(snap_files(&cfg), vec!["0000000000000000.recv-tmp".to_string()]);
        assert!(check_snapshot(&*fs, &layout, 9, &pack_received_snapshot(b"{}")).is_err());
        assert_eq!(sink.finish().unwrap(), db.len() as u64);
        assert_eq!(snap_files(&cfg), vec!["0000000000000009.snap.db".to_string()]);
        assert_eq!(std::fs::read(layout.received_db(9)).unwrap(), db);
        assert_eq!(check_snapshot(&*fs, &layout, 9, &pack_received_snapshot(b"{}")), Ok(()));

        // A second copy of the same snapshot leaves the first in place.
        let mut again = receiver.begin(9).unwrap();
        again.write(&db).unwrap();
        again.finish().unwrap();
        assert_eq!(snap_files(&cfg), vec!["0000000000000009.snap.db".to_string()]);

        // Damaged (its meta pages wiped), cut short, or abandoned: refused
        // and removed, never named.
        let mut bad = db.clone();
        bad[..8192].fill(0);
        let mut sink = receiver.begin(10).unwrap();
        sink.write(&bad).unwrap();
        assert!(matches!(sink.finish(), Err(Error::BadSnapshot { index: 10, .. })));
        let mut sink = receiver.begin(11).unwrap();
        sink.write(&db[..db.len() / 2]).unwrap();
        assert!(matches!(sink.finish(), Err(Error::BadSnapshot { index: 11, .. })));
        let mut sink = receiver.begin(12).unwrap();
        sink.write(&db).unwrap();
        drop(sink);
        assert_eq!(snap_files(&cfg), vec!["0000000000000009.snap.db".to_string()]);
    }

    #[test]
    fn inline_snapshots_are_checked_when_they_arrive() {
        let (_tmp, cfg, db) = setup();
        let (fs, layout) = (cfg.fs().clone(), cfg.layout());
        assert_eq!(check_snapshot(&*fs, &layout, 3, &pack_snapshot(b"{}", &db)), Ok(()));
        assert!(check_snapshot(&*fs, &layout, 3, &pack_snapshot(b"{}", &db[..4096])).is_err());
        assert!(check_snapshot(&*fs, &layout, 3, b"short").is_err());
        assert_eq!(unpack_snapshot(&pack_snapshot(b"{}", &db)), Some(SnapshotData::Inline { v2_json: b"{}", db: &db }));
        assert_eq!(unpack_snapshot(&pack_received_snapshot(b"{}")), Some(SnapshotData::Received { v2_json: b"{}" }));
        // A received snapshot with bytes after its JSON, or a length past the end: malformed.
        let mut trailing = pack_received_snapshot(b"{}");
        trailing.push(0);
        assert_eq!(unpack_snapshot(&trailing), None);
        assert_eq!(unpack_snapshot(&[0, 0, 0, 0, 0, 0, 0, 9, b'{']), None);
    }

    #[test]
    fn a_snapshot_db_must_be_sound_before_it_replaces_ours() {
        assert!(check_snapshot_bytes(b"not a database").is_err());
        assert!(check_snapshot_bytes(&[]).is_err());
        // A real store's db passes; with its meta pages wiped, it does not.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        drop(Store::open(&path, Default::default()).unwrap());
        let good = std::fs::read(&path).unwrap();
        assert_eq!(check_snapshot_bytes(&good), Ok(()));
        let mut wiped = good.clone();
        wiped[..8192].fill(0);
        assert!(check_snapshot_bytes(&wiped).is_err());
        // A bbolt file without etcd's buckets is not a member's db.
        let bare = tmp.path().join("bare");
        drop(etcdkit_storage::Db::open(&bare, Default::default()).unwrap());
        assert!(check_snapshot_bytes(&std::fs::read(&bare).unwrap()).unwrap_err().contains("bucket"));
    }
}

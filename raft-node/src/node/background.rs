//! Work the node's thread hands to helper threads, so that the member goes
//! on serving while it runs: a defragmentation's copy and a copy of the db
//! (etcd's snapshot RPC). Both read the db through a read transaction on
//! the helper thread; the member's writes go on beside it (the page store
//! keeps the pages such a transaction sees until it ends).
//!
//! A defragmentation has three steps (etcdkit-mvcc's `defrag.rs`): the
//! first and last run on the node's thread and are brief; the copy between
//! them runs here. The node's thread looks at the copy on every turn
//! ([`Background::poll`]) and finishes it there. Defragmentations run one at
//! a time, in the order asked (etcd serializes them too); a db copy answers
//! from its helper thread. Stopping the node cancels a copy in progress and
//! waits for every helper, so the old db file (and its lock) is released
//! when the node has stopped.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;

use etcdkit_mvcc::{DefragCopied, MvccError, Store};

use super::Reply;
use crate::Error;

/// How often a defragmentation is begun again after a raft snapshot
/// replaced the db under its copy, before it gives up.
const STALE_RETRIES: u32 = 3;

#[derive(Default)]
pub(super) struct Background {
    defrag: Option<Defrag>,
    /// Defragmentations asked while one runs, in order.
    defrags_waiting: VecDeque<Reply<(u64, u64)>>,
    copies: Vec<JoinHandle<()>>,
}

/// A defragmentation whose copy runs on its helper thread.
struct Defrag {
    thread: JoinHandle<Result<DefragCopied, MvccError>>,
    cancel: Arc<AtomicBool>,
    reply: Reply<(u64, u64)>,
    retries: u32,
    /// Where the copy is written (the data dir's defrag file).
    tmp: PathBuf,
}

impl Background {
    /// Begins a defragmentation of `store` through `tmp`, or queues it
    /// behind the one running.
    pub(super) fn defrag(&mut self, store: &mut Store, tmp: &Path, reply: Reply<(u64, u64)>) {
        if self.defrag.is_some() {
            self.defrags_waiting.push_back(reply);
        } else {
            self.begin_defrag(store, tmp, reply, 0);
        }
    }

    fn begin_defrag(&mut self, store: &mut Store, tmp: &Path, reply: Reply<(u64, u64)>, retries: u32) {
        let copy = match store.defrag_begin(tmp) {
            Ok(c) => c,
            Err(e) => return reply.send(Err(e.into())),
        };
        let cancel = copy.canceller();
        let spawned = std::thread::Builder::new().name("etcdkit-defrag".into()).spawn(move || {
            etcdkit_fs::lower_thread_priority();
            copy.run(&mut |_| {})
        });
        match spawned {
            Ok(thread) => self.defrag = Some(Defrag { thread, cancel, reply, retries, tmp: tmp.to_path_buf() }),
            Err(e) => {
                let r = store.defrag_abandon().map_err(Error::from);
                reply.send(r.and(Err(Error::io("spawn the defragmentation's thread", tmp)(e))));
            }
        }
    }

    /// On the node's thread, every turn: finishes a defragmentation whose
    /// copy is done (and begins the next one asked), forgets db copies that
    /// have ended. Costs nothing when no helper runs.
    pub(super) fn poll(&mut self, store: &mut Store) {
        self.copies.retain(|t| !t.is_finished());
        if !self.defrag.as_ref().is_some_and(|d| d.thread.is_finished()) {
            return;
        }
        let Defrag { thread, reply, retries, tmp, .. } = self.defrag.take().expect("checked above");
        let copied =
            thread.join().unwrap_or_else(|_| Err(MvccError::Corrupt("the defragmentation's copy panicked".into())));
        match copied.and_then(|c| store.defrag_finish(c)) {
            Err(MvccError::DefragStale) if retries < STALE_RETRIES => {
                return self.begin_defrag(store, &tmp, reply, retries + 1);
            }
            Ok(sizes) => reply.send(Ok(sizes)),
            Err(e) => {
                // A copy that failed leaves compaction's deletions held:
                // they run now, on the file as it is.
                let abandoned = store.defrag_abandon();
                reply.send(Err(e.into()));
                if let Err(e) = abandoned {
                    tracing::error!("after a failed defragmentation, the compaction it held back failed: {e}");
                }
            }
        }
        if let Some(next) = self.defrags_waiting.pop_front() {
            self.begin_defrag(store, &tmp, next, 0);
        }
    }

    /// Copies `store`'s db to `path` on a helper thread (after committing
    /// its batch, so the copy holds every write answered so far); `reply`
    /// is answered from there.
    pub(super) fn copy_db(&mut self, store: &mut Store, fs: &dyn etcdkit_fs::Fs, path: &Path, reply: Reply<u64>) {
        let opened = store.commit().map_err(Error::from).and_then(|()| {
            fs.open(path, etcdkit_fs::Open::Truncate { mode: 0o600 }).map_err(Error::io("create", path))
        });
        let dst = match opened {
            Ok(f) => f,
            Err(e) => return reply.send(Err(e)),
        };
        // The helper's read transaction sees this state or a later one: a
        // consistent db either way (each commit carries its consistent index).
        let db = store.db_shared();
        let spawned = std::thread::Builder::new().name("etcdkit-copy-db".into()).spawn(move || {
            let r = db.begin().map_err(Error::from).and_then(|tx| Ok(tx.copy_to_file(&*dst, 64 << 20, &mut |_| {})?));
            reply.send(r);
        });
        match spawned {
            Ok(t) => self.copies.push(t),
            Err(e) => tracing::error!("cannot spawn a db copy's thread: {e}"),
        }
    }

    /// Cancels a defragmentation's copy, answers every defragmentation
    /// asked with `err`, and waits for every helper thread.
    pub(super) fn stop(&mut self, err: impl Fn() -> Error) {
        if let Some(d) = self.defrag.take() {
            d.cancel.store(true, Relaxed);
            let _ = d.thread.join();
            d.reply.send(Err(err()));
        }
        for r in self.defrags_waiting.drain(..) {
            r.send(Err(err()));
        }
        for t in self.copies.drain(..) {
            let _ = t.join();
        }
    }
}

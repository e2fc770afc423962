//! Group commit: [`Db::batch`], bbolt's `DB.Batch` without its timer.
//!
//! Many threads each want one small durable write. Alone, each pays two
//! fdatasyncs. Here they queue their closures; one of them (the *leader*)
//! runs every closure queued so far in a single read-write transaction and
//! commits once, then hands the lead to the first caller that queued while it
//! was committing. So a group forms exactly while the previous one is on its
//! way to the disk: no caller ever waits on a clock (bbolt waits up to
//! `MaxBatchDelay`, 10 ms, for a batch to fill), and under load a commit
//! carries everything that arrived during the one before it.
//!
//! As in bbolt, a closure may run more than once: when one fails, the
//! transaction is rolled back, that closure is run again alone (its own
//! transaction, its own result), and the others are run again together. A
//! closure that panics is treated as failed, and the panic resumes on the
//! thread that queued it.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::{Db, Error, Result, TxMut};

/// A queued closure.
type BatchFn = Box<dyn FnMut(&mut TxMut<'_>) -> Result<()> + Send>;

/// Callers waiting for a group commit; owned by [`Db`].
#[derive(Default)]
pub(crate) struct Batcher {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    calls: Vec<Call>,
    /// Calls ever queued (tests wait on it).
    queued: u64,
    /// A leader is running a group (or has been chosen to run the next).
    leading: bool,
}

struct Call {
    f: BatchFn,
    slot: Arc<Slot>,
}

/// Where a caller waits: for its result, or to be made leader.
struct Slot {
    state: Mutex<State>,
    cv: Condvar,
}

enum State {
    Waiting,
    Lead,
    Done(Result<()>),
    Panicked(Box<dyn Any + Send>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    fn set(&self, s: State) {
        *lock(&self.state) = s;
        self.cv.notify_one();
    }

    /// Blocks until the state is no longer `Waiting` and takes it.
    fn wait(&self) -> State {
        let mut g = lock(&self.state);
        while matches!(*g, State::Waiting) {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        std::mem::replace(&mut *g, State::Waiting)
    }
}

/// Runs one closure, turning a panic into its payload.
fn run(f: &mut BatchFn, tx: &mut TxMut<'_>) -> std::result::Result<Result<()>, Box<dyn Any + Send>> {
    catch_unwind(AssertUnwindSafe(|| f(tx)))
}

/// A commit error as reported to the members of the group that did not lead it
/// ([`Error`] holds an `io::Error`, which cannot be cloned).
fn shared(e: &Error) -> Error {
    match e {
        Error::Io { op, source } => Error::Io {
            op: format!("group commit: {op}"),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Poisoned(why) => Error::Poisoned(why.clone()),
        other => Error::Poisoned(format!("group commit failed: {other}")),
    }
}

impl Db {
    /// Runs `f` in a read-write transaction shared with other threads' `batch`
    /// calls, committed once for all of them; returns when that commit is
    /// durable (or failed). `f` may be called more than once (see the module
    /// doc of `batch.rs`): its effects outside the transaction must be idempotent.
    ///
    /// Only useful with several threads writing at once; a lone caller gets an
    /// ordinary [`Db::update`].
    pub fn batch(&self, f: impl FnMut(&mut TxMut<'_>) -> Result<()> + Send + 'static) -> Result<()> {
        let slot = Arc::new(Slot { state: Mutex::new(State::Waiting), cv: Condvar::new() });
        let lead = {
            let mut q = lock(&self.batcher.queue);
            q.calls.push(Call { f: Box::new(f), slot: slot.clone() });
            q.queued += 1;
            !std::mem::replace(&mut q.leading, true)
        };
        if !lead {
            match slot.wait() {
                State::Done(r) => return r,
                State::Panicked(p) => resume_unwind(p),
                State::Lead | State::Waiting => {}
            }
        }
        // Our call is still queued: a leader takes the whole queue at once and
        // hands the lead to the first call it left behind.
        let calls = std::mem::take(&mut lock(&self.batcher.queue).calls);
        self.run_group(calls);
        {
            let mut q = lock(&self.batcher.queue);
            match q.calls.first() {
                Some(next) => next.slot.set(State::Lead),
                None => q.leading = false,
            }
        }
        match slot.wait() {
            State::Done(r) => r,
            State::Panicked(p) => resume_unwind(p),
            State::Lead | State::Waiting => unreachable!("a leader's own call is done when its group is"),
        }
    }

    /// Runs `calls` in one transaction and commits; a failing closure is taken
    /// out and run alone, and the rest are run again.
    fn run_group(&self, mut calls: Vec<Call>) {
        while !calls.is_empty() {
            let mut tx = match self.begin_rw() {
                Ok(tx) => tx,
                Err(e) => {
                    for c in &calls {
                        c.slot.set(State::Done(Err(shared(&e))));
                    }
                    return;
                }
            };
            let failed = calls.iter_mut().position(|c| !matches!(run(&mut c.f, &mut tx), Ok(Ok(()))));
            let Some(i) = failed else {
                let r = tx.commit();
                for c in &calls {
                    c.slot.set(State::Done(r.as_ref().map(|_| ()).map_err(shared)));
                }
                return;
            };
            tx.rollback();
            let mut solo = calls.remove(i);
            let outcome = match self.begin_rw() {
                Err(e) => State::Done(Err(e)),
                Ok(mut tx) => match run(&mut solo.f, &mut tx) {
                    Ok(Ok(())) => State::Done(tx.commit()),
                    Ok(Err(e)) => State::Done(Err(e)),
                    Err(panic) => State::Panicked(panic),
                },
            };
            solo.slot.set(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Options;

    fn db() -> (tempfile::TempDir, Arc<Db>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("b.db"), Options::default()).unwrap();
        db.update(|tx| tx.create_bucket(b"b").map(drop)).unwrap();
        (dir, Arc::new(db))
    }

    fn put(key: Vec<u8>) -> impl FnMut(&mut TxMut<'_>) -> Result<()> + Send + 'static {
        move |tx| tx.bucket(b"b")?.expect("bucket").put(&key, b"v")
    }

    #[test]
    fn concurrent_calls_all_land_in_fewer_commits() {
        let (_d, db) = db();
        let before = db.begin().unwrap().id();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        db.batch(put(format!("k{t:02}-{i:03}").into_bytes())).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let tx = db.begin().unwrap();
        assert_eq!(tx.bucket(b"b").unwrap().unwrap().iter().count(), 16 * 50);
        // Every call got its own durable commit or shared one: never more
        // commits than calls.
        assert!(tx.id() - before <= 16 * 50);
        drop(tx);
        let check = crate::check::check(&db.begin().unwrap());
        assert!(check.is_empty(), "{check:?}");
    }

    #[test]
    fn calls_queued_behind_a_writer_share_one_commit() {
        let (_d, db) = db();
        let before = db.begin().unwrap().id();
        // Hold the write lock so that every call queues before any commits.
        let tx = db.begin_rw().unwrap();
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || db.batch(put(vec![b'k', t])))
            })
            .collect();
        while lock(&db.batcher.queue).queued < 8 {
            std::thread::yield_now();
        }
        tx.commit().unwrap();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        // The held transaction, then the first leader's group (whatever it
        // had taken when it blocked on the lock), then everything else.
        let commits = db.begin().unwrap().id() - before;
        assert!((2..=3).contains(&commits), "8 calls took {} commits", commits - 1);
        assert_eq!(db.begin().unwrap().bucket(b"b").unwrap().unwrap().iter().count(), 8);
    }

    /// `n` threads, each calling `db.batch` once with `f(thread number)`;
    /// their join results in thread order.
    fn batch_threads(
        db: &Arc<Db>,
        n: usize,
        f: fn(usize, &mut TxMut<'_>) -> Result<()>,
    ) -> Vec<std::thread::Result<Result<()>>> {
        let threads: Vec<_> = (0..n)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || db.batch(move |tx| f(t, tx)))
            })
            .collect();
        threads.into_iter().map(|t| t.join()).collect()
    }

    #[test]
    fn a_failing_closure_gets_its_error_and_the_others_commit() {
        let (_d, db) = db();
        let results: Vec<_> = batch_threads(&db, 8, |t, tx| {
            tx.bucket(b"b")?.expect("bucket").put(format!("k{t}").as_bytes(), b"v")?;
            if t == 3 {
                return Err(Error::KeyRequired);
            }
            Ok(())
        })
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
        for (t, r) in results.iter().enumerate() {
            assert_eq!(r.is_err(), t == 3, "thread {t}: {r:?}");
        }
        assert!(matches!(results[3], Err(Error::KeyRequired)));
        let tx = db.begin().unwrap();
        let b = tx.bucket(b"b").unwrap().unwrap();
        let keys: Vec<Vec<u8>> = b.iter().map(|e| e.unwrap().0.to_vec()).collect();
        assert_eq!(keys.len(), 7);
        assert!(!keys.contains(&b"k3".to_vec()), "the failed closure's put was rolled back");
    }

    #[test]
    fn a_panic_resumes_on_its_own_thread_and_the_rest_commit() {
        let (_d, db) = db();
        let results = batch_threads(&db, 6, |t, tx| {
            tx.bucket(b"b")?.expect("bucket").put(format!("k{t}").as_bytes(), b"v")?;
            assert!(t != 2, "closure {t} panics");
            Ok(())
        });
        for (t, r) in results.into_iter().enumerate() {
            assert_eq!(r.is_err(), t == 2, "thread {t}");
            if let Ok(r) = r {
                r.unwrap();
            }
        }
        let tx = db.begin().unwrap();
        assert_eq!(tx.bucket(b"b").unwrap().unwrap().iter().count(), 5);
    }

    #[test]
    fn a_lone_caller_commits_like_update() {
        let (_d, db) = db();
        db.batch(put(b"only".to_vec())).unwrap();
        let tx = db.begin().unwrap();
        assert_eq!(tx.bucket(b"b").unwrap().unwrap().get(b"only").unwrap(), Some(&b"v"[..]));
    }
}

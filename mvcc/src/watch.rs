//! Watchers (etcd's `watchableStore`): a watcher sees every change to its key
//! range from its start revision on, in revision order, exactly once.
//!
//! Each watcher has a bounded channel. After every write its events are
//! offered with `try_send`: a watcher whose channel is full is not waited
//! for — it becomes *unsynced*, remembers the first revision it missed, and
//! catches up later from the `key` bucket (on the next write, or
//! [`Store::sync_watchers`]). So a slow watcher never blocks a writer, and
//! never loses an event. A watcher whose next revision was compacted away
//! gets one response with `compact_revision` set and is cancelled, as in etcd.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use etcdkit_proto::mvccpb::KeyValue;

use crate::Event;
use crate::MvccError;
use crate::Result;
use crate::index::KeyRange;
use crate::store::Store;

/// What to watch.
#[derive(Clone, Debug, Default)]
pub struct WatchRequest {
    pub key: Vec<u8>,
    /// etcd's form: empty = one key, `[0]` = from `key` on, else `[key, range_end)`.
    pub range_end: Vec<u8>,
    /// First revision to report (0: the next write).
    pub start_revision: i64,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
    /// Responses the channel holds before the watcher falls behind (≥ 1).
    pub capacity: usize,
}

/// One message to a watcher.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchResponse {
    pub watch_id: i64,
    /// The store revision when it was sent.
    pub revision: i64,
    pub events: Vec<Event>,
    /// Set when the watcher's next revision was compacted: it is cancelled.
    pub compact_revision: i64,
    pub canceled: bool,
}

/// What offering a response to a watcher's [`WatchSink`] gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    Sent,
    /// The sink holds all it can: the watcher falls behind and catches up later.
    Full,
    /// Nobody receives any more: the watcher is dropped.
    Closed,
}

/// Where a watcher's responses go. The store only ever *offers* (it never
/// waits on a watcher), so a sink must answer at once. A bounded
/// `std::sync::mpsc::SyncSender` is one ([`Store::watch`]); a server plugs in
/// its async channel ([`Store::watch_to`]).
pub trait WatchSink: Send {
    fn offer(&self, r: WatchResponse) -> Offer;

    /// `false` when an offer now would surely be `Full`: a watcher that has
    /// fallen behind does not read its history until its sink has room.
    fn has_room(&self) -> bool {
        true
    }
}

impl WatchSink for SyncSender<WatchResponse> {
    fn offer(&self, r: WatchResponse) -> Offer {
        match self.try_send(r) {
            Ok(()) => Offer::Sent,
            Err(TrySendError::Full(_)) => Offer::Full,
            Err(TrySendError::Disconnected(_)) => Offer::Closed,
        }
    }
}

pub(crate) struct Watcher {
    id: i64,
    req: WatchRequest,
    /// The next revision this watcher has not been sent.
    next: i64,
    /// Whether `next` is beyond the current revision (live delivery).
    synced: bool,
    tx: Box<dyn WatchSink>,
}

#[derive(Default)]
pub(crate) struct Watchers {
    list: Vec<Watcher>,
    next_id: i64,
    /// Progress requests of client streams (their watchers' IDs) waiting for
    /// those watchers to be synced ([`Store::progress_all`]).
    progress_pending: Vec<Vec<i64>>,
}

impl Watchers {
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Revisions one catch-up read covers at most (etcd's `watchBatchMaxRevs`):
/// a watcher far behind catches up in steps, never holding its whole
/// history in memory at once.
const CATCH_UP_REVS: i64 = 1000;

fn wanted(req: &WatchRequest, e: &Event) -> bool {
    KeyRange::new(&req.key, &req.range_end).contains(&e.kv.key)
        && !(e.delete && req.no_delete || !e.delete && req.no_put)
}

impl Store {
    /// Starts a watcher; its responses arrive on the returned receiver.
    /// A start revision below the compaction revision is `Compacted`.
    pub fn watch(&mut self, req: WatchRequest) -> Result<(i64, Receiver<WatchResponse>), MvccError> {
        let (tx, rx) = sync_channel(req.capacity.max(1));
        let id = self.watch_to(req, Box::new(tx))?;
        self.sync_watchers();
        Ok((id, rx))
    }

    /// Starts a watcher whose responses are offered to `tx`; returns its ID.
    /// (`req.capacity` is the sink's business here.) Nothing is offered
    /// before this returns: a watcher that starts in the past catches up at
    /// the next [`Store::sync_watchers`] (or write), so a server can tell its
    /// client "created" before the first event.
    pub fn watch_to(&mut self, req: WatchRequest, tx: Box<dyn WatchSink>) -> Result<i64, MvccError> {
        if req.start_revision > 0 && req.start_revision < self.compact_rev() {
            return Err(MvccError::Compacted { rev: req.start_revision, compacted: self.compact_rev() });
        }
        let current = self.rev();
        let next = if req.start_revision > 0 { req.start_revision } else { current + 1 };
        let w = &mut self.watchers;
        let id = w.next_id;
        w.next_id += 1;
        w.list.push(Watcher { id, next, synced: next > current, req, tx });
        Ok(id)
    }

    /// Stops a watcher; `false` if there is none with this ID.
    pub fn cancel_watch(&mut self, id: i64) -> bool {
        let w = &mut self.watchers;
        let before = w.list.len();
        w.list.retain(|x| x.id != id);
        w.list.len() != before
    }

    /// Watchers still running.
    pub fn watcher_count(&self) -> usize {
        self.watchers.list.len()
    }

    /// Sends every synced watcher an empty response carrying the current
    /// revision (etcd's progress notification); a full channel skips it.
    pub fn progress(&mut self) {
        self.progress_of(None)
    }

    /// [`Store::progress`] for the watchers in `ids` only (one client
    /// stream's progress request), or all of them with `None`.
    pub fn progress_of(&mut self, ids: Option<&[i64]>) {
        let revision = self.rev();
        for w in &self.watchers.list {
            if w.synced && ids.is_none_or(|ids| ids.contains(&w.id)) {
                let _ = w.tx.offer(WatchResponse { watch_id: w.id, revision, ..Default::default() });
            }
        }
    }

    /// etcd's `RequestProgressAll` for one client stream, whose watchers are
    /// `ids`: once every one of them has been sent every event up to the
    /// current revision, one response with watch ID -1 and that revision is
    /// offered through the first one's sink (the stream's queue, behind the
    /// events already in it), so the notification never runs ahead of the
    /// events. Until then the request waits and is tried again whenever
    /// watchers sync (every tick and after every write), as etcd 3.4.24+ /
    /// 3.5.8+ defer it; a stream has at most one waiting. (etcd 3.4.23
    /// answered at once with the current revision: its bug #15220.)
    pub fn progress_all(&mut self, ids: Vec<i64>) {
        if !self.watchers.progress_pending.contains(&ids) {
            self.watchers.progress_pending.push(ids);
        }
        self.flush_progress_all();
    }

    fn flush_progress_all(&mut self) {
        if self.watchers.progress_pending.is_empty() {
            return;
        }
        let rev = self.rev();
        let pending = std::mem::take(&mut self.watchers.progress_pending);
        for ids in pending {
            let ws: Vec<&Watcher> = self.watchers.list.iter().filter(|w| ids.contains(&w.id)).collect();
            let Some(first) = ws.first() else { continue };
            let caught_up = ws.iter().all(|w| w.synced && w.req.start_revision <= rev);
            if !caught_up
                || first.tx.offer(WatchResponse { watch_id: -1, revision: rev, ..Default::default() }) == Offer::Full
            {
                self.watchers.progress_pending.push(ids);
            }
        }
    }

    /// Delivers the events of the write that made the current revision to the
    /// synced watchers, then lets unsynced ones catch up.
    pub(crate) fn notify(&mut self, events: Vec<Event>) {
        if self.watchers.is_empty() {
            return;
        }
        let rev = self.rev();
        let mut list = std::mem::take(&mut self.watchers.list);
        list.retain_mut(|w| {
            if !w.synced || w.next > rev {
                return true;
            }
            let mut evs: Vec<Event> = events.iter().filter(|e| wanted(&w.req, e)).cloned().collect();
            if evs.is_empty() {
                w.next = rev + 1;
                return true;
            }
            if w.req.prev_kv {
                for e in &mut evs {
                    e.prev_kv = self.kv_at(&e.kv.key, rev - 1);
                }
            }
            match w.tx.offer(WatchResponse { watch_id: w.id, revision: rev, events: evs, ..Default::default() }) {
                Offer::Sent => {
                    w.next = rev + 1;
                    true
                }
                Offer::Full => {
                    w.synced = false;
                    true
                }
                Offer::Closed => false,
            }
        });
        self.watchers.list = list;
        self.sync_watchers();
    }

    /// Lets every unsynced watcher catch up from the stored history, as far
    /// as its sink takes it: one response of at most [`CATCH_UP_REVS`]
    /// revisions each time. Watchers of one range that are behind from the
    /// same revision (those that fell behind on one write, as a stream's
    /// watchers do together) share one read of the history.
    pub fn sync_watchers(&mut self) {
        let current = self.rev();
        let compacted = self.compact_rev();
        let mut list = std::mem::take(&mut self.watchers.list);
        type ReadKey = (Vec<u8>, Vec<u8>, i64, bool);
        let mut reads: HashMap<ReadKey, Rc<(Vec<Event>, i64)>> = HashMap::new();
        list.retain_mut(|w| {
            if w.synced || !w.tx.has_room() {
                return true;
            }
            if w.next < compacted {
                let r = WatchResponse {
                    watch_id: w.id,
                    revision: current,
                    compact_revision: compacted,
                    canceled: true,
                    ..Default::default()
                };
                // Cancelled once told; kept (to retry) while its channel is full.
                return w.tx.offer(r) == Offer::Full;
            }
            let read = match reads.entry((w.req.key.clone(), w.req.range_end.clone(), w.next, w.req.prev_kv)) {
                Entry::Occupied(e) => e.get().clone(),
                Entry::Vacant(e) => match self.catch_up(&w.req, w.next, current) {
                    Ok(r) => e.insert(Rc::new(r)).clone(),
                    Err(_) => return true,
                },
            };
            let (evs, to) = (&read.0, read.1);
            let evs: Vec<Event> = evs.iter().filter(|e| wanted(&w.req, e)).cloned().collect();
            if !evs.is_empty() {
                match w.tx.offer(WatchResponse { watch_id: w.id, revision: current, events: evs, ..Default::default() })
                {
                    Offer::Sent => {}
                    Offer::Full => return true,
                    Offer::Closed => return false,
                }
            }
            w.next = to + 1;
            w.synced = w.next > current;
            true
        });
        self.watchers.list = list;
        self.flush_progress_all();
    }

    /// The next step of a catch-up from revision `from`: the events of `req`'s
    /// range in the first window of [`CATCH_UP_REVS`] revisions that has any
    /// (or none, up to `current`), and the last revision it covered.
    fn catch_up(&self, req: &WatchRequest, mut from: i64, current: i64) -> Result<(Vec<Event>, i64)> {
        let range = KeyRange::new(&req.key, &req.range_end);
        loop {
            let to = current.min(from.saturating_add(CATCH_UP_REVS - 1));
            let evs = self.events_until(range, from, to, req.prev_kv)?;
            if !evs.is_empty() || to >= current {
                return Ok((evs, to));
            }
            from = to + 1;
        }
    }

    fn kv_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let req = etcdkit_proto::etcdserverpb::RangeRequest { key: key.to_vec(), revision: rev, ..Default::default() };
        self.range(&req).ok().and_then(|r| r.kvs.into_iter().next())
    }
}

//! One history: a fresh cluster, clients and watchers under a fault
//! schedule, then every check.
//!
//! 1. Start the cluster (`cluster.rs`), wait until every member answers.
//! 2. Start the watchers (`watch.rs`: the primary over every key from the
//!    first revision, a second over half the keys), the compactor and the
//!    clients (`traffic.rs`, client i on member i mod n).
//! 3. Meanwhile inject faults: each picks a kind and a member, holds for
//!    0.3–1.2 s, heals, and leaves 0.3 s before the next.
//! 4. When the clients are done: heal everything, read every key
//!    linearizably (the history's last operation) and wait until the primary
//!    watcher has delivered that revision.
//! 5. Patch the history with the event log (the primary watcher's events):
//!    a write with an unknown outcome whose unique value is in the log took
//!    the revision the log shows; one whose value is not never happened.
//! 6. Check: linearizability (`checker.rs`); every acknowledged write in the
//!    log at its revision; the log replayed equals the final read; gets at
//!    an old revision equal the replay at that revision; the watch checks;
//!    after a compaction at the final revision a watch from below it is
//!    canceled with the compacted revision; no member's log shows a panic.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use etcdkit_fs::Rng;
use etcdkit_proto::etcdserverpb as pb;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::checker::{self, Operation, Outcome, Verdict};
use super::cluster::Cluster;
use super::model::{Request, Response, State, TxnOp, TxnResult};
use super::traffic::{self, Bug, ClientSpec, Recorder};
use super::watch::{self, Event};

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL, restart.
    Kill,
    /// SIGSTOP, SIGCONT.
    Pause,
    /// The member's inbound peer link silenced (bytes held, connections open).
    Partition,
    /// The member's inbound peer link cut (connections closed and refused).
    Cut,
    /// 20–100 ms on two members' peer links.
    Delay,
    /// Every client and peer connection closed once.
    Reset,
    /// The member's client link silenced.
    ClientBlackhole,
    /// The leader hands leadership to another member (MoveLeader).
    MoveLeader,
    /// The member killed, removed, its data wiped, added back (half the
    /// time as a learner, then promoted) and joined anew
    /// (`Cluster::replace`).
    MemberReplace,
    /// Every fsync of the member's files delayed 10–100 ms (an etcdkit
    /// member: its `FaultyFs`).
    SlowDisk,
    /// The member's writes and syncs fail, with `EIO` or `ENOSPC` (part of a
    /// write lands first): it exits, as etcd does, and is restarted once
    /// the disk works again.
    DiskFail,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Cut,
        FaultKind::Delay,
        FaultKind::Reset,
        FaultKind::ClientBlackhole,
        FaultKind::MoveLeader,
        FaultKind::MemberReplace,
        FaultKind::SlowDisk,
        FaultKind::DiskFail,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Cut => "cut",
            FaultKind::Delay => "delay",
            FaultKind::Reset => "reset",
            FaultKind::ClientBlackhole => "client-blackhole",
            FaultKind::MoveLeader => "move-leader",
            FaultKind::MemberReplace => "member-replace",
            FaultKind::SlowDisk => "slow-disk",
            FaultKind::DiskFail => "disk-fail",
        }
    }
}

/// One history's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Member i runs `servers[i]` (an `etcd`-named etcdkit, or a real etcd).
    pub servers: Vec<PathBuf>,
    pub clients: usize,
    /// Operations per client, at most.
    pub ops_per_client: u64,
    /// How long the clients run (longer only to reach `min_ops`).
    pub duration: Duration,
    /// Operations a history should reach: a history a fault held up runs on
    /// past `duration` until its clients made this many, up to four times
    /// `duration` in all (0: none).
    pub min_ops: usize,
    pub faults: Vec<FaultKind>,
    pub bug: Bug,
    pub seed: u64,
    pub base_port: u16,
    pub dir: PathBuf,
    pub keys: u64,
    pub check_budget: Duration,
    /// Members whose server is etcd 3.4.23 or older, whose answer to a
    /// progress request may run ahead of events still to come (etcd
    /// #15220, fixed in 3.4.24 / 3.5.8), and which drop an event's
    /// `prev_kv` whose revision was compacted before the event was sent:
    /// such anomalies are counted apart.
    pub progress_bug: Vec<bool>,
}

/// What one history showed.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub operations: usize,
    pub stale_reads: usize,
    pub acknowledged_writes: usize,
    pub unknown_writes: usize,
    pub faults: BTreeMap<&'static str, u64>,
    pub verdict: Option<Verdict>,
    pub check_time: Duration,
    pub watch_anomalies: Vec<String>,
    /// Progress answers ahead of events from members with etcd #15220.
    pub upstream_progress_anomalies: usize,
    /// Events without their `prev_kv` from etcd 3.4 members (see
    /// `watch::Anomaly::prev_kv_dropped`).
    pub upstream_prev_kv_anomalies: usize,
    /// Lost writes, wrong old-revision reads, a log that does not replay to
    /// the final state, panics.
    pub errors: Vec<String>,
    pub watch_events: usize,
    pub watch_resumes: u64,
    /// How long the clients ran.
    pub traffic_time: Duration,
    /// The history, for a failure's report.
    pub history: Vec<Operation>,
}

impl Report {
    pub fn violation(&self) -> bool {
        matches!(self.verdict, Some(Verdict::Violation { .. }))
    }

    /// Whether anything at all went wrong.
    pub fn failed(&self) -> bool {
        self.violation() || !self.watch_anomalies.is_empty() || !self.errors.is_empty()
    }

    /// One line: the figures and what failed.
    pub fn summary(&self) -> String {
        format!(
            "seed {}: {} ops in {:.1?} ({} acknowledged writes, {} unknown, {} old-revision reads), faults {:?}, {:?} in {:?}, {} watch events ({} resumes), {} watch anomalies (+{} of etcd #15220, +{} prev_kv dropped as etcd 3.4 does), {} errors{}",
            self.seed,
            self.operations,
            self.traffic_time,
            self.acknowledged_writes,
            self.unknown_writes,
            self.stale_reads,
            self.faults,
            self.verdict,
            self.check_time,
            self.watch_events,
            self.watch_resumes,
            self.watch_anomalies.len(),
            self.upstream_progress_anomalies,
            self.upstream_prev_kv_anomalies,
            self.errors.len(),
            self.watch_anomalies.iter().chain(&self.errors).take(3).map(|e| format!("\n  {e}")).collect::<String>(),
        )
    }
}

/// Runs one history. `Err` is a harness failure (the cluster never came up).
pub fn run(cfg: &Config) -> Result<Report, String> {
    let dir = cfg.dir.join(format!("h{}", cfg.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let cluster = Cluster::start(&dir, &cfg.servers, cfg.base_port, &format!("robust-{}", cfg.seed))
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let r = rt.block_on(history(cfg, cluster, &dir));
    rt.shutdown_timeout(Duration::from_secs(2));
    if r.as_ref().is_ok_and(|r| !r.failed()) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    r
}

async fn ready(endpoint: &str, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if let Some(c) = traffic::connect(endpoint).await {
            let get = pb::RangeRequest { key: b"ready".to_vec(), ..Default::default() };
            if tokio::time::timeout(Duration::from_secs(1), c.kv().range(get)).await.is_ok_and(|r| r.is_ok()) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn history(cfg: &Config, mut cluster: Cluster, dir: &Path) -> Result<Report, String> {
    let n = cluster.members.len();
    let up = Instant::now() + Duration::from_secs(30);
    for m in &cluster.members {
        if !ready(&m.direct_endpoint(), up).await {
            let logs = cluster.logs();
            cluster.stop();
            return Err(format!("the cluster did not come up\n{logs}"));
        }
    }
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.endpoint()).collect();
    let epoch = Instant::now();
    let rec = Arc::new(Recorder::default());
    let stop = Arc::new(AtomicBool::new(false));
    let until = Arc::new(AtomicI64::new(i64::MAX));
    let delivered = Arc::new(AtomicI64::new(0));
    let end = epoch + cfg.duration;
    let last = if cfg.min_ops > 0 { end + 3 * cfg.duration } else { end };
    let watch_deadline = last + Duration::from_secs(60);
    // The primary watcher (the event log) and a second one over half the keys.
    let rotate = |k: usize| endpoints.iter().cycle().skip(k).take(n).cloned().collect::<Vec<_>>();
    let primary = tokio::spawn(watch::run_watcher(
        watch::Done::Events,
        rotate(0),
        traffic::PREFIX.to_vec(),
        traffic::prefix_end(),
        2,
        epoch,
        stop.clone(),
        until.clone(),
        delivered.clone(),
        watch_deadline,
    ));
    let second = tokio::spawn(watch::run_watcher(
        watch::Done::Progress,
        rotate(1),
        traffic::key(0),
        traffic::key(cfg.keys / 2),
        2,
        epoch,
        stop.clone(),
        until.clone(),
        Arc::new(AtomicI64::new(0)),
        watch_deadline,
    ));
    let compactor = tokio::spawn(traffic::run_compactor(
        endpoints[n - 1].clone(),
        rec.clone(),
        epoch,
        stop.clone(),
        delivered.clone(),
        Duration::from_millis(300),
    ));
    let clients: Vec<_> = (0..cfg.clients)
        .map(|i| {
            let spec = ClientSpec {
                id: i,
                endpoint: endpoints[i % n].clone(),
                seed: cfg.seed.wrapping_mul(1000) + i as u64,
                keys: cfg.keys,
                timeout: Duration::from_secs(1),
                bug: cfg.bug,
                max_ops: cfg.ops_per_client,
            };
            tokio::spawn(traffic::run_client(spec, rec.clone(), epoch, stop.clone()))
        })
        .collect();
    // The faults, on a thread of their own (signals and sleeps).
    let traffic_done = Arc::new(AtomicBool::new(false));
    let injected = Arc::new(Mutex::new(BTreeMap::<&'static str, u64>::new()));
    let fault_thread = {
        let (cfg, done, injected) = (cfg.clone(), traffic_done.clone(), injected.clone());
        std::thread::spawn(move || {
            inject(&mut cluster, &cfg, &done, &injected);
            cluster
        })
    };
    {
        let (stop, rec, min_ops) = (stop.clone(), rec.clone(), cfg.min_ops);
        tokio::spawn(async move {
            tokio::time::sleep_until(end).await;
            while rec.ops.lock().len() < min_ops && Instant::now() < last {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    // A client's last request is given up after its 1 s timeout.
    for c in clients {
        let _ = tokio::time::timeout_at(last + Duration::from_secs(5), c).await;
    }
    let traffic_time = epoch.elapsed();
    stop.store(true, Ordering::Relaxed);
    traffic_done.store(true, Ordering::Relaxed);
    let _ = compactor.await;
    let mut cluster = tokio::task::spawn_blocking(move || fault_thread.join().expect("the fault thread"))
        .await
        .map_err(|e| e.to_string())?;
    let mut report = Report { seed: cfg.seed, faults: injected.lock().clone(), traffic_time, ..Default::default() };
    report.errors.append(&mut cluster.errors);
    if let Some(m) = cluster.panicked() {
        report.errors.push(format!("{m} panicked"));
    }
    cluster.heal();
    report.errors.append(&mut cluster.errors);
    // The last operation: every key, linearizably, once the cluster answers.
    let final_read = final_read(&rec, epoch, &endpoints).await;
    let Some((final_rev, final_kvs)) = final_read else {
        let logs = cluster.logs();
        cluster.stop();
        return Err(format!("the healed cluster does not answer\n{logs}"));
    };
    until.store(final_rev, Ordering::Relaxed);
    let primary = primary.await.map_err(|e| e.to_string())?;
    let second = second.await.map_err(|e| e.to_string())?;
    let log: Vec<Event> = watch::events(&primary).into_iter().cloned().collect();
    // The end: a compaction at the final revision, and a watch from below it.
    if final_rev > 2 {
        compacted_watch(&endpoints, final_rev, &mut report).await;
    }
    if let Some(m) = cluster.panicked() {
        report.errors.push(format!("{m} panicked"));
    }
    let logs = cluster.logs();
    cluster.stop();
    judge(cfg, &rec, &log, final_rev, &final_kvs, &[&primary, &second], &endpoints, &mut report);
    if report.failed() {
        let _ = std::fs::write(dir.join("members.log"), logs);
        let _ = std::fs::write(dir.join("history.txt"), format!("{:#?}", report.history));
    }
    Ok(report)
}

async fn final_read(
    rec: &Recorder,
    epoch: Instant,
    endpoints: &[String],
) -> Option<(i64, BTreeMap<Vec<u8>, super::model::KeyValue>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let all = super::model::RangeRequest { key: traffic::PREFIX.to_vec(), end: traffic::prefix_end(), limit: 0 };
    let mut i = 0;
    while Instant::now() < deadline {
        i += 1;
        if let Some(c) = traffic::connect(&endpoints[i % endpoints.len()]).await
            && let Some(Response::Range { r, revision }) = traffic::record(
                rec,
                epoch,
                usize::MAX - 1,
                &c,
                Request::Range(all.clone()),
                Duration::from_secs(2),
                false,
            )
            .await
        {
            return Some((revision, r.kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Compacts at `rev` and expects a watch from revision 2 to be canceled
/// with `rev` as the compacted revision, on the member that compacted (a
/// member just restarted or a leader change may refuse at first: the
/// members are tried in turn for 20 s).
async fn compacted_watch(endpoints: &[String], rev: i64, report: &mut Report) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    for ep in endpoints.iter().cycle() {
        if Instant::now() > deadline {
            break;
        }
        let Some(c) = traffic::connect(ep).await else {
            last = format!("no connection to {ep}");
            continue;
        };
        let mut kv = c.kv();
        let compact = kv.compact(pb::CompactionRequest { revision: rev, physical: true });
        match tokio::time::timeout(Duration::from_secs(3), compact).await {
            Ok(Ok(_)) => {}
            Ok(Err(s)) if s.message().contains("compacted") => {}
            Ok(Err(s)) => {
                last = format!("compaction at {rev} on {ep}: {}", s.message());
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                last = format!("compaction at {rev} on {ep}: timed out");
                continue;
            }
        }
        let w = watch::run_watcher(
            watch::Done::Progress,
            vec![ep.clone()],
            traffic::PREFIX.to_vec(),
            traffic::prefix_end(),
            2,
            Instant::now(),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicI64::new(i64::MAX)),
            Arc::new(AtomicI64::new(0)),
            Instant::now() + Duration::from_secs(5),
        )
        .await;
        // (A progress answer may come first: the stream has no watcher then.)
        match w.records.iter().find(|r| !r.progress) {
            Some(r) if r.compacted == Some(rev) => return,
            // Events instead of the compaction: a real error.
            Some(r) => {
                report.errors.push(format!("a watch from 2 after compacting at {rev} on {ep} got {r:?}"));
                return;
            }
            None => last = format!("no answer to a watch from 2 on {ep}"),
        }
    }
    report.errors.push(format!("the compaction check did not complete: {last}"));
}

/// Injects faults until `done`; a fault that could not be carried out on a
/// healed cluster (a membership change that never completed) goes to
/// `errors`.
fn inject(cluster: &mut Cluster, cfg: &Config, done: &AtomicBool, injected: &Mutex<BTreeMap<&'static str, u64>>) {
    let mut rng = Rng::new(cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
    let n = cluster.members.len();
    let wait = |ms: u64| {
        let until = std::time::Instant::now() + Duration::from_millis(ms);
        while std::time::Instant::now() < until && !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait(200);
    if cfg.bug == Bug::StaleFollowerReads {
        // Member 0 (client 0's) cut off from its peers for the whole run,
        // as a follower: a partitioned leader keeps the others from
        // electing one until it steps down, and nothing moves meanwhile.
        move_leader(cluster, &mut rng, Some(0));
        cluster.partition(0);
        *injected.lock().entry(FaultKind::Partition.name()).or_default() += 1;
        while !done.load(Ordering::Relaxed) {
            wait(50);
        }
        return;
    }
    if cfg.faults.is_empty() {
        return;
    }
    // Every kind in turn from a seed-dependent one, so that a run of
    // histories covers them all; the member and timing are random.
    let mut turn = cfg.seed as usize;
    while !done.load(Ordering::Relaxed) {
        let kind = cfg.faults[turn % cfg.faults.len()];
        turn += 1;
        let mut i = rng.below(n as u64) as usize;
        let hold = 200 + rng.below(600);
        if matches!(kind, FaultKind::SlowDisk | FaultKind::DiskFail) {
            // Only etcdkit members have a fault-injecting file system (and
            // one left out by an unfinished replacement runs nothing).
            let real = |k: usize| cfg.progress_bug.get(k).copied().unwrap_or(false);
            let running = |k: usize| cluster.members[k].proc.is_some();
            let Some(k) = (0..n).map(|k| (i + k) % n).find(|&k| !real(k) && running(k)) else { continue };
            i = k;
            if !cluster.disk_faults_on(i) {
                cluster.errors.push(format!(
                    "m{i} cannot inject disk faults: its etcdkit was built without the `disk-faults` feature"
                ));
                continue;
            }
        }
        match kind {
            FaultKind::Kill => {
                cluster.kill(i);
                wait(hold);
                cluster.launch(i);
            }
            FaultKind::Pause => {
                cluster.pause(i);
                wait(hold);
                cluster.resume(i);
            }
            FaultKind::Partition => {
                cluster.partition(i);
                wait(hold);
            }
            FaultKind::Cut => {
                cluster.members[i].peer_faults.cut.store(true, Ordering::Relaxed);
                wait(hold);
            }
            FaultKind::Delay => {
                let j = (i + 1 + rng.below(n as u64 - 1) as usize) % n;
                for k in [i, j] {
                    cluster.members[k].peer_faults.delay_ms.store(20 + rng.below(80), Ordering::Relaxed);
                }
                wait(hold);
            }
            FaultKind::Reset => {
                for m in &cluster.members {
                    m.peer_faults.reset();
                    m.client_faults.reset();
                }
            }
            FaultKind::ClientBlackhole => {
                cluster.members[i].client_faults.blackhole.store(true, Ordering::Relaxed);
                wait(hold);
            }
            FaultKind::MoveLeader => move_leader(cluster, &mut rng, None),
            FaultKind::SlowDisk => {
                cluster.disk(i, &format!("sync-delay-ms={}\n", 10 + rng.below(90)));
                wait(hold);
            }
            FaultKind::DiskFail => {
                let how = if rng.below(2) == 0 { "eio" } else { "enospc" };
                cluster.disk(i, &format!("fail={how}\n"));
                wait(hold);
                // A member that hit the error exits within ~100 ms (it is
                // restarted by the heal below, or by a later one).
                let until = std::time::Instant::now() + Duration::from_millis(1500);
                while !cluster.exited(i) && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if cluster.exited(i) {
                    *injected.lock().entry("disk-fail (member exited)").or_default() += 1;
                }
            }
            FaultKind::MemberReplace => {
                let learner = rng.below(2) == 1;
                if let Err(e) = cluster.replace(i, learner) {
                    cluster.errors.push(format!("replacing m{i}{}: {e}", if learner { " (as a learner)" } else { "" }));
                }
            }
        }
        *injected.lock().entry(kind.name()).or_default() += 1;
        cluster.heal();
        wait(100 + rng.below(300));
    }
}

/// Asks the leader to hand leadership to a random other member (with
/// `only_from`, only if the leader is that member).
fn move_leader(cluster: &Cluster, rng: &mut Rng, only_from: Option<usize>) {
    let eps: Vec<String> = cluster.members.iter().map(|m| m.direct_endpoint()).collect();
    let pick = rng.below(eps.len() as u64 - 1);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    rt.block_on(async move {
        let mut ids = Vec::new();
        let mut leader = None;
        for (i, ep) in eps.iter().enumerate() {
            let Some(c) = traffic::connect(ep).await else { continue };
            let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_secs(1), c.maintenance().status(pb::StatusRequest {})).await
            else {
                continue;
            };
            let s = s.into_inner();
            let me = s.header.as_ref().map_or(0, |h| h.member_id);
            if s.leader == me {
                if only_from.is_some_and(|o| o != i) {
                    return;
                }
                leader = Some(c);
            } else {
                ids.push(me);
            }
        }
        if let (Some(l), false) = (leader, ids.is_empty()) {
            let target = ids[pick as usize % ids.len()];
            let _ = tokio::time::timeout(
                Duration::from_secs(3),
                l.maintenance().move_leader(pb::MoveLeaderRequest { target_id: target }),
            )
            .await;
        }
    });
}

/// The put value a write carries, if it has one.
fn written_value(req: &Request) -> Option<&[u8]> {
    match req {
        Request::Put { value, .. } => Some(value),
        Request::Txn { success, .. } => success.iter().find_map(|o| match o {
            TxnOp::Put { value, .. } => Some(value.as_slice()),
            _ => None,
        }),
        _ => None,
    }
}

/// Patches the history with the log and runs every check into `report`.
#[allow(clippy::too_many_arguments)]
fn judge(
    cfg: &Config,
    rec: &Recorder,
    log: &[Event],
    final_rev: i64,
    final_kvs: &BTreeMap<Vec<u8>, super::model::KeyValue>,
    watchers: &[&watch::Watcher],
    endpoints: &[String],
    report: &mut Report,
) {
    let init = BTreeMap::new();
    let put_at: HashMap<&[u8], i64> =
        log.iter().filter(|e| !e.delete).map(|e| (&e.kv.value[..], e.kv.mod_revision)).collect();
    let mut ops: Vec<Operation> = Vec::new();
    for op in rec.ops.lock().iter() {
        let mut op = op.clone();
        if let Outcome::Unknown { .. } = op.out {
            report.unknown_writes += 1;
            if let Some(v) = written_value(&op.req) {
                match put_at.get(v) {
                    Some(r) => op.out = Outcome::Unknown { revision: Some(*r) },
                    None => continue,
                }
            }
        }
        ops.push(op);
    }
    report.operations = ops.len() + rec.stale.lock().len();
    report.stale_reads = rec.stale.lock().len();
    // Acknowledged writes are in the log at their revision.
    for op in &ops {
        let acked_rev = match (&op.req, &op.out) {
            (Request::Put { .. }, Outcome::Ok(Response::Put { revision })) => Some(*revision),
            (Request::Txn { .. }, Outcome::Ok(Response::Txn { succeeded: true, revision, results }))
                if results.contains(&TxnResult::Put) =>
            {
                Some(*revision)
            }
            _ => None,
        };
        if let (Some(rev), Some(v)) = (acked_rev, written_value(&op.req)) {
            report.acknowledged_writes += 1;
            if put_at.get(v) != Some(&rev) {
                report.errors.push(format!(
                    "acknowledged write {:?} at revision {rev} is {} in the event log",
                    String::from_utf8_lossy(v),
                    put_at.get(v).map_or("missing".to_string(), |r| format!("at {r}"))
                ));
            }
        }
    }
    // The log replays to the final state.
    let replayed = watch::state_at(&init, log, final_rev);
    if &replayed != final_kvs {
        report.errors.push(format!(
            "the event log replayed to revision {final_rev} has {} keys, the final read {}",
            replayed.len(),
            final_kvs.len()
        ));
    }
    // (Events after it are writes whose clients gave up, applied late.)
    if final_rev > 1 && !log.iter().any(|e| e.kv.mod_revision == final_rev) {
        report.errors.push(format!("the event log lacks the final revision {final_rev}"));
    }
    // Gets at an old revision.
    let acked: Vec<(u64, i64)> = ops
        .iter()
        .filter_map(|o| match &o.out {
            Outcome::Ok(r) => Some((o.ret, traffic::revision_of(r))),
            _ => None,
        })
        .collect();
    let compactions: Vec<(u64, i64)> = ops
        .iter()
        .filter_map(|o| match o.req {
            Request::Compact { revision } => Some((o.call, revision)),
            _ => None,
        })
        .collect();
    for s in rec.stale.lock().iter() {
        match &s.answer {
            Ok(got) => {
                let at = watch::state_at(&init, log, s.revision);
                let model = State::new(s.revision, 0, at.into_values().collect());
                let (_, want) = model.step(&Request::Range(s.range.clone()));
                let Response::Range { r: want, .. } = want else { unreachable!("a range answers a range") };
                if *got != want {
                    report.errors.push(format!(
                        "get at revision {} of {:?}: got {:?}, the log has {:?}",
                        s.revision, s.range, got, want
                    ));
                }
            }
            Err(super::model::DefiniteError::Compacted) => {
                if !compactions.iter().any(|&(call, r)| call < s.ret && r >= s.revision) {
                    report
                        .errors
                        .push(format!("get at revision {}: compacted, but no compaction reached it", s.revision));
                }
            }
            Err(super::model::DefiniteError::FutureRevision) => {
                let known = acked.iter().filter(|&&(ret, _)| ret < s.call).map(|&(_, r)| r).max().unwrap_or(1);
                if s.revision <= known {
                    report.errors.push(format!(
                        "get at revision {}: a future revision, though {known} was acknowledged before",
                        s.revision
                    ));
                }
            }
            Err(e) => report.errors.push(format!("get at revision {}: {e:?}", s.revision)),
        }
    }
    // Watches.
    for w in watchers {
        report.watch_events += watch::events(w).len();
        report.watch_resumes += w.resumes;
        for a in watch::check(w, log, &init) {
            let member = a.member.and_then(|ep| endpoints.iter().position(|e| *e == ep));
            match member {
                Some(m) if cfg.progress_bug.get(m).copied().unwrap_or(false) => {
                    if a.prev_kv_dropped {
                        report.upstream_prev_kv_anomalies += 1;
                    } else {
                        report.upstream_progress_anomalies += 1;
                    }
                }
                _ => report.watch_anomalies.push(a.what),
            }
        }
    }
    let started = std::time::Instant::now();
    report.verdict = Some(checker::check(&State::new(1, 0, vec![]), &ops, cfg.check_budget));
    report.check_time = started.elapsed();
    report.history = ops;
}

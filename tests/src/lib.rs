//! The fixture files of the integration tests (made by real etcd 3.4.23 and
//! 3.5.1, see `tests/fixtures/README.md`), and the test kit's reference tools and
//! generator re-exported for them (`etcdkit-testkit`: real bbolt, real etcd,
//! the skip policy).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub use etcdkit_testkit::boltref::{boltref, run_boltref};
pub use etcdkit_testkit::etcd::{
    EtcdProc, RestoreArgs, etcd_binaries, etcd35_dir, etcdctl, etcdctl_restore, etcdctl_stdin, start_etcd,
    start_etcd_env, start_etcd_with,
};
pub use etcdkit_testkit::{Rng, missing, root, run};

mod pki;
pub mod robust;
pub use pki::Pki;

/// `tests/fixtures`: one directory per etcd version that made the files
/// (`etcd-3.4`, `etcd-3.5`), one set per subdirectory.
pub fn fixtures_dir() -> PathBuf {
    root().join("tests/fixtures")
}

/// The versions whose fixtures the repository holds.
pub const FIXTURE_VERSIONS: [&str; 2] = ["etcd-3.4", "etcd-3.5"];

/// Every fixture set of every version, sorted, named `etcd-3.x/<kind>`.
pub fn fixture_sets() -> Vec<String> {
    FIXTURE_VERSIONS.iter().flat_map(|v| fixture_sets_of(v)).collect()
}

/// Every fixture set made by `version` (`etcd-3.4`, `etcd-3.5`), sorted.
pub fn fixture_sets_of(version: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixtures_dir().join(version))
        .expect("fixtures dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| format!("{version}/{}", e.file_name().to_string_lossy()))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixture sets found for {version}");
    v
}

/// The kind of a set (`small`, `auth`, …: the part after the version).
pub fn set_kind(set: &str) -> &str {
    set.rsplit('/').next().unwrap_or(set)
}

/// Whether the set was made by etcd 3.5.
pub fn is_35(set: &str) -> bool {
    set.starts_with("etcd-3.5/")
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

/// Extracts a set's `<name>.tar.gz` under `dest`; returns `dest/<name>`.
fn extract(set: &str, name: &str, dest: &Path) -> Option<PathBuf> {
    let tar = fixture(set, &format!("{name}.tar.gz"))?;
    let st = Command::new("tar").arg("-xzf").arg(&tar).arg("-C").arg(dest).status().expect("run tar");
    assert!(st.success(), "tar -xzf {}", tar.display());
    Some(dest.join(name))
}

/// Extracts a set's `datadir.tar.gz` under `dest`; returns `dest/datadir`.
pub fn extract_datadir(set: &str, dest: &Path) -> Option<PathBuf> {
    extract(set, "datadir", dest)
}

/// The real `etcd` and `etcdctl` of the version that made `set`: etcd 3.5.1
/// for `etcd-3.5/…` sets, Debian's 3.4.23 otherwise; `None` (after
/// [`missing`]) when they are not installed.
pub fn etcd_for(set: &str) -> Option<(PathBuf, PathBuf)> {
    if is_35(set) { etcd35_dir().map(|d| (d.join("etcd"), d.join("etcdctl"))) } else { etcd_binaries() }
}

/// The real tool that read and restored `set`'s snapshots for the fixtures
/// (`snapshot status`, `snapshot restore`): etcdutl 3.5.1 for `etcd-3.5/…`
/// sets, etcdctl 3.4.23 otherwise (both take the same flags:
/// [`etcdctl_restore`]).
pub fn snapshot_tool_for(set: &str) -> Option<PathBuf> {
    if is_35(set) { etcd35_dir().map(|d| d.join("etcdutl")) } else { etcd_binaries().map(|(_, ctl)| ctl) }
}

/// Every fixture set that ships a data dir, each extracted into a temp dir of
/// its own: (the set's index among all sets, its name, the temp dir, the data dir).
pub fn fixture_datadirs() -> impl Iterator<Item = (usize, String, tempfile::TempDir, PathBuf)> {
    fixture_sets().into_iter().enumerate().filter_map(|(i, set)| {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = extract_datadir(&set, tmp.path())?;
        Some((i, set, tmp, dir))
    })
}

/// Extracts a set's `restored.tar.gz` under `dest`; returns `dest/restored`.
pub fn extract_restored(set: &str, dest: &Path) -> Option<PathBuf> {
    extract(set, "restored", dest)
}

/// The `etcdkit` binary: `cargo test --workspace` builds it (for the CLI's
/// own tests, with the `disk-faults` feature this crate turns on) beside this
/// test's executable before any test runs. A test run alone
/// (`-p etcdkit-tests`) needs `cargo build --profile test -p etcdkit-cli
/// --features disk-faults` first.
pub fn etcdkit_bin() -> PathBuf {
    // Tests run from target/<profile>/deps, the harness's binaries from target/<profile>.
    let exe = std::env::current_exe().expect("the test's own path");
    let here = exe.parent().expect("a binary's directory");
    let bin = [here.join("etcdkit"), here.parent().map(|d| d.join("etcdkit")).unwrap_or_default()]
        .into_iter()
        .find(|b| b.is_file())
        .unwrap_or_else(|| here.join("etcdkit"));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --profile test -p etcdkit-cli --features disk-faults`",
        bin.display()
    );
    bin
}

/// The etcdkit binary under the name `name` (`etcd`, `etcdctl`, `etcdutl`:
/// the multi-call names): a symlink in `<dir>/bin`, made once.
pub fn etcdkit_as(dir: &Path, name: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("create the bin dir");
    let link = bin.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(etcdkit_bin(), &link).expect("link the etcdkit binary");
    }
    link
}

/// Runs `etcdkit ARGS` (with `stdin` on its standard input); returns
/// (success, stdout, stderr). The CLI is tested as a CLI: through its binary.
pub fn etcdkit(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    etcdkit_testkit::output(Command::new(etcdkit_bin()).args(args), stdin)
}

/// The stdout of `etcdkit ARGS`, which must succeed.
pub fn etcdkit_ok(args: &[&str]) -> String {
    let (ok, out, err) = etcdkit(args, None);
    assert!(ok, "etcdkit {args:?}: {err}");
    out
}

/// Writes a compacted copy of the db at `src` to a new db at `dst` (bbolt's
/// `compact`: every bucket and key copied in order into fresh pages).
pub fn compact_db(src: &Path, dst: &Path) {
    use etcdkit_storage::{Db, Options};
    let from = Db::open(src, Options { read_only: true, ..Default::default() }).expect("open the source db");
    let to = Db::open(dst, Options::default()).expect("create the compacted db");
    etcdkit_storage::compact::compact(&to, &from, 65536).expect("compact");
}

/// Asserts that `etcd` serves exactly the keys of fixture `set` (`kvs.json`).
pub fn assert_serves_fixture(etcd: &EtcdProc, ctl: &Path, set: &str, what: &str) {
    let got = etcd.get_all(ctl, None);
    let want: serde_json::Value = serde_json::from_str(&fixture_text(set, "kvs.json").expect("kvs.json")).unwrap();
    assert!(got["kvs"] == want["kvs"], "{set}: {what}: etcd serves different keys");
}

/// Parses JSON lines.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("json line")).collect()
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

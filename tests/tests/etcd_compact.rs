//! Acceptance: real etcd 3.4 starts on a fixture data dir whose `member/snap/db`
//! was replaced by `etcdkit bolt compact` of it, and serves exactly the
//! fixture's keys (`etcdctl get "" --prefix -w json` equals `kvs.json`'s kvs).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcdkit_cli::bolt::cmd_compact;
use etcdkit_storage::{Db, Options};
use etcdkit_tests::{etcd_binaries, extract_datadir, fixture_sets, fixture_text};

struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether etcd can serve this data dir alone without credentials: one member, auth off.
fn single_member_without_auth(db: &Path) -> bool {
    let db = Db::open(db, Options { read_only: true, ..Default::default() }).unwrap();
    let tx = db.begin().unwrap();
    let members = tx.bucket(b"members").unwrap().map(|b| b.iter().count()).unwrap_or(0);
    let auth_on = tx.bucket(b"auth").unwrap().is_some_and(|b| b.get(b"authEnabled").unwrap() == Some(&[1u8][..]));
    members == 1 && !auth_on
}

fn etcdctl(ctl: &Path, ep: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(ctl)
        .env_clear()
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", ep, "--command-timeout=5s"])
        .args(args)
        .output()
        .ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn real_etcd_serves_a_compacted_fixture_db() {
    let Some((etcd, ctl)) = etcd_binaries() else { return };
    let mut served = 0;
    for (i, set) in fixture_sets().into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(dir) = extract_datadir(&set, tmp.path()) else { continue };
        let db = dir.join("member/snap/db");
        if !single_member_without_auth(&db) {
            continue;
        }
        let compacted = tmp.path().join("compacted.db");
        cmd_compact(&mut Vec::new(), &db, &compacted, 65536).unwrap();
        std::fs::rename(&compacted, &db).unwrap();

        let (client, peer) = (24379 + 2 * i as u16, 24380 + 2 * i as u16);
        let ep = format!("http://127.0.0.1:{client}");
        let pu = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(tmp.path().join("etcd.log")).unwrap();
        let child = Command::new(&etcd)
            .env_clear()
            .env("HOME", tmp.path())
            .args(["--name", "n1", "--data-dir", dir.to_str().unwrap()])
            .args(["--listen-client-urls", &ep, "--advertise-client-urls", &ep])
            .args(["--listen-peer-urls", &pu, "--initial-advertise-peer-urls", &pu])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let _guard = Etcd(child);
        let start = Instant::now();
        let out = loop {
            if let Some(out) = etcdctl(&ctl, &ep, &["get", "", "--prefix", "-w", "json"]) {
                break out;
            }
            let log = std::fs::read_to_string(tmp.path().join("etcd.log")).unwrap_or_default();
            assert!(start.elapsed() < Duration::from_secs(60), "{set}: etcd did not serve in 60 s:\n{log}");
            std::thread::sleep(Duration::from_millis(200));
        };
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        let want: serde_json::Value = serde_json::from_str(&fixture_text(&set, "kvs.json").unwrap()).unwrap();
        assert!(got["kvs"] == want["kvs"], "{set}: etcd on the compacted db serves different keys");
        served += 1;
    }
    assert!(served >= 1, "no fixture set could be served");
}

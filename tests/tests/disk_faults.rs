//! A served member whose disk turns slow or fails (`etcdkit_fs::FaultyFs`,
//! switched from the control file named by `ETCDKIT_DISK_FAULTS`; the test
//! build has the server's `disk-faults` feature): a slow disk slows writes;
//! a failing one (`EIO`, `ENOSPC`) stops the member with the error, as etcd
//! does, and every write acknowledged before is there after a restart.
//!
//! Ports 31600–31601.

use std::path::Path;
use std::time::{Duration, Instant};

use etcdkit_tests::{EtcdProc, etcdctl, etcdkit_as, start_etcd_env};

const CLIENT: u16 = 31600;
const PEER: u16 = 31601;

fn start(kit: &Path, dir: &Path, ctl_file: &Path) -> EtcdProc {
    let env = [("ETCDKIT_DISK_FAULTS", ctl_file.to_str().unwrap())];
    let p = start_etcd_env(kit, "m0", dir, CLIENT, PEER, None, &[], &env);
    let until = Instant::now() + Duration::from_secs(30);
    while !p.log_text().contains("ready to serve client requests") {
        assert!(Instant::now() < until, "the member did not come up\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(p.log_text().contains("disk faults injected from"), "a test build without `disk-faults`\n{}", p.log_text());
    p
}

/// `etcdctl put`; whether it was acknowledged.
fn put(ctl: &Path, p: &EtcdProc, k: &str, v: &str) -> bool {
    etcdctl(ctl, &["--endpoints", &p.endpoint, "--command-timeout=3s", "put", k, v]).0
}

/// Waits (bounded) for the member to exit by itself.
fn exits(p: &mut EtcdProc) -> bool {
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        if p.exited() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_failing_disk_stops_the_member_and_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (kit, ctl) = (etcdkit_as(tmp.path(), "etcd"), etcdkit_as(tmp.path(), "etcdctl"));
    let (dir, faults) = (tmp.path().join("m0.etcd"), tmp.path().join("m0.disk-faults"));
    let mut acked = Vec::new();
    let mut p = start(&kit, &dir, &faults);
    // A slow disk: every fsync 150 ms late, so is every write.
    std::fs::write(&faults, "sync-delay-ms=150\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    assert!(put(&ctl, &p, "slow", "1"));
    assert!(t.elapsed() >= Duration::from_millis(150), "a put on a slow disk took {:?}", t.elapsed());
    acked.push(("slow".to_string(), "1".to_string()));
    std::fs::write(&faults, "").unwrap();
    for (round, (how, errno)) in [("eio", "os error 5"), ("enospc", "os error 28")].into_iter().enumerate() {
        for i in 0..20 {
            let (k, v) = (format!("k{round}-{i}"), format!("v{i}-{}", "x".repeat(i * 300)));
            assert!(put(&ctl, &p, &k, &v), "{how}: put {k}\n{}", p.log_text());
            acked.push((k, v));
        }
        std::fs::write(&faults, format!("fail={how}\n")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // The write that meets the failing disk is not acknowledged; the member stops.
        assert!(!put(&ctl, &p, &format!("lost-{how}"), "?"), "{how}: a write acknowledged on a failing disk");
        assert!(exits(&mut p), "{how}: the member runs on after a failed disk write\n{}", p.log_text());
        let log = p.log_text();
        assert!(log.contains(errno), "{how}: the exit does not say why\n{log}");
        assert!(!log.contains("panicked"), "{how}: {log}");
        // The disk works again: every acknowledged write is there.
        std::fs::write(&faults, "").unwrap();
        p = start(&kit, &dir, &faults);
        for (k, v) in &acked {
            let (ok, out, err) = etcdctl(&ctl, &["--endpoints", &p.endpoint, "get", k, "--print-value-only"]);
            assert!(ok, "{how}: get {k}: {err}");
            assert_eq!(out.trim_end(), v, "{how}: {k} after the restart\n{}", p.log_text());
        }
    }
    assert!(put(&ctl, &p, "after", "ok"));
    p.stop();
}

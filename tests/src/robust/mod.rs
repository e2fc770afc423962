//! The robustness harness: served clusters under faults, their histories
//! checked for linearizability and their watches for etcd's guarantees
//! (issue 22; `docs/robustness.md`).
//!
//! - `model`: etcd's key-value store as a sequential model;
//! - `checker`: the linearizability search over a history (porcupine's);
//! - `proxy`: the fault-injecting TCP proxy on every client and peer link;
//! - `cluster`: 3 or 5 members (etcdkit or real etcd) behind the proxies;
//! - `traffic`: the clients, their workload, the recorder;
//! - `watch`: watchers and the watch checks;
//! - `run`: one history from start to verdict.

pub mod checker;
pub mod cluster;
pub mod model;
pub mod proxy;
pub mod run;
pub mod traffic;
pub mod watch;

/// Appends one figure line to `target/tmp/robustness.txt`, which
/// `scripts/test.sh` prints after the tests (`tmp`: the integration test's
/// `CARGO_TARGET_TMPDIR`).
pub fn record_figure(tmp: &str, line: &str) {
    use std::io::Write;
    let path = std::path::Path::new(tmp).join("robustness.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

//! # etcdkit-testkit
//!
//! The test infrastructure every crate's tests share (dev only; of the
//! workspace it depends on `etcdkit-fs` alone, so even the page store's tests
//! can use it):
//!
//! - [`Rng`], the project's seeded generator (re-exported from `etcdkit-fs`);
//! - [`etcd`]: real etcd 3.4 on loopback (`start_etcd`, tracked by its child
//!   process and killed on drop, waits bounded) and `etcdctl`;
//! - [`boltref`]: the real-bbolt reference tool built by
//!   `scripts/build-boltref.sh`;
//! - [`crash`]: the crash-exploration loop over `SimFs`;
//! - the skip policy: outside CI a missing reference tool skips its test
//!   loudly ([`missing`]); with `CI=true` (or `1`) it fails.
//!
//! ```
//! let mut r = etcdkit_testkit::Rng::new(7);
//! assert!(r.below(10) < 10);
//! ```
#![forbid(unsafe_code)]

pub mod boltref;
pub mod crash;
pub mod etcd;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use etcdkit_fs::Rng;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit sits in the workspace").to_path_buf()
}

/// Whether the run is CI's (`CI=true` or `CI=1`): missing tools fail it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing reference tool: panics in CI, skips loudly elsewhere.
pub fn missing(what: &str) {
    if in_ci() {
        panic!("{what} is required when CI=true (run scripts/test.sh, which installs it)");
    }
    eprintln!("\n!!!!! SKIPPED: {what} not available; run scripts/test.sh to install it !!!!!\n");
}

/// Runs `cmd` to the end with `stdin` on its standard input (none: empty);
/// returns (success, stdout, stderr).
pub fn output(cmd: &mut Command, stdin: Option<&str>) -> (bool, String, String) {
    let (code, out, err) = run(cmd, stdin, None);
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (code == Some(0), text(out), text(err))
}

/// Runs `cmd` with `stdin` on its standard input (none: empty), killed
/// (panicking) if it outlives `limit`; its output is drained while it runs.
/// Returns its exit code (`None`: killed by a signal), stdout and stderr.
pub fn run(
    cmd: &mut Command,
    stdin: Option<&str>,
    limit: Option<std::time::Duration>,
) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut child = cmd
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    if let Some(input) = stdin {
        // A command that does not read its input may close it first.
        let _ = child.stdin.take().expect("piped").write_all(input.as_bytes());
    }
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            b
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the child") {
            break s;
        }
        if limit.is_some_and(|l| start.elapsed() > l) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not end within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    (status.code(), out.join().expect("drain stdout"), err.join().expect("drain stderr"))
}

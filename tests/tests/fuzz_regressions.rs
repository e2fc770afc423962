//! Inputs the fuzzers found to misbehave (`tests/fixtures/fuzz-regressions/`),
//! run through the same calls as their fuzz target. Each must return (a result
//! or a typed error) without panicking or hanging.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use etcdkit_snapshot::inspect::{KeySpace, inspect};
use etcdkit_snapshot::{Error, status, verify};

fn regression(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz-regressions").join(name)
}

/// Runs `f` on another thread; panics if it panics or has not answered in
/// 60 s (a hang: the inputs here are a few KiB).
fn answers<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => panic!("{what}: panicked"),
        Err(_) => panic!("{what}: no answer in 60 s"),
    }
}

/// snapshot_verify: a freelist page whose overflow count is 0xffff_fffe made
/// the structure check mark 4 G pages one by one.
#[test]
fn freelist_overflow_past_the_file_is_a_problem_not_a_hang() {
    let p = regression("snapshot_verify-freelist-overflow.db");
    let q = p.clone();
    let st = answers("status", move || status(&etcdkit_fs::real(), &q));
    match st {
        Err(Error::Integrity(problems)) => {
            assert!(problems.iter().any(|p| p.contains("freelist overflow")), "{problems:?}");
        }
        other => panic!("status: want an integrity error, got {other:?}"),
    }
    let q = p.clone();
    answers("verify", move || verify::verify(&etcdkit_fs::real(), &q, &mut |_, _| {}).err());
    let q = p.clone();
    answers("inspect", move || inspect(&etcdkit_fs::real(), &q, &mut std::io::sink()).err());
    answers("key space", move || KeySpace::load(&etcdkit_fs::real(), &p).err());
}

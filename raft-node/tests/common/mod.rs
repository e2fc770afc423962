//! Helpers shared by the node tests.

use std::time::{Duration, Instant};

/// Polls `f` until it holds; fails the test after 20 s.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

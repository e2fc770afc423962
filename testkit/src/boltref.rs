//! Real bbolt as a reference: `tools/boltref` (built from Debian's bbolt
//! 1.3.6 source by `scripts/build-boltref.sh`) checks and dumps files with
//! real bbolt's own code.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The tool: `ETCDKIT_BOLTREF`, else `target/boltref`; `None` (after
/// [`crate::missing`]) when it is not built.
pub fn boltref() -> Option<PathBuf> {
    let p =
        std::env::var_os("ETCDKIT_BOLTREF").map(PathBuf::from).unwrap_or_else(|| crate::root().join("target/boltref"));
    if p.exists() {
        Some(p)
    } else {
        crate::missing(&format!("boltref (real bbolt) at {}", p.display()));
        None
    }
}

/// Runs `boltref ARGS` (`check`, `dump`, `write`); returns (success, stdout, stderr).
pub fn run_boltref(tool: &Path, args: &[&str]) -> (bool, String, String) {
    crate::output(Command::new(tool).args(args), None)
}

//! The crash-exploration loop: a workload on the simulated file system is
//! run once to count its file-system operations, then once more for every
//! operation with a fault planned there (a crash, a short write, a failure),
//! and every image a reboot could leave is checked.
//!
//! ```
//! use std::path::Path;
//! use etcdkit_fs::{Fault, Fs, Open, Reboot, SimFs};
//! use etcdkit_testkit::crash::{clean_run, explore};
//!
//! let fresh = || SimFs::new();
//! let write = |fs: &SimFs| -> std::io::Result<()> {
//!     let f = fs.open(Path::new("/a"), Open::Create { mode: 0o600 })?;
//!     f.write_all_at(b"hello", 0)?;
//!     f.sync_data()
//! };
//! let (ops, _) = clean_run(&fresh, write);
//! let points = explore(ops, &fresh, |at| vec![Fault::CrashAt(at)], Reboot::each, write, |p| {
//!     let data = p.after.read(Path::new("/a")).unwrap_or_default();
//!     assert!(p.outcome.is_err() || data == b"hello", "{}: acknowledged write lost", p.label);
//! });
//! assert!(points > 0);
//! ```

use etcdkit_fs::{Fault, Reboot, SimFs};

/// One explored point: the file system as a reboot left it.
pub struct Point<'a, O> {
    /// The rebooted file system to check.
    pub after: SimFs,
    /// The file system the faulted run used (e.g. for [`SimFs::crashed`]).
    pub faulted: &'a SimFs,
    /// What the faulted run returned.
    pub outcome: &'a O,
    /// `op N/TOTAL <faults> (<reboot>)`, for assertion messages.
    pub label: String,
}

/// A new simulated file system holding the directory `dir` (made 0700).
pub fn fs_with_dir(dir: &str) -> SimFs {
    use etcdkit_fs::Fs;
    let fs = SimFs::new();
    fs.create_dir_all(std::path::Path::new(dir), 0o700).expect("mkdir on a new SimFs");
    fs
}

/// Runs `run` on `fresh()` once, without faults: the number of file-system
/// operations it made (those `fresh` made itself not counted) and its outcome.
pub fn clean_run<O>(fresh: &dyn Fn() -> SimFs, run: impl FnOnce(&SimFs) -> O) -> (u64, O) {
    let fs = fresh();
    let base = fs.ops();
    let o = run(&fs);
    (fs.ops() - base, o)
}

/// For every operation `n` in `0..ops`: a new `fresh()` file system gets the
/// faults `plan(at)` gives, where `at` is the absolute operation number of
/// `n`; `run` runs on it; then `verify` sees the file system after each
/// reboot `reboots(n)` lists. Returns the number of points verified.
pub fn explore<O, R>(
    ops: u64,
    fresh: &dyn Fn() -> SimFs,
    plan: impl Fn(u64) -> Vec<Fault>,
    reboots: impl Fn(u64) -> R,
    mut run: impl FnMut(&SimFs) -> O,
    mut verify: impl FnMut(Point<'_, O>),
) -> u64
where
    R: IntoIterator<Item = (Reboot, &'static str)>,
{
    let mut points = 0;
    for n in 0..ops {
        let fs = fresh();
        let faults = plan(fs.ops() + n);
        for f in &faults {
            fs.inject(f.clone());
        }
        let outcome = run(&fs);
        for (mode, name) in reboots(n) {
            let label = format!("op {n}/{ops} {faults:?} ({name})");
            verify(Point { after: fs.reboot(mode), faulted: &fs, outcome: &outcome, label });
            points += 1;
        }
    }
    points
}

/// [`explore`] with a crash at every operation, checked after every kind of
/// reboot ([`Reboot::each`], seeded with `seed ^ n`); each faulted run must
/// have crashed.
pub fn explore_crashes<O>(
    ops: u64,
    fresh: &dyn Fn() -> SimFs,
    seed: u64,
    run: impl FnMut(&SimFs) -> O,
    mut verify: impl FnMut(Point<'_, O>),
) -> u64 {
    let plan = |at| vec![Fault::CrashAt(at)];
    explore(
        ops,
        fresh,
        plan,
        |n| Reboot::each(seed ^ n),
        run,
        |p| {
            assert!(p.faulted.crashed(), "{}: the planned crash did not happen", p.label);
            verify(p)
        },
    )
}

/// A fault plan for [`explore`]: the faults to inject for an operation.
pub type Plan = Box<dyn Fn(u64) -> Vec<Fault>>;

/// The plans of a short-write and failure exploration: a short write at the
/// operation, then for each of `crash_after` a failed operation followed by a
/// crash that many operations later (`None`: no crash).
pub fn short_write_or_failure(crash_after: &[Option<u64>]) -> Vec<Plan> {
    let mut plans: Vec<Plan> = vec![Box::new(|at| vec![Fault::ShortWriteAt(at)])];
    for &later in crash_after {
        plans.push(Box::new(move |at| {
            let mut f = vec![Fault::FailAt(at)];
            f.extend(later.map(|n| Fault::CrashAt(at + n)));
            f
        }));
    }
    plans
}

/// The two reboots that need no seed: only what was synced, and everything written.
pub fn synced_or_all(_: u64) -> [(Reboot, &'static str); 2] {
    [(Reboot::SyncedOnly, "synced"), (Reboot::Everything, "all")]
}

/// `full` as a crash could leave it torn at byte `cut`: truncated there, or
/// (`zero`, as a power loss loses whole sectors) zeroed from the next 512-byte
/// boundary on. Returns the effective cut and the bytes.
pub fn tear(full: &[u8], cut: u64, zero: bool) -> (u64, Vec<u8>) {
    let mut b = full.to_vec();
    let cut = if zero { cut.next_multiple_of(512).min(b.len() as u64) } else { cut };
    if zero {
        b[cut as usize..].fill(0);
    } else {
        b.truncate(cut as usize);
    }
    (cut, b)
}

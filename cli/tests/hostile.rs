//! Hostile input: a corpus of more than 1,000 hostile files made from the
//! fixtures (bit flips, truncations, zeroed and swapped pages, huge counts and
//! overflow values, branch pages pointing at themselves; WAL segments with
//! flipped, cut, zeroed or oversized records; damaged raft `.snap` files)
//! through every reading command of the `etcdkit` binary: each run ends in
//! bounded time with exit 0, or exit 1 and a one-line `Error: …` on stderr;
//! never a panic, a signal or a hang. A restore never leaves partial output,
//! and reading a db never changes it. Each run gets at most 1 GiB of address
//! space, so no allocation can follow a corrupt length field.
//!
//! `HOSTILE_SCALE` multiplies the number of mutations (default 1).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etcdkit_testkit::Rng;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/etcd-3.4")
}

fn scale() -> u64 {
    std::env::var("HOSTILE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// Mutations of a bbolt file with 4 KiB pages.
fn db_mutations(base: &[u8], r: &mut Rng, n: u64) -> Vec<(String, Vec<u8>)> {
    const PS: usize = 4096;
    let pages = base.len() / PS;
    let mut out = Vec::new();
    let put = |b: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        if at + bytes.len() <= b.len() {
            b[at..at + bytes.len()].copy_from_slice(bytes);
        }
    };
    for i in 0..n {
        let mut b = base.to_vec();
        let pg = r.below(pages as u64) as usize;
        let at = pg * PS;
        let what = match i % 9 {
            0 | 1 => {
                // Bit flips, mostly in page headers and element arrays.
                let off = at + if i % 2 == 0 { r.below(96) as usize } else { r.below(PS as u64) as usize };
                b[off] ^= 1 << r.below(8);
                format!("flip-{off}")
            }
            2 => {
                let l = r.below(base.len() as u64) as usize;
                b.truncate(l);
                format!("truncate-{l}")
            }
            3 => {
                b[at..at + PS].fill(0);
                format!("zero-page-{pg}")
            }
            4 => {
                let other = r.below(pages as u64) as usize * PS;
                let (x, y) = (b[at..at + PS].to_vec(), b[other..other + PS].to_vec());
                b[at..at + PS].copy_from_slice(&y);
                b[other..other + PS].copy_from_slice(&x);
                format!("swap-{pg}-{}", other / PS)
            }
            5 => {
                put(&mut b, at + 10, &0xffffu16.to_le_bytes());
                format!("huge-count-{pg}")
            }
            6 => {
                put(&mut b, at + 12, &0xffff_fff0u32.to_le_bytes());
                format!("huge-overflow-{pg}")
            }
            7 => {
                // The first element of a branch page (or any page) points at itself.
                put(&mut b, at + 16 + 8, &(pg as u64).to_le_bytes());
                format!("self-child-{pg}")
            }
            _ => {
                // An element with a huge position or size.
                let e = at + 16 + 16 * r.below(4) as usize;
                put(&mut b, e + r.below(3) as usize * 4, &0x7fff_fff0u32.to_le_bytes());
                format!("huge-element-{pg}")
            }
        };
        out.push((what, b));
    }
    out
}

/// Mutations of a WAL segment's used part (frames of 8-byte length + record).
fn wal_mutations(base: &[u8], r: &mut Rng, n: u64) -> Vec<(String, Vec<u8>)> {
    let used = base.len() - base.iter().rev().take_while(|&&x| x == 0).count();
    let mut out = Vec::new();
    for i in 0..n {
        let mut b = base.to_vec();
        let off = r.below(used as u64) as usize;
        let what = match i % 5 {
            0 | 1 => {
                b[off] ^= 1 << r.below(8);
                format!("flip-{off}")
            }
            2 => {
                b.truncate(off);
                format!("truncate-{off}")
            }
            3 => {
                let end = (off + 1 + r.below(600) as usize).min(b.len());
                b[off..end].fill(0);
                format!("zero-{off}-{end}")
            }
            _ => {
                // A huge length field at an 8-byte boundary.
                let at = off & !7;
                if at + 8 <= b.len() {
                    b[at..at + 8].copy_from_slice(&(0x00ff_ffff_ffff_fff0u64 | (r.below(2) << 63)).to_le_bytes());
                }
                format!("huge-len-{at}")
            }
        };
        out.push((what, b));
    }
    out
}

/// One command run and its checks.
struct Job {
    args: Vec<String>,
    what: String,
    /// A directory this run must not leave behind.
    no_leftover: Option<PathBuf>,
}

fn run(job: &Job) {
    // At most 1 GiB of address space: an allocation sized by a corrupt length
    // field fails (and the run with it) instead of passing unnoticed.
    let mut c = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_etcdkit"))
        .args(&job.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stdout on a thread so a large dump cannot block the child.
    let mut stdout = c.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut out);
        out
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = c.kill();
            panic!("{}: hung (no exit in 60 s)", job.what);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
    let out = reader.join().unwrap();
    assert!(!err.contains("panicked"), "{}: panic: {err}", job.what);
    let is_check = job.args[..2] == ["bolt", "check"];
    match status.code() {
        Some(0) => {}
        // `bolt check` reports the problems it found on stdout, one per line, and exits 1 (bbolt's check).
        Some(1) if is_check && err.is_empty() => assert!(!out.is_empty(), "{}: exit 1 without a report", job.what),
        Some(1) => {
            assert_eq!(err.trim_end().lines().count(), 1, "{}: want a one-line error, got {err:?}", job.what);
            assert!(err.starts_with("Error: "), "{}: {err}", job.what);
        }
        other => panic!("{}: exit {other:?} (signal?), stderr {err}", job.what),
    }
    if let Some(d) = &job.no_leftover
        && status.code() == Some(1)
    {
        assert!(!d.exists(), "{}: a failed restore left {}", job.what, d.display());
    }
    if let Some(d) = &job.no_leftover {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Runs the jobs on two threads.
fn run_all(jobs: Vec<Job>) {
    let queue = Mutex::new(jobs.into_iter());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().next();
                    let Some(job) = next else { break };
                    run(&job);
                }
            });
        }
    });
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn hostile_files_through_every_reading_command() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut files = 0u64;
    let mut jobs = Vec::new();

    // bbolt / snapshot files: every bolt reader, the snapshot readers, the
    // offline etcdctl readers on --snapshot, and restore.
    let mut dbs = Vec::new();
    for set in ["small", "auth", "cluster3", "leases"] {
        let p = fixtures().join(set).join("snapshot.db");
        if let Ok(b) = std::fs::read(&p) {
            dbs.push((set, b));
        }
    }
    assert!(!dbs.is_empty(), "fixture snapshots");
    let per_db = 800 * scale() / dbs.len() as u64;
    let mut written = Vec::new();
    for (set, base) in &dbs {
        for (i, (what, bytes)) in db_mutations(base, &mut r, per_db).into_iter().enumerate() {
            let p = tmp.path().join(format!("{set}-{i}.db"));
            std::fs::write(&p, &bytes).unwrap();
            written.push((p.clone(), bytes));
            files += 1;
            let f = p.to_str().unwrap().to_string();
            let what = format!("{set} {what}");
            let mut cmds: Vec<Vec<String>> = vec![
                strs(&["bolt", "check", &f]),
                strs(&["bolt", "dump", &f]),
                strs(&["bolt", "stats", &f]),
                strs(&["bolt", "pages", &f]),
                strs(&["bolt", "page", &f, &r.below(12).to_string()]),
                strs(&["bolt", "buckets", &f]),
                strs(&["bolt", "keys", &f, "key"]),
                strs(&["bolt", "get", &f, "meta", "consistent_index"]),
                strs(&["snapshot", "status", &f, "-w", "json"]),
                strs(&["snapshot", "verify", &f]),
                strs(&["snapshot", "inspect", &f]),
                strs(&["get", "--snapshot", &f, "", "--prefix", "-w", "json"]),
                strs(&["hashkv", "--snapshot", &f]),
            ];
            if i % 4 == 0 {
                let base_f = fixtures().join(set).join("snapshot.db");
                cmds.push(strs(&["snapshot", "diff", base_f.to_str().unwrap(), &f]));
            }
            if i % 4 == 1 {
                let dst = tmp.path().join(format!("{set}-{i}.compacted"));
                cmds.push(strs(&["bolt", "compact", "-o", dst.to_str().unwrap(), &f]));
            }
            for c in cmds {
                jobs.push(Job { what: format!("{} on {what}", c[..2].join(" ")), args: c, no_leftover: None });
            }
            let out = tmp.path().join(format!("{set}-{i}.etcd"));
            jobs.push(Job {
                args: strs(&["snapshot", "restore", &f, "--skip-hash-check", "--data-dir", out.to_str().unwrap()]),
                what: format!("snapshot restore on {what}"),
                no_leftover: Some(out),
            });
        }
    }

    // WAL directories: `wal dump` in both output forms.
    let wal_sets = ["small", "leases"];
    for set in wal_sets {
        let x = tmp.path().join(format!("x-{set}"));
        std::fs::create_dir_all(&x).unwrap();
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(fixtures().join(set).join("datadir.tar.gz"))
            .arg("-C")
            .arg(&x)
            .status()
            .unwrap();
        assert!(st.success());
        let wal_dir = x.join("datadir/member/wal");
        let name = std::fs::read_dir(&wal_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".wal"))
            .unwrap();
        let seg = std::fs::read(wal_dir.join(&name)).unwrap();
        // The used part and some zeros keep the files small.
        let used = seg.len() - seg.iter().rev().take_while(|&&b| b == 0).count();
        let base = &seg[..(used + 4096).min(seg.len())];
        for (i, (what, bytes)) in wal_mutations(base, &mut r, 150 * scale()).into_iter().enumerate() {
            let d = tmp.path().join(format!("wal-{set}-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(&name), bytes).unwrap();
            files += 1;
            let ds = d.to_str().unwrap();
            for form in ["simple", "json"] {
                jobs.push(Job {
                    args: strs(&["wal", "dump", ds, "-w", form]),
                    what: format!("wal dump -w {form} on {set} {what}"),
                    no_leftover: None,
                });
            }
        }
        std::fs::remove_dir_all(&x).unwrap();
    }

    // Whole data dirs with a damaged .snap file: the data-dir readers.
    let x = tmp.path().join("x-snap");
    std::fs::create_dir_all(&x).unwrap();
    let restored = fixtures().join("small").join("restored.tar.gz");
    let st = Command::new("tar").arg("-xzf").arg(&restored).arg("-C").arg(&x).status().unwrap();
    assert!(st.success());
    let snap_dir = walk_find(&x, ".snap").expect("a restored data dir has a .snap file");
    let snap = std::fs::read(&snap_dir).unwrap();
    for i in 0..40 * scale() {
        let mut b = snap.clone();
        let off = r.below(b.len() as u64) as usize;
        if i % 3 == 0 {
            b.truncate(off);
        } else {
            b[off] ^= 1 << r.below(8);
        }
        let d = tmp.path().join(format!("snapdir-{i}"));
        copy_dir(&x, &d);
        let rel = snap_dir.strip_prefix(&x).unwrap();
        std::fs::write(d.join(rel), &b).unwrap();
        files += 1;
        let data_dir = d.join(rel).parent().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
        let dd = data_dir.to_str().unwrap();
        for c in [strs(&["get", "--data-dir", dd, "", "--prefix"]), strs(&["member", "list", "--data-dir", dd])] {
            jobs.push(Job { what: format!("{} on .snap mutation {i}", c[0]), args: c, no_leftover: None });
        }
    }

    let runs = jobs.len();
    eprintln!("{files} hostile files, {runs} command runs");
    assert!(files >= 1000, "only {files} hostile files");
    run_all(jobs);
    // Reading never wrote to the files.
    for (p, bytes) in written {
        assert!(std::fs::read(&p).unwrap() == bytes, "{} changed by a reading command", p.display());
    }
}

fn walk_find(dir: &Path, suffix: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.is_dir() {
            if let Some(f) = walk_find(&p, suffix) {
                return Some(f);
            }
        } else if p.to_string_lossy().ends_with(suffix) {
            return Some(p);
        }
    }
    None
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

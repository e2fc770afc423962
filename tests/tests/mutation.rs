//! Every fixture db with bit flips and truncations at many offsets gives a
//! typed error or a valid result through every way the library reads a file:
//! never a panic, never a hang. Writers on damaged files fail cleanly too.
//! (The CLI's commands on damaged files: `cli/tests/hostile.rs`.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use etcdkit_storage::raw::{FREELIST_FLAG, META_FLAG, Meta, PageHeader, PageRef, freelist_ids};
use etcdkit_storage::{Bucket, Db, Options, Value, check};
use etcdkit_tests::{Rng, etcdkit, fixture, fixture_sets, set_kind};

/// Every how many mutations the `etcdkit bolt` commands run on the damaged
/// file too (a process each: the whole corpus would take minutes).
const CLI_SAMPLE: usize = 16;

/// The CLI's reading commands on `path`.
fn exercise_cli(path: &Path) {
    let p = path.to_str().unwrap();
    for args in [
        &["bolt", "check", p][..],
        &["bolt", "dump", "--sha", p],
        &["bolt", "dump", p],
        &["bolt", "pages", p],
        &["bolt", "stats", p],
        &["bolt", "page", p, "3"],
    ] {
        // An answer, problems found (`check`: on stdout, exit 1) or one error line; never a panic.
        let (_, _, err) = etcdkit(args, None);
        assert!(err.is_empty() || (err.starts_with("Error: ") && err.lines().count() == 1), "{args:?}: {err}");
    }
}

/// Reads every entry of `b`, nested buckets included.
fn walk(b: &Bucket<'_>) -> etcdkit_storage::Result<usize> {
    let mut bytes = 0;
    for e in b.entries() {
        let (k, v) = e?;
        bytes += k.len();
        match v {
            Value::Data(v) => bytes += v.len(),
            Value::Bucket(nested) => bytes += walk(&nested)?,
        }
    }
    Ok(bytes)
}

/// One page decoded as the raw page views allow (what `etcdkit bolt page` prints).
fn read_page(tx: &etcdkit_storage::Tx<'_>, id: u64) -> etcdkit_storage::Result<()> {
    let buf = tx.page_bytes(id)?;
    let h = PageHeader::decode(buf);
    let off = id * tx.page_size() as u64;
    if h.flags & META_FLAG != 0 {
        let _ = Meta::decode(buf);
    } else if h.flags & FREELIST_FLAG != 0 {
        freelist_ids(id, off, buf)?;
    } else {
        let p = PageRef::new(id, off, buf)?;
        for i in 0..p.count {
            if p.is_leaf() {
                p.leaf(i)?;
            } else {
                p.key(i)?;
            }
        }
    }
    Ok(())
}

/// Everything a reader does with `path` through the library (check, every
/// entry, the page map, bucket statistics, raw pages), and a small write on a
/// copy. Damage must give errors, never a panic or a hang.
fn exercise(path: &Path) {
    // The meta pages as raw bytes, as `bolt stats` reads them when the file
    // does not open.
    let bytes = std::fs::read(path).unwrap();
    for off in [0usize, 4096] {
        if let Some(page) = bytes.get(off..off + 80) {
            let (h, m) = (PageHeader::decode(page), Meta::decode(page));
            let _ = (h.type_name(), m.validate(off as u64 / 4096));
        }
    }
    if let Ok(db) = Db::open(path, Options { read_only: true, ..Default::default() })
        && let Ok(tx) = db.begin()
    {
        let _ = check::check(&tx);
        let _ = check::pages(&tx);
        if let Ok(buckets) = tx.buckets() {
            for (_, b) in buckets {
                let _ = walk(&b);
                let _ = check::bucket_stats(&b);
            }
        }
        for id in [0, 1, 2, 3, 5, 1000] {
            let _ = read_page(&tx, id);
        }
    }
    let copy = path.with_extension("rw");
    std::fs::copy(path, &copy).unwrap();
    if let Ok(db) = Db::open(&copy, Options { no_sync: true, ..Default::default() })
        && let Ok(mut tx) = db.begin_rw()
    {
        let r = tx.create_bucket_if_not_exists(b"key").and_then(|mut b| {
            b.put(b"\x00\x00\x00\x00\x00\x00\x00\x01_\x00\x00\x00\x00\x00\x00\x00\x00", b"v")?;
            b.delete(b"zz")
        });
        if r.is_ok() {
            let _ = tx.commit();
        }
    }
}

/// Runs `exercise` on a mutated copy with a watchdog.
fn try_mutation(base: &[u8], dir: &Path, what: String, mutate: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = base.to_vec();
    mutate(&mut bytes);
    let p: PathBuf = dir.join("m.db");
    std::fs::write(&p, &bytes).unwrap();
    static MUTATIONS: AtomicUsize = AtomicUsize::new(0);
    let with_cli = MUTATIONS.fetch_add(1, Ordering::Relaxed).is_multiple_of(CLI_SAMPLE);
    let (tx, rx) = mpsc::channel();
    let p2 = p.clone();
    let h = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| {
            exercise(&p2);
            if with_cli {
                exercise_cli(&p2);
            }
        });
        let _ = tx.send(r.is_ok());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(true) => {
            h.join().unwrap();
        }
        Ok(false) => panic!("{what}: a command panicked"),
        Err(_) => panic!("{what}: a command hung (no answer in 30 s)"),
    }
}

fn mutate_set(set: &str, flips_per_page: usize, max_pages: u64) -> usize {
    let base = std::fs::read(fixture(set, "snapshot.db").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = 4096u64;
    let pages = base.len() as u64 / ps;
    let mut r = Rng::new(base.len() as u64);
    let mut n = 0;
    // Bit flips: page headers and element areas (where damage matters most),
    // and anywhere in the page.
    let step = (pages / max_pages).max(1);
    for pg in (0..pages).step_by(step as usize) {
        for i in 0..flips_per_page {
            let within = if i % 2 == 0 { r.below(96) } else { r.below(ps) };
            let off = (pg * ps + within) as usize;
            let bit = r.below(8) as u8;
            try_mutation(&base, dir.path(), format!("{set}: flip bit {bit} at {off}"), |b| b[off] ^= 1 << bit);
            n += 1;
        }
    }
    // Whole-word damage: huge counts, overflow values, and page ids.
    for pg in (2..pages).step_by(step as usize) {
        let off = (pg * ps) as usize;
        for (what, at, val) in [("count", 10, 0xffffu64), ("overflow", 12, 0xffff_ffff), ("id", 0, pg + 1)] {
            try_mutation(&base, dir.path(), format!("{set}: page {pg} {what}"), |b| {
                let w = if at == 0 {
                    8
                } else if at == 10 {
                    2
                } else {
                    4
                };
                b[off + at..off + at + w].copy_from_slice(&val.to_le_bytes()[..w]);
            });
            n += 1;
        }
        // A branch element pointing at its own page (a cycle) or at a meta page.
        try_mutation(&base, dir.path(), format!("{set}: page {pg} first child -> self"), |b| {
            b[off + 16 + 8..off + 16 + 16].copy_from_slice(&pg.to_le_bytes());
        });
        n += 1;
    }
    // Zeroed and swapped pages.
    for pg in (0..pages).step_by((step * 3) as usize) {
        try_mutation(&base, dir.path(), format!("{set}: zero page {pg}"), |b| {
            b[(pg * ps) as usize..((pg + 1) * ps) as usize].fill(0);
        });
        let other = r.below(pages);
        try_mutation(&base, dir.path(), format!("{set}: swap pages {pg} {other}"), |b| {
            let (a, c) = ((pg * ps) as usize, (other * ps) as usize);
            let pa = b[a..a + ps as usize].to_vec();
            let pc = b[c..c + ps as usize].to_vec();
            b[a..a + ps as usize].copy_from_slice(&pc);
            b[c..c + ps as usize].copy_from_slice(&pa);
        });
        n += 2;
    }
    // Truncations.
    let mut lens = vec![0, 1, 16, 79, 80, 4095, 4096, 4097, 8191, 8192, 8200, base.len() - 33, base.len() - 1];
    for _ in 0..20 {
        lens.push(r.below(base.len() as u64) as usize);
    }
    for l in lens {
        try_mutation(&base, dir.path(), format!("{set}: truncate to {l}"), |b| b.truncate(l));
        n += 1;
    }
    n
}

#[test]
fn mutated_fixture_dbs_never_panic_or_hang() {
    let mut total = 0;
    for set in fixture_sets() {
        let (flips, max_pages) = if set_kind(&set) == "k8s-like" { (2, 40) } else { (6, 200) };
        total += mutate_set(&set, flips, max_pages);
    }
    eprintln!("{total} mutated files exercised");
    assert!(total >= 1000, "only {total} mutations");
}

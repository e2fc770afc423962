//! `etcdkit bolt bench`: the Go `boltbench` anchor's workload, on etcdkit.
//!
//! Keys are `key_size` bytes with a big-endian u64 in front (sequential or
//! random); every value is `value_size` zero bytes; writes go in transactions
//! of `batch_size` keys; reads are a cursor scan (`seq`) or point gets in
//! random order (`rnd`). The JSON fields are the anchor's.

use std::path::PathBuf;
use std::time::Instant;

use etcdkit_fs::Rng;
use etcdkit_storage::{Db, Options};

use crate::{CliError, Out, WriteOut};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    #[arg(long, default_value_t = 32)]
    value_size: usize,
    #[arg(long, default_value = "seq")]
    write_mode: String,
    #[arg(long, default_value = "seq")]
    read_mode: String,
    #[arg(long)]
    no_sync: bool,
    #[arg(long, default_value_t = 0.5)]
    fill_percent: f64,
    /// Keep the freelist unsynced (etcd's setting). The Go anchor uses bbolt's default (synced).
    #[arg(long)]
    no_freelist_sync: bool,
    /// Directory for the db file (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn run(out: &mut Out, a: BenchArgs, w: WriteOut) -> Result<(), CliError> {
    if a.key_size < 8 {
        return Err(CliError::msg("key-size must be >= 8"));
    }
    if a.batch_size == 0 {
        return Err(CliError::msg("batch-size must be >= 1"));
    }
    let rnd_write = match a.write_mode.as_str() {
        "seq" => false,
        "rnd" => true,
        m => return Err(CliError::msg(format!("unknown write-mode {m:?} (seq|rnd)"))),
    };
    let rnd_read = match a.read_mode.as_str() {
        "seq" => false,
        "rnd" => true,
        m => return Err(CliError::msg(format!("unknown read-mode {m:?} (seq|rnd)"))),
    };
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("etcdkit-bench-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            tmp.clone()
        }
    };
    let path = dir.join("bench.db");
    let _ = std::fs::remove_file(&path);
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let keys: Vec<Vec<u8>> = (0..a.count)
        .map(|i| {
            let mut k = vec![0u8; a.key_size];
            let n = if rnd_write { rng.next_u64() } else { i as u64 };
            k[..8].copy_from_slice(&n.to_be_bytes());
            k
        })
        .collect();
    let val = vec![0u8; a.value_size];
    let db =
        Db::open(&path, Options { no_sync: a.no_sync, no_freelist_sync: a.no_freelist_sync, ..Default::default() })?;
    let start = Instant::now();
    for chunk in keys.chunks(a.batch_size) {
        let mut tx = db.begin_rw()?;
        let mut b = tx.create_bucket_if_not_exists(b"bench")?;
        b.set_fill_percent(a.fill_percent);
        for k in chunk {
            b.put(k, &val)?;
        }
        tx.commit()?;
    }
    let write_secs = start.elapsed().as_secs_f64();
    // The read order is drawn before the clock starts, and the keys are laid
    // out in that order so the loop measures the lookups, not the harness.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let probes: Vec<u8> = order.iter().flat_map(|&i| keys[i].iter().copied()).collect();
    let start = Instant::now();
    let mut found = 0usize;
    {
        let tx = db.begin()?;
        let b = tx.bucket(b"bench")?.ok_or_else(|| CliError::msg("bench bucket missing"))?;
        if rnd_read {
            for k in probes.chunks_exact(a.key_size) {
                if b.get(k)?.is_some() {
                    found += 1;
                }
            }
        } else {
            for e in b.iter() {
                e?;
                found += 1;
            }
        }
    }
    let read_secs = start.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&path)?.len();
    drop(db);
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let j = serde_json::json!({
        "engine": "etcdkit", "count": a.count, "batch_size": a.batch_size, "key_size": a.key_size,
        "value_size": a.value_size, "write_mode": a.write_mode, "read_mode": a.read_mode, "no_sync": a.no_sync,
        "write_ops_per_sec": a.count as f64 / write_secs, "read_ops_per_sec": found as f64 / read_secs,
        "write_seconds": write_secs, "read_seconds": read_secs, "keys_read": found, "file_bytes": file_bytes,
    });
    match w {
        WriteOut::Json => writeln!(out, "{j}")?,
        _ => {
            writeln!(out, "write: {:.0} ops/sec ({:.3}s)", a.count as f64 / write_secs, write_secs)?;
            writeln!(out, "read:  {:.0} ops/sec ({:.3}s, {found} keys)", found as f64 / read_secs, read_secs)?;
            writeln!(out, "file:  {file_bytes} bytes")?;
        }
    }
    Ok(())
}

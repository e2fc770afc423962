//! `etcdkit bolt …`: bbolt-style commands on one database file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use etcdkit_storage::check::{self, bucket_stats};
use etcdkit_storage::raw::{BucketHeader, FREELIST_FLAG, META_FLAG, Meta, PGID_NO_FREELIST, PageHeader, PageRef};
use etcdkit_storage::{Bucket, BucketMut, Db, FreelistType, Options, TxMut, Value};
use sha2::{Digest, Sha256};

use crate::text::{Op, esc, esc_path, parse_line};
use crate::{CliError, Out};

/// Opens a file read-only, as every reading command does (never writes to it).
pub fn open_ro(path: &Path) -> Result<Db, CliError> {
    if !path.exists() {
        return Err(CliError::msg(format!("{}: no such file", path.display())));
    }
    Ok(Db::open(
        path,
        Options { read_only: true, lock_timeout: Some(std::time::Duration::from_secs(5)), ..Default::default() },
    )?)
}

pub fn cmd_check(out: &mut Out, file: &Path) -> Result<(), CliError> {
    let db = open_ro(file)?;
    let tx = db.begin()?;
    let problems = check::check(&tx);
    if problems.is_empty() {
        writeln!(out, "OK")?;
        return Ok(());
    }
    for p in &problems {
        writeln!(out, "{p}")?;
    }
    Err(CliError::Silent(1))
}

fn dump_bucket(out: &mut Out, path: &mut Vec<Vec<u8>>, b: Bucket<'_>, sha: bool) -> Result<(), CliError> {
    let p = esc_path(path);
    writeln!(out, "bucket {p} seq={}", b.sequence())?;
    for e in b.entries() {
        let (k, v) = e?;
        match v {
            Value::Bucket(sub) => {
                path.push(k.to_vec());
                dump_bucket(out, path, sub, sha)?;
                path.pop();
            }
            Value::Data(v) if sha => {
                let sum = Sha256::digest(v);
                writeln!(out, "kv {p} {} len={} sha256={}", esc(k), v.len(), hex(&sum))?;
            }
            Value::Data(v) => writeln!(out, "kv {p} {} {}", esc(k), esc(v))?,
        }
    }
    Ok(())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn cmd_dump(out: &mut Out, file: &Path, sha: bool) -> Result<(), CliError> {
    let db = open_ro(file)?;
    let tx = db.begin()?;
    dump_tx(out, &tx, sha)
}

/// Writes the dump text of everything `tx` sees.
pub fn dump_tx(out: &mut Out, tx: &etcdkit_storage::Tx<'_>, sha: bool) -> Result<(), CliError> {
    for (name, b) in tx.buckets()? {
        dump_bucket(out, &mut vec![name.to_vec()], b, sha)?;
    }
    Ok(())
}

/// The dump text of a database, as a string.
pub fn dump_string(db: &Db, sha: bool) -> Result<String, CliError> {
    let mut buf = Vec::new();
    dump_tx(&mut buf, &db.begin()?, sha)?;
    String::from_utf8(buf).map_err(|e| CliError::msg(e.to_string()))
}

fn bucket_at<'t>(tx: &'t mut TxMut<'_>, path: &[Vec<u8>], create: bool, fill: f64) -> Result<BucketMut<'t>, CliError> {
    let missing = |i: usize| CliError::msg(format!("bucket {} not found", esc_path(&path[..=i])));
    let mut b = if create {
        tx.create_bucket_if_not_exists(&path[0])?
    } else {
        tx.bucket(&path[0])?.ok_or_else(|| missing(0))?
    };
    for (i, name) in path.iter().enumerate().skip(1) {
        b = if create { b.into_sub_create(name)? } else { b.into_sub(name)?.ok_or_else(|| missing(i))? };
    }
    b.set_fill_percent(fill);
    Ok(b)
}

/// Options of `bolt write`.
pub struct WriteOpts {
    pub page_size: usize,
    pub freelist: FreelistType,
    pub no_freelist_sync: bool,
    pub fill: f64,
}

pub fn cmd_write(file: &Path, spec: &str, o: WriteOpts) -> Result<(), CliError> {
    let input: Box<dyn Read> = if spec == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(spec).map_err(|e| CliError::msg(format!("{spec}: {e}")))?)
    };
    let db = Db::open(
        file,
        Options {
            page_size: o.page_size,
            freelist_type: o.freelist,
            no_freelist_sync: o.no_freelist_sync,
            ..Default::default()
        },
    )?;
    let mut tx = db.begin_rw()?;
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let line = line?;
        let at = |e: String| CliError::msg(format!("{spec}:{}: {e}", n + 1));
        let Some(op) = parse_line(&line).map_err(at)? else {
            continue;
        };
        let r: Result<(), CliError> = match op {
            Op::Commit => {
                tx.commit()?;
                tx = db.begin_rw()?;
                Ok(())
            }
            Op::Bucket { path, seq } => bucket_at(&mut tx, &path, true, o.fill)
                .and_then(|mut b| seq.map_or(Ok(()), |s| b.set_sequence(s).map_err(Into::into))),
            Op::Put { path, key, value } => {
                bucket_at(&mut tx, &path, true, o.fill).and_then(|mut b| b.put(&key, &value).map_err(Into::into))
            }
            Op::Del { path, key } => {
                bucket_at(&mut tx, &path, false, o.fill).and_then(|mut b| b.delete(&key).map_err(Into::into))
            }
            Op::DelBucket { path } => {
                if path.len() == 1 {
                    tx.delete_bucket(&path[0]).map_err(Into::into)
                } else {
                    let (last, parent) = path.split_last().unwrap();
                    bucket_at(&mut tx, parent, false, o.fill)
                        .and_then(|mut b| b.delete_bucket(last).map_err(Into::into))
                }
            }
        };
        r.map_err(|e| at(e.to_string()))?;
    }
    tx.commit()?;
    Ok(())
}

fn read_raw_meta(f: &File, off: u64) -> Option<(PageHeader, Meta)> {
    let mut buf = [0u8; 80];
    f.read_exact_at(&mut buf, off).ok()?;
    Some((PageHeader::decode(&buf), Meta::decode(&buf)))
}

pub fn cmd_stats(out: &mut Out, file: &Path) -> Result<(), CliError> {
    let f = File::open(file).map_err(|e| CliError::msg(format!("{}: {e}", file.display())))?;
    let size = f.metadata()?.len();
    writeln!(out, "file: {}\nfile_size: {size}", file.display())?;
    let mut metas = Vec::new();
    if let Some(m0) = read_raw_meta(&f, 0) {
        let ps = m0.1.page_size as u64;
        metas.push(m0);
        if m0.1.magic == etcdkit_storage::raw::MAGIC
            && ps >= 512
            && let Some(m1) = read_raw_meta(&f, ps)
        {
            metas.push(m1);
        }
    }
    for (i, (h, m)) in metas.iter().enumerate() {
        let fl = if m.freelist == PGID_NO_FREELIST {
            "none(0xffffffffffffffff)".to_string()
        } else {
            m.freelist.to_string()
        };
        writeln!(
            out,
            "meta{i}: page_id={} page_flags=0x{:02x} magic=0x{:08x} version={} page_size={} flags=0x{:x} root={} root_sequence={} freelist={fl} hwm_pgid={} txid={} checksum=0x{:016x} checksum_ok={}",
            h.id,
            h.flags,
            m.magic,
            m.version,
            m.page_size,
            m.flags,
            m.root,
            m.root_sequence,
            m.pgid,
            m.txid,
            m.checksum,
            m.checksum == m.sum64()
        )?;
    }
    let db = open_ro(file)?;
    let tx = db.begin()?;
    let problems = check::check(&tx);
    let meta = tx.meta();
    writeln!(out, "page_size: {}", tx.page_size())?;
    writeln!(out, "txid: {}", tx.id())?;
    writeln!(out, "tx_size: {}", tx.size())?;
    writeln!(out, "hwm_pgid: {}", meta.pgid)?;
    writeln!(out, "trailing_bytes: {}", size as i64 - tx.size() as i64)?;
    writeln!(out, "root_pgid: {}", meta.root)?;
    if meta.freelist == PGID_NO_FREELIST {
        writeln!(out, "freelist_synced: false")?;
    } else {
        writeln!(out, "freelist_synced: true\nfreelist_pgid: {}", meta.freelist)?;
        let mut buf = [0u8; 16];
        f.read_exact_at(&mut buf, meta.freelist * tx.page_size() as u64)?;
        let h = PageHeader::decode(&buf);
        writeln!(out, "freelist_page: type={} count={} overflow={}", h.type_name(), h.count, h.overflow)?;
    }
    let free = check::pages(&tx).map(|p| p.iter().filter(|p| p.kind == "free").count()).unwrap_or(0);
    writeln!(out, "free_pages: {free}")?;
    writeln!(out, "check_errors: {}", problems.len())?;
    let buckets = tx.buckets()?;
    writeln!(out, "buckets: {}", buckets.len())?;
    for (name, b) in buckets {
        let h = BucketHeader { root: b.root_page(), sequence: b.sequence() };
        let s = bucket_stats(&b)?;
        writeln!(
            out,
            "bucket {} root={} seq={} keys={} depth={} branch_pages={} branch_overflow={} leaf_pages={} leaf_overflow={} buckets={} inline_buckets={} leaf_inuse={} branch_inuse={}",
            esc(name),
            h.root,
            h.sequence,
            s.key_n,
            s.depth,
            s.branch_page_n,
            s.branch_overflow_n,
            s.leaf_page_n,
            s.leaf_overflow_n,
            s.bucket_n,
            s.inline_bucket_n,
            s.leaf_inuse,
            s.branch_inuse
        )?;
    }
    if !problems.is_empty() {
        return Err(CliError::msg(format!("check reported {} problem(s); run etcdkit bolt check", problems.len())));
    }
    Ok(())
}

pub fn cmd_pages(out: &mut Out, file: &Path) -> Result<(), CliError> {
    let db = open_ro(file)?;
    let tx = db.begin()?;
    for p in check::pages(&tx)? {
        if p.kind == "free" {
            writeln!(out, "page {} free", p.id)?;
        } else {
            writeln!(out, "page {} {} count={} overflow={}", p.id, p.kind, p.count, p.overflow)?;
        }
    }
    Ok(())
}

pub fn cmd_page(out: &mut Out, file: &Path, id: u64) -> Result<(), CliError> {
    let db = open_ro(file)?;
    let tx = db.begin()?;
    let buf = tx.page_bytes(id)?;
    let h = PageHeader::decode(buf);
    writeln!(out, "page {id} {} count={} overflow={} header_id={}", h.type_name(), h.count, h.overflow, h.id)?;
    if h.flags & META_FLAG != 0 {
        let m = Meta::decode(buf);
        writeln!(
            out,
            "magic=0x{:08x} version={} page_size={} root={} freelist={} hwm_pgid={} txid={} checksum=0x{:016x}",
            m.magic, m.version, m.page_size, m.root, m.freelist as i64, m.pgid, m.txid, m.checksum
        )?;
    } else if h.flags & FREELIST_FLAG != 0 {
        let ids = etcdkit_storage::raw::freelist_ids(id, id * tx.page_size() as u64, buf)?;
        writeln!(out, "free ids ({}): {:?}", ids.len(), ids)?;
    } else {
        let p = PageRef::new(id, id * tx.page_size() as u64, buf)?;
        for i in 0..p.count {
            if p.is_leaf() {
                let e = p.leaf(i)?;
                let v = if e.is_bucket() {
                    let bh = BucketHeader::decode(e.value).unwrap_or_default();
                    format!("bucket root={} seq={}", bh.root, bh.sequence)
                } else if e.value.len() > 64 {
                    format!("{}… len={}", esc(&e.value[..64]), e.value.len())
                } else {
                    esc(e.value)
                };
                writeln!(out, "  [{i}] {} {v}", esc(e.key))?;
            } else {
                writeln!(out, "  [{i}] {} -> page {}", esc(p.key(i)?), p.child(i))?;
            }
        }
    }
    Ok(())
}

pub fn cmd_buckets(out: &mut Out, file: &Path) -> Result<(), CliError> {
    let db = open_ro(file)?;
    let tx = db.begin()?;
    for name in tx.bucket_names()? {
        out.write_all(name)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn find_bucket<'a>(tx: &'a etcdkit_storage::Tx<'_>, path: &[String]) -> Result<Bucket<'a>, CliError> {
    let mut b = tx.root();
    for (i, name) in path.iter().enumerate() {
        b = b
            .bucket(name.as_bytes())?
            .ok_or_else(|| CliError::msg(format!("bucket not found: {}", path[..=i].join("/"))))?;
    }
    Ok(b)
}

pub fn cmd_keys(out: &mut Out, file: &Path, path: &[String]) -> Result<(), CliError> {
    let db = open_ro(file)?;
    let tx = db.begin()?;
    let b = find_bucket(&tx, path)?;
    for e in b.iter() {
        let (k, _) = e?;
        out.write_all(k)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

pub fn cmd_get(out: &mut Out, file: &Path, args: &[String]) -> Result<(), CliError> {
    let (key, path) = args.split_last().ok_or_else(|| CliError::msg("get: want BUCKET… KEY"))?;
    let db = open_ro(file)?;
    let tx = db.begin()?;
    let b = find_bucket(&tx, path)?;
    let v = b.get(key.as_bytes())?.ok_or_else(|| CliError::msg(format!("key not found: {key}")))?;
    out.write_all(v)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub fn cmd_compact(out: &mut Out, src: &Path, dst: &PathBuf, tx_max_size: u64) -> Result<(), CliError> {
    if dst.exists() {
        return Err(CliError::msg(format!("{}: already exists", dst.display())));
    }
    let sdb = open_ro(src)?;
    let tmp = dst.with_extension("compact.tmp");
    let _ = std::fs::remove_file(&tmp);
    let r = (|| -> Result<(), CliError> {
        let ddb = Db::open(&tmp, Options::default())?;
        etcdkit_storage::compact::compact(&ddb, &sdb, tx_max_size)?;
        Ok(())
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dst)?;
    let a = std::fs::metadata(src)?.len();
    let b = std::fs::metadata(dst)?.len();
    writeln!(out, "{a} -> {b} bytes (gain={:.2}%)", 100.0 * (a as f64 - b as f64) / a.max(1) as f64)?;
    Ok(())
}

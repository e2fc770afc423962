//! `etcdkit snapshot …`: etcdctl/etcdutl's snapshot commands.

use std::path::Path;

use etcdkit_proto::gojson::Obj;
use etcdkit_schema::StorageVersion;
use etcdkit_snapshot::inspect::{Change, KeySpace, Live, diff};
use etcdkit_snapshot::restore::RestoreConfig;
use etcdkit_snapshot::verify::Trailer;
use etcdkit_snapshot::{Status, human_bytes};
use etcdkit_storage::{Db, Options};

use crate::text::esc;
use crate::{CliError, Out, WriteOut};

impl From<etcdkit_snapshot::Error> for CliError {
    fn from(e: etcdkit_snapshot::Error) -> Self {
        CliError::Msg(e.to_string())
    }
}

/// An ASCII table as etcdctl's tablewriter draws it: headers centred (spare
/// space on the right), cells right-aligned, one space of padding.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| rows.iter().map(|r| r[i].len()).chain([h.len()]).max().unwrap())
        .collect();
    let line: String = widths.iter().map(|w| format!("+{}", "-".repeat(w + 2))).collect::<String>() + "+\n";
    let mut s = line.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let gap = w - h.len();
        s += &format!("| {}{}{} ", " ".repeat(gap / 2), h, " ".repeat(gap - gap / 2));
    }
    s += "|\n";
    s += &line;
    for r in rows {
        for (c, w) in r.iter().zip(&widths) {
            s += &format!("| {c:>w$} ");
        }
        s += "|\n";
    }
    s + &line
}

/// The status as etcdctl 3.4 / etcdutl 3.5 print it, or, for a 3.6 file,
/// as etcdutl 3.6 prints it (a `version` field last).
pub fn print_status(out: &mut Out, st: &Status, w: WriteOut) -> Result<(), CliError> {
    let v36 = st.storage_version.is_some();
    let version = st.version_text();
    let mut row =
        vec![format!("{:x}", st.hash), st.revision.to_string(), st.total_key.to_string(), human_bytes(st.total_size)];
    let mut header = vec!["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
    if v36 {
        row.push(version.clone());
        header.push("VERSION");
    }
    match w {
        WriteOut::Simple => writeln!(out, "{}", row.join(", "))?,
        WriteOut::Json => {
            write!(
                out,
                "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}",
                st.hash, st.revision, st.total_key, st.total_size
            )?;
            if v36 {
                write!(out, ",\"version\":{}", serde_json::Value::from(version.as_str()))?;
            }
            writeln!(out, "}}")?
        }
        WriteOut::Table => write!(out, "{}", table(&header, &[row]))?,
        WriteOut::Fields => {
            writeln!(
                out,
                "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}",
                st.hash, st.revision, st.total_key, st.total_size
            )?;
            if v36 {
                writeln!(out, "\"Version\" : {version}")?;
            }
        }
    }
    Ok(())
}

pub fn cmd_status(out: &mut Out, file: &Path, w: WriteOut) -> Result<(), CliError> {
    let st = etcdkit_snapshot::status(&etcdkit_fs::real(), file)?;
    print_status(out, &st, w)
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
pub struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    pub fn new(what: &str) -> Bar {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(what.to_string());
        Bar(Some(pb))
    }

    /// The callback the library calls.
    pub fn update(&self, done: u64, total: u64) {
        if let Some(pb) = &self.0 {
            pb.set_length(total);
            pb.set_position(done);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

pub fn cmd_save(out: &mut Out, file: &Path, data_dir: &Path) -> Result<(), CliError> {
    let layout = etcdkit_schema::DataDir::new(data_dir);
    if !layout.has_db(&etcdkit_fs::RealFs) {
        return Err(CliError::msg(format!("{}: not an etcd data dir (no member/snap/db)", data_dir.display())));
    }
    let db = Db::open(layout.db(), Options { read_only: true, ..Default::default() })?;
    let bar = Bar::new("save");
    etcdkit_snapshot::save_with_progress(&db, file, &mut |d, t| bar.update(d, t))?;
    drop(bar);
    writeln!(out, "Snapshot saved at {}", file.display())?;
    Ok(())
}

pub fn cmd_restore(out: &mut Out, file: &Path, cfg: &RestoreConfig, w: WriteOut) -> Result<(), CliError> {
    let bar = Bar::new("restore");
    let r = etcdkit_snapshot::restore::restore(file, cfg, &mut |d, t| bar.update(d, t))?;
    drop(bar);
    match w {
        WriteOut::Json => {
            let members: Vec<String> = r
                .members
                .iter()
                .map(|m| {
                    Obj::new()
                        .raw("ID", m.id)
                        .str("name", &m.name)
                        .raw("peerURLs", serde_json::to_string(&m.peer_urls).expect("strings serialize"))
                        .end()
                })
                .collect();
            let line = Obj::new()
                .str("data_dir", &r.data_dir.display().to_string())
                .raw("member_id", r.member_id)
                .raw("cluster_id", r.cluster_id)
                .raw("members", format!("[{}]", members.join(",")))
                .raw("db_size", r.db_size)
                .end();
            writeln!(out, "{line}")?;
        }
        _ => writeln!(
            out,
            "Restored {} to {}: member {:x} ({}) of cluster {:x}, {} member(s)",
            file.display(),
            r.data_dir.display(),
            r.member_id,
            cfg.name,
            r.cluster_id,
            r.members.len()
        )?,
    }
    Ok(())
}

fn problems_line(n: usize) -> String {
    if n == 1 { "1 problem".into() } else { format!("{n} problems") }
}

pub fn cmd_verify(out: &mut Out, file: &Path, w: WriteOut) -> Result<(), CliError> {
    let bar = Bar::new("verify");
    let r = etcdkit_snapshot::verify::verify(&etcdkit_fs::real(), file, &mut |d, t| bar.update(d, t))?;
    drop(bar);
    let trailer = match &r.trailer {
        Trailer::Ok => "ok".to_string(),
        Trailer::Absent => "absent".to_string(),
        Trailer::Mismatch { expected, got } => format!("mismatch: expected sha256 {expected}, got {got}"),
        Trailer::Torn { extra } => format!("torn: {extra} bytes after the pages, not a 32-byte sha256"),
    };
    match w {
        WriteOut::Json => {
            let list = |v: &[String]| serde_json::to_string(v).expect("strings serialize");
            let st = &r.status;
            let line = Obj::new()
                .raw("ok", r.ok())
                .raw(
                    "status",
                    Obj::new()
                        .raw("hash", st.hash)
                        .raw("revision", st.revision)
                        .raw("totalKey", st.total_key)
                        .raw("totalSize", st.total_size)
                        .end(),
                )
                .str("trailer", &trailer)
                .raw("structure", list(&r.structure))
                .raw("schema", list(&r.schema))
                .raw("schema_problems", r.schema_count)
                .raw("revisions", r.revisions)
                .raw("live_keys", r.live_keys)
                .raw("compacted", r.compacted.map_or("null".into(), |c| c.to_string()))
                .raw("consistent_index", r.consistent_index.map_or("null".into(), |c| c.to_string()))
                .raw("leases", r.leases)
                .raw("members", r.members)
                .end();
            writeln!(out, "{line}")?;
        }
        _ => {
            if r.structure.is_empty() {
                writeln!(out, "bbolt structure: OK ({} pages of {} bytes)", r.pages, r.page_size)?;
            } else {
                writeln!(out, "bbolt structure: {}", problems_line(r.structure.len()))?;
                for p in &r.structure {
                    writeln!(out, "  {p}")?;
                }
            }
            let mut facts = format!("{} revisions, {} live keys", r.revisions, r.live_keys);
            if let Some(c) = r.compacted {
                facts += &format!(", compacted at {c}");
            }
            if let Some(ci) = r.consistent_index {
                facts += &format!(", consistent index {ci}");
            }
            facts += &format!(", {} leases, {} members", r.leases, r.members);
            if r.schema_count == 0 {
                writeln!(out, "etcd schema: OK ({facts})")?;
            } else {
                writeln!(out, "etcd schema: {} ({facts})", problems_line(r.schema_count))?;
                for p in &r.schema {
                    writeln!(out, "  {p}")?;
                }
                if r.schema_count > r.schema.len() {
                    writeln!(out, "  … and {} more", r.schema_count - r.schema.len())?;
                }
            }
            writeln!(out, "sha256 trailer: {}", if trailer == "ok" { "OK".to_string() } else { trailer.clone() })?;
            write!(out, "status: ")?;
            print_status(out, &r.status, WriteOut::Simple)?;
        }
    }
    if r.ok() {
        Ok(())
    } else {
        let mut what = Vec::new();
        if !r.structure.is_empty() {
            what.push(format!("bbolt structure: {}", problems_line(r.structure.len())));
        }
        if r.schema_count > 0 {
            what.push(format!("etcd schema: {}", problems_line(r.schema_count)));
        }
        if let Trailer::Mismatch { .. } | Trailer::Torn { .. } = r.trailer {
            what.push(format!("sha256 trailer {trailer}"));
        }
        Err(CliError::msg(format!("{}: verify failed: {}", file.display(), what.join("; "))))
    }
}

pub fn cmd_inspect(out: &mut Out, file: &Path) -> Result<(), CliError> {
    etcdkit_snapshot::inspect::inspect(&etcdkit_fs::real(), file, out)?;
    Ok(())
}

pub fn cmd_diff(out: &mut Out, a: &Path, b: &Path, w: WriteOut) -> Result<(), CliError> {
    let ka = KeySpace::load(&etcdkit_fs::real(), a)?;
    let kb = KeySpace::load(&etcdkit_fs::real(), b)?;
    let changes = diff(&ka, &kb);
    if w == WriteOut::Json {
        let live = |l: &Live| {
            Obj::new()
                .raw("create_revision", l.create_revision)
                .raw("mod_revision", l.mod_revision)
                .raw("version", l.version)
                .raw("lease", l.lease)
                .raw("value_len", l.value_len)
                .str("value_sha256", &crate::bolt::hex(&l.value_sha256))
                .end()
        };
        let (mut added, mut changed, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
        for c in &changes {
            match c {
                Change::Added { key, new } => added.push(Obj::new().bytes("key", key).raw("new", live(new)).end()),
                Change::Changed { key, old, new } => {
                    changed.push(Obj::new().bytes("key", key).raw("old", live(old)).raw("new", live(new)).end())
                }
                Change::Deleted { key, old, deleted_at } => deleted.push(
                    Obj::new()
                        .bytes("key", key)
                        .raw("old", live(old))
                        .raw("deleted_revision", deleted_at.map_or("null".into(), |r| r.to_string()))
                        .end(),
                ),
            }
        }
        let line = Obj::new()
            .raw("revision_a", ka.revision)
            .raw("revision_b", kb.revision)
            .raw("added", format!("[{}]", added.join(",")))
            .raw("changed", format!("[{}]", changed.join(",")))
            .raw("deleted", format!("[{}]", deleted.join(",")))
            .end();
        writeln!(out, "{line}")?;
        return Ok(());
    }
    for c in &changes {
        match c {
            Change::Added { key, new } => writeln!(
                out,
                "+ {} rev={} (created {}, version {}, {} bytes)",
                esc(key),
                new.mod_revision,
                new.create_revision,
                new.version,
                new.value_len
            )?,
            Change::Changed { key, old, new } => writeln!(
                out,
                "~ {} rev={} -> {} (version {} -> {}, {} -> {} bytes)",
                esc(key),
                old.mod_revision,
                new.mod_revision,
                old.version,
                new.version,
                old.value_len,
                new.value_len
            )?,
            Change::Deleted { key, old, deleted_at } => match deleted_at {
                Some(d) => writeln!(out, "- {} rev={} (deleted at {d})", esc(key), old.mod_revision)?,
                None => writeln!(out, "- {} rev={}", esc(key), old.mod_revision)?,
            },
        }
    }
    Ok(())
}

/// `etcdkit migrate --data-dir DIR --target-version X.Y [--force]`: the
/// target checked as etcdutl 3.6 checks it ("X.Y"), then
/// [`etcdkit_raft_node::migrate::migrate`]. Prints what it did.
pub fn cmd_migrate(out: &mut Out, dir: &Path, target: &str, force: bool) -> Result<(), CliError> {
    if target.matches('.').count() != 1 {
        return Err(CliError::msg(format!("wrong target version format, expected \"X.Y\", got {target:?}")));
    }
    let Some(version) = StorageVersion::parse(target) else {
        return Err(CliError::msg(format!("target version {target:?} not supported (3.4, 3.5 or 3.6)")));
    };
    let fs = etcdkit_fs::real();
    let done =
        etcdkit_raft_node::migrate::migrate(&fs, dir, version, force).map_err(|e| CliError::msg(e.to_string()))?;
    for w in &done.warnings {
        eprintln!("warning: {w}");
    }
    if done.from == done.to {
        writeln!(out, "storage version up-to-date: {}", done.to)?;
    } else {
        writeln!(out, "updated storage version: {} -> {}", done.from, done.to)?;
    }
    Ok(())
}

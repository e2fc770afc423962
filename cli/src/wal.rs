//! `etcdkit wal dump DIR`: a WAL directory's records and entries, as JSON lines
//! in the format of etcd's own reader (`etcdfixture wal`), or a table.

use std::path::Path;

use etcdkit_proto::Message;
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, Metadata, Request};
use etcdkit_proto::raftpb::{ConfChange, ConfChangeType, Entry, EntryType};
use etcdkit_proto::walpb::Snapshot;
use etcdkit_wal::record::type_name;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::bolt::hex;
use crate::{CliError, Out, WriteOut};

impl From<etcdkit_wal::Error> for CliError {
    fn from(e: etcdkit_wal::Error) -> Self {
        CliError::Msg(e.to_string())
    }
}

pub use etcdkit_proto::gojson::base64;

fn entry_type_name(t: i32) -> String {
    EntryType::try_from(t).map(|t| format!("{t:?}")).unwrap_or_else(|_| t.to_string())
}

/// What one raft entry carries, as etcd's reader summarizes it.
pub fn entry_summary(e: &Entry) -> Value {
    let data = e.data.as_deref().unwrap_or(&[]);
    let mut m = serde_json::Map::new();
    m.insert("index".into(), json!(e.index));
    m.insert("term".into(), json!(e.term));
    m.insert("type".into(), json!(entry_type_name(e.r#type)));
    m.insert("data_len".into(), json!(data.len()));
    if !data.is_empty() {
        m.insert("data_sha256".into(), json!(hex(&Sha256::digest(data))));
    }
    let mut kind = String::new();
    if e.r#type == EntryType::EntryConfChange as i32 {
        match ConfChange::decode(data) {
            Ok(cc) => {
                let t = ConfChangeType::try_from(cc.r#type).map(|t| format!("{t:?}")).unwrap_or(cc.r#type.to_string());
                kind = format!("ConfChange {t}");
                let mut c = serde_json::Map::new();
                c.insert("id".into(), json!(cc.id));
                c.insert("type".into(), json!(cc.r#type));
                c.insert("node_id".into(), json!(cc.node_id));
                if let Some(ctx) = cc.context.as_deref().filter(|c| !c.is_empty()) {
                    c.insert("context".into(), json!(base64(ctx)));
                }
                m.insert("conf_change".into(), Value::Object(c));
            }
            Err(err) => kind = format!("bad conf change: {err}"),
        }
    } else if data.is_empty() {
        kind = "empty".into();
    } else {
        if let Ok(r) = InternalRaftRequest::decode(data) {
            let id = r.request_id();
            if id != 0 {
                m.insert("request_id".into(), json!(id));
            }
            if let Some(v2) = &r.v2 {
                kind = format!("V2 {} {}", v2.method, v2.path);
            } else if let Some(k) = r.kind() {
                kind = k.into();
            }
            let key = r.put.as_ref().map(|p| &p.key).or(r.delete_range.as_ref().map(|d| &d.key));
            if let Some(k) = key.filter(|k| !k.is_empty()) {
                m.insert("key".into(), json!(base64(k)));
            }
        }
        if kind.is_empty() {
            match Request::decode(data) {
                Ok(v2) => {
                    kind = format!("V2 {} {}", v2.method, v2.path);
                    if v2.id != 0 {
                        m.insert("request_id".into(), json!(v2.id));
                    } else {
                        m.remove("request_id");
                    }
                }
                Err(_) => kind = "undecodable".into(),
            }
        }
    }
    m.insert("kind".into(), json!(kind));
    Value::Object(m)
}

pub fn cmd_dump(out: &mut Out, dir: &Path, w: WriteOut) -> Result<(), CliError> {
    if !dir.is_dir() {
        return Err(CliError::msg(format!("{}: not a directory", dir.display())));
    }
    let (segs, _) = etcdkit_wal::read_segments(&etcdkit_fs::RealFs, dir)?;
    let snaps = etcdkit_wal::valid_snapshot_entries(&etcdkit_fs::RealFs, dir)?;
    let r = etcdkit_wal::read_all(&etcdkit_fs::RealFs, dir, Snapshot::at(0, 0))?;
    let md = Metadata::decode(r.metadata.as_slice()).map_err(|e| CliError::msg(format!("metadata: {e}")))?;
    if w == WriteOut::Json {
        for s in &segs {
            for f in &s.frames {
                let j = json!({"file": s.name, "offset": f.offset, "len": f.len, "pad": f.pad,
                    "type": f.record.r#type, "type_name": type_name(f.record.r#type), "crc": f.record.crc,
                    "data_len": f.record.data.as_ref().map_or(0, |d| d.len())});
                writeln!(out, "{j}")?;
            }
            writeln!(out, "{}", json!({"file": s.name, "file_size": s.size, "records_end": s.records_end}))?;
        }
        let snaps: Vec<Value> = snaps.iter().map(|s| json!({"index": s.index, "term": s.term})).collect();
        writeln!(out, "{}", json!({ "valid_snapshot_entries": snaps }))?;
        writeln!(
            out,
            "{}",
            json!({"metadata": {"node_id": md.node_id, "cluster_id": md.cluster_id},
                "hard_state": {"term": r.state.term, "vote": r.state.vote, "commit": r.state.commit},
                "entries": r.entries.len()})
        )?;
        for e in &r.entries {
            writeln!(out, "{}", json!({ "entry": entry_summary(e) }))?;
        }
        return Ok(());
    }
    for s in &segs {
        writeln!(out, "{}  {} records, data ends at {} of {} bytes", s.name, s.frames.len(), s.records_end, s.size)?;
    }
    let snaps: Vec<String> = snaps.iter().map(|s| format!("{}/{}", s.index, s.term)).collect();
    writeln!(out, "snapshots (index/term): {}", snaps.join(" "))?;
    writeln!(out, "member {:x} in cluster {:x}", md.node_id, md.cluster_id)?;
    writeln!(out, "hard state: term {} vote {:x} commit {}", r.state.term, r.state.vote, r.state.commit)?;
    if r.torn {
        writeln!(out, "torn tail: the last record is incomplete (etcdkit wal repair would truncate it)")?;
    }
    writeln!(out, "{:>8} {:>6}  {:<16} {:<40} key", "index", "term", "type", "kind")?;
    for e in &r.entries {
        let s = entry_summary(e);
        let key = s.get("key").and_then(|k| k.as_str()).unwrap_or("");
        writeln!(
            out,
            "{:>8} {:>6}  {:<16} {:<40} {}",
            e.index,
            e.term,
            s["type"].as_str().unwrap_or(""),
            s["kind"].as_str().unwrap_or(""),
            key
        )?;
    }
    Ok(())
}

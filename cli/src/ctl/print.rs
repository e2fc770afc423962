//! etcdctl 3.4's output formats (`printer_*.go`): `simple` (the text an
//! operator reads), `json` (Go's `encoding/json` of the response: protobuf
//! messages by their proto field names with zero values omitted, clientv3's
//! own structs by their Go field names), `fields` (`"Name" : value` lines),
//! `table` (for member, endpoint and snapshot listings) and `protobuf` (the
//! response's wire bytes).
//!
//! JSON of a protobuf message is generic: the message is re-read through
//! etcd's descriptors (the same ones the JSON gateway uses) and written as
//! Go writes gogo's structs, so every response has it without a
//! hand-written encoder.

use std::io::Write;

use etcdkit_proto::etcdserverpb::{
    self as pb, AlarmResponse, AuthRoleGetResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse,
    LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseTimeToLiveResponse, MemberListResponse, PutResponse,
    RangeResponse, ResponseHeader, StatusResponse, TxnResponse, WatchResponse, response_op,
};
use etcdkit_proto::gojson::{self, Obj};
use etcdkit_proto::mvccpb::{Event, KeyValue};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use super::{EXIT_BAD_FEATURE, Exit, Result};

/// Writes a line to standard output (a closed pipe is not an error here:
/// the command ends anyway).
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}
pub use say;

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Printer {
    Simple { hex: bool, value_only: bool },
    Json,
    Fields,
    Table,
    Protobuf,
}

/// An endpoint's health (etcdctl's `epHealth`).
#[derive(Clone, Debug)]
pub struct EpHealth {
    pub ep: String,
    pub health: bool,
    pub took: String,
    pub error: String,
}

/// Go's `%q` of a string's bytes (`strconv.Quote`: printable runes kept,
/// others escaped, invalid UTF-8 as `\x..`).
pub fn go_quote(b: &[u8]) -> String {
    let mut s = String::from("\"");
    let mut rest = b;
    while !rest.is_empty() {
        let (c, n) = match std::str::from_utf8(rest) {
            Ok(t) => (t.chars().next(), t.chars().next().map_or(1, char::len_utf8)),
            Err(e) if e.valid_up_to() > 0 => {
                let t = std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default();
                (t.chars().next(), t.chars().next().map_or(1, char::len_utf8))
            }
            Err(_) => (None, 1),
        };
        match c {
            None => s.push_str(&format!("\\x{:02x}", rest[0])),
            Some('"') => s.push_str("\\\""),
            Some('\\') => s.push_str("\\\\"),
            Some('\x07') => s.push_str("\\a"),
            Some('\x08') => s.push_str("\\b"),
            Some('\x0c') => s.push_str("\\f"),
            Some('\n') => s.push_str("\\n"),
            Some('\r') => s.push_str("\\r"),
            Some('\t') => s.push_str("\\t"),
            Some('\x0b') => s.push_str("\\v"),
            Some(c) if (c as u32) < 0x20 || c as u32 == 0x7f => s.push_str(&format!("\\x{:02x}", c as u32)),
            Some(c) if c.is_control() || c == '\u{fffd}' && n == 3 && rest[..3] != [0xef, 0xbf, 0xbd] => {
                s.push_str(&format!("\\u{:04x}", c as u32))
            }
            Some(c) if (0x80..0xa0).contains(&(c as u32)) => s.push_str(&format!("\\u{:04x}", c as u32)),
            Some(c) => s.push(c),
        }
        rest = &rest[n..];
    }
    s.push('"');
    s
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `\x..` for every byte (etcdctl's `--hex`).
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\x{x:02x}")).collect()
}

/// `id` as etcd's `types.ID` prints it.
pub fn id_hex(id: u64) -> String {
    format!("{id:x}")
}

/// Go's `json.Marshal` of protobuf message `m` whose full name is `name`.
pub fn pb_json(name: &str, m: &impl prost::Message) -> String {
    let desc = etcdkit_server::gateway::descriptors()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("no message {name} in etcd's API"));
    let dynamic = DynamicMessage::decode(desc, m.encode_to_vec().as_slice()).expect("a message re-decodes");
    let mut out = String::new();
    msg_json(&dynamic, &mut out);
    out
}

/// Go's exported name of a proto field (`response_range` → `ResponseRange`).
fn go_name(proto: &str) -> String {
    proto
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

fn msg_json(m: &DynamicMessage, out: &mut String) {
    out.push('{');
    let mut first = true;
    let mut key = |out: &mut String, k: &str| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        gojson::push_str(out, k);
        out.push(':');
    };
    let mut oneofs_done = Vec::new();
    for f in m.descriptor().fields() {
        if let Some(o) = f.containing_oneof() {
            if oneofs_done.contains(&o.name().to_string()) {
                continue;
            }
            oneofs_done.push(o.name().to_string());
            key(out, &go_name(o.name()));
            match o.fields().find(|f| m.has_field(f)) {
                Some(set) => {
                    out.push('{');
                    gojson::push_str(out, &go_name(set.name()));
                    out.push(':');
                    value_json(&m.get_field(&set), out);
                    out.push('}');
                }
                None => out.push_str("null"),
            }
            continue;
        }
        let v = m.get_field(&f);
        let empty = match &*v {
            Value::Bool(b) => !b,
            Value::I32(x) | Value::EnumNumber(x) => *x == 0,
            Value::I64(x) => *x == 0,
            Value::U32(x) => *x == 0,
            Value::U64(x) => *x == 0,
            Value::String(s) => s.is_empty(),
            Value::Bytes(b) => b.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Message(_) => !m.has_field(&f),
            _ => false,
        };
        if empty {
            continue;
        }
        key(out, f.name());
        value_json(&v, out);
    }
    out.push('}');
}

fn value_json(v: &Value, out: &mut String) {
    match v {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I32(x) | Value::EnumNumber(x) => out.push_str(&x.to_string()),
        Value::I64(x) => out.push_str(&x.to_string()),
        Value::U32(x) => out.push_str(&x.to_string()),
        Value::U64(x) => out.push_str(&x.to_string()),
        Value::F32(x) => out.push_str(&x.to_string()),
        Value::F64(x) => out.push_str(&x.to_string()),
        Value::String(s) => gojson::push_str(out, s),
        Value::Bytes(b) => {
            out.push('"');
            out.push_str(&gojson::base64(b));
            out.push('"');
        }
        Value::Message(m) => msg_json(m, out),
        Value::List(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value_json(x, out);
            }
            out.push(']');
        }
        Value::Map(_) => out.push_str("{}"),
    }
}

/// etcdctl's `[]epStatus` / `[]epHashKV`: `[{"Endpoint":…,"<field>":<response>}]`.
fn per_endpoint_json(list: &[(String, impl prost::Message)], field: &str, name: &str) -> String {
    let items: Vec<String> =
        list.iter().map(|(ep, m)| Obj::new().str("Endpoint", ep).raw(field, pb_json(name, m)).end()).collect();
    format!("[{}]", items.join(","))
}

/// clientv3's embedded `*pb.ResponseHeader`: its fields inline.
fn header_inline(o: &mut Obj, h: Option<&ResponseHeader>) {
    if let Some(h) = h {
        o.int_omitempty("cluster_id", h.cluster_id).int_omitempty("member_id", h.member_id);
        o.int_omitempty("revision", h.revision).int_omitempty("raft_term", h.raft_term);
    }
}

impl Printer {
    /// The printer `-w` names (`None`: etcdctl's "unsupported output format").
    pub fn new(kind: &str, hex: bool) -> Option<Printer> {
        Some(match kind {
            "simple" => Printer::Simple { hex, value_only: false },
            "json" => Printer::Json,
            "fields" => Printer::Fields,
            "table" => Printer::Table,
            "protobuf" => Printer::Protobuf,
            _ => return None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Printer::Simple { .. } => "simple",
            Printer::Json => "json",
            Printer::Fields => "fields",
            Printer::Table => "table",
            Printer::Protobuf => "protobuf",
        }
    }

    /// etcdctl's refusal of a format a response has no form in.
    fn unsupported(&self) -> Exit {
        if *self == Printer::Protobuf {
            return Exit::new(EXIT_BAD_FEATURE, "only support protobuf type");
        }
        Exit::new(EXIT_BAD_FEATURE, format!("{} not supported as output format", self.name()))
    }

    /// JSON, protobuf bytes, or the refusal, for a response printed the
    /// generic way (the formats without a form of their own).
    fn rpc(&self, name: &str, m: &impl prost::Message) -> Result {
        match self {
            Printer::Json => say!("{}", pb_json(name, m)),
            Printer::Protobuf => {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&m.encode_to_vec());
            }
            _ => return Err(self.unsupported()),
        }
        Ok(())
    }

    fn kv(&self, kv: &KeyValue) {
        if let Printer::Simple { hex: h, value_only } = *self {
            let (k, v) = if h { (hex(&kv.key), hex(&kv.value)) } else { (text(&kv.key), text(&kv.value)) };
            if !value_only {
                say!("{k}");
            }
            say!("{v}");
        }
    }

    fn fields_kv(pfx: &str, kv: &KeyValue) {
        say!("\"{pfx}Key\" : {}", go_quote(&kv.key));
        say!("\"{pfx}CreateRevision\" : {}", kv.create_revision);
        say!("\"{pfx}ModRevision\" : {}", kv.mod_revision);
        say!("\"{pfx}Version\" : {}", kv.version);
        say!("\"{pfx}Value\" : {}", go_quote(&kv.value));
        say!("\"{pfx}Lease\" : {}", kv.lease);
    }

    fn fields_hdr(h: Option<&ResponseHeader>) {
        let d = ResponseHeader::default();
        let h = h.unwrap_or(&d);
        say!("\"ClusterID\" : {}", h.cluster_id);
        say!("\"MemberID\" : {}", h.member_id);
        say!("\"Revision\" : {}", h.revision);
        say!("\"RaftTerm\" : {}", h.raft_term);
    }

    pub fn get(&self, r: &RangeResponse) -> Result {
        match self {
            Printer::Simple { .. } => r.kvs.iter().for_each(|kv| self.kv(kv)),
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                r.kvs.iter().for_each(|kv| Self::fields_kv("", kv));
                say!("\"More\" : {}", r.more);
                say!("\"Count\" : {}", r.count);
            }
            _ => return self.rpc("etcdserverpb.RangeResponse", r),
        }
        Ok(())
    }

    pub fn put(&self, r: &PutResponse) -> Result {
        match self {
            Printer::Simple { .. } => {
                say!("OK");
                if let Some(p) = &r.prev_kv {
                    self.kv(p);
                }
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                if let Some(p) = &r.prev_kv {
                    Self::fields_kv("Prev", p);
                }
            }
            _ => return self.rpc("etcdserverpb.PutResponse", r),
        }
        Ok(())
    }

    pub fn del(&self, r: &DeleteRangeResponse) -> Result {
        match self {
            Printer::Simple { .. } => {
                say!("{}", r.deleted);
                r.prev_kvs.iter().for_each(|kv| self.kv(kv));
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                say!("\"Deleted\" : {}", r.deleted);
                r.prev_kvs.iter().for_each(|kv| Self::fields_kv("Prev", kv));
            }
            _ => return self.rpc("etcdserverpb.DeleteRangeResponse", r),
        }
        Ok(())
    }

    pub fn txn(&self, r: &TxnResponse) -> Result {
        match self {
            Printer::Simple { .. } => {
                say!("{}", if r.succeeded { "SUCCESS" } else { "FAILURE" });
                for op in &r.responses {
                    say!();
                    match &op.response {
                        Some(response_op::Response::ResponseRange(g)) => self.get(g)?,
                        Some(response_op::Response::ResponsePut(p)) => self.put(p)?,
                        Some(response_op::Response::ResponseDeleteRange(d)) => self.del(d)?,
                        other => say!("unexpected response {other:?}"),
                    }
                }
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                say!("\"Succeeded\" : {}", r.succeeded);
                for op in &r.responses {
                    match &op.response {
                        Some(response_op::Response::ResponseRange(g)) => self.get(g)?,
                        Some(response_op::Response::ResponsePut(p)) => self.put(p)?,
                        Some(response_op::Response::ResponseDeleteRange(d)) => self.del(d)?,
                        other => say!("\"Unknown\" : {}", go_quote(format!("{other:?}").as_bytes())),
                    }
                }
            }
            _ => return self.rpc("etcdserverpb.TxnResponse", r),
        }
        Ok(())
    }

    pub fn watch(&self, r: &WatchResponse) -> Result {
        let kind = |e: &Event| if e.r#type == 1 { "DELETE" } else { "PUT" };
        match self {
            Printer::Simple { .. } => {
                for e in &r.events {
                    say!("{}", kind(e));
                    if let Some(p) = &e.prev_kv {
                        self.kv(p);
                    }
                    self.kv(e.kv.as_ref().unwrap_or(&KeyValue::default()));
                }
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                for e in &r.events {
                    say!("\"Type\" : {}", kind(e));
                    if let Some(p) = &e.prev_kv {
                        Self::fields_kv("Prev", p);
                    }
                    Self::fields_kv("", e.kv.as_ref().unwrap_or(&KeyValue::default()));
                }
            }
            Printer::Json => {
                // clientv3.WatchResponse: Go field names, a value header.
                let h = r.header.unwrap_or_default();
                let events = if r.events.is_empty() {
                    "null".to_string()
                } else {
                    let es: Vec<String> = r.events.iter().map(|e| pb_json("mvccpb.Event", e)).collect();
                    format!("[{}]", es.join(","))
                };
                let mut o = Obj::new();
                o.raw("Header", pb_json("etcdserverpb.ResponseHeader", &h)).raw("Events", events);
                o.raw("CompactRevision", r.compact_revision).raw("Canceled", r.canceled).raw("Created", r.created);
                say!("{}", o.end());
            }
            Printer::Protobuf => {
                let wr = WatchResponse {
                    header: r.header,
                    events: r.events.clone(),
                    compact_revision: r.compact_revision,
                    canceled: r.canceled,
                    created: r.created,
                    ..Default::default()
                };
                return self.rpc("etcdserverpb.WatchResponse", &wr);
            }
            Printer::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    pub fn grant(&self, r: &LeaseGrantResponse) -> Result {
        match self {
            Printer::Simple { .. } => say!("lease {:016x} granted with TTL({}s)", r.id, r.ttl),
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                say!("\"ID\" : {}", r.id);
                say!("\"TTL\" : {}", r.ttl);
            }
            Printer::Json => {
                let mut o = Obj::new();
                header_inline(&mut o, r.header.as_ref());
                o.raw("ID", r.id).raw("TTL", r.ttl).str("Error", &r.error);
                say!("{}", o.end());
            }
            _ => return Err(self.unsupported()),
        }
        Ok(())
    }

    pub fn revoke(&self, id: i64, r: &pb::LeaseRevokeResponse) -> Result {
        match self {
            Printer::Simple { .. } => say!("lease {id:016x} revoked"),
            Printer::Fields => Self::fields_hdr(r.header.as_ref()),
            _ => return self.rpc("etcdserverpb.LeaseRevokeResponse", r),
        }
        Ok(())
    }

    pub fn keep_alive(&self, r: &LeaseKeepAliveResponse) -> Result {
        match self {
            Printer::Simple { .. } => say!("lease {:016x} keepalived with TTL({})", r.id, r.ttl),
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                say!("\"ID\" : {}", r.id);
                say!("\"TTL\" : {}", r.ttl);
            }
            Printer::Json => {
                let mut o = Obj::new();
                header_inline(&mut o, r.header.as_ref());
                o.raw("ID", r.id).raw("TTL", r.ttl);
                say!("{}", o.end());
            }
            _ => return Err(self.unsupported()),
        }
        Ok(())
    }

    pub fn time_to_live(&self, r: &LeaseTimeToLiveResponse, keys: bool) -> Result {
        match self {
            Printer::Simple { .. } => {
                if r.granted_ttl == 0 && r.ttl == -1 {
                    say!("lease {:016x} already expired", r.id);
                    return Ok(());
                }
                let mut t = format!("lease {:016x} granted with TTL({}s), remaining({}s)", r.id, r.granted_ttl, r.ttl);
                if keys {
                    let ks: Vec<String> = r.keys.iter().map(|k| text(k)).collect();
                    t += &format!(", attached keys([{}])", ks.join(" "));
                }
                say!("{t}");
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                say!("\"ID\" : {}", r.id);
                say!("\"TTL\" : {}", r.ttl);
                say!("\"GrantedTTL\" : {}", r.granted_ttl);
                for k in &r.keys {
                    say!("\"Key\" : {}", go_quote(k));
                }
            }
            Printer::Json => {
                let mut o = Obj::new();
                header_inline(&mut o, r.header.as_ref());
                o.raw("id", r.id).raw("ttl", r.ttl).raw("granted-ttl", r.granted_ttl);
                if r.keys.is_empty() {
                    o.raw("keys", "null");
                } else {
                    let ks: Vec<String> = r.keys.iter().map(|k| format!("\"{}\"", gojson::base64(k))).collect();
                    o.raw("keys", format!("[{}]", ks.join(",")));
                }
                say!("{}", o.end());
            }
            _ => return Err(self.unsupported()),
        }
        Ok(())
    }

    pub fn leases(&self, r: &LeaseLeasesResponse) -> Result {
        match self {
            Printer::Simple { .. } => {
                say!("found {} leases", r.leases.len());
                r.leases.iter().for_each(|l| say!("{:016x}", l.id));
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                r.leases.iter().for_each(|l| say!("\"ID\" : {}", l.id));
            }
            Printer::Json => {
                let mut o = Obj::new();
                header_inline(&mut o, r.header.as_ref());
                if r.leases.is_empty() {
                    o.raw("leases", "null");
                } else {
                    let ls: Vec<String> = r.leases.iter().map(|l| format!("{{\"id\":{}}}", l.id)).collect();
                    o.raw("leases", format!("[{}]", ls.join(",")));
                }
                say!("{}", o.end());
            }
            _ => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `member add`: the added member and (for etcdctl's follow-up lines)
    /// nothing else; those lines are the command's.
    pub fn member_add(&self, r: &pb::MemberAddResponse) -> Result {
        match self {
            Printer::Simple { .. } => {
                let id = r.member.as_ref().map_or(0, |m| m.id);
                let cid = r.header.as_ref().map_or(0, |h| h.cluster_id);
                say!("Member {id:16x} added to cluster {cid:16x}");
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                if let Some(m) = &r.member {
                    say!("\"ID\" : {}", m.id);
                }
            }
            _ => return self.rpc("etcdserverpb.MemberAddResponse", r),
        }
        Ok(())
    }

    /// `member remove|update|promote`: `verb` is the simple form's word.
    pub fn member_changed(
        &self,
        verb: &str,
        id: u64,
        header: Option<&ResponseHeader>,
        name: &str,
        m: &impl prost::Message,
    ) -> Result {
        match self {
            Printer::Simple { .. } => {
                let cid = header.map_or(0, |h| h.cluster_id);
                say!("Member {id:16x} {verb} cluster {cid:16x}");
            }
            Printer::Fields => Self::fields_hdr(header),
            _ => return self.rpc(name, m),
        }
        Ok(())
    }

    pub fn member_list(&self, r: &MemberListResponse) -> Result {
        let rows: Vec<Vec<String>> = r
            .members
            .iter()
            .map(|m| {
                vec![
                    id_hex(m.id),
                    if m.name.is_empty() { "unstarted" } else { "started" }.to_string(),
                    m.name.clone(),
                    m.peer_ur_ls.join(","),
                    m.client_ur_ls.join(","),
                    m.is_learner.to_string(),
                ]
            })
            .collect();
        match self {
            Printer::Simple { .. } => rows.iter().for_each(|r| say!("{}", r.join(", "))),
            Printer::Table => {
                let hdr = ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"];
                print!("{}", crate::snapshot::table(&hdr, &rows));
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                for m in &r.members {
                    say!("\"ID\" : {}", m.id);
                    say!("\"Name\" : {}", go_quote(m.name.as_bytes()));
                    m.peer_ur_ls.iter().for_each(|u| say!("\"PeerURL\" : {}", go_quote(u.as_bytes())));
                    m.client_ur_ls.iter().for_each(|u| say!("\"ClientURL\" : {}", go_quote(u.as_bytes())));
                    say!("\"IsLearner\" : {}", m.is_learner);
                    say!();
                }
            }
            _ => return self.rpc("etcdserverpb.MemberListResponse", r),
        }
        Ok(())
    }

    pub fn endpoint_health(&self, hs: &[EpHealth]) -> Result {
        match self {
            Printer::Simple { .. } => {
                for h in hs {
                    if h.error.is_empty() {
                        eprintln!("{} is healthy: successfully committed proposal: took = {}", h.ep, h.took);
                    } else {
                        eprintln!("{} is unhealthy: failed to commit proposal: {}", h.ep, h.error);
                    }
                }
            }
            Printer::Table => {
                let rows: Vec<Vec<String>> = hs
                    .iter()
                    .map(|h| vec![h.ep.clone(), h.health.to_string(), h.took.clone(), h.error.clone()])
                    .collect();
                print!("{}", crate::snapshot::table(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &rows));
            }
            Printer::Fields => {
                for h in hs {
                    say!("\"Endpoint\" : {}", go_quote(h.ep.as_bytes()));
                    say!("\"Health\" : {}", h.health);
                    say!("\"Took\" : {}", h.took);
                    say!("\"Error\" : {}", h.error);
                    say!();
                }
            }
            Printer::Json => {
                let items: Vec<String> = hs
                    .iter()
                    .map(|h| {
                        let mut o = Obj::new();
                        o.str("endpoint", &h.ep).raw("health", h.health).str("took", &h.took);
                        if !h.error.is_empty() {
                            o.str("error", &h.error);
                        }
                        o.end()
                    })
                    .collect();
                say!("[{}]", items.join(","));
            }
            Printer::Protobuf => return Err(self.unsupported()),
        }
        Ok(())
    }

    pub fn endpoint_status(&self, st: &[(String, StatusResponse)]) -> Result {
        let rows: Vec<Vec<String>> = st
            .iter()
            .map(|(ep, s)| {
                let member = s.header.as_ref().map_or(0, |h| h.member_id);
                vec![
                    ep.clone(),
                    id_hex(member),
                    s.version.clone(),
                    etcdkit_snapshot::human_bytes(s.db_size.max(0) as u64),
                    (s.leader == member).to_string(),
                    s.is_learner.to_string(),
                    s.raft_term.to_string(),
                    s.raft_index.to_string(),
                    s.raft_applied_index.to_string(),
                    s.errors.join(", "),
                ]
            })
            .collect();
        match self {
            Printer::Simple { .. } => rows.iter().for_each(|r| say!("{}", r.join(", "))),
            Printer::Table => {
                let hdr = [
                    "ENDPOINT",
                    "ID",
                    "VERSION",
                    "DB SIZE",
                    "IS LEADER",
                    "IS LEARNER",
                    "RAFT TERM",
                    "RAFT INDEX",
                    "RAFT APPLIED INDEX",
                    "ERRORS",
                ];
                print!("{}", crate::snapshot::table(&hdr, &rows));
            }
            Printer::Fields => {
                for (ep, s) in st {
                    Self::fields_hdr(s.header.as_ref());
                    say!("\"Version\" : {}", go_quote(s.version.as_bytes()));
                    say!("\"DBSize\" : {}", s.db_size);
                    say!("\"Leader\" : {}", s.leader);
                    say!("\"IsLearner\" : {}", s.is_learner);
                    say!("\"RaftIndex\" : {}", s.raft_index);
                    say!("\"RaftTerm\" : {}", s.raft_term);
                    say!("\"RaftAppliedIndex\" : {}", s.raft_applied_index);
                    say!("\"Errors\" : [{}]", s.errors.join(" "));
                    say!("\"Endpoint\" : {}", go_quote(ep.as_bytes()));
                    say!();
                }
            }
            Printer::Json => say!("{}", per_endpoint_json(st, "Status", "etcdserverpb.StatusResponse")),
            Printer::Protobuf => return Err(self.unsupported()),
        }
        Ok(())
    }

    pub fn endpoint_hashkv(&self, hs: &[(String, HashKvResponse)]) -> Result {
        match self {
            Printer::Simple { .. } => hs.iter().for_each(|(ep, h)| say!("{ep}, {}", h.hash)),
            Printer::Table => {
                let rows: Vec<Vec<String>> = hs.iter().map(|(ep, h)| vec![ep.clone(), h.hash.to_string()]).collect();
                print!("{}", crate::snapshot::table(&["ENDPOINT", "HASH"], &rows));
            }
            Printer::Fields => {
                for (ep, h) in hs {
                    Self::fields_hdr(h.header.as_ref());
                    say!("\"Endpoint\" : {}", go_quote(ep.as_bytes()));
                    say!("\"Hash\" : {}", h.hash);
                    say!();
                }
            }
            Printer::Json => say!("{}", per_endpoint_json(hs, "HashKV", "etcdserverpb.HashKVResponse")),
            Printer::Protobuf => return Err(self.unsupported()),
        }
        Ok(())
    }

    pub fn move_leader(&self, leader: u64, target: u64, r: &pb::MoveLeaderResponse) -> Result {
        match self {
            Printer::Simple { .. } => say!("Leadership transferred from {} to {}", id_hex(leader), id_hex(target)),
            Printer::Json | Printer::Protobuf => return self.rpc("etcdserverpb.MoveLeaderResponse", r),
            _ => return Err(self.unsupported()),
        }
        Ok(())
    }

    pub fn alarm(&self, r: &AlarmResponse) -> Result {
        let name = |a: i32| match a {
            1 => "NOSPACE",
            2 => "CORRUPT",
            _ => "NONE",
        };
        match self {
            Printer::Simple { .. } => {
                // Go's `%+v` of the protobuf message: its compact text form.
                r.alarms.iter().for_each(|a| say!("memberID:{} alarm:{} ", a.member_id, name(a.alarm)));
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                for a in &r.alarms {
                    say!("\"MemberID\" : {}", a.member_id);
                    say!("\"AlarmType\" : {}", name(a.alarm));
                    say!();
                }
            }
            _ => return self.rpc("etcdserverpb.AlarmResponse", r),
        }
        Ok(())
    }

    /// The auth commands whose simple form is one line and whose fields
    /// form is the header.
    pub fn auth_done(
        &self,
        line: &str,
        header: Option<&ResponseHeader>,
        name: &str,
        m: &impl prost::Message,
    ) -> Result {
        match self {
            Printer::Simple { .. } => say!("{line}"),
            Printer::Fields => Self::fields_hdr(header),
            _ => return self.rpc(name, m),
        }
        Ok(())
    }

    pub fn role_get(&self, role: &str, r: &AuthRoleGetResponse) -> Result {
        match self {
            Printer::Simple { .. } => {
                say!("Role {role}");
                for (title, types) in [("KV Read:", [0, 2]), ("KV Write:", [1, 2])] {
                    say!("{title}");
                    for p in r.perm.iter().filter(|p| types.contains(&p.perm_type)) {
                        if p.range_end.is_empty() {
                            say!("\t{}", text(&p.key));
                            continue;
                        }
                        let mut line = if p.range_end == b"\0" {
                            format!("\t[{}, <open ended>", text(&p.key))
                        } else {
                            format!("\t[{}, {})", text(&p.key), text(&p.range_end))
                        };
                        if etcdkit_mvcc::prefix_end(&p.key) == p.range_end {
                            line += &format!(" (prefix {})", text(&p.key));
                        }
                        say!("{line}");
                    }
                }
            }
            Printer::Fields => {
                Self::fields_hdr(r.header.as_ref());
                for p in &r.perm {
                    let t = ["READ", "WRITE", "READWRITE"].get(p.perm_type as usize).copied().unwrap_or("READ");
                    say!("\"PermType\" :  {t}");
                    say!("\"Key\" : {}", go_quote(&p.key));
                    say!("\"RangeEnd\" : {}", go_quote(&p.range_end));
                }
            }
            _ => return self.rpc("etcdserverpb.AuthRoleGetResponse", r),
        }
        Ok(())
    }

    /// `role list` and `user list`: one name per line.
    pub fn names(
        &self,
        names: &[String],
        header: Option<&ResponseHeader>,
        name: &str,
        m: &impl prost::Message,
    ) -> Result {
        match self {
            Printer::Simple { .. } => names.iter().for_each(|n| say!("{n}")),
            Printer::Fields if name.ends_with("RoleListResponse") => {
                Self::fields_hdr(header);
                let quoted: Vec<String> = names.iter().map(|n| format!(" {}", go_quote(n.as_bytes()))).collect();
                say!("\"Roles\" :{}", quoted.concat());
            }
            _ => return self.rpc(name, m),
        }
        Ok(())
    }

    pub fn user_get(&self, user: &str, r: &pb::AuthUserGetResponse) -> Result {
        match self {
            Printer::Simple { .. } => {
                let roles: String = r.roles.iter().map(|x| format!(" {x}")).collect();
                say!("User: {user}");
                say!("Roles:{roles}");
            }
            _ => return self.rpc("etcdserverpb.AuthUserGetResponse", r),
        }
        Ok(())
    }

    pub fn db_status(&self, st: &etcdkit_snapshot::Status) -> Result {
        let w = match self {
            Printer::Simple { .. } => crate::WriteOut::Simple,
            Printer::Json => crate::WriteOut::Json,
            Printer::Table => crate::WriteOut::Table,
            Printer::Fields => crate::WriteOut::Fields,
            Printer::Protobuf => return Err(self.unsupported()),
        };
        let mut out = std::io::stdout().lock();
        crate::snapshot::print_status(&mut out, st, w).map_err(|e| Exit::error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_matches_strconv_quote() {
        assert_eq!(go_quote(b"abc"), "\"abc\"");
        assert_eq!(go_quote(b"a\"b\\\n\t"), "\"a\\\"b\\\\\\n\\t\"");
        assert_eq!(go_quote(b"\x00\xff"), "\"\\x00\\xff\"");
        assert_eq!(go_quote("é".as_bytes()), "\"é\"");
    }

    #[test]
    fn protobuf_json_is_gos_encoding_of_gogos_structs() {
        let r = RangeResponse {
            header: Some(ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 4 }),
            kvs: vec![KeyValue {
                key: b"a".to_vec().into(),
                create_revision: 2,
                mod_revision: 3,
                version: 1,
                ..Default::default()
            }],
            count: 1,
            ..Default::default()
        };
        assert_eq!(
            pb_json("etcdserverpb.RangeResponse", &r),
            "{\"header\":{\"cluster_id\":1,\"member_id\":2,\"revision\":3,\"raft_term\":4},\
             \"kvs\":[{\"key\":\"YQ==\",\"create_revision\":2,\"mod_revision\":3,\"version\":1}],\"count\":1}"
        );
        let t = TxnResponse {
            succeeded: true,
            responses: vec![pb::ResponseOp {
                response: Some(response_op::Response::ResponsePut(PutResponse::default())),
            }],
            ..Default::default()
        };
        assert_eq!(
            pb_json("etcdserverpb.TxnResponse", &t),
            "{\"succeeded\":true,\"responses\":[{\"Response\":{\"ResponsePut\":{}}}]}"
        );
    }
}

//! `etcdkit txn`: etcdctl's interactive-less txn syntax read from stdin, and
//! its outputs.
//!
//! ```text
//! mod("key1") > "0"          compares: TARGET("key") OP "value", one per line;
//! value("key2") = "v"        TARGET ∈ ver|version, c|create, m|mod, val|value, lease;
//!                            OP ∈ = != < >; keys and values are Go-quoted ("\x00" works)
//!                            (blank line)
//! put key1 "some value"      success requests: put / get / del with their flags
//! get key --prefix
//!                            (blank line)
//! del key2                   failure requests
//!                            (blank line or end of input)
//! ```

use std::io::BufRead;

use etcdkit_mvcc::{ResponseOp, TxnResult};
use etcdkit_proto::etcdserverpb::compare::TargetUnion;
use etcdkit_proto::etcdserverpb::request_op::Request;
use etcdkit_proto::etcdserverpb::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use etcdkit_proto::gojson::Obj;

use crate::kv::{Source, kv_json, lease_id, range_end, sort_options};
use crate::{CliError, Out, WriteOut};

/// Parses a Go string literal (`"…"` with Go's escapes, or `` `…` ``) at the
/// start of `s`; returns its bytes and the rest of `s`.
pub fn go_unquote(s: &str) -> Result<(Vec<u8>, &str), String> {
    let b = s.as_bytes();
    match b.first() {
        Some(b'`') => {
            let end = s[1..].find('`').ok_or("unterminated raw string")? + 1;
            Ok((s.as_bytes()[1..end].to_vec(), &s[end + 1..]))
        }
        Some(b'"') => {
            let mut out = Vec::new();
            let mut i = 1;
            while i < b.len() {
                match b[i] {
                    b'"' => return Ok((out, &s[i + 1..])),
                    b'\\' => {
                        let c = *b.get(i + 1).ok_or("unterminated escape")?;
                        i += 2;
                        let simple = match c {
                            b'a' => Some(7),
                            b'b' => Some(8),
                            b'f' => Some(12),
                            b'n' => Some(b'\n'),
                            b'r' => Some(b'\r'),
                            b't' => Some(b'\t'),
                            b'v' => Some(11),
                            b'\\' => Some(b'\\'),
                            b'"' => Some(b'"'),
                            b'\'' => Some(b'\''),
                            _ => None,
                        };
                        if let Some(v) = simple {
                            out.push(v);
                            continue;
                        }
                        let hex = |n: usize, i: usize| -> Result<u32, String> {
                            let h = s.get(i..i + n).ok_or("short escape")?;
                            u32::from_str_radix(h, 16).map_err(|_| format!("bad escape \\{}{h}", c as char))
                        };
                        match c {
                            b'x' => {
                                out.push(hex(2, i)? as u8);
                                i += 2;
                            }
                            b'0'..=b'7' => {
                                let o = s.get(i - 1..i + 2).ok_or("short octal escape")?;
                                let v = u32::from_str_radix(o, 8).map_err(|_| format!("bad escape \\{o}"))?;
                                out.push(u8::try_from(v).map_err(|_| format!("bad escape \\{o}"))?);
                                i += 2;
                            }
                            b'u' | b'U' => {
                                let n = if c == b'u' { 4 } else { 8 };
                                let ch = char::from_u32(hex(n, i)?).ok_or("bad unicode escape")?;
                                out.extend_from_slice(ch.to_string().as_bytes());
                                i += n;
                            }
                            _ => return Err(format!("unknown escape \\{}", c as char)),
                        }
                    }
                    c => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            Err("unterminated string".into())
        }
        _ => Err("expected a quoted string".into()),
    }
}

/// Splits a request line into arguments as etcdctl's `argify` does:
/// double-quoted (Go escapes), single-quoted (verbatim) or bare tokens.
pub fn argify(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut args = Vec::new();
    let mut s = line.trim_start();
    while !s.is_empty() {
        if s.starts_with('"') {
            let (v, rest) = go_unquote(s)?;
            args.push(v);
            s = rest;
        } else if let Some(r) = s.strip_prefix('\'') {
            let end = r.find('\'').ok_or("unterminated single-quoted string")?;
            args.push(r.as_bytes()[..end].to_vec());
            s = &r[end + 1..];
        } else {
            let end = s.find(char::is_whitespace).unwrap_or(s.len());
            args.push(s.as_bytes()[..end].to_vec());
            s = &s[end..];
        }
        s = s.trim_start();
    }
    Ok(args)
}

/// Parses one compare line: `TARGET("key") OP "value"`.
pub fn parse_compare(line: &str) -> Result<Compare, String> {
    let bad = |why: &str| format!("malformed comparison: {} ({why})", line.trim_end());
    // etcdctl's words for a line without `(`.
    let (target, rest) = line.split_once('(').ok_or_else(|| format!("malformed comparison: {}", line.trim_end()))?;
    let (key, rest) = go_unquote(rest.trim_start()).map_err(|e| bad(&e))?;
    let rest = rest.trim_start().strip_prefix(')').ok_or_else(|| bad("no ')'"))?.trim_start();
    let op_end = rest.find(char::is_whitespace).ok_or_else(|| bad("no operator"))?;
    let (op, rest) = rest.split_at(op_end);
    let (val, rest) = go_unquote(rest.trim_start()).map_err(|e| bad(&e))?;
    if !rest.trim().is_empty() {
        return Err(bad("trailing text"));
    }
    let result = match op {
        "=" | "==" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        o => return Err(bad(&format!("unknown operator {o}"))),
    };
    let num = || -> Result<i64, String> {
        std::str::from_utf8(&val)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| format!("invalid txn compare request: {}", line.trim_end()))
    };
    let (t, u) = match target.trim() {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(num()?)),
        "c" | "create" => (CompareTarget::Create, TargetUnion::CreateRevision(num()?)),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(num()?)),
        "val" | "value" => (CompareTarget::Value, TargetUnion::Value(val.clone())),
        "lease" => {
            let s = std::str::from_utf8(&val).map_err(|_| bad("lease ID"))?;
            (CompareTarget::Lease, TargetUnion::Lease(lease_id(s).map_err(|e| e.to_string())?))
        }
        t => return Err(bad(&format!("unknown target {t}"))),
    };
    Ok(Compare { result: result as i32, target: t as i32, key, target_union: Some(u), range_end: Vec::new() })
}

/// Flags of one request line: `--name=value`, `--name value` or `--name`.
struct Flags {
    pos: Vec<Vec<u8>>,
    flags: Vec<(String, Option<String>)>,
}

fn flags(args: &[Vec<u8>], with_value: &[&str]) -> Result<Flags, String> {
    let mut f = Flags { pos: Vec::new(), flags: Vec::new() };
    let mut i = 0;
    while i < args.len() {
        let a = String::from_utf8_lossy(&args[i]).into_owned();
        if let Some(name) = a.strip_prefix("--") {
            match name.split_once('=') {
                Some((n, v)) => f.flags.push((n.to_string(), Some(v.to_string()))),
                None if with_value.contains(&name) => {
                    i += 1;
                    let v = args.get(i).ok_or(format!("flag needs an argument: --{name}"))?;
                    f.flags.push((name.to_string(), Some(String::from_utf8_lossy(v).into_owned())));
                }
                None => f.flags.push((name.to_string(), None)),
            }
        } else {
            f.pos.push(args[i].clone());
        }
        i += 1;
    }
    Ok(f)
}

impl Flags {
    fn has(&self, n: &str) -> bool {
        self.flags.iter().any(|(k, v)| k == n && v.as_deref().is_none_or(|v| v == "true"))
    }
    fn value(&self, n: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(k, _)| k == n).and_then(|(_, v)| v.as_deref())
    }
    fn int(&self, n: &str) -> Result<i64, String> {
        self.value(n).map_or(Ok(0), |v| v.parse().map_err(|_| format!("invalid --{n} {v:?}")))
    }
    fn check(&self, known: &[&str]) -> Result<(), String> {
        match self.flags.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("unknown flag: --{k}")),
            None => Ok(()),
        }
    }
}

fn range_end_of(f: &Flags, key: &[u8]) -> Result<Vec<u8>, String> {
    range_end(key, f.pos.get(2).map(Vec::as_slice), f.has("prefix"), f.has("from-key"))
}

/// Parses one request line: `put KEY VALUE [flags]`, `get KEY [END] [flags]`, `del KEY [END] [flags]`.
pub fn parse_request(line: &str) -> Result<RequestOp, String> {
    let args = argify(line)?;
    let invalid = || format!("invalid txn request: {}", line.trim());
    if args.len() < 2 {
        return Err(format!("invalid txn compare request: {}", line.trim()));
    }
    let req = match args[0].as_slice() {
        b"put" => {
            let f = flags(&args, &["lease"])?;
            f.check(&["lease", "prev-kv", "ignore-value", "ignore-lease"]).map_err(|_| invalid())?;
            let ignore_value = f.has("ignore-value");
            // etcdctl's put command's own checks (extra arguments are ignored).
            if ignore_value && f.pos.len() > 2 {
                return Err("put command needs only 1 argument when 'ignore-value' is set".into());
            }
            if !ignore_value && f.pos.len() < 3 {
                return Err("put command needs 1 argument and input from stdin or 2 arguments".into());
            }
            let lease = f.value("lease").map(lease_id).transpose().map_err(|e| e.to_string())?.unwrap_or(0);
            Request::RequestPut(PutRequest {
                key: f.pos[1].clone(),
                value: f.pos.get(2).cloned().unwrap_or_default(),
                lease,
                prev_kv: f.has("prev-kv"),
                ignore_value,
                ignore_lease: f.has("ignore-lease"),
            })
        }
        b"get" => {
            let f = flags(&args, &["rev", "limit", "order", "sort-by"])?;
            f.check(&["prefix", "from-key", "rev", "limit", "keys-only", "count-only", "order", "sort-by"])
                .map_err(|_| invalid())?;
            if !(2..=3).contains(&f.pos.len()) {
                return Err(invalid());
            }
            let key = f.pos[1].clone();
            let (order, target) = sort_options(f.value("order").unwrap_or(""), f.value("sort-by").unwrap_or(""))?;
            Request::RequestRange(RangeRequest {
                range_end: range_end_of(&f, &key)?,
                key,
                limit: f.int("limit")?,
                revision: f.int("rev")?,
                sort_order: order as i32,
                sort_target: target as i32,
                keys_only: f.has("keys-only"),
                count_only: f.has("count-only"),
                ..Default::default()
            })
        }
        b"del" => {
            let f = flags(&args, &[])?;
            f.check(&["prefix", "from-key", "prev-kv"]).map_err(|_| invalid())?;
            if !(2..=3).contains(&f.pos.len()) {
                return Err(invalid());
            }
            let key = f.pos[1].clone();
            Request::RequestDeleteRange(DeleteRangeRequest {
                range_end: range_end_of(&f, &key)?,
                key,
                prev_kv: f.has("prev-kv"),
            })
        }
        _ => return Err(invalid()),
    };
    Ok(RequestOp { request: Some(req) })
}

/// Reads a whole txn (compares, success, failure; blank-line separated).
pub fn parse_txn(input: &mut dyn BufRead) -> Result<TxnRequest, String> {
    let mut lines = input.lines();
    let mut section = |what: &str| -> Result<Vec<String>, String> {
        let mut v = Vec::new();
        for l in lines.by_ref() {
            let l = l.map_err(|e| format!("reading {what}: {e}"))?;
            if l.trim().is_empty() {
                break;
            }
            v.push(l);
        }
        Ok(v)
    };
    let compare = section("compares")?.iter().map(|l| parse_compare(l)).collect::<Result<_, _>>()?;
    let success = section("success requests")?.iter().map(|l| parse_request(l)).collect::<Result<_, _>>()?;
    let failure = section("failure requests")?.iter().map(|l| parse_request(l)).collect::<Result<_, _>>()?;
    Ok(TxnRequest { compare, success, failure })
}

fn response_json(r: &ResponseOp) -> String {
    let header = |rev: i64| Obj::new().raw("revision", rev).end();
    let (name, body) = match r {
        ResponseOp::Put(p) => {
            let mut o = Obj::new();
            o.raw("header", header(p.rev));
            if let Some(kv) = &p.prev_kv {
                o.raw("prev_kv", kv_json(kv));
            }
            ("ResponsePut", o.end())
        }
        ResponseOp::Range(rr) => {
            let mut o = Obj::new();
            o.raw("header", header(rr.rev));
            if !rr.kvs.is_empty() {
                o.raw("kvs", format!("[{}]", rr.kvs.iter().map(kv_json).collect::<Vec<_>>().join(",")));
            }
            if rr.more {
                o.raw("more", true);
            }
            if rr.count != 0 {
                o.raw("count", rr.count);
            }
            ("ResponseRange", o.end())
        }
        ResponseOp::DeleteRange(d) => {
            let mut o = Obj::new();
            o.raw("header", header(d.rev));
            if d.deleted != 0 {
                o.raw("deleted", d.deleted);
            }
            ("ResponseDeleteRange", o.end())
        }
        ResponseOp::Txn(t) => ("ResponseTxn", txn_json(t)),
    };
    Obj::new().raw("Response", Obj::new().raw(name, body).end()).end()
}

fn txn_json(t: &TxnResult) -> String {
    let mut o = Obj::new();
    o.raw("header", Obj::new().raw("revision", t.rev).end());
    if t.succeeded {
        o.raw("succeeded", true);
    }
    if !t.responses.is_empty() {
        o.raw("responses", format!("[{}]", t.responses.iter().map(response_json).collect::<Vec<_>>().join(",")));
    }
    o.end()
}

fn print_simple(out: &mut Out, t: &TxnResult) -> std::io::Result<()> {
    writeln!(out, "{}", if t.succeeded { "SUCCESS" } else { "FAILURE" })?;
    for r in &t.responses {
        writeln!(out)?;
        match r {
            ResponseOp::Put(p) => {
                writeln!(out, "OK")?;
                if let Some(kv) = &p.prev_kv {
                    writeln!(out, "{}\n{}", String::from_utf8_lossy(&kv.key), String::from_utf8_lossy(&kv.value))?;
                }
            }
            ResponseOp::DeleteRange(d) => writeln!(out, "{}", d.deleted)?,
            ResponseOp::Range(rr) => {
                for kv in &rr.kvs {
                    writeln!(out, "{}\n{}", String::from_utf8_lossy(&kv.key), String::from_utf8_lossy(&kv.value))?;
                }
            }
            ResponseOp::Txn(t) => print_simple(out, t)?,
        }
    }
    Ok(())
}

pub fn cmd_txn(out: &mut Out, src: &Source, input: &mut dyn BufRead, w: WriteOut) -> Result<(), CliError> {
    let req = parse_txn(input).map_err(CliError::Msg)?;
    let mut store = src.open(true)?;
    let r = store.txn(&req)?;
    match w {
        WriteOut::Json => writeln!(out, "{}", txn_json(&r))?,
        _ => print_simple(out, &r)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quoting() {
        assert_eq!(go_unquote(r#""a\x00b\n\"q\"" rest"#).unwrap(), (b"a\x00b\n\"q\"".to_vec(), " rest"));
        assert_eq!(go_unquote(r#""\101\u00e9""#).unwrap().0, "Aé".as_bytes());
        assert_eq!(go_unquote("`raw\\x`").unwrap().0, b"raw\\x");
        for bad in [r#""abc"#, r#""\q""#, r#""\x4""#, "abc", ""] {
            assert!(go_unquote(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn argify_as_etcdctl() {
        let a = argify(r#"put "k\x00" 'v 1' --lease=1a"#).unwrap();
        assert_eq!(a, vec![b"put".to_vec(), b"k\x00".to_vec(), b"v 1".to_vec(), b"--lease=1a".to_vec()]);
    }

    #[test]
    fn compares_and_requests() {
        let c = parse_compare(r#"mod("k1") > "0""#).unwrap();
        assert_eq!(c.target, CompareTarget::Mod as i32);
        assert_eq!(c.result, CompareResult::Greater as i32);
        assert_eq!(c.target_union, Some(TargetUnion::ModRevision(0)));
        let c = parse_compare(r#"value("k\x00") != "v""#).unwrap();
        assert_eq!(c.key, b"k\x00");
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"v".to_vec())));
        for bad in [r#"mod("k") > 0"#, r#"nope("k") = "1""#, r#"mod("k") ~ "1""#, r#"mod("k") = "x""#, "mod"] {
            assert!(parse_compare(bad).is_err(), "{bad}");
        }
        let r = parse_request("get k --prefix --limit 2").unwrap();
        let Some(Request::RequestRange(g)) = r.request else { panic!() };
        assert_eq!((g.range_end, g.limit), (b"l".to_vec(), 2));
        assert!(parse_request("put k").is_err());
        // Found by cargo fuzz (txn_parse): flags but no key.
        assert!(parse_request("get --limit 2").is_err());
        assert!(parse_request("del --prefix x").is_ok());
        assert!(parse_request("del --prefix").is_err());
        assert!(parse_request("frob k v").is_err());
        assert!(parse_request("del k --bogus").is_err());
        let t = parse_txn(&mut "mod(\"a\") = \"0\"\n\nput a 1\n\nget a\n".as_bytes()).unwrap();
        assert_eq!((t.compare.len(), t.success.len(), t.failure.len()), (1, 1, 1));
    }
}

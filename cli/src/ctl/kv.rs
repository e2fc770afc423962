//! `get`, `put`, `del`, `txn`, `compaction` (etcdctl's `get_command.go`,
//! `put_command.go`, `del_command.go`, `txn_command.go`,
//! `compaction_command.go`).

use std::io::BufRead;

use etcdkit_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, SortOrder, SortTarget, TxnRequest,
};

use super::{Ctx, EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_INVALID_INPUT, Exit, Printer, Result};
use crate::txn::{parse_compare, parse_request};

/// The key and range end of `KEY [END]` with `--prefix` / `--from-key`, as
/// etcdctl builds them (an empty key with either flag means all keys).
fn key_range(cx: &Ctx) -> Result<(Vec<u8>, Vec<u8>)> {
    let (prefix, from_key) = (cx.flags.bool("prefix"), cx.flags.bool("from-key"));
    if prefix && from_key {
        return Err(Exit::bad_args("`--prefix` and `--from-key` cannot be set at the same time, choose one"));
    }
    let mut key = cx.args.first().map(|k| super::raw(k)).unwrap_or_default();
    let mut end = Vec::new();
    if let Some(e) = cx.args.get(1) {
        if prefix || from_key {
            return Err(Exit::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        end = super::raw(e);
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            end = vec![0];
        } else {
            end = etcdkit_mvcc::prefix_end(&key);
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        end = vec![0];
    }
    Ok((key, end))
}

pub async fn get(cx: &mut Ctx) -> Result {
    if cx.args.is_empty() {
        return Err(Exit::bad_args("get command needs one argument as key and an optional argument as range_end"));
    }
    let (key, range_end) = key_range(cx)?;
    let serializable = match cx.flags.str("consistency") {
        "s" => true,
        "l" => false,
        c => return Err(Exit::new(EXIT_BAD_FEATURE, format!("unknown consistency flag {c:?}"))),
    };
    let (mut order, target) = crate::kv::sort_options(cx.flags.str("order"), cx.flags.str("sort-by"))
        .map_err(|m| Exit::new(EXIT_BAD_FEATURE, m))?;
    // clientv3's WithSort: ascending by key is the server's own order.
    if target == SortTarget::Key && order == SortOrder::Ascend {
        order = SortOrder::None;
    }
    let req = RangeRequest {
        key,
        range_end,
        limit: cx.flags.int("limit"),
        revision: cx.flags.int("rev").max(0),
        sort_order: order as i32,
        sort_target: target as i32,
        serializable,
        keys_only: cx.flags.bool("keys-only"),
        ..Default::default()
    };
    let c = cx.client().await?;
    let r = rpc!(c, cx.deadline(), kv.range(req))?;
    if cx.flags.bool("print-value-only") {
        match &mut cx.out {
            Printer::Simple { value_only, .. } => *value_only = true,
            _ => return Err(Exit::bad_args("print-value-only is only for `--write-out=simple`")),
        }
    }
    cx.out.get(&r)
}

pub async fn put(cx: &mut Ctx) -> Result {
    let needs = "put command needs 1 argument and input from stdin or 2 arguments";
    if cx.args.is_empty() {
        return Err(Exit::bad_args(needs));
    }
    let ignore_value = cx.flags.bool("ignore-value");
    if ignore_value && cx.args.len() > 1 {
        return Err(Exit::bad_args("put command needs only 1 argument when 'ignore-value' is set"));
    }
    let value = if ignore_value { String::new() } else { cx.arg_or_stdin(1).ok_or_else(|| Exit::bad_args(needs))? };
    let lease = lease_hex(cx.flags.str("lease"))
        .map_err(|e| Exit::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    let req = PutRequest {
        key: super::raw(&cx.args[0]),
        value: super::raw(&value),
        lease,
        prev_kv: cx.flags.bool("prev-kv"),
        ignore_value,
        ignore_lease: cx.flags.bool("ignore-lease"),
    };
    let c = cx.client().await?;
    let r = rpc!(c, cx.deadline(), kv.put(req))?;
    cx.out.put(&r)
}

/// A lease ID in hexadecimal, as Go's `strconv.ParseInt(s, 16, 64)` reads it
/// (the error is Go's).
pub fn lease_hex(s: &str) -> std::result::Result<i64, String> {
    i64::from_str_radix(s, 16).map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing {s:?}: {why}")
    })
}

pub async fn del(cx: &mut Ctx) -> Result {
    if cx.args.is_empty() || cx.args.len() > 2 {
        return Err(Exit::bad_args("del command needs one argument as key and an optional argument as range_end"));
    }
    let (key, range_end) = key_range(cx)?;
    let req = DeleteRangeRequest { key, range_end, prev_kv: cx.flags.bool("prev-kv") };
    let c = cx.client().await?;
    let r = rpc!(c, cx.deadline(), kv.delete_range(req))?;
    cx.out.del(&r)
}

/// One line of a txn's input, as Go's `ReadString('\n')` gives it: input
/// that ends before a newline is `EOF`.
fn read_line(input: &mut dyn BufRead) -> Result<String> {
    let mut line = String::new();
    match input.read_line(&mut line) {
        Ok(_) if line.ends_with('\n') => Ok(line.trim().to_string()),
        Ok(_) => Err(Exit::new(EXIT_INVALID_INPUT, "EOF")),
        Err(e) => Err(Exit::new(EXIT_INVALID_INPUT, e)),
    }
}

/// Reads a transaction in etcdctl's syntax: compares, a blank line, the
/// success requests, a blank line, the failure requests, a blank line (with
/// `-i`, each part after its prompt).
pub fn read_txn(input: &mut dyn BufRead, interactive: bool) -> Result<TxnRequest> {
    let prompt = |s: &str| {
        if interactive {
            crate::say!("{s}");
        }
    };
    let mut txn = TxnRequest::default();
    prompt("compares:");
    loop {
        let line = read_line(input)?;
        if line.is_empty() {
            break;
        }
        txn.compare.push(parse_compare(&line).map_err(|e| Exit::new(EXIT_INVALID_INPUT, e))?);
    }
    for (i, p) in ["success requests (get, put, del):", "failure requests (get, put, del):"].into_iter().enumerate() {
        prompt(p);
        loop {
            let line = read_line(input)?;
            if line.is_empty() {
                break;
            }
            // The put / get / del commands' own refusals exit as those commands do.
            let op = parse_request(&line).map_err(|e| {
                let own = ["put command", "get command", "del command", "too many arguments", "`--prefix`"];
                Exit::new(if own.iter().any(|p| e.starts_with(p)) { EXIT_BAD_ARGS } else { EXIT_INVALID_INPUT }, e)
            })?;
            if i == 0 { txn.success.push(op) } else { txn.failure.push(op) }
        }
    }
    Ok(txn)
}

pub async fn txn(cx: &mut Ctx) -> Result {
    if !cx.args.is_empty() {
        return Err(Exit::bad_args("txn command does not accept argument"));
    }
    let c = cx.client().await?;
    let req = read_txn(&mut std::io::stdin().lock(), cx.flags.bool("interactive"))?;
    // etcdctl's txn has no deadline of its own. Through the retry: a
    // token that expired while the user typed is renewed, as clientv3 does.
    let r = rpc!(c, super::forever(), kv.txn(req))?;
    cx.out.txn(&r)
}

pub async fn compaction(cx: &mut Ctx) -> Result {
    if cx.args.len() != 1 {
        return Err(Exit::bad_args("compaction command needs 1 argument"));
    }
    let rev: i64 = cx.args[0]
        .parse()
        .map_err(|_| Exit::error(format!("strconv.ParseInt: parsing {:?}: invalid syntax", cx.args[0])))?;
    let c = cx.client().await?;
    let req = CompactionRequest { revision: rev, physical: cx.flags.bool("physical") };
    rpc!(c, cx.deadline(), kv.compact(req))?;
    crate::say!("compacted revision {rev}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_txn_reads_as_etcdctl_reads_it() {
        let input = "mod(\"k\") > \"0\"\n\nput k v\n\nget k\n\n";
        let t = read_txn(&mut input.as_bytes(), false).unwrap();
        assert_eq!((t.compare.len(), t.success.len(), t.failure.len()), (1, 1, 1));
        let cut = read_txn(&mut "\nput k v\n".as_bytes(), false).unwrap_err();
        assert_eq!((cut.code, cut.msg.as_str()), (EXIT_INVALID_INPUT, "EOF"));
    }

    #[test]
    fn lease_ids_are_hex() {
        assert_eq!(lease_hex("0"), Ok(0));
        assert_eq!(lease_hex("694d77aa9e38260f"), Ok(0x694d77aa9e38260f));
        assert_eq!(lease_hex("zz").unwrap_err(), "strconv.ParseInt: parsing \"zz\": invalid syntax");
    }
}

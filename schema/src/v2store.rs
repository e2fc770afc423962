//! The v2 store JSON that etcd 3.4 keeps in a raft `.snap` file, for the
//! bootstrap store a restore writes: every member's `raftAttributes` under
//! `/0/members/<id hex>`, created at indexes 1..n in member-ID order.
//!
//! The text is Go's `json.Marshal` of etcd's `v2store.store` (fields `Root`,
//! `WatcherHub`, `CurrentIndex`, `Stats`, `CurrentVersion`; map keys sorted;
//! the watcher hub's event ring of capacity 1000 written in full, unused
//! slots as `null`), byte-identical to what `etcdctl snapshot restore` writes.

use etcdkit_proto::gojson::{Obj, push_str};
use etcdkit_proto::membership::Member;

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
const EVENT_CAPACITY: usize = 1000;

/// A member's `raftAttributes` value: `{"peerURLs":[…]}` (+ `"isLearner":true`).
pub fn raft_attributes(m: &Member) -> String {
    let mut s = String::from("{\"peerURLs\":[");
    for (i, u) in m.peer_urls.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_str(&mut s, u);
    }
    s.push(']');
    if m.is_learner {
        s.push_str(",\"isLearner\":true");
    }
    s.push('}');
    s
}

fn node(path: &str, created: u64, value: &str, children: Option<&str>) -> String {
    Obj::new()
        .str("Path", path)
        .raw("CreatedIndex", created)
        .raw("ModifiedIndex", created)
        .str("ExpireTime", ZERO_TIME)
        .str("Value", value)
        .raw("Children", children.unwrap_or("null"))
        .end()
}

/// The v2 store after adding `members` (in the given order) to a new store.
pub fn bootstrap_store_json(members: &[Member]) -> Vec<u8> {
    let n = members.len() as u64;
    // /0/members/<id> children, sorted by the hex text as Go sorts map keys.
    let mut by_name: Vec<(String, u64, &Member)> =
        members.iter().enumerate().map(|(i, m)| (format!("{:x}", m.id), i as u64 + 1, m)).collect();
    by_name.sort_by(|a, b| a.0.cmp(&b.0));
    let mut member_nodes = String::from("{");
    for (i, (hex, idx, m)) in by_name.iter().enumerate() {
        if i > 0 {
            member_nodes.push(',');
        }
        let dir = format!("/0/members/{hex}");
        let attrs = node(&format!("{dir}/raftAttributes"), *idx, &raft_attributes(m), None);
        push_str(&mut member_nodes, hex);
        member_nodes.push(':');
        member_nodes.push_str(&node(&dir, *idx, "", Some(&format!("{{\"raftAttributes\":{attrs}}}"))));
    }
    member_nodes.push('}');
    let zero_children = if members.is_empty() {
        "{}".to_string()
    } else {
        format!("{{\"members\":{}}}", node("/0/members", 1, "", Some(&member_nodes)))
    };
    let root_children =
        format!("{{\"0\":{},\"1\":{}}}", node("/0", 0, "", Some(&zero_children)), node("/1", 0, "", Some("{}")));
    let root = node("/", 0, "", Some(&root_children));

    let mut events = String::from("[");
    for (i, m) in members.iter().enumerate() {
        let idx = i as u64 + 1;
        let key = format!("/0/members/{:x}/raftAttributes", m.id);
        let nodej = Obj::new()
            .str("key", &key)
            .str("value", &raft_attributes(m))
            .raw("modifiedIndex", idx)
            .raw("createdIndex", idx)
            .end();
        events.push_str(&Obj::new().str("action", "create").raw("node", nodej).end());
        events.push(',');
    }
    for i in members.len()..EVENT_CAPACITY {
        events.push_str("null");
        if i + 1 < EVENT_CAPACITY {
            events.push(',');
        }
    }
    events.push(']');
    let queue = Obj::new()
        .raw("Events", events)
        .raw("Size", n)
        .raw("Front", 0)
        .raw("Back", n % EVENT_CAPACITY as u64)
        .raw("Capacity", EVENT_CAPACITY)
        .end();
    let (start, last) = if n == 0 { (0, 0) } else { (1, n) };
    let history = Obj::new().raw("Queue", queue).raw("StartIndex", start).raw("LastIndex", last).end();
    let hub = Obj::new().raw("EventHistory", history).end();
    let mut stats = Obj::new();
    for k in ["getsSuccess", "getsFail", "setsSuccess", "setsFail", "deleteSuccess", "deleteFail"] {
        stats.raw(k, 0);
    }
    stats.raw("updateSuccess", 0).raw("updateFail", 0).raw("createSuccess", n).raw("createFail", 0);
    for k in ["compareAndSwapSuccess", "compareAndSwapFail", "compareAndDeleteSuccess", "compareAndDeleteFail"] {
        stats.raw(k, 0);
    }
    stats.raw("expireCount", 0).raw("watchers", 0);
    Obj::new()
        .raw("Root", root)
        .raw("WatcherHub", hub)
        .raw("CurrentIndex", n)
        .raw("Stats", stats.end())
        .raw("CurrentVersion", 2)
        .end()
        .into_bytes()
}

/// A member's `attributes` value: `{"name":…,"clientURLs":[…]}` (both
/// omitted when empty), as etcd 3.4 publishes it.
pub fn attributes(m: &Member) -> String {
    let mut o = Obj::new();
    if !m.name.is_empty() {
        o.str("name", &m.name);
    }
    if !m.client_urls.is_empty() {
        let mut urls = String::from("[");
        for (i, u) in m.client_urls.iter().enumerate() {
            if i > 0 {
                urls.push(',');
            }
            push_str(&mut urls, u);
        }
        urls.push(']');
        o.raw("clientURLs", urls);
    }
    o.end()
}

/// A user key of the v2 store: its path under `/1`'s namespace (`/a/b`),
/// its value (`None`: a directory), created and modified indexes.
pub type V2Key<'a> = (&'a str, Option<&'a str>, u64, u64);

/// The `/1` subtree's children holding `keys` below `dir` (`/` for the top).
fn user_children(keys: &[V2Key<'_>], dir: &str) -> String {
    let prefix = if dir == "/" { "/".to_string() } else { format!("{dir}/") };
    let mut out = String::from("{");
    let mut first = true;
    for (path, value, created, modified) in keys {
        let Some(rest) = path.strip_prefix(&prefix) else { continue };
        if rest.is_empty() || rest.contains('/') {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_str(&mut out, rest);
        out.push(':');
        let full = format!("/1{path}");
        let children = value.is_none().then(|| user_children(keys, path));
        out.push_str(
            &Obj::new()
                .str("Path", &full)
                .raw("CreatedIndex", created)
                .raw("ModifiedIndex", modified)
                .str("ExpireTime", ZERO_TIME)
                .str("Value", value.unwrap_or(""))
                .raw("Children", children.as_deref().unwrap_or("null"))
                .end(),
        );
    }
    out.push('}');
    out
}

/// The v2 store of a running cluster, what an etcd 3.4 member rebuilds its
/// membership (and v2 keys) from when it installs a leader's snapshot, and
/// what a raft `.snap` holds: `/0/members/<id>/raftAttributes` and
/// `attributes`, `/0/removed_members/<id>`, `/0/version`, and the user keys
/// under `/1` (sorted by path). Membership nodes are numbered in the order
/// written; the event history is empty.
pub fn store_json(members: &[Member], removed: &[u64], version: Option<&str>, keys: &[V2Key<'_>]) -> Vec<u8> {
    let mut index = 0u64;
    let mut next = || {
        index += 1;
        index
    };
    let mut sorted: Vec<(String, &Member)> = members.iter().map(|m| (format!("{:x}", m.id), m)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut member_nodes = String::from("{");
    for (i, (hex, m)) in sorted.iter().enumerate() {
        if i > 0 {
            member_nodes.push(',');
        }
        let dir = format!("/0/members/{hex}");
        let created = next();
        let mut children = String::from("{");
        if !m.name.is_empty() || !m.client_urls.is_empty() {
            let a = node(&format!("{dir}/attributes"), next(), &attributes(m), None);
            children.push_str(&format!("\"attributes\":{a},"));
        }
        let r = node(&format!("{dir}/raftAttributes"), next(), &raft_attributes(m), None);
        children.push_str(&format!("\"raftAttributes\":{r}}}"));
        push_str(&mut member_nodes, hex);
        member_nodes.push(':');
        member_nodes.push_str(&node(&dir, created, "", Some(&children)));
    }
    member_nodes.push('}');
    let mut zero = vec![format!("\"members\":{}", node("/0/members", 0, "", Some(&member_nodes)))];
    if !removed.is_empty() {
        let mut ids: Vec<String> = removed.iter().map(|id| format!("{id:x}")).collect();
        ids.sort();
        let mut nodes = String::from("{");
        for (i, hex) in ids.iter().enumerate() {
            if i > 0 {
                nodes.push(',');
            }
            push_str(&mut nodes, hex);
            nodes.push(':');
            nodes.push_str(&node(&format!("/0/removed_members/{hex}"), next(), "", None));
        }
        nodes.push('}');
        zero.push(format!("\"removed_members\":{}", node("/0/removed_members", 0, "", Some(&nodes))));
    }
    if let Some(v) = version {
        zero.push(format!("\"version\":{}", node("/0/version", next(), v, None)));
    }
    let zero_children = format!("{{{}}}", zero.join(","));
    let user = user_children(keys, "/");
    let root_children =
        format!("{{\"0\":{},\"1\":{}}}", node("/0", 0, "", Some(&zero_children)), node("/1", 0, "", Some(&user)));
    let root = node("/", 0, "", Some(&root_children));
    let index = index.max(keys.iter().map(|k| k.3).max().unwrap_or(0));
    let events = format!("[{}]", vec!["null"; EVENT_CAPACITY].join(","));
    let queue = Obj::new()
        .raw("Events", events)
        .raw("Size", 0)
        .raw("Front", 0)
        .raw("Back", 0)
        .raw("Capacity", EVENT_CAPACITY)
        .end();
    let history = Obj::new().raw("Queue", queue).raw("StartIndex", 0).raw("LastIndex", 0).end();
    let hub = Obj::new().raw("EventHistory", history).end();
    let mut stats = Obj::new();
    for k in [
        "getsSuccess",
        "getsFail",
        "setsSuccess",
        "setsFail",
        "deleteSuccess",
        "deleteFail",
        "updateSuccess",
        "updateFail",
        "createSuccess",
        "createFail",
        "compareAndSwapSuccess",
        "compareAndSwapFail",
        "compareAndDeleteSuccess",
        "compareAndDeleteFail",
        "expireCount",
        "watchers",
    ] {
        stats.raw(k, 0);
    }
    Obj::new()
        .raw("Root", root)
        .raw("WatcherHub", hub)
        .raw("CurrentIndex", index)
        .raw("Stats", stats.end())
        .raw("CurrentVersion", 2)
        .end()
        .into_bytes()
}

//! etcd's v2 keys (`--enable-v2`, `etcdserver/api/v2store`): a tree of
//! directories and keys beside the v3 store, changed only through raft (v2
//! `Request`s with paths under `/1`, as etcd 3.4 keeps user keys there) and
//! kept in memory. Like etcd, the tree is saved in the raft `.snap` files
//! (the v2 store JSON) and rebuilt at start from the newest one plus the log
//! after it.
//!
//! Indexes: a node's `createdIndex` / `modifiedIndex` is the raft index of
//! the entry that wrote it (etcd counts v2 writes instead; both only grow,
//! and every member agrees on ours).
//!
//! Not kept: TTLs (a key with `ttl` is refused), in-order keys (`POST`) and
//! watches.

use std::collections::BTreeMap;

use etcdkit_proto::etcdserverpb::Request;
use etcdkit_proto::gojson::push_str;

/// Where etcd 3.4 keeps user keys in the v2 store.
pub const KEYS_PREFIX: &str = "/1";

/// Whether a v2 request is about user keys (not etcd's own `/0` records).
pub fn is_user_request(r: &Request) -> bool {
    r.path == KEYS_PREFIX || r.path.starts_with("/1/")
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    /// `None`: a directory.
    value: Option<String>,
    created: u64,
    modified: u64,
}

/// A node as an answer shows it (`recursive` listing below directories).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub key: String,
    pub value: Option<String>,
    pub dir: bool,
    pub nodes: Option<Vec<NodeView>>,
    pub created: u64,
    pub modified: u64,
}

/// A v2 answer: etcd's `Event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub action: &'static str,
    pub node: NodeView,
    pub prev: Option<NodeView>,
    /// The store's index after the request (`X-Etcd-Index`).
    pub index: u64,
}

/// etcd's v2 errors (`v2error`): code, message, cause, index.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message} ({cause}) [{index}]")]
pub struct V2Error {
    pub code: u32,
    pub message: &'static str,
    pub cause: String,
    pub index: u64,
}

impl V2Error {
    fn new(code: u32, cause: &str, index: u64) -> V2Error {
        let message = match code {
            100 => "Key not found",
            101 => "Compare failed",
            102 => "Not a file",
            104 => "Not a directory",
            105 => "Key already exists",
            107 => "Root is read only",
            108 => "Directory not empty",
            209 => "Invalid field",
            _ => "Unsupported request",
        };
        V2Error { code, message, cause: cause.to_string(), index }
    }

    /// The HTTP status etcd answers this error with.
    pub fn status(&self) -> u16 {
        match self.code {
            100 => 404,
            101 | 105 => 412,
            102 | 104 | 107 | 108 => 403,
            _ => 400,
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = format!("{{\"errorCode\":{},\"message\":", self.code);
        push_str(&mut s, self.message);
        s.push_str(",\"cause\":");
        push_str(&mut s, &self.cause);
        s.push_str(&format!(",\"index\":{}}}", self.index));
        s
    }
}

impl NodeView {
    fn push_json(&self, s: &mut String) {
        s.push_str("{\"key\":");
        push_str(s, &self.key);
        if self.dir {
            s.push_str(",\"dir\":true");
        }
        if let Some(v) = &self.value {
            s.push_str(",\"value\":");
            push_str(s, v);
        }
        if let Some(children) = &self.nodes {
            s.push_str(",\"nodes\":[");
            for (i, c) in children.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                c.push_json(s);
            }
            s.push(']');
        }
        s.push_str(&format!(",\"modifiedIndex\":{},\"createdIndex\":{}}}", self.modified, self.created));
    }
}

impl Event {
    /// etcd's JSON of the event (field order as Go writes it).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"action\":");
        push_str(&mut s, self.action);
        s.push_str(",\"node\":");
        self.node.push_json(&mut s);
        if let Some(p) = &self.prev {
            s.push_str(",\"prevNode\":");
            p.push_json(&mut s);
        }
        s.push('}');
        s
    }
}

/// The user keys of the v2 store.
#[derive(Clone, Debug, Default)]
pub struct V2Store {
    /// By clean path (`/a/b`); the root `/` is implicit.
    nodes: BTreeMap<String, Node>,
    index: u64,
}

/// `/a//b/` → `/a/b` (etcd's `path.Clean` of `"/" + key`).
fn clean(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl V2Store {
    /// The store's index (the raft index of its last write).
    pub fn index(&self) -> u64 {
        self.index
    }

    fn view(&self, path: &str, recursive: bool, sorted: bool, depth: usize) -> NodeView {
        let n = self.nodes.get(path);
        let dir = n.is_none_or(|n| n.value.is_none());
        let nodes = dir.then(|| {
            if depth > 0 && !recursive {
                return Vec::new();
            }
            let prefix = if path == "/" { "/".to_string() } else { format!("{path}/") };
            let mut children: Vec<NodeView> = self
                .nodes
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .filter(|(k, _)| !k[prefix.len()..].contains('/'))
                .map(|(k, _)| self.view(k, recursive, sorted, depth + 1))
                .collect();
            if sorted {
                children.sort_by(|a, b| a.key.cmp(&b.key));
            }
            children
        });
        // etcd omits an unlisted directory's children (depth > 0, not recursive).
        let nodes = nodes.filter(|c| depth == 0 || recursive || !c.is_empty());
        NodeView {
            key: path.to_string(),
            value: n.and_then(|n| n.value.clone()),
            dir,
            nodes,
            created: n.map_or(0, |n| n.created),
            modified: n.map_or(0, |n| n.modified),
        }
    }

    fn bare(&self, path: &str) -> Option<NodeView> {
        let n = self.nodes.get(path)?;
        Some(NodeView {
            key: path.to_string(),
            value: n.value.clone(),
            dir: n.value.is_none(),
            nodes: None,
            created: n.created,
            modified: n.modified,
        })
    }

    /// A read (`GET`, or `QGET` through raft).
    pub fn get(&self, key: &str, recursive: bool, sorted: bool) -> Result<Event, V2Error> {
        let path = clean(key);
        if path != "/" && !self.nodes.contains_key(&path) {
            return Err(V2Error::new(100, &path, self.index));
        }
        let mut node = self.view(&path, recursive, sorted, 0);
        if !node.dir {
            node.nodes = None;
        }
        Ok(Event { action: "get", node, prev: None, index: self.index })
    }

    /// Applies one v2 request whose path is under [`KEYS_PREFIX`], written
    /// at raft index `at`.
    pub fn apply(&mut self, req: &Request, at: u64) -> Result<Event, V2Error> {
        let key = req.path.strip_prefix(KEYS_PREFIX).unwrap_or(&req.path);
        match req.method.as_str() {
            "GET" | "QGET" => self.get(key, req.recursive, req.sorted),
            "PUT" => self.put(key, req, at),
            "DELETE" => self.delete(key, req, at),
            _ => Err(V2Error::new(209, &req.method, self.index)),
        }
    }

    fn compare(&self, path: &str, n: &Node, req: &Request) -> Result<(), V2Error> {
        let value_ok = req.prev_value.is_empty() || n.value.as_deref() == Some(req.prev_value.as_str());
        let index_ok = req.prev_index == 0 || n.modified == req.prev_index;
        if value_ok && index_ok {
            return Ok(());
        }
        let cause = match (value_ok, index_ok) {
            (false, true) => format!("[{} != {}]", req.prev_value, n.value.as_deref().unwrap_or("")),
            (true, false) => format!("[{} != {}]", req.prev_index, n.modified),
            _ => format!(
                "[{} != {}] [{} != {}]",
                req.prev_value,
                n.value.as_deref().unwrap_or(""),
                req.prev_index,
                n.modified
            ),
        };
        let _ = path;
        Err(V2Error::new(101, &cause, self.index))
    }

    fn put(&mut self, key: &str, req: &Request, at: u64) -> Result<Event, V2Error> {
        let path = clean(key);
        if path == "/" {
            return Err(V2Error::new(107, "/", self.index));
        }
        if req.expiration != 0 {
            return Err(V2Error::new(209, "ttl: etcdkit keeps no v2 TTLs", self.index));
        }
        let existing = self.nodes.get(&path).cloned();
        let prev = self.bare(&path);
        let action = match (&existing, req.prev_exist) {
            (Some(_), Some(false)) => return Err(V2Error::new(105, &path, self.index)),
            (None, Some(true)) => return Err(V2Error::new(100, &path, self.index)),
            (Some(n), _) => {
                if n.value.is_none() {
                    // A directory is neither set over nor updated (etcd: "Not a file").
                    if !req.dir || req.prev_exist != Some(true) {
                        return Err(V2Error::new(102, &path, self.index));
                    }
                }
                self.compare(&path, n, req)?;
                if !req.prev_value.is_empty() || req.prev_index != 0 {
                    "compareAndSwap"
                } else if req.prev_exist == Some(true) {
                    "update"
                } else {
                    "set"
                }
            }
            (None, _) if !req.prev_value.is_empty() || req.prev_index != 0 => {
                return Err(V2Error::new(100, &path, self.index));
            }
            (None, Some(false)) => "create",
            (None, _) => "set",
        };
        // Parents must be (or become) directories.
        let mut p = parent(&path).to_string();
        let mut missing = Vec::new();
        while p != "/" {
            match self.nodes.get(&p) {
                Some(n) if n.value.is_some() => return Err(V2Error::new(104, &p, self.index)),
                Some(_) => break,
                None => missing.push(p.clone()),
            }
            p = parent(&p).to_string();
        }
        for d in missing {
            self.nodes.insert(d, Node { value: None, created: at, modified: at });
        }
        let value = (!req.dir).then(|| req.val.clone());
        let created = existing.as_ref().map_or(at, |n| n.created);
        self.nodes.insert(path.clone(), Node { value, created, modified: at });
        self.index = at;
        let node = self.bare(&path).expect("just written");
        Ok(Event { action, node, prev: prev.filter(|_| existing.is_some()), index: at })
    }

    fn delete(&mut self, key: &str, req: &Request, at: u64) -> Result<Event, V2Error> {
        let path = clean(key);
        if path == "/" {
            return Err(V2Error::new(107, "/", self.index));
        }
        let Some(n) = self.nodes.get(&path).cloned() else {
            return Err(V2Error::new(100, &path, self.index));
        };
        let prefix = format!("{path}/");
        let has_children = self.nodes.range(prefix.clone()..).next().is_some_and(|(k, _)| k.starts_with(&prefix));
        if n.value.is_none() {
            if !req.dir && !req.recursive {
                return Err(V2Error::new(102, &path, self.index));
            }
            if has_children && !req.recursive {
                return Err(V2Error::new(108, &path, self.index));
            }
        }
        self.compare(&path, &n, req)?;
        let prev = self.bare(&path);
        let action = if !req.prev_value.is_empty() || req.prev_index != 0 { "compareAndDelete" } else { "delete" };
        self.nodes.retain(|k, _| k != &path && !k.starts_with(&prefix));
        self.index = at;
        let node =
            NodeView { key: path, value: None, dir: n.value.is_none(), nodes: None, created: n.created, modified: at };
        Ok(Event { action, node, prev, index: at })
    }

    /// Every node, for the `.snap` JSON: (path, value or `None` for a
    /// directory, created, modified).
    pub fn nodes(&self) -> impl Iterator<Item = (&str, Option<&str>, u64, u64)> {
        self.nodes.iter().map(|(k, n)| (k.as_str(), n.value.as_deref(), n.created, n.modified))
    }

    /// Rebuilds the tree from the `/1` subtree of a `.snap`'s v2 store JSON.
    pub fn from_snapshot_json(data: &[u8]) -> V2Store {
        let mut s = V2Store::default();
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return s };
        fn walk(s: &mut V2Store, n: &serde_json::Value) {
            let Some(children) = n.get("Children").and_then(|c| c.as_object()) else { return };
            for c in children.values() {
                let Some(path) = c.get("Path").and_then(|p| p.as_str()) else { continue };
                let key = path.strip_prefix(KEYS_PREFIX).unwrap_or(path).to_string();
                let dir = c.get("Children").is_some_and(|c| !c.is_null());
                let created = c.get("CreatedIndex").and_then(|v| v.as_u64()).unwrap_or(0);
                let modified = c.get("ModifiedIndex").and_then(|v| v.as_u64()).unwrap_or(0);
                let value = (!dir).then(|| c.get("Value").and_then(|v| v.as_str()).unwrap_or("").to_string());
                s.index = s.index.max(modified);
                s.nodes.insert(key, Node { value, created, modified });
                if dir {
                    walk(s, c);
                }
            }
        }
        if let Some(user) = v.get("Root").and_then(|r| r.get("Children")).and_then(|c| c.get("1")) {
            walk(&mut s, user);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, val: &str) -> Request {
        Request { method: "PUT".into(), path: format!("/1{key}"), val: val.into(), ..Default::default() }
    }

    #[test]
    fn set_mk_get_ls_rm_as_etcd_answers() {
        let mut s = V2Store::default();
        let e = s.apply(&put("/foo", "bar"), 10).unwrap();
        assert_eq!(
            e.to_json(),
            r#"{"action":"set","node":{"key":"/foo","value":"bar","modifiedIndex":10,"createdIndex":10}}"#
        );
        let mk = Request { prev_exist: Some(false), ..put("/foo", "baz") };
        let err = s.apply(&mk, 11).unwrap_err();
        assert_eq!(err.to_string(), "105: Key already exists (/foo) [10]");
        assert_eq!(err.status(), 412);
        let e = s.apply(&put("/dir/a", "1"), 12).unwrap();
        assert_eq!(e.action, "set");
        let ls = s.get("/", false, true).unwrap();
        let keys: Vec<&str> = ls.node.nodes.as_ref().unwrap().iter().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, ["/dir", "/foo"]);
        assert_eq!(s.get("/nope", false, false).unwrap_err().code, 100);
        let rm = Request { method: "DELETE".into(), path: "/1/foo".into(), ..Default::default() };
        let e = s.apply(&rm, 13).unwrap();
        assert_eq!(e.prev.unwrap().value.as_deref(), Some("bar"));
        assert_eq!(s.apply(&rm, 14).unwrap_err().code, 100);
        // A directory is not removed without dir/recursive.
        let rmdir = Request { method: "DELETE".into(), path: "/1/dir".into(), ..Default::default() };
        assert_eq!(s.apply(&rmdir, 15).unwrap_err().code, 102);
        let rec = Request { recursive: true, ..rmdir };
        assert!(s.apply(&rec, 16).is_ok());
        assert!(s.get("/dir/a", false, false).is_err());
    }
}

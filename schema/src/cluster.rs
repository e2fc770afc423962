//! Bootstrap membership as etcd derives it (`membership.NewClusterFromURLsMap`,
//! `ServerConfig.VerifyBootstrap`):
//!
//! - `--initial-cluster` is `name=url,name=url,…`; a name may appear more than
//!   once (several peer URLs). URLs must be `http`/`https` `host:port` (or
//!   `unix`/`unixs`) without a path; each member's URLs are sorted.
//! - member ID = the first 8 bytes (big-endian) of
//!   `SHA-1(concat(sorted peer URLs) ++ cluster token)`; the name is not part of it.
//! - cluster ID = the first 8 bytes (big-endian) of
//!   `SHA-1(concat(BE8(id) for id in sorted member IDs))`.
//!
//! One difference from etcd: `--initial-advertise-peer-urls` is compared with
//! the member's `--initial-cluster` URLs as strings; etcd also resolves host
//! names to compare them.

use std::collections::BTreeMap;

use etcdkit_proto::membership::Member;
use sha1::{Digest, Sha1};

use crate::Error;

/// A bootstrap cluster: members sorted by ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub id: u64,
    pub members: Vec<Member>,
}

impl Cluster {
    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// Member IDs, ascending.
    pub fn member_ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }
}

/// Parses a comma-separated URL list as etcd's `types.NewURLs` does: trimmed,
/// validated, sorted.
pub fn parse_urls(s: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for u in s.split(',') {
        out.push(check_url(u.trim())?);
    }
    out.sort();
    Ok(out)
}

fn check_url(u: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::Config(format!("{why}: {u}"));
    let (scheme, rest) = u.split_once("://").ok_or_else(|| bad("URL scheme must be http, https, unix, or unixs"))?;
    match scheme {
        "http" | "https" => {
            let (host, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if !path.is_empty() {
                return Err(bad("URL must not contain a path"));
            }
            // net.SplitHostPort: a port after the host (after `]` for IPv6).
            let tail = host.rsplit_once(']').map_or(host, |(_, t)| t);
            if !tail.contains(':') {
                return Err(bad("URL address does not have the form \"host:port\""));
            }
            Ok(u.to_string())
        }
        "unix" | "unixs" => Ok(u.to_string()),
        _ => Err(bad("URL scheme must be http, https, unix, or unixs")),
    }
}

/// Parses `--initial-cluster` (`types.NewURLsMap`): name → sorted URLs.
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let mut raw: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in s.split(',') {
        if item.is_empty() {
            continue;
        }
        let (name, url) = item.split_once('=').unwrap_or((item, ""));
        raw.entry(name.to_string()).or_default().push(url.to_string());
    }
    let mut out = BTreeMap::new();
    for (name, urls) in raw {
        let mut us = Vec::new();
        for u in &urls {
            us.push(check_url(u.trim())?);
        }
        us.sort();
        out.insert(name, us);
    }
    Ok(out)
}

/// etcd's member ID for a bootstrap member: SHA-1 of its sorted peer URLs and the token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut sorted = peer_urls.to_vec();
    sorted.sort();
    let mut h = Sha1::new();
    for u in &sorted {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("sha1 has 20 bytes"))
}

/// etcd's cluster ID: SHA-1 of the sorted member IDs, 8 bytes big-endian each.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("sha1 has 20 bytes"))
}

/// Builds the bootstrap cluster and checks the local member as etcd's
/// `VerifyBootstrap` does: `name` must be in `initial_cluster`, its URLs must
/// equal `advertise_peer_urls`, and no URL may be used twice.
pub fn bootstrap(name: &str, initial_cluster: &str, token: &str, advertise_peer_urls: &str) -> Result<Cluster, Error> {
    let map = parse_initial_cluster(initial_cluster)?;
    if map.is_empty() {
        return Err(Error::Config("initial cluster unset and no discovery URL found".into()));
    }
    let Some(local) = map.get(name) else {
        return Err(Error::Config(format!("couldn't find local name {name:?} in the initial cluster configuration")));
    };
    let advertised = parse_urls(advertise_peer_urls)?;
    if &advertised != local {
        let missing: Vec<&str> = local.iter().filter(|u| !advertised.contains(u)).map(|s| s.as_str()).collect();
        return Err(Error::Config(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} (\"{}\" differs from \"{}\")",
            if missing.is_empty() { format!("{name}={}", local.join(",")) } else { missing.join(",") },
            advertised.join(","),
            advertised.join(","),
            local.join(","),
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for u in map.values().flatten() {
        if !seen.insert(u) {
            return Err(Error::Config(format!("initial cluster {initial_cluster} has duplicate url")));
        }
    }
    let mut members: Vec<Member> = Vec::new();
    for (n, urls) in &map {
        let id = member_id(urls, token);
        if id == 0 {
            return Err(Error::Config(format!("cannot use {id:x} as member id")));
        }
        if members.iter().any(|m| m.id == id) {
            return Err(Error::Config(format!("member exists with identical ID {id:x}")));
        }
        members.push(Member { id, peer_urls: urls.clone(), name: n.clone(), ..Default::default() });
    }
    members.sort_by_key(|m| m.id);
    Ok(Cluster { id: cluster_id(&members.iter().map(|m| m.id).collect::<Vec<_>>()), members })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_as_etcd_derives_them() {
        // IDs of real etcd 3.4 members bootstrapped with these URLs and tokens.
        let a = member_id(&["http://127.0.0.1:24900".into()], "tok-r");
        let b = member_id(&["http://127.0.0.1:24901".into()], "tok-r");
        assert_eq!(a, 0x70a1c11d96c327ed);
        assert_eq!(b, 0x75f0cf43888014e2);
        assert_eq!(cluster_id(&[b, a]), 0xd8f18e8d630d5cf7);
        let v = member_id(&["http://127.0.0.1:24800".into()], "tok-v");
        assert_eq!(v, 0xadcece1cd1eadf41);
        assert_eq!(cluster_id(&[v]), 0x367aed037e886e71);
    }

    #[test]
    fn bootstrap_checks_the_local_member() {
        let c = bootstrap("a", "a=http://h:1,b=http://h:2,b=http://h:3", "t", "http://h:1").unwrap();
        assert_eq!(c.members.len(), 2);
        assert_eq!(c.member("b").unwrap().peer_urls, vec!["http://h:2", "http://h:3"]);
        assert!(
            matches!(bootstrap("x", "a=http://h:1", "t", "http://h:1"), Err(Error::Config(m)) if m.contains("local name"))
        );
        assert!(bootstrap("a", "a=http://h:1", "t", "http://h:2").is_err());
        assert!(bootstrap("a", "a=http://h:1,b=http://h:1", "t", "http://h:1").is_err());
        assert!(bootstrap("a", "a=ftp://h:1", "t", "ftp://h:1").is_err());
        assert!(bootstrap("a", "a=http://h:1/x", "t", "http://h:1/x").is_err());
        assert!(bootstrap("a", "", "t", "http://h:1").is_err());
    }
}

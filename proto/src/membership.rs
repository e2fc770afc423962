//! Cluster membership as etcd stores it: the JSON of a member (the `members`
//! bucket's values, and the context of a ConfChange that adds a member), and
//! etcd 3.5's `membershippb` raft requests.

use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// etcd's `membership.Member`: `{"id":…,"peerURLs":[…],"name":…,"clientURLs":[…]}`
/// (`isLearner` when set; `name` and `clientURLs` omitted when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    /// etcd writes `null` for a promotion's context (no URLs).
    #[serde(rename = "peerURLs", default, deserialize_with = "null_as_empty")]
    pub peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default, skip_serializing_if = "is_false")]
    pub is_learner: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// The context of etcd's add and promote conf changes
/// (`membership.ConfigChangeContext`): the member and whether the change
/// promotes an existing learner.
pub fn conf_change_context(m: &Member, is_promote: bool) -> Vec<u8> {
    if is_promote {
        // etcd's promotion names the member only.
        return format!("{{\"id\":{},\"peerURLs\":null,\"isPromote\":true}}", m.id).into_bytes();
    }
    let mut b = m.to_json();
    b.pop();
    b.extend_from_slice(b",\"isPromote\":false}");
    b
}

/// Whether a conf change context asks for a promotion (`"isPromote":true`).
pub fn is_promote(context: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "isPromote", default)]
        is_promote: bool,
    }
    serde_json::from_slice::<P>(context).is_ok_and(|p| p.is_promote)
}

impl Member {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("member serializes")
    }

    pub fn from_json(b: &[u8]) -> Result<Member, serde_json::Error> {
        serde_json::from_slice(b)
    }
}

/// etcd 3.5's `membershippb.Attributes` (the raft requests below).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Attributes {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, repeated, tag = "2")]
    pub client_urls: Vec<String>,
}

/// etcd 3.5's raft request that sets the cluster version (3.5 still
/// publishes it as a v2 `PUT /0/version`; later versions use this).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ClusterVersionSetRequest {
    #[prost(string, tag = "1")]
    pub ver: String,
}

/// etcd 3.5's raft request that publishes a member's attributes.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ClusterMemberAttrSetRequest {
    #[prost(uint64, tag = "1")]
    pub member_id: u64,
    #[prost(message, optional, tag = "2")]
    pub member_attributes: Option<Attributes>,
}

/// etcd 3.5's raft request that starts or cancels a downgrade.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DowngradeInfoSetRequest {
    #[prost(bool, tag = "1")]
    pub enabled: bool,
    #[prost(string, tag = "2")]
    pub ver: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_json_as_etcd_writes_it() {
        let m = Member {
            id: 16248736461173127023,
            peer_urls: vec!["http://127.0.0.1:23800".into()],
            name: "n1".into(),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(m.to_json()).unwrap(),
            r#"{"id":16248736461173127023,"peerURLs":["http://127.0.0.1:23800"],"name":"n1"}"#
        );
        assert_eq!(Member::from_json(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn conf_change_contexts_as_etcd_writes_them() {
        let m = Member { id: 7, peer_urls: vec!["http://a:1".into()], is_learner: true, ..Default::default() };
        let add = conf_change_context(&m, false);
        assert_eq!(add, br#"{"id":7,"peerURLs":["http://a:1"],"isLearner":true,"isPromote":false}"#);
        assert!(!is_promote(&add));
        assert_eq!(Member::from_json(&add).unwrap(), m);
        let promote = conf_change_context(&m, true);
        assert_eq!(promote, br#"{"id":7,"peerURLs":null,"isPromote":true}"#);
        assert!(is_promote(&promote));
        assert_eq!(Member::from_json(&promote).unwrap().peer_urls, Vec::<String>::new());
    }
}

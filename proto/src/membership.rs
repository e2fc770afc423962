//! Cluster membership as etcd stores it: the JSON of a member (the `members`
//! bucket's values, and the context of a ConfChange that adds a member).

use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// etcd's `membership.Member`: `{"id":…,"peerURLs":[…],"name":…,"clientURLs":[…]}`
/// (`isLearner` when set; `name` and `clientURLs` omitted when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default, skip_serializing_if = "is_false")]
    pub is_learner: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
}

impl Member {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("member serializes")
    }

    pub fn from_json(b: &[u8]) -> Result<Member, serde_json::Error> {
        serde_json::from_slice(b)
    }
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
}

//! etcd's JSON gateway (grpc-gateway's `/v3/…`, `/v3beta/…`, `/v3alpha/…`)
//! on arbitrary request bodies, through one in-process member (see
//! `etcdkit_fuzz`). The first byte picks the endpoint; the rest is the body.
//!
//! Must hold: no panic in any thread; a unary endpoint answers within
//! `MUST_ANSWER`, and its answer is a JSON document (the message, or
//! grpc-gateway's `{"error": …, "code": …}`) with an HTTP status the
//! gateway's code table gives; the streaming endpoints answer JSON lines.
#![no_main]

use std::sync::{Mutex, OnceLock};

use axum::body::Body;
use etcdkit_fuzz::{Served, Wait};
use libfuzzer_sys::fuzz_target;

/// The endpoints under each prefix, with how their calls end.
const ENDPOINTS: &[(&str, Wait)] = &[
    ("/kv/range", Wait::Answer),
    ("/kv/put", Wait::Answer),
    ("/kv/deleterange", Wait::Answer),
    ("/kv/txn", Wait::Answer),
    ("/kv/compaction", Wait::Answer),
    ("/lease/grant", Wait::Answer),
    ("/lease/revoke", Wait::Answer),
    ("/kv/lease/revoke", Wait::Answer),
    ("/lease/timetolive", Wait::Answer),
    ("/kv/lease/timetolive", Wait::Answer),
    ("/lease/leases", Wait::Answer),
    ("/kv/lease/leases", Wait::Answer),
    ("/cluster/member/add", Wait::Answer),
    ("/cluster/member/remove", Wait::Answer),
    ("/cluster/member/update", Wait::Answer),
    ("/cluster/member/list", Wait::Answer),
    ("/cluster/member/promote", Wait::Answer),
    ("/maintenance/alarm", Wait::Answer),
    ("/maintenance/status", Wait::Answer),
    ("/maintenance/defragment", Wait::Answer),
    ("/maintenance/hash", Wait::Answer),
    ("/maintenance/transfer-leadership", Wait::Answer),
    // Waits while another candidate leads (as etcd's does).
    ("/election/campaign", Wait::Window),
    ("/election/proclaim", Wait::Answer),
    ("/election/leader", Wait::Answer),
    ("/election/resign", Wait::Answer),
    ("/auth/enable", Wait::Answer),
    ("/auth/disable", Wait::Answer),
    ("/auth/authenticate", Wait::Answer),
    ("/auth/user/add", Wait::Answer),
    ("/auth/user/get", Wait::Answer),
    ("/auth/user/list", Wait::Answer),
    ("/auth/user/delete", Wait::Answer),
    ("/auth/user/changepw", Wait::Answer),
    ("/auth/user/grant", Wait::Answer),
    ("/auth/user/revoke", Wait::Answer),
    ("/auth/role/add", Wait::Answer),
    ("/auth/role/get", Wait::Answer),
    ("/auth/role/list", Wait::Answer),
    ("/auth/role/delete", Wait::Answer),
    ("/auth/role/grant", Wait::Answer),
    ("/auth/role/revoke", Wait::Answer),
    ("/watch", Wait::Window),
    ("/lease/keepalive", Wait::Window),
    ("/maintenance/snapshot", Wait::Window),
];
const PREFIXES: &[&str] = &["/v3", "/v3beta", "/v3alpha"];

fn served() -> &'static Mutex<Served> {
    static S: OnceLock<Mutex<Served>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Served::new()))
}

fuzz_target!(|data: &[u8]| {
    let [pick, body @ ..] = data else { return };
    let pick = usize::from(*pick);
    let (endpoint, wait) = ENDPOINTS[pick % ENDPOINTS.len()];
    let path = format!("{}{endpoint}", PREFIXES[pick / ENDPOINTS.len() % PREFIXES.len()]);
    let req = http::Request::post(path.as_str())
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a valid request head");
    let mut s = served().lock().unwrap_or_else(|p| p.into_inner());
    let Some(answer) = s.call(req, wait) else { return };
    let code = answer.status.as_u16();
    assert!(
        matches!(code, 200 | 400 | 401 | 403 | 404 | 408 | 409 | 412 | 429 | 500 | 501 | 503 | 504),
        "{path}: HTTP {code} is not in the gateway's code table"
    );
    if wait == Wait::Answer {
        assert!(answer.complete);
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&answer.body) {
            panic!(
                "{path}: HTTP {code} with a body that is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&answer.body)
            );
        }
    } else {
        // Every whole line of a stream is a JSON object.
        let whole = answer.body.rsplitn(2, |&b| b == b'\n').nth(1).unwrap_or_default();
        for line in whole.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(line) {
                panic!("{path}: a stream line that is not JSON ({e}): {:?}", String::from_utf8_lossy(line));
            }
        }
    }
});

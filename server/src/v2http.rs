//! etcd's v2 keys API on the client URLs, with `--enable-v2` (etcd's
//! `etcdserver/api/v2http`): `/v2/keys/<key>` (`GET`, `PUT`, `DELETE`) and
//! `/v2/members` (what v2 clients sync their endpoints from). Writes and
//! quorum reads go through raft as v2 `Request`s; a plain `GET` reads this
//! member's copy. The tree itself is `raft-node`'s `v2` module.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use etcdkit_proto::etcdserverpb::{InternalRaftRequest, Request};
use etcdkit_raft_node::v2::{Event, KEYS_PREFIX, V2Error};
use etcdkit_raft_node::{Error as NodeError, Response as NodeResponse};
use http_body_util::BodyExt;

use crate::core::Core;

pub fn routes(core: Arc<Core>) -> Router {
    Router::new()
        .route("/v2/keys", axum::routing::any(keys_root))
        .route("/v2/keys/", axum::routing::any(keys_root))
        .route("/v2/keys/{*key}", axum::routing::any(keys))
        .route("/v2/members", axum::routing::get(members))
        .with_state(core)
}

/// `a=1&b=x%20y` → pairs (`+` is a space), as Go's `url.ParseQuery`.
fn parse_form(s: &str) -> Vec<(String, String)> {
    let decode = |t: &str| {
        let b = t.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn answer(core: &Core, r: Result<Event, V2Error>) -> Response {
    let (status, index, body) = match r {
        Ok(e) => {
            // etcd: 201 for a node that did not exist.
            let created = e.action == "create" || (e.action == "set" && e.prev.is_none());
            (if created { StatusCode::CREATED } else { StatusCode::OK }, e.index, e.to_json())
        }
        Err(e) => (StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST), e.index, e.to_json()),
    };
    let mut resp = (status, body + "\n").into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("X-Etcd-Index", index.into());
    h.insert("X-Etcd-Cluster-ID", format!("{:x}", core.node.cluster_id()).parse().expect("hex"));
    let g = core.node.gauges();
    h.insert("X-Raft-Index", g.applied_index().into());
    h.insert("X-Raft-Term", g.term().into());
    resp
}

fn flag(form: &[(String, String)], name: &str) -> Option<bool> {
    form.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v == "true")
}

fn text<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().rev().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

async fn keys_root(
    State(core): State<Arc<Core>>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(core, method, String::new(), query, headers, body).await
}

async fn keys(
    State(core): State<Arc<Core>>,
    Path(key): Path<String>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(core, method, key, query, headers, body).await
}

async fn handle(
    core: Arc<Core>,
    method: Method,
    key: String,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut form = parse_form(query.0.as_deref().unwrap_or(""));
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if is_form && let Ok(b) = http_body_util::Limited::new(body, 1 << 20).collect().await {
        form.extend(parse_form(&String::from_utf8_lossy(&b.to_bytes())));
    }
    let key = format!("/{key}");
    let bad = |cause: &str| {
        answer(&core, Err(V2Error { code: 209, message: "Invalid field", cause: cause.into(), index: 0 }))
    };
    let mut req = Request {
        path: format!("{KEYS_PREFIX}{key}"),
        recursive: flag(&form, "recursive").unwrap_or(false),
        sorted: flag(&form, "sorted").unwrap_or(false),
        dir: flag(&form, "dir").unwrap_or(false),
        prev_value: text(&form, "prevValue").to_string(),
        prev_exist: flag(&form, "prevExist"),
        ..Default::default()
    };
    if !text(&form, "prevIndex").is_empty() {
        match text(&form, "prevIndex").parse() {
            Ok(i) => req.prev_index = i,
            Err(_) => return bad("invalid value for prevIndex"),
        }
    }
    if !text(&form, "ttl").is_empty() {
        req.expiration = 1;
    }
    match method {
        Method::GET | Method::HEAD => {
            if flag(&form, "wait").unwrap_or(false) {
                return bad("etcdkit does not watch v2 keys");
            }
            if flag(&form, "quorum").unwrap_or(false) {
                req.method = "QGET".into();
                return propose(&core, req).await;
            }
            let (recursive, sorted) = (req.recursive, req.sorted);
            let r = core.blocking(move |n| Ok(n.v2_get(&key, recursive, sorted))).await;
            match r {
                Ok(Ok(e)) => answer(&core, Ok(e)),
                Ok(Err(NodeError::V2(e))) => answer(&core, Err(e)),
                Ok(Err(e)) => crate::error::status(e).v2_http(),
                Err(s) => s.v2_http(),
            }
        }
        Method::PUT => {
            req.method = "PUT".into();
            req.val = text(&form, "value").to_string();
            propose(&core, req).await
        }
        Method::DELETE => {
            req.method = "DELETE".into();
            propose(&core, req).await
        }
        _ => {
            let mut r = (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n").into_response();
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, PUT, DELETE"));
            r
        }
    }
}

async fn propose(core: &Arc<Core>, req: Request) -> Response {
    let mut req = InternalRaftRequest { v2: Some(req), ..Default::default() };
    etcdkit_raft_node::auth::as_member(&mut req);
    let (tx, rx) = tokio::sync::oneshot::channel();
    core.node.propose_then(req, move |r| drop(tx.send(r)));
    match rx.await {
        Ok(Ok(NodeResponse::V2(e))) => answer(core, Ok(e)),
        Ok(Ok(other)) => crate::core::unexpected(other).v2_http(),
        Ok(Err(NodeError::V2(e))) => answer(core, Err(e)),
        Ok(Err(e)) => crate::error::status(e).v2_http(),
        Err(_) => tonic::Status::from(crate::error::STOPPED).v2_http(),
    }
}

/// `GET /v2/members`: `{"members":[{"id":"<hex>","name":…,"peerURLs":[…],"clientURLs":[…]}]}`.
async fn members(State(core): State<Arc<Core>>) -> Response {
    match core.blocking(|n| n.member_list()).await {
        Ok(ms) => {
            let list: Vec<serde_json::Value> = ms
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "id": format!("{:x}", m.id),
                        "name": m.name,
                        "peerURLs": m.peer_urls,
                        "clientURLs": m.client_urls,
                    })
                })
                .collect();
            let body = serde_json::json!({ "members": list }).to_string();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(s) => s.v2_http(),
    }
}

/// A gRPC status as a v2 HTTP answer (etcd's `writeError` for non-v2 errors).
trait V2Http {
    fn v2_http(self) -> Response;
}

impl V2Http for tonic::Status {
    fn v2_http(self) -> Response {
        let code = StatusCode::INTERNAL_SERVER_ERROR;
        let body = format!("{{\"message\":{:?}}}\n", self.message());
        (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_as_go_does() {
        assert_eq!(
            parse_form("value=a+b%21&prevExist=false&x"),
            vec![("value".into(), "a b!".into()), ("prevExist".into(), "false".into()), ("x".into(), String::new())]
        );
    }
}

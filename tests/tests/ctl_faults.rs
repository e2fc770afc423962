//! `snapshot save` through a faulty link: a stream cut at a random byte (a
//! clean early end, a gRPC error, a TCP connection that drops) or with a
//! flipped bit in its data ends in an error and leaves no file, for 100
//! seeds; the same link without a fault gives a snapshot equal to
//! etcdctl's. The faults come from proxies between etcdkit's etcdctl and
//! real etcd 3.4: a gRPC one (the snapshot bytes themselves) and a TCP one
//! (the connection).
//!
//! Ports 28060-28069.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use etcdkit_proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use etcdkit_proto::etcdserverpb::*;
use etcdkit_server::client::{Client, ClientConfig};
use etcdkit_tests::{Rng, etcd_binaries, etcdkit_as, start_etcd_with};
use parking_lot::Mutex;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// What the gRPC proxy does to the snapshot stream.
#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// Ends the stream cleanly after `at` bytes of snapshot.
    End {
        at: u64,
    },
    /// Fails the stream with an error after `at` bytes.
    Fail {
        at: u64,
    },
    /// Flips bit `bit` of byte `at`.
    Flip {
        at: u64,
        bit: u8,
    },
}

/// Maintenance.Status and .Snapshot forwarded to real etcd, the snapshot
/// with the current fault.
struct Faulty {
    upstream: Client,
    fault: Arc<Mutex<Fault>>,
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for Faulty {
    async fn alarm(&self, _: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Err(Status::unimplemented("alarm"))
    }
    async fn status(&self, r: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        self.upstream.maintenance().status(r.into_inner()).await
    }
    async fn defragment(&self, _: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        Err(Status::unimplemented("defragment"))
    }
    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Status::unimplemented("hash"))
    }
    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(Status::unimplemented("hash_kv"))
    }
    type SnapshotStream = SnapshotStream;
    async fn snapshot(&self, r: Request<SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        let mut up = self.upstream.maintenance().snapshot(r.into_inner()).await?.into_inner();
        let fault = *self.fault.lock();
        let out = async_stream(move |tx| async move {
            let mut sent = 0u64;
            while let Some(m) = up.next().await {
                let Ok(mut m) = m else { return };
                let (from, to) = (sent, sent + m.blob.len() as u64);
                match fault {
                    Fault::End { at } | Fault::Fail { at } if at < to => {
                        m.blob.truncate((at - from) as usize);
                        let _ = tx.send(Ok(m)).await;
                        if let Fault::Fail { .. } = fault {
                            let _ = tx.send(Err(Status::unavailable("proxy: link cut"))).await;
                        }
                        return;
                    }
                    Fault::Flip { at, bit } if (from..to).contains(&at) => m.blob[(at - from) as usize] ^= 1 << bit,
                    _ => {}
                }
                sent = to;
                if tx.send(Ok(m)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(out))
    }
    async fn move_leader(&self, _: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Status::unimplemented("move_leader"))
    }
}

/// A stream fed by a task.
fn async_stream<F, Fut>(f: F) -> SnapshotStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SnapshotResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// A TCP proxy that drops the connection after `cut` bytes from the server
/// (`u64::MAX`: never).
fn tcp_proxy(listen: u16, to: u16, cut: Arc<AtomicU64>) {
    let l = TcpListener::bind(("127.0.0.1", listen)).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(client) = c else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else { continue };
            let limit = cut.load(Ordering::SeqCst);
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || copy(c2, s2, u64::MAX));
            std::thread::spawn(move || copy(server, client, limit));
        }
    });
}

fn copy(mut from: TcpStream, mut to: TcpStream, limit: u64) {
    let mut buf = [0u8; 8192];
    let mut done = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = n.min((limit - done) as usize);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        done += n as u64;
        if done >= limit {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// `etcdctl --endpoints ep snapshot save file`: (success, stderr).
fn save(ctl: &Path, ep: &str, file: &Path) -> (bool, String) {
    let out = std::process::Command::new(ctl)
        .env_clear()
        .args([&format!("--endpoints={ep}"), "--command-timeout=30s", "snapshot", "save", file.to_str().unwrap()])
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cut_or_corrupted_snapshot_streams_leave_no_file() {
    let Some((etcd, real_ctl)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ctl = etcdkit_as(tmp.path(), "etcdctl");
    let p = start_etcd_with(&etcd, "n1", &tmp.path().join("n1.etcd"), 28060, 28061, None, &[]);
    p.ctl_retry(&real_ctl, &["put", "k", "v"]);
    let value = "v".repeat(50_000);
    for i in 0..30 {
        p.ctl_retry(&real_ctl, &["put", &format!("key{i}"), &value]);
    }
    let clean = tmp.path().join("clean.db");
    let (ok, err) = save(&real_ctl, &p.endpoint, &clean);
    assert!(ok, "etcdctl's save: {err}");
    let size = std::fs::metadata(&clean).unwrap().len();

    // The gRPC proxy.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fault = Arc::new(Mutex::new(Fault::None));
    let upstream = rt
        .block_on(Client::connect(
            &ClientConfig::new(vec![p.endpoint.clone()]),
            tokio::time::Instant::now() + std::time::Duration::from_secs(10),
        ))
        .unwrap();
    let svc = MaintenanceServer::new(Faulty { upstream, fault: fault.clone() });
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:28062")).unwrap();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let proxied = "http://127.0.0.1:28062";

    // Without a fault: the same snapshot as etcdctl's.
    let out = tmp.path().join("out.db");
    let (ok, err) = save(&ctl, proxied, &out);
    assert!(ok, "through the proxy, no fault: {err}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
    std::fs::remove_file(&out).unwrap();

    let mut rng = Rng::new(20);
    for seed in 0..100u64 {
        let at = rng.below(size);
        let f = match seed % 3 {
            0 => Fault::End { at },
            1 => Fault::Fail { at },
            _ => Fault::Flip { at, bit: rng.below(8) as u8 },
        };
        *fault.lock() = f;
        let (ok, err) = save(&ctl, proxied, &out);
        assert!(!ok, "seed {seed} ({f:?}) was saved");
        assert!(err.contains("Error: "), "seed {seed} ({f:?}): no error line: {err}");
        assert!(!out.exists(), "seed {seed} ({f:?}) left {}", out.display());
        assert!(!tmp.path().join("out.db.part").exists(), "seed {seed} ({f:?}) left out.db.part");
    }

    // The TCP proxy: the connection drops at a random byte.
    let cut = Arc::new(AtomicU64::new(u64::MAX));
    tcp_proxy(28063, 28060, cut.clone());
    let (ok, err) = save(&ctl, "http://127.0.0.1:28063", &out);
    assert!(ok, "through the TCP proxy, no cut: {err}");
    std::fs::remove_file(&out).unwrap();
    for seed in 0..20u64 {
        let at = 200 + rng.below(size);
        cut.store(at, Ordering::SeqCst);
        let (ok, err) = save(&ctl, "http://127.0.0.1:28063", &out);
        assert!(!ok, "TCP cut at {at} (seed {seed}) was saved");
        assert!(err.contains("Error: "), "TCP cut at {at}: {err}");
        assert!(!out.exists() && !tmp.path().join("out.db.part").exists(), "TCP cut at {at} left a file");
    }
}

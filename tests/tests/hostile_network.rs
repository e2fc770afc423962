//! Hostile network input against one `etcdkit serve` member: 10,000 idle
//! connections on the client and peer ports, slowloris writers (HTTP/2 and
//! HTTP/1 dribbled a byte at a time), malformed and oversized HTTP/2 frames,
//! garbage, and watchers that never read. Meanwhile a well-behaved client
//! puts and gets. The server must stay up, its memory within 2× of its
//! idle level, and the well-behaved client's p99 within 5× of idle
//! (issue 22). With `HOSTILE_COMPARE=1` the same attack is measured on
//! real etcd 3.4 too.
//!
//! `HOSTILE_IDLE_CONNS` sets the number of idle connections (10,000).
//! Ports 31500–31509.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcdkit_fs::Rng;
use etcdkit_proto::etcdserverpb as pb;
use etcdkit_tests::robust::traffic;
use etcdkit_tests::{EtcdProc, etcd_binaries, etcdkit_as, start_etcd_with};

/// The resident set of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

/// Latencies (sorted) of `n` put + get pairs by a well-behaved client.
fn well_behaved(rt: &tokio::runtime::Runtime, endpoint: &str, n: usize) -> Vec<Duration> {
    rt.block_on(async {
        let c = traffic::connect(endpoint).await.expect("the well-behaved client connects");
        let mut lat = Vec::with_capacity(2 * n);
        for i in 0..n {
            let t = Instant::now();
            let put = pb::PutRequest {
                key: format!("wb/{}", i % 50).into_bytes(),
                value: vec![b'v'; 100],
                ..Default::default()
            };
            tokio::time::timeout(Duration::from_secs(10), c.kv().put(put)).await.expect("put in time").expect("put");
            lat.push(t.elapsed());
            let t = Instant::now();
            let get = pb::RangeRequest { key: format!("wb/{}", i % 50).into_bytes(), ..Default::default() };
            tokio::time::timeout(Duration::from_secs(10), c.kv().range(get)).await.expect("get in time").expect("get");
            lat.push(t.elapsed());
        }
        lat.sort();
        lat
    })
}

fn p99(l: &[Duration]) -> Duration {
    l[(l.len() * 99 / 100).min(l.len() - 1)]
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The attackers, holding their connections until `stop`.
struct Attack {
    stop: Arc<AtomicBool>,
    /// Idle connections open so far.
    opened: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Attack {
    fn start(client: u16, peer: u16, idle: usize) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        // Idle connections: nine in ten on the client port; one in fifty of
        // those says the HTTP/2 preface and an empty SETTINGS (an idle gRPC
        // connection), the others nothing at all.
        {
            let (stop, opened) = (stop.clone(), opened.clone());
            threads.push(std::thread::spawn(move || {
                let mut held = Vec::new();
                for i in 0..idle {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let port = if i % 10 == 9 { peer } else { client };
                    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { continue };
                    if i % 50 == 0 && port == client {
                        let _ = s.write_all(PREFACE);
                        let _ = s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
                    }
                    held.push(s);
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                let n = held.len() as u64;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                n
            }));
        }
        // Slowloris: a byte every 100 ms, on both ports, HTTP/2 and HTTP/1.
        for port in [client, peer] {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let msg: Vec<u8> =
                    [PREFACE, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa"].concat();
                let mut conns: Vec<(TcpStream, usize)> = (0..100)
                    .filter_map(|i| {
                        TcpStream::connect(("127.0.0.1", port))
                            .ok()
                            .map(|s| (s, if i % 2 == 0 { 0 } else { PREFACE.len() }))
                    })
                    .collect();
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for (s, at) in conns.iter_mut() {
                        let b = msg[*at % msg.len()];
                        if s.write_all(&[b]).is_ok() {
                            sent += 1;
                        }
                        *at += 1;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                sent
            }));
        }
        // Malformed input: garbage, bad frames, oversized frame headers,
        // on fresh connections in a loop.
        for port in [client, peer] {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut rng = Rng::new(port as u64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { continue };
                    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                    let mut junk: Vec<u8> = Vec::new();
                    match n % 4 {
                        0 => junk.extend((0..rng.below(4096)).map(|_| rng.next_u64() as u8)),
                        1 => {
                            // A frame header announcing 16 MiB, then a little.
                            junk.extend_from_slice(PREFACE);
                            junk.extend_from_slice(&[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]);
                            junk.extend((0..1000).map(|_| rng.next_u64() as u8));
                        }
                        2 => {
                            // Valid-looking frames of random types, flags and streams.
                            junk.extend_from_slice(PREFACE);
                            for _ in 0..20 {
                                let len = rng.below(64) as usize;
                                let hdr = [0, 0, len as u8, rng.below(12) as u8, rng.next_u64() as u8];
                                junk.extend_from_slice(&hdr);
                                junk.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
                                junk.extend((0..len).map(|_| rng.next_u64() as u8));
                            }
                        }
                        _ => {
                            // A huge HTTP/1 header line.
                            junk.extend_from_slice(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nX-Big: ");
                            junk.extend(std::iter::repeat_n(b'a', 1 << 20));
                        }
                    }
                    let _ = s.write_all(&junk);
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    let _ = s.shutdown(Shutdown::Both);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                n
            }));
        }
        Attack { stop, opened, threads }
    }

    fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap_or(0)).collect()
    }
}

/// 2 MiB of values under `slow/` (32 values of 64 KiB, each a whole
/// flow-control window of a stream): written once before the idle figures
/// are taken and once under attack (so both phases hold the same kind of
/// data), the second time to the watchers that do not read.
fn slow_data(rt: &tokio::runtime::Runtime, endpoint: &str) {
    rt.block_on(async {
        let c = traffic::connect(endpoint).await.expect("connect");
        for i in 0..32 {
            let put = pb::PutRequest {
                key: format!("slow/{i}").into_bytes(),
                value: vec![b's'; 64 << 10],
                ..Default::default()
            };
            c.kv().put(put).await.expect("put");
        }
    })
}

/// Watchers that never read, each on a stream of its own: the 2 MiB
/// written next cannot be delivered to them.
fn slow_readers(rt: &tokio::runtime::Runtime, endpoint: &str) -> Vec<Box<dyn std::any::Any>> {
    rt.block_on(async {
        let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
        for _ in 0..20 {
            let c = traffic::connect(endpoint).await.expect("connect");
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let create =
                pb::WatchCreateRequest { key: b"slow/".to_vec(), range_end: b"slow0".to_vec(), ..Default::default() };
            tx.send(pb::WatchRequest { request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)) })
                .await
                .unwrap();
            let stream = c.watch().watch(tokio_stream::wrappers::ReceiverStream::new(rx)).await.expect("watch");
            held.push(Box::new((c, tx, stream)));
        }
        held
    })
}

/// Runs the whole attack on a running member; returns (idle RSS, attacked
/// RSS, idle p99, attacked p99, counts).
fn attack(p: &EtcdProc, client: u16, peer: u16) -> (u64, u64, Duration, Duration, Vec<u64>) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ep = format!("http://127.0.0.1:{client}");
    let pid = p.pid();
    // The data and a warm-up, then the idle figures.
    slow_data(&rt, &ep);
    well_behaved(&rt, &ep, 200);
    let idle_lat = well_behaved(&rt, &ep, 500);
    let idle_rss = rss_kib(pid);
    let idle_conns: usize = std::env::var("HOSTILE_IDLE_CONNS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let attackers = Attack::start(client, peer, idle_conns);
    let readers = slow_readers(&rt, &ep);
    slow_data(&rt, &ep);
    // Every idle connection open (bounded), then a second for the server.
    let t = Instant::now();
    while attackers.opened.load(Ordering::Relaxed) < idle_conns && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{} idle connections open in {:?}", attackers.opened.load(Ordering::Relaxed), t.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    let attacked_lat = well_behaved(&rt, &ep, 500);
    let attacked_rss = rss_kib(pid);
    assert!(alive(pid), "the server died under attack\n{}", p.log_text());
    let counts = attackers.stop();
    drop(readers);
    // Still serving after.
    well_behaved(&rt, &ep, 50);
    (idle_rss, attacked_rss, p99(&idle_lat), p99(&attacked_lat), counts)
}

fn start(bin: &std::path::Path, dir: &std::path::Path, client: u16, peer: u16) -> EtcdProc {
    let ic = format!("h=http://127.0.0.1:{peer}");
    let p = start_etcd_with(bin, "h", dir, client, peer, Some(&ic), &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ep = format!("http://127.0.0.1:{client}");
    let up = rt.block_on(async {
        for _ in 0..100 {
            if let Some(c) = traffic::connect(&ep).await
                && c.kv().range(pb::RangeRequest { key: b"x".to_vec(), ..Default::default() }).await.is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(up, "the member did not come up\n{}", p.log_text());
    p
}

#[test]
fn hostile_connections_leave_the_server_up_bounded_and_responsive() {
    // Every idle connection is a descriptor here and in the server.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    assert!(limit >= 12_000, "open-file limit {limit}: 10,000 idle connections need more (ulimit -Hn)");
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let p = start(&kit, &tmp.path().join("kit.etcd"), 31500, 31501);
    let (idle_rss, rss, idle_p99, p99, counts) = attack(&p, 31500, 31501);
    let (rss_x, p99_x) = (rss as f64 / idle_rss as f64, p99.as_secs_f64() / idle_p99.as_secs_f64());
    let line = format!(
        "hostile network, etcdkit: RSS idle {idle_rss} KiB, attacked {rss} KiB ({rss_x:.2}×); p99 idle {idle_p99:?}, attacked {p99:?} ({p99_x:.2}×); idle conns, slowloris bytes (client, peer), malformed conns (client, peer): {counts:?}"
    );
    eprintln!("{line}");
    etcdkit_tests::robust::record_figure(env!("CARGO_TARGET_TMPDIR"), &line);
    assert!(
        counts[0] >= 10_000 || std::env::var_os("HOSTILE_IDLE_CONNS").is_some(),
        "only {} idle connections",
        counts[0]
    );
    // Issue 22's goal, 2×: the optimized build measures 1.4–1.6× here (idle
    // 24 MiB). Silent connections wait in the listener's lobby (about 170
    // bytes each, 1.1 KiB as tokio tasks); the rest is the HTTP/2 state of
    // the connections that spoke, the slowloris writers and the watchers
    // that do not read (64 KiB unsent each, grpc-go's write quota).
    assert!(rss_x <= 2.0, "RSS {rss} KiB under attack, {idle_rss} KiB idle\n{}", p.log_text());
    assert!(p99_x <= 5.0, "p99 {p99:?} under attack, {idle_p99:?} idle");
    // The same attack on real etcd 3.4, for comparison (HOSTILE_COMPARE=1).
    if std::env::var_os("HOSTILE_COMPARE").is_some()
        && let Some((etcd, _)) = etcd_binaries()
    {
        let e = start(&etcd, &tmp.path().join("etcd.etcd"), 31505, 31506);
        let (idle_rss, rss, idle_p99, p99, counts) = attack(&e, 31505, 31506);
        eprintln!(
            "real etcd 3.4: RSS idle {idle_rss} KiB, attacked {rss} KiB ({:.2}×); p99 idle {idle_p99:?}, attacked {p99:?} ({:.2}×); {counts:?}",
            rss as f64 / idle_rss as f64,
            p99.as_secs_f64() / idle_p99.as_secs_f64()
        );
    }
}

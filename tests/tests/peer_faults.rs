//! Five etcdkit processes with peer TLS, every member's peer traffic through
//! a fault-injecting TCP proxy on loopback, under a write load: proxies
//! delay, drop connections and cut members off; members are killed
//! (SIGKILL) and paused (SIGSTOP / SIGCONT). Afterwards no acknowledged
//! write is lost and every member converges to the same `hashkv`.
//!
//! `PEER_FAULT_ROUNDS` sets the number of fault rounds (default 8).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdkit_tests::robust::proxy::{self, Faults};
use etcdkit_tests::{EtcdProc, etcd_binaries, etcdctl, etcdkit_as, start_etcd_with};

/// A CA and one certificate (server and client use) for 127.0.0.1.
fn pki(dir: &Path) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "peer CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "peer");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    let w = |n: &str, pem: String| {
        let f = dir.join(n);
        std::fs::write(&f, pem).unwrap();
        f.to_str().unwrap().to_string()
    };
    (w("ca.pem", ca.pem()), w("peer.pem", cert.pem()), w("peer-key.pem", key.serialize_pem()))
}

struct Member {
    name: String,
    client: u16,
    /// Where the member listens for peers.
    peer: u16,
    /// Its proxy, which the others dial (the advertised peer URL).
    proxied: u16,
    dir: PathBuf,
    proc: Option<EtcdProc>,
    faults: Arc<Faults>,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }
}

fn pause(m: &Member, sig: &str) {
    if let Some(p) = &m.proc {
        let _ = std::process::Command::new("kill").args([sig, &p.pid().to_string()]).status();
    }
}

#[test]
fn five_members_through_faulty_links_lose_nothing() {
    let Some((_, c)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kit = etcdkit_as(tmp.path(), "etcd");
    let (ca, cert, key) = pki(&tmp.path().join("pki"));
    let base = 27100;
    let mut ms: Vec<Member> = (0..5)
        .map(|i| Member {
            name: format!("f{i}"),
            client: base + 3 * i,
            peer: base + 3 * i + 1,
            proxied: base + 3 * i + 2,
            dir: tmp.path().join(format!("f{i}.etcd")),
            proc: None,
            faults: proxy::start(base + 3 * i + 2, base + 3 * i + 1).unwrap(),
        })
        .collect();
    let ic = ms.iter().map(|m| format!("{}=https://127.0.0.1:{}", m.name, m.proxied)).collect::<Vec<_>>().join(",");
    let start = |m: &mut Member| {
        let listen = format!("https://127.0.0.1:{}", m.peer);
        let adv = format!("https://127.0.0.1:{}", m.proxied);
        let extra = [
            "--initial-cluster-token",
            "faults",
            "--peer-cert-file",
            &cert,
            "--peer-key-file",
            &key,
            "--peer-trusted-ca-file",
            &ca,
            "--peer-client-cert-auth",
            // start_etcd_with's plain peer URLs are overridden by these (the last flag wins).
            "--listen-peer-urls",
            &listen,
            "--initial-advertise-peer-urls",
            &adv,
        ];
        m.proc = Some(start_etcd_with(&kit, &m.name, &m.dir, m.client, m.peer, Some(&ic), &extra));
    };
    for m in ms.iter_mut() {
        start(m);
    }
    let logs = |ms: &[Member]| {
        ms.iter()
            .map(|m| format!("== {}\n{}", m.name, m.proc.as_ref().map(|p| p.log_text()).unwrap_or_default()))
            .collect::<String>()
    };
    // The write load: a writer per member, through that member, recording what was acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = ms
        .iter()
        .map(|m| {
            let (ep, c, acked, stop, name) = (m.endpoint(), c.clone(), acked.clone(), stop.clone(), m.name.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let k = format!("ack/{name}-{i:05}");
                    let (ok, _, _) = etcdctl(&c, &["--endpoints", &ep, "--command-timeout=3s", "put", &k, "v"]);
                    if ok {
                        acked.lock().unwrap().push(k);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let rounds: u64 = std::env::var("PEER_FAULT_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let mut rng = etcdkit_testkit::Rng::new(19);
    std::thread::sleep(Duration::from_secs(2));
    for round in 0..rounds {
        let i = rng.below(5) as usize;
        match round % 5 {
            0 => {
                // SIGKILL, restart.
                ms[i].proc = None;
                std::thread::sleep(Duration::from_millis(500 + rng.below(1000)));
                start(&mut ms[i]);
            }
            1 => {
                pause(&ms[i], "-STOP");
                std::thread::sleep(Duration::from_millis(500 + rng.below(2000)));
                pause(&ms[i], "-CONT");
            }
            2 => {
                // Cut a member off (its inbound peer links), then heal.
                ms[i].faults.cut.store(true, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1000 + rng.below(2000)));
                ms[i].faults.cut.store(false, Ordering::Relaxed);
            }
            3 => {
                // Slow links to two members.
                let j = (i + 1 + rng.below(4) as usize) % 5;
                for k in [i, j] {
                    ms[k].faults.delay_ms.store(20 + rng.below(80), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1500));
                for k in [i, j] {
                    ms[k].faults.delay_ms.store(0, Ordering::Relaxed);
                }
            }
            _ => {
                // Drop every open connection to every member.
                for m in &ms {
                    m.faults.reset();
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "too few writes were acknowledged ({})\n{}", acked.len(), logs(&ms));
    // Converged: the same hashkv at one revision everywhere, every acknowledged key everywhere.
    let deadline = Instant::now() + Duration::from_secs(90);
    let rev = loop {
        let (ok, out, _) =
            etcdctl(&c, &["--endpoints", &ms[0].endpoint(), "--command-timeout=5s", "put", "final", "x", "-w", "json"]);
        if ok {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            break v["header"]["revision"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "the cluster does not take a write\n{}", logs(&ms));
        std::thread::sleep(Duration::from_millis(300));
    };
    loop {
        let hashes: Vec<Option<u64>> = ms
            .iter()
            .map(|m| {
                let (ok, out, _) = etcdctl(
                    &c,
                    &["--endpoints", &m.endpoint(), "endpoint", "hashkv", "--rev", &rev.to_string(), "-w", "json"],
                );
                let v: serde_json::Value = serde_json::from_str(&out).ok()?;
                ok.then(|| v[0]["HashKV"]["hash"].as_u64()).flatten()
            })
            .collect();
        if hashes.iter().all(|h| h.is_some() && *h == hashes[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "hashkv differ at revision {rev}: {hashes:?}\n{}", logs(&ms));
        std::thread::sleep(Duration::from_millis(500));
    }
    for m in &ms {
        let (ok, out, err) =
            etcdctl(&c, &["--endpoints", &m.endpoint(), "get", "ack/", "--prefix", "--keys-only", "--consistency=s"]);
        assert!(ok, "{}: {err}", m.name);
        let have: std::collections::HashSet<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        for k in &acked {
            assert!(have.contains(k.as_str()), "{} lost the acknowledged {k}", m.name);
        }
    }
    let all = logs(&ms);
    assert!(!all.contains("panicked"), "{all}");
    // The peer links were TLS, through the proxies.
    for m in &ms {
        let log = m.proc.as_ref().unwrap().log_text();
        assert!(log.contains(&format!("serving peer traffic on https://127.0.0.1:{}", m.peer)), "{}: {log}", m.name);
    }
    eprintln!("{} writes acknowledged through {rounds} fault rounds", acked.len());
}

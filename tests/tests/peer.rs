//! Clusters over etcd's peer protocol: etcdkit members and real etcd 3.4
//! members in one cluster. Writes go through every member, the leader moves
//! to each member and is killed (SIGKILL), leases granted through one member
//! are kept alive through another, members join a loaded cluster through a
//! snapshot, a cluster is replaced member by member; afterwards every
//! acknowledged write is on every member and `hashkv` agrees. Peer garbage
//! gets etcd's status codes and never stops a member.
//!
//! `PEER_KILLS` sets how many leader kills the mixed-cluster test does
//! (default 6; issue 19's acceptance run uses 30).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcdkit_proto::Message as _;
use etcdkit_proto::raftpb;
use etcdkit_schema::DataDir;
use etcdkit_tests::{EtcdProc, etcd_binaries, etcdctl, etcdkit_as, start_etcd_with};

/// One member of a test cluster: its binary, ports and data dir.
struct Member {
    name: String,
    bin: PathBuf,
    client: u16,
    peer: u16,
    dir: PathBuf,
    proc: Option<EtcdProc>,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer)
    }

    fn start(&mut self, initial_cluster: &str, state: &str, token: &str) {
        let extra = ["--initial-cluster-state", state, "--initial-cluster-token", token];
        self.proc = Some(start_etcd_with(
            &self.bin,
            &self.name,
            &self.dir,
            self.client,
            self.peer,
            Some(initial_cluster),
            &extra,
        ));
    }

    /// SIGKILL (the process handle kills and reaps when dropped).
    fn kill(&mut self) {
        self.proc = None;
    }

    fn log(&self) -> String {
        self.proc.as_ref().map(|p| p.log_text()).unwrap_or_default()
    }
}

fn members(tmp: &Path, bins: &[&Path], base: u16) -> Vec<Member> {
    bins.iter()
        .enumerate()
        .map(|(i, b)| Member {
            name: format!("m{i}"),
            bin: b.to_path_buf(),
            client: base + 2 * i as u16,
            peer: base + 2 * i as u16 + 1,
            dir: tmp.join(format!("m{i}.etcd")),
            proc: None,
        })
        .collect()
}

fn initial_cluster(ms: &[Member]) -> String {
    ms.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect::<Vec<_>>().join(",")
}

/// `etcdctl --endpoints EP ARGS`, retried (bounded) until it succeeds.
fn ctl(c: &Path, ep: &str, args: &[&str], why: &dyn Fn() -> String) -> String {
    let start = Instant::now();
    loop {
        let mut all = vec!["--endpoints", ep, "--command-timeout=5s"];
        all.extend_from_slice(args);
        let (ok, out, err) = etcdctl(c, &all);
        if ok {
            return out;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "etcdctl {args:?} at {ep}: {err}\n{}", why());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `endpoint status` of one member as JSON: (member ID, leader, raft term).
fn status(c: &Path, ep: &str) -> Option<(u64, u64)> {
    let (ok, out, _) = etcdctl(c, &["--endpoints", ep, "--command-timeout=3s", "endpoint", "status", "-w", "json"]);
    if !ok {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    let s = &v[0]["Status"];
    Some((s["header"]["member_id"].as_u64()?, s["leader"].as_u64()?))
}

/// Waits (bounded) until every running member names the same leader; returns its index.
fn wait_leader(c: &Path, ms: &[Member]) -> usize {
    let start = Instant::now();
    loop {
        let seen: Vec<Option<(u64, u64)>> =
            ms.iter().map(|m| if m.proc.is_some() { status(c, &m.endpoint()) } else { None }).collect();
        let running: Vec<&(u64, u64)> = seen.iter().flatten().collect();
        if !running.is_empty()
            && running.len() == ms.iter().filter(|m| m.proc.is_some()).count()
            && running.iter().all(|s| s.1 != 0 && s.1 == running[0].1)
            && let Some(i) = seen.iter().position(|s| s.is_some_and(|s| s.0 == s.1))
        {
            return i;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no agreed leader: {seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The member's ID (from its own `endpoint status`).
fn member_id(c: &Path, m: &Member) -> u64 {
    let start = Instant::now();
    loop {
        if let Some((id, _)) = status(c, &m.endpoint()) {
            return id;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{} does not answer\n{}", m.name, m.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every running member holds every key of `acked` and the same `hashkv` at
/// the same revision (after the cluster settles: bounded).
fn converged(c: &Path, ms: &[Member], acked: &[String]) {
    let start = Instant::now();
    let eps: Vec<String> = ms.iter().filter(|m| m.proc.is_some()).map(Member::endpoint).collect();
    // A linearizable write through the leader, then every member's view at its revision.
    let rev = loop {
        let out = ctl(c, &eps[0], &["put", "converge", "x", "-w", "json"], &|| String::new());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        if let Some(r) = v["header"]["revision"].as_i64() {
            break r;
        }
    };
    loop {
        let hashes: Vec<Option<u64>> = eps
            .iter()
            .map(|ep| {
                let (ok, out, _) =
                    etcdctl(c, &["--endpoints", ep, "endpoint", "hashkv", "--rev", &rev.to_string(), "-w", "json"]);
                let v: serde_json::Value = serde_json::from_str(&out).ok()?;
                ok.then(|| v[0]["HashKV"]["hash"].as_u64()).flatten()
            })
            .collect();
        if hashes.iter().all(|h| h.is_some() && *h == hashes[0]) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "hashkv differ at revision {rev}: {hashes:?} on {eps:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    for ep in &eps {
        let out = ctl(c, ep, &["get", "ack/", "--prefix", "--keys-only", "--consistency=s"], &|| String::new());
        let have: std::collections::HashSet<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        for k in acked {
            assert!(have.contains(k.as_str()), "{ep} lost the acknowledged {k}");
        }
    }
}

fn pick_etcdkit_and_etcd() -> Option<(PathBuf, PathBuf, tempfile::TempDir)> {
    let (etcd, c) = etcd_binaries()?;
    let tmp = tempfile::tempdir().unwrap();
    let _ = etcdkit_as(tmp.path(), "etcd");
    Some((etcd, c, tmp))
}

/// One mixed cluster through its paces: writes through every member,
/// leases across members, the leader moved to each member in turn, then
/// killed (`PEER_KILLS` times) under writes; nothing acknowledged is lost.
fn mixed_cluster(kit_members: usize, base: u16) {
    let Some((etcd, c, tmp)) = pick_etcdkit_and_etcd() else { return };
    let kit = etcdkit_as(tmp.path(), "etcd");
    let bins: Vec<&Path> = (0..3).map(|i| if i < kit_members { kit.as_path() } else { etcd.as_path() }).collect();
    let mut ms = members(tmp.path(), &bins, base);
    let ic = initial_cluster(&ms);
    for m in ms.iter_mut() {
        m.start(&ic, "new", "mixed");
    }
    wait_leader(&c, &ms);
    let logs = |ms: &[Member]| ms.iter().map(|m| format!("== {}\n{}", m.name, m.log())).collect::<String>();
    let mut acked = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        let k = format!("ack/w{i}");
        ctl(&c, &m.endpoint(), &["put", &k, "v"], &|| logs(&ms));
        acked.push(k);
    }
    // A lease granted through one member, kept alive and read through the others.
    let out = ctl(&c, &ms[0].endpoint(), &["lease", "grant", "60"], &|| logs(&ms));
    let lease = out.split_whitespace().nth(1).unwrap().to_string();
    for m in &ms[1..] {
        let out = ctl(&c, &m.endpoint(), &["lease", "keep-alive", "--once", &lease], &|| logs(&ms));
        assert!(out.contains("keepalived with TTL(60)"), "{}: {out}", m.name);
        let out = ctl(&c, &m.endpoint(), &["lease", "timetolive", &lease], &|| logs(&ms));
        assert!(out.contains("granted with TTL(60s)"), "{}: {out}", m.name);
    }
    // The leader moves to every member in turn (MoveLeader through the leader).
    for target in 0..ms.len() {
        let id = member_id(&c, &ms[target]);
        let leader = wait_leader(&c, &ms);
        if leader != target {
            let out = ctl(&c, &ms[leader].endpoint(), &["move-leader", &format!("{id:x}")], &|| logs(&ms));
            assert!(out.contains("Leadership transferred"), "{out}");
        }
        assert_eq!(wait_leader(&c, &ms), target, "leadership did not reach {}", ms[target].name);
        let k = format!("ack/moved{target}");
        ctl(&c, &ms[(target + 1) % 3].endpoint(), &["put", &k, "v"], &|| logs(&ms));
        acked.push(k);
    }
    // Kill the leader (SIGKILL) under writes, restart it, again.
    let kills: usize = std::env::var("PEER_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    for round in 0..kills {
        let leader = wait_leader(&c, &ms);
        ms[leader].kill();
        // Writes through a surviving member while the cluster elects.
        let other = (leader + 1) % 3;
        for j in 0..5 {
            let k = format!("ack/k{round}-{j}");
            ctl(&c, &ms[other].endpoint(), &["put", &k, "v"], &|| logs(&ms));
            acked.push(k);
        }
        ms[leader].start(&ic, "new", "mixed");
        wait_leader(&c, &ms);
    }
    // Keep-alives forwarded by the followers, then their leader restarted and
    // made leader again: the connections a follower kept to it are dead, and
    // the next keep-alives must still reach it.
    let leader = wait_leader(&c, &ms);
    let out = ctl(&c, &ms[leader].endpoint(), &["lease", "grant", "60"], &|| logs(&ms));
    let lease = out.split_whitespace().nth(1).unwrap().to_string();
    let keep_alive_through_followers = |ms: &[Member], leader: usize| {
        for (i, m) in ms.iter().enumerate().filter(|(i, _)| *i != leader) {
            for _ in 0..3 {
                let out = ctl(&c, &m.endpoint(), &["lease", "keep-alive", "--once", &lease], &|| logs(ms));
                assert!(out.contains("keepalived with TTL(60)"), "member {i}: {out}");
            }
        }
    };
    keep_alive_through_followers(&ms, leader);
    ms[leader].kill();
    ms[leader].start(&ic, "new", "mixed");
    let now = wait_leader(&c, &ms);
    if now != leader {
        let id = member_id(&c, &ms[leader]);
        let out = ctl(&c, &ms[now].endpoint(), &["move-leader", &format!("{id:x}")], &|| logs(&ms));
        assert!(out.contains("Leadership transferred"), "{out}");
    }
    assert_eq!(wait_leader(&c, &ms), leader, "leadership did not return to {}", ms[leader].name);
    keep_alive_through_followers(&ms, leader);
    converged(&c, &ms, &acked);
}

#[test]
fn two_etcd_and_one_etcdkit() {
    mixed_cluster(1, 27000);
}

#[test]
fn one_etcd_and_two_etcdkit() {
    mixed_cluster(2, 27010);
}

/// A fourth member joins a cluster that holds data; its leader's log is
/// either a bootstrap snapshot (etcdkit) or the whole log (etcd), so both
/// directions take each path once.
fn join(leaders: &Path, joiner: &Path, c: &Path, tmp: &Path, base: u16, mb: usize) {
    let bins = [leaders, leaders, leaders, joiner];
    let mut ms = members(tmp, &bins, base);
    let ic3 = initial_cluster(&ms[..3]);
    for m in ms[..3].iter_mut() {
        m.start(&ic3, "new", "join");
    }
    wait_leader(c, &ms[..3]);
    let logs = |ms: &[Member]| ms.iter().map(|m| format!("== {}\n{}", m.name, m.log())).collect::<String>();
    // `mb` MiB of values, 100 KiB each, then a compaction and a defrag so a
    // snapshot (not only the log) carries them.
    let value = "v".repeat(100 << 10);
    let mut acked = Vec::new();
    for i in 0..mb * 10 {
        let k = format!("ack/{i:05}");
        let (ok, _, err) = etcdctl(c, &["--endpoints", &ms[i % 3].endpoint(), "put", &k, &value]);
        assert!(ok, "put {k}: {err}");
        acked.push(k);
    }
    let out = ctl(c, &ms[0].endpoint(), &["member", "add", "m3", "--peer-urls", &ms[3].peer_url()], &|| logs(&ms));
    assert!(out.contains("added to cluster"), "{out}");
    let ic4 = initial_cluster(&ms);
    ms[3].start(&ic4, "existing", "join");
    let start = Instant::now();
    loop {
        let (ok, out, _) = etcdctl(c, &["--endpoints", &ms[0].endpoint(), "member", "list"]);
        if ok && out.lines().filter(|l| l.contains(", started, ")).count() == 4 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "m3 did not start: {out}\n{}", logs(&ms));
        std::thread::sleep(Duration::from_millis(300));
    }
    converged(c, &ms, &acked);
}

#[test]
fn etcdkit_joins_a_loaded_etcd_cluster_and_etcd_joins_an_etcdkit_cluster() {
    let Some((etcd, c, tmp)) = pick_etcdkit_and_etcd() else { return };
    let kit = etcdkit_as(tmp.path(), "etcd");
    let mb = std::env::var("PEER_JOIN_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    join(&etcd, &kit, &c, &a, 27020, mb);
    join(&kit, &etcd, &c, &b, 27030, mb);
}

/// A running etcdkit cluster restarted member by member as real etcd on the
/// same data dirs (the reverse of etcd's release-upgrade test).
#[test]
fn etcdkit_cluster_replaced_member_by_member_with_etcd() {
    let Some((etcd, c, tmp)) = pick_etcdkit_and_etcd() else { return };
    let kit = etcdkit_as(tmp.path(), "etcd");
    let mut ms = members(tmp.path(), &[&kit, &kit, &kit], 27040);
    let ic = initial_cluster(&ms);
    for m in ms.iter_mut() {
        m.start(&ic, "new", "rolling");
    }
    wait_leader(&c, &ms);
    let logs = |ms: &[Member]| ms.iter().map(|m| format!("== {}\n{}", m.name, m.log())).collect::<String>();
    let mut acked = Vec::new();
    for i in 0..3 {
        // Stop one member (SIGKILL), start real etcd on its data dir.
        ms[i].kill();
        ms[i].bin = etcd.clone();
        for j in 0..10 {
            let k = format!("ack/r{i}-{j}");
            ctl(&c, &ms[(i + 1) % 3].endpoint(), &["put", &k, "v"], &|| logs(&ms));
            acked.push(k);
        }
        ms[i].start(&ic, "new", "rolling");
        wait_leader(&c, &ms);
        converged(&c, &ms, &acked);
    }
    let out = ctl(&c, &ms[0].endpoint(), &["member", "list"], &|| logs(&ms));
    assert_eq!(out.lines().filter(|l| l.contains(", started, ")).count(), 3, "{out}");
}

/// Garbage on a member's peer port: wrong cluster IDs, bytes that are not
/// raft messages, truncated streams, a removed member's traffic. Each gets
/// etcd's status code, and the member keeps serving.
#[test]
fn peer_garbage_gets_etcds_answers() {
    let Some((_, c, tmp)) = pick_etcdkit_and_etcd() else { return };
    let kit = etcdkit_as(tmp.path(), "etcd");
    let mut ms = members(tmp.path(), &[&kit], 27050);
    let ic = initial_cluster(&ms);
    ms[0].start(&ic, "new", "garbage");
    wait_leader(&c, &ms);
    let cid = {
        let out = ctl(&c, &ms[0].endpoint(), &["endpoint", "status", "-w", "json"], &|| ms[0].log());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        format!("{:x}", v[0]["Status"]["header"]["cluster_id"].as_u64().unwrap())
    };
    let peer = ms[0].peer_url();
    let curl = |args: &[&str]| -> String {
        let o = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"])
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let hdr = |cid: &str| {
        vec![
            "-H".to_string(),
            format!("X-Etcd-Cluster-ID: {cid}"),
            "-H".into(),
            "X-Server-Version: 3.4.23".into(),
            "-H".into(),
            "X-Min-Cluster-Version: 3.0.0".into(),
            "-H".into(),
            "X-Server-From: 1".into(),
        ]
    };
    let with = |h: &[String], rest: &[&str]| -> String {
        let mut a: Vec<&str> = h.iter().map(String::as_str).collect();
        a.extend_from_slice(rest);
        curl(&a)
    };
    let garbage = tmp.path().join("garbage");
    std::fs::write(&garbage, (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>())
        .unwrap();
    let g = format!("@{}", garbage.display());
    // Another cluster's traffic: 412.
    assert_eq!(with(&hdr("deadbeef"), &["-X", "POST", "--data-binary", &g, &format!("{peer}/raft")]), "412");
    assert_eq!(with(&hdr("deadbeef"), &[&format!("{peer}/raft/stream/message/1")]), "412");
    // Bytes that are not a raft message: 400.
    assert_eq!(with(&hdr(&cid), &["-X", "POST", "--data-binary", &g, &format!("{peer}/raft")]), "400");
    assert_eq!(with(&hdr(&cid), &["-X", "POST", "--data-binary", &g, &format!("{peer}/raft/snapshot")]), "400");
    // A truncated snapshot (a length that promises more than comes): 400.
    let short = tmp.path().join("short");
    std::fs::write(&short, [0, 0, 0, 0, 0, 0, 1, 0, 8, 7]).unwrap();
    let s = format!("@{}", short.display());
    assert_eq!(with(&hdr(&cid), &["-X", "POST", "--data-binary", &s, &format!("{peer}/raft/snapshot")]), "400");
    // A snapshot message followed by bytes that are not a db: 500 (etcd's
    // "failed to save KV snapshot"), and nothing of it stays in the snap
    // dir (it was written aside and checked before it could be installed).
    let msg = raftpb::Message {
        r#type: raftpb::MessageType::MsgSnap as i32,
        from: 1,
        term: 1,
        snapshot: raftpb::Snapshot {
            data: Some(b"{}".to_vec()),
            metadata: raftpb::SnapshotMetadata { index: 1 << 40, term: 1, ..Default::default() },
        },
        ..Default::default()
    };
    let mut frame = (msg.encoded_len() as u64).to_be_bytes().to_vec();
    frame.extend(msg.encode_to_vec());
    frame.extend(std::fs::read(&garbage).unwrap());
    let bad_db = tmp.path().join("bad-db");
    std::fs::write(&bad_db, frame).unwrap();
    let b = format!("@{}", bad_db.display());
    assert_eq!(with(&hdr(&cid), &["-X", "POST", "--data-binary", &b, &format!("{peer}/raft/snapshot")]), "500");
    let snap_dir = DataDir::new(&ms[0].dir).snap();
    let left: Vec<String> = std::fs::read_dir(&snap_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| DataDir::is_transit_file(n) || DataDir::received_db_index(n).is_some())
        .collect();
    assert!(left.is_empty(), "left in {}: {left:?}", snap_dir.display());
    // A stream from someone who is not a member: 404; wrong methods: 405.
    assert_eq!(with(&hdr(&cid), &["-H", "X-Raft-To: 1", &format!("{peer}/raft/stream/message/2")]), "404");
    assert_eq!(with(&hdr(&cid), &[&format!("{peer}/raft")]), "405");
    assert_eq!(with(&hdr(&cid), &[&format!("{peer}/raft/stream/bogus/2")]), "404");
    // An incompatible version: 412.
    let old =
        vec!["-H".to_string(), format!("X-Etcd-Cluster-ID: {cid}"), "-H".into(), "X-Server-Version: 2.0.0".into()];
    assert_eq!(with(&old, &["-X", "POST", "--data-binary", &g, &format!("{peer}/raft")]), "412");
    // Probing, members and version answer.
    assert_eq!(curl(&[&format!("{peer}/raft/probing")]), "200");
    assert_eq!(curl(&[&format!("{peer}/members")]), "200");
    assert_eq!(curl(&[&format!("{peer}/version")]), "200");
    // The member still serves.
    ctl(&c, &ms[0].endpoint(), &["put", "still", "here"], &|| ms[0].log());
    let out = ctl(&c, &ms[0].endpoint(), &["get", "still", "--print-value-only"], &|| ms[0].log());
    assert_eq!(out.trim(), "here");
    assert!(!ms[0].log().contains("panicked"), "{}", ms[0].log());
}

//! One workload against an etcd endpoint with the Rust client
//! `etcd-client`, printing what it saw, one line per step, leaving out what
//! differs between two servers of the same data (cluster and member IDs,
//! lease IDs, raft terms). etcdkit's tests run it against real etcd and
//! against etcdkit and compare the outputs.
//!
//! Usage: etcd-client-workload HOST:PORT SNAPSHOT-FILE

use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, LeaseTimeToLiveOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, WatchOptions,
};
use sha2::Digest;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn kvs(kvs: &[KeyValue]) -> String {
    kvs.iter()
        .map(|k| {
            format!(
                " {}={}@{}/{}/{}",
                String::from_utf8_lossy(k.key()),
                String::from_utf8_lossy(k.value()),
                k.create_revision(),
                k.mod_revision(),
                k.version()
            )
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (ep, snap) = (&args[1], &args[2]);
    let mut c = Client::connect([ep.as_str()], None).await?;

    // Puts and prefix gets.
    for i in 0..10 {
        let r = c.put(format!("/app/k{i:02}"), format!("v{i}"), None).await?;
        println!("put {i} {}", r.header().map_or(0, |h| h.revision()));
    }
    let opts = GetOptions::new().with_prefix().with_limit(4).with_sort(SortTarget::Key, SortOrder::Descend);
    let g = c.get("/app/", Some(opts)).await?;
    println!("get prefix {} {} {}", g.count(), g.more(), kvs(g.kvs()));

    // A compare-and-swap txn: once on the right value, once on a stale one.
    for _ in 0..2 {
        let t = Txn::new()
            .when([Compare::value("/app/k03", CompareOp::Equal, "v3")])
            .and_then([TxnOp::put("/app/k03", "swapped", None)])
            .or_else([TxnOp::get("/app/k03", None)]);
        let r = c.txn(t).await?;
        println!("cas {} {}", r.succeeded(), r.header().map_or(0, |h| h.revision()));
    }

    // A watch from a past revision: the history, then a live event.
    let opts = WatchOptions::new().with_prefix().with_start_revision(5).with_prev_key();
    let mut w = c.watch("/app/k0", Some(opts)).await?;
    let mut deleter = c.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = deleter.delete("/app/k09", None).await;
    });
    let mut seen = 0;
    while seen < 8 {
        let Some(r) = w.message().await? else { break };
        for e in r.events() {
            let kind = if e.event_type() == EventType::Put { "PUT" } else { "DELETE" };
            let kv = e.kv().expect("an event's kv");
            let prev = e.prev_kv().map(|p| String::from_utf8_lossy(p.value()).into_owned()).unwrap_or_default();
            println!(
                "watch {kind} {} {} {} {prev}",
                String::from_utf8_lossy(kv.key()),
                String::from_utf8_lossy(kv.value()),
                kv.mod_revision()
            );
            seen += 1;
        }
    }
    drop(w);

    // A lease: granted, kept alive once, a key on it, then left to expire.
    let l = c.lease_grant(3, None).await?;
    println!("grant ttl {}", l.ttl());
    c.put("/app/leased", "x", Some(PutOptions::new().with_lease(l.id()))).await?;
    let (mut keeper, mut stream) = c.lease_keep_alive(l.id()).await?;
    keeper.keep_alive().await?;
    let ka = stream.message().await?.ok_or("no keep-alive answer")?;
    println!("keepalive ttl {}", ka.ttl());
    drop((keeper, stream));
    let ttl = c.lease_time_to_live(l.id(), Some(LeaseTimeToLiveOptions::new().with_keys())).await?;
    println!("timetolive granted {} keys {}", ttl.granted_ttl(), ttl.keys().len());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if c.get("/app/leased", None).await?.count() == 0 {
            println!("lease expired, key gone");
            break;
        }
        if Instant::now() > deadline {
            println!("lease did not expire");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("timetolive after {}", c.lease_time_to_live(l.id(), None).await?.ttl());

    // A snapshot: streamed, saved, its trailer checked.
    let mut s = c.snapshot().await?;
    let mut data = Vec::new();
    while let Some(r) = s.message().await? {
        data.extend_from_slice(r.blob());
    }
    std::fs::write(snap, &data)?;
    let (body, trailer) = data.split_at(data.len() - 32);
    println!("snapshot bytes%512 {} trailer ok {}", data.len() % 512, sha2::Sha256::digest(body).as_slice() == trailer);

    println!("status version {}", c.status().await?.version());
    let g = c.get("/app/", Some(GetOptions::new().with_prefix())).await?;
    println!("final {} {}", g.count(), kvs(g.kvs()));
    Ok(())
}

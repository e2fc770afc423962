//! One page-store case on one engine, as one JSON line (the fields of
//! `tools/boltbench -case`, so `benches/anchors.sh` compares them directly).
//!
//! ```text
//! usage: pagestore-bench ENGINE CASE COUNT [BATCH] [seq|rnd] [WRITERS]
//!        pagestore-bench floor fsync COUNT        (write 4 KiB + fdatasync loop)
//!        pagestore-bench floor bandwidth MIB      (1 MiB overwrite + fdatasync loop)
//! ```
//!
//! The database lives in a fresh directory under $BENCH_DIR (default /var/tmp).
use std::process::ExitCode;

use etcdkit_benches::pagestore;

fn us(d: Option<std::time::Duration>) -> String {
    d.map_or("null".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e6))
}

fn main() -> ExitCode {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let num = |i: usize, d: usize| arg(i, &d.to_string()).parse::<usize>();
    let (Ok(count), Ok(batch), Ok(writers)) = (num(2, 0), num(3, 1), num(5, 16)) else {
        eprintln!("pagestore-bench: COUNT, BATCH and WRITERS are numbers");
        return ExitCode::from(2);
    };
    if a.len() < 3 {
        eprintln!("usage: pagestore-bench ENGINE CASE COUNT [BATCH] [seq|rnd] [WRITERS]");
        return ExitCode::from(2);
    }
    let base = std::env::var_os("BENCH_DIR").map_or_else(|| "/var/tmp".into(), std::path::PathBuf::from);
    let dir = match tempfile::Builder::new().prefix("pagestore-bench").tempdir_in(&base) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pagestore-bench: temporary directory in {}: {e}", base.display());
            return ExitCode::FAILURE;
        }
    };
    let (engine, case, mode) = (arg(0, ""), arg(1, ""), arg(4, "seq"));
    if engine == "floor" {
        let line = match case.as_str() {
            "fsync" => pagestore::fsync_floor(dir.path(), count).map(|o| {
                format!(
                    r#"{{"engine":"floor","case":"fsync","count":{count},"ops_per_sec":{:.1},"p50_us":{},"p99_us":{}}}"#,
                    o.ops_per_sec(),
                    us(o.p50),
                    us(o.p99)
                )
            }),
            "bandwidth" => pagestore::bandwidth_floor(dir.path(), count).map(|bps| {
                format!(r#"{{"engine":"floor","case":"bandwidth","mib":{count},"bytes_per_sec":{bps:.0}}}"#)
            }),
            c => Err(std::io::Error::other(format!("unknown floor {c:?} (fsync|bandwidth)"))),
        };
        return match line {
            Ok(l) => {
                println!("{l}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pagestore-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let random = match mode.as_str() {
        "seq" => false,
        "rnd" => true,
        m => {
            eprintln!("pagestore-bench: mode {m:?} is not seq or rnd");
            return ExitCode::from(2);
        }
    };
    match pagestore::run(&engine, dir.path(), &case, count, batch, random, writers) {
        Ok(o) => {
            println!(
                r#"{{"engine":"{engine}","case":"{case}","count":{count},"batch_size":{batch},"mode":"{mode}","writers":{writers},"ops_per_sec":{:.1},"seconds":{:.6},"p50_us":{},"p99_us":{}}}"#,
                o.ops_per_sec(),
                o.elapsed.as_secs_f64(),
                us(o.p50),
                us(o.p99)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pagestore-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

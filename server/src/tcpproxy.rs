//! `etcd gateway start` (etcd's `etcdmain/gateway.go` and
//! `proxy/tcpproxy`): a TCP proxy in front of a cluster's client URLs.
//! Each connection goes to the next endpoint in turn; an endpoint that
//! refuses a connection is skipped for `--retry-delay` (etcd: a minute).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The gateway's flags, as etcd's cobra command takes them (before or after `start`).
struct Flags {
    endpoints: Vec<String>,
    listen: String,
    retry: Duration,
}

fn parse(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags {
        endpoints: vec!["127.0.0.1:2379".into()],
        listen: "127.0.0.1:23790".into(),
        retry: Duration::from_secs(60),
    };
    let mut start = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "start" {
            start = true;
            continue;
        }
        let Some(flag) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            return Err(format!("unknown command {a:?} for \"etcd gateway\""));
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, v.to_string()),
            None => (flag, it.next().cloned().ok_or_else(|| format!("flag needs an argument: --{flag}"))?),
        };
        match name {
            // etcd strips the scheme: the proxy is plain TCP.
            "endpoints" => {
                f.endpoints = value
                    .split(',')
                    .filter(|e| !e.is_empty())
                    .map(|e| e.split_once("://").map_or(e, |(_, h)| h).trim_end_matches('/').to_string())
                    .collect()
            }
            "listen-addr" => f.listen = value,
            "retry-delay" => {
                f.retry =
                    crate::flags::parse_go_duration(&value).ok_or_else(|| format!("invalid --retry-delay {value:?}"))?
            }
            // DNS discovery is not supported: the endpoints are given.
            "discovery-srv" | "discovery-srv-name" | "insecure-discovery" | "trusted-ca-file" => {}
            _ => return Err(format!("unknown flag: --{name}")),
        }
    }
    if !start {
        return Err("gateway related command: etcd gateway start [flags]".into());
    }
    if f.endpoints.is_empty() {
        return Err("no endpoints found".into());
    }
    Ok(f)
}

/// Runs `etcd gateway ARGS` (the words after `gateway`) until killed.
pub fn main(args: &[String]) -> ExitCode {
    let f = match parse(args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(f)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

async fn run(f: Flags) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&f.listen).await?;
    // etcd's zap line (tools wait for its message).
    let eps = f.endpoints.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(",");
    eprintln!(r#"{{"level":"info","msg":"ready to proxy client requests","endpoints":[{eps}]}}"#);
    let down: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; f.endpoints.len()]));
    let endpoints = Arc::new(f.endpoints);
    let mut next = 0usize;
    loop {
        let (mut inbound, _) = listener.accept().await?;
        let _ = inbound.set_nodelay(true);
        let (endpoints, down, retry) = (endpoints.clone(), down.clone(), f.retry);
        let first = next;
        next = next.wrapping_add(1);
        tokio::spawn(async move {
            for k in 0..endpoints.len() {
                let i = (first + k) % endpoints.len();
                if down.lock()[i].is_some_and(|t| t.elapsed() < retry) {
                    continue;
                }
                let dial = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(&endpoints[i]));
                match dial.await {
                    Ok(Ok(mut out)) => {
                        down.lock()[i] = None;
                        let _ = out.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        return;
                    }
                    _ => down.lock()[i] = Some(Instant::now()),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_etcd_takes_them() {
        let a: Vec<String> = ["--endpoints=http://127.0.0.1:1,127.0.0.1:2", "start", "--listen-addr", "127.0.0.1:9"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = parse(&a).unwrap();
        assert_eq!(f.endpoints, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(f.listen, "127.0.0.1:9");
        assert!(parse(&a[..1]).is_err());
        assert!(parse(&["start".into(), "--bogus=1".into()]).is_err());
    }
}

//! etcdkit as `etcdctl` beside etcd 3.4's own etcdctl: the same script of
//! commands, run by each against a fresh server of the same configuration
//! (so cluster and member IDs are the same), gives the same standard
//! output, standard error and exit code, once the values that differ from
//! run to run are normalised (lease IDs, a new member's ID, durations).
//! The servers: real etcd 3.4, and `etcdkit serve`.
//!
//! Ports 28000-28059 and 28070-28079 (ctl_faults.rs has 28060-28069).

use std::path::{Path, PathBuf};

use etcdkit_tests::{EtcdProc, etcd_binaries, etcdkit_as, start_etcd_with};

/// One step: arguments (after the global flags) and standard input.
struct Step {
    args: Vec<String>,
    stdin: Option<&'static str>,
}

fn step(s: &str) -> Step {
    Step { args: split(s), stdin: None }
}

fn step_in(s: &str, stdin: &'static str) -> Step {
    Step { args: split(s), stdin: Some(stdin) }
}

/// Splits a command line on spaces; `''` is an empty argument.
fn split(s: &str) -> Vec<String> {
    s.split(' ').map(|w| if w == "''" { String::new() } else { w.to_string() }).collect()
}

/// Runs `ctl` with the steps against `endpoint`: one transcript entry per
/// step, values that vary between runs replaced by names.
fn transcript(ctl: &Path, endpoint: &str, steps: &[Step], dir: &Path) -> Vec<String> {
    let mut subst: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for s in steps {
        let args: Vec<String> = s
            .args
            .iter()
            .map(|a| {
                let mut a = a.replace("$DIR", dir.to_str().unwrap());
                for (real, name) in &subst {
                    a = a.replace(name, real);
                }
                a
            })
            .collect();
        let mut all = vec![format!("--endpoints={endpoint}")];
        all.extend(args.iter().cloned());
        let (code, o, e) = exec(ctl, &all, s.stdin);
        // A lease or member ID first seen in an answer gets a name.
        for line in o.lines() {
            let hex = line
                .strip_prefix("lease ")
                .and_then(|r| r.split(' ').next())
                .filter(|_| line.contains(" granted with TTL"))
                .or_else(|| line.strip_prefix("Member ").and_then(|r| r.split_whitespace().next()))
                .and_then(|h| u64::from_str_radix(h, 16).ok());
            // A lease granted with `-w json`: `"ID":<decimal>`.
            let dec = line
                .split_once("\"ID\":")
                .filter(|_| line.contains("\"TTL\""))
                .and_then(|(_, r)| r.split(',').next()?.parse::<u64>().ok());
            if let Some(id) = hex.or(dec)
                && !subst.iter().any(|(r, _)| *r == format!("{id:x}") || *r == format!("{id:016x}"))
            {
                let name = format!("ID{}", subst.len());
                subst.push((format!("{id:016x}"), name.clone()));
                subst.push((format!("{id:x}"), name.clone()));
                subst.push((id.to_string(), format!("{name}dec")));
            }
        }
        let mut text = format!("$ etcdctl {}\n[{code}]\n{o}--- stderr\n{e}", s.args.join(" "));
        for (real, name) in &subst {
            text = text.replace(real, name);
        }
        out.push(normalise(&text));
    }
    out
}

/// Runs `ctl ARGS` (API v3, empty environment) with `stdin`, for at most a
/// minute; returns the exit code, stdout and stderr.
fn exec(ctl: &Path, args: &[String], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(ctl);
    cmd.env_clear().env("ETCDCTL_API", "3").args(args);
    let (code, o, e) = etcdkit_tests::run(&mut cmd, stdin, Some(std::time::Duration::from_secs(60)));
    // Bytes that are not text (`-w protobuf`) are compared as hex.
    let text = |b: Vec<u8>| {
        String::from_utf8(b)
            .unwrap_or_else(|e| e.as_bytes().iter().map(|x| format!("{x:02x}")).collect::<String>() + "\n")
    };
    (code.unwrap_or(-1), text(o), text(e))
}

/// Durations, log timestamps and clientv3's connection names differ on
/// every run.
fn normalise(s: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        // A Go duration: one with a fraction (`1.173391ms`), or a whole
        // number of a unit below a second (`940µs`). A TTL (`100s`) is
        // whole seconds.
        let sub_second = ["ms", "µs", "us", "ns"].iter().any(|u| word.ends_with(u));
        let is_duration = (word.contains('.') || sub_second)
            && word.ends_with('s')
            && word.starts_with(|c: char| c.is_ascii_digit())
            && word.chars().all(|c| c.is_ascii_digit() || c == '.' || "nµums".contains(c));
        out.push_str(if is_duration { "DURATION" } else { word });
        word.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' || "nµums".contains(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    // `"ts":"…"` and `client-<uuid>/`.
    let mut r = String::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find("\"ts\":\"") {
        r.push_str(&rest[..i + 6]);
        let after = &rest[i + 6..];
        let end = after.find('"').unwrap_or(after.len());
        r.push_str("TS");
        rest = &after[end..];
    }
    r.push_str(rest);
    let mut out = String::new();
    let mut rest = r.as_str();
    while let Some(i) = rest.find("endpoint://client-") {
        out.push_str(&rest[..i + 18]);
        let after = &rest[i + 18..];
        out.push_str("UUID");
        rest = &after[after.find('/').unwrap_or(after.len())..];
    }
    out.push_str(rest);
    // Table columns are as wide as their widest cell (a duration).
    out.lines()
        .map(|l| {
            if l.starts_with('+') || l.starts_with('|') {
                let mut c = String::new();
                for ch in l.chars() {
                    if !((ch == ' ' || ch == '-') && c.ends_with(ch)) {
                        c.push(ch);
                    }
                }
                c
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The script: every command whose answer does not depend on timing.
fn script() -> Vec<Step> {
    let txn = "mod(\"foo\") = \"0\"\n\nput foo txn-bar\nget foo\n\nget foo2\n\n";
    let mut s: Vec<Step> = [
        "put foo bar",
        "put foo2 bar2 --prev-kv",
        "put foo2 baz --prev-kv",
        "put foo3 v3 -w json",
        "put foo3 v4 -w fields --prev-kv",
        "get foo",
        "get foo --prefix -w json",
        "get foo --prefix -w fields",
        "get foo --prefix -w protobuf",
        "get '' --prefix --keys-only",
        "get foo --prefix --order=DESCEND --sort-by=MODIFY",
        "get foo --prefix --sort-by=VALUE -w json",
        "get foo --rev=2",
        "get foo --prefix --limit=1 -w json",
        "get foo --hex",
        "get foo --prefix --print-value-only",
        "get foo --consistency=s",
        "get foo -w table",
        "get foo --from-key -w json",
        "get foo foo3",
        "get",
        "get foo --prefix --from-key",
        "get foo --order=SIDEWAYS",
        "get foo --consistency=x",
        "get foo --print-value-only -w json",
        "del foo2 --prev-kv",
        "del nothing -w json",
        "del foo3 --prev-kv -w fields",
        "compaction 3",
        "get foo --rev=2",
        "compaction 1",
        "compaction x",
        // Before any key has a lease: the hash covers lease IDs, which differ.
        "endpoint hashkv",
        "endpoint hashkv -w table",
        "endpoint hashkv -w json",
        "lease grant 100",
        "lease grant 200 -w json",
        "lease grant x",
        "lease list -w json",
        "put leased v --lease=ID0",
        "lease timetolive ID0 --keys",
        "lease timetolive ID0 -w json",
        "lease timetolive ID0 --keys -w fields",
        "lease keep-alive --once ID0 -w fields",
        "lease revoke ID0",
        "lease timetolive ID0",
        "lease revoke ID0",
        "lease revoke zz",
        "lease keep-alive --once ID2",
        "get leased",
        "member list",
        "member list -w table",
        "member list -w json",
        "member list -w fields",
        "member remove zz",
        "member remove 1234",
        "member add",
        "member add m2 http://127.0.0.1:28099",
        "member add m2",
        "member update 1234 --peer-urls=http://127.0.0.1:28098",
        "endpoint health -w table",
        "endpoint health -w json",
        "alarm list",
        "alarm disarm",
        "alarm list -w json",
        "role add r1",
        "role add r1",
        "role grant-permission r1 readwrite foo",
        "role grant-permission r1 read pre --prefix",
        "role grant-permission r1 write a z",
        "role grant-permission r1 write from --from-key",
        "role grant-permission r1 admin foo",
        "role get r1",
        "role get r1 -w json",
        "role get r1 -w fields",
        "role list",
        "role list -w fields",
        "user add u1 --new-user-password=p1",
        "user add u2:p2",
        "user add :p3",
        "user grant-role u1 r1",
        "user get u1",
        "user get u1 --detail",
        "user get u1 -w json",
        "user list",
        "user list -w json",
        "role revoke-permission r1 foo",
        "role revoke-permission r1 pre --prefix",
        "role revoke-permission r1 a z",
        "role revoke-permission r1 from --from-key",
        "user revoke-role u1 r1",
        "user revoke-role u1 r1",
        "user delete u2",
        "user delete u2",
        "role delete r1",
        "role get r1",
        "auth disable",
        "defrag",
        "snapshot save",
        "snapshot status $DIR/nothing.db",
        "version",
        "move-leader",
        "move-leader zz",
        "watch",
        "txn extra",
        "nosuchcommand",
        "get --nosuchflag foo",
        "put --help",
        "lease --help",
        "endpoint health --help",
        "snapshot restore -h",
        "lea gr 10",
        "get foo -w yaml",
    ]
    .iter()
    .map(|s| step(s))
    .collect();
    s.push(step_in("txn", txn));
    s.push(step_in("txn -w json", txn));
    s.push(step_in("txn -w fields", txn));
    s.push(step_in("txn", "bad compare\n\n\n\n"));
    s.push(step_in("txn", "\nput a\n\n\n"));
    s.push(step_in("txn", "\n"));
    s.push(step_in("put from-stdin", "stdin value"));
    s.push(step("get from-stdin -w json"));
    s.push(step_in("user add u3 --interactive=false", "p3\n"));
    s.push(step_in("user passwd u3 --interactive=false", "p4\n"));
    s.push(step("user delete u3"));
    s
}

/// One run: a fresh server from `server` (etcd or etcdkit as etcd) and the
/// script through `ctl`.
fn run(server: &Path, ctl: &Path, tmp: &Path, tag: &str, client: u16) -> Vec<String> {
    let dir = tmp.join(format!("{tag}.etcd"));
    let peer = client + 1;
    let ic = format!("n1=http://127.0.0.1:{peer}");
    let p: EtcdProc =
        start_etcd_with(server, "n1", &dir, client, peer, Some(&ic), &["--initial-cluster-token", "ctl-test"]);
    let (_, real_ctl) = etcd_binaries().unwrap();
    p.ctl_retry(&real_ctl, &["put", "warm", "up"]);
    p.ctl_retry(&real_ctl, &["del", "warm"]);
    // One work dir for both runs: paths appear in messages.
    let work = tmp.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    transcript(ctl, &p.endpoint, &script(), &work)
}

fn compare(a: &[String], b: &[String], what: &str) {
    let mut diffs = Vec::new();
    for (x, y) in a.iter().zip(b) {
        if x != y {
            diffs.push(format!("--- etcdctl 3.4:\n{x}--- etcdkit:\n{y}"));
        }
    }
    assert_eq!(a.len(), b.len());
    assert!(diffs.is_empty(), "{what}: {} of {} steps differ:\n{}", diffs.len(), a.len(), diffs.join("\n"));
}

/// Go prints a whole number of microseconds without a fraction (`940µs`);
/// a run once took exactly that long.
#[test]
fn durations_with_and_without_a_fraction_are_normalised_but_ttls_are_not() {
    let s = r#"{"took":"940µs"} took 1.173391ms, 2ms, 15ns; ttl 100s"#;
    let want = r#"{"took":"DURATION"} took DURATION, DURATION, DURATION; ttl 100s"#;
    assert_eq!(normalise(s), format!("{want}\n"));
}

#[test]
fn etcdctl_matches_etcdctl_against_real_etcd() {
    let Some((etcd, real_ctl)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ours = etcdkit_as(tmp.path(), "etcdctl");
    let a = run(&etcd, &real_ctl, tmp.path(), "real", 28000);
    let b = run(&etcd, &ours, tmp.path(), "ours", 28000);
    compare(&a, &b, "against etcd 3.4");
}

#[test]
fn etcdctl_matches_etcdctl_against_etcdkit() {
    let Some((_, real_ctl)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ours = etcdkit_as(tmp.path(), "etcdctl");
    let server = etcdkit_as(tmp.path(), "etcd");
    let a = run(&server, &real_ctl, tmp.path(), "real", 28010);
    let b = run(&server, &ours, tmp.path(), "ours", 28010);
    compare(&a, &b, "against etcdkit serve");
}

/// etcd 3.5.1's `etcd`.
fn etcd35() -> Option<PathBuf> {
    etcdkit_tests::etcd35_dir().map(|d| d.join("etcd"))
}

/// `ctl` with TLS flags `tls` against `ep`: (exit code, stdout, stderr).
fn ctl_tls(ctl: &Path, ep: &str, tls: &[String], args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut all = vec![format!("--endpoints={ep}")];
    all.extend(tls.iter().cloned());
    all.extend(args.iter().map(|a| a.to_string()));
    exec(ctl, &all, stdin)
}

/// The operator's workflow over mTLS with etcdkit as etcdctl, against real
/// etcd 3.4, real etcd 3.5.1 and etcdkit serve: `snapshot save` gives the
/// status etcdctl 3.4's save of the same revision gives; the snapshot
/// restored (by etcdkit) boots real etcd 3.4 with the same keys; a client
/// with another CA, without a certificate, or with an expired one gets
/// etcdctl's error and exit code, and no file.
#[test]
fn snapshot_save_over_mtls_restores_into_real_etcd() {
    let Some((etcd34, real_ctl)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ours = etcdkit_as(tmp.path(), "etcdctl");
    let pki = etcdkit_tests::Pki::make(&tmp.path().join("pki"));
    let mut servers = vec![("etcd 3.4", etcd34.clone()), ("etcdkit", etcdkit_as(tmp.path(), "etcd"))];
    if let Some(e) = etcd35() {
        servers.push(("etcd 3.5.1", e));
    }
    let tls_flags = [
        "--cert-file",
        &pki.path("server.pem"),
        "--key-file",
        &pki.path("server-key.pem"),
        "--trusted-ca-file",
        &pki.path("ca.pem"),
        "--client-cert-auth",
    ]
    .map(str::to_string);
    let client = pki.client(Some("client"));
    for (i, (label, bin)) in servers.iter().enumerate() {
        let port = 28020 + 10 * i as u16;
        let dir = tmp.path().join(format!("s{i}.etcd"));
        let ic = format!("s{i}=http://127.0.0.1:{}", port + 1);
        let extra: Vec<&str> = tls_flags.iter().map(String::as_str).collect();
        let p = start_etcd_with(bin, &format!("s{i}"), &dir, port, port + 1, Some(&ic), &extra);
        let ep = p.endpoint.clone();
        let ready = std::time::Instant::now();
        while ctl_tls(&ours, &ep, &client, &["put", "k0", "v0"], None).0 != 0 {
            assert!(ready.elapsed().as_secs() < 60, "{label} did not serve over mTLS:\n{}", p.log_text());
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        for k in 1..40 {
            let (code, _, e) = ctl_tls(&ours, &ep, &client, &["put", &format!("k{k}"), &format!("v{k}")], None);
            assert_eq!(code, 0, "{label}: put: {e}");
        }
        let big = "x".repeat(300_000);
        assert_eq!(ctl_tls(&ours, &ep, &client, &["put", "big"], Some(&big)).0, 0);
        ctl_tls(&ours, &ep, &client, &["del", "k7"], None);

        let work = tmp.path().join(format!("w{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let (a, b) = (work.join("a.db"), work.join("b.db"));
        let (code, out, err) = ctl_tls(&ours, &ep, &client, &["snapshot", "save", a.to_str().unwrap()], None);
        assert_eq!(
            (code, out.as_str()),
            (0, format!("Snapshot saved at {}\n", a.display()).as_str()),
            "{label}: {err}"
        );
        assert!(!work.join("a.db.part").exists());
        let (code, _, err) =
            ctl_tls(&real_ctl, &ep, &client, &["--command-timeout=60s", "snapshot", "save", b.to_str().unwrap()], None);
        assert_eq!(code, 0, "{label}: etcdctl 3.4's save: {err}");
        let status = |f: &Path| {
            let (code, out, err) = exec(
                &ours,
                &["snapshot".into(), "status".into(), f.display().to_string(), "-w".into(), "json".into()],
                None,
            );
            assert_eq!(code, 0, "{err}");
            out
        };
        assert_eq!(status(&a), status(&b), "{label}: our save and etcdctl's of one revision");

        // Restored by etcdkit, served by real etcd 3.4: the same keys.
        let restored = work.join("r.etcd");
        let rport = port + 4;
        let ric = format!("r1=http://127.0.0.1:{}", rport + 1);
        let (code, _, err) = exec(
            &ours,
            &[
                "snapshot",
                "restore",
                a.to_str().unwrap(),
                "--data-dir",
                restored.to_str().unwrap(),
                "--name",
                "r1",
                "--initial-cluster",
                &ric,
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", rport + 1),
            ]
            .map(str::to_string),
            None,
        );
        assert_eq!(code, 0, "{label}: restore: {err}");
        let r = start_etcd_with(&etcd34, "r1", &restored, rport, rport + 1, Some(&ric), &[]);
        let want = {
            let (code, out, err) = ctl_tls(&ours, &ep, &client, &["get", "", "--prefix", "-w", "json"], None);
            assert_eq!(code, 0, "{err}");
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["kvs"].clone()
        };
        let got = r.get_all(&real_ctl, None)["kvs"].clone();
        assert_eq!(got, want, "{label}: the restored member's keys");
        drop(r);

        // Refused clients: etcdctl's error and exit code, and no file.
        let c = work.join("c.db");
        for who in ["other CA", "no certificate", "expired certificate"] {
            let flags = match who {
                "other CA" => {
                    let mut f = pki.client(Some("client"));
                    f[1] = pki.path("other-ca.pem");
                    f
                }
                "no certificate" => pki.client(None),
                _ => pki.client(Some("expired")),
            };
            let args = ["--command-timeout=5s", "snapshot", "save", c.to_str().unwrap()];
            let (code, out, err) = ctl_tls(&ours, &ep, &flags, &args, None);
            let (rcode, _, rerr) = ctl_tls(&real_ctl, &ep, &flags, &args, None);
            assert_eq!(code, rcode, "{label}, {who}: exit code (ours: {err}; etcdctl: {rerr})");
            assert_eq!(err.lines().last(), rerr.lines().last(), "{label}, {who}: the error line");
            assert!(out.is_empty(), "{label}, {who}: {out}");
            // etcdctl 3.4 leaves `c.db.part` behind; etcdkit leaves nothing.
            let _ = std::fs::remove_file(work.join("c.db.part"));
            assert!(!c.exists(), "{label}, {who}: a file was left");
        }
        let (code, _, _) = ctl_tls(
            &ours,
            &ep,
            &pki.client(None),
            &["--command-timeout=5s", "snapshot", "save", c.to_str().unwrap()],
            None,
        );
        assert_ne!(code, 0);
        assert!(!c.exists() && !work.join("c.db.part").exists(), "{label}: no file after a refusal");
    }
}

/// A three-member real etcd 3.4 cluster: the membership and endpoint
/// commands (`--cluster`), and `get / --prefix --keys-only`, have the same
/// effect and output from etcdkit as from etcdctl (IDs of added members and
/// durations aside; health lines, which etcdctl prints in the order the
/// checks finish, compared as sets).
#[test]
fn cluster_commands_match_etcdctl_on_three_members() {
    let Some((etcd, real_ctl)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ours = etcdkit_as(tmp.path(), "etcdctl");
    let names = ["c1", "c2", "c3"];
    let ports: Vec<u16> = (0..3).map(|i| 28070 + 2 * i).collect();
    let ic: Vec<String> = names.iter().zip(&ports).map(|(n, p)| format!("{n}=http://127.0.0.1:{}", p + 1)).collect();
    let ic = ic.join(",");
    let procs: Vec<EtcdProc> = names
        .iter()
        .zip(&ports)
        .map(|(n, p)| {
            let extra = ["--initial-cluster-token", "ctl-cluster"];
            start_etcd_with(&etcd, n, &tmp.path().join(format!("{n}.etcd")), *p, p + 1, Some(&ic), &extra)
        })
        .collect();
    for (k, v) in [("/a", "1"), ("/b/c", "2"), ("x", "3")] {
        procs[0].ctl_retry(&real_ctl, &["put", k, v]);
    }
    let eps: Vec<String> = procs.iter().map(|p| p.endpoint.clone()).collect();
    let ep = eps.join(",");
    let sorted = |t: &str| {
        let mut l: Vec<&str> = t.lines().collect();
        l.sort();
        l.join("\n")
    };
    let reads = [
        "member list",
        "member list -w table",
        "member list -w json",
        "endpoint status --cluster",
        "endpoint status --cluster -w table",
        "endpoint status --cluster -w json",
        "endpoint status -w fields",
        "endpoint health --cluster",
        "endpoint health --cluster -w table",
        "endpoint hashkv --cluster",
        "endpoint hashkv --cluster -w json",
        "get / --prefix --keys-only",
        "get '' --prefix --keys-only -w json",
    ];
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    for r in reads {
        // etcdctl balances a request over the endpoints (a header's member
        // ID would say which answered): only `--cluster` ones go to all.
        let to = if r.contains("--cluster") { &ep } else { &eps[0] };
        let a = transcript(&real_ctl, to, &[step(r)], &work);
        let b = transcript(&ours, to, &[step(r)], &work);
        if r.starts_with("endpoint health") {
            assert_eq!(sorted(&a[0]), sorted(&b[0]), "{r}");
        } else {
            compare(&a, &b, r);
        }
    }
    // Membership changes: the same script through each, one after the other.
    let peer = "http://127.0.0.1:28079";
    let changes = || -> Vec<Step> {
        [
            &format!("member add m4 --peer-urls={peer}") as &str,
            "member list",
            "member remove ID0",
            "member list -w json",
            &format!("member add m4 --learner --peer-urls={peer}"),
            "member promote ID1",
            "member update ID1 --peer-urls=http://127.0.0.1:28078",
            "member list -w table",
            "member remove ID1",
            "member remove ID1",
        ]
        .iter()
        .map(|s| step(s))
        .collect()
    };
    let a = transcript(&real_ctl, &eps[0], &changes(), &work);
    let b = transcript(&ours, &eps[0], &changes(), &work);
    compare(&a, &b, "membership changes");
}

/// `etcdutl backup` of a stopped real etcd 3.4 member: the WAL holds
/// etcdctl 3.4's `backup --with-v3` entries, with the entries it drops
/// emptied in place instead (new IDs aside), the db is etcdctl's, and real
/// etcd starts on it with `--force-new-cluster` (after `etcdutl defrag`)
/// and serves the same keys.
#[test]
fn etcdutl_backup_matches_etcdctl_and_boots_a_new_cluster() {
    let Some((etcd, real_ctl)) = etcd_binaries() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let etcdutl = etcdkit_as(tmp.path(), "etcdutl");
    let src = tmp.path().join("src.etcd");
    let want = {
        let p = start_etcd_with(&etcd, "b1", &src, 28050, 28051, None, &[]);
        for i in 0..20 {
            p.ctl_retry(&real_ctl, &["put", &format!("k{i}"), &format!("v{i}")]);
        }
        p.ctl_retry(&real_ctl, &["del", "k3"]);
        let kvs = p.get_all(&real_ctl, None)["kvs"].clone();
        // The last commit index and db batch reach the disk before the kill
        // (`--force-new-cluster` drops entries past the WAL's commit index).
        std::thread::sleep(std::time::Duration::from_secs(1));
        kvs
    };
    let (ours, theirs) = (tmp.path().join("ours.etcd"), tmp.path().join("theirs.etcd"));
    let args = ["backup", "--data-dir", src.to_str().unwrap(), "--backup-dir", ours.to_str().unwrap()];
    let (code, _, err) = exec(&etcdutl, &args.map(str::to_string), None);
    assert_eq!(code, 0, "{err}");
    let out = std::process::Command::new(&real_ctl)
        .env_clear()
        .env("ETCDCTL_API", "2")
        .args(["backup", "--with-v3", "--data-dir", src.to_str().unwrap(), "--backup-dir", theirs.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entries = |d: &Path| -> Vec<serde_json::Value> {
        let dir = d.join("member/wal");
        let (ok, out, err) = etcdkit_tests::etcdkit(&["wal", "dump", dir.to_str().unwrap(), "-w", "json"], None);
        assert!(ok, "{err}");
        etcdkit_tests::json_lines(&out).into_iter().filter_map(|v| v.get("entry").cloned()).collect()
    };
    // Ours: every index kept, the emptied ones with no data; without the
    // empty ones (and renumbered), etcdctl's.
    let (mine, etcdctl) = (entries(&ours), entries(&theirs));
    let kept: Vec<serde_json::Value> = mine.iter().filter(|e| e["data_len"] != 0 || e["index"] == 1).cloned().collect();
    let strip = |v: &[serde_json::Value]| -> Vec<serde_json::Value> {
        v.iter()
            .filter(|e| e["data_len"] != 0)
            .map(|e| {
                let mut e = e.clone();
                e.as_object_mut().unwrap().remove("index");
                e
            })
            .collect()
    };
    assert_eq!(strip(&kept), strip(&etcdctl), "the backups' non-empty entries");
    assert!(mine.windows(2).all(|w| w[1]["index"].as_u64() == w[0]["index"].as_u64().map(|i| i + 1)));
    let db = |d: &Path| etcdkit_tests::etcdkit_ok(&["bolt", "dump", d.join("member/snap/db").to_str().unwrap()]);
    assert_eq!(db(&ours), db(&theirs), "the backups' dbs");
    // Defragmented offline, it still serves them.
    let (code, _, err) = exec(&etcdutl, &["defrag", "--data-dir", ours.to_str().unwrap()].map(str::to_string), None);
    assert_eq!(code, 0, "{err}");
    let p = start_etcd_with(&etcd, "b1", &ours, 28052, 28053, None, &["--force-new-cluster"]);
    assert_eq!(p.get_all(&real_ctl, None)["kvs"], want, "keys served from the backup");
}

/// A token that expires while `txn -i` waits for its input is renewed and
/// the txn made, as clientv3's retry does (etcd's e2e TestCtlV3AuthTxnJWT
/// failed this way on a loaded CI machine: its 1 s JWTs ran out between
/// the connection's Authenticate and the Txn). Against real etcd 3.4 and
/// etcdkit serve, with HS256 tokens of 1 s and the input 2.5 s late.
#[test]
fn txn_renews_a_token_that_expired_while_it_read_its_input() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let ours = etcdkit_as(tmp.path(), "etcdctl");
    let secret = tmp.path().join("jwt.secret");
    std::fs::write(&secret, b"etcdkit-test-hs256-secret-0123456789").unwrap();
    let token = format!("jwt,priv-key={},sign-method=HS256,ttl=1s", secret.display());
    let mut servers = vec![("etcdkit", etcdkit_as(tmp.path(), "etcd"), 28056)];
    if let Some((etcd, _)) = etcd_binaries() {
        servers.push(("etcd 3.4", etcd, 28054));
    }
    for (what, server, client) in servers {
        let dir = tmp.path().join(format!("{client}.etcd"));
        let p = start_etcd_with(&server, "j1", &dir, client, client + 1, None, &["--auth-token", &token]);
        let ep = format!("--endpoints={}", p.endpoint);
        for args in [&["put", "k", "v"][..], &["user", "add", "root:root"], &["auth", "enable"]] {
            let mut all = vec![ep.clone()];
            all.extend(args.iter().map(|a| a.to_string()));
            let (code, out, err) = exec(&ours, &all, None);
            assert_eq!(code, 0, "{what}: {args:?}: {out}{err}");
        }
        let mut child = std::process::Command::new(&ours)
            .env_clear()
            .env("ETCDCTL_API", "3")
            .args([&ep, "--user=root:root", "txn", "-i"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `txn -i` prompts once it has connected and authenticated; its
        // token (exp in whole seconds) is dead 2 s later at the latest. On
        // a thread, so that a client that never prompts fails the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut text = String::new();
            let _ = std::io::BufRead::read_line(&mut stdout, &mut text);
            if text == "compares:\n" {
                std::thread::sleep(std::time::Duration::from_millis(2500));
                let _ = child.stdin.take().unwrap().write_all(b"value(\"k\") = \"v\"\n\nget k\n\n\n");
            }
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            let _ = tx.send((child.wait_with_output(), text));
        });
        let (out, stdout) = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("txn -i did not finish");
        let out = out.unwrap();
        assert!(out.status.success(), "{what}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.ends_with("SUCCESS\n\nk\nv\n"), "{what}: {stdout}");
    }
}

//! etcd 3.4's command line (`etcdmain/config.go`), parsed as Go's `flag`
//! package parses it: `-name` or `--name`, `--name=value` or `--name value`,
//! booleans as `--flag` or `--flag=false`; an unknown flag is an error
//! (exit 2). Flags not given come from `ETCD_<NAME>` variables (a variable
//! that a flag also sets is refused, as etcd refuses it).
//!
//! Every flag etcd 3.4 has is accepted. Those this server does not act on
//! yet are listed by [`Flags::ignored`], and `serve` says so in the log once.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ServeError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Value,
}
use Kind::{Bool, Value};

/// (name, kind, default, acted on). Defaults are etcd 3.4's.
const FLAGS: &[(&str, Kind, &str, bool)] = &[
    // member
    ("name", Value, "default", true),
    ("data-dir", Value, "", true),
    ("wal-dir", Value, "", true),
    ("snapshot-count", Value, "100000", true),
    ("heartbeat-interval", Value, "100", true),
    ("election-timeout", Value, "1000", true),
    ("initial-election-tick-advance", Bool, "true", false),
    ("listen-peer-urls", Value, "http://localhost:2380", true),
    ("listen-client-urls", Value, "http://localhost:2379", true),
    ("max-snapshots", Value, "5", false),
    ("max-wals", Value, "5", false),
    ("cors", Value, "", false),
    ("quota-backend-bytes", Value, "0", true),
    ("backend-batch-limit", Value, "0", false),
    ("backend-batch-interval", Value, "0s", false),
    ("max-txn-ops", Value, "128", true),
    ("max-request-bytes", Value, "1572864", true),
    ("grpc-keepalive-min-time", Value, "5s", false),
    ("grpc-keepalive-interval", Value, "2h0m0s", false),
    ("grpc-keepalive-timeout", Value, "20s", false),
    ("max-concurrent-streams", Value, "4294967295", true),
    // clustering
    ("initial-advertise-peer-urls", Value, "http://localhost:2380", true),
    ("initial-cluster", Value, "", true),
    ("initial-cluster-state", Value, "new", true),
    ("initial-cluster-token", Value, "etcd-cluster", true),
    ("advertise-client-urls", Value, "http://localhost:2379", true),
    ("discovery", Value, "", false),
    ("discovery-fallback", Value, "proxy", false),
    ("discovery-proxy", Value, "", false),
    ("discovery-srv", Value, "", false),
    ("discovery-srv-name", Value, "", false),
    ("strict-reconfig-check", Bool, "true", true),
    ("pre-vote", Bool, "false", true),
    ("auto-compaction-retention", Value, "0", false),
    ("auto-compaction-mode", Value, "periodic", false),
    ("enable-v2", Bool, "false", true),
    // proxy (v2, not served)
    ("proxy", Value, "off", false),
    ("proxy-failure-wait", Value, "5000", false),
    ("proxy-refresh-interval", Value, "30000", false),
    ("proxy-dial-timeout", Value, "1000", false),
    ("proxy-write-timeout", Value, "5000", false),
    ("proxy-read-timeout", Value, "0", false),
    // security
    ("cert-file", Value, "", true),
    ("key-file", Value, "", true),
    ("client-cert-auth", Bool, "false", true),
    ("client-crl-file", Value, "", true),
    ("client-cert-allowed-hostname", Value, "", false),
    ("trusted-ca-file", Value, "", true),
    ("auto-tls", Bool, "false", true),
    ("peer-cert-file", Value, "", true),
    ("peer-key-file", Value, "", true),
    ("peer-client-cert-auth", Bool, "false", true),
    ("peer-trusted-ca-file", Value, "", true),
    ("peer-cert-allowed-cn", Value, "", true),
    ("peer-cert-allowed-hostname", Value, "", true),
    ("peer-auto-tls", Bool, "false", true),
    ("self-signed-cert-validity", Value, "1", false),
    ("peer-crl-file", Value, "", true),
    ("cipher-suites", Value, "", true),
    ("host-whitelist", Value, "*", false),
    // logging
    ("logger", Value, "capnslog", true),
    ("log-outputs", Value, "default", false),
    ("log-output", Value, "default", false),
    ("debug", Bool, "false", true),
    ("log-level", Value, "info", true),
    ("log-package-levels", Value, "", false),
    // version, unsafe, auth
    ("version", Bool, "false", true),
    ("config-file", Value, "", true),
    ("force-new-cluster", Bool, "false", false),
    ("unsafe-no-fsync", Bool, "false", false),
    ("enable-pprof", Bool, "false", false),
    ("metrics", Value, "basic", false),
    ("listen-metrics-urls", Value, "", false),
    ("auth-token", Value, "simple", true),
    ("auth-token-ttl", Value, "300", true),
    ("bcrypt-cost", Value, "10", true),
    ("enable-grpc-gateway", Bool, "true", false),
    // experimental
    ("experimental-initial-corrupt-check", Bool, "false", true),
    ("experimental-corrupt-check-time", Value, "0s", false),
    ("experimental-enable-v2v3", Value, "", false),
    ("experimental-enable-lease-checkpoint", Bool, "false", false),
    ("experimental-enable-lease-checkpoint-persist", Bool, "false", false),
    ("experimental-compaction-batch-limit", Value, "1000", false),
    ("experimental-peer-skip-client-san-verification", Bool, "false", false),
    ("experimental-watch-progress-notify-interval", Value, "10m0s", true),
    ("experimental-warning-apply-duration", Value, "100ms", false),
    ("experimental-backend-bbolt-freelist-type", Value, "map", false),
];

/// etcd 3.4's deprecated flags, accepted and ignored (`cfg.ignored`).
const IGNORED: &[&str] = &[
    "cluster-active-size",
    "cluster-remove-delay",
    "cluster-sync-interval",
    "config",
    "force",
    "max-result-buffer",
    "max-retry-attempts",
    "peer-heartbeat-interval",
    "peer-election-timeout",
    "retry-interval",
    "snapshot",
    "v",
    "vv",
    "experimental-auth-token-ttl",
];

/// The parsed command line: every flag's value (given, from the
/// environment, or etcd's default).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    values: BTreeMap<&'static str, String>,
    /// Flags given on the command line or by an `ETCD_*` variable.
    set: Vec<&'static str>,
    /// `ETCD_*` variables used, for the log ("recognized and used …").
    pub env_used: Vec<(String, String)>,
    /// `ETCD_*` variables no flag has (etcd warns about them).
    pub env_unknown: Vec<String>,
}

/// What parsing ended with.
#[derive(Debug)]
pub enum Parsed {
    Run(Flags),
    /// `--help`/`-h`: print the usage, exit 0.
    Help,
    /// A bad flag: the message Go's `flag` prints, exit 2.
    Usage(String),
}

fn lookup(name: &str) -> Option<(&'static str, Kind)> {
    FLAGS
        .iter()
        .find(|f| f.0 == name)
        .map(|f| (f.0, f.1))
        .or_else(|| IGNORED.iter().find(|f| **f == name).map(|f| (*f, Value)))
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl Flags {
    /// Parses `args` (without the program name) and then the `ETCD_*`
    /// variables of `env` for the flags not given.
    pub fn parse(args: &[String], env: &[(String, String)]) -> Result<Parsed, ServeError> {
        let mut f = Flags::default();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')).filter(|b| !b.is_empty()) else {
                // Go stops at the first non-flag; etcd refuses any.
                return Err(ServeError::Flag(format!("'{a}' is not a valid flag")));
            };
            if body.starts_with('-') || body.starts_with('=') {
                return Ok(Parsed::Usage(format!("bad flag syntax: {a}")));
            }
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            if name == "h" || name == "help" {
                return Ok(Parsed::Help);
            }
            let Some((name, kind)) = lookup(name) else {
                return Ok(Parsed::Usage(format!("flag provided but not defined: -{name}")));
            };
            let value = match (kind, inline) {
                (Bool, None) => "true".to_string(),
                (Bool, Some(v)) => match parse_bool(&v) {
                    Some(b) => b.to_string(),
                    None => return Ok(Parsed::Usage(format!("invalid boolean value {v:?} for -{name}: parse error"))),
                },
                (Value, Some(v)) => v,
                (Value, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => return Ok(Parsed::Usage(format!("flag needs an argument: -{name}"))),
                },
            };
            f.values.insert(name, value);
            if !f.set.contains(&name) {
                f.set.push(name);
            }
        }
        if let Some(extra) = args.get(i) {
            return Err(ServeError::Flag(format!("'{extra}' is not a valid flag")));
        }
        f.apply_env(env)?;
        Ok(Parsed::Run(f))
    }

    /// etcd's `SetFlagsFromEnv("ETCD", …)`.
    fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ServeError> {
        let var = |name: &str| format!("ETCD_{}", name.replace('-', "_").to_uppercase());
        let given: Vec<String> = self.set.iter().map(|n| var(n)).collect();
        for (k, v) in env {
            if !k.starts_with("ETCD_") || v.is_empty() {
                continue;
            }
            if given.contains(k) {
                return Err(ServeError::Flag(format!(
                    "conflicting environment variable {k:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
                )));
            }
            match FLAGS.iter().find(|f| var(f.0) == *k) {
                Some(&(name, kind, _, _)) => {
                    let value = if kind == Bool {
                        match parse_bool(v) {
                            Some(b) => b.to_string(),
                            None => return Err(ServeError::Flag(format!("invalid value {v:?} for {k}: parse error"))),
                        }
                    } else {
                        v.clone()
                    };
                    self.values.insert(name, value);
                    self.set.push(name);
                    self.env_used.push((k.clone(), v.clone()));
                }
                None => self.env_unknown.push(format!("{k}={v}")),
            }
        }
        Ok(())
    }

    /// etcd's `--config-file`: a YAML file whose keys are the flags' names
    /// (lists are joined with commas; `client-transport-security` and
    /// `peer-transport-security` hold the TLS flags without their `client-`
    /// / `peer-` prefix). When it is given etcd ignores every other flag and
    /// `ETCD_*` variable, and so does this. Keys no flag has are returned
    /// (etcd ignores them; `serve` warns).
    pub fn from_yaml(text: &str) -> Result<(Flags, Vec<String>), ServeError> {
        use yaml_rust2::{Yaml, YamlLoader};
        let bad = |why: String| ServeError::Flag(format!("config file: {why}"));
        let docs = YamlLoader::load_from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut f = Flags::default();
        let mut unknown = Vec::new();
        let Some(root) = docs.first() else { return Ok((f, unknown)) };
        let Yaml::Hash(map) = root else { return Err(bad("not a mapping of flag names to values".into())) };
        let scalar = |v: &Yaml| -> Option<String> {
            match v {
                Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
                Yaml::Integer(i) => Some(i.to_string()),
                Yaml::Boolean(b) => Some(b.to_string()),
                Yaml::Array(a) => a
                    .iter()
                    .map(|x| match x {
                        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
                        Yaml::Integer(i) => Some(i.to_string()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.join(",")),
                _ => None,
            }
        };
        let mut set = |f: &mut Flags, key: &str, v: &Yaml| -> Result<(), ServeError> {
            if matches!(v, Yaml::Null) {
                return Ok(());
            }
            let Some((name, kind)) = lookup(key) else {
                unknown.push(key.to_string());
                return Ok(());
            };
            let value = scalar(v).ok_or_else(|| bad(format!("{key}: not a value")))?;
            let value = if kind == Bool {
                parse_bool(&value).ok_or_else(|| bad(format!("{key}: {value:?} is not a boolean")))?.to_string()
            } else {
                value
            };
            f.values.insert(name, value);
            if !f.set.contains(&name) {
                f.set.push(name);
            }
            Ok(())
        };
        for (k, v) in map {
            let Yaml::String(key) = k else { return Err(bad(format!("key {k:?} is not a name"))) };
            match (key.as_str(), v) {
                ("client-transport-security" | "peer-transport-security", Yaml::Hash(tls)) => {
                    let peer = key.starts_with("peer");
                    for (tk, tv) in tls {
                        let Yaml::String(tk) = tk else { continue };
                        let name = match (peer, tk.as_str()) {
                            (false, "crl-file") => "client-crl-file".to_string(),
                            (false, t) => t.to_string(),
                            (true, "crl-file") => "peer-crl-file".to_string(),
                            (true, t) => format!("peer-{t}"),
                        };
                        set(&mut f, &name, tv)?;
                    }
                }
                (key, v) => set(&mut f, key, v)?,
            }
        }
        Ok((f, unknown))
    }

    /// The flag's value, or etcd's default.
    pub fn get(&self, name: &str) -> &str {
        if let Some(v) = self.values.get(name) {
            return v;
        }
        FLAGS.iter().find(|f| f.0 == name).map(|f| f.2).unwrap_or_else(|| panic!("no flag {name}"))
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.set.contains(&name)
    }

    pub fn bool(&self, name: &str) -> bool {
        parse_bool(self.get(name)).unwrap_or(false)
    }

    /// An integer flag (etcd's `uint`/`int64` flags).
    pub fn int<T: std::str::FromStr>(&self, name: &str) -> Result<T, ServeError> {
        let v = self.get(name);
        v.parse().map_err(|_| ServeError::Flag(format!("invalid value {v:?} for flag -{name}: parse error")))
    }

    /// A Go duration flag (`10m0s`, `200ms`).
    pub fn duration(&self, name: &str) -> Result<Duration, ServeError> {
        let v = self.get(name);
        parse_go_duration(v)
            .ok_or_else(|| ServeError::Flag(format!("invalid value {v:?} for flag -{name}: parse error")))
    }

    /// Flags given that this server accepts but does not act on yet.
    pub fn ignored(&self) -> Vec<&'static str> {
        self.set.iter().copied().filter(|n| IGNORED.contains(n) || FLAGS.iter().any(|f| f.0 == *n && !f.3)).collect()
    }
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units
/// `ns us µs ms s m h` (`1h2m0.5s`), or `0`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// What `etcd --help` prints first (etcd's usage line).
pub const USAGE: &str = "Usage:\n\n  etcd [flags]\n    Start an etcd server.\n\n  etcd --version\n    Show the version of etcd.\n\n  etcd -h | --help\n    Show the help information about etcd.\n\n  etcd --config-file\n    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_as_etcd_reads_it() {
        // The shape of etcd 3.4's etcd.conf.yml.sample.
        let yaml = r#"
# This is the configuration file for the etcd server.
name: 'n1'
data-dir: /var/lib/etcd
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
listen-client-urls: https://127.0.0.1:2379,https://10.0.0.1:2379
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: true
log-outputs: [stderr]
client-transport-security:
  cert-file: /etc/etcd/server.crt
  key-file: /etc/etcd/server.key
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/ca.crt
  crl-file: /etc/etcd/revoked.crl
  auto-tls: false
peer-transport-security:
  cert-file: /etc/etcd/peer.crt
  auto-tls: true
unknown-setting: 3
"#;
        let (f, unknown) = Flags::from_yaml(yaml).unwrap();
        assert_eq!(f.get("name"), "n1");
        assert_eq!(f.get("data-dir"), "/var/lib/etcd");
        assert_eq!(f.get("wal-dir"), "", "an empty value keeps the default");
        assert_eq!(f.int::<u64>("snapshot-count").unwrap(), 10000);
        assert_eq!(f.get("listen-client-urls"), "https://127.0.0.1:2379,https://10.0.0.1:2379");
        assert!(!f.bool("strict-reconfig-check") && f.bool("enable-v2"));
        assert_eq!(f.get("log-outputs"), "stderr");
        assert_eq!(f.get("cert-file"), "/etc/etcd/server.crt");
        assert!(f.bool("client-cert-auth"));
        assert_eq!(f.get("client-crl-file"), "/etc/etcd/revoked.crl");
        assert_eq!(f.get("peer-cert-file"), "/etc/etcd/peer.crt");
        assert!(f.bool("peer-auto-tls"));
        assert_eq!(unknown, vec!["unknown-setting".to_string()]);
        assert!(Flags::from_yaml("client-cert-auth: maybe").is_err());
        assert!(Flags::from_yaml("- a list").is_err());
        assert!(Flags::from_yaml("name: [unclosed").is_err());
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Flags {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        match Flags::parse(&args, &env).unwrap() {
            Parsed::Run(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn go_flag_syntax() {
        let f = run(
            &[
                "-name",
                "n1",
                "--data-dir=/x",
                "--client-cert-auth",
                "--pre-vote=false",
                "--enable-pprof",
                "--snapshot-count",
                "5",
            ],
            &[],
        );
        assert_eq!(f.get("name"), "n1");
        assert_eq!(f.get("data-dir"), "/x");
        assert!(f.bool("client-cert-auth"));
        assert!(!f.bool("pre-vote"));
        assert_eq!(f.int::<u64>("snapshot-count").unwrap(), 5);
        assert_eq!(f.get("listen-client-urls"), "http://localhost:2379");
        assert_eq!(f.ignored(), vec!["enable-pprof"]);
    }

    #[test]
    fn unknown_flags_and_positional_args_are_refused() {
        let p = Flags::parse(&["--bogus".into()], &[]).unwrap();
        assert!(matches!(p, Parsed::Usage(m) if m == "flag provided but not defined: -bogus"));
        assert!(Flags::parse(&["extra".into()], &[]).is_err());
        assert!(matches!(Flags::parse(&["--name".into()], &[]).unwrap(), Parsed::Usage(_)));
        assert!(matches!(Flags::parse(&["--help".into()], &[]).unwrap(), Parsed::Help));
    }

    #[test]
    fn environment_fills_what_flags_do_not_set() {
        let f = run(&["--name", "a"], &[("ETCD_DATA_DIR", "/d"), ("ETCD_NOPE", "1"), ("HOME", "/root")]);
        assert_eq!(f.get("data-dir"), "/d");
        assert_eq!(f.env_unknown, vec!["ETCD_NOPE=1"]);
        let args = vec!["--name".to_string(), "a".to_string()];
        assert!(Flags::parse(&args, &[("ETCD_NAME".into(), "b".into())]).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10m0s"), Some(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_go_duration("1h1.5s"), Some(Duration::from_secs_f64(3601.5)));
        assert_eq!(parse_go_duration("5"), None);
    }
}

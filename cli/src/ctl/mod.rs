//! `etcdctl`: etcd 3.4's v3 command-line client, online, over gRPC (the
//! binary under the name `etcdctl`, or `etcdkit ctl …`). Commands, flags,
//! `ETCDCTL_*` variables, outputs (`-w simple|json|fields|table|protobuf`),
//! error lines and exit codes follow etcdctl 3.4's `ctlv3` so that scripts
//! and etcd's own e2e tests cannot tell the two apart. One file per command
//! group, as etcdctl has: `kv.rs` (get put del txn compaction), `watch.rs`,
//! `lease.rs`, `member.rs`, `endpoint.rs`, `maintenance.rs` (alarm, defrag,
//! snapshot, move-leader, version), `auth.rs` (auth, user, role),
//! `concurrency.rs` (lock, elect), `mirror.rs` (make-mirror), `check.rs`;
//! `print.rs` holds the output formats, `flags.rs` the command-line parser.
//! The connection itself is the server crate's client
//! ([`etcdkit_server::client`]).

/// `rpc!(client, deadline, service.method(request))`: a unary call made
/// through [`Client::call`] (bounded by `deadline`, retried with a fresh
/// token as clientv3 retries).
macro_rules! rpc {
    ($c:expr, $deadline:expr, $svc:ident . $method:ident ( $req:expr )) => {{
        let req = $req;
        $c.call($deadline, |c| {
            let req = req.clone();
            async move { c.$svc().$method(req).await }
        })
        .await
    }};
}

/// The deadline of a call etcdctl makes without one (`context.TODO()` or
/// `context.Background()`: the user and role commands, txn, lock, elect,
/// make-mirror).
fn forever() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600)
}

pub mod auth;
pub mod check;
pub mod concurrency;
pub mod endpoint;
pub mod etcdutl;
pub mod flags;
pub mod help;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod member;
pub mod mirror;
pub mod print;
pub mod watch;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use etcdkit_server::client::{Client, ClientConfig, ClientError, ClientTls};
use flags::{Flag, Kind, Values, flag, short};
use tokio::time::Instant;

pub use print::Printer;

// etcdctl's exit codes (`ctlv3/command/error.go`).
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_BAD_CONNECTION: u8 = 2;
pub const EXIT_INVALID_INPUT: u8 = 3;
pub const EXIT_BAD_FEATURE: u8 = 4;
pub const EXIT_INTERRUPTED: u8 = 5;
pub const EXIT_IO: u8 = 6;
pub const EXIT_BAD_ARGS: u8 = 128;

/// How a command ends other than successfully: `Error: <msg>` on stderr and
/// the exit code (`msg` empty: nothing more printed).
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub msg: String,
}

impl Exit {
    pub fn new(code: u8, msg: impl std::fmt::Display) -> Exit {
        Exit { code, msg: msg.to_string() }
    }

    pub fn bad_args(msg: impl std::fmt::Display) -> Exit {
        Exit::new(EXIT_BAD_ARGS, msg)
    }

    /// A failed call (exit 1).
    pub fn error(e: impl std::fmt::Display) -> Exit {
        Exit::new(EXIT_ERROR, e)
    }
}

impl From<ClientError> for Exit {
    fn from(e: ClientError) -> Self {
        Exit::error(e)
    }
}

impl From<std::io::Error> for Exit {
    fn from(e: std::io::Error) -> Self {
        Exit::new(EXIT_IO, go_error_text(&e.to_string()))
    }
}

/// An error message with Rust's system-error wording in Go's
/// (`No such file or directory (os error 2)` → `no such file or directory`).
pub fn go_error_text(s: &str) -> String {
    let mut t = s.to_string();
    if let Some(i) = t.find(" (os error ") {
        let end = t[i..].find(')').map_or(t.len(), |j| i + j + 1);
        t.replace_range(i..end, "");
    }
    for (rust, go) in [
        ("No such file or directory", "no such file or directory"),
        ("Permission denied", "permission denied"),
        ("File exists", "file exists"),
        ("Is a directory", "is a directory"),
        ("Not a directory", "not a directory"),
    ] {
        t = t.replace(rust, go);
    }
    t
}

pub type Result<T = ()> = std::result::Result<T, Exit>;

/// etcdctl's global flags (`ctl.go`).
pub const GLOBAL: &[Flag] = &[
    flag("endpoints", Kind::List, "[127.0.0.1:2379]", "gRPC endpoints"),
    flag("debug", Kind::Bool, "false", "enable client-side debug logging"),
    short("write-out", 'w', Kind::Str, "simple", "set the output format (fields, json, protobuf, simple, table)"),
    flag("hex", Kind::Bool, "false", "print byte strings as hex encoded strings"),
    flag("dial-timeout", Kind::Duration, "2s", "dial timeout for client connections"),
    flag("command-timeout", Kind::Duration, "5s", "timeout for short running command (excluding dial timeout)"),
    flag("keepalive-time", Kind::Duration, "2s", "keepalive time for client connections"),
    flag("keepalive-timeout", Kind::Duration, "6s", "keepalive timeout for client connections"),
    flag("insecure-transport", Kind::Bool, "true", "disable transport security for client connections"),
    flag("insecure-discovery", Kind::Bool, "true", "accept insecure SRV records describing cluster endpoints"),
    flag(
        "insecure-skip-tls-verify",
        Kind::Bool,
        "false",
        "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
    ),
    flag("cert", Kind::Str, "", "identify secure client using this TLS certificate file"),
    flag("key", Kind::Str, "", "identify secure client using this TLS key file"),
    flag("cacert", Kind::Str, "", "verify certificates of TLS-enabled secure servers using this CA bundle"),
    flag("user", Kind::Str, "", "username[:password] for authentication (prompt if password is not supplied)"),
    flag(
        "password",
        Kind::Str,
        "",
        "password for authentication (if this option is used, --user option shouldn't include password)",
    ),
    short("discovery-srv", 'd', Kind::Str, "", "domain name to query for SRV records describing cluster endpoints"),
    flag("discovery-srv-name", Kind::Str, "", "service name to query when using DNS discovery"),
    short("help", 'h', Kind::Bool, "false", "help"),
];

/// One command: its words (`"lease grant"`), its own flags, what it takes
/// and does.
#[derive(Debug)]
pub struct Cmd {
    pub path: &'static str,
    pub flags: &'static [Flag],
    pub usage: &'static str,
    pub short: &'static str,
}

const fn cmd(path: &'static str, flags: &'static [Flag], usage: &'static str, short: &'static str) -> Cmd {
    Cmd { path, flags, usage, short }
}

const PREFIX_FROM_KEY_GET: &[Flag] = &[
    flag("consistency", Kind::Str, "l", "Linearizable(l) or Serializable(s)"),
    flag("order", Kind::Str, "", "Order of results; ASCEND or DESCEND (ASCEND by default)"),
    flag("sort-by", Kind::Str, "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION"),
    flag("limit", Kind::Int, "0", "Maximum number of results"),
    flag("prefix", Kind::Bool, "false", "Get keys with matching prefix"),
    flag(
        "from-key",
        Kind::Bool,
        "false",
        "Get keys that are greater than or equal to the given key using byte compare",
    ),
    flag("rev", Kind::Int, "0", "Specify the kv revision"),
    flag("keys-only", Kind::Bool, "false", "Get only the keys"),
    flag("print-value-only", Kind::Bool, "false", "Only write values when using the \"simple\" output format"),
];
pub(crate) const PUT_FLAGS: &[Flag] = &[
    flag("lease", Kind::Str, "0", "lease ID (in hexadecimal) to attach to the key"),
    flag("prev-kv", Kind::Bool, "false", "return the previous key-value pair before modification"),
    flag("ignore-value", Kind::Bool, "false", "updates the key using its current value"),
    flag("ignore-lease", Kind::Bool, "false", "updates the key using its current lease"),
];
pub(crate) const DEL_FLAGS: &[Flag] = &[
    flag("prefix", Kind::Bool, "false", "delete keys with matching prefix"),
    flag("prev-kv", Kind::Bool, "false", "return deleted key-value pairs"),
    flag(
        "from-key",
        Kind::Bool,
        "false",
        "delete keys that are greater than or equal to the given key using byte compare",
    ),
];
/// `snapshot restore`'s flags (etcdctl 3.4 and etcdutl 3.5 share them).
pub(crate) const RESTORE_FLAGS: &[Flag] = &[
    flag("data-dir", Kind::Str, "", "Path to the data directory"),
    flag("wal-dir", Kind::Str, "", "Path to the WAL directory (use --data-dir if none given)"),
    flag(
        "initial-cluster",
        Kind::Str,
        "default=http://localhost:2380",
        "Initial cluster configuration for restore bootstrap",
    ),
    flag(
        "initial-cluster-token",
        Kind::Str,
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during restore bootstrap",
    ),
    flag(
        "initial-advertise-peer-urls",
        Kind::Str,
        "http://localhost:2380",
        "List of this member's peer URLs to advertise to the rest of the cluster",
    ),
    flag("name", Kind::Str, "default", "Human-readable name for this member"),
    flag(
        "skip-hash-check",
        Kind::Bool,
        "false",
        "Ignore snapshot integrity hash value (required if copied from data directory)",
    ),
];
const CLUSTER: Flag = flag("cluster", Kind::Bool, "false", "use all endpoints from the cluster member list");
const ROLE_PERM: &[Flag] = &[
    flag("prefix", Kind::Bool, "false", "grant a prefix permission"),
    flag(
        "from-key",
        Kind::Bool,
        "false",
        "grant a permission of keys that are greater than or equal to the given key using byte compare",
    ),
];
const CHECK_FLAGS: &[Flag] = &[
    flag(
        "load",
        Kind::Str,
        "s",
        "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
    ),
    flag("prefix", Kind::Str, "/etcdctl-check-perf/", "The prefix for writing the performance check's keys."),
    flag("auto-compact", Kind::Bool, "false", "Compact storage with last revision after test is finished."),
    flag("auto-defrag", Kind::Bool, "false", "Defragment storage after test is finished."),
];

/// Every command etcdctl 3.4 has (but `migrate`, the v2 store's).
pub const COMMANDS: &[Cmd] = &[
    cmd("get", PREFIX_FROM_KEY_GET, "get [options] <key> [range_end]", "Gets the key or a range of keys"),
    cmd(
        "put",
        PUT_FLAGS,
        "put [options] <key> <value> (<value> can also be given from stdin)",
        "Puts the given key into the store",
    ),
    cmd(
        "del",
        DEL_FLAGS,
        "del [options] <key> [range_end]",
        "Removes the specified key or range of keys [key, range_end)",
    ),
    cmd(
        "txn",
        &[short("interactive", 'i', Kind::Bool, "false", "Input transaction in interactive mode")],
        "txn [options]",
        "Txn processes all the requests in one transaction",
    ),
    cmd(
        "compaction",
        &[flag(
            "physical",
            Kind::Bool,
            "false",
            "'true' to wait for compaction to physically remove all old revisions",
        )],
        "compaction [options] <revision>",
        "Compacts the event history in etcd",
    ),
    cmd("alarm", &[], "alarm <subcommand>", "Alarm related commands"),
    cmd("alarm disarm", &[], "disarm", "Disarms all alarms"),
    cmd("alarm list", &[], "list", "Lists all alarms"),
    cmd(
        "defrag",
        &[
            CLUSTER,
            flag("data-dir", Kind::Str, "", "Optional. If present, defragments a data directory not in use by etcd."),
        ],
        "defrag",
        "Defragments the storage of the etcd members with given endpoints",
    ),
    cmd("endpoint", &[CLUSTER], "endpoint <subcommand>", "Endpoint related commands"),
    cmd("endpoint health", &[CLUSTER], "health", "Checks the healthiness of endpoints specified in `--endpoints` flag"),
    cmd("endpoint status", &[CLUSTER], "status", "Prints out the status of endpoints specified in `--endpoints` flag"),
    cmd(
        "endpoint hashkv",
        &[CLUSTER, flag("rev", Kind::Int, "0", "maximum revision to hash (default: all revisions)")],
        "hashkv",
        "Prints the KV history hash for each endpoint in --endpoints",
    ),
    cmd(
        "move-leader",
        &[],
        "move-leader <transferee-member-id>",
        "Transfers leadership to another etcd cluster member.",
    ),
    cmd(
        "watch",
        &[
            short("interactive", 'i', Kind::Bool, "false", "Interactive mode"),
            flag("prefix", Kind::Bool, "false", "Watch on a prefix if prefix is set"),
            flag("rev", Kind::Int, "0", "Revision to start watching"),
            flag("prev-kv", Kind::Bool, "false", "get the previous key-value pair before the event happens"),
        ],
        "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
        "Watches events stream on keys or prefixes",
    ),
    cmd("version", &[], "version", "Prints the version of etcdctl"),
    cmd("lease", &[], "lease <subcommand>", "Lease related commands"),
    cmd("lease grant", &[], "grant <ttl>", "Creates leases"),
    cmd("lease revoke", &[], "revoke <leaseID>", "Revokes leases"),
    cmd(
        "lease timetolive",
        &[flag("keys", Kind::Bool, "false", "Get keys attached to this lease")],
        "timetolive <leaseID> [options]",
        "Get lease information",
    ),
    cmd("lease list", &[], "list", "List all active leases"),
    cmd(
        "lease keep-alive",
        &[flag("once", Kind::Bool, "false", "Resets the keep-alive time to its original value and exits immediately")],
        "keep-alive [options] <leaseID>",
        "Keeps leases alive (renew)",
    ),
    cmd("member", &[], "member <subcommand>", "Membership related commands"),
    cmd(
        "member add",
        &[
            flag("peer-urls", Kind::Str, "", "comma separated peer URLs for the new member."),
            flag("learner", Kind::Bool, "false", "indicates if the new member is raft learner"),
        ],
        "add <memberName> [options]",
        "Adds a member into the cluster",
    ),
    cmd("member remove", &[], "remove <memberID>", "Removes a member from the cluster"),
    cmd(
        "member update",
        &[flag("peer-urls", Kind::Str, "", "comma separated peer URLs for the updated member.")],
        "update <memberID> [options]",
        "Updates a member in the cluster",
    ),
    cmd("member list", &[], "list", "Lists all members in the cluster"),
    cmd("member promote", &[], "promote <memberID>", "Promotes a non-voting member in the cluster"),
    cmd("snapshot", &[], "snapshot <subcommand>", "Manages etcd node snapshots"),
    cmd("snapshot save", &[], "save <filename>", "Stores an etcd node backend snapshot to a given file"),
    cmd("snapshot status", &[], "status <filename>", "Gets backend snapshot status of a given file"),
    cmd(
        "snapshot restore",
        RESTORE_FLAGS,
        "restore <filename> [options]",
        "Restores an etcd member snapshot to an etcd directory",
    ),
    cmd(
        "make-mirror",
        &[
            flag("prefix", Kind::Str, "", "Key-value prefix to mirror"),
            flag(
                "dest-prefix",
                Kind::Str,
                "",
                "destination prefix to mirror a prefix to a different prefix in the destination cluster",
            ),
            flag("no-dest-prefix", Kind::Bool, "false", "mirror key-values to the root of the destination cluster"),
            flag(
                "dest-cert",
                Kind::Str,
                "",
                "Identify secure client using this TLS certificate file for the destination cluster",
            ),
            flag("dest-key", Kind::Str, "", "Identify secure client using this TLS key file"),
            flag(
                "dest-cacert",
                Kind::Str,
                "",
                "Verify certificates of TLS enabled secure servers using this CA bundle",
            ),
            flag("dest-insecure-transport", Kind::Bool, "true", "Disable transport security for client connections"),
        ],
        "make-mirror [options] <destination>",
        "Makes a mirror at the destination etcd cluster",
    ),
    cmd(
        "lock",
        &[flag("ttl", Kind::Int, "10", "timeout for session")],
        "lock <lockname> [exec-command arg1 arg2 ...]",
        "Acquires a named lock",
    ),
    cmd(
        "elect",
        &[short("listen", 'l', Kind::Bool, "false", "observation mode")],
        "elect <election-name> [proposal]",
        "Observes and participates in leader election",
    ),
    cmd("auth", &[], "auth <enable or disable>", "Enable or disable authentication"),
    cmd("auth enable", &[], "enable", "Enables authentication"),
    cmd("auth disable", &[], "disable", "Disables authentication"),
    cmd("user", &[], "user <subcommand>", "User related commands"),
    cmd(
        "user add",
        &[
            flag("interactive", Kind::Bool, "true", "Read password from stdin instead of interactive terminal"),
            flag("new-user-password", Kind::Str, "", "Supply password from the command line flag"),
            flag("no-password", Kind::Bool, "false", "Create a user without password (CN based auth only)"),
        ],
        "add <user name or user:password> [options]",
        "Adds a new user",
    ),
    cmd("user delete", &[], "delete <user name>", "Deletes a user"),
    cmd(
        "user get",
        &[flag("detail", Kind::Bool, "false", "Show permissions of roles granted to the user")],
        "get <user name> [options]",
        "Gets detailed information of a user",
    ),
    cmd("user list", &[], "list", "Lists all users"),
    cmd(
        "user passwd",
        &[flag("interactive", Kind::Bool, "true", "If true, read password from stdin instead of interactive terminal")],
        "passwd <user name> [options]",
        "Changes password of user",
    ),
    cmd("user grant-role", &[], "grant-role <user name> <role name>", "Grants a role to a user"),
    cmd("user revoke-role", &[], "revoke-role <user name> <role name>", "Revokes a role from a user"),
    cmd("role", &[], "role <subcommand>", "Role related commands"),
    cmd("role add", &[], "add <role name>", "Adds a new role"),
    cmd("role delete", &[], "delete <role name>", "Deletes a role"),
    cmd("role get", &[], "get <role name>", "Gets detailed information of a role"),
    cmd("role list", &[], "list", "Lists all roles"),
    cmd(
        "role grant-permission",
        ROLE_PERM,
        "grant-permission [options] <role name> <permission type> <key> [endkey]",
        "Grants a key to a role",
    ),
    cmd(
        "role revoke-permission",
        ROLE_PERM,
        "revoke-permission <role name> <key> [endkey]",
        "Revokes a key from a role",
    ),
    cmd("check", &[], "check <subcommand>", "commands for checking properties of the etcd cluster"),
    cmd("check perf", CHECK_FLAGS, "perf [options]", "Check the performance of the etcd cluster"),
    cmd(
        "check datascale",
        CHECK_FLAGS,
        "datascale [options]",
        "Check the memory usage of holding data for different workloads on a given server endpoint.",
    ),
];

/// A command-line tool of this module: etcdctl, or etcd 3.5's etcdutl
/// (`etcdutl.rs`), with its global flags and commands.
pub struct Tool {
    pub name: &'static str,
    pub global: &'static [Flag],
    pub commands: &'static [Cmd],
    /// The prefix of the variables that set global flags (`ETCDCTL`).
    pub env: Option<&'static str>,
}

/// etcdctl 3.4.
pub const ETCDCTL: Tool = Tool { name: "etcdctl", global: GLOBAL, commands: COMMANDS, env: Some("ETCDCTL") };

/// A command's context: its flags and arguments, the output format, the
/// client configuration.
pub struct Ctx {
    pub cmd: &'static Cmd,
    pub flags: Values,
    pub args: Vec<String>,
    pub out: Printer,
}

impl Ctx {
    /// The deadline of a short command (`--command-timeout` from now).
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.flags.duration("command-timeout")
    }

    /// The client configuration the global flags describe (etcdctl's
    /// `clientConfigFromCmd`).
    pub fn client_config(&self) -> Result<ClientConfig> {
        let f = &self.flags;
        // `--debug`: the global flags as the variables that would set them,
        // once (etcdctl prints them so, then logs its gRPC traffic, which
        // this one does not).
        static DEBUG: std::sync::Once = std::sync::Once::new();
        if f.bool("debug") {
            DEBUG.call_once(|| {
                let mut flags: Vec<&Flag> = GLOBAL.iter().filter(|g| g.name != "help").collect();
                flags.sort_by_key(|g| g.name);
                for g in flags {
                    let v = match g.kind {
                        Kind::List => format!("[{}]", f.list(g.name).join(",")),
                        _ => f.str(g.name).to_string(),
                    };
                    eprintln!("ETCDCTL_{}={v}", g.name.to_uppercase().replace('-', "_"));
                }
            });
        }
        let mut cfg = ClientConfig::new(f.list("endpoints").into_iter().map(|e| e.trim().to_string()).collect());
        cfg.dial_timeout = f.duration("dial-timeout");
        cfg.keepalive_time = f.duration("keepalive-time");
        cfg.keepalive_timeout = f.duration("keepalive-timeout");
        let file = |name: &str| -> Result<Option<std::path::PathBuf>> {
            match f.str(name) {
                "" if f.changed(name) => Err(Exit::bad_args(format!("empty string is passed to --{name} option"))),
                "" => Ok(None),
                p => Ok(Some(p.into())),
            }
        };
        let tls = ClientTls {
            cert: file("cert")?,
            key: file("key")?,
            ca: file("cacert")?,
            skip_verify: f.bool("insecure-skip-tls-verify"),
        };
        if tls.cert.is_some() || tls.key.is_some() || tls.ca.is_some() || !f.bool("insecure-transport") {
            cfg.tls = Some(tls);
        }
        let user = f.str("user");
        if !user.is_empty() {
            let password = f.str("password");
            cfg.user = Some(if !password.is_empty() {
                (user.to_string(), password.to_string())
            } else if let Some((u, p)) = user.split_once(':') {
                (u.to_string(), p.to_string())
            } else {
                (user.to_string(), read_password("Password: ")?)
            });
        }
        Ok(cfg)
    }

    /// A client connected as etcdctl's `mustClientFromCmd` (a bad
    /// configuration exits 128, a failed connection or login 2; an endpoint
    /// that does not answer surfaces later, as the call's deadline).
    pub async fn client(&self) -> Result<Client> {
        let cfg = self.client_config()?;
        let deadline = Instant::now() + cfg.dial_timeout.max(Duration::ZERO) + self.flags.duration("command-timeout");
        Client::connect(&cfg, deadline).await.map_err(|e| match e {
            ClientError::Config(m) => Exit::bad_args(m),
            ClientError::DeadlineExceeded | ClientError::Unreachable { .. } => Exit::error(e),
            e => Exit::new(EXIT_BAD_CONNECTION, e),
        })
    }

    /// A positional argument or, past the given ones, standard input
    /// (etcdctl's `argOrStdin`).
    pub fn arg_or_stdin(&self, i: usize) -> Option<String> {
        if let Some(a) = self.args.get(i) {
            return Some(a.clone());
        }
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).ok()?;
        use std::os::unix::ffi::OsStrExt;
        (!b.is_empty()).then(|| arg_string(std::ffi::OsStr::from_bytes(&b)))
    }
}

/// The first code point of the range that stands for bytes that are not
/// UTF-8 in a command-line argument (Supplementary Private Use Area-B: no
/// real argument uses it).
const RAW_BASE: u32 = 0x10_FF00;

/// An argument as a string: its UTF-8 as it is, each byte that is not UTF-8
/// as a code point of its own; [`raw`] turns it back into the exact bytes
/// (keys and values on the command line are bytes, as Go's strings are).
pub fn arg_string(a: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::new();
    let mut rest = a.as_bytes();
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(t) => {
                s.push_str(t);
                break;
            }
            Err(e) => {
                let (ok, bad) = rest.split_at(e.valid_up_to());
                s.push_str(std::str::from_utf8(ok).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    s.push(char::from_u32(RAW_BASE + *b as u32).unwrap_or('?'));
                }
                rest = &bad[n..];
            }
        }
    }
    s
}

/// The bytes an [`arg_string`] argument stands for.
pub fn raw(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c as u32 {
            n if (RAW_BASE..=RAW_BASE + 0xff).contains(&n) => out.push((n - RAW_BASE) as u8),
            _ => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

/// Reads a password: from the terminal when there is one, else a line of
/// standard input.
pub fn read_password(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(Exit::error)?;
    eprintln!();
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The command `args` name (cobra's `Find`, with prefix matching), and the
/// arguments left once its words are removed.
fn find(tool: &Tool, args: &[String]) -> std::result::Result<(&'static Cmd, Vec<String>), String> {
    let mut path = String::new();
    let mut rest = Vec::new();
    let mut i = 0;
    let mut found: Option<&'static Cmd> = None;
    let mut searching = true;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let mut flags: Vec<&Flag> = tool.global.iter().collect();
        if let Some(c) = found {
            flags.extend(c.flags);
        }
        if a == "--" {
            rest.extend(args[i - 1..].iter().cloned());
            break;
        }
        if a.starts_with('-') && a.len() > 1 {
            rest.push(a.clone());
            if flags::takes_next(&flags, a) && i < args.len() {
                rest.push(args[i].clone());
                i += 1;
            }
            continue;
        }
        if searching {
            let children: Vec<&'static Cmd> = tool
                .commands
                .iter()
                .filter(|c| match c.path.rsplit_once(' ') {
                    Some((parent, _)) => parent == path,
                    None => path.is_empty(),
                })
                .collect();
            let last = |c: &Cmd| c.path.rsplit(' ').next().unwrap_or(c.path).to_string();
            let exact = children.iter().find(|c| last(c) == *a);
            let pick = match exact {
                Some(c) => Some(*c),
                None => {
                    let by_prefix: Vec<_> = children.iter().filter(|c| last(c).starts_with(a.as_str())).collect();
                    if by_prefix.len() == 1 { Some(*by_prefix[0]) } else { None }
                }
            };
            match pick {
                Some(c) => {
                    path = c.path.to_string();
                    found = Some(c);
                    continue;
                }
                None if found.is_none() => {
                    let t = tool.name;
                    return Err(format!("unknown command {a:?} for \"{t}\"\nRun '{t} --help' for usage."));
                }
                None => searching = false,
            }
        }
        rest.push(a.clone());
    }
    match found {
        Some(c) => Ok((c, rest)),
        None => Err(String::new()),
    }
}

/// Runs etcdctl with `args` (without the program name).
pub fn main(args: &[String]) -> ExitCode {
    match std::env::var("ETCDCTL_API").as_deref() {
        Ok("3") | Err(_) => {}
        Ok(v) => {
            eprintln!("Error: ETCDCTL_API={v}: etcdkit's etcdctl speaks the v3 API only (set ETCDCTL_API=3)");
            return ExitCode::from(EXIT_BAD_FEATURE);
        }
    }
    run_tool(&ETCDCTL, args)
}

/// Runs `tool`'s command that `args` name.
pub fn run_tool(tool: &Tool, args: &[String]) -> ExitCode {
    let (cmd, rest) = match find(tool, args) {
        Ok(x) => x,
        Err(e) if e.is_empty() => {
            print!("{}", help::help(tool, None));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // cobra's report, then etcdctl's own line.
            eprintln!("Error: {e}");
            eprintln!("Error: {}", e.lines().next().unwrap_or(""));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let all: Vec<&Flag> = tool.global.iter().chain(cmd.flags).collect();
    let (mut values, pos) = match flags::parse(&all, &rest) {
        Ok(x) => x,
        Err(e) => {
            // cobra's report and the usage (on stdout: etcdctl's usage
            // function writes there, so cobra's copy is a blank line), then
            // etcdctl's own line.
            eprintln!("Error: {e}");
            print!("{}", help::help(tool, Some(cmd)));
            eprintln!();
            eprintln!("Error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if values.bool("help") {
        print!("{}", help::help(tool, Some(cmd)));
        return ExitCode::SUCCESS;
    }
    // Global flags not given on the command line come from ETCDCTL_<FLAG>.
    for f in tool.global.iter().filter(|_| tool.env.is_some()) {
        if values.changed(f.name) {
            continue;
        }
        let var = format!("{}_{}", tool.env.unwrap_or_default(), f.name.to_uppercase().replace('-', "_"));
        if let Ok(v) = std::env::var(&var)
            && let Err(e) = values.set(f, &v)
        {
            eprintln!("Error: invalid value {v:?} for {var}: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    }
    let out = match Printer::new(values.str("write-out"), values.bool("hex")) {
        Some(p) => p,
        None => {
            eprintln!("Error: unsupported output format");
            return ExitCode::from(EXIT_BAD_FEATURE);
        }
    };
    let mut cx = Ctx { cmd, flags: values, args: pos, out };
    let dispatch = if tool.name == "etcdutl" { etcdutl::run } else { run };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let r = rt.block_on(dispatch(&mut cx));
    let _ = std::io::stdout().flush();
    // Streams (watch, keep-alive) may still be open: do not wait for them.
    rt.shutdown_background();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit { code, msg }) => {
            if !msg.is_empty() {
                eprintln!("Error: {msg}");
            }
            ExitCode::from(code)
        }
    }
}

fn run(cx: &mut Ctx) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result> + '_>> {
    Box::pin(run_etcdctl(cx))
}

async fn run_etcdctl(cx: &mut Ctx) -> Result {
    match cx.cmd.path {
        "get" => kv::get(cx).await,
        "put" => kv::put(cx).await,
        "del" => kv::del(cx).await,
        "txn" => kv::txn(cx).await,
        "compaction" => kv::compaction(cx).await,
        "watch" => watch::watch(cx).await,
        "lease grant" => lease::grant(cx).await,
        "lease revoke" => lease::revoke(cx).await,
        "lease timetolive" => lease::timetolive(cx).await,
        "lease list" => lease::list(cx).await,
        "lease keep-alive" => lease::keep_alive(cx).await,
        "member add" => member::add(cx).await,
        "member remove" => member::remove(cx).await,
        "member update" => member::update(cx).await,
        "member list" => member::list(cx).await,
        "member promote" => member::promote(cx).await,
        "endpoint health" => endpoint::health(cx).await,
        "endpoint status" => endpoint::status(cx).await,
        "endpoint hashkv" => endpoint::hashkv(cx).await,
        "alarm disarm" => maintenance::alarm(cx, true).await,
        "alarm list" => maintenance::alarm(cx, false).await,
        "defrag" => maintenance::defrag(cx).await,
        "move-leader" => maintenance::move_leader(cx).await,
        "version" => maintenance::version(cx),
        "snapshot save" => maintenance::snapshot_save(cx).await,
        "snapshot status" => maintenance::snapshot_status(cx),
        "snapshot restore" => maintenance::snapshot_restore(cx),
        "lock" => concurrency::lock(cx).await,
        "elect" => concurrency::elect(cx).await,
        "make-mirror" => mirror::make_mirror(cx).await,
        "auth enable" => auth::auth_enable(cx).await,
        "auth disable" => auth::auth_disable(cx).await,
        "user add" => auth::user_add(cx).await,
        "user delete" => auth::user_delete(cx).await,
        "user get" => auth::user_get(cx).await,
        "user list" => auth::user_list(cx).await,
        "user passwd" => auth::user_passwd(cx).await,
        "user grant-role" => auth::user_grant_role(cx).await,
        "user revoke-role" => auth::user_revoke_role(cx).await,
        "role add" => auth::role_add(cx).await,
        "role delete" => auth::role_delete(cx).await,
        "role get" => auth::role_get(cx).await,
        "role list" => auth::role_list(cx).await,
        "role grant-permission" => auth::role_grant(cx).await,
        "role revoke-permission" => auth::role_revoke(cx).await,
        "check perf" => check::perf(cx).await,
        "check datascale" => check::datascale(cx).await,
        _ => {
            print!("{}", help::help(&ETCDCTL, Some(cx.cmd)));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn commands_are_found_among_flags_and_by_prefix() {
        let (c, rest) = find(&ETCDCTL, &words("--endpoints x:1 get --rev 3 foo bar")).unwrap();
        assert_eq!(c.path, "get");
        assert_eq!(rest, words("--endpoints x:1 --rev 3 foo bar"));
        let (c, rest) = find(&ETCDCTL, &words("lease gr 10")).unwrap();
        assert_eq!((c.path, rest), ("lease grant", words("10")));
        let (c, rest) = find(&ETCDCTL, &words("-w json member list")).unwrap();
        assert_eq!((c.path, rest), ("member list", words("-w json")));
        let (c, rest) = find(&ETCDCTL, &words("role get get")).unwrap();
        assert_eq!((c.path, rest), ("role get", words("get")));
        assert!(find(&ETCDCTL, &words("gett")).unwrap_err().starts_with("unknown command \"gett\""));
        assert_eq!(find(&ETCDCTL, &[]).unwrap_err(), "");
    }

    #[test]
    fn arguments_keep_their_bytes() {
        use std::os::unix::ffi::OsStrExt;
        for b in [&b"plain"[..], b"\xff", b"a\xffb\xc3", "é".as_bytes(), b""] {
            assert_eq!(raw(&arg_string(std::ffi::OsStr::from_bytes(b))), b);
        }
    }
}

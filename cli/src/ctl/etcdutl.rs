//! `etcdutl`: etcd 3.5's offline tool (the binary under the name
//! `etcdutl`): `snapshot status|restore`, `defrag --data-dir`, `backup`, `version`,
//! with its one global flag (`-w`). The commands are etcdctl's offline ones
//! (`maintenance.rs`); what differs is the command table and that
//! `defrag` needs `--data-dir`.

use std::future::Future;
use std::pin::Pin;

use super::flags::{Flag, Kind, flag, short};
use super::{Cmd, Ctx, Exit, Result, Tool, maintenance};

const GLOBAL: &[Flag] = &[
    short("write-out", 'w', Kind::Str, "simple", "set the output format (fields, json, protobuf, simple, table)"),
    short("help", 'h', Kind::Bool, "false", "help"),
];

const COMMANDS: &[Cmd] = &[
    Cmd {
        path: "defrag",
        flags: &[flag("data-dir", Kind::Str, "", "Required. Defragments a data directory not in use by etcd.")],
        usage: "defrag",
        short: "Defragments the storage of the etcd",
    },
    Cmd { path: "snapshot", flags: &[], usage: "snapshot <subcommand>", short: "Manages etcd node snapshots" },
    Cmd {
        path: "snapshot status",
        flags: &[],
        usage: "status <filename>",
        short: "Gets backend snapshot status of a given file",
    },
    Cmd {
        path: "snapshot restore",
        flags: super::RESTORE_FLAGS,
        usage: "restore <filename> --data-dir {output dir} [options]",
        short: "Restores an etcd member snapshot to an etcd directory",
    },
    Cmd { path: "version", flags: &[], usage: "version", short: "Prints the version of etcdutl" },
    Cmd {
        path: "backup",
        flags: &[
            flag("data-dir", Kind::Str, "", "Path to the etcd data dir"),
            flag("wal-dir", Kind::Str, "", "Path to the etcd wal dir"),
            flag("backup-dir", Kind::Str, "", "Path to the backup dir"),
            flag("backup-wal-dir", Kind::Str, "", "Path to the backup wal dir"),
            flag("with-v3", Kind::Bool, "true", "Backup v3 backend data"),
        ],
        usage: "backup",
        short: "[legacy] offline backup of etcd directory",
    },
];

/// etcd 3.5's etcdutl.
pub const ETCDUTL: Tool = Tool { name: "etcdutl", global: GLOBAL, commands: COMMANDS, env: None };

/// Runs etcdutl with `args` (without the program name).
pub fn main(args: &[String]) -> std::process::ExitCode {
    super::run_tool(&ETCDUTL, args)
}

/// `backup`: a stopped member's data dir copied for `--force-new-cluster`.
fn backup(cx: &mut Ctx) -> Result {
    let f = &cx.flags;
    let dir = |n: &str| (!f.str(n).is_empty()).then(|| std::path::PathBuf::from(f.str(n)));
    let (Some(data_dir), Some(backup_dir)) = (dir("data-dir"), dir("backup-dir")) else {
        return Err(Exit::error("both --data-dir and --backup-dir are required"));
    };
    let cfg = etcdkit_snapshot::legacy_backup::BackupConfig {
        data_dir,
        wal_dir: dir("wal-dir"),
        backup_dir,
        backup_wal_dir: dir("backup-wal-dir"),
        with_v3: f.bool("with-v3"),
    };
    let r =
        etcdkit_snapshot::legacy_backup::backup(&cfg).map_err(|e| Exit::error(super::go_error_text(&e.to_string())))?;
    for n in &r.notes {
        eprintln!("{n}");
    }
    eprintln!(
        "backed up {} entries ({} emptied) as member {:x} of cluster {:x}",
        r.entries, r.dropped, r.member_id, r.cluster_id
    );
    Ok(())
}

pub(super) fn run(cx: &mut Ctx) -> Pin<Box<dyn Future<Output = Result> + '_>> {
    Box::pin(async move {
        match cx.cmd.path {
            "defrag" => {
                if cx.flags.str("data-dir").is_empty() {
                    return Err(Exit::error("required flag(s) \"data-dir\" not set"));
                }
                maintenance::defrag(cx).await
            }
            "backup" => backup(cx),
            "snapshot status" => maintenance::snapshot_status(cx),
            "snapshot restore" => maintenance::snapshot_restore(cx),
            "version" => {
                crate::say!("etcdutl version: {}", etcdkit_server::SERVER_VERSION);
                crate::say!("API version: {}", etcdkit_server::CLUSTER_MINOR);
                Ok(())
            }
            _ => Err(Exit::error(format!("{} needs a subcommand", cx.cmd.path))),
        }
    })
}

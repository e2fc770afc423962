//! The `etcdkit` command's implementation, as a library so that tests can call
//! the same code (text forms, dumps) the binary runs.
#![forbid(unsafe_code)]

pub mod bench;
pub mod bolt;
pub mod cluster;
pub mod ctl;
pub mod kv;
pub mod member;
pub mod snapshot;
pub mod text;
pub mod txn;
pub mod wal;

use std::io::{self, Write};

/// Where command output goes.
pub type Out = dyn Write;

/// A command failure: a one-line message (exit 1), or an exit code whose
/// output was already printed.
#[derive(Debug)]
pub enum CliError {
    Msg(String),
    Silent(u8),
}

impl CliError {
    pub fn msg(s: impl Into<String>) -> CliError {
        CliError::Msg(s.into())
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Msg(s) => f.write_str(s),
            CliError::Silent(c) => write!(f, "exit status {c}"),
        }
    }
}

impl From<etcdkit_storage::Error> for CliError {
    fn from(e: etcdkit_storage::Error) -> Self {
        CliError::Msg(e.to_string())
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Msg(e.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteOut {
    Simple,
    Json,
    Table,
    Fields,
}

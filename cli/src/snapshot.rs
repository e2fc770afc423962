//! `etcdkit snapshot …`: etcdctl/etcdutl's snapshot commands.

use std::path::Path;

use etcdkit_snapshot::{Status, human_bytes};
use etcdkit_storage::{Db, Options};

use crate::{CliError, Out, WriteOut};

impl From<etcdkit_snapshot::Error> for CliError {
    fn from(e: etcdkit_snapshot::Error) -> Self {
        CliError::Msg(e.to_string())
    }
}

/// An ASCII table as etcdctl's tablewriter draws it: headers centred (spare
/// space on the right), cells right-aligned, one space of padding.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| rows.iter().map(|r| r[i].len()).chain([h.len()]).max().unwrap())
        .collect();
    let line: String = widths.iter().map(|w| format!("+{}", "-".repeat(w + 2))).collect::<String>() + "+\n";
    let mut s = line.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let gap = w - h.len();
        s += &format!("| {}{}{} ", " ".repeat(gap / 2), h, " ".repeat(gap - gap / 2));
    }
    s += "|\n";
    s += &line;
    for r in rows {
        for (c, w) in r.iter().zip(&widths) {
            s += &format!("| {c:>w$} ");
        }
        s += "|\n";
    }
    s + &line
}

pub fn print_status(out: &mut Out, st: &Status, w: WriteOut) -> Result<(), CliError> {
    let row =
        vec![format!("{:x}", st.hash), st.revision.to_string(), st.total_key.to_string(), human_bytes(st.total_size)];
    match w {
        WriteOut::Simple => writeln!(out, "{}", row.join(", "))?,
        WriteOut::Json => writeln!(
            out,
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}",
            st.hash, st.revision, st.total_key, st.total_size
        )?,
        WriteOut::Table => write!(out, "{}", table(&["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], &[row]))?,
        WriteOut::Fields => writeln!(
            out,
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}",
            st.hash, st.revision, st.total_key, st.total_size
        )?,
    }
    Ok(())
}

pub fn cmd_status(out: &mut Out, file: &Path, w: WriteOut) -> Result<(), CliError> {
    let st = etcdkit_snapshot::status(file)?;
    print_status(out, &st, w)
}

pub fn cmd_save(out: &mut Out, file: &Path, data_dir: &Path) -> Result<(), CliError> {
    let db_path = data_dir.join("member/snap/db");
    if !db_path.is_file() {
        return Err(CliError::msg(format!("{}: not an etcd data dir (no member/snap/db)", data_dir.display())));
    }
    let db = Db::open(&db_path, Options { read_only: true, ..Default::default() })?;
    etcdkit_snapshot::save(&db, file)?;
    writeln!(out, "Snapshot saved at {}", file.display())?;
    Ok(())
}

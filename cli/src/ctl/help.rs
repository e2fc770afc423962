//! etcdctl's help text (`ctlv3/help.go`): its template (NAME, USAGE,
//! VERSION, COMMANDS, DESCRIPTION, OPTIONS, GLOBAL OPTIONS), its flag lines,
//! and Go's `text/tabwriter` (tab width 8, padding 1, tabs as padding) that
//! aligns them.

use super::flags::{Flag, Kind};
use super::{Cmd, Tool};

/// The long descriptions etcdctl 3.4 has.
const LONG: &[(&str, &str)] = &[
    (
        "put",
        "Puts the given key into the store.\n\nWhen <value> begins with '-', <value> is interpreted as a flag.\n\
         Insert '--' for workaround:\n\n$ put <key> -- <value>\n$ put -- <key> <value>\n\n\
         If <value> isn't given as a command line argument and '--ignore-value' is not specified,\n\
         this command tries to read the value from standard input.\n\n\
         If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,\n\
         this command tries to read the value from standard input.\n\nFor example,\n$ cat file | put <key>\n\
         will store the content of the file to <key>.",
    ),
    (
        "endpoint status",
        "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.\n\
         The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.",
    ),
    (
        "member list",
        "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.\n\
         The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.",
    ),
    ("member promote", "Promotes a non-voting learner member to a voting one in the cluster."),
    (
        "snapshot status",
        "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.\n\
         The items in the lists are hash, revision, total keys, total size.",
    ),
    (
        "check datascale",
        "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used.",
    ),
];

/// Go's `text/tabwriter` with etcdctl's settings (minwidth 0, tabwidth 8,
/// padding 1, padchar '\t'): cells end at tabs; a column of a block of
/// consecutive lines is as wide as its widest cell plus one, rounded up to a
/// tab stop, and is padded with tabs.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths = Vec::new();
    let mut out = String::new();
    format(&lines, 0, lines.len(), &mut widths, &mut out);
    // `split` gave one more (empty) line after the last newline.
    out.truncate(out.len().saturating_sub(1));
    out
}

fn format(lines: &[Vec<&str>], mut line0: usize, line1: usize, widths: &mut Vec<usize>, out: &mut String) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column >= lines[this].len() - 1 {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column < lines[this].len() - 1 {
            width = width.max(lines[this][column].chars().count() + 1);
            this += 1;
        }
        widths.push(width);
        format(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j < line.len() - 1 {
                let cellw = widths[j].div_ceil(8) * 8;
                let n = cellw - cell.chars().count();
                out.push_str(&"\t".repeat(n.div_ceil(8)));
            }
        }
        out.push('\n');
    }
}

/// etcdctl's line for one flag (`etcdFlagUsages`).
fn flag_line(f: &Flag) -> String {
    let name = match f.short {
        Some(s) => format!("  -{s}, --{}", f.name),
        None => format!("      --{}", f.name),
    };
    let value = match f.kind {
        Kind::Bool => format!("[={}]", f.default),
        Kind::Str => format!("={:?}", f.default),
        _ => format!("={}", f.default),
    };
    format!("{name}{value}\t{}\n", f.usage)
}

/// Flag lines sorted by name, as pflag visits them, with the help flag
/// cobra gives every command (`help for NAME`).
fn flag_lines(flags: &[Flag], help_for: &str) -> String {
    let mut lines: Vec<(&str, String)> = flags.iter().map(|f| (f.name, flag_line(f))).collect();
    lines.push(("help", format!("  -h, --help[=false]\thelp for {help_for}\n")));
    lines.sort_by_key(|(name, _)| *name);
    lines.into_iter().map(|(_, l)| l).collect()
}

/// Inherited flag lines (no help flag among them).
fn global_lines(flags: &mut [Flag]) -> String {
    flags.sort_by_key(|f| f.name);
    flags.iter().map(flag_line).collect()
}

/// The help of `tool` (no command) or of one of its commands.
pub fn help(tool: &Tool, c: Option<&Cmd>) -> String {
    let global: Vec<Flag> = tool.global.iter().filter(|f| f.name != "help").copied().collect();
    let mut s = String::new();
    let Some(c) = c else {
        s += &format!("NAME:\n\t{} - A simple command line client for etcd3.\n\n", tool.name);
        s += &format!("USAGE:\n\t{} [flags]\n\n", tool.name);
        s += &format!("VERSION:\n\t{}\n\n", etcdkit_server::SERVER_VERSION);
        s += &format!("API VERSION:\n\t{}\n\n\nCOMMANDS:\n", etcdkit_server::CLUSTER_MINOR);
        let mut runnable: Vec<(&str, &str)> = tool
            .commands
            .iter()
            .filter(|c| !tool.commands.iter().any(|o| o.path.starts_with(&format!("{} ", c.path))))
            .map(|c| (c.path, c.short))
            .chain([("help", "Help about any command")])
            .collect();
        runnable.sort();
        for (p, short) in runnable {
            s += &format!("\t{p}\t{short}\n");
        }
        s += &format!("\nOPTIONS:\n{}\n", flag_lines(&global, tool.name));
        return tabwrite(&s);
    };
    let name = c.path.rsplit(' ').next().unwrap_or(c.path);
    let parent = c.path.rsplit_once(' ').map(|(p, _)| p);
    let mut children: Vec<&Cmd> =
        tool.commands.iter().filter(|o| o.path.starts_with(&format!("{} ", c.path))).collect();
    children.sort_by_key(|k| k.path);
    // Persistent flags of a parent (`endpoint --cluster`) are inherited.
    let inherited = |f: &Flag| parent == Some("endpoint") && f.name == "cluster";
    let local: Vec<Flag> = c.flags.iter().filter(|f| !inherited(f)).copied().collect();
    let mut global: Vec<Flag> = global.into_iter().chain(c.flags.iter().filter(|f| inherited(f)).copied()).collect();
    let use_line = match parent {
        Some(p) => format!("{} {p} {}", tool.name, c.usage),
        None => format!("{} {}", tool.name, c.usage),
    };
    let flags_note = if use_line.contains("[flags]") { "" } else { " [flags]" };
    s += &format!("NAME:\n\t{} - {}\n\nUSAGE:\n\t{use_line}{flags_note}\n", c.path, c.short);
    if !children.is_empty() {
        s += &format!("\nAPI VERSION:\n\t{}\n\n\nCOMMANDS:\n", etcdkit_server::CLUSTER_MINOR);
        for k in children {
            s += &format!("\t{}\t{}\n", k.path.rsplit(' ').next().unwrap_or(k.path), k.short);
        }
    }
    if let Some((_, long)) = LONG.iter().find(|(p, _)| *p == c.path) {
        s += "\nDESCRIPTION:\n";
        for line in long.trim_matches(|ch| ch == '\n' || ch == '\t' || ch == ' ').split('\n') {
            s += &format!("\t{line}\n");
        }
    }
    s += &format!("\nOPTIONS:\n{}", flag_lines(&local, name));
    s += &format!("\nGLOBAL OPTIONS:\n{}\n", global_lines(&mut global));
    tabwrite(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_as_gos_tabwriter_aligns_them() {
        let t = "      --consistency=\"l\"\tx\n      --print-value-only[=false]\ty\n";
        assert_eq!(tabwrite(t), "      --consistency=\"l\"\t\t\tx\n      --print-value-only[=false]\ty\n");
        assert_eq!(tabwrite("NAME:\n\tget - g\n"), "NAME:\n\tget - g\n");
    }
}

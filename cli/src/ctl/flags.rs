//! Command lines as etcdctl's cobra and pflag read them: subcommands found
//! by name, alias or unique prefix; flags anywhere (`--name=value`,
//! `--name value`, `-w json`, `-wjson`, a bare `--bool`, `--bool=false`),
//! `--` ending them; the same error lines for unknown flags, missing values
//! and values that do not parse.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What a flag's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Str,
    Int,
    Duration,
    /// A comma-separated list (pflag's `StringSlice`).
    List,
}

/// One flag: its long name, optional one-letter name, kind and default.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub default: &'static str,
    pub usage: &'static str,
}

/// A flag declaration, as cobra's `Flags().XxxVar(…)` reads.
pub const fn flag(name: &'static str, kind: Kind, default: &'static str, usage: &'static str) -> Flag {
    Flag { name, short: None, kind, default, usage }
}

/// A flag with a one-letter form.
pub const fn short(name: &'static str, s: char, kind: Kind, default: &'static str, usage: &'static str) -> Flag {
    Flag { name, short: Some(s), kind, default, usage }
}

/// The flags' values after parsing (defaults for those not given).
#[derive(Debug, Default)]
pub struct Values {
    values: HashMap<&'static str, String>,
    lists: HashMap<&'static str, Vec<String>>,
    changed: HashSet<&'static str>,
}

impl Values {
    pub fn str(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    pub fn bool(&self, name: &str) -> bool {
        parse_bool(self.str(name)).unwrap_or(false)
    }

    pub fn int(&self, name: &str) -> i64 {
        self.str(name).parse().unwrap_or(0)
    }

    pub fn duration(&self, name: &str) -> Duration {
        parse_duration(self.str(name)).unwrap_or_default()
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        self.lists.get(name).cloned().unwrap_or_default()
    }

    /// Whether the command line (or the environment) set it.
    pub fn changed(&self, name: &str) -> bool {
        self.changed.contains(name)
    }

    /// Sets `f` from a string as the command line would.
    pub fn set(&mut self, f: &Flag, v: &str) -> Result<(), String> {
        let invalid = |why: String| format!("invalid argument {v:?} for \"{}\" flag: {why}", dashes(f));
        match f.kind {
            Kind::Bool => {
                parse_bool(v).ok_or_else(|| invalid(format!("strconv.ParseBool: parsing {v:?}: invalid syntax")))?;
            }
            Kind::Int => {
                v.parse::<i64>().map_err(|_| invalid(format!("strconv.ParseInt: parsing {v:?}: invalid syntax")))?;
            }
            Kind::Duration => {
                parse_duration(v).ok_or_else(|| {
                    invalid(format!("time: invalid duration {}", super::print::go_quote(v.as_bytes())))
                })?;
            }
            Kind::List => {
                let items: Vec<String> =
                    if v.is_empty() { Vec::new() } else { v.split(',').map(String::from).collect() };
                if self.changed.contains(f.name) {
                    self.lists.entry(f.name).or_default().extend(items);
                } else {
                    self.lists.insert(f.name, items);
                }
            }
            Kind::Str => {}
        }
        self.values.insert(f.name, v.to_string());
        self.changed.insert(f.name);
        Ok(())
    }
}

fn dashes(f: &Flag) -> String {
    match f.short {
        Some(s) => format!("-{s}, --{}", f.name),
        None => format!("--{}", f.name),
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration` (`300ms`, `1.5h`, `2h45m`; no negative values here).
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * scale;
    }
    Some(Duration::from_secs_f64(total))
}

/// Parses `args` (command words already removed) against `flags`: the
/// values and the positional arguments.
pub fn parse(flags: &[&Flag], args: &[String]) -> Result<(Values, Vec<String>), String> {
    let mut v = Values::default();
    for f in flags {
        v.values.insert(f.name, f.default.to_string());
        if f.kind == Kind::List {
            let d = f.default.trim_matches(|c| c == '[' || c == ']');
            v.lists.insert(f.name, if d.is_empty() { Vec::new() } else { d.split(',').map(String::from).collect() });
        }
    }
    let mut pos = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            pos.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, val) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let f = flags.iter().find(|f| f.name == name).ok_or_else(|| format!("unknown flag: --{name}"))?;
            let val = match (val, f.kind) {
                (Some(v), _) => v,
                (None, Kind::Bool) => "true".into(),
                (None, _) if i < args.len() => {
                    i += 1;
                    args[i - 1].clone()
                }
                (None, _) => return Err(format!("flag needs an argument: --{name}")),
            };
            v.set(f, &val)?;
        } else if a.len() > 1 && a.starts_with('-') {
            for (at, c) in a[1..].char_indices() {
                let f = flags
                    .iter()
                    .find(|f| f.short == Some(c))
                    .ok_or_else(|| format!("unknown shorthand flag: '{c}' in {a}"))?;
                let rest = &a[1 + at + c.len_utf8()..];
                if f.kind == Kind::Bool {
                    match rest.strip_prefix('=') {
                        Some(val) => {
                            v.set(f, val)?;
                            break;
                        }
                        None => v.set(f, "true")?,
                    }
                    continue;
                }
                let val = if let Some(r) = rest.strip_prefix('=') {
                    r.to_string()
                } else if !rest.is_empty() {
                    rest.to_string()
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(format!("flag needs an argument: '{c}' in -{c}"));
                };
                v.set(f, &val)?;
                break;
            }
        } else {
            pos.push(a.clone());
        }
    }
    Ok((v, pos))
}

/// Whether `arg` is a flag that takes the next argument as its value (for
/// finding the command words among flags, as cobra's `stripFlags`).
pub fn takes_next(flags: &[&Flag], arg: &str) -> bool {
    if let Some(long) = arg.strip_prefix("--") {
        return !long.contains('=') && flags.iter().any(|f| f.name == long && f.kind != Kind::Bool);
    }
    match arg.strip_prefix('-').map(|s| s.chars().collect::<Vec<_>>()) {
        Some(cs) if cs.len() == 1 => flags.iter().any(|f| f.short == Some(cs[0]) && f.kind != Kind::Bool),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        flag("prefix", Kind::Bool, "false", ""),
        flag("rev", Kind::Int, "0", ""),
        short("write-out", 'w', Kind::Str, "simple", ""),
        flag("endpoints", Kind::List, "[127.0.0.1:2379]", ""),
        flag("dial-timeout", Kind::Duration, "2s", ""),
    ];

    fn p(args: &[&str]) -> Result<(Values, Vec<String>), String> {
        let flags: Vec<&Flag> = FLAGS.iter().collect();
        parse(&flags, &args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_parse_as_pflag_reads_them() {
        let (v, pos) = p(&["a", "--prefix", "--rev=3", "-w", "json", "b", "--endpoints=x:1,y:2"]).unwrap();
        assert_eq!(pos, ["a", "b"]);
        assert!(v.bool("prefix"));
        assert_eq!(v.int("rev"), 3);
        assert_eq!(v.str("write-out"), "json");
        assert_eq!(v.list("endpoints"), ["x:1", "y:2"]);
        let (v, pos) = p(&["--prefix=false", "-wfields", "--", "--rev"]).unwrap();
        assert!(!v.bool("prefix") && v.changed("prefix"));
        assert_eq!((v.str("write-out"), pos), ("fields", vec!["--rev".to_string()]));
        assert_eq!(p(&[]).unwrap().0.list("endpoints"), ["127.0.0.1:2379"]);
        assert_eq!(p(&[]).unwrap().0.duration("dial-timeout"), Duration::from_secs(2));
    }

    #[test]
    fn bad_flags_get_pflags_errors() {
        assert_eq!(p(&["--foo"]).unwrap_err(), "unknown flag: --foo");
        assert_eq!(p(&["-x"]).unwrap_err(), "unknown shorthand flag: 'x' in -x");
        assert_eq!(p(&["--rev"]).unwrap_err(), "flag needs an argument: --rev");
        assert_eq!(
            p(&["--rev=x"]).unwrap_err(),
            "invalid argument \"x\" for \"--rev\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_duration("7s"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), None);
    }
}

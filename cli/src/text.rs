//! The escaped text forms shared with the reference bbolt tool: quoted byte
//! tokens, bucket paths, `dump` lines and the `write` spec language.
//!
//! A token is written in double quotes; bytes 0x20..=0x7e other than `"` and `\`
//! stand for themselves, every other byte is `\xHH` (lower-case hex). The parser
//! also accepts `\\` and `\"`. A path is tokens joined by `/`.

use std::fmt::Write as _;

/// Quotes a byte string.
pub fn esc(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        if (0x20..=0x7e).contains(&c) && c != b'"' && c != b'\\' {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s.push('"');
    s
}

/// Quotes a bucket path.
pub fn esc_path(path: &[Vec<u8>]) -> String {
    path.iter().map(|p| esc(p)).collect::<Vec<_>>().join("/")
}

/// Parses one token at the start of `s`; returns it and the rest.
fn unesc_one(s: &str) -> Result<(Vec<u8>, &str), String> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return Err(format!("expected '\"' at {s:?}"));
    }
    let mut out = Vec::new();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((out, &s[i + 1..])),
            b'\\' => match b.get(i + 1) {
                Some(b'\\') | Some(b'"') => {
                    out.push(b[i + 1]);
                    i += 2;
                }
                Some(b'x') => {
                    let hex = s.get(i + 2..i + 4).ok_or("short \\x escape")?;
                    let v = u8::from_str_radix(hex, 16).map_err(|_| format!("bad \\x escape {hex:?}"))?;
                    out.push(v);
                    i += 4;
                }
                Some(c) => return Err(format!("unknown escape \\{}", *c as char)),
                None => return Err("dangling backslash".into()),
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err("unterminated token".into())
}

/// Parses exactly one token.
pub fn unesc(s: &str) -> Result<Vec<u8>, String> {
    let (b, rest) = unesc_one(s)?;
    if !rest.is_empty() {
        return Err(format!("trailing text {rest:?} after token"));
    }
    Ok(b)
}

/// Parses a bucket path.
pub fn unesc_path(mut s: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut path = Vec::new();
    loop {
        let (b, rest) = unesc_one(s)?;
        path.push(b);
        if rest.is_empty() {
            return Ok(path);
        }
        s = rest.strip_prefix('/').ok_or_else(|| format!("expected '/' between path tokens at {rest:?}"))?;
    }
}

/// Splits a spec line on blanks outside quotes.
pub fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let (mut in_q, mut have) = (false, false);
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' if in_q => {
                cur.push(c);
                if let Some(n) = it.next() {
                    cur.push(n);
                }
            }
            '"' => {
                in_q = !in_q;
                cur.push(c);
                have = true;
            }
            ' ' | '\t' | '\r' if !in_q => {
                if have {
                    fields.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            _ => {
                cur.push(c);
                have = true;
            }
        }
    }
    if in_q {
        return Err("unterminated quote".into());
    }
    if have {
        fields.push(cur);
    }
    Ok(fields)
}

/// One operation of a `write` spec.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Bucket { path: Vec<Vec<u8>>, seq: Option<u64> },
    Put { path: Vec<Vec<u8>>, key: Vec<u8>, value: Vec<u8> },
    Del { path: Vec<Vec<u8>>, key: Vec<u8> },
    DelBucket { path: Vec<Vec<u8>> },
    Commit,
}

/// Parses one spec line (None for blank and comment lines).
pub fn parse_line(line: &str) -> Result<Option<Op>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if line == "commit" {
        return Ok(Some(Op::Commit));
    }
    let f = split_fields(line)?;
    if f.len() < 2 {
        return Err(format!("bad line {line:?}"));
    }
    let want = |n: usize| {
        if f.len() == n { Ok(()) } else { Err(format!("{}: want {} fields, got {}", f[0], n, f.len())) }
    };
    let path = unesc_path(&f[1])?;
    Ok(Some(match f[0].as_str() {
        "bucket" => {
            let seq = match f.len() {
                2 => None,
                3 => {
                    let n = f[2].strip_prefix("seq=").ok_or_else(|| format!("bucket: bad field {:?}", f[2]))?;
                    Some(n.parse::<u64>().map_err(|e| format!("bucket: seq: {e}"))?)
                }
                _ => return Err("bucket: want PATH [seq=N]".into()),
            };
            Op::Bucket { path, seq }
        }
        "kv" | "put" => {
            want(4)?;
            Op::Put { path, key: unesc(&f[2])?, value: unesc(&f[3])? }
        }
        "fill" => {
            want(5)?;
            let n: usize = f[3].parse().map_err(|e| format!("fill: count: {e}"))?;
            let c = u8::from_str_radix(&f[4], 16).map_err(|e| format!("fill: byte: {e}"))?;
            Op::Put { path, key: unesc(&f[2])?, value: vec![c; n] }
        }
        "del" | "delete" => {
            want(3)?;
            Op::Del { path, key: unesc(&f[2])? }
        }
        "delbucket" => {
            want(2)?;
            Op::DelBucket { path }
        }
        other => return Err(format!("unknown op {other:?}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for b in [&b""[..], b"abc", b"a\"b\\c", b"\x00\xff\n /x"] {
            assert_eq!(unesc(&esc(b)).unwrap(), b);
        }
        assert_eq!(esc(b"k\x00\"\\"), r#""k\x00\x22\x5c""#);
        assert_eq!(unesc(r#""a\\b\"""#).unwrap(), b"a\\b\"");
    }

    #[test]
    fn spec_lines() {
        assert_eq!(
            parse_line(r#"kv "a"/"b c" "k" "v v""#).unwrap(),
            Some(Op::Put { path: vec![b"a".to_vec(), b"b c".to_vec()], key: b"k".to_vec(), value: b"v v".to_vec() })
        );
        assert_eq!(
            parse_line(r#"fill "a" "k" 3 ff"#).unwrap(),
            Some(Op::Put { path: vec![b"a".to_vec()], key: b"k".to_vec(), value: vec![0xff; 3] })
        );
        assert_eq!(parse_line("  # c").unwrap(), None);
        assert!(parse_line(r#"kv "a" "k""#).is_err());
        assert!(parse_line(r#"kv "a "k" "v""#).is_err());
    }
}

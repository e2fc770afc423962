//! JSON text exactly as Go's `encoding/json` writes it, for outputs that must
//! be byte-identical to etcd's (`.snap` v2-store JSON, decoded dumps):
//! strings escape `"`, `\`, control characters (`\n`, `\r`, `\t`, else
//! `\u00xx`), `<`, `>`, `&`, U+2028 and U+2029; `[]byte` is standard base64.

/// Appends `s` as a Go JSON string (with quotes).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a Go JSON string.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_str(&mut out, s);
    out
}

/// Standard base64 with padding (how Go's encoding/json writes `[]byte`).
pub fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A JSON object written field by field in the order given (Go writes struct
/// fields in declaration order).
#[derive(Default)]
pub struct Obj {
    buf: String,
}

impl Obj {
    pub fn new() -> Obj {
        Obj { buf: String::from("{") }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        push_str(&mut self.buf, k);
        self.buf.push(':');
        &mut self.buf
    }

    /// A string field.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Obj {
        let b = self.key(k);
        push_str(b, v);
        self
    }

    /// A `[]byte` field (base64).
    pub fn bytes(&mut self, k: &str, v: &[u8]) -> &mut Obj {
        let b = self.key(k);
        b.push('"');
        b.push_str(&base64(v));
        b.push('"');
        self
    }

    /// A `[]byte` field tagged `omitempty`: left out when empty.
    pub fn bytes_omitempty(&mut self, k: &str, v: &[u8]) -> &mut Obj {
        if !v.is_empty() {
            self.bytes(k, v);
        }
        self
    }

    /// An integer field tagged `omitempty`: left out when 0.
    pub fn int_omitempty(&mut self, k: &str, v: impl Into<i128>) -> &mut Obj {
        let v = v.into();
        if v != 0 {
            self.raw(k, v);
        }
        self
    }

    /// A number, bool or already-encoded JSON value.
    pub fn raw(&mut self, k: &str, v: impl std::fmt::Display) -> &mut Obj {
        let b = self.key(k);
        b.push_str(&v.to_string());
        self
    }

    /// The finished object.
    pub fn end(&mut self) -> String {
        let mut s = std::mem::take(&mut self.buf);
        s.push('}');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escapes() {
        assert_eq!(string("a\"b\\c\n\u{1}<&>\u{2028}é"), r#""a\"b\\c\n\u0001\u003c\u0026\u003e\u2028é""#);
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        let mut o = Obj::new();
        assert_eq!(o.str("a", "x").raw("n", 5).bytes("b", b"hi").end(), r#"{"a":"x","n":5,"b":"aGk="}"#);
        assert_eq!(Obj::new().end(), "{}");
    }
}

//! Just enough DER to read two things out of an X.509 certificate: the
//! subject's common name (etcd's user from `--client-cert-auth`) and the
//! subject public key (a JWT verification key given as a certificate).
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serial, signature,
//!                               issuer, validity, subject, subjectPublicKeyInfo, … }
//! Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }
//! SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }
//! ```

/// One TLV: its tag and contents.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Splits the first TLV off `b`; `None` on malformed input.
fn next(b: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((Tlv { tag, body: &rest[..len] }, &rest[len..]))
}

fn items(mut b: &[u8]) -> impl Iterator<Item = Tlv<'_>> {
    std::iter::from_fn(move || {
        let (t, rest) = next(b)?;
        b = rest;
        Some(t)
    })
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3.
const CN_OID: &[u8] = &[0x55, 0x04, 0x03];

/// The TBSCertificate's fields from `version` on, without the version.
fn tbs_fields(cert: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let (c, _) = next(cert)?;
    let (tbs, _) = next(c.body)?;
    if c.tag != SEQUENCE || tbs.tag != SEQUENCE {
        return None;
    }
    let mut fields: Vec<Tlv<'_>> = items(tbs.body).collect();
    if fields.first().is_some_and(|f| f.tag == VERSION) {
        fields.remove(0);
    }
    Some(fields)
}

/// The subject's (last) common name.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let fields = tbs_fields(cert)?;
    let subject = fields.get(4)?;
    let mut cn = None;
    for rdn in items(subject.body) {
        for atv in items(rdn.body) {
            let mut parts = items(atv.body);
            let (oid, value) = (parts.next()?, parts.next()?);
            if oid.body == CN_OID {
                cn = Some(String::from_utf8_lossy(value.body).into_owned());
            }
        }
    }
    cn
}

/// The validity period, as Unix seconds (`notBefore`, `notAfter`).
pub fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let fields = tbs_fields(cert)?;
    let mut times = items(fields.get(3)?.body).map(|t| time(t.tag, t.body));
    Some((times.next()??, times.next()??))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950..2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn time(tag: u8, b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?.strip_suffix('Z')?;
    let (year, rest) = match (tag, s.len()) {
        (0x17, 12) => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        (0x18, 14) => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let n = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, h, m, sec) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + m * 60 + sec)
}

/// The subject public key's bits (an RSA key's PKCS#1 `RSAPublicKey`, an
/// EC key's point), as `ring` verifies with them.
pub fn public_key(cert: &[u8]) -> Option<Vec<u8>> {
    let fields = tbs_fields(cert)?;
    spki_key(fields.get(5)?.body)
}

/// The key bits of a `SubjectPublicKeyInfo`'s contents (a `PUBLIC KEY` PEM).
pub fn spki_key(spki: &[u8]) -> Option<Vec<u8>> {
    let mut parts = items(spki);
    let _alg = parts.next()?;
    let bits = parts.next()?;
    // A BIT STRING: the count of unused bits, then the bits.
    let (&unused, key) = bits.body.split_first()?;
    (bits.tag == 0x03 && unused == 0).then(|| key.to_vec())
}

/// The contents of the outer SEQUENCE of a DER document.
pub fn sequence_body(der: &[u8]) -> Option<&[u8]> {
    let (t, _) = next(der)?;
    (t.tag == SEQUENCE).then_some(t.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_generated_certificate() {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "etcd");
        p.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("alice"));
        let spki = key.public_key_der();
        assert_eq!(public_key(cert.der()), spki_key(sequence_body(&spki).unwrap()));
        assert!(public_key(cert.der()).is_some());
        let (from, to) = validity(cert.der()).unwrap();
        assert!(from < to);
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x18, b"20320101000000Z"), Some(1_956_528_000));
        assert_eq!(common_name(b"\x30\x84garbage"), None);
        assert_eq!(common_name(&[]), None);
    }
}

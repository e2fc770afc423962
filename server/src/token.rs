//! Auth tokens (etcd's `--auth-token`): `simple` (random, kept by the
//! members that applied the `Authenticate`), `jwt,…` (signed, stateless), or
//! none.
//!
//! A JWT carries `{"exp", "revision", "username"}` (etcd's claims, as Go
//! encodes its map: keys sorted) and is signed with `sign-method`:
//! RS256/384/512, PS256/384/512, ES256/384 or HS256/384/512 (ring has no
//! P-521, so ES512 is refused at start). `pub-key` may be a certificate or
//! a `PUBLIC KEY`; `priv-key` a PKCS#1 or PKCS#8 key (HS*: the file's bytes
//! are the secret). Options: `jwt,pub-key=F,priv-key=F,sign-method=M,ttl=D`
//! (`ttl` a Go duration, 5m by default).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use etcdkit_raft_node::auth::{AuthError, AuthInfo};
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer};

use crate::ServeError;

/// How tokens are made and checked.
pub enum TokenProvider {
    Simple,
    Jwt(Box<Jwt>),
    /// `--auth-token ""`: authentication fails, every token is invalid.
    None,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenProvider::Simple => "simple",
            TokenProvider::Jwt(_) => "jwt",
            TokenProvider::None => "none",
        })
    }
}

/// A simple token's random part: 16 letters (etcd's `genTokenPrefix`); the
/// member appends `.<raft index>` when it applies the `Authenticate`.
pub fn simple_prefix() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut b = [0u8; 16];
    // The system RNG cannot fail on Linux; if it did, a fixed prefix would
    // still make a unique token with its raft index.
    let _ = ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b);
    b.iter().map(|x| LETTERS[*x as usize % LETTERS.len()] as char).collect()
}

fn bad(why: impl std::fmt::Display) -> ServeError {
    ServeError::Flag(format!("auth: {why}"))
}

impl TokenProvider {
    /// Parses `--auth-token` as etcd does.
    pub fn parse(opts: &str) -> Result<TokenProvider, ServeError> {
        let mut parts = opts.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut kv = std::collections::BTreeMap::new();
        for p in parts {
            let mut it = p.split('=');
            let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
                return Err(bad("invalid auth options"));
            };
            if kv.insert(k, v).is_some() {
                return Err(bad("invalid auth options"));
            }
        }
        match kind {
            "simple" => Ok(TokenProvider::Simple),
            "" => Ok(TokenProvider::None),
            "jwt" => Ok(TokenProvider::Jwt(Box::new(Jwt::new(&kv)?))),
            _ => Err(bad("invalid auth options")),
        }
    }
}

enum Signer {
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    Hmac(hmac::Key),
}

/// JWT signing and verification keys.
pub struct Jwt {
    method: String,
    ttl: Duration,
    signer: Option<Signer>,
    /// The public key's bits and ring's algorithm (RSA and ECDSA).
    verifier: Option<(Vec<u8>, &'static dyn signature::VerificationAlgorithm)>,
}

impl Jwt {
    fn new(kv: &std::collections::BTreeMap<&str, &str>) -> Result<Jwt, ServeError> {
        let method = kv.get("sign-method").copied().unwrap_or_default().to_string();
        let ttl = match kv.get("ttl") {
            Some(d) => crate::flags::parse_go_duration(d).ok_or_else(|| bad(format!("invalid duration {d:?}")))?,
            None => Duration::from_secs(300),
        };
        let read = |k: &str| -> Result<Option<&Path>, ServeError> { Ok(kv.get(k).map(Path::new)) };
        let (pub_path, priv_path) = (read("pub-key")?, read("priv-key")?);
        use signature as s;
        let (rsa_sign, rsa_verify): (Option<&'static dyn s::RsaEncoding>, _) = match method.as_str() {
            "RS256" => (Some(&s::RSA_PKCS1_SHA256), Some(&s::RSA_PKCS1_2048_8192_SHA256)),
            "RS384" => (Some(&s::RSA_PKCS1_SHA384), Some(&s::RSA_PKCS1_2048_8192_SHA384)),
            "RS512" => (Some(&s::RSA_PKCS1_SHA512), Some(&s::RSA_PKCS1_2048_8192_SHA512)),
            "PS256" => (Some(&s::RSA_PSS_SHA256), Some(&s::RSA_PSS_2048_8192_SHA256)),
            "PS384" => (Some(&s::RSA_PSS_SHA384), Some(&s::RSA_PSS_2048_8192_SHA384)),
            "PS512" => (Some(&s::RSA_PSS_SHA512), Some(&s::RSA_PSS_2048_8192_SHA512)),
            _ => (None, None),
        };
        let ec: Option<(&'static s::EcdsaSigningAlgorithm, &'static s::EcdsaVerificationAlgorithm)> =
            match method.as_str() {
                "ES256" => Some((&s::ECDSA_P256_SHA256_FIXED_SIGNING, &s::ECDSA_P256_SHA256_FIXED)),
                "ES384" => Some((&s::ECDSA_P384_SHA384_FIXED_SIGNING, &s::ECDSA_P384_SHA384_FIXED)),
                _ => None,
            };
        let hs = match method.as_str() {
            "HS256" => Some(hmac::HMAC_SHA256),
            "HS384" => Some(hmac::HMAC_SHA384),
            "HS512" => Some(hmac::HMAC_SHA512),
            _ => None,
        };
        if let Some(alg) = hs {
            let p = priv_path.ok_or_else(|| bad("missing key data"))?;
            let secret = std::fs::read(p).map_err(|e| bad(format!("{}: {e}", p.display())))?;
            return Ok(Jwt { method, ttl, signer: Some(Signer::Hmac(hmac::Key::new(alg, &secret))), verifier: None });
        }
        if rsa_sign.is_none() && ec.is_none() {
            return Err(bad("invalid auth signature method"));
        }
        let signer = match priv_path {
            None => None,
            Some(p) => {
                let key = PrivateKeyDer::from_pem_file(p).map_err(|e| bad(format!("{}: {e}", p.display())))?;
                let unreadable = |e: &dyn std::fmt::Display| bad(format!("{}: {e}", p.display()));
                Some(match (&key, rsa_sign, ec) {
                    (PrivateKeyDer::Pkcs1(k), Some(enc), _) => {
                        Signer::Rsa(RsaKeyPair::from_der(k.secret_pkcs1_der()).map_err(|e| unreadable(&e))?, enc)
                    }
                    (PrivateKeyDer::Pkcs8(k), Some(enc), _) => {
                        Signer::Rsa(RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).map_err(|e| unreadable(&e))?, enc)
                    }
                    (PrivateKeyDer::Pkcs8(k), None, Some((alg, _))) => Signer::Ecdsa(
                        EcdsaKeyPair::from_pkcs8(alg, k.secret_pkcs8_der(), &SystemRandom::new())
                            .map_err(|e| unreadable(&e))?,
                    ),
                    _ => return Err(bad(format!("{}: not a key for {method} (give PKCS#1 or PKCS#8)", p.display()))),
                })
            }
        };
        let public = match pub_path {
            Some(p) => Some(public_key(p)?),
            None => match &signer {
                Some(Signer::Rsa(k, _)) => Some(k.public_key().as_ref().to_vec()),
                Some(Signer::Ecdsa(k)) => Some(k.public_key().as_ref().to_vec()),
                _ => None,
            },
        };
        let Some(public) = public else { return Err(bad("missing key data")) };
        let alg: &'static dyn signature::VerificationAlgorithm = match (rsa_verify, ec) {
            (Some(v), _) => v,
            (None, Some((_, v))) => v,
            (None, None) => return Err(bad("invalid auth signature method")),
        };
        Ok(Jwt { method, ttl, signer, verifier: Some((public, alg)) })
    }

    /// A token for `user` at auth revision `revision`, valid for the TTL.
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, AuthError> {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + self.ttl;
        let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, self.method);
        let claims = serde_json::json!({ "exp": exp.as_secs(), "revision": revision, "username": user });
        let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            // etcd: "auth: token signing attempted with verify-only key".
            None => return Err(AuthError::AuthFailed),
            Some(Signer::Hmac(k)) => hmac::sign(k, signing_input.as_bytes()).as_ref().to_vec(),
            Some(Signer::Rsa(k, enc)) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(*enc, &rng, signing_input.as_bytes(), &mut sig).map_err(|_| AuthError::AuthFailed)?;
                sig
            }
            Some(Signer::Ecdsa(k)) => {
                k.sign(&rng, signing_input.as_bytes()).map_err(|_| AuthError::AuthFailed)?.as_ref().to_vec()
            }
        };
        Ok(format!("{signing_input}.{}", B64.encode(sig)))
    }

    /// The user and auth revision of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<AuthInfo, AuthError> {
        let invalid = AuthError::InvalidAuthToken;
        let (signing_input, sig) = token.rsplit_once('.').ok_or(invalid)?;
        let (header, claims) = signing_input.split_once('.').ok_or(invalid)?;
        let sig = B64.decode(sig).map_err(|_| invalid)?;
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(header).map_err(|_| invalid)?).map_err(|_| invalid)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some(self.method.as_str()) {
            return Err(invalid);
        }
        let ok = match (&self.signer, &self.verifier) {
            (Some(Signer::Hmac(k)), _) => hmac::verify(k, signing_input.as_bytes(), &sig).is_ok(),
            (_, Some((key, alg))) => {
                signature::UnparsedPublicKey::new(*alg, key).verify(signing_input.as_bytes(), &sig).is_ok()
            }
            _ => false,
        };
        if !ok {
            return Err(invalid);
        }
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(claims).map_err(|_| invalid)?).map_err(|_| invalid)?;
        // jwt-go: valid through the whole second `exp` names.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as f64;
        match claims.get("exp").and_then(|e| e.as_f64()) {
            Some(exp) if now <= exp => {}
            _ => return Err(invalid),
        }
        let user = claims.get("username").and_then(|u| u.as_str()).ok_or(invalid)?;
        let revision = claims.get("revision").and_then(|r| r.as_u64()).ok_or(invalid)?;
        Ok(AuthInfo { user: user.to_string(), revision })
    }
}

/// A public key from a certificate or a `PUBLIC KEY` PEM.
fn public_key(p: &Path) -> Result<Vec<u8>, ServeError> {
    let unreadable = || bad(format!("{}: no certificate or public key", p.display()));
    if let Ok(cert) = CertificateDer::from_pem_file(p) {
        return crate::der::public_key(&cert).ok_or_else(unreadable);
    }
    let spki = SubjectPublicKeyInfoDer::from_pem_file(p).map_err(|_| unreadable())?;
    crate::der::sequence_body(&spki).and_then(crate::der::spki_key).ok_or_else(unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_as_etcd_parses_them() {
        assert!(matches!(TokenProvider::parse("simple"), Ok(TokenProvider::Simple)));
        assert!(matches!(TokenProvider::parse(""), Ok(TokenProvider::None)));
        assert!(TokenProvider::parse("magic").is_err());
        assert!(TokenProvider::parse("jwt,sign-method=RS256,sign-method=RS256").is_err());
        assert!(TokenProvider::parse("jwt,sign-method=none").is_err());
        assert!(TokenProvider::parse("jwt,sign-method=RS256").is_err(), "no key");
        assert!(TokenProvider::parse("jwt,sign-method=RS256,ttl=5x").is_err());
        let p = simple_prefix();
        assert!(p.len() == 16 && p.chars().all(|c| c.is_ascii_alphabetic()));
    }

    #[test]
    fn jwt_signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "jwt");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let opts = format!("jwt,pub-key={},priv-key={},sign-method=ES256,ttl=1m", c.display(), k.display());
        let TokenProvider::Jwt(j) = TokenProvider::parse(&opts).unwrap() else { panic!() };
        let t = j.sign("alice", 7).unwrap();
        assert_eq!(j.verify(&t), Ok(AuthInfo { user: "alice".into(), revision: 7 }));
        let mut forged = t.clone();
        forged.replace_range(forged.len() - 4.., "AAAA");
        assert_eq!(j.verify(&forged), Err(AuthError::InvalidAuthToken));
        assert_eq!(j.verify("a.b"), Err(AuthError::InvalidAuthToken));
        // Verify-only (the certificate alone) still checks.
        let opts = format!("jwt,pub-key={},sign-method=ES256", c.display());
        let TokenProvider::Jwt(v) = TokenProvider::parse(&opts).unwrap() else { panic!() };
        assert!(v.verify(&t).is_ok());
        assert!(v.sign("alice", 7).is_err());
    }
}

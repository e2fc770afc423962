//! Client TLS as etcd 3.4 sets it up (`pkg/transport/listener.go`), with
//! rustls: `--cert-file`/`--key-file` (or `--auto-tls`, a self-signed
//! certificate made at start), `--trusted-ca-file` with `--client-cert-auth`
//! (client certificates required and verified), `--client-crl-file`
//! (revoked client certificates refused), `--cipher-suites` (Go's names).
//! ALPN offers `h2` and `http/1.1`: gRPC and the HTTP endpoints share a port.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{RootCertStore, ServerConfig};

use crate::ServeError;

/// etcd's client TLS flags.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub crl_file: Option<PathBuf>,
    pub auto_tls: bool,
    /// `--cipher-suites`: Go's names (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, …).
    pub cipher_suites: Vec<String>,
    /// `--peer-cert-allowed-cn`: a verified client certificate must also
    /// have this common name.
    pub allowed_cn: Option<String>,
    /// `--peer-cert-allowed-hostname`: … or be valid for this host name.
    pub allowed_hostname: Option<String>,
}

impl TlsInfo {
    /// Whether a certificate is configured (or will be made).
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.auto_tls
    }
}

fn err(what: &str, path: &Path, e: impl std::fmt::Display) -> ServeError {
    ServeError::Flag(format!("{what} {}: {e}", path.display()))
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let all: Result<Vec<_>, _> =
        CertificateDer::pem_file_iter(path).map_err(|e| err("read certificates", path, e))?.collect();
    let all = all.map_err(|e| err("parse certificates", path, e))?;
    if all.is_empty() {
        return Err(err("read certificates", path, "no certificate in the file"));
    }
    Ok(all)
}

/// Go's TLS 1.2 suites that rustls does not implement.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The provider with etcd's `--cipher-suites` (TLS 1.2 suites by Go's names;
/// TLS 1.3 suites are not configurable in Go either and stay on).
fn provider(names: &[String]) -> Result<CryptoProvider, ServeError> {
    // `ring`'s provider has no post-quantum key exchange (deprecated for
    // that in rustls 0.23.48); neither has etcd 3.4's Go, and the other
    // provider (aws-lc-rs) needs cmake and a long C build on CI machines.
    #[allow(deprecated)]
    let mut p = rustls::crypto::ring::default_provider();
    if names.is_empty() {
        return Ok(p);
    }
    let mut suites = Vec::new();
    for n in names {
        // Go's names are IANA's, but for the two ChaCha20 suites.
        let iana = match n.as_str() {
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => format!("{n}_SHA256"),
            _ => n.clone(),
        };
        match p.cipher_suites.iter().find(|s| format!("{:?}", s.suite()) == iana) {
            Some(s) => suites.push(*s),
            // Suites Go has and rustls refuses to offer (CBC, RSA key
            // exchange, 3DES, RC4) are left out.
            None if GO_ONLY_SUITES.contains(&n.as_str()) => {
                tracing::warn!(target: "embed", "TLS cipher suite {n} is not offered by etcdkit (rustls has no such suite)")
            }
            None => return Err(ServeError::Flag(format!("unexpected TLS cipher suite {n:?}"))),
        }
    }
    if suites.is_empty() {
        return Err(ServeError::Flag(format!("none of the TLS cipher suites {names:?} is available")));
    }
    suites.extend(p.cipher_suites.iter().filter(|s| s.tls13().is_some()).copied());
    p.cipher_suites = suites;
    Ok(p)
}

/// A self-signed certificate for `hosts` (etcd's `--auto-tls`), written as
/// etcd writes it under `<dir>/cert.pem` and `key.pem`.
fn self_cert(dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), ServeError> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let mut names: Vec<String> = hosts.to_vec();
    if names.is_empty() {
        names.push("localhost".into());
    }
    let key = rcgen::KeyPair::generate().map_err(|e| err("generate a key for", dir, e))?;
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| err("certificate for", dir, e))?;
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "etcd");
    let cert = params.self_signed(&key).map_err(|e| err("self-sign for", dir, e))?;
    std::fs::create_dir_all(dir).map_err(|e| err("create", dir, e))?;
    std::fs::write(&cert_path, cert.pem()).map_err(|e| err("write", &cert_path, e))?;
    std::fs::write(&key_path, key.serialize_pem()).map_err(|e| err("write", &key_path, e))?;
    Ok((cert_path, key_path))
}

/// Client certificate verification as Go's: webpki's, and also a client
/// certificate that is itself one of the trusted CA certificates (Go
/// verifies it as a chain of one; webpki refuses a CA certificate as an end
/// entity). Such a certificate must still be within its validity period.
#[derive(Debug)]
struct TrustedLeaf {
    inner: Arc<dyn ClientCertVerifier>,
    trusted: Vec<CertificateDer<'static>>,
    allowed_cn: Option<String>,
    allowed_hostname: Option<String>,
}

impl TrustedLeaf {
    fn allowed(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        allowed(cert, self.allowed_cn.as_deref(), self.allowed_hostname.as_deref())
    }
}

/// etcd's `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname`, on
/// both ends of a peer connection (etcd's `VerifyPeerCertificate`): a
/// certificate that verified must also name the allowed peer; if not, the
/// handshake fails with a `bad_certificate` alert, and the log says
/// "client certificate authentication failed" (Go's wording, both ends).
fn allowed(cert: &CertificateDer<'_>, cn: Option<&str>, hostname: Option<&str>) -> Result<(), rustls::Error> {
    let refuse = || rustls::Error::from(rustls::CertificateError::NotValidForName);
    if let Some(cn) = cn
        && crate::der::common_name(cert).as_deref() != Some(cn)
    {
        return Err(refuse());
    }
    if let Some(host) = hostname {
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|_| refuse())?;
        let parsed = rustls::server::ParsedCertificate::try_from(cert)?;
        rustls::client::verify_server_name(&parsed, &name).map_err(|_| refuse())?;
    }
    Ok(())
}

/// A server's certificate checked by `inner` (or, failing that, found
/// itself among the `trusted` certificates, in its validity period and valid
/// for the name dialed: Go verifies a self-signed certificate in its roots as
/// a chain of one), then against the allowed CN / host name.
#[derive(Debug)]
struct AllowedServer {
    inner: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    cn: Option<String>,
    hostname: Option<String>,
    trusted: Vec<CertificateDer<'static>>,
}

impl rustls::client::danger::ServerCertVerifier for AllowedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let v = match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => v,
            Err(e) => {
                let secs = now.as_secs() as i64;
                let in_time = crate::der::validity(end_entity).is_some_and(|(from, to)| from <= secs && secs <= to);
                if !(in_time && self.trusted.iter().any(|t| t.as_ref() == end_entity.as_ref())) {
                    return Err(e);
                }
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                rustls::client::danger::ServerCertVerified::assertion()
            }
        };
        allowed(end_entity, self.cn.as_deref(), self.hostname.as_deref())?;
        Ok(v)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl ClientCertVerifier for TrustedLeaf {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.inner.verify_client_cert(end_entity, intermediates, now) {
            Ok(v) => self.allowed(end_entity).map(|()| v),
            Err(e) => {
                let now = now.as_secs() as i64;
                let in_time = crate::der::validity(end_entity).is_some_and(|(from, to)| from <= now && now <= to);
                if in_time && self.trusted.iter().any(|t| t.as_ref() == end_entity.as_ref()) {
                    self.allowed(end_entity).map(|()| ClientCertVerified::assertion())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// rustls's server configuration for `info`; `auto_dir` and `hosts` are
/// where and for whom `--auto-tls` makes its certificate.
pub fn server_config(info: &TlsInfo, auto_dir: &Path, hosts: &[String]) -> Result<Arc<ServerConfig>, ServeError> {
    let (cert_file, key_file) = match (&info.cert_file, &info.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ if info.auto_tls => self_cert(auto_dir, hosts)?,
        _ => return Err(ServeError::Flag("TLS needs both --cert-file and --key-file".into())),
    };
    let chain = certs(&cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| err("read the key", &key_file, e))?;
    let provider = Arc::new(provider(&info.cipher_suites)?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Flag(format!("TLS: {e}")))?;
    // Auto TLS verifies no client (etcd: client certificate auth needs a CA).
    let builder = match (&info.trusted_ca_file, info.client_cert_auth && !info.auto_tls) {
        (Some(ca), true) => {
            let trusted = certs(ca)?;
            let mut roots = RootCertStore::empty();
            for c in &trusted {
                roots.add(c.clone()).map_err(|e| err("trust", ca, e))?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if let Some(crl) = &info.crl_file {
                let der = std::fs::read(crl).map_err(|e| err("read", crl, e))?;
                // etcd's CRL file is DER (Go's x509.ParseCRL also takes PEM).
                let crls: Vec<CertificateRevocationListDer<'static>> = if der.starts_with(b"-----BEGIN") {
                    CertificateRevocationListDer::pem_slice_iter(&der)
                        .collect::<Result<_, _>>()
                        .map_err(|e| err("parse", crl, e))?
                } else {
                    vec![CertificateRevocationListDer::from(der)]
                };
                v = v.with_crls(crls).only_check_end_entity_revocation().allow_unknown_revocation_status();
            }
            let inner = v.build().map_err(|e| err("client verifier for", ca, e))?;
            builder.with_client_cert_verifier(Arc::new(TrustedLeaf {
                inner,
                trusted,
                allowed_cn: info.allowed_cn.clone(),
                allowed_hostname: info.allowed_hostname.clone(),
            }))
        }
        (None, true) => return Err(ServeError::Flag("--client-cert-auth needs --trusted-ca-file".into())),
        _ => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, key).map_err(|e| err("use the certificate", &cert_file, e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The TLS client side of the peer protocol (`--peer-*` flags): this
/// member's certificate for peers that verify clients, and the CA that
/// peers' certificates are verified against. `--peer-auto-tls` verifies no
/// peer certificate (etcd: `InsecureSkipVerify` for self-signed ones).
/// `None` when no peer TLS flag is set (an `https://` peer is then unreachable).
pub fn peer_client_config(
    info: &TlsInfo,
    layout: &etcdkit_schema::DataDir,
) -> Result<Option<tokio_rustls::TlsConnector>, ServeError> {
    if !info.enabled() && info.trusted_ca_file.is_none() {
        return Ok(None);
    }
    let provider = Arc::new(provider(&info.cipher_suites)?);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Flag(format!("TLS: {e}")))?;
    let base: Arc<dyn rustls::client::danger::ServerCertVerifier> = match (&info.trusted_ca_file, info.auto_tls) {
        (Some(ca), false) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| err("trust", ca, e))?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| err("server verifier for", ca, e))?
        }
        _ => Arc::new(AnyServer(provider)),
    };
    let trusted = match &info.trusted_ca_file {
        Some(ca) => certs(ca)?,
        None => Vec::new(),
    };
    let verifier =
        AllowedServer { inner: base, cn: info.allowed_cn.clone(), hostname: info.allowed_hostname.clone(), trusted };
    let builder = builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier));
    let files = match (&info.cert_file, &info.key_file) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ if info.auto_tls => Some(self_cert(&layout.auto_tls("peer"), &[])?),
        _ => None,
    };
    let cfg = with_client_cert(builder, files.as_ref().map(|(c, k)| (c.as_path(), k.as_path())))?;
    Ok(Some(tokio_rustls::TlsConnector::from(Arc::new(cfg))))
}

/// A client configuration presenting the certificate and key in these
/// PEM files (none: no client certificate).
fn with_client_cert(
    builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    cert_key: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, ServeError> {
    match cert_key {
        Some((c, k)) => {
            let key = PrivateKeyDer::from_pem_file(k).map_err(|e| err("read the key", k, e))?;
            builder.with_client_auth_cert(certs(c)?, key).map_err(|e| err("use the certificate", c, e))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The TLS side of a v3 API client (etcdctl's `--cacert`, `--cert`,
/// `--key`, `--insecure-skip-tls-verify`): servers verified against the CA
/// bundle (the system's when none is given), a client certificate when one
/// is given, ALPN `h2` (Go's servers hand a TLS connection to gRPC only then).
pub fn client_config(
    ca: Option<&Path>,
    cert_key: Option<(&Path, &Path)>,
    skip_verify: bool,
) -> Result<tokio_rustls::TlsConnector, ServeError> {
    let provider = Arc::new(provider(&[])?);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Flag(format!("TLS: {e}")))?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if skip_verify {
        Arc::new(AnyServer(provider))
    } else {
        let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
        let mut roots = RootCertStore::empty();
        match ca {
            Some(ca) => {
                for c in certs(ca)? {
                    // A self-signed leaf is trusted as itself (AllowedServer).
                    let _ = roots.add(c);
                }
            }
            None if system.exists() => {
                let _ = roots.add_parsable_certificates(certs(system)?);
            }
            None => {}
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| ServeError::Flag(format!("TLS: {e}")))?;
        let trusted = match ca {
            Some(ca) => certs(ca)?,
            None => Vec::new(),
        };
        Arc::new(AllowedServer { inner: webpki, cn: None, hostname: None, trusted })
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let mut cfg = with_client_cert(builder, cert_key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// Accepts any server certificate whose handshake signature verifies (for
/// `--peer-auto-tls` and `--insecure-skip-tls-verify`: self-signed
/// certificates).
///
/// Go's `--auto-tls` certificates have P-521 keys, which `ring` cannot
/// verify; their handshake signatures are accepted unverified. That costs
/// nothing here: any certificate is accepted anyway, so a signature only
/// proves possession of a key nobody vouched for.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        if dss.scheme == rustls::SignatureScheme::ECDSA_NISTP521_SHA512 {
            return Ok(rustls::client::danger::HandshakeSignatureValid::assertion());
        }
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        if dss.scheme == rustls::SignatureScheme::ECDSA_NISTP521_SHA512 {
            return Ok(rustls::client::danger::HandshakeSignatureValid::assertion());
        }
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        let mut s = self.0.signature_verification_algorithms.supported_schemes();
        s.push(rustls::SignatureScheme::ECDSA_NISTP521_SHA512);
        s
    }
}

/// A TLS failure in Go's words (`remote error: tls: bad certificate`, …),
/// which operators and etcd's tests look for in the log.
pub fn go_tls_error(e: &(dyn std::error::Error + 'static)) -> String {
    // The rustls error, wherever it sits in the chain (an io::Error from the
    // handshake, or a hyper error when TLS 1.3 reports a refusal on the first read).
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut found = None;
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            found = Some(t);
            break;
        }
        if let Some(t) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            found = Some(t);
            break;
        }
        cur = c.source();
    }
    let Some(tls) = found else { return e.to_string() };
    use rustls::AlertDescription as A;
    match tls {
        rustls::Error::AlertReceived(a) => {
            let what = match a {
                A::BadCertificate => "bad certificate",
                A::UnknownCA => "unknown certificate authority",
                A::CertificateExpired => "expired certificate",
                A::CertificateRevoked => "revoked certificate",
                A::HandshakeFailure => "handshake failure",
                A::AccessDenied => "access denied",
                A::DecryptError => "error decrypting message",
                A::ProtocolVersion => "protocol version not supported",
                _ => return format!("remote error: tls: {a:?}"),
            };
            format!("remote error: tls: {what}")
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName) => {
            "client certificate authentication failed".into()
        }
        rustls::Error::InvalidCertificate(c) => format!("x509: {c:?}"),
        other => other.to_string(),
    }
}

//! Certificates for the TLS tests, made fresh for each test with rcgen.

use std::path::{Path, PathBuf};

/// PEM files for one TLS test: a CA, a server certificate for 127.0.0.1,
/// client certificates of that CA (`client`; `revoked`, revoked by
/// `crl.pem`; `expired`, valid 2020-2021) and of another CA (`stranger`;
/// that CA is `other-ca.pem`).
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn make(dir: &Path) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber, date_time_ymd,
        };
        std::fs::create_dir_all(dir).unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.join(name), pem).unwrap();
        let ca = |cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages =
                vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            (p.self_signed(&key).unwrap(), key)
        };
        let leaf = |cn: &str, serial: u64, client: bool, issuer: &(rcgen::Certificate, KeyPair)| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
            if cn == "expired" {
                p.not_before = date_time_ymd(2020, 1, 1);
                p.not_after = date_time_ymd(2021, 1, 1);
            }
            p.distinguished_name.push(DnType::CommonName, cn);
            p.serial_number = Some(SerialNumber::from(serial));
            p.extended_key_usages =
                vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
            (p.signed_by(&key, &issuer.0, &issuer.1).unwrap(), key)
        };
        let main = ca("etcdkit test CA");
        let other = ca("another CA");
        write("ca.pem", main.0.pem());
        write("other-ca.pem", other.0.pem());
        for (name, serial, client, issuer) in [
            ("server", 10, false, &main),
            ("client", 11, true, &main),
            ("revoked", 12, true, &main),
            ("stranger", 13, true, &other),
            ("expired", 14, true, &main),
        ] {
            let (cert, key) = leaf(name, serial, client, issuer);
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        }
        let crl = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(12u64),
                revocation_time: date_time_ymd(2024, 1, 1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        };
        write("crl.pem", crl.signed_by(&main.0, &main.1).unwrap().pem().unwrap());
        Pki { dir: dir.to_path_buf() }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// etcdctl's flags for client `who` (none: no client certificate).
    pub fn client(&self, who: Option<&str>) -> Vec<String> {
        let mut a = vec!["--cacert".to_string(), self.path("ca.pem")];
        if let Some(w) = who {
            a.extend(["--cert".to_string(), self.path(&format!("{w}.pem"))]);
            a.extend(["--key".to_string(), self.path(&format!("{w}-key.pem"))]);
        }
        a
    }
}

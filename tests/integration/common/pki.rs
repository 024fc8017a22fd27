//! A test PKI made on the spot with rcgen: a root CA, an intermediate, and leaves for any hosts
//! and dates, as PEM strings or as files in a temp dir of their own (the key files 0600, as
//! TLS_KEY_FILE would be). Trust it by handing [`TestCa::cert_pem`] (or
//! [`TestCa::write_root`]) to whoever checks, as ACME_CA_FILE does.

// Shared by several test modules; each uses a part.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

const DAY: i64 = 86_400;

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub struct TestCa {
    root_pem: String,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_pem: String,
    pub dir: tempfile::TempDir,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl TestCa {
    /// A root ("radar-deploy test root") and an intermediate it signed, which issues the leaves.
    pub fn new() -> TestCa {
        TestCa::named("radar-deploy test")
    }

    /// A CA whose certificates are named "`name` root" and "`name` intermediate". Two CAs of
    /// one name are taken for one by clients (which then find the signatures wrong).
    pub fn named(name: &str) -> TestCa {
        let root_params = ca_params(&format!("{name} root"));
        let root_key = KeyPair::generate().expect("root key");
        let root_pem = root_params.self_signed(&root_key).expect("root").pem();
        let root = Issuer::new(root_params, root_key);
        let inter_params = ca_params(&format!("{name} intermediate"));
        let inter_key = KeyPair::generate().expect("intermediate key");
        let intermediate_pem = inter_params
            .signed_by(&inter_key, &root)
            .expect("intermediate")
            .pem();
        TestCa {
            root_pem,
            intermediate: Issuer::new(inter_params, inter_key),
            intermediate_pem,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The root certificate (PEM): what a client must trust.
    pub fn cert_pem(&self) -> &str {
        &self.root_pem
    }

    /// A leaf for `hosts` (DNS names) valid from a day ago until `not_after_days` from now
    /// (negative: already expired), as (chain PEM: leaf then intermediate, key PEM: PKCS#8).
    pub fn issue(&self, hosts: &[&str], not_after_days: i64) -> (String, String) {
        let now = now_unix();
        let not_before = (now + not_after_days * DAY).min(now) - DAY;
        self.issue_between(hosts, not_before, now + not_after_days * DAY)
    }

    /// A leaf valid between two Unix times.
    pub fn issue_between(
        &self,
        hosts: &[&str],
        not_before: i64,
        not_after: i64,
    ) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, hosts.first().copied().unwrap_or("leaf"));
        p.subject_alt_names = hosts
            .iter()
            .map(|h| SanType::DnsName((*h).try_into().expect("a DNS name")))
            .collect();
        // rcgen's date type, reached through x509-parser (as src/tls.rs does).
        let at = |unix: i64| {
            x509_parser::time::ASN1Time::from_timestamp(unix)
                .expect("a representable date")
                .to_datetime()
        };
        p.not_before = at(not_before);
        p.not_after = at(not_after);
        let leaf = p.signed_by(&key, &self.intermediate).expect("leaf").pem();
        (
            format!("{leaf}{}", self.intermediate_pem),
            key.serialize_pem(),
        )
    }

    /// [`TestCa::issue`] written to `<name>.crt` and `<name>.key` (0600) in [`TestCa::dir`].
    pub fn write(&self, name: &str, hosts: &[&str], not_after_days: i64) -> (PathBuf, PathBuf) {
        let (chain, key) = self.issue(hosts, not_after_days);
        let cert_path = self.dir.path().join(format!("{name}.crt"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, chain).expect("write the certificate");
        std::fs::write(&key_path, key).expect("write the key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod the key");
        }
        (cert_path, key_path)
    }

    /// The root certificate written to `ca.pem` in [`TestCa::dir`] (an ACME_CA_FILE).
    pub fn write_root(&self) -> PathBuf {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, &self.root_pem).expect("write the root");
        path
    }
}

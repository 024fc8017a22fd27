//! `TLS_MODE` and its companions: HTTPS at nginx, certificates from files or from an ACME CA.
//!
//! Pure: file paths are resolved (relative to the env file that names them, as Compose
//! resolves paths relative to its file) but not read; `tls` checks the certificates and
//! `target` reads them before anything is created.

use std::path::{Path, PathBuf};

use super::source::Origin;
use super::types::Port;

/// Let's Encrypt's production directory: what `TLS_MODE=acme` uses unless told otherwise.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// HTTPS at the front door; `None` in [`super::Config::tls`] is `TLS_MODE=off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub source: CertSource,
    /// `PUBLIC_HOSTS`: the names clients use; the certificate must cover every one.
    pub hosts: Vec<PublicHost>,
    pub https_port: Port,
    /// `ACME_CA_FILE`: extra trust (PEM) for a private or test CA, used to reach the ACME
    /// directory and by `verify` to judge the served certificate.
    pub ca_file: Option<PathBuf>,
    /// `HSTS`: send Strict-Transport-Security (one year) over HTTPS.
    pub hsts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `TLS_MODE=files`: the operator's certificate chain (leaf first) and private key.
    Files {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    /// `TLS_MODE=acme`: issued and renewed by radar-deploy over HTTP-01 through nginx.
    Acme {
        directory_url: String,
        email: Option<String>,
    },
}

impl TlsConfig {
    pub fn host_names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.0.clone()).collect()
    }

    pub fn mode_name(&self) -> &'static str {
        match self.source {
            CertSource::Files { .. } => "files",
            CertSource::Acme { .. } => "acme",
        }
    }
}

/// The modes `TLS_MODE` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Off,
    Files,
    Acme,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "none" => Ok(TlsMode::Off),
            "files" | "file" => Ok(TlsMode::Files),
            "acme" => Ok(TlsMode::Acme),
            _ => Err(format!("must be off, files or acme (got {s:?})")),
        }
    }
}

/// A DNS name clients reach the deployment by: lowercase, no scheme, port or path, no IP
/// address (ACME's HTTP-01 and the certificate checks are about names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicHost(pub String);

impl std::str::FromStr for PublicHost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let host = s.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err("has an empty name in its list".into());
        }
        if host.contains("://") || host.contains('/') || host.contains(':') {
            return Err(format!(
                "names a URL or a port ({s:?}); give the bare host name, e.g. app.example.com"
            ));
        }
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(format!(
                "{s:?} is an IP address; certificates here are for DNS names"
            ));
        }
        let labels_ok = host.split('.').enumerate().all(|(i, label)| {
            let label = if i == 0 && label == "*" { "a" } else { label };
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if !labels_ok || host.len() > 253 {
            return Err(format!("{s:?} is not a valid DNS name"));
        }
        Ok(PublicHost(host))
    }
}

/// `PUBLIC_HOSTS` as a list, duplicates removed in order.
pub fn parse_hosts(value: &str) -> Result<Vec<PublicHost>, String> {
    let mut hosts: Vec<PublicHost> = Vec::new();
    for part in value.split(',') {
        let h: PublicHost = part.parse()?;
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    Ok(hosts)
}

/// A path from the env file is relative to that file's directory; from the environment or a
/// flag, to the current directory.
pub fn resolve_path(value: &str, origin: Option<&Origin>) -> PathBuf {
    let p = Path::new(value.trim());
    match origin {
        Some(Origin::File { path, .. }) if p.is_relative() => path
            .parent()
            .map(|dir| dir.join(p))
            .unwrap_or_else(|| p.to_path_buf()),
        _ => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_bare_dns_names() {
        let hosts = parse_hosts("App.Example.com, www.example.com,app.example.com.").unwrap();
        assert_eq!(
            hosts,
            vec![
                PublicHost("app.example.com".into()),
                PublicHost("www.example.com".into())
            ]
        );
        assert!(parse_hosts("*.example.com").is_ok());
        for bad in [
            "https://app.example.com",
            "app.example.com:443",
            "10.0.0.1",
            "a..b",
            "-a.b",
            "",
            "a,,b",
            "app_1.example.com",
        ] {
            assert!(parse_hosts(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn file_paths_are_relative_to_the_env_file() {
        let origin = Origin::File {
            path: PathBuf::from("deploy/prod.env"),
            line: 3,
        };
        assert_eq!(
            resolve_path("tls/cert.pem", Some(&origin)),
            Path::new("deploy").join("tls/cert.pem")
        );
        assert_eq!(
            resolve_path("tls/cert.pem", Some(&Origin::Environment)),
            PathBuf::from("tls/cert.pem")
        );
    }

    #[test]
    fn modes() {
        assert_eq!("ACME".parse::<TlsMode>(), Ok(TlsMode::Acme));
        assert_eq!("off".parse::<TlsMode>(), Ok(TlsMode::Off));
        assert!("letsencrypt".parse::<TlsMode>().is_err());
    }
}

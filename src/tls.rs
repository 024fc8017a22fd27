//! Certificates, pure: what a PEM chain says ([`CertInfo`]), whether a certificate file and its
//! key can be served for the public hosts ([`check_bundle`]), the self-signed placeholder that
//! lets nginx start before ACME has issued anything ([`placeholder`]), and when to renew
//! ([`renewal_due`]).
//!
//! No IO: callers read the files and pass their text with the current time, so every rule is
//! unit-tested with certificates made on the spot. Messages name the culprit (which certificate
//! of the chain, which host, which date) and the fix; the caller adds the file's path. Private
//! keys are only ever held as [`Secret`] and never quoted.

use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::config::Secret;

/// What a certificate says about itself, as `status`, `verify` and renewal need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// The DNS names of its subjectAltName: the only names clients match (the subject's CN is
    /// ignored by browsers and rustls alike, so it is not a name here either).
    pub names: Vec<String>,
    /// Unix seconds, UTC.
    pub not_before: i64,
    pub not_after: i64,
    /// Lower-case hex, no separators.
    pub serial: String,
    /// SHA-256 of the certificate's DER, lower-case hex (what `openssl x509 -fingerprint
    /// -sha256` prints, without the colons).
    pub fingerprint: String,
}

impl CertInfo {
    /// Whole days until `not_after`, rounded down; negative once expired.
    pub fn days_left(&self, now_unix: i64) -> i64 {
        (self.not_after - now_unix).div_euclid(DAY)
    }

    /// Whether a client connecting to `host` accepts this certificate's names (RFC 6125 §6.4:
    /// an exact match, or a wildcard `*` as the whole left-most label standing for exactly one
    /// label; case-insensitive; a trailing dot ignored).
    pub fn covers(&self, host: &str) -> bool {
        self.names.iter().any(|n| name_matches(n, host))
    }
}

const DAY: i64 = 86_400;

/// The subject common name of [`placeholder`]'s certificates.
pub const PLACEHOLDER_CN: &str = "radar-deploy placeholder";
const PLACEHOLDER_DAYS: i64 = 90;
/// Renew when fewer days than this are left (Let's Encrypt issues for 90 days and advises
/// renewing with a third left).
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// Why a certificate file or key cannot be served. Each message names the culprit and the fix;
/// the caller prefixes the file's path. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error(
        "holds no PEM `CERTIFICATE` block: expected the leaf certificate, then its \
         intermediates, each as -----BEGIN CERTIFICATE-----"
    )]
    NoCertificate,
    #[error("PEM block {index} cannot be decoded ({reason}): re-export the file as PEM")]
    BadPem { index: usize, reason: String },
    #[error(
        "PEM block {index} is a {label:?}, not a CERTIFICATE: a certificate file holds only \
         certificates (leaf first, then intermediates){hint}"
    )]
    UnexpectedBlock {
        index: usize,
        label: String,
        hint: &'static str,
    },
    #[error(
        "PEM block {index} is a {label:?}, not a private key: TLS_KEY_FILE holds the private key \
         only (is it the certificate file?)"
    )]
    NotAKey { index: usize, label: String },
    #[error("certificate {index} is not a valid X.509 certificate ({reason})")]
    BadCertificate { index: usize, reason: String },
    #[error(
        "holds no private key (a PEM `PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY` \
         block)"
    )]
    NoKey,
    #[error("holds {count} private keys: keep only the one that belongs to the certificate")]
    SeveralKeys { count: usize },
    #[error(
        "holds an encrypted private key, which nginx cannot read without its passphrase: \
         decrypt it once (`openssl pkey -in KEY -out KEY.plain`) and point TLS_KEY_FILE at the \
         result (kept private, mode 0600)"
    )]
    EncryptedKey,
    #[error(
        "holds a {label:?} block that is not a readable private key (PKCS#8, SEC1 EC or PKCS#1 \
         RSA; ECDSA P-256/P-384/P-521, RSA or Ed25519): convert it with \
         `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`"
    )]
    UnreadableKey { label: String },
    #[error(
        "the private key does not belong to the leaf certificate ({subject}, serial {serial}): \
         its public key differs. Use the key the certificate was issued for, or put that \
         key's certificate first in the chain"
    )]
    KeyMismatch { subject: String, serial: String },
    #[error(
        "the chain is out of order at certificate {position} ({subject}): it was issued by \
         {issuer}, but certificate {next} is {next_subject}. Expected order: the leaf first, \
         then each intermediate, each followed by the one that issued it (the root may be \
         left out)"
    )]
    ChainOrder {
        position: usize,
        subject: String,
        issuer: String,
        next: usize,
        next_subject: String,
    },
    #[error(
        "the chain is broken at certificate {position} ({subject}): its signature does not \
         verify with the key of certificate {next} ({next_subject}), though the names match. \
         Use the intermediate certificate that actually issued it (from the same order of your \
         CA)"
    )]
    ChainSignature {
        position: usize,
        subject: String,
        next: usize,
        next_subject: String,
    },
    #[error(
        "{what} ({subject}) expired on {not_after} (now {now}): renew it, or use TLS_MODE=acme"
    )]
    Expired {
        what: String,
        subject: String,
        not_after: String,
        now: String,
    },
    #[error(
        "{what} ({subject}) is not valid before {not_before} (now {now}): check this machine's \
         clock, or wait"
    )]
    NotYetValid {
        what: String,
        subject: String,
        not_before: String,
        now: String,
    },
    #[error(
        "the certificate does not cover {host} (it names {names}): have it issued for every \
         host of PUBLIC_HOSTS, or remove {host} from PUBLIC_HOSTS"
    )]
    HostNotCovered { host: String, names: String },
}

/// The first certificate of a PEM chain (the leaf), described.
pub fn leaf_info(chain_pem: &str) -> Result<CertInfo, TlsError> {
    let ders = certificates(chain_pem)?;
    match ders.first() {
        Some(der) => leaf_info_der(der),
        None => Err(TlsError::NoCertificate),
    }
}

/// One DER certificate (as a TLS handshake presents it), described.
pub fn leaf_info_der(der: &[u8]) -> Result<CertInfo, TlsError> {
    let cert = parse(der, 1)?;
    Ok(info(&cert, der))
}

/// The checks that make a certificate file and key servable for `hosts` at `now_unix`, in the
/// order a person fixes them: readable, the key belongs to the leaf, the chain is in order and
/// signed, everything is within its dates, every host is covered. Returns the leaf.
pub fn check_bundle(
    chain_pem: &str,
    key_pem: &Secret,
    hosts: &[String],
    now_unix: i64,
) -> Result<CertInfo, TlsError> {
    let ders = certificates(chain_pem)?;
    let certs = ders
        .iter()
        .enumerate()
        .map(|(i, der)| parse(der, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = certs.first().ok_or(TlsError::NoCertificate)?;
    let key = private_key(key_pem)?;
    if key.public_key_raw() != leaf.public_key().subject_public_key.data.as_ref() {
        return Err(TlsError::KeyMismatch {
            subject: leaf.subject().to_string(),
            serial: hex::encode(leaf.raw_serial()),
        });
    }
    for (i, pair) in certs.windows(2).enumerate() {
        let (cert, next) = (&pair[0], &pair[1]);
        let (position, next_position) = (i + 1, i + 2);
        if cert.issuer().as_raw() != next.subject().as_raw() {
            return Err(TlsError::ChainOrder {
                position,
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                next: next_position,
                next_subject: next.subject().to_string(),
            });
        }
        match cert.verify_signature(Some(next.public_key())) {
            Ok(()) => {}
            // An algorithm the library cannot check (rare, e.g. RSA-PSS with odd parameters)
            // is left to the clients; the names already matched.
            Err(x509_parser::error::X509Error::SignatureUnsupportedAlgorithm) => {}
            Err(_) => {
                return Err(TlsError::ChainSignature {
                    position,
                    subject: cert.subject().to_string(),
                    next: next_position,
                    next_subject: next.subject().to_string(),
                })
            }
        }
    }
    for (i, cert) in certs.iter().enumerate() {
        let what = if i == 0 {
            "the certificate".to_string()
        } else {
            format!("certificate {} of the chain", i + 1)
        };
        let validity = cert.validity();
        if validity.not_after.timestamp() < now_unix {
            return Err(TlsError::Expired {
                what,
                subject: cert.subject().to_string(),
                not_after: utc(validity.not_after.timestamp()),
                now: utc(now_unix),
            });
        }
        if validity.not_before.timestamp() > now_unix {
            return Err(TlsError::NotYetValid {
                what,
                subject: cert.subject().to_string(),
                not_before: utc(validity.not_before.timestamp()),
                now: utc(now_unix),
            });
        }
    }
    let info = info(leaf, &ders[0]);
    if let Some(host) = hosts.iter().find(|h| !info.covers(h)) {
        return Err(TlsError::HostNotCovered {
            host: host.clone(),
            names: names_list(&info.names),
        });
    }
    Ok(info)
}

/// A self-signed ECDSA P-256 certificate for `hosts`, valid for 90 days from `now_unix`, and its
/// key (PKCS#8 PEM): what nginx serves in ACME mode until the first real certificate is issued,
/// since nginx needs some certificate to start its HTTPS server (and so to answer HTTP-01
/// challenges at all). Hosts that are not valid DNS names are left out of its names.
pub fn placeholder(hosts: &[String], now_unix: i64) -> (String, Secret) {
    use rcgen::{CertificateParams, DnType, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};

    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, PLACEHOLDER_CN);
    params.subject_alt_names = hosts
        .iter()
        .filter_map(|h| rcgen::string::Ia5String::try_from(h.as_str()).ok())
        .map(SanType::DnsName)
        .collect();
    // A little before now: a client whose clock is slightly behind still accepts the dates.
    params.not_before = asn1_time(now_unix - 3600).to_datetime();
    params.not_after = asn1_time(now_unix + PLACEHOLDER_DAYS * DAY).to_datetime();
    // Key generation and self-signing fail only when the crypto library itself does (the
    // parameters above are always encodable): there is nothing a caller could do instead.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .expect("the crypto library generates an ECDSA P-256 key");
    let cert = params
        .self_signed(&key)
        .expect("the crypto library signs a certificate with its own key");
    (cert.pem(), Secret::new(key.serialize_pem()))
}

/// Whether `info` is one of [`placeholder`]'s certificates.
pub fn is_placeholder(info: &CertInfo) -> bool {
    let cn = format!("CN={PLACEHOLDER_CN}");
    info.subject == cn && info.issuer == cn
}

/// Why the certificate in use should be replaced now, or `None` while it is good: `force`d,
/// none yet, the placeholder, a host of `hosts` it does not cover, or fewer than 30 days left.
pub fn renewal_due(
    current: Option<&CertInfo>,
    hosts: &[String],
    now_unix: i64,
    force: bool,
) -> Option<String> {
    if force {
        return Some("renewal forced (--force)".to_string());
    }
    let Some(cert) = current else {
        return Some("no certificate yet".to_string());
    };
    if is_placeholder(cert) {
        return Some("the certificate in use is the self-signed placeholder".to_string());
    }
    if let Some(host) = hosts.iter().find(|h| !cert.covers(h)) {
        return Some(format!(
            "the certificate does not cover {host} (it names {})",
            names_list(&cert.names)
        ));
    }
    let days = cert.days_left(now_unix);
    if cert.not_after < now_unix {
        return Some(format!(
            "the certificate expired on {}",
            utc(cert.not_after)
        ));
    }
    if days < RENEW_BEFORE_DAYS {
        return Some(format!(
            "the certificate expires in {days} day{} (on {}; renewal starts {RENEW_BEFORE_DAYS} \
             days before)",
            if days == 1 { "" } else { "s" },
            utc(cert.not_after)
        ));
    }
    None
}

/// A Unix time as people read it in messages: `2026-12-02 19:43:10 UTC`.
pub fn utc(unix: i64) -> String {
    match ASN1Time::from_timestamp(unix) {
        Ok(t) => {
            let t = t.to_datetime();
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
        Err(_) => format!("{unix} (Unix time)"),
    }
}

fn name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    match pattern.strip_prefix("*.") {
        // `*` stands for exactly one whole, non-empty label; a wildcard never matches the bare
        // parent (`*.example.com` does not cover `example.com`).
        Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        Some(_) => false,
        None => !pattern.contains('*') && pattern == host,
    }
}

fn names_list(names: &[String]) -> String {
    if names.is_empty() {
        "no DNS name".to_string()
    } else {
        names.join(", ")
    }
}

/// `unix` as the date type rcgen takes (the `time` crate's, reached through x509-parser
/// rather than as a dependency of its own); out-of-range values become now.
fn asn1_time(unix: i64) -> ASN1Time {
    ASN1Time::from_timestamp(unix).unwrap_or_else(|_| ASN1Time::now())
}

/// The DER of every CERTIFICATE block, in file order; any other block, or one that does not
/// decode, is refused (nginx would refuse the file later, with a vaguer message).
fn certificates(chain_pem: &str) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut ders = Vec::new();
    for (i, block) in Pem::iter_from_buffer(chain_pem.as_bytes()).enumerate() {
        let index = i + 1;
        let block = block.map_err(|e| TlsError::BadPem {
            index,
            reason: e.to_string(),
        })?;
        if block.label != "CERTIFICATE" {
            let hint = if block.label.contains("PRIVATE KEY") {
                "; the private key belongs in TLS_KEY_FILE only"
            } else {
                ""
            };
            return Err(TlsError::UnexpectedBlock {
                index,
                label: block.label,
                hint,
            });
        }
        ders.push(block.contents);
    }
    if ders.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(ders)
}

fn parse(der: &[u8], index: usize) -> Result<X509Certificate<'_>, TlsError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(TlsError::BadCertificate {
            index,
            reason: "trailing bytes after the certificate".to_string(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            index,
            reason: e.to_string(),
        }),
    }
}

fn info(cert: &X509Certificate<'_>, der: &[u8]) -> CertInfo {
    use sha2::Digest as _;
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some(name.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: hex::encode(cert.raw_serial()),
        fingerprint: hex::encode(sha2::Sha256::digest(der)),
    }
}

/// The one private key of a key file (PKCS#8, SEC1 or PKCS#1; an OpenSSL `EC PARAMETERS`
/// block beside it is allowed, as `openssl ecparam -genkey` writes one).
fn private_key(key_pem: &Secret) -> Result<rcgen::KeyPair, TlsError> {
    let mut keys = Vec::new();
    for (i, block) in Pem::iter_from_buffer(key_pem.expose().as_bytes()).enumerate() {
        // The decoder's messages never quote the input, so they are safe to show.
        let block = block.map_err(|e| TlsError::BadPem {
            index: i + 1,
            reason: e.to_string(),
        })?;
        match block.label.as_str() {
            "ENCRYPTED PRIVATE KEY" => return Err(TlsError::EncryptedKey),
            "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY" => keys.push(block),
            "EC PARAMETERS" => {}
            // Probably a certificate file given as the key: nginx would fail on it later.
            _ => {
                return Err(TlsError::NotAKey {
                    index: i + 1,
                    label: block.label,
                })
            }
        }
    }
    match keys.len() {
        0 => Err(TlsError::NoKey),
        1 => {
            let block = &keys[0];
            rcgen::KeyPair::try_from(block.contents.as_slice()).map_err(|_| {
                TlsError::UnreadableKey {
                    label: block.label.clone(),
                }
            })
        }
        count => Err(TlsError::SeveralKeys { count }),
    }
}

#[cfg(test)]
mod tests;

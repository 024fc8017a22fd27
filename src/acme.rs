//! Certificates from an ACME CA (RFC 8555; Let's Encrypt, or a private CA at
//! ACME_DIRECTORY_URL) by the HTTP-01 challenge, and the store that keeps them on the project's
//! `acme` volume.
//!
//! HTTP-01 is answered statelessly by nginx: its challenge location returns `TOKEN.THUMBPRINT`
//! for any token, THUMBPRINT being the account key's RFC 7638 thumbprint ([`thumbprint`]). So
//! no token file is delivered anywhere (it works the same on a Swarm), but the account key, and
//! with it the thumbprint, must exist before nginx.conf is rendered and before any order:
//! radar-deploy makes the key itself ([`new_account_key`]) and registers the account with it.
//!
//! The protocol is instant-acme's; its HTTP goes through [`crate::http::AcmeHttp`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, Problem,
    RetryPolicy,
};
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::docker::{DockerClient, VolumeFile};
use crate::http::AcmeHttp;
use crate::ui::Ui;

/// How long one issuance may take from the order to the chain in hand (the CA's validation of
/// every host included). Let's Encrypt takes seconds; a minute and a half leaves room for a
/// slow CA without hanging `up` for good.
pub const ISSUE_DEADLINE: Duration = Duration::from_secs(90);

/// What [`issue`] needs to know.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub directory_url: String,
    /// The account's contact (`mailto:`), for the CA's expiry notices.
    pub email: Option<String>,
    /// The names the certificate covers (PUBLIC_HOSTS); each is validated by HTTP-01.
    pub hosts: Vec<String>,
    /// More CA certificates to trust for the directory's TLS (ACME_CA_FILE's content).
    pub extra_roots_pem: Option<String>,
}

/// A certificate issued by the CA: the chain (leaf first) and its new private key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: Secret,
}

/// A fresh ACME account key: ECDSA P-256, PKCS#8 PEM (what instant-acme signs with).
pub fn new_account_key() -> Result<Secret> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot generate an ECDSA P-256 key")?;
    Ok(Secret::new(key.serialize_pem()))
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url) of the account key's public half: what
/// nginx appends to every HTTP-01 token (`TOKEN.THUMBPRINT`, RFC 8555 §8.1).
pub fn thumbprint(account_key: &Secret) -> Result<String> {
    let key = account_key_pair(account_key)?;
    // An uncompressed P-256 point: 0x04, then x and y of 32 bytes each.
    let raw = key.public_key_raw();
    let (x, y) = match raw {
        [0x04, xy @ ..] if xy.len() == 64 => xy.split_at(32),
        _ => bail!("the ACME account key's public key is not an uncompressed P-256 point"),
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    // The required members only, in lexicographic order, no whitespace (RFC 7638 §3.2).
    let jwk = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        b64(x),
        b64(y)
    );
    Ok(b64(&Sha256::digest(jwk.as_bytes())))
}

/// The account key parsed, refused unless it is the ECDSA P-256 key instant-acme signs with.
fn account_key_pair(account_key: &Secret) -> Result<rcgen::KeyPair> {
    let key = rcgen::KeyPair::from_pem(account_key.expose())
        .map_err(|e| anyhow!("the ACME account key is not a PKCS#8 PEM private key ({e})"))?;
    if !key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
        bail!("the ACME account key is not an ECDSA P-256 key (the only kind used for ACME here)");
    }
    Ok(key)
}

/// Obtains a certificate for `settings.hosts`: finds or creates the account of `account_key`
/// (terms of service agreed), orders, lets the CA validate each host by HTTP-01 (answered by
/// nginx, see the module's doc), finalizes with a CSR for a fresh P-256 key and downloads the
/// chain. Bounded by [`ISSUE_DEADLINE`]. Prints progress, never a key.
pub async fn issue(settings: &AcmeSettings, account_key: &Secret, ui: &Ui) -> Result<Issued> {
    // The polls below stop at the deadline with their own reason; this bounds the rest (a CA
    // that accepts connections and then answers nothing).
    let deadline = Instant::now() + ISSUE_DEADLINE;
    match tokio::time::timeout_at(
        deadline.into(),
        issue_until(settings, account_key, ui, deadline),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => bail!(
            "the ACME CA at {} did not finish issuing the certificate for {} within {}s\n  \
             check: that the CA is reachable from here and working",
            settings.directory_url,
            settings.hosts.join(", "),
            ISSUE_DEADLINE.as_secs()
        ),
    }
}

async fn issue_until(
    settings: &AcmeSettings,
    account_key: &Secret,
    ui: &Ui,
    deadline: Instant,
) -> Result<Issued> {
    let started = Instant::now();
    let dir = &settings.directory_url;
    if settings.hosts.is_empty() {
        bail!("no host to put in the certificate: set PUBLIC_HOSTS");
    }
    let hosts = settings.hosts.join(", ");
    let thumb = thumbprint(account_key)?;
    let key_der = account_key_pair(account_key)?.serialized_der().to_vec();

    let http = AcmeHttp::new(settings.extra_roots_pem.as_deref())
        .map_err(|e| anyhow!("ACME_CA_FILE: {}", e.reason))?;
    let signing_key = instant_acme::Key::from_pkcs8_der(key_der.as_slice().into())
        .map_err(|e| anyhow!("the ACME account key cannot sign: {e}"))?;
    let key_der = key_der
        .try_into()
        .map_err(|e| anyhow!("the ACME account key is not PKCS#8: {e}"))?;
    let (account, _) = Account::builder_with_http(Box::new(http))
        .create_from_key((signing_key, key_der), dir.clone())
        .await
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| {
            format!(
                "cannot register the ACME account at {dir}\n  \
                 check: the URL (ACME_DIRECTORY_URL) and, for a private CA, ACME_CA_FILE"
            )
        })?;
    // The thumbprint nginx serves must be the one the CA computes from this account's key.
    if account.key_thumbprint() != thumb {
        bail!("internal error: the account key's thumbprint differs from instant-acme's");
    }
    if let Some(email) = &settings.email {
        let contact = format!("mailto:{email}");
        account
            .update_contacts(&[contact.as_str()])
            .await
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| {
                format!("the CA at {dir} refused the contact {contact} (ACME_EMAIL)")
            })?;
    }
    ui.detail(&format!("ACME account {} at {dir}", account.id()));

    let identifiers: Vec<Identifier> = settings
        .hosts
        .iter()
        .map(|h| Identifier::Dns(h.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("the CA at {dir} refused an order for {hosts}"))?;

    // nginx answers every token already: each challenge can be declared ready at once.
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz
            .map_err(|e| anyhow!("{e}"))
            .context("cannot fetch an authorization of the order")?;
        let host = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Pending => {}
            // Validated recently for this account: nothing to prove again.
            AuthorizationStatus::Valid => continue,
            other => bail!("the CA's authorization for {host} is {other:?}; order again later"),
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| anyhow!("the CA offers no http-01 challenge for {host}"))?;
        challenge
            .set_ready()
            .await
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("the CA refused to start validating {host}"))?;
    }
    ui.info(&format!("  ACME: validating {hosts} by HTTP-01"));

    // Validation is the CA's work: poll the order until it is ready or refused, as often as
    // the CA's Retry-After asks (instant-acme's poll honours it), else backing off from 250 ms.
    match order.poll_ready(&polling(deadline)).await {
        Ok(OrderStatus::Ready) => {}
        Ok(OrderStatus::Invalid) => {
            let order_problem = order.state().error.clone();
            return Err(refusal(&mut order, order_problem, &thumb).await);
        }
        Ok(other) => bail!("the order for {hosts} is {other:?} before it was finalized"),
        Err(instant_acme::Error::Api(problem)) => {
            return Err(refusal(&mut order, Some(problem), &thumb).await)
        }
        Err(instant_acme::Error::Timeout(_)) => bail!(
            "the CA at {dir} did not validate {hosts} within {}s\n  \
             check: that port 80 of each host is reachable from the CA",
            ISSUE_DEADLINE.as_secs()
        ),
        Err(e) => return Err(anyhow!("{e}")).context("cannot fetch the order's state from the CA"),
    }

    let cert_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot generate the certificate's key")?;
    let mut params = rcgen::CertificateParams::new(settings.hosts.clone())
        .with_context(|| format!("a host in PUBLIC_HOSTS is not a valid DNS name: {hosts}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&cert_key)
        .context("cannot make the certificate signing request")?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("the CA at {dir} refused to finalize the order for {hosts}"))?;
    let chain_pem = match order.poll_certificate(&polling(deadline)).await {
        Ok(chain) => chain,
        Err(instant_acme::Error::Timeout(_)) => bail!(
            "the CA at {dir} did not issue the certificate for {hosts} within {}s",
            ISSUE_DEADLINE.as_secs()
        ),
        Err(e) => {
            return Err(anyhow!("{e}")).with_context(|| {
                format!("the CA at {dir} did not issue the certificate for {hosts}")
            })
        }
    };
    ui.info(&format!(
        "  ACME: certificate for {hosts} issued in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(Issued {
        chain_pem,
        key_pem: Secret::new(cert_key.serialize_pem()),
    })
}

/// Why the CA refused the order, host by host: each invalid authorization's challenge problem
/// (type and detail), and what to check on this side.
/// How the order is polled: from 250 ms, half as long again each time (validation takes a
/// CA about a second), or when the CA's Retry-After says; never past `deadline`.
fn polling(deadline: Instant) -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(deadline.saturating_duration_since(Instant::now()))
}

async fn refusal(
    order: &mut instant_acme::Order,
    order_problem: Option<Problem>,
    thumb: &str,
) -> anyhow::Error {
    let mut failures: Vec<(String, Option<Problem>)> = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        // The cached state is from before validation.
        if authz.refresh().await.is_err() || authz.status != AuthorizationStatus::Invalid {
            continue;
        }
        let host = authz.identifier().to_string();
        let problem = authz
            .challenges
            .iter()
            .find(|c| c.r#type == ChallengeType::Http01 && c.error.is_some())
            .or_else(|| authz.challenges.iter().find(|c| c.error.is_some()))
            .and_then(|c| c.error.clone());
        failures.push((host, problem));
    }
    if failures.is_empty() {
        failures.push(("the order".to_string(), order_problem));
    }
    let mut text = String::from("the ACME CA refused the certificate: HTTP-01 validation failed");
    for (host, problem) in &failures {
        text.push_str(&format!(
            "\n  {host}: {}",
            describe_problem(problem.as_ref())
        ));
    }
    let first = failures
        .first()
        .map_or("the host", |(h, _)| h.as_str())
        .to_string();
    text.push_str(&format!(
        "\n  check: that DNS of {first} points at this deployment, that its port 80 is reachable \
         from the CA (firewall, HTTP_PORT published as 80), and that nginx answers \
         http://{first}/.well-known/acme-challenge/TOKEN with TOKEN.{thumb}"
    ));
    anyhow!(text)
}

/// A CA problem document as one line: its detail and its type.
fn describe_problem(problem: Option<&Problem>) -> String {
    let Some(p) = problem else {
        return "refused, with no reason given by the CA".to_string();
    };
    let detail = p.detail.as_deref().unwrap_or("no detail given");
    let mut s = match &p.r#type {
        Some(t) => format!("{detail} ({t})"),
        None => detail.to_string(),
    };
    for sub in &p.subproblems {
        s.push_str(&format!("; {sub}"));
    }
    s
}

/// The Compose key of the project's volume holding the ACME account and certificate.
pub const VOLUME: &str = "acme";
const ACCOUNT_KEY_FILE: &str = "account.key";
const CHAIN_FILE: &str = "fullchain.pem";
const KEY_FILE: &str = "privkey.pem";
const META_FILE: &str = "meta.json";
/// The directory the stored certificate came from (absent for the placeholder).
const CERT_META_FILE: &str = "certificate.json";

/// The `acme` volume's name on the daemon, as `desired::Deployment::volume_name` names them.
pub fn volume_name(project: &str) -> String {
    format!("{project}_{VOLUME}")
}

/// What the `acme` volume holds: the account key (with the directory and email it was
/// registered with) and the current certificate and its key. Each part may be missing.
#[derive(Debug, Default, Clone)]
pub struct Store {
    pub account_key: Option<Secret>,
    pub chain_pem: Option<String>,
    pub key_pem: Option<Secret>,
    pub directory_url: Option<String>,
    pub email: Option<String>,
    /// The directory that issued the stored certificate; `None` for the placeholder.
    pub certificate_directory_url: Option<String>,
}

impl Store {
    /// The directory the stored certificate came from, when that is not `directory_url`: a
    /// changed ACME_DIRECTORY_URL (staging to production) wants a certificate of the new CA
    /// now, not when the old one nears expiry.
    pub fn certificate_from_another_directory(&self, directory_url: &str) -> Option<&str> {
        self.certificate_directory_url
            .as_deref()
            .filter(|from| *from != directory_url)
    }

    /// The stored account key when it belongs to `directory_url`; another directory (a changed
    /// ACME_DIRECTORY_URL) needs an account of its own.
    pub fn account_key_for(&self, directory_url: &str) -> Option<&Secret> {
        self.account_key
            .as_ref()
            .filter(|_| self.directory_url.as_deref() == Some(directory_url))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    directory_url: String,
    email: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CertMeta {
    directory_url: String,
}

/// Reads the project's `acme` volume through a helper container of `image` (any image on the
/// daemon; nginx's is always there). A missing volume is an empty store.
pub async fn load_store(client: &DockerClient, project: &str, image: &str) -> Result<Store> {
    let name = volume_name(project);
    let mut files = client
        .read_volume(project, &name, image)
        .await
        .with_context(|| format!("cannot read the ACME store (volume {name})"))?;
    let mut text = |file: &str| -> Result<Option<String>> {
        files
            .remove(file)
            .map(|b| {
                String::from_utf8(b)
                    .map_err(|_| anyhow!("{file} on the volume {name} is not text (remove it)"))
            })
            .transpose()
    };
    let account_key = text(ACCOUNT_KEY_FILE)?.map(Secret::new);
    let chain_pem = text(CHAIN_FILE)?;
    let key_pem = text(KEY_FILE)?.map(Secret::new);
    let meta: Option<Meta> = text(META_FILE)?
        .map(|m| serde_json::from_str(&m))
        .transpose()
        .with_context(|| format!("{META_FILE} on the volume {name} is not valid (remove it)"))?;
    let cert_meta: Option<CertMeta> = text(CERT_META_FILE)?
        .map(|m| serde_json::from_str(&m))
        .transpose()
        .with_context(|| {
            format!("{CERT_META_FILE} on the volume {name} is not valid (remove it)")
        })?;
    Ok(Store {
        account_key,
        chain_pem,
        key_pem,
        directory_url: meta.as_ref().map(|m| m.directory_url.clone()),
        email: meta.and_then(|m| m.email),
        certificate_directory_url: cert_meta.map(|m| m.directory_url),
    })
}

/// Saves the account key (0600) with the directory and email it is registered with.
pub async fn save_account(
    client: &DockerClient,
    project: &str,
    image: &str,
    account_key: &Secret,
    directory_url: &str,
    email: Option<&str>,
) -> Result<()> {
    let meta = serde_json::to_vec_pretty(&Meta {
        directory_url: directory_url.to_string(),
        email: email.map(str::to_string),
    })?;
    write(
        client,
        project,
        image,
        BTreeMap::from([
            (
                ACCOUNT_KEY_FILE,
                (account_key.expose().as_bytes().to_vec(), 0o600),
            ),
            (META_FILE, (meta, 0o644)),
        ]),
    )
    .await
}

/// Saves the certificate chain and its key (0600), in one archive so they land together.
pub async fn save_certificate(
    client: &DockerClient,
    project: &str,
    image: &str,
    issued: &Issued,
) -> Result<()> {
    write(client, project, image, certificate_files(issued)).await
}

/// [`save_certificate`] for a certificate of the CA at `directory_url`, recorded beside it in
/// the same archive (see [`Store::certificate_from_another_directory`]).
pub async fn save_issued_certificate(
    client: &DockerClient,
    project: &str,
    image: &str,
    issued: &Issued,
    directory_url: &str,
) -> Result<()> {
    let mut files = certificate_files(issued);
    let meta = serde_json::to_vec_pretty(&CertMeta {
        directory_url: directory_url.to_string(),
    })?;
    files.insert(CERT_META_FILE, (meta, 0o644));
    write(client, project, image, files).await
}

fn certificate_files(issued: &Issued) -> BTreeMap<&'static str, (Vec<u8>, u32)> {
    BTreeMap::from([
        (CHAIN_FILE, (issued.chain_pem.as_bytes().to_vec(), 0o644)),
        (
            KEY_FILE,
            (issued.key_pem.expose().as_bytes().to_vec(), 0o600),
        ),
    ])
}

async fn write(
    client: &DockerClient,
    project: &str,
    image: &str,
    files: BTreeMap<&str, (Vec<u8>, u32)>,
) -> Result<()> {
    let name = volume_name(project);
    let files: Vec<VolumeFile> = files
        .into_iter()
        .map(|(file, (content, mode))| VolumeFile {
            name: file.to_string(),
            content,
            mode,
        })
        .collect();
    client
        .write_volume(project, VOLUME, &name, image, &files)
        .await
        .with_context(|| format!("cannot write the ACME store (volume {name})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_account_key_is_pkcs8_p256_and_never_shown() {
        let key = new_account_key().unwrap();
        assert!(key.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(account_key_pair(&key).is_ok());
        assert!(!format!("{key:?}").contains("PRIVATE"));
        // Two keys, two thumbprints.
        let other = new_account_key().unwrap();
        assert_ne!(thumbprint(&key).unwrap(), thumbprint(&other).unwrap());
    }

    #[test]
    fn the_thumbprint_is_rfc7638_over_the_public_jwk() {
        // A fixed P-256 key and its thumbprint computed independently (openssl's x and y,
        // hashed over {"crv","kty","x","y"} as RFC 7638 orders them).
        let key = Secret::new(FIXED_KEY);
        let t = thumbprint(&key).unwrap();
        assert_eq!(t, FIXED_THUMBPRINT);
        assert_eq!(t.len(), 43, "SHA-256 in base64url without padding");
        assert!(!t.contains(['=', '+', '/']));
    }

    #[test]
    fn a_key_that_is_not_p256_is_refused_with_the_reason() {
        let err = thumbprint(&Secret::new("not a key")).unwrap_err();
        assert!(err.to_string().contains("not a PKCS#8 PEM"), "{err}");
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let err = thumbprint(&Secret::new(p384.serialize_pem())).unwrap_err();
        assert!(err.to_string().contains("not an ECDSA P-256"), "{err}");
    }

    /// instant-acme computes the thumbprint its key authorizations use (`TOKEN.THUMBPRINT`)
    /// itself; nginx serves ours. An account restored offline (a stub transport answers the
    /// directory) shows instant-acme's.
    #[tokio::test]
    async fn our_thumbprint_is_the_one_instant_acme_puts_in_key_authorizations() {
        struct Directory;
        impl instant_acme::HttpClient for Directory {
            fn request(
                &self,
                _: hyper::http::Request<instant_acme::BodyWrapper<bytes::Bytes>>,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<
                            Output = Result<instant_acme::BytesResponse, instant_acme::Error>,
                        > + Send,
                >,
            > {
                let body = br#"{"newNonce":"https://ca/nonce","newAccount":"https://ca/acct","newOrder":"https://ca/order"}"#;
                let rsp =
                    hyper::http::Response::new(instant_acme::BodyWrapper::from(body.to_vec()));
                Box::pin(async move { Ok(instant_acme::BytesResponse::from(rsp)) })
            }
        }
        for key in [Secret::new(FIXED_KEY), new_account_key().unwrap()] {
            let der = account_key_pair(&key).unwrap().serialized_der().to_vec();
            let account = Account::builder_with_http(Box::new(Directory))
                .from_parts(
                    "https://ca/acct/1".into(),
                    der.as_slice().into(),
                    "https://ca/dir".into(),
                )
                .await
                .unwrap();
            assert_eq!(account.key_thumbprint(), thumbprint(&key).unwrap());
        }
    }

    #[test]
    fn a_refusal_names_the_problem_type_and_detail() {
        let p: Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:connection","detail":"127.0.0.1: Connection refused","status":400}"#,
        )
        .unwrap();
        assert_eq!(
            describe_problem(Some(&p)),
            "127.0.0.1: Connection refused (urn:ietf:params:acme:error:connection)"
        );
        assert!(describe_problem(None).contains("no reason"));
    }

    #[test]
    fn a_stored_account_key_serves_only_its_own_directory() {
        let store = Store {
            account_key: Some(Secret::new("k")),
            directory_url: Some("https://a/dir".into()),
            ..Store::default()
        };
        assert!(store.account_key_for("https://a/dir").is_some());
        assert!(store.account_key_for("https://b/dir").is_none());
        assert!(Store::default().account_key_for("https://a/dir").is_none());
        assert_eq!(volume_name("shop"), "shop_acme");
    }

    #[test]
    fn a_certificate_of_another_directory_is_named_and_an_unrecorded_one_is_not() {
        let store = Store {
            certificate_directory_url: Some("https://staging/dir".into()),
            ..Store::default()
        };
        assert_eq!(
            store.certificate_from_another_directory("https://production/dir"),
            Some("https://staging/dir")
        );
        assert_eq!(
            store.certificate_from_another_directory("https://staging/dir"),
            None
        );
        // The placeholder (or a store from before the record): nothing to compare.
        assert_eq!(
            Store::default().certificate_from_another_directory("https://production/dir"),
            None
        );
    }

    /// A throwaway key made for this test (openssl genpkey, P-256); it guards nothing.
    const FIXED_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0iCdz9Sl2QM8aEY+\nqdoT3HaNcbL1PqUfIZt1Q8mVcLehRANCAATSMr1/r9ZOUFp/S5sAbectTC1UrKFf\nR98Wlgh7PWnRRE9pUm74wG7QL8k6wfk7M+KWcCy+GjUiu8OXFzVnyCwT\n-----END PRIVATE KEY-----\n";
    /// Its thumbprint, computed with openssl and Python's hashlib, not with this code.
    const FIXED_THUMBPRINT: &str = "rJbLPwUAthmRAJJWW60n09lq1CEbYPwOk2jB-AtVbJs";
}

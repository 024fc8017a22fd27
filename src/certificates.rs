//! The certificate nginx serves: the operator's files, read and checked before anything is
//! created (`TLS_MODE=files`), or the ACME store on the daemon, renewed when due
//! (`TLS_MODE=acme`, by `up` and `renew`).
//!
//! Files are read here, on the machine radar-deploy runs on, and uploaded into nginx by the
//! engine: the daemon may be remote, and a bind mount would name a path on its host.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use crate::acme::{self, AcmeSettings};
use crate::config::{CertSource, Config, Secret, TlsConfig};
use crate::desired::TlsMaterial;
use crate::docker::DockerClient;
use crate::http::HttpsRoute;
use crate::status::CertificateStatus;
use crate::tls::{self, CertInfo};
use crate::ui::Ui;

/// Seconds since the epoch, the clock every certificate check uses.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The certificate nginx's running config names (`ssl_certificate`), read from its container
/// (on a swarm, an nginx task's: the certificate is a secret there); `None` without HTTPS, or
/// when it cannot be read (status reports what it can).
pub async fn served(client: &DockerClient, nginx: &str) -> Option<CertificateStatus> {
    let conf = read_inside(client, nginx, "/etc/nginx/nginx.conf").await?;
    let path = crate::probes::ssl_certificate_path(&String::from_utf8_lossy(&conf))?;
    let chain = read_inside(client, nginx, &path).await?;
    let info = tls::leaf_info(&String::from_utf8_lossy(&chain)).ok()?;
    let now = now_unix();
    Some(CertificateStatus {
        days_left: info.days_left(now),
        expires: tls::utc(info.not_after),
        issuer: info.issuer,
        names: info.names,
    })
}

/// A file as the container sees it, by `cat` in it: on a swarm, nginx.conf is a config and the
/// certificate a secret, mounted where the archive API (`docker cp`) does not look.
async fn read_inside(client: &DockerClient, container: &str, path: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let cat = ["cat".to_string(), path.to_string()];
    let (_, end) = client
        .exec_output(container, &cat, &[], &mut bytes)
        .await
        .ok()?;
    (end.code == 0).then_some(bytes)
}

/// The certificate for the desired state, `None` when TLS is off. With `prepare` (not for
/// `--dry-run`), ACME's account key and a placeholder certificate are created in the store
/// when it has none, so nginx can start and answer the first challenge.
pub async fn material(
    docker: &DockerClient,
    cfg: &Config,
    prepare: bool,
    ui: &Ui,
) -> Result<Option<TlsMaterial>> {
    let Some(tls) = &cfg.tls else {
        return Ok(None);
    };
    match &tls.source {
        CertSource::Files {
            cert_file,
            key_file,
        } => {
            let (material, info) = from_files(cert_file, key_file, tls, now_unix())?;
            ui.info(&format!(
                "TLS certificate {}: {}",
                cert_file.display(),
                describe(&info, now_unix())
            ));
            Ok(Some(material))
        }
        CertSource::Acme { .. } => acme_material(docker, cfg, tls, prepare, ui).await.map(Some),
    }
}

/// `TLS_MODE=files`: both files read and the certificate judged against PUBLIC_HOSTS and
/// today's date; an error names the file and what is wrong with it.
pub fn from_files(
    cert_file: &Path,
    key_file: &Path,
    tls: &TlsConfig,
    now: i64,
) -> Result<(TlsMaterial, CertInfo)> {
    let read = |path: &Path, var: &str| {
        std::fs::read_to_string(path).with_context(|| {
            format!(
                "{var}={}: cannot read the file\n  fix: give the path of a PEM file this user can read (a relative path is relative to the env file)",
                path.display()
            )
        })
    };
    let chain_pem = read(cert_file, "TLS_CERT_FILE")?;
    let key_pem = Secret::new(read(key_file, "TLS_KEY_FILE")?);
    let info = tls::check_bundle(&chain_pem, &key_pem, &tls.host_names(), now).map_err(|e| {
        anyhow!(
            "TLS_CERT_FILE={} with TLS_KEY_FILE={}: {e}\n  nothing was created or changed",
            cert_file.display(),
            key_file.display()
        )
    })?;
    Ok((
        TlsMaterial {
            chain_pem,
            key_pem,
            acme_thumbprint: None,
        },
        info,
    ))
}

/// How radar-deploy's own requests (verify, the drills' load) reach the balancer when it
/// serves HTTPS: the first public host, connected at `localhost` as the plain-HTTP default
/// is, with ACME_CA_FILE trusted. `None` when TLS is off.
pub fn balancer_route(cfg: &Config) -> Result<Option<HttpsRoute>> {
    let Some(tls) = &cfg.tls else {
        return Ok(None);
    };
    let Some(host) = tls.hosts.first() else {
        bail!("PUBLIC_HOSTS is empty");
    };
    Ok(Some(HttpsRoute {
        host: host.0.clone(),
        addr: Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        extra_roots_pem: read_ca_file(tls)?,
        https_port: tls.https_port.get(),
    }))
}

fn read_ca_file(tls: &TlsConfig) -> Result<Option<String>> {
    tls.ca_file
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).with_context(|| {
                format!(
                    "ACME_CA_FILE={}: cannot read the file\n  fix: give the path of a PEM file of CA certificates",
                    path.display()
                )
            })
        })
        .transpose()
}

/// `CN, issuer, expires in N days (DATE)`.
pub fn describe(info: &CertInfo, now: i64) -> String {
    format!(
        "{} issued by {}, expires in {} days",
        info.names.join(", "),
        info.issuer,
        info.days_left(now)
    )
}

fn settings(tls: &TlsConfig) -> Result<AcmeSettings> {
    let CertSource::Acme {
        directory_url,
        email,
    } = &tls.source
    else {
        bail!("TLS_MODE is not acme");
    };
    let extra_roots_pem = read_ca_file(tls)?;
    Ok(AcmeSettings {
        directory_url: directory_url.clone(),
        email: email.clone(),
        hosts: tls.host_names(),
        extra_roots_pem,
    })
}

async fn acme_material(
    docker: &DockerClient,
    cfg: &Config,
    tls: &TlsConfig,
    prepare: bool,
    ui: &Ui,
) -> Result<TlsMaterial> {
    let settings = settings(tls)?;
    let project = cfg.project.as_str();
    let image = cfg.nginx_image.as_str();
    let store = acme::load_store(docker, project, image).await?;
    let mut account_key = store.account_key_for(&settings.directory_url).cloned();
    if account_key.is_none() && prepare {
        // Made here, before any order: nginx answers the challenges with its thumbprint.
        let key = acme::new_account_key()?;
        acme::save_account(
            docker,
            project,
            image,
            &key,
            &settings.directory_url,
            settings.email.as_deref(),
        )
        .await?;
        ui.info(&format!(
            "ACME: new account key for {} (kept on the volume {})",
            settings.directory_url,
            acme::volume_name(project)
        ));
        account_key = Some(key);
    }
    let acme_thumbprint = account_key.as_ref().map(acme::thumbprint).transpose()?;
    let (chain_pem, key_pem) = match (store.chain_pem, store.key_pem) {
        (Some(chain), Some(key)) => (chain, key),
        _ => {
            // nginx cannot listen for HTTPS without a certificate, and the CA asks for the
            // challenge over HTTP from that same nginx: a self-signed stand-in until then.
            let (chain_pem, key_pem) = tls::placeholder(&settings.hosts, now_unix());
            let issued = acme::Issued { chain_pem, key_pem };
            if prepare {
                acme::save_certificate(docker, project, image, &issued).await?;
            }
            (issued.chain_pem, issued.key_pem)
        }
    };
    Ok(TlsMaterial {
        chain_pem,
        key_pem,
        acme_thumbprint,
    })
}

/// What [`renew`] did.
#[derive(Debug)]
pub enum Renewal {
    /// A new certificate is in the store; nginx still has to be given it.
    Renewed {
        info: CertInfo,
        reason: String,
    },
    NotDue {
        info: CertInfo,
    },
}

/// `TLS_MODE=acme`: a certificate from the CA when one is due (none yet, the placeholder,
/// fewer than 30 days left, PUBLIC_HOSTS changed, ACME_DIRECTORY_URL changed) or `force`,
/// saved in the store. On failure the store keeps the certificate nginx serves.
pub async fn renew(docker: &DockerClient, cfg: &Config, force: bool, ui: &Ui) -> Result<Renewal> {
    let Some(tls) = &cfg.tls else {
        bail!("TLS_MODE=off: there is no certificate to renew\n  fix: set TLS_MODE=acme and PUBLIC_HOSTS in the env file");
    };
    if let CertSource::Files { cert_file, .. } = &tls.source {
        bail!(
            "TLS_MODE=files: the certificate is your file {}, which radar-deploy does not renew\n  fix: replace the file and run `radar-deploy up` (nginx is reloaded, not recreated), or use TLS_MODE=acme",
            cert_file.display()
        );
    }
    let settings = settings(tls)?;
    let project = cfg.project.as_str();
    let image = cfg.nginx_image.as_str();
    let store = acme::load_store(docker, project, image).await?;
    let Some(account_key) = store.account_key_for(&settings.directory_url).cloned() else {
        bail!("project {project} has no ACME account yet\n  fix: run `radar-deploy up` first: it creates the account and deploys nginx, which answers the CA's challenge");
    };
    let now = now_unix();
    let current = match &store.chain_pem {
        Some(chain) => Some(tls::leaf_info(chain).map_err(|e| {
            anyhow!("the stored certificate of project {project} cannot be read: {e}")
        })?),
        None => None,
    };
    let other_ca = current
        .as_ref()
        .filter(|info| !force && !tls::is_placeholder(info))
        .and(store.certificate_from_another_directory(&settings.directory_url))
        .map(|from| {
            format!(
                "the certificate is from {from}, and ACME_DIRECTORY_URL is now {}",
                settings.directory_url
            )
        });
    let due = other_ca.or_else(|| tls::renewal_due(current.as_ref(), &settings.hosts, now, force));
    let Some(reason) = due else {
        return match current {
            Some(info) => Ok(Renewal::NotDue { info }),
            None => bail!("no certificate is stored, yet none is due: a bug in tls::renewal_due"),
        };
    };
    ui.info(&format!(
        "ACME: requesting a certificate for {} from {} ({reason})",
        settings.hosts.join(", "),
        settings.directory_url
    ));
    let issued = acme::issue(&settings, &account_key, ui)
        .await
        .map_err(|e| {
            let keeps = match &current {
                Some(info) if !tls::is_placeholder(info) => {
                    format!(
                        "nginx keeps serving the current certificate ({})",
                        describe(info, now)
                    )
                }
                _ => "nginx keeps serving its self-signed placeholder".into(),
            };
            anyhow!("{e:#}\n  {keeps}")
        })?;
    // Judged at the time it arrived, not when the order began: the CA dates a certificate
    // from its issuance (to the second), which is after `now` — checked against `now`, a
    // fresh certificate was "not valid before" a second later and refused.
    let arrived = now_unix();
    let info = tls::check_bundle(&issued.chain_pem, &issued.key_pem, &settings.hosts, arrived)
        .map_err(|e| anyhow!("the CA's certificate is not usable: {e}"))?;
    acme::save_issued_certificate(docker, project, image, &issued, &settings.directory_url).await?;
    Ok(Renewal::Renewed { info, reason })
}

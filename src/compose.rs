//! The Compose file, serialized from the desired state.
//!
//! YAML is written with serde_norway, a maintained fork of the deprecated serde_yaml with the
//! same API. Secret values never appear: each secret is a Compose secret whose value Compose
//! reads from the variable of the same name in the env file (`--env-file`).

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Serialize;

use crate::desired::{Container, Deployment, Role, SECRETS_DIR, TLS_CHAIN_SECRET, TLS_KEY_SECRET};
use crate::labels::{LABEL_INSTANCE, LABEL_ROLE};

pub const FILE_NAME: &str = "docker-compose.multi-instance.yml";

#[derive(Serialize)]
struct ComposeFile {
    name: String,
    services: IndexMap<String, Service>,
    volumes: IndexMap<String, Empty>,
    secrets: IndexMap<String, SecretSource>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    configs: IndexMap<String, ConfigSource>,
}

#[derive(Serialize)]
struct Empty {}

/// Where Compose reads a secret from: a variable of the env file, or a file (the TLS
/// certificate and key, named by TLS_CERT_FILE and TLS_KEY_FILE).
#[derive(Serialize)]
struct SecretSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

#[derive(Serialize)]
struct ConfigSource {
    file: String,
}

#[derive(Serialize)]
struct Service {
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    environment: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    configs: Vec<ConfigMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    depends_on: IndexMap<String, DependsOn>,
    restart: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    security_opt: Vec<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    sysctls: BTreeMap<String, String>,
    stop_grace_period: String,
    deploy: Deploy,
    labels: IndexMap<&'static str, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    profiles: Vec<&'static str>,
}

#[derive(Serialize)]
struct ConfigMount {
    source: String,
    target: String,
}

#[derive(Serialize)]
struct Healthcheck {
    test: Vec<String>,
    interval: String,
    timeout: String,
    retries: u32,
    start_period: String,
}

#[derive(Serialize)]
struct DependsOn {
    condition: &'static str,
}

#[derive(Serialize)]
struct Deploy {
    resources: Resources,
}

#[derive(Serialize)]
struct Resources {
    limits: Limits,
}

#[derive(Serialize)]
struct Limits {
    cpus: String,
    memory: String,
}

/// Compose interpolates `$VAR` everywhere; literal dollars (in shell scripts) must be doubled.
pub(crate) fn escape(s: &str) -> String {
    s.replace('$', "$$")
}

pub(crate) fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

pub(crate) fn config_key(file: &str) -> String {
    file.replace(['.', '-'], "_")
}

fn service(c: &Container) -> Service {
    let mut labels = IndexMap::from([(LABEL_ROLE, c.role.service().to_string())]);
    if c.role.is_numbered() {
        labels.insert(LABEL_INSTANCE, c.number.to_string());
    }
    Service {
        image: c.image.clone(),
        command: c
            .command
            .as_ref()
            .map(|cmd| cmd.iter().map(|s| escape(s)).collect()),
        user: c.user.clone(),
        environment: c.env.iter().map(|(k, v)| (k.clone(), escape(v))).collect(),
        secrets: c.secrets.clone(),
        configs: c
            .files
            .iter()
            .map(|m| ConfigMount {
                source: config_key(&m.file),
                target: m.target.clone(),
            })
            .collect(),
        volumes: c
            .volumes
            .iter()
            .map(|v| format!("{}:{}", v.volume, v.target))
            .collect(),
        ports: c
            .published
            .iter()
            .map(|p| format!("{}:{}", p.host, p.container))
            .collect(),
        healthcheck: c.healthcheck.as_ref().map(|h| Healthcheck {
            test: h.test.iter().map(|s| escape(s)).collect(),
            interval: duration(h.interval_ms),
            timeout: duration(h.timeout_ms),
            retries: h.retries,
            start_period: duration(h.start_period_ms),
        }),
        depends_on: c
            .depends_on
            .iter()
            .map(|a| {
                (
                    a.clone(),
                    DependsOn {
                        condition: "service_healthy",
                    },
                )
            })
            .collect(),
        restart: "unless-stopped",
        security_opt: if c.no_new_privileges {
            vec!["no-new-privileges:true"]
        } else {
            vec![]
        },
        sysctls: c.sysctls.clone(),
        stop_grace_period: format!("{}s", c.stop_grace_secs),
        deploy: Deploy {
            resources: Resources {
                limits: Limits {
                    cpus: crate::config::NanoCpus(c.nano_cpus).as_cpus_string(),
                    memory: crate::config::MemoryBytes(c.memory_bytes).as_compose_string(),
                },
            },
        },
        labels,
        profiles: c.profile.into_iter().collect(),
    }
}

/// With TLS on, nginx's certificate and key as Compose secrets from the files the env file
/// names (`TLS_MODE=files`); nginx.conf reads them under /run/secrets. With `TLS_MODE=acme`
/// the files are the ones `radar-deploy up` keeps in its store: copy them out to use Compose.
fn tls_secrets(d: &Deployment, file: &mut ComposeFile) {
    if d.nginx.tls.is_none() {
        return;
    }
    for (name, var) in [
        (TLS_CHAIN_SECRET, "TLS_CERT_FILE"),
        (TLS_KEY_SECRET, "TLS_KEY_FILE"),
    ] {
        file.secrets.insert(
            name.into(),
            SecretSource {
                environment: None,
                file: Some(format!("${{{var}}}")),
            },
        );
        for c in d.containers_of(Role::Nginx) {
            if let Some(s) = file.services.get_mut(&c.alias) {
                s.secrets.push(name.into());
            }
        }
    }
}

/// The Compose file's text. `env_file` is named in the header so a reader knows what to pass.
pub fn render(d: &Deployment, env_file: &str) -> String {
    let file = ComposeFile {
        name: d.project.clone(),
        services: d
            .containers
            .iter()
            .map(|c| (c.alias.clone(), service(c)))
            .collect(),
        volumes: d.volumes.iter().map(|v| (v.clone(), Empty {})).collect(),
        secrets: d
            .secrets
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    SecretSource {
                        environment: Some(s.env_var.clone()),
                        file: None,
                    },
                )
            })
            .collect(),
        configs: d
            .files
            .iter()
            .filter(|f| {
                d.containers
                    .iter()
                    .any(|c| c.files.iter().any(|m| m.file == f.name))
            })
            .map(|f| {
                (
                    config_key(&f.name),
                    ConfigSource {
                        file: format!("./{}", f.path),
                    },
                )
            })
            .collect(),
    };
    let mut file = file;
    tls_secrets(d, &mut file);
    let yaml = serde_norway::to_string(&file).expect("the compose model always serializes");
    let ha = d.containers.iter().any(|c| c.role == Role::Sentinel);
    let profile_hint = if ha { " --profile ha" } else { "" };
    format!(
        "# Rendered by radar-deploy — do not edit by hand; change the env file and render again.\n\
         # Secrets are Compose secrets read from the env file's variables; none is written here.\n\
         # Inside containers they are files under {SECRETS_DIR}/.\n\
         # Run it:  docker compose --env-file {env_file} -f {FILE_NAME}{profile_hint} up -d --wait\n\
         {yaml}"
    )
}

//! The desired model of one container as the Engine API's create body, and the tar archives
//! that deliver its secrets and files before it starts.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountType,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use crate::desired::{
    Container, Deployment, Role, TlsMaterial, RELOAD_MARKER, SECRETS_DIR, TLS_DIR,
};
use crate::labels::{
    LABEL_CONFIG_HASH, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NUMBER, LABEL_ONEOFF, LABEL_PROJECT,
    LABEL_RELOAD_HASH, LABEL_ROLE, LABEL_SERVICE, MANAGED_BY,
};

const MS_TO_NS: i64 = 1_000_000;

pub fn labels(d: &Deployment, c: &Container) -> HashMap<String, String> {
    // The release command's container is what `docker compose run app CMD` would make: a
    // one-off of the app service (Compose lists it only with `ps --all`/`-a`).
    let oneoff = c.role == Role::Release;
    let service = if oneoff { Role::App } else { c.role }.service();
    let mut l = HashMap::from([
        (LABEL_PROJECT.to_string(), d.project.clone()),
        (LABEL_SERVICE.to_string(), service.to_string()),
        (LABEL_NUMBER.to_string(), c.number.to_string()),
        (
            LABEL_ONEOFF.to_string(),
            if oneoff { "True" } else { "False" }.to_string(),
        ),
        (LABEL_ROLE.to_string(), c.role.service().to_string()),
        (LABEL_CONFIG_HASH.to_string(), d.config_hash(c)),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
    ]);
    if c.role.is_numbered() {
        l.insert(LABEL_INSTANCE.to_string(), c.number.to_string());
    }
    if let Some(h) = d.reload_hash(c) {
        l.insert(LABEL_RELOAD_HASH.to_string(), h);
    }
    l
}

/// `extra_aliases`: network aliases beyond the container's own (a rolling replacement's
/// temporary one).
pub fn container_body(
    d: &Deployment,
    c: &Container,
    extra_aliases: &[String],
) -> ContainerCreateBody {
    let ms = |v: u64| Some(v as i64 * MS_TO_NS);
    let exposed: Vec<String> = c
        .published
        .iter()
        .map(|p| format!("{}/tcp", p.container))
        .collect();
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = c
        .published
        .iter()
        .map(|p| {
            (
                format!("{}/tcp", p.container),
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(p.host.to_string()),
                }]),
            )
        })
        .collect();
    let mounts: Vec<Mount> = c
        .volumes
        .iter()
        .map(|v| Mount {
            typ: Some(MountType::VOLUME),
            source: Some(d.volume_name(&v.volume)),
            target: Some(v.target.clone()),
            ..Default::default()
        })
        .collect();
    ContainerCreateBody {
        image: Some(c.image.clone()),
        cmd: c.command.clone(),
        user: c.user.clone(),
        env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels(d, c)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: c.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: ms(h.interval_ms),
            timeout: ms(h.timeout_ms),
            retries: Some(h.retries as i64),
            start_period: ms(h.start_period_ms),
            ..Default::default()
        }),
        stop_timeout: Some(c.stop_grace_secs as i64),
        host_config: Some(HostConfig {
            restart_policy: Some(RestartPolicy {
                // A one-off runs once: restarted, a failed release would run again.
                name: Some(if c.role == Role::Release {
                    RestartPolicyNameEnum::NO
                } else {
                    RestartPolicyNameEnum::UNLESS_STOPPED
                }),
                maximum_retry_count: None,
            }),
            memory: Some(c.memory_bytes),
            nano_cpus: Some(c.nano_cpus),
            mounts: Some(mounts),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            security_opt: c
                .no_new_privileges
                .then(|| vec!["no-new-privileges:true".to_string()]),
            sysctls: (!c.sysctls.is_empty()).then(|| c.sysctls.clone().into_iter().collect()),
            network_mode: Some(d.network.clone()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                d.network.clone(),
                EndpointSettings {
                    aliases: Some(
                        std::iter::once(c.alias.clone())
                            .chain(extra_aliases.iter().cloned())
                            .collect(),
                    ),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> TarBuilder {
        TarBuilder(tar::Builder::new(Vec::new()))
    }

    fn dir(&mut self, path: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_cksum();
        // Writing into a Vec cannot fail.
        let _ = self
            .0
            .append_data(&mut h, format!("{}/", path.trim_matches('/')), &[][..]);
    }

    fn file(&mut self, path: &str, data: &[u8], mode: u32) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_cksum();
        let _ = self
            .0
            .append_data(&mut h, path.trim_start_matches('/'), data);
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap_or_default()
    }
}

/// The container's secrets as files under /run/secrets (mode 0444: readable by the service's
/// own non-root user, as Compose delivers them), for extraction at `/`.
pub fn secrets_tar(d: &Deployment, c: &Container) -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.dir(SECRETS_DIR);
    for name in &c.secrets {
        if let Some(s) = d.secrets.iter().find(|s| &s.name == name) {
            t.file(
                &format!("{SECRETS_DIR}/{name}"),
                s.value.expose().as_bytes(),
                0o444,
            );
        }
    }
    t.finish()
}

/// The container's config files at their targets (and, for reloadable ones, the marker of what
/// was applied). `suffix` lets a reload stage a file next to its target first.
pub fn file_tar(d: &Deployment, c: &Container, reload_only: bool, suffix: &str) -> Vec<u8> {
    let mut t = TarBuilder::new();
    for m in c.files.iter().filter(|m| !reload_only || m.reload) {
        if let Some(f) = d.file(&m.file) {
            t.file(
                &format!("{}{suffix}", m.target),
                f.content.as_bytes(),
                0o644,
            );
        }
    }
    t.finish()
}

/// One executable file at `path` (mode 0755), for extraction at `/` (`drill memory`'s hog).
pub fn executable_tar(path: &str, data: &[u8]) -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.file(path, data, 0o755);
    t.finish()
}

/// One ordinary file at `path` (mode 0644), for extraction at `/` (the maintenance flag).
pub fn plain_file_tar(path: &str, data: &[u8]) -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.file(path, data, 0o644);
    t.finish()
}

/// nginx's certificate chain (0644) and key (0600, root's: nginx reads it before it drops
/// privileges) in the certificate's own directory.
pub fn certificate_tar(tls: &TlsMaterial) -> Vec<u8> {
    let dir = tls.dir();
    let mut t = TarBuilder::new();
    t.dir(TLS_DIR);
    t.dir(&dir);
    t.file(
        &format!("{dir}/fullchain.pem"),
        tls.chain_pem.as_bytes(),
        0o644,
    );
    t.file(
        &format!("{dir}/privkey.pem"),
        tls.key_pem.expose().as_bytes(),
        0o600,
    );
    t.finish()
}

/// The marker file recording which reload hash the container now runs with.
pub fn reload_marker_tar(hash: &str) -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.file(RELOAD_MARKER, hash.as_bytes(), 0o644);
    t.finish()
}

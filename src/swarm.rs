//! The Swarm target: the same desired state ([`Deployment`]) as Swarm services, and as a stack
//! file that `docker stack deploy` accepts as it is.
//!
//! Pure, like `desired`: [`build`] maps the deployment to a [`Stack`]; the stack file
//! ([`render`]) and the services `up --target swarm` creates (`docker/swarm.rs`) both come from
//! it, so they cannot drift apart. Names follow `docker stack deploy` (`{project}_{service}`,
//! label `com.docker.stack.namespace`), so `docker stack ps|rm {project}` sees what `up` made.
//! What the swarm holds ([`observed`]), what `up` and `scale` must change there ([`plan`]:
//! a plan that prints itself, `up --target swarm --dry-run`) and when a service has converged
//! ([`convergence`]) are pure too; `swarm_engine` observes through the facade and applies.
//!
//! Differences from the single-host stack, and why:
//! - The app is ONE replicated service; its identity comes from the task slot
//!   (`INSTANCE_ID=app-{{.Task.Slot}}`, hostname alike), so scaling is Swarm's own.
//! - nginx still balances per instance, not through the service's virtual IP: its upstream
//!   names `tasks.app`, which Swarm's DNS answers with every task's address, and nginx turns a
//!   name with several addresses into one `server` per address, each with its own `least_conn`
//!   count and `max_fails`. Open-source nginx 1.22 (Debian bookworm, the official image's
//!   base) has no `resolve` parameter, so the list is fixed at (re)load. So the nginx task
//!   keeps it current by itself: its command starts a small watcher in the background, then
//!   `exec`s nginx in the foreground ([`nginx_command`]); every 2 s the watcher resolves
//!   `tasks.app` and, when the set of addresses changed, runs `nginx -t -q && nginx -s reload`.
//!   That covers tasks Swarm replaces outside a radar-deploy run (a crash, a lost node: the new
//!   task has a new address). `up` and `scale` still reload nginx themselves (checked) when they
//!   change the task set, so a change is live when they return, not up to 2 s later. The app
//!   service uses `endpoint_mode: dnsrr`, so it has no virtual IP that could be balanced
//!   through by mistake.
//! - Postgres and Redis keep their data where it lives: a placement constraint on a node
//!   label per service (`node.labels.radar-deploy.{project}.{service} == true`). The Sentinels
//!   are pinned the same way. `up --target swarm` puts each label that no node carries yet on
//!   the ready node with the fewest of the project's labels (the manager it talks to on a
//!   tie), so on several nodes the Redis master, its replica and the three Sentinels spread
//!   over different nodes, and losing one node leaves a Sentinel quorum.
//! - Swarm configs and secrets are immutable, so their names carry a digest of the content
//!   (`{project}_nginx_conf_{digest}`): a change makes a new object and a rolling update, and
//!   re-running with nothing changed touches nothing. Secrets are `external` in the stack file
//!   (their values never reach a file); `up --target swarm` creates them through the API.
//! - No per-instance log volume (a volume's name cannot follow the task slot in a stack file):
//!   the app logs to stderr, read with `docker service logs`.
//! - nginx publishes `HTTP_PORT` in host mode on the node it runs on (pinned by a node label,
//!   which `up` puts on the manager it talks to when no node carries it — or, when that manager
//!   is drained, on an active node like the rest), not through the routing
//!   mesh: the mesh hides the client's address behind the ingress network's (so `ip_hash`
//!   would send everyone to one instance, and access logs lose the client), and it needs the
//!   kernel's IPVS, missing on some hosts. Put the nodes' addresses (or a DNS name) in front,
//!   as with any Swarm edge service.
//! - HTTPS (`TLS_MODE` on): nginx publishes `HTTPS_PORT` in host mode beside `HTTP_PORT`, and
//!   reads its certificate and key from the secrets `tls_fullchain` and `tls_privkey` (the key
//!   0400, root's: nginx's master reads it before dropping privileges) — not from a directory
//!   uploaded into the container as on one host, since a task's files are fixed when it starts
//!   and a replaced task must find the certificate by itself. Both names carry a digest of
//!   chain and key, so a new certificate (a renewal, new files) is two new secrets and a
//!   stop-first update of nginx alone; its one task restarts, and the HTTPS and HTTP ports
//!   refuse connections for that moment (measured by `tests/integration/swarm_tls.rs`: about
//!   0.6 s on one node). A zero-gap change would need the new certificate copied into the
//!   running task and a reload, with the secrets changed later — a restart then still comes.
//!   The stack file reads both from the files `TLS_CERT_FILE` and `TLS_KEY_FILE` name.
//! - Stateful services update stop-first (two Postgres on one data directory would corrupt
//!   it), and so does nginx (its host port); the app starts the new task first; every update
//!   is health-monitored and rolled back on failure.
//! - Nodes can vanish. nginx keeps TCP keepalive on its upstream connections with short probe
//!   timings ([`lost_peer_keepalive`]), so a request waiting on a task of a lost node is passed
//!   to another task after seconds, not failed after a minute.
//! - Swarm replaces a task whose healthcheck fails (a single host's daemon does not), so the
//!   Redis healthcheck lets a replica whose master vanished live on to be promoted
//!   ([`crate::desired::REDIS_LINKED_ONCE`]).

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::desired::{
    Container, Deployment, Healthcheck, Role, SECRETS_DIR, TLS_CHAIN_SECRET, TLS_KEY_SECRET,
};
use crate::labels::{placement_label, LABEL_MANAGED_BY, LABEL_ROLE, LABEL_STACK, MANAGED_BY};
use crate::templates;

pub const STACK_FILE_NAME: &str = "docker-stack.multi-instance.yml";
/// Where the Swarm variant of nginx.conf is rendered (beside the single-host one).
pub const NGINX_CONF_PATH: &str = "nginx/nginx.swarm.conf";
/// The DNS name Swarm answers with the address of every task of the app service.
pub const APP_TASKS_HOST: &str = "tasks.app";

/// Seconds a task is watched after an update before Swarm counts it as a success; a task that
/// fails its healthcheck within it rolls the update back.
pub const UPDATE_MONITOR_SECS: u64 = 20;

#[derive(Debug, Clone)]
pub struct Stack {
    pub project: String,
    /// The attachable overlay network (`{project}_default`).
    pub network: String,
    pub services: Vec<Service>,
    pub configs: Vec<SwarmConfig>,
    pub secrets: Vec<SwarmSecret>,
    /// Volume keys (`postgres-data`); on the daemon `{project}_{key}`.
    pub volumes: Vec<String>,
    /// The release command as a one-off job (`APP_RELEASE_COMMAND`), when there is one.
    pub release: Option<ReleaseJob>,
}

/// The release command on the swarm: a service in Swarm's `replicated-job` mode (one task, run
/// to completion, never restarted; Engine API 1.41), created when the plan says so and removed
/// once its task has ended.
#[derive(Debug, Clone)]
pub struct ReleaseJob {
    /// The app's spec with the command (see `desired::Release`); `name` is `release`.
    pub service: Service,
    pub timeout_secs: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    StartFirst,
    StopFirst,
}

/// One Swarm service; `spec` is the desired container each of its tasks runs.
#[derive(Debug, Clone)]
pub struct Service {
    /// The short name (`app`): the network alias, the stack file's key.
    pub name: String,
    pub replicas: u32,
    pub spec: Container,
    /// A hostname template (`app-{{.Task.Slot}}`), for the numbered app.
    pub hostname: Option<String>,
    pub constraints: Vec<String>,
    /// `spread` placement preferences (e.g. `node.id`).
    pub spread: Vec<String>,
    /// DNS round robin instead of a virtual IP: clients reach the tasks themselves.
    pub dnsrr: bool,
    pub update_order: UpdateOrder,
}

/// A Swarm config: `key` is how services refer to it, `name` the object's name on the swarm.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    pub key: String,
    pub name: String,
    /// Path relative to the render directory.
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone)]
pub struct SwarmSecret {
    pub key: String,
    pub name: String,
    /// Where its value comes from, for the stack file.
    pub source: SecretSource,
    pub value: crate::config::Secret,
}

/// Where the stack file (and its reader) gets a secret's value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A variable of the env file (`REDIS_PASSWORD`): an external secret, created by hand.
    Env(String),
    /// A file the env file names (`TLS_CERT_FILE`): the certificate and key nginx serves.
    File(String),
}

impl SwarmSecret {
    /// The mode of its file in the task: the TLS key is read by nginx's master process only
    /// (root, before it drops privileges); the others by the services' own users.
    pub fn mode(&self) -> u32 {
        // The stack file says the same (`file_service`).
        if self.key == TLS_KEY_SECRET {
            0o400
        } else {
            0o444
        }
    }
}

impl Stack {
    /// A service's name on the swarm: `{project}_{name}`, as `docker stack deploy` names it.
    pub fn service_name(&self, s: &Service) -> String {
        format!("{}_{}", self.project, s.name)
    }

    pub fn volume_name(&self, volume: &str) -> String {
        format!("{}_{volume}", self.project)
    }

    pub fn config(&self, key: &str) -> Option<&SwarmConfig> {
        self.configs.iter().find(|c| c.key == key)
    }

    pub fn secret(&self, key: &str) -> Option<&SwarmSecret> {
        self.secrets.iter().find(|s| s.key == key)
    }

    /// The node label that pins a stateful service to the node holding its data.
    pub fn placement_label(&self, service: &str) -> String {
        placement_label(&self.project, service)
    }
}

fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0]);
    }
    hex::encode(&h.finalize()[..5])
}

/// TCP keepalive timings for nginx's network namespace. A request already sent to a task on a
/// node that vanishes gets no answer and no reset, and nginx would wait proxy_read_timeout
/// (60 s). With keepalive on its upstream sockets (`proxy_socket_keepalive` in the Swarm
/// nginx.conf) and these probe timings, the dead peer is found after about 6 s of silence and
/// nginx passes the (idempotent) request to another task. A live peer's kernel answers the
/// probes, so slow requests are not cut short. Measured by `tests/integration/swarm_two_nodes.rs`.
fn lost_peer_keepalive() -> BTreeMap<String, String> {
    [
        ("net.ipv4.tcp_keepalive_time", "3"),
        ("net.ipv4.tcp_keepalive_intvl", "1"),
        ("net.ipv4.tcp_keepalive_probes", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Builds the Swarm stack from the desired state. Pure.
pub fn build(d: &Deployment) -> Stack {
    let project = d.project.clone();
    // nginx balances over every task of the app service (see the module comment).
    let mut vars = templates::NginxVars {
        swarm: true,
        ..d.with_upstream(&[APP_TASKS_HOST.to_string()]).nginx
    };
    // The certificate and key are Swarm secrets on this target (the one-host engine uploads
    // them into a directory of their own instead; a task's files cannot be changed).
    if let Some(tls) = &mut vars.tls {
        tls.certificate = format!("{SECRETS_DIR}/{TLS_CHAIN_SECRET}");
        tls.key = format!("{SECRETS_DIR}/{TLS_KEY_SECRET}");
    }
    let nginx_conf = templates::nginx_conf(&vars);

    let mut services = Vec::new();
    let mut seen_app = false;
    for c in &d.containers {
        match c.role {
            // Never among the containers: the release runs as a one-off job of its own.
            Role::Release => {}
            Role::App => {
                if seen_app {
                    continue;
                }
                seen_app = true;
                services.push(app_service(d, c));
            }
            Role::Postgres | Role::Redis | Role::RedisReplica | Role::Sentinel | Role::Nginx => {
                let mut spec = c.clone();
                spec.depends_on.clear();
                match c.role {
                    // The Sentinel rewrites its config under /data. Swarm's anonymous volume
                    // for the image's /data is not writable by the redis user; a named
                    // volume is populated from the image, ownership included.
                    Role::Sentinel if !spec.volumes.iter().any(|v| v.target == "/data") => {
                        spec.volumes.push(crate::desired::VolumeMount {
                            volume: format!("{}-data", c.alias),
                            target: "/data".into(),
                        });
                    }
                    Role::Nginx => {
                        // Maintenance mode is one-host only (`maintenance` refuses Swarm).
                        spec.volumes
                            .retain(|v| v.volume != crate::desired::MAINTENANCE_VOLUME);
                        spec.command = Some(nginx_command(c.command.as_deref()));
                        spec.sysctls = lost_peer_keepalive();
                        if d.nginx.tls.is_some() {
                            spec.secrets
                                .extend([TLS_CHAIN_SECRET.into(), TLS_KEY_SECRET.into()]);
                        }
                    }
                    Role::Redis | Role::RedisReplica => {
                        spec.healthcheck = Some(crate::desired::redis_healthcheck_matching(
                            crate::desired::REDIS_PORT,
                            crate::desired::REDIS_LINKED_ONCE,
                        ));
                    }
                    _ => {}
                }
                services.push(pinned_service(&project, spec));
            }
        }
    }

    let used_files: Vec<&str> = services
        .iter()
        .flat_map(|s| s.spec.files.iter().map(|m| m.file.as_str()))
        .collect();
    let configs = d
        .files
        .iter()
        .filter(|f| used_files.contains(&f.name.as_str()))
        .map(|f| {
            let (path, content) = if f.name == "nginx.conf" {
                (NGINX_CONF_PATH.to_string(), nginx_conf.clone())
            } else {
                (f.path.clone(), f.content.clone())
            };
            let key = config_key(&f.name);
            SwarmConfig {
                name: format!(
                    "{project}_{key}_{}",
                    digest(&[project.as_bytes(), content.as_bytes()])
                ),
                key,
                path,
                content,
            }
        })
        .collect();
    let mut secrets: Vec<SwarmSecret> = d
        .secrets
        .iter()
        .map(|s| SwarmSecret {
            // Salted with the project and truncated: the name changes with the value and
            // reveals nothing usable about it.
            name: format!(
                "{project}_{}_{}",
                s.name,
                digest(&[project.as_bytes(), s.value.expose().as_bytes()])
            ),
            key: s.name.clone(),
            source: SecretSource::Env(s.env_var.clone()),
            value: s.value.clone(),
        })
        .collect();
    secrets.extend(tls_secrets(d, &project));
    let volumes = services
        .iter()
        .flat_map(|s| s.spec.volumes.iter().map(|v| v.volume.clone()))
        .collect();
    let release = d.release.as_ref().map(|r| {
        let mut spec = r.container.clone();
        spec.number = 0;
        spec.depends_on.clear();
        ReleaseJob {
            service: Service {
                name: Role::Release.service().into(),
                replicas: 1,
                spec,
                hostname: None,
                constraints: vec![],
                spread: vec![],
                dnsrr: true,
                update_order: UpdateOrder::StopFirst,
            },
            timeout_secs: r.timeout_secs,
        }
    });
    Stack {
        network: format!("{project}_default"),
        project,
        services,
        configs,
        secrets,
        volumes,
        release,
    }
}

/// nginx's certificate and key as two secrets, when TLS is on and the certificate is at hand
/// (`up`, `renew`; not `render`). Like every secret, each name carries a digest of its content,
/// so a new certificate is two new objects and a rolling update of nginx, which is what gives
/// it to nginx: a task's secrets are fixed when it starts.
fn tls_secrets(d: &Deployment, project: &str) -> Vec<SwarmSecret> {
    let Some(m) = d.tls.as_ref().filter(|_| d.nginx.tls.is_some()) else {
        return vec![];
    };
    // Both names follow chain and key together: a key is never paired with another chain.
    let digest = digest(&[
        project.as_bytes(),
        m.chain_pem.as_bytes(),
        m.key_pem.expose().as_bytes(),
    ]);
    [
        (
            TLS_CHAIN_SECRET,
            "TLS_CERT_FILE",
            crate::config::Secret::new(m.chain_pem.clone()),
        ),
        (TLS_KEY_SECRET, "TLS_KEY_FILE", m.key_pem.clone()),
    ]
    .into_iter()
    .map(|(key, var, value)| SwarmSecret {
        name: format!("{project}_{key}_{digest}"),
        key: key.into(),
        source: SecretSource::File(var.into()),
        value,
    })
    .collect()
}

/// nginx's own command line when the desired container names none: the official image's CMD.
const NGINX_DEFAULT_COMMAND: [&str; 3] = ["nginx", "-g", "daemon off;"];
/// Seconds between two looks of nginx's watcher at `tasks.app`.
pub const NGINX_WATCH_SECS: u32 = 2;
/// The watcher (bash; it needs only `getent`, `sort` and `sleep`, which every Debian-based
/// nginx image has). Its arguments are the name to watch, the interval, then nginx's own
/// command line, which it `exec`s so nginx stays the task's main process (signals, exit code,
/// logs on stdout/stderr as before). Nothing is spliced into the script. The first set is read
/// as nginx starts, so the first change it acts on is a real one; a failed `nginx -t` or
/// reload is tried again at the next look. The image's entrypoint sees `bash` as the command
/// and runs it as it is; the watcher then hands nginx's command line to the official image's
/// `/docker-entrypoint.sh` (where there is one), so its `/docker-entrypoint.d/` hooks still run
/// before nginx, as without the watcher.
const NGINX_WATCHER: &str = r#"host=$1 every=$2; shift 2
addresses() { getent ahostsv4 "$host" | while read -r addr _; do echo "$addr"; done | sort -u; }
(
  last=$(addresses)
  while sleep "$every"; do
    now=$(addresses)
    if [ -n "$now" ] && [ "$now" != "$last" ] && nginx -t -q && nginx -s reload; then
      echo "radar-deploy: the tasks of $host are now ${now//$'\n'/ }; nginx reloaded" >&2
      last=$now
    fi
  done
) &
if [ -x /docker-entrypoint.sh ]; then exec /docker-entrypoint.sh "$@"; fi
exec "$@""#;

/// The Swarm nginx task's command: the `tasks.app` watcher in the background, then nginx
/// (`command`, or the image's default) in the foreground.
pub fn nginx_command(command: Option<&[String]>) -> Vec<String> {
    let mut cmd: Vec<String> = vec![
        "bash".into(),
        "-c".into(),
        NGINX_WATCHER.into(),
        "radar-nginx-watch".into(),
        APP_TASKS_HOST.into(),
        NGINX_WATCH_SECS.to_string(),
    ];
    match command {
        Some(c) => cmd.extend(c.iter().cloned()),
        None => cmd.extend(NGINX_DEFAULT_COMMAND.iter().map(|a| a.to_string())),
    }
    cmd
}

/// One task pinned to a node by its label (`up` puts the label on a node; see the module
/// comment): Postgres and Redis because their data is in a node's volume, each Sentinel for
/// its state and so that `up` can spread them over nodes, nginx because clients connect to
/// its node's address. Each is known by its address, so no virtual IP (`dnsrr`); and each
/// updates stop-first: two Postgres on one data directory would corrupt it, and two nginx
/// cannot bind one host port.
fn pinned_service(project: &str, spec: Container) -> Service {
    Service {
        name: spec.alias.clone(),
        replicas: 1,
        hostname: None,
        constraints: vec![format!(
            "node.labels.{} == true",
            placement_label(project, &spec.alias)
        )],
        spread: vec![],
        dnsrr: true,
        update_order: UpdateOrder::StopFirst,
        spec,
    }
}

fn app_service(d: &Deployment, first: &Container) -> Service {
    let mut spec = first.clone();
    spec.number = 0;
    spec.alias = "app".into();
    spec.env
        .insert("INSTANCE_ID".into(), "app-{{.Task.Slot}}".into());
    spec.env.remove("LOG_DIR");
    spec.volumes.clear();
    spec.depends_on.clear();
    Service {
        name: "app".into(),
        replicas: d.containers_of(Role::App).count() as u32,
        spec,
        hostname: Some("app-{{.Task.Slot}}".into()),
        constraints: vec![],
        spread: vec!["node.id".into()],
        dnsrr: true,
        update_order: UpdateOrder::StartFirst,
    }
}

// ---- the stack file (Compose file format 3.8, what `docker stack deploy` reads) ----

#[derive(Serialize)]
struct StackFile {
    version: &'static str,
    services: IndexMap<String, FileService>,
    networks: IndexMap<&'static str, FileNetwork>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    volumes: IndexMap<String, FileVolume>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    configs: IndexMap<String, FileConfig>,
    secrets: IndexMap<String, FileSecret>,
}

#[derive(Serialize)]
struct FileNetwork {
    driver: &'static str,
    attachable: bool,
}

#[derive(Serialize)]
struct FileVolume {
    labels: IndexMap<&'static str, String>,
}

#[derive(Serialize)]
struct FileConfig {
    name: String,
    file: String,
}

/// A secret of the stack file: external (created by hand from a variable of the env file), or
/// read by `docker stack deploy` from a file (the TLS certificate and key).
#[derive(Serialize)]
struct FileSecret {
    name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    external: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

#[derive(Serialize)]
struct FileService {
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    environment: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<FileMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    configs: Vec<FileMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<FilePort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<FileHealthcheck>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    sysctls: BTreeMap<String, String>,
    stop_grace_period: String,
    deploy: FileDeploy,
}

#[derive(Serialize)]
struct FileMount {
    source: String,
    target: String,
    /// The file's mode when not the default 0444 (YAML reads it as a decimal number: 256 is
    /// 0400, as `up` mounts the TLS key).
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
}

#[derive(Serialize)]
struct FilePort {
    target: u16,
    published: u16,
    protocol: &'static str,
    mode: &'static str,
}

#[derive(Serialize)]
struct FileHealthcheck {
    test: Vec<String>,
    interval: String,
    timeout: String,
    retries: u32,
    start_period: String,
}

#[derive(Serialize)]
struct FileDeploy {
    mode: &'static str,
    replicas: u32,
    endpoint_mode: &'static str,
    labels: IndexMap<&'static str, String>,
    resources: FileResources,
    restart_policy: FileRestart,
    update_config: FileUpdate,
    rollback_config: FileUpdate,
    #[serde(skip_serializing_if = "FilePlacement::is_empty")]
    placement: FilePlacement,
}

#[derive(Serialize)]
struct FileResources {
    limits: FileLimits,
}

#[derive(Serialize)]
struct FileLimits {
    cpus: String,
    memory: String,
}

#[derive(Serialize)]
struct FileRestart {
    condition: &'static str,
    delay: &'static str,
}

#[derive(Serialize)]
struct FileUpdate {
    parallelism: u32,
    delay: &'static str,
    order: UpdateOrder,
    failure_action: &'static str,
    monitor: String,
}

#[derive(Serialize)]
struct FilePlacement {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    constraints: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    preferences: Vec<IndexMap<&'static str, String>>,
}

impl FilePlacement {
    fn is_empty(&self) -> bool {
        self.constraints.is_empty() && self.preferences.is_empty()
    }
}

// The stack file is Compose syntax: the same escaping, durations and config keys.
use crate::compose::{config_key, duration, escape};

fn file_healthcheck(h: &Healthcheck) -> FileHealthcheck {
    FileHealthcheck {
        test: h.test.iter().map(|s| escape(s)).collect(),
        interval: duration(h.interval_ms),
        timeout: duration(h.timeout_ms),
        retries: h.retries,
        start_period: duration(h.start_period_ms),
    }
}

fn file_service(s: &Service) -> FileService {
    let c = &s.spec;
    let update = |failure_action| FileUpdate {
        parallelism: 1,
        delay: "0s",
        order: s.update_order,
        failure_action,
        monitor: format!("{UPDATE_MONITOR_SECS}s"),
    };
    FileService {
        image: c.image.clone(),
        hostname: s.hostname.clone(),
        command: c
            .command
            .as_ref()
            .map(|cmd| cmd.iter().map(|a| escape(a)).collect()),
        user: c.user.clone(),
        environment: c.env.iter().map(|(k, v)| (k.clone(), escape(v))).collect(),
        secrets: c
            .secrets
            .iter()
            .map(|k| FileMount {
                source: k.clone(),
                target: k.clone(),
                mode: (k == TLS_KEY_SECRET).then_some(0o400),
            })
            .collect(),
        configs: c
            .files
            .iter()
            .map(|m| FileMount {
                source: config_key(&m.file),
                target: m.target.clone(),
                mode: None,
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
            .map(|p| FilePort {
                target: p.container,
                published: p.host,
                protocol: "tcp",
                mode: "host",
            })
            .collect(),
        healthcheck: c.healthcheck.as_ref().map(file_healthcheck),
        sysctls: c.sysctls.clone(),
        stop_grace_period: format!("{}s", c.stop_grace_secs),
        deploy: FileDeploy {
            mode: "replicated",
            replicas: s.replicas,
            endpoint_mode: if s.dnsrr { "dnsrr" } else { "vip" },
            labels: IndexMap::from([(LABEL_ROLE, c.role.service().to_string())]),
            resources: FileResources {
                limits: FileLimits {
                    cpus: crate::config::NanoCpus(c.nano_cpus).as_cpus_string(),
                    memory: crate::config::MemoryBytes(c.memory_bytes).as_compose_string(),
                },
            },
            restart_policy: FileRestart {
                condition: "any",
                delay: "2s",
            },
            update_config: update("rollback"),
            rollback_config: update("pause"),
            placement: FilePlacement {
                constraints: s.constraints.clone(),
                preferences: s
                    .spread
                    .iter()
                    .map(|p| IndexMap::from([("spread", p.clone())]))
                    .collect(),
            },
        },
    }
}

/// The stack file's text, and the files it names (nginx.swarm.conf, sentinel.conf).
pub fn render(st: &Stack, env_file: &str) -> String {
    let file = StackFile {
        version: "3.8",
        services: st
            .services
            .iter()
            .map(|s| (s.name.clone(), file_service(s)))
            .collect(),
        networks: IndexMap::from([(
            "default",
            FileNetwork {
                driver: "overlay",
                attachable: true,
            },
        )]),
        volumes: st
            .volumes
            .iter()
            .map(|v| {
                (
                    v.clone(),
                    FileVolume {
                        labels: IndexMap::from([(LABEL_STACK, st.project.clone())]),
                    },
                )
            })
            .collect(),
        configs: st
            .configs
            .iter()
            .map(|c| {
                (
                    c.key.clone(),
                    FileConfig {
                        name: c.name.clone(),
                        file: format!("./{}", c.path),
                    },
                )
            })
            .collect(),
        secrets: file_secrets(st),
    };
    let yaml = serde_norway::to_string(&file).expect("the stack model always serializes");
    let p = &st.project;
    let mut header = format!(
        "# Rendered by radar-deploy — do not edit by hand; change the env file and render again.\n\
         # Docker Swarm stack. `radar-deploy --env-file {env_file} up --target swarm` creates all of it\n\
         # through the Engine API (secrets and node labels included) and then verifies it. By hand:\n\
         #   1. pin nginx (its node publishes the port), the data and the Sentinels to nodes (on\n\
         #      several nodes, put redis, redis-replica and each sentinel on a different one; `up` does):"
    );
    let labelled: Vec<String> = st
        .services
        .iter()
        .filter(|s| !s.constraints.is_empty())
        .map(|s| format!("--label-add {}=true", st.placement_label(&s.name)))
        .collect();
    header.push_str(&format!(
        "  docker node update {} <node>\n",
        labelled.join(" ")
    ));
    header.push_str(
        "#   2. create the secrets (external: their values are never written to a file), e.g.\n",
    );
    for s in &st.secrets {
        if let SecretSource::Env(var) = &s.source {
            header.push_str(&format!(
                "#      printf %s \"${var}\" | docker secret create {} -\n",
                s.name
            ));
        }
    }
    if nginx_tls_keys(st).next().is_some() {
        header.push_str(
            "#      and export TLS_CERT_FILE and TLS_KEY_FILE (absolute paths): `docker stack deploy` reads\n\
             #      nginx's certificate and key from them into the secrets tls_fullchain and tls_privkey.\n\
             #      A secret cannot change: for a new certificate, give both a new `name:` (or run\n\
             #      `radar-deploy up --target swarm`, which names them by their content).\n",
        );
    }
    header.push_str(&format!(
        "#   3. docker stack deploy -c {STACK_FILE_NAME} {p}\n\
         #   4. nothing to do when the app's tasks change (scale, update, a task replaced): the\n\
         #      nginx task's command watches `{APP_TASKS_HOST}` every {NGINX_WATCH_SECS} s and reloads nginx (after\n\
         #      `nginx -t`) when its addresses change; radar-deploy also reloads it after up/scale.\n\
         # Secrets are files under /run/secrets/ inside the containers; none is in a service spec.\n"
    ));
    format!("{header}{yaml}")
}

/// The TLS secrets nginx mounts (none when TLS is off).
fn nginx_tls_keys(st: &Stack) -> impl Iterator<Item = &str> {
    st.services
        .iter()
        .filter(|s| s.spec.role == Role::Nginx)
        .flat_map(|s| s.spec.secrets.iter().map(String::as_str))
        .filter(|k| [TLS_CHAIN_SECRET, TLS_KEY_SECRET].contains(k))
}

/// `${VAR}` for a file's path: `docker stack deploy` reads no env file, so the variable comes
/// from the shell; unset, the deploy stops with this message instead of reading no file.
fn file_var(var: &str) -> String {
    format!("${{{var}:?export {var}, the absolute path the env file gives}}")
}

/// The stack file's secrets: those of the env file external (their values never reach a
/// file), the certificate and key read from the files TLS_CERT_FILE and TLS_KEY_FILE name.
/// Without the certificate at hand (`render`), those two are named without a digest.
fn file_secrets(st: &Stack) -> IndexMap<String, FileSecret> {
    let mut out: IndexMap<String, FileSecret> = st
        .secrets
        .iter()
        .map(|s| {
            let (external, file) = match &s.source {
                SecretSource::Env(_) => (true, None),
                SecretSource::File(var) => (false, Some(file_var(var))),
            };
            (
                s.key.clone(),
                FileSecret {
                    name: s.name.clone(),
                    external,
                    file,
                },
            )
        })
        .collect();
    for key in nginx_tls_keys(st) {
        let var = if key == TLS_KEY_SECRET {
            "TLS_KEY_FILE"
        } else {
            "TLS_CERT_FILE"
        };
        out.entry(key.to_string()).or_insert_with(|| FileSecret {
            name: format!("{}_{key}", st.project),
            external: false,
            file: Some(file_var(var)),
        });
    }
    out
}

/// Every file `render --target swarm` writes, as (path relative to the output directory,
/// content).
pub fn files(st: &Stack, env_file: &str) -> Vec<(String, String)> {
    let mut files = vec![(STACK_FILE_NAME.to_string(), render(st, env_file))];
    files.extend(
        st.configs
            .iter()
            .map(|c| (c.path.clone(), c.content.clone())),
    );
    files
}

/// Container-spec values the API facade needs in Swarm's terms.
pub fn labels(st: &Stack, s: &Service) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_STACK.to_string(), st.project.clone()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_ROLE.to_string(), s.spec.role.service().to_string()),
    ])
}

pub mod convergence;
pub mod observed;
pub mod plan;

pub use convergence::{convergence, Convergence};
pub use observed::{ObservedService, ObservedTask, SwarmMembership, SwarmObserved};
pub use plan::{plan, plan_scale, SwarmPlan};

#[cfg(test)]
mod tests;

//! The desired state: one pure model of the whole stack, built from a [`Config`].
//!
//! Both outputs come from here — the Compose file (`compose.rs`) and the containers the engine
//! creates — so the two can never drift apart. Every container is described completely
//! (image, command, environment, secrets, files, volumes, healthcheck, limits, start order),
//! which is also what its config hash is computed over.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{is_root_user, Config, LbStrategy, Secret, UserSpec, SENTINELS};
use crate::probes;
use crate::templates;

/// The Compose profile the HA services belong to.
pub const HA_PROFILE: &str = "ha";
/// nginx's volume holding the maintenance flag ([`templates::MAINTENANCE_FLAG`]).
pub const MAINTENANCE_VOLUME: &str = "nginx-maintenance";

/// Where secrets appear inside containers, as with Compose and Swarm secrets.
pub const SECRETS_DIR: &str = "/run/secrets";
/// Where the hash of the reloadable files last applied to a running container is kept, so a
/// reload (which cannot change the container's labels) is remembered by the next `up`.
pub const RELOAD_MARKER: &str = "/run/radar-deploy/reload-hash";

pub(crate) const REDIS_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;
const POSTGRES_PORT: u16 = 5432;
pub const NGINX_PORT: u16 = 80;
/// nginx's HTTPS port inside its container (HTTPS_PORT is the published one).
pub const NGINX_TLS_PORT: u16 = 443;
/// Where radar-deploy uploads the certificate nginx serves, one directory per certificate
/// ([`TlsMaterial::dir`]); a key is never a bind mount, an environment variable or a label.
pub const TLS_DIR: &str = "/etc/nginx/tls";
/// The certificate's and key's paths when no certificate is at hand (`render`): the Compose
/// and stack files deliver them as the secrets `tls_fullchain` and `tls_privkey`.
pub const TLS_CHAIN_SECRET: &str = "tls_fullchain";
pub const TLS_KEY_SECRET: &str = "tls_privkey";
/// The unprivileged user an app whose image runs as root is given (the reference image's own
/// user, distroless's "nonroot"), unless APP_USER says otherwise.
pub const APP_USER: &str = "65532:65532";
const APP_LOG_DIR: &str = "/var/log/app";

#[derive(Debug, Clone)]
pub struct Deployment {
    pub project: String,
    /// The one user-defined bridge network (`{project}_default`, as Compose names it).
    pub network: String,
    pub containers: Vec<Container>,
    pub volumes: Vec<String>,
    pub secrets: Vec<SecretSpec>,
    pub files: Vec<ConfigFile>,
    /// What nginx.conf is rendered from, kept so a rolling replacement can render the
    /// transitional upstream ([`Deployment::with_upstream`]).
    pub nginx: templates::NginxVars,
    /// The release command, when `APP_RELEASE_COMMAND` is set: run by the plan's
    /// release step in a one-off container, never kept.
    pub release: Option<Release>,
    /// The certificate nginx serves, when TLS is on and one is at hand (not for `render`).
    pub tls: Option<TlsMaterial>,
}

/// A certificate chain and its key, as nginx gets them: from the operator's files
/// (`TLS_MODE=files`) or from the ACME store on the daemon (`TLS_MODE=acme`). Read and checked
/// by `certificates` before the desired state is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    /// PEM, leaf first.
    pub chain_pem: String,
    pub key_pem: Secret,
    /// ACME: the account key's thumbprint, which nginx answers HTTP-01 challenges with.
    pub acme_thumbprint: Option<String>,
}

impl TlsMaterial {
    /// The directory nginx reads this certificate from: named by a digest of chain and key,
    /// so a new certificate is a new nginx.conf, which the engine stages, checks with
    /// `nginx -t` and reloads — never a recreated nginx.
    pub fn dir(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.chain_pem.as_bytes());
        h.update([0]);
        h.update(self.key_pem.expose().as_bytes());
        format!("{TLS_DIR}/{}", hex::encode(&h.finalize()[..8]))
    }
}

/// The release command's one-off container and its deadline.
#[derive(Debug, Clone)]
pub struct Release {
    pub container: Container,
    pub timeout_secs: u32,
    /// `BACKUP_BEFORE_RELEASE`: a backup is taken just before each run of the command.
    pub backup_first: bool,
}

/// What a container does, once started; decides the start order and what "ready" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Postgres,
    Redis,
    RedisReplica,
    Sentinel,
    App,
    Nginx,
    /// The one-off container of the release command (`APP_RELEASE_COMMAND`): never one of
    /// [`Deployment::containers`], only [`Deployment::release`].
    Release,
}

impl Role {
    pub fn service(self) -> &'static str {
        match self {
            Role::Postgres => "postgres",
            Role::Redis => "redis",
            Role::RedisReplica => "redis-replica",
            Role::Sentinel => "sentinel",
            Role::App => "app",
            Role::Nginx => "nginx",
            Role::Release => "release",
        }
    }

    /// Services with several numbered instances get one Compose service per instance
    /// (`app-1`, `app-2`), so each can carry its own `INSTANCE_ID` and log volume.
    pub fn is_numbered(self) -> bool {
        matches!(self, Role::App | Role::Sentinel)
    }
}

/// One container of the stack, fully described.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub role: Role,
    /// 1-based instance number (`com.docker.compose.container-number`).
    pub number: u32,
    /// The name other containers reach it by on the network, and its Compose service name.
    pub alias: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub user: Option<String>,
    pub env: BTreeMap<String, String>,
    pub secrets: Vec<String>,
    pub files: Vec<FileMount>,
    pub volumes: Vec<VolumeMount>,
    pub healthcheck: Option<Healthcheck>,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    pub published: Vec<PublishedPort>,
    pub no_new_privileges: bool,
    /// Kernel settings of the container's own network namespace.
    pub sysctls: BTreeMap<String, String>,
    pub stop_grace_secs: u32,
    /// Aliases of the containers that must be healthy before this one starts. Start order is
    /// not a property of the running container, and nginx's list grows with the instance
    /// count: left out of the config hash.
    #[serde(skip_serializing)]
    pub depends_on: Vec<String>,
    pub profile: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileMount {
    /// Key into [`Deployment::files`].
    pub file: String,
    pub target: String,
    /// A reloadable file (nginx.conf) is applied by upload + reload, so a change to it is not
    /// part of the container's config hash and does not recreate the container.
    pub reload: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishedPort {
    pub host: u16,
    pub container: u16,
}

/// A Docker healthcheck; durations in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Healthcheck {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`, as the Engine API and Compose take it.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

/// A secret delivered as a file under `/run/secrets/{name}`; its value comes from the variable
/// `env_var` of the configuration (Compose reads the same variable from the env file).
#[derive(Debug, Clone)]
pub struct SecretSpec {
    pub name: String,
    pub env_var: String,
    pub value: Secret,
}

/// A rendered configuration file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub name: String,
    /// Path relative to the render directory (`nginx/nginx.conf`).
    pub path: String,
    pub content: String,
}

impl Deployment {
    pub fn file(&self, name: &str) -> Option<&ConfigFile> {
        self.files.iter().find(|f| f.name == name)
    }

    pub fn containers_of(&self, role: Role) -> impl Iterator<Item = &Container> {
        self.containers.iter().filter(move |c| c.role == role)
    }

    /// The container's name on the daemon: `{project}-{service}-{n}`, as Compose names them.
    pub fn container_name(&self, c: &Container) -> String {
        format!("{}-{}-{}", self.project, c.role.service(), c.number)
    }

    /// The volume's name on the daemon: `{project}_{volume}`, as Compose names them.
    pub fn volume_name(&self, volume: &str) -> String {
        format!("{}_{volume}", self.project)
    }

    /// Stable hash of everything that, when changed, requires recreating the container: its
    /// spec in canonical JSON (struct fields in declaration order, maps sorted), the content
    /// of every non-reloadable file it mounts, and its secrets. The instance count is not in
    /// any container's spec, so scaling never recreates a running instance.
    pub fn config_hash(&self, c: &Container) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(c).expect("container specs always serialize"));
        for m in c.files.iter().filter(|m| !m.reload) {
            if let Some(f) = self.file(&m.file) {
                h.update(f.name.as_bytes());
                h.update(Sha256::digest(f.content.as_bytes()));
            }
        }
        for name in &c.secrets {
            if let Some(s) = self.secrets.iter().find(|s| &s.name == name) {
                // A digest of the secret, salted with the project: changing a password
                // recreates its users, and the label reveals nothing usable.
                h.update(Sha256::digest(format!(
                    "{}\0{}",
                    self.project,
                    s.value.expose()
                )));
            }
        }
        hex::encode(&h.finalize()[..16])
    }

    /// The same deployment with nginx's upstream naming `hosts` (network aliases) instead of
    /// the instances' own aliases: the transitional config of a rolling replacement, in which
    /// a new instance serves under an alias of its own while the one it replaces is out.
    pub fn with_upstream(&self, hosts: &[String]) -> Deployment {
        let mut d = self.clone();
        let port = self.nginx.instances.first().map_or(3000, |u| u.port);
        d.nginx.instances = hosts
            .iter()
            .map(|h| templates::Upstream {
                host: h.clone(),
                port,
            })
            .collect();
        if let Some(f) = d.files.iter_mut().find(|f| f.name == "nginx.conf") {
            f.content = templates::nginx_conf(&d.nginx);
        }
        d
    }

    /// The aliases nginx's upstream names in the desired state, in order.
    pub fn upstream_hosts(&self) -> Vec<String> {
        self.nginx
            .instances
            .iter()
            .map(|u| u.host.clone())
            .collect()
    }

    /// Hash of the reloadable files a container mounts (nginx.conf): when it differs from the
    /// running container's label, the engine uploads the file and reloads instead of recreating.
    pub fn reload_hash(&self, c: &Container) -> Option<String> {
        let mut reloadable = c.files.iter().filter(|m| m.reload).peekable();
        reloadable.peek()?;
        let mut h = Sha256::new();
        for m in reloadable {
            if let Some(f) = self.file(&m.file) {
                h.update(f.content.as_bytes());
            }
        }
        Some(hex::encode(&h.finalize()[..16]))
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn secret_path(name: &str) -> String {
    format!("{SECRETS_DIR}/{name}")
}

const SECOND_MS: u64 = 1000;

fn healthcheck(test: Vec<String>, start_period_ms: u64) -> Healthcheck {
    // Short intervals: readiness is what `up` waits for, and the first probe only runs one
    // interval after start.
    Healthcheck {
        test,
        interval_ms: 2 * SECOND_MS,
        timeout_ms: 3 * SECOND_MS,
        retries: 5,
        start_period_ms,
    }
}

/// The Redis start script. Passwords are read from the secret file at start so that they
/// never appear in the container's command, environment or `docker inspect`.
fn redis_command(alias: &str, replica_of: Option<&str>) -> Vec<String> {
    let replicaof = replica_of
        .map(|m| format!(" --replicaof {m} {REDIS_PORT}"))
        .unwrap_or_default();
    let script = format!(
        "set -eu; umask 077; pw=\"$(cat {secret})\"; \
         printf 'requirepass \"%s\"\\nmasterauth \"%s\"\\n' \"$pw\" \"$pw\" > /tmp/redis-auth.conf; \
         exec redis-server --port {REDIS_PORT} --dir /data --appendonly yes --protected-mode no \
         --replica-announce-ip {alias}{replicaof} --include /tmp/redis-auth.conf",
        secret = secret_path("redis_password"),
    );
    vec!["bash".into(), "-c".into(), script]
}

fn redis_healthcheck(port: u16) -> Healthcheck {
    redis_healthcheck_matching(port, REDIS_READY)
}

/// Redis's `INFO replication` lines that make it healthy: the master, or a replica whose link
/// to the master is up.
const REDIS_READY: &str = "role:master|master_link_status:up";

/// Swarm replaces a task whose healthcheck fails, unlike a single host's daemon. A replica
/// whose master vanished (its node lost) must live on for the Sentinels to promote it, so on
/// Swarm a replica whose link was up once is healthy too (`master_link_down_since_seconds` is
/// -1 until the first link): the first sync still gates `up`, a lost master no longer kills it.
pub(crate) const REDIS_LINKED_ONCE: &str =
    "role:master|master_link_status:up|master_link_down_since_seconds:[0-9]";

pub(crate) fn redis_healthcheck_matching(port: u16, lines: &str) -> Healthcheck {
    let secret = secret_path("redis_password");
    let test = if port == SENTINEL_PORT {
        probes::redis_pong_test(port, &secret)
    } else {
        // Ready means: answering, and either the master or a replica whose link to the master
        // is up. A replica that answers PING but has not finished its first sync is not ready
        // (`verify --ha` right after `up` would see its link down). The same test fits either
        // container after a failover, whichever of them is master then.
        probes::redis_replication_test(port, &secret, lines)
    };
    healthcheck(test, 10 * SECOND_MS)
}

/// The app image's own user (`Config.User` of the image), as far as it is known: an observed
/// input of the desired state, inspected by the caller (`engine::app_image_user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    /// The image's configured user; empty when it sets none (Docker then runs root).
    Is(String),
    /// Not known: no daemon (`render`), or the image is not on the daemon yet (`--dry-run`).
    Unknown,
}

impl ImageUser {
    /// What is known without a daemon: the reference app's user (its Dockerfile, which this
    /// binary carries, says `USER 65532:65532`), nothing of any other image.
    pub fn without_daemon(cfg: &Config) -> ImageUser {
        let image = &cfg.app.image;
        let reference = image.name_and_tag().0 == crate::config::vars::REFERENCE_APP_REPOSITORY;
        if reference && !image.as_str().contains('@') {
            ImageUser::Is(APP_USER.into())
        } else {
            ImageUser::Unknown
        }
    }
}

/// Which user the app runs as, and why (`up --dry-run` prints it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUser {
    /// `None`: the image's own, whatever it is (only when it could not be inspected).
    pub user: Option<String>,
    pub why: String,
}

impl AppUser {
    /// `app user: 1000:1000 (image's own user 1000:1000)`, as `up --dry-run` and `render` say it.
    pub fn line(&self) -> String {
        format!(
            "app user: {} ({})",
            self.user.as_deref().unwrap_or("the image's own"),
            self.why
        )
    }
}

/// The rule: APP_USER when set (`root` too, explicitly); else the image's own user, unless that
/// is root (or unset), which runs as [`APP_USER`] instead. Unknown image user: the image's own
/// (Docker decides at start), said so.
pub fn app_user(configured: Option<&UserSpec>, image: &ImageUser) -> AppUser {
    match (configured, image) {
        (Some(u), _) if u.is_root() => AppUser {
            user: Some(u.to_string()),
            why: format!("APP_USER={u}: root, as asked"),
        },
        (Some(u), _) => AppUser {
            user: Some(u.to_string()),
            why: format!("APP_USER={u}"),
        },
        (None, ImageUser::Is(u)) if is_root_user(u) => AppUser {
            user: Some(APP_USER.into()),
            why: format!(
                "image user is {} → {APP_USER} (set APP_USER=root to keep root)",
                if u.trim().is_empty() {
                    "root (none set)"
                } else {
                    u
                }
            ),
        },
        (None, ImageUser::Is(u)) => AppUser {
            user: Some(u.clone()),
            why: format!("image's own user {u}"),
        },
        (None, ImageUser::Unknown) => AppUser {
            user: None,
            why: format!(
                "the image was not inspected; `up` runs an image whose user is root as \
                 {APP_USER}: set APP_USER to fix the user here too"
            ),
        },
    }
}

/// Builds the desired state without a daemon's view of the app image (`render`): its user is
/// the reference app's when it is the reference image, else the image's own.
pub fn build(cfg: &Config) -> Deployment {
    build_with(cfg, &ImageUser::without_daemon(cfg), None)
}

/// Builds the desired state. Pure: the same config and image user always give the same
/// deployment.
pub fn build_with(cfg: &Config, image_user: &ImageUser, tls: Option<&TlsMaterial>) -> Deployment {
    let user = app_user(cfg.app.user.as_ref(), image_user).user;
    let project = cfg.project.as_str().to_string();
    let ha = cfg.ha_enabled;
    let mut secrets = vec![
        secret(
            "postgres_password",
            "POSTGRES_PASSWORD",
            &cfg.postgres.password,
        ),
        secret("redis_password", "REDIS_PASSWORD", &cfg.redis.password),
        secret("session_secret", "SESSION_SECRET", &cfg.session_secret),
        secret("encryption_key", "ENCRYPTION_KEY", &cfg.encryption_key),
    ];
    if let Some(token) = &cfg.app.github_token {
        secrets.push(secret("github_token", "GITHUB_TOKEN", token));
    }

    let instances: Vec<templates::Upstream> = (1..=cfg.app.instances.get())
        .map(|n| templates::Upstream {
            host: format!("app-{n}"),
            port: cfg.app.port.get(),
        })
        .collect();
    let nginx = templates::NginxVars {
        upstream: "app".into(),
        strategy: match cfg.lb_strategy {
            LbStrategy::LeastConn => "least_conn",
            LbStrategy::RoundRobin => "round_robin",
            LbStrategy::IpHash => "ip_hash",
        }
        .into(),
        instances,
        listen_port: NGINX_PORT,
        swarm: false,
        tls: cfg.tls.as_ref().map(|t| {
            let (certificate, key) = match tls {
                Some(m) => (
                    format!("{}/fullchain.pem", m.dir()),
                    format!("{}/privkey.pem", m.dir()),
                ),
                None => (secret_path(TLS_CHAIN_SECRET), secret_path(TLS_KEY_SECRET)),
            };
            let port = t.https_port.get();
            templates::NginxTls {
                listen_port: NGINX_TLS_PORT,
                port_suffix: if port == 443 {
                    String::new()
                } else {
                    format!(":{port}")
                },
                certificate,
                key,
                hsts: t.hsts,
                acme_thumbprint: tls.and_then(|m| m.acme_thumbprint.clone()),
            }
        }),
    };
    let mut files = vec![
        ConfigFile {
            name: "nginx.conf".into(),
            path: "nginx/nginx.conf".into(),
            content: templates::nginx_conf(&nginx),
        },
        ConfigFile {
            name: "sticky-sessions.conf.example".into(),
            path: "nginx/conf.d/sticky-sessions.conf.example".into(),
            content: templates::sticky_example(&nginx),
        },
    ];
    // Written even without HA, so the file a reviewer reads exists; only the HA profile uses it.
    files.push(ConfigFile {
        name: "sentinel.conf".into(),
        path: "redis/sentinel.conf".into(),
        content: templates::sentinel_conf(&templates::SentinelVars {
            sentinels: SENTINELS,
            master_name: cfg.sentinel.master_name.clone(),
            master_host: "redis".into(),
            master_port: REDIS_PORT,
            quorum: cfg.sentinel.quorum,
            down_after_ms: cfg.sentinel.down_after_ms,
            failover_timeout_ms: cfg.sentinel.failover_timeout_ms,
        }),
    });

    let mut containers = vec![postgres(cfg), redis("redis", Role::Redis, None, cfg)];
    let mut volumes = vec!["postgres-data".to_string(), "redis-data".to_string()];
    if ha {
        containers.push(redis(
            "redis-replica",
            Role::RedisReplica,
            Some("redis"),
            cfg,
        ));
        volumes.push("redis-replica-data".into());
        containers.extend((1..=SENTINELS).map(|n| sentinel(n, cfg)));
    }
    for n in 1..=cfg.app.instances.get() {
        containers.push(app(n, cfg, user.clone()));
        volumes.push(format!("app-{n}-logs"));
    }
    containers.push(nginx_container(cfg));
    volumes.push(MAINTENANCE_VOLUME.into());

    Deployment {
        network: format!("{project}_default"),
        project,
        containers,
        volumes,
        secrets,
        files,
        nginx,
        release: release(cfg, user),
        tls: cfg.tls.as_ref().and(tls.cloned()),
    }
}

fn secret(name: &str, env_var: &str, value: &Secret) -> SecretSpec {
    SecretSpec {
        name: name.into(),
        env_var: env_var.into(),
        value: value.clone(),
    }
}

fn base(role: Role, number: u32, alias: String, image: &str) -> Container {
    Container {
        role,
        number,
        alias,
        image: image.into(),
        command: None,
        user: None,
        env: BTreeMap::new(),
        secrets: vec![],
        files: vec![],
        volumes: vec![],
        healthcheck: None,
        nano_cpus: 1_000_000_000,
        memory_bytes: 256 << 20,
        published: vec![],
        no_new_privileges: true,
        sysctls: BTreeMap::new(),
        stop_grace_secs: 10,
        depends_on: vec![],
        profile: None,
    }
}

fn postgres(cfg: &Config) -> Container {
    let pg = &cfg.postgres;
    let mut c = base(Role::Postgres, 1, "postgres".into(), pg.image.as_str());
    c.command = Some(vec![
        "postgres".into(),
        "-c".into(),
        format!("max_connections={}", pg.max_connections),
    ]);
    c.env = BTreeMap::from([
        ("POSTGRES_USER".into(), pg.user.clone()),
        ("POSTGRES_DB".into(), pg.db.clone()),
        (
            "POSTGRES_PASSWORD_FILE".into(),
            secret_path("postgres_password"),
        ),
        ("PGDATA".into(), "/var/lib/postgresql/data".into()),
    ]);
    c.secrets = vec!["postgres_password".into()];
    c.volumes = vec![VolumeMount {
        volume: "postgres-data".into(),
        target: "/var/lib/postgresql/data".into(),
    }];
    // Over TCP on purpose: during first-time initialisation the image runs a temporary server
    // on the unix socket only, which must not count as ready.
    c.healthcheck = Some(healthcheck(
        vec![
            "CMD".into(),
            "pg_isready".into(),
            "-h".into(),
            "127.0.0.1".into(),
            "-U".into(),
            pg.user.clone(),
            "-d".into(),
            pg.db.clone(),
        ],
        30 * SECOND_MS,
    ));
    c.memory_bytes = 1 << 30;
    c.stop_grace_secs = 30;
    c
}

fn redis(alias: &str, role: Role, replica_of: Option<&str>, cfg: &Config) -> Container {
    let mut c = base(role, 1, alias.into(), cfg.redis.image.as_str());
    c.command = Some(redis_command(alias, replica_of));
    c.user = Some("redis".into());
    c.secrets = vec!["redis_password".into()];
    c.volumes = vec![VolumeMount {
        volume: format!("{alias}-data"),
        target: "/data".into(),
    }];
    c.healthcheck = Some(redis_healthcheck(REDIS_PORT));
    c.nano_cpus = 500_000_000;
    if let Some(master) = replica_of {
        // Not on the master: adding HA must not recreate it (its sessions would go).
        bounded_name_lookups(&mut c);
        c.depends_on = vec![master.into()];
        c.profile = Some(HA_PROFILE);
    }
    c
}

/// Redis and Sentinel resolve names in their one event loop, blocking, and re-resolve a stopped
/// or lost master's name every second; Docker's DNS passes a name it does not know (a stopped
/// container's) to the host's resolver. When that resolver is slow to answer, glibc waits 5 s,
/// twice, per lookup: a replica blocked that long answers the Sentinels' INFO too late to be
/// promoted ("-failover-abort-no-good-slave"), and a Sentinel stalls past its 2 s TILT
/// threshold. One second, once, keeps both answering; the names they need are Docker's own,
/// answered at once.
fn bounded_name_lookups(c: &mut Container) {
    c.env
        .insert("RES_OPTIONS".into(), "timeout:1 attempts:1".into());
}

fn sentinel(n: u32, cfg: &Config) -> Container {
    let alias = format!("sentinel-{n}");
    let mut c = base(Role::Sentinel, n, alias.clone(), cfg.redis.image.as_str());
    // Each Sentinel needs its own writable config: it rewrites it as it learns the topology.
    // The copy is kept across restarts so a restarted Sentinel remembers a failover.
    // Its credentials are written anew at every start, from the secret file, never kept: the
    // Sentinels answer only with the password (`requirepass`), give it to each other
    // (`sentinel sentinel-pass`) and to Redis (`auth-pass`). Sentinel's own rewrite stores
    // them unquoted (a password with a space would no longer load) and adds a `user default`
    // line with the password's hash, which would outlive a new password: all dropped first.
    // The password is Redis's own, not one of the Sentinels': whoever may command the
    // Sentinels can point every client at a master of their choosing (`SENTINEL REMOVE` and
    // `MONITOR`) and collect Redis's password from the clients' AUTH, so a second secret
    // would guard nothing more, and everything that talks to the Sentinels holds this one.
    // Peers it knows whose names do not resolve now (a Sentinel or replica not running, or on
    // a lost node) are forgotten before it starts: Sentinel cannot load a config naming a host
    // it cannot resolve ("Failed to resolve hostname") and would never start again, and it
    // learns its peers anew from their hello messages.
    let script = format!(
        "set -eu; umask 077; conf=/data/sentinel.conf; \
         if [ ! -s \"$conf\" ]; then cp /etc/radar-deploy/sentinel.conf \"$conf.tmp\"; \
         printf 'sentinel announce-ip %s\\n' '{alias}' >> \"$conf.tmp\"; \
         mv \"$conf.tmp\" \"$conf\"; fi; \
         pw=\"$(sed 's/[\\\\\"]/\\\\&/g' {secret})\"; \
         sed -i -e '/^requirepass /d' -e '/^user default /d' -e '/^sentinel sentinel-pass /d' \
         -e '/^sentinel auth-pass /d' \"$conf\"; \
         printf 'requirepass \"%s\"\\nsentinel sentinel-pass \"%s\"\\nsentinel auth-pass %s \"%s\"\\n' \
         \"$pw\" \"$pw\" '{master}' \"$pw\" >> \"$conf\"; \
         for h in $(sed -n 's/^sentinel known-[a-z]* [^ ]* \\([^ ]*\\) .*/\\1/p' \"$conf\" | sort -u); do \
         timeout 3 getent hosts \"$h\" >/dev/null || sed -i \"/^sentinel known-[a-z]* [^ ]* $h /d\" \"$conf\"; done; \
         exec redis-sentinel \"$conf\"",
        master = cfg.sentinel.master_name,
        secret = secret_path("redis_password"),
    );
    c.command = Some(vec!["bash".into(), "-c".into(), script]);
    bounded_name_lookups(&mut c);
    c.user = Some("redis".into());
    c.secrets = vec!["redis_password".into()];
    c.files = vec![FileMount {
        file: "sentinel.conf".into(),
        target: "/etc/radar-deploy/sentinel.conf".into(),
        reload: false,
    }];
    c.healthcheck = Some(redis_healthcheck(SENTINEL_PORT));
    c.nano_cpus = 250_000_000;
    c.memory_bytes = 64 << 20;
    // Started once the replica is linked, so that the first INFO each Sentinel gets from the
    // master names the replica. Otherwise a Sentinel whose first INFO came before the replica's
    // link learns of it only from the next one, 10 s later: a master lost in between leaves it
    // knowing no replica, and when it wins the leader vote it aborts the failover
    // ("-failover-abort-no-good-slave") and leads again 2 x failover-timeout later, for as long
    // as it keeps winning (seen: 68 s, and 91 s in CI, instead of about 7 s).
    c.depends_on = vec!["redis".into(), "redis-replica".into()];
    c.profile = Some(HA_PROFILE);
    c
}

fn app(n: u32, cfg: &Config, user: Option<String>) -> Container {
    let app = &cfg.app;
    let mut c = base(Role::App, n, format!("app-{n}"), app.image.as_str());
    let mut env: BTreeMap<String, String> = app.passthrough.clone();
    env.extend([
        ("INSTANCE_ID".to_string(), format!("app-{n}")),
        ("PORT".into(), app.port.to_string()),
        ("LOG_LEVEL".into(), app.log_level.clone()),
        ("LOG_DIR".into(), APP_LOG_DIR.into()),
        ("DB_POOL_SIZE".into(), app.db_pool_size.to_string()),
        ("POSTGRES_HOST".into(), "postgres".into()),
        ("POSTGRES_PORT".into(), POSTGRES_PORT.to_string()),
        ("POSTGRES_USER".into(), cfg.postgres.user.clone()),
        ("POSTGRES_DB".into(), cfg.postgres.db.clone()),
        (
            "POSTGRES_PASSWORD_FILE".into(),
            secret_path("postgres_password"),
        ),
        ("REDIS_HOST".into(), "redis".into()),
        ("REDIS_PORT".into(), REDIS_PORT.to_string()),
        ("REDIS_PASSWORD_FILE".into(), secret_path("redis_password")),
        ("SESSION_SECRET_FILE".into(), secret_path("session_secret")),
        ("ENCRYPTION_KEY_FILE".into(), secret_path("encryption_key")),
    ]);
    c.secrets = strings(&[
        "postgres_password",
        "redis_password",
        "session_secret",
        "encryption_key",
    ]);
    if app.github_token.is_some() {
        env.insert("GITHUB_TOKEN_FILE".into(), secret_path("github_token"));
        c.secrets.push("github_token".into());
    }
    if cfg.ha_enabled {
        // The app asks the Sentinels for the master and follows failovers; REDIS_HOST stays as
        // the fallback for when no Sentinel answers.
        let sentinels: Vec<String> = (1..=SENTINELS)
            .map(|i| format!("sentinel-{i}:{SENTINEL_PORT}"))
            .collect();
        env.insert("REDIS_SENTINELS".into(), sentinels.join(","));
        env.insert("REDIS_MASTER_NAME".into(), cfg.sentinel.master_name.clone());
        // The Sentinels share Redis's password (see `sentinel`): the same secret file.
        env.insert(
            "REDIS_SENTINEL_PASSWORD_FILE".into(),
            secret_path("redis_password"),
        );
    }
    c.env = env;
    c.user = user;
    c.volumes = vec![VolumeMount {
        volume: format!("app-{n}-logs"),
        target: APP_LOG_DIR.into(),
    }];
    c.healthcheck = app.healthcheck.as_ref().map(|cmd| {
        let mut test = vec!["CMD".to_string()];
        test.extend(cmd.iter().cloned());
        healthcheck(test, 20 * SECOND_MS)
    });
    c.nano_cpus = app.cpus.0;
    c.memory_bytes = app.memory.0;
    c.stop_grace_secs = 15;
    c.depends_on = strings(&["postgres", "redis"]);
    c
}

/// The release command's container: an app instance's spec (image, environment, secrets,
/// user, network, limits, the same start order after Postgres and Redis) with the command as
/// its CMD — the image's ENTRYPOINT stays, as with `docker run IMAGE args...` — and nothing an
/// instance needs to serve: no healthcheck, no log volume, no restart (see `docker::spec`).
fn release(cfg: &Config, user: Option<String>) -> Option<Release> {
    let argv = cfg.app.release_command.clone()?;
    let mut c = app(1, cfg, user);
    c.role = Role::Release;
    c.alias = "release".into();
    c.command = Some(argv);
    c.env.insert("INSTANCE_ID".into(), "release".into());
    c.env.remove("LOG_DIR");
    c.volumes.clear();
    // The image's own HEALTHCHECK is switched off (`NONE`): a one-off is not a server, and on
    // Swarm a task judged unhealthy is killed, which would end a long migration half-way.
    c.healthcheck = Some(Healthcheck {
        test: vec!["NONE".into()],
        interval_ms: 0,
        timeout_ms: 0,
        retries: 0,
        start_period_ms: 0,
    });
    Some(Release {
        container: c,
        timeout_secs: cfg.app.release_timeout_secs,
        backup_first: cfg.backup_before_release,
    })
}

fn nginx_container(cfg: &Config) -> Container {
    let mut c = base(Role::Nginx, 1, "nginx".into(), cfg.nginx_image.as_str());
    c.files = vec![FileMount {
        file: "nginx.conf".into(),
        target: "/etc/nginx/nginx.conf".into(),
        reload: true,
    }];
    // The maintenance flag's volume (templates/nginx.conf.j2 says why a volume).
    c.volumes = vec![VolumeMount {
        volume: MAINTENANCE_VOLUME.into(),
        target: templates::MAINTENANCE_DIR.into(),
    }];
    c.published = vec![PublishedPort {
        host: cfg.http_port.get(),
        container: NGINX_PORT,
    }];
    if let Some(tls) = &cfg.tls {
        c.published.push(PublishedPort {
            host: tls.https_port.get(),
            container: NGINX_TLS_PORT,
        });
    }
    c.healthcheck = Some(healthcheck(
        probes::nginx_health_test(NGINX_PORT),
        10 * SECOND_MS,
    ));
    c.nano_cpus = 500_000_000;
    c.memory_bytes = 128 << 20;
    c.stop_grace_secs = 30;
    // nginx must resolve every upstream name when it loads its config.
    c.depends_on = (1..=cfg.app.instances.get())
        .map(|n| format!("app-{n}"))
        .collect();
    c.no_new_privileges = true;
    c
}

#[cfg(test)]
mod tests;

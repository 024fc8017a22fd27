//! One typed, validated configuration, merged from env file < process environment < flags.
//!
//! Validation collects every problem before it reports, so a user fixes a file in one pass.

pub mod secret;
pub mod source;
pub mod tls;
pub mod types;
pub mod vars;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use secret::Secret;
pub use source::{Origin, RawValues};
pub use tls::{CertSource, PublicHost, TlsConfig};
pub use types::{
    is_root_user, AppPath, ImageRef, InstanceCount, LbStrategy, MemoryBytes, NanoCpus, Port,
    ProjectName, Target, UserSpec,
};
use vars::{Need, APP_PASSTHROUGH_PREFIX};

/// Connections Postgres keeps back for administration beyond what the app pools may use.
pub const POSTGRES_RESERVED_CONNECTIONS: u32 = 10;
/// The HA profile always runs three Sentinels: a quorum of 2 needs a majority of 3.
pub const SENTINELS: u32 = 3;

#[derive(Debug, Clone)]
pub struct Config {
    pub project: ProjectName,
    pub http_port: Port,
    pub lb_strategy: LbStrategy,
    pub nginx_image: ImageRef,
    pub app: AppConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub session_secret: Secret,
    pub encryption_key: Secret,
    pub ha_enabled: bool,
    pub sentinel: SentinelConfig,
    /// `BACKUP_BEFORE_RELEASE`: `up` takes a backup (`backup::before_release`) before
    /// the release command runs.
    pub backup_before_release: bool,
    /// HTTPS at nginx; `None` is `TLS_MODE=off`.
    pub tls: Option<TlsConfig>,
    /// Env-file variables radar-deploy does not know (a misspelling, or a setting of another
    /// version): ignored, and reported as warnings (errors under `--strict`).
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub instances: InstanceCount,
    pub image: ImageRef,
    /// The Rust image that builds the reference app's image when `image` is the reference
    /// one and is missing or stale (src/app_image.rs).
    pub builder_image: ImageRef,
    pub port: Port,
    pub cpus: NanoCpus,
    pub memory: MemoryBytes,
    /// `None`: rely on the image's own HEALTHCHECK.
    pub healthcheck: Option<Vec<String>>,
    /// `APP_RELEASE_COMMAND` as argv (shell-words), `None` when empty: no release phase.
    pub release_command: Option<Vec<String>>,
    pub release_timeout_secs: u32,
    pub db_pool_size: u32,
    pub log_level: String,
    pub github_token: Option<Secret>,
    /// `APP_ENV_*` variables with the prefix removed.
    pub passthrough: BTreeMap<String, String>,
    /// `APP_USER`: `None` runs the image's own user (root becomes 65532, see `desired`).
    pub user: Option<UserSpec>,
    pub paths: AppPaths,
}

/// The paths of the app's HTTP contract (`APP_*_PATH`); `None`: that check is off (an empty
/// value), and reported as skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPaths {
    pub health: Option<AppPath>,
    pub ready: Option<AppPath>,
    pub live: Option<AppPath>,
    pub session: Option<AppPath>,
}

impl AppPaths {
    /// The balancer's own health: nginx answers it without asking an instance.
    pub const BALANCER_HEALTH: &'static str = "/health";
    /// Where the reference contract answers its health through the balancer (nginx owns
    /// `/health`), with the `instanceId` that served it.
    pub const REFERENCE_BACKEND: &'static str = "/health/backend";

    /// The reference app's paths (the defaults).
    pub fn reference() -> AppPaths {
        let p = |s: &str| Some(s.parse().expect("the default paths are valid"));
        AppPaths {
            health: p("/health"),
            ready: p("/health/ready"),
            live: p("/health/live"),
            session: p("/api/session"),
        }
    }

    /// The app's health as asked through the balancer: its own path, except `/health`, which
    /// nginx answers itself; the reference contract then answers at `/health/backend`.
    pub fn health_through_balancer(&self) -> Option<String> {
        self.health.as_ref().map(|p| {
            if p.as_str() == Self::BALANCER_HEALTH {
                Self::REFERENCE_BACKEND.to_string()
            } else {
                p.to_string()
            }
        })
    }

    /// The health, readiness and liveness paths as asked through the balancer, by variable;
    /// `None`: turned off.
    pub fn balancer_paths(&self) -> Vec<(&'static str, Option<String>)> {
        let s = |p: &Option<AppPath>| p.as_ref().map(ToString::to_string);
        vec![
            ("APP_HEALTH_PATH", self.health_through_balancer()),
            ("APP_READY_PATH", s(&self.ready)),
            ("APP_LIVE_PATH", s(&self.live)),
        ]
    }

    /// The path the load distribution and the drills' load ask through the balancer: one
    /// every instance answers cheaply and that shows who served it (the `instanceId` in its
    /// JSON, else nginx's upstream header). The health through the balancer, else liveness,
    /// else readiness; `None` when all three are off.
    pub fn load_path(&self) -> Option<String> {
        self.health_through_balancer()
            .or_else(|| self.live.as_ref().map(ToString::to_string))
            .or_else(|| self.ready.as_ref().map(ToString::to_string))
    }

    /// Why a check of `variable` did not run: its path is empty.
    pub fn off_reason(variable: &str) -> String {
        format!("{variable} is empty: the check is off")
    }
}

impl Default for AppPaths {
    fn default() -> Self {
        AppPaths::reference()
    }
}

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub image: ImageRef,
    pub user: String,
    pub db: String,
    pub password: Secret,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub image: ImageRef,
    pub password: Secret,
}

#[derive(Debug, Clone)]
pub struct SentinelConfig {
    pub master_name: String,
    pub quorum: u32,
    pub down_after_ms: u32,
    pub failover_timeout_ms: u32,
}

/// One thing wrong with the configuration: which variable, where it was set, what is wrong and
/// what to do. Never carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: String,
    pub origin: Option<Origin>,
    pub message: String,
    pub fix: String,
}

impl Problem {
    fn file(path: &Path, message: String, fix: &str) -> Problem {
        Problem {
            variable: "(env file)".into(),
            origin: Some(Origin::File {
                path: path.to_path_buf(),
                line: 0,
            }),
            message,
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.variable, self.message)?;
        match &self.origin {
            Some(Origin::File { path, line: 0 }) => write!(f, " ({})", path.display())?,
            Some(origin) => write!(f, " ({origin})")?,
            None => {}
        }
        write!(f, ": {}", self.fix)
    }
}

/// Every problem found, reported together.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub env_file: PathBuf,
    pub env_file_missing: bool,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        if self.env_file_missing {
            write!(
                f,
                "the env file {} does not exist: create one with strong secrets with `radar-deploy init`, or pass --env-file",
                self.env_file.display()
            )?;
        }
        Ok(())
    }
}

/// What the command line contributes on top of file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub ha: bool,
    pub instances: Option<u32>,
    /// `--strict` (or RADAR_STRICT): an unknown env-file variable is an error, not a warning.
    pub strict: bool,
}

/// The inputs of [`resolve`], gathered by the caller so resolving stays pure and testable.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub env_file: PathBuf,
    pub project: String,
    pub process_env: Vec<(String, String)>,
    pub overrides: Overrides,
}

impl Inputs {
    /// Inputs from the real process environment.
    pub fn from_process(env_file: PathBuf, project: String, overrides: Overrides) -> Inputs {
        Inputs {
            env_file,
            project,
            // `env::vars` panics on a variable that is not Unicode (possible on unix, and on
            // Windows with unpaired surrogates); such a name is none of ours, and such a value
            // is read lossily, so validation names it instead.
            process_env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into())))
                .collect(),
            overrides,
        }
    }
}

/// Reads the env file and merges all sources into a validated [`Config`].
pub fn resolve(inputs: &Inputs) -> Result<Config, ConfigError> {
    let Inputs {
        env_file,
        project,
        process_env,
        overrides,
    } = inputs;
    let mut problems = Vec::new();
    let mut raw = RawValues::default();
    let file_exists = raw.read_env_file(env_file, &mut problems);
    if !problems.is_empty() && raw.values.is_empty() {
        // Nothing could be read (an unreadable file, a wrong encoding): every "X is not set"
        // that would follow is a consequence, and would hide the one fix that matters.
        return Err(ConfigError {
            env_file: env_file.clone(),
            env_file_missing: false,
            problems,
        });
    }
    // Only the file's own names: the process environment is read for known names alone.
    let Overrides {
        ha,
        instances,
        strict,
    } = overrides;
    let unknown = unknown_variables(&raw, *strict);
    raw.read_process_env(process_env.iter().cloned());
    let warnings = if *strict {
        problems.extend(unknown);
        vec![]
    } else {
        unknown
    };
    if *ha {
        raw.set("HA_ENABLED", "true", Origin::Flag("--ha"));
    }
    if let Some(n) = instances {
        raw.set("APP_INSTANCES", n.to_string(), Origin::Flag("--instances"));
    }
    let project = match project.parse::<ProjectName>() {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(Problem {
                variable: "RADAR_PROJECT".into(),
                origin: Some(Origin::Flag("--project")),
                message: e,
                fix: "pass --project with a name like `reporadar` or `staging-2`".into(),
            });
            None
        }
    };
    let result = validate(&raw, &mut problems);
    match (project, result) {
        (Some(project), Some(partial)) if problems.is_empty() => {
            Ok(partial.into_config(project, warnings))
        }
        _ => Err(ConfigError {
            env_file: env_file.clone(),
            env_file_missing: !file_exists,
            problems,
        }),
    }
}

/// Everything but the project name; built only when every variable parsed.
struct Validated {
    http_port: Port,
    lb_strategy: LbStrategy,
    nginx_image: ImageRef,
    app: AppConfig,
    postgres: PostgresConfig,
    redis: RedisConfig,
    session_secret: Secret,
    encryption_key: Secret,
    ha_enabled: bool,
    sentinel: SentinelConfig,
    backup_before_release: bool,
    tls: Option<TlsConfig>,
}

impl Validated {
    fn into_config(self, project: ProjectName, warnings: Vec<Problem>) -> Config {
        let Validated {
            http_port,
            lb_strategy,
            nginx_image,
            app,
            postgres,
            redis,
            session_secret,
            encryption_key,
            ha_enabled,
            sentinel,
            backup_before_release,
            tls,
        } = self;
        Config {
            project,
            http_port,
            lb_strategy,
            nginx_image,
            app,
            postgres,
            redis,
            session_secret,
            encryption_key,
            ha_enabled,
            sentinel,
            backup_before_release,
            tls,
            warnings,
        }
    }
}

/// Every env-file variable that is neither radar-deploy's nor passed to the app
/// (`APP_ENV_*`), with the nearest known name when one is close.
fn unknown_variables(raw: &RawValues, strict: bool) -> Vec<Problem> {
    let mut unknown: Vec<Problem> = raw
        .values
        .iter()
        .filter(|(name, _)| {
            vars::lookup(name).is_none() && !name.starts_with(APP_PASSTHROUGH_PREFIX)
        })
        .map(|(name, v)| {
            let fix = match vars::nearest(name) {
                Some(known) => format!("did you mean {known}?"),
                // RADAR_PROJECT, RADAR_TARGET, …: the command line's own variables.
                None if name.starts_with("RADAR_") => format!(
                    "{name} is read from the process environment, as its flag is, not from the env file"
                ),
                None => format!(
                    "a variable for the app is written {APP_PASSTHROUGH_PREFIX}<NAME>; remove the line if it is not needed"
                ),
            };
            Problem {
                variable: name.clone(),
                origin: Some(v.origin.clone()),
                message: if strict {
                    "is not a radar-deploy variable (--strict)".into()
                } else {
                    "is not a radar-deploy variable, so it is ignored".into()
                },
                fix: format!("{fix} (every variable: docs/configuration.md)"),
            }
        })
        .collect();
    // In the file's order, as the user reads it.
    unknown.sort_by_key(|p| match &p.origin {
        Some(Origin::File { line, .. }) => *line,
        _ => 0,
    });
    unknown
}

/// Reads variables one by one, remembering every problem instead of stopping at the first.
struct Reader<'a> {
    raw: &'a RawValues,
    problems: &'a mut Vec<Problem>,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> (Option<String>, Option<Origin>) {
        // Every variable read must be in the table, so none goes undocumented: the unit tests
        // (debug builds) read every variable and would fail here.
        debug_assert!(
            vars::lookup(name).is_some(),
            "{name} is read but missing from config::vars::VARS"
        );
        match self.raw.get(name) {
            Some(v) => (Some(v.value.clone()), Some(v.origin.clone())),
            None => (None, None),
        }
    }

    fn problem(&mut self, name: &str, origin: Option<Origin>, message: String, fix: String) {
        self.problems.push(Problem {
            variable: name.into(),
            origin,
            message,
            fix,
        });
    }

    /// A value with a default from the variable table, parsed by `FromStr`.
    fn parse<T: std::str::FromStr<Err = String>>(&mut self, name: &str) -> Option<T> {
        let var = vars::lookup(name).expect("every variable read is in the table");
        let (value, origin) = self.raw(name);
        let value = match (value, var.need) {
            (Some(v), _) if !v.trim().is_empty() => v,
            (_, Need::Default(d)) => d.to_string(),
            _ => {
                self.problem(
                    name,
                    origin,
                    "is not set".into(),
                    format!("set {name} in the env file"),
                );
                return None;
            }
        };
        match value.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(
                    name,
                    origin,
                    e,
                    format!("correct {name}; see .env.multi-instance.example"),
                );
                None
            }
        }
    }

    fn number(&mut self, name: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
        let n: u32 = self.parse::<Number>(name)?.0;
        if range.contains(&n) {
            Some(n)
        } else {
            let origin = self.raw(name).1;
            self.problem(
                name,
                origin,
                format!(
                    "must be between {} and {} (got {n})",
                    range.start(),
                    range.end()
                ),
                format!("set {name} within that range"),
            );
            None
        }
    }

    /// A required plain value: a Postgres identifier.
    fn identifier(&mut self, name: &str) -> Option<String> {
        let (value, origin) = self.raw(name);
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            self.problem(
                name,
                origin,
                "is not set".into(),
                format!("set {name} in the env file (`radar-deploy init` writes one)"),
            );
            return None;
        };
        let valid = v.len() <= 63
            && v.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Some(v)
        } else {
            self.problem(
                name,
                origin,
                format!("is not a plain identifier (got {v:?})"),
                "use up to 63 lowercase letters, digits and _, starting with a letter".into(),
            );
            None
        }
    }

    fn secret(&mut self, name: &str, min_len: usize) -> Option<Secret> {
        let (value, origin) = self.raw(name);
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            self.problem(name, origin, "is not set".into(), format!("set {name} to a random value, or run `radar-deploy init` to generate all secrets"));
            return None;
        };
        match secret::weakness(&v, min_len) {
            None => Some(Secret::new(v)),
            Some(why) => {
                self.problem(name, origin, format!("is too weak: it {why}"), "generate one with `openssl rand -base64 32`, or run `radar-deploy init --force` to write new secrets".into());
                None
            }
        }
    }

    /// A value an empty setting turns off: `Some(None)` when set empty, the default when
    /// unset, `None` (with a problem) when it does not parse.
    fn optional<T: std::str::FromStr<Err = String>>(&mut self, name: &str) -> Option<Option<T>> {
        let var = vars::lookup(name).expect("every variable read is in the table");
        let (value, origin) = self.raw(name);
        let value = match (value, var.need) {
            (Some(v), _) => v,
            (None, Need::Default(d)) => d.to_string(),
            (None, _) => String::new(),
        };
        if value.trim().is_empty() {
            return Some(None);
        }
        match value.parse::<T>() {
            Ok(v) => Some(Some(v)),
            Err(e) => {
                self.problem(
                    name,
                    origin,
                    e,
                    format!("correct {name}, or set it empty to turn it off"),
                );
                None
            }
        }
    }

    fn flag(&mut self, name: &str) -> Option<bool> {
        self.parse::<Flag>(name).map(|f| f.0)
    }

    /// A path variable (empty: `None`), resolved against the env file that sets it.
    fn path(&mut self, name: &str) -> Option<PathBuf> {
        let (value, origin) = self.raw(name);
        value
            .filter(|v| !v.trim().is_empty())
            .map(|v| tls::resolve_path(&v, origin.as_ref()))
    }

    /// `TLS_MODE` and the variables it needs; `Some(None)` is off.
    fn tls(&mut self, http_port: Option<Port>) -> Option<Option<TlsConfig>> {
        let mode = self.parse::<tls::TlsMode>("TLS_MODE")?;
        let https_port = self.parse::<Port>("HTTPS_PORT");
        let hsts = self.flag("HSTS");
        let ca_file = self.path("ACME_CA_FILE");
        let (hosts_value, hosts_origin) = self.raw("PUBLIC_HOSTS");
        let hosts_value = hosts_value.unwrap_or_default();
        if mode == tls::TlsMode::Off {
            return Some(None);
        }
        let hosts = if hosts_value.trim().is_empty() {
            self.problem(
                "PUBLIC_HOSTS",
                hosts_origin,
                "is not set, and TLS_MODE needs the names the certificate is for".into(),
                "set PUBLIC_HOSTS to the DNS names clients use, e.g. PUBLIC_HOSTS=app.example.com"
                    .into(),
            );
            None
        } else {
            match tls::parse_hosts(&hosts_value) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.problem(
                        "PUBLIC_HOSTS",
                        hosts_origin,
                        e,
                        "list bare DNS names separated by commas".into(),
                    );
                    None
                }
            }
        };
        if let (Some(http), Some(https)) = (http_port, https_port) {
            if http == https {
                let origin = self.raw("HTTPS_PORT").1;
                self.problem(
                    "HTTPS_PORT",
                    origin,
                    format!("is the same port as HTTP_PORT ({})", http.get()),
                    "give HTTPS its own port (443 by default)".into(),
                );
            }
        }
        let source = match mode {
            tls::TlsMode::Files => {
                let need = |r: &mut Self, name: &str| {
                    let p = r.path(name);
                    if p.is_none() {
                        let origin = r.raw(name).1;
                        r.problem(
                            name,
                            origin,
                            "is not set, and TLS_MODE=files needs it".into(),
                            format!("set {name} to the PEM file's path (relative to the env file), or use TLS_MODE=acme"),
                        );
                    }
                    p
                };
                let cert_file = need(self, "TLS_CERT_FILE");
                let key_file = need(self, "TLS_KEY_FILE");
                Some(CertSource::Files {
                    cert_file: cert_file?,
                    key_file: key_file?,
                })
            }
            _ => {
                // HTTP-01 proves control of one name by one HTTP request to it; a wildcard
                // has no such name (RFC 8555 7.1.3: DNS-01 only), so the CA would refuse it.
                if let Some(wild) = hosts.iter().flatten().find(|h| h.0.starts_with("*.")) {
                    let origin = self.raw("PUBLIC_HOSTS").1;
                    self.problem(
                        "PUBLIC_HOSTS",
                        origin,
                        format!("names the wildcard {}, which an ACME CA issues only over DNS-01; radar-deploy answers HTTP-01", wild.0),
                        "list each name (app.example.com,www.example.com), or use TLS_MODE=files with a wildcard certificate of your own".into(),
                    );
                }
                let directory_url = self.parse::<DirectoryUrl>("ACME_DIRECTORY_URL");
                let email = self.optional::<Email>("ACME_EMAIL");
                Some(CertSource::Acme {
                    directory_url: directory_url?.0,
                    email: email?.map(|e| e.0),
                })
            }
        };
        Some(Some(TlsConfig {
            source: source?,
            hosts: hosts?,
            https_port: https_port?,
            ca_file,
            hsts: hsts?,
        }))
    }
}

/// An ACME directory: an https URL (RFC 8555 requires TLS; a test CA serves it too).
struct DirectoryUrl(String);
impl std::str::FromStr for DirectoryUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with("https://") && s.len() > "https://".len() {
            Ok(DirectoryUrl(s.to_string()))
        } else {
            Err(format!(
                "must be the https:// URL of an ACME directory (got {s:?})"
            ))
        }
    }
}

struct Email(String);
impl std::str::FromStr for Email {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.split_once('@') {
            Some((user, domain))
                if !user.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace) =>
            {
                Ok(Email(s.to_string()))
            }
            _ => Err(format!("is not an e-mail address (got {s:?})")),
        }
    }
}

struct Number(u32);
impl std::str::FromStr for Number {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse()
            .map(Number)
            .map_err(|_| format!("must be a whole number (got {s:?})"))
    }
}

struct Flag(bool);
impl std::str::FromStr for Flag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Flag(true)),
            "false" | "0" | "no" | "off" => Ok(Flag(false)),
            _ => Err(format!("must be true or false (got {s:?})")),
        }
    }
}

/// The reference app's probe, `APP_HEALTHCHECK=auto` for its image.
const REFERENCE_HEALTHCHECK: [&str; 2] = ["/radar-app", "healthcheck"];

/// `APP_HEALTHCHECK`: `auto`, `none` (the image's own), or a command (`None`: the image's own).
enum Healthcheck {
    Auto,
    Command(Option<Vec<String>>),
}
impl std::str::FromStr for Healthcheck {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Healthcheck::Auto),
            "none" => Ok(Healthcheck::Command(None)),
            "" => Err("must be `auto`, `none` or a command".into()),
            cmd => Ok(Healthcheck::Command(Some(
                cmd.split_whitespace().map(String::from).collect(),
            ))),
        }
    }
}

impl Healthcheck {
    /// The command; `auto` here is the reference image's (any other image's was resolved to its
    /// own HEALTHCHECK above).
    fn command(self) -> Option<Vec<String>> {
        match self {
            Healthcheck::Command(c) => c,
            Healthcheck::Auto => Some(
                REFERENCE_HEALTHCHECK
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
            ),
        }
    }
}

struct ReleaseCommand(Option<Vec<String>>);
impl std::str::FromStr for ReleaseCommand {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(ReleaseCommand(None));
        }
        // Split as a POSIX shell would, but run without one: the app image may have no shell.
        match shell_words::split(s) {
            Ok(argv) if !argv.is_empty() => Ok(ReleaseCommand(Some(argv))),
            Ok(_) => Ok(ReleaseCommand(None)),
            Err(e) => Err(format!("cannot be split into arguments ({e})")),
        }
    }
}

struct LogLevel(String);
impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if !s.is_empty()
            && s.len() <= 32
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-,=:".contains(c))
        {
            Ok(LogLevel(s.to_string()))
        } else {
            Err(format!(
                "must be a log level such as info or debug (got {s:?})"
            ))
        }
    }
}

struct MasterName(String);
impl std::str::FromStr for MasterName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if valid {
            Ok(MasterName(s.to_string()))
        } else {
            Err(format!("must be letters, digits, _ - or . (got {s:?})"))
        }
    }
}

/// Whether `image` is the reference app's image: the repository `radar-deploy/radar-app` with a
/// tag or none (a name with a registry host is someone's copy, pulled like any image). A digest reference
/// names one exact image, which no build can produce, so it is not one to build.
pub fn is_reference_app(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    let repository = match image[last_slash..].rfind(':') {
        Some(i) => &image[..last_slash + i],
        None => image,
    };
    repository == vars::REFERENCE_APP_REPOSITORY
}

fn validate(raw: &RawValues, problems: &mut Vec<Problem>) -> Option<Validated> {
    let mut r = Reader { raw, problems };
    let http_port = r.parse::<Port>("HTTP_PORT");
    let lb_strategy = r.parse::<LbStrategy>("LB_STRATEGY");
    let nginx_image = r.parse::<ImageRef>("NGINX_IMAGE");
    let instances = r.parse::<InstanceCount>("APP_INSTANCES");
    let app_image = r.parse::<ImageRef>("APP_IMAGE");
    let app_builder_image = r.parse::<ImageRef>("APP_BUILDER_IMAGE");
    let app_port = r.parse::<Port>("APP_PORT");
    let cpus = r.parse::<NanoCpus>("APP_CPUS");
    let memory = r.parse::<MemoryBytes>("APP_MEMORY");
    // `auto` (the default): the reference app's own probe for its image, which no other image
    // has; an app image of one's own keeps its image's HEALTHCHECK.
    let healthcheck = r
        .parse::<Healthcheck>("APP_HEALTHCHECK")
        .map(|h| match (h, &app_image) {
            (Healthcheck::Auto, Some(image)) if !is_reference_app(image.as_str()) => {
                Healthcheck::Command(None)
            }
            (h, _) => h,
        });
    let release_command = r.parse::<ReleaseCommand>("APP_RELEASE_COMMAND");
    let release_timeout_secs = r.number("APP_RELEASE_TIMEOUT", 1..=86_400);
    let db_pool_size = r.number("DB_POOL_SIZE", 1..=100);
    let log_level = r.parse::<LogLevel>("LOG_LEVEL");
    let app_user = r.optional::<UserSpec>("APP_USER");
    let health_path = r.optional::<AppPath>("APP_HEALTH_PATH");
    let ready_path = r.optional::<AppPath>("APP_READY_PATH");
    let live_path = r.optional::<AppPath>("APP_LIVE_PATH");
    let session_path = r.optional::<AppPath>("APP_SESSION_PATH");
    let github_token = r
        .raw("GITHUB_TOKEN")
        .0
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    let postgres_image = r.parse::<ImageRef>("POSTGRES_IMAGE");
    let postgres_user = r.identifier("POSTGRES_USER");
    let postgres_db = r.identifier("POSTGRES_DB");
    let postgres_password = r.secret("POSTGRES_PASSWORD", 16);
    let max_connections = r.number("POSTGRES_MAX_CONNECTIONS", 20..=10_000);
    let redis_image = r.parse::<ImageRef>("REDIS_IMAGE");
    let redis_password = r.secret("REDIS_PASSWORD", 16);
    let session_secret = r.secret("SESSION_SECRET", 32);
    let encryption_key = r.secret("ENCRYPTION_KEY", 32);
    let ha_enabled = r.flag("HA_ENABLED");
    let backup_before_release = r.flag("BACKUP_BEFORE_RELEASE");
    let master_name = r.parse::<MasterName>("REDIS_MASTER_NAME");
    let quorum = r.number("SENTINEL_QUORUM", 1..=SENTINELS);
    let down_after_ms = r.number("SENTINEL_DOWN_AFTER_MS", 100..=600_000);
    let failover_timeout_ms = r.number("SENTINEL_FAILOVER_TIMEOUT_MS", 1_000..=3_600_000);
    let tls = r.tls(http_port);

    // Rules across variables.
    if let (Some(n), Some(pool), Some(max)) = (instances, db_pool_size, max_connections) {
        let needed = n.get() * pool;
        let usable = max.saturating_sub(POSTGRES_RESERVED_CONNECTIONS);
        if needed > usable {
            let origin = r.raw("APP_INSTANCES").1;
            r.problem(
                "APP_INSTANCES",
                origin,
                format!("x DB_POOL_SIZE needs {n} x {pool} = {needed} Postgres connections, but POSTGRES_MAX_CONNECTIONS={max} leaves {usable} ({POSTGRES_RESERVED_CONNECTIONS} are kept for administration)", n = n.get()),
                format!("lower APP_INSTANCES or DB_POOL_SIZE, or raise POSTGRES_MAX_CONNECTIONS to at least {}", needed + POSTGRES_RESERVED_CONNECTIONS),
            );
        }
    }
    if let (Some(a), Some(b)) = (&postgres_password, &redis_password) {
        if a == b {
            r.problem(
                "REDIS_PASSWORD",
                r.raw.get("REDIS_PASSWORD").map(|v| v.origin.clone()),
                "is the same as POSTGRES_PASSWORD".into(),
                "use a different random value for each secret".into(),
            );
        }
    }

    let passthrough: BTreeMap<String, String> = raw
        .values
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(APP_PASSTHROUGH_PREFIX)
                .map(|name| (name.to_string(), v.value.clone()))
        })
        .collect();
    for name in passthrough.keys() {
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let origin = raw
                .get(&format!("{APP_PASSTHROUGH_PREFIX}{name}"))
                .map(|v| v.origin.clone());
            problems.push(Problem {
                variable: format!("{APP_PASSTHROUGH_PREFIX}{name}"),
                origin,
                message: "does not name a valid environment variable after the prefix".into(),
                fix: "use APP_ENV_ followed by letters, digits and _".into(),
            });
        }
    }

    Some(Validated {
        http_port: http_port?,
        lb_strategy: lb_strategy?,
        nginx_image: nginx_image?,
        app: AppConfig {
            instances: instances?,
            image: app_image?,
            builder_image: app_builder_image?,
            port: app_port?,
            cpus: cpus?,
            memory: memory?,
            healthcheck: healthcheck?.command(),
            release_command: release_command?.0,
            release_timeout_secs: release_timeout_secs?,
            db_pool_size: db_pool_size?,
            log_level: log_level?.0,
            github_token,
            passthrough,
            user: app_user?,
            paths: AppPaths {
                health: health_path?,
                ready: ready_path?,
                live: live_path?,
                session: session_path?,
            },
        },
        postgres: PostgresConfig {
            image: postgres_image?,
            user: postgres_user?,
            db: postgres_db?,
            password: postgres_password?,
            max_connections: max_connections?,
        },
        redis: RedisConfig {
            image: redis_image?,
            password: redis_password?,
        },
        session_secret: session_secret?,
        encryption_key: encryption_key?,
        ha_enabled: ha_enabled?,
        sentinel: SentinelConfig {
            master_name: master_name?.0,
            quorum: quorum?,
            down_after_ms: down_after_ms?,
            failover_timeout_ms: failover_timeout_ms?,
        },
        backup_before_release: backup_before_release?,
        tls: tls?,
    })
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

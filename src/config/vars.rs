//! The table of every configuration variable: its name, default and meaning.
//!
//! This table is the single source for `.env.multi-instance.example`, for `init` and for the
//! configuration reference, so a variable cannot exist without being documented.

/// How a variable must be supplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Has a default; setting it is optional.
    Default(&'static str),
    /// Must be set; not a secret (e.g. a database user name).
    Required,
    /// Must be set, must be strong, is never printed.
    Secret,
    /// Optional secret (e.g. an API token): never printed, no strength rule.
    OptionalSecret,
}

#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    pub need: Need,
    pub group: &'static str,
    pub doc: &'static str,
}

const fn var(name: &'static str, need: Need, group: &'static str, doc: &'static str) -> Var {
    Var {
        name,
        need,
        group,
        doc,
    }
}

use Need::*;

/// The repository of the reference app's image; with any tag, `up` builds it when it is missing
/// or was built from another source than the one this binary carries (src/app_image.rs).
pub const REFERENCE_APP_REPOSITORY: &str = "radar-deploy/radar-app";

/// The default app image: the reference app this project ships (`app/`).
pub const REFERENCE_APP_IMAGE: &str = "radar-deploy/radar-app:0.1.0";

/// The default image that builds the reference app: the official Rust image (Debian, like the
/// other defaults), which has cargo, gcc and glibc's static libraries.
pub const DEFAULT_APP_BUILDER_IMAGE: &str = "rust:1-bookworm";

pub const VARS: &[Var] = &[
    var("HTTP_PORT", Default("80"), "Load balancer", "Host port nginx publishes (1..=65535). The only published port of the stack."),
    var("LB_STRATEGY", Default("least_conn"), "Load balancer", "nginx balancing: least_conn | round_robin | ip_hash (ip_hash pins a client to an instance; not needed with Redis sessions)."),
    var("NGINX_IMAGE", Default("nginx:stable-bookworm"), "Load balancer", "nginx image (official Debian-based by default; scripts/offline-images.sh builds a local one)."),
    var("APP_INSTANCES", Default("3"), "App", "Number of app instances behind nginx (1..=64)."),
    var("APP_IMAGE", Default(REFERENCE_APP_IMAGE), "App", "The app image. Defaults to the reference app, which `up` builds inside Docker from the source radar-deploy carries when it is missing or out of date (any tag of radar-deploy/radar-app)."),
    var("APP_BUILDER_IMAGE", Default(DEFAULT_APP_BUILDER_IMAGE), "App", "Rust image (cargo, gcc, libc6-dev) that builds the reference app image for the daemon's architecture. Without a registry name a local one: scripts/offline-images.sh makes radar-offline/rust:bookworm with vendored crates."),
    var("APP_PORT", Default("3000"), "App", "Port the app listens on inside its container (1..=65535)."),
    var("APP_CPUS", Default("0.5"), "App", "CPU limit per instance, in CPUs (e.g. 0.5)."),
    var("APP_MEMORY", Default("256m"), "App", "Memory limit per instance (bytes, or with k/m/g suffix; at least 16m)."),
    var("APP_USER", Default(""), "App", "User the app runs as (name, uid, name:group or uid:gid). Empty: the image's own user; an image whose user is root (or unset) then runs as 65532:65532 unless this says `root`. `up --dry-run` shows which user and why."),
    var("APP_HEALTHCHECK", Default("auto"), "App", "Command Docker runs inside each instance to probe it (split on spaces); `none` uses the image's own HEALTHCHECK; `auto` is the reference app's `/radar-app healthcheck` for its image and the image's own HEALTHCHECK for any other APP_IMAGE."),
    var("APP_RELEASE_COMMAND", Default(""), "App", "Command run once per `up` that brings a new app image or configuration (e.g. `migrate`), before any instance of it starts: in a one-off container of the new image with the app's environment, secrets, network and user, once Postgres and Redis are ready. Split into arguments as a shell would (quotes, backslashes), but run without one: the arguments replace the image's CMD and keep its ENTRYPOINT, like `docker run IMAGE args...`. A non-zero exit stops `up` (exit 2) with nothing replaced. Empty: no release phase."),
    var("APP_RELEASE_TIMEOUT", Default("600"), "App", "Seconds the release command may run (1..=86400); past that it is stopped and `up` fails as for a non-zero exit."),
    var("DB_POOL_SIZE", Default("4"), "App", "Postgres connections each instance may hold; APP_INSTANCES x DB_POOL_SIZE must fit in POSTGRES_MAX_CONNECTIONS."),
    var("LOG_LEVEL", Default("info"), "App", "Passed to the app as LOG_LEVEL."),
    var("GITHUB_TOKEN", OptionalSecret, "App", "Optional token passed to the app as a secret file (GITHUB_TOKEN_FILE)."),
    var("APP_HEALTH_PATH", Default("/health"), "App paths", "The app's health path, asked of each instance by `verify`. Through the balancer nginx answers /health itself, so with /health the app's health is asked there at /health/backend (the reference contract, which also names the instance); any other path is asked as is. Empty turns the check off (reported as skipped)."),
    var("APP_READY_PATH", Default("/health/ready"), "App paths", "Readiness path: 200 only when the app's dependencies are usable. Asked of each instance and through the balancer; empty turns the check off."),
    var("APP_LIVE_PATH", Default("/health/live"), "App paths", "Liveness path: 200 while the process runs. Asked of each instance and through the balancer; empty turns the check off."),
    var("APP_SESSION_PATH", Default("/api/session"), "App paths", "Session path: JSON with sessionId, a per-session counter `views` and instanceId, behind a cookie. Verify's session check and the drills' session client use it; empty turns them off (an app without sessions)."),
    var("POSTGRES_IMAGE", Default("postgres:15-bookworm"), "PostgreSQL", "Postgres image (official Debian-based by default)."),
    var("POSTGRES_USER", Required, "PostgreSQL", "Database user the app connects as."),
    var("POSTGRES_DB", Required, "PostgreSQL", "Database name."),
    var("POSTGRES_PASSWORD", Secret, "PostgreSQL", "Database password (at least 16 characters, random)."),
    var("POSTGRES_MAX_CONNECTIONS", Default("300"), "PostgreSQL", "Postgres max_connections; 10 are kept back for administration."),
    var("REDIS_IMAGE", Default("redis:7.2-bookworm"), "Redis", "Redis image, also used for the replica and the Sentinels (official Debian-based by default)."),
    var("REDIS_PASSWORD", Secret, "Redis", "Password of the Redis master and replica (requirepass and masterauth), and of the Sentinels (their requirepass, and how they authenticate to each other)."),
    var("SESSION_SECRET", Secret, "Secrets", "Key that signs session cookies (at least 32 characters)."),
    var("ENCRYPTION_KEY", Secret, "Secrets", "Application encryption key (at least 32 characters)."),
    var("HA_ENABLED", Default("false"), "High availability", "true adds a Redis replica and three Sentinels (same as --ha)."),
    var("REDIS_MASTER_NAME", Default("mymaster"), "High availability", "Name the Sentinels monitor the master under."),
    var("SENTINEL_QUORUM", Default("2"), "High availability", "Sentinels that must agree the master is down (1..=3; 2 is a majority of the three)."),
    var("SENTINEL_DOWN_AFTER_MS", Default("5000"), "High availability", "Milliseconds without a reply before a Sentinel considers the master down."),
    var("SENTINEL_FAILOVER_TIMEOUT_MS", Default("10000"), "High availability", "Sentinel failover-timeout in milliseconds."),
    var("TLS_MODE", Default("off"), "HTTPS", "off | files | acme. files: nginx serves TLS_CERT_FILE and TLS_KEY_FILE, checked before anything is created (key matches, chain order, dates, PUBLIC_HOSTS covered). acme: radar-deploy obtains and renews a certificate from ACME_DIRECTORY_URL over HTTP-01, answered by nginx itself, so HTTP_PORT must be reachable as port 80 of every PUBLIC_HOSTS name. Either way HTTP redirects to HTTPS, except the ACME challenge path and /health."),
    var("PUBLIC_HOSTS", Default(""), "HTTPS", "Comma-separated DNS names clients use (e.g. app.example.com,www.example.com); required when TLS_MODE is not off. The certificate must cover each, and `verify` checks each."),
    var("HTTPS_PORT", Default("443"), "HTTPS", "Host port nginx publishes for HTTPS (1..=65535, not HTTP_PORT)."),
    var("TLS_CERT_FILE", Default(""), "HTTPS", "TLS_MODE=files: PEM certificate chain, leaf first, then intermediates. A relative path is relative to the env file. Read by radar-deploy and uploaded into nginx, never a bind mount or an environment variable; changing the file and running `up` reloads nginx."),
    var("TLS_KEY_FILE", Default(""), "HTTPS", "TLS_MODE=files: the PEM private key of the certificate (PKCS#8, or the traditional EC/RSA form). Never printed."),
    var("ACME_DIRECTORY_URL", Default(crate::config::tls::LETS_ENCRYPT_DIRECTORY), "HTTPS", "TLS_MODE=acme: the CA's ACME directory (Let's Encrypt's production one by default; its staging directory or a private CA such as step-ca or pebble work the same)."),
    var("ACME_EMAIL", Default(""), "HTTPS", "TLS_MODE=acme: contact address given to the CA for expiry notices (optional)."),
    var("ACME_CA_FILE", Default(""), "HTTPS", "PEM file of extra CA certificates to trust: for reaching a private ACME_DIRECTORY_URL, and for `verify` to accept certificates a private or test CA issued."),
    var("HSTS", Default("false"), "HTTPS", "true adds Strict-Transport-Security (max-age one year) to HTTPS answers. Browsers then refuse plain HTTP to PUBLIC_HOSTS for a year: turn it on once HTTPS works."),
    var("BACKUP_BEFORE_RELEASE", Default("false"), "Backups", "true takes a backup (as `radar-deploy backup` does, into the current directory) before each run of the release command; `up` names the file. A failed backup stops `up` before anything is changed. One Docker host only: `up --target swarm` refuses it."),
];

/// Variables whose value is passed to the app unchanged, with the prefix removed
/// (`APP_ENV_FEATURE_X=1` reaches the app as `FEATURE_X=1`).
pub const APP_PASSTHROUGH_PREFIX: &str = "APP_ENV_";

pub fn lookup(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name == name)
}

/// The known variable an unknown name most likely meant: the same letters in another case, or
/// within two edits (a transposition is one: HTTP_PROT → HTTP_PORT) of a name of similar
/// length. `None` when nothing is that close, rather than a guess that misleads.
pub fn nearest(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if let Some(v) = lookup(&upper) {
        return Some(v.name);
    }
    VARS.iter()
        .map(|v| (strsim::damerau_levenshtein(&upper, v.name), v.name))
        .filter(|(d, known)| *d <= 2 && *d < known.len() / 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// The text of `.env.multi-instance.example`: every variable, grouped, with its default.
/// Required values carry a placeholder that validation refuses, so the example cannot be
/// deployed as is by accident.
pub fn example_file() -> String {
    let mut out = String::from(
        "# radar-deploy configuration. Generate a ready-to-use file with strong secrets:\n\
         #   radar-deploy init\n\
         # Precedence: this file < process environment < command-line flags.\n\
         # Any APP_ENV_<NAME>=value is passed to the app as <NAME>=value.\n",
    );
    let mut group = "";
    for v in VARS {
        if v.group != group {
            group = v.group;
            out.push_str(&format!("\n# --- {group} ---\n"));
        }
        out.push_str(&format!("# {}\n", v.doc));
        let value = match v.need {
            Default(d) => d.to_string(),
            Required => placeholder(v.name).to_string(),
            Secret => placeholder(v.name).to_string(),
            OptionalSecret => String::new(),
        };
        out.push_str(&format!("{}={}\n", v.name, dotenv_quote(&value)));
    }
    out
}

/// A value as dotenv syntax needs it: single-quoted when it holds spaces, quotes, `#` or `$`.
pub fn dotenv_quote(value: &str) -> String {
    if value
        .chars()
        .any(|c| c.is_whitespace() || "#'\"$\\".contains(c))
    {
        format!("'{}'", value.replace('\'', "'\\''"))
    } else {
        value.to_string()
    }
}

/// The configuration reference as Markdown (`docs/configuration.md`), generated from this
/// table so the documentation and the tool cannot disagree (a test compares them).
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the tool's own variable table (`src/config/vars.rs`); a test fails when\n\
         this page and the tool disagree. Values are read from the env file (default\n\
         `.env.multi-instance`), then the process environment, then command-line flags.\n\
         `APP_ENV_<NAME>=value` is passed to the app as `<NAME>=value`. Any other name in the env\n\
         file is ignored with a warning naming the nearest known one, or refused with `--strict`\n\
         (`RADAR_STRICT=true`).\n",
    );
    let mut group = "";
    for v in VARS {
        if v.group != group {
            group = v.group;
            out.push_str(&format!(
                "\n## {group}\n\n| variable | default | meaning |\n|---|---|---|\n"
            ));
        }
        let default = match v.need {
            Default(d) => format!("`{d}`"),
            Required => "required".to_string(),
            Secret => "required secret".to_string(),
            OptionalSecret => "optional secret".to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {default} | {} |\n",
            v.name,
            v.doc.replace('|', "\\|")
        ));
    }
    out
}

/// Placeholder values of the example file; validation refuses them as secrets.
pub fn placeholder(name: &str) -> &'static str {
    match name {
        "POSTGRES_USER" => "reporadar",
        "POSTGRES_DB" => "reporadar",
        "POSTGRES_PASSWORD" => "change-me-postgres-password",
        "REDIS_PASSWORD" => "change-me-redis-password",
        "SESSION_SECRET" => "change-me-session-secret-at-least-32-chars",
        "ENCRYPTION_KEY" => "change-me-encryption-key-at-least-32-chars",
        _ => "change-me",
    }
}

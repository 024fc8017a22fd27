//! The app's configuration, read once from the environment at startup.
//!
//! Secrets come from `NAME_FILE` when that is set (how Docker/Compose secrets are delivered, and
//! what keeps them out of `docker inspect`), else from `NAME`. They are wrapped in [`Secret`], whose
//! `Debug` never prints the value, so a stray `{:?}` cannot leak one into the logs.

use std::fmt;
use std::time::Duration;

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub db: String,
    pub password: Option<Secret>,
    pub pool_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Where the Redis master is: a fixed address, or whatever the Sentinels say it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    Direct(HostPort),
    Sentinel {
        sentinels: Vec<HostPort>,
        master_name: String,
        /// `REDIS_HOST`/`REDIS_PORT` when set explicitly: tried when no Sentinel answers, and
        /// used only if it reports itself master (a demoted node never takes writes).
        fallback: Option<HostPort>,
    },
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub target: RedisTarget,
    pub password: Option<Secret>,
    /// Password of the Sentinels themselves (only when they run with `requirepass`).
    pub sentinel_password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub instance_id: String,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub session_secret: Secret,
    pub session_ttl: Duration,
    /// Enables the diagnostics endpoints: `GET /api/slow` (drain tests) and `POST /api/fault`
    /// (this instance slow or failing, for `top`'s tests). Off by default.
    pub diagnostics: bool,
    /// `LOG_DIR`: where to keep a copy of the log, if anywhere.
    pub log_dir: Option<std::path::PathBuf>,
}

/// Minimum length of `SESSION_SECRET` and `ENCRYPTION_KEY`: an HMAC key shorter than this is
/// guessable, and radar-deploy's own validation refuses such values anyway.
const MIN_SECRET_LEN: usize = 16;

impl Config {
    /// Reads the configuration through `lookup` (the process environment in production) and
    /// reports every problem at once.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());

        let port = parse_or(&var, "PORT", 3000u16, &mut problems);
        let instance_id = var("INSTANCE_ID").unwrap_or_else(hostname);

        let postgres = postgres_config(lookup, &mut problems);

        let redis_password = read_secret(lookup, "REDIS_PASSWORD", &mut problems);
        let sentinel_password = read_secret(lookup, "REDIS_SENTINEL_PASSWORD", &mut problems);
        let target = match var("REDIS_SENTINELS") {
            Some(list) => {
                let mut sentinels = Vec::new();
                for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match parse_host_port(item, 26379) {
                        Ok(hp) => sentinels.push(hp),
                        Err(e) => problems.push(format!("REDIS_SENTINELS: {e}")),
                    }
                }
                if sentinels.is_empty() {
                    problems.push("REDIS_SENTINELS is set but names no host:port".into());
                }
                let port = parse_or(&var, "REDIS_PORT", 6379u16, &mut problems);
                RedisTarget::Sentinel {
                    sentinels,
                    master_name: var("REDIS_MASTER_NAME").unwrap_or_else(|| "mymaster".into()),
                    fallback: var("REDIS_HOST").map(|host| HostPort { host, port }),
                }
            }
            None => RedisTarget::Direct(HostPort {
                host: var("REDIS_HOST").unwrap_or_else(|| "redis".into()),
                port: parse_or(&var, "REDIS_PORT", 6379u16, &mut problems),
            }),
        };

        let session_secret = read_secret(lookup, "SESSION_SECRET", &mut problems);
        let encryption_key = read_secret(lookup, "ENCRYPTION_KEY", &mut problems);
        for (name, value) in [
            ("SESSION_SECRET", &session_secret),
            ("ENCRYPTION_KEY", &encryption_key),
        ] {
            match value {
                None => problems.push(format!("{name} (or {name}_FILE) is required")),
                Some(s) if s.expose().len() < MIN_SECRET_LEN => problems.push(format!(
                    "{name} is too short ({} characters; at least {MIN_SECRET_LEN})",
                    s.expose().len()
                )),
                Some(_) => {}
            }
        }
        let ttl_secs = parse_or(&var, "SESSION_TTL_SECONDS", 86_400u64, &mut problems);
        if ttl_secs == 0 {
            problems.push("SESSION_TTL_SECONDS must be at least 1".into());
        }
        let diagnostics = matches!(
            var("RADAR_APP_DIAGNOSTICS").as_deref(),
            Some("1" | "true" | "yes")
        );

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            port,
            instance_id,
            postgres,
            redis: RedisConfig {
                target,
                password: redis_password,
                sentinel_password,
            },
            session_secret: session_secret.expect("checked above"),
            session_ttl: Duration::from_secs(ttl_secs),
            diagnostics,
            log_dir: var("LOG_DIR").map(Into::into),
        })
    }
}

/// Only what `radar-app migrate` needs: the Postgres settings, with the same defaults and
/// problems as [`Config::from_lookup`] (the session secrets are not required to migrate).
pub fn postgres_from_lookup(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<PostgresConfig, Vec<String>> {
    let mut problems = Vec::new();
    let postgres = postgres_config(lookup, &mut problems);
    if problems.is_empty() {
        Ok(postgres)
    } else {
        Err(problems)
    }
}

fn postgres_config(
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> PostgresConfig {
    let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let password = read_secret(lookup, "POSTGRES_PASSWORD", problems);
    let user = var("POSTGRES_USER").unwrap_or_else(|| "postgres".into());
    let pool_size = parse_or(&var, "DB_POOL_SIZE", 5usize, problems);
    if !(1..=100).contains(&pool_size) {
        problems.push(format!(
            "DB_POOL_SIZE={pool_size} must be between 1 and 100"
        ));
    }
    PostgresConfig {
        host: var("POSTGRES_HOST").unwrap_or_else(|| "postgres".into()),
        port: parse_or(&var, "POSTGRES_PORT", 5432u16, problems),
        db: var("POSTGRES_DB").unwrap_or_else(|| user.clone()),
        user,
        password,
        pool_size,
    }
}

fn parse_or<T: std::str::FromStr>(
    var: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    problems: &mut Vec<String>,
) -> T {
    match var(name) {
        None => default,
        Some(raw) => raw.trim().parse().unwrap_or_else(|_| {
            problems.push(format!("{name}={raw:?} is not a valid number"));
            default
        }),
    }
}

/// `NAME_FILE` wins over `NAME`; one trailing newline (what `echo` and most editors add) is
/// trimmed from a file, nothing else, so a secret may contain any other whitespace.
fn read_secret(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<Secret> {
    let file_var = format!("{name}_FILE");
    if let Some(path) = lookup(&file_var).filter(|p| !p.is_empty()) {
        return match std::fs::read_to_string(&path) {
            Ok(mut content) => {
                if content.ends_with('\n') {
                    content.pop();
                    if content.ends_with('\r') {
                        content.pop();
                    }
                }
                Some(Secret(content))
            }
            Err(e) => {
                problems.push(format!("{file_var}: cannot read {path}: {e}"));
                None
            }
        };
    }
    lookup(name).filter(|v| !v.is_empty()).map(Secret)
}

fn parse_host_port(item: &str, default_port: u16) -> Result<HostPort, String> {
    match item.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            let port = port
                .parse()
                .map_err(|_| format!("{item:?}: port is not a number"))?;
            Ok(HostPort {
                host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
                port,
            })
        }
        Some(_) => Err(format!("{item:?}: host is empty")),
        None => Ok(HostPort {
            host: item.to_string(),
            port: default_port,
        }),
    }
}

/// The container's hostname (Docker sets it to the container id unless told otherwise).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k| map.get(k).cloned())
    }

    const SECRETS: [(&str, &str); 2] = [
        ("SESSION_SECRET", "0123456789abcdef0123"),
        ("ENCRYPTION_KEY", "fedcba9876543210fedc"),
    ];

    #[test]
    fn defaults_apply_when_only_secrets_are_set() {
        let c = config(&SECRETS).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.postgres.host, "postgres");
        assert_eq!(c.postgres.port, 5432);
        assert_eq!(c.postgres.pool_size, 5);
        assert_eq!(
            c.redis.target,
            RedisTarget::Direct(HostPort {
                host: "redis".into(),
                port: 6379
            })
        );
    }

    #[test]
    fn sentinels_are_parsed_with_default_master_name() {
        let mut vars = SECRETS.to_vec();
        vars.push(("REDIS_SENTINELS", "s1:26379, s2:26380,s3"));
        let c = config(&vars).unwrap();
        let RedisTarget::Sentinel {
            sentinels,
            master_name,
            fallback,
        } = c.redis.target
        else {
            panic!("expected sentinel mode")
        };
        assert_eq!(master_name, "mymaster");
        assert_eq!(fallback, None);
        let names: Vec<String> = sentinels.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["s1:26379", "s2:26380", "s3:26379"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = config(&[("PORT", "x"), ("DB_POOL_SIZE", "0")]).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn secret_debug_never_shows_the_value() {
        let c = config(&SECRETS).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn file_secret_wins_and_loses_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("radar-app-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "from-file-secret-value \n").unwrap();
        let mut vars = SECRETS.to_vec();
        let p = path.to_str().unwrap().to_string();
        vars.push(("SESSION_SECRET_FILE", &p));
        let c = config(&vars).unwrap();
        assert_eq!(c.session_secret.expose(), "from-file-secret-value ");
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! Which Docker daemon to talk to, found the way the docker CLI finds it, and said in every
//! message about reaching it.
//!
//! Order (as `docker` itself resolves it, cli/command/cli.go `resolveContextName`):
//! 1. `--context NAME` on the command line,
//! 2. `DOCKER_HOST` (with `DOCKER_TLS_VERIFY` / `DOCKER_CERT_PATH` for TLS),
//! 3. `DOCKER_CONTEXT`,
//! 4. `currentContext` in `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`),
//! 5. the platform's default socket or pipe.
//!
//! A context other than `default` is read from the docker CLI's context store:
//! `$DOCKER_CONFIG/contexts/meta/<sha256(name)>/meta.json` holds its endpoint, and
//! `contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem` its TLS material. Colima, OrbStack,
//! Rancher Desktop, Podman machine, rootless Docker and remote servers are all reached this way.
//!
//! [`resolve`] is a pure function of [`Inputs`] and a file reader, so every rule is unit-tested
//! without a daemon; `docker::DockerClient::connect` turns the result into a connection, and
//! [`Endpoint::fix`] gives the advice for a daemon that does not answer.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Everything the resolution reads from the process: the flag, the environment, the home dir.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub context_flag: Option<String>,
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    pub docker_config: Option<PathBuf>,
    pub tls_verify: Option<String>,
    pub cert_path: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl Inputs {
    /// The flag as typed, and this process's environment (empty values count as unset, as in
    /// the docker CLI).
    pub fn from_process(context_flag: Option<String>) -> Inputs {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Inputs {
            context_flag: context_flag.filter(|c| !c.is_empty()),
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT"),
            docker_config: var("DOCKER_CONFIG").map(PathBuf::from),
            tls_verify: var("DOCKER_TLS_VERIFY"),
            cert_path: var("DOCKER_CERT_PATH").map(PathBuf::from),
            home: std::env::home_dir(),
        }
    }

    /// The docker CLI's configuration directory.
    fn config_dir(&self) -> Option<PathBuf> {
        self.docker_config
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".docker")))
    }
}

/// Where the endpoint came from: every message about the daemon says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `DOCKER_HOST` in the environment.
    DockerHost,
    /// A context of the docker CLI, and what chose it.
    Context { name: String, chosen_by: ChosenBy },
    /// Nothing was configured: the platform's default socket or pipe.
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChosenBy {
    Flag,
    EnvVar,
    ConfigFile(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::DockerHost => write!(f, "from DOCKER_HOST"),
            Source::Context { name, chosen_by } => {
                write!(f, "from docker context \"{name}\"")?;
                match chosen_by {
                    ChosenBy::Flag => write!(f, " (--context)"),
                    ChosenBy::EnvVar => write!(f, " (DOCKER_CONTEXT)"),
                    ChosenBy::ConfigFile(p) => write!(f, " (currentContext in {})", p.display()),
                }
            }
            Source::Default => write!(f, "the platform default; no DOCKER_HOST or context set"),
        }
    }
}

/// TLS material for a tcp/https endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where the files came from, for messages ("DOCKER_CERT_PATH=…", "context store …").
    pub origin: String,
}

/// How to reach the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Unix(PathBuf),
    NamedPipe(String),
    /// `host:port`, plain HTTP or TLS.
    Tcp {
        addr: String,
        tls: Option<Tls>,
    },
    /// The docker CLI's way: `ssh [-l user] [-p port] host docker system dial-stdio`.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

/// The resolved daemon endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As the user would write it in DOCKER_HOST (`unix:///…`, `tcp://…`, `ssh://…`).
    pub host: String,
    pub transport: Transport,
    pub source: Source,
}

/// The endpoint cannot even be worked out (bad DOCKER_HOST, missing context, unreadable store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}\n  fix: {fix}")]
pub struct ResolveError {
    pub message: String,
    pub fix: String,
}

impl Endpoint {
    /// True when the daemon runs on this machine, so a port it publishes can be checked here.
    pub fn is_local(&self) -> bool {
        match &self.transport {
            Transport::Unix(_) | Transport::NamedPipe(_) => true,
            Transport::Tcp { addr, .. } => is_loopback(addr),
            Transport::Ssh { host, .. } => is_loopback(host),
        }
    }

    /// "unix:///var/run/docker.sock (the platform default; …)", for every message.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.host, self.source)
    }

    /// What to do when this endpoint does not answer, for the platform this runs on.
    pub fn fix(&self, os: Os) -> String {
        let other = "or choose another daemon: `docker context ls`, then --context NAME";
        match (&self.source, &self.transport) {
            (Source::Context { name, .. }, Transport::Ssh { .. }) => format!(
                "check that `ssh {}` logs in without a prompt and that `docker version` works there, \
                 or fix the context (`docker context inspect {name}`), {other}",
                ssh_target(&self.transport)
            ),
            (Source::Context { name, .. }, _) => format!(
                "start the daemon that context \"{name}\" points at (`docker context inspect {name}`), {other}"
            ),
            (Source::DockerHost, Transport::Ssh { .. }) => format!(
                "check that `ssh {}` logs in without a prompt and that `docker version` works there, \
                 or unset DOCKER_HOST",
                ssh_target(&self.transport)
            ),
            (Source::DockerHost, _) => {
                "start the daemon DOCKER_HOST points at, or unset DOCKER_HOST to use a context or the default"
                    .to_string()
            }
            (Source::Default, _) => match os {
                Os::Linux => format!(
                    "start Docker (`sudo systemctl start docker`; rootless: `systemctl --user start docker`), {other}"
                ),
                Os::Mac => format!(
                    "start Docker Desktop (or `colima start`, OrbStack, Rancher Desktop); if your Docker has \
                     no default socket, `docker context use NAME`, {other}"
                ),
                Os::Windows => format!(
                    "start Docker Desktop (or Rancher Desktop / Podman Desktop), and wait until it says it is running, {other}"
                ),
                Os::Other => format!("start Docker, or set DOCKER_HOST, {other}"),
            },
        }
    }

    /// What to do when the socket refuses this user.
    pub fn permission_fix(&self, os: Os) -> String {
        match os {
            Os::Linux => {
                "add your user to the `docker` group (`sudo usermod -aG docker $USER`, then log \
                          in again), or use rootless Docker through its context"
                    .to_string()
            }
            Os::Windows => {
                "run from an account in the `docker-users` group (Docker Desktop adds it; log \
                            out and in again after joining)"
                    .to_string()
            }
            _ => format!("check the permissions of {}", self.host),
        }
    }
}

/// The platform the tool runs on, for advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    Mac,
    Windows,
    Other,
}

impl Os {
    pub fn current() -> Os {
        if cfg!(target_os = "linux") {
            Os::Linux
        } else if cfg!(target_os = "macos") {
            Os::Mac
        } else if cfg!(windows) {
            Os::Windows
        } else {
            Os::Other
        }
    }
}

fn ssh_target(t: &Transport) -> String {
    match t {
        Transport::Ssh { user, host, port } => {
            let mut s = String::new();
            if let Some(p) = port {
                s.push_str(&format!("-p {p} "));
            }
            if let Some(u) = user {
                s.push_str(&format!("{u}@"));
            }
            s.push_str(host);
            s
        }
        _ => String::new(),
    }
}

fn is_loopback(addr: &str) -> bool {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_matches(['[', ']']);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The default endpoint of the platform (what the docker CLI uses without configuration).
fn default_host(os: Os) -> &'static str {
    if os == Os::Windows {
        "npipe:////./pipe/docker_engine"
    } else {
        "unix:///var/run/docker.sock"
    }
}

/// Resolves the endpoint. `read` reads a file of the docker CLI's configuration (`None`: no
/// such file); it is a parameter so tests need no files.
pub fn resolve(
    inputs: &Inputs,
    os: Os,
    read: &dyn Fn(&Path) -> std::io::Result<Option<String>>,
) -> Result<Endpoint, ResolveError> {
    let config_dir = inputs.config_dir();
    let (context, chosen_by) = if let Some(name) = &inputs.context_flag {
        (Some(name.clone()), ChosenBy::Flag)
    } else if inputs.docker_host.is_some() {
        (None, ChosenBy::EnvVar)
    } else if let Some(name) = &inputs.docker_context {
        (Some(name.clone()), ChosenBy::EnvVar)
    } else {
        match &config_dir {
            Some(dir) => {
                let path = dir.join("config.json");
                match current_context(&path, read)? {
                    Some(name) => (Some(name), ChosenBy::ConfigFile(path)),
                    None => (None, ChosenBy::EnvVar),
                }
            }
            None => (None, ChosenBy::EnvVar),
        }
    };
    match context {
        Some(name) if name != "default" => {
            let Some(dir) = config_dir else {
                return Err(ResolveError {
                    message: format!(
                        "docker context \"{name}\" was asked for, but there is no home directory to find the context store in"
                    ),
                    fix: "set DOCKER_CONFIG to the docker CLI's configuration directory".into(),
                });
            };
            from_context(&dir, &name, chosen_by, read)
        }
        _ => match &inputs.docker_host {
            Some(host) => from_docker_host(host, inputs, read),
            None => parse_host(default_host(os), None, Source::Default),
        },
    }
}

/// `currentContext` of the docker CLI's config.json, when it names one.
fn current_context(
    path: &Path,
    read: &dyn Fn(&Path) -> std::io::Result<Option<String>>,
) -> Result<Option<String>, ResolveError> {
    let Some(v) = read_json(
        path,
        read,
        "the docker CLI's config",
        "make it readable, or set DOCKER_HOST / --context to bypass it",
        "repair the file (docker itself will refuse it too), or set DOCKER_HOST / --context",
    )?
    else {
        return Ok(None);
    };
    Ok(v.get("currentContext")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_string))
}

/// A JSON file of the docker CLI's configuration; `None` when it does not exist. `what` names
/// it in the messages, with the fix for a file that cannot be read or parsed.
fn read_json(
    path: &Path,
    read: &dyn Fn(&Path) -> std::io::Result<Option<String>>,
    what: &str,
    unreadable_fix: &str,
    invalid_fix: &str,
) -> Result<Option<serde_json::Value>, ResolveError> {
    let text = match read(path) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(ResolveError {
                message: format!("cannot read {what} at {}: {e}", path.display()),
                fix: unreadable_fix.into(),
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ResolveError {
            message: format!("{what}: {} is not valid JSON: {e}", path.display()),
            fix: invalid_fix.into(),
        })
}

/// The store's directory name of a context: the hex sha256 of its name.
pub fn context_dir_name(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

fn from_context(
    config_dir: &Path,
    name: &str,
    chosen_by: ChosenBy,
    read: &dyn Fn(&Path) -> std::io::Result<Option<String>>,
) -> Result<Endpoint, ResolveError> {
    let id = context_dir_name(name);
    let meta_path = config_dir
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let source = Source::Context {
        name: name.to_string(),
        chosen_by: chosen_by.clone(),
    };
    let not_found = || ResolveError {
        message: format!(
            "docker context \"{name}\" ({}) does not exist: no {}",
            source_choice(&chosen_by),
            meta_path.display()
        ),
        fix: format!(
            "list the contexts with `docker context ls`{}",
            match &chosen_by {
                ChosenBy::Flag => ", then pass one of them to --context".to_string(),
                ChosenBy::EnvVar => ", then set DOCKER_CONTEXT to one of them, or unset it".into(),
                ChosenBy::ConfigFile(_) =>
                    ", then `docker context use NAME` (or `docker context use default`)".into(),
            }
        ),
    };
    let Some(meta) = read_json(
        &meta_path,
        read,
        &format!("docker context \"{name}\""),
        "make the docker CLI's context store readable for this user",
        &format!("recreate the context (`docker context rm {name}`, `docker context create …`)"),
    )?
    else {
        return Err(not_found());
    };
    let docker = meta.get("Endpoints").and_then(|e| e.get("docker"));
    let Some(host) = docker
        .and_then(|d| d.get("Host"))
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
    else {
        return Err(ResolveError {
            message: format!(
                "docker context \"{name}\" has no docker endpoint (Endpoints.docker.Host in {})",
                meta_path.display()
            ),
            fix: format!("`docker context update {name} --docker host=…`"),
        });
    };
    let skip_verify = docker
        .and_then(|d| d.get("SkipTLSVerify"))
        .and_then(|s| s.as_bool())
        .unwrap_or(false);
    let tls_dir = config_dir
        .join("contexts")
        .join("tls")
        .join(&id)
        .join("docker");
    let has = |f: &str| matches!(read(&tls_dir.join(f)), Ok(Some(_)));
    let tls = if has("ca.pem") || has("cert.pem") {
        if skip_verify {
            return Err(ResolveError {
                message: format!(
                    "docker context \"{name}\" sets skip-tls-verify: radar-deploy does not talk to a daemon \
                     whose certificate it cannot check"
                ),
                fix: format!(
                    "give the context the daemon's CA: `docker context update {name} --docker \
                     \"host={host},ca=CA.pem,cert=cert.pem,key=key.pem\"`"
                ),
            });
        }
        Some(Tls {
            ca: tls_dir.join("ca.pem"),
            cert: tls_dir.join("cert.pem"),
            key: tls_dir.join("key.pem"),
            origin: format!("context \"{name}\"'s TLS store {}", tls_dir.display()),
        })
    } else {
        None
    };
    parse_host(host, tls, source)
}

fn source_choice(c: &ChosenBy) -> String {
    match c {
        ChosenBy::Flag => "--context".into(),
        ChosenBy::EnvVar => "DOCKER_CONTEXT".into(),
        ChosenBy::ConfigFile(p) => format!("currentContext in {}", p.display()),
    }
}

fn from_docker_host(
    host: &str,
    inputs: &Inputs,
    read: &dyn Fn(&Path) -> std::io::Result<Option<String>>,
) -> Result<Endpoint, ResolveError> {
    let wants_tls = inputs.tls_verify.is_some() || host.starts_with("https://");
    let tls =
        if wants_tls && !host.starts_with("ssh://") {
            let (dir, origin) =
                match (&inputs.cert_path, inputs.config_dir()) {
                    (Some(p), _) => (p.clone(), format!("DOCKER_CERT_PATH={}", p.display())),
                    (None, Some(d)) => (
                        d.clone(),
                        format!("{} (DOCKER_CERT_PATH is unset)", d.display()),
                    ),
                    (None, None) => return Err(ResolveError {
                        message:
                            "DOCKER_TLS_VERIFY is set but there is no DOCKER_CERT_PATH and no home \
                              directory to find ca.pem, cert.pem and key.pem in"
                                .into(),
                        fix: "set DOCKER_CERT_PATH to the directory holding them".into(),
                    }),
                };
            let missing: Vec<&str> = ["ca.pem", "cert.pem", "key.pem"]
                .into_iter()
                .filter(|f| !matches!(read(&dir.join(f)), Ok(Some(_))))
                .collect();
            if !missing.is_empty() {
                return Err(ResolveError {
                message: format!(
                    "TLS to DOCKER_HOST={host} needs {} in {origin}, which {} missing",
                    missing.join(", "),
                    if missing.len() == 1 { "is" } else { "are" }
                ),
                fix: "set DOCKER_CERT_PATH to the directory with the daemon's CA (ca.pem) and your \
                      client certificate and key (cert.pem, key.pem), or unset DOCKER_TLS_VERIFY"
                    .into(),
            });
            }
            Some(Tls {
                ca: dir.join("ca.pem"),
                cert: dir.join("cert.pem"),
                key: dir.join("key.pem"),
                origin,
            })
        } else {
            None
        };
    parse_host(host, tls, Source::DockerHost)
}

/// Parses `scheme://…` into a transport, as `docker -H` accepts it.
fn parse_host(host: &str, tls: Option<Tls>, source: Source) -> Result<Endpoint, ResolveError> {
    let bad = |why: &str| {
        ResolveError {
        message: format!("the Docker endpoint {host} ({source}) is not usable: {why}"),
        fix: "use unix:///path/to/docker.sock, npipe:////./pipe/NAME, tcp://HOST:PORT (TLS with \
              DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH), https://HOST:PORT or ssh://[USER@]HOST[:PORT]"
            .into(),
    }
    };
    let Some((scheme, rest)) = host.split_once("://") else {
        return Err(bad("it has no scheme"));
    };
    let transport = match scheme {
        "unix" => {
            if rest.is_empty() {
                return Err(bad("no socket path"));
            }
            Transport::Unix(PathBuf::from(rest))
        }
        "npipe" => {
            if rest.is_empty() {
                return Err(bad("no pipe name"));
            }
            // npipe:////./pipe/docker_engine → //./pipe/docker_engine, as Windows spells it.
            Transport::NamedPipe(rest.replace('/', "\\"))
        }
        "tcp" | "http" | "https" => {
            let addr = rest.trim_end_matches('/');
            if addr.is_empty() || addr.contains('/') {
                return Err(bad("expected HOST:PORT after the scheme"));
            }
            let addr = if addr
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                addr.to_string()
            } else {
                // The docker CLI's default ports: 2376 with TLS, 2375 without.
                format!("{addr}:{}", if tls.is_some() { 2376 } else { 2375 })
            };
            Transport::Tcp { addr, tls }
        }
        "ssh" => {
            let authority = rest.split('/').next().unwrap_or_default();
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_string()), h),
                None => (None, authority),
            };
            let (h, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                    Ok(p) => (h, Some(p)),
                    Err(_) => return Err(bad(&format!("the port '{p}' is not a number"))),
                },
                _ => (hostport, None),
            };
            let h = h.trim_matches(['[', ']']);
            if h.is_empty() {
                return Err(bad("no host after ssh://"));
            }
            Transport::Ssh {
                user,
                host: h.to_string(),
                port,
            }
        }
        other => return Err(bad(&format!("the scheme '{other}' is not supported"))),
    };
    Ok(Endpoint {
        host: host.to_string(),
        transport,
        source,
    })
}

/// Reads a file for [`resolve`]: `None` when it does not exist.
pub fn read_file(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Resolves from this process (flag and environment) and the real files.
pub fn from_process(context_flag: Option<String>) -> Result<Endpoint, ResolveError> {
    resolve(
        &Inputs::from_process(context_flag),
        Os::current(),
        &read_file,
    )
}

/// What the daemon says about itself after connecting: enough to refuse one that cannot run the
/// stack, and to say which machine it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonFacts {
    pub os_type: String,
    pub architecture: String,
    pub operating_system: String,
    pub server_version: String,
    pub name: String,
}

/// Refuses a daemon that does not run Linux containers (Docker Desktop in Windows-containers
/// mode): every image of the stack is a Linux image.
pub fn check_daemon(endpoint: &Endpoint, facts: &DaemonFacts) -> Result<(), ResolveError> {
    if facts.os_type.eq_ignore_ascii_case("linux") {
        return Ok(());
    }
    let fix = if facts.os_type.eq_ignore_ascii_case("windows") {
        "switch Docker Desktop to Linux containers (tray icon → \"Switch to Linux containers…\", or \
         `& $Env:ProgramFiles\\Docker\\Docker\\DockerCli.exe -SwitchLinuxEngine`), or choose a daemon \
         that runs Linux containers (--context NAME)"
    } else {
        "choose a daemon that runs Linux containers (--context NAME or DOCKER_HOST)"
    };
    Err(ResolveError {
        message: format!(
            "the Docker daemon at {} runs {} containers ({}, {}); radar-deploy deploys Linux images \
             (nginx, PostgreSQL, Redis, the app)",
            endpoint.describe(),
            if facts.os_type.is_empty() {
                "unknown"
            } else {
                &facts.os_type
            },
            facts.operating_system,
            facts.architecture
        ),
        fix: fix.into(),
    })
}

#[cfg(test)]
mod tests;

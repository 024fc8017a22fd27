//! Test support shared by the integration tests that drive the built CLI against Docker: a
//! [`Project`] of its own (unique name, temp dir, env file, free port), a [`HostProject`] that
//! removes its single-host stack on drop, the [`SwarmGuard`] for the swarm tests, and the slots
//! ([`shared`], [`alone`]) that keep timing tests from running beside other Docker tests.

pub mod nodes;
pub mod pebble;
pub mod pki;
pub mod report;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use radar_deploy::docker::DockerClient;
use radar_deploy::lock::ProjectLock;
use radar_deploy::swarm::SwarmMembership;

/// Docker tests hold a read guard side by side, or the write guard alone (see [`alone`]).
static DOCKER_TESTS: RwLock<()> = RwLock::new(());

/// A Docker test's place on the daemon, held for the test's length.
pub enum Slot {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// For a test that only needs a stack of its own: it runs beside other such tests.
pub fn shared() -> Slot {
    // A test that panicked while holding a slot poisons the lock; the lock guards no data.
    Slot::Shared(DOCKER_TESTS.read().unwrap_or_else(|e| e.into_inner()))
}

/// For a test that measures timing (drills, scale under load, Wine) or changes the daemon
/// (swarm mode, a daemon of its own): no other Docker test of this binary runs meanwhile.
pub fn alone() -> Slot {
    Slot::Alone(DOCKER_TESTS.write().unwrap_or_else(|e| e.into_inner()))
}

/// A client of the daemon this process's environment names (as radar-deploy would find it).
pub async fn connect_local() -> Result<DockerClient, radar_deploy::docker::DockerError> {
    let endpoint = radar_deploy::endpoint::from_process(None).expect("a usable Docker endpoint");
    DockerClient::connect(&endpoint).await
}

pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().expect("runtime").block_on(f)
}

/// The daemon as a swarm manager for as long as the guard lives. When the daemon is not in a
/// swarm, a single-node swarm is initialised on loopback and left again on drop (also when
/// the test fails); a swarm that was there before is used and left as it was.
///
/// Holds a machine-wide lock meanwhile: swarm tests of other processes on this machine (the
/// other test binaries, another checkout's CI) wait, so none leaves a swarm another still uses.
/// Like every Docker test here it FAILS when the daemon is unreachable.
pub struct SwarmGuard {
    joined: bool,
    /// `swarm init` makes the bridge `docker_gwbridge`, and leaving keeps it: removed on drop
    /// when the guard's init made it, so the daemon is left as it was found.
    made_gwbridge: bool,
    _machine_lock: ProjectLock,
}

const GWBRIDGE: &str = "docker_gwbridge";

impl SwarmGuard {
    pub fn acquire() -> SwarmGuard {
        SwarmGuard::acquire_then(|| {})
    }

    /// As [`SwarmGuard::acquire`]; `outside` runs first when the daemon is in no swarm, before
    /// the guard makes it a manager (to see what radar-deploy says about such a daemon).
    pub fn acquire_then(outside: impl FnOnce()) -> SwarmGuard {
        block_on(async {
            let d = connect_local()
                .await
                .expect("the Docker daemon must be reachable for this test");
            let lock = ProjectLock::acquire(
                &d.endpoint.host,
                "swarm-tests",
                std::time::Duration::from_secs(900),
                |pid| eprintln!("waiting for the swarm test of pid {pid}"),
            )
            .await
            .expect("the machine-wide swarm test lock");
            let mut made_gwbridge = false;
            let joined = match d.swarm_membership().await.expect("docker info") {
                SwarmMembership::Manager { .. } => false,
                SwarmMembership::Worker => {
                    panic!("this daemon is a swarm worker; the test needs a manager or no swarm")
                }
                SwarmMembership::NotInSwarm => {
                    outside();
                    made_gwbridge = !docker(&["network", "inspect", GWBRIDGE]).status.success();
                    match d.init_swarm_loopback().await {
                        Ok(()) => true,
                        // Another process initialised one meanwhile: use it, and leave it.
                        Err(e) => {
                            let now = d.swarm_membership().await.expect("docker info");
                            assert!(
                                matches!(now, SwarmMembership::Manager { .. }),
                                "swarm init failed: {e}"
                            );
                            false
                        }
                    }
                }
            };
            SwarmGuard {
                joined,
                made_gwbridge: joined && made_gwbridge,
                _machine_lock: lock,
            }
        })
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if self.joined {
            let _ = block_on(async { connect_local().await?.leave_swarm().await });
        }
        if self.made_gwbridge {
            let _ = docker(&["network", "rm", GWBRIDGE]);
        }
    }
}

pub const BIN: &str = env!("CARGO_BIN_EXE_radar-deploy");

/// An image variable from the environment, else the offline stand-in.
pub fn image(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// A command's stdout and stderr, for messages.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Fails the test when the daemon is unreachable: a CI without Docker must not pass silently.
pub fn require_docker() {
    let out = docker(&["info"]);
    assert!(
        out.status.success(),
        "the Docker daemon is unreachable: these tests need it (they never skip)\n{}",
        text(&out)
    );
}

/// Runs the docker CLI; fails the test only when it cannot be started.
pub fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A radar-deploy project of its own: a unique name, a temp dir with an env file from `init`
/// plus the offline images, a free HTTP_PORT and the instance count; every command runs with
/// exactly these (the caller's RADAR_* variables are removed), against `docker_host` if given.
pub struct Project {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub port: u16,
    docker_host: Option<String>,
}

impl Project {
    pub fn new(prefix: &str, instances: usize, docker_host: Option<&str>) -> Project {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = Project {
            name: format!("{prefix}-{}-{n}", std::process::id()),
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            docker_host: docker_host.map(str::to_string),
        };
        p.ok(&["init"]);
        p.set_env(
            "NGINX_IMAGE",
            &image("NGINX_IMAGE", "radar-offline/nginx:bookworm"),
        );
        p.set_env(
            "POSTGRES_IMAGE",
            &image("POSTGRES_IMAGE", "radar-offline/postgres:bookworm"),
        );
        p.set_env(
            "REDIS_IMAGE",
            &image("REDIS_IMAGE", "radar-offline/redis:bookworm"),
        );
        p.set_env(
            "APP_IMAGE",
            &image("APP_IMAGE", "radar-deploy/radar-app:0.1.0"),
        );
        // Builds the reference app image when it is missing or stale (no registry here).
        p.set_env(
            "APP_BUILDER_IMAGE",
            &image("APP_BUILDER_IMAGE", "radar-offline/rust:bookworm"),
        );
        p.set_env("HTTP_PORT", &p.port.to_string());
        p.set_env("APP_INSTANCES", &instances.to_string());
        p
    }

    pub fn env_file(&self) -> std::path::PathBuf {
        self.dir.path().join(".env.multi-instance")
    }

    /// Appends `name=value` to the env file (later lines win).
    pub fn set_env(&self, name: &str, value: &str) {
        let mut env = std::fs::read_to_string(self.env_file()).expect("env file");
        env.push_str(&format!("{name}={value}\n"));
        std::fs::write(self.env_file(), env).expect("write env file");
    }

    /// Removes every line that sets `name` from the env file.
    pub fn unset_env(&self, name: &str) {
        let env = std::fs::read_to_string(self.env_file()).expect("env file");
        let prefix = format!("{name}=");
        let kept: String = env
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(self.env_file(), kept).expect("write env file");
    }

    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(BIN);
        c.arg("--env-file")
            .arg(self.env_file())
            .arg("--project")
            .arg(&self.name)
            .arg("--no-color")
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RADAR_ENV_FILE")
            .env_remove("RADAR_PROJECT")
            .env_remove("RADAR_TARGET")
            // The env file sets these (the images from the caller's environment, when given,
            // at `Project::new`); the caller's environment would win over a test's own value.
            .env_remove("APP_INSTANCES")
            .env_remove("HTTP_PORT")
            .env_remove("NGINX_IMAGE")
            .env_remove("POSTGRES_IMAGE")
            .env_remove("REDIS_IMAGE")
            .env_remove("APP_IMAGE")
            .env_remove("APP_BUILDER_IMAGE");
        if let Some(host) = &self.docker_host {
            c.env("DOCKER_HOST", host);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("run radar-deploy")
    }

    /// Runs radar-deploy and returns stdout and stderr; fails the test unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> String {
        text(&self.succeeded(args))
    }

    /// As [`Project::ok`], returning stdout alone (for `--format json`).
    pub fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.succeeded(args).stdout).into_owned()
    }

    fn succeeded(&self, args: &[&str]) -> std::process::Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "radar-deploy {args:?} failed ({:?}):\n{}",
            out.status.code(),
            text(&out)
        );
        out
    }
}

/// A single-host [`Project`] on the local daemon (which it requires), removed when dropped, also
/// when the test fails: `down --volumes`, then whatever is still labelled with the project (a
/// test may have started containers that radar-deploy does not know of).
pub struct HostProject(Project);

impl HostProject {
    pub fn new(prefix: &str, instances: usize) -> HostProject {
        require_docker();
        HostProject(Project::new(prefix, instances, None))
    }
}

impl std::ops::Deref for HostProject {
    type Target = Project;
    fn deref(&self) -> &Project {
        &self.0
    }
}

impl Drop for HostProject {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--volumes"]);
        // By the project's label only: other tests and people share the daemon.
        let label = format!("label=com.docker.compose.project={}", self.name);
        for (list, remove) in [
            (["ps", "-aq"].as_slice(), ["rm", "-f", "-v"].as_slice()),
            (&["network", "ls", "-q"], &["network", "rm"]),
            (&["volume", "ls", "-q"], &["volume", "rm", "-f"]),
        ] {
            let out = docker(&[list, &["--filter", &label]].concat());
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker(&[remove, &[id]].concat());
            }
        }
    }
}

//! Integration tests of the reference app (`radar-app`) against real Redis and Postgres.
//!
//! The data stores run in containers from the offline images (`radar-offline/redis:bookworm`,
//! `radar-offline/postgres:bookworm`; override with `RADAR_TEST_REDIS_IMAGE` /
//! `RADAR_TEST_POSTGRES_IMAGE`), started with the `docker` CLI. The app under test is the binary
//! cargo built (`CARGO_BIN_EXE_radar-app`), run on the host against ports published on 127.0.0.1.
//!
//! Every container carries the label `io.radar-deploy.test=<run id>` and a unique name, and is
//! removed by a guard's `Drop`, also when a test panics. Without a reachable Docker daemon these
//! tests fail loudly (never skip): a green run must mean the behaviour was exercised.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const APP: &str = env!("CARGO_BIN_EXE_radar-app");
const TEST_LABEL: &str = "io.radar-deploy.test";
const REDIS_PASSWORD: &str = "test-redis-password-5f2a9c";
const PG_PASSWORD: &str = "test-postgres-password-81d3e0";
const SESSION_SECRET: &str = "test-session-secret-0b7e44c1d2";
const ENCRYPTION_KEY: &str = "test-encryption-key-93aa01fe5c";

// ---------------------------------------------------------------------------------------------
// Docker scaffolding

fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("{}-{:x}", std::process::id(), nanos & 0xffff_ffff)
    })
}

fn unique_name(purpose: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "radar-app-test-{}-{}-{purpose}",
        run_id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the docker CLI ({e}); these tests need Docker"))
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Fails the test (never skips it) when the daemon cannot be reached.
fn require_docker() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECK.get_or_init(|| {
        let out = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    });
    if let Err(e) = result {
        let ci = if std::env::var_os("CI").is_some() {
            " (CI is set: Docker must be available in CI)"
        } else {
            ""
        };
        panic!("Docker is unreachable{ci}; the radar-app tests need a Docker daemon: {e}");
    }
}

fn image(var: &str, default: &str) -> String {
    let image = std::env::var(var).unwrap_or_else(|_| default.to_string());
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", &image]);
    assert!(
        out.status.success(),
        "image {image} is missing: build it with scripts/offline-images.sh (or set {var})"
    );
    image
}

/// A container removed (with its anonymous volumes) when dropped.
struct Container {
    name: String,
    /// The host port the service's port is published on, fixed for the container's life.
    port: u16,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Container {
    /// Starts `image` with `container_port` published on 127.0.0.1.
    ///
    /// `restartable` publishes on a fixed free host port instead of a random one: Docker picks a
    /// new random port when a stopped container starts again, which would lose the app.
    fn start(
        purpose: &str,
        image: &str,
        container_port: u16,
        restartable: bool,
        options: &[&str],
        command: &[&str],
    ) -> Container {
        require_docker();
        for _attempt in 0..5 {
            let name = unique_name(purpose);
            let publish = if restartable {
                format!("127.0.0.1:{}:{container_port}", free_port())
            } else {
                format!("127.0.0.1::{container_port}")
            };
            let label = format!("{TEST_LABEL}={}", run_id());
            let mut full: Vec<&str> = vec![
                "run", "-d", "--name", &name, "--label", &label, "-p", &publish,
            ];
            full.extend_from_slice(options);
            full.push(image);
            full.extend_from_slice(command);
            let out = docker(&full);
            // Guard first, so a half-created container is removed too.
            let mut container = Container {
                name: name.clone(),
                port: 0,
            };
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                let port_taken =
                    err.contains("already allocated") || err.contains("address already in use");
                if restartable && port_taken {
                    continue;
                }
                panic!("docker {} failed: {}", full.join(" "), err.trim());
            }
            let mapping = docker_ok(&["port", &container.name, &container_port.to_string()]);
            container.port = mapping
                .lines()
                .find_map(|l| l.strip_prefix("127.0.0.1:"))
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("unexpected `docker port` output {mapping:?}"));
            return container;
        }
        panic!("no free host port for {purpose} after 5 attempts");
    }

    fn stop(&self) {
        docker_ok(&["stop", "-t", "5", &self.name]);
    }

    fn start_again(&self) {
        docker_ok(&["start", &self.name]);
    }

    fn logs(&self) -> String {
        let out = docker(&["logs", "--tail", "30", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Container {
    /// Starts `image` on the host's network running `script` with bash: every process listens
    /// on its own 127.0.0.1 port, so Sentinels announce addresses the app on the host can reach.
    fn start_on_host_network(purpose: &str, image: &str, port: u16, script: &str) -> Container {
        require_docker();
        let name = unique_name(purpose);
        let label = format!("{TEST_LABEL}={}", run_id());
        let args = [
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &label,
            "--network",
            "host",
            "--entrypoint",
            "bash",
            image,
            "-c",
            script,
        ];
        let out = docker(&args);
        let container = Container {
            name: name.clone(),
            port,
        };
        assert!(
            out.status.success(),
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        container
    }
}

/// A user-defined network, removed when dropped (declare it before its containers, so that
/// they are dropped, and removed, first).
struct Network {
    name: String,
}

impl Network {
    fn create() -> Network {
        require_docker();
        let name = unique_name("net");
        let label = format!("{TEST_LABEL}={}", run_id());
        docker_ok(&["network", "create", "--label", &label, &name]);
        Network { name }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A named volume, removed when dropped (declare it before the containers that mount it).
struct Volume {
    name: String,
}

impl Volume {
    fn create() -> Volume {
        require_docker();
        let name = unique_name("vol");
        let label = format!("{TEST_LABEL}={}", run_id());
        docker_ok(&["volume", "create", "--label", &label, &name]);
        Volume { name }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn start_redis(restartable: bool) -> Container {
    let image = image("RADAR_TEST_REDIS_IMAGE", "radar-offline/redis:bookworm");
    Container::start(
        "redis",
        &image,
        6379,
        restartable,
        &[],
        &["redis-server", "--requirepass", REDIS_PASSWORD],
    )
}

fn start_postgres(restartable: bool) -> Container {
    let image = image(
        "RADAR_TEST_POSTGRES_IMAGE",
        "radar-offline/postgres:bookworm",
    );
    Container::start(
        "postgres",
        &image,
        5432,
        restartable,
        &[
            "-e",
            "POSTGRES_USER=radar",
            "-e",
            &format!("POSTGRES_PASSWORD={PG_PASSWORD}"),
            "-e",
            "POSTGRES_DB=radar",
        ],
        &[],
    )
}

/// Sends one command to a Redis/Sentinel port in RESP and returns the reply's text parts
/// (the strings and integers, in order), or None when nothing answers.
fn resp(port: u16, args: &[&str]) -> Option<Vec<String>> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(request.as_bytes()).ok()?;
    let mut buf = [0u8; 8192];
    let n = stream.read(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Some(
        text.split("\r\n")
            .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
            .map(|l| l.trim_start_matches([':', '+']).to_string())
            .collect(),
    )
}

/// Runs `redis-cli` inside `container` against `port` (authenticated), returning its output.
fn redis_cli(container: &Container, port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut full = vec![
        "exec",
        container.name.as_str(),
        "redis-cli",
        "--no-auth-warning",
        "-a",
        REDIS_PASSWORD,
        "-p",
        &port,
    ];
    full.extend_from_slice(args);
    String::from_utf8_lossy(&docker(&full).stdout).to_string()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// The app under test

/// A running `radar-app` process, killed when dropped; its stderr goes to a file that is printed
/// when a wait fails.
struct App {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment for an app talking to the given stores (None: an address where nothing listens,
/// which the app must tolerate).
fn app_env(redis: Option<&Container>, pg: Option<&Container>) -> Vec<(String, String)> {
    let closed = free_port();
    let vars = [
        ("REDIS_HOST", "127.0.0.1".to_string()),
        ("REDIS_PORT", redis.map_or(closed, |c| c.port).to_string()),
        ("REDIS_PASSWORD", REDIS_PASSWORD.to_string()),
        ("POSTGRES_HOST", "127.0.0.1".to_string()),
        ("POSTGRES_PORT", pg.map_or(closed, |c| c.port).to_string()),
        ("POSTGRES_USER", "radar".to_string()),
        ("POSTGRES_DB", "radar".to_string()),
        ("POSTGRES_PASSWORD", PG_PASSWORD.to_string()),
        ("SESSION_SECRET", SESSION_SECRET.to_string()),
        ("ENCRYPTION_KEY", ENCRYPTION_KEY.to_string()),
        ("DB_POOL_SIZE", "2".to_string()),
    ];
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn spawn_app(instance_id: &str, env: &[(String, String)]) -> App {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let port = free_port();
    let child = Command::new(APP)
        .env_clear()
        .env("PORT", port.to_string())
        .env("INSTANCE_ID", instance_id)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn radar-app");
    let app = App {
        child,
        port,
        log,
        _dir: dir,
    };
    app.wait_for(Duration::from_secs(10), "/health/live answers 200", |app| {
        get(app.port, "/health/live", None).is_ok_and(|r| r.status == 200)
    });
    app
}

impl App {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, timeout: Duration, what: &str, mut ok: impl FnMut(&App) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ok(self) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "waited {timeout:?} for: {what}\n--- radar-app log ---\n{}",
            self.logs()
        );
    }

    fn ready(&self) -> Response {
        get(self.port, "/health/ready", None).expect("GET /health/ready")
    }

    /// Waits until the app reaches Redis (for tests that need no Postgres).
    fn wait_redis(&self) {
        self.wait_for(Duration::from_secs(20), "redis check ok", |app| {
            app.ready().json()["checks"]["redis"]["ok"] == true
        });
    }

    fn wait_ready(&self, timeout: Duration, stores: &[&Container]) {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            match get(self.port, "/health/ready", None) {
                Ok(r) if r.status == 200 => return,
                other => last = Some(other),
            }
            thread::sleep(Duration::from_millis(100));
        }
        let store_logs: Vec<String> = stores
            .iter()
            .map(|c| format!("--- {} ---\n{}", c.name, c.logs()))
            .collect();
        panic!(
            "not ready within {timeout:?}; last answer {last:?}\n--- radar-app ---\n{}\n{}",
            self.logs(),
            store_logs.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.0 client (the tests need no HTTP library)

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn get(port: u16, path: &str, cookie: Option<&str>) -> std::io::Result<Response> {
    request(port, "GET", path, cookie)
}

fn request(port: u16, method: &str, path: &str, cookie: Option<&str>) -> std::io::Result<Response> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{cookie}Content-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("incomplete response {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

/// The `name=value` part of a `Set-Cookie` header, as a browser would send it back.
fn cookie_of(r: &Response) -> String {
    let set = r
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie in {r:?}"));
    set.split(';').next().unwrap().trim().to_string()
}

fn session(app: &App, cookie: Option<&str>) -> Response {
    let r = get(app.port, "/api/session", cookie).expect("GET /api/session");
    assert_eq!(r.status, 200, "{r:?}\n--- radar-app ---\n{}", app.logs());
    r
}

fn failing(r: &Response) -> Vec<String> {
    r.json()["failing"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}

fn write_secret(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    // A trailing newline, as `echo` writes it: the app must trim it.
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// The behaviours

#[test]
fn readiness_names_redis_while_it_is_stopped_and_recovers_without_an_app_restart() {
    let redis = start_redis(true);
    let pg = start_postgres(false);
    let app = spawn_app("ready-redis", &app_env(Some(&redis), Some(&pg)));
    app.wait_ready(Duration::from_secs(30), &[&redis, &pg]);

    redis.stop();
    app.wait_for(Duration::from_secs(5), "ready 503 naming redis", |app| {
        let r = app.ready();
        r.status == 503 && failing(&r) == ["redis"]
    });
    let r = app.ready();
    let error = r.json()["checks"]["redis"]["error"]
        .as_str()
        .map(str::to_owned);
    assert!(error.is_some_and(|e| !e.is_empty()), "{r:?}");

    redis.start_again();
    app.wait_ready(Duration::from_secs(15), &[&redis, &pg]);
    // The session store works again too, on the same process.
    let first = session(&app, None);
    assert_eq!(first.json()["views"], 1);
}

#[test]
fn readiness_names_postgres_while_it_is_stopped_and_recovers_without_an_app_restart() {
    let redis = start_redis(false);
    let pg = start_postgres(true);
    let app = spawn_app("ready-pg", &app_env(Some(&redis), Some(&pg)));
    app.wait_ready(Duration::from_secs(30), &[&redis, &pg]);

    pg.stop();
    app.wait_for(Duration::from_secs(5), "ready 503 naming postgres", |app| {
        let r = app.ready();
        r.status == 503 && failing(&r) == ["postgres"]
    });

    pg.start_again();
    app.wait_ready(Duration::from_secs(30), &[&redis, &pg]);
}

#[test]
fn postgres_connections_stay_within_db_pool_size() {
    let redis = start_redis(false);
    let pg = start_postgres(false);
    let mut env = app_env(Some(&redis), Some(&pg));
    env.retain(|(k, _)| k != "DB_POOL_SIZE");
    env.push(("DB_POOL_SIZE".into(), "3".into()));
    let app = spawn_app("pool", &env);
    app.wait_ready(Duration::from_secs(30), &[&redis, &pg]);

    let port = app.port;
    let probes: Vec<_> = (0..24)
        .map(|_| thread::spawn(move || get(port, "/health/ready", None).unwrap().status))
        .collect();
    // On a loaded machine a probe may wait its whole second for one of the 3 connections and
    // answer 503: that is the bound working. The count below is what this test pins.
    let statuses: Vec<u16> = probes.into_iter().map(|p| p.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    let count = docker_ok(&[
        "exec",
        "-e",
        &format!("PGPASSWORD={PG_PASSWORD}"),
        &pg.name,
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "radar",
        "-d",
        "radar",
        "-tAc",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'radar-app%'",
    ]);
    let count: u32 = count.trim().parse().unwrap();
    assert!(
        (1..=3).contains(&count),
        "{count} connections for DB_POOL_SIZE=3"
    );
}

#[test]
fn session_counter_is_shared_by_two_app_processes() {
    let redis = start_redis(false);
    let env = app_env(Some(&redis), None);
    let a = spawn_app("shared-a", &env);
    let b = spawn_app("shared-b", &env);
    a.wait_redis();
    b.wait_redis();

    let first = session(&a, None);
    let cookie = cookie_of(&first);
    let set_cookie = first.header("set-cookie").unwrap().to_ascii_lowercase();
    for attr in ["httponly", "samesite=lax", "path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie} lacks {attr}");
    }
    assert!(cookie.starts_with("radar.sid="), "{cookie}");
    let id = first.json()["sessionId"].clone();

    let mut views = vec![first.json()["views"].as_i64().unwrap()];
    let mut instances = vec![first.json()["instanceId"].as_str().unwrap().to_string()];
    for app in [&b, &a, &b] {
        let r = session(app, Some(&cookie));
        let body = r.json();
        assert_eq!(body["sessionId"], id, "session id must be stable");
        assert!(r.header("set-cookie").is_none(), "cookie re-issued: {r:?}");
        views.push(body["views"].as_i64().unwrap());
        instances.push(body["instanceId"].as_str().unwrap().to_string());
    }
    assert_eq!(views, [1, 2, 3, 4]);
    assert_eq!(instances, ["shared-a", "shared-b", "shared-a", "shared-b"]);
}

#[test]
fn session_counter_counts_every_concurrent_request_exactly_once() {
    let redis = start_redis(false);
    let env = app_env(Some(&redis), None);
    let a = spawn_app("atomic-a", &env);
    let b = spawn_app("atomic-b", &env);
    a.wait_redis();
    b.wait_redis();
    let cookie = cookie_of(&session(&a, None));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let port = if i % 2 == 0 { a.port } else { b.port };
            let cookie = cookie.clone();
            thread::spawn(move || get(port, "/api/session", Some(&cookie)).unwrap().status)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(session(&b, Some(&cookie)).json()["views"], 22);
}

#[test]
fn forged_or_foreign_cookie_starts_a_new_session() {
    let redis = start_redis(false);
    let app = spawn_app("forged", &app_env(Some(&redis), None));
    app.wait_redis();
    let first = session(&app, None);
    let cookie = cookie_of(&first);
    let id = first.json()["sessionId"].as_str().unwrap().to_string();
    assert!(
        id.len() >= 22,
        "a 128-bit id in base64 has 22 characters: {id}"
    );
    session(&app, Some(&cookie));

    let (name_id, sig) = cookie.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let forged = [
        format!("{name_id}.{flipped}{}", &sig[1..]),
        format!("radar.sid={id}"),
        format!("radar.sid={id}.{}", "A".repeat(43)),
        "radar.sid=garbage".to_string(),
    ];
    for bad in forged {
        let r = session(&app, Some(&bad));
        let body = r.json();
        assert_ne!(
            body["sessionId"],
            id.as_str(),
            "accepted forged cookie {bad}"
        );
        assert_eq!(body["views"], 1, "{bad}");
        assert!(r.header("set-cookie").is_some(), "no new cookie for {bad}");
    }
    // The genuine cookie still works and was not disturbed by the forgeries.
    assert_eq!(session(&app, Some(&cookie)).json()["views"], 3);
}

#[test]
fn secrets_are_read_from_file_variables_in_preference_to_plain_ones() {
    let redis = start_redis(false);
    let pg = start_postgres(false);
    let dir = tempfile::tempdir().unwrap();
    let mut env = app_env(Some(&redis), Some(&pg));
    for (name, value) in [
        ("REDIS_PASSWORD", REDIS_PASSWORD),
        ("POSTGRES_PASSWORD", PG_PASSWORD),
        ("SESSION_SECRET", SESSION_SECRET),
        ("ENCRYPTION_KEY", ENCRYPTION_KEY),
    ] {
        let path = write_secret(dir.path(), name, value);
        env.retain(|(k, _)| k != name);
        // A wrong plain value proves the file wins.
        env.push((name.to_string(), "wrong-value-that-must-be-ignored".into()));
        env.push((format!("{name}_FILE"), path));
    }
    let from_files = spawn_app("files", &env);
    from_files.wait_ready(Duration::from_secs(30), &[&redis, &pg]);

    // The file's secret, without its newline, signs the same cookies as the plain variable.
    let plain = spawn_app("plain", &app_env(Some(&redis), Some(&pg)));
    let cookie = cookie_of(&session(&from_files, None));
    let r = session(&plain, Some(&cookie));
    assert_eq!(r.json()["views"], 2, "{r:?}");

    for app in [&from_files, &plain] {
        for secret in [REDIS_PASSWORD, PG_PASSWORD, SESSION_SECRET, ENCRYPTION_KEY] {
            assert!(!app.logs().contains(secret), "a secret was logged");
        }
    }
}

#[test]
fn sigterm_drains_an_in_flight_request_and_exits_in_time() {
    let mut env = app_env(None, None);
    env.push(("RADAR_APP_DIAGNOSTICS".into(), "1".into()));
    let mut app = spawn_app("drain", &env);
    let port = app.port;
    let in_flight = thread::spawn(move || get(port, "/api/slow?ms=2500", None));
    thread::sleep(Duration::from_millis(500));

    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &app.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    // New connections are refused soon after the signal...
    let refusing = (0..40).any(|_| {
        thread::sleep(Duration::from_millis(50));
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err()
    });
    // ...while the request already in flight completes normally.
    let r = in_flight.join().unwrap().expect("in-flight request failed");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["sleptMs"], 2500);

    let status = wait_exit(&mut app.child, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM\n{}", app.logs()));
    assert!(status.success(), "exit status {status}\n{}", app.logs());
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(refusing, "still accepting connections after SIGTERM");
    assert!(app.logs().contains("SIGTERM"), "{}", app.logs());
}

#[test]
fn diagnostics_endpoint_is_off_by_default() {
    let app = spawn_app("nodiag", &app_env(None, None));
    assert_eq!(get(app.port, "/api/slow?ms=1", None).unwrap().status, 404);
    let fault = request(app.port, "POST", "/api/fault?status=500", None).unwrap();
    assert_eq!(fault.status, 404, "{fault:?}");
    assert_eq!(get(app.port, "/health/backend", None).unwrap().status, 200);
}

#[test]
fn a_fault_makes_this_instance_slow_and_failing_but_spares_its_probes_until_cleared() {
    let mut env = app_env(None, None);
    env.push(("RADAR_APP_DIAGNOSTICS".into(), "1".into()));
    let app = spawn_app("faulty", &env);
    let set = request(app.port, "POST", "/api/fault?delay_ms=300&status=500", None).unwrap();
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.json()["status"], 500, "{set:?}");

    let start = Instant::now();
    let r = get(app.port, "/health/backend", None).unwrap();
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.json()["instanceId"], "faulty", "{r:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    // Docker's healthcheck and readiness are spared: the instance stays in service.
    let start = Instant::now();
    assert_eq!(get(app.port, "/health", None).unwrap().status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );

    let bad = request(app.port, "POST", "/api/fault?status=42", None).unwrap();
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.body.contains("42"), "{bad:?}");

    assert_eq!(
        request(app.port, "POST", "/api/fault", None)
            .unwrap()
            .status,
        200
    );
    let r = get(app.port, "/health/backend", None).unwrap();
    assert_eq!(r.status, 200, "cleared: {r:?}");
}

#[test]
fn healthcheck_subcommand_exits_0_against_a_running_app_and_1_when_none_listens() {
    let app = spawn_app("hc", &app_env(None, None));
    let probe = |port: u16| {
        let start = Instant::now();
        let status = Command::new(APP)
            .arg("healthcheck")
            .env_clear()
            .env("PORT", port.to_string())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(3));
        status.code()
    };
    assert_eq!(probe(app.port), Some(0));
    assert_eq!(probe(free_port()), Some(1));
}

#[test]
fn app_without_reachable_stores_is_live_but_not_ready_and_backend_names_the_instance() {
    let app = spawn_app("nostores", &app_env(None, None));
    let r = app.ready();
    assert_eq!(r.status, 503);
    assert_eq!(failing(&r), ["postgres", "redis"]);
    let backend = get(app.port, "/health/backend", None).unwrap();
    assert_eq!(backend.status, 200);
    assert_eq!(backend.json()["instanceId"], "nostores");
    assert_eq!(get(app.port, "/health", None).unwrap().status, 200);
    let s = get(app.port, "/api/session", None).unwrap();
    assert_eq!(s.status, 503, "{s:?}");
}

#[test]
fn instance_id_defaults_to_the_hostname() {
    let env: Vec<_> = app_env(None, None);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let port = free_port();
    // Not spawn_app: it always sets INSTANCE_ID.
    let child = Command::new(APP)
        .env_clear()
        .env("PORT", port.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let app = App {
        child,
        port,
        log,
        _dir: dir,
    };
    app.wait_for(Duration::from_secs(10), "/health/backend answers", |app| {
        get(app.port, "/health/backend", None).is_ok_and(|r| r.status == 200)
    });
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let backend = get(app.port, "/health/backend", None).unwrap().json();
    assert_eq!(backend["instanceId"], hostname.trim());
    assert!(backend["uptimeSeconds"].is_u64(), "{backend}");
}

#[test]
fn missing_secrets_are_a_configuration_error_naming_each_variable() {
    let out = Command::new(APP)
        .env_clear()
        .env("PORT", free_port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SESSION_SECRET"), "{stderr}");
    assert!(stderr.contains("ENCRYPTION_KEY"), "{stderr}");
}

/// A Redis master, its replica and three Sentinels (quorum 2) on the host network, with short
/// Sentinel timings so a failover takes seconds.
struct SentinelSet {
    master: Container,
    _replica: Container,
    _sentinels: Vec<Container>,
    master_port: u16,
    replica_port: u16,
    sentinel_ports: [u16; 3],
}

impl SentinelSet {
    fn start() -> SentinelSet {
        let image = image("RADAR_TEST_REDIS_IMAGE", "radar-offline/redis:bookworm");
        let [master_port, replica_port, s1, s2, s3] = [(); 5].map(|_| free_port());
        let common = format!(
            "--bind 127.0.0.1 --requirepass {REDIS_PASSWORD} --masterauth {REDIS_PASSWORD} \
             --save '' --appendonly no"
        );
        let master = Container::start_on_host_network(
            "redis-master",
            &image,
            master_port,
            &format!("exec redis-server --port {master_port} {common}"),
        );
        let replica = Container::start_on_host_network(
            "redis-replica",
            &image,
            replica_port,
            &format!(
                "exec redis-server --port {replica_port} {common} \
                 --replicaof 127.0.0.1 {master_port}"
            ),
        );
        // A quorum of 2 out of 3 Sentinels, with short timings so the test takes seconds.
        let _sentinels: Vec<Container> = [s1, s2, s3]
            .iter()
            .map(|&port| {
                let conf = [
                    format!("port {port}"),
                    "bind 127.0.0.1".into(),
                    format!("sentinel monitor mymaster 127.0.0.1 {master_port} 2"),
                    format!("sentinel auth-pass mymaster {REDIS_PASSWORD}"),
                    "sentinel down-after-milliseconds mymaster 1000".into(),
                    "sentinel failover-timeout mymaster 5000".into(),
                ]
                .join("\\n");
                let script = format!(
                    "printf '{conf}\\n' > /tmp/sentinel.conf && exec redis-server /tmp/sentinel.conf --sentinel"
                );
                Container::start_on_host_network("sentinel", &image, port, &script)
            })
            .collect();

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let quorum = resp(s1, &["SENTINEL", "ckquorum", "mymaster"]).unwrap_or_default();
            let replicas = resp(s1, &["SENTINEL", "replicas", "mymaster"]).unwrap_or_default();
            let all_seen = quorum.first().is_some_and(|l| l.contains("3 usable"));
            // A replica promoted before its first sync completes would come up empty.
            let synced = redis_cli(&replica, replica_port, &["INFO", "replication"])
                .contains("master_link_status:up");
            if all_seen && synced && replicas.iter().any(|f| f == "slave") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sentinels not settled: {quorum:?} {replicas:?}"
            );
            thread::sleep(Duration::from_millis(200));
        }

        SentinelSet {
            master,
            _replica: replica,
            _sentinels,
            master_port,
            replica_port,
            sentinel_ports: [s1, s2, s3],
        }
    }

    fn app_env(&self) -> Vec<(String, String)> {
        let mut env = app_env(None, None);
        let [s1, s2, s3] = self.sentinel_ports;
        env.push((
            "REDIS_SENTINELS".into(),
            format!("127.0.0.1:{s1},127.0.0.1:{s2},127.0.0.1:{s3}"),
        ));
        env.push(("REDIS_MASTER_NAME".into(), "mymaster".into()));
        env
    }

    /// The master's port as any Sentinel names it.
    fn named_master(&self) -> Vec<u16> {
        self.sentinel_ports
            .iter()
            .filter_map(|&s| resp(s, &["SENTINEL", "get-master-addr-by-name", "mymaster"]))
            .filter_map(|r| r.get(1).and_then(|p| p.parse().ok()))
            .collect()
    }
}

#[test]
fn session_follows_a_sentinel_failover_without_an_app_restart() {
    let set = SentinelSet::start();
    let (master, replica_port) = (&set.master, set.replica_port);
    let env = set.app_env();
    let app = spawn_app("failover", &env);
    app.wait_redis();
    let cookie = cookie_of(&session(&app, None));
    assert_eq!(session(&app, Some(&cookie)).json()["views"], 2);
    assert_eq!(session(&app, Some(&cookie)).json()["views"], 3);
    // Let the replica receive the last write before the master goes away.
    thread::sleep(Duration::from_millis(500));

    master.stop();
    let stopped = Instant::now();
    let mut switched: Option<Instant> = None;
    let mut served = None;
    while stopped.elapsed() < Duration::from_secs(40) {
        if switched.is_none() && set.named_master().contains(&replica_port) {
            switched = Some(Instant::now());
        }
        let r = get(app.port, "/api/session", Some(&cookie)).unwrap();
        if r.status == 200 && switched.is_some() {
            served = Some((Instant::now(), r));
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let switched = switched.unwrap_or_else(|| panic!("no failover within 40 s\n{}", app.logs()));
    let (at, r) = served.unwrap_or_else(|| panic!("app never recovered\n{}", app.logs()));
    let lag = at.saturating_duration_since(switched);
    eprintln!(
        "failover: sentinels named the new master {:?} after the stop; the app served the session {lag:?} later",
        switched - stopped
    );
    assert_eq!(
        r.json()["views"],
        4,
        "the session survived the failover: {r:?}"
    );
    assert!(
        lag < Duration::from_secs(2),
        "the app took {lag:?} to follow the failover\n{}",
        app.logs()
    );
    // The +switch-master watchers saw the event too (they may log just after the recovery).
    app.wait_for(Duration::from_secs(3), "+switch-master logged", |app| {
        app.logs().contains("switched to")
    });
}

#[test]
fn image_runs_from_scratch_as_nonroot_resolves_service_names_and_becomes_healthy() {
    require_docker();
    let app_image = std::env::var("RADAR_TEST_APP_IMAGE")
        .unwrap_or_else(|_| "radar-deploy/radar-app:0.1.0".to_string());
    let inspect = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        &app_image,
    ]);
    assert!(
        inspect.status.success(),
        "image {app_image} is missing: the first `radar-deploy up` builds it (.ci/run does so \
         before the tests), or set RADAR_TEST_APP_IMAGE"
    );
    let config: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Labels"]["io.radar-deploy.app"], "reference");
    assert_eq!(config["Healthcheck"]["Test"][1], "/radar-app");

    let net = Network::create();
    let logs = Volume::create();
    let redis_image = image("RADAR_TEST_REDIS_IMAGE", "radar-offline/redis:bookworm");
    let pg_image = image(
        "RADAR_TEST_POSTGRES_IMAGE",
        "radar-offline/postgres:bookworm",
    );
    let on_net = |alias: &'static str| ["--network", &net.name, "--network-alias", alias];
    let redis = Container::start(
        "img-redis",
        &redis_image,
        6379,
        false,
        &on_net("redis"),
        &["redis-server", "--requirepass", REDIS_PASSWORD],
    );
    let pg_password = format!("POSTGRES_PASSWORD={PG_PASSWORD}");
    let mut pg_opts = on_net("postgres").to_vec();
    pg_opts.extend([
        "-e",
        "POSTGRES_USER=radar",
        "-e",
        "POSTGRES_DB=radar",
        "-e",
        &pg_password,
    ]);
    let pg = Container::start("img-postgres", &pg_image, 5432, false, &pg_opts, &[]);

    // The app finds both by their service names (POSTGRES_HOST/REDIS_HOST defaults).
    let env = [
        format!("REDIS_PASSWORD={REDIS_PASSWORD}"),
        "POSTGRES_USER=radar".to_string(),
        "POSTGRES_DB=radar".to_string(),
        pg_password.clone(),
        format!("SESSION_SECRET={SESSION_SECRET}"),
        format!("ENCRYPTION_KEY={ENCRYPTION_KEY}"),
        "INSTANCE_ID=image-1".to_string(),
        "LOG_DIR=/var/log/app".to_string(),
    ];
    let log_mount = format!("{}:/var/log/app", logs.name);
    let mut app_opts = vec!["--network", net.name.as_str(), "-v", &log_mount];
    for e in &env {
        app_opts.extend(["-e", e.as_str()]);
    }
    let app = Container::start("img-app", &app_image, 3000, false, &app_opts, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if get(app.port, "/health/ready", None).is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "image never became ready\n{}\n{}\n{}",
            app.logs(),
            redis.logs(),
            pg.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let backend = get(app.port, "/health/backend", None).unwrap().json();
    assert_eq!(backend["instanceId"], "image-1");

    // The HEALTHCHECK (the binary probing itself) reports healthy.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = docker_ok(&["inspect", "--format", "{{.State.Health.Status}}", &app.name]);
        if health == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "health is {health:?}");
        thread::sleep(Duration::from_millis(250));
    }

    let stopping = Instant::now();
    docker_ok(&["stop", "-t", "10", &app.name]);
    assert!(stopping.elapsed() < Duration::from_secs(5), "slow stop");
    let code = docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", &app.name]);
    assert_eq!(code, "0", "{}", app.logs());

    // The non-root user could write its log volume (read it back through a data-store image).
    let copy = docker_ok(&[
        "run",
        "--rm",
        "--label",
        &format!("{TEST_LABEL}={}", run_id()),
        "-v",
        &log_mount,
        "--entrypoint",
        "cat",
        &redis_image,
        "/var/log/app/radar-app.log",
    ]);
    assert!(copy.contains("instance image-1 listening"), "{copy}");
    assert!(copy.contains("SIGTERM received"), "{copy}");
}

#[test]
fn sentinel_mode_falls_back_to_redis_host_when_no_sentinel_answers() {
    let redis = start_redis(false);
    let mut env = app_env(Some(&redis), None);
    let nobody = free_port();
    env.push(("REDIS_SENTINELS".into(), format!("127.0.0.1:{nobody}")));
    let app = spawn_app("fallback", &env);
    app.wait_redis();
    let cookie = cookie_of(&session(&app, None));
    assert_eq!(session(&app, Some(&cookie)).json()["views"], 2);
    assert!(app.logs().contains("trying REDIS_HOST"), "{}", app.logs());
}

#[test]
fn session_follows_a_manual_failover_that_demotes_the_live_master() {
    let set = SentinelSet::start();
    let app = spawn_app("manual-failover", &set.app_env());
    app.wait_redis();
    let cookie = cookie_of(&session(&app, None));
    assert_eq!(session(&app, Some(&cookie)).json()["views"], 2);
    thread::sleep(Duration::from_millis(500));

    // The old master stays up and becomes a replica: the app's open connection to it now leads
    // to a read-only node, which the app must notice (READONLY, a dropped link or the
    // +switch-master event) and leave for the new master.
    let [s1, _, _] = set.sentinel_ports;
    let reply = resp(s1, &["SENTINEL", "FAILOVER", "mymaster"]);
    assert_eq!(reply, Some(vec!["OK".to_string()]), "SENTINEL FAILOVER");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !set.named_master().contains(&set.replica_port) {
        assert!(
            Instant::now() < deadline,
            "no switch after SENTINEL FAILOVER"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // The old master goes on accepting writes for several seconds until Sentinel reconfigures it
    // as a replica, and whatever it accepts then is lost. So once the app has seen the switch
    // (+switch-master), its next write must reach the new master, although its connection to
    // the old one still works...
    app.wait_for(Duration::from_secs(3), "+switch-master logged", |app| {
        app.logs().contains("switched to")
    });
    let r = session(&app, Some(&cookie));
    assert_eq!(r.json()["views"], 3, "{r:?}");

    // ...which the count proves once the old master has been turned into a replica (had the write
    // gone to it, its resync from the new master would have dropped it).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replicas = resp(s1, &["SENTINEL", "replicas", "mymaster"]).unwrap_or_default();
        let field = |name: &str| {
            replicas
                .windows(2)
                .find(|w| w[0] == name)
                .map(|w| w[1].clone())
        };
        if field("port") == Some(set.master_port.to_string())
            && field("role-reported").as_deref() == Some("slave")
            && field("master-link-status").as_deref() == Some("ok")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old master not demoted and linked: {replicas:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    let r = session(&app, Some(&cookie));
    assert_eq!(
        r.json()["views"],
        4,
        "{r:?}\nsentinels name {:?} (master {}, replica {})\n{}",
        set.named_master(),
        set.master_port,
        set.replica_port,
        app.logs()
    );
}

/// A scripted Sentinel: it names whichever master the test sets and announces `+switch-master`
/// only when told, so the test can hold the moment a real failover passes through too quickly
/// to catch: one Sentinel has announced the new master while another still names the old one.
struct FakeSentinel {
    port: u16,
    named: std::sync::Arc<std::sync::atomic::AtomicU16>,
    subscribers: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl FakeSentinel {
    fn start(named: u16) -> FakeSentinel {
        use std::io::BufRead;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let sentinel = FakeSentinel {
            port,
            named: std::sync::Arc::new(std::sync::atomic::AtomicU16::new(named)),
            subscribers: Default::default(),
        };
        let (named, subscribers) = (sentinel.named.clone(), sentinel.subscribers.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (named, subscribers) = (named.clone(), subscribers.clone());
                thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    let mut out = stream;
                    // Requests are RESP arrays of bulk strings: "*N", then "$len" and the text.
                    let mut line = String::new();
                    let mut next_line = |line: &mut String| {
                        line.clear();
                        reader.read_line(line).ok().filter(|&n| n > 0)?;
                        Some(line.trim_end().to_string())
                    };
                    while let Some(head) = next_line(&mut line) {
                        let n: usize = head.trim_start_matches('*').parse().unwrap_or(0);
                        let mut args = Vec::new();
                        for _ in 0..n {
                            let (Some(_len), Some(arg)) =
                                (next_line(&mut line), next_line(&mut line))
                            else {
                                return;
                            };
                            args.push(arg.to_ascii_lowercase());
                        }
                        let reply = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                            ["sentinel", "get-master-addr-by-name", _] => {
                                let port = named.load(Ordering::SeqCst).to_string();
                                format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{port}\r\n", port.len())
                            }
                            ["subscribe", _] => {
                                subscribers.lock().unwrap().push(out.try_clone().unwrap());
                                "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n".into()
                            }
                            ["ping"] => "*2\r\n$4\r\npong\r\n$0\r\n\r\n".into(),
                            _ => "+OK\r\n".into(),
                        };
                        if out.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        sentinel
    }

    /// Publishes `+switch-master` from `old` to `new` to every subscriber.
    fn announce(&self, old: u16, new: u16) {
        let payload = format!("mymaster 127.0.0.1 {old} 127.0.0.1 {new}");
        let message = format!(
            "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n${}\r\n{payload}\r\n",
            payload.len()
        );
        for subscriber in self.subscribers.lock().unwrap().iter_mut() {
            let _ = subscriber.write_all(message.as_bytes());
        }
    }
}

/// Starts a Redis node on the host network, a replica of `master` when given.
fn start_host_redis(purpose: &str, master: Option<u16>) -> Container {
    let image = image("RADAR_TEST_REDIS_IMAGE", "radar-offline/redis:bookworm");
    let port = free_port();
    let replica_of = master.map_or(String::new(), |m| format!("--replicaof 127.0.0.1 {m}"));
    let node = Container::start_on_host_network(
        purpose,
        &image,
        port,
        &format!(
            "exec redis-server --port {port} --bind 127.0.0.1 --requirepass {REDIS_PASSWORD} \
             --masterauth {REDIS_PASSWORD} --save '' --appendonly no {replica_of}"
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = redis_cli(&node, port, &["INFO", "replication"]);
        if info.contains("role:master") || info.contains("master_link_status:up") {
            return node;
        }
        assert!(Instant::now() < deadline, "{purpose} not up: {info}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// Makes `node` a replica of `master` and waits until it has synced.
fn replicate(node: &Container, master: u16) {
    redis_cli(
        node,
        node.port,
        &["REPLICAOF", "127.0.0.1", &master.to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !redis_cli(node, node.port, &["INFO", "replication"]).contains("master_link_status:up") {
        assert!(Instant::now() < deadline, "{} did not sync", node.name);
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_announced_master_wins_over_a_sentinel_that_still_names_the_old_one() {
    let old = start_host_redis("redis-old-master", None);
    let new = start_host_redis("redis-new-master", Some(old.port));
    let sentinel = FakeSentinel::start(old.port);
    let mut env = app_env(None, None);
    env.push((
        "REDIS_SENTINELS".into(),
        format!("127.0.0.1:{}", sentinel.port),
    ));
    env.push(("REDIS_MASTER_NAME".into(), "mymaster".into()));
    let app = spawn_app("announced", &env);
    app.wait_redis();
    let first = session(&app, None);
    let cookie = cookie_of(&first);
    let key = format!(
        "radar:session:{}",
        first.json()["sessionId"].as_str().unwrap()
    );
    assert_eq!(session(&app, Some(&cookie)).json()["views"], 2);
    let views_on = |node: &Container| redis_cli(node, node.port, &["HGET", &key, "views"]);
    // The replica holds what the master acknowledged before it is promoted (its initial sync and
    // the stream are asynchronous: promoted a moment too early, it would start from nothing,
    // which is Redis's replication, not the app's choice of master, the point of this test).
    let synced = std::time::Instant::now();
    while views_on(&new).trim() != "2" {
        assert!(
            synced.elapsed() < Duration::from_secs(10),
            "the replica never received the session: {:?}",
            views_on(&new)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The failover: the replica is promoted and one Sentinel announces it, while the Sentinel
    // the app asks still names the old master, which still answers as a master. Writes that
    // went there now would be lost when it is demoted.
    redis_cli(&new, new.port, &["REPLICAOF", "NO", "ONE"]);
    sentinel.announce(old.port, new.port);
    app.wait_for(Duration::from_secs(3), "+switch-master logged", |app| {
        app.logs().contains("switched to")
    });
    let r = session(&app, Some(&cookie));
    assert_eq!(r.json()["views"], 3, "{r:?}\n{}", app.logs());
    assert_eq!(
        views_on(&new).trim(),
        "3",
        "the write must reach the announced master"
    );
    assert_eq!(
        views_on(&old).trim(),
        "2",
        "the old master must not take the write"
    );
    assert!(
        app.logs().contains(&format!(
            "a sentinel still names 127.0.0.1:{}; using the announced master",
            old.port
        )),
        "{}",
        app.logs()
    );

    // A later switch back that the app never heard of: the announced master is demoted, so the
    // announcement is forgotten and the Sentinels' answer holds, without failing the request.
    replicate(&old, new.port);
    redis_cli(&old, old.port, &["REPLICAOF", "NO", "ONE"]);
    replicate(&new, old.port);
    let r = session(&app, Some(&cookie));
    assert_eq!(r.json()["views"], 4, "{r:?}\n{}", app.logs());
    assert_eq!(views_on(&old).trim(), "4");
}

/// Runs `radar-app migrate` against the stores of `env` and returns its output.
fn migrate(env: &[(String, String)]) -> Output {
    Command::new(APP)
        .arg("migrate")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run radar-app migrate")
}

fn psql(pg: &Container, sql: &str) -> String {
    docker_ok(&[
        "exec", &pg.name, "psql", "-U", "radar", "-d", "radar", "-tAc", sql,
    ])
    .trim()
    .to_string()
}

#[test]
fn migrate_applies_each_version_once_even_when_two_runs_race_and_then_is_a_no_op() {
    let pg = start_postgres(false);
    // Only the Postgres settings: the session secrets are not needed to migrate.
    let env: Vec<(String, String)> = app_env(None, Some(&pg))
        .into_iter()
        .filter(|(k, _)| k.starts_with("POSTGRES_"))
        .collect();

    // Two runs started together on an empty database: the advisory lock serialises them.
    let racing: Vec<_> = (0..2)
        .map(|_| {
            let env = env.clone();
            thread::spawn(move || migrate(&env))
        })
        .collect();
    let outputs: Vec<Output> = racing.into_iter().map(|t| t.join().unwrap()).collect();
    let stdout: Vec<String> = outputs
        .iter()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(0), "{text}\n{err}");
            text
        })
        .collect();
    let applying = stdout
        .iter()
        .filter(|s| s.contains("applied 2 migration(s) (1, 2)"))
        .count();
    assert_eq!(applying, 1, "exactly one run applies: {stdout:#?}");
    assert!(
        stdout.iter().any(|s| s.contains("nothing to do")),
        "{stdout:#?}"
    );
    assert_eq!(
        psql(
            &pg,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"
        ),
        "1,2"
    );
    // v1's table is usable.
    assert_eq!(
        psql(&pg, "INSERT INTO notes (body) VALUES ('x') RETURNING id"),
        "1\nINSERT 0 1"
    );

    let again = migrate(&env);
    assert_eq!(again.status.code(), Some(0));
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.contains("nothing to do: the schema is at version 2"),
        "{text}"
    );
}

#[test]
fn migrate_fails_with_exit_1_naming_postgres_when_it_cannot_connect_and_2_without_config() {
    let mut env = app_env(None, None);
    env.retain(|(k, _)| k.starts_with("POSTGRES_"));
    env.push(("POSTGRES_PORT".into(), free_port().to_string()));
    let out = migrate(&env);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connecting to Postgres at 127.0.0.1"), "{err}");

    let bad = migrate(&[("POSTGRES_PORT".into(), "not-a-port".into())]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("POSTGRES_PORT"));
}

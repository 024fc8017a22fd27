//! The Windows binary, run under Wine against this machine's daemon: what a Windows user runs.
//!
//! `.ci/run` builds `radar-deploy.exe` (x86_64-pc-windows-gnu, with bcryptprimitives.dll beside
//! it: see `../shared/tools/windows-target.sh`) and names it in `RADAR_WINDOWS_EXE`. A Windows
//! process under Wine cannot reach a unix socket, so each test starts a forwarder
//! (`socat TCP-LISTEN:PORT,bind=127.0.0.1 … UNIX-CONNECT:<daemon socket>`) and gives the exe
//! `DOCKER_HOST=tcp://127.0.0.1:PORT`.
//!
//! A missing exe or Wine fails the tests, with how to build it (as every test here fails rather
//! than skips: a green run means the Windows binary ran).
//!
//! The whole life cycle is timed for the Windows binary and for the Linux one through the same
//! forwarder, so the figures printed (`--nocapture`) show what Wine costs. Most of `up`'s time is
//! waiting for containers to be healthy, which varies by a few seconds from run to run.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, image, text, HostProject, BIN};

const EXE_VAR: &str = "RADAR_WINDOWS_EXE";

/// The exe to test; the test fails when none was built.
fn windows_exe() -> PathBuf {
    let how = "build it with `bash ../shared/tools/windows-target.sh` (once, as root), then \
               `cargo +nightly build --release -Zbuild-std=std,panic_abort --target \
               x86_64-pc-windows-gnu --bin radar-deploy`, copy bcryptprimitives.dll beside it, \
               and set RADAR_WINDOWS_EXE to target/x86_64-pc-windows-gnu/release/radar-deploy.exe \
               (.ci/run does all of it)";
    let Some(exe) = std::env::var_os(EXE_VAR).map(PathBuf::from) else {
        panic!("{EXE_VAR} is not set: this test runs the Windows binary; {how}");
    };
    assert!(
        exe.is_file(),
        "{EXE_VAR}={} is not a file; {how}",
        exe.display()
    );
    let dll = exe.with_file_name("bcryptprimitives.dll");
    assert!(
        dll.is_file(),
        "{} is missing: Wine 8 lacks ProcessPrng, which Rust's std needs; {how}",
        dll.display()
    );
    let wine = Command::new("wine").arg("--version").output();
    assert!(
        wine.as_ref().is_ok_and(|o| o.status.success()),
        "wine is not installed ({wine:?}): run `bash ../shared/tools/windows-target.sh` as root"
    );
    exe
}

/// A forwarder from a loopback TCP port to the daemon's unix socket, ended (by its pid) on drop.
struct Forwarder {
    child: Child,
    port: u16,
}

impl Forwarder {
    fn start() -> Forwarder {
        let socket = match std::env::var("DOCKER_HOST") {
            Ok(h) if h.starts_with("unix://") => h["unix://".len()..].to_string(),
            _ => "/var/run/docker.sock".to_string(),
        };
        let port = free_port();
        let child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"))
            .arg(format!("UNIX-CONNECT:{socket}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start socat ({e}): run `bash ../shared/tools/windows-target.sh`")
            });
        let f = Forwarder { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "socat never listened on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        f
    }

    fn docker_host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Wine prefix for every test of this binary and every run of it: the first start of Wine
/// initialises a prefix (10-40 s), which target/tmp keeps for the next run.
fn wine_prefix() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wine-prefix")
}

/// A wineserver kept running for a test, and Wine's own helper processes (services, devices)
/// started once with it. Without it, every command starts a new server and helpers, which
/// inherit the command's stdout and stderr, so waiting for the command's output waits for them
/// too (2-3 s a command): Wine's cost, not the program's, and none that Windows has.
struct WineServer {
    /// `None` when a server of this prefix was already running: it is not ours to stop.
    child: Option<Child>,
}

impl WineServer {
    fn start(exe: &Path) -> WineServer {
        std::fs::create_dir_all(wine_prefix()).expect("create the Wine prefix directory");
        let mut child = Command::new("wineserver")
            .args(["--foreground", "--persistent"])
            .env("WINEPREFIX", wine_prefix())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wineserver");
        std::thread::sleep(Duration::from_millis(300));
        // It exits at once when another server has this prefix.
        let child = match child.try_wait() {
            Ok(Some(_)) => None,
            _ => Some(child),
        };
        // The first start initialises the prefix and starts the helpers, with no pipe to hold.
        let t0 = Instant::now();
        let status = Command::new("wine")
            .arg(exe)
            .arg("--version")
            .env("WINEPREFIX", wine_prefix())
            .env("WINEDEBUG", "-all")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run wine");
        assert!(
            status.success(),
            "radar-deploy.exe --version under Wine failed ({status}); run it by hand: \
             WINEPREFIX={} wine {} --version",
            wine_prefix().display(),
            exe.display()
        );
        eprintln!(
            "Wine ready (prefix {}) in {:.1}s",
            wine_prefix().display(),
            t0.elapsed().as_secs_f64()
        );
        WineServer { child }
    }
}

impl Drop for WineServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `wineserver -k` stops this prefix's server and its helper processes; the server
            // is the child started above, reaped by its pid.
            let _ = Command::new("wineserver")
                .arg("-k")
                .env("WINEPREFIX", wine_prefix())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
        }
    }
}

/// Which binary runs the commands: the Linux one or the Windows one under Wine.
#[derive(Clone, Copy, PartialEq)]
enum Binary<'a> {
    Linux,
    Windows(&'a Path),
}

/// Runs radar-deploy commands for a project through the forwarder, with exactly the project's
/// settings: the env file is named relative to the project's directory (the working directory),
/// which both binaries read alike.
struct Runner<'a> {
    binary: Binary<'a>,
    project: &'a HostProject,
    docker_host: String,
}

impl Runner<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = match self.binary {
            Binary::Linux => Command::new(BIN),
            Binary::Windows(exe) => {
                let mut c = Command::new("wine");
                c.arg(exe)
                    .env("WINEPREFIX", wine_prefix())
                    .env("WINEDEBUG", "-all")
                    // No window is needed; without a display Wine does not try to open one.
                    .env_remove("DISPLAY")
                    .env_remove("WAYLAND_DISPLAY");
                c
            }
        };
        c.args(["--env-file", ".env.multi-instance", "--project"])
            .arg(&self.project.name)
            .arg("--no-color")
            .args(args)
            .current_dir(self.project.dir.path())
            .env("DOCKER_HOST", &self.docker_host)
            // Environment variables pass through to the Windows process: none of the caller's
            // may change what the env file says.
            .env_remove("RADAR_ENV_FILE")
            .env_remove("RADAR_PROJECT")
            .env_remove("RADAR_TARGET")
            .env_remove("APP_INSTANCES")
            .env_remove("HTTP_PORT")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run radar-deploy")
    }

    /// Runs a command that must succeed; returns its output text and how long it took.
    fn ok(&self, args: &[&str]) -> (String, Duration) {
        let t0 = Instant::now();
        let out = self.run(args);
        let took = t0.elapsed();
        let name = match self.binary {
            Binary::Linux => "radar-deploy",
            Binary::Windows(_) => "radar-deploy.exe (Wine)",
        };
        assert!(
            out.status.success(),
            "{name} {args:?} failed ({:?}):\n{}",
            out.status.code(),
            text(&out)
        );
        (text(&out), took)
    }

    /// The env file as `init` wrote it, plus the offline images and the project's port.
    fn init(&self) -> Duration {
        let (out, took) = self.ok(&["init", "--force"]);
        assert!(out.contains("newly generated secrets"), "{out}");
        // init says how it protected the file, in the platform's own terms.
        let protection = match self.binary {
            Binary::Linux => "(mode 0600)",
            Binary::Windows(_) => "(readable by your Windows account alone)",
        };
        assert!(out.contains(protection), "{out}");
        for (var, default) in [
            ("NGINX_IMAGE", "radar-offline/nginx:bookworm"),
            ("POSTGRES_IMAGE", "radar-offline/postgres:bookworm"),
            ("REDIS_IMAGE", "radar-offline/redis:bookworm"),
            ("APP_IMAGE", "radar-deploy/radar-app:0.1.0"),
            ("APP_BUILDER_IMAGE", "radar-offline/rust:bookworm"),
        ] {
            self.project.set_env(var, &image(var, default));
        }
        self.project
            .set_env("HTTP_PORT", &self.project.port.to_string());
        self.project.set_env("APP_INSTANCES", "3");
        took
    }
}

/// `init` → `up --ha` → `verify --ha` → `scale 5` → `down --volumes`, each timed.
fn life_cycle(binary: Binary, forwarder: &Forwarder) -> Vec<(&'static str, Duration)> {
    let project = HostProject::new("win", 3);
    let r = Runner {
        binary,
        project: &project,
        docker_host: forwarder.docker_host(),
    };
    let mut times = vec![("init", r.init())];
    // Each exits non-zero when a check fails.
    let (_, took) = r.ok(&["up", "--ha", "--timeout", "240"]);
    times.push(("up --ha", took));
    let (_, took) = r.ok(&["verify", "--ha"]);
    times.push(("verify --ha", took));
    let (_, took) = r.ok(&["scale", "5", "--timeout", "240"]);
    times.push(("scale 5", took));
    let env = std::fs::read_to_string(project.env_file()).expect("env file");
    assert!(
        env.contains("APP_INSTANCES=5"),
        "scale saved the count:\n{env}"
    );
    let out = r.run(&["status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --format json: {e}\n{}", text(&out)));
    let apps = status["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.contains("-app-")))
        .count();
    assert_eq!(apps, 5, "{status}");
    let (_, took) = r.ok(&["down", "--volumes"]);
    times.push(("down --volumes", took));
    times
}

fn print_times(label: &str, times: &[(&str, Duration)]) -> Duration {
    let total: Duration = times.iter().map(|(_, d)| *d).sum();
    let each: Vec<String> = times
        .iter()
        .map(|(what, d)| format!("{what} {:.1}s", d.as_secs_f64()))
        .collect();
    eprintln!(
        "{label}: {:.1}s in all ({})",
        total.as_secs_f64(),
        each.join(", ")
    );
    total
}

#[test]
fn the_windows_binary_deploys_verifies_scales_and_removes_a_stack_under_wine() {
    let exe = windows_exe();
    let _slot = common::alone();
    let forwarder = Forwarder::start();

    let _wine = WineServer::start(&exe);
    let windows = print_times(
        "radar-deploy.exe under Wine",
        &life_cycle(Binary::Windows(&exe), &forwarder),
    );
    let linux = print_times(
        "radar-deploy (Linux, the tests' debug build), same forwarder",
        &life_cycle(Binary::Linux, &forwarder),
    );
    eprintln!(
        "Wine / Linux: {:.2}x",
        windows.as_secs_f64() / linux.as_secs_f64()
    );
}

/// Where the Windows process keeps its lock files: `%TEMP%` inside the Wine prefix.
fn find_under(dir: &Path, name_starts: &str, name_ends: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() && !entry.file_type().is_ok_and(|t| t.is_symlink()) {
            if let Some(found) = find_under(&path, name_starts, name_ends) {
                return Some(found);
            }
        } else if name.starts_with(name_starts) && name.ends_with(name_ends) {
            return Some(path);
        }
    }
    None
}

/// A process's stdout lines as they come, and all of them at the end.
fn lines_of(
    child: &mut Child,
) -> (
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let all = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    (rx, all)
}

#[test]
fn a_windows_run_waits_for_a_live_holder_and_takes_the_lock_when_it_is_killed() {
    let exe = windows_exe();
    let _slot = common::alone();
    let forwarder = Forwarder::start();
    let _wine = WineServer::start(&exe);
    let project = HostProject::new("winkill", 2);
    let r = Runner {
        binary: Binary::Windows(&exe),
        project: &project,
        docker_host: forwarder.docker_host(),
    };
    r.init();

    let users = wine_prefix().join("drive_c/users");
    let prefix = format!("radar-deploy-{}-", project.name);
    // A pid file left by an earlier run of the same name would say nothing about this one.
    if let Some(old) = find_under(&users, &prefix, ".lock.pid") {
        std::fs::remove_file(old).expect("remove an old pid file");
    }
    // --ha: the longest `up`, so the first run is still working when the second one asks.
    let up = ["up", "--ha", "--timeout", "240"];
    let mut first = r
        .command(&up)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wine");
    // The pid file is written right after the lock is taken: the run holds it from then on.
    let deadline = Instant::now() + Duration::from_secs(120);
    let pid_file = loop {
        if let Some(p) = find_under(&users, &prefix, ".lock.pid") {
            break p;
        }
        if Instant::now() > deadline || first.try_wait().ok().flatten().is_some() {
            let _ = first.kill();
            let _ = first.wait();
            panic!("the first run never took the lock (no {prefix}*.lock.pid under {users:?})");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let holder = std::fs::read_to_string(&pid_file).unwrap_or_default();

    // A second run finds the lock held: the OS lock works under Windows semantics too.
    let mut second = r
        .command(&up)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wine");
    let (lines, all) = lines_of(&mut second);
    let waiting = loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains("waiting for another radar-deploy run") => break line,
            Ok(_) => continue,
            Err(e) => {
                let _ = first.kill();
                let _ = first.wait();
                let _ = second.kill();
                let _ = second.wait();
                panic!(
                    "the second run never waited for the first ({e}):\n{}",
                    all.join().unwrap_or_default()
                );
            }
        }
    };
    assert!(
        waiting.contains(&format!("(pid {})", holder.trim())),
        "{waiting}"
    );
    // Killed while it works, as a closed terminal or Task Manager would: no clean-up runs.
    assert!(
        first.try_wait().expect("status").is_none(),
        "the first run ended before it could be killed; the test needs it mid-way"
    );
    let killed = Instant::now();
    first.kill().expect("kill the wine process");
    first.wait().expect("reap it");
    assert!(pid_file.with_extension("").exists(), "the lock file stays");

    let status = second.wait().expect("the second run ends");
    let took = killed.elapsed();
    let stderr = {
        use std::io::Read;
        let mut s = String::new();
        let _ = second.stderr.take().map(|mut e| e.read_to_string(&mut s));
        s
    };
    let out = all.join().unwrap_or_default();
    assert!(
        status.success(),
        "the run that waited failed after the holder was killed ({status}):\n{out}{stderr}"
    );
    eprintln!(
        "the waiting run took the killed run's lock over and deployed {:.1}s after the kill",
        took.as_secs_f64()
    );
    r.ok(&["verify", "--ha"]);
    r.ok(&["down", "--volumes"]);
}

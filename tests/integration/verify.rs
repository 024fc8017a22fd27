//! `verify` against a real stack: a healthy stack passes; each injected fault fails with exit 1
//! and the right check named; after each fault is mended verify passes again (a crashed
//! instance within 5 s of being healthy again, although clients met it down). The stack is
//! started with `docker compose` from the file `render` writes, which also proves that verify
//! finds instances by their labels, whoever started them.
//!
//! Needs the Docker daemon, Compose v2 and the offline images (`scripts/offline-images.sh`);
//! fails, never skips, without them.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{free_port, text};
use radar_deploy::probes;

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A stack of its own (see `common::HostProject`), removed on drop — also when a test fails.
struct Stack {
    p: common::HostProject,
    ha: bool,
    /// The project network, as Compose names it.
    network: String,
    redis_image: String,
}

impl std::ops::Deref for Stack {
    type Target = common::HostProject;
    fn deref(&self) -> &common::HostProject {
        &self.p
    }
}

impl Stack {
    fn up(tag: &str, ha: bool) -> Stack {
        let p = common::HostProject::new(&format!("rdv-{tag}"), 3);
        let stack = Stack {
            network: format!("{}_default", p.name),
            redis_image: common::image("REDIS_IMAGE", "radar-offline/redis:bookworm"),
            p,
            ha,
        };
        stack.ok(if ha { &["render", "--ha"] } else { &["render"] });
        let out = run(stack
            .compose(&[])
            .args(["up", "-d", "--wait", "--wait-timeout", "120"]));
        assert!(
            out.status.success(),
            "docker compose up failed (are the offline images built? scripts/offline-images.sh): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stack
    }

    fn compose(&self, extra_files: &[&Path]) -> Command {
        let mut c = Command::new("docker");
        c.current_dir(self.dir.path()).args([
            "compose",
            "-p",
            &self.name,
            "--env-file",
            ".env.multi-instance",
            "-f",
            "docker/docker-compose.multi-instance.yml",
        ]);
        for f in extra_files {
            c.arg("-f").arg(f);
        }
        if self.ha {
            c.args(["--profile", "ha"]);
        }
        c
    }

    fn container(&self, service: &str) -> String {
        format!("{}-{service}-1", self.name)
    }

    fn docker(&self, args: &[&str]) {
        let out = run(Command::new("docker").args(args));
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A container's address on the project network.
    fn address_of(&self, container: &str) -> String {
        let out = run(Command::new("docker").args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container,
        ]));
        let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!ip.is_empty(), "no address for {container}: {}", text(&out));
        ip
    }

    /// Requests through nginx from 8 clients (a new connection each, so every worker gets
    /// some) until every nginx worker has logged the server at `ip` "temporarily disabled".
    fn load_until_nginx_disabled(&self, ip: &str) {
        let nginx = self.container("nginx");
        let workers: Vec<u32> = common::block_on(async {
            let d = common::connect_local().await.expect("Docker reachable");
            let (_, out) = d
                .exec(&nginx, &probes::nginx_workers_argv())
                .await
                .expect("nginx's workers");
            probes::parse_nginx_workers(&out)
        })
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
        assert!(!workers.is_empty(), "no nginx worker in {nginx}");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let port = self.port;
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = get_once(port, "/health/backend");
                    }
                })
            })
            .collect();
        let upstream = format!("upstream: \"http://{ip}:");
        let deadline = Instant::now() + Duration::from_secs(45);
        let disabled_in = loop {
            let log = text(&run(Command::new("docker").args(["logs", &nginx])));
            let disabled_in: std::collections::BTreeSet<u32> = log
                .lines()
                .filter(|l| l.contains("upstream server temporarily disabled"))
                .filter(|l| l.contains(&upstream))
                .filter_map(|l| l.split("] ").nth(1)?.split('#').next()?.parse().ok())
                .collect();
            if workers.iter().all(|w| disabled_in.contains(w)) || Instant::now() > deadline {
                break disabled_in;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            let _ = c.join();
        }
        assert!(
            workers.iter().all(|w| disabled_in.contains(w)),
            "under load, nginx's workers {workers:?} did not all count {ip} failed (those that did: {disabled_in:?})"
        );
    }

    /// Until Docker itself reports the container healthy; returns when it first saw that.
    fn wait_docker_healthy(&self, container: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = run(Command::new("docker").args([
                "inspect",
                "-f",
                "{{.State.Health.Status}}",
                container,
            ]));
            if String::from_utf8_lossy(&out.stdout).trim() == "healthy" {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{container} not healthy after 60 s: {}",
                text(&out)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs verify; returns (exit code, stdout and stderr).
    fn verify(&self, extra: &[&str]) -> (i32, String) {
        let ha: &[&str] = if self.ha { &["--ha"] } else { &[] };
        let out = self.run(&[&["verify"], ha, extra].concat());
        (out.status.code().unwrap_or(-1), text(&out))
    }

    /// Verify until it passes, within a deadline: a mended fault takes a moment to heal.
    fn verify_passes_again(&self, after: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (code, out) = self.verify(&[]);
            if code == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "verify still fails 90 s after mending {after}:\n{out}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Verify must fail with exit 1, and the output must show `check` marked as failed.
    fn verify_fails_naming(&self, fault: &str, check: &str) -> String {
        let (code, out) = self.verify(&[]);
        assert_eq!(code, 1, "{fault}: expected exit 1:\n{out}");
        assert!(
            out.lines().any(|l| l.starts_with('✗') && l.contains(check)),
            "{fault}: no failed check named {check:?}:\n{out}"
        );
        out
    }
}

/// One GET on a connection of its own; the status line, or why there is none.
fn get_once(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    c.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or_default().to_string())
}

#[test]
fn verify_catches_every_fault_and_passes_again_after_each_is_mended() {
    let _slot = common::shared();
    let s = Stack::up("faults", false);
    let mut table = vec![];

    // A healthy stack passes five runs in a row.
    for i in 1..=5 {
        let (code, out) = s.verify(&[]);
        assert_eq!(code, 0, "healthy run {i} failed:\n{out}");
        assert!(out.contains("All verification checks passed"));
    }

    // Machine-readable formats parse.
    let (code, json) = s.verify(&["--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).expect("verify --format json is JSON");
    assert_eq!(v["passed"], true);
    assert!(v["checks"].as_array().unwrap().len() >= 15);
    assert_eq!(v["distribution"]["requests"], 30);
    let (code, xml) = s.verify(&["--format", "junit"]);
    assert_eq!(code, 0);
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("valid JUnit XML");
    assert_eq!(report.test_suites[0].failures, 0);
    assert!(report.test_suites[0].tests >= 15);

    // 1. An instance crashed (SIGKILL). `docker kill` is a manual stop to Docker, which then
    // keeps the restart policy from reviving it: the test starts it again, as the policy does.
    let app2 = s.container("app-2");
    let app2_ip = s.address_of(&app2);
    s.docker(&["kill", &app2]);
    let out = s.verify_fails_naming("app-2 crashed", "app-2 is healthy");
    assert!(
        out.lines().any(|l| l.starts_with('✗')
            && l.contains("Load distribution")
            && l.contains("app-2 served no request: it is not healthy")),
        "an instance that is down is named as not healthy:\n{out}"
    );
    table.push((
        "an instance crashed",
        "app-2 is healthy/ready/live; Load distribution (app-2 not healthy)",
    ));
    // Clients kept coming while it was down, so nginx counts it failed (in every worker).
    s.load_until_nginx_disabled(&app2_ip);
    s.docker(&["start", &app2]);
    let healthy = s.wait_docker_healthy(&app2);
    // Back in nginx's rotation within 5 s of Docker's verdict: a verify started by then passes.
    loop {
        let started = healthy.elapsed();
        let (code, out) = s.verify(&[]);
        if code == 0 {
            eprintln!(
                "app-2 back in rotation: verify passed, started {:.1} s after Docker reported it healthy",
                started.as_secs_f64()
            );
            break;
        }
        assert!(
            healthy.elapsed() < Duration::from_secs(5),
            "app-2 has been healthy for {:.1} s but verify still fails (nginx still counts it failed?):\n{out}",
            healthy.elapsed().as_secs_f64()
        );
    }

    // 2. Redis paused.
    s.docker(&["pause", &s.container("redis")]);
    let out = s.verify_fails_naming("redis paused", "is ready");
    assert!(
        out.contains("redis"),
        "the failing dependency is named:\n{out}"
    );
    table.push((
        "Redis paused",
        "app-N is ready (503 naming redis); Session persistence",
    ));
    s.docker(&["unpause", &s.container("redis")]);
    s.verify_passes_again("redis paused");

    // 3. Postgres stopped.
    s.docker(&["stop", "-t", "5", &s.container("postgres")]);
    let out = s.verify_fails_naming("postgres stopped", "is ready");
    assert!(
        out.contains("postgres"),
        "the failing dependency is named:\n{out}"
    );
    table.push(("Postgres stopped", "app-N is ready (503 naming postgres)"));
    s.docker(&["start", &s.container("postgres")]);
    s.verify_passes_again("postgres stopped");

    // 4. nginx reloaded with a single upstream server. The config is bind-mounted from the
    // rendered file: rewrite it in place (same inode), reload, and restore.
    let conf = s.dir.path().join("docker/nginx/nginx.conf");
    let original = std::fs::read_to_string(&conf).unwrap();
    let single: String = original
        .lines()
        .filter(|l| !l.contains("server app-2:") && !l.contains("server app-3:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&conf, single).unwrap();
    s.docker(&["exec", &s.container("nginx"), "nginx", "-s", "reload"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = s.verify_fails_naming("single upstream", "Load distribution");
    assert!(
        out.lines().any(|l| l.starts_with('✗')
            && l.contains("app-2, app-3 are healthy but nginx is not sending them requests")),
        "healthy instances left out of nginx's upstream are named as such:\n{out}"
    );
    table.push((
        "nginx reloaded with one upstream server",
        "Load distribution; Session persistence",
    ));
    std::fs::write(&conf, &original).unwrap();
    s.docker(&["exec", &s.container("nginx"), "nginx", "-s", "reload"]);
    s.verify_passes_again("single upstream");

    // 5. nginx stopped: an unreachable balancer is a failed check (exit 1), not a crash.
    s.docker(&["stop", "-t", "2", &s.container("nginx")]);
    s.verify_fails_naming("nginx stopped", "Load balancer is healthy");
    table.push((
        "nginx stopped",
        "Load balancer is healthy; every check through it",
    ));
    s.docker(&["start", &s.container("nginx")]);
    s.verify_passes_again("nginx stopped");

    // 6. An app variant whose sessions are not shared: app-2 signs cookies with another key,
    // so a session started elsewhere is a stranger to it.
    let override_file = s.dir.path().join("unshared-sessions.yml");
    std::fs::write(
        &override_file,
        "services:\n  app-2:\n    environment:\n      SESSION_SECRET_FILE: /run/secrets/encryption_key\n",
    )
    .unwrap();
    let out = run(s.compose(&[&override_file]).args([
        "up",
        "-d",
        "--wait",
        "--wait-timeout",
        "60",
        "app-2",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.verify_fails_naming("sessions not shared", "Session persistence");
    table.push((
        "an instance that does not share sessions",
        "Session persistence",
    ));
    let out = run(s
        .compose(&[])
        .args(["up", "-d", "--wait", "--wait-timeout", "60", "app-2"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.verify_passes_again("sessions not shared");

    eprintln!("fault | failed check");
    for (fault, check) in table {
        eprintln!("{fault} | {check}");
    }
}

#[test]
fn verify_ha_catches_a_stopped_replica() {
    let _slot = common::shared();
    let s = Stack::up("ha", true);
    let (code, out) = s.verify(&[]);
    assert_eq!(code, 0, "healthy HA stack:\n{out}");
    assert!(out.contains("OK 3 usable Sentinels"), "{out}");

    // The Sentinels require the password: a container on the project network without it can
    // neither ask them nor command a failover (verify above, which authenticates, passed).
    for command in [
        "SENTINEL get-master-addr-by-name mymaster",
        "SENTINEL FAILOVER mymaster",
    ] {
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            s.network.as_str(),
            "--entrypoint",
            "redis-cli",
            s.redis_image.as_str(),
            "-h",
            "sentinel-1",
            "-p",
            "26379",
        ];
        args.extend(command.split(' '));
        let out = text(&run(Command::new("docker").args(&args)));
        assert!(
            out.contains("NOAUTH"),
            "an unauthenticated `{command}` from the project network was not refused:\n{out}"
        );
    }
    s.docker(&["stop", "-t", "2", &s.container("redis-replica")]);
    s.verify_fails_naming("replica stopped", "Replica linked to the master");
    s.docker(&["start", &s.container("redis-replica")]);
    s.verify_passes_again("replica stopped");
}

#[test]
fn verify_url_without_docker_reports_instance_checks_as_skipped() {
    let _slot = common::shared();
    let s = Stack::up("url", false);
    let (code, out) = {
        // An unreachable daemon, as on a CI runner that only has HTTP access.
        let o = run(s
            .command(&["verify", "--url", &format!("http://127.0.0.1:{}", s.port)])
            .env("DOCKER_HOST", "tcp://127.0.0.1:1"));
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(skipped)"), "{out}");
    assert!(!out
        .lines()
        .any(|l| l.starts_with('✓') && l.contains("app-1 is healthy")));

    // An unreachable URL is a failed check (exit 1), not an error.
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let o = run(s
        .command(&["verify", "--url", &unreachable])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1"));
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

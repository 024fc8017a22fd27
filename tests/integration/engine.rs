//! The engine against a real Docker daemon: `up`, `down`, `status` through the built CLI.
//!
//! Each test deploys under its own project name and removes everything labelled with it when it
//! ends, also on failure (the guard's Drop). These tests need the daemon and FAIL when it is
//! unreachable: a CI without Docker must not pass them silently. Images: the offline stand-ins
//! (`scripts/offline-images.sh`) and the reference app (built by the first `up` with
//! APP_BUILDER_IMAGE=radar-offline/rust:bookworm), or whatever NGINX_IMAGE / POSTGRES_IMAGE /
//! REDIS_IMAGE / APP_IMAGE / APP_BUILDER_IMAGE name.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{image, text};
use serde_json::Value;

/// A project of its own (see `common::HostProject`), with what these tests ask of a stack.
struct Project(common::HostProject);

impl std::ops::Deref for Project {
    type Target = common::HostProject;
    fn deref(&self) -> &common::HostProject {
        &self.0
    }
}

impl Project {
    /// `extra_env`: `NAME=value` lines added to the env file.
    fn new(extra_env: &str) -> Project {
        let p = common::HostProject::new("rdtest", 3);
        for (name, value) in extra_env.lines().filter_map(|l| l.split_once('=')) {
            p.set_env(name, value);
        }
        Project(p)
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.stdout(&["status", "--format", "json"])).expect("status json")
    }

    /// (name, id) of every container, sorted.
    fn container_ids(&self) -> Vec<(String, String)> {
        let s = self.status();
        let mut v: Vec<(String, String)> = s["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// Docker itself, asked right now (no waiting), reports every container healthy: `up`
    /// returns only once Docker's own verdict is in, as `docker compose up --wait` does, so
    /// `docker ps` right after it shows no `health: starting`.
    fn assert_docker_reports_all_healthy(&self, expected: usize) {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let names = common::docker(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<String> = String::from_utf8_lossy(&names.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        assert_eq!(ids.len(), expected, "containers: {}", text(&names));
        let format =
            "{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}";
        let out = common::docker(
            &[
                &["inspect", "-f", format][..],
                &ids.iter().map(String::as_str).collect::<Vec<_>>(),
            ]
            .concat(),
        );
        let seen = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success()
                && seen.lines().count() == expected
                && seen.lines().all(|l| l.ends_with(" healthy")),
            "right after `up`, Docker does not report every container healthy:\n{seen}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn exec(&self, container: &str, cmd: &[&str]) -> (i64, String) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let d = common::connect_local().await.expect("Docker reachable");
            d.exec(
                &format!("{}-{container}", self.name),
                &cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .await
            .expect("exec")
        })
    }

    /// Every object still labelled with the project: (containers, networks, volumes).
    fn leftovers(&self) -> (usize, usize, usize) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let d = common::connect_local().await.expect("Docker reachable");
            (
                d.list_containers(&self.name).await.unwrap().len(),
                d.list_networks(&self.name).await.unwrap().len(),
                d.list_volumes(&self.name).await.unwrap().len(),
            )
        })
    }
}

#[test]
fn up_converges_reruns_touch_nothing_data_survives_down_and_down_volumes_leaves_nothing() {
    let _slot = common::shared();
    let p = Project::new("");
    let out = p.ok(&["up", "--instances", "2", "--no-verify", "--timeout", "90"]);
    assert!(out.contains("is up"), "{out}");
    // postgres, redis, app-1, app-2, nginx
    p.assert_docker_reports_all_healthy(5);
    let ids = p.container_ids();

    let again = p.ok(&["up", "--instances", "2", "--no-verify"]);
    assert!(again.contains("0 steps applied"), "{again}");
    assert_eq!(
        p.container_ids(),
        ids,
        "a second up must not touch any container"
    );

    let dry = p.ok(&["up", "--instances", "2", "--dry-run"]);
    assert!(dry.contains("nothing to do"), "{dry}");

    // Secrets are files, not environment: inspect shows none of them.
    let env = std::fs::read_to_string(p.env_file()).unwrap();
    let pg_password = env
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD="))
        .unwrap()
        .trim_matches(['"', '\''])
        .to_string();
    let (code, secret) = p.exec("postgres-1", &["cat", "/run/secrets/postgres_password"]);
    assert_eq!((code, secret.trim()), (0, pg_password.as_str()));
    let names: Vec<String> = ids.iter().map(|(name, _)| name.clone()).collect();
    let inspect = Command::new("docker")
        .arg("inspect")
        .args(&names)
        .output()
        .expect("docker inspect");
    assert!(inspect.status.success());
    assert!(
        !String::from_utf8_lossy(&inspect.stdout).contains(&pg_password),
        "a secret is visible in docker inspect"
    );

    let sql = |q: &str| {
        p.exec(
            "postgres-1",
            &["psql", "-U", "reporadar", "-d", "reporadar", "-tAc", q],
        )
    };
    let (code, out) = sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives');");
    assert_eq!(code, 0, "{out}");

    let down = p.ok(&["down"]);
    assert!(down.contains("kept"), "{down}");
    assert_eq!(p.leftovers().0, 0);
    p.ok(&["up", "--instances", "2", "--no-verify", "--timeout", "90"]);
    let (code, out) = sql("SELECT v FROM kept;");
    assert_eq!((code, out.trim()), (0, "survives"));

    p.ok(&["down", "--volumes"]);
    assert_eq!(p.leftovers(), (0, 0, 0));
}

#[test]
fn up_ha_runs_a_replica_and_three_sentinels() {
    let _slot = common::shared();
    let p = Project::new("");
    p.ok(&[
        "up",
        "--ha",
        "--instances",
        "1",
        "--no-verify",
        "--timeout",
        "90",
    ]);
    // postgres, redis, redis-replica, 3 sentinels, app-1, nginx
    p.assert_docker_reports_all_healthy(8);
    // The Sentinels answer only with the password (Redis's secret file) and agree with it.
    let ask = "redis-cli -p 26379 sentinel ckquorum mymaster";
    let (_, out) = p.exec("sentinel-1", &["bash", "-c", ask]);
    assert!(out.contains("NOAUTH"), "answered without a password: {out}");
    let with_password = format!("REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" {ask}");
    let (code, out) = p.exec("sentinel-1", &["bash", "-c", &with_password]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK 3 usable Sentinels"), "{out}");
}

#[test]
fn an_app_that_never_becomes_healthy_fails_up_with_exit_2_and_its_logs() {
    let _slot = common::shared();
    // A container that runs but whose healthcheck never passes.
    let redis = image("REDIS_IMAGE", "radar-offline/redis:bookworm");
    let p = Project::new(&format!(
        "APP_IMAGE={redis}\nAPP_HEALTHCHECK='redis-cli -p 1 ping'\n"
    ));
    let out = p.run(&["up", "--instances", "1", "--no-verify", "--timeout", "45"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("app-1) did not become healthy"), "{all}");
    assert!(stderr.contains("last health probe"), "{all}");
    assert!(stderr.contains("log lines"), "{all}");
    // The container's own log (redis-server's start-up lines) is quoted.
    assert!(stderr.to_lowercase().contains("redis"), "{all}");
}

#[test]
fn an_interrupted_up_is_finished_by_the_next_up() {
    let _slot = common::shared();
    let p = Project::new("");
    let mut child = p
        .command(&["up", "--instances", "2", "--no-verify", "--timeout", "90"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn up");
    // Interrupt once the first containers exist.
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.leftovers().0 < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait for up");
    // Usually interrupted (exit 2); on a fast machine it may have finished first.
    assert!(matches!(status.code(), Some(0 | 2)), "{status:?}");

    p.ok(&["up", "--instances", "2", "--no-verify", "--timeout", "90"]);
    p.assert_docker_reports_all_healthy(5);
    let again = p.ok(&["up", "--instances", "2", "--no-verify"]);
    assert!(again.contains("0 steps applied"), "{again}");
}

/// Issue 13: `up` right after four `up`s interrupted at 0.3, 1, 2 and 3.5 s once refused with
/// "HTTP_PORT=… is already in use" while the only listener was the project's own nginx (a
/// start still in flight when the next `up` looked). The port check must know its own
/// containers in every state; the next `up` converges and a further one has nothing to do.
#[test]
fn up_after_four_interrupted_ups_converges_without_a_port_complaint() {
    let _slot = common::shared();
    let p = Project::new("");
    for delay_ms in [300, 1000, 2000, 3500] {
        let child = p
            .command(&["up", "--instances", "2", "--no-verify", "--timeout", "90"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn up");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let out = child.wait_with_output().expect("wait for up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0 | 2)) && !stderr.contains("already in use"),
            "up interrupted after {delay_ms} ms: {:?}\n{stderr}",
            out.status
        );
    }
    let out = p.ok(&["up", "--instances", "2", "--no-verify", "--timeout", "90"]);
    assert!(!out.contains("already in use"), "{out}");
    p.assert_docker_reports_all_healthy(5);
    let again = p.ok(&["up", "--instances", "2", "--no-verify"]);
    assert!(again.contains("0 steps applied"), "{again}");
}

#[test]
fn an_image_that_cannot_be_pulled_is_named_with_its_variable_and_nothing_is_created() {
    let _slot = common::shared();
    let p = Project::new("NGINX_IMAGE=example.invalid/radar-test/nginx:0\n");
    let out = p.run(&["up", "--no-verify"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot pull example.invalid/radar-test/nginx:0 (set by NGINX_IMAGE)"),
        "{all}"
    );
    assert!(stderr.contains("scripts/offline-images.sh"), "{all}");
    assert_eq!(p.leftovers(), (0, 0, 0), "preflight must create nothing");
}

#[test]
fn an_unreachable_daemon_is_exit_2_with_what_to_do() {
    let _slot = common::shared();
    let p = Project::new("");
    let out = p
        .command(&["status"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the Docker daemon at tcp://127.0.0.1:1"),
        "{all}"
    );
    assert!(stderr.contains("fix:"), "{all}");
}

/// An image tag of this test's own, removed when dropped (also when the test fails), so the
/// image other tests deploy is never touched.
struct OwnImage(String);

impl Drop for OwnImage {
    fn drop(&mut self) {
        let _ = common::docker(&["rmi", "-f", &self.0]);
    }
}

#[test]
fn the_reference_app_image_is_built_from_nothing_by_up_and_reused_by_the_next_up() {
    let _slot = common::shared();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let own = OwnImage(format!(
        "radar-deploy/radar-app:test-{}-{nanos:x}",
        std::process::id()
    ));
    let tag = own.0.as_str();
    let p = Project::new(&format!("APP_IMAGE={tag}\n"));
    let builder = image("APP_BUILDER_IMAGE", "radar-offline/rust:bookworm");
    let exists = || common::docker(&["image", "inspect", tag]).status.success();
    assert!(!exists(), "{tag} must not exist before the test");

    // A dry run names the build and builds nothing.
    let dry = p.ok(&["up", "--dry-run"]);
    assert!(
        dry.contains(&format!(
            "preflight: build {tag} from the embedded source with {builder}"
        )),
        "{dry}"
    );
    assert!(!exists(), "--dry-run built {tag}");

    // From nothing: built through the Engine API, deployed, verified (exit 0).
    let t0 = Instant::now();
    let first = p.ok(&["up", "--timeout", "120"]);
    let took = t0.elapsed();
    assert!(
        first.contains(&format!(
            "building {tag} from the embedded source with {builder}"
        )),
        "{first}"
    );
    assert!(first.contains(&format!("build {tag} | Step 1/")), "{first}");
    assert!(first.contains(&format!("built {tag} in ")), "{first}");
    assert!(first.contains("is up"), "{first}");
    let labels = common::docker(&[
        "image",
        "inspect",
        "--format",
        "{{ index .Config.Labels \"io.radar-deploy.app.source-sha256\" }} {{ .Config.User }} {{ .Architecture }}",
        tag,
    ]);
    let labels = String::from_utf8_lossy(&labels.stdout);
    let mut fields = labels.split_whitespace();
    assert_eq!(
        fields.next(),
        Some(radar_deploy::app_image::source_digest()),
        "the image records the source it was built from"
    );
    assert_eq!(fields.next(), Some("65532:65532"));
    eprintln!(
        "up with no app image (build + deploy + verify): {:.1}s on {}",
        took.as_secs_f64(),
        fields.next().unwrap_or("?")
    );

    // The next `up` finds it up to date: no build, nothing to change.
    let second = p.ok(&["up", "--no-verify"]);
    assert!(!second.contains("building"), "{second}");
    assert!(second.contains("0 steps applied"), "{second}");

    // Another image under the tag, labelled with another source (as after a change to app/):
    // the dry run names the rebuild and the instances that run the image the tag no longer
    // names; `up` rebuilds it (from the build cache: the very image the instances run).
    let mut build = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut build.stdin.take().unwrap(),
        format!("FROM {tag}\nLABEL io.radar-deploy.app.source-sha256=0123456789abcdef\n")
            .as_bytes(),
    )
    .unwrap();
    let built = build.wait_with_output().unwrap();
    assert!(built.status.success(), "{}", text(&built));
    let _stale = OwnImage(String::from_utf8_lossy(&built.stdout).trim().to_string());
    let dry = p.ok(&["up", "--dry-run"]);
    assert!(
        dry.contains(&format!(
            "preflight: build {tag} from the embedded source with {builder} (it was built from \
             another source (io.radar-deploy.app.source-sha256 0123456789ab ≠"
        )),
        "{dry}"
    );
    assert!(
        dry.contains(&format!("(image {tag} now names another image")),
        "{dry}"
    );
    let third = p.ok(&["up", "--no-verify"]);
    assert!(third.contains(&format!("built {tag} in ")), "{third}");
    assert!(third.contains("0 steps applied"), "{third}");
}

#[test]
fn a_reference_image_that_cannot_be_built_is_exit_2_naming_the_builder_and_the_fix() {
    let _slot = common::shared();
    let own = OwnImage(format!(
        "radar-deploy/radar-app:test-nobuilder-{}",
        std::process::id()
    ));
    let p = Project::new(&format!(
        "APP_IMAGE={}\nAPP_BUILDER_IMAGE=radar-test.invalid/no-such-rust:0\n",
        own.0
    ));
    let out = p.run(&["up", "--no-verify"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "building the reference app image",
        "with APP_BUILDER_IMAGE=radar-test.invalid/no-such-rust:0 failed",
        "last lines of the build:",
        "FROM ${BUILDER_IMAGE} AS build",
        "fix: the builder image radar-test.invalid/no-such-rust:0 is not on this Docker host",
        "set APP_BUILDER_IMAGE to a local image with cargo",
    ] {
        assert!(stderr.contains(want), "lacks {want:?}:\n{all}");
    }
    assert_eq!(
        p.leftovers(),
        (0, 0, 0),
        "a failed build must create nothing"
    );
}

#[test]
fn parallel_ups_build_a_missing_reference_image_once() {
    let _slot = common::shared();
    let own = OwnImage(format!(
        "radar-deploy/radar-app:test-parallel-{}",
        std::process::id()
    ));
    let tag = own.0.as_str();
    let projects: Vec<Project> = (0..2)
        .map(|_| Project::new(&format!("APP_IMAGE={tag}\nAPP_INSTANCES=1\n")))
        .collect();
    let children: Vec<_> = projects
        .iter()
        .map(|p| {
            p.command(&["up", "--no-verify", "--timeout", "120"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
            text(&out)
        })
        .collect();
    let builds = outs
        .iter()
        .filter(|o| o.contains(&format!("built {tag} in ")))
        .count();
    assert_eq!(
        builds,
        1,
        "exactly one run builds:\n{}",
        outs.join("\n----\n")
    );
}

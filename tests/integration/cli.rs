//! The built `radar-deploy` binary, run in a temp dir: `init`, `render` and bad input
//! (exit code, message, nothing written). Also: the real Compose v2 client accepts what
//! `render` writes.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;

const SECRETS: [(&str, &str); 4] = [
    ("POSTGRES_PASSWORD", "Vx8rT2qLm9ZpK4wN7bYc3HdQ"),
    ("REDIS_PASSWORD", "aJ5kP0sW8eR3tY6uI1oL4zXc"),
    ("SESSION_SECRET", "q7W2e9R4t1Y6u3I8o5P0aS7dF2gH9jK4lZ"),
    ("ENCRYPTION_KEY", "M3n8B1v6C9x4Z7l2K5j0H3g8F1d6S9a4Qw"),
];

struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn env_file(&self) -> PathBuf {
        self.path().join(".env.multi-instance")
    }

    /// A valid env file with known secrets, plus `extra` lines.
    fn write_env(&self, extra: &str) {
        let mut text = String::from("POSTGRES_USER=reporadar\nPOSTGRES_DB=reporadar\n");
        for (k, v) in SECRETS {
            text.push_str(&format!("{k}={v}\n"));
        }
        text.push_str(extra);
        std::fs::write(self.env_file(), text).unwrap();
    }

    /// The CLI in this dir, with none of the developer's RADAR_*/config variables leaking in.
    fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = cargo_bin_cmd!("radar-deploy");
        cmd.current_dir(self.path()).env("NO_COLOR", "1");
        for (k, _) in std::env::vars() {
            if k.starts_with("RADAR_")
                || k.starts_with("APP_")
                || k.starts_with("POSTGRES_")
                || k.starts_with("REDIS_")
                || k.starts_with("SENTINEL_")
                || k.ends_with("_IMAGE")
                || [
                    "HTTP_PORT",
                    "LB_STRATEGY",
                    "HA_ENABLED",
                    "SESSION_SECRET",
                    "ENCRYPTION_KEY",
                ]
                .contains(&k.as_str())
            {
                cmd.env_remove(k);
            }
        }
        cmd
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn init_writes_a_private_usable_env_file() {
    let d = Dir::new();
    d.cmd()
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("not shown"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.env_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Usable as is: render accepts it.
    d.cmd().args(["render", "--ha"]).assert().success();
}

#[test]
fn init_generates_different_secrets_each_time() {
    let (a, b) = (Dir::new(), Dir::new());
    a.cmd().arg("init").assert().success();
    b.cmd().arg("init").assert().success();
    let secret = |d: &Dir| {
        std::fs::read_to_string(d.env_file())
            .unwrap()
            .lines()
            .find(|l| l.starts_with("SESSION_SECRET="))
            .unwrap()
            .to_string()
    };
    assert_ne!(secret(&a), secret(&b));
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let d = Dir::new();
    std::fs::write(d.env_file(), "KEEP=me\n").unwrap();
    d.cmd().arg("init").assert().code(2).stderr(
        predicate::str::contains("already exists").and(predicate::str::contains("--force")),
    );
    assert_eq!(std::fs::read_to_string(d.env_file()).unwrap(), "KEEP=me\n");
    d.cmd().args(["init", "--force"]).assert().success();
    assert!(std::fs::read_to_string(d.env_file())
        .unwrap()
        .contains("SESSION_SECRET="));
}

#[test]
fn init_into_a_missing_directory_names_it() {
    let d = Dir::new();
    let target = d.path().join("no/such/dir/.env");
    std::fs::write(d.path().join("no"), "a file, not a dir").unwrap();
    d.cmd()
        .args(["--env-file", target.to_str().unwrap(), "init"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no/such/dir"));
}

#[test]
fn render_writes_every_file() {
    let d = Dir::new();
    d.write_env("");
    d.cmd().args(["render", "--ha"]).assert().success();
    for f in [
        "docker/docker-compose.multi-instance.yml",
        "docker/nginx/nginx.conf",
        "docker/nginx/conf.d/sticky-sessions.conf.example",
        "docker/redis/sentinel.conf",
    ] {
        assert!(d.path().join(f).is_file(), "{f} missing");
    }
}

#[test]
fn render_honours_out_and_leaves_no_temp_files() {
    let d = Dir::new();
    d.write_env("");
    d.cmd()
        .args(["render", "--out", "deploy"])
        .assert()
        .success();
    let mut found = vec![];
    for entry in walk(&d.path().join("deploy")) {
        found.push(entry.strip_prefix(d.path()).unwrap().display().to_string());
    }
    found.sort();
    assert_eq!(
        found,
        [
            "deploy/docker-compose.multi-instance.yml",
            "deploy/nginx/conf.d/sticky-sessions.conf.example",
            "deploy/nginx/nginx.conf",
            "deploy/redis/sentinel.conf",
        ]
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Each bad value is refused with exit 2, a message naming the variable, and nothing written.
#[test]
fn bad_input_is_refused_naming_the_variable_and_writes_nothing() {
    let cases: &[(&str, &str)] = &[
        ("APP_INSTANCES=0\n", "APP_INSTANCES"),
        ("APP_INSTANCES=65\n", "APP_INSTANCES"),
        ("HTTP_PORT=70000\n", "HTTP_PORT"),
        ("APP_PORT=0\n", "APP_PORT"),
        ("LB_STRATEGY=fastest\n", "LB_STRATEGY"),
        ("SENTINEL_QUORUM=4\n", "SENTINEL_QUORUM"),
        ("APP_IMAGE=Not/An:Image:\n", "APP_IMAGE"),
        ("NGINX_IMAGE=nginx:bad tag\n", "NGINX_IMAGE"),
        ("POSTGRES_PASSWORD=short\n", "POSTGRES_PASSWORD"),
        (
            "SESSION_SECRET=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
            "SESSION_SECRET",
        ),
        (
            "REDIS_PASSWORD=change-me-redis-password\n",
            "REDIS_PASSWORD",
        ),
        ("HA_ENABLED=maybe\n", "HA_ENABLED"),
        ("BROKEN LINE WITHOUT EQUALS\n", ".env.multi-instance:7"),
    ];
    for (extra, var) in cases {
        let d = Dir::new();
        d.write_env(extra);
        // Without --ha: the flag would override HA_ENABLED, and HA settings are validated anyway.
        let out = d.cmd().arg("render").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {stderr}");
        assert!(stderr.contains(var), "{extra}: {stderr}");
        assert_eq!(
            d.entries(),
            [".env.multi-instance"],
            "{extra}: something was written"
        );
    }
}

#[test]
fn bad_project_name_is_refused() {
    let d = Dir::new();
    d.write_env("");
    d.cmd()
        .args(["--project", "Bad Name", "render"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("RADAR_PROJECT").and(predicate::str::contains("--project")),
        );
    assert_eq!(d.entries(), [".env.multi-instance"]);
}

#[test]
fn missing_env_file_suggests_init() {
    let d = Dir::new();
    d.cmd()
        .arg("render")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("radar-deploy init"));
    assert!(d.entries().is_empty());
}

#[test]
fn every_problem_is_listed_in_one_run() {
    let d = Dir::new();
    d.write_env("APP_INSTANCES=0\nHTTP_PORT=0\nLB_STRATEGY=x\n");
    d.cmd().arg("render").assert().code(2).stderr(
        predicate::str::contains("3 problems")
            .and(predicate::str::contains("APP_INSTANCES"))
            .and(predicate::str::contains("HTTP_PORT"))
            .and(predicate::str::contains("LB_STRATEGY")),
    );
}

#[test]
fn a_misspelt_variable_warns_and_fails_under_strict() {
    let d = Dir::new();
    d.write_env("HTTP_PROT=8080\n");
    // A warning naming the line and the nearest name; the run goes on with the default.
    d.cmd().arg("render").assert().success().stderr(
        predicate::str::contains("HTTP_PROT is not a radar-deploy variable")
            .and(predicate::str::contains(".env.multi-instance:7"))
            .and(predicate::str::contains("did you mean HTTP_PORT?")),
    );
    // For CI: an error (exit 2) with the same words, by flag or by variable; nothing written.
    std::fs::remove_dir_all(d.path().join("docker")).unwrap();
    for strict in [&["--strict", "render"][..], &["render"][..]] {
        let mut cmd = d.cmd();
        if strict.len() == 1 {
            cmd.env("RADAR_STRICT", "true");
        }
        cmd.args(strict).assert().code(2).stderr(
            predicate::str::contains("HTTP_PROT is not a radar-deploy variable")
                .and(predicate::str::contains("did you mean HTTP_PORT?")),
        );
        assert!(!d.path().join("docker").exists(), "{strict:?} wrote files");
    }
}

#[test]
fn usage_errors_exit_2() {
    let d = Dir::new();
    d.cmd().arg("deploy-everything").assert().code(2);
    d.cmd().args(["scale", "lots"]).assert().code(2);
    d.cmd().args(["verify", "--format", "xml"]).assert().code(2);
}

#[test]
fn a_drill_report_of_an_unknown_kind_is_refused_before_any_docker_work() {
    let d = Dir::new();
    // No env file and no daemon: the flag is checked before either is read.
    let out = d
        .cmd()
        .args(["drill", "instance", "--report", "drill.pdf"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--report drill.pdf"), "{stderr}");
    assert!(
        stderr.contains(".html") && stderr.contains(".svg"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("env file") && !stderr.contains("Docker"),
        "{stderr}"
    );
    assert!(d.entries().is_empty(), "{:?}", d.entries());
    // A directory is not a file to write.
    std::fs::create_dir(d.path().join("out.html")).unwrap();
    d.cmd()
        .args([
            "drill", "nginx", "--target", "swarm", "--report", "out.html",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a directory"));
}

#[test]
fn garbage_env_file_is_an_error_not_a_panic() {
    let d = Dir::new();
    std::fs::write(d.env_file(), [0xff, 0xfe, 0x00, b'=', 0x80, b'\n']).unwrap();
    d.cmd()
        .arg("render")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn secrets_are_never_printed() {
    let d = Dir::new();
    d.write_env("POSTGRES_PASSWORD=tooshort\n");
    let out = d.cmd().args(["-vv", "render", "--ha"]).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("tooshort"), "{all}");
    d.write_env("");
    let out = d.cmd().args(["-vv", "render", "--ha"]).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (_, v) in SECRETS {
        assert!(!all.contains(v));
    }
    for f in walk(&d.path().join("docker")) {
        let text = std::fs::read_to_string(&f).unwrap();
        for (_, v) in SECRETS {
            assert!(!text.contains(v), "{} holds a secret", f.display());
        }
    }
}

/// The committed `docker/` directory is what `render --ha` writes for the defaults, so
/// reviewers read the real thing.
#[test]
fn committed_docker_directory_is_up_to_date() {
    let d = Dir::new();
    d.write_env("");
    d.cmd().args(["render", "--ha"]).assert().success();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in walk(&d.path().join("docker")) {
        let rel = f.strip_prefix(d.path()).unwrap();
        let committed = std::fs::read_to_string(repo.join(rel)).unwrap_or_default();
        assert!(
            committed == std::fs::read_to_string(&f).unwrap(),
            "{} is out of date: run `cargo run -- --env-file <a valid env file> render --ha` \
             with the default settings",
            rel.display()
        );
    }
}

fn compose_v2() -> Command {
    let ok = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .map(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("v2")
                || String::from_utf8_lossy(&o.stdout).contains(" 2.")
        })
        .unwrap_or(false);
    assert!(
        ok,
        "Docker Compose v2 (`docker compose`) is required for this test: install it with \
         ../shared/tools/install-compose-v2.sh"
    );
    let mut c = Command::new("docker");
    c.arg("compose");
    c
}

/// The real Compose v2 client accepts the rendered file, with and without the HA profile,
/// and resolves every secret from the same env file.
#[test]
fn compose_v2_accepts_the_rendered_file() {
    for (args, ha) in [(&["render"][..], false), (&["render", "--ha"][..], true)] {
        let d = Dir::new();
        d.write_env("APP_INSTANCES=4\n");
        d.cmd().args(args).assert().success();
        let mut c = compose_v2();
        c.current_dir(d.path()).args([
            "--env-file",
            ".env.multi-instance",
            "-f",
            "docker/docker-compose.multi-instance.yml",
        ]);
        if ha {
            c.args(["--profile", "ha"]);
        }
        let out = c.args(["config"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "compose refused the file: {stderr}");
        let resolved = String::from_utf8_lossy(&out.stdout);
        assert_eq!(resolved.contains("sentinel-3:"), ha);
        assert!(resolved.contains("app-4:"));
        for (_, v) in SECRETS {
            assert!(
                !resolved.contains(v),
                "compose config shows a secret in clear"
            );
        }
    }
}

/// With TLS_MODE=files the Compose file takes the certificate and key as secrets from the files
/// the env file names, and Compose v2 accepts it and resolves them.
#[test]
fn compose_v2_accepts_the_rendered_tls_file() {
    let d = Dir::new();
    d.write_env(
        "TLS_MODE=files\nPUBLIC_HOSTS=app.example.com\nHTTPS_PORT=8443\nTLS_CERT_FILE=tls/fullchain.pem\nTLS_KEY_FILE=tls/privkey.pem\n",
    );
    d.cmd().args(["render"]).assert().success();
    let out = compose_v2()
        .current_dir(d.path())
        .args([
            "--env-file",
            ".env.multi-instance",
            "-f",
            "docker/docker-compose.multi-instance.yml",
            "config",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "compose refused the file: {stderr}");
    let resolved = String::from_utf8_lossy(&out.stdout);
    for seen in ["tls_fullchain", "tls_privkey", "tls/fullchain.pem", "8443"] {
        assert!(resolved.contains(seen), "{seen} missing:\n{resolved}");
    }
}

/// The real Docker CLI's stack loader (`docker stack config`, which needs no swarm) accepts the
/// Swarm stack file as it is, with and without HA, and finds no secret value in it.
#[test]
fn docker_stack_config_accepts_the_swarm_stack_file() {
    let help = Command::new("docker")
        .args(["stack", "config", "--help"])
        .output()
        .expect("the docker CLI is required for this test");
    assert!(
        help.status.success(),
        "this test needs a docker CLI with `docker stack config` (CLI 20.10.0 or later)"
    );
    for ha in [false, true] {
        let d = Dir::new();
        d.write_env("APP_INSTANCES=4\n");
        let mut args = vec!["render", "--target", "swarm"];
        if ha {
            args.push("--ha");
        }
        d.cmd().args(&args).assert().success();
        let out = Command::new("docker")
            .current_dir(d.path().join("docker"))
            .args(["stack", "config", "-c", "docker-stack.multi-instance.yml"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "docker stack refused the file: {stderr}"
        );
        assert!(
            !stderr.contains("Ignoring"),
            "docker stack ignores part of the file: {stderr}"
        );
        let resolved = String::from_utf8_lossy(&out.stdout);
        assert_eq!(resolved.contains("sentinel-3:"), ha);
        assert!(resolved.contains("replicas: 4"));
        assert!(resolved.contains("INSTANCE_ID: app-{{.Task.Slot}}"));
        for (_, v) in SECRETS {
            assert!(
                !resolved.contains(v),
                "the stack file shows a secret in clear"
            );
        }
    }
}

#[test]
fn completions_are_printed_for_every_shell() {
    let d = Dir::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        d.cmd()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("scale"));
    }
    d.cmd().args(["completions", "tcsh"]).assert().code(2);
}

/// `radar-deploy … | head` closes the pipe early: the output ends there, with no panic
/// ("failed printing to stdout") and the command's own exit status. The read end is closed
/// before the start, so every write meets the closed pipe, whatever the timing.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let d = Dir::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_radar-deploy"))
        .current_dir(d.path())
        .args(["completions", "bash"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

//! The release command (`APP_RELEASE_COMMAND`, issue 15) against a real stack, in one scenario:
//!
//! - a first deploy of 3 instances runs `radar-app migrate` exactly once (one one-off container
//!   started, Docker's events say), and every instance starts only after it exited (0), by
//!   Docker's event times; the schema is there (`schema_migrations` holds versions 1 and 2);
//! - an unchanged re-run runs no release;
//! - a config change whose release command fails, under steady load through nginx: `up` exits
//!   2 with the command's output in stderr, 0 failed requests, the running instances are the
//!   same containers (nothing replaced), and no one-off container is left.
//!
//! On Swarm the release is a one-off job: `swarm.rs`'s scenario runs it with its rolling update
//! and a failing one under load (one swarm stack serves both, as a stack's teardown is long).
//!
//! Figures (release time, request outcomes) are printed to stderr
//! (`cargo test --test integration release:: -- --nocapture`). Needs the Docker daemon and the
//! offline images; fails, never skips, without them. The app image is `APP_IMAGE` (environment)
//! or the reference one: it must be built from this tree's `app/` (it has `migrate`).

use crate::common::{self, docker, text};
use crate::scale::{figures, report, under_load, Stack};

use std::time::Instant;

/// One container event of the project: (time in ns, action, container name, exit code).
type Event = (u128, String, String, Option<i64>);

/// The project's container events between `since` and now (Unix seconds), in order.
fn events(project: &str, since: u64) -> Vec<Event> {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let label = format!("label=com.docker.compose.project={project}");
    let out = docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=container",
        "--filter",
        &label,
        "--format",
        "{{.TimeNano}} {{.Action}} {{index .Actor.Attributes \"name\"}} {{index .Actor.Attributes \"exitCode\"}}",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                f.next()?.parse().ok()?,
                f.next()?.to_string(),
                f.next()?.to_string(),
                f.next().and_then(|c| c.parse().ok()),
            ))
        })
        .collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The ids of the project's one-off containers (Compose's label), if any are left.
fn oneoffs(s: &Stack) -> String {
    let label = format!("label=com.docker.compose.project={}", s.name);
    let out = docker(&[
        "ps",
        "-aq",
        "--filter",
        &label,
        "--filter",
        "label=com.docker.compose.oneoff=True",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn is_release(name: &str) -> bool {
    name.contains("-release-run-")
}

/// The value of `name` in the env file (the last line that sets it).
fn env_value(s: &Stack, name: &str) -> String {
    let env = std::fs::read_to_string(s.env_file()).unwrap();
    env.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} not in the env file"))
        .trim_matches('\'')
        .to_string()
}

#[test]
fn release_runs_once_before_the_instances_and_a_failed_one_replaces_nothing_under_load() {
    let _slot = common::alone();
    let s = Stack {
        p: common::HostProject::new("rdrelease", 3),
        tags: vec![],
    };
    s.set_env("APP_RELEASE_COMMAND", "migrate");

    // First deploy: the release runs once, before any instance starts.
    let since = now_secs();
    let timer = Instant::now();
    let out = s.ok(&["up", "--no-verify", "--timeout", "180"]);
    let up_took = timer.elapsed();
    assert!(
        out.contains("release | migrate: applied 2 migration(s) (1, 2)"),
        "{out}"
    );
    let ev = events(&s.name, since);
    let starts: Vec<&Event> = ev
        .iter()
        .filter(|e| e.1 == "start" && is_release(&e.2))
        .collect();
    assert_eq!(starts.len(), 1, "one release for 3 instances: {ev:#?}");
    let release_started = starts[0].0;
    let died: Vec<&Event> = ev
        .iter()
        .filter(|e| e.1 == "die" && is_release(&e.2))
        .collect();
    assert_eq!(died.len(), 1, "{ev:#?}");
    assert_eq!(died[0].3, Some(0), "{ev:#?}");
    let release_exited = died[0].0;
    let app_starts: Vec<&Event> = ev
        .iter()
        .filter(|e| e.1 == "start" && e.2.contains("-app-"))
        .collect();
    assert_eq!(app_starts.len(), 3, "{ev:#?}");
    for e in &app_starts {
        assert!(
            e.0 > release_exited,
            "{} started before the release exited: {ev:#?}",
            e.2
        );
    }
    let first_app = app_starts.iter().map(|e| e.0).min().unwrap();
    eprintln!(
        "first deploy of 3 instances: up {:.1} s; release container ran {:.2} s (start → exit); first instance started {:.2} s after the release exited",
        up_took.as_secs_f64(),
        (release_exited - release_started) as f64 / 1e9,
        (first_app - release_exited) as f64 / 1e9
    );
    if let Some(line) = out.lines().find(|l| l.contains("✓ release")) {
        eprintln!("  as `up` reports it: {}", line.trim());
    }
    let (user, db) = (env_value(&s, "POSTGRES_USER"), env_value(&s, "POSTGRES_DB"));
    let psql = docker(&[
        "exec",
        &format!("{}-postgres-1", s.name),
        "psql",
        "-U",
        &user,
        "-d",
        &db,
        "-tAc",
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations",
    ]);
    assert_eq!(text(&psql).trim(), "1,2", "{}", text(&psql));
    assert_eq!(oneoffs(&s), "", "the one-off container is removed");

    // Unchanged: nothing runs.
    let since = now_secs();
    let again = s.ok(&["up", "--no-verify"]);
    assert!(again.contains("0 steps applied"), "{again}");
    assert!(!again.contains("▶"), "{again}");
    assert!(
        !events(&s.name, since).iter().any(|e| is_release(&e.2)),
        "no release on an unchanged re-run"
    );

    // A new configuration whose release fails, under load: nothing replaced, no request lost.
    let before = s.apps();
    s.set_env("APP_ENV_RELEASE_TEST", "2");
    s.set_env("APP_RELEASE_COMMAND", "no-such-subcommand");
    // With a backup first (BACKUP_BEFORE_RELEASE): taken before the release, named by `up`.
    s.set_env("BACKUP_BEFORE_RELEASE", "true");
    let (failed, took, r) = under_load(&s.url(), || {
        s.run(&["up", "--no-verify", "--timeout", "120"])
    });
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed));
    assert!(
        stderr.contains("release command `no-such-subcommand` exited with 2"),
        "{stderr}"
    );
    // The command's own output (radar-app's usage line) is in the error.
    assert!(stderr.contains("usage: radar-app"), "{stderr}");
    let out = text(&failed);
    let backup = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("✓ backup "))
        .and_then(|rest| rest.rsplit_once(" ("))
        .map(|(file, _)| s.dir.path().join(file))
        .unwrap_or_else(|| panic!("up names no backup file: {out}"));
    assert!(
        out.find("✓ backup ") < out.find("▶ release:"),
        "the backup comes before the release: {out}"
    );
    let size = std::fs::metadata(&backup)
        .unwrap_or_else(|e| panic!("{}: {e}", backup.display()))
        .len();
    assert!(size > 1000, "{}: {size} bytes", backup.display());
    let _ = std::fs::remove_file(&backup);
    let f = figures(&r);
    report(
        &format!(
            "failed release under load (up exited 2 after {:.1} s)",
            took.as_secs_f64()
        ),
        &f,
        "no instance replaced",
    );
    assert_eq!(f.failed, 0, "failed requests: {}", f.failures);
    assert!(f.requests > 50, "the load ran: {} requests", f.requests);
    assert_eq!(
        s.apps(),
        before,
        "the running instances are the same containers"
    );
    assert_eq!(oneoffs(&s), "", "the one-off container is removed");
}

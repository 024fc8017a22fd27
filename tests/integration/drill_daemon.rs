//! `drill daemon` against a Docker daemon of the test's own (`scripts/local-daemon.sh`: its own
//! network namespace, data root, exec root, mount namespace; the machine's daemon is never
//! touched): a 2-instance stack `up` on it → `verify` green through nginx's published port on
//! the daemon's address (10.236.0.11) → a restart command that restarts nothing: exit 2 →
//! `drill daemon --restart-command "<script> restart-daemon"` under load: the daemon stops
//! every container (no live-restore), their restart policies bring them back, `verify` passes
//! again, no session loses its counter → the daemon switched to live-restore → the same drill:
//! every container keeps running; with a budget it cannot meet the drill fails (exit 1) →
//! `down --volumes` → `local-daemon.sh down`, also on failure (the guards' Drop). Without
//! `--restart-command` the drill cannot run (exit 2, with what to pass).
//!
//! ONE test function. Needs root (a namespace, a bridge, dockerd) and the offline images and
//! the app image on the main daemon (`scripts/offline-images.sh`, `radar-deploy up`); it FAILS,
//! never skips, when it cannot start the daemon. A machine-wide lock keeps two runs (two
//! checkouts) from sharing it.

use crate::common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{block_on, text};
use radar_deploy::lock::ProjectLock;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local-daemon.sh");
const SOCKET: &str = "unix:///run/rdd/docker.sock";
/// Where the daemon's published ports are reached from this host (over the bridge).
const DAEMON_IP: &str = "10.236.0.11";

fn script(args: &[&str], live_restore: bool) -> Output {
    Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .env("RDD_LIVE_RESTORE", live_restore.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {SCRIPT} {args:?}: {e}"))
}

/// The daemon, for as long as the guard lives: `up` on creation, `down` on drop (also when
/// the test fails).
struct Daemon {
    _lock: ProjectLock,
}

impl Daemon {
    fn up() -> Daemon {
        let lock = block_on(ProjectLock::acquire(
            "rdd",
            "local-daemon",
            Duration::from_secs(900),
            |pid| eprintln!("waiting for the daemon drill test of pid {pid}"),
        ))
        .expect("the machine-wide local-daemon lock");
        // Taken by no one now: left over from a run that was killed, rebuild from scratch.
        let _ = script(&["down"], false);
        let daemon = Daemon { _lock: lock };
        let t0 = Instant::now();
        let out = script(&["up"], false);
        eprintln!("{}", text(&out));
        assert!(
            out.status.success(),
            "scripts/local-daemon.sh up could not start the daemon (this test never skips; it \
             needs root, iproute2, dnsmasq and the offline images):\n{}",
            text(&out)
        );
        eprintln!(
            "daemon: scripts/local-daemon.sh up in {:.1}s",
            t0.elapsed().as_secs_f64()
        );
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", text(&script(&["status"], false)));
            let log = std::fs::read_to_string("/run/rdd/dockerd.log").unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!("--- dockerd log (last lines, newest first) ---");
            for l in tail {
                eprintln!("{l}");
            }
        }
        eprintln!("{}", text(&script(&["down"], false)));
    }
}

/// A project on that daemon; `down --volumes` on drop (before the daemon's own guard).
struct Stack(common::Project);

impl std::ops::Deref for Stack {
    type Target = common::Project;
    fn deref(&self) -> &common::Project {
        &self.0
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--volumes"]);
    }
}

impl Stack {
    fn url(&self) -> String {
        format!("http://{DAEMON_IP}:{}", self.port)
    }

    /// `verify` through nginx's published port, retried until it passes or `within` passes.
    fn verify_passes(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let out = self.run(&["verify", "--url", &self.url()]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "verify does not pass:\n{}",
                text(&out)
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// `drill daemon` restarting the test's daemon; (exit code, JSON report, all output).
    fn drill(&self, live_restore: bool, extra: &[&str]) -> (i32, serde_json::Value, String) {
        let restart = format!("RDD_LIVE_RESTORE={live_restore} bash {SCRIPT} restart-daemon");
        let url = self.url();
        let args = [
            "drill",
            "daemon",
            "--duration",
            "5",
            "--timeout",
            "120",
            "--url",
            &url,
            "--restart-command",
            &restart,
            "--format",
            "json",
        ];
        let out = self.run(&[&args[..], extra].concat());
        let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code().unwrap_or(-1), report, text(&out))
    }
}

fn secs(v: &serde_json::Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".into(), |ms| format!("{:.2} s", ms as f64 / 1000.0))
}

fn figures(r: &serde_json::Value) -> String {
    let d = &r["recovery"]["daemon"];
    format!(
        "daemon gone after {}, back after {}; serving again after {}; every container healthy after {}; verified after {}; {} requests, {} failed {}; longest gap {}; notes: {}",
        secs(&d["daemon_down_after_ms"]),
        secs(&d["daemon_back_after_ms"]),
        secs(&r["recovery"]["serving_after_ms"]),
        secs(&d["all_healthy_after_ms"]),
        secs(&d["verified_after_ms"]),
        r["load"]["requests"],
        r["failures"]["total"],
        r["failures"]["by_kind"],
        secs(&r["longest_gap"]["ms"]),
        r["notes"],
    )
}

#[test]
fn a_daemon_restart_under_load_brings_every_container_back_and_verify_passes() {
    let _slot = common::alone();
    // Without --restart-command the drill cannot run, and says what to pass: before any daemon
    // is asked (no env file here either).
    let out = Command::new(common::BIN)
        .args(["drill", "daemon"])
        .env("DOCKER_HOST", SOCKET)
        .output()
        .expect("run radar-deploy");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("--restart-command"), "{said}");
    assert!(said.contains("systemctl restart docker"), "{said}");

    let _daemon = Daemon::up();
    let stack = Stack(common::Project::new("rdd", 2, Some(SOCKET)));
    stack.ok(&["up", "--timeout", "180", "--no-verify"]);
    stack.verify_passes(Duration::from_secs(60));

    // A restart command that fails without restarting anything drills nothing: exit 2, with
    // its output.
    let url = stack.url();
    let out = stack.run(&[
        "drill",
        "daemon",
        "--duration",
        "1",
        "--url",
        &url,
        "--restart-command",
        "echo no password here >&2; exit 3",
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("never stopped answering"), "{said}");
    assert!(said.contains("exited 3"), "{said}");
    assert!(said.contains("no password here"), "{said}");

    // 1. No live-restore: the daemon stops every container and starts them again by their
    // restart policy (`unless-stopped`).
    let (code, r, out) = stack.drill(false, &[]);
    eprintln!("drill daemon (live-restore off): {}", figures(&r));
    assert_eq!(code, 0, "drill daemon:\n{out}");
    assert_eq!(r["drill"], "daemon", "{out}");
    assert_eq!(r["passed"], true, "{out}");
    let d = &r["recovery"]["daemon"];
    assert_eq!(d["live_restore"], false, "{out}");
    assert_eq!(d["command_exit_code"], 0, "{out}");
    assert!(d["daemon_down_after_ms"].is_u64(), "{out}");
    assert!(d["daemon_back_after_ms"].is_u64(), "{out}");
    let containers = d["containers"].as_array().expect("containers");
    assert_eq!(
        containers.len(),
        5,
        "nginx, 2 instances, postgres, redis:\n{out}"
    );
    for c in containers {
        assert_eq!(
            c["kept_running"], false,
            "{c}: stopped by the daemon:\n{out}"
        );
        assert_eq!(c["restart_policy"], "unless-stopped", "{c}");
        assert!(c["healthy_after_ms"].is_u64(), "{c} never healthy:\n{out}");
        if c["alias"].as_str().unwrap_or_default().starts_with("app-") {
            assert!(c["serving_after_ms"].is_u64(), "{c} never served:\n{out}");
        }
    }
    assert!(d["verified_after_ms"].is_u64(), "{out}");
    assert!(
        r["recovery"]["serving_after_ms"].is_u64(),
        "the outage has an end:\n{out}"
    );
    // The front door was shut while nginx was stopped: the clients saw it, by kind.
    assert!(r["failures"]["total"].as_u64().unwrap() > 0, "{out}");
    assert!(
        !r["failures"]["by_kind"].as_object().unwrap().is_empty(),
        "{out}"
    );
    assert_eq!(r["session"]["integrity"]["intact"], true, "{out}");
    let events: Vec<&str> = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["what"].as_str())
        .collect();
    for want in [
        "restart command started",
        "the daemon went away",
        "the daemon answers again",
        "nginx healthy",
        "serving again",
        "verify passes again",
    ] {
        assert!(
            events.iter().any(|e| e.contains(want)),
            "timeline lacks {want:?}: {events:?}"
        );
    }
    stack.verify_passes(Duration::from_secs(30));

    // 2. The daemon switched to live-restore (a restart outside the drill; the containers
    // come back by their policy), then drilled again: they keep running. A budget no restart
    // can meet makes it a failed drill (exit 1) naming that budget.
    let out = script(&["restart-daemon"], true);
    assert!(out.status.success(), "restart-daemon:\n{}", text(&out));
    stack.verify_passes(Duration::from_secs(60));
    let (code, r, out) = stack.drill(true, &["--max-recovery-ms", "1"]);
    eprintln!("drill daemon (live-restore on): {}", figures(&r));
    assert_eq!(code, 1, "drill daemon with an impossible budget:\n{out}");
    let d = &r["recovery"]["daemon"];
    assert_eq!(d["live_restore"], true, "{out}");
    for c in d["containers"].as_array().expect("containers") {
        assert_eq!(
            c["kept_running"], true,
            "{c}: live-restore keeps it:\n{out}"
        );
    }
    assert!(d["verified_after_ms"].is_u64(), "{out}");
    let failed: Vec<&str> = r["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["passed"] == false)
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(
        failed,
        ["time to verified (fault → verify passes)"],
        "{out}"
    );
    assert_eq!(r["session"]["integrity"]["intact"], true, "{out}");
    stack.verify_passes(Duration::from_secs(30));
}

//! `drill` against a real stack brought up by `radar-deploy up`: an instance crash under load
//! fails no request; with `--ha`, a stopped Redis master costs at most the session-outage
//! budget and no session loses its counter; afterwards `verify` passes again. On the same
//! non-HA stack, one after the other with short durations: `drill redis` (no Sentinels: Redis
//! killed, its append-only file keeps the sessions), `postgres`, `nginx`, `network` and
//! `memory`, each ending verified, budgets asserted loosely (noisy host), data invariants
//! strictly (session counters never back, Postgres rows there, no instance restarted by a
//! Postgres crash, the OOM kill reported as such).
//!
//! `RADAR_DRILL_MAX_OUTAGE_MS` sets the test's session-outage bound (default 30 s, see below).
//! That bound also covers the Sentinels splitting their first leader vote (all three see the
//! master down in the same instant and vote for themselves): they retry after failover-timeout
//! and the outage is then about 27 s — a real property of those settings, which the drill reports.
//!
//! Needs the Docker daemon and the offline images (`scripts/offline-images.sh`); fails, never
//! skips, without them.

use crate::common;

use common::text;

/// A stack of its own (see `common::HostProject`), removed on drop — also when a test fails.
struct Stack(common::HostProject);

impl std::ops::Deref for Stack {
    type Target = common::HostProject;
    fn deref(&self) -> &common::HostProject {
        &self.0
    }
}

impl Stack {
    fn up(tag: &str, ha: bool) -> Stack {
        let stack = Stack(common::HostProject::new(&format!("rdd-{tag}"), 3));
        // verify is not part of what these tests prove (and is run, targeted, after drills).
        let mut up = vec!["up", "--timeout", "180", "--no-verify"];
        if ha {
            up.push("--ha");
        }
        let out = stack.run(&up);
        assert!(
            out.status.success(),
            "radar-deploy up failed (are the offline images built? scripts/offline-images.sh):\n{}",
            text(&out)
        );
        stack
    }

    /// What each Sentinel logged about the master, for a failed drill's message: the replica
    /// and peers it learnt of (a Sentinel that knows no replica aborts the failovers it leads),
    /// the failover's steps, and how often a name did not resolve (one line, not one a second).
    fn sentinel_events(&self) -> String {
        let mut events = String::new();
        for n in 1..=3 {
            let name = format!("{}-sentinel-{n}", self.name);
            let log = text(&common::docker(&["logs", &name]));
            events.push_str(&format!("--- {name}\n"));
            let mut unresolved = 0;
            for line in log.lines() {
                if line.contains("resolve") {
                    unresolved += 1;
                } else if [
                    "+monitor",
                    "+slave",
                    "+sentinel",
                    "sdown",
                    "odown",
                    "tilt",
                    "elected",
                    "vote",
                    "switch",
                    "failover",
                ]
                .iter()
                .any(|e| line.contains(e))
                {
                    events.push_str(line);
                    events.push('\n');
                }
            }
            events.push_str(&format!(
                "({unresolved} lines about names that did not resolve)\n"
            ));
        }
        events
    }

    /// What app-1 logged about Redis and the Sentinels (its last 40 such lines).
    fn app_redis_events(&self) -> String {
        let log = text(&common::docker(&["logs", &format!("{}-app-1", self.name)]));
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("redis") || l.contains("sentinel"))
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Runs a drill with `--format json`; returns the exit code, the report and all output.
    fn drill(&self, args: &[&str]) -> (i32, serde_json::Value, String) {
        let out = self.run(&[&["drill"], args, &["--format", "json"]].concat());
        let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code().unwrap_or(-1), report, text(&out))
    }

    /// After a drill, the checks it is about pass again (the drill leaves the deployment as
    /// it found it). Retried for a while: Docker's healthchecks and Sentinel need a moment.
    fn verify_shows_passed(&self, ha: bool, checks: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let out = text(&self.run(if ha { &["verify", "--ha"] } else { &["verify"] }));
            let missing: Vec<&&str> = checks
                .iter()
                .filter(|name| {
                    !out.lines()
                        .any(|l| l.starts_with('✓') && l.contains(**name))
                })
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "after the drill, verify does not pass {missing:?}:\n{out}"
            );
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }
}

fn ms(v: &serde_json::Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".into(), |ms| format!("{:.2} s", ms as f64 / 1000.0))
}

#[test]
fn an_instance_crash_under_load_fails_no_request() {
    let _slot = common::alone();
    let s = Stack::up("inst", false);

    // The picture of it too (in a directory `--report` creates).
    let html = s.dir.path().join("reports").join("drill.html");
    let html_arg = html.to_string_lossy().into_owned();
    let (code, r, out) = s.drill(&["instance", "--duration", "10", "--report", &html_arg]);
    assert_eq!(code, 0, "drill instance:\n{out}");
    assert_eq!(r["passed"], true, "{out}");
    assert_eq!(r["failures"]["total"], 0, "{out}");
    assert_eq!(
        r["recovery"]["target"], "app-3",
        "the highest numbered instance"
    );
    assert!(r["recovery"]["healthy_after_ms"].is_u64(), "{out}");
    assert!(r["recovery"]["time_to_full_health_ms"].is_u64(), "{out}");
    assert_eq!(r["session"]["integrity"]["intact"], true, "{out}");
    assert!(r["load"]["requests"].as_u64().unwrap() > 100, "{out}");
    eprintln!(
        "drill instance: {} requests, {} failed, longest gap {} (worst client {}), healthy after {}, serving through nginx after {}, full health after {}",
        r["load"]["requests"],
        r["failures"]["total"],
        ms(&r["longest_gap"]["ms"]),
        ms(&r["client_gaps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["ms"].as_u64().unwrap())
            .max()
            .into()),
        ms(&r["recovery"]["healthy_after_ms"]),
        ms(&r["recovery"]["serving_after_ms"]),
        ms(&r["recovery"]["time_to_full_health_ms"]),
    );
    // Back in nginx's rotation within 5 s of healthy (nginx's fail_timeout, not 30 s).
    let (healthy, serving) = (
        r["recovery"]["healthy_after_ms"].as_u64().unwrap_or(0),
        r["recovery"]["serving_after_ms"]
            .as_u64()
            .unwrap_or(u64::MAX),
    );
    assert!(
        serving.saturating_sub(healthy) <= 5000,
        "app-3 served again through nginx {} after it was healthy (target: 5 s):\n{out}",
        ms(&serving.saturating_sub(healthy).into())
    );
    s.verify_shows_passed(
        false,
        &["app-3 is healthy", "app-3 is ready", "Load distribution"],
    );
    the_report_shows_what_the_clients_saw(&html, &r, &out);

    the_fault_catalog_leaves_the_stack_verified_and_loses_no_data(&s);

    // A budget that cannot hold is a failed drill (exit 1), with the text report naming it;
    // its picture is written all the same (a path relative to the working directory).
    let out = s.run(&[
        "drill",
        "instance",
        "--duration",
        "3",
        "--max-outage-ms",
        "0",
        "--max-failed",
        "100000",
        "--report",
        "failed-drill.svg",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let texts = common::report::assert_drill_report(&s.dir.path().join("failed-drill.svg"));
    assert!(
        texts.iter().any(|t| t.contains("Failed")),
        "the SVG's heading says the drill failed: {texts:?}"
    );
    assert!(
        text(&out).contains("drill report written: failed-drill.svg"),
        "{}",
        text(&out)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report
            .lines()
            .any(|l| l.contains("FAIL") && l.contains("longest gap (worst client)")),
        "{report}"
    );
    assert!(
        report.contains("Drill failed: 1 budget exceeded."),
        "{report}"
    );
}

/// `--report` of the drill above: the page parses, holds every chart with its series and the
/// markers, and its figures are the JSON report's; stdout stayed one JSON document (the line
/// saying where the report went is on stderr).
fn the_report_shows_what_the_clients_saw(html: &std::path::Path, r: &serde_json::Value, out: &str) {
    let texts = common::report::assert_drill_report(html);
    assert!(
        out.contains(&format!("drill report written: {}", html.display())),
        "{out}"
    );
    // Killed and back: the recovery and verification are marked too.
    for marker in ["recovered", "verified"] {
        assert!(
            texts.iter().any(|t| t == marker),
            "no {marker} marker: {texts:?}"
        );
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("failed requests") && t.ends_with('0')),
        "{texts:?}"
    );
    // The series the charts are drawn from, second by second, in the JSON report as well.
    let series = r["series"].as_array().expect("series in the JSON report");
    assert!(series.len() >= 8, "{} bins for a 10 s drill", series.len());
    let ok: u64 = series.iter().map(|b| b["ok"].as_u64().unwrap_or(0)).sum();
    assert_eq!(ok, r["load"]["succeeded"].as_u64().unwrap_or(0));
    assert!(series
        .iter()
        .all(|b| b["failed"].as_object().is_some_and(|f| f.is_empty())));
}

#[test]
fn a_redis_failover_keeps_the_session_outage_under_budget_and_the_counter_intact() {
    let _slot = common::alone();
    let s = Stack::up("redis", true);

    // The product's budget is 7 s (the command's default); with down-after 5 s the floor is
    // about 6.5 s, so on a loaded CI host 7 s is a coin toss (seen: 6.2-8.4 s, once 26.9 s
    // when the Sentinels split their votes and retried after failover-timeout). This test
    // proves the failover and the intact counter; the figure itself is measured and reported
    // by the drill, not gated here. RADAR_DRILL_MAX_OUTAGE_MS tightens it on a quiet host.
    let budget = std::env::var("RADAR_DRILL_MAX_OUTAGE_MS").unwrap_or_else(|_| "30000".into());
    let (code, r, out) = s.drill(&["redis", "--duration", "15", "--max-outage-ms", &budget]);
    // A failed failover is explained by what the Sentinels and the app saw: that comes first,
    // as a long report would push it past where a CI log is cut.
    let why = || {
        format!(
            "the Sentinels' events:\n{}\nthe app's Redis events:\n{}\ndrill redis:\n{out}",
            s.sentinel_events(),
            s.app_redis_events()
        )
    };
    assert_eq!(code, 0, "drill redis exit {code}; {}", why());
    assert_eq!(r["passed"], true, "{}", why());
    let outage = r["recovery"]["session_outage_ms"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(
        outage <= budget.parse::<u64>().unwrap_or(30000),
        "session outage {outage} ms; {}",
        why()
    );
    assert_eq!(r["session"]["integrity"]["intact"], true, "{out}");
    assert_eq!(r["recovery"]["target"], "redis");
    assert_eq!(r["recovery"]["new_master"], "redis-replica");
    assert!(
        r["recovery"]["old_master_rejoined_after_ms"].is_u64(),
        "{out}"
    );
    eprintln!(
        "drill redis: {} requests, {} failed, session outage {}, promoted after {}, sessions back after {}, old master rejoined after {} (restarted at {})",
        r["load"]["requests"],
        r["failures"]["total"],
        ms(&r["recovery"]["session_outage_ms"]),
        ms(&r["recovery"]["promoted_after_ms"]),
        ms(&r["recovery"]["sessions_back_after_ms"]),
        ms(&r["recovery"]["old_master_rejoined_after_ms"]),
        ms(&r["recovery"]["old_master_restarted_after_ms"]),
    );
    // The deployment is whole again: the old master is a linked replica, the quorum holds.
    s.verify_shows_passed(
        true,
        &[
            "Sentinels agree on the master",
            "Sentinel quorum",
            "Replica linked to the master",
        ],
    );
}

/// A drill's `verified` step happened (every container healthy, the balancer serving) and
/// its session counters never went back.
fn assert_verified_and_sessions_intact(drill: &str, r: &serde_json::Value, out: &str) {
    assert!(
        r["recovery"]["verified_after_ms"].is_u64(),
        "drill {drill}: not verified:\n{out}"
    );
    assert_eq!(
        r["session"]["integrity"]["intact"], true,
        "drill {drill}: a session counter went back:\n{out}"
    );
    assert_eq!(
        r["session"]["client_sessions_intact"], r["session"]["client_sessions_checked"],
        "drill {drill}: a load client's session went back:\n{out}"
    );
    let timeline: Vec<&str> = r["timeline"]
        .as_array()
        .map(|t| t.iter().filter_map(|e| e["what"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        timeline.iter().any(|w| w.starts_with("verified")),
        "drill {drill}: no verified step in the timeline {timeline:?}"
    );
}

fn check<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["recovery"]["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

fn summary(drill: &str, r: &serde_json::Value) {
    eprintln!(
        "drill {drill}: {} requests, {} failed {}, longest gap {} (worst client {}), first error {}, recovered {}, verified {}",
        r["load"]["requests"],
        r["failures"]["total"],
        r["failures"]["by_kind"],
        ms(&r["longest_gap"]["ms"]),
        ms(&r["client_gaps"]
            .as_array()
            .and_then(|g| g.iter().filter_map(|g| g["ms"].as_u64()).max())
            .into()),
        ms(&r["recovery"]["first_error_after_ms"]),
        ms(&r["recovery"]["recovered_after_ms"]),
        ms(&r["recovery"]["verified_after_ms"]),
    );
}

/// The single-host faults, one after the other on one non-HA stack (CI time: one `up`).
fn the_fault_catalog_leaves_the_stack_verified_and_loses_no_data(s: &Stack) {
    // Redis without Sentinels: killed, restarted by its policy, sessions kept by its AOF.
    let (code, r, out) = s.drill(&["redis", "--duration", "4", "--max-outage-ms", "20000"]);
    summary("redis (no Sentinels)", &r);
    assert_eq!(code, 0, "drill redis without Sentinels:\n{out}");
    assert!(
        r["fault"].as_str().unwrap_or("").contains("SIGKILL"),
        "{out}"
    );
    assert!(r["recovery"]["new_master"].is_null(), "no failover: {out}");
    assert_verified_and_sessions_intact("redis", &r, &out);
    assert!(
        r["session"]["integrity"]["first_views"].as_i64()
            < r["session"]["integrity"]["last_views"].as_i64(),
        "the session written before the crash went on after it:\n{out}"
    );

    // Postgres: no request on the load's path needs it; the instances reconnect by
    // themselves; committed rows survive the crash.
    let (code, r, out) = s.drill(&["postgres", "--duration", "4", "--max-failed", "20"]);
    summary("postgres", &r);
    assert_eq!(code, 0, "drill postgres:\n{out}");
    assert_verified_and_sessions_intact("postgres", &r, &out);
    let rows = check(&r, "Postgres rows written before the fault");
    assert_eq!(rows["passed"], true, "{out}");
    let restarts = check(&r, "no app instance restarted");
    assert_eq!(restarts["passed"], true, "{out}");
    assert!(
        r["recovery"]["readiness_failed_after_ms"].is_u64(),
        "readiness never answered 503 while Postgres was down:\n{out}"
    );

    // nginx: the front door is shut until its restart policy brings it back.
    let svg = s.dir.path().join("nginx.svg");
    let (code, r, out) = s.drill(&[
        "nginx",
        "--duration",
        "4",
        "--max-outage-ms",
        "20000",
        "--report",
        &svg.to_string_lossy(),
    ]);
    summary("nginx", &r);
    assert_eq!(code, 0, "drill nginx:\n{out}");
    assert_verified_and_sessions_intact("nginx", &r, &out);
    assert!(r["recovery"]["serving_after_ms"].is_u64(), "{out}");
    assert!(r["longest_gap"]["ms"].as_u64() > Some(0), "{out}");
    let kinds = r["failures"]["by_kind"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(!kinds.is_empty(), "failures by kind: {out}");
    // Its picture has a line per failure kind (the legend shortens a long one).
    let texts = common::report::assert_drill_report(&svg);
    for kind in kinds.keys() {
        let start: String = kind.chars().take(20).collect();
        assert!(
            texts.iter().any(|t| t.starts_with(&start)),
            "no line for {kind:?}: {texts:?}"
        );
    }

    // network: app-3 off the network for 3 s, then attached again.
    let (code, r, out) = s.drill(&[
        "network",
        "--duration",
        "3",
        "--cut-secs",
        "3",
        "--max-failed",
        "200",
    ]);
    summary("network", &r);
    assert_eq!(code, 0, "drill network:\n{out}");
    assert_verified_and_sessions_intact("network", &r, &out);
    let net = text(&common::docker(&[
        "inspect",
        "-f",
        "{{range $n, $_ := .NetworkSettings.Networks}}{{$n}} {{end}}",
        &format!("{}-app-3", s.name),
    ]));
    assert!(
        net.contains(&format!("{}_default", s.name)),
        "app-3 is attached to the project network again: {net}"
    );

    // memory: app-3 killed by its memory limit, reported as an OOM kill.
    let (code, r, out) = s.drill(&["memory", "--duration", "3", "--max-failed", "20"]);
    summary("memory", &r);
    assert_eq!(code, 0, "drill memory:\n{out}");
    assert_eq!(r["recovery"]["oom_killed"], true, "{out}");
    assert_verified_and_sessions_intact("memory", &r, &out);

    // --cut-secs is `drill network`'s own; --instance does not apply to a service crash.
    let (code, _, out) = s.drill(&["postgres", "--instance", "app-1"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--instance app-1 applies to"), "{out}");
}

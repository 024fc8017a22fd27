//! The report as text (like the seed's verify script: ✓/✗ lines, distribution table, summary),
//! JSON, or JUnit XML for CI servers.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};

use super::{Report, Status, GROUPS, GROUP_DISTRIBUTION};
use crate::ui::Ui;

fn mark(ui: &Ui, s: Status) -> String {
    match s {
        Status::Pass => ui.green("✓"),
        Status::Warn => ui.yellow("!"),
        Status::Fail => ui.red("✗"),
        Status::Skip => ui.yellow("-"),
    }
}

pub fn text(r: &Report, ui: &Ui) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}\n",
        ui.bold("=== Multi-Instance Deployment Verification ===")
    );
    for group in GROUPS {
        let checks: Vec<_> = r.checks.iter().filter(|c| c.group == *group).collect();
        if checks.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}", ui.bold(&format!("=== {group} ===")));
        if *group == GROUP_DISTRIBUTION {
            if let Some(d) = &r.distribution {
                let named = match d.named_by.as_slice() {
                    [] => String::new(),
                    by => format!(", instances named by {}", by.join(" and ")),
                };
                let _ = writeln!(
                    out,
                    "Load distribution across {} requests (GET {}{named}):",
                    d.requests, d.path
                );
                for (id, n) in &d.counts {
                    let pct = 100.0 * *n as f64 / d.requests.max(1) as f64;
                    let _ = writeln!(out, "  {id}: {n} requests ({pct:.1}%)");
                }
                if d.failed > 0 {
                    let _ = writeln!(out, "  failed: {} requests", d.failed);
                }
            }
        }
        for c in checks {
            let skipped = match c.status {
                Status::Skip => " (skipped)",
                Status::Warn => " (warning)",
                _ => "",
            };
            let _ = writeln!(
                out,
                "{} {}{skipped} — {}",
                mark(ui, c.status),
                c.name,
                c.detail
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "{}", ui.bold("=== Verification Summary ==="));
    for group in GROUPS {
        let statuses: Vec<Status> = r
            .checks
            .iter()
            .filter(|c| c.group == *group)
            .map(|c| c.status)
            .collect();
        if statuses.is_empty() {
            continue;
        }
        let s = if statuses.contains(&Status::Fail) {
            Status::Fail
        } else if statuses.contains(&Status::Warn) {
            Status::Warn
        } else if statuses.iter().all(|s| *s == Status::Skip) {
            Status::Skip
        } else {
            Status::Pass
        };
        let _ = writeln!(out, "{} {group}", mark(ui, s));
    }
    let passed = r.count(Status::Pass);
    let skipped = r.count(Status::Skip);
    // Warnings pass (the exit status stays 0); the count is shown only when there are some.
    let passed = match r.count(Status::Warn) {
        0 => format!("{passed} passed"),
        1 => format!("{passed} passed, 1 warning"),
        n => format!("{passed} passed, {n} warnings"),
    };
    let secs = r.duration_ms as f64 / 1000.0;
    let _ = writeln!(out);
    if r.passed {
        let _ = writeln!(
            out,
            "{} All verification checks passed ({passed}, {skipped} skipped) in {secs:.2}s",
            ui.green("✓")
        );
    } else {
        let _ = writeln!(
            out,
            "{} {} of {} checks failed ({passed}, {skipped} skipped) in {secs:.2}s",
            ui.red("✗"),
            r.failed(),
            r.checks.len()
        );
    }
    out
}

pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub fn junit(r: &Report) -> String {
    let mut suite = TestSuite::new("radar-deploy verify");
    suite.set_time(Duration::from_millis(r.duration_ms));
    for c in &r.checks {
        let status = match c.status {
            // JUnit has no warning: a passed case whose output says it.
            Status::Pass | Status::Warn => TestCaseStatus::success(),
            Status::Skip => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(c.detail.as_str());
                s
            }
            Status::Fail => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(c.detail.as_str());
                s.set_description(c.detail.as_str());
                s
            }
        };
        let mut case = TestCase::new(c.name.as_str(), status);
        case.set_classname(format!(
            "verify.{}",
            c.group.replace(' ', "_").to_lowercase()
        ));
        case.set_time(Duration::from_millis(c.duration_ms));
        match c.status {
            Status::Pass => {
                case.set_system_out(c.detail.as_str());
            }
            Status::Warn => {
                case.set_system_out(format!("warning: {}", c.detail));
            }
            Status::Fail | Status::Skip => {}
        }
        suite.add_test_case(case);
    }
    let mut report = JunitReport::new("radar-deploy");
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot write JUnit XML: {e} -->"))
}

#[cfg(test)]
mod tests {
    use super::super::{Check, Report, Status};
    use super::*;

    fn report() -> Report {
        Report {
            passed: false,
            url: "http://localhost".into(),
            checks: vec![
                Check {
                    group: "Load balancer",
                    name: "Load balancer is healthy".into(),
                    status: Status::Pass,
                    detail: "200".into(),
                    duration_ms: 2,
                },
                Check {
                    group: "Readiness",
                    name: "app-2 is ready".into(),
                    status: Status::Fail,
                    detail: "GET http://app-2:3000/health/ready → 503: {\"redis\":\"<down>\"}"
                        .into(),
                    duration_ms: 5,
                },
                Check {
                    group: "Health",
                    name: "app-1 is healthy".into(),
                    status: Status::Skip,
                    detail: "no Docker".into(),
                    duration_ms: 0,
                },
                Check {
                    group: "HTTPS",
                    name: "TLS handshake and certificate for a.test".into(),
                    status: Status::Warn,
                    detail: "only 3 days left".into(),
                    duration_ms: 4,
                },
            ],
            distribution: None,
            duration_ms: 12,
        }
    }

    #[test]
    fn text_marks_skips_as_skipped_not_passed() {
        let ui = Ui {
            color: false,
            quiet: false,
            verbose: 0,
        };
        let t = text(&report(), &ui);
        assert!(t.contains("- app-1 is healthy (skipped)"));
        assert!(t.contains("✗ app-2 is ready"));
        assert!(t.contains("1 of 4 checks failed (1 passed, 1 warning, 1 skipped)"));
        assert!(
            t.contains("! TLS handshake and certificate for a.test (warning) — only 3 days left")
        );
        assert!(t.contains("! HTTPS\n"), "{t}");
    }

    #[test]
    fn warnings_pass_and_are_counted_apart() {
        let ui = Ui {
            color: false,
            quiet: false,
            verbose: 0,
        };
        let mut r = report();
        r.checks.retain(|c| c.status != Status::Fail);
        r.passed = true;
        let t = text(&r, &ui);
        assert!(
            t.contains("All verification checks passed (1 passed, 1 warning, 1 skipped)"),
            "{t}"
        );
    }

    #[test]
    fn junit_escapes_and_counts() {
        let x = junit(&report());
        assert!(x.contains("tests=\"4\""));
        assert!(x.contains("warning: only 3 days left"));
        assert!(x.contains("failures=\"1\""));
        assert!(x.contains("skipped=\"1\""));
        assert!(x.contains("&lt;down&gt;"));
    }

    #[test]
    fn json_round_trips() {
        let v: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(v["passed"], false);
        assert_eq!(v["checks"][1]["status"], "fail");
        assert_eq!(v["checks"][3]["status"], "warn");
    }
}

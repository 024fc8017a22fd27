//! The drill's report: text a person can trust at a glance (every figure, its budget, PASS or
//! FAIL), or JSON for scripts.

use std::fmt::Write as _;

use super::stats::{secs, Failure, Gap};
use super::{Kind, Report};
use crate::ui::Ui;

/// Time relative to the fault: `-2.00 s`, `+0.13 s`.
pub(super) fn rel(at_ms: u64, fault_ms: u64) -> String {
    if at_ms >= fault_ms {
        format!("+{}", secs(at_ms - fault_ms))
    } else {
        format!("-{}", secs(fault_ms - at_ms))
    }
}

pub(super) fn gap_text(g: &Gap, fault_ms: u64) -> String {
    if g.ms == 0 {
        return "0.00 s".into();
    }
    format!(
        "{} (from {} to {} after the fault)",
        secs(g.ms),
        rel(g.from_ms, fault_ms),
        rel(g.to_ms, fault_ms)
    )
}

fn opt_secs(ms: Option<u64>) -> String {
    ms.map_or_else(|| "not reached".into(), secs)
}

/// What the drill was, as the report's heading says it: `Drill: an app instance crashes`.
pub(super) fn title(r: &Report) -> &'static str {
    match r.drill {
        Kind::Instance => "Drill: an app instance crashes",
        Kind::Redis if r.recovery.old_master_restarted_after_ms.is_some() => {
            "Drill: the Redis master goes away"
        }
        Kind::Redis => "Drill: Redis crashes",
        Kind::Postgres => "Drill: Postgres crashes",
        Kind::Nginx => "Drill: nginx crashes",
        Kind::Network => "Drill: an app instance loses its network",
        Kind::Memory => "Drill: an app instance reaches its memory limit",
        Kind::Daemon => "Drill: the Docker daemon restarts",
    }
}

pub fn text(r: &Report, ui: &Ui) -> String {
    let mut out = String::new();
    let f = r.fault_at_ms;
    let _ = writeln!(out, "{}", ui.bold(&format!("=== {} ===", title(r))));
    let _ = writeln!(out, "Project {} via {}", r.project, r.url);
    let _ = writeln!(out, "Fault:  {}", r.fault);
    let _ = writeln!(
        out,
        "Load:   {} keep-alive clients (GET {}) + 1 session client (GET /api/session, one cookie jar), {}",
        r.load.clients,
        r.load.paths.join(", "),
        secs(r.load.duration_ms)
    );
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "{}",
        ui.bold("--- Timeline (relative to the fault) ---")
    );
    for e in &r.timeline {
        let _ = writeln!(out, "  {:>9}  {}", rel(e.at_ms, f), e.what);
    }
    let _ = writeln!(out);

    let _ = writeln!(out, "{}", ui.bold("--- Requests ---"));
    let _ = writeln!(
        out,
        "  sent        {:>8}   ({:.1}/s)",
        r.load.requests, r.load.requests_per_second
    );
    let _ = writeln!(out, "  succeeded   {:>8}", r.load.succeeded);
    let _ = writeln!(
        out,
        "  resent      {:>8}   (sent again on a new connection: the server closed the kept-alive one as it went out, as browsers retry)",
        r.load.resent_on_new_connection
    );
    let failed = if r.failures.total == 0 {
        ui.green("0")
    } else {
        ui.red(&r.failures.total.to_string())
    };
    let _ = writeln!(out, "  failed      {failed:>8}");
    for (kind, n) in &r.failures.by_kind {
        let _ = writeln!(out, "      {n:>6} × {kind}");
    }
    for e in &r.failures.examples {
        let detail = match &e.failure {
            Failure::Status { status, body } => format!("HTTP {status}: {body}"),
            Failure::Transport { reason } => reason.clone(),
        };
        let _ = writeln!(
            out,
            "      e.g. {} client {} GET {} → {}",
            rel(e.at_ms, f),
            e.client + 1,
            e.path,
            detail
        );
    }
    let _ = writeln!(
        out,
        "  latency     p50 {} ms · p90 {} ms · p99 {} ms · max {} ms",
        r.latency.p50_ms, r.latency.p90_ms, r.latency.p99_ms, r.latency.max_ms
    );
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "{}",
        ui.bold("--- Longest gap without a successful response ---")
    );
    let _ = writeln!(out, "  any client      {}", gap_text(&r.longest_gap, f));
    let worst = r.worst_client_gap();
    let _ = writeln!(out, "  worst client    {}", gap_text(&worst, f));
    let each: Vec<String> = r
        .client_gaps
        .iter()
        .enumerate()
        .map(|(i, g)| format!("{}: {}", i + 1, secs(g.ms)))
        .collect();
    let _ = writeln!(out, "  per client      {}", each.join(" · "));
    let _ = writeln!(
        out,
        "  session client  {}",
        gap_text(&r.session.longest_gap, f)
    );
    let _ = writeln!(out);

    let _ = writeln!(out, "{}", ui.bold("--- Session ---"));
    let s = &r.session.integrity;
    let _ = writeln!(
        out,
        "  session client: {} requests, {} answers, counter {} → {}{}",
        r.session.requests,
        s.answers,
        s.first_views,
        s.last_views,
        if s.skipped > 0 {
            format!(
                " ({} forward jumps: answers lost after Redis counted)",
                s.skipped
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "  load clients' own sessions: {} of {} intact",
        r.session.client_sessions_intact, r.session.client_sessions_checked
    );
    let _ = writeln!(out);

    let _ = writeln!(out, "{}", ui.bold("--- Recovery (after the fault) ---"));
    let rc = &r.recovery;
    let mut rows: Vec<(String, String)> = vec![];
    match r.drill {
        Kind::Instance => {
            rows.push((
                format!("{} seen down", rc.target),
                opt_secs(rc.down_after_ms),
            ));
            rows.push((
                "healthy again (healthcheck)".into(),
                opt_secs(rc.healthy_after_ms),
            ));
            rows.push((
                "serving through nginx again".into(),
                opt_secs(rc.serving_after_ms),
            ));
            if rc.verified_after_ms.is_some() {
                rows.push((
                    "verified (all healthy)".into(),
                    opt_secs(rc.verified_after_ms),
                ));
            }
        }
        Kind::Redis if rc.old_master_restarted_after_ms.is_some() => {
            rows.push((
                format!(
                    "new master ({})",
                    rc.new_master.as_deref().unwrap_or("none")
                ),
                opt_secs(rc.promoted_after_ms),
            ));
            rows.push((
                "sessions served again".into(),
                opt_secs(rc.sessions_back_after_ms),
            ));
            rows.push(("session outage".into(), opt_secs(rc.session_outage_ms)));
            rows.push((
                format!("old master {} restarted", rc.target),
                opt_secs(rc.old_master_restarted_after_ms),
            ));
            let rejoin = match (
                rc.old_master_rejoined_after_ms,
                rc.old_master_restarted_after_ms,
            ) {
                (Some(j), Some(s)) => format!("{} ({} after its restart)", secs(j), secs(j - s)),
                _ => "not reached".into(),
            };
            rows.push(("old master rejoined as replica".into(), rejoin));
            if rc.verified_after_ms.is_some() {
                rows.push((
                    "verified (all healthy)".into(),
                    opt_secs(rc.verified_after_ms),
                ));
            }
        }
        Kind::Redis | Kind::Postgres | Kind::Nginx | Kind::Network | Kind::Memory => {
            let mut row = |label: String, ms: Option<u64>| {
                if ms.is_some() {
                    rows.push((label, opt_secs(ms)));
                }
            };
            row("first failed request".into(), rc.first_error_after_ms);
            row(format!("{} seen down", rc.target), rc.down_after_ms);
            row(
                "readiness answered 503".into(),
                rc.readiness_failed_after_ms,
            );
            row(
                "readiness answered 200 again".into(),
                rc.readiness_back_after_ms,
            );
            row("running and healthy again".into(), rc.healthy_after_ms);
            row("serving through nginx again".into(), rc.serving_after_ms);
            rows.push(("recovered".into(), opt_secs(rc.recovered_after_ms)));
            rows.push((
                "verified (all healthy, data checked)".into(),
                opt_secs(rc.verified_after_ms),
            ));
            if let Some(oom) = rc.oom_killed {
                rows.push(("Docker's OOMKilled".into(), oom.to_string()));
            }
        }
        Kind::Daemon => rows.extend(super::daemon::recovery_rows(rc)),
    }
    rows.push((
        "time to full health".into(),
        opt_secs(rc.time_to_full_health_ms),
    ));
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    for (label, value) in rows {
        let pad = " ".repeat(width - label.chars().count());
        let _ = writeln!(out, "  {label}{pad}  {value}");
    }
    let _ = writeln!(out);

    if !r.notes.is_empty() {
        let _ = writeln!(out, "{}", ui.bold("--- Notes ---"));
        for n in &r.notes {
            let _ = writeln!(out, "  ! {n}");
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "{}", ui.bold("--- Budgets ---"));
    let width = r
        .budgets
        .iter()
        .map(|b| b.name.chars().count())
        .max()
        .unwrap_or(0);
    for b in &r.budgets {
        let mark = if b.passed {
            ui.green("✓ PASS")
        } else {
            ui.red("✗ FAIL")
        };
        let pad = width - b.name.chars().count();
        let _ = writeln!(
            out,
            "  {mark}  {}{}  {}  (budget {})",
            b.name,
            " ".repeat(pad),
            b.measured,
            b.budget
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{}",
        if r.passed {
            ui.green("Drill passed: every budget held.")
        } else {
            let n = r.budgets.iter().filter(|b| !b.passed).count();
            ui.red(&format!(
                "Drill failed: {n} budget{} exceeded.",
                if n == 1 { "" } else { "s" }
            ))
        }
    );
    out
}

pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_relative_to_the_fault() {
        assert_eq!(rel(2000, 2000), "+0.00 s");
        assert_eq!(rel(3250, 2000), "+1.25 s");
        assert_eq!(rel(0, 2000), "-2.00 s");
    }
}
